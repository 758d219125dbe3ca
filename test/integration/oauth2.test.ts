/**
 * OAuth2 sign-in end to end: the real Lambda handler against Dovecot 2.3 with the oauth2 passdb (token
 * introspection against the fake authorization server this file starts) and moto_server. Two OAuth2 Dovecots:
 * one offering only XOAUTH2 (like Exchange Online), one offering OAUTHBEARER too (like Gmail); the shared
 * Dovecot of the global setup offers neither. Each flow, token caching across warm invocations, expiry, and
 * every failure: the error's code, retryability and fix, no credential or token in any output, checkpoint untouched.
 */
import { readFile } from 'node:fs/promises';
import { DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImapFlowMailboxGateway } from '../../functions/poller/adapters/imapflow-mailbox.js';
import { OAuth2TokenSource } from '../../functions/poller/adapters/oauth2-token-source.js';
import { validateMailboxSettings as validateSettings } from '../../functions/poller/adapters/pem-checks.js';
import { refreshTokenKey } from '../../functions/poller/contract/keys.js';
import type { RefreshTokenStore } from '../../functions/poller/ports.js';
import { type DovecotServer, freePort } from '../support/dovecot.js';
import { dovecot, startDovecot, tlsMaterial } from '../support/env.js';
import { FakeOAuth2Server, GOOGLE_SCOPE, rsaCertificate, rsaKeyPair } from '../support/oauth2-server.js';
import { World } from './world.js';

const TENANT = 'contoso-tenant';
const MS_CLIENT = '11111111-2222-3333-4444-555555555555';
const MS_SECRET = 'Ms~Client-Secret-Value_0123456789';
const MS_CERT_CLIENT = '66666666-2222-3333-4444-555555555555';
const SA_EMAIL = 'poller@project.iam.gserviceaccount.com';
const RT_CLIENT = 'delegated-client';
const RT_SECRET = 'rt-client-secret-0123';

/** Users known to the OAuth2 Dovecots (an oauth2 passdb per user), by role. */
const USERS = {
  ms: ['ms-1@contoso.test', 'ms-2@contoso.test', 'ms-3@contoso.test', 'ms-4@contoso.test', 'ms-5@contoso.test'],
  msCert: ['ms-cert@contoso.test'],
  msDenied: ['ms-denied@contoso.test'],
  google: ['g-1@example.test', 'g-2@example.test'],
  googleDenied: ['g-denied@example.test'],
  rt: ['rt-1@example.test', 'rt-2@example.test'],
} as const;
const ALL_USERS = Object.values(USERS).flat();

let fake: FakeOAuth2Server;
let exchangeLike: DovecotServer;
let gmailLike: DovecotServer;
let googleKey: { privateKey: string; publicKey: string };
let msCert: { certificate: string; privateKey: string };

beforeAll(async () => {
  fake = await FakeOAuth2Server.start();
  const oauth2 = { introspectionBaseUrl: fake.introspectionBaseUrl, users: ALL_USERS };
  [exchangeLike, gmailLike] = await Promise.all([
    startDovecot({ oauth2: { ...oauth2, mechanisms: ['xoauth2'] } }),
    startDovecot({ oauth2: { ...oauth2, mechanisms: ['xoauth2', 'oauthbearer'] } }),
  ]);
  googleKey = rsaKeyPair();
  msCert = await rsaCertificate();
  fake.microsoftApps.push(
    {
      tenantId: TENANT,
      clientId: MS_CLIENT,
      clientSecret: MS_SECRET,
      mailboxes: new Set([...USERS.ms]),
    },
    { tenantId: TENANT, clientId: MS_CERT_CLIENT, certificate: msCert.certificate, mailboxes: new Set(USERS.msCert) },
  );
  fake.googleAccounts.push({
    clientEmail: SA_EMAIL,
    publicKey: googleKey.publicKey,
    delegatedScopes: new Set([GOOGLE_SCOPE]),
    domainUsers: new Set([...USERS.google, ...USERS.googleDenied]),
  });
  fake.imapDisabled.add(USERS.googleDenied[0]);
  fake.refreshClients.push(
    { clientId: RT_CLIENT, clientSecret: RT_SECRET, user: USERS.rt[0] },
    { clientId: `${RT_CLIENT}-2`, clientSecret: RT_SECRET, user: USERS.rt[1] },
  );
});

