/**
 * One message's event Detail from its source: parse, build, fit. The one place of that rule, run in the drain's thread
 * (prepare.ts) or in a parse worker (parse-pool.ts).
 */
import { buildMessageDetail } from '../core/build-detail.js';
import { serializeDetail } from '../core/event-size.js';
import { parseMessageContent } from '../core/message-content.js';
import { DETAIL_TYPE_MESSAGE, type MessageSummary } from '../core/types.js';

export type RawReference = { bucket: string; key: string; size: number };

/** What a batch's messages share. */
export interface DetailContext {
  readonly mailboxId: string;
  readonly folder: string;
  readonly uidValidity: string;
  readonly eventSource: string;
}

export interface DetailJob {
  readonly summary: MessageSummary;
  /** The source as downloaded (up to the download bound). */
  readonly bytes: Uint8Array;
  readonly partial: boolean;
  readonly raw?: RawReference;
}

/** One message's event Detail, and what the checkpoint remembers of it. */
export interface BuiltDetail {
  /** The serialized `Detail`. */
  readonly detail: string;
  /** Its `messageId` (for the checkpoint's re-scan memory: the listing carries no ENVELOPE). */
  readonly messageId: string | null;
}

/** Builds the Details of a batch, in order (in this thread, or in a parse worker). */
export interface MessageDetailer {
  details(jobs: readonly DetailJob[], context: DetailContext): Promise<BuiltDetail[]>;
}

/** The `Detail` of one message's event. */
export async function messageDetail(job: DetailJob, context: DetailContext): Promise<BuiltDetail> {
  const content = await parseMessageContent(job.bytes, { partial: job.partial });
  const detail = buildMessageDetail({
    mailboxId: context.mailboxId,
    folder: context.folder,
    uidValidity: context.uidValidity,
    summary: job.summary,
    content,
    partial: job.partial,
    ...(job.raw ? { raw: job.raw } : {}),
  });
  return {
    detail: serializeDetail(detail, { source: context.eventSource, detailType: DETAIL_TYPE_MESSAGE }),
    messageId: detail.messageId,
  };
}

/** The Details of a batch, in this thread. */
export const inThread: MessageDetailer = {
  async details(jobs, context) {
    const out: BuiltDetail[] = [];
    for (const job of jobs) out.push(await messageDetail(job, context));
    return out;
  },
};
