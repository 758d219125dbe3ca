/**
 * Fleet mode end to end: the dispatcher and worker handlers driven as Lambda drives them (schedule -> dispatcher;
 * SQS receive -> worker -> delete what succeeded) against Dovecot and moto_server (DynamoDB with the `due` index,
 * SQS, EventBridge -> rule -> SQS subscriber, Secrets Manager, S3).
 */
import { DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { DeleteMessageBatchCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { afterEach, describe, expect, it } from 'vitest';
import type { MailboxStatusReport } from '../../cli/commands/status.js';
import { DynamoDbRegistry } from '../../functions/fleet/adapters/dynamodb-registry.js';
import { parsePollRequest, SqsPollQueue } from '../../functions/fleet/adapters/sqs-poll-queue.js';
import { composeDispatcher } from '../../functions/fleet/compose.js';
import { FAILURE_BACKOFF } from '../../functions/fleet/core/registry.js';
import { dispatchCycle } from '../../functions/fleet/run/dispatch.js';
import { DynamoDbPollStatusStore } from '../../functions/poller/adapters/dynamodb-status-store.js';
import { DISPATCHER_ENV, dispatcherStateKey } from '../../functions/poller/contract/fleet.js';
import type { MessageReceivedDetail } from '../../functions/poller/core/event-detail.js';
import { silentLog } from '../../functions/poller/ports.js';
import { runCli, tempDir } from '../support/cli.js';
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

    const tick = new Date();
    const first = await fleet.dispatch(tick);
    expect(first).toMatchObject({ active: 3, dispatched: 3, inBackoff: 0 });
    // The same tick again (EventBridge delivers at least once): the dispatcher state refuses it, nothing is sent.
    expect(await fleet.dispatch(tick)).toMatchObject({ dispatched: 0, duplicate: true });
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

    // `status` lists the registry's mailboxes and checks each folder live with the mailbox's own username (the shared
    // secret's is "nobody").
    const shown = await runCli(['status', '--table', fleet.table, '--json'], { cwd: tempDir() });
    expect(shown.stderr).toBe('');
    const report = JSON.parse(shown.stdout) as { healthy: boolean; mailboxes: MailboxStatusReport[] };
    expect(report.mailboxes.map((m) => m.mailboxId)).toEqual(['alpha', 'beta', 'gamma']);
    expect(report.mailboxes.find((m) => m.mailboxId === 'gamma')).toMatchObject({
      healthy: true,
      waiting: 0,
      live: { ok: true, messages: 3 },
      fleet: { state: 'active', username: c.user.username },
    });
    expect(shown.code).toBe(0);
  });

  it('backs off a mailbox with a wrong password, records the reason, and keeps polling the others', async () => {
    const fleet = await Fleet.create();
    fleet.use();
    const good = await userWithMail(1);
    const bad = await userWithMail(1);
    await fleet.aws.createSecret(`${fleet.secretPrefix}good`, mailboxSecret(imap, good.user));
    await fleet.aws.createSecret(`${fleet.secretPrefix}bad`, { ...mailboxSecret(imap, bad.user), password: 'wrong' });
    // Registered ten minutes ago, so the cycles below can run at ticks in the past (never ahead of the clock).
    const registered = new Date(Date.now() - 10 * 60_000);
    await fleet.register({ id: 'good', secretId: `${fleet.secretPrefix}good` }, 'cdk', registered);
    await fleet.register({ id: 'bad', secretId: `${fleet.secretPrefix}bad` }, 'cdk', registered);

    const before = Date.now();
    await fleet.dispatch(new Date(before - 2 * 60_000));
    await fleet.drain({ lanes: 1 });
    const entry = await fleet.registry.get('bad');
    expect(entry).toMatchObject({ failures: 1, lastErrorCode: 'IMAP_AUTH_FAILED' });
    expect(entry!.lastErrorMessage).not.toContain('wrong');
    expect(entry!.backoffUntil).toBeGreaterThanOrEqual(before + FAILURE_BACKOFF.baseMs);
    expect(entry!.dueAt).toBe(entry!.backoffUntil);
    expect((await fleet.registry.get('good'))?.failures).toBe(0);

    // The next tick: good is due on its schedule; bad backs off (its anchor is the backoff's end), counted in the gauge.
    expect(await fleet.dispatch(new Date())).toMatchObject({ dispatched: 1, inBackoff: 1 });
    await fleet.drain({ lanes: 1 });

    // `status` shows the backoff, its reason and the way out, and calls the mailbox unhealthy.
    const status = async (id: string, ...args: string[]) => {
      const shown = await runCli(['status', '--table', fleet.table, '--mailbox', id, '--no-live', '--json', ...args], {
        cwd: tempDir(),
      });
      expect(shown.stderr).toBe('');
      return {
        code: shown.code,
        report: (JSON.parse(shown.stdout) as { mailboxes: MailboxStatusReport[] }).mailboxes[0]!,
      };
    };
    const backingOff = await status('bad');
    expect(backingOff.code).toBe(1);
    expect(backingOff.report.fleet).toMatchObject({
      state: 'backoff',
      failures: 1,
      lastError: { code: 'IMAP_AUTH_FAILED' },
      nextAttemptAt: new Date(entry!.backoffUntil!).toISOString(),
    });
    expect(backingOff.report.problems.find((p) => p.code === 'BACKOFF')?.message).toContain('mailbox resume');

    // Resumed (the admin fixed the password): due at once, failures reset.
    expect(await fleet.registry.resume('bad', new Date())).toBe(true);
    expect(await fleet.registry.get('bad')).toMatchObject({ failures: 0, paused: false });
    expect((await status('bad')).report.problems.map((p) => p.code)).not.toContain('BACKOFF');

    // Paused by an admin: not expected to poll, so not stale however short the limit.
    await fleet.registry.pause('good');
    const paused = await status('good', '--stale-after', '0.001');
    expect(paused).toMatchObject({ code: 0, report: { healthy: true, fleet: { state: 'paused' } } });
    await fleet.registry.resume('good', new Date());
    expect(await status('good', '--stale-after', '0.001')).toMatchObject({
      code: 1,
      report: { problems: [{ code: 'STALE' }] },
    });
  });

  it('keeps the schedule of a mailbox whose server is unreachable (transient), noting since when it fails', async () => {
    const fleet = await Fleet.create();
    fleet.use();
    const { user } = await userWithMail(1);
    await fleet.aws.createSecret(`${fleet.secretPrefix}down`, { ...mailboxSecret(imap, user), port: await freePort() });
    const anchor = new Date();
    await fleet.register({ id: 'down', secretId: `${fleet.secretPrefix}down` }, 'cdk', anchor);
    const before = Date.now();
    await fleet.dispatch();
    await fleet.drain({ lanes: 1 });
    const entry = await fleet.registry.get('down');
    expect(entry).toMatchObject({ failures: 0 });
    expect(entry!.backoffUntil).toBeUndefined();
    expect(entry!.failingSince).toBeGreaterThanOrEqual(before);
    expect(entry!.dueAt).toBe(anchor.getTime()); // a transient failure keeps its schedule: the anchor stays
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

describe('fleet: dispatcher cycles', () => {
  const MIN = 60_000;

  /** The dispatcher's ports against moto, its DynamoDB client counting the table writes it sends. */
  async function dispatcher(fleet: Fleet, options: { queueUrl?: string } = {}) {
    const writes: string[] = [];
    const client = new DynamoDBClient(fleet.aws.clientConfig);
    client.middlewareStack.add(
      (next, context) => async (args) => {
        if (/^(PutItem|UpdateItem|DeleteItem|BatchWriteItem|TransactWriteItems)Command$/.test(context.commandName!))
          writes.push(context.commandName!);
        return next(args);
      },
      { step: 'initialize', name: 'countWrites' },
    );
    const deps = {
      registry: new DynamoDbRegistry(client, fleet.table),
      queue: new SqsPollQueue(fleet.aws.sqs, options.queueUrl ?? fleet.queueUrl),
      log: silentLog,
    };
    /** One cycle at the tick `at`; returns its summary and the table writes it made. */
    const cycle = async (at: number, maxPerCycle = 100) => {
      writes.length = 0;
      const summary = await dispatchCycle({ ...deps, now: () => new Date(at) }, { maxPerCycle });
      return { ...summary, writes: writes.length };
    };
    return { cycle, writes };
  }

  /** Every poll request in the queue (received and deleted): the mailbox ids, sorted. */
  async function takeRequests(fleet: Fleet): Promise<string[]> {
    const ids: string[] = [];
    for (;;) {
      const { Messages = [] } = await fleet.aws.sqs.send(
        new ReceiveMessageCommand({ QueueUrl: fleet.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
      );
      if (Messages.length === 0 && (await fleet.queueEmpty())) return ids.sort();
      for (const m of Messages) ids.push(parsePollRequest(m.Body!)!.mailboxId);
      if (Messages.length > 0) {
        await fleet.aws.sqs.send(
          new DeleteMessageBatchCommand({
            QueueUrl: fleet.queueUrl,
            Entries: Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
          }),
        );
      }
    }
  }

  it('writes one item per healthy cycle for the whole fleet; keeps each phase, catches up once, carries the overflow over, holds back on a backlog', async () => {
    const fleet = await Fleet.create();
    const t0 = Date.now() - 60 * MIN; // every tick below is in the past: never ahead of the clock
    const ids = Array.from({ length: 30 }, (_, i) => `m${String(i).padStart(2, '0')}`);
    for (const id of ids) await fleet.register({ id, secretId: `${fleet.secretPrefix}x` }, 'cli', new Date(t0));
    await fleet.register(
      { id: 'later', secretId: `${fleet.secretPrefix}x`, schedule: 'rate(5 minutes)' },
      'cli',
      new Date(t0 + 2 * MIN + 30_000),
    );
    const { cycle } = await dispatcher(fleet);

    // The first cycle ever: everything whose anchor has passed. One write: the dispatcher state.
    expect(await cycle(t0 + 1_000)).toMatchObject({ active: 31, dispatched: 30, deferred: 0, writes: 1 });
    expect(await takeRequests(fleet)).toEqual(ids);
    // A healthy cycle over 31 active mailboxes, 30 due on their schedule: exactly one table write.
    expect(await cycle(t0 + MIN + 1_000)).toMatchObject({ dispatched: 30, carriedOver: 0, writes: 1 });
    expect(await takeRequests(fleet)).toEqual(ids);
    // The same tick delivered again: refused by the one conditional write, nothing sent.
    expect(await cycle(t0 + MIN + 1_000)).toMatchObject({ dispatched: 0, duplicate: true, writes: 1 });
    expect(await takeRequests(fleet)).toEqual([]);
    // The dispatcher missed the ticks up to 12 min: each mailbox is sent once, `later` (due at 2:30, 7:30) too.
    expect(await cycle(t0 + 12 * MIN + 1_000)).toMatchObject({ dispatched: 31, writes: 1 });
    expect(await takeRequests(fleet)).toEqual([...ids, 'later'].sort());
    // Each keeps its own phase: `later` (due at 2:30, 7:30, 12:30 ...) again at 13:01, with the others.
    expect(await cycle(t0 + 13 * MIN + 1_000)).toMatchObject({ dispatched: 31, writes: 1 });
    expect(await takeRequests(fleet)).toEqual([...ids, 'later'].sort());

    // Over the cap: 20 sent, the other 10 carried over (their only writes), sent by the next cycle (no boundary).
    expect(await cycle(t0 + 14 * MIN + 1_000, 20)).toMatchObject({
      dispatched: 20,
      deferred: 10,
      carriedOver: 10,
      writes: 11,
    });
    const sent = await takeRequests(fleet);
    expect(await cycle(t0 + 14 * MIN + 40_000, 20)).toMatchObject({ dispatched: 10, writes: 1 });
    expect([...sent, ...(await takeRequests(fleet))].sort()).toEqual(ids);

    // The pool has not drained the last cycle: the 30 due on their schedule are held back (no write), a new one is
    // sent (it cannot have a request waiting).
    expect(await cycle(t0 + 16 * MIN + 10_000)).toMatchObject({ dispatched: 30, writes: 1 });
    await fleet.register({ id: 'fresh', secretId: `${fleet.secretPrefix}x` }, 'cli', new Date(t0 + 16 * MIN + 30_000));
    expect(await cycle(t0 + 17 * MIN + 10_000)).toMatchObject({
      backlog: 30,
      dispatched: 1,
      heldBack: 30,
      deferred: 30,
      writes: 1,
    });
    const queued = await takeRequests(fleet);
    expect(queued.filter((id) => id === 'fresh')).toHaveLength(1);
    expect(queued).toHaveLength(31);
  });

  it('two dispatchers at once send each due mailbox once', async () => {
    const fleet = await Fleet.create();
    fleet.use();
    const ids = Array.from({ length: 12 }, (_, i) => `m${String(i).padStart(2, '0')}`);
    for (const id of ids) await fleet.register({ id, secretId: `${fleet.secretPrefix}x` });
    const config = { table: fleet.table, queueUrl: fleet.queueUrl, maxPerCycle: 100 };
    // Both read the whole registry before either starts its cycle. Their two conditional writes then go one after
    // the other: DynamoDB serializes the writes to one item (what the dispatcher relies on), while moto_server
    // applies a condition without a lock, so two writes in the very same instant could both pass there.
    let arrived = 0;
    let bothRead!: () => void;
    const reads = new Promise<void>((resolve) => {
      bothRead = resolve;
    });
    let gate = Promise.resolve();
    const run = async () => {
      const parts = await composeDispatcher(config, { clientConfig: fleet.aws.clientConfig });
      const registry: typeof parts.registry = Object.assign(Object.create(parts.registry), {
        startCycle: async (now: number, minGapMs: number) => {
          if (++arrived === 2) bothRead();
          await reads;
          const write = gate.then(() => parts.registry.startCycle(now, minGapMs));
          gate = write.then(
            () => undefined,
            () => undefined,
          );
          return write;
        },
      });
      return dispatchCycle({ ...parts, registry, log: silentLog, now: () => new Date() }, config);
    };
    const [one, two] = await Promise.all([run(), run()]);
    expect([one.active, two.active]).toEqual([12, 12]);
    expect(one.dispatched + two.dispatched).toBe(12);
    expect([one.duplicate, two.duplicate].filter(Boolean)).toHaveLength(1);
    expect(await takeRequests(fleet)).toEqual(ids);
  });

  it('carries the mailboxes whose requests SQS did not take over to the next cycle', async () => {
    const fleet = await Fleet.create();
    const t0 = Date.now() - 10 * MIN;
    for (const id of ['a', 'b', 'c'])
      await fleet.register({ id, secretId: `${fleet.secretPrefix}x` }, 'cli', new Date(t0));
    const gone = `${fleet.queueUrl}-missing`;
    const broken = await dispatcher(fleet, { queueUrl: gone });
    expect(await broken.cycle(t0 + 1_000)).toMatchObject({ dispatched: 0, deferred: 3, carriedOver: 3, writes: 4 });
    // The next cycle (no boundary in between) sends them: carried over, not lost until their next minute.
    const { cycle } = await dispatcher(fleet);
    expect(await cycle(t0 + 50_000)).toMatchObject({ dispatched: 3, writes: 1 });
    expect(await takeRequests(fleet)).toEqual(['a', 'b', 'c']);
  });

  it('runs the scheduled cycle at the tick, and sends a mailbox added since the last cycle at the next', async () => {
    const fleet = await Fleet.create();
    fleet.use();
    const t0 = Date.now() - 10 * MIN;
    await fleet.register(
      { id: 'first', secretId: `${fleet.secretPrefix}x`, schedule: 'rate(1 hour)' },
      'cli',
      new Date(t0),
    );
    expect(await fleet.dispatch(new Date(t0 + MIN))).toMatchObject({ dispatched: 1 });
    await fleet.register(
      { id: 'second', secretId: `${fleet.secretPrefix}x`, schedule: 'rate(1 hour)' },
      'cli',
      new Date(t0 + 90_000),
    );
    expect(await fleet.dispatch(new Date(t0 + 2 * MIN))).toMatchObject({ dispatched: 1 });
    expect(await fleet.dispatch(new Date(t0 + 3 * MIN))).toMatchObject({ dispatched: 0, active: 2 });
    expect(await takeRequests(fleet)).toEqual(['first', 'second']);
    // The state item holds the last tick; it is not a registry item.
    expect(await fleet.registry.lastCycleAt()).toBe(t0 + 3 * MIN);
    expect((await fleet.registry.list()).map((e) => e.id)).toEqual(['first', 'second']);

    // A damaged state item (a hand edit, a clock far ahead) does not stop the fleet: the cycle runs as the first.
    for (const lastCycleAt of [{ S: 'broken' }, { N: String(Date.now() + 24 * 60 * MIN) }]) {
      await fleet.aws.dynamodb.send(
        new PutItemCommand({ TableName: fleet.table, Item: { pk: { S: dispatcherStateKey() }, lastCycleAt } }),
      );
      expect(await fleet.dispatch()).toMatchObject({ dispatched: 2 });
      expect(await takeRequests(fleet)).toEqual(['first', 'second']);
    }
  });
});