afterAll(async () => {
  await Promise.allSettled([exchangeLike?.stop(), gmailLike?.stop(), fake?.stop()]);
});

function microsoft(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    provider: 'microsoft',
    tenantId: TENANT,
    clientId: MS_CLIENT,
    clientSecret: MS_SECRET,
    tokenUrl: fake.microsoftTokenUrl(TENANT),
    ...overrides,
  };
}

function google(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    provider: 'google',
    clientEmail: SA_EMAIL,
    privateKey: googleKey.privateKey,
    tokenUrl: fake.googleTokenUrl,
    ...overrides,
  };
}

async function oauth2World(server: DovecotServer, username: string, oauth2: Record<string, unknown>): Promise<World> {
  const user = await server.createUser({ username }).catch(async () => ({ username, password: 'unused' }));
  return World.create({ server, user, secret: { password: undefined, oauth2 } });
}

/** The SASL mechanism of the user's last login, from Dovecot's log. */
async function lastLoginMethod(server: DovecotServer, username: string): Promise<string | undefined> {
  const log = await readFile(server.info.logPath, 'utf8');
  const methods = [
    ...log.matchAll(new RegExp(`Login: user=<${username.replace(/[.+]/g, '\\$&')}>, method=([A-Z0-9-]+)`, 'g')),
  ];
  return methods.at(-1)?.[1];
}

/** OAuth2 logins of `username` so far, from Dovecot's log (the test's own appends log in with PLAIN as master user). */
async function loginCount(server: DovecotServer, username: string): Promise<number> {
  const log = await readFile(server.info.logPath, 'utf8');
  return log.split('\n').filter((l) => /, method=(XOAUTH2|OAUTHBEARER),/.test(l) && l.includes(`user=<${username}>`))
    .length;
}

const CREDENTIALS = [MS_SECRET, RT_SECRET, 'BEGIN PRIVATE KEY', 'at-', 'rt-'];

/** Asserts a failed run: the code, retryability, fix; no secret in the error or the logs; checkpoint unchanged. */
async function expectFailure(
  world: World,
  expected: { code: string; retryable: boolean; text: RegExp; hint: RegExp },
): Promise<void> {
  const before = await world.checkpoint();
  let error: Error | undefined;
  const lines = await world.captureLogs(async () => {
    error = await world.invokeFailing();
  });
  expect(error!.message).toMatch(new RegExp(`^${expected.code}: `));
  expect(error!.message).toMatch(expected.text);
  const failed = lines.find((l) => l.message === 'Poll failed');
  expect(failed).toMatchObject({ errorCode: expected.code, retryable: expected.retryable });
  expect(String(failed!.error)).toMatch(expected.hint);
  const output = `${error!.message}\n${error!.stack}\n${JSON.stringify(lines)}`;
  for (const secret of CREDENTIALS) expect(output).not.toContain(secret);
  expect(await world.checkpoint()).toEqual(before);
}

