/**
 * Access tokens for OAuth2 IMAP logins, with fetch (Node 20+) and node:crypto only:
 * - microsoft: client credentials, app-only, with a client secret or a certificate (client assertion);
 * - google: JWT bearer grant of a service account with domain-wide delegation (`sub` = the mailbox);
 * - refresh-token: delegated access; a rotated refresh token is sealed and kept in a RefreshTokenStore.
 * Tokens are cached per container until shortly before they expire. Nothing here logs or throws a
 * credential or a token; error messages carry the provider's own codes and the fix.
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { type OAuth2Settings, type RefreshTokenOAuth2, scopeOf, tokenUrlOf } from '../core/oauth2-settings.js';
import {
  isTransientRefusal,
  parseTokenError,
  parseTokenResponse,
  providerCodeOf,
  type TokenGrant,
  tokenRefusalHint,
  usableUntil,
} from '../core/oauth2-token.js';
import type { MailboxSettings } from '../core/settings.js';
import { ConfigurationError, OAuth2EndpointError, OAuth2TokenError } from '../errors.js';
import type { AccessToken, AccessTokenSource, CallOptions, Log, RefreshTokenStore } from '../ports.js';
import { googleAssertion, microsoftClientAssertion } from './jwt.js';

export interface OAuth2TokenSourceOptions {
  /** Per token request (connect, TLS, answer). @default 10_000 */
  readonly timeoutMs?: number;
  /** Where a rotated refresh token is kept between containers. Without one it lives in this process only. */
  readonly refreshTokens?: RefreshTokenStore;
  readonly log?: Log;
  /** Called when the provider rotated the refresh token (after it was stored). */
  readonly onRefreshTokenRotated?: (stored: boolean) => void;
  readonly now?: () => number;
  readonly fetch?: typeof fetch;
}

/** Largest token endpoint answer read (real ones are 2-5 KB). */
export const MAX_TOKEN_RESPONSE_BYTES = 64 * 1024;
/** Tokens kept per container (fleet mode: one per mailbox with its own credential). */
const MAX_CACHED = 256;

const PROVIDER_NAMES: Record<OAuth2Settings['provider'], string> = {
  microsoft: 'Microsoft',
  google: 'Google',
  'refresh-token': 'OAuth2',
};

interface Cached {
  readonly token: string;
  readonly expiresAt: number;
  readonly usableUntil: number;
  readonly endpointHost: string;
}

export class OAuth2TokenSource implements AccessTokenSource {
  private readonly cache = new Map<string, Cached>();
  private readonly inflight = new Map<string, Promise<AccessToken>>();
  /** A rotated refresh token the store could not take (or no store), with the store version it follows. */
  private readonly rotated = new Map<string, { token: string; baseVersion: number }>();

  constructor(private readonly options: OAuth2TokenSourceOptions = {}) {}

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  async get(settings: MailboxSettings, options: { fresh?: boolean } & CallOptions = {}): Promise<AccessToken> {
    const o = settings.oauth2;
    if (!o) throw new ConfigurationError('An access token was requested for settings without oauth2.');
    const key = cacheKey(settings.username, o);
    const hit = this.cache.get(key);
    if (options.fresh) this.cache.delete(key);
    else if (hit && this.now() < hit.usableUntil) {
      return { token: hit.token, expiresAt: new Date(hit.expiresAt), endpointHost: hit.endpointHost, cached: true };
    }
    // One request for concurrent callers of the same credential.
    let pending = this.inflight.get(key);
    if (!pending) {
      pending = this.fetchToken(settings.username, o, key, options.signal).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    return pending;
  }

  private async fetchToken(
    username: string,
    o: OAuth2Settings,
    key: string,
    signal?: AbortSignal,
  ): Promise<AccessToken> {
    const url = tokenUrlOf(o);
    const endpointHost = new URL(url).host;
    const issuedAt = this.now();
    const grant =
      o.provider === 'refresh-token'
        ? await this.refresh(o, url, signal)
        : await this.request(o, url, this.grantParams(username, o, url, issuedAt), signal);
    const cached: Cached = {
      token: grant.accessToken,
      expiresAt: issuedAt + grant.expiresInS * 1000,
      usableUntil: usableUntil(issuedAt, grant.expiresInS),
      endpointHost,
    };
    if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, cached);
    this.options.log?.debug('OAuth2 access token obtained', {
      provider: o.provider,
      tokenHost: endpointHost,
      expiresInS: grant.expiresInS,
    });
    return { token: cached.token, expiresAt: new Date(cached.expiresAt), endpointHost, cached: false };
  }

