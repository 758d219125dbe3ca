/**
 * Fleet mode: the names that cross the fleet construct (lib/), the dispatcher and worker Lambdas
 * (functions/fleet/) and the CLI (`imap-event-source mailbox ...`). Change them here only.
 *
 * Shape: one table (the same key schema as per-mailbox mode: partition key `pk`), holding checkpoints,
 * leases and status items exactly as in per-mailbox mode, plus one registry item per mailbox, host
 * connection slots and one dispatcher state item. A dispatcher on a one-minute schedule reads the active
 * registry from the `due` index, decides which mailboxes are due from each one's `dueAt` (its schedule's
 * anchor, see DUE_INDEX) and the time of the previous cycle, and sends one SQS message per due mailbox; a pool
 * of workers polls them. A healthy cycle writes one item for the whole fleet (the dispatcher state), none per
 * mailbox.
 */

/** The registry item of a mailbox. */
export function registryKey(mailboxId: string): string {
  return `mailbox#${mailboxId}`;
}

/** Prefix of every registry item's `pk` (for `mailbox list`). */
export const REGISTRY_KEY_PREFIX = 'mailbox#';

/**
 * The dispatcher's one state item: `lastCycleAt`, the time of the last dispatch cycle that ran. Each cycle moves
 * it with one conditional write, which is also what keeps two dispatchers from sending the same cycle twice.
 */
export function dispatcherStateKey(): string {
  return 'dispatcher#state';
}

/** One of `cap` connection slots for an IMAP host (a lease item, like the mailbox lease). */
export function hostSlotKey(host: string, slot: number): string {
  return `hostslot#${host.toLowerCase()}#${slot}`;
}

/**
 * The sparse global secondary index of the active registry: only registry items that are not paused carry
 * `shard` and `dueAt`. The dispatcher queries every shard each cycle. `dueAt` is the mailbox's schedule anchor
 * and not-before time, NOT its next due time: set at registration, on resume, to `backoffUntil` when a
 * persistent failure backs the mailbox off, and to the next cycle when a due mailbox could not be sent (over
 * the per-cycle cap, or a failed send); a healthy poll never changes it. The mailbox is due at `dueAt` and every
 * interval after it (functions/fleet/core/registry.ts `dueMoment`), so nothing is written per mailbox per cycle.
 */
export const DUE_INDEX = {
  name: 'due',
  partitionKey: 'shard',
  sortKey: 'dueAt',
  /** Shards spread the index's write load; the dispatcher queries all of them. */
  shards: 16,
  /**
   * DynamoDB attribute types of the index keys (the table declares them; an item whose `shard` or `dueAt` has
   * another type is rejected): `shard` a number 0..shards-1, `dueAt` epoch milliseconds.
   */
  partitionKeyType: 'N',
  sortKeyType: 'N',
  /**
   * The dispatcher reads the whole active registry through this index each cycle (due mailboxes, and the
   * overdue / in-backoff gauges need `lastSuccessAt`, `backoffUntil`, `intervalMs`), so it projects ALL
   * attributes (a registry item is far below 1 KB, so this costs no extra write units).
   */
  projection: 'ALL',
} as const;

/**
 * What each function does to AWS (for its IAM policy):
 * - dispatcher: dynamodb Query on the `due` index; Scan on the table; GetItem, PutItem, UpdateItem, DeleteItem on
 *   registry items and the dispatcher state item only; s3 GetObject on the declared-mailboxes file; sqs SendMessage
 *   and GetQueueAttributes (the backlog guard) on the queue.
 * - worker: the per-mailbox poller's table actions (GetItem, PutItem, UpdateItem, DeleteItem) on the table;
 *   secretsmanager GetSecretValue on secrets under SECRET_PREFIX; events PutEvents on the bus; s3 PutObject on
 *   RAW_BUCKET when set; sqs SendMessage (re-queue a mailbox with more work or deferred by the host cap), plus
 *   ReceiveMessage / DeleteMessage / GetQueueAttributes / ChangeMessageVisibility for the SQS event source.
 *   The worker reports partial batch failures: the event source needs `reportBatchItemFailures`.
 */

/** Environment of the dispatcher function. */
export const DISPATCHER_ENV = {
  table: 'CHECKPOINT_TABLE',
  queueUrl: 'POLL_QUEUE_URL',
  /** S3 location of the mailboxes declared in cdk.json (`DeclaredMailboxesFile`), upserted into the registry. */
  declaredBucket: 'DECLARED_MAILBOXES_BUCKET',
  declaredKey: 'DECLARED_MAILBOXES_KEY',
  /** Upper bound of mailboxes sent per dispatch cycle (the rest are carried over to the next cycle). */
  maxPerCycle: 'MAX_DISPATCH_PER_CYCLE',
} as const;

/** Environment of the worker (pool) function. */
export const WORKER_ENV = {
  table: 'CHECKPOINT_TABLE',
  queueUrl: 'POLL_QUEUE_URL',
  eventBusName: 'EVENT_BUS_NAME',
  eventSource: 'EVENT_SOURCE',
  rawBucket: 'RAW_BUCKET',
  /** Only secrets whose name starts with this prefix may be registered and read (the IAM policy's resource). */
  secretPrefix: 'SECRET_PREFIX',
  /** Concurrent IMAP connections per host across the pool. */
  hostConnectionCap: 'HOST_CONNECTION_CAP',
  /**
   * The pool's size (the SQS event source's maximum concurrency): with WORKER_BATCH_SIZE it bounds the connections
   * the pool can open at all, so a host cap at or above that bound needs no connection slots (no table writes).
   */
  poolConcurrency: 'POOL_CONCURRENCY',
  /** Messages one mailbox may publish per turn before it goes back into the queue. */
  maxMessagesPerTurn: 'MAX_MESSAGES_PER_TURN',
} as const;

