import { type ConnectionOptions, checkServerIdentity, rootCertificates } from 'node:tls';
import type { MailboxSettings } from '../core/settings.js';
import { splitPemBundle } from '../core/settings.js';

/**
 * The Node TLS options for a mailbox: certificate and host name always verified, TLS 1.2 minimum,
 * `caBundle` trusted IN ADDITION to the public roots (Node's `ca` replaces the roots, so add them back),
 * `tlsServername` overrides the verified name and SNI.
 */
export function buildTlsOptions(settings: MailboxSettings): ConnectionOptions {
  const servername = settings.tlsServername ?? settings.host;
  const options: ConnectionOptions = {
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
    // SNI must not be an IP literal (RFC 6066); the name is still verified via checkServerIdentity.
    ...(isIpLiteral(servername) ? {} : { servername }),
  };
  if (settings.caBundle) {
    options.ca = [...rootCertificates, ...splitPemBundle(settings.caBundle)];
  }
  if (settings.tlsServername) {
    const name = settings.tlsServername;
    // Verify against the configured name, not the host we dialled.
    options.checkServerIdentity = (_host, cert) => checkServerIdentity(name, cert);
  }
  return options;
}

function isIpLiteral(name: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(name) || name.includes(':');
}
