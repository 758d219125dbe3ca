/** Fleet mode's pure rules (due, backoff, overdue, shards, host slots, declared sync) and its environment readers. */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { describe, expect, it } from 'vitest';
import { parseRegistryItem } from '../../functions/fleet/adapters/dynamodb-registry.js';
import { parsePollRequest } from '../../functions/fleet/adapters/sqs-poll-queue.js';
import { BoundedCache } from '../../functions/fleet/core/bounded-cache.js';
import {
  declaredFileProblems,
  declaredMailboxProblems,
  definitionOf,
  dueMoment,
  FAILURE_BACKOFF,
  failureBackoffMs,
  isOverdue,
  mailboxState,
  nextAttemptAt,
  nextDueAt,
  planDispatch,
  type RegistryEntry,
  shardOf,
  slotOrder,
  successNeedsRecord,
  syncDeclared,
} from '../../functions/fleet/core/registry.js';
import { cycleTime, readDispatcherConfig } from '../../functions/fleet/dispatcher.js';
import { readWorkerConfig } from '../../functions/fleet/worker.js';
import { DUE_INDEX, FLEET_DEFAULTS } from '../../functions/poller/contract/fleet.js';

const MIN = 60_000;
const NOW = Date.parse('2026-11-30T12:00:00Z');

function entry(overrides: Partial<RegistryEntry> = {}): RegistryEntry {
  return {
    id: 'support',
    secretId: 'imap-event-source/support',
    schedule: 'rate(1 minute)',
    intervalMs: MIN,
    startAt: 'now',
    paused: false,
    source: 'cli',
    shard: 3,
    dueAt: NOW,
    failures: 0,
    registeredAt: new Date(NOW - 3_600_000).toISOString(),
    lastSuccessAt: new Date(NOW - 30_000).toISOString(),
    ...overrides,
  };
}

