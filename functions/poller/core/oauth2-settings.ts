/**
 * Contract 1, "OAuth2 instead of a password": the `oauth2` object of the mailbox secret, validated.
 * Problems name the field and the rule, never the value. Keys are checked here (PEM parsing through PemChecks), so a damaged PEM is
 * reported with its field name instead of failing later inside a signature.
 */
import { editDistance } from './edit-distance.js';
import { hasControlCharacter } from './oauth2-token.js';

export type OAuth2Provider = 'microsoft' | 'google' | 'refresh-token';
export const OAUTH2_PROVIDERS: readonly OAuth2Provider[] = ['microsoft', 'google', 'refresh-token'];

interface OAuth2Common {
  /** Overrides the provider's token endpoint (sovereign clouds, tests). https only, except loopback hosts. */
  readonly tokenUrl?: string;
  /** Overrides the provider's default scope. */
  readonly scope?: string;
}

/** App-only access to Exchange Online (client credentials, `IMAP.AccessAsApp`). */
export interface MicrosoftOAuth2 extends OAuth2Common {
  readonly provider: 'microsoft';
  readonly tenantId: string;
  readonly clientId: string;
  /** Either a client secret ... */
  readonly clientSecret?: string;
  /** ... or a certificate credential: the certificate uploaded to the app registration (PEM) and its RSA private key (PEM). */
  readonly certificate?: string;
  readonly privateKey?: string;
}

/** A Google service account with domain-wide delegation (JWT bearer grant, `sub` = the mailbox). */
export interface GoogleOAuth2 extends OAuth2Common {
  readonly provider: 'google';
  readonly clientEmail: string;
  /** The service account's RSA private key (PEM, `private_key` of its JSON key file). */
  readonly privateKey: string;
}

/** Delegated access to any OAuth2 provider with a refresh token (the provider may rotate it). */
export interface RefreshTokenOAuth2 extends OAuth2Common {
  readonly provider: 'refresh-token';
  readonly tokenUrl: string;
  readonly clientId: string;
  readonly refreshToken: string;
  readonly clientSecret?: string;
}

export type OAuth2Settings = MicrosoftOAuth2 | GoogleOAuth2 | RefreshTokenOAuth2;

const COMMON = ['provider', 'tokenUrl', 'scope'] as const;
const FIELDS: Readonly<Record<OAuth2Provider, readonly string[]>> = {
  microsoft: [...COMMON, 'tenantId', 'clientId', 'clientSecret', 'certificate', 'privateKey'],
  google: [...COMMON, 'clientEmail', 'privateKey'],
  'refresh-token': [...COMMON, 'clientId', 'refreshToken', 'clientSecret'],
};
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);
const TENANT = /^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$/;

/**
 * What settings validation needs to know about PEM text (keys and certificates). Parsing them needs a crypto
 * library, which the pure core does not import: adapters/pem-checks.ts implements this with node:crypto.
 */
export interface PemChecks {
  /** Whether the text is a parseable PEM X.509 certificate. */
  isCertificate(pem: string): boolean;
  /** The key type of a PEM private key ('rsa', 'ec', ...); undefined when it does not parse. */
  privateKeyType(pem: string): string | undefined;
  /** Whether a parseable private key belongs to a parseable certificate (same public key). */
  keyMatchesCertificate(certificate: string, privateKey: string): boolean;
}

/**
 * Validates `raw` (the value of the secret's `oauth2` field). Pushes problems (as `oauth2.field: rule`)
 * and returns the settings when there were none.
 */
