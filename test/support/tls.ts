/**
 * Per-run TLS material for integration tests, generated with the `openssl` CLI:
 * - a test CA and a server certificate for `localhost` / `127.0.0.1` signed by it;
 * - a server certificate for another host name (`mail.example.test`), signed by the same CA,
 *   for name-mismatch and `tlsServername` tests;
 * - a second, unrelated CA ("wrong CA") for negative trust tests.
 * Everything is plain strings so it can travel through vitest's `provide`/`inject`.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const OTHER_HOST_NAME = 'mail.example.test';

export interface TlsMaterial {
  dir: string;
  caCertPath: string;
  caCertPem: string;
  serverCertPath: string;
  serverKeyPath: string;
  serverCertPem: string;
  serverKeyPem: string;
  /** Host name in the "other host" certificate (signed by the good CA). */
  otherHostName: string;
  otherHostCertPath: string;
  otherHostKeyPath: string;
  otherHostCertPem: string;
  otherHostKeyPem: string;
  /** An unrelated CA that signed nothing we serve. */
  wrongCaCertPath: string;
  wrongCaCertPem: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run('openssl', args, { cwd });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`openssl ${args[0]} failed: ${e.stderr ?? e.message}`, { cause: err });
  }
}

const KEY_ARGS = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

async function makeCa(dir: string, name: string, cn: string): Promise<void> {
  await openssl(
    [
      'req',
      '-x509',
      ...KEY_ARGS,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.crt`,
      '-days',
      '7',
      '-subj',
      `/CN=${cn}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
      '-addext',
      'subjectKeyIdentifier=hash',
    ],
    dir,
  );
}

async function makeServerCert(dir: string, name: string, cn: string, san: string): Promise<void> {
  await openssl(['req', ...KEY_ARGS, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
  await writeFile(
    join(dir, `${name}.ext`),
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      'extendedKeyUsage=serverAuth',
      `subjectAltName=${san}`,
      'authorityKeyIdentifier=keyid',
      '',
    ].join('\n'),
  );
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-set_serial',
      `0x1${randomBytes(8).toString('hex')}`,
      '-days',
      '7',
      '-sha256',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.crt`,
    ],
    dir,
  );
}

/** Generates fresh TLS material in a new temp dir (about 100 ms). */
export async function generateTlsMaterial(): Promise<TlsMaterial> {
  const dir = await mkdtemp(join(tmpdir(), 'ies-tls-'));
  await Promise.all([
    makeCa(dir, 'ca', 'imap-event-source test CA'),
    makeCa(dir, 'wrong-ca', 'imap-event-source unrelated CA'),
  ]);
  await Promise.all([
    makeServerCert(dir, 'server', 'localhost', 'DNS:localhost,IP:127.0.0.1'),
    makeServerCert(dir, 'other-host', OTHER_HOST_NAME, `DNS:${OTHER_HOST_NAME}`),
  ]);
  const p = (f: string) => join(dir, f);
  const read = (f: string) => readFile(p(f), 'utf8');
  return {
    dir,
    caCertPath: p('ca.crt'),
    caCertPem: await read('ca.crt'),
    serverCertPath: p('server.crt'),
    serverKeyPath: p('server.key'),
    serverCertPem: await read('server.crt'),
    serverKeyPem: await read('server.key'),
    otherHostName: OTHER_HOST_NAME,
    otherHostCertPath: p('other-host.crt'),
    otherHostKeyPath: p('other-host.key'),
    otherHostCertPem: await read('other-host.crt'),
    otherHostKeyPem: await read('other-host.key'),
    wrongCaCertPath: p('wrong-ca.crt'),
    wrongCaCertPem: await read('wrong-ca.crt'),
  };
}