describe('due and overdue', () => {
  /** The ids a cycle at `now` after the cycle at `prev` sends. */
  const sent = (entries: RegistryEntry[], prev: number, now: number, maxPerCycle = 100, backlog?: number) =>
    planDispatch(entries, { now, prev, maxPerCycle, ...(backlog !== undefined ? { backlog } : {}) }).dispatch.map(
      (e) => e.id,
    );

  it('is due at its anchor and at every interval after it, on its own phase, never written per cycle', () => {
    // Anchored at 12:00:20, every minute: due in the cycles whose window (prev, now] holds :20.
    const anchor = NOW + 20_000;
    expect(dueMoment(anchor, MIN, NOW, NOW + MIN)).toBe(anchor); // the anchor itself
    expect(dueMoment(anchor, MIN, NOW + MIN, NOW + 2 * MIN)).toBe(anchor + MIN);
    expect(dueMoment(anchor, MIN, NOW + 2 * MIN, NOW + 3 * MIN)).toBe(anchor + 2 * MIN);
    expect(dueMoment(anchor, MIN, NOW + 80_000, NOW + 110_000)).toBeUndefined(); // :20 not in (12:01:20, 12:01:50]
    expect(dueMoment(anchor, MIN, NOW - MIN, NOW)).toBeUndefined(); // not yet
    // Five-minute mailboxes registered together stay together; one registered later keeps its own phase.
    const together = [entry({ id: 'a', intervalMs: 5 * MIN }), entry({ id: 'b', intervalMs: 5 * MIN })];
    const later = entry({ id: 'c', intervalMs: 5 * MIN, dueAt: NOW + 2 * MIN });
    const cycles = Array.from({ length: 11 }, (_, i) => sent([...together, later], NOW + (i - 1) * MIN, NOW + i * MIN));
    expect(cycles).toEqual([['a', 'b'], [], ['c'], [], [], ['a', 'b'], [], ['c'], [], [], ['a', 'b']]);
  });

  it('catches up once after missed cycles, not once per missed boundary', () => {
    const e = entry({ dueAt: NOW });
    // The dispatcher did not run from 12:01 to 12:09: the cycle at 12:10 sends it once, the next at 12:11 again.
    expect(sent([e], NOW, NOW + 10 * MIN)).toEqual(['support']);
    expect(dueMoment(NOW, MIN, NOW, NOW + 10 * MIN)).toBe(NOW + 10 * MIN);
    expect(sent([e], NOW + 10 * MIN, NOW + 11 * MIN)).toEqual(['support']);
    // A 1-hour mailbox whose boundary fell into the gap: sent once, at the first cycle after it.
    const hourly = entry({ intervalMs: 60 * MIN, dueAt: NOW - 30 * MIN });
    expect(dueMoment(hourly.dueAt!, hourly.intervalMs, NOW, NOW + 45 * MIN)).toBe(NOW + 30 * MIN);
    expect(sent([hourly], NOW + 45 * MIN, NOW + 46 * MIN)).toEqual([]);
  });

  it('sends new, resumed and backoff-ended mailboxes at once; never paused or backing-off ones', () => {
    const prev = NOW - MIN;
    const entries = [
      entry({ id: 'new', intervalMs: 60 * MIN, dueAt: NOW - 5_000 }), // registered (or resumed) 5 s ago
      entry({ id: 'ended', intervalMs: 60 * MIN, dueAt: NOW - 1_000, backoffUntil: NOW - 1_000, failures: 3 }),
      entry({ id: 'backoff', dueAt: NOW + MIN, backoffUntil: NOW + MIN, failures: 2 }),
      entry({ id: 'paused', paused: true, shard: undefined, dueAt: undefined }),
      entry({ id: 'future', dueAt: NOW + 1 }),
    ];
    expect(sent(entries, prev, NOW)).toEqual(['new', 'ended']);
    // The first cycle ever (prev 0): everything whose anchor has passed.
    expect(sent([entry({ id: 'old', intervalMs: 60 * MIN, dueAt: NOW - 59 * MIN })], 0, NOW)).toEqual(['old']);
    expect(sent([entry({ id: 'old', intervalMs: 60 * MIN, dueAt: NOW - 59 * MIN })], prev, NOW)).toEqual([]);
  });

  it('carries the due mailboxes over the cap to the next cycle, the longest waiting sent first; counts backoff and overdue', () => {
    const entries = [
      entry({ id: 'late', intervalMs: 5 * MIN, dueAt: NOW - 9 * MIN }), // due since 11:56
      entry({ id: 'due', dueAt: NOW }),
      entry({ id: 'new', dueAt: NOW - 10_000 }),
      entry({ id: 'backoff', dueAt: NOW + MIN, backoffUntil: NOW + MIN, failures: 2 }),
      entry({ id: 'failing', dueAt: NOW - 7 * MIN, failingSince: NOW - 3 * MIN }), // due since NOW, and overdue
    ];
    const plan = planDispatch(entries, { now: NOW, prev: NOW - 5 * MIN, maxPerCycle: 2 }); // after missed cycles
    expect(plan.dispatch.map((e) => e.id)).toEqual(['late', 'new']);
    expect(plan.carryOver.map((e) => e.id)).toEqual(['due', 'failing']);
    expect(plan.carryOverTo).toBe(NOW + 1);
    expect(plan).toMatchObject({ deferred: 2, heldBack: 0, inBackoff: 1, overdue: 2 }); // the carried-over two
    // Carried over (dueAt moved to NOW + 1): the next cycle sends them, whatever their old phase.
    const next = entries.map((e) => (plan.carryOver.includes(e) ? { ...e, dueAt: plan.carryOverTo } : e));
    expect(sent(next, NOW, NOW + MIN, 2)).toEqual(['due', 'failing']);
  });

  it('holds back the mailboxes due on their schedule while the queue still holds a full cycle; sends first-time ones', () => {
    const onSchedule = Array.from({ length: 3 }, (_, i) => entry({ id: `s${i}`, dueAt: NOW - 10 * MIN }));
    const fresh = entry({ id: 'fresh', dueAt: NOW - 1_000 });
    const plan = planDispatch([...onSchedule, fresh], { now: NOW, prev: NOW - MIN, maxPerCycle: 100, backlog: 3 });
    expect(plan.dispatch.map((e) => e.id)).toEqual(['fresh']);
    expect(plan).toMatchObject({ heldBack: 3, deferred: 3, overdue: 3, carryOver: [] }); // no write for them
    expect(sent([...onSchedule, fresh], NOW - MIN, NOW, 100, 2)).toEqual(['fresh', 's0', 's1', 's2']);
    expect(sent([...onSchedule, fresh], NOW - MIN, NOW, 100, undefined)).toHaveLength(4); // backlog unknown: no guard
  });

  it('shows the next attempt for mailbox list: its next moment, now while waiting for a cycle, the end of a backoff', () => {
    const e = entry({ dueAt: NOW - 30_000 });
    expect(nextAttemptAt(e, NOW, NOW - 40_000)).toBe(NOW); // due after the last cycle: the next one sends it
    expect(nextAttemptAt(e, NOW, NOW - 10_000)).toBe(NOW + 30_000);
    expect(nextAttemptAt(e, NOW)).toBe(NOW); // no cycle yet
    expect(nextAttemptAt(entry({ dueAt: NOW + MIN, backoffUntil: NOW + MIN, failures: 1 }), NOW, NOW)).toBe(NOW + MIN);
    expect(nextAttemptAt(entry({ paused: true, shard: undefined, dueAt: undefined }), NOW, NOW)).toBeUndefined();
    expect(nextDueAt(NOW, MIN, NOW)).toBe(NOW + MIN);
    expect(nextDueAt(NOW + 5_000, MIN, NOW)).toBe(NOW + 5_000);
  });

  it('runs the cycle at the schedule tick, never ahead of the clock', () => {
    expect(cycleTime({ time: '2026-11-30T12:00:00Z' }, NOW + 700).getTime()).toBe(NOW);
    expect(cycleTime({ time: '2026-11-30T13:00:00Z' }, NOW).getTime()).toBe(NOW);
    expect(cycleTime({ time: 'soon' }, NOW).getTime()).toBe(NOW);
    expect(cycleTime({}, NOW).getTime()).toBe(NOW);
    expect(cycleTime(null, NOW).getTime()).toBe(NOW);
  });

  it('counts a never-polled mailbox as overdue two intervals after it was registered, never a paused one', () => {
    const fresh = entry({
      lastSuccessAt: undefined,
      registeredAt: new Date(NOW - MIN).toISOString(),
      dueAt: NOW + MIN,
    });
    expect(isOverdue(fresh, NOW)).toBe(false);
    expect(isOverdue(fresh, NOW + 1.5 * MIN)).toBe(true);
    expect(isOverdue(entry({ paused: true, lastSuccessAt: undefined }), NOW + 10 * MIN)).toBe(false);
    // Failing transiently for longer than two intervals; a backing-off one counts in its own gauge.
    expect(isOverdue(entry({ failingSince: NOW - 2 * MIN - 1, dueAt: NOW + MIN }), NOW)).toBe(true);
    expect(isOverdue(entry({ failingSince: NOW - MIN, dueAt: NOW + MIN }), NOW)).toBe(false);
    expect(isOverdue(entry({ failures: 2, failingSince: NOW - 60 * MIN, backoffUntil: NOW - 1 }), NOW)).toBe(false);
    // The anchor's age says nothing (a healthy mailbox registered long ago).
    expect(isOverdue(entry({ dueAt: NOW - 600 * MIN }), NOW)).toBe(false);
    expect(mailboxState(entry({ backoffUntil: NOW }), NOW)).toBe('active'); // the backoff has ended
  });

  it('writes a success to the registry only when it changes something', () => {
    expect(successNeedsRecord(entry())).toBe(false);
    expect(successNeedsRecord(entry({ lastSuccessAt: undefined }))).toBe(true);
    expect(successNeedsRecord(entry({ failingSince: NOW }))).toBe(true);
    expect(successNeedsRecord(entry({ failures: 1, backoffUntil: NOW }))).toBe(true);
  });
});