export function validateOAuth2(raw: unknown, problems: string[], pem: PemChecks): OAuth2Settings | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    problems.push(`oauth2: must be an object with "provider" (${OAUTH2_PROVIDERS.join(', ')}) and its fields`);
    return undefined;
  }
  const o = raw as Record<string, unknown>;
  const before = problems.length;
  const provider = o.provider;
  if (typeof provider !== 'string' || !(OAUTH2_PROVIDERS as readonly string[]).includes(provider)) {
    problems.push(`oauth2.provider: must be one of ${OAUTH2_PROVIDERS.map((p) => `"${p}"`).join(', ')}`);
    return undefined;
  }
  const p = provider as OAuth2Provider;
  const allowed = FIELDS[p];
  for (const key of Object.keys(o)) {
    if (!allowed.includes(key)) {
      const near = allowed.find((k) => k.toLowerCase() === key.toLowerCase() || editDistance(k, key) <= 2);
      problems.push(
        `oauth2.${key}: unknown field for provider "${p}"${near ? ` (did you mean "${near}"?)` : ''}; allowed: ${allowed.join(', ')}`,
      );
    }
  }
  const str = (field: string, required: boolean): string | undefined => {
    const v = o[field];
    if (v === undefined || v === null) {
      if (required) problems.push(`oauth2.${field}: is required for provider "${p}"`);
      return undefined;
    }
    if (typeof v !== 'string') {
      problems.push(`oauth2.${field}: must be a string`);
      return undefined;
    }
    if (v.trim() === '') {
      problems.push(`oauth2.${field}: must not be empty`);
      return undefined;
    }
    if (hasControlCharacter(v) && field !== 'certificate' && field !== 'privateKey') {
      problems.push(`oauth2.${field}: must not contain control characters or line breaks`);
      return undefined;
    }
    return v;
  };

  const tokenUrl = str('tokenUrl', p === 'refresh-token');
  if (tokenUrl !== undefined) checkTokenUrl(tokenUrl, problems);
  const scope = str('scope', false);
  const common = { ...(tokenUrl !== undefined ? { tokenUrl } : {}), ...(scope !== undefined ? { scope } : {}) };

  let result: OAuth2Settings | undefined;
  switch (p) {
    case 'microsoft': {
      const tenantId = str('tenantId', true);
      if (tenantId !== undefined && !TENANT.test(tenantId)) {
        problems.push(
          'oauth2.tenantId: must be the tenant id (a GUID) or a domain name such as contoso.onmicrosoft.com',
        );
      }
      const clientId = str('clientId', true);
      const clientSecret = str('clientSecret', false);
      const certificate = str('certificate', false);
      const privateKey = str('privateKey', false);
      const hasCert = certificate !== undefined || privateKey !== undefined;
      if (clientSecret !== undefined && hasCert) {
        problems.push('oauth2.clientSecret: set either clientSecret or certificate + privateKey, not both');
      } else if (clientSecret === undefined && !hasCert && o.clientSecret === undefined) {
        problems.push(
          'oauth2.clientSecret: is required for provider "microsoft" (or a certificate credential: certificate + privateKey)',
        );
      } else if (hasCert) {
        if (certificate === undefined) problems.push('oauth2.certificate: is required together with oauth2.privateKey');
        if (privateKey === undefined) problems.push('oauth2.privateKey: is required together with oauth2.certificate');
        if (certificate !== undefined && privateKey !== undefined)
          checkCertificatePair(certificate, privateKey, problems, pem);
      }
      result = {
        provider: 'microsoft',
        tenantId: tenantId!,
        clientId: clientId!,
        ...(clientSecret !== undefined ? { clientSecret } : {}),
        ...(certificate !== undefined ? { certificate } : {}),
        ...(privateKey !== undefined ? { privateKey } : {}),
        ...common,
      };
      break;
    }
    case 'google': {
      const clientEmail = str('clientEmail', true);
      if (clientEmail !== undefined && !/^[^@\s]+@[^@\s]+$/.test(clientEmail)) {
        problems.push('oauth2.clientEmail: must be the service account e-mail address (client_email of its key file)');
      }
      const privateKey = str('privateKey', true);
      if (privateKey !== undefined) checkRsaPrivateKey(privateKey, problems, pem);
      result = { provider: 'google', clientEmail: clientEmail!, privateKey: privateKey!, ...common };
      break;
    }
    case 'refresh-token': {
      const clientId = str('clientId', true);
      const refreshToken = str('refreshToken', true);
      const clientSecret = str('clientSecret', false);
      result = {
        provider: 'refresh-token',
        tokenUrl: tokenUrl!,
        clientId: clientId!,
        refreshToken: refreshToken!,
        ...(clientSecret !== undefined ? { clientSecret } : {}),
        ...(scope !== undefined ? { scope } : {}),
      };
      break;
    }
  }
  return problems.length === before ? result : undefined;
}

