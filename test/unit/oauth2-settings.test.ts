import { generateKeyPairSync } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { seal, unseal } from '../../functions/poller/adapters/oauth2-token-source.js';
import { validateMailboxSettings as validateSettings } from '../../functions/poller/adapters/pem-checks.js';
import type { RefreshTokenOAuth2 } from '../../functions/poller/core/oauth2-settings.js';
import {
  parseTokenError,
  parseTokenResponse,
  providerCodeOf,
  tokenRefusalHint,
  usableUntil,
} from '../../functions/poller/core/oauth2-token.js';
import { describeSettings, sameCredentials } from '../../functions/poller/core/settings.js';
import { SettingsValidationError } from '../../functions/poller/errors.js';
import { rsaCertificate, rsaKeyPair } from '../support/oauth2-server.js';

const rsa = rsaKeyPair();
const ec = generateKeyPairSync('ec', {
  namedCurve: 'P-256',
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  publicKeyEncoding: { type: 'spki', format: 'pem' },
});
let cert: { certificate: string; privateKey: string };
beforeAll(async () => {
  cert = await rsaCertificate();
});

const SECRET = 'Very~Secret-Value_123';
const base = { host: 'outlook.office365.com', username: 'support@contoso.com' };
const ms = { provider: 'microsoft', tenantId: 'contoso.onmicrosoft.com', clientId: 'abc', clientSecret: SECRET };

function problems(input: Record<string, unknown>): string[] {
  try {
    validateSettings(input);
  } catch (err) {
    expect(err).toBeInstanceOf(SettingsValidationError);
    const e = err as SettingsValidationError;
    expect(e.message).not.toContain(SECRET);
    for (const pem of [rsa.privateKey, ec.privateKey, cert.privateKey])
      expect(e.message).not.toContain(pem.split('\n')[1]);
    return [...e.problems];
  }
  throw new Error('expected a validation error');
}

