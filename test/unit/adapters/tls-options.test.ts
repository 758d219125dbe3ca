import { type PeerCertificate, rootCertificates } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { generateDemoCertificates } from '../../../cli/demo/certificates.js';
import { buildTlsOptions, cachedTlsOptions } from '../../../functions/poller/adapters/tls-options.js';
import type { MailboxSettings } from '../../../functions/poller/core/settings.js';

const PEM_A = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUAAAA\n-----END CERTIFICATE-----';
const PEM_B = '-----BEGIN CERTIFICATE-----\nMIIBtDCCAVqgAwIBAgIUBBBB\n-----END CERTIFICATE-----';
const base: MailboxSettings = {
  host: 'imap.example.com',
  port: 993,
  security: 'tls',
  username: 'u',
  password: 'p',
  folder: 'INBOX',
};

/** Just enough of a peer certificate for tls.checkServerIdentity. */
const cert = (dnsName: string): PeerCertificate =>
  ({ subject: { CN: dnsName }, subjectaltname: `DNS:${dnsName}` }) as unknown as PeerCertificate;

describe('buildTlsOptions', () => {
  it('always verifies, requires TLS 1.2 and sends the host as SNI', () => {
    const options = buildTlsOptions(base);
    expect(options).toEqual({ rejectUnauthorized: true, minVersion: 'TLSv1.2', servername: 'imap.example.com' });
    expect(options.ca).toBeUndefined();
    expect(options.checkServerIdentity).toBeUndefined();
  });

  it('trusts the caBundle IN ADDITION to the public roots', () => {
    const options = buildTlsOptions({ ...base, caBundle: `# private CA\n${PEM_A}\n${PEM_B}\n` });
    const ca = options.ca as string[];
    expect(ca).toHaveLength(rootCertificates.length + 2);
    expect(ca.slice(0, rootCertificates.length)).toEqual([...rootCertificates]);
    expect(ca.slice(-2)).toEqual([PEM_A, PEM_B]);
    expect(options.rejectUnauthorized).toBe(true);
  });

  it('verifies against tlsServername (and sends it as SNI) instead of the dialled host', () => {
    const options = buildTlsOptions({ ...base, host: 'imap-lb-123.internal', tlsServername: 'mail.example.com' });
    expect(options.servername).toBe('mail.example.com');
    expect(options.checkServerIdentity).toBeTypeOf('function');
    // The host argument Node passes (the dialled one) is ignored: the configured name counts.
    expect(options.checkServerIdentity!('imap-lb-123.internal', cert('mail.example.com'))).toBeUndefined();
    expect(options.checkServerIdentity!('mail.example.com', cert('imap-lb-123.internal'))).toBeInstanceOf(Error);
  });

  it.each(['192.0.2.10', '::1', '2001:db8::25'])('sends no SNI for the IP literal host %s', (host) => {
    const options = buildTlsOptions({ ...base, host });
    expect(options).not.toHaveProperty('servername');
    expect(options.rejectUnauthorized).toBe(true);
    expect(options.checkServerIdentity).toBeUndefined();
  });

  it('sends tlsServername as SNI for an IP host', () => {
    const options = buildTlsOptions({ ...base, host: '192.0.2.10', tlsServername: 'mail.internal' });
    expect(options.servername).toBe('mail.internal');
    expect(options.checkServerIdentity!('192.0.2.10', cert('mail.internal'))).toBeUndefined();
  });

  it('sends no SNI for an IP tlsServername but still verifies against it', () => {
    const options = buildTlsOptions({ ...base, host: 'lb.internal', tlsServername: '192.0.2.10' });
    expect(options).not.toHaveProperty('servername');
    const ipCert = { subject: { CN: 'x' }, subjectaltname: 'IP Address:192.0.2.10' } as unknown as PeerCertificate;
    expect(options.checkServerIdentity!('lb.internal', ipCert)).toBeUndefined();
    expect(options.checkServerIdentity!('lb.internal', cert('lb.internal'))).toBeInstanceOf(Error);
  });
});

describe('cachedTlsOptions', () => {
  it('builds the trust once per CA bundle and keeps the per-connection options', () => {
    const CA_PEM = generateDemoCertificates({ caName: 'Unit CA' }).caCertPem;
    const a = cachedTlsOptions(base);
    const b = cachedTlsOptions({ ...base, host: 'other.example.com' });
    expect(b.secureContext).toBe(a.secureContext);
    expect(b.servername).toBe('other.example.com');
    expect(a).not.toHaveProperty('ca');
    expect(a.rejectUnauthorized).toBe(true);
    const withCa = cachedTlsOptions({ ...base, caBundle: CA_PEM, tlsServername: 'mail.example.com' });
    expect(withCa.secureContext).not.toBe(a.secureContext);
    expect(cachedTlsOptions({ ...base, caBundle: CA_PEM }).secureContext).toBe(withCa.secureContext);
    expect(withCa.servername).toBe('mail.example.com');
    expect(withCa.checkServerIdentity).toBeTypeOf('function');
  });
});
