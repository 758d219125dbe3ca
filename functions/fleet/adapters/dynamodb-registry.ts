/**
 * The fleet's registry in the checkpoint table: one item per mailbox (`mailbox#<id>`), beside the checkpoints,
 * leases and status items. Active items carry `shard` and `dueAt` (the schedule's anchor, see DUE_INDEX) and so
 * appear in the sparse `due` index; paused items do not. Also the dispatcher's one state item (`startCycle`). Every item read is validated: a damaged item is a clear error naming its key and field.
 */
import {
  type AttributeValue,
  DeleteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  ScanCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { mapDynamoError } from '../../poller/adapters/dynamodb-checkpoint-store.js';
import {
  DUE_INDEX,
  dispatcherStateKey,
  REGISTRY_KEY_PREFIX,
  type RegistrySource,
  registryKey,
} from '../../poller/contract/fleet.js';
import { isMailboxId } from '../../poller/contract/mailbox-id.js';
import { CheckpointStoreError, ConfigurationError } from '../../poller/errors.js';
import {
  MAX_REGISTRY_ERROR_MESSAGE,
  type MailboxDefinition,
  type RegistryEntry,
  scheduleIntervalMs,
  shardOf,
} from '../core/registry.js';

const isConditionFailed = (err: unknown) => (err as Error)?.name === 'ConditionalCheckFailedException';

export class DynamoDbRegistry {
  constructor(
    private readonly client: DynamoDBClient,
    readonly tableName: string,
  ) {}

  /**
   * The mailbox's entry, or undefined when it is not registered. `consistent: false` reads at half the price
   * (the worker's turn: an item changed less than a second ago may read as before, e.g. a pause just made).
   */
  async get(id: string, options: { consistent?: boolean } = {}): Promise<RegistryEntry | undefined> {
    const res = await this.call('registry read', () =>
      this.client.send(
        new GetItemCommand({
          TableName: this.tableName,
          Key: { pk: { S: registryKey(id) } },
          ConsistentRead: options.consistent ?? true,
        }),
      ),
    );
    return res.Item ? parseRegistryItem(res.Item, this.tableName) : undefined;
  }

  /** Every registry item (paused ones too): a Scan of the table, for `mailbox list` and the declared sync. */
  async list(): Promise<RegistryEntry[]> {
    const entries = await this.pages('registry scan', (start) =>
      this.client.send(
        new ScanCommand({
          TableName: this.tableName,
          FilterExpression: 'begins_with(pk, :prefix)',
          ExpressionAttributeValues: { ':prefix': { S: REGISTRY_KEY_PREFIX } },
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      ),
    );
    return entries.sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  /** Every active (not paused) entry of one shard of the `due` index, the longest due first. */
  async activeInShard(shard: number): Promise<RegistryEntry[]> {
    return this.pages('due index query', (start) =>
      this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: DUE_INDEX.name,
          KeyConditionExpression: '#shard = :shard',
          ExpressionAttributeNames: { '#shard': DUE_INDEX.partitionKey },
          ExpressionAttributeValues: { ':shard': { N: String(shard) } },
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      ),
    );
  }

  /** Every page of a Scan or Query, each item validated. */
  private async pages(
    step: string,
    page: (
      start: Record<string, AttributeValue> | undefined,
    ) => Promise<{ Items?: Record<string, AttributeValue>[]; LastEvaluatedKey?: Record<string, AttributeValue> }>,
  ): Promise<RegistryEntry[]> {
    const out: RegistryEntry[] = [];
    let start: Record<string, AttributeValue> | undefined;
    do {
      const res = await this.call(step, () => page(start));
      for (const item of res.Items ?? []) out.push(parseRegistryItem(item, this.tableName));
      start = res.LastEvaluatedKey;
    } while (start);
    return out;
  }

  /**
   * Registers a mailbox (its schedule anchored at `now`: due then); returns its entry. Refuses an id that is already registered (`ConfigurationError`), so the
   * CLI never overwrites a mailbox's state.
   */
  async create(definition: MailboxDefinition, source: RegistrySource, now: Date): Promise<RegistryEntry> {
    const item: Record<string, AttributeValue> = {
      ...definitionAttributes(definition),
      pk: { S: registryKey(definition.id) },
      id: { S: definition.id },
      source: { S: source },
      paused: { BOOL: false },
      shard: { N: String(shardOf(definition.id)) },
      dueAt: { N: String(now.getTime()) },
      failures: { N: '0' },
      registeredAt: { S: now.toISOString() },
    };
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: item,
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return parseRegistryItem(item, this.tableName);
    } catch (err) {
      if (isConditionFailed(err)) {
        throw new ConfigurationError(`The mailbox "${definition.id}" is already registered in "${this.tableName}".`, {
          cause: err,
          hint: 'pick another id, or `imap-event-source mailbox remove` it first (its checkpoint stays).',
        });
      }
      throw mapDynamoError(err, this.tableName, 'registry write');
    }
  }

  /** Updates the definition of a mailbox declared in cdk.json (only while it still comes from cdk.json). */
  async updateDeclared(definition: MailboxDefinition): Promise<boolean> {
    const attrs = definitionAttributes(definition);
    const optional = ['username', 'folder'].filter((f) => !(f in attrs));
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { pk: { S: registryKey(definition.id) } },
          UpdateExpression: `SET ${Object.keys(attrs)
            .map((k) => `#${k} = :${k}`)
            .join(', ')}${optional.length ? ` REMOVE ${optional.map((k) => `#${k}`).join(', ')}` : ''}`,
          ConditionExpression: '#source = :cdk',
          ExpressionAttributeNames: Object.fromEntries(
            [...Object.keys(attrs), ...optional, 'source'].map((k) => [`#${k}`, k]),
          ),
          ExpressionAttributeValues: {
            ...Object.fromEntries(Object.entries(attrs).map(([k, v]) => [`:${k}`, v])),
            ':cdk': { S: 'cdk' },
          },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailed(err)) return false;
      throw mapDynamoError(err, this.tableName, 'registry write');
    }
  }

  /** Removes a mailbox; with `onlySource`, only an item from that source. False when there was none (to remove). */
  async remove(id: string, onlySource?: RegistrySource): Promise<boolean> {
    try {
      await this.client.send(
        new DeleteItemCommand({
          TableName: this.tableName,
          Key: { pk: { S: registryKey(id) } },
          ConditionExpression: onlySource ? '#source = :source' : 'attribute_exists(pk)',
          ...(onlySource
            ? {
                ExpressionAttributeNames: { '#source': 'source' },
                ExpressionAttributeValues: { ':source': { S: onlySource } },
              }
            : {}),
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailed(err)) return false;
      throw mapDynamoError(err, this.tableName, 'registry delete');
    }
  }

  /**
   * Carries a due mailbox that was not sent (over the per-cycle cap, or its message was not taken) over to the next
   * cycle: `dueAt` becomes `to` (after this cycle's time, so the next cycle sends it), if nobody changed it since the
   * dispatcher read it (a pause, resume or backoff wins). The dispatcher's only per-mailbox write. False when changed.
   */
  async carryOver(id: string, seenDueAt: number, to: number): Promise<boolean> {
    return this.conditional(id, 'SET #dueAt = :to', '#dueAt = :seen', { ':to': num(to), ':seen': num(seenDueAt) });
  }

  /**
   * Starts a dispatch cycle at `now`: one conditional write of the dispatcher state item (`lastCycleAt = now`),
   * refused when a cycle ran less than `minGapMs` before (a second invocation for the same schedule tick). Returns
   * the previous cycle's time (0 before the first cycle, or when the stored value is unusable: not a number, or
   * in the future), or undefined when refused: then this invocation must send nothing.
   */
  async startCycle(now: number, minGapMs: number): Promise<{ prev: number } | undefined> {
    try {
      const res = await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { pk: { S: dispatcherStateKey() } },
          UpdateExpression: 'SET #at = :now',
          // A damaged value (wrong type, far in the future) must not stop the fleet: it is overwritten.
          ConditionExpression:
            'attribute_not_exists(#at) OR NOT attribute_type(#at, :n) OR #at <= :latest OR #at > :future',
          ExpressionAttributeNames: { '#at': 'lastCycleAt' },
          ExpressionAttributeValues: {
            ':now': num(now),
            ':n': { S: 'N' },
            ':latest': num(now - minGapMs),
            ':future': num(now + STATE_FUTURE_TOLERANCE_MS),
          },
          ReturnValues: 'UPDATED_OLD',
        }),
      );
      const prev = cycleTime(res.Attributes?.lastCycleAt);
      return { prev: prev !== undefined && prev <= now ? prev : 0 };
    } catch (err) {
      if (isConditionFailed(err)) return undefined;
      throw mapDynamoError(err, this.tableName, 'dispatcher state write');
    }
  }

  /** The last dispatch cycle's time (for `mailbox list`), undefined before the first cycle. */
  async lastCycleAt(): Promise<number | undefined> {
    const res = await this.call('dispatcher state read', () =>
      this.client.send(new GetItemCommand({ TableName: this.tableName, Key: { pk: { S: dispatcherStateKey() } } })),
    );
    return cycleTime(res.Item?.lastCycleAt);
  }

  /** Pauses: leaves the `due` index. False when not registered. */
  async pause(id: string): Promise<boolean> {
    return this.conditional(id, 'SET #paused = :true REMOVE #shard, #dueAt', 'attribute_exists(pk)', {
      ':true': { BOOL: true },
    });
  }

  /** Resumes (also ends a backoff): due at `now`, failure count reset. False when not registered. */
  async resume(id: string, now: Date): Promise<boolean> {
    return this.conditional(
      id,
      'SET #paused = :false, #shard = :shard, #dueAt = :now, #failures = :zero REMOVE #backoffUntil',
      'attribute_exists(pk)',
      { ':false': { BOOL: false }, ':shard': num(shardOf(id)), ':now': num(now.getTime()), ':zero': num(0) },
    );
  }

  /** A successful poll (the first, or the first after failures): failures, backoff and `failingSince` cleared. */
  async recordSuccess(id: string, at: Date): Promise<void> {
    await this.conditional(
      id,
      'SET #lastSuccessAt = :at, #failures = :zero REMOVE #backoffUntil, #failingSince, #lastErrorCode, #lastErrorMessage',
      'attribute_exists(pk)',
      { ':at': { S: at.toISOString() }, ':zero': num(0) },
    );
  }

  /** A transient failure after successes: marks since when the mailbox fails (once per streak; for "overdue"). */
  async markFailing(id: string, since: Date): Promise<void> {
    await this.conditional(id, 'SET #failingSince = if_not_exists(#failingSince, :since)', 'attribute_exists(pk)', {
      ':since': num(since.getTime()),
    });
  }

  /**
   * A persistent failure: the count, the reason, and the backoff. An active mailbox's anchor `dueAt` moves to
   * `backoffUntil` (due then, and on its phase from there; a later success keeps it); a paused one stays out of the
   * index.
   */
  async recordFailure(
    id: string,
    failure: { failures: number; backoffUntil: number; code: string; message: string; at: Date },
  ): Promise<void> {
    const values: Record<string, AttributeValue> = {
      ':now': num(failure.at.getTime()),
      ':n': num(failure.failures),
      ':until': num(failure.backoffUntil),
      ':code': { S: failure.code },
      ':message': { S: failure.message.slice(0, MAX_REGISTRY_ERROR_MESSAGE) },
      ':false': { BOOL: false },
    };
    // Two writes would race with a pause; one conditional write each way keeps the item consistent.
    const active = await this.conditional(
      id,
      'SET #failures = :n, #backoffUntil = :until, #dueAt = :until, #lastErrorCode = :code, #lastErrorMessage = :message, #failingSince = if_not_exists(#failingSince, :now)',
      '#paused = :false',
      values,
    );
    if (!active) {
      delete values[':false'];
      await this.conditional(
        id,
        'SET #failures = :n, #backoffUntil = :until, #lastErrorCode = :code, #lastErrorMessage = :message, #failingSince = if_not_exists(#failingSince, :now)',
        'attribute_exists(pk)',
        values,
      );
    }
  }

  private async conditional(
    id: string,
    update: string,
    condition: string,
    values: Record<string, AttributeValue>,
  ): Promise<boolean> {
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { pk: { S: registryKey(id) } },
          UpdateExpression: update,
          ConditionExpression: condition,
          // Every attribute by placeholder: some names (e.g. `source`) are DynamoDB reserved words.
          ExpressionAttributeNames: Object.fromEntries(
            [...`${update} ${condition}`.matchAll(/#(\w+)/g)].map((m) => [m[0], m[1]!]),
          ),
          ExpressionAttributeValues: values,
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailed(err)) return false;
      throw mapDynamoError(err, this.tableName, 'registry update');
    }
  }

  private async call<T>(step: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw mapDynamoError(err, this.tableName, step);
    }
  }
}

