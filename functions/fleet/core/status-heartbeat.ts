/**
 * When a fleet turn writes the mailbox's status item. Per-mailbox mode writes it after every run; at one poll a
 * minute for thousands of mailboxes that write is most of the bill (docs/fleet.md, "Cost"), while an idle poll
 * changes nothing in it but timestamps. So a successful turn writes it only when something an operator reads there
 * changed, or as a heartbeat once the stored success is older than STATUS_HEARTBEAT_MS. Failures are always written
 * (report.ts). Pure: the caller reads the stored status and passes the clock.
 */

/** A successful turn refreshes an unchanged status item at most this often. */
export const STATUS_HEARTBEAT_MS = 10 * 60_000;

/** The fields of the stored status item the decision looks at (ports.ts `PollStatus`). */
export interface StoredStatus {
  readonly lastSuccessAt?: string;
  readonly lastOutcome?: string;
  readonly lastWaiting?: number;
  readonly folder?: string;
  readonly secretId?: string;
  readonly staleAfterSeconds?: number;
  readonly consecutiveFailures: number;
}

/** What the finished turn would record. */
export interface TurnRecord {
  readonly outcome: string;
  readonly folder: string | null;
  readonly waiting: number | null;
  readonly secretId: string;
  readonly staleAfterSeconds: number;
}

/**
 * True unless the stored item already says the same thing recently: no stored success, a failure since, another
 * outcome than `idle` (mail was published or the mailbox reset: counts and checkpoint moved), another folder,
 * secret, backlog or staleness bound, or a stored success older than the heartbeat (or in the future, a clock gone
 * wrong).
 */
export function statusWriteNeeded(
  stored: StoredStatus | undefined,
  turn: TurnRecord,
  now: number,
  heartbeatMs: number = STATUS_HEARTBEAT_MS,
): boolean {
  if (!stored?.lastSuccessAt || stored.consecutiveFailures > 0) return true;
  if (turn.outcome !== 'idle' || stored.lastOutcome !== 'idle') return true;
  if ((turn.folder ?? undefined) !== stored.folder || turn.secretId !== stored.secretId) return true;
  if ((turn.waiting ?? undefined) !== stored.lastWaiting || turn.staleAfterSeconds !== stored.staleAfterSeconds)
    return true;
  const age = now - Date.parse(stored.lastSuccessAt);
  return !(age >= 0 && age < heartbeatMs);
}

/**
 * How old a fleet mailbox's status item may get before `status` calls it stale: two schedule intervals (the
 * fleet's "overdue"), plus the heartbeat, since an idle mailbox's item is refreshed only that often.
 */
export function fleetStaleAfterSeconds(intervalMs: number, heartbeatMs: number = STATUS_HEARTBEAT_MS): number {
  return (2 * intervalMs + heartbeatMs) / 1000;
}
