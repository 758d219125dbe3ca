/**
 * Fleet mode's rules, pure (no clock, no SDK, no node:*): which mailboxes are due, in backoff or overdue, how a
 * persistent failure backs off, which shard a mailbox lives in, what a declared mailbox must look like, and how the
 * declared list changes the registry. The adapters, the dispatcher, the worker and the CLI all decide with these.
 */
import { scheduleInterval } from '../../../lib/schedule-interval.js';
import {
  type DeclaredMailbox,
  DUE_INDEX,
  FLEET_DEFAULTS,
  isUnderSecretPrefix,
  type RegistrySource,
} from '../../poller/contract/fleet.js';
import { isMailboxId, MAILBOX_ID_RULE } from '../../poller/contract/mailbox-id.js';
import { parseStartAt, START_AT_RULE } from '../../poller/contract/start-at.js';

/** The registry item of one mailbox, validated (see adapters/dynamodb-registry.ts for the stored form). */
export interface RegistryEntry extends MailboxDefinition {
  readonly paused: boolean;
  readonly source: RegistrySource;
  /** Absent when paused (the item then leaves the sparse `due` index). */
  readonly shard?: number;
  /** Epoch ms; absent when paused. */
  readonly dueAt?: number;
  /** Failed polls in a row with a non-retryable error (wrong password, revoked consent, folder missing ...). */
  readonly failures: number;
  /** Epoch ms until which the mailbox is not polled (exponential backoff). */
  readonly backoffUntil?: number;
  readonly lastErrorCode?: string;
  /** Secret-free (the errors' own messages), bounded. */
  readonly lastErrorMessage?: string;
  /**
   * ISO time of a successful poll: the first one, and the first after failures. Not rewritten by every poll (that
   * would cost two write units per poll, the item and its index entry); `failingSince` marks the failures instead.
   */
  readonly lastSuccessAt?: string;
  /** Epoch ms of the first failed poll (any error) since the last success; absent while polls succeed. */
  readonly failingSince?: number;
  /** ISO time the mailbox was registered. */
  readonly registeredAt: string;
}

/** The configuration part of a registry entry, from a declared (or CLI-added) mailbox. */
export interface MailboxDefinition {
  readonly id: string;
  readonly secretId: string;
  readonly username?: string;
  readonly folder?: string;
  readonly schedule: string;
  /** The schedule's interval. */
  readonly intervalMs: number;
  readonly startAt: string;
}

export const DEFAULT_SCHEDULE = 'rate(1 minute)';
export const SCHEDULE_RULE = 'must be rate(N minutes|hours|days) or an evenly spaced cron(...) running every day';

/**
 * Backoff after persistent failures: 1 min after the first, doubling per failure (2, 4, 8 ... min), capped at
 * 4 h, so a locked-out account sees about 10 login attempts on its first day instead of 1,440. Plus up to 10 %
 * jitter, so mailboxes that failed together (a revoked tenant app) do not come back in the same second.
 */
export const FAILURE_BACKOFF = { baseMs: 60_000, capMs: 4 * 3_600_000, jitter: 0.1 } as const;

/** Longest error message kept in the registry item. */
export const MAX_REGISTRY_ERROR_MESSAGE = 500;

/** The interval of a schedule in ms, or undefined when it has none (irregular cron, malformed). */
export function scheduleIntervalMs(schedule: string): number | undefined {
  const interval = scheduleInterval(schedule);
  return 'minutes' in interval && interval.minutes > 0 ? interval.minutes * 60_000 : undefined;
}

/** The shard of a mailbox in the `due` index: a stable hash (FNV-1a) of its id. */
export function shardOf(mailboxId: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < mailboxId.length; i++) {
    hash ^= mailboxId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % DUE_INDEX.shards;
}

/**
 * Shortest gap between two dispatch cycles: a second invocation for the same schedule tick (EventBridge delivers at
 * least once) finds the previous cycle less than this ago and sends nothing. Below the one-minute schedule, far
 * above the clock skew between invocations.
 */
export const DISPATCH_MIN_GAP_MS = 30_000;