const num = (n: number): AttributeValue => ({ N: String(n) });

/** A stored `lastCycleAt` further ahead of the cycle's time than this is damaged (or the clock jumped): overwritten. */
export const STATE_FUTURE_TOLERANCE_MS = 3_600_000;

/** A stored epoch-ms time, or undefined when absent or not a non-negative safe integer. */
function cycleTime(value: AttributeValue | undefined): number | undefined {
  const n = value?.N !== undefined && /^\d+$/.test(value.N) ? Number(value.N) : Number.NaN;
  return Number.isSafeInteger(n) ? n : undefined;
}

function definitionAttributes(d: MailboxDefinition): Record<string, AttributeValue> {
  return {
    secretId: { S: d.secretId },
    ...(d.username !== undefined ? { username: { S: d.username } } : {}),
    ...(d.folder !== undefined ? { folder: { S: d.folder } } : {}),
    schedule: { S: d.schedule },
    intervalMs: num(d.intervalMs),
    startAt: { S: d.startAt },
  };
}

/**
 * A stored registry item, validated: a damaged item (a hand edit, a wrong type) is a clear error naming the key
 * and the field, never read as "not paused" or "no backoff".
 */
export function parseRegistryItem(item: Record<string, AttributeValue>, table: string): RegistryEntry {
  const key = item.pk?.S ?? '(no pk)';
  const damaged = (field: string, rule: string): CheckpointStoreError =>
    new CheckpointStoreError(`The registry item "${key}" in table "${table}" is damaged: ${field} ${rule}.`, {
      retryable: false,
      hint: 'fix or remove it with `imap-event-source mailbox remove --id ...` and add the mailbox again (its checkpoint stays); never edit registry items by hand.',
    });
  const string = (field: string, required: boolean): string | undefined => {
    const value = item[field];
    if (value === undefined) {
      if (required) throw damaged(field, 'is missing');
      return undefined;
    }
    if (typeof value.S !== 'string' || value.S === '') throw damaged(field, 'must be a non-empty string (S)');
    return value.S;
  };
  const integer = (field: string, required: boolean, min = 0): number | undefined => {
    const value = item[field];
    if (value === undefined) {
      if (required) throw damaged(field, 'is missing');
      return undefined;
    }
    if (typeof value.N !== 'string' || !/^\d+$/.test(value.N) || !Number.isSafeInteger(Number(value.N)))
      throw damaged(field, 'must be a non-negative integer (N)');
    const n = Number(value.N);
    if (n < min) throw damaged(field, `must be at least ${min}`);
    return n;
  };
  const date = (field: string, required: boolean): string | undefined => {
    const value = string(field, required);
    if (value !== undefined && Number.isNaN(Date.parse(value))) throw damaged(field, 'must be an ISO 8601 time');
    return value;
  };

  const id = string('id', true)!;
  if (!isMailboxId(id) || key !== registryKey(id)) throw damaged('id', 'must be a valid mailbox id matching the key');
  const secretId = string('secretId', true)!;
  const schedule = string('schedule', true)!;
  const intervalMs = integer('intervalMs', true, 60_000)!;
  if (scheduleIntervalMs(schedule) !== intervalMs) throw damaged('intervalMs', 'must be the interval of schedule');
  const source = string('source', true);
  if (source !== 'cdk' && source !== 'cli') throw damaged('source', 'must be "cdk" or "cli"');
  const pausedValue = item.paused;
  if (pausedValue !== undefined && typeof pausedValue.BOOL !== 'boolean')
    throw damaged('paused', 'must be a boolean (BOOL)');
  const paused = pausedValue?.BOOL ?? false;
  const shard = integer('shard', false);
  const dueAt = integer('dueAt', false);
  if (!paused && (shard === undefined || dueAt === undefined))
    throw damaged('shard/dueAt', 'must be set while not paused');
  if (shard !== undefined && shard >= DUE_INDEX.shards) throw damaged('shard', `must be below ${DUE_INDEX.shards}`);
  const username = string('username', false);
  const folder = string('folder', false);
  const backoffUntil = integer('backoffUntil', false);
  const lastErrorCode = string('lastErrorCode', false);
  const lastErrorMessage = string('lastErrorMessage', false);
  const lastSuccessAt = date('lastSuccessAt', false);
  const failingSince = integer('failingSince', false);
  return {
    id,
    secretId,
    ...(username !== undefined ? { username } : {}),
    ...(folder !== undefined ? { folder } : {}),
    schedule,
    intervalMs,
    startAt: string('startAt', true)!,
    paused,
    source,
    ...(!paused ? { shard: shard!, dueAt: dueAt! } : {}),
    failures: integer('failures', false) ?? 0,
    ...(backoffUntil !== undefined ? { backoffUntil } : {}),
    ...(lastErrorCode !== undefined ? { lastErrorCode } : {}),
    ...(lastErrorMessage !== undefined ? { lastErrorMessage } : {}),
    ...(lastSuccessAt !== undefined ? { lastSuccessAt } : {}),
    ...(failingSince !== undefined ? { failingSince } : {}),
    registeredAt: date('registeredAt', true)!,
  };
}
