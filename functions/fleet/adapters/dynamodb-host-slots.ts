/**
 * Connection slots per IMAP host across the worker pool: `cap` lease-like items per host (`hostslot#<host>#<n>`),
 * each held by one poll until it releases it or it expires (a crashed worker blocks a slot only until then).
 */
import {
  BatchGetItemCommand,
  type BatchGetItemCommandOutput,
  DeleteItemCommand,
  type DynamoDBClient,
  type KeysAndAttributes,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
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

  /**
   * A free (or expired) slot of `host`, now held by `owner` until `expiresAt`; undefined when all `cap` are taken.
   * First one conditional write to a random slot (enough while the host is below its cap: one write unit); when
   * that one is taken, one consistent read of all slots finds the free ones (no failed write per taken slot), and
   * a conditional write takes one of them (another worker may be faster: then the next).
   */
  async acquire(host: string, cap: number, owner: string, now: Date, expiresAt: Date): Promise<HostSlot | undefined> {
    const [first, ...rest] = slotOrder(cap, this.random());
    if (await this.take(host, first!, owner, now, expiresAt)) return { host, slot: first!, owner };
    if (rest.length === 0) return undefined;
    const taken = await this.takenSlots(host, cap, now);
    for (const slot of rest.filter((s) => !taken.has(s))) {
      if (await this.take(host, slot, owner, now, expiresAt)) return { host, slot, owner };
    }
    return undefined;
  }

  private async take(host: string, slot: number, owner: string, now: Date, expiresAt: Date): Promise<boolean> {
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
      return true;
    } catch (err) {
      if ((err as Error)?.name === 'ConditionalCheckFailedException') return false;
      throw mapDynamoError(err, this.tableName, 'host slot');
    }
  }

  /** The slots held (not expired) now. BatchGetItem takes 100 keys per call. */
  private async takenSlots(host: string, cap: number, now: Date): Promise<Set<number>> {
    const taken = new Set<number>();
    const keys = Array.from({ length: cap }, (_, slot) => hostSlotKey(host, slot));
    for (let i = 0; i < keys.length; i += 100) {
      let request: Record<string, KeysAndAttributes> | undefined = {
        [this.tableName]: {
          Keys: keys.slice(i, i + 100).map((pk) => ({ pk: { S: pk } })),
          ConsistentRead: true,
          ProjectionExpression: 'pk, expiresAt',
        },
      };
      for (let round = 0; request && round < 5; round++) {
        let res: BatchGetItemCommandOutput;
        try {
          res = await this.client.send(new BatchGetItemCommand({ RequestItems: request }));
        } catch (err) {
          throw mapDynamoError(err, this.tableName, 'host slots read');
        }
        for (const item of res.Responses?.[this.tableName] ?? []) {
          if (Number(item.expiresAt?.N ?? 0) >= now.getTime()) taken.add(Number(item.pk!.S!.split('#').pop()));
        }
        request = Object.keys(res.UnprocessedKeys ?? {}).length ? res.UnprocessedKeys : undefined;
      }
    }
    return taken;
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