describe('backoff', () => {
  it('doubles from 1 min per persistent failure, capped at 4 h, with at most 10 % jitter', () => {
    const curve = [1, 2, 3, 4, 5, 6, 7, 8, 9, 12].map((n) => failureBackoffMs(n, 0) / MIN);
    expect(curve).toEqual([1, 2, 4, 8, 16, 32, 64, 128, 240, 240]);
    expect(failureBackoffMs(1, 0.999)).toBeLessThanOrEqual(FAILURE_BACKOFF.baseMs * 1.1);
    expect(failureBackoffMs(50, 0.5)).toBe(Math.round(FAILURE_BACKOFF.capMs * 1.05));
  });
});

describe('shards and slots', () => {
  it('spreads ids over every shard of the due index, stably', () => {
    const shards = new Set(Array.from({ length: 500 }, (_, i) => shardOf(`box${i}`)));
    expect(shards.size).toBe(DUE_INDEX.shards);
    expect(shardOf('support')).toBe(shardOf('support'));
  });

  it('tries every host slot once, from a random start', () => {
    expect(slotOrder(4, 0.6)).toEqual([2, 3, 0, 1]);
    expect(slotOrder(1, 0.99)).toEqual([0]);
  });
});

describe('declared mailboxes', () => {
  it('names every problem by field, never the value', () => {
    expect(
      declaredMailboxProblems({
        id: 'Bad',
        secretId: 's3cr3t-value',
        schedule: 'cron(0 9 ? * MON-FRI *)',
        startAt: 'x',
        extra: 1,
      }),
    ).toEqual([
      'extra: unknown field',
      'id: 1 to 32 characters: lowercase letters, digits and single inner hyphens, starting with a letter',
      `secretId: must be a secret name or ARN under the prefix "${FLEET_DEFAULTS.secretPrefix}"`,
      'schedule: must be rate(N minutes|hours|days) or an evenly spaced cron(...) running every day',
      expect.stringMatching(/^startAt: must be "now", "all"/),
    ]);
    expect(
      declaredFileProblems(
        {
          version: 1,
          mailboxes: [
            { id: 'a', secretId: 'p/a' },
            { id: 'a', secretId: 'p/b' },
          ],
        },
        'p/',
      ),
    ).toEqual(['mailboxes[1].id: is declared twice']);
    expect(declaredFileProblems({ version: 2 }, '')).toEqual(['version: must be 1']);
  });

  it('creates, updates and removes cdk items to match the file, never touching cli items', () => {
    const registered = [
      entry({ id: 'same', source: 'cdk' }),
      entry({ id: 'changed', source: 'cdk' }),
      entry({ id: 'gone', source: 'cdk' }),
      entry({ id: 'manual', source: 'cli' }),
      entry({ id: 'manual-only', source: 'cli' }),
    ];
    const declared = [
      definitionOf({ id: 'same', secretId: 'imap-event-source/support' }),
      definitionOf({ id: 'changed', secretId: 'imap-event-source/support', folder: 'Archiv' }),
      definitionOf({ id: 'manual', secretId: 'imap-event-source/other' }),
      definitionOf({ id: 'new', secretId: 'imap-event-source/new', schedule: 'rate(5 minutes)' }),
    ];
    const sync = syncDeclared(declared, registered);
    expect(sync.create.map((d) => [d.id, d.intervalMs])).toEqual([['new', 5 * MIN]]);
    expect(sync.update.map((d) => d.id)).toEqual(['changed']);
    expect(sync.remove).toEqual(['gone']);
    expect(sync.conflicts).toEqual(['manual']);
  });
});

