/**
 * The drain: new messages from a checkpoint, in UID order, in batches of fetch -> prepare -> publish, pipelined:
 * while one batch is prepared and published, the next one is fetched. The checkpoint moves only over messages
 * whose events EventBridge accepted (or that were deliberately passed over, publishedPrefix), with a conditional
 * write on a cadence (every `checkpointEveryMessages` messages or `checkpointEveryMs`), while it waits on a FETCH,
 * and when the run ends or fails. The run stops between batches when the deadline's reserve is reached or the
 * per-run cap is used up.
 */
import { advanceCheckpoint, publishedPrefix } from '../core/checkpoint.js';
import type { Checkpoint } from '../core/types.js';
import { EventPublishError, ImapProtocolError } from '../errors.js';
import type { CheckpointStore, EventPublisher, PublishResult, RawMessageStore, SizedUid } from '../ports.js';
import { type Deadline, publisherSilent, storeSilent } from './deadline.js';
import type { MessageDetailer } from './message-detail.js';
import {
  type EventTarget,
  type FetchedBatch,
  fetchBatch,
  type ListedMessage,
  messageIdHash,
  type PreparedMessage,
  prepareFetched,
} from './prepare.js';
import type { TimedSession } from './timed-session.js';

export interface DrainLimits {
  /** Messages handled per run at most; the next run continues. */
  readonly maxMessagesPerRun: number;
  /** Messages per batch: one FETCH of their sources, their PutEvents calls (sent concurrently by the publisher). */
  readonly batchSize: number;
  /** Download bound per message, for the event content. */
  readonly maxMessageBytes: number;
  /** Source bytes per batch at most (by RFC822.SIZE, each capped at maxMessageBytes): bounds memory. */
  readonly batchBytes: number;
  /** A checkpoint write is due once this many messages are done since the last one... */
  readonly checkpointEveryMessages: number;
  /** ...or this long after the last one, whichever comes first. */
  readonly checkpointEveryMs: number;
}

export interface DrainInput {
  /** Where to continue from; version 0 = not stored yet. */
  readonly start: Checkpoint;
  readonly target: EventTarget;
  readonly session: TimedSession;
  readonly deadline: Deadline;
  readonly limits: DrainLimits;
  readonly checkpoints: CheckpointStore;
  readonly publisher: EventPublisher;
  readonly rawStore?: RawMessageStore;
  /** Builds the events' Details (parse workers); absent: in this thread. */
  readonly detailer?: MessageDetailer;
  readonly now: () => Date;
}

export interface DrainResult {
  /** First UID considered (lastUid + 1). */
  readonly fromUid: number;
  /** lastUid of the last checkpoint this drain wrote; absent when it wrote none. */
  readonly toUid?: number;
  readonly published: number;
  /** Messages passed over without an event. */
  readonly skipped: number;
  /** Why the drain stopped before the end of the folder. */
  readonly stoppedBy?: 'deadline' | 'maxMessagesPerRun';
}

const NOTHING_PUBLISHED: PublishResult = { accepted: new Set<number>(), failed: new Map<number, string>() };

/** A message the server did not send (summary or body) although a fresh UID SEARCH still finds it. */
function withheldError(uid: number, folder: string): ImapProtocolError {
  return new ImapProtocolError(
    `The IMAP server did not send UID ${uid} of "${folder}" although UID SEARCH still finds it.`,
    {
      hint: 'the checkpoint stopped before it; the next poll retries. If it repeats, check that message on the server.',
    },
  );
}