describe('oauth2 settings', () => {
  it('accepts each provider and keeps no password', () => {
    const m = validateSettings({ ...base, oauth2: ms });
    expect(m.oauth2).toEqual(ms);
    expect(m.password).toBeUndefined();
    expect(
      validateSettings({ ...base, oauth2: { provider: 'microsoft', tenantId: 't', clientId: 'c', ...cert } }).oauth2,
    ).toMatchObject({ provider: 'microsoft', certificate: cert.certificate });
    expect(
      validateSettings({
        ...base,
        oauth2: { provider: 'google', clientEmail: 'sa@p.iam.gserviceaccount.com', privateKey: rsa.privateKey },
      }).oauth2?.provider,
    ).toBe('google');
    expect(
      validateSettings({
        ...base,
        oauth2: {
          provider: 'refresh-token',
          tokenUrl: 'https://idp.example.com/token',
          clientId: 'c',
          refreshToken: 'r',
          scope: 'imap',
        },
      }).oauth2,
    ).toMatchObject({ provider: 'refresh-token', scope: 'imap' });
  });

  it('wants exactly one of password and oauth2, naming both fields', () => {
    expect(problems({ ...base, password: SECRET, oauth2: ms })).toEqual([
      'password, oauth2: set exactly one of the two, not both',
    ]);
    expect(problems({ ...base })).toEqual(['password: is required (or oauth2 instead, for OAuth2 sign-in)']);
  });

  it('names the missing fields of each provider', () => {
    expect(problems({ ...base, oauth2: { provider: 'microsoft' } })).toEqual([
      'oauth2.tenantId: is required for provider "microsoft"',
      'oauth2.clientId: is required for provider "microsoft"',
      'oauth2.clientSecret: is required for provider "microsoft" (or a certificate credential: certificate + privateKey)',
    ]);
    expect(problems({ ...base, oauth2: { provider: 'google' } })).toEqual([
      'oauth2.clientEmail: is required for provider "google"',
      'oauth2.privateKey: is required for provider "google"',
    ]);
    expect(problems({ ...base, oauth2: { provider: 'refresh-token' } })).toEqual([
      'oauth2.tokenUrl: is required for provider "refresh-token"',
      'oauth2.clientId: is required for provider "refresh-token"',
      'oauth2.refreshToken: is required for provider "refresh-token"',
    ]);
    expect(problems({ ...base, oauth2: { provider: 'yahoo' } })).toEqual([
      'oauth2.provider: must be one of "microsoft", "google", "refresh-token"',
    ]);
    expect(problems({ ...base, oauth2: 'token' })[0]).toMatch(/^oauth2: must be an object/);
  });

  it('rejects unknown fields (per provider) with a suggestion', () => {
    expect(problems({ ...base, oauth2: { ...ms, clientSecrte: 'x' } })[0]).toMatch(
      /^oauth2.clientSecrte: unknown field for provider "microsoft" \(did you mean "clientSecret"\?\)/,
    );
    expect(problems({ ...base, oauth2: { ...ms, refreshToken: 'x' } })[0]).toMatch(
      /^oauth2.refreshToken: unknown field/,
    );
  });

  it('tokenUrl: https, or http only for loopback hosts', () => {
    for (const ok of [
      'https://login.microsoftonline.us/t/oauth2/v2.0/token',
      'http://127.0.0.1:8080/t',
      'http://localhost/t',
      'http://[::1]:9/t',
    ]) {
      expect(validateSettings({ ...base, oauth2: { ...ms, tokenUrl: ok } }).oauth2?.tokenUrl).toBe(ok);
    }
    expect(problems({ ...base, oauth2: { ...ms, tokenUrl: 'http://idp.example.com/t' } })).toEqual([
      'oauth2.tokenUrl: must use https:// (http:// only for loopback hosts: 127.0.0.1, localhost, ::1)',
    ]);
    expect(problems({ ...base, oauth2: { ...ms, tokenUrl: 'ftp://x/t' } })).toEqual([
      'oauth2.tokenUrl: must use https://',
    ]);
    expect(problems({ ...base, oauth2: { ...ms, tokenUrl: 'login.microsoftonline.com' } })[0]).toMatch(/absolute URL/);
    expect(problems({ ...base, oauth2: { ...ms, tokenUrl: 'https://u:p@idp.example.com/t' } })[0]).toMatch(
      /user name or password/,
    );
  });

  it('parses keys and certificates at validation', () => {
    expect(
      problems({ ...base, oauth2: { provider: 'google', clientEmail: 'sa@x', privateKey: 'not a key' } })[0],
    ).toMatch(/^oauth2.privateKey: is not a parseable PEM private key/);
    expect(
      problems({ ...base, oauth2: { provider: 'google', clientEmail: 'sa@x', privateKey: ec.privateKey } }),
    ).toEqual(['oauth2.privateKey: must be an RSA key (RS256)']);
    const cm = { provider: 'microsoft', tenantId: 't', clientId: 'c' };
    expect(problems({ ...base, oauth2: { ...cm, certificate: cert.certificate, privateKey: rsa.privateKey } })).toEqual(
      ['oauth2.privateKey: does not belong to oauth2.certificate'],
    );
    expect(problems({ ...base, oauth2: { ...cm, certificate: cert.certificate } })).toEqual([
      'oauth2.privateKey: is required together with oauth2.certificate',
    ]);
    expect(problems({ ...base, oauth2: { ...cm, ...cert, clientSecret: SECRET } })).toEqual([
      'oauth2.clientSecret: set either clientSecret or certificate + privateKey, not both',
    ]);
    expect(problems({ ...base, oauth2: { ...cm, certificate: 'x', privateKey: rsa.privateKey } })).toEqual([
      'oauth2.certificate: is not a parseable PEM X.509 certificate',
    ]);
  });

  it('refuses control characters in token-like fields (they would break the SASL payload)', () => {
    expect(problems({ ...base, oauth2: { ...ms, clientSecret: 'a\u0001b' } })).toEqual([
      'oauth2.clientSecret: must not contain control characters or line breaks',
    ]);
  });

  it('describes without secrets, and compares credentials', () => {
    const a = validateSettings({ ...base, oauth2: ms });
    expect(describeSettings(a).oauth2).toEqual({
      provider: 'microsoft',
      tokenHost: 'login.microsoftonline.com',
      credential: 'client secret',
    });
    expect(JSON.stringify(describeSettings(a))).not.toContain(SECRET);
    expect(sameCredentials(a, validateSettings({ ...base, oauth2: ms }))).toBe(true);
    expect(sameCredentials(a, validateSettings({ ...base, oauth2: { ...ms, clientSecret: 'new' } }))).toBe(false);
    expect(sameCredentials(a, validateSettings({ ...base, password: 'p' }))).toBe(false);
  });
});

