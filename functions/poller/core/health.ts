/**
 * The health of one mailbox, from what the poller recorded (status item, checkpoint, lease) and, optionally,
 * a live STATUS of the folder. Pure: the caller passes `now`. Independent of the deployment mode: the
 * per-mailbox Lambda and any other runner record the same status.
 */
import type { Checkpoint } from './types.js';

/** What the poller records about its runs, one item per mailbox (key `status#<mailboxId>`). */
export interface PollStatus {
  readonly mailboxId: string;
  /** ISO time of the last run that did not fail (any outcome but `skipped`). */
  readonly lastSuccessAt?: string;
  readonly lastOutcome?: string;
  readonly lastPublished?: number;
  /** Messages waiting after that run: UIDNEXT − 1 − lastUid (an upper bound: expunged UIDs count). */
  readonly lastWaiting?: number;
  readonly lastDurationMs?: number;
  /** ISO time of the last failed run, its error code and (secret-free) message. */
  readonly lastFailureAt?: string;
  readonly lastErrorCode?: string;
  readonly lastErrorMessage?: string;
  /** Failed runs since the last success. */
  readonly consecutiveFailures: number;
  /** Folder of the last run, and the secret the poller reads (an id, never a value). */
  readonly folder?: string;
  readonly secretId?: string;
  /** After this long without a successful poll the mailbox counts as stale (what the staleness alarm uses). */
  readonly staleAfterSeconds?: number;
  readonly updatedAt?: string;
}

/** The lease item: who runs the mailbox now, until when. */
export interface LeaseInfo {
  readonly owner: string;
  readonly expiresAt: Date;
  readonly acquiredAt?: string;
}

/** A live STATUS of the folder, or why it could not be read. */
export type LiveFolder =
  | { readonly ok: true; readonly uidValidity: string; readonly uidNext: number; readonly messages: number }
  | { readonly ok: false; readonly errorCode: string; readonly message: string };

export type HealthProblemCode = 'NEVER_SUCCEEDED' | 'STALE' | 'FAILING' | 'UNREACHABLE' | 'BACKOFF';

/** Where a fleet mailbox stands in the registry (fleet mode only): paused by an admin, or backing off. */
export interface ScheduleState {
  readonly paused: boolean;
  /** ISO time until which the fleet does not poll it (after persistent failures), when in the future. */
  readonly backoffUntil?: string;
  readonly failures: number;
  readonly errorCode?: string;
}

export interface HealthProblem {
  readonly code: HealthProblemCode;
  readonly message: string;
}

export interface HealthInput {
  readonly status?: PollStatus;
  readonly checkpoint?: Checkpoint;
  readonly live?: LiveFolder;
  readonly now: Date;
  /** Overrides the status item's `staleAfterSeconds`. */
  readonly staleAfterSeconds?: number;
  readonly schedule?: ScheduleState;
}

export interface Health {
  readonly healthy: boolean;
  readonly problems: readonly HealthProblem[];
  /** Messages waiting now (live UIDNEXT − 1 − lastUid), when the live STATUS and the checkpoint agree on UIDVALIDITY. */
  readonly waiting?: number;
}

/** Messages between the checkpoint and the end of the folder: UIDNEXT − 1 − lastUid, never negative. */
export function messagesWaiting(uidNext: number, lastUid: number): number {
  return Math.max(0, uidNext - 1 - lastUid);
}

/**
 * Healthy = a recent successful poll, the last run did not fail, (when checked) the folder answers, and (fleet mode)
 * the mailbox is not backing off. A paused mailbox is not expected to poll: it is neither stale nor never-succeeded.
 */
export function assessHealth(input: HealthInput): Health {
  const { status, checkpoint, live, now, schedule } = input;
  const problems: HealthProblem[] = [];
  const staleAfter = input.staleAfterSeconds ?? status?.staleAfterSeconds;

  if (schedule?.paused) {
    // an admin's decision: `mailbox resume` polls it again
  } else if (!status?.lastSuccessAt) {
    problems.push({ code: 'NEVER_SUCCEEDED', message: 'no successful poll recorded' });
  } else if (staleAfter !== undefined) {
    const ageSeconds = (now.getTime() - Date.parse(status.lastSuccessAt)) / 1000;
    if (ageSeconds > staleAfter) {
      problems.push({
        code: 'STALE',
        message: `no successful poll for ${formatSeconds(ageSeconds)} (limit ${formatSeconds(staleAfter)})`,
      });
    }
  }
  if (status && status.consecutiveFailures > 0 && isAfter(status.lastFailureAt, status.lastSuccessAt)) {
    problems.push({
      code: 'FAILING',
      message: `the last ${status.consecutiveFailures === 1 ? 'poll' : `${status.consecutiveFailures} polls`} failed with ${status.lastErrorCode ?? 'an unknown error'}`,
    });
  }
  if (schedule?.backoffUntil !== undefined && Date.parse(schedule.backoffUntil) > now.getTime()) {
    problems.push({
      code: 'BACKOFF',
      message: `not polled until ${schedule.backoffUntil} after ${schedule.failures === 1 ? 'a persistent failure' : `${schedule.failures} persistent failures`} (${schedule.errorCode ?? 'unknown error'}); fix the cause, then \`imap-event-source mailbox resume\` polls it at once`,
    });
  }
  let waiting: number | undefined;
  if (live && !live.ok) {
    problems.push({ code: 'UNREACHABLE', message: `live STATUS failed with ${live.errorCode}: ${live.message}` });
  } else if (live?.ok && checkpoint && checkpoint.uidValidity === live.uidValidity) {
    waiting = messagesWaiting(live.uidNext, checkpoint.lastUid);
  }
  return { healthy: problems.length === 0, problems, ...(waiting !== undefined ? { waiting } : {}) };
}

function isAfter(a: string | undefined, b: string | undefined): boolean {
  if (!a) return false;
  return !b || Date.parse(a) >= Date.parse(b);
}

/** 90 -> "1 min 30 s", 7200 -> "2 h". */
export function formatSeconds(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ''}`;
  if (s < 172_800)
    return `${Math.floor(s / 3600)} h${Math.floor((s % 3600) / 60) ? ` ${Math.floor((s % 3600) / 60)} min` : ''}`;
  return `${Math.floor(s / 86_400)} d`;
}