/** Publishes new messages from `start`, batch after batch, with the next batch's FETCH running ahead. */
export async function drain(input: DrainInput): Promise<DrainResult> {
  const { start, target, session, deadline, limits } = input;
  const opened = await session.open(target.folder);
  if (opened.uidValidity !== start.uidValidity) {
    throw new ImapProtocolError(`UIDVALIDITY of "${target.folder}" changed during the poll.`, {
      hint: 'nothing to do: the next poll handles the change.',
    });
  }
  // A re-scan picks messages by date and Message-ID before reading them: it lists their summaries with the ENVELOPE.
  // Otherwise the listing costs two UID SEARCHes (and RFC822.SIZE of the messages above sizeBound): the summaries
  // come with the bodies.
  const listed: { messages: ListedMessage[]; complete: boolean; withheld?: number } = start.rescanSince
    ? await session.listNew(start.lastUid + 1, limits.maxMessagesPerRun, {
        since: new Date(start.rescanSince),
        envelope: true,
      })
    : await session.listSizes(start.lastUid + 1, limits.maxMessagesPerRun, sizeBound(limits));
  const batches = splitBatches(listed.messages, limits);
  const writer = new CheckpointWriter(input, start);
  let published = 0;
  let skipped = 0;
  let stoppedBy: DrainResult['stoppedBy'];

  // A re-scan picks a batch's messages by the checkpoint as it stands after the batches before it (its memory of
  // published Message-IDs): then batches are fetched one after another. Otherwise the next batch's FETCH runs
  // while this one is prepared and published (the IMAP session carries it alone: nothing else uses it meanwhile).
  const ahead = !start.rescanSince;
  const fetch = (i: number): Tracked<FetchedBatch> =>
    tracked(
      fetchBatch({
        batch: batches[i]!,
        checkpoint: writer.current,
        target,
        session,
        deadline,
        maxMessageBytes: limits.maxMessageBytes,
        // An honest server's batch stays within batchBytes (or is one message within maxMessageBytes).
        maxBatchBytes: Math.max(limits.batchBytes, limits.maxMessageBytes),
        ...(input.rawStore ? { rawStore: input.rawStore } : {}),
      }),
    );
  let next: Tracked<FetchedBatch> | undefined;
  try {
    for (let i = 0; i < batches.length; i++) {
      if (!deadline.canStartBatch()) {
        stoppedBy = 'deadline';
        break;
      }
      const fetching = next ?? fetch(i);
      next = undefined;
      // About to wait on the server (a FETCH still running): write what is done meanwhile, which costs no time and
      // keeps what was published when the server turns out to be silent.
      if (!fetching.settled) writer.writeNow();
      const fetched = await fetching.promise;
      if (ahead && i + 1 < batches.length) next = fetch(i + 1);
      const prepared = await prepareFetched(fetched, {
        checkpoint: writer.current,
        target,
        ...(input.detailer ? { detailer: input.detailer } : {}),
      });
      await writer.settled(); // a write in flight overlapped the FETCH and the preparing, never the publishing
      const { done, result } = await publish(input, prepared);
      writer.advance(done);
      for (const p of done) p.entry ? published++ : skipped++;
      if (done.length < prepared.length && prepared[done.length]!.withheld) {
        throw withheldError(prepared[done.length]!.uid, target.folder);
      }
      if (done.length < prepared.length) {
        const codes = [...new Set(result.failed.values())].join(', ');
        throw new EventPublishError(
          `EventBridge did not accept the event of UID ${prepared[done.length]!.uid} after retries (${codes || 'unknown'}).`,
          {
            hint: 'the checkpoint stopped before it; the next poll retries. Check the bus and the PutEvents quota if this repeats.',
          },
        );
      }
      writer.writeIfDue();
    }
    // Everything listed before it is published: now the message the listing left out stops the run.
    if (stoppedBy === undefined && listed.withheld !== undefined) throw withheldError(listed.withheld, target.folder);
    await writer.flush();
  } catch (err) {
    // Whatever failed, what was published so far is kept (unless writing the checkpoint is what failed).
    await writer.flush().catch(() => undefined);
    throw err;
  }

  let toUid = writer.writtenUid;
  const checkpoint = writer.current;
  const finished = stoppedBy === undefined && checkpoint.lastUid >= (listed.messages.at(-1)?.uid ?? 0);
  if (finished && listed.complete) {
    // Every UID below UIDNEXT is now either published or gone: skip the gap on later polls; ends a re-scan.
    const exhausted = advanceCheckpoint(checkpoint, [], input.now(), { exhaustedUpTo: opened.uidNext - 1 });
    if (
      exhausted.lastUid !== checkpoint.lastUid ||
      exhausted.rescanSince !== checkpoint.rescanSince ||
      checkpoint.version === 0
    ) {
      await write(input, exhausted, checkpoint.version);
      toUid = exhausted.lastUid;
    }
  } else if (finished) {
    stoppedBy = 'maxMessagesPerRun';
  }
  return {
    fromUid: start.lastUid + 1,
    ...(toUid !== undefined ? { toUid } : {}),
    published,
    skipped,
    ...(stoppedBy ? { stoppedBy } : {}),
  };
}

/**
 * The size up to which a listed message counts as this size (listSizes): a full batch of such messages stays within
 * batchBytes.
 */
export function sizeBound(limits: Pick<DrainLimits, 'batchSize' | 'batchBytes'>): number {
  return Math.max(1, Math.floor(limits.batchBytes / limits.batchSize));
}

