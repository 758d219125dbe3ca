/**
 * The run's deadline: the one owner of every time budget of a poll. A silent IMAP server or AWS endpoint must
 * not hold a run past the Lambda timeout (imapflow's socket timeouts and the SDK's are longer than what may be
 * left of it, and a run the runtime kills logs nothing and keeps its lease). So:
 *
 * - `reserveMs` before the end, no new batch starts (time for the last checkpoint write, LOGOUT, the lease);
 * - `cleanupMs` before the end (the hard stop), every call still running is given up AND cancelled: the run's
 *   AbortSignal fires, the SDK drops its request and the IMAP adapter closes its connection;
 * - what is left is split between closing the session and releasing the lease, each cancelled at its share.
 *
 * The reserve scales with the time the run has (at most two thirds of it), so a short Lambda timeout still makes
 * progress; below `MIN_RUN_MS` the run fails loudly, naming the timeout.
 */
import type { MailboxSettings } from '../core/settings.js';
import {
  CheckpointStoreError,
  ConfigurationError,
  EventPublishError,
  ImapConnectionError,
  RawStorageError,
  SecretAccessError,
} from '../errors.js';

/** Time kept free before the deadline by default (last checkpoint write, LOGOUT, lease release). */
export const DEFAULT_RESERVE_MS = 5_000;
/** The reserve never takes more than this share of the run, so a short timeout still leaves time to work. */
export const MAX_RESERVE_SHARE = 2 / 3;
/** Part of the reserve kept, after the hard stop, for LOGOUT and releasing the lease. */
export const CLEANUP_MS = 2_000;
/** Below this, a run cannot connect, log in and publish one batch: it refuses to start. */
export const MIN_RUN_MS = 1_000;
/**
 * The Lambda handler's share after the run: the run's deadline is this much before the Lambda's, and the status
 * item's write (report.ts) is cancelled at REPORT_MARGIN_MS before the Lambda's, so a slow or throttled status
 * write (the SDK's retries back off for seconds) cannot carry the invocation into a timeout.
 */
export const REPORT_RESERVE_MS = 500;
export const REPORT_MARGIN_MS = 100;

/** A lease outlives the run's deadline by this much, so a crashed run blocks the mailbox only briefly. */
export const LEASE_GRACE_MS = 30_000;

export interface DeadlineOptions {
  /** Epoch ms by which the run must have finished (the Lambda deadline). */
  readonly at: number;
  readonly now: () => Date;
  /** Requested reserve; capped at MAX_RESERVE_SHARE of the run. @default DEFAULT_RESERVE_MS */
  readonly reserveMs?: number;
  /** How long a lease outlives the deadline. @default LEASE_GRACE_MS */
  readonly leaseGraceMs?: number;
}

export class Deadline {
  /** Epoch ms by which the run must have finished. */
  readonly at: number;
  /** No new batch starts later than `at - reserveMs`. */
  readonly reserveMs: number;
  /** Calls still running at `at - cleanupMs` are cancelled. */
  readonly cleanupMs: number;
  private readonly now: () => Date;
  private readonly controller = new AbortController();
  /** Calls under way, oldest first (a Set keeps insertion order). */
  private readonly pending = new Set<{ readonly timedOut: () => Error }>();
  private stopError?: Error;

  /** Starts a run's deadline; throws ConfigurationError when the run has less than MIN_RUN_MS. */
  static start(options: DeadlineOptions): Deadline {
    const total = options.at - options.now().getTime();
    if (total < MIN_RUN_MS) {
      throw new ConfigurationError(
        `Only ${Math.max(0, Math.round(total))} ms of the Lambda timeout were left when the poll started; a poll needs at least ${MIN_RUN_MS} ms.`,
        {
          hint: `raise the function's timeout (the ImapEventSource prop \`timeout\`, at least ${MIN_FUNCTION_TIMEOUT_SECONDS} s; default 50 s).`,
        },
      );
    }
    return new Deadline(
      options.at,
      options.now,
      Math.min(options.reserveMs ?? DEFAULT_RESERVE_MS, total * MAX_RESERVE_SHARE),
      options.leaseGraceMs ?? LEASE_GRACE_MS,
    );
  }

  private constructor(
    at: number,
    now: () => Date,
    reserveMs: number,
    private readonly leaseGraceMs: number,
  ) {
    this.at = at;
    this.now = now;
    this.reserveMs = reserveMs;
    this.cleanupMs = Math.min(reserveMs, CLEANUP_MS);
  }

  /** Aborted when a call is given up at the hard stop, or when the run ends. Pass it to every port call. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Whether a new batch may start (the reserve is still ahead). */
  canStartBatch(): boolean {
    return this.now().getTime() <= this.at - this.reserveMs;
  }

