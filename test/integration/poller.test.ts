/**
 * The engine end to end: the real Lambda handler against Dovecot (TLS with a per-run CA) and moto_server
 * (Secrets Manager, DynamoDB, EventBridge -> rule -> SQS subscriber).
 */
import { describe, expect, it } from 'vitest';
import type { MailboxResetDetail, MessageReceivedDetail } from '../../functions/poller/core/event-detail.js';
import { freePort } from '../support/dovecot.js';
import { dovecotNoTls, tlsMaterial } from '../support/env.js';
import { OTHER_HOST_NAME } from '../support/tls.js';
import { World } from './world.js';

describe('poller: happy paths', () => {
  it('delivers 25 new messages exactly once without changing the mailbox', async () => {
    const world = await World.create();
    expect(await world.invoke()).toEqual({ outcome: 'baseline', published: 0 });
    const uids = await world.append(25);

    expect(await world.invoke()).toEqual({ outcome: 'published', published: 25 });
    const events = await world.events<MessageReceivedDetail>(25);
    expect(events).toHaveLength(25);
    // The PutEvents calls of a batch run concurrently: events arrive in any order (docs/events.md, "Order").
    events.sort((a, b) => a.detail.uid - b.detail.uid);
    expect(events.map((e) => e.detail.uid)).toEqual(uids);
    expect(new Set(events.map((e) => e.detail.eventId)).size).toBe(25);
    const first = events[0]!;
    expect(first.source).toBe('imap-event-source');
    expect(first['detail-type']).toBe('IMAP Message Received');
    expect(first.detail).toMatchObject({
      version: '1',
      mailboxId: world.mailboxId,
      folder: 'Firma/Kundenbetreuung/kunden/a',
      uid: uids[0],
      subject: 'Message 1',
      from: [{ name: 'Alice Example', address: 'alice@example.com' }],
      to: [{ name: 'Support', address: 'support@example.com' }],
      flags: [],
    });
    expect(first.detail.eventId).toBe(`${world.mailboxId}:${first.detail.uidValidity}:${uids[0]}`);
    expect(first.detail.messageId).toMatch(/^<.+@test\.example\.com>$/);
    expect(Date.parse(first.detail.internalDate!)).not.toBeNaN();
    expect(first.detail.size).toBeGreaterThan(100);

    expect(await world.invoke()).toEqual({ outcome: 'idle', published: 0 });
    expect(await world.events(0)).toEqual([]);
    expect((await world.checkpoint())?.lastUid).toBe(uids.at(-1));
    // Read-only: nothing marked \Seen, nothing moved.
    const flags = await world.imap.getFlags(world.user, world.folder);
    expect(flags).toHaveLength(25);
    expect(flags.every((m) => !m.flags.includes('\\Seen'))).toBe(true);
  });

  it('START_AT=all publishes what is already there; START_AT=now only what comes later', async () => {
    const all = await World.create({ startAt: 'all', folder: 'Firma/Qualitätssicherung' });
    await all.append(3);
    expect(await all.invoke()).toEqual({ outcome: 'published', published: 3 });
    const events = await all.events<MessageReceivedDetail>(3);
    expect(events.map((e) => e.detail.folder)).toEqual([
      'Firma/Qualitätssicherung',
      'Firma/Qualitätssicherung',
      'Firma/Qualitätssicherung',
    ]);

    const now = await World.create({ startAt: 'now', folder: 'Entwürfe' });
    await now.append(3);
    expect(await now.invoke()).toEqual({ outcome: 'baseline', published: 0 });
    expect(await now.events(0)).toEqual([]);
    expect(await now.checkpoint()).toMatchObject({ lastUid: 3, version: 1 });
    const [uid] = await now.append(1);
    expect(await now.invoke()).toEqual({ outcome: 'published', published: 1 });
    expect((await now.events<MessageReceivedDetail>(1)).map((e) => e.detail.uid)).toEqual([uid]);
  });

  it('logs one summary line per run (and one failure line), never the password', async () => {
    const world = await World.create({ startAt: 'all' });
    const uids = await world.append(2);
    const lines = await world.captureLogs(() => world.invoke());
    const summaries = lines.filter((l) => l.message === 'Poll finished');
    expect(summaries).toHaveLength(1);
    expect(summaries[0]).toMatchObject({
      level: 'INFO',
      mailboxId: world.mailboxId,
      folder: world.folder,
      uidValidity: expect.stringMatching(/^\d+$/),
      fromUid: 1,
      toUid: uids.at(-1),
      published: 2,
      outcome: 'published',
      durationMs: expect.any(Number),
    });
    await world.aws.putSecretValue(world.secretName, world.secretValue({ password: 'not-the-password-123' }));
    const failed = await world.captureLogs(() => world.invoke());
    expect(failed.filter((l) => l.message === 'Poll failed')).toEqual([
      expect.objectContaining({
        level: 'ERROR',
        mailboxId: world.mailboxId,
        outcome: 'failed',
        errorCode: 'IMAP_AUTH_FAILED',
        retryable: false,
      }),
    ]);
    const text = JSON.stringify([...lines, ...failed]);
    expect(text).not.toContain(world.user.password);
    expect(text).not.toContain('not-the-password-123');
  });

  it('an empty poll writes nothing', async () => {
    const world = await World.create();
    await world.invoke();
    const before = await world.checkpoint();
    expect(await world.invoke()).toEqual({ outcome: 'idle', published: 0 });
    expect(await world.checkpoint()).toEqual(before);
  });

  it('works through a backlog in batches and across runs when capped', async () => {
    const world = await World.create({ startAt: 'all', env: { MAX_MESSAGES_PER_RUN: '25' } });
    const uids = await world.append(37);
    expect(await world.invoke()).toEqual({ outcome: 'partial', published: 25 });
    // One checkpoint write at the end of the run (fewer than 500 messages: no write on the way).
    expect(await world.checkpoint()).toMatchObject({ lastUid: uids[24], version: 1 });
    expect(await world.invoke()).toEqual({ outcome: 'published', published: 12 });
    const events = await world.events<MessageReceivedDetail>(37);
    expect(events.map((e) => e.detail.uid).sort((a, b) => a - b)).toEqual(uids);
    expect((await world.checkpoint())?.lastUid).toBe(uids.at(-1));
  });

  it('over STARTTLS (required upgrade) and plaintext when explicitly chosen', async () => {
    const starttls = await World.create({ security: 'starttls', startAt: 'all' });
    await starttls.append(2);
    expect(await starttls.invoke()).toEqual({ outcome: 'published', published: 2 });
    expect(await starttls.events(2)).toHaveLength(2);

    const plain = await World.create({ server: dovecotNoTls(), security: 'none', startAt: 'all' });
    await plain.append(1);
    expect(await plain.invoke()).toEqual({ outcome: 'published', published: 1 });
  });

  it('on a UIDVALIDITY change publishes IMAP Mailbox Reset, and only mail that is really new', async () => {
    const world = await World.create({ startAt: 'all' });
    const old = await world.append(3);
    await world.invoke();
    const published = await world.events<MessageReceivedDetail>(3);
    const oldValidity = published[0]!.detail.uidValidity;

    await world.imap.setUidValidity(world.user, world.folder, 4242);
    await new Promise((r) => setTimeout(r, 1_100)); // INTERNALDATE has second resolution
    const [fresh] = await world.append(1, world.folder, () => ({ subject: 'After the reset' }));

    expect(await world.invoke()).toEqual({ outcome: 'reset', published: 1 });
    const events = await world.events<MessageReceivedDetail | MailboxResetDetail>(2);
    const reset = events.find((e) => e['detail-type'] === 'IMAP Mailbox Reset')!;
    expect(reset.detail).toMatchObject({
      previousUidValidity: oldValidity,
      uidValidity: '4242',
      previousLastUid: old.at(-1),
    });
    const messages = events.filter((e) => e['detail-type'] === 'IMAP Message Received') as {
      detail: MessageReceivedDetail;
    }[];
    expect(messages.map((e) => [e.detail.uid, e.detail.subject, e.detail.uidValidity])).toEqual([
      [fresh, 'After the reset', '4242'],
    ]);
    expect(await world.checkpoint()).toMatchObject({ uidValidity: '4242', lastUid: fresh });
    expect((await world.checkpoint())?.rescanSince).toBeUndefined();
    expect(await world.invoke()).toEqual({ outcome: 'idle', published: 0 });
  });
});

