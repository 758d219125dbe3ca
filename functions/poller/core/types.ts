/** Shared domain types of the poller. Pure data: no SDK, no imapflow, no clock. */

/** Where a mailbox without checkpoint starts: only new mail, everything, or mail received since a date. */
export type StartAt =
  | { readonly kind: 'now' }
  | { readonly kind: 'all' }
  | { readonly kind: 'since'; readonly since: Date };

export interface Address {
  readonly name: string;
  readonly address: string;
}

/** STATUS of the watched folder. UIDVALIDITY is kept as a decimal string (it is a 32-bit unsigned value, imapflow gives a BigInt). */
export interface FolderStatus {
  readonly uidValidity: string;
  readonly uidNext: number;
  readonly messages: number;
}

/** The header fields of a message as the server's ENVELOPE gives them. */
export interface MessageEnvelope {
  readonly messageId?: string;
  readonly inReplyTo?: string;
  readonly subject?: string;
  /** ISO 8601 Date header; absent when missing or unparsable. */
  readonly date?: string;
  readonly from: readonly Address[];
  readonly to: readonly Address[];
  readonly cc: readonly Address[];
  readonly replyTo: readonly Address[];
}

/** What the server told us about one message before we read its content. */
export interface MessageSummary {
  readonly uid: number;
  readonly size: number;
  readonly flags: readonly string[];
  /** ISO 8601; absent if the server sent none. */
  readonly internalDate?: string;
  /**
   * Listed only when a run needs a message's Message-ID before reading it (a re-scan, the baseline's newest
   * message): otherwise the header fields come from the parsed source alone (ListOptions.envelope).
   */
  readonly envelope?: MessageEnvelope;
}

/** The checkpoint of one (mailbox, folder): everything up to and including `lastUid` has been published. */
export interface Checkpoint {
  readonly mailboxId: string;
  readonly folder: string;
  readonly uidValidity: string;
  readonly lastUid: number;
  /** Incremented by every write; writes are conditional on the version read. 0 = not stored yet. */
  readonly version: number;
  /** ISO 8601 time of the last write. */
  readonly updatedAt: string;
  /** Highest INTERNALDATE among published messages (ISO), used to re-scan after a UIDVALIDITY change. */
  readonly lastInternalDate?: string;
  /** Short hashes of the Message-IDs published most recently (bounded list), to skip them after a UIDVALIDITY change. */
  readonly recentMessageIds?: readonly string[];
  /**
   * While set, only messages that arrived at or after this time (ISO) and whose Message-ID is not in
   * `recentMessageIds` are published; older ones are passed over. Set by START_AT=<date> and by a UIDVALIDITY
   * change; cleared when the scan reaches the end of the folder.
   */
  readonly rescanSince?: string;
}

/** One EventBridge entry, ready to send (Detail already serialized). */
export interface EventEntry {
  readonly Source: string;
  readonly DetailType: string;
  readonly Detail: string;
  readonly EventBusName: string;
  /** The message UID this entry stands for; absent for mailbox events. Not sent to EventBridge. */
  readonly uid?: number;
}

export const DETAIL_TYPE_MESSAGE = 'IMAP Message Received';
export const DETAIL_TYPE_RESET = 'IMAP Mailbox Reset';
