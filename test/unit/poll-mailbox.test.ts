import { Readable } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import type { MailboxSettings } from '../../functions/poller/core/settings.js';
import type { Checkpoint, StartAt } from '../../functions/poller/core/types.js';
import {
  CheckpointConflictError,
  ConfigurationError,
  EventPublishError,
  ImapAuthError,
  ImapConnectionError,
  ImapProtocolError,
  SecretAccessError,
} from '../../functions/poller/errors.js';
import type { PollDeps, RawMessageStore } from '../../functions/poller/ports.js';
import type { MessageDetailer } from '../../functions/poller/run/message-detail.js';
import { ParsePool } from '../../functions/poller/run/parse-pool.js';
import { type PollOptions, type PollSummary, pollMailbox } from '../../functions/poller/run/poll-mailbox.js';
import { messageIdHash } from '../../functions/poller/run/prepare.js';
import {
  FakeClock,
  FakeFolder,
  FakeMailbox,
  type FakeSession,
  FakeSettingsSource,
  InMemoryCheckpointStore,
  settings as makeSettings,
  PASSWORD,
  prng,
  RecordingLog,
  RecordingPublisher,
} from './fakes.js';

const MAILBOX = 'support';
const V1 = '1700000000';
const V2 = '1800000000';

interface World {
  folder: FakeFolder;
  mailbox: FakeMailbox;
  store: InMemoryCheckpointStore;
  publisher: RecordingPublisher;
  settings: FakeSettingsSource;
  log: RecordingLog;
  clock: FakeClock;
  deps: PollDeps;
  /** One poll; the deadline is 10 minutes away unless given. */
  run(options?: Partial<PollOptions>): Promise<PollSummary>;
  /** The session of the latest run. */
  session(): FakeSession;
  checkpoint(): Checkpoint | undefined;
  /** Seeds a stored checkpoint (version 1) for INBOX. */
  seed(overrides?: Partial<Checkpoint>): Checkpoint;
}

function world(
  options: {
    startAt?: StartAt;
    settings?: Partial<MailboxSettings>;
    lease?: boolean;
    rawStore?: RawMessageStore;
    folder?: FakeFolder;
    detailer?: MessageDetailer;
  } = {},
): World {
  const folder = options.folder ?? new FakeFolder(V1);
  const secret = makeSettings(options.settings);
  const mailbox = new FakeMailbox({ [secret.folder]: folder });
  const store = new InMemoryCheckpointStore();
  const publisher = new RecordingPublisher();
  const settings = new FakeSettingsSource(secret);
  const log = new RecordingLog();
  const clock = new FakeClock();
  const deps: PollDeps = {
    settings,
    checkpoints: store,
    ...(options.lease === false ? {} : { lease: store }),
    mailbox,
    publisher,
    ...(options.rawStore ? { rawStore: options.rawStore } : {}),
    ...(options.detailer ? { detailer: options.detailer } : {}),
    log,
    now: clock.now,
  };
  let runs = 0;
  return {
    folder,
    mailbox,
    store,
    publisher,
    settings,
    log,
    clock,
    deps,
    run: (o = {}) =>
      pollMailbox(deps, {
        mailboxId: MAILBOX,
        eventSource: 'imap-event-source',
        eventBusName: 'mail-bus',
        startAt: options.startAt ?? { kind: 'now' },
        deadline: clock.ms + 600_000,
        runId: `run-${++runs}`,
        ...o,
      }),
    session: () => {
      const s = mailbox.sessions.at(-1);
      if (!s) throw new Error('no session was opened');
      return s;
    },
    checkpoint: () => store.current(MAILBOX, secret.folder),
    seed: (overrides = {}) =>
      store.seed({
        mailboxId: MAILBOX,
        folder: secret.folder,
        uidValidity: folder.uidValidity,
        lastUid: 0,
        ...overrides,
      }),
  };
}