export const FLEET_DEFAULTS = {
  secretPrefix: 'imap-event-source/',
  /** Below Gmail's 15 per account and Exchange Online's ~20 per mailbox. */
  hostConnectionCap: 10,
  maxMessagesPerTurn: 500,
  maxPerCycle: 2_000,
  /** Worker pool size (reserved concurrency of the worker function; SQS event source maximum concurrency). */
  poolConcurrency: 20,
} as const;

/**
 * SQS messages (mailboxes) per worker invocation: SQS's largest batch without a batching window. One invocation
 * then pays Lambda's per-request price and its start-up once for up to ten mailboxes (docs/fleet.md, "Cost"). The
 * records of a batch run side by side, so one invocation holds at most this many IMAP connections.
 */
export const WORKER_BATCH_SIZE = 10;

/**
 * Whether a host connection cap can ever be reached: the pool opens at most `poolConcurrency` x WORKER_BATCH_SIZE
 * connections at once (one per turn, the lease keeps a mailbox to one turn). Below that the workers take a slot per
 * turn; at or above it they take none (two table writes per poll saved).
 */
export function hostCapCanBind(hostConnectionCap: number, poolConcurrency: number): boolean {
  return hostConnectionCap < poolConcurrency * WORKER_BATCH_SIZE;
}

/** The body of one SQS message: one mailbox to poll now. */
export interface PollRequest {
  readonly mailboxId: string;
  /** Epoch ms when the dispatcher (or the worker re-queueing a mailbox with more work) sent it. */
  readonly sentAt: number;
}

/** Where a registry item comes from: cdk.json (kept in sync at each deploy) or the CLI. */
export type RegistrySource = 'cdk' | 'cli';

/** The file (an S3 asset) listing the mailboxes declared in cdk.json in fleet mode. */
export interface DeclaredMailboxesFile {
  readonly version: 1;
  readonly mailboxes: readonly DeclaredMailbox[];
}

/** A mailbox as declared in cdk.json or added with the CLI. */
export interface DeclaredMailbox {
  readonly id: string;
  /** Secret name or ARN; must be under the fleet's secret prefix. */
  readonly secretId: string;
  /** Overrides the secret's `username` (a shared secret serving a whole tenant). */
  readonly username?: string;
  /** Overrides the secret's `folder`. */
  readonly folder?: string;
  /** `rate(...)` or an evenly spaced `cron(...)` (see lib/schedule-interval.ts); default `rate(1 minute)`. */
  readonly schedule?: string;
  /** As START_AT in per-mailbox mode; default `now`. */
  readonly startAt?: string;
}

/** Aggregate metrics (namespace METRIC_NAMESPACE, dimension `service` only: a fixed number, not per mailbox). */
export const FLEET_METRICS = {
  /**
   * Active mailboxes failing (transiently) or never polled successfully for more than two intervals, plus the due
   * ones the last cycle did not send (over the per-cycle cap, or held back while the queue held a full cycle).
   */
  overdue: 'MailboxesOverdue',
  /** In exponential backoff after persistent failures. */
  inBackoff: 'MailboxesInBackoff',
  dispatched: 'MailboxesDispatched',
  /** Polls that could not get a host connection slot (sent back with a delay). */
  hostCapDeferred: 'HostCapDeferred',
} as const;

/** Bounds of the fleet's options (cdk.json `fleet`, the construct's props, the workers' environment). */
export const FLEET_LIMITS = {
  /** The SQS event source's maximum concurrency is 2 to 1,000. */
  poolConcurrency: { min: 2, max: 1_000 },
  hostConnectionCap: { min: 1, max: 1_000 },
  maxMessagesPerTurn: { min: 1, max: 100_000 },
  maxPerCycle: { min: 1, max: 100_000 },
} as const;

/** The rule for a secret prefix, in words (never with the value). */
export const SECRET_PREFIX_RULE =
  'must be 1-256 of A-Z a-z 0-9 / _ + = . @ - (the start of the secret names the pool may read; end it with "/")';

/** A non-empty Secrets Manager name prefix: an empty one would let the pool read every secret of the account. */
export function isSecretPrefix(value: unknown): value is string {
  return typeof value === 'string' && /^[A-Za-z0-9/_+=.@-]{1,256}$/.test(value);
}

const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:(.+)$/;

/** The secret's name from its name or ARN (a complete ARN's 6-character suffix removed). */
export function secretNameOf(secretId: string): string {
  const arn = SECRET_ARN.exec(secretId);
  return arn ? arn[1]!.replace(/-[A-Za-z0-9]{6}$/, '') : secretId;
}

/** True when the pool may read the secret (a name or an ARN): its name starts with the fleet's secret prefix. */
export function isUnderSecretPrefix(secretId: string, prefix: string): boolean {
  return secretNameOf(secretId).startsWith(prefix);
}
