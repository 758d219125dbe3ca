/**
 * A throw-away certificate authority for the demo, made with nothing but node:crypto.
 *
 * Node can create key pairs and signatures but has no API to issue X.509 certificates, and the demo must
 * run on a laptop without openssl and without extra dependencies. An X.509 certificate is a small, fixed
 * DER structure, so we encode exactly the fields we need here (RFC 5280): EC P-256 keys, ECDSA-SHA256,
 * a CA with basicConstraints/keyUsage and a server certificate with subjectAltName and serverAuth.
 * Not a general-purpose encoder: demo and tests only.
 */
import { createHash, generateKeyPairSync, type KeyObject, randomBytes, sign, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';

export interface DemoCertificates {
  /** The CA certificate (PEM): what goes into `caBundle`. */
  readonly caCertPem: string;
  /** The server's certificate (PEM) and private key (PKCS#8 PEM), for the IMAP server. */
  readonly serverCertPem: string;
  readonly serverKeyPem: string;
}

// --- minimal DER encoding -------------------------------------------------------------------------

function der(tag: number, content: Buffer): Buffer {
  const n = content.length;
  const length =
    n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), length, content]);
}
const seq = (...items: Buffer[]) => der(0x30, Buffer.concat(items));
const set = (...items: Buffer[]) => der(0x31, Buffer.concat(items));
const octets = (b: Buffer) => der(0x04, b);
const bits = (b: Buffer, unusedBits = 0) => der(0x03, Buffer.concat([Buffer.from([unusedBits]), b]));
const bool = (v: boolean) => der(0x01, Buffer.from([v ? 0xff : 0x00]));
const utf8 = (s: string) => der(0x0c, Buffer.from(s, 'utf8'));
const explicit = (n: number, inner: Buffer) => der(0xa0 + n, inner);

function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number);
  const bytes = [a! * 40 + b!];
  for (const v of rest) {
    const chunk = [v & 0x7f];
    for (let x = v >>> 7; x > 0; x >>>= 7) chunk.unshift((x & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return der(0x06, Buffer.from(bytes));
}

function utcTime(d: Date): Buffer {
  const p = (n: number) => String(n).padStart(2, '0');
  const s = `${p(d.getUTCFullYear() % 100)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  return der(0x17, Buffer.from(s, 'ascii'));
}

const ECDSA_SHA256 = seq(oid('1.2.840.10045.4.3.2'));
const name = (cn: string) => seq(set(seq(oid('2.5.4.3'), utf8(cn))));
const extension = (id: string, critical: boolean, value: Buffer) =>
  seq(oid(id), ...(critical ? [bool(true)] : []), octets(value));

function keyId(publicKey: KeyObject): Buffer {
  // RFC 5280 4.2.1.2 method 1 is SHA-1 of the key bits; any stable hash works for matching.
  return createHash('sha1')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest();
}

interface CertificateSpec {
  subject: string;
  issuer: string;
  publicKey: KeyObject;
  signingKey: KeyObject;
  issuerPublicKey: KeyObject;
  validDays: number;
  ca: boolean;
  /** DNS names and IP addresses for subjectAltName (server certificates). */
  altNames?: readonly string[];
}

function issue(spec: CertificateSpec): string {
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x40; // positive and minimal
  const notBefore = new Date(Date.now() - 60 * 60 * 1000);
  const notAfter = new Date(Date.now() + spec.validDays * 24 * 60 * 60 * 1000);

  const extensions = [
    extension('2.5.29.19', true, spec.ca ? seq(bool(true)) : seq()), // basicConstraints
    // keyUsage: CA = keyCertSign + cRLSign; server = digitalSignature
    extension('2.5.29.15', true, spec.ca ? bits(Buffer.from([0x06]), 1) : bits(Buffer.from([0x80]), 7)),
    extension('2.5.29.14', false, octets(keyId(spec.publicKey))), // subjectKeyIdentifier
    extension('2.5.29.35', false, seq(der(0x80, keyId(spec.issuerPublicKey)))), // authorityKeyIdentifier
  ];
  if (!spec.ca) {
    extensions.push(extension('2.5.29.37', false, seq(oid('1.3.6.1.5.5.7.3.1')))); // extKeyUsage serverAuth
    const names = (spec.altNames ?? []).map((n) => {
      const family = isIP(n);
      if (family === 4) return der(0x87, Buffer.from(n.split('.').map(Number)));
      if (family === 6) throw new Error('IPv6 altNames are not supported by the demo CA');
      return der(0x82, Buffer.from(n, 'ascii'));
    });
    extensions.push(extension('2.5.29.17', false, seq(...names))); // subjectAltName
  }

  const tbs = seq(
    explicit(0, der(0x02, Buffer.from([2]))), // v3
    der(0x02, serial),
    ECDSA_SHA256,
    name(spec.issuer),
    seq(utcTime(notBefore), utcTime(notAfter)),
    name(spec.subject),
    spec.publicKey.export({ type: 'spki', format: 'der' }),
    explicit(3, seq(...extensions)),
  );
  const signature = sign('sha256', tbs, spec.signingKey); // DER-encoded ECDSA signature
  const certificate = seq(tbs, ECDSA_SHA256, bits(signature));
  const body = certificate
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .trimEnd();
  return `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`;
}

/**
 * A fresh CA and a server certificate signed by it, for the given host names / IPs (about 5 ms).
 * The result parses and verifies with node:crypto's X509Certificate (checked here, so a broken
 * encoding fails loudly instead of as a puzzling TLS error).
 */
export function generateDemoCertificates(
  options: { caName?: string; serverName?: string; altNames?: readonly string[]; validDays?: number } = {},
): DemoCertificates {
  const ca = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const server = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const caName = options.caName ?? 'imap-event-source demo CA';
  const serverName = options.serverName ?? 'localhost';
  const validDays = options.validDays ?? 30;

  const caCertPem = issue({
    subject: caName,
    issuer: caName,
    publicKey: ca.publicKey,
    signingKey: ca.privateKey,
    issuerPublicKey: ca.publicKey,
    validDays,
    ca: true,
  });
  const serverCertPem = issue({
    subject: serverName,
    issuer: caName,
    publicKey: server.publicKey,
    signingKey: ca.privateKey,
    issuerPublicKey: ca.publicKey,
    validDays,
    ca: false,
    altNames: options.altNames ?? [serverName, '127.0.0.1'],
  });

  const caCert = new X509Certificate(caCertPem);
  const serverCert = new X509Certificate(serverCertPem);
  if (!caCert.ca || !serverCert.checkIssued(caCert) || !serverCert.verify(caCert.publicKey)) {
    throw new Error('internal error: the generated demo certificates do not verify');
  }
  return {
    caCertPem,
    serverCertPem,
    serverKeyPem: server.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}