describe('poller: admins change the secret, no redeploy', () => {
  it('a new CA bundle takes effect on the next poll', async () => {
    const world = await World.create({ startAt: 'all', secret: { caBundle: tlsMaterial().wrongCaCertPem } });
    await world.append(1);
    expect((await world.invokeFailing()).message).toMatch(/TLS_CERTIFICATE_REJECTED/);
    await world.aws.putSecretValue(
      world.secretName,
      world.secretValue({ caBundle: `${tlsMaterial().wrongCaCertPem}\n${tlsMaterial().caCertPem}` }),
    );
    expect(await world.invoke()).toEqual({ outcome: 'published', published: 1 });
  });

  it('a moved folder starts its own checkpoint; the old one stays as it was', async () => {
    const world = await World.create({ startAt: 'now' });
    await world.append(2);
    await world.invoke();
    const old = await world.checkpoint();
    await world.append(2, 'Firma/Vertrieb');
    await world.aws.putSecretValue(world.secretName, world.secretValue({ folder: 'Firma/Vertrieb' }));
    expect(await world.invoke()).toEqual({ outcome: 'baseline', published: 0 }); // START_AT applies to the new folder
    const [uid] = await world.append(1, 'Firma/Vertrieb');
    expect(await world.invoke()).toEqual({ outcome: 'published', published: 1 });
    const events = await world.events<MessageReceivedDetail>(1);
    expect(events.map((e) => [e.detail.folder, e.detail.uid])).toEqual([['Firma/Vertrieb', uid]]);
    expect(await world.checkpoint()).toEqual(old);
    expect(await world.checkpoint('Firma/Vertrieb')).toMatchObject({ lastUid: uid });
  });
});