describe('each flow delivers events from a Dovecot that accepts only OAuth2', () => {
  it('microsoft, client secret: XOAUTH2 on an Exchange-like server', async () => {
    const world = await oauth2World(exchangeLike, USERS.ms[0], microsoft());
    expect(await world.invoke()).toMatchObject({ outcome: 'baseline' });
    await world.append(2);
    expect(await world.invoke()).toMatchObject({ outcome: 'published', published: 2 });
    expect((await world.events(2)).map((e) => e.detail.subject)).toEqual(['Message 1', 'Message 2']);
    expect(await lastLoginMethod(exchangeLike, USERS.ms[0])).toBe('XOAUTH2');
  });

  it('microsoft, certificate credential (client assertion with x5t): OAUTHBEARER on a Gmail-like server', async () => {
    const world = await oauth2World(
      gmailLike,
      USERS.msCert[0],
      microsoft({ clientId: MS_CERT_CLIENT, clientSecret: undefined, ...msCert }),
    );
    expect(await world.invoke()).toMatchObject({ outcome: 'baseline' });
    await world.append(1);
    expect(await world.invoke()).toMatchObject({ published: 1 });
    expect(await lastLoginMethod(gmailLike, USERS.msCert[0])).toBe('OAUTHBEARER');
  });

  it('google, JWT bearer: signed assertion with sub = username, scope and audience', async () => {
    const world = await oauth2World(gmailLike, USERS.google[0], google());
    expect(await world.invoke()).toMatchObject({ outcome: 'baseline' });
    await world.append(1);
    expect(await world.invoke()).toMatchObject({ published: 1 });
    expect(fake.lastGoogleClaims).toMatchObject({
      iss: SA_EMAIL,
      sub: USERS.google[0],
      scope: GOOGLE_SCOPE,
      aud: fake.googleTokenUrl,
    });
    const { iat, exp } = fake.lastGoogleClaims as { iat: number; exp: number };
    expect(exp - iat).toBe(3600);
    expect(await lastLoginMethod(gmailLike, USERS.google[0])).toBe('OAUTHBEARER');
  });

  it('refresh-token: a rotated refresh token is kept (sealed, beside the checkpoint) and used by the next cold start', async () => {
    const original = fake.issueRefreshToken(RT_CLIENT);
    const world = await oauth2World(exchangeLike, USERS.rt[0], {
      provider: 'refresh-token',
      tokenUrl: fake.refreshTokenUrl,
      clientId: RT_CLIENT,
      clientSecret: RT_SECRET,
      refreshToken: original,
    });
    // Three cold starts: each one's refresh token is dead after use, the next must use the rotated one.
    expect(await world.invoke()).toMatchObject({ outcome: 'baseline' });
    await world.append(1);
    expect(await world.invoke()).toMatchObject({ published: 1 });
    await world.append(1);
    expect(await world.invoke()).toMatchObject({ published: 1 });
    // Stored sealed: the item holds no usable token.
    const { Item } = await new DynamoDBClient(world.aws.clientConfig).send(
      new GetItemCommand({ TableName: world.table, Key: { pk: { S: refreshTokenKey(world.mailboxId) } } }),
    );
    expect(Item?.version?.N).toBe('3');
    expect(JSON.stringify(Item)).not.toMatch(/rt-/);

    // The admin puts a newly consented refresh token into the secret: it wins over the stored one.
    const renewed = fake.issueRefreshToken(RT_CLIENT);
    await world.aws.putSecretValue(world.secretName, {
      ...world.secretValue({ password: undefined }),
      oauth2: {
        provider: 'refresh-token',
        tokenUrl: fake.refreshTokenUrl,
        clientId: RT_CLIENT,
        clientSecret: RT_SECRET,
        refreshToken: renewed,
      },
    });
    await world.append(1);
    expect(await world.invoke()).toMatchObject({ published: 1 });
  });
  it('refresh-token: a rotation the store cannot take is kept in memory and used by the next request', async () => {
    const clientId = `${RT_CLIENT}-2`;
    let item: { sealed: string; version: number } | undefined;
    let storeDown = true;
    const store: RefreshTokenStore = {
      load: async () => item,
      save: async (sealed, expectedVersion) => {
        if (storeDown) throw Object.assign(new Error('service unavailable'), { name: 'ServiceUnavailable' });
        item = { sealed, version: expectedVersion + 1 };
        return true;
      },
    };
    let now = Date.now();
    const tokens = new OAuth2TokenSource({ refreshTokens: store, now: () => now });
    const settings = validateSettings({
      host: 'localhost',
      username: USERS.rt[1],
      oauth2: {
        provider: 'refresh-token',
        tokenUrl: fake.refreshTokenUrl,
        clientId,
        clientSecret: RT_SECRET,
        refreshToken: fake.issueRefreshToken(clientId),
      },
    });
    await tokens.get(settings); // rotated; the store is down: kept in memory only
    now += 3_600_000;
    storeDown = false;
    await tokens.get(settings); // the secret's token is dead by now: this works only with the kept one
    expect(item?.version).toBe(1);
    now += 3_600_000;
    await tokens.get(settings); // from the store
    expect(item?.version).toBe(2);
  });
});

