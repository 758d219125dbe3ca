import { describe, expect, it } from 'vitest';
import { ConfigurationError } from '../../functions/poller/errors.js';
import { CLEANUP_MS, Deadline, LEASE_GRACE_MS, MIN_RUN_MS } from '../../functions/poller/run/deadline.js';
import { FakeClock } from './fakes.js';

/** A call that never settles by itself, but rejects when its signal aborts (as the SDK does). */
function hanging(seen: AbortSignal[]): (signal: AbortSignal) => Promise<never> {
  return (signal) =>
    new Promise<never>((_resolve, reject) => {
      seen.push(signal);
      signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
    });
}

describe('Deadline', () => {
  it('keeps the requested reserve when it fits, and caps it at two thirds of a short run', () => {
    const clock = new FakeClock();
    const long = Deadline.start({ at: clock.ms + 60_000, now: clock.now });
    expect(long.reserveMs).toBe(5_000);
    expect(long.cleanupMs).toBe(CLEANUP_MS);
    const short = Deadline.start({ at: clock.ms + 3_000, now: clock.now });
    expect(short.reserveMs).toBe(2_000);
    expect(short.cleanupMs).toBe(2_000);
    const tiny = Deadline.start({ at: clock.ms + 1_200, now: clock.now, reserveMs: 1_000 });
    expect(tiny.reserveMs).toBe(800);
    expect(tiny.cleanupMs).toBe(800);
  });

  it('budget: the requested time, or a third of what is left before the reserve (so a new login still fits)', () => {
    const clock = new FakeClock();
    const long = Deadline.start({ at: clock.ms + 50_000, now: clock.now });
    expect(long.budget(3_000)).toBe(3_000);
    const short = Deadline.start({ at: clock.ms + 6_000, now: clock.now, reserveMs: 1_500 });
    expect(short.budget(3_000)).toBe(1_500);
    clock.advance(6_000);
    expect(short.budget(3_000)).toBe(0);
  });

  it('refuses a run shorter than MIN_RUN_MS with an error naming the time left and the timeout', () => {
    const clock = new FakeClock();
    const start = () => Deadline.start({ at: clock.ms + MIN_RUN_MS - 1, now: clock.now });
    expect(start).toThrow(ConfigurationError);
    expect(start).toThrow(`Only ${MIN_RUN_MS - 1} ms of the Lambda timeout were left`);
    expect(() => Deadline.start({ at: clock.ms - 5, now: clock.now })).toThrow(/Only 0 ms/);
  });

  it('lets batches start until the reserve, and leases expire LEASE_GRACE_MS after the deadline', () => {
    const clock = new FakeClock();
    const deadline = Deadline.start({ at: clock.ms + 10_000, now: clock.now });
    expect(deadline.canStartBatch()).toBe(true);
    clock.advance(5_000);
    expect(deadline.canStartBatch()).toBe(true);
    clock.advance(1);
    expect(deadline.canStartBatch()).toBe(false);
    expect(deadline.leaseExpiresAt().getTime()).toBe(deadline.at + LEASE_GRACE_MS);
  });

  it('a call that outlives the hard stop fails with the given error and is cancelled through its signal', async () => {
    const clock = new FakeClock();
    // The hard stop is at once: the run is already inside its cleanup time.
    const deadline = Deadline.start({ at: clock.ms + 1_000, now: clock.now, reserveMs: 1_000 });
    const seen: AbortSignal[] = [];
    await expect(deadline.call(hanging(seen), () => new Error('silent'))).rejects.toThrow('silent');
    expect(seen[0]!.aborted).toBe(true);
    expect(deadline.signal.aborted).toBe(true);
  });

  it('at the hard stop every call given up reports the stall that waited longest (a FETCH ahead, not the PutEvents beside it)', async () => {
    const clock = new FakeClock();
    const deadline = Deadline.start({ at: clock.ms + 1_000, now: clock.now, reserveMs: 1_000 });
    const seen: AbortSignal[] = [];
    const fetch = deadline.call(hanging(seen), () => new Error('IMAP silent (fetchSources)'));
    const publish = deadline.call(hanging(seen), () => new Error('EventBridge silent'));
    await expect(publish).rejects.toThrow('IMAP silent (fetchSources)');
    await expect(fetch).rejects.toThrow('IMAP silent (fetchSources)');
    expect((deadline.signal.reason as Error).message).toBe('IMAP silent (fetchSources)');
    // A call that finished is no stall: the next one alone is given up with its own error.
    const other = Deadline.start({ at: clock.ms + 1_000, now: clock.now, reserveMs: 1_000 });
    await other.call(
      async () => 'done',
      () => new Error('never'),
    );
    await expect(other.call(hanging([]), () => new Error('EventBridge silent'))).rejects.toThrow('EventBridge silent');
  });

  it('hands a late result to onLate, and a call that finishes in time its own result', async () => {
    const clock = new FakeClock();
    const deadline = Deadline.start({ at: clock.ms + 60_000, now: clock.now });
    await expect(
      deadline.call(
        async () => 42,
        () => new Error('silent'),
      ),
    ).resolves.toBe(42);
    await expect(
      deadline.call(
        async () => {
          throw new Error('own failure');
        },
        () => new Error('silent'),
      ),
    ).rejects.toThrow('own failure');
    expect(deadline.signal.aborted).toBe(false);

    const late: number[] = [];
    const stopped = Deadline.start({ at: clock.ms + 1_000, now: clock.now, reserveMs: 1_000 });
    let finish: (value: number) => void = () => {};
    const call = stopped.call(
      () => new Promise<number>((resolve) => (finish = resolve)),
      () => new Error('silent'),
      (value) => late.push(value),
    );
    await expect(call).rejects.toThrow('silent');
    finish(7);
    await Promise.resolve();
    expect(late).toEqual([7]);
  });

  it('cleanup steps get their own signal, cancelled at their share of the cleanup time; never throw', async () => {
    const clock = new FakeClock();
    const deadline = Deadline.start({ at: clock.ms + 1_000, now: clock.now, reserveMs: 1_000 });
    deadline.end();
    const seen: AbortSignal[] = [];
    // A quarter of the cleanup time before the deadline is 750 ms after now (on the fake clock): move past it.
    clock.advance(800);
    expect(await deadline.cleanup(hanging(seen), 1 / 4)).toBe(false);
    expect(seen[0]!.aborted).toBe(true);
    expect(
      await deadline.cleanup(async () => {
        throw new Error('release failed');
      }, 1 / 4),
    ).toBe(true);
  });

  it('end() cancels whatever still listens to the run signal', () => {
    const clock = new FakeClock();
    const deadline = Deadline.start({ at: clock.ms + 60_000, now: clock.now });
    const signal = deadline.signal;
    expect(signal.aborted).toBe(false);
    deadline.end();
    expect(signal.aborted).toBe(true);
  });
});
