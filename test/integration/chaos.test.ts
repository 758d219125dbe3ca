/**
 * Issue #4 chaos test: many poll cycles (pollMailbox with the real adapters, as the handler composes them) against
 * Dovecot and moto_server while a harness appends messages at random moments and injects random faults:
 * TCP proxy faults on the IMAP and the AWS path (refuse, drop, silent, delay), PutEvents failures and lost
 * responses (aws-sdk-client-mock over the EventBridge client), checkpoint write failures and conflicts, deadline
 * pressure, overlapping invocations, crashed runs, and one UIDVALIDITY reset. Then fault-free cycles drain the
 * mailbox and what the SQS subscriber received is compared with what was appended (by Message-ID, or by subject
 * for the messages without one).
 *
 * Fails on any loss, on a checkpoint ahead of what was published, and on a duplicate that no injected fault
 * explains. Prints `chaos: seed=... cycles=... faults=... appended=... delivered_unique=... lost=... duplicates=...`.
 * Replay a run with CHAOS_SEED=<seed> (the timing of the servers still varies, so a replay is close, not exact);
 * CHAOS_CYCLES sets the number of cycles (default 300). The chaos phase stops early after 140 s (a loaded machine);
 * the whole test takes 2 to 2.5 minutes on 2 cores, most of it moto_server delivering events to SQS (~0.4 s each).
 */

import { setTimeout as sleep } from 'node:timers/promises';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import {
  EventBridgeClient,
  PutEventsCommand,
  type PutEventsCommandInput,
  type PutEventsResultEntry,
} from '@aws-sdk/client-eventbridge';
import { DeleteMessageBatchCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { DynamoDbCheckpointStore } from '../../functions/poller/adapters/dynamodb-checkpoint-store.js';
import { EventBridgePublisher } from '../../functions/poller/adapters/eventbridge-publisher.js';
import { type AwsClientConfig, awsClientConfig, composePollerDeps } from '../../functions/poller/compose.js';
import { readPollerConfig } from '../../functions/poller/contract/poller-env.js';
import type { MessageReceivedDetail } from '../../functions/poller/core/event-detail.js';
import type { Checkpoint, EventEntry } from '../../functions/poller/core/types.js';
import { CheckpointStoreError } from '../../functions/poller/errors.js';
import {
  type CheckpointStore,
  type EventPublisher,
  type LeaseStore,
  type PollDeps,
  silentLog,
} from '../../functions/poller/ports.js';
import { type PollSummary, pollMailbox } from '../../functions/poller/run/poll-mailbox.js';
import { proxiesToSharedServers } from '../support/env.js';
import { buildMessage } from '../support/messages.js';
import type { EventEnvelope } from '../support/moto.js';
import type { Fault } from '../support/tcp-proxy.js';
import { prng } from '../unit/fakes.js';
import { World } from './world.js';

const CYCLES = Number(process.env.CHAOS_CYCLES ?? 300);
/** The chaos phase stops early (and says so) when it takes longer than this. */
const CHAOS_BUDGET_MS = 140_000;
const SEED = Number(process.env.CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));

/** pollMailbox lets a lease expire 30 s after the run's deadline; the chaos runs cut that to 2 s. */
const LEASE_GRACE_CUT_MS = 28_000;

// Overlapping invocations race for the lease: DynamoDB gives it to one of them, moto_server alone may not.
const proxies = proxiesToSharedServers({ atomicItems: true });

// ---------------------------------------------------------------------------------------------
// Bookkeeping

/** One appended message. `key` is its Message-ID, or `subject:<subject>` when it has none. */
interface Appended {
  key: string;
  uid: number;
  hasMessageId: boolean;
}

