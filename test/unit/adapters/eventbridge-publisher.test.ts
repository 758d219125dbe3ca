import {
  EventBridgeClient,
  PutEventsCommand,
  type PutEventsRequestEntry,
  type PutEventsResultEntry,
} from '@aws-sdk/client-eventbridge';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  EventBridgePublisher,
  type EventBridgePublisherOptions,
} from '../../../functions/poller/adapters/eventbridge-publisher.js';
import { backoffDelay } from '../../../functions/poller/core/backoff.js';
import type { EventEntry } from '../../../functions/poller/core/types.js';
import { EventPublishError } from '../../../functions/poller/errors.js';
import { RecordingLog } from '../fakes.js';

const eb = mockClient(EventBridgeClient);
let sleeps: number[];

beforeEach(() => {
  eb.reset();
  sleeps = [];
});
afterEach(() => eb.reset());

function publisher(options: Partial<EventBridgePublisherOptions> = {}): EventBridgePublisher {
  return new EventBridgePublisher(new EventBridgeClient({ region: 'eu-central-1' }), {
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    random: () => 0.5,
    ...options,
  });
}

/** Entries numbered by uid (= their index); `pad` bytes of Detail each. */
function entries(count: number, pad = 10): EventEntry[] {
  return Array.from({ length: count }, (_, uid) => ({
    Source: 'imap-event-source',
    DetailType: 'IMAP Message Received',
    Detail: JSON.stringify({ uid, pad: 'x'.repeat(pad) }),
    EventBusName: 'mail-bus',
    uid,
  }));
}

const uidOf = (e: PutEventsRequestEntry): number => JSON.parse(e.Detail!).uid;
const ok = (n: number): PutEventsResultEntry => ({ EventId: `event-${n}` });
const fail = (code: string): PutEventsResultEntry => ({ ErrorCode: code, ErrorMessage: `${code} for this entry` });

/** The uids sent in each PutEvents call, in order. */
function sentUids(): number[][] {
  return eb.commandCalls(PutEventsCommand).map((c) => c.args[0].input.Entries!.map(uidOf));
}

/** Answers every call by asking `result(uid, callIndex)` for each entry. */
function answer(result: (uid: number, call: number) => PutEventsResultEntry): void {
  let call = 0;
  eb.on(PutEventsCommand).callsFake((input: { Entries: PutEventsRequestEntry[] }) => {
    const index = call++;
    const results = input.Entries.map((e) => result(uidOf(e), index));
    return { FailedEntryCount: results.filter((r) => r.ErrorCode).length, Entries: results };
  });
}

const named = (name: string): Error => Object.assign(new Error(`${name} from the service`), { name });

describe('EventBridgePublisher: chunking', () => {
  it('sends nothing for no entries', async () => {
    const result = await publisher().publish([]);
    expect(eb.commandCalls(PutEventsCommand)).toHaveLength(0);
    expect(result.accepted.size).toBe(0);
    expect(result.failed.size).toBe(0);
  });

  it('sends at most 10 entries per call, in order, and reports all accepted', async () => {
    answer((uid) => ok(uid));
    const result = await publisher().publish(entries(25));
    expect(sentUids()).toEqual([
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      [10, 11, 12, 13, 14, 15, 16, 17, 18, 19],
      [20, 21, 22, 23, 24],
    ]);
    expect([...result.accepted].sort((a, b) => a - b)).toEqual(Array.from({ length: 25 }, (_, i) => i));
    expect(result.failed.size).toBe(0);
    expect(sleeps).toEqual([]);
  });

  it('keeps every call at or below 256 KB', async () => {
    answer((uid) => ok(uid));
    await publisher().publish(entries(5, 100 * 1024));
    expect(sentUids()).toEqual([[0, 1], [2, 3], [4]]);
    for (const call of eb.commandCalls(PutEventsCommand)) {
      const bytes = call.args[0].input.Entries!.reduce(
        (s, e) => s + Buffer.byteLength(e.Source! + e.DetailType! + e.Detail!),
        0,
      );
      expect(bytes).toBeLessThanOrEqual(256 * 1024);
    }
  });

  it('sends only the EventBridge fields (not the uid)', async () => {
    answer((uid) => ok(uid));
    await publisher().publish(entries(1));
    expect(eb.commandCalls(PutEventsCommand)[0]!.args[0].input).toEqual({
      Entries: [
        {
          Source: 'imap-event-source',
          DetailType: 'IMAP Message Received',
          Detail: JSON.stringify({ uid: 0, pad: 'x'.repeat(10) }),
          EventBusName: 'mail-bus',
        },
      ],
    });
  });
});