describe('token responses', () => {
  const ok = { access_token: 'eyJ0eXAi.abc-_~+/=', token_type: 'Bearer', expires_in: 3599 };

  it('accepts a Bearer token with a bounded lifetime (a string number too) and a rotated refresh token', () => {
    expect(parseTokenResponse(ok)).toEqual({ accessToken: ok.access_token, expiresInS: 3599 });
    expect(parseTokenResponse({ ...ok, token_type: 'bearer', expires_in: '3600', refresh_token: 'r2' })).toEqual({
      accessToken: ok.access_token,
      expiresInS: 3600,
      refreshToken: 'r2',
    });
  });

  it.each([
    [[], 'not a JSON object'],
    [{ ...ok, access_token: undefined }, 'access_token missing'],
    [{ ...ok, access_token: 'a b' }, 'not a bearer token'],
    [{ ...ok, access_token: 'a\u0001b' }, 'not a bearer token'],
    [{ ...ok, access_token: 'a'.repeat(20_000) }, 'not a bearer token'],
    [{ ...ok, token_type: 'mac' }, 'token_type'],
    [{ ...ok, expires_in: 0 }, 'expires_in'],
    [{ ...ok, expires_in: -5 }, 'expires_in'],
    [{ ...ok, expires_in: 1.5 }, 'expires_in'],
    [{ ...ok, expires_in: 10 ** 9 }, 'expires_in'],
    [{ ...ok, expires_in: undefined }, 'expires_in'],
    [{ ...ok, refresh_token: 7 }, 'refresh_token'],
  ])('rejects %j', (body, problem) => {
    expect((parseTokenResponse(body) as { problem: string }).problem).toContain(problem);
  });

  it('reads the provider codes, never the description text', () => {
    const r = parseTokenError({
      error: 'invalid_client',
      error_description: 'AADSTS7000215: Invalid client secret provided. secret=hunter2',
      error_codes: [7000215],
    });
    expect(r).toEqual({ error: 'invalid_client', aadsts: [7000215] });
    expect(providerCodeOf(r)).toBe('invalid_client AADSTS7000215');
    expect(tokenRefusalHint('microsoft', r)).toMatch(/Secret ID/);
    expect(parseTokenError({ error: 'x'.repeat(100) })).toEqual({ aadsts: [] });
    expect(tokenRefusalHint('google', { error: 'unauthorized_client', aadsts: [] })).toMatch(/Domain-wide delegation/);
  });

  it('a token is used until 5 minutes before expiry, or half its lifetime when shorter', () => {
    expect(usableUntil(0, 3600)).toBe(55 * 60_000);
    expect(usableUntil(1000, 60)).toBe(31_000);
  });
});

describe('sealed refresh token', () => {
  const o: RefreshTokenOAuth2 = {
    provider: 'refresh-token',
    tokenUrl: 'https://idp/t',
    clientId: 'c',
    refreshToken: 'seed-1',
  };
  it('opens only with the refresh token of the secret it was sealed under', () => {
    const sealed = seal('rotated-2', o);
    expect(sealed).not.toContain('rotated');
    expect(unseal(sealed, o)).toBe('rotated-2');
    expect(unseal(sealed, { ...o, refreshToken: 'seed-new' })).toBeUndefined();
    expect(unseal(`${sealed}x`, o)).toBeUndefined();
    expect(unseal('garbage', o)).toBeUndefined();
  });
});
