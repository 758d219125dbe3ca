import type { Checkpoint, MessageSummary } from './types.js';

/** What the checkpoint remembers of a message it moves over. */
export interface PublishedMessage {
  readonly uid: number;
  /** INTERNALDATE (ISO 8601), when the server sent one. */
  readonly internalDate?: string;
  /** The Message-ID of its event (from the parsed source, or the ENVELOPE where one was listed). */
  readonly messageId?: string | null;
}

/** How many recent Message-ID hashes a checkpoint remembers (for the re-scan after a UIDVALIDITY change). */
export const RECENT_MESSAGE_IDS = 200;

/** A checkpoint that has never been stored (version 0). */
export function emptyCheckpoint(
  mailboxId: string,
  folder: string,
  uidValidity: string,
  lastUid: number,
  now: Date,
): Checkpoint {
  return { mailboxId, folder, uidValidity, lastUid, version: 0, updatedAt: now.toISOString(), recentMessageIds: [] };
}

/**
 * The checkpoint after publishing `published` (messages in UID order, all accepted or, when in `passedOver`,
 * deliberately skipped) and, when the fetch range
 * was exhausted, after learning that no UID up to `exhaustedUpTo` remains unseen (expunged gaps; this also ends a re-scan).
 * Never moves backwards; never changes UIDVALIDITY.
 */
export function advanceCheckpoint(
  current: Checkpoint,
  published: readonly PublishedMessage[],
  now: Date,
  options: {
    exhaustedUpTo?: number;
    messageIdHash?: (messageId: string) => string;
    passedOver?: ReadonlySet<number>;
  } = {},
): Checkpoint {
  let lastUid = current.lastUid;
  let lastInternalDate = current.lastInternalDate;
  const messageIds: string[] = [];
  for (const m of published) {
    if (m.uid > lastUid) lastUid = m.uid;
    // Messages passed over without an event move the UID only: the re-scan memory is about published mail.
    if (options.passedOver?.has(m.uid)) continue;
    if (m.internalDate && (!lastInternalDate || m.internalDate > lastInternalDate)) lastInternalDate = m.internalDate;
    if (m.messageId) messageIds.push(m.messageId);
  }
  const exhausted = options.exhaustedUpTo !== undefined;
  if (exhausted && options.exhaustedUpTo! > lastUid) lastUid = options.exhaustedUpTo!;
  // Only the newest RECENT_MESSAGE_IDS are kept: hash those alone (a batch of 100 has 100 IDs).
  const hash = options.messageIdHash;
  const added = hash ? messageIds.slice(-RECENT_MESSAGE_IDS).map(hash) : [];
  const recent = [...(current.recentMessageIds ?? []), ...added].slice(-RECENT_MESSAGE_IDS);
  const { rescanSince, ...rest } = current;
  return {
    ...rest,
    lastUid,
    updatedAt: now.toISOString(),
    recentMessageIds: recent,
    ...(lastInternalDate ? { lastInternalDate } : {}),
    // A re-scan ends when it reached the end of the folder.
    ...(rescanSince && !exhausted ? { rescanSince } : {}),
  };
}

/**
 * The messages we may publish from a batch given which were accepted: the longest prefix (in UID order)
 * of accepted messages. The checkpoint may only advance over this prefix: it never passes an unpublished UID.
 */
export function publishedPrefix<T extends { uid: number }>(
  batch: readonly T[],
  accepted: (item: T, index: number) => boolean,
): T[] {
  const prefix: T[] = [];
  for (let i = 0; i < batch.length; i++) {
    if (!accepted(batch[i]!, i)) break;
    prefix.push(batch[i]!);
  }
  return prefix;
}

/**
 * Rebaseline after a UIDVALIDITY change: the new UIDVALIDITY from UID 1, re-scanning by arrival time
 * from `since` and keeping the Message-ID memory so already published mail is skipped.
 */
export function rebaseline(previous: Checkpoint, uidValidity: string, since: Date, now: Date): Checkpoint {
  return { ...previous, uidValidity, lastUid: 0, updatedAt: now.toISOString(), rescanSince: since.toISOString() };
}

/** Whether a message found during a re-scan must be published (arrived since `since`, not already published). */
export function isRescanCandidate(
  checkpoint: Checkpoint,
  message: MessageSummary,
  messageIdHash: (id: string) => string,
): boolean {
  if (!checkpoint.rescanSince) return true;
  if (message.internalDate && message.internalDate < checkpoint.rescanSince) return false;
  const id = message.envelope?.messageId;
  return !(id && (checkpoint.recentMessageIds ?? []).includes(messageIdHash(id)));
}