describe('EventBridgePublisher: failed entries', () => {
  it('retries only the failed entries, with backoff, until they are accepted', async () => {
    answer((uid, call) =>
      call === 0 && (uid === 3 || uid === 7) ? fail(uid === 3 ? 'InternalFailure' : 'ThrottlingException') : ok(uid),
    );
    const log = new RecordingLog();
    const result = await publisher({ log }).publish(entries(10));
    expect(sentUids()).toEqual([
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      [3, 7],
    ]);
    expect(result.accepted.size).toBe(10);
    expect(result.failed.size).toBe(0);
    expect(sleeps).toEqual([backoffDelay(0, 0.5, 200, 5_000)]);
    expect(sleeps).toEqual([100]);
    expect(log.lines.some((l) => l.level === 'warn' && l.fields.failed === 2)).toBe(true);
  });

  it('gives up after maxAttempts with growing delays and reports the last error code', async () => {
    answer((uid, call) => (uid === 4 ? fail(call < 2 ? 'ThrottlingException' : 'InternalFailure') : ok(uid)));
    const result = await publisher({ random: () => 0.999 }).publish(entries(6));
    expect(sentUids()).toEqual([[0, 1, 2, 3, 4, 5], [4], [4], [4]]);
    expect([...result.accepted].sort()).toEqual([0, 1, 2, 3, 5]);
    expect(result.failed).toEqual(new Map([[4, 'InternalFailure']]));
    // Full jitter under a doubling ceiling: base 200 ms -> ceilings 200, 400, 800.
    expect(sleeps).toEqual([199, 399, 799]);
  });

  it('honours maxAttempts, baseDelayMs and maxDelayMs', async () => {
    answer(() => fail('InternalFailure'));
    const result = await publisher({
      maxAttempts: 6,
      baseDelayMs: 1_000,
      maxDelayMs: 3_000,
      random: () => 0.5,
    }).publish(entries(1));
    expect(eb.commandCalls(PutEventsCommand)).toHaveLength(6);
    expect(sleeps).toEqual([500, 1_000, 1_500, 1_500, 1_500]);
    expect(result.failed.get(0)).toBe('InternalFailure');
  });

  it.each([
    'ValidationException',
    'AccessDeniedException',
    'NotAuthorizedForSourceException',
    'InvalidArgument',
    'MalformedDetail',
  ])('does not retry the permanent entry error %s', async (code) => {
    answer((uid) => (uid === 1 ? fail(code) : ok(uid)));
    const result = await publisher().publish(entries(3));
    expect(sentUids()).toEqual([[0, 1, 2]]);
    expect(result.failed).toEqual(new Map([[1, code]]));
    expect([...result.accepted].sort()).toEqual([0, 2]);
    expect(sleeps).toEqual([]);
  });

  it('retries an entry without a result (short Entries array) as MissingResult', async () => {
    let call = 0;
    eb.on(PutEventsCommand).callsFake((input: { Entries: PutEventsRequestEntry[] }) =>
      call++ === 0
        ? { FailedEntryCount: 0, Entries: input.Entries.slice(0, 2).map((e) => ok(uidOf(e))) }
        : { FailedEntryCount: 0, Entries: input.Entries.map((e) => ok(uidOf(e))) },
    );
    const result = await publisher().publish(entries(3));
    expect(sentUids()).toEqual([[0, 1, 2], [2]]);
    expect(result.accepted.size).toBe(3);
  });

  it('does not count a result without EventId as accepted', async () => {
    eb.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{}] });
    const result = await publisher({ maxAttempts: 2 }).publish(entries(1));
    expect(result.accepted.size).toBe(0);
    expect(result.failed.get(0)).toBe('MissingResult');
  });

  it("maps failures back to the caller's indexes across chunks and retries", async () => {
    answer((uid, call) =>
      (uid === 12 && call <= 1) || uid === 18 ? fail(uid === 18 ? 'ValidationException' : 'InternalFailure') : ok(uid),
    );
    const result = await publisher().publish(entries(20));
    expect(sentUids()).toEqual([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [10, 11, 12, 13, 14, 15, 16, 17, 18, 19], [12]]);
    expect(result.accepted.has(12)).toBe(true);
    expect(result.accepted.has(18)).toBe(false);
    expect(result.failed).toEqual(new Map([[18, 'ValidationException']]));
    expect(result.accepted.size + result.failed.size).toBe(20);
  });
});

