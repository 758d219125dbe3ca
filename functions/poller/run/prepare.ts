/** Turns listed messages into EventBridge entries: fetch (bounded), optionally store raw, parse, build, fit. */
import { createHash } from 'node:crypto';
import { rawMessageKey } from '../contract/keys.js';
import { buildMessageDetail } from '../core/build-detail.js';
import { isRescanCandidate } from '../core/checkpoint.js';
import { serializeDetail } from '../core/event-size.js';
import { parseMessageContent } from '../core/message-content.js';
import { type Checkpoint, DETAIL_TYPE_MESSAGE, type EventEntry, type MessageSummary } from '../core/types.js';
import type { RawMessageStore } from '../ports.js';
import { type Deadline, rawStoreSilent } from './deadline.js';
import type { TimedSession } from './timed-session.js';

/** Where a mailbox's events go and what they name. */
export interface EventTarget {
  readonly mailboxId: string;
  readonly folder: string;
  readonly eventSource: string;
  readonly eventBusName: string;
}

export interface PreparedMessage {
  readonly uid: number;
  readonly summary: MessageSummary;
  /** The message's event; absent when the message is passed over (re-scan, or expunged meanwhile). */
  readonly entry?: EventEntry;
  /** Listed, not sent by the body FETCH, and still in the folder: neither published nor passed over. */
  readonly withheld?: true;
}

export interface PrepareInput {
  /** Messages in UID order. */
  readonly batch: readonly MessageSummary[];
  /** The checkpoint the batch follows (its UIDVALIDITY and re-scan memory). */
  readonly checkpoint: Checkpoint;
  readonly target: EventTarget;
  readonly session: TimedSession;
  readonly deadline: Deadline;
  /** Download bound per message. */
  readonly maxMessageBytes: number;
  readonly rawStore?: RawMessageStore;
}

/**
 * One entry per message of the batch that is to be published, in UID order; the others are passed over. Ends at
 * the first message the server withheld (listed, still there, but not sent), which is marked `withheld`.
 */
export async function prepareBatch(input: PrepareInput): Promise<PreparedMessage[]> {
  const { batch, checkpoint, target, session, deadline, rawStore } = input;
  const wanted = batch.filter((m) => isRescanCandidate(checkpoint, m, messageIdHash));
  const sources = await session.fetchSources(
    wanted.map((m) => m.uid),
    { maxBytes: input.maxMessageBytes },
  );
  // A message the FETCH left out is passed over only when a fresh search confirms it is gone (expunged meanwhile).
  const missing = wanted.filter((m) => !sources.has(m.uid)).map((m) => m.uid);
  const stillThere = new Set(missing.length > 0 ? await session.exists(missing) : []);
  const prepared: PreparedMessage[] = [];
  for (const summary of batch) {
    const source = sources.get(summary.uid);
    if (stillThere.has(summary.uid)) {
      // Nothing after it is prepared either: the checkpoint stops before it, the next run retries from there.
      prepared.push({ uid: summary.uid, summary, withheld: true });
      break;
    }
    if (!source) {
      // Passed over by the re-scan, or expunged between listing and fetching: nothing to publish.
      prepared.push({ uid: summary.uid, summary });
      continue;
    }
    let raw: { bucket: string; key: string; size: number } | undefined;
    if (rawStore) {
      const stream = await session.streamSource(summary.uid);
      if (stream) {
        const key = rawMessageKey(target.mailboxId, checkpoint.uidValidity, summary.uid);
        raw = await deadline.call(
          (signal) => rawStore.put(key, stream.stream, stream.size || summary.size, { signal }),
          rawStoreSilent,
        );
      }
    }
    const content = await parseMessageContent(source.bytes, { partial: source.partial });
    const detail = serializeDetail(
      buildMessageDetail({
        mailboxId: target.mailboxId,
        folder: target.folder,
        uidValidity: checkpoint.uidValidity,
        summary,
        content,
        partial: source.partial,
        ...(raw ? { raw } : {}),
      }),
      { source: target.eventSource, detailType: DETAIL_TYPE_MESSAGE },
    );
    prepared.push({
      uid: summary.uid,
      summary,
      entry: { ...eventEntry(target, DETAIL_TYPE_MESSAGE, detail), uid: summary.uid },
    });
  }
  return prepared;
}

export function eventEntry(target: EventTarget, detailType: string, detail: string): EventEntry {
  return { Source: target.eventSource, DetailType: detailType, Detail: detail, EventBusName: target.eventBusName };
}

/** Short, stable hash of a Message-ID (case-insensitive, trimmed) for the re-scan memory. */
export function messageIdHash(messageId: string): string {
  return createHash('sha256').update(messageId.trim().toLowerCase()).digest('base64url').slice(0, 16);
}