/**
 * The due rule. `dueAt` is the mailbox's schedule anchor (registration, resume, end of a backoff, or a carry-over):
 * it is due at `dueAt` and every `intervalMs` after it. A cycle at `now` whose previous cycle ran at `prev` sends
 * it when one of those moments falls in (prev, now]: `dueAt` itself (new, resumed, backoff just ended, carried
 * over), else the last boundary on its own phase, i.e. floor((now - dueAt) / interval) > floor((prev - dueAt) /
 * interval). Returns that moment (the older, the longer it waits), or undefined when not due. Mailboxes keep
 * their phase, and after missed cycles a mailbox is sent once, not once per missed boundary.
 */
export function dueMoment(dueAt: number, intervalMs: number, prev: number, now: number): number | undefined {
  if (dueAt > now) return undefined;
  if (dueAt > prev) return dueAt;
  const last = dueAt + Math.floor((now - dueAt) / intervalMs) * intervalMs;
  return last > prev ? last : undefined;
}

/** The mailbox's next moment on its own phase strictly after `now` (`dueAt` itself while that is ahead). */
export function nextDueAt(dueAt: number, intervalMs: number, now: number): number {
  if (dueAt > now) return dueAt;
  return dueAt + (Math.floor((now - dueAt) / intervalMs) + 1) * intervalMs;
}

/**
 * When the mailbox is polled next, for `mailbox list`: nothing while paused; the end of a backoff; at once (`now`)
 * when it became due after the last cycle `lastCycleAt` and waits for the next one; else its next moment.
 */
export function nextAttemptAt(entry: RegistryEntry, now: number, lastCycleAt?: number): number | undefined {
  const state = mailboxState(entry, now);
  if (state === 'paused' || entry.dueAt === undefined) return undefined;
  if (state === 'backoff') return entry.backoffUntil;
  if (dueMoment(entry.dueAt, entry.intervalMs, lastCycleAt ?? 0, now) !== undefined) return now;
  return nextDueAt(entry.dueAt, entry.intervalMs, now);
}

/** The backoff delay after `failures` persistent failures in a row (>= 1). `random` in [0, 1). */
export function failureBackoffMs(failures: number, random: number): number {
  const base = Math.min(FAILURE_BACKOFF.capMs, FAILURE_BACKOFF.baseMs * 2 ** Math.max(0, failures - 1));
  return Math.round(base * (1 + FAILURE_BACKOFF.jitter * random));
}

export type MailboxState = 'paused' | 'backoff' | 'active';

export function mailboxState(entry: RegistryEntry, now: number): MailboxState {
  if (entry.paused) return 'paused';
  if (entry.backoffUntil !== undefined && entry.backoffUntil > now) return 'backoff';
  return 'active';
}

/**
 * Active and failing (transiently, so not in backoff) for more than two intervals, or never polled successfully
 * that long after it was registered. Paused and backing-off mailboxes are not overdue (the latter have their own
 * gauge). A dispatcher that is behind shows in the plan's `deferred` (counted as overdue there), not here: `dueAt`
 * is an anchor, not a next due time, so its age says nothing.
 */
export function isOverdue(entry: RegistryEntry, now: number): boolean {
  if (mailboxState(entry, now) !== 'active' || entry.failures > 0) return false;
  const limit = 2 * entry.intervalMs;
  if (entry.failingSince !== undefined && now - entry.failingSince > limit) return true;
  const registered = Date.parse(entry.registeredAt);
  return !entry.lastSuccessAt && Number.isFinite(registered) && now - registered > limit;
}

/** Whether a poll's outcome changes the registry item: a success after failures (or the first), a first failure. */
export function successNeedsRecord(entry: RegistryEntry): boolean {
  return (
    !entry.lastSuccessAt || entry.failures > 0 || entry.backoffUntil !== undefined || entry.failingSince !== undefined
  );
}

export interface DispatchCycleInput {
  readonly now: number;
  /** Time of the previous cycle (0 before the first one: everything whose `dueAt` has passed is due). */
  readonly prev: number;
  readonly maxPerCycle: number;
  /** Poll requests waiting in the queue (SQS ApproximateNumberOfMessages); undefined when unknown. */
  readonly backlog?: number;
}