function checkTokenUrl(value: string, problems: string[]): void {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    problems.push('oauth2.tokenUrl: must be an absolute URL (https://...)');
    return;
  }
  if (url.username || url.password) {
    problems.push('oauth2.tokenUrl: must not contain a user name or password');
  } else if (url.protocol === 'http:' && !LOOPBACK.has(url.hostname)) {
    problems.push('oauth2.tokenUrl: must use https:// (http:// only for loopback hosts: 127.0.0.1, localhost, ::1)');
  } else if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    problems.push('oauth2.tokenUrl: must use https://');
  }
}

function checkRsaPrivateKey(key: string, problems: string[], pem: PemChecks): void {
  const type = pem.privateKeyType(key);
  if (type === undefined) {
    problems.push(
      'oauth2.privateKey: is not a parseable PEM private key (-----BEGIN PRIVATE KEY----- ...; JSON needs "\\n" for each line break)',
    );
  } else if (type !== 'rsa') {
    problems.push('oauth2.privateKey: must be an RSA key (RS256)');
  }
}

function checkCertificatePair(certificate: string, privateKey: string, problems: string[], pem: PemChecks): void {
  if (!pem.isCertificate(certificate)) {
    problems.push('oauth2.certificate: is not a parseable PEM X.509 certificate');
    return;
  }
  const before = problems.length;
  checkRsaPrivateKey(privateKey, problems, pem);
  if (problems.length > before) return;
  if (!pem.keyMatchesCertificate(certificate, privateKey)) {
    problems.push('oauth2.privateKey: does not belong to oauth2.certificate');
  }
}

/** Whether two credentials are the same (after a re-read of the secret: did an admin change anything?). */
export function sameOAuth2(a: OAuth2Settings | undefined, b: OAuth2Settings | undefined): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/** The default token endpoint of a provider. */
export function defaultTokenUrl(o: OAuth2Settings): string {
  switch (o.provider) {
    case 'microsoft':
      return `https://login.microsoftonline.com/${encodeURIComponent(o.tenantId)}/oauth2/v2.0/token`;
    case 'google':
      return 'https://oauth2.googleapis.com/token';
    case 'refresh-token':
      return o.tokenUrl;
  }
}

/** The default scope of a provider (refresh-token: none, the grant's own scope applies). */
export function defaultScope(o: OAuth2Settings): string | undefined {
  switch (o.provider) {
    case 'microsoft':
      return 'https://outlook.office365.com/.default';
    case 'google':
      return 'https://mail.google.com/';
    case 'refresh-token':
      return undefined;
  }
}

export const tokenUrlOf = (o: OAuth2Settings): string => o.tokenUrl ?? defaultTokenUrl(o);
export const scopeOf = (o: OAuth2Settings): string | undefined => o.scope ?? defaultScope(o);

/** Secret-free description for logs and `check`. */
export function describeOAuth2(o: OAuth2Settings): Record<string, string> {
  const credential =
    o.provider === 'microsoft'
      ? o.clientSecret !== undefined
        ? 'client secret'
        : 'certificate'
      : o.provider === 'google'
        ? 'service account key'
        : 'refresh token';
  return { provider: o.provider, tokenHost: new URL(tokenUrlOf(o)).host, credential };
}