describe('poller: bad input fails clearly, leaks no secret, leaves the checkpoint untouched', () => {
  async function expectFailure(
    world: World,
    pattern: RegExp,
    secretValues: string[] = [world.user.password],
  ): Promise<void> {
    const before = await world.checkpoint();
    const error = await world.invokeFailing();
    expect(error.message).toMatch(pattern);
    for (const secret of secretValues) expect(error.message).not.toContain(secret);
    expect(error.stack ?? '').not.toMatch(/node_modules/);
    expect(await world.checkpoint()).toEqual(before);
    expect(await world.events(0)).toEqual([]);
  }

  it('secret not JSON', async () => {
    const world = await World.create();
    await world.aws.putSecretValue(world.secretName, '{"host": "localhost", "password": "hunter2-secret",');
    await expectFailure(world, /SETTINGS_INVALID.*not valid JSON/, ['hunter2-secret']);
  });

  it('missing, invalid and unknown fields, all named at once', async () => {
    const world = await World.create({ secret: { username: undefined, port: 70000, pasword: 'typo-secret' } });
    await expectFailure(world, /SETTINGS_INVALID.*pasword: unknown field \(did you mean "password"\?\)/, [
      'typo-secret',
    ]);
    const { message } = await world.invokeFailing();
    expect(message).toContain('username: is required');
    expect(message).toContain('port: must be an integer between 1 and 65535');
  });

  it('wrong password', async () => {
    const world = await World.create({ secret: { password: 'definitely-wrong-pw' } });
    await expectFailure(world, /IMAP_AUTH_FAILED.*rejected the login of user/, ['definitely-wrong-pw']);
  });

  it('unknown CA', async () => {
    const world = await World.create({ secret: { caBundle: tlsMaterial().wrongCaCertPem } });
    await expectFailure(world, /TLS_CERTIFICATE_REJECTED.*not trusted \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\).*caBundle/);
  });

  it('host name mismatch', async () => {
    // The server presents its default certificate (localhost) to a client asking for another name.
    const world = await World.create({ secret: { tlsServername: 'imap.wrong.test' } });
    await expectFailure(
      world,
      /TLS_CERTIFICATE_REJECTED.*does not match the host name "imap\.wrong\.test".*DNS:localhost.*\(ERR_TLS_CERT_ALTNAME_INVALID\).*tlsServername/,
    );
  });

  it('tlsServername selects the name to verify (and SNI): a certificate for another name is accepted', async () => {
    const world = await World.create({ startAt: 'all', secret: { tlsServername: OTHER_HOST_NAME } });
    await world.append(1);
    expect(await world.invoke()).toEqual({ outcome: 'published', published: 1 });
  });

  it('STARTTLS required but not offered: never a plaintext login', async () => {
    const world = await World.create({ server: dovecotNoTls(), security: 'starttls' });
    await expectFailure(world, /STARTTLS_UNAVAILABLE.*does not offer STARTTLS/);
  });

  it('folder does not exist: names the folders that do', async () => {
    const world = await World.create({ folder: 'Firma/Kundenbetreuung/kunden/z' });
    await expectFailure(
      world,
      /FOLDER_NOT_FOUND.*"Firma\/Kundenbetreuung\/kunden\/z" does not exist.*Nearest existing folders: "Firma\/Kundenbetreuung\/kunden\/a", "Firma\/Kundenbetreuung\/kunden\/b"/,
    );
  });

  it('IMAP server unreachable', async () => {
    const world = await World.create({ secret: { port: await freePort() } });
    await expectFailure(world, /IMAP_UNREACHABLE.*refused/);
  });

  it('event bus missing', async () => {
    const world = await World.create();
    await world.invoke();
    await world.append(1);
    const before = await world.checkpoint();
    const error = await world.invokeFailing({ EVENT_BUS_NAME: 'no-such-bus' });
    expect(error.message).toMatch(/EVENT_PUBLISH_FAILED.*bus does not exist/);
    expect(await world.checkpoint()).toEqual(before);
  });

  it('checkpoint table missing', async () => {
    const world = await World.create({ env: { CHECKPOINT_TABLE: 'no-such-table' } });
    const error = await world.invokeFailing();
    expect(error.message).toMatch(/CHECKPOINT_STORE_FAILED.*"no-such-table" does not exist/);
  });
});