  /**
   * A time budget for a step that, when it fails, still leaves work to do (the check of a kept IMAP session, then a
   * new login): `maxMs`, or a third of the time left before the reserve if that is less.
   */
  budget(maxMs: number): number {
    return Math.max(0, Math.min(maxMs, (this.at - this.reserveMs - this.now().getTime()) / 3));
  }

  /** When a lease taken now should expire if the run never releases it. */
  leaseExpiresAt(): Date {
    return new Date(this.at + this.leaseGraceMs);
  }

  /**
   * The call's outcome, or `timedOut()` when the hard stop comes first; then the run's signal aborts, which
   * cancels the call (and every other call of the run). A late result of a call that ignored the signal goes to
   * `onLate` (e.g. to give a lease back), a late failure nowhere.
   */
  call<T>(call: (signal: AbortSignal) => Promise<T>, timedOut: () => Error, onLate?: (value: T) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let lost = false;
      const pending = { timedOut };
      this.pending.add(pending);
      const timer = setTimeout(
        () => {
          lost = true;
          const error = this.stop(timedOut);
          this.pending.delete(pending);
          reject(error);
        },
        Math.max(0, this.at - this.cleanupMs - this.now().getTime()),
      );
      let running: Promise<T>;
      try {
        running = call(this.controller.signal);
      } catch (err) {
        running = Promise.reject(err);
      }
      running.then(
        (value) => {
          clearTimeout(timer);
          this.pending.delete(pending);
          if (lost) onLate?.(value);
          else resolve(value);
        },
        (err: unknown) => {
          clearTimeout(timer);
          this.pending.delete(pending);
          // Failed once the run's signal aborted: cancelled by the hard stop, which reports the stall.
          if (!lost) reject(this.stopError ?? err);
        },
      );
    });
  }

  /**
   * The hard stop, once: the error every call given up reports is the one of the call that had waited longest
   * (the stall that used up the run's time: a FETCH running ahead on a silent server, not the PutEvents that
   * happened to be under way beside it), and the run's signal aborts with it.
   */
  private stop(timedOut: () => Error): Error {
    if (!this.stopError) {
      const oldest = this.pending.values().next().value ?? { timedOut };
      this.stopError = oldest.timedOut();
      this.controller.abort(this.stopError);
    }
    return this.stopError;
  }

  /**
   * A cleanup step after the work (LOGOUT, releasing the lease): waits until `share` of the cleanup time is left
   * at most (1/2: until `at - cleanupMs / 2`), then cancels it through its own signal. True when it finished in
   * time (failed or not). Never throws.
   */
  async cleanup(step: (signal: AbortSignal) => Promise<unknown>, share: number): Promise<boolean> {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(
        () => {
          controller.abort(new Error('the cleanup step ran out of time'));
          resolve(false);
        },
        Math.max(0, this.at - this.cleanupMs * share - this.now().getTime()),
      );
    });
    let finished: Promise<boolean>;
    try {
      finished = step(controller.signal).then(
        () => true,
        () => true,
      );
    } catch {
      finished = Promise.resolve(true);
    }
    try {
      return await Promise.race([finished, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Ends the run: cancels whatever is still running (a connection nobody closed, a call nobody awaited). */
  end(): void {
    if (!this.controller.signal.aborted) this.controller.abort(new Error('the poll ended'));
  }
}

/** The construct refuses a shorter function timeout: below it, a cold run would mostly be reserve. */
export const MIN_FUNCTION_TIMEOUT_SECONDS = 5;

// The errors of a call given up at the hard stop, one per service.

const STOPPED_HINT =
  'the run stopped before the Lambda deadline with a consistent checkpoint; the next poll retries. If this repeats, check the network path to that service.';

export function secretsSilent(): SecretAccessError {
  return new SecretAccessError('Secrets Manager did not answer in time.', { hint: STOPPED_HINT, retryable: true });
}

export function storeSilent(step: string): CheckpointStoreError {
  return new CheckpointStoreError(`The checkpoint table did not answer in time (${step}).`, {
    hint: STOPPED_HINT,
    retryable: true,
  });
}

export function publisherSilent(): EventPublishError {
  return new EventPublishError(
    'EventBridge did not answer in time: the events of this batch may or may not have been published.',
    { hint: STOPPED_HINT },
  );
}

export function rawStoreSilent(): RawStorageError {
  return new RawStorageError('S3 did not answer in time.', { hint: STOPPED_HINT });
}

export function imapSilent(settings: Pick<MailboxSettings, 'host' | 'port'>, step: string): ImapConnectionError {
  return new ImapConnectionError(
    `The IMAP server ${settings.host}:${settings.port} did not answer in time (${step}): the server or the network went silent.`,
    { hint: STOPPED_HINT },
  );
}
