import {
  type EventBridgeClient,
  PutEventsCommand,
  type PutEventsRequestEntry,
  type PutEventsResultEntry,
} from '@aws-sdk/client-eventbridge';
import { backoffDelay } from '../core/backoff.js';
import { chunkEntries } from '../core/batching.js';
import { eventEntrySize } from '../core/event-size.js';
import type { EventEntry } from '../core/types.js';
import { EventPublishError } from '../errors.js';
import type { CallOptions, EventPublisher, Log, PublishResult } from '../ports.js';

export interface EventBridgePublisherOptions {
  /** Attempts per entry (the first try included) for entries EventBridge reports as failed. @default 4 */
  readonly maxAttempts?: number;
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
  readonly log?: Log;
  /**
   * PutEvents calls in flight at once for one publish() (of more than 10 entries or 256 KB). Each call waits a
   * round trip; a few at once keep the drain from waiting on them one after another, far below the account's
   * PutEvents quota (10,000 entries per second in the large regions). @default 4
   */
  readonly concurrency?: number;
}

/** Error codes of failed entries that will not succeed on retry. */
const PERMANENT_ENTRY_ERRORS = new Set([
  'ValidationException',
  'AccessDeniedException',
  'NotAuthorizedForSourceException',
  'InvalidArgument',
  'MalformedDetail',
]);

/**
 * PutEvents in calls of at most 10 entries and 256 KB; entries EventBridge reports as failed (FailedEntryCount)
 * are retried with capped exponential backoff and jitter. Whole calls are retried by the SDK's retry strategy
 * only (configured in compose.ts): a call that still fails ends the publish, its entries and all not yet sent
 * reported as failed with the call's error (so the caller keeps what was accepted before it), or thrown when no
 * retry can help (missing bus, access denied). Returns which entries were accepted.
 */
export class EventBridgePublisher implements EventPublisher {
  constructor(
    private readonly client: EventBridgeClient,
    private readonly options: EventBridgePublisherOptions = {},
  ) {}

  async publish(entries: readonly EventEntry[], options: CallOptions = {}): Promise<PublishResult> {
    const accepted = new Set<number>();
    const failed = new Map<number, string>();
    const maxAttempts = this.options.maxAttempts ?? 4;
    const sleep = this.options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
    const random = this.options.random ?? Math.random;

    let pending = entries.map((entry, index) => ({ entry, index }));
    for (let attempt = 0; attempt < maxAttempts && pending.length > 0; attempt++) {
      if (attempt > 0)
        await sleep(
          backoffDelay(attempt - 1, random(), this.options.baseDelayMs ?? 200, this.options.maxDelayMs ?? 5_000),
        );
      const retry: typeof pending = [];
      const chunks = chunkEntries(pending, (p) => eventEntrySize(p.entry));
      let callFailed: string | undefined;
      const sendChunk = async (chunk: (typeof chunks)[number]): Promise<boolean> => {
        let results: PutEventsResultEntry[];
        try {
          const response = await this.client.send(
            new PutEventsCommand({ Entries: chunk.map((p) => toRequestEntry(p.entry)) }),
            options.signal ? { abortSignal: options.signal } : {},
          );
          results = response.Entries ?? [];
        } catch (err) {
          // The run gave up on this call: no further attempt.
          if (options.signal?.aborted) throw options.signal.reason ?? err;
          const mapped = mapCallError(err);
          if (!mapped.retryable) throw mapped;
          // The SDK already retried this call: no new call starts, the next poll retries what is left.
          callFailed ??= (err as Error)?.name ?? 'Error';
          for (const p of chunk) failed.set(p.index, (err as Error)?.name ?? 'Error');
          return false;
        }
        chunk.forEach((p, i) => {
          const r = results[i];
          if (r?.EventId && !r.ErrorCode) {
            accepted.add(p.index);
            failed.delete(p.index);
          } else {
            const code = r?.ErrorCode ?? 'MissingResult';
            failed.set(p.index, code);
            if (!PERMANENT_ENTRY_ERRORS.has(code)) retry.push(p);
          }
        });
        return true;
      };
      const unsent = await forEachConcurrently(chunks, this.options.concurrency ?? 4, sendChunk);
      if (callFailed !== undefined) {
        for (const p of unsent.flat()) failed.set(p.index, callFailed);
        this.options.log?.warn('PutEvents call failed after the SDK retries', {
          errorName: callFailed,
          entries: [...failed.keys()].filter((i) => !accepted.has(i)).length,
          attempt,
        });
        return { accepted, failed };
      }
      retry.sort((a, b) => a.index - b.index);
      if (retry.length > 0)
        this.options.log?.warn('PutEvents entries failed; retrying', { failed: retry.length, attempt });
      pending = retry;
    }
    return { accepted, failed };
  }
}

function toRequestEntry(entry: EventEntry): PutEventsRequestEntry {
  return { Source: entry.Source, DetailType: entry.DetailType, Detail: entry.Detail, EventBusName: entry.EventBusName };
}

function mapCallError(err: unknown): EventPublishError {
  const name = (err as { name?: string })?.name ?? 'Error';
  if (name === 'ResourceNotFoundException') {
    return new EventPublishError('The event bus does not exist.', {
      cause: err,
      retryable: false,
      hint: 'deploy the stack (it creates the bus) or set EVENT_BUS_NAME to an existing bus.',
    });
  }
  if (name === 'AccessDeniedException') {
    return new EventPublishError('PutEvents was denied on the event bus.', {
      cause: err,
      retryable: false,
      hint: 'grant the function events:PutEvents on the bus ARN.',
    });
  }
  if (name === 'ValidationException') {
    return new EventPublishError('PutEvents rejected the request as invalid (ValidationException).', {
      cause: err,
      retryable: false,
      hint: 'check EVENT_BUS_NAME and EVENT_SOURCE; this is a bug if they are right (please report it).',
    });
  }
  return new EventPublishError(`PutEvents failed (${name}).`, { cause: err, retryable: true });
}

/**
 * Runs `work` on the items in order, at most `limit` at a time. Once a `work` answers false (or throws), no new item
 * starts; those in flight finish. Returns the items never started; rejects with the first failure.
 */
async function forEachConcurrently<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<boolean>,
): Promise<T[]> {
  let next = 0;
  let stopped = false;
  const worker = async (): Promise<void> => {
    try {
      while (next < items.length && !stopped) if (!(await work(items[next++]!))) stopped = true;
    } catch (err) {
      stopped = true;
      throw err;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return items.slice(next);
}
