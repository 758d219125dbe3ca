import {
  type AttributeValue,
  type DynamoDBClient,
  GetItemCommand,
  ScanCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { leaseKey, statusKey } from '../contract/keys.js';
import type { LeaseInfo, PollStatus } from '../core/health.js';
import { CheckpointStoreError } from '../errors.js';
import type { CallOptions, PollFailureRecord, PollStatusStore, PollSuccessRecord } from '../ports.js';
import { sendOptions } from './dynamodb-checkpoint-store.js';

/** Longest error message kept in the status item. */
export const MAX_STORED_ERROR_MESSAGE = 1_000;

/**
 * The status item `status#<mailboxId>` in the checkpoint table, written with UpdateItem so a success keeps the
 * last failure's fields and the other way round. Reads the lease item (`lease#<mailboxId>`) for `status`.
 */
export class DynamoDbPollStatusStore implements PollStatusStore {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
  ) {}

  async recordSuccess(mailboxId: string, record: PollSuccessRecord, options: CallOptions = {}): Promise<void> {
    const values: Record<string, AttributeValue> = {
      ':id': { S: mailboxId },
      ':at': { S: record.at.toISOString() },
      ':outcome': { S: record.outcome },
      ':published': { N: String(record.published) },
      ':duration': { N: String(Math.round(record.durationMs)) },
      ':zero': { N: '0' },
    };
    const set = [
      'mailboxId = :id',
      'lastSuccessAt = :at',
      'lastOutcome = :outcome',
      'lastPublished = :published',
      'lastDurationMs = :duration',
      'consecutiveFailures = :zero',
      'updatedAt = :at',
    ];
    const remove: string[] = [];
    if (record.folder !== null) {
      set.push('folder = :folder');
      values[':folder'] = { S: record.folder };
    }
    if (record.waiting !== null) {
      set.push('lastWaiting = :waiting');
      values[':waiting'] = { N: String(record.waiting) };
    } else {
      remove.push('lastWaiting');
    }
    this.common(record, set, values);
    await this.update(
      mailboxId,
      `SET ${set.join(', ')}${remove.length ? ` REMOVE ${remove.join(', ')}` : ''}`,
      values,
      options,
    );
  }

  async recordFailure(mailboxId: string, record: PollFailureRecord, options: CallOptions = {}): Promise<void> {
    const values: Record<string, AttributeValue> = {
      ':id': { S: mailboxId },
      ':at': { S: record.at.toISOString() },
      ':code': { S: record.errorCode },
      ':message': { S: record.message.slice(0, MAX_STORED_ERROR_MESSAGE) },
      ':one': { N: '1' },
    };
    const set = [
      'mailboxId = :id',
      'lastFailureAt = :at',
      'lastErrorCode = :code',
      'lastErrorMessage = :message',
      'updatedAt = :at',
    ];
    this.common(record, set, values);
    await this.update(mailboxId, `SET ${set.join(', ')} ADD consecutiveFailures :one`, values, options);
  }

  async getStatus(mailboxId: string): Promise<PollStatus | undefined> {
    const item = await this.get(statusKey(mailboxId));
    if (!item) return undefined;
    const s = (name: string) => item[name]?.S;
    const n = (name: string) => (item[name]?.N === undefined ? undefined : Number(item[name].N));
    const fields: Record<string, string | number | undefined> = {
      lastSuccessAt: s('lastSuccessAt'),
      lastOutcome: s('lastOutcome'),
      lastPublished: n('lastPublished'),
      lastWaiting: n('lastWaiting'),
      lastDurationMs: n('lastDurationMs'),
      lastFailureAt: s('lastFailureAt'),
      lastErrorCode: s('lastErrorCode'),
      lastErrorMessage: s('lastErrorMessage'),
      folder: s('folder'),
      secretId: s('secretId'),
      staleAfterSeconds: n('staleAfterSeconds'),
      updatedAt: s('updatedAt'),
    };
    return {
      mailboxId,
      consecutiveFailures: n('consecutiveFailures') ?? 0,
      ...Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)),
    } as PollStatus;
  }

  async getLease(mailboxId: string): Promise<LeaseInfo | undefined> {
    const item = await this.get(leaseKey(mailboxId));
    if (!item?.owner?.S || item.expiresAt?.N === undefined) return undefined;
    return {
      owner: item.owner.S,
      expiresAt: new Date(Number(item.expiresAt.N)),
      ...(item.acquiredAt?.S ? { acquiredAt: item.acquiredAt.S } : {}),
    };
  }

  /**
   * Ids of the mailboxes with a status item (any runner, any deployment mode), sorted; at most `limit`.
   * A scan of the table: for the CLI, not for the poller.
   */
  async listMailboxIds(limit = 10_000): Promise<string[]> {
    const ids: string[] = [];
    let start: Record<string, AttributeValue> | undefined;
    do {
      const res = await this.call('status scan', () =>
        this.client.send(
          new ScanCommand({
            TableName: this.tableName,
            ProjectionExpression: 'pk',
            FilterExpression: 'begins_with(pk, :prefix)',
            ExpressionAttributeValues: { ':prefix': { S: statusKey('') } },
            ...(start ? { ExclusiveStartKey: start } : {}),
          }),
        ),
      );
      for (const item of res.Items ?? []) ids.push(item.pk!.S!.slice(statusKey('').length));
      start = res.LastEvaluatedKey;
    } while (start && ids.length < limit);
    return ids.sort().slice(0, limit);
  }

  /** Fields both records carry: where the poller reads its settings and when the mailbox counts as stale. */
  private common(
    record: { secretId?: string; staleAfterSeconds?: number },
    set: string[],
    values: Record<string, AttributeValue>,
  ): void {
    if (record.secretId) {
      set.push('secretId = :secret');
      values[':secret'] = { S: record.secretId };
    }
    if (record.staleAfterSeconds !== undefined) {
      set.push('staleAfterSeconds = :stale');
      values[':stale'] = { N: String(record.staleAfterSeconds) };
    }
  }

  private async update(
    mailboxId: string,
    expression: string,
    values: Record<string, AttributeValue>,
    options: CallOptions,
  ): Promise<void> {
    await this.call('status write', () =>
      this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { pk: { S: statusKey(mailboxId) } },
          UpdateExpression: expression,
          ExpressionAttributeValues: values,
        }),
        sendOptions(options),
      ),
    );
  }

  private async get(pk: string): Promise<Record<string, AttributeValue> | undefined> {
    const res = await this.call('status read', () =>
      this.client.send(new GetItemCommand({ TableName: this.tableName, Key: { pk: { S: pk } }, ConsistentRead: true })),
    );
    return res.Item;
  }

  private async call<T>(step: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw storeError(err, this.tableName, step);
    }
  }
}

function storeError(err: unknown, table: string, step: string): CheckpointStoreError {
  const name = (err as { name?: string })?.name ?? 'Error';
  const hints: Record<string, string> = {
    ResourceNotFoundException: `the table "${table}" does not exist: pass the stack's CheckpointTableName output.`,
    AccessDeniedException: 'grant dynamodb:GetItem and dynamodb:UpdateItem on the table.',
  };
  return new CheckpointStoreError(`The checkpoint table "${table}" failed during ${step} (${name}).`, {
    cause: err,
    retryable: !(name in hints),
    ...(hints[name] ? { hint: hints[name] } : {}),
  });
}
