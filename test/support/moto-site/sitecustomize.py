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

# moto's SQS checks each message it hands out against the queue's retention period by computing every attribute of
# the queue three times over, and each computation counts all messages of the queue (with a clock read per message):
# a receive cost O(queue length) per message, ~60 ms of emulator CPU per mailbox in the fleet scale test's cycle of
# 1,000. The same check, reading the one attribute it needs.
try:
    from moto.sqs import models as _sqs

    def _retained(self, queue_name, message):
        retention_period = self.get_queue(queue_name).message_retention_period
        return retention_period + message.sent_timestamp / 1000 > _sqs.unix_time()

    if callable(getattr(_sqs.SQSBackend, "is_message_valid_based_on_retention_period", None)):
        _sqs.SQSBackend.is_message_valid_based_on_retention_period = _retained
except Exception:  # noqa: BLE001 - an emulator without it runs unpatched
    pass
