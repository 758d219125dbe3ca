/**
 * Turns listed messages into EventBridge entries in two halves the drain overlaps: fetchBatch (IMAP, bounded, and
 * the raw store) and prepareFetched (parse, build, fit: message-detail.ts).
 */
import { createHash } from 'node:crypto';
import { rawMessageKey } from '../contract/keys.js';
import { isRescanCandidate } from '../core/checkpoint.js';
import { firstMessageId } from '../core/message-content.js';
import { type Checkpoint, DETAIL_TYPE_MESSAGE, type EventEntry, type MessageSummary } from '../core/types.js';
import type { MessageSource, RawMessageStore, SizedUid } from '../ports.js';
import { type Deadline, rawStoreSilent } from './deadline.js';
import { type DetailJob, inThread, type MessageDetailer, type RawReference } from './message-detail.js';
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
  /** The event's Message-ID (for the checkpoint's re-scan memory); absent without an event. */
  readonly messageId?: string | null;
  /** Listed, not sent by the body FETCH, and still in the folder: neither published nor passed over. */
  readonly withheld?: true;
}

/** A message as listed: its summary (listNew), or its UID and a size bound whose summary comes with the body (listSizes). */
export type ListedMessage = MessageSummary | SizedUid;

export interface PrepareInput {
  /** Messages in UID order. */
  readonly batch: readonly ListedMessage[];
  /** The checkpoint the batch follows (its UIDVALIDITY and re-scan memory). */
  readonly checkpoint: Checkpoint;
  readonly target: EventTarget;
  readonly session: TimedSession;
  readonly deadline: Deadline;
  /** Download bound per message. */
  readonly maxMessageBytes: number;
  /** Source bytes the batch may cost at most, whatever sizes the server reported (FetchOptions.maxTotalBytes). */
  readonly maxBatchBytes?: number;
  readonly rawStore?: RawMessageStore;
}

/** The sources of a batch as read from the server (and stored raw, when configured). */
export interface FetchedBatch {
  /** Messages in UID order, each with its summary (from the listing, or sent with its body). */
  readonly batch: readonly MessageSummary[];
  /** Sources of the messages to publish; a message without one is passed over (or withheld, below). */
  readonly sources: ReadonlyMap<number, MessageSource>;
  /** Listed, left out by the body FETCH, and still found by a fresh search: withheld by the server. */
  readonly withheld: ReadonlySet<number>;
  readonly raw: ReadonlyMap<number, RawReference>;
}

/**
 * The I/O half of preparing a batch: its sources in bounded FETCHes, a search for what the FETCH left out, and
 * each message streamed to the raw store when one is configured. Uses the IMAP session: one at a time.
 */
export async function fetchBatch(input: PrepareInput): Promise<FetchedBatch> {
  const { batch, checkpoint, target, session, deadline, rawStore } = input;
  // A re-scan picks by the listed summary; a message listed without one is always read.
  const wanted = batch.filter((m) => !isSummary(m) || isRescanCandidate(checkpoint, m, messageIdHash));
  const sources = await session.fetchSources(
    wanted.map((m) => m.uid),
    {
      maxBytes: input.maxMessageBytes,
      ...(input.maxBatchBytes !== undefined ? { maxTotalBytes: input.maxBatchBytes } : {}),
      ...(batch.every(isSummary) ? {} : { summaries: true }),
    },
  );
  // Without a source (passed over, gone or withheld) a message gets no event: its planned size alone will do.
  const summaries = batch.map((m) =>
    isSummary(m) ? m : (sources.get(m.uid)?.summary ?? { uid: m.uid, size: m.size, flags: [] }),
  );
  // A message the FETCH left out is passed over only when a fresh search confirms it is gone (expunged meanwhile).
  const missing = wanted.filter((m) => !sources.has(m.uid)).map((m) => m.uid);
  const withheld = new Set(missing.length > 0 ? await session.exists(missing) : []);
  const raw = new Map<number, RawReference>();
  if (rawStore) {
    for (const summary of summaries) {
      if (withheld.has(summary.uid)) break; // nothing after it is published
      if (!sources.has(summary.uid)) continue;
      const stream = await session.streamSource(summary.uid);
      if (!stream) continue;
      const key = rawMessageKey(target.mailboxId, checkpoint.uidValidity, summary.uid);
      raw.set(
        summary.uid,
        await deadline.call(
          (signal) => rawStore.put(key, stream.stream, stream.size || summary.size, { signal }),
          rawStoreSilent,
        ),
      );
    }
  }
  return { batch: summaries, sources, withheld, raw };
}

function isSummary(m: ListedMessage): m is MessageSummary {
  return 'flags' in m;
}

/**
 * The CPU half: one entry per message of the batch that is to be published, in UID order; the others are passed
 * over. Ends at the first message the server withheld (listed, still there, but not sent), marked `withheld`.
 * The Details are built by `detailer` (a parse worker pool, run/parse-pool.ts) or in this thread.
 */
export async function prepareFetched(
  fetched: FetchedBatch,
  input: Pick<PrepareInput, 'checkpoint' | 'target'> & { readonly detailer?: MessageDetailer },
): Promise<PreparedMessage[]> {
  const { checkpoint, target } = input;
  const prepared: (PreparedMessage | { uid: number; summary: MessageSummary; job: number })[] = [];
  const jobs: DetailJob[] = [];
  for (const summary of fetched.batch) {
    if (fetched.withheld.has(summary.uid)) {
      // Nothing after it is prepared either: the checkpoint stops before it, the next run retries from there.
      prepared.push({ uid: summary.uid, summary, withheld: true });
      break;
    }
    const source = fetched.sources.get(summary.uid);
    if (!source) {
      // Passed over by the re-scan, or expunged between listing and fetching: nothing to publish.
      prepared.push({ uid: summary.uid, summary });
      continue;
    }
    const raw = fetched.raw.get(summary.uid);
    prepared.push({ uid: summary.uid, summary, job: jobs.length });
    jobs.push({ summary, bytes: source.bytes, partial: source.partial, ...(raw ? { raw } : {}) });
  }
  const details =
    jobs.length === 0
      ? []
      : await (input.detailer ?? inThread).details(jobs, {
          mailboxId: target.mailboxId,
          folder: target.folder,
          uidValidity: checkpoint.uidValidity,
          eventSource: target.eventSource,
        });
  return prepared.map((p) => {
    if (!('job' in p)) return p;
    const built = details[p.job]!;
    return {
      uid: p.uid,
      summary: p.summary,
      entry: { ...eventEntry(target, DETAIL_TYPE_MESSAGE, built.detail), uid: p.uid },
      messageId: built.messageId,
    };
  });
}

export function eventEntry(target: EventTarget, detailType: string, detail: string): EventEntry {
  return { Source: target.eventSource, DetailType: detailType, Detail: detail, EventBusName: target.eventBusName };
}

/**
 * Short, stable hash of a Message-ID for the re-scan memory: of its first `<...>` token (as events carry it),
 * case-insensitive, so the ENVELOPE's form of the header (listed during a re-scan) and the parsed one match.
 */
export function messageIdHash(messageId: string): string {
  const id = firstMessageId(messageId) ?? messageId;
  return createHash('sha256').update(id.trim().toLowerCase()).digest('base64url').slice(0, 16);
}