/** What one run (one pollMailbox call) did, as seen from the outside. */
interface RunRecord {
  readonly id: number;
  /** Message keys the run passed to PutEvents. */
  readonly attempted: Set<string>;
  /** Message keys whose PutEvents outcome the poller could not know (sent, but reported failed / lost / cut off). */
  readonly ambiguous: Set<string>;
  /** Highest checkpoint written per UIDVALIDITY. */
  readonly committed: Map<string, number>;
  /** uid + UIDVALIDITY of each attempted key. */
  readonly where: Map<string, { uid: number; uidValidity: string }>;
  faults: string[];
  /** The UIDVALIDITY of the `IMAP Mailbox Reset` event this run published (accepted or not). */
  reset?: string;
  /** The outcome of that PutEvents was unknown to the poller. */
  resetAmbiguous?: boolean;
  outcome?: string;
}

function keyOf(detail: { messageId: string | null; subject: string | null }): string {
  return detail.messageId ?? `subject:${detail.subject}`;
}

function detailOf(entry: EventEntry): MessageReceivedDetail | undefined {
  return entry.DetailType === 'IMAP Message Received' ? (JSON.parse(entry.Detail) as MessageReceivedDetail) : undefined;
}

// ---------------------------------------------------------------------------------------------
// The harness

/** Faults of the AWS path, tracked so that a PutEvents overlapping one counts as ambiguous. */
class AwsFaults {
  private generation = 0;
  async set(fault: Fault): Promise<void> {
    this.generation++;
    await proxies.aws.setFault(fault);
  }
  dropAll(): void {
    this.generation++;
    proxies.aws.dropAll();
  }
  /** A token to compare before and after a call: different = a fault was active or changed meanwhile. */
  token(): string {
    return proxies.aws.fault.kind === 'pass' ? String(this.generation) : `faulty-${this.generation}`;
  }
}

type PublishFault = 'none' | 'partial' | 'lostResponse' | 'throttled';

/** The adapters a container composes, with AWS through the AWS proxy. */
function composeContainer(world: World, clientConfig: AwsClientConfig): Promise<PollDeps> {
  return composePollerDeps(
    readPollerConfig({
      MAILBOX_ID: world.mailboxId,
      SECRET_ID: world.secretName,
      CHECKPOINT_TABLE: world.table,
      EVENT_BUS_NAME: world.bus.busName,
      START_AT: 'now',
    }),
    { log: silentLog, clientConfig },
  );
}

/** A warm Lambda container: composed adapters reused by the runs it serves; its PutEvents can be scripted. */
class Container {
  readonly deps: PollDeps;
  /** Set per run: how PutEvents misbehaves, and where the run records ambiguity. */
  publishFault: PublishFault = 'none';
  run?: RunRecord;

  static async create(world: World, aws: AwsFaults, random: () => number): Promise<Container> {
    const clientConfig = { ...world.aws.clientConfig, endpoint: proxies.aws.url };
    return new Container(await composeContainer(world, clientConfig), clientConfig, aws, random);
  }

  private constructor(base: PollDeps, clientConfig: AwsClientConfig, aws: AwsFaults, random: () => number) {
    // The EventBridge client goes through aws-sdk-client-mock, which forwards to a real client (through the AWS proxy).
    const real = new EventBridgeClient(awsClientConfig(clientConfig));
    const client = new EventBridgeClient(clientConfig);
    mockClient(client)
      .on(PutEventsCommand)
      .callsFake(async (input: PutEventsCommandInput) => {
        const entries = input.Entries ?? [];
        const keys = entries.map((e) =>
          e.DetailType === 'IMAP Message Received' ? keyOf(JSON.parse(e.Detail!) as MessageReceivedDetail) : undefined,
        );
        const markAmbiguous = () => {
          for (const k of keys) if (k) this.run?.ambiguous.add(k);
          if (this.run && entries.some((e) => e.DetailType === 'IMAP Mailbox Reset')) this.run.resetAmbiguous = true;
        };
        const fault = this.publishFault;
        if (fault === 'throttled' && random() < 0.7)
          throw Object.assign(new Error('Rate exceeded (injected)'), { name: 'ThrottlingException', $metadata: {} });
        // partial: some entries fail without being sent.
        const withheld = new Set(fault === 'partial' ? entries.flatMap((_, i) => (random() < 0.4 ? [i] : [])) : []);
        const through = entries.flatMap((_, i) => (withheld.has(i) ? [] : [i]));
        const before = aws.token();
        let sent: PutEventsResultEntry[] = [];
        try {
          if (through.length > 0)
            sent = (await real.send(new PutEventsCommand({ Entries: through.map((i) => entries[i]!) }))).Entries ?? [];
        } catch (err) {
          markAmbiguous(); // e.g. the connection dropped after EventBridge accepted the entries
          throw err;
        }
        if (aws.token() !== before || before.startsWith('faulty')) markAmbiguous(); // the SDK may have retried an accepted call
        // lostResponse: EventBridge accepted everything, the poller hears a failure.
        if (fault === 'lostResponse' && random() < 0.5) {
          markAmbiguous();
          throw Object.assign(new Error('socket hang up (injected)'), {
            name: 'TimeoutError',
            code: 'ECONNRESET',
            $metadata: {},
          });
        }
        const results: PutEventsResultEntry[] = entries.map((_, i) =>
          withheld.has(i) ? { ErrorCode: 'InternalFailure', ErrorMessage: 'injected' } : sent[through.indexOf(i)]!,
        );
        return { FailedEntryCount: results.filter((r) => r.ErrorCode).length, Entries: results };
      });
    this.deps = { ...base, publisher: new EventBridgePublisher(client, { baseDelayMs: 20, maxDelayMs: 200 }) };
  }
}

