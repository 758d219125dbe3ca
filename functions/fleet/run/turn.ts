/**
 * One mailbox's turn in the worker pool: the registry item (gone, paused or in backoff: the message is dropped),
 * the settings from its secret (under the fleet's prefix only), a connection slot of its IMAP host when the host's
 * cap can bind (none free: the mailbox goes back into the queue with a delay), then the same `pollMailbox` as
 * per-mailbox mode (checkpoint and STATUS; with mail, the lease and the events) with at most MAX_MESSAGES_PER_TURN
 * messages and TURN_BUDGET_MS of time; more work waiting: straight back into the queue. A non-retryable failure backs
 * the mailbox off exponentially, with the reason in the registry.
 *
 * What a healthy idle turn writes is what a mailbox costs (docs/fleet.md, "Cost"): nothing. The lease is taken only
 * by a turn with mail, and left to expire (it outlives the short turn by KEPT_LEASE_GRACE_MS, well before the
 * mailbox's next turn); the status item only when it changed or its heartbeat is due (core/status-heartbeat.ts),
 * the registry only after failures, the host slots only when the cap can bind.
 */
import { randomUUID } from 'node:crypto';
import { FLEET_METRICS, hostCapCanBind, isUnderSecretPrefix, type PollRequest } from '../../poller/contract/fleet.js';
import { parseStartAt } from '../../poller/contract/start-at.js';
import type { PollStatus } from '../../poller/core/health.js';
import { ConfigurationError, describeError } from '../../poller/errors.js';
import type { PollDeps } from '../../poller/ports.js';
import { type RunReporter, reportFailed, reportFinished, waitingAfter } from '../../poller/report.js';
import { Deadline, LEASE_GRACE_MS, secretsSilent } from '../../poller/run/deadline.js';
import { type PollSummary, pollMailbox } from '../../poller/run/poll-mailbox.js';
import type { DynamoDbHostSlots, HostSlot } from '../adapters/dynamodb-host-slots.js';
import type { DynamoDbRegistry } from '../adapters/dynamodb-registry.js';
import type { SqsPollQueue } from '../adapters/sqs-poll-queue.js';
import type { WorkerConfig } from '../config.js';
import { failureBackoffMs, mailboxState, type RegistryEntry, successNeedsRecord } from '../core/registry.js';
import { fleetStaleAfterSeconds, statusWriteNeeded } from '../core/status-heartbeat.js';

/** A turn that would start with less than this before the Lambda deadline goes back to the queue instead. */
export const MIN_TURN_MS = 5_000;
/**
 * A turn's time at most (then, like a turn over MAX_MESSAGES_PER_TURN, it goes back into the queue). Short, so the
 * lease it leaves behind (this plus KEPT_LEASE_GRACE_MS) has expired long before the mailbox's next turn: the
 * shortest schedule is one minute.
 */
export const TURN_BUDGET_MS = 20_000;
/**
 * How long a turn's lease outlives the turn's deadline. Every call of the turn is cancelled by that deadline, so
 * this only covers a request already on the wire (a late duplicate at worst, never a loss).
 */
export const KEPT_LEASE_GRACE_MS = 5_000;
/**
 * No host slot free: the turn waits up to `waitMs` for one (trying every `retryMs`, jittered: a poll takes about a
 * second, so a slot usually frees within that), then the mailbox goes back to the queue for 2 to 6 s.
 */
export const HOST_SLOT_WAIT = { waitMs: 3_000, retryMs: 250, delaySeconds: { min: 2, max: 6 } } as const;

export interface TurnDeps {
  readonly registry: Pick<DynamoDbRegistry, 'get' | 'recordSuccess' | 'recordFailure' | 'markFailing'>;
  /** Reads the stored status item (whether this turn must write it); written through `reporter.status`. */
  readonly status: { getStatus(mailboxId: string): Promise<PollStatus | undefined> };
  readonly hostSlots: Pick<DynamoDbHostSlots, 'acquire' | 'release'>;
  readonly queue: Pick<SqsPollQueue, 'send'>;
  depsFor(entry: RegistryEntry): PollDeps;
  /** Log, aggregate metrics (no per-mailbox dimension), status store. */
  readonly reporter: RunReporter;
  readonly now: () => Date;
  readonly random?: () => number;
}