describe('stored items and messages', () => {
  const item = (overrides: Record<string, AttributeValue | undefined> = {}): Record<string, AttributeValue> => {
    const base: Record<string, AttributeValue | undefined> = {
      pk: { S: 'mailbox#support' },
      id: { S: 'support' },
      secretId: { S: 'imap-event-source/support' },
      schedule: { S: 'rate(1 minute)' },
      intervalMs: { N: '60000' },
      startAt: { S: 'now' },
      source: { S: 'cli' },
      paused: { BOOL: false },
      shard: { N: '3' },
      dueAt: { N: String(NOW) },
      failures: { N: '0' },
      registeredAt: { S: new Date(NOW).toISOString() },
      ...overrides,
    };
    return Object.fromEntries(Object.entries(base).filter(([, v]) => v !== undefined)) as Record<
      string,
      AttributeValue
    >;
  };

  it('reads a valid item and names the key and field of a damaged one', () => {
    expect(parseRegistryItem(item(), 't')).toMatchObject({ id: 'support', dueAt: NOW, paused: false });
    expect(() => parseRegistryItem(item({ failures: { S: '3' } }), 't')).toThrow(
      'The registry item "mailbox#support" in table "t" is damaged: failures must be a non-negative integer (N).',
    );
    expect(() => parseRegistryItem(item({ dueAt: undefined }), 't')).toThrow(
      /shard\/dueAt must be set while not paused/,
    );
    expect(() => parseRegistryItem(item({ source: { S: 'api' } }), 't')).toThrow(/source must be "cdk" or "cli"/);
    expect(() => parseRegistryItem(item({ intervalMs: { N: '120000' } }), 't')).toThrow(
      /intervalMs must be the interval/,
    );
    expect(() => parseRegistryItem(item({ id: { S: 'other' } }), 't')).toThrow(
      /id must be a valid mailbox id matching the key/,
    );
    expect(
      parseRegistryItem(item({ paused: { BOOL: true }, shard: undefined, dueAt: undefined }), 't').dueAt,
    ).toBeUndefined();
  });

  it('accepts only poll requests from the queue', () => {
    expect(parsePollRequest('{"mailboxId":"a","sentAt":1}')).toEqual({ mailboxId: 'a', sentAt: 1 });
    expect(parsePollRequest('not json')).toBeUndefined();
    expect(parsePollRequest('{"mailboxId":1,"sentAt":1}')).toBeUndefined();
    expect(parsePollRequest('null')).toBeUndefined();
  });

  it('keeps a bounded cache of the most recently used entries', () => {
    const cache = new BoundedCache<string, number>(2);
    cache.set('a', 1);
    cache.set('b', 2);
    cache.get('a');
    cache.set('c', 3);
    expect([cache.get('a'), cache.get('b'), cache.get('c'), cache.size]).toEqual([1, undefined, 3, 2]);
  });
});