type StoreFault = 'none' | 'throttleWrite' | 'lostWriteResponse' | 'conflict';

/** Records what a run publishes (as the poller sees it) and its checkpoint writes; injects store faults and crashes. */
function instrument(
  container: Container,
  run: RunRecord,
  world: World,
  opts: { storeFault: StoreFault; crash: boolean; random: () => number },
): PollDeps {
  const { deps } = container;
  const direct = new DynamoDbCheckpointStore(world.aws.dynamodb, world.table);
  const publisher: EventPublisher = {
    async publish(entries) {
      for (const entry of entries) {
        if (entry.DetailType === 'IMAP Mailbox Reset')
          run.reset = (JSON.parse(entry.Detail) as { uidValidity: string }).uidValidity;
        const d = detailOf(entry);
        if (!d) continue;
        run.attempted.add(keyOf(d));
        run.where.set(keyOf(d), { uid: d.uid, uidValidity: d.uidValidity });
      }
      const result = await deps.publisher.publish(entries);
      result.accepted.forEach((i) => {
        const d = detailOf(entries[i]!);
        if (d) accepted.add(keyOf(d));
      });
      if (opts.crash) throw new Error('the process died after PutEvents (injected crash)');
      return result;
    },
  };
  const checkpoints: CheckpointStore = {
    get: (mailboxId, folder) => deps.checkpoints.get(mailboxId, folder),
    async put(next: Checkpoint, expectedVersion: number) {
      if (opts.storeFault === 'throttleWrite' && opts.random() < 0.5) {
        throw new CheckpointStoreError(
          'The checkpoint table failed during write (ProvisionedThroughputExceededException): throttled beyond retries (injected).',
        );
      }
      if (opts.storeFault === 'conflict' && opts.random() < 0.5 && expectedVersion > 0) {
        // Another writer rewrote the same checkpoint meanwhile (its version moved on).
        const current = await direct.get(next.mailboxId, next.folder);
        if (current && current.version === expectedVersion) await direct.put(current, current.version);
      }
      await deps.checkpoints.put(next, expectedVersion);
      run.committed.set(next.uidValidity, Math.max(run.committed.get(next.uidValidity) ?? 0, next.lastUid));
      if (opts.storeFault === 'lostWriteResponse' && opts.random() < 0.5) {
        throw new CheckpointStoreError(
          'The checkpoint table failed during write (TimeoutError) (injected: the write landed).',
        );
      }
    },
  };
  const realLease = deps.lease!;
  // The lease outlives the deadline by 2 s here instead of 30 s: a lease whose release failed (an AWS fault at the
  // end of a run) would otherwise stall this test for half a minute. A crashed run never releases its lease.
  const lease: LeaseStore = {
    acquire: (m, o, now, expiresAt) => realLease.acquire(m, o, now, new Date(expiresAt.getTime() - LEASE_GRACE_CUT_MS)),
    release: opts.crash ? async () => {} : (m, o) => realLease.release(m, o),
  };
  return { ...deps, publisher, checkpoints, lease };
}