const uids = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('pollMailbox: first run (no checkpoint)', () => {
  it('START_AT=now remembers UIDNEXT-1 and publishes nothing', async () => {
    const w = world({ startAt: { kind: 'now' } });
    w.folder.appendMany(3);
    const summary = await w.run();
    expect(summary).toMatchObject({
      outcome: 'baseline',
      published: 0,
      skipped: 0,
      uidValidity: V1,
      folder: 'INBOX',
      toUid: 3,
      fromUid: null,
    });
    expect(w.publisher.calls).toEqual([]);
    expect(w.store.puts).toEqual([
      { next: expect.objectContaining({ lastUid: 3, uidValidity: V1 }), expectedVersion: 0, ok: true },
    ]);
    // The newest message's arrival time is the server's time basis for a later re-scan; its Message-ID is remembered.
    const newest = w.folder.messages.at(-1)!;
    expect(w.checkpoint()).toMatchObject({ lastUid: 3, version: 1, lastInternalDate: newest.internalDate });
    expect(w.checkpoint()?.recentMessageIds).toHaveLength(1);
    expect(w.session().ops()).toEqual(['status', 'open', 'listNew', 'close']);
  });

  it('START_AT=now on an empty folder baselines at 0, and the next run publishes the first mail', async () => {
    const w = world({ startAt: { kind: 'now' } });
    expect(await w.run()).toMatchObject({ outcome: 'baseline', toUid: 0 });
    w.folder.appendMany(2);
    expect(await w.run()).toMatchObject({ outcome: 'published', published: 2, fromUid: 1, toUid: 2 });
    expect(w.publisher.publishedUids()).toEqual([1, 2]);
  });

  it('START_AT=all publishes everything in UID order, as contract-2 events', async () => {
    const w = world({ startAt: { kind: 'all' } });
    const [first] = w.folder.appendMany(3, (i) => ({ subject: `Subject ${i}` }));
    const summary = await w.run();
    expect(summary).toMatchObject({
      outcome: 'published',
      published: 3,
      skipped: 0,
      fromUid: 1,
      toUid: 3,
      uidValidity: V1,
    });
    expect(w.publisher.published.map((e) => [e.Source, e.DetailType, e.EventBusName, e.uid])).toEqual([
      ['imap-event-source', 'IMAP Message Received', 'mail-bus', 1],
      ['imap-event-source', 'IMAP Message Received', 'mail-bus', 2],
      ['imap-event-source', 'IMAP Message Received', 'mail-bus', 3],
    ]);
    const detail = w.publisher.messageDetails()[0]!;
    expect(detail).toMatchObject({
      version: '1',
      eventId: `${MAILBOX}:${V1}:1`,
      mailboxId: MAILBOX,
      folder: 'INBOX',
      uid: 1,
      uidValidity: V1,
      messageId: first!.messageId,
      subject: 'Subject 0',
      from: [{ name: 'Alice Example', address: 'alice@example.com' }],
      internalDate: first!.internalDate,
      size: first!.raw.length,
      truncated: false,
    });
    expect(detail.text).toContain('Hello.');
    expect(w.checkpoint()).toMatchObject({
      lastUid: 3,
      version: 1,
      lastInternalDate: w.folder.messages[2]!.internalDate,
    });
    expect(w.checkpoint()!.recentMessageIds).toEqual(w.folder.messages.map((m) => messageIdHash(m.messageId!)));
    expect(w.session().ops()).toEqual(['status', 'open', 'listSizes', 'fetchSources', 'close']);
  });

  it('with parse workers, publishes the same events and checkpoint as without', async () => {
    const pool = new ParsePool(1);
    try {
      expect(await pool.started()).toBe(true);
      const folder = new FakeFolder(V1); // the same messages for both runs
      folder.appendMany(25, (i) => ({ subject: `Subject ${i}` }));
      const plain = world({ startAt: { kind: 'all' }, folder });
      const pooled = world({ startAt: { kind: 'all' }, folder, detailer: pool });
      for (const w of [plain, pooled]) expect(await w.run({ batchSize: 10 })).toMatchObject({ published: 25 });
      expect(pooled.publisher.published).toEqual(plain.publisher.published);
      expect(pooled.checkpoint()).toEqual(plain.checkpoint());
    } finally {
      await pool.close();
    }
  });

  it('START_AT=all on an empty folder stores a checkpoint at 0, so the next poll is idle', async () => {
    const w = world({ startAt: { kind: 'all' } });
    expect(await w.run()).toMatchObject({ outcome: 'published', published: 0, toUid: 0 });
    expect(w.checkpoint()).toMatchObject({ lastUid: 0, version: 1 });
    expect(await w.run()).toMatchObject({ outcome: 'idle' });
    expect(w.session().ops()).toEqual(['status', 'close']);
  });

  it('START_AT=<date> publishes only mail that arrived since, then ends the re-scan', async () => {
    const since = new Date('2026-11-20T00:00:00.000Z');
    const w = world({ startAt: { kind: 'since', since } });
    w.folder.append({ internalDate: '2026-11-01T00:00:00Z' });
    w.folder.append({ internalDate: '2026-11-19T23:59:59.999Z' });
    w.folder.append({ internalDate: '2026-11-20T00:00:00Z' });
    w.folder.append({ internalDate: '2026-11-25T00:00:00Z' });
    w.folder.append({ internalDate: '2026-11-10T00:00:00Z' }); // appended late with an old arrival time
    const summary = await w.run();
    expect(summary).toMatchObject({ outcome: 'published', published: 2, toUid: 5 });
    expect(w.publisher.publishedUids()).toEqual([3, 4]);
    expect(w.session().calls.find((c) => c.op === 'listNew')).toEqual({
      op: 'listNew',
      fromUid: 1,
      limit: 1_000,
      since: since.toISOString(),
    });
    const c = w.checkpoint()!;
    expect(c.lastUid).toBe(5);
    expect(c).not.toHaveProperty('rescanSince');
    // The next poll is a plain incremental one.
    w.folder.append({ internalDate: '2026-10-01T00:00:00Z' });
    await w.run();
    expect(w.publisher.publishedUids()).toEqual([3, 4, 6]);
  });
});