  private grantParams(username: string, o: OAuth2Settings, url: string, nowMs: number): Record<string, string> {
    const nowS = Math.floor(nowMs / 1000);
    const scope = scopeOf(o);
    switch (o.provider) {
      case 'microsoft':
        return {
          grant_type: 'client_credentials',
          client_id: o.clientId,
          scope: scope!,
          ...(o.clientSecret !== undefined
            ? { client_secret: o.clientSecret }
            : {
                client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
                client_assertion: microsoftClientAssertion({
                  clientId: o.clientId,
                  certificate: o.certificate!,
                  privateKey: o.privateKey!,
                  audience: url,
                  nowS,
                }),
              }),
        };
      case 'google':
        return {
          grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
          assertion: googleAssertion({
            clientEmail: o.clientEmail,
            privateKey: o.privateKey,
            subject: username,
            scope: scope!,
            audience: url,
            nowS,
          }),
        };
      case 'refresh-token':
        throw new Error('unreachable: refresh-token uses refresh()');
    }
  }

  /** The refresh-token flow: the newest refresh token (stored, or the secret's), then rotation kept. */
  private async refresh(o: RefreshTokenOAuth2, url: string, signal?: AbortSignal): Promise<TokenGrant> {
    const store = this.options.refreshTokens;
    const credentialKey = cacheKey('', o);
    const stored = store ? await store.load() : undefined;
    const storedVersion = stored?.version ?? 0;
    // Ours from an earlier run whose store write failed: still the newest while the store has not moved since.
    const kept = this.rotated.get(credentialKey);
    const current =
      kept && kept.baseVersion === storedVersion
        ? kept.token
        : ((stored ? unseal(stored.sealed, o) : undefined) ?? o.refreshToken);
    const grant = await this.request(
      o,
      url,
      {
        grant_type: 'refresh_token',
        refresh_token: current,
        client_id: o.clientId,
        ...(o.clientSecret !== undefined ? { client_secret: o.clientSecret } : {}),
        ...(o.scope !== undefined ? { scope: o.scope } : {}),
      },
      signal,
    );
    if (grant.refreshToken !== undefined && grant.refreshToken !== current) {
      // Rotated: the old one may be dead already. Keep the new one before anything else can fail.
      this.rotated.set(credentialKey, { token: grant.refreshToken, baseVersion: storedVersion });
      let saved = false;
      if (store) {
        try {
          saved = await store.save(seal(grant.refreshToken, o), storedVersion);
          if (saved) this.rotated.delete(credentialKey);
          else this.options.log?.warn('Another run stored a refresh token at the same time; keeping ours in memory');
        } catch (err) {
          const errorCode = (err as { code?: string }).code ?? (err as Error)?.name;
          this.options.log?.error('Storing the rotated refresh token failed; kept in memory for the next run', {
            errorCode,
          });
        }
      }
      this.options.onRefreshTokenRotated?.(saved);
    }
    return grant;
  }

  /** One POST to the token endpoint: bounded in time and size, every field of the answer checked. */
  private async request(
    o: OAuth2Settings,
    url: string,
    params: Record<string, string>,
    runSignal?: AbortSignal,
  ): Promise<TokenGrant> {
    const host = new URL(url).host;
    const endpoint = `the ${PROVIDER_NAMES[o.provider]} token endpoint ${host}`;
    const timeoutMs = this.options.timeoutMs ?? 10_000;
    // Our own bound, and the run's (its deadline): whichever ends first.
    // (AbortSignal.any: Node 20.3+; older 20.x keep only our own bound.)
    const own = AbortSignal.timeout(timeoutMs);
    const signal = runSignal && typeof AbortSignal.any === 'function' ? AbortSignal.any([own, runSignal]) : own;
    let status: number;
    let body: unknown;
    try {
      const response = await (this.options.fetch ?? fetch)(url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams(params).toString(),
        // A redirect would carry the credential to another place: never follow one.
        redirect: 'error',
        signal,
      });
      status = response.status;
      body = await readJson(response, MAX_TOKEN_RESPONSE_BYTES, signal);
    } catch (err) {
      if (err instanceof OAuth2EndpointError) throw err;
      const code = networkCode(err);
      throw new OAuth2EndpointError(`Cannot get an access token from ${endpoint}: ${code}.`, {
        hint:
          o.tokenUrl !== undefined
            ? 'check oauth2.tokenUrl and the network path to it (for a Lambda in a VPC: a NAT gateway or proxy to the internet); the next poll retries.'
            : 'check the network path to the token endpoint (for a Lambda in a VPC: a NAT gateway to the internet); the next poll retries.',
      });
    }
    if (status >= 200 && status < 300) {
      const grant = parseTokenResponse(body);
      if ('problem' in grant) {
        throw new OAuth2EndpointError(`${capitalize(endpoint)} sent an unusable token response: ${grant.problem}.`, {
          retryable: false,
          hint: 'check that oauth2.tokenUrl is the OAuth2 token endpoint of the provider (it must answer with a Bearer access_token and expires_in).',
        });
      }
      return grant;
    }
    const refusal = parseTokenError(body);
    const providerCode = providerCodeOf(refusal);
    if (status >= 500 || status === 429 || isTransientRefusal(refusal)) {
      throw new OAuth2EndpointError(`${capitalize(endpoint)} is unavailable (HTTP ${status}, ${providerCode}).`, {
        hint: 'nothing to do if it passes: the next poll retries. If it repeats, check the status page of the provider.',
      });
    }
    if (refusal.error === undefined && refusal.aadsts.length === 0) {
      throw new OAuth2TokenError(`${capitalize(endpoint)} answered HTTP ${status} without an OAuth2 error code.`, {
        hint: "check oauth2.tokenUrl (and oauth2.tenantId for Microsoft): it must be the provider's OAuth2 token endpoint.",
      });
    }
    throw new OAuth2TokenError(`${capitalize(endpoint)} refused the credential: ${providerCode} (HTTP ${status}).`, {
      providerCode,
      hint: tokenRefusalHint(o.provider, refusal),
    });
  }
}

