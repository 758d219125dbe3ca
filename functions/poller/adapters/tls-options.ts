import {
  type ConnectionOptions,
  checkServerIdentity,
  createSecureContext,
  rootCertificates,
  type SecureContext,
} from 'node:tls';
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

/**
 * TLS contexts built so far, by CA bundle ('' = the public roots alone). Building one parses every root
 * certificate (~25 ms with the ~140 public roots plus a caBundle): once per container instead of on every connect.
 * Bounded: a poller that serves many mailboxes (fleet mode) keeps the most recently used few.
 */
const contexts = new Map<string, SecureContext>();
const MAX_CACHED_CONTEXTS = 16;

/**
 * buildTlsOptions with the trust (public roots + caBundle, TLS 1.2 minimum) as a SecureContext built once per
 * distinct caBundle and reused; what varies per connection (SNI, the name to verify) stays a connection option.
 */
export function cachedTlsOptions(settings: MailboxSettings): ConnectionOptions {
  const { ca, minVersion, ...perConnection } = buildTlsOptions(settings);
  const key = settings.caBundle ?? '';
  let context = contexts.get(key);
  if (context) {
    contexts.delete(key); // re-inserted below: most recently used last
  } else {
    context = createSecureContext({ ...(ca ? { ca } : {}), ...(minVersion ? { minVersion } : {}) });
    if (contexts.size >= MAX_CACHED_CONTEXTS) contexts.delete(contexts.keys().next().value!);
  }
  contexts.set(key, context);
  return { ...perConnection, secureContext: context };
}
