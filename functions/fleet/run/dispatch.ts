/**
 * One dispatch cycle: bring the registry in line with the mailboxes declared in cdk.json (when that file changed),
 * read the active registry from every shard of the `due` index and the queue's backlog, start the cycle (one
 * conditional write of the dispatcher state: the previous cycle's time, and refused when another invocation ran
 * this cycle, so two dispatchers never send the same mailboxes), decide which mailboxes are due (core/registry.ts
 * `planDispatch`: each mailbox's own phase from its anchor `dueAt`), send them to the poll queue, and count the
 * gauges. A healthy cycle writes that one item, nothing per mailbox; only due mailboxes that could not be sent
 * (over the cap, a failed send) are written, to carry them over to the next cycle.
 */
import type { DeclaredMailboxesFile, PollRequest } from '../../poller/contract/fleet.js';
import { DUE_INDEX } from '../../poller/contract/fleet.js';
import { ConfigurationError, describeError } from '../../poller/errors.js';
import type { Log } from '../../poller/ports.js';
import type { DynamoDbRegistry } from '../adapters/dynamodb-registry.js';
import { SQS_BATCH, type SqsPollQueue } from '../adapters/sqs-poll-queue.js';
import { DISPATCH_MIN_GAP_MS, definitionOf, planDispatch, type RegistryEntry, syncDeclared } from '../core/registry.js';

/**
 * SendMessageBatch calls in flight at once: 10,000 due mailboxes are 1,000 calls, a quarter of a minute one after
 * the other; side by side the cycle stays a few seconds, far from the dispatcher's 50 s timeout.
 */
export const SEND_CONCURRENCY = 8;

/** Carry-over writes in flight at once (each one conditional UpdateItem). */
export const CARRY_OVER_CONCURRENCY = 16;

export interface DispatchDeps {
  readonly registry: Pick<
    DynamoDbRegistry,
    'activeInShard' | 'startCycle' | 'carryOver' | 'list' | 'create' | 'updateDeclared' | 'remove'
  >;
  readonly queue: Pick<SqsPollQueue, 'sendAll' | 'backlog'>;
  readonly declared?: {
    readIfChanged(): Promise<{ file: DeclaredMailboxesFile; etag: string } | undefined>;
    markSynced(etag: string): void;
  };
  readonly log: Log;
  /** The cycle's time (the schedule tick's, see dispatcher.ts). */
  readonly now: () => Date;
}

export interface DispatchSummary {
  readonly active: number;
  readonly dispatched: number;
  /** Due but not sent: carried over (over the cap, failed send) or held back by the backlog guard. */
  readonly deferred: number;
  /** Of `deferred`: held back because the queue still held a full cycle (not written; due at their next boundary). */
  readonly heldBack: number;
  /** Table writes for carry-overs (the cycle's only per-mailbox writes). */
  readonly carriedOver: number;
  readonly overdue: number;
  readonly inBackoff: number;
  /** Poll requests waiting in the queue before this cycle, when SQS said. */
  readonly backlog?: number;
  /** Another invocation ran this cycle: this one sent nothing. */
  readonly duplicate?: true;
  /** Changes from the declared-mailboxes file, when it changed. */
  readonly declared?: { created: number; updated: number; removed: number; conflicts: number };
}

