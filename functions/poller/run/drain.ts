/**
 * The drain: new messages from a checkpoint, in UID order, in batches of prepare -> publish -> commit. The
 * checkpoint moves only over messages whose events EventBridge accepted (or that were deliberately passed over),
 * with one conditional write per batch; the run stops between batches when the deadline's reserve is reached or
 * the per-run cap is used up.
 */
import { advanceCheckpoint, publishedPrefix } from '../core/checkpoint.js';
import type { Checkpoint } from '../core/types.js';
import { EventPublishError, ImapProtocolError } from '../errors.js';
import type { CheckpointStore, EventPublisher, PublishResult, RawMessageStore } from '../ports.js';
import { type Deadline, publisherSilent, storeSilent } from './deadline.js';
import { type EventTarget, messageIdHash, type PreparedMessage, prepareBatch } from './prepare.js';
import type { TimedSession } from './timed-session.js';

export interface DrainLimits {
  /** Messages handled per run at most; the next run continues. */
  readonly maxMessagesPerRun: number;
  /** Messages per batch (one PutEvents round and one checkpoint write per batch). */
  readonly batchSize: number;
  /** Download bound per message, for the event content. */
  readonly maxMessageBytes: number;
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

/** Publishes new messages from `start` in batches, advancing the checkpoint after each. */
export async function drain(input: DrainInput): Promise<DrainResult> {
  const { start, target, session, deadline, limits } = input;
  const opened = await session.open(target.folder);
  if (opened.uidValidity !== start.uidValidity) {
    throw new ImapProtocolError(`UIDVALIDITY of "${target.folder}" changed during the poll.`, {
      hint: 'nothing to do: the next poll handles the change.',
    });
  }
  const since = start.rescanSince ? new Date(start.rescanSince) : undefined;
  const listed = await session.listNew(start.lastUid + 1, limits.maxMessagesPerRun, since);

  let checkpoint = start;
  let toUid: number | undefined;
  let published = 0;
  let skipped = 0;
  let stoppedBy: DrainResult['stoppedBy'];
  const messages = listed.messages;
  for (let i = 0; i < messages.length; i += limits.batchSize) {
    if (!deadline.canStartBatch()) {
      stoppedBy = 'deadline';
      break;
    }
    const prepared = await prepareBatch({
      batch: messages.slice(i, i + limits.batchSize),
      checkpoint,
      target,
      session,
      deadline,
      maxMessageBytes: limits.maxMessageBytes,
      ...(input.rawStore ? { rawStore: input.rawStore } : {}),
    });
    const { done, result } = await publish(input, prepared);
    if (done.length > 0) {
      checkpoint = await commit(input, checkpoint, done);
      toUid = checkpoint.lastUid;
      for (const p of done) p.entry ? published++ : skipped++;
    }
    if (done.length < prepared.length && prepared[done.length]!.withheld) {
      throw new ImapProtocolError(
        `The IMAP server did not send UID ${prepared[done.length]!.uid} of "${target.folder}" although UID SEARCH still finds it.`,
        {
          hint: 'the checkpoint stopped before it; the next poll retries. If it repeats, check that message on the server.',
        },
      );
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
  }
  const finished = stoppedBy === undefined && checkpoint.lastUid >= (messages.at(-1)?.uid ?? 0);
  if (finished && listed.complete) {
    // Every UID below UIDNEXT is now either published or gone: skip the gap on later polls; ends a re-scan.
    const next = advanceCheckpoint(checkpoint, [], input.now(), { exhaustedUpTo: opened.uidNext - 1 });
    if (
      next.lastUid !== checkpoint.lastUid ||
      next.rescanSince !== checkpoint.rescanSince ||
      checkpoint.version === 0
    ) {
      await write(input, next, checkpoint.version);
      toUid = next.lastUid;
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

/** Advances the checkpoint over `done` with a conditional write; returns the stored checkpoint. */
async function commit(
  input: DrainInput,
  checkpoint: Checkpoint,
  done: readonly PreparedMessage[],
): Promise<Checkpoint> {
  const passedOver = new Set(done.filter((p) => !p.entry).map((p) => p.uid));
  const next = advanceCheckpoint(
    checkpoint,
    done.map((p) => p.summary),
    input.now(),
    { messageIdHash, passedOver },
  );
  await write(input, next, checkpoint.version);
  return { ...next, version: checkpoint.version + 1 };
}

function write(input: DrainInput, next: Checkpoint, expectedVersion: number): Promise<void> {
  return input.deadline.call(
    (signal) => input.checkpoints.put(next, expectedVersion, { signal }),
    () => storeSilent('writing the checkpoint'),
  );
}
