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
    const item = response.Item;
    if (!item) return undefined;
    return {
      mailboxId: item.mailboxId?.S ?? mailboxId,
      folder: item.folder?.S ?? folder,
      uidValidity: item.uidValidity?.S ?? '',
      lastUid: Number(item.lastUid?.N ?? '0'),
      version: Number(item.version?.N ?? '0'),
      updatedAt: item.updatedAt?.S ?? new Date(0).toISOString(),
      ...(item.lastInternalDate?.S ? { lastInternalDate: item.lastInternalDate.S } : {}),
      recentMessageIds: item.recentMessageIds?.L?.map((v) => v.S ?? '').filter(Boolean) ?? [],
      ...(item.rescanSince?.S ? { rescanSince: item.rescanSince.S } : {}),
    };
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

/** The SDK's per-request options: the run's signal cancels the request. */
function sendOptions(options: CallOptions): { abortSignal?: AbortSignal } {
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