describe('pollMailbox: incremental polls', () => {
  it('publishes new mail from lastUid+1 and advances the checkpoint', async () => {
    const w = world();
    w.folder.appendMany(5);
    w.seed({ lastUid: 3 });
    const summary = await w.run();
    expect(summary).toMatchObject({ outcome: 'published', published: 2, fromUid: 4, toUid: 5 });
    expect(w.publisher.publishedUids()).toEqual([4, 5]);
    expect(w.checkpoint()).toMatchObject({ lastUid: 5, version: 2 });
    expect(w.store.puts.map((p) => p.expectedVersion)).toEqual([1]);
    expect(w.session().calls.find((c) => c.op === 'listSizes')).toEqual({
      op: 'listSizes',
      fromUid: 4,
      limit: 1_000,
      sizeBound: Math.floor((4 * 1024 * 1024) / 100),
    });
  });

  it('an empty poll is ONE session command after connect (STATUS), with no write and no publish', async () => {
    const w = world();
    w.folder.appendMany(4);
    const seeded = w.seed({ lastUid: 4 });
    const summary = await w.run();
    expect(summary).toMatchObject({ outcome: 'idle', published: 0, toUid: 4, fromUid: null, uidValidity: V1 });
    expect(w.session().ops()).toEqual(['status', 'close']);
    expect(w.store.puts).toEqual([]);
    expect(w.publisher.calls).toEqual([]);
    expect(w.checkpoint()).toEqual(seeded);
  });

  it('with checkpointEveryMessages 1, writes the checkpoint after every batch, with increasing versions', async () => {
    const w = world({ startAt: { kind: 'all' } });
    w.folder.appendMany(25);
    const summary = await w.run({ batchSize: 10, checkpointEveryMessages: 1 });
    expect(summary).toMatchObject({ outcome: 'published', published: 25, toUid: 25 });
    expect(w.publisher.calls.map((c) => c.map((e) => e.uid))).toEqual([uids(1, 10), uids(11, 20), uids(21, 25)]);
    expect(w.store.puts.map((p) => [p.expectedVersion, p.next.lastUid, p.ok])).toEqual([
      [0, 10, true],
      [1, 20, true],
      [2, 25, true],
    ]);
    expect(w.checkpoint()).toMatchObject({ lastUid: 25, version: 3 });
    // One fetch of sources per batch.
    expect(
      w
        .session()
        .calls.filter((c) => c.op === 'fetchSources')
        .map((c) => (c as { uids: number[] }).uids),
    ).toEqual([uids(1, 10), uids(11, 20), uids(21, 25)]);
  });

  it('writes the checkpoint on a cadence: every checkpointEveryMessages messages (at a batch end) and at the end', async () => {
    const w = world({ startAt: { kind: 'all' } });
    w.folder.appendMany(1_234);
    const summary = await w.run({ maxMessagesPerRun: 5_000 });
    expect(summary).toMatchObject({ outcome: 'published', published: 1_234, toUid: 1_234 });
    // Default: batches of 100, a write once 500 messages are done since the last one.
    expect(w.store.puts.map((p) => [p.expectedVersion, p.next.lastUid, p.ok])).toEqual([
      [0, 500, true],
      [1, 1_000, true],
      [2, 1_234, true],
    ]);
    expect(w.publisher.calls.map((c) => c.length)).toEqual([...Array(12).fill(100), 34]);
  });

  it("writes the checkpoint on a cadence: checkpointEveryMs after the last write, on the run's clock", async () => {
    const w = world({ startAt: { kind: 'all' } });
    w.folder.appendMany(30);
    w.publisher.onCall = () => w.clock.advance(2_000);
    await w.run({ batchSize: 10, checkpointEveryMs: 3_000 });
    // Each batch takes 2 s: due after the second batch (4 s), then at the end.
    expect(w.store.puts.map((p) => p.next.lastUid)).toEqual([20, 30]);
  });

  it('bounds the download of each message and marks the event truncated', async () => {
    const w = world({ startAt: { kind: 'all' } });
    w.folder.append({ body: 'x'.repeat(10_000) });
    await w.run({ maxMessageBytes: 1_000 });
    expect(w.session().calls.find((c) => c.op === 'fetchSources')).toMatchObject({ maxBytes: 1_000 });
    expect(w.publisher.messageDetails()[0]).toMatchObject({ truncated: true, size: w.folder.messages[0]!.raw.length });
  });

  it('never changes the mailbox', async () => {
    const w = world({ startAt: { kind: 'all' } });
    w.folder.appendMany(12, (i) => ({ flags: i % 2 ? ['\\Flagged'] : [] }));
    const before = w.folder.snapshot();
    await w.run({ batchSize: 5 });
    expect(w.folder.snapshot()).toBe(before);
    expect(
      w
        .session()
        .ops()
        .every((op) => ['status', 'open', 'listSizes', 'fetchSources', 'close'].includes(op)),
    ).toBe(true);
  });
});

describe('pollMailbox: publishing failures', () => {
  it('a partial PutEvents failure stops the checkpoint right before the failed UID; the next run republishes from there', async () => {
    const w = world();
    w.folder.appendMany(10);
    w.seed({ lastUid: 0 });
    w.publisher.reject = (entry) => (entry.uid === 6 ? 'InternalFailure' : undefined);

    const err = await w.run().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EventPublishError);
    expect((err as EventPublishError).message).toContain('UID 6');
    expect((err as EventPublishError).message).toContain('InternalFailure');
    expect((err as EventPublishError).retryable).toBe(true);
    expect(w.checkpoint()).toMatchObject({ lastUid: 5, version: 2 });
    expect(w.checkpoint()!.recentMessageIds).toHaveLength(5);
    expect(w.session().closed).toBe(true);

    w.publisher.reject = undefined;
    const summary = await w.run();
    expect(summary).toMatchObject({ outcome: 'published', fromUid: 6, toUid: 10, published: 5 });
    expect(w.checkpoint()).toMatchObject({ lastUid: 10, version: 3 });
    // At least once: every UID was published; 7..10 twice (consumers dedupe on eventId).
    const published = w.publisher.publishedUids();
    expect(new Set(published)).toEqual(new Set(uids(1, 10)));
    expect(published.filter((u) => u === 8)).toHaveLength(2);
  });

  it('a failure in a later batch keeps the earlier batches committed', async () => {
    const w = world({ startAt: { kind: 'all' } });
    w.folder.appendMany(25);
    w.publisher.reject = (entry) => (entry.uid === 11 ? 'ThrottlingException' : undefined);
    await expect(w.run({ batchSize: 10 })).rejects.toBeInstanceOf(EventPublishError);
    expect(w.checkpoint()).toMatchObject({ lastUid: 10, version: 1 });
    expect(w.publisher.calls).toHaveLength(2);
  });

  it('a publisher that throws leaves the checkpoint untouched', async () => {
    const w = world();
    w.folder.appendMany(3);
    const seeded = w.seed({ lastUid: 1 });
    const boom = new EventPublishError('The event bus does not exist.', { retryable: false });
    w.publisher.throwErrors = [boom];
    await expect(w.run()).rejects.toBe(boom);
    expect(w.store.puts).toEqual([]);
    expect(w.checkpoint()).toEqual(seeded);
    expect(w.session().closed).toBe(true);
    expect(w.store.leases.size).toBe(0);
  });

  it('a checkpoint conflict stops the run: CheckpointConflictError and no further publishing', async () => {
    const w = world();
    w.folder.appendMany(30);
    w.seed({ lastUid: 0 });
    // Another run advances the checkpoint while we publish our first batch.
    w.store.beforePut = () => {
      w.store.beforePut = undefined;
      w.store.seed({ mailboxId: MAILBOX, folder: 'INBOX', uidValidity: V1, lastUid: 10, version: 2 });
    };
    await expect(w.run({ batchSize: 10, checkpointEveryMessages: 1 })).rejects.toBeInstanceOf(CheckpointConflictError);
    expect(w.publisher.calls).toHaveLength(1);
    expect(w.store.puts.map((p) => p.ok)).toEqual([false]);
    expect(w.checkpoint()).toMatchObject({ lastUid: 10, version: 2 });
    expect(w.session().closed).toBe(true);
  });

  it('a baseline that loses the race to another run raises CheckpointConflictError', async () => {
    const w = world({ startAt: { kind: 'now' } });
    w.folder.appendMany(2);
    w.store.beforePut = () => {
      w.store.beforePut = undefined;
      w.seed({ lastUid: 1 });
    };
    await expect(w.run()).rejects.toBeInstanceOf(CheckpointConflictError);
    expect(w.checkpoint()).toMatchObject({ lastUid: 1, version: 1 });
  });

  it('two overlapping runs without a lease never both advance the checkpoint', async () => {
    const w = world({ lease: false });
    w.folder.appendMany(4);
    w.seed({ lastUid: 0 });
    const results = await Promise.allSettled([w.run(), w.run()]);
    const fulfilled = results.filter((r) => r.status === 'fulfilled');
    const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(fulfilled).toHaveLength(1);
    expect(rejected).toHaveLength(1);
    expect(rejected[0]!.reason).toBeInstanceOf(CheckpointConflictError);
    expect(w.store.puts.filter((p) => p.ok)).toHaveLength(1);
    expect(w.checkpoint()).toMatchObject({ lastUid: 4, version: 2 });
  });
});

