/**
 * The CLI with OAuth2: `check` shows the TOKEN step (provider, endpoint host, expiry) before LOGIN and explains
 * token and login failures; `secret template` prints each provider's shape and turns a Google service account
 * key file into the `oauth2` object. Against a Dovecot with the oauth2 passdb and the fake authorization server.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runCli, tempDir, writeConfig } from '../support/cli.js';
import { type DovecotServer, freePort } from '../support/dovecot.js';
import { startDovecot, tlsMaterial } from '../support/env.js';
import { FakeOAuth2Server, rsaKeyPair } from '../support/oauth2-server.js';

const TENANT = 'cli-tenant';
const CLIENT = 'cli-client';
const SECRET = 'Cli~Secret-Value_42';
const GRANTED = 'cli-granted@contoso.test';
const DENIED = 'cli-denied@contoso.test';

const dir = tempDir();
let fake: FakeOAuth2Server;
let server: DovecotServer;

beforeAll(async () => {
  fake = await FakeOAuth2Server.start();
  fake.microsoftApps.push({ tenantId: TENANT, clientId: CLIENT, clientSecret: SECRET, mailboxes: new Set([GRANTED]) });
  server = await startDovecot({
    oauth2: { mechanisms: ['xoauth2'], introspectionBaseUrl: fake.introspectionBaseUrl, users: [GRANTED, DENIED] },
  });
  for (const username of [GRANTED, DENIED])
    await server.createFolders(await server.createUser({ username }), ['INBOX']);
});

afterAll(async () => {
  await Promise.allSettled([server?.stop(), fake?.stop()]);
});

function settings(username: string, oauth2: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    host: 'localhost',
    port: server.imapsPort,
    username,
    caBundle: tlsMaterial().caCertPem,
    oauth2: {
      provider: 'microsoft',
      tenantId: TENANT,
      clientId: CLIENT,
      clientSecret: SECRET,
      tokenUrl: fake.microsoftTokenUrl(TENANT),
      ...oauth2,
    },
  };
}

const check = (name: string, s: Record<string, unknown>) => runCli(['check', '--config', writeConfig(dir, name, s)]);

describe('check with oauth2', () => {
  test('TOKEN (provider, endpoint host, expiry) comes before LOGIN, and every step passes', async () => {
    const r = await check('ok', settings(GRANTED));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^✔ SETTINGS .*user "cli-granted@contoso\.test".*, oauth2 microsoft \(client secret\)$/m);
    expect(r.stdout).toMatch(
      new RegExp(
        `^✔ TOKEN +microsoft access token from 127\\.0\\.0\\.1:${fake.port}, expires \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z \\(in 60 min\\)$`,
        'm',
      ),
    );
    expect(r.stdout.indexOf('TOKEN')).toBeLessThan(r.stdout.indexOf('LOGIN'));
    expect(r.stdout).toMatch(/^✔ LOGIN +logged in as "cli-granted@contoso\.test"$/m);
    expect(r.stdout).toContain('All checks passed');
    expect(r.stdout + r.stderr).not.toContain(SECRET);
    expect(r.stdout + r.stderr).not.toMatch(/at-[A-Za-z0-9_-]{20}/);
  });

  test('a refused credential fails at TOKEN with the provider code and the fix; LOGIN is not tried', async () => {
    const r = await check('bad-secret', settings(GRANTED, { clientSecret: 'wrong' }));
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^✖ TOKEN .*refused the credential: invalid_client AADSTS7000215/m);
    expect(r.stdout).toMatch(/Secret ID/);
    expect(r.stdout).not.toMatch(/LOGIN/);
  });

  test('an unreachable token endpoint fails at TOKEN', async () => {
    const port = await freePort();
    const r = await check(
      'unreachable',
      settings(GRANTED, { tokenUrl: `http://127.0.0.1:${port}/t/oauth2/v2.0/token` }),
    );
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /^✖ TOKEN .*Cannot get an access token from the Microsoft token endpoint 127\.0\.0\.1:\d+: the connection failed \(ECONNREFUSED\)/m,
    );
  });

  test('a mailbox not granted to the app fails at LOGIN, and the fix names Add-MailboxPermission', async () => {
    const r = await check('denied', settings(DENIED));
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^✔ TOKEN /m);
    expect(r.stdout).toMatch(/^✖ LOGIN .*refused the OAuth2 access token for mailbox "cli-denied@contoso\.test"/m);
    expect(r.stdout).toContain('Add-MailboxPermission');
  });
});

describe('secret template for OAuth2', () => {
  test.each(['microsoft', 'refresh-token'])('--oauth2 %s prints a shape that validates', async (provider) => {
    const t = await runCli(['secret', 'template', '--oauth2', provider]);
    expect(t.code).toBe(0);
    const secret = JSON.parse(t.stdout) as Record<string, unknown>;
    expect(secret.password).toBeUndefined();
    expect(secret.oauth2).toMatchObject({ provider });
    const v = await runCli(['secret', 'validate'], { input: t.stdout });
    expect(v.stdout).toMatch(new RegExp(`is valid: .*oauth2 ${provider}$`, 'm'));
  });

  test('--oauth2 google prints the shape, to be completed with --google-key', async () => {
    const t = await runCli(['secret', 'template', '--oauth2', 'google']);
    expect(JSON.parse(t.stdout)).toMatchObject({ host: 'imap.gmail.com', oauth2: { provider: 'google' } });
  });

  test('--google-key turns a service account key file into the oauth2 object', async () => {
    const { privateKey } = rsaKeyPair();
    const keyFile = join(dir, 'sa.json');
    writeFileSync(
      keyFile,
      JSON.stringify({
        type: 'service_account',
        project_id: 'p',
        private_key_id: 'abc',
        private_key: privateKey,
        client_email: 'poller@p.iam.gserviceaccount.com',
        client_id: '123',
        token_uri: 'https://oauth2.googleapis.com/token',
      }),
    );
    const t = await runCli(['secret', 'template', '--google-key', keyFile]);
    expect(t.code).toBe(0);
    const secret = JSON.parse(t.stdout) as { oauth2: Record<string, unknown> };
    expect(secret.oauth2).toEqual({ provider: 'google', clientEmail: 'poller@p.iam.gserviceaccount.com', privateKey });
    expect(t.stderr).not.toContain(privateKey.split('\n')[1]);
    const v = await runCli(['secret', 'validate'], { input: t.stdout });
    expect(v.code).toBe(0);
    expect(v.stdout).not.toContain(privateKey.split('\n')[1]);

    writeFileSync(keyFile, JSON.stringify({ type: 'authorized_user', client_id: 'x' }));
    const wrong = await runCli(['secret', 'template', '--google-key', keyFile]);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/not a service account key/);
    writeFileSync(keyFile, JSON.stringify({ type: 'service_account', client_email: 'a@b', private_key: 'broken' }));
    const broken = await runCli(['secret', 'template', '--google-key', keyFile]);
    expect(broken.stderr).toMatch(/private_key: is not a parseable PEM private key/);
  });
});
