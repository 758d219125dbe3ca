/**
 * Connection slots per IMAP host across the worker pool: `cap` lease-like items per host (`hostslot#<host>#<n>`),
 * each held by one poll until it releases it or it expires (a crashed worker blocks a slot only until then).
 */
import { DeleteItemCommand, type DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { mapDynamoError } from '../../poller/adapters/dynamodb-checkpoint-store.js';
import { hostSlotKey } from '../../poller/contract/fleet.js';
import { slotOrder } from '../core/registry.js';

export interface HostSlot {
  readonly host: string;
  readonly slot: number;
  readonly owner: string;
}

export class DynamoDbHostSlots {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
    private readonly random: () => number = Math.random,
  ) {}

  /** A free (or expired) slot of `host`, now held by `owner` until `expiresAt`; undefined when all `cap` are taken. */
  async acquire(host: string, cap: number, owner: string, now: Date, expiresAt: Date): Promise<HostSlot | undefined> {
    for (const slot of slotOrder(cap, this.random())) {
      try {
        await this.client.send(
          new PutItemCommand({
            TableName: this.tableName,
            Item: {
              pk: { S: hostSlotKey(host, slot) },
              owner: { S: owner },
              expiresAt: { N: String(expiresAt.getTime()) },
              acquiredAt: { S: now.toISOString() },
            },
            ConditionExpression: 'attribute_not_exists(pk) OR expiresAt < :now',
            ExpressionAttributeValues: { ':now': { N: String(now.getTime()) } },
          }),
        );
        return { host, slot, owner };
      } catch (err) {
        if ((err as Error)?.name !== 'ConditionalCheckFailedException')
          throw mapDynamoError(err, this.tableName, 'host slot');
      }
    }
    return undefined;
  }

  /** Gives the slot back if still ours; never throws for a slot that expired and was taken over. */
  async release(slot: HostSlot): Promise<void> {
    try {
      await this.client.send(
        new DeleteItemCommand({
          TableName: this.tableName,
          Key: { pk: { S: hostSlotKey(slot.host, slot.slot) } },
          ConditionExpression: '#owner = :owner',
          ExpressionAttributeNames: { '#owner': 'owner' },
          ExpressionAttributeValues: { ':owner': { S: slot.owner } },
        }),
      );
    } catch (err) {
      if ((err as Error)?.name === 'ConditionalCheckFailedException') return;
      throw mapDynamoError(err, this.tableName, 'host slot release');
    }
  }
}
