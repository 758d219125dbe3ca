import {
  ConditionalCheckFailedException,
  GetItemCommand,
  PutItemCommand,
  ResourceNotFoundException,
} from '@aws-sdk/client-dynamodb';
import { beforeEach, describe, expect, it } from 'vitest';
import { DynamoDbRefreshTokenStore } from '../../../functions/poller/adapters/dynamodb-refresh-token-store.js';
import { CheckpointStoreError } from '../../../functions/poller/errors.js';
import { mockDynamoDb, TABLE, testDynamoDbClient } from './dynamodb-mock.js';

const ddb = mockDynamoDb();
let store: DynamoDbRefreshTokenStore;
const NOW = new Date('2026-11-30T08:00:00Z');
beforeEach(() => {
  store = new DynamoDbRefreshTokenStore(testDynamoDbClient(), TABLE, 'support', () => NOW);
});

describe('DynamoDbRefreshTokenStore', () => {
  it('reads its own item, strongly consistent', async () => {
    ddb.on(GetItemCommand).resolves({ Item: { sealed: { S: 'v1.a.b.c' }, version: { N: '3' } } });
    expect(await store.load()).toEqual({ sealed: 'v1.a.b.c', version: 3 });
    expect(ddb.commandCalls(GetItemCommand)[0]!.args[0].input).toEqual({
      TableName: TABLE,
      Key: { pk: { S: 'oauth2-refresh-token#support' } },
      ConsistentRead: true,
    });
  });

  it('treats a missing or damaged item as none', async () => {
    ddb
      .on(GetItemCommand)
      .resolvesOnce({})
      .resolvesOnce({ Item: { sealed: { S: 'x' }, version: { N: 'NaN' } } });
    expect(await store.load()).toBeUndefined();
    expect(await store.load()).toBeUndefined();
  });

  it('writes the first version only if none exists, later ones only over the version it read', async () => {
    ddb.on(PutItemCommand).resolves({});
    expect(await store.save('v1.s', 0)).toBe(true);
    expect(await store.save('v1.t', 4)).toBe(true);
    const [first, next] = ddb.commandCalls(PutItemCommand).map((c) => c.args[0].input);
    expect(first).toMatchObject({
      Item: {
        pk: { S: 'oauth2-refresh-token#support' },
        sealed: { S: 'v1.s' },
        version: { N: '1' },
        updatedAt: { S: NOW.toISOString() },
      },
      ConditionExpression: 'attribute_not_exists(pk)',
    });
    expect(next).toMatchObject({
      Item: { version: { N: '5' } },
      ConditionExpression: 'version = :v',
      ExpressionAttributeValues: { ':v': { N: '4' } },
    });
  });

  it('reports a lost race as false, other failures as CheckpointStoreError', async () => {
    ddb
      .on(PutItemCommand)
      .rejectsOnce(new ConditionalCheckFailedException({ message: 'conditional', $metadata: {} }))
      .rejectsOnce(new ResourceNotFoundException({ message: 'no table', $metadata: {} }));
    expect(await store.save('v1.s', 2)).toBe(false);
    await expect(store.save('v1.s', 2)).rejects.toBeInstanceOf(CheckpointStoreError);
  });
});