describe('token caching and expiry', () => {
  it('a warm container fetches one token for three invocations', async () => {
    const world = await oauth2World(exchangeLike, USERS.ms[1], microsoft());
    const before = fake.requests.microsoft;
    const loginsBefore = await loginCount(exchangeLike, USERS.ms[1]);
    const results: unknown[] = [];
    const lines = await world.captureLogs(async () => {
      results.push(await world.invoke()); // cold start
      await world.append(1);
      results.push(await world.invokeWarm());
      await world.append(1);
      results.push(await world.invokeWarm());
    });
    expect(results).toMatchObject([{ outcome: 'baseline' }, { published: 1 }, { published: 1 }]);
    expect(fake.requests.microsoft - before).toBe(1);
    // And one login: the warm invocations take up the session the first one kept.
    expect((await loginCount(exchangeLike, USERS.ms[1])) - loginsBefore).toBe(1);
    // Neither the credential nor the token in any log line of the three runs.
    expect(lines.filter((l) => l.message === 'Poll finished')).toHaveLength(3);
    expect(JSON.stringify(lines)).not.toContain(MS_SECRET);
    expect(JSON.stringify(lines)).not.toMatch(/at-[A-Za-z0-9_-]{20}/);
    console.log(`[oauth2] token requests in a 3-invocation warm run: ${fake.requests.microsoft - before}`);
  });

  it('a cached token the server refuses (revoked) is replaced once, and the run succeeds', async () => {
    const world = await oauth2World(exchangeLike, USERS.ms[2], microsoft());
    await world.invoke();
    const before = fake.requests.microsoft;
    fake.revokeAll();
    await world.imap.kick(world.user); // Dovecot checks a token at login only; a server that ends the session too
    await world.append(1);
    expect(await world.invokeWarm()).toMatchObject({ published: 1 });
    expect(fake.requests.microsoft - before).toBe(1);
  });

  it('a kept session is not taken up when its token is about to expire: a new login (an XOAUTH2 server may end it then)', async () => {
    const world = await oauth2World(exchangeLike, USERS.ms[4], microsoft());
    fake.expiresIn = 240; // inside the 5-minute margin from the start: the session is never taken up
    const loginsBefore = await loginCount(exchangeLike, USERS.ms[4]);
    try {
      const lines = await world.captureLogs(async () => {
        await world.invoke();
        await world.append(1);
        expect(await world.invokeWarm()).toMatchObject({ published: 1 });
      });
      expect(lines.filter((l) => l.message === 'Poll finished').map((l) => l.imapSession)).toEqual(['new', 'new']);
      expect((await loginCount(exchangeLike, USERS.ms[4])) - loginsBefore).toBe(2);
    } finally {
      fake.expiresIn = 3600;
    }
  });

  it('a token is fetched again shortly before it expires (expires_in, injected clock)', async () => {
    let now = Date.now();
    const tokens = new OAuth2TokenSource({ now: () => now });
    const gateway = new ImapFlowMailboxGateway({ tokens });
    const settings = validateSettings({
      host: 'localhost',
      port: exchangeLike.imapsPort,
      username: USERS.ms[3],
      oauth2: microsoft(),
      caBundle: tlsMaterial().caCertPem,
    });
    fake.expiresIn = 3600;
    const before = fake.requests.microsoft;
    const login = async () => (await gateway.connect(settings)).close();
    await login();
    now += 54 * 60_000; // 54 of 60 minutes: still cached (refreshed 5 minutes before expiry)
    await login();
    expect(fake.requests.microsoft - before).toBe(1);
    now += 2 * 60_000; // 56 minutes: inside the margin
    await login();
    expect(fake.requests.microsoft - before).toBe(2);
    const token = await tokens.get(settings);
    expect(token.cached).toBe(true);
    expect(token.expiresAt.getTime()).toBe(now + 3600_000);
  });
});

