/**
 * The rules of the OAuth2 token exchange, pure: what a usable token response is, what a refusal
 * means and how to fix it, and how long a cached token may be used. The HTTP and the signing live in
 * adapters/oauth2-token-source.ts.
 */
import type { OAuth2Provider } from './oauth2-settings.js';

/** Longest `expires_in` accepted (providers issue 1 hour; Microsoft 60-90 minutes). */
export const MAX_EXPIRES_IN_S = 24 * 3600;
/** Longest access or refresh token accepted (Microsoft's JWTs are 1.5-3 KB). */
export const MAX_TOKEN_CHARS = 16 * 1024;
/** A token is refreshed this long before it expires (at most half its lifetime, for short-lived tokens). */
export const EXPIRY_MARGIN_MS = 5 * 60_000;

/** RFC 6750 b64token: also guarantees no control character reaches the SASL payload. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

export interface TokenGrant {
  readonly accessToken: string;
  readonly expiresInS: number;
  /** A new refresh token (rotation), when the provider sent one. */
  readonly refreshToken?: string;
}

/** True when `s` contains a C0 control character or DEL (they would end a SASL field early). */
export function hasControlCharacter(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

/** Validates a 2xx token response; returns what is wrong (never a value) when it is unusable. */
export function parseTokenResponse(body: unknown): TokenGrant | { problem: string } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { problem: 'not a JSON object' };
  const b = body as Record<string, unknown>;
  const at = b.access_token;
  if (typeof at !== 'string' || at.length === 0) return { problem: 'access_token missing or not a string' };
  if (at.length > MAX_TOKEN_CHARS || !B64TOKEN.test(at)) {
    return { problem: 'access_token is not a bearer token (too long or invalid characters)' };
  }
  if (typeof b.token_type !== 'string' || b.token_type.toLowerCase() !== 'bearer') {
    return { problem: 'token_type is not "Bearer"' };
  }
  // Some endpoints (older Azure AD) send the number as a string.
  const ein = typeof b.expires_in === 'string' && /^\d{1,6}$/.test(b.expires_in) ? Number(b.expires_in) : b.expires_in;
  if (typeof ein !== 'number' || !Number.isInteger(ein) || ein <= 0 || ein > MAX_EXPIRES_IN_S) {
    return { problem: `expires_in missing or not a whole number of seconds between 1 and ${MAX_EXPIRES_IN_S}` };
  }
  const rt = b.refresh_token;
  if (
    rt !== undefined &&
    (typeof rt !== 'string' || rt.length === 0 || rt.length > MAX_TOKEN_CHARS || hasControlCharacter(rt))
  ) {
    return { problem: 'refresh_token is not a usable string' };
  }
  return { accessToken: at, expiresInS: ein, ...(typeof rt === 'string' ? { refreshToken: rt } : {}) };
}

export interface TokenRefusal {
  /** The OAuth2 `error` code (RFC 6749 5.2), when the body had one. */
  readonly error?: string;
  /** Microsoft's AADSTS numbers, from `error_codes` or the description. */
  readonly aadsts: readonly number[];
}

/** The provider's error codes from an error response body (never its free text: it is not ours to show). */
export function parseTokenError(body: unknown): TokenRefusal {
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const error = typeof b.error === 'string' && /^[\x20-\x7e]{1,64}$/.test(b.error) ? b.error : undefined;
  const codes = new Set<number>();
  if (Array.isArray(b.error_codes)) {
    for (const c of b.error_codes.slice(0, 5)) if (Number.isInteger(c) && c > 0 && c < 1e8) codes.add(c as number);
  }
  if (typeof b.error_description === 'string') {
    for (const m of b.error_description.slice(0, 2000).matchAll(/AADSTS(\d{1,8})/g)) codes.add(Number(m[1]));
  }
  return { ...(error ? { error } : {}), aadsts: [...codes].slice(0, 5) };
}

/** `invalid_client AADSTS7000215`: the provider's own code as shown in errors and logs. */
export function providerCodeOf(r: TokenRefusal): string {
  return [r.error ?? 'no error code', ...r.aadsts.map((c) => `AADSTS${c}`)].join(' ');
}

/** Errors that go away by themselves (RFC 6749 5.2 has two). */
export function isTransientRefusal(r: TokenRefusal): boolean {
  return r.error === 'temporarily_unavailable' || r.error === 'server_error';
}

