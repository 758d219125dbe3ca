import type { Address } from './types.js';

/**
 * Contract 2: the `detail` of an `IMAP Message Received` event, schema version "1".
 * Additive changes only within a version. Exported for consumers.
 */
export interface MessageReceivedDetail {
  version: '1';
  /** `<mailboxId>:<uidValidity>:<uid>`: stable across retries; the dedupe key. */
  eventId: string;
  mailboxId: string;
  folder: string;
  uid: number;
  uidValidity: string;
  messageId: string | null;
  inReplyTo: string | null;
  references: string[];
  subject: string | null;
  from: Address[];
  to: Address[];
  cc: Address[];
  replyTo: Address[];
  /** Date header, ISO 8601, or null when missing or unparsable. */
  date: string | null;
  /** The server's INTERNALDATE (arrival time), ISO 8601. */
  internalDate: string | null;
  /** RFC822.SIZE in bytes. */
  size: number;
  flags: string[];
  text: string | null;
  html: string | null;
  attachments: AttachmentInfo[];
  /** True when bodies or the attachment list were cut to fit the event size limit or the download bound. */
  truncated: boolean;
  /** What was cut, before the cut: `text`/`html` in UTF-8 bytes, `attachments` as the number of entries. Present only when something was cut. */
  originalSizes?: { text?: number; html?: number; attachments?: number };
  /** Set when the message could not be parsed completely; the rest of the detail is best effort. */
  parseError?: string;
  /** Present when raw-message storage is enabled. */
  raw?: { bucket: string; key: string; size: number };
}

export interface AttachmentInfo {
  filename: string | null;
  contentType: string;
  size: number;
  inline: boolean;
  contentId: string | null;
}

/** The `detail` of an `IMAP Mailbox Reset` event. */
export interface MailboxResetDetail {
  version: '1';
  eventId: string;
  mailboxId: string;
  folder: string;
  previousUidValidity: string;
  uidValidity: string;
  /** Last UID published under the previous UIDVALIDITY. */
  previousLastUid: number;
  /** How messages are recovered: re-scan from this arrival time, skipping Message-IDs already published. */
  rescanSince: string | null;
  detectedAt: string;
}
