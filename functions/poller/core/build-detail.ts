/**
 * Builds the `detail` of our events (contract 2) from what IMAP and the parser gave us.
 * Pure: no clock, no SDK, no environment. Size budgeting is separate (event-size.ts).
 */
import type { MailboxResetDetail, MessageReceivedDetail } from './event-detail.js';
import type { ParsedContent } from './message-content.js';
import type { Address, Checkpoint, MessageEnvelope, MessageSummary } from './types.js';

const NO_ENVELOPE: MessageEnvelope = { from: [], to: [], cc: [], replyTo: [] };

export interface MessageDetailInput {
  readonly mailboxId: string;
  readonly folder: string;
  readonly uidValidity: string;
  readonly summary: MessageSummary;
  /** The parsed source; absent when it could not be downloaded (the envelope is used instead). */
  readonly content?: ParsedContent;
  /** The source was cut at the download bound. */
  readonly partial: boolean;
  readonly raw?: { bucket: string; key: string; size: number };
}

/** `<mailboxId>:<uidValidity>:<uid>`: the dedupe key of a message event. */
export function messageEventId(mailboxId: string, uidValidity: string, uid: number): string {
  return `${mailboxId}:${uidValidity}:${uid}`;
}

/**
 * Header fields come from the parsed source when it has them and fall back to the IMAP envelope, when the listing
 * asked for one (a re-scan), field by field (the date only when the source is missing or cut); size, flags and
 * internalDate always come from the summary.
 */
export function buildMessageDetail(input: MessageDetailInput): MessageReceivedDetail {
  const { summary, content } = input;
  const envelope = summary.envelope ?? NO_ENVELOPE;
  const list = (parsed: Address[] | undefined, fromEnvelope: readonly Address[]): Address[] =>
    (parsed && parsed.length > 0 ? parsed : fromEnvelope).map((a) => ({ name: a.name, address: a.address }));

  const detail: MessageReceivedDetail = {
    version: '1',
    eventId: messageEventId(input.mailboxId, input.uidValidity, summary.uid),
    mailboxId: input.mailboxId,
    folder: input.folder,
    uid: summary.uid,
    uidValidity: input.uidValidity,
    messageId: content?.messageId ?? envelope.messageId ?? null,
    inReplyTo: content?.inReplyTo ?? envelope.inReplyTo ?? null,
    references: content?.references ?? [],
    subject: content?.subject ?? envelope.subject ?? null,
    from: list(content?.from, envelope.from),
    to: list(content?.to, envelope.to),
    cc: list(content?.cc, envelope.cc),
    replyTo: list(content?.replyTo, envelope.replyTo),
    // "Null when missing or unparsable": a source read whole that has no valid Date header has nothing the ENVELOPE
    // could add (the server copies the same header into it, and imapflow reads it with the lenient JS Date parser:
    // "31 Feb" becomes 3 March, a zone-less date becomes host time). Only a source cut at the download bound may
    // lack a Date header that the ENVELOPE has.
    date: content?.date ?? (content && !content.partial ? null : (envelope.date ?? null)),
    internalDate: summary.internalDate ?? null,
    size: summary.size,
    flags: [...summary.flags],
    text: content?.text ?? null,
    html: content?.html ?? null,
    attachments: content?.attachments ?? [],
    truncated: input.partial || (content?.partial ?? false),
  };
  if (content?.parseError !== undefined) detail.parseError = content.parseError;
  if (input.raw) detail.raw = { bucket: input.raw.bucket, key: input.raw.key, size: input.raw.size };
  return detail;
}

export interface ResetDetailInput {
  readonly mailboxId: string;
  readonly folder: string;
  /** The checkpoint under the previous UIDVALIDITY. */
  readonly previous: Pick<Checkpoint, 'uidValidity' | 'lastUid'>;
  readonly uidValidity: string;
  /** ISO 8601 arrival time the re-scan starts from; null when there is none. */
  readonly rescanSince: string | null;
  /** ISO 8601 (the caller's clock). */
  readonly detectedAt: string;
}

/**
 * eventId `<mailboxId>:<uidValidity>:reset:<previousUidValidity>`: stable across retries of the same
 * change, distinct from every message eventId (whose last part is a number).
 */
export function buildResetDetail(input: ResetDetailInput): MailboxResetDetail {
  return {
    version: '1',
    eventId: `${input.mailboxId}:${input.uidValidity}:reset:${input.previous.uidValidity}`,
    mailboxId: input.mailboxId,
    folder: input.folder,
    previousUidValidity: input.previous.uidValidity,
    uidValidity: input.uidValidity,
    previousLastUid: input.previous.lastUid,
    rescanSince: input.rescanSince,
    detectedAt: input.detectedAt,
  };
}