const AADSTS_HINTS: Readonly<Record<number, string>> = {
  7000215:
    'the client secret is wrong: put the secret\'s Value (not its "Secret ID") from the app registration\'s "Certificates & secrets" into oauth2.clientSecret.',
  7000222:
    'the client secret has expired: create a new one in the app registration and put its Value into oauth2.clientSecret.',
  700016:
    'the app (oauth2.clientId) is not known in this tenant (oauth2.tenantId): check both ids, and that an admin of this tenant granted consent.',
  90002:
    "the tenant (oauth2.tenantId) does not exist: use the Directory (tenant) ID from the app registration's overview.",
  700027:
    'the client assertion was refused: upload oauth2.certificate to the app registration ("Certificates & secrets") and check that oauth2.privateKey belongs to it.',
  700024: 'the client assertion is outside its validity period: check the clock of the machine running the poller.',
  70011:
    'the scope is invalid: for app-only IMAP it must be https://outlook.office365.com/.default (remove oauth2.scope).',
  1002012:
    'the scope is invalid: for app-only IMAP it must be https://outlook.office365.com/.default (remove oauth2.scope).',
  7000112:
    'the application is disabled in this tenant: an admin must enable it (Enterprise applications > Properties).',
  65001: 'admin consent is missing: grant it for IMAP.AccessAsApp in the app registration ("API permissions").',
  500011:
    'Office 365 Exchange Online is not available in this tenant: check the tenant id and its Exchange Online licence.',
};

/** The fix for a refused token request, by provider and code. */
export function tokenRefusalHint(provider: OAuth2Provider, r: TokenRefusal): string {
  for (const code of r.aadsts) {
    const hint = AADSTS_HINTS[code];
    if (hint) return hint;
  }
  switch (provider) {
    case 'microsoft':
      if (r.error === 'invalid_client') {
        return 'check oauth2.clientId, oauth2.tenantId and the credential (client secret value or certificate) of the app registration (docs/oauth2.md).';
      }
      if (r.error === 'unauthorized_client') {
        return 'the app may not use the client credentials flow here: check the app registration (docs/oauth2.md, Microsoft 365).';
      }
      return 'check the app registration, its IMAP.AccessAsApp permission and admin consent (docs/oauth2.md, Microsoft 365).';
    case 'google':
      if (r.error === 'unauthorized_client') {
        return "domain-wide delegation is missing: in the Admin console (Security > API controls > Domain-wide delegation) add the service account's client ID with the scope https://mail.google.com/ (docs/oauth2.md, Google Workspace).";
      }
      if (r.error === 'invalid_grant') {
        return 'the assertion was refused: check oauth2.clientEmail, that the key (oauth2.privateKey) is still active on the service account, that "username" is a user of the Workspace domain, and the clock of this machine.';
      }
      if (r.error === 'invalid_client') {
        return 'the service account or its key is not known (deleted or disabled?): create a new key and run `imap-event-source secret template --google-key FILE`.';
      }
      return 'check the service account, its key and its domain-wide delegation (docs/oauth2.md, Google Workspace).';
    case 'refresh-token':
      if (r.error === 'invalid_grant') {
        return 'the refresh token is expired, revoked or was already used: obtain a new one (sign in once with the app) and put it into oauth2.refreshToken.';
      }
      if (r.error === 'invalid_client' || r.error === 'unauthorized_client') {
        return 'check oauth2.clientId and oauth2.clientSecret against the OAuth2 client registered at the provider.';
      }
      return 'check oauth2.tokenUrl, oauth2.clientId, oauth2.clientSecret and oauth2.refreshToken.';
  }
}

/** The fix when the IMAP server refuses a token the provider issued: the mailbox is not granted to the app. */
export function mailboxGrantHint(provider: OAuth2Provider): string {
  switch (provider) {
    case 'microsoft':
      return 'grant the app access to this mailbox in Exchange Online: New-ServicePrincipal -AppId <clientId> -ObjectId <enterprise app object id>, then Add-MailboxPermission -Identity <mailbox> -User <service principal id> -AccessRights FullAccess (docs/oauth2.md); changes can take up to an hour to apply.';
    case 'google':
      return 'check the domain-wide delegation of the service account (scope https://mail.google.com/), that IMAP is enabled for this user in the Admin console, and that "username" is the mailbox address (docs/oauth2.md).';
    case 'refresh-token':
      return 'the token was issued, but the server does not accept it for this mailbox: check that the refresh token was obtained by this mailbox\'s user with the IMAP scope, and "username".';
  }
}

/** Until when a token issued at `issuedAt` (epoch ms) with `expiresInS` may be used from the cache. */
export function usableUntil(issuedAt: number, expiresInS: number): number {
  const lifetime = expiresInS * 1000;
  return issuedAt + lifetime - Math.min(EXPIRY_MARGIN_MS, lifetime / 2);
}
