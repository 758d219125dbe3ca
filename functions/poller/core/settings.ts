import { SettingsValidationError } from '../errors.js';
import { editDistance } from './edit-distance.js';
import { describeOAuth2, type OAuth2Settings, type PemChecks, sameOAuth2, validateOAuth2 } from './oauth2-settings.js';

/** Connection security: implicit TLS, required STARTTLS upgrade, or plaintext (explicit opt-in). */
export type Security = 'tls' | 'starttls' | 'none';

/** Contract 1: the mailbox secret, validated and with defaults applied. */
export interface MailboxSettings {
  readonly host: string;
  readonly port: number;
  readonly security: Security;
  /** The login name; with `oauth2` the SASL user (the mailbox address). */
  readonly username: string;
  /** Exactly one of `password` and `oauth2` is set (validateSettings guarantees it). */
  readonly password?: string;
  readonly oauth2?: OAuth2Settings;
  readonly folder: string;
  readonly caBundle?: string;
  readonly tlsServername?: string;
}

export const DEFAULT_PORTS: Readonly<Record<Security, number>> = { tls: 993, starttls: 143, none: 143 };
const SECURITY_VALUES: readonly Security[] = ['tls', 'starttls', 'none'];
const KNOWN_FIELDS = [
  'host',
  'port',
  'security',
  'username',
  'password',
  'oauth2',
  'folder',
  'caBundle',
  'tlsServername',
] as const;
const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
// RFC 1123 host name or an IPv4/IPv6 literal; no scheme, no port, no path.
const HOST =
  /^(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;
const IPV6 = /^[0-9A-Fa-f:.]+$/;

function isHost(value: string): boolean {
  return HOST.test(value) || (value.includes(':') && IPV6.test(value));
}

/**
 * Validates the decoded secret (any JSON value) against contract 1.
 * Problems name the field and the rule, never the value. Throws SettingsValidationError listing all problems.
 */
export function validateSettings(input: unknown, pem: PemChecks, source?: string): MailboxSettings {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new SettingsValidationError(['(root): must be a JSON object with host, username and password (or oauth2)'], {
      source,
    });
  }
  const raw = input as Record<string, unknown>;
  const problems: string[] = [];

  for (const key of Object.keys(raw)) {
    if (!(KNOWN_FIELDS as readonly string[]).includes(key)) {
      const near = KNOWN_FIELDS.find((k) => k.toLowerCase() === key.toLowerCase() || editDistance(k, key) <= 2);
      problems.push(
        `${key}: unknown field${near ? ` (did you mean "${near}"?)` : ''}; allowed: ${KNOWN_FIELDS.join(', ')}`,
      );
    }
  }

  const str = (field: string, required: boolean): string | undefined => {
    const v = raw[field];
    if (v === undefined || v === null) {
      if (required) problems.push(`${field}: is required`);
      return undefined;
    }
    if (typeof v !== 'string') {
      problems.push(`${field}: must be a string`);
      return undefined;
    }
    if (v.trim() === '') {
      problems.push(`${field}: must not be empty`);
      return undefined;
    }
    return v;
  };

  const host = str('host', true);
  if (host !== undefined && !isHost(host)) {
    problems.push('host: must be a host name or IP address, without scheme, port or path');
  }
  const username = str('username', true);
  // Exactly one credential. Named, never shown.
  const hasPassword = raw.password !== undefined && raw.password !== null;
  const hasOAuth2 = raw.oauth2 !== undefined && raw.oauth2 !== null;
  if (hasPassword && hasOAuth2) problems.push('password, oauth2: set exactly one of the two, not both');
  if (!hasPassword && !hasOAuth2) problems.push('password: is required (or oauth2 instead, for OAuth2 sign-in)');
  const password = hasPassword ? str('password', false) : undefined;
  const oauth2 = hasOAuth2 ? validateOAuth2(raw.oauth2, problems, pem) : undefined;

  let security: Security = 'tls';
  if (raw.security !== undefined) {
    if (typeof raw.security === 'string' && (SECURITY_VALUES as readonly string[]).includes(raw.security)) {
      security = raw.security as Security;
    } else {
      problems.push(`security: must be one of ${SECURITY_VALUES.map((s) => `"${s}"`).join(', ')}`);
    }
  }

  let port = DEFAULT_PORTS[security];
  if (raw.port !== undefined) {
    if (typeof raw.port === 'number' && Number.isInteger(raw.port) && raw.port >= 1 && raw.port <= 65535) {
      port = raw.port;
    } else {
      problems.push('port: must be an integer between 1 and 65535');
    }
  }

  const folder = raw.folder === undefined ? 'INBOX' : str('folder', false);
  if (folder !== undefined && /[\r\n\0]/.test(folder)) {
    problems.push('folder: must not contain line breaks or NUL');
  }

  const caBundle = str('caBundle', false);
  if (caBundle !== undefined) {
    const pems = splitPemBundle(caBundle);
    if (pems.length === 0) {
      problems.push(
        'caBundle: must contain at least one PEM certificate (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----)',
      );
    }
    // Caught here, a damaged certificate gets a message that names it; in the TLS handshake it would be an OpenSSL riddle.
    pems.forEach((cert, i) => {
      if (!pem.isCertificate(cert)) {
        problems.push(
          `caBundle: certificate ${i + 1} is not a parseable X.509 certificate (broken base64 or line breaks? JSON needs "\\n" for each line break)`,
        );
      }
    });
  }
  const tlsServername = str('tlsServername', false);
  if (tlsServername !== undefined && !HOST.test(tlsServername)) {
    problems.push('tlsServername: must be a DNS host name');
  }
  if (security === 'none' && (caBundle !== undefined || tlsServername !== undefined)) {
    problems.push('security: is "none" (plaintext) but caBundle/tlsServername are set; use "tls" or "starttls"');
  }

  if (problems.length > 0) throw new SettingsValidationError(problems, { source });
  return {
    host: host!,
    port,
    security,
    username: username!,
    ...(oauth2 ? { oauth2 } : { password: password! }),
    folder: folder ?? 'INBOX',
    ...(caBundle !== undefined ? { caBundle } : {}),
    ...(tlsServername !== undefined ? { tlsServername } : {}),
  };
}

/** Parses the secret string (JSON) and validates it. */
export function parseSettings(secretString: string, pem: PemChecks, source?: string): MailboxSettings {
  let decoded: unknown;
  try {
    decoded = JSON.parse(secretString);
  } catch {
    // The parser's message can quote parts of the secret: never pass it on.
    throw new SettingsValidationError(['(root): is not valid JSON'], { source });
  }
  return validateSettings(decoded, pem, source);
}

/** The PEM certificates in a bundle, each as its own string. */
export function splitPemBundle(bundle: string): string[] {
  return bundle.match(PEM_CERT) ?? [];
}

/** Whether two settings log in with the same user and credential (did a re-read of the secret change them?). */
export function sameCredentials(a: MailboxSettings, b: MailboxSettings): boolean {
  return a.username === b.username && a.password === b.password && sameOAuth2(a.oauth2, b.oauth2);
}

/** A stable, secret-free fingerprint of the connection-relevant settings (for caches and logs). */
export function describeSettings(s: MailboxSettings): Record<string, unknown> {
  return {
    host: s.host,
    port: s.port,
    security: s.security,
    folder: s.folder,
    caBundle: s.caBundle ? `${splitPemBundle(s.caBundle).length} certificate(s)` : 'none',
    tlsServername: s.tlsServername ?? s.host,
    ...(s.oauth2 ? { oauth2: describeOAuth2(s.oauth2) } : {}),
  };
}