/** Consecutive batches of at most `batchSize` messages and `batchBytes` bytes (a larger message goes alone). */
export function splitBatches<T extends SizedUid>(
  messages: readonly T[],
  limits: Pick<DrainLimits, 'batchSize' | 'batchBytes' | 'maxMessageBytes'>,
): T[][] {
  const batches: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const m of messages) {
    const size = Math.min(m.size, limits.maxMessageBytes);
    if (current.length > 0 && (current.length >= limits.batchSize || bytes + size > limits.batchBytes)) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(m);
    bytes += size;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

interface Tracked<T> {
  readonly promise: Promise<T>;
  settled: boolean;
}

/**
 * A promise that says whether it has settled; its rejection counts as handled until it is awaited (a FETCH running
 * ahead may fail while the drain is still publishing, or after it stopped).
 */
function tracked<T>(promise: Promise<T>): Tracked<T> {
  const t: Tracked<T> = { promise, settled: false };
  promise.then(
    () => {
      t.settled = true;
    },
    () => {
      t.settled = true;
    },
  );
  return t;
}

/**
 * The checkpoint of the drain: advanced in memory after every batch (publishedPrefix), written on a cadence, one
 * conditional write at a time, each overlapping the fetching and preparing of the next batch (never its publishing:
 * after a failed write, e.g. a conflict with another run, nothing more is published).
 */
class CheckpointWriter {
  /** The checkpoint over everything done so far; `version` is the stored version it will be written against. */
  current: Checkpoint;
  /** lastUid of the last checkpoint written successfully. */
  writtenUid?: number;
  private unwritten = 0;
  private lastWriteAt: number;
  private inflight?: Promise<void>;
  private failure?: unknown;

  constructor(
    private readonly input: DrainInput,
    start: Checkpoint,
  ) {
    this.current = start;
    this.lastWriteAt = input.now().getTime();
  }

  advance(done: readonly PreparedMessage[]): void {
    if (done.length === 0) return;
    const passedOver = new Set(done.filter((p) => !p.entry).map((p) => p.uid));
    this.current = {
      ...advanceCheckpoint(
        this.current,
        done.map((p) => ({ uid: p.uid, internalDate: p.summary.internalDate, messageId: p.messageId })),
        this.input.now(),
        { messageIdHash, passedOver },
      ),
      version: this.current.version,
    };
    this.unwritten += done.length;
  }

  /** Starts a write when one is due; does not wait for it. */
  writeIfDue(): void {
    const { checkpointEveryMessages, checkpointEveryMs } = this.input.limits;
    if (
      this.unwritten >= checkpointEveryMessages ||
      (this.unwritten > 0 && this.input.now().getTime() - this.lastWriteAt >= checkpointEveryMs)
    )
      this.writeNow();
  }

  /** Starts a write of what is not written yet, unless one is in flight or one failed; does not wait for it. */
  writeNow(): void {
    if (this.unwritten > 0 && !this.inflight && this.failure === undefined) this.start();
  }

  /** Waits for the write in flight; throws if a write failed (e.g. another run took over: nothing more is published). */
  async settled(): Promise<void> {
    if (this.inflight) await this.inflight;
    if (this.failure !== undefined) throw this.failure;
  }

  /** Writes what is not written yet and waits for it; throws the first failed write. */
  async flush(): Promise<void> {
    await this.settled();
    if (this.unwritten > 0) {
      this.start();
      await this.settled();
    }
  }

  private start(): void {
    const next = this.current;
    const expectedVersion = next.version;
    this.current = { ...next, version: expectedVersion + 1 };
    this.unwritten = 0;
    this.lastWriteAt = this.input.now().getTime();
    this.inflight = write(this.input, next, expectedVersion)
      .then(
        () => {
          this.writtenUid = next.lastUid;
        },
        (err: unknown) => {
          this.failure ??= err;
        },
      )
      .finally(() => {
        this.inflight = undefined;
      });
  }
}

/** Publishes the batch's entries; `done` is the prefix of the batch whose events were accepted or passed over. */
async function publish(
  input: DrainInput,
  prepared: readonly PreparedMessage[],
): Promise<{ done: PreparedMessage[]; result: PublishResult }> {
  const entries = prepared.flatMap((p) => (p.entry ? [p.entry] : []));
  const result =
    entries.length > 0
      ? await input.deadline.call((signal) => input.publisher.publish(entries, { signal }), publisherSilent)
      : NOTHING_PUBLISHED;
  let index = 0;
  const accepted = prepared.map((p) => (p.entry ? result.accepted.has(index++) : !p.withheld));
  const done = publishedPrefix(prepared, (_p, i) => accepted[i]!);
  return { done, result };
}

function write(input: DrainInput, next: Checkpoint, expectedVersion: number): Promise<void> {
  return input.deadline.call(
    (signal) => input.checkpoints.put(next, expectedVersion, { signal }),
    () => storeSilent('writing the checkpoint'),
  );
}