/** Engine-accepted message keys (the PutEvents result said so), over the whole test. */
const accepted = new Set<string>();

/** Sleeps until the mailbox's lease item expires (at most 3 s). */
async function untilLeaseExpires(world: World): Promise<void> {
  const res = await world.aws.dynamodb.send(
    new GetItemCommand({
      TableName: world.table,
      Key: { pk: { S: `lease#${world.mailboxId}` } },
      ConsistentRead: true,
    }),
  );
  const expiresAt = Number(res.Item?.expiresAt?.N ?? 0);
  await sleep(Math.min(3_000, Math.max(50, expiresAt - Date.now() + 50)));
}

async function drainQueue(world: World): Promise<EventEnvelope<MessageReceivedDetail>[]> {
  const events: EventEnvelope<MessageReceivedDetail>[] = [];
  for (let empty = 0, rounds = 0; empty < 3 && rounds < 500; rounds++) {
    const res = await world.aws.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: world.bus.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
    );
    const messages = res.Messages ?? [];
    if (messages.length === 0) {
      empty++;
      continue;
    }
    empty = 0;
    for (const m of messages) events.push(JSON.parse(m.Body!) as EventEnvelope<MessageReceivedDetail>);
    await world.aws.sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: world.bus.queueUrl,
        Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
      }),
    );
  }
  return events;
}

// ---------------------------------------------------------------------------------------------