describe('pollMailbox: the checkpoint never passes an unpublished UID', () => {
  it('holds over random backlogs, batch sizes, rejected entries, expunges and caps', async () => {
    for (let seed = 1; seed <= 40; seed++) {
      const random = prng(seed);
      const w = world({ startAt: { kind: 'all' } });
      w.folder.appendMany(1 + Math.floor(random() * 40));
      w.publisher.reject = () => (random() < 0.15 ? 'InternalFailure' : undefined);
      w.mailbox.hooks.beforeFetch = (folder, wanted) => {
        if (wanted.length > 0 && random() < 0.2) folder.expunge(wanted[Math.floor(random() * wanted.length)]!);
      };
      const accepted = (): Set<number> => new Set(w.publisher.publishedUids());

      let outcome: string | undefined;
      for (let run = 0; run < 200 && outcome !== 'idle'; run++) {
        if (random() < 0.2) w.folder.append();
        try {
          outcome = (
            await w.run({
              batchSize: 1 + Math.floor(random() * 12),
              maxMessagesPerRun: 5 + Math.floor(random() * 30),
              checkpointEveryMessages: 1 + Math.floor(random() * 20),
            })
          ).outcome;
        } catch (err) {
          expect(err).toBeInstanceOf(EventPublishError);
          outcome = 'failed';
        }
        const lastUid = w.checkpoint()?.lastUid ?? 0;
        const published = accepted();
        for (const m of w.folder.messages)
          if (m.uid <= lastUid) expect(published.has(m.uid), `seed ${seed}: UID ${m.uid} <= ${lastUid}`).toBe(true);
        for (const s of w.mailbox.sessions) expect(s.closed).toBe(true);
      }
      expect(outcome).toBe('idle');
      // Eventually everything still in the folder was published.
      const published = accepted();
      for (const m of w.folder.messages) expect(published.has(m.uid)).toBe(true);
      expect(w.checkpoint()!.lastUid).toBe(w.folder.uidNext - 1);
    }
  });
});

describe('pollMailbox: bounded runs', () => {
  it('stops after maxMessagesPerRun: outcome partial, stoppedBy, and the next run continues', async () => {
    const w = world({ startAt: { kind: 'all' } });
    w.folder.appendMany(25);
    const first = await w.run({ maxMessagesPerRun: 10 });
    expect(first).toMatchObject({ outcome: 'partial', stoppedBy: 'maxMessagesPerRun', published: 10, toUid: 10 });
    expect(w.checkpoint()).toMatchObject({ lastUid: 10 });
    expect(w.session().calls.find((c) => c.op === 'listSizes')).toMatchObject({ limit: 10 });

    expect(await w.run({ maxMessagesPerRun: 10 })).toMatchObject({
      outcome: 'partial',
      stoppedBy: 'maxMessagesPerRun',
      fromUid: 11,
      toUid: 20,
    });
    const last = await w.run({ maxMessagesPerRun: 10 });
    expect(last).toMatchObject({ outcome: 'published', fromUid: 21, toUid: 25, published: 5 });
    expect(last).not.toHaveProperty('stoppedBy');
    expect(w.publisher.publishedUids()).toEqual(uids(1, 25));
  });

  it('a cap that exactly matches the backlog is a complete run', async () => {
    const w = world({ startAt: { kind: 'all' } });
    w.folder.appendMany(10);
    expect(await w.run({ maxMessagesPerRun: 10 })).toMatchObject({ outcome: 'published', published: 10 });
  });

  it('stops before the deadline mid-backlog with a consistent checkpoint; the next run continues', async () => {
    const w = world({ startAt: { kind: 'all' } });
    w.folder.appendMany(35);
    // Every PutEvents takes 10 s; 5 s are reserved; the deadline allows two batches to start.
    w.publisher.onCall = () => w.clock.advance(10_000);
    const deadline = w.clock.ms + 5_000 + 15_000;
    const summary = await w.run({ batchSize: 10, deadline, reserveMs: 5_000 });
    expect(summary).toMatchObject({ outcome: 'partial', stoppedBy: 'deadline', published: 20, toUid: 20 });
    expect(summary.durationMs).toBe(20_000);
    expect(w.publisher.calls).toHaveLength(2);
    expect(w.checkpoint()).toMatchObject({ lastUid: 20, version: 2 });
    expect(w.session().closed).toBe(true);

    const next = await w.run({ batchSize: 10 });
    expect(next).toMatchObject({ outcome: 'published', fromUid: 21, toUid: 35, published: 15 });
    expect(w.publisher.publishedUids()).toEqual(uids(1, 35));
  });

  it('a run shorter than the reserve still makes progress: the reserve shrinks to two thirds of the run', async () => {
    const w = world();
    w.folder.appendMany(25);
    w.seed({ lastUid: 0 });
    // 4 s left, 5 s reserve asked for: the reserve becomes 2.67 s, so batches start during the first 1.33 s;
    // each PutEvents takes 0.8 s: two batches start.
    w.publisher.onCall = () => w.clock.advance(800);
    const summary = await w.run({ deadline: w.clock.ms + 4_000, batchSize: 10 });
    expect(summary).toMatchObject({ outcome: 'partial', stoppedBy: 'deadline', published: 20, toUid: 20 });
    expect(w.publisher.calls).toHaveLength(2);
    expect(w.checkpoint()).toMatchObject({ lastUid: 20 });
  });

  it('an explicit reserve that fits is kept as given', async () => {
    const w = world();
    w.folder.appendMany(10);
    w.seed({ lastUid: 0 });
    // 9 s left, 3 s reserved: batches start during the first 6 s; each takes 1.1 s, so six start.
    w.publisher.onCall = () => w.clock.advance(1_100);
    const summary = await w.run({ deadline: w.clock.ms + 9_000, reserveMs: 3_000, batchSize: 1 });
    expect(summary).toMatchObject({ outcome: 'partial', stoppedBy: 'deadline', published: 6 });
  });

  it('fails loudly, naming the timeout, when the run has less than a second, and touches nothing', async () => {
    const w = world();
    w.folder.appendMany(3);
    w.seed({ lastUid: 0 });
    const error = await w.run({ deadline: w.clock.ms + 900 }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as ConfigurationError).message).toMatch(/Only 900 ms of the Lambda timeout were left/);
    expect((error as ConfigurationError).hint).toMatch(/timeout/);
    expect(w.store.leaseCalls).toEqual([]);
    expect(w.mailbox.sessions).toEqual([]);
    expect(w.publisher.calls).toEqual([]);
  });
});