describe('environment', () => {
  it('reads the worker and dispatcher environment with the defaults of the contract', () => {
    expect(readWorkerConfig({ CHECKPOINT_TABLE: 't', POLL_QUEUE_URL: 'q', EVENT_BUS_NAME: 'b' })).toEqual({
      table: 't',
      queueUrl: 'q',
      eventBusName: 'b',
      eventSource: 'imap-event-source',
      secretPrefix: FLEET_DEFAULTS.secretPrefix,
      hostConnectionCap: FLEET_DEFAULTS.hostConnectionCap,
      poolConcurrency: FLEET_DEFAULTS.poolConcurrency,
      maxMessagesPerTurn: FLEET_DEFAULTS.maxMessagesPerTurn,
    });
    expect(readDispatcherConfig({ CHECKPOINT_TABLE: 't', POLL_QUEUE_URL: 'q' })).toEqual({
      table: 't',
      queueUrl: 'q',
      maxPerCycle: FLEET_DEFAULTS.maxPerCycle,
    });
  });

  it('names every wrong variable and the rule, never the value', () => {
    expect(() =>
      readWorkerConfig({
        POLL_QUEUE_URL: 'q',
        EVENT_BUS_NAME: 'b',
        HOST_CONNECTION_CAP: 'lots',
        MAX_MESSAGES_PER_TURN: '0',
      }),
    ).toThrow(
      'The fleet worker is misconfigured: CHECKPOINT_TABLE is not set; HOST_CONNECTION_CAP must be an integer from 1 to 1000; MAX_MESSAGES_PER_TURN must be an integer from 1 to 100000.',
    );
    expect(() =>
      readDispatcherConfig({ CHECKPOINT_TABLE: 't', POLL_QUEUE_URL: 'q', DECLARED_MAILBOXES_BUCKET: 'b' }),
    ).toThrow(/DECLARED_MAILBOXES_BUCKET and DECLARED_MAILBOXES_KEY must be set together/);
  });
});
