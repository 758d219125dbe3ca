/**
 * The network half of `check`, done with node:dns, node:net and node:tls directly so each layer can be
 * reported on its own: name resolution, TCP, the STARTTLS exchange, the TLS handshake and certificate.
 * TLS options come from the same `buildTlsOptions` the poller uses, so "trusted here" means "trusted there".
 */

import { X509Certificate } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { isIP, connect as netConnect, type Socket } from 'node:net';
import { checkServerIdentity, type PeerCertificate, type TLSSocket, connect as tlsConnect } from 'node:tls';
import { buildTlsOptions } from '../../functions/poller/adapters/tls-options.js';
import { type MailboxSettings, splitPemBundle } from '../../functions/poller/core/settings.js';

/** A failure of one probe: Node's error code plus a short text. */
export class ProbeError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ProbeError';
  }
}

function codeOf(err: unknown): string {
  const e = err as { code?: unknown };
  return typeof e?.code === 'string' ? e.code : 'ERROR';
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ProbeError('ETIMEDOUT', `${what} timed out after ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * The addresses of `host`, as the operating system's resolver (getaddrinfo, /etc/hosts included) gives them.
 * Names under `.invalid` never resolve (RFC 6761 section 6.4): answered here without asking any DNS server.
 */
export async function resolveHost(host: string, timeoutMs: number): Promise<string[]> {
  if (isIP(host)) return [host];
  if (/(^|\.)invalid\.?$/i.test(host)) {
    throw new ProbeError('ENOTFOUND', `${host} does not resolve (".invalid" names never exist, RFC 6761)`);
  }
  try {
    const found = await withTimeout(lookup(host, { all: true, verbatim: true }), timeoutMs, `DNS lookup of ${host}`);
    return found.map((a) => a.address);
  } catch (err) {
    if (err instanceof ProbeError) throw err;
    const code = codeOf(err);
    const text = code === 'ENOTFOUND' ? `${host} does not resolve` : `lookup of ${host} failed`;
    throw new ProbeError(code, `${text} (${code})`);
  }
}

/** Opens a TCP connection to the first address that accepts one. */
export async function connectTcp(
  addresses: readonly string[],
  port: number,
  timeoutMs: number,
): Promise<{ socket: Socket; address: string }> {
  let last: ProbeError | undefined;
  for (const address of addresses) {
    try {
      const socket = await new Promise<Socket>((resolve, reject) => {
        const s = netConnect({ host: address, port });
        s.setTimeout(timeoutMs, () => s.destroy(new ProbeError('ETIMEDOUT', `no answer within ${timeoutMs / 1000} s`)));
        s.once('connect', () => {
          s.setTimeout(0);
          s.removeAllListeners('error');
          resolve(s);
        });
        s.once('error', reject);
      });
      return { socket, address };
    } catch (err) {
      const code = codeOf(err);
      const reason: Record<string, string> = {
        ECONNREFUSED: 'refused',
        ETIMEDOUT: `timed out after ${timeoutMs / 1000} s`,
        EHOSTUNREACH: 'failed: host unreachable',
        ENETUNREACH: 'failed: network unreachable',
      };
      last = new ProbeError(
        code,
        `connection to ${formatAddress(address, port)} ${reason[code] ?? 'failed'} (${code})`,
      );
    }
  }
  throw last ?? new ProbeError('ENOTFOUND', 'no address to connect to');
}

export function formatAddress(address: string, port: number): string {
  return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

/** Reads IMAP response lines from a plain socket (for the STARTTLS exchange only). */
class LineReader {
  private buffer = '';
  private waiting?: () => void;
  private failure?: Error;
  private readonly onData = (chunk: Buffer) => {
    this.buffer += chunk.toString('latin1');
    this.waiting?.();
  };
  private readonly onEnd = (err?: Error) => {
    this.failure = err ?? new ProbeError('ECONNRESET', 'the server closed the connection');
    this.waiting?.();
  };

  constructor(private readonly socket: Socket) {
    socket.on('data', this.onData);
    socket.on('error', this.onEnd);
    socket.on('close', () => this.onEnd());
  }

  /** Lines up to and including the first one that `done` accepts. */
  async until(done: (line: string) => boolean, timeoutMs: number, what: string): Promise<string[]> {
    const lines: string[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (let i = this.buffer.indexOf('\r\n'); i >= 0; i = this.buffer.indexOf('\r\n')) {
        const line = this.buffer.slice(0, i);
        this.buffer = this.buffer.slice(i + 2);
        lines.push(line);
        if (done(line)) return lines;
      }
      if (this.failure) throw this.failure;
      const left = deadline - Date.now();
      if (left <= 0) throw new ProbeError('ETIMEDOUT', `${what}: no answer within ${timeoutMs / 1000} s`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiting = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.waiting = undefined;
    }
  }

  /** Bytes received and not yet read as lines. */
  get pending(): number {
    return this.buffer.length;
  }

  /** Stops reading, so the socket can be handed to TLS. */
  detach(): void {
    this.socket.off('data', this.onData);
    this.socket.off('error', this.onEnd);
    this.socket.removeAllListeners('close');
  }
}

/**
 * The STARTTLS exchange (RFC 3501 6.2.1): greeting, CAPABILITY, STARTTLS. Resolves when the server is ready
 * for the TLS handshake on `socket`; throws ProbeError('STARTTLS_UNAVAILABLE') when it does not offer it, and
 * ProbeError('STARTTLS_INJECTION') when data follows its OK before the handshake.
 */
export async function startTls(socket: Socket, timeoutMs: number): Promise<{ greeting: string }> {
  const reader = new LineReader(socket);
  try {
    const [greeting = ''] = await reader.until(() => true, timeoutMs, 'IMAP greeting');
    if (!/^\* (OK|PREAUTH)\b/i.test(greeting)) {
      throw new ProbeError('NOT_IMAP', 'the server did not send an IMAP greeting (is this an IMAP port?)');
    }
    let capabilities = /\[CAPABILITY ([^\]]*)\]/i.exec(greeting)?.[1];
    if (!capabilities) {
      socket.write('C1 CAPABILITY\r\n');
      const lines = await reader.until((l) => l.startsWith('C1 '), timeoutMs, 'CAPABILITY');
      capabilities = lines
        .filter((l) => /^\* CAPABILITY /i.test(l))
        .map((l) => l.slice(13))
        .join(' ');
    }
    if (!capabilities.toUpperCase().split(/\s+/).includes('STARTTLS')) {
      throw new ProbeError('STARTTLS_UNAVAILABLE', 'the server does not offer STARTTLS');
    }
    socket.write('C2 STARTTLS\r\n');
    const lines = await reader.until((l) => l.startsWith('C2 '), timeoutMs, 'STARTTLS');
    if (!/^C2 OK/i.test(lines[lines.length - 1]!)) {
      throw new ProbeError('STARTTLS_REFUSED', 'the server refused STARTTLS');
    }
    // RFC 3501 6.2.1: nothing may follow the OK before the handshake. Bytes that do were injected in plaintext.
    if (reader.pending > 0) {
      throw new ProbeError(
        'STARTTLS_INJECTION',
        'the server sent data after agreeing to STARTTLS, before the TLS handshake: a possible man-in-the-middle injecting plaintext',
      );
    }
    return { greeting };
  } finally {
    reader.detach();
  }
}

/** OpenSSL's reason without its internals ("...:SSL routines:ssl3_get_record:wrong version number:file:line:"). */
function handshakeReason(err: Error, code: string): string {
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER') return 'the server did not answer with TLS';
  if (code === 'ECONNRESET') return 'the server closed the connection';
  const reason = /SSL routines:[^:]*:([^:]+)/.exec(err.message)?.[1];
  return reason ?? err.message.split('\n')[0]!;
}

export interface TlsReport {
  readonly protocol: string;
  readonly subject: string;
  readonly issuer: string;
  readonly validFrom: Date;
  readonly validTo: Date;
  /** DNS names and IPs the certificate is valid for (subjectAltName, else the CN). */
  readonly names: readonly string[];
  /** True when chain and name verified, exactly as the poller verifies them. */
  readonly authorized: boolean;
  /** Node's verification error code when not authorized, e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE. */
  readonly error?: string;
  /** The name the certificate is checked against (tlsServername or host). */
  readonly expectedName: string;
  /** Whether the expected name is in the certificate (checked even when the chain failed). */
  readonly nameMatches: boolean;
  /** Which trust anchor the chain ends at. */
  readonly trustedVia?: 'caBundle' | 'public roots';
  /** Subjects of the certificates in caBundle. */
  readonly bundleSubjects: readonly string[];
}

/** One-line distinguished name: `CN=localhost, O=Example`. */
export function formatName(dn: string | undefined): string {
  return (dn ?? '').split('\n').filter(Boolean).join(', ') || '(empty)';
}

function certificateNames(cert: PeerCertificate): string[] {
  const san = (cert.subjectaltname ?? '')
    .split(', ')
    .map((s) => s.replace(/^(DNS|IP Address):/, ''))
    .filter(Boolean);
  return san.length > 0 ? san : [cert.subject?.CN].flat().filter((x): x is string => !!x);
}

/**
 * TLS handshake on `socket` (a fresh TCP connection or one after STARTTLS) with the poller's TLS options.
 * Verification runs as in the poller, but a failure is reported instead of thrown, together with what
 * the server presented. Handshake failures (no TLS on the port, old protocol versions) throw ProbeError.
 */
export async function tlsHandshake(socket: Socket, settings: MailboxSettings, timeoutMs: number): Promise<TlsReport> {
  const options = buildTlsOptions(settings);
  const tlsSocket = await new Promise<TLSSocket>((resolve, reject) => {
    const s = tlsConnect({ ...options, socket, host: settings.host, rejectUnauthorized: false });
    s.setTimeout(timeoutMs, () =>
      s.destroy(new ProbeError('ETIMEDOUT', `no TLS handshake within ${timeoutMs / 1000} s`)),
    );
    s.once('secureConnect', () => {
      s.setTimeout(0);
      resolve(s);
    });
    s.once('error', (err) => {
      const code = codeOf(err);
      reject(
        err instanceof ProbeError
          ? err
          : new ProbeError(code, `TLS handshake failed: ${handshakeReason(err as Error, code)} (${code})`),
      );
    });
  });
  try {
    const peer = tlsSocket.getPeerCertificate(true);
    const expectedName = settings.tlsServername ?? settings.host;
    const bundle = splitPemBundle(settings.caBundle ?? '').flatMap((pem) => {
      try {
        return [new X509Certificate(pem)];
      } catch {
        return [];
      }
    });
    return {
      protocol: tlsSocket.getProtocol() ?? 'unknown',
      subject: formatName(new X509Certificate(peer.raw).subject),
      issuer: formatName(new X509Certificate(peer.raw).issuer),
      validFrom: new Date(peer.valid_from),
      validTo: new Date(peer.valid_to),
      names: certificateNames(peer),
      authorized: tlsSocket.authorized,
      ...(tlsSocket.authorized ? {} : { error: String(tlsSocket.authorizationError ?? 'UNKNOWN') }),
      expectedName,
      nameMatches: checkServerIdentity(expectedName, peer) === undefined,
      ...(tlsSocket.authorized ? { trustedVia: chainEndsInBundle(peer, bundle) ? 'caBundle' : 'public roots' } : {}),
      bundleSubjects: bundle.map((c) => formatName(c.subject)),
    } satisfies TlsReport;
  } finally {
    tlsSocket.destroy();
  }
}

/** True when a certificate of the presented chain is in the bundle or was issued by one in it. */
function chainEndsInBundle(peer: PeerCertificate, bundle: readonly X509Certificate[]): boolean {
  const seen = new Set<string>();
  for (
    let c: PeerCertificate | undefined = peer;
    c && !seen.has(c.fingerprint256);
    c = (c as { issuerCertificate?: PeerCertificate }).issuerCertificate
  ) {
    seen.add(c.fingerprint256);
    const x = new X509Certificate(c.raw);
    if (bundle.some((b) => b.fingerprint256 === x.fingerprint256 || (x.checkIssued(b) && x.verify(b.publicKey))))
      return true;
  }
  return false;
}
