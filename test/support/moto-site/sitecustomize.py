"""
Loaded by the Python that runs moto_server for the tests and benchmarks (test/support/moto.ts puts this directory
first on PYTHONPATH). Two per-request costs of the emulator that have nothing to do with the AWS API it emulates:

- werkzeug's development server writes one log line per request to stderr (about 16 % of moto_server's CPU in a
  PutEvents profile); warnings and errors are still written.
- moto routes every request by listing its own package directory (os.listdir plus an isdir per entry, some 270) in
  moto.backends.list_of_moto_modules; the list is the same for the life of the process, so it is read once here.

Behaviour is unchanged. Anything unexpected (another moto version without that function) leaves moto as it is.
"""

import logging

logging.getLogger("werkzeug").setLevel(logging.WARNING)

try:
    import moto.backends as _backends

    _modules = tuple(_backends.list_of_moto_modules())
    _backends.list_of_moto_modules = lambda: iter(_modules)
except Exception:  # noqa: BLE001 - an emulator without this function runs unpatched
    pass