describe('pollMailbox: expunged messages', () => {
  it('passes over a message expunged between listing and fetching, and moves on', async () => {
    const w = world();
    w.folder.appendMany(5);
    w.seed({ lastUid: 0 });
    w.mailbox.hooks.beforeFetch = (folder) => folder.expunge(3);
    const summary = await w.run();
    expect(summary).toMatchObject({ outcome: 'published', published: 4, skipped: 1, toUid: 5 });
    expect(w.publisher.publishedUids()).toEqual([1, 2, 4, 5]);
    expect(w.checkpoint()!.lastUid).toBe(5);
  });

  it('a batch whose messages are all gone still advances the checkpoint', async () => {
    const w = world();
    w.folder.appendMany(4);
    w.seed({ lastUid: 0 });
    w.mailbox.hooks.beforeFetch = (folder, wanted) => folder.expunge(...wanted);
    const summary = await w.run({ batchSize: 2, checkpointEveryMessages: 1 });
    expect(summary).toMatchObject({ published: 0, skipped: 4, toUid: 4 });
    expect(w.publisher.calls).toEqual([]);
    expect(w.store.puts.map((p) => p.next.lastUid)).toEqual([2, 4]);
  });

  it('skips a gap of expunged UIDs so the next poll is idle', async () => {
    const w = world();
    w.folder.appendMany(9);
    w.seed({ lastUid: 3 });
    w.folder.expunge(4, 5, 6, 7, 8, 9);
    const summary = await w.run();
    expect(summary).toMatchObject({ outcome: 'published', published: 0, toUid: 9 });
    expect(w.checkpoint()).toMatchObject({ lastUid: 9, version: 2 });
    await w.run();
    expect(w.session().ops()).toEqual(['status', 'close']);
  });

  it('skips a gap after the last published message', async () => {
    const w = world();
    w.folder.appendMany(9);
    w.seed({ lastUid: 3 });
    w.folder.expunge(6, 7, 8, 9);
    expect(await w.run()).toMatchObject({ published: 2, toUid: 9 });
    expect(w.store.puts.map((p) => p.next.lastUid)).toEqual([5, 9]);
    expect(await w.run()).toMatchObject({ outcome: 'idle' });
  });
});

describe('pollMailbox: a server that withholds or lies (issue #9)', () => {
  it('a listed message the body FETCH left out but a fresh search still finds: the checkpoint stops before it', async () => {
    const w = world();
    w.folder.appendMany(5);
    w.seed({ lastUid: 0 });
    w.mailbox.hooks.withheld = new Set([3]);
    await expect(w.run()).rejects.toThrow(/did not send UID 3/);
    // Nothing after it was published either (no event to repeat on the next run).
    expect(w.publisher.publishedUids()).toEqual([1, 2]);
    expect(w.checkpoint()!.lastUid).toBe(2);
    expect(w.session().ops()).toContain('exists');
    w.mailbox.hooks.withheld = undefined;
    expect(await w.run()).toMatchObject({ outcome: 'published', published: 3, toUid: 5 });
    expect(w.publisher.publishedUids()).toEqual([1, 2, 3, 4, 5]);
  });

  it('a message the listing left out but a fresh search still finds: what comes before it is published, the checkpoint stops before it', async () => {
    const w = world();
    w.folder.appendMany(5);
    w.seed({ lastUid: 0 });
    w.mailbox.hooks.withheldFromListing = new Set([3]);
    // A size bound below the messages' sizes: each is fetched for its RFC822.SIZE (the listing's FETCH).
    await expect(w.run({ batchSize: 1, batchBytes: 100 })).rejects.toThrow(
      /did not send UID 3 of "INBOX" although UID SEARCH/,
    );
    expect(w.publisher.publishedUids()).toEqual([1, 2]);
    expect(w.checkpoint()!.lastUid).toBe(2);
    w.mailbox.hooks.withheldFromListing = undefined;
    expect(await w.run()).toMatchObject({ outcome: 'published', published: 3, toUid: 5 });
    expect(w.publisher.publishedUids()).toEqual([1, 2, 3, 4, 5]);
  });

  it('a UIDVALIDITY change in STATUS that EXAMINE does not confirm: no reset event, nothing moves', async () => {
    const w = world();
    w.folder.appendMany(3);
    const before = w.seed({ lastUid: 3 });
    w.folder.uidValidity = V2;
    w.mailbox.hooks.onOpen = (folder) => {
      folder.uidValidity = V1;
    };
    const err = await w.run().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImapProtocolError);
    expect((err as ImapProtocolError).retryable).toBe(true);
    expect(w.publisher.calls).toEqual([]);
    expect(w.checkpoint()).toEqual(before);
  });

  it('UIDNEXT below the checkpoint (a restored server): a warning and a flag for the metric, nothing moves', async () => {
    const w = world();
    w.folder.appendMany(3);
    const before = w.seed({ lastUid: 10 });
    const summary = await w.run();
    expect(summary).toMatchObject({ outcome: 'idle', uidNextBelowCheckpoint: true });
    expect(w.log.lines.filter((l) => l.level === 'warn' && /UIDNEXT is below/.test(l.message))).toHaveLength(1);
    expect(w.checkpoint()).toEqual(before);
  });
});

