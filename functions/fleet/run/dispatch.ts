/**
 * One dispatch cycle: bring the registry in line with the mailboxes declared in cdk.json (when that file changed),
 * read the active registry from every shard of the `due` index, claim each due mailbox (a conditional write, so two
 * dispatchers never send the same one), send the claimed ones to the poll queue, and count the gauges.
 */
import type { DeclaredMailboxesFile, PollRequest } from '../../poller/contract/fleet.js';
import { DUE_INDEX } from '../../poller/contract/fleet.js';
import { ConfigurationError, describeError } from '../../poller/errors.js';
import type { Log } from '../../poller/ports.js';
import type { DynamoDbRegistry } from '../adapters/dynamodb-registry.js';
import type { SqsPollQueue } from '../adapters/sqs-poll-queue.js';
import { definitionOf, nextDueAt, planDispatch, type RegistryEntry, syncDeclared } from '../core/registry.js';

/** Claims in flight at once (each one conditional UpdateItem). */
export const CLAIM_CONCURRENCY = 16;

export interface DispatchDeps {
  readonly registry: Pick<
    DynamoDbRegistry,
    'activeInShard' | 'claim' | 'unclaim' | 'list' | 'create' | 'updateDeclared' | 'remove'
  >;
  readonly queue: Pick<SqsPollQueue, 'sendAll'>;
  readonly declared?: {
    readIfChanged(): Promise<{ file: DeclaredMailboxesFile; etag: string } | undefined>;
    markSynced(etag: string): void;
  };
  readonly log: Log;
  readonly now: () => Date;
}

export interface DispatchSummary {
  readonly active: number;
  readonly dispatched: number;
  /** Due but left for the next cycle (over MAX_DISPATCH_PER_CYCLE, or claimed by another dispatcher). */
  readonly deferred: number;
  readonly overdue: number;
  readonly inBackoff: number;
  /** Changes from the declared-mailboxes file, when it changed. */
  readonly declared?: { created: number; updated: number; removed: number; conflicts: number };
}

export async function dispatchCycle(deps: DispatchDeps, options: { maxPerCycle: number }): Promise<DispatchSummary> {
  const declared = await syncDeclaredMailboxes(deps);
  const now = deps.now().getTime();
  const shards = await Promise.all(
    Array.from({ length: DUE_INDEX.shards }, (_, shard) => deps.registry.activeInShard(shard)),
  );
  const active = shards.flat();
  const plan = planDispatch(active, now, options.maxPerCycle);

  const claimed: { entry: RegistryEntry; next: number }[] = [];
  await eachLimited(plan.dispatch, CLAIM_CONCURRENCY, async (entry) => {
    const next = nextDueAt(entry.dueAt!, entry.intervalMs, now);
    if (await deps.registry.claim(entry.id, entry.dueAt!, next)) claimed.push({ entry, next });
  });
  const requests: PollRequest[] = claimed.map(({ entry }) => ({ mailboxId: entry.id, sentAt: now }));
  const failed = new Set(await deps.queue.sendAll(requests));
  if (failed.size > 0) {
    deps.log.warn('Some poll requests could not be sent; those mailboxes stay due', { failed: failed.size });
    await eachLimited(
      claimed.filter((c) => failed.has(c.entry.id)),
      CLAIM_CONCURRENCY,
      async ({ entry, next }) => void (await deps.registry.unclaim(entry.id, next, entry.dueAt!).catch(() => false)),
    );
  }
  return {
    active: active.length,
    dispatched: claimed.length - failed.size,
    deferred: plan.deferred + (plan.dispatch.length - claimed.length) + failed.size,
    overdue: plan.overdue,
    inBackoff: plan.inBackoff,
    ...(declared ? { declared } : {}),
  };
}

/** Upserts the declared mailboxes when the file changed; a failure is logged and retried next cycle. */
async function syncDeclaredMailboxes(deps: DispatchDeps): Promise<DispatchSummary['declared']> {
  if (!deps.declared) return undefined;
  try {
    const changed = await deps.declared.readIfChanged();
    if (!changed) return undefined;
    const sync = syncDeclared(changed.file.mailboxes.map(definitionOf), await deps.registry.list());
    const now = deps.now();
    let created = 0;
    for (const d of sync.create) {
      try {
        await deps.registry.create(d, 'cdk', now);
        created++;
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
    return { created, updated: sync.update.length, removed: sync.remove.length, conflicts: sync.conflicts.length };
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
