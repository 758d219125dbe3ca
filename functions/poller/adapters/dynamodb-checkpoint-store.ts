import {
  type AttributeValue,
  ConditionalCheckFailedException,
  DeleteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
import { checkpointKey, leaseKey } from '../contract/keys.js';
import type { Checkpoint } from '../core/types.js';
import { CheckpointConflictError, CheckpointStoreError } from '../errors.js';
import type { CallOptions, CheckpointStore, LeaseStore } from '../ports.js';

/** Checkpoints in one DynamoDB table (partition key `pk`), written conditionally on their version. */
export class DynamoDbCheckpointStore implements CheckpointStore, LeaseStore {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
  ) {}

  async get(mailboxId: string, folder: string, options: CallOptions = {}): Promise<Checkpoint | undefined> {
    const response = await this.call('read', () =>
      this.client.send(
        new GetItemCommand({
          TableName: this.tableName,
          Key: { pk: { S: checkpointKey(mailboxId, folder) } },
          ConsistentRead: true,
        }),
        sendOptions(options),
      ),
    );
    if (!response.Item) return undefined;
    return parseCheckpointItem(response.Item, { mailboxId, folder, table: this.tableName });
  }

  async put(next: Checkpoint, expectedVersion: number, options: CallOptions = {}): Promise<void> {
    const item: Record<string, AttributeValue> = {
      pk: { S: checkpointKey(next.mailboxId, next.folder) },
      mailboxId: { S: next.mailboxId },
      folder: { S: next.folder },
      uidValidity: { S: next.uidValidity },
      lastUid: { N: String(next.lastUid) },
      version: { N: String(expectedVersion + 1) },
      updatedAt: { S: next.updatedAt },
      recentMessageIds: { L: (next.recentMessageIds ?? []).map((s) => ({ S: s })) },
    };
    if (next.lastInternalDate) item.lastInternalDate = { S: next.lastInternalDate };
    if (next.rescanSince) item.rescanSince = { S: next.rescanSince };
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: item,
          ...(expectedVersion === 0
            ? { ConditionExpression: 'attribute_not_exists(pk)' }
            : {
                ConditionExpression: 'version = :v',
                ExpressionAttributeValues: { ':v': { N: String(expectedVersion) } },
              }),
        }),
        sendOptions(options),
      );
    } catch (err) {
      if (
        err instanceof ConditionalCheckFailedException ||
        (err as Error)?.name === 'ConditionalCheckFailedException'
      ) {
        throw new CheckpointConflictError(
          `The checkpoint of mailbox "${next.mailboxId}" folder "${next.folder}" was changed by another run (expected version ${expectedVersion}).`,
          {
            cause: err,
            hint: 'nothing to do: another poll is running or ran meanwhile; the next poll continues from its checkpoint.',
          },
        );
      }
      throw mapDynamoError(err, this.tableName, 'write');
    }
  }

  async acquire(
    mailboxId: string,
    owner: string,
    now: Date,
    expiresAt: Date,
    options: CallOptions = {},
  ): Promise<boolean> {
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: {
            pk: { S: leaseKey(mailboxId) },
            owner: { S: owner },
            expiresAt: { N: String(expiresAt.getTime()) },
            acquiredAt: { S: now.toISOString() },
          },
          ConditionExpression: 'attribute_not_exists(pk) OR expiresAt < :now OR #owner = :owner',
          ExpressionAttributeNames: { '#owner': 'owner' },
          ExpressionAttributeValues: { ':now': { N: String(now.getTime()) }, ':owner': { S: owner } },
        }),
        sendOptions(options),
      );
      return true;
    } catch (err) {
      if ((err as Error)?.name === 'ConditionalCheckFailedException') return false;
      throw mapDynamoError(err, this.tableName, 'lease');
    }
  }

  async release(mailboxId: string, owner: string, options: CallOptions = {}): Promise<void> {
    try {
      await this.client.send(
        new DeleteItemCommand({
          TableName: this.tableName,
          Key: { pk: { S: leaseKey(mailboxId) } },
          ConditionExpression: '#owner = :owner',
          ExpressionAttributeNames: { '#owner': 'owner' },
          ExpressionAttributeValues: { ':owner': { S: owner } },
        }),
        sendOptions(options),
      );
    } catch (err) {
      if ((err as Error)?.name === 'ConditionalCheckFailedException') return;
      throw mapDynamoError(err, this.tableName, 'lease release');
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

/** Largest UID and UIDVALIDITY: both are 32-bit unsigned (RFC 3501). */
const MAX_UINT32 = 4_294_967_295;

/**
 * The stored checkpoint, validated: a damaged item (a missing or non-numeric UIDVALIDITY, a UID out of range,
 * wrong attribute types, someone's hand edit) is a clear error naming the key and the field, never read as
 * "no UIDVALIDITY", which the plan would take for a mailbox reset and re-publish from.
 */
export function parseCheckpointItem(
  item: Record<string, AttributeValue>,
  where: { mailboxId: string; folder: string; table: string },
): Checkpoint {
  const key = checkpointKey(where.mailboxId, where.folder);
  const damaged = (field: string, rule: string): CheckpointStoreError =>
    new CheckpointStoreError(`The checkpoint item "${key}" in table "${where.table}" is damaged: ${field} ${rule}.`, {
      retryable: false,
      hint: 'restore the item from a backup (point-in-time recovery of the table), or delete it: the next poll then starts over as START_AT says. Never edit checkpoint items by hand.',
    });
  const string = (field: string, required: boolean): string | undefined => {
    const value = item[field];
    if (value === undefined) {
      if (required) throw damaged(field, 'is missing');
      return undefined;
    }
    if (typeof value.S !== 'string') throw damaged(field, 'must be a string (S)');
    return value.S;
  };
  const integer = (field: string, min: number, max: number): number => {
    const value = item[field];
    if (value === undefined) throw damaged(field, 'is missing');
    if (typeof value.N !== 'string') throw damaged(field, 'must be a number (N)');
    const n = Number(value.N);
    if (!/^\d+$/.test(value.N) || !Number.isSafeInteger(n) || n < min || n > max)
      throw damaged(field, `must be an integer from ${min} to ${max}`);
    return n;
  };
  const date = (field: string, required: boolean): string | undefined => {
    const value = string(field, required);
    if (value !== undefined && (value === '' || Number.isNaN(Date.parse(value))))
      throw damaged(field, 'must be an ISO 8601 time');
    return value;
  };

  for (const [field, expected] of [
    ['mailboxId', where.mailboxId],
    ['folder', where.folder],
  ] as const) {
    const value = string(field, false);
    if (value !== undefined && value !== expected) throw damaged(field, 'does not match the key');
  }
  const uidValidity = string('uidValidity', true)!;
  if (!/^\d{1,10}$/.test(uidValidity) || Number(uidValidity) > MAX_UINT32)
    throw damaged('uidValidity', `must be a decimal number from 0 to ${MAX_UINT32}`);
  const lastUid = integer('lastUid', 0, MAX_UINT32);
  const version = integer('version', 1, Number.MAX_SAFE_INTEGER);
  const updatedAt = date('updatedAt', true)!;
  const lastInternalDate = date('lastInternalDate', false);
  const rescanSince = date('rescanSince', false);
  let recentMessageIds: string[] = [];
  const recent = item.recentMessageIds;
  if (recent !== undefined) {
    if (!Array.isArray(recent.L) || !recent.L.every((v) => typeof v.S === 'string'))
      throw damaged('recentMessageIds', 'must be a list of strings (L of S)');
    recentMessageIds = recent.L.map((v) => v.S!).filter(Boolean);
  }
  return {
    mailboxId: where.mailboxId,
    folder: where.folder,
    uidValidity,
    lastUid,
    version,
    updatedAt,
    ...(lastInternalDate ? { lastInternalDate } : {}),
    recentMessageIds,
    ...(rescanSince ? { rescanSince } : {}),
  };
}

/** The SDK's per-request options: the run's signal cancels the request. */
export function sendOptions(options: CallOptions): { abortSignal?: AbortSignal } {
  return options.signal ? { abortSignal: options.signal } : {};
}

export function mapDynamoError(err: unknown, table: string, step: string): CheckpointStoreError {
  const name = (err as { name?: string })?.name ?? 'Error';
  if (name === 'ResourceNotFoundException') {
    return new CheckpointStoreError(`The checkpoint table "${table}" does not exist (${step}).`, {
      cause: err,
      retryable: false,
      hint: 'deploy the stack (it creates the table) or set CHECKPOINT_TABLE to an existing table with partition key "pk" (string).',
    });
  }
  if (name === 'AccessDeniedException') {
    return new CheckpointStoreError(`Access to the checkpoint table "${table}" was denied (${step}).`, {
      cause: err,
      retryable: false,
      hint: 'grant the function dynamodb:GetItem, PutItem and DeleteItem on the table.',
    });
  }
  const throttled =
    name === 'ProvisionedThroughputExceededException' ||
    name === 'ThrottlingException' ||
    name === 'RequestLimitExceeded';
  return new CheckpointStoreError(
    `The checkpoint table "${table}" failed during ${step} (${name})${throttled ? ': throttled beyond retries' : ''}.`,
    {
      cause: err,
      retryable: true,
    },
  );
}
