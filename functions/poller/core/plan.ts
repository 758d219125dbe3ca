import type { Checkpoint, FolderStatus, StartAt } from './types.js';

/**
 * What one poll does, decided from the checkpoint and the folder's STATUS alone.
 * - `baseline`: no checkpoint and START_AT=now: remember UIDNEXT-1, publish nothing.
 * - `idle`: nothing new (UIDNEXT-1 <= lastUid): no further IMAP command, no write.
 * - `fetch`: publish messages with UID >= fromUid (optionally only those that arrived since `since`).
 * - `reset`: UIDVALIDITY changed: publish `IMAP Mailbox Reset`, then re-scan by arrival time.
 */
export type PollPlan =
  | { readonly kind: 'idle'; readonly uidValidity: string }
  | { readonly kind: 'baseline'; readonly uidValidity: string; readonly lastUid: number }
  | { readonly kind: 'fetch'; readonly uidValidity: string; readonly fromUid: number; readonly since?: Date }
  | {
      readonly kind: 'reset';
      readonly uidValidity: string;
      readonly previous: Checkpoint;
      /** Re-scan messages that arrived at or after this time, skipping Message-IDs already published. */
      readonly since: Date;
    };

export function planPoll(checkpoint: Checkpoint | undefined, status: FolderStatus, startAt: StartAt): PollPlan {
  const newest = Math.max(0, status.uidNext - 1);
  if (checkpoint === undefined) {
    switch (startAt.kind) {
      case 'now':
        return { kind: 'baseline', uidValidity: status.uidValidity, lastUid: newest };
      case 'all':
        return { kind: 'fetch', uidValidity: status.uidValidity, fromUid: 1 };
      case 'since':
        return { kind: 'fetch', uidValidity: status.uidValidity, fromUid: 1, since: startAt.since };
    }
  }
  if (hasUidValidityChanged(checkpoint, status)) {
    return { kind: 'reset', uidValidity: status.uidValidity, previous: checkpoint, since: rescanStart(checkpoint) };
  }
  if (canSkipSync(checkpoint, status)) return { kind: 'idle', uidValidity: status.uidValidity };
  const since = checkpoint.rescanSince ? { since: new Date(checkpoint.rescanSince) } : {};
  return { kind: 'fetch', uidValidity: status.uidValidity, fromUid: checkpoint.lastUid + 1, ...since };
}

/**
 * After a UIDVALIDITY change, mail that arrived since the last published message's arrival time may be new.
 * A pending re-scan keeps its own start. Only the server's time basis counts (INTERNALDATE, recorded at the baseline
 * too): a checkpoint that knows none re-scans the whole folder (skipping the Message-IDs it remembers), since
 * comparing arrival dates with the Lambda's clock skips mail for good when the server's clock is behind.
 */
export function rescanStart(checkpoint: Checkpoint): Date {
  const candidates = [checkpoint.rescanSince, checkpoint.lastInternalDate].filter((d): d is string => d !== undefined);
  if (candidates.length === 0) return new Date(0);
  return new Date(candidates.reduce((a, b) => (new Date(a) <= new Date(b) ? a : b)));
}

export function hasUidValidityChanged(checkpoint: Checkpoint, status: FolderStatus): boolean {
  return checkpoint.uidValidity !== status.uidValidity;
}

/** Nothing can be new when the next UID the server would assign is at most lastUid + 1. */
export function canSkipSync(checkpoint: Checkpoint, status: FolderStatus): boolean {
  return status.uidNext - 1 <= checkpoint.lastUid;
}
