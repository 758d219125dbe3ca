/**
 * Fleet mode end to end: the dispatcher and worker handlers driven as Lambda drives them (schedule -> dispatcher;
 * SQS receive -> worker -> delete what succeeded) against Dovecot and moto_server (DynamoDB with the `due` index,
 * SQS, EventBridge -> rule -> SQS subscriber, Secrets Manager, S3).
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it } from 'vitest';
import { FAILURE_BACKOFF } from '../../functions/fleet/core/registry.js';
import { DynamoDbPollStatusStore } from '../../functions/poller/adapters/dynamodb-status-store.js';
import { DISPATCHER_ENV } from '../../functions/poller/contract/fleet.js';
import type { MessageReceivedDetail } from '../../functions/poller/core/event-detail.js';
import { freePort } from '../support/dovecot.js';
import { dovecot, mailboxSecret } from '../support/env.js';
import { Fleet } from '../support/fleet.js';
import { buildMessage } from '../support/messages.js';
import { uniqueName } from '../support/moto.js';

const imap = dovecot();
const saved = { ...process.env };
afterEach(() => {
  process.env = { ...saved };
});

async function userWithMail(count: number) {
  const user = await imap.createUser();
  const uids = await imap.appendMany(
    user,
    'INBOX',
    Array.from({ length: count }, (_, i) => buildMessage({ subject: `Fleet ${i + 1}` })),
  );
  return { user, uids };
}

describe('fleet: dispatcher and worker', () => {
  it('polls every due mailbox once per cycle, with shared and own secrets, and publishes each message once', async () => {
    const fleet = await Fleet.create({ subscriber: true });
    fleet.use();
    const a = await userWithMail(2);
    const b = await userWithMail(1);
    const c = await userWithMail(3);
    // a: its own secret; b and c: one shared secret (a tenant app), with per-mailbox username overrides.
    await fleet.aws.createSecret(`${fleet.secretPrefix}a`, mailboxSecret(imap, a.user));
    await fleet.aws.createSecret(`${fleet.secretPrefix}shared`, {
      ...mailboxSecret(imap, b.user),
      username: 'nobody',
      password: b.user.password,
    });
    // The shared secret's password is b's: give c the same one (a shared credential, as an app's).
    await imap.setPassword(c.user, b.user.password);
    await fleet.register({ id: 'alpha', secretId: `${fleet.secretPrefix}a`, startAt: 'all' });
    await fleet.register({
      id: 'beta',
      secretId: `${fleet.secretPrefix}shared`,
      username: b.user.username,
      startAt: 'all',
    });
    await fleet.register({
      id: 'gamma',
      secretId: `${fleet.secretPrefix}shared`,
      username: c.user.username,
      startAt: 'all',
    });

    const first = await fleet.dispatch();
    expect(first).toMatchObject({ active: 3, dispatched: 3, inBackoff: 0 });
    expect(await fleet.dispatch()).toMatchObject({ dispatched: 0 }); // dueAt moved a minute ahead
    const drained = await fleet.drain({ lanes: 2 });
    expect(drained.failures).toBe(0);

    const events = await fleet.aws.receiveEvents<MessageReceivedDetail>(fleet.bus!.queueUrl, {
      expected: 6,
      timeoutMs: 20_000,
      quietMs: 1_000,
    });
    const ids = events.map((e) => e.detail.eventId);
    expect(new Set(ids).size).toBe(6);
    expect(events.map((e) => e.detail.mailboxId).sort()).toEqual(['alpha', 'alpha', 'beta', 'gamma', 'gamma', 'gamma']);
    // The same events and status items as per-mailbox mode.
    expect(events.find((e) => e.detail.mailboxId === 'beta')!.detail.eventId).toMatch(/^beta:\d+:1$/);
    const status = new DynamoDbPollStatusStore(fleet.aws.dynamodb, fleet.table);
    expect(await status.getStatus('gamma')).toMatchObject({ lastOutcome: 'published', lastPublished: 3 });
    expect((await fleet.registry.get('gamma'))?.lastSuccessAt).toBeDefined();
  });

  it('backs off a mailbox with a wrong password, records the reason, and keeps polling the others', async () => {
    const fleet = await Fleet.create();
    fleet.use();
    const good = await userWithMail(1);
    const bad = await userWithMail(1);
    await fleet.aws.createSecret(`${fleet.secretPrefix}good`, mailboxSecret(imap, good.user));
    await fleet.aws.createSecret(`${fleet.secretPrefix}bad`, { ...mailboxSecret(imap, bad.user), password: 'wrong' });
    await fleet.register({ id: 'good', secretId: `${fleet.secretPrefix}good` });
    await fleet.register({ id: 'bad', secretId: `${fleet.secretPrefix}bad` });

    const before = Date.now();
    await fleet.dispatch();
    await fleet.drain({ lanes: 1 });
    const entry = await fleet.registry.get('bad');
    expect(entry).toMatchObject({ failures: 1, lastErrorCode: 'IMAP_AUTH_FAILED' });
    expect(entry!.lastErrorMessage).not.toContain('wrong');
    expect(entry!.backoffUntil).toBeGreaterThanOrEqual(before + FAILURE_BACKOFF.baseMs);
    expect(entry!.dueAt).toBe(entry!.backoffUntil);
    expect((await fleet.registry.get('good'))?.failures).toBe(0);

    // While it backs off it is not dispatched, and it counts in the gauge.
    await fleet.registry.claim('good', (await fleet.registry.get('good'))!.dueAt!, Date.now() - 1);
    expect(await fleet.dispatch()).toMatchObject({ dispatched: 1, inBackoff: 1 });
    await fleet.drain({ lanes: 1 });

    // Resumed (the admin fixed the password): due at once, failures reset.
    expect(await fleet.registry.resume('bad', new Date())).toBe(true);
    expect(await fleet.registry.get('bad')).toMatchObject({ failures: 0, paused: false });
  });

  it('keeps the schedule of a mailbox whose server is unreachable (transient), noting since when it fails', async () => {
    const fleet = await Fleet.create();
    fleet.use();
    const { user } = await userWithMail(1);
    await fleet.aws.createSecret(`${fleet.secretPrefix}down`, { ...mailboxSecret(imap, user), port: await freePort() });
    await fleet.register({ id: 'down', secretId: `${fleet.secretPrefix}down` });
    const before = Date.now();
    await fleet.dispatch();
    await fleet.drain({ lanes: 1 });
    const entry = await fleet.registry.get('down');
    expect(entry).toMatchObject({ failures: 0 });
    expect(entry!.backoffUntil).toBeUndefined();
    expect(entry!.failingSince).toBeGreaterThanOrEqual(before);
    expect(entry!.dueAt).toBeGreaterThan(before); // on its schedule: due again a minute after the dispatch
    const status = new DynamoDbPollStatusStore(fleet.aws.dynamodb, fleet.table);
    expect(await status.getStatus('down')).toMatchObject({ lastErrorCode: 'IMAP_UNREACHABLE', consecutiveFailures: 1 });
  });

  it('drops the requests of paused and removed mailboxes; a secret outside the prefix backs off', async () => {
    const fleet = await Fleet.create();
    fleet.use();
    const { user } = await userWithMail(1);
    await fleet.aws.createSecret(`${fleet.secretPrefix}one`, mailboxSecret(imap, user));
    const outside = uniqueName('elsewhere');
    await fleet.aws.createSecret(outside, mailboxSecret(imap, user));
    await fleet.register({ id: 'paused', secretId: `${fleet.secretPrefix}one` });
    await fleet.register({ id: 'removed', secretId: `${fleet.secretPrefix}one` });
    // The registry refuses such a secret at `add`; an item written around it must still not be read.
    await fleet.registry.create(
      { id: 'outside', secretId: outside, schedule: 'rate(1 minute)', intervalMs: 60_000, startAt: 'now' },
      'cli',
      new Date(),
    );
    await fleet.dispatch();
    await fleet.registry.pause('paused');
    await fleet.registry.remove('removed');
    const stats = await fleet.drain({ lanes: 1 });
    expect(stats).toMatchObject({ records: 3, failures: 0 });
    const status = new DynamoDbPollStatusStore(fleet.aws.dynamodb, fleet.table);
    expect(await status.getStatus('paused')).toBeUndefined();
    expect(await status.getStatus('removed')).toBeUndefined();
    expect(await fleet.registry.get('outside')).toMatchObject({ failures: 1, lastErrorCode: 'CONFIGURATION_INVALID' });
    expect(await fleet.registry.get('paused')).toMatchObject({ paused: true });
    expect((await fleet.registry.get('paused'))?.dueAt).toBeUndefined();
  });

  it('re-queues a mailbox with more mail than one turn takes, and defers polls over the host cap', async () => {
    const fleet = await Fleet.create({ subscriber: true, maxMessagesPerTurn: 2, hostConnectionCap: 1 });
    fleet.use();
    const big = await userWithMail(5);
    const small = await userWithMail(1);
    await fleet.aws.createSecret(`${fleet.secretPrefix}big`, mailboxSecret(imap, big.user));
    await fleet.aws.createSecret(`${fleet.secretPrefix}small`, mailboxSecret(imap, small.user));
    await fleet.register({ id: 'big', secretId: `${fleet.secretPrefix}big`, startAt: 'all' });
    await fleet.register({ id: 'small', secretId: `${fleet.secretPrefix}small`, startAt: 'all' });
    await fleet.dispatch();
    // Both records in one invocation share the host's one slot: the second waits for it (or is deferred).
    const stats = await fleet.drain({ lanes: 1 });
    expect(stats.records).toBeGreaterThanOrEqual(2 + 2); // 2 dispatched, big re-queued twice (+ any deferral)
    const events = await fleet.aws.receiveEvents<MessageReceivedDetail>(fleet.bus!.queueUrl, {
      expected: 6,
      timeoutMs: 20_000,
      quietMs: 1_000,
    });
    expect(events.filter((e) => e.detail.mailboxId === 'big').map((e) => e.detail.uid)).toEqual(big.uids);
    expect(events.filter((e) => e.detail.mailboxId === 'small').map((e) => e.detail.uid)).toEqual(small.uids);
  });

  it('two dispatchers at once send each due mailbox once', async () => {
    const fleet = await Fleet.create();
    fleet.use();
    for (let i = 0; i < 12; i++) await fleet.register({ id: `m${i}`, secretId: `${fleet.secretPrefix}x` });
    const { composeDispatcher } = await import('../../functions/fleet/compose.js');
    const { dispatchCycle } = await import('../../functions/fleet/run/dispatch.js');
    const { silentLog } = await import('../../functions/poller/ports.js');
    const config = { table: fleet.table, queueUrl: fleet.queueUrl, maxPerCycle: 100 };
    const run = async () =>
      dispatchCycle(
        {
          ...(await composeDispatcher(config, { clientConfig: fleet.aws.clientConfig })),
          log: silentLog,
          now: () => new Date(),
        },
        config,
      );
    const [one, two] = await Promise.all([run(), run()]);
    expect(one.dispatched + two.dispatched).toBe(12);
  });

  it('upserts the mailboxes declared in cdk.json from S3 when the file changes, never touching CLI mailboxes', async () => {
    const fleet = await Fleet.create();
    const bucket = uniqueName('assets');
    await fleet.aws.createBucket(bucket);
    const put = (mailboxes: object[]) =>
      fleet.aws.s3.send(
        new PutObjectCommand({ Bucket: bucket, Key: 'declared.json', Body: JSON.stringify({ version: 1, mailboxes }) }),
      );
    fleet.use({ [DISPATCHER_ENV.declaredBucket]: bucket, [DISPATCHER_ENV.declaredKey]: 'declared.json' });
    await put([
      { id: 'one', secretId: `${fleet.secretPrefix}one` },
      { id: 'two', secretId: `${fleet.secretPrefix}two`, schedule: 'rate(5 minutes)' },
    ]);
    await fleet.register({ id: 'manual', secretId: `${fleet.secretPrefix}m` }, 'cli');
    expect((await fleet.dispatch()).declared).toEqual({ created: 2, updated: 0, removed: 0, conflicts: 0 });
    expect((await fleet.dispatch()).declared).toBeUndefined(); // same ETag: not read again

    await put([
      { id: 'two', secretId: `${fleet.secretPrefix}two`, schedule: 'rate(10 minutes)' },
      { id: 'manual', secretId: `${fleet.secretPrefix}other` },
    ]);
    expect((await fleet.dispatch()).declared).toEqual({ created: 0, updated: 1, removed: 1, conflicts: 1 });
    const ids = (await fleet.registry.list()).map((e) => [e.id, e.source, e.schedule]);
    expect(ids).toEqual([
      ['manual', 'cli', 'rate(1 minute)'],
      ['two', 'cdk', 'rate(10 minutes)'],
    ]);
    expect((await fleet.registry.get('manual'))?.secretId).toBe(`${fleet.secretPrefix}m`);
  });
});