describe('chaos', () => {
  it('every appended message arrives at least once whatever fails; duplicates only where a fault explains them', async () => {
    const random = prng(SEED);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const between = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
    console.log(`chaos: seed=${SEED} (replay with CHAOS_SEED=${SEED})`);

    const world = await World.create({ secret: { port: proxies.imap.port } });
    const aws = new AwsFaults();
    const containers = [await Container.create(world, aws, random), await Container.create(world, aws, random)];
    const appended: Appended[] = [];
    const runs: RunRecord[] = [];
    const faultCounts: Record<string, number> = {};
    const violations: string[] = [];
    let appendSeq = 0;
    const count = (fault: string, run?: RunRecord) => {
      faultCounts[fault] = (faultCounts[fault] ?? 0) + 1;
      run?.faults.push(fault);
    };

    const append = async (n: number) => {
      const items = Array.from({ length: n }, () => {
        const seq = ++appendSeq;
        const subject = `chaos ${SEED} #${seq}`;
        const hasMessageId = random() >= 0.1;
        const messageId = `<chaos-${seq}-${SEED}-${world.mailboxId}@test.example.com>`;
        // A tenth of the messages have no Message-ID (the reset re-scan cannot recognise those).
        const raw = hasMessageId
          ? buildMessage({ subject, messageId })
          : Buffer.from(
              buildMessage({ subject })
                .toString('latin1')
                .replace(/^Message-ID: .*\r\n/m, ''),
              'latin1',
            );
        return { raw, key: hasMessageId ? messageId : `subject:${subject}`, hasMessageId };
      });
      const uids = await world.imap.appendMany(
        world.user,
        world.folder,
        items.map((i) => i.raw),
      );
      for (const [i, item] of items.entries())
        appended.push({ key: item.key, uid: uids[i]!, hasMessageId: item.hasMessageId });
    };

    /** The checkpoint never passes a message the poller has not seen accepted by EventBridge. */
    const checkInvariant = async (when: string) => {
      const cp = await world.checkpoint();
      if (!cp) return;
      for (const m of appended) {
        if (m.uid <= cp.lastUid && !accepted.has(m.key))
          violations.push(
            `${when}: checkpoint ${cp.uidValidity}/${cp.lastUid} passes UID ${m.uid} (${m.key}) that was never accepted`,
          );
      }
    };

    const runOnce = async (
      containerIndex: number,
      options: {
        deadlineMs: number;
        faults: string[];
        storeFault: StoreFault;
        crash: boolean;
        publishFault: PublishFault;
      },
    ) => {
      const container = containers[containerIndex]!;
      const run: RunRecord = {
        id: runs.length,
        attempted: new Set(),
        ambiguous: new Set(),
        committed: new Map(),
        where: new Map(),
        faults: [...options.faults],
      };
      runs.push(run);
      container.run = run;
      container.publishFault = options.publishFault;
      const deps = instrument(container, run, world, { storeFault: options.storeFault, crash: options.crash, random });
      try {
        const summary: PollSummary = await pollMailbox(deps, {
          mailboxId: world.mailboxId,
          eventSource: 'imap-event-source',
          eventBusName: world.bus.busName,
          startAt: { kind: 'now' },
          deadline: Date.now() + options.deadlineMs,
          reserveMs: 1_000,
          batchSize: between(1, 10),
          maxMessagesPerRun: between(3, 40),
        });
        run.outcome = summary.outcome;
      } catch (err) {
        run.outcome = `failed: ${(err as { code?: string }).code ?? (err as Error).message}`;
      } finally {
        container.publishFault = 'none';
      }
    };

    // Baseline (START_AT=now), then chaos.
    await runOnce(0, { deadlineMs: 20_000, faults: [], storeFault: 'none', crash: false, publishFault: 'none' });
    const resetCycle = between(Math.floor(CYCLES * 0.4), Math.floor(CYCLES * 0.6));
    const started = Date.now();
    let cycles = 0;
    for (; cycles < CYCLES && Date.now() - started < CHAOS_BUDGET_MS; cycles++) {
      const timers: NodeJS.Timeout[] = [];
      const at = (ms: number, fn: () => unknown) => timers.push(setTimeout(() => void fn(), ms));
      const cycleFaults: string[] = [];
      const note = (f: string) => {
        cycleFaults.push(f);
        count(f);
      };
      if (random() < 0.1) containers[Math.floor(random() * 2)] = await Container.create(world, aws, random); // a cold start

      if (cycles === resetCycle) {
        await world.imap.setUidValidity(world.user, world.folder, 3_000_000_000 + between(1, 1_000_000));
        note('uidvalidity-reset');
      }
      // Mail arrives at a random moment of the cycle.
      let appending: Promise<void> = Promise.resolve();
      if (random() < 0.18) {
        const n = between(1, 2);
        const delay = between(0, 250);
        appending = sleep(delay).then(() => append(n));
      }

      // Faults are denser while mail is waiting to be published (that is when they can lose or double something).
      const pending = appended.some((m) => !accepted.has(m.key));
      // Network faults, each at a random moment, most lifted again after a while.
      const f = random() * (pending ? 0.6 : 1);
      if (f < 0.06) {
        note('imap-refuse');
        at(between(0, 200), () => proxies.imap.setFault({ kind: 'refuse', mode: pick(['reset', 'close'] as const) }));
        at(between(300, 900), () => proxies.imap.setFault({ kind: 'pass' }));
      } else if (f < 0.14) {
        note('imap-drop');
        at(0, () => proxies.imap.setFault({ kind: 'dropAfter', bytes: between(100, 40_000), once: true }));
      } else if (f < 0.18) {
        note('imap-drop-all');
        at(between(20, 400), () => proxies.imap.dropAll());
      } else if (f < 0.23) {
        note('imap-silent');
        at(0, () =>
          proxies.imap.setFault(
            random() < 0.5 ? { kind: 'silent' } : { kind: 'silent', afterBytes: between(100, 20_000) },
          ),
        );
        at(between(200, 1_500), () => proxies.imap.setFault({ kind: 'pass' }));
      } else if (f < 0.26) {
        note('imap-delay');
        at(0, () => proxies.imap.setFault({ kind: 'delay', ms: between(5, 60) }));
      } else if (f < 0.3) {
        note('aws-refuse');
        at(between(0, 200), () => aws.set({ kind: 'refuse', mode: 'reset' }));
        at(between(100, 800), () => aws.set({ kind: 'pass' }));
      } else if (f < 0.37) {
        note('aws-drop');
        at(between(0, 300), () => aws.set({ kind: 'dropAfter', bytes: between(0, 2_000), once: true }));
      } else if (f < 0.4) {
        note('aws-drop-all');
        at(between(20, 600), () => aws.dropAll());
      } else if (f < 0.44) {
        note('aws-silent');
        at(between(0, 300), () => aws.set({ kind: 'silent' }));
        at(between(300, 1_500), () => aws.set({ kind: 'pass' }));
      } else if (f < 0.46) {
        note('aws-delay');
        at(0, () => aws.set({ kind: 'delay', ms: between(5, 40) }));
      }
      // Service faults of this cycle's run.
      const p = random() * (pending ? 0.4 : 1);
      const publishFault: PublishFault =
        p < 0.06 ? 'partial' : p < 0.1 ? 'lostResponse' : p < 0.13 ? 'throttled' : 'none';
      if (publishFault !== 'none') note(`putevents-${publishFault}`);
      const s = random() * (pending ? 0.4 : 1);
      const storeFault: StoreFault =
        s < 0.04 ? 'throttleWrite' : s < 0.07 ? 'lostWriteResponse' : s < 0.1 ? 'conflict' : 'none';
      if (storeFault !== 'none') note(`dynamodb-${storeFault}`);
      const crash = random() < 0.006;
      if (crash) note('crash');
      const pressure = random() < 0.15;
      if (pressure) note('deadline-pressure');
      const deadlineMs = pressure ? between(1_300, 2_500) : between(3_000, 6_000);
      const overlap = random() < 0.1;
      if (overlap) note('overlapping-invocation');

      await Promise.all([
        runOnce(0, { deadlineMs, faults: cycleFaults, storeFault, crash, publishFault }),
        ...(overlap
          ? [
              sleep(between(0, 150)).then(() =>
                runOnce(1, {
                  deadlineMs: between(3_000, 6_000),
                  faults: cycleFaults,
                  storeFault: 'none',
                  crash: false,
                  publishFault: 'none',
                }),
              ),
            ]
          : []),
      ]);
      await appending;
      timers.forEach(clearTimeout);
      // A lease left behind (crash, or a release lost to an AWS fault) blocks until it expires: the next scheduled
      // invocation comes after that, instead of burning cycles on it.
      if (runs.at(-1)!.outcome === 'skipped' && !overlap) await untilLeaseExpires(world);
      await proxies.imap.setFault({ kind: 'pass' });
      await aws.set({ kind: 'pass' });
      await checkInvariant(`after cycle ${cycles}`);
    }
    const chaosMs = Date.now() - started;
    if (cycles <= resetCycle) {
      // The budget ran out before the planned reset: do it now so that every run exercises one.
      await world.imap.setUidValidity(world.user, world.folder, 3_000_000_000 + between(1, 1_000_000));
      count('uidvalidity-reset');
    }

    // Drain: fault-free cycles until everything appended was accepted and a run finds nothing to do.
    let drainRuns = 0;
    const drainUntil = Date.now() + 60_000;
    for (let idle = false; !idle && Date.now() < drainUntil; drainRuns++) {
      await runOnce(drainRuns % 2, {
        deadlineMs: 20_000,
        faults: [],
        storeFault: 'none',
        crash: false,
        publishFault: 'none',
      });
      await checkInvariant(`drain ${drainRuns}`);
      idle = runs.at(-1)!.outcome === 'idle' && appended.every((m) => accepted.has(m.key));
      if (runs.at(-1)!.outcome === 'skipped') await untilLeaseExpires(world);
    }

    // What the subscriber received.
    const events = await drainQueue(world);
    const messageEvents = events.filter((e) => e['detail-type'] === 'IMAP Message Received');
    const resetEvents = events.filter((e) => e['detail-type'] === 'IMAP Mailbox Reset');
    const delivered = new Map<string, number>();
    for (const e of messageEvents) delivered.set(keyOf(e.detail), (delivered.get(keyOf(e.detail)) ?? 0) + 1);
    const lost = appended.filter((m) => !delivered.has(m.key));
    const unknown = [...delivered.keys()].filter((k) => !appended.some((m) => m.key === k));

    // Every duplicate needs an explanation.
    const explanations: Record<string, number> = {};
    const unexplained: string[] = [];
    const resetRun = runs.find((r) => r.reset !== undefined)?.id ?? Number.POSITIVE_INFINITY;
    for (const [key, n] of delivered) {
      if (n < 2) continue;
      const m = appended.find((a) => a.key === key)!;
      const attempts = runs.filter((r) => r.attempted.has(key));
      const reasons = new Set<string>();
      for (const r of attempts) {
        const where = r.where.get(key)!;
        if ((r.committed.get(where.uidValidity) ?? 0) < where.uid)
          reasons.add('published, checkpoint not written (run failed, stopped or crashed before its write)');
        if (r.ambiguous.has(key))
          reasons.add('PutEvents outcome unknown to the poller (lost response, dropped connection, SDK retry)');
      }
      if (!m.hasMessageId && attempts.some((r) => r.id < resetRun) && attempts.some((r) => r.id >= resetRun)) {
        reasons.add('re-scan after the UIDVALIDITY reset (no Message-ID to recognise it)');
      }
      if (reasons.size === 0)
        unexplained.push(
          `${key}: ${n}x, runs ${attempts.map((r) => `#${r.id} ${r.outcome} [${r.faults.join(',')}]`).join('; ')}`,
        );
      for (const reason of reasons) explanations[reason] = (explanations[reason] ?? 0) + (n - 1);
    }
    const duplicates = messageEvents.length - delivered.size;
    // A second reset event: a run published one and did not record the new UIDVALIDITY (or never heard back).
    const resetRepeats = runs.filter(
      (r) => r.reset !== undefined && (!r.committed.has(r.reset) || r.resetAmbiguous),
    ).length;
    if (resetEvents.length - 1 > resetRepeats)
      unexplained.push(`${resetEvents.length} reset events, ${resetRepeats} explained repeats`);
    if (resetEvents.length > 1)
      explanations['IMAP Mailbox Reset again (published, rebaseline not written)'] = resetEvents.length - 1;
    const faults = Object.values(faultCounts).reduce((a, b) => a + b, 0);
    const outcomes: Record<string, number> = {};
    for (const r of runs) outcomes[r.outcome ?? '?'] = (outcomes[r.outcome ?? '?'] ?? 0) + 1;

    console.log(
      `chaos: seed=${SEED} cycles=${cycles} faults=${faults} appended=${appended.length} delivered_unique=${delivered.size} lost=${lost.length} duplicates=${duplicates} unexplained=${unexplained.length} resets=${resetEvents.length} drain_runs=${drainRuns} chaos_ms=${chaosMs}`,
    );
    console.log(`chaos: faults ${JSON.stringify(faultCounts)}`);
    console.log(`chaos: run outcomes ${JSON.stringify(outcomes)}`);
    console.log(`chaos: duplicates explained by ${JSON.stringify(explanations)}`);
    if (process.env.CHAOS_DEBUG) for (const r of runs) console.log(`run #${r.id} ${r.outcome} [${r.faults.join(',')}]`);
    if (unexplained.length) console.log(`chaos: unexplained duplicates:\n  ${unexplained.join('\n  ')}`);
    if (violations.length)
      console.log(`chaos: checkpoint ahead of published:\n  ${violations.slice(0, 20).join('\n  ')}`);

    expect(lost.map((m) => `${m.key} (UID ${m.uid})`)).toEqual([]);
    expect(violations).toEqual([]);
    expect(unexplained).toEqual([]);
    expect(unknown).toEqual([]);
    expect(resetEvents.length).toBeGreaterThanOrEqual(1);
    expect(runs.at(-1)!.outcome).toBe('idle');
    const finalCheckpoint = await world.checkpoint();
    expect(finalCheckpoint?.lastUid).toBe(Math.max(...appended.map((m) => m.uid)));
    expect(finalCheckpoint?.rescanSince).toBeUndefined();
  }, 300_000);
});
