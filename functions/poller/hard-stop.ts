/**
 * The run's hard stop: a silent IMAP server or AWS endpoint must not hold a poll past the Lambda deadline
 * (imapflow's socket timeouts and the SDK's are longer than what may be left of it, and a run the runtime
 * kills logs nothing and keeps its lease). Every port call races a fixed time shortly before the deadline.
 */
import type { MailboxSettings } from './core/settings.js';
import {
  CheckpointStoreError,
  EventPublishError,
  ImapConnectionError,
  RawStorageError,
  SecretAccessError,
} from './errors.js';
import type { PollDeps } from './poll-mailbox.js';

/** Part of `reserveMs` kept, after a call was cut off at the hard stop, for LOGOUT and releasing the lease. */
export const CLEANUP_MS = 2_000;

/** Races calls against a fixed time (epoch ms on the run's clock). */
export class HardStop {
  constructor(
    private readonly at: number,
    private readonly now: () => Date,
  ) {}

  /**
   * The call's outcome, or `timedOut()` when the hard stop comes first. A call that loses is abandoned, not undone:
   * its late result goes to `onLate` (e.g. to close a session), its late failure nowhere.
   */
  race<T>(call: Promise<T>, timedOut: () => Error, onLate?: (value: T) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let lost = false;
      const timer = setTimeout(
        () => {
          lost = true;
          reject(timedOut());
        },
        Math.max(0, this.at - this.now().getTime()),
      );
      call.then(
        (value) => {
          clearTimeout(timer);
          if (lost) onLate?.(value);
          else resolve(value);
        },
        (err: unknown) => {
          clearTimeout(timer);
          if (!lost) reject(err);
        },
      );
    });
  }

  /** Waits for `call` until `until` at most; true when it finished. Never throws. */
  async within(call: Promise<unknown>, until: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const finished = call.then(
      () => true,
      () => true,
    );
    const late = new Promise<boolean>(
      (resolve) => (timer = setTimeout(() => resolve(false), Math.max(0, until - this.now().getTime()))),
    );
    try {
      return await Promise.race([finished, late]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** `port` with every method raced against the hard stop. */
export function guardPort<T extends object>(port: T, stop: HardStop, silent: (method: string) => Error): T {
  return new Proxy(port, {
    get(target, key, receiver) {
      const value: unknown = Reflect.get(target, key, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => stop.race(Promise.resolve(value.apply(target, args)), () => silent(String(key)));
    },
  });
}

/** The ports of a run, raced against its hard stop (the session is guarded where it is opened). */
export function guardDeps(deps: PollDeps, stop: HardStop): PollDeps {
  return {
    ...deps,
    settings: guardPort(
      deps.settings,
      stop,
      () => new SecretAccessError('Secrets Manager did not answer in time.', { hint: STOPPED_HINT, retryable: true }),
    ),
    checkpoints: guardPort(deps.checkpoints, stop, (method) =>
      storeSilent(method === 'get' ? 'reading the checkpoint' : 'writing the checkpoint'),
    ),
    publisher: guardPort(
      deps.publisher,
      stop,
      () =>
        new EventPublishError(
          'EventBridge did not answer in time: the events of this batch may or may not have been published.',
          { hint: STOPPED_HINT },
        ),
    ),
    ...(deps.rawStore
      ? {
          rawStore: guardPort(
            deps.rawStore,
            stop,
            () => new RawStorageError('S3 did not answer in time.', { hint: STOPPED_HINT }),
          ),
        }
      : {}),
  };
}

const STOPPED_HINT =
  'the run stopped before the Lambda deadline with a consistent checkpoint; the next poll retries. If this repeats, check the network path to that service.';

export function storeSilent(step: string): CheckpointStoreError {
  return new CheckpointStoreError(`The checkpoint table did not answer in time (${step}).`, {
    hint: STOPPED_HINT,
    retryable: true,
  });
}

export function imapSilent(settings: MailboxSettings, step: string): ImapConnectionError {
  return new ImapConnectionError(
    `The IMAP server ${settings.host}:${settings.port} did not answer in time (${step}): the server or the network went silent.`,
    {
      hint: STOPPED_HINT,
    },
  );
}