export interface DispatchPlan {
  /** Due mailboxes to send now, the longest waiting first, at most `maxPerCycle`. */
  readonly dispatch: readonly RegistryEntry[];
  /**
   * Due, not sent: over `maxPerCycle`. Their `dueAt` moves to the next cycle (`carryOverTo`), so they are not
   * lost until their next boundary: the only per-mailbox writes of a cycle.
   */
  readonly carryOver: readonly RegistryEntry[];
  /** `dueAt` for the carried-over mailboxes: due again in the next cycle (after `now`, so `dueAt > prev` then). */
  readonly carryOverTo: number;
  /** Due on their schedule, but held back because the queue already holds a full cycle (no write: see below). */
  readonly heldBack: number;
  /** Due and not sent this cycle: carried over and held back. */
  readonly deferred: number;
  /** isOverdue, or due and not sent this cycle. */
  readonly overdue: number;
  readonly inBackoff: number;
}

/**
 * One dispatch cycle's decisions over the active registry (the `due` index's items), pure.
 *
 * Backlog guard: when the queue already holds at least as many requests as mailboxes are due on their schedule this
 * cycle, the pool has not drained the last cycle, and those mailboxes most likely still have a request waiting.
 * Sending again would only pile duplicates into a queue the pool cannot drain (each later found idle, or refused by
 * the lease), so they are held back: not sent, not written (a carry-over write for each would cost 3 write units per
 * mailbox exactly when the fleet is overloaded), counted as deferred (and overdue) and logged; they are due again at
 * their next boundary. Mailboxes due for the first time since their anchor (new, resumed, backoff ended, carried
 * over) cannot have a request waiting: they are still sent.
 */
export function planDispatch(entries: readonly RegistryEntry[], input: DispatchCycleInput): DispatchPlan {
  const { now, prev, maxPerCycle, backlog } = input;
  const due: { entry: RegistryEntry; since: number }[] = [];
  for (const entry of entries) {
    if (mailboxState(entry, now) !== 'active' || entry.dueAt === undefined) continue;
    const since = dueMoment(entry.dueAt, entry.intervalMs, prev, now);
    if (since !== undefined) due.push({ entry, since });
  }
  due.sort((a, b) => a.since - b.since || (a.entry.id < b.entry.id ? -1 : 1));
  const onSchedule = due.filter((d) => d.entry.dueAt! <= prev);
  const hold = backlog !== undefined && onSchedule.length > 0 && backlog >= onSchedule.length;
  const candidates = (hold ? due.filter((d) => d.entry.dueAt! > prev) : due).map((d) => d.entry);
  const dispatch = candidates.slice(0, maxPerCycle);
  const carryOver = candidates.slice(maxPerCycle);
  const heldBack = hold ? onSchedule.length : 0;
  const notSent = new Set([...carryOver, ...(hold ? onSchedule.map((d) => d.entry) : [])]);
  return {
    dispatch,
    carryOver,
    carryOverTo: now + 1,
    heldBack,
    deferred: carryOver.length + heldBack,
    overdue: entries.filter((e) => notSent.has(e) || isOverdue(e, now)).length,
    inBackoff: entries.filter((e) => mailboxState(e, now) === 'backoff').length,
  };
}

/** The order in which a worker tries a host's connection slots: from a random one, round the ring. */
export function slotOrder(cap: number, random: number): number[] {
  const start = Math.floor(random * cap) % cap;
  return Array.from({ length: cap }, (_, i) => (start + i) % cap);
}