export type TurnOutcome =
  /** Polled (any pollMailbox outcome but `partial`). */
  | { readonly kind: 'polled'; readonly summary: PollSummary }
  /** Polled, more mail waiting: re-queued at once. */
  | { readonly kind: 'requeued'; readonly summary: PollSummary }
  /** No host slot free: re-queued with a delay. */
  | { readonly kind: 'deferred'; readonly host: string }
  /** Not registered, paused, or in backoff: the message is dropped. */
  | { readonly kind: 'dropped'; readonly reason: 'not-registered' | 'paused' | 'backoff' }
  /** Failed; `backoffUntil` when the failure was persistent. */
  | { readonly kind: 'failed'; readonly code: string; readonly backoffUntil?: number }
  /** Too little time left before the deadline: the message goes back to the queue. */
  | { readonly kind: 'retry-later' };

export async function runTurn(
  deps: TurnDeps,
  config: Pick<
    WorkerConfig,
    'secretPrefix' | 'hostConnectionCap' | 'poolConcurrency' | 'maxMessagesPerTurn' | 'eventBusName' | 'eventSource'
  >,
  request: PollRequest,
  deadline: number,
): Promise<TurnOutcome> {
  const started = deps.now().getTime();
  if (deadline - started < MIN_TURN_MS) return { kind: 'retry-later' };
  const random = deps.random ?? Math.random;
  // The stored status is read alongside (it decides at the end whether this turn writes it); unreadable: write.
  const stored = deps.status.getStatus(request.mailboxId).then(
    (status) => ({ status }),
    () => undefined,
  );
  // Eventually consistent (half the read units): the item changes only on registration, pause, resume and failures.
  const entry = await deps.registry.get(request.mailboxId, { consistent: false });
  if (!entry) return dropped(deps, request.mailboxId, 'not-registered');
  const state = mailboxState(entry, started);
  if (state !== 'active') return dropped(deps, entry.id, state);

  const reporter: RunReporter = {
    ...deps.reporter,
    secretId: entry.secretId,
    staleAfterSeconds: fleetStaleAfterSeconds(entry.intervalMs),
  };
  const turnDeadline = Math.min(deadline, started + TURN_BUDGET_MS);
  const poll = deps.depsFor(entry);
  const runId = randomUUID();
  try {
    if (!isUnderSecretPrefix(entry.secretId, config.secretPrefix)) {
      throw new ConfigurationError(
        `The secret of mailbox "${entry.id}" is not under the fleet's secret prefix "${config.secretPrefix}".`,
        { hint: 'store the settings in a secret whose name starts with the prefix, and register the mailbox with it.' },
      );
    }
    const startAt = parseStartAt(entry.startAt);
    if (!startAt) throw new ConfigurationError(`The mailbox "${entry.id}" has an invalid startAt.`);
    // The host decides the slot, so the settings come first (cached per secret; pollMailbox reads the cache again).
    const settings = await bounded(deadline, deps, (signal) => poll.settings.load({ signal }));
    const capped = hostCapCanBind(config.hostConnectionCap, config.poolConcurrency);
    const slot = capped
      ? await acquireSlot(deps, settings.host, config.hostConnectionCap, runId, turnDeadline, random)
      : 'none needed';
    if (!slot) {
      const { min, max } = HOST_SLOT_WAIT.delaySeconds;
      await deps.queue.send({ mailboxId: entry.id, sentAt: deps.now().getTime() }, min + random() * (max - min));
      deps.reporter.metrics.addMetric(FLEET_METRICS.hostCapDeferred, 'Count', 1);
      return { kind: 'deferred', host: settings.host };
    }
    let summary: PollSummary;
    try {
      summary = await pollMailbox(poll, {
        mailboxId: entry.id,
        eventSource: config.eventSource,
        eventBusName: config.eventBusName,
        startAt,
        deadline: turnDeadline,
        maxMessagesPerRun: config.maxMessagesPerTurn,
        runId,
        keepLease: true,
        leaseGraceMs: KEPT_LEASE_GRACE_MS,
      });
    } finally {
      // The connection is closed: the slot goes back before the bookkeeping below.
      if (slot !== 'none needed')
        await deps.hostSlots.release(slot).catch(() => {
          // It expires by itself shortly after the deadline.
        });
    }
    const write =
      summary.outcome !== 'skipped' &&
      statusWriteNeeded(
        (await stored)?.status,
        {
          outcome: summary.outcome,
          folder: summary.folder,
          waiting: waitingAfter(summary),
          secretId: entry.secretId,
          staleAfterSeconds: reporter.staleAfterSeconds!,
        },
        deps.now().getTime(),
      );
    // Unchanged and recent: the status item stays as it is (its write would be most of what an idle poll costs).
    const { status: _unchanged, ...withoutStatus } = reporter;
    await reportFinished(write ? reporter : withoutStatus, summary);
    if (summary.outcome !== 'skipped' && successNeedsRecord(entry)) {
      await deps.registry.recordSuccess(entry.id, deps.now()).catch((err: unknown) => {
        deps.reporter.log.warn('Recording the success in the registry failed', { errorCode: describeError(err).code });
      });
    }
    if (summary.outcome === 'partial') {
      // The next turn comes at once: it must find the lease free (else it expires within KEPT_LEASE_GRACE_MS).
      await poll.lease?.release(entry.id, runId).catch(() => {});
      await deps.queue.send({ mailboxId: entry.id, sentAt: deps.now().getTime() });
      return { kind: 'requeued', summary };
    }
    return { kind: 'polled', summary };
  } catch (err) {
    const { code, message } = await reportFailed(reporter, entry.id, err, deps.now().getTime() - started);
    if (describeError(err).retryable) {
      // The schedule tries again; the registry notes the first failure of a streak (for the "overdue" gauge).
      if (entry.failingSince === undefined)
        await deps.registry.markFailing(entry.id, deps.now()).catch(() => {
          // best effort: the next failure notes it
        });
      return { kind: 'failed', code };
    }
    const failures = entry.failures + 1;
    const backoffUntil = deps.now().getTime() + failureBackoffMs(failures, random());
    await deps.registry.recordFailure(entry.id, { failures, backoffUntil, code, message, at: deps.now() });
    deps.reporter.log.warn('Mailbox backs off after a persistent failure', {
      mailboxId: entry.id,
      errorCode: code,
      failures,
      backoffUntil: new Date(backoffUntil).toISOString(),
    });
    return { kind: 'failed', code, backoffUntil };
  }
}

