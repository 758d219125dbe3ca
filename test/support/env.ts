/**
 * Test-side access to the servers of the global setup:
 *
 *   const imap = dovecot();                 // DovecotServer handle (doveadm helpers, no stop())
 *   const user = await imap.createUser();
 *   const aws = moto();                     // Moto helpers with SDK clients for moto_server
 *   const secret = mailboxSecret(imap, user, { security: 'starttls', folder: 'Firma/Vertrieb' });
 */
import { rootCertificates } from 'node:tls';
import type { ImapFlowOptions } from 'imapflow';
import { afterAll, beforeAll, inject } from 'vitest';
import { AwsProxy, type AwsProxyOptions } from './aws-proxy.js';
import { DovecotServer, type DovecotStartOptions, type User } from './dovecot.js';
import { Moto } from './moto.js';
import { TcpProxy } from './tcp-proxy.js';
import type { TlsMaterial } from './tls.js';

export type Security = 'tls' | 'starttls' | 'none';

/** The TLS material of this run (test CA, server certs, wrong CA). */
export function tlsMaterial(): TlsMaterial {
  return inject('tls');
}

/** The shared Dovecot with TLS (imaps + STARTTLS), '/' delimiter. */
export function dovecot(): DovecotServer {
  return DovecotServer.attach(inject('dovecot'));
}

/** The shared Dovecot with `ssl = no` (no STARTTLS offered), '/' delimiter. */
export function dovecotNoTls(): DovecotServer {
  return DovecotServer.attach(inject('dovecotNoTls'));
}

/**
 * A private Dovecot for one test file (e.g. `{ separator: '.' }`), with this run's TLS material
 * unless `tls: undefined` is passed explicitly. Call `stop()` in `afterAll`.
 */
export function startDovecot(options: DovecotStartOptions = {}): Promise<DovecotServer> {
  return DovecotServer.start({ tls: tlsMaterial(), ...options });
}

let motoHelpers: Moto | undefined;
/** Moto helpers bound to the shared moto_server (one instance per test file). */
export function moto(): Moto {
  return (motoHelpers ??= new Moto(inject('moto')));
}

/** The port for a connection security mode. */
function portFor(server: DovecotServer, security: Security): number {
  if (security !== 'tls') return server.imapPort;
  if (server.imapsPort === null) throw new Error('this Dovecot has no TLS listener');
  return server.imapsPort;
}

/** The mailbox secret (contract 1) for `user` on `server`, trusting this run's test CA. */
export function mailboxSecret(
  server: DovecotServer,
  user: User,
  opts: { security?: Security; folder?: string; host?: string } = {},
): Record<string, unknown> {
  const security = opts.security ?? 'tls';
  return {
    host: opts.host ?? 'localhost',
    port: portFor(server, security),
    security,
    username: user.username,
    password: user.password,
    folder: opts.folder ?? 'INBOX',
    ...(security === 'none' ? {} : { caBundle: tlsMaterial().caCertPem }),
  };
}

/** imapflow options for `user` on `server`: verified TLS with the test CA, STARTTLS required, or plaintext. */
export function imapFlowOptions(server: DovecotServer, user: User, security: Security = 'tls'): ImapFlowOptions {
  return {
    host: 'localhost',
    port: portFor(server, security),
    secure: security === 'tls',
    doSTARTTLS: security === 'starttls' ? true : security === 'none' ? false : undefined,
    auth: { user: user.username, pass: user.password },
    tls: { ca: [...rootCertificates, tlsMaterial().caCertPem], minVersion: 'TLSv1.2' },
    logger: false,
  };
}

/**
 * A TCP proxy in front of the shared Dovecot (implicit TLS) and one in front of moto_server, started for
 * the calling test file (beforeAll) and closed after it, for injecting network faults. `atomicItems`: behind the
 * AWS one, an AwsProxy that applies DynamoDB writes to one item one at a time (for tests that race leases).
 */
export function proxiesToSharedServers(options: AwsProxyOptions = {}): {
  readonly imap: TcpProxy;
  readonly aws: TcpProxy;
} {
  const proxies = {} as { imap: TcpProxy; aws: TcpProxy; atomic?: AwsProxy };
  beforeAll(async () => {
    proxies.imap = await TcpProxy.start({ port: dovecot().imapsPort!, name: 'imap' });
    if (options.atomicItems) proxies.atomic = await AwsProxy.start(moto().info.endpoint, () => {}, options);
    const awsPort = proxies.atomic ? Number(new URL(proxies.atomic.url).port) : moto().info.port;
    proxies.aws = await TcpProxy.start({ port: awsPort, name: 'aws' });
  });
  afterAll(async () => {
    await proxies.imap?.close();
    await proxies.aws?.close();
    await proxies.atomic?.close();
  });
  return proxies;
}