/** Reads at most `maxBytes` of the body and parses it as JSON; undefined when it is not JSON. */
async function readJson(response: Response, maxBytes: number, signal: AbortSignal): Promise<unknown> {
  if (!response.body) return undefined;
  const reader = response.body.getReader();
  const abort = () => void reader.cancel().catch(() => {});
  signal.addEventListener('abort', abort, { once: true });
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (signal.aborted) throw Object.assign(new Error('token response timed out'), { name: 'TimeoutError' });
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) {
        abort();
        throw new OAuth2EndpointError(
          `The token endpoint ${new URL(response.url || 'http://unknown').host} sent more than ${maxBytes / 1024} KiB.`,
          { retryable: false, hint: 'check that oauth2.tokenUrl is the OAuth2 token endpoint of the provider.' },
        );
      }
      chunks.push(value);
    }
  } finally {
    signal.removeEventListener('abort', abort);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    return undefined;
  }
}

/** A secret-free reason for a failed fetch: undici puts the socket's code into `cause`. */
function networkCode(err: unknown): string {
  const e = err as { name?: string; code?: string; cause?: { code?: string; name?: string } };
  if (e?.name === 'TimeoutError' || e?.cause?.name === 'TimeoutError') return 'no answer in time (timeout)';
  const code = e?.cause?.code ?? e?.code;
  if (code) return `the connection failed (${code})`;
  // undici's own refusals (a redirect, a blocked port) are short fixed texts: safe to show.
  const reason = (e?.cause as { message?: unknown } | undefined)?.message;
  const detail = typeof reason === 'string' && /^[\w .,:'-]{1,80}$/.test(reason) ? `: ${reason}` : '';
  return `the request failed (${e?.name ?? 'Error'}${detail})`;
}

const capitalize = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** Cache key: the mailbox and every credential field, hashed (a changed secret gets a new token). */
function cacheKey(username: string, o: OAuth2Settings): string {
  return createHash('sha256')
    .update(JSON.stringify([username, o]))
    .digest('base64url');
}

// --- Sealing the rotated refresh token -------------------------------------------------------------
// AES-256-GCM with a key derived (HKDF-SHA256) from the refresh token in the secret. The stored value
// is useless without the secret, and when an admin puts a new refresh token into the secret, the old
// stored one no longer decrypts and the secret's token applies: the admin's change always wins.

function sealKey(o: RefreshTokenOAuth2): Buffer {
  return Buffer.from(hkdfSync('sha256', o.refreshToken, o.clientId, 'imap-event-source refresh-token v1', 32));
}

export function seal(refreshToken: string, o: RefreshTokenOAuth2): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', sealKey(o), iv);
  cipher.setAAD(Buffer.from(o.tokenUrl));
  const data = Buffer.concat([cipher.update(refreshToken, 'utf8'), cipher.final()]);
  return ['v1', iv, data, cipher.getAuthTag()]
    .map((p) => (typeof p === 'string' ? p : p.toString('base64url')))
    .join('.');
}

/** The refresh token, or undefined when `sealed` was made from another secret (or is damaged). */
export function unseal(sealed: string, o: RefreshTokenOAuth2): string | undefined {
  const [version, iv, data, tag] = sealed.split('.');
  if (version !== 'v1' || !iv || !data || !tag) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', sealKey(o), Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(o.tokenUrl));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(data, 'base64url')), decipher.final()]).toString('utf8');
  } catch {
    return undefined;
  }
}