describe('failures: clear error, provider code, fix, no credential in output, checkpoint untouched', () => {
  /** A baselined mailbox whose secret each test replaces. */
  async function world(server: DovecotServer, username: string, oauth2: Record<string, unknown>): Promise<World> {
    const w = await oauth2World(server, username, microsoft());
    await w.invoke();
    expect(await w.checkpoint()).toBeDefined();
    await w.aws.putSecretValue(w.secretName, { ...w.secretValue({ password: undefined }), oauth2 });
    return w;
  }

  it('wrong client secret: invalid_client AADSTS7000215, not retryable', async () => {
    const w = await world(exchangeLike, USERS.ms[4], microsoft({ clientSecret: 'wrong-secret-value' }));
    await expectFailure(w, {
      code: 'OAUTH2_TOKEN_REFUSED',
      retryable: false,
      text: /invalid_client AADSTS7000215/,
      hint: /Value \(not its "Secret ID"\)/,
    });
  });

  it('app not in the tenant: AADSTS700016; unknown tenant: AADSTS90002', async () => {
    const w = await world(exchangeLike, USERS.ms[4], microsoft({ clientId: '99999999-0000-0000-0000-000000000000' }));
    await expectFailure(w, {
      code: 'OAUTH2_TOKEN_REFUSED',
      retryable: false,
      text: /unauthorized_client AADSTS700016/,
      hint: /not known in this tenant/,
    });
    await w.aws.putSecretValue(w.secretName, {
      ...w.secretValue({ password: undefined }),
      oauth2: microsoft({ tenantId: 'no-such-tenant', tokenUrl: fake.microsoftTokenUrl('no-such-tenant') }),
    });
    await expectFailure(w, { code: 'OAUTH2_TOKEN_REFUSED', retryable: false, text: /AADSTS90002/, hint: /tenant/ });
  });

  it('google without domain-wide delegation for the scope: unauthorized_client', async () => {
    const w = await world(
      exchangeLike,
      USERS.ms[4],
      google({ scope: 'https://www.googleapis.com/auth/gmail.readonly' }),
    );
    await expectFailure(w, {
      code: 'OAUTH2_TOKEN_REFUSED',
      retryable: false,
      text: /unauthorized_client/,
      hint: /Domain-wide delegation/,
    });
  });

  it('google with a key the service account does not have: invalid_grant', async () => {
    const other = rsaKeyPair();
    const w = await world(exchangeLike, USERS.ms[4], google({ privateKey: other.privateKey }));
    await expectFailure(w, {
      code: 'OAUTH2_TOKEN_REFUSED',
      retryable: false,
      text: /invalid_grant/,
      hint: /still active/,
    });
  });

  it('refresh token revoked (or already used): invalid_grant', async () => {
    const w = await world(exchangeLike, USERS.ms[4], {
      provider: 'refresh-token',
      tokenUrl: fake.refreshTokenUrl,
      clientId: RT_CLIENT,
      clientSecret: RT_SECRET,
      refreshToken: 'rt-never-issued',
    });
    await expectFailure(w, {
      code: 'OAUTH2_TOKEN_REFUSED',
      retryable: false,
      text: /invalid_grant/,
      hint: /obtain a new one/,
    });
  });

  it('token endpoint unreachable, 5xx, 429, silent, or sending garbage or too much', async () => {
    const w = await world(
      exchangeLike,
      USERS.ms[4],
      microsoft({ tokenUrl: `http://127.0.0.1:${await freePort()}/t/oauth2/v2.0/token` }),
    );
    await expectFailure(w, {
      code: 'OAUTH2_TOKEN_UNAVAILABLE',
      retryable: true,
      text: /ECONNREFUSED/,
      hint: /network path/,
    });
    await w.aws.putSecretValue(w.secretName, { ...w.secretValue({ password: undefined }), oauth2: microsoft() });
    fake.failNext = { status: 503, body: { error: 'temporarily_unavailable' } };
    await expectFailure(w, { code: 'OAUTH2_TOKEN_UNAVAILABLE', retryable: true, text: /HTTP 503/, hint: /retries/ });
    fake.failNext = { status: 429 };
    await expectFailure(w, { code: 'OAUTH2_TOKEN_UNAVAILABLE', retryable: true, text: /HTTP 429/, hint: /retries/ });
    fake.failNext = 'close';
    await expectFailure(w, { code: 'OAUTH2_TOKEN_UNAVAILABLE', retryable: true, text: /failed/, hint: /network/ });
    fake.failNext = 'garbage';
    await expectFailure(w, {
      code: 'OAUTH2_TOKEN_UNAVAILABLE',
      retryable: false,
      text: /unusable token response/,
      hint: /tokenUrl/,
    });
    fake.failNext = 'huge';
    await expectFailure(w, {
      code: 'OAUTH2_TOKEN_UNAVAILABLE',
      retryable: false,
      text: /more than 64 KiB/,
      hint: /tokenUrl/,
    });
  });

  it('token endpoint that never answers: a timeout, retryable', async () => {
    const tokens = new OAuth2TokenSource({ timeoutMs: 300 });
    fake.failNext = 'hang';
    const settings = validateSettings({ host: 'localhost', username: USERS.ms[4], oauth2: microsoft() });
    const error = await tokens.get(settings).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'OAUTH2_TOKEN_UNAVAILABLE', retryable: true });
    expect((error as Error).message).toMatch(/timeout/);
  });

  it('microsoft: the server refuses a valid token for this mailbox: the fix names Add-MailboxPermission', async () => {
    const w = await oauth2World(exchangeLike, USERS.msDenied[0], microsoft());
    await expectFailure(w, {
      code: 'IMAP_AUTH_FAILED',
      retryable: false,
      text: /refused the OAuth2 access token for mailbox "ms-denied@contoso.test"/,
      hint: /Add-MailboxPermission/,
    });
    expect(await w.checkpoint()).toBeUndefined();
  });

  it('google: the server refuses a valid token for this mailbox: the fix names domain-wide delegation', async () => {
    // The token endpoint issues the token (the user is in the domain), the IMAP side refuses it (IMAP off for the user).
    const w = await oauth2World(gmailLike, USERS.googleDenied[0], google());
    await expectFailure(w, {
      code: 'IMAP_AUTH_FAILED',
      retryable: false,
      text: /refused the OAuth2 access token for mailbox "g-denied@example.test"/,
      hint: /domain-wide delegation/,
    });
  });

  it('a server that offers neither OAUTHBEARER nor XOAUTH2', async () => {
    const shared = dovecot();
    const user = await shared.createUser();
    await shared.createSeedTree(user);
    const w = await World.create({ server: shared, user, secret: { password: undefined, oauth2: microsoft() } });
    await expectFailure(w, {
      code: 'IMAP_OAUTH2_UNSUPPORTED',
      retryable: false,
      text: /offers neither AUTH=OAUTHBEARER nor AUTH=XOAUTH2 \(it offers AUTH=PLAIN AUTH=LOGIN\)/,
      hint: /outlook\.office365\.com/,
    });
  });
});