describe('pollMailbox: UIDVALIDITY change', () => {
  /** Five messages published under V1, then the folder is recreated (V2) with them and two new ones. */
  function recreatedFolder() {
    const w = world();
    const old = w.folder.appendMany(5, (i) => ({
      internalDate: new Date(Date.UTC(2026, 10, 20, 10, i)).toISOString(),
    }));
    const lastInternalDate = old[4]!.internalDate;
    w.seed({ lastUid: 5, lastInternalDate, recentMessageIds: old.map((m) => messageIdHash(m.messageId!)), version: 7 });
    const fresh = [
      w.folder.append({ internalDate: lastInternalDate, subject: 'same second as the last one' }),
      w.folder.append({ internalDate: '2026-11-21T00:00:00.000Z', subject: 'later' }),
    ];
    w.folder.renumber(V2);
    return { w, old, fresh, lastInternalDate };
  }

  it('publishes one IMAP Mailbox Reset, then only mail that arrived since and was not published', async () => {
    const { w, lastInternalDate } = recreatedFolder();
    const summary = await w.run();
    expect(summary).toMatchObject({
      outcome: 'reset',
      uidValidity: V2,
      published: 2,
      skipped: 1,
      fromUid: 1,
      toUid: 7,
    });

    const [reset, ...messages] = w.publisher.published;
    expect(reset!.DetailType).toBe('IMAP Mailbox Reset');
    expect(JSON.parse(reset!.Detail)).toEqual({
      version: '1',
      eventId: `${MAILBOX}:${V2}:reset:${V1}`,
      mailboxId: MAILBOX,
      folder: 'INBOX',
      previousUidValidity: V1,
      uidValidity: V2,
      previousLastUid: 5,
      rescanSince: lastInternalDate,
      detectedAt: w.clock.now().toISOString(),
    });
    expect(w.publisher.published.filter((e) => e.DetailType === 'IMAP Mailbox Reset')).toHaveLength(1);
    expect(messages.map((e) => JSON.parse(e.Detail).subject)).toEqual(['same second as the last one', 'later']);
    expect(w.publisher.messageDetails().map((d) => d.eventId)).toEqual([`${MAILBOX}:${V2}:6`, `${MAILBOX}:${V2}:7`]);
    expect(w.session().calls.find((c) => c.op === 'listNew')).toEqual({
      op: 'listNew',
      fromUid: 1,
      limit: 1_000,
      since: lastInternalDate,
    });

    const c = w.checkpoint()!;
    expect(c).toMatchObject({ uidValidity: V2, lastUid: 7 });
    expect(c).not.toHaveProperty('rescanSince');
    expect(w.store.puts[0]).toMatchObject({
      expectedVersion: 7,
      next: { uidValidity: V2, lastUid: 0, rescanSince: lastInternalDate },
    });

    // The next poll is idle: nothing is republished.
    expect(await w.run()).toMatchObject({ outcome: 'idle' });
    expect(w.publisher.published).toHaveLength(3);
  });

  it('a failed reset event leaves the old checkpoint, and the next run retries the reset', async () => {
    const { w } = recreatedFolder();
    w.publisher.reject = (entry) => (entry.DetailType === 'IMAP Mailbox Reset' ? 'InternalFailure' : undefined);
    const err = await w.run().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EventPublishError);
    expect((err as Error).message).toContain('InternalFailure');
    expect(w.store.puts).toEqual([]);
    expect(w.checkpoint()).toMatchObject({ uidValidity: V1, lastUid: 5 });

    w.publisher.reject = undefined;
    expect(await w.run()).toMatchObject({ outcome: 'reset', published: 2 });
  });

  it('a re-scan interrupted by a failure resumes from the rebaselined checkpoint without a second reset', async () => {
    const { w } = recreatedFolder();
    w.publisher.reject = (entry) => (JSON.parse(entry.Detail).subject === 'later' ? 'InternalFailure' : undefined);
    await expect(w.run()).rejects.toBeInstanceOf(EventPublishError);
    expect(w.checkpoint()).toMatchObject({ uidValidity: V2, lastUid: 6, rescanSince: expect.any(String) });

    w.publisher.reject = undefined;
    expect(await w.run()).toMatchObject({ outcome: 'published', published: 1, toUid: 7 });
    expect(w.publisher.published.filter((e) => e.DetailType === 'IMAP Mailbox Reset')).toHaveLength(1);
    expect(w.publisher.messageDetails().map((d) => d.subject)).toEqual(['same second as the last one', 'later']);
    expect(w.checkpoint()).not.toHaveProperty('rescanSince');
  });

  it('a re-scan larger than the per-run cap continues in the next run, without a second reset', async () => {
    const { w } = recreatedFolder();
    for (let i = 0; i < 4; i++) w.folder.append({ internalDate: `2026-11-22T00:00:0${i}.000Z` });
    const first = await w.run({ maxMessagesPerRun: 3 });
    expect(first.stoppedBy).toBe('maxMessagesPerRun');
    expect(first.toUid).toBe(7);
    expect(w.checkpoint()).toMatchObject({ uidValidity: V2, lastUid: 7, rescanSince: expect.any(String) });

    expect(await w.run({ maxMessagesPerRun: 3 })).toMatchObject({
      outcome: 'partial',
      stoppedBy: 'maxMessagesPerRun',
      fromUid: 8,
      toUid: 10,
      published: 3,
    });
    expect(w.checkpoint()).toHaveProperty('rescanSince');
    expect(await w.run({ maxMessagesPerRun: 3 })).toMatchObject({
      outcome: 'published',
      fromUid: 11,
      toUid: 11,
      published: 1,
    });
    expect(w.checkpoint()).not.toHaveProperty('rescanSince');
    expect(w.publisher.published.filter((e) => e.DetailType === 'IMAP Mailbox Reset')).toHaveLength(1);
    expect(w.publisher.publishedUids()).toEqual([6, 7, 8, 9, 10, 11]);
  });

  it('a UIDVALIDITY change between STATUS and EXAMINE aborts without publishing', async () => {
    const w = world();
    w.folder.appendMany(3);
    w.seed({ lastUid: 1 });
    w.mailbox.hooks.onOpen = (folder) => folder.renumber(V2);
    const err = await w.run().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImapProtocolError);
    expect(w.publisher.calls).toEqual([]);
    expect(w.store.puts).toEqual([]);
    expect(w.session().closed).toBe(true);
  });
});