/** Problems of a mailbox to register, each `field: rule` (never a value); empty when fine. */
export function declaredMailboxProblems(input: unknown, secretPrefix: string = FLEET_DEFAULTS.secretPrefix): string[] {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return ['(mailbox): must be an object'];
  const m = input as Record<string, unknown>;
  const problems: string[] = [];
  const known = ['id', 'secretId', 'username', 'folder', 'schedule', 'startAt'];
  for (const key of Object.keys(m)) if (!known.includes(key)) problems.push(`${key}: unknown field`);
  if (!isMailboxId(m.id)) problems.push(`id: ${MAILBOX_ID_RULE}`);
  if (typeof m.secretId !== 'string' || !isUnderSecretPrefix(m.secretId, secretPrefix))
    problems.push(`secretId: must be a secret name or ARN under the prefix "${secretPrefix}"`);
  for (const field of ['username', 'folder'] as const) {
    const v = m[field];
    if (v !== undefined && (typeof v !== 'string' || v.trim() === '' || /[\r\n\0]/.test(v)))
      problems.push(`${field}: must be a non-empty string without line breaks`);
  }
  if (m.schedule !== undefined && (typeof m.schedule !== 'string' || !scheduleIntervalMs(m.schedule)))
    problems.push(`schedule: ${SCHEDULE_RULE}`);
  if (m.startAt !== undefined && (typeof m.startAt !== 'string' || !parseStartAt(m.startAt)))
    problems.push(`startAt: ${START_AT_RULE}`);
  return problems;
}

/** Problems of the declared-mailboxes file (version, list, each mailbox, duplicate ids). */
export function declaredFileProblems(input: unknown, secretPrefix: string): string[] {
  if (typeof input !== 'object' || input === null) return ['(root): must be an object'];
  const file = input as { version?: unknown; mailboxes?: unknown };
  if (file.version !== 1) return ['version: must be 1'];
  if (!Array.isArray(file.mailboxes)) return ['mailboxes: must be a list'];
  const problems: string[] = [];
  const seen = new Set<string>();
  file.mailboxes.forEach((m: unknown, i: number) => {
    for (const p of declaredMailboxProblems(m, secretPrefix)) problems.push(`mailboxes[${i}].${p}`);
    const id = (m as { id?: unknown })?.id;
    if (typeof id === 'string') {
      if (seen.has(id)) problems.push(`mailboxes[${i}].id: is declared twice`);
      seen.add(id);
    }
  });
  return problems;
}

/** Defaults applied; call only after declaredMailboxProblems found nothing. */
export function definitionOf(m: DeclaredMailbox): MailboxDefinition {
  const schedule = m.schedule ?? DEFAULT_SCHEDULE;
  return {
    id: m.id,
    secretId: m.secretId,
    ...(m.username !== undefined ? { username: m.username } : {}),
    ...(m.folder !== undefined ? { folder: m.folder } : {}),
    schedule,
    intervalMs: scheduleIntervalMs(schedule)!,
    startAt: m.startAt ?? 'now',
  };
}

export interface DeclaredSync {
  /** Declared, not registered yet. */
  readonly create: readonly MailboxDefinition[];
  /** Declared and registered from cdk.json, with a changed definition. */
  readonly update: readonly MailboxDefinition[];
  /** Registered from cdk.json, no longer declared. */
  readonly remove: readonly string[];
  /** Declared, but an item added with the CLI has the id: left alone. */
  readonly conflicts: readonly string[];
}

/** How the registry must change to match the declared list. Items added with the CLI are never touched. */
export function syncDeclared(
  declared: readonly MailboxDefinition[],
  registered: readonly RegistryEntry[],
): DeclaredSync {
  const byId = new Map(registered.map((e) => [e.id, e]));
  const declaredIds = new Set(declared.map((d) => d.id));
  const create: MailboxDefinition[] = [];
  const update: MailboxDefinition[] = [];
  const conflicts: string[] = [];
  for (const d of declared) {
    const existing = byId.get(d.id);
    if (!existing) create.push(d);
    else if (existing.source !== 'cdk') conflicts.push(d.id);
    else if (!sameDefinition(existing, d)) update.push(d);
  }
  const remove = registered.filter((e) => e.source === 'cdk' && !declaredIds.has(e.id)).map((e) => e.id);
  return { create, update, remove, conflicts };
}

function sameDefinition(a: MailboxDefinition, b: MailboxDefinition): boolean {
  return (
    a.secretId === b.secretId &&
    a.username === b.username &&
    a.folder === b.folder &&
    a.schedule === b.schedule &&
    a.startAt === b.startAt
  );
}