export async function dispatchCycle(deps: DispatchDeps, options: { maxPerCycle: number }): Promise<DispatchSummary> {
  const cycleAt = deps.now();
  const now = cycleAt.getTime();
  const declared = await syncDeclaredMailboxes(deps, cycleAt);
  // Every read first: a failure here leaves the cycle unstarted (the next one covers it).
  const [shards, backlog] = await Promise.all([
    Promise.all(Array.from({ length: DUE_INDEX.shards }, (_, shard) => deps.registry.activeInShard(shard))),
    deps.queue.backlog(),
  ]);
  const active = shards.flat();
  const seen = new Set(active.map((e) => e.id));
  for (const entry of declared?.created ?? []) if (!seen.has(entry.id)) active.push(entry);
  const extra = { ...(backlog !== undefined ? { backlog } : {}), ...(declared ? { declared: declared.counts } : {}) };
  const cycle = await deps.registry.startCycle(now, DISPATCH_MIN_GAP_MS);
  if (!cycle) {
    deps.log.info('Another dispatcher invocation ran this cycle; sending nothing', { cycleAt: cycleAt.toISOString() });
    // The gauges still hold: nothing is due with prev = now.
    const idle = planDispatch(active, { now, prev: now, maxPerCycle: options.maxPerCycle });
    return summary(active, 0, { ...idle, deferred: 0 }, 0, { ...extra, duplicate: true });
  }
  if (backlog === undefined) deps.log.warn('The poll queue did not report its backlog; sending without the guard', {});
  const plan = planDispatch(active, { now, prev: cycle.prev, maxPerCycle: options.maxPerCycle, backlog });
  if (plan.heldBack > 0) {
    deps.log.warn('The poll queue still holds a full cycle: mailboxes due on their schedule are held back', {
      backlog,
      heldBack: plan.heldBack,
    });
  }

  const requests: PollRequest[] = plan.dispatch.map((entry) => ({ mailboxId: entry.id, sentAt: now }));
  const batches = Array.from({ length: Math.ceil(requests.length / SQS_BATCH) }, (_, i) =>
    requests.slice(i * SQS_BATCH, (i + 1) * SQS_BATCH),
  );
  const failed = new Set<string>();
  await eachLimited(batches, SEND_CONCURRENCY, async (batch) => {
    for (const id of await deps.queue.sendAll(batch)) failed.add(id);
  });
  if (failed.size > 0) {
    deps.log.warn('Some poll requests could not be sent; those mailboxes are carried over', { failed: failed.size });
  }
  const carry = [...plan.carryOver, ...plan.dispatch.filter((e) => failed.has(e.id))];
  const carried = await carryOver(deps, carry, plan.carryOverTo);
  return summary(active, plan.dispatch.length - failed.size, plan, carried, extra, failed.size);
}

function summary(
  active: readonly RegistryEntry[],
  dispatched: number,
  plan: { deferred: number; heldBack: number; overdue: number; inBackoff: number },
  carriedOver: number,
  extra: Partial<DispatchSummary>,
  failed = 0,
): DispatchSummary {
  return {
    active: active.length,
    dispatched,
    deferred: plan.deferred + failed,
    heldBack: plan.heldBack,
    carriedOver,
    overdue: plan.overdue + failed,
    inBackoff: plan.inBackoff,
    ...extra,
  };
}

/** Moves the `dueAt` of due mailboxes that were not sent to the next cycle; returns the writes that took. */
async function carryOver(deps: DispatchDeps, entries: readonly RegistryEntry[], to: number): Promise<number> {
  let carried = 0;
  let errors = 0;
  await eachLimited(entries, CARRY_OVER_CONCURRENCY, async (entry) => {
    try {
      if (await deps.registry.carryOver(entry.id, entry.dueAt!, to)) carried++;
    } catch {
      errors++;
    }
  });
  if (errors > 0) {
    deps.log.warn('Carrying some due mailboxes over failed; they are due again at their next boundary', { errors });
  }
  return carried;
}

/**
 * Upserts the declared mailboxes when the file changed; a failure is logged and retried next cycle. New ones are
 * anchored at the cycle's time and returned, so this cycle sends them even before the index shows them (it is
 * eventually consistent; missed now, they would wait for their next boundary).
 */
async function syncDeclaredMailboxes(
  deps: DispatchDeps,
  now: Date,
): Promise<{ counts: NonNullable<DispatchSummary['declared']>; created: RegistryEntry[] } | undefined> {
  if (!deps.declared) return undefined;
  try {
    const changed = await deps.declared.readIfChanged();
    if (!changed) return undefined;
    const sync = syncDeclared(changed.file.mailboxes.map(definitionOf), await deps.registry.list());
    const created: RegistryEntry[] = [];
    for (const d of sync.create) {
      try {
        created.push(await deps.registry.create(d, 'cdk', now));
      } catch (err) {
        // Registered meanwhile with the CLI under the same id: that item stays as it is.
        if (!(err instanceof ConfigurationError)) throw err;
      }
    }
    for (const d of sync.update) await deps.registry.updateDeclared(d);
    for (const id of sync.remove) await deps.registry.remove(id, 'cdk');
    if (sync.conflicts.length > 0) {
      deps.log.warn('Mailboxes declared in cdk.json are registered with the CLI under the same id; left as they are', {
        mailboxIds: sync.conflicts.slice(0, 20),
      });
    }
    deps.declared.markSynced(changed.etag);
    const counts = {
      created: created.length,
      updated: sync.update.length,
      removed: sync.remove.length,
      conflicts: sync.conflicts.length,
    };
    return { counts, created };
  } catch (err) {
    const { code, message } = describeError(err);
    deps.log.error('Syncing the declared mailboxes failed; retrying next cycle', { errorCode: code, error: message });
    return undefined;
  }
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}