describe('pollMailbox: lease', () => {
  it('an idle poll takes no lease: it reads the checkpoint and STATUS, and writes nothing', async () => {
    const w = world();
    w.folder.appendMany(3);
    w.seed({ lastUid: 3 });
    w.store.leases.set(MAILBOX, { owner: 'other-run', expiresAt: w.clock.ms + 60_000 });
    expect(await w.run()).toMatchObject({ outcome: 'idle', toUid: 3, uidNext: 4 });
    expect(w.store.leaseCalls).toEqual([]);
    expect(w.store.gets).toHaveLength(1);
    expect(w.store.puts).toEqual([]);
    expect(w.session().ops()).toEqual(['status', 'close']);
  });

  it('skips the run when another owner holds the lease: STATUS found mail, nothing is published or written', async () => {
    const w = world();
    w.folder.appendMany(3);
    w.seed({ lastUid: 0 });
    w.store.leases.set(MAILBOX, { owner: 'other-run', expiresAt: w.clock.ms + 60_000 });
    const summary = await w.run();
    expect(summary).toMatchObject({ outcome: 'skipped', published: 0, folder: 'INBOX', uidValidity: V1, uidNext: 4 });
    expect(w.session().ops()).toEqual(['status', 'close']);
    expect(w.publisher.calls).toEqual([]);
    expect(w.store.puts).toEqual([]);
    expect(w.store.leases.get(MAILBOX)).toEqual({ owner: 'other-run', expiresAt: w.clock.ms + 60_000 });
    expect(w.store.leaseCalls.map((c) => c.op)).toEqual(['acquire']);
    expect(w.log.lines.some((l) => l.level === 'warn' && /lease/.test(l.message))).toBe(true);
  });

  it('plans again on the checkpoint read after taking the lease: what the run before published is not repeated', async () => {
    const w = world();
    w.folder.appendMany(3);
    w.seed({ lastUid: 0 });
    // The run that held the lease until now wrote its last checkpoint after this run had read the checkpoint.
    const acquire = w.store.acquire.bind(w.store);
    w.store.acquire = async (...args) => {
      w.store.seed({ mailboxId: MAILBOX, folder: 'INBOX', uidValidity: V1, lastUid: 2, version: 2 });
      return acquire(...args);
    };
    expect(await w.run()).toMatchObject({ outcome: 'published', published: 1, fromUid: 3, toUid: 3 });
    expect(w.publisher.publishedUids()).toEqual([3]);
    expect(w.checkpoint()).toMatchObject({ lastUid: 3, version: 3 });
  });

  it('takes over an expired lease', async () => {
    const w = world();
    w.folder.appendMany(1);
    w.seed({ lastUid: 0 });
    w.store.leases.set(MAILBOX, { owner: 'crashed-run', expiresAt: w.clock.ms - 1 });
    expect(await w.run()).toMatchObject({ outcome: 'published', published: 1 });
  });

  it('acquires until 30 s after the deadline and releases after success', async () => {
    const w = world();
    w.folder.appendMany(1);
    w.seed({ lastUid: 0 });
    const deadline = w.clock.ms + 120_000;
    let during: unknown;
    w.publisher.onCall = () => (during = w.store.leases.get(MAILBOX));
    await w.run({ deadline, runId: 'run-x' });
    expect(during).toEqual({ owner: 'run-x', expiresAt: deadline + 30_000 });
    expect(w.store.leaseCalls.map((c) => [c.op, c.owner])).toEqual([
      ['acquire', 'run-x'],
      ['release', 'run-x'],
    ]);
    expect(w.store.leases.size).toBe(0);
  });

  it.each<[string, (w: World) => void, new (...args: never[]) => Error, string[]]>([
    // Before STATUS: no lease taken.
    [
      'the secret cannot be read',
      (w) => (w.settings.load = () => Promise.reject(new SecretAccessError('denied'))),
      SecretAccessError,
      [],
    ],
    [
      'the server is unreachable',
      (w) => (w.mailbox.connectErrors = [new ImapConnectionError('refused')]),
      ImapConnectionError,
      [],
    ],
    // After STATUS found mail: the lease was taken, and it is given back.
    [
      'publishing fails',
      (w) => (w.publisher.throwErrors = [new EventPublishError('bus missing', { retryable: false })]),
      EventPublishError,
      ['acquire', 'release'],
    ],
    [
      'the checkpoint write conflicts',
      (w) =>
        (w.store.beforePut = () =>
          w.store.seed({ mailboxId: MAILBOX, folder: 'INBOX', uidValidity: V1, lastUid: 0, version: 9 })),
      CheckpointConflictError,
      ['acquire', 'release'],
    ],
  ])('leaves no lease and closes the session when %s', async (_name, breakIt, errorType, leaseOps) => {
    const w = world();
    w.folder.appendMany(2);
    w.seed({ lastUid: 0 });
    breakIt(w);
    await expect(w.run()).rejects.toBeInstanceOf(errorType);
    expect(w.store.leases.size).toBe(0);
    expect(w.store.leaseCalls.map((c) => c.op)).toEqual(leaseOps);
    for (const s of w.mailbox.sessions) expect(s.closed).toBe(true);
  });

  it('releases the lease while LOGOUT runs, and ends when both are done', async () => {
    const w = world();
    w.folder.appendMany(1);
    w.seed({ lastUid: 0 });
    let answerLogout!: () => void;
    w.mailbox.logoutAnswered = new Promise<void>((resolve) => (answerLogout = resolve));
    let ended = false;
    const run = w.run().finally(() => (ended = true));
    await vi.waitFor(() => expect(w.store.leaseCalls.map((c) => c.op)).toEqual(['acquire', 'release']));
    expect(w.mailbox.session.ops().at(-1)).toBe('close');
    expect(w.mailbox.session.closed).toBe(false);
    expect(ended).toBe(false);
    answerLogout();
    expect(await run).toMatchObject({ outcome: 'published', published: 1 });
    expect(w.mailbox.session.closed).toBe(true);
  });

  it('a failing release is logged, not thrown', async () => {
    const w = world();
    w.folder.appendMany(1);
    w.seed({ lastUid: 0 });
    w.store.release = () => Promise.reject(Object.assign(new Error('throttled'), { name: 'ThrottlingException' }));
    expect(await w.run()).toMatchObject({ outcome: 'published' });
    expect(w.log.lines.some((l) => l.level === 'warn' && l.fields.errorName === 'ThrottlingException')).toBe(true);
  });

  it('two overlapping runs with a lease: the second is skipped', async () => {
    const w = world();
    w.folder.appendMany(3);
    w.seed({ lastUid: 0 });
    const [a, b] = await Promise.all([w.run(), w.run()]);
    expect([a.outcome, b.outcome].sort()).toEqual(['published', 'skipped']);
    expect(w.publisher.publishedUids()).toEqual([1, 2, 3]);
  });
});