describe('EventBridgePublisher: failed calls', () => {
  // Whole calls are retried by the SDK (its retry strategy sits below `send`, which the mock replaces): a call
  // that reaches the publisher as a failure has used up the SDK's attempts.
  it('does not retry a failed call on top of the SDK: its entries are reported failed (no throw)', async () => {
    eb.on(PutEventsCommand).rejects(named('ThrottlingException'));
    const result = await publisher().publish(entries(2));
    expect(eb.commandCalls(PutEventsCommand)).toHaveLength(1);
    expect(sleeps).toEqual([]);
    expect(result.accepted.size).toBe(0);
    expect(result.failed).toEqual(
      new Map([
        [0, 'ThrottlingException'],
        [1, 'ThrottlingException'],
      ]),
    );
  });

  it('a failed call ends the publish (one call at a time): the chunks before it stay accepted, it and the rest are failed', async () => {
    let call = 0;
    eb.on(PutEventsCommand).callsFake((input: { Entries: PutEventsRequestEntry[] }) => {
      if (call++ === 1) throw named('ThrottlingException');
      return { FailedEntryCount: 0, Entries: input.Entries.map((e) => ok(uidOf(e))) };
    });
    const result = await publisher({ concurrency: 1 }).publish(entries(25));
    expect(sentUids()).toEqual([
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      [10, 11, 12, 13, 14, 15, 16, 17, 18, 19],
    ]);
    expect([...result.accepted]).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect([...result.failed.keys()]).toEqual([10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24]);
    expect(new Set(result.failed.values())).toEqual(new Set(['ThrottlingException']));
  });

  it('a failed call ends the publish (calls in flight together): those in flight finish, no new call starts', async () => {
    let call = 0;
    let failedAlready: () => void = () => {};
    const secondFailed = new Promise<void>((resolve) => (failedAlready = resolve));
    eb.on(PutEventsCommand).callsFake(async (input: { Entries: PutEventsRequestEntry[] }) => {
      if (call++ === 1) {
        setTimeout(failedAlready, 10);
        throw named('ThrottlingException');
      }
      await secondFailed; // the first call answers after the second failed
      return { FailedEntryCount: 0, Entries: input.Entries.map((e) => ok(uidOf(e))) };
    });
    const result = await publisher({ concurrency: 2 }).publish(entries(45));
    // The first two calls went out together; the second failed, so no third call started.
    expect(sentUids().map((c) => c[0])).toEqual([0, 10]);
    expect([...result.accepted]).toEqual(uids(0, 9));
    expect([...result.failed.keys()].sort((a, b) => a - b)).toEqual(uids(10, 44));
    expect(new Set(result.failed.values())).toEqual(new Set(['ThrottlingException']));
  });

  it('a failed call during an entry retry keeps the entry errors of the rest', async () => {
    let call = 0;
    eb.on(PutEventsCommand).callsFake((input: { Entries: PutEventsRequestEntry[] }) => {
      if (call++ === 1) throw named('InternalServerException');
      return {
        FailedEntryCount: 1,
        Entries: input.Entries.map((e) => (uidOf(e) === 1 ? fail('InternalFailure') : ok(uidOf(e)))),
      };
    });
    const result = await publisher().publish(entries(3));
    expect(sentUids()).toEqual([[0, 1, 2], [1]]);
    expect([...result.accepted].sort()).toEqual([0, 2]);
    expect(result.failed).toEqual(new Map([[1, 'InternalServerException']]));
  });

  it("passes the caller's signal to the SDK and makes no further attempt once it aborted", async () => {
    const controller = new AbortController();
    eb.on(PutEventsCommand).callsFake(() => {
      controller.abort(new Error('the run gave up'));
      throw named('AbortError');
    });
    const err = await publisher({ concurrency: 1 })
      .publish(entries(15), { signal: controller.signal })
      .catch((e: unknown) => e);
    expect((err as Error).message).toBe('the run gave up');
    expect(eb.commandCalls(PutEventsCommand)).toHaveLength(1);
    expect((eb.commandCalls(PutEventsCommand)[0]!.args as unknown[])[1]).toMatchObject({
      abortSignal: controller.signal,
    });
  });

  it.each(['ResourceNotFoundException', 'AccessDeniedException'])(
    'throws a non-retryable EventPublishError on %s at once',
    async (name) => {
      const cause = named(name);
      eb.on(PutEventsCommand).rejects(cause);
      const err = await publisher()
        .publish(entries(12))
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EventPublishError);
      expect(err).toMatchObject({ code: 'EVENT_PUBLISH_FAILED', retryable: false, cause });
      expect((err as EventPublishError).hint).toBeTruthy();
      // The two calls of the 12 entries went out together (concurrently); no further call, no retry.
      expect(eb.commandCalls(PutEventsCommand)).toHaveLength(2);
      expect(sleeps).toEqual([]);
    },
  );
});

function uids(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

describe('EventBridgePublisher: concurrency', () => {
  it('keeps at most `concurrency` PutEvents calls in flight and reports every entry', async () => {
    let inFlight = 0;
    let most = 0;
    eb.on(PutEventsCommand).callsFake(async (input: { Entries: unknown[] }) => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((resolve) => setImmediate(resolve));
      inFlight--;
      return { FailedEntryCount: 0, Entries: input.Entries.map((_, i) => ({ EventId: `id-${i}` })) };
    });
    const result = await publisher({ concurrency: 3 }).publish(entries(95));
    expect(eb.commandCalls(PutEventsCommand)).toHaveLength(10);
    expect(most).toBe(3);
    expect(result.accepted.size).toBe(95);
  });
});