/** A slot of the host, waiting up to HOST_SLOT_WAIT.waitMs (and never into the last MIN_TURN_MS before the deadline). */
async function acquireSlot(
  deps: TurnDeps,
  host: string,
  cap: number,
  owner: string,
  deadline: number,
  random: () => number,
): Promise<HostSlot | undefined> {
  const giveUpAt = Math.min(deps.now().getTime() + HOST_SLOT_WAIT.waitMs, deadline - MIN_TURN_MS);
  for (;;) {
    const slot = await deps.hostSlots.acquire(host, cap, owner, deps.now(), new Date(deadline + LEASE_GRACE_MS));
    if (slot) return slot;
    const pause = HOST_SLOT_WAIT.retryMs * (0.5 + random());
    if (deps.now().getTime() + pause > giveUpAt) return undefined;
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
}

function dropped(deps: TurnDeps, mailboxId: string, reason: 'not-registered' | 'paused' | 'backoff'): TurnOutcome {
  deps.reporter.log.info('Poll request dropped', { mailboxId, reason });
  return { kind: 'dropped', reason };
}

/** A call bounded by the Lambda deadline (the run's own Deadline rules). */
async function bounded<T>(deadline: number, deps: TurnDeps, call: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const d = Deadline.start({ at: deadline, now: deps.now });
  try {
    return await d.call(call, secretsSilent);
  } finally {
    d.end();
  }
}