describe('pollMailbox: authentication failure', () => {
  it('re-reads the secret once (fresh) and retries with rotated credentials', async () => {
    const w = world();
    w.folder.appendMany(1);
    w.seed({ lastUid: 0 });
    w.mailbox.connectErrors = [new ImapAuthError('rejected')];
    w.settings.prime();
    w.settings.rotate({ password: 'rotated-password' });
    expect(await w.run()).toMatchObject({ outcome: 'published', published: 1 });
    expect(w.settings.loads).toEqual([{ fresh: false }, { fresh: true }]);
    expect(w.mailbox.connects.map((s) => s.password)).toEqual([PASSWORD, 'rotated-password']);
    expect(w.mailbox.sessions).toHaveLength(1);
    expect(w.session().closed).toBe(true);
  });

  it('retries when only the username changed', async () => {
    const w = world();
    w.seed({ lastUid: 0 });
    w.mailbox.connectErrors = [new ImapAuthError('rejected')];
    w.settings.prime();
    w.settings.rotate({ username: 'new-user@example.com' });
    await w.run();
    expect(w.mailbox.connects.map((s) => s.username)).toEqual(['support@example.com', 'new-user@example.com']);
  });

  it('does not retry when the re-read secret has the same credentials', async () => {
    const w = world();
    w.seed({ lastUid: 0 });
    const rejected = new ImapAuthError('rejected');
    w.mailbox.connectErrors = [rejected];
    await expect(w.run()).rejects.toBe(rejected);
    expect(w.settings.loads).toEqual([{ fresh: false }, { fresh: true }]);
    expect(w.mailbox.connects).toHaveLength(1);
    expect(w.store.leases.size).toBe(0);
  });

  it('retries only once even if the new credentials fail too', async () => {
    const w = world();
    w.seed({ lastUid: 0 });
    const second = new ImapAuthError('rejected again');
    w.mailbox.connectErrors = [new ImapAuthError('rejected'), second];
    w.settings.prime();
    w.settings.rotate({ password: 'also-wrong' });
    await expect(w.run()).rejects.toBe(second);
    expect(w.mailbox.connects).toHaveLength(2);
    expect(w.settings.loads).toHaveLength(2);
  });

  it('does not retry when the folder changed along with the credentials', async () => {
    const w = world();
    w.seed({ lastUid: 0 });
    const rejected = new ImapAuthError('rejected');
    w.mailbox.connectErrors = [rejected];
    w.settings.prime();
    w.settings.rotate({ password: 'rotated-password', folder: 'Archiv' });
    await expect(w.run()).rejects.toBe(rejected);
    expect(w.mailbox.connects).toHaveLength(1);
  });

  it('does not re-read the secret for other connection errors', async () => {
    const w = world();
    w.seed({ lastUid: 0 });
    w.mailbox.connectErrors = [new ImapConnectionError('refused')];
    await expect(w.run()).rejects.toBeInstanceOf(ImapConnectionError);
    expect(w.settings.loads).toEqual([{ fresh: false }]);
  });
});

describe('pollMailbox: logs and options', () => {
  it('warns on every plaintext poll and never logs the password', async () => {
    const w = world({ settings: { security: 'none', port: 143 } });
    w.folder.appendMany(2);
    await w.run();
    await w.run();
    expect(w.log.lines.filter((l) => l.level === 'warn' && /Plaintext IMAP/.test(l.message))).toHaveLength(2);
    expect(w.log.text()).not.toContain(PASSWORD);
  });

  it('uses the configured folder for the checkpoint key and the events', async () => {
    const folder = 'Firma/Kundenbetreuung/kunden/a';
    const w = world({ settings: { folder }, startAt: { kind: 'all' } });
    w.folder.appendMany(1);
    expect(await w.run()).toMatchObject({ folder, published: 1 });
    // Read while connecting, and again once the lease was taken (another run may have moved it meanwhile).
    expect(w.store.gets).toEqual([
      { mailboxId: MAILBOX, folder },
      { mailboxId: MAILBOX, folder },
    ]);
    expect(w.store.current(MAILBOX, folder)).toMatchObject({ lastUid: 1 });
    expect(w.publisher.messageDetails()[0]!.folder).toBe(folder);
    expect(w.session().calls[0]).toEqual({ op: 'status', folder });
  });

  it('stores raw messages when a raw store is configured and references them in the event', async () => {
    const stored: { key: string; bytes: number; size: number }[] = [];
    const rawStore: RawMessageStore = {
      async put(key, body, size) {
        let bytes = 0;
        for await (const chunk of Readable.from(body as AsyncIterable<Buffer>)) bytes += (chunk as Buffer).length;
        stored.push({ key, bytes, size });
        return { bucket: 'raw-bucket', key, size: bytes };
      },
    };
    const w = world({ startAt: { kind: 'all' }, rawStore });
    w.folder.appendMany(2);
    await w.run();
    expect(stored.map((s) => s.bytes)).toEqual(w.folder.messages.map((m) => m.raw.length));
    expect(w.publisher.messageDetails().map((d) => d.raw)).toEqual(
      stored.map((s) => ({ bucket: 'raw-bucket', key: s.key, size: s.bytes })),
    );
    expect(new Set(stored.map((s) => s.key)).size).toBe(2);
    expect(stored[0]!.key).toContain(MAILBOX);
  });
});
