import {
  type AttributeValue,
  ConditionalCheckFailedException,
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  ResourceNotFoundException,
} from '@aws-sdk/client-dynamodb';
import { beforeEach, describe, expect, it } from 'vitest';
import { DynamoDbCheckpointStore } from '../../../functions/poller/adapters/dynamodb-checkpoint-store.js';
import { checkpointKey, leaseKey } from '../../../functions/poller/contract/keys.js';
import type { Checkpoint } from '../../../functions/poller/core/types.js';
import { CheckpointConflictError, CheckpointStoreError } from '../../../functions/poller/errors.js';
import { mockDynamoDb, TABLE, testDynamoDbClient } from './dynamodb-mock.js';

const ddb = mockDynamoDb();
let store: DynamoDbCheckpointStore;
beforeEach(() => {
  store = new DynamoDbCheckpointStore(testDynamoDbClient(), TABLE);
});

const named = (name: string, message = `${name} from the service`): Error =>
  Object.assign(new Error(message), { name });
const conditionalFailed = (): ConditionalCheckFailedException =>
  new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });

const full: Checkpoint = {
  mailboxId: 'support',
  folder: 'Firma/Kundenbetreuung/kunden/a',
  uidValidity: '4294967295',
  lastUid: 4711,
  version: 6,
  updatedAt: '2026-11-26T10:00:00.000Z',
  lastInternalDate: '2026-11-26T09:59:00.000Z',
  recentMessageIds: ['aaaa', 'bbbb'],
  rescanSince: '2026-11-20T00:00:00.000Z',
};

describe('keys', () => {
  it('keys checkpoints by mailbox and folder, leases by mailbox', () => {
    expect(checkpointKey('support', 'INBOX')).toBe('checkpoint#support#INBOX');
    expect(checkpointKey('support', 'Qualitätssicherung')).toBe('checkpoint#support#Qualitätssicherung');
    expect(leaseKey('support')).toBe('lease#support');
    expect(checkpointKey('a', 'x')).not.toBe(checkpointKey('a', 'y'));
  });
});

describe('get', () => {
  it('reads strongly consistent by key and returns undefined when there is no item', async () => {
    ddb.on(GetItemCommand).resolves({});
    expect(await store.get('support', 'INBOX')).toBeUndefined();
    expect(ddb.commandCalls(GetItemCommand)[0]!.args[0].input).toEqual({
      TableName: TABLE,
      Key: { pk: { S: 'checkpoint#support#INBOX' } },
      ConsistentRead: true,
    });
  });

  it('maps every attribute', async () => {
    ddb.on(GetItemCommand).resolves({
      Item: {
        pk: { S: checkpointKey(full.mailboxId, full.folder) },
        mailboxId: { S: 'support' },
        folder: { S: full.folder },
        uidValidity: { S: '4294967295' },
        lastUid: { N: '4711' },
        version: { N: '6' },
        updatedAt: { S: full.updatedAt },
        lastInternalDate: { S: full.lastInternalDate! },
        recentMessageIds: { L: [{ S: 'aaaa' }, { S: 'bbbb' }] },
        rescanSince: { S: full.rescanSince! },
      },
    });
    expect(await store.get('support', full.folder)).toEqual(full);
  });

  it('leaves optional attributes out when the item has none', async () => {
    ddb.on(GetItemCommand).resolves({
      Item: {
        pk: { S: 'checkpoint#support#INBOX' },
        uidValidity: { S: '1' },
        lastUid: { N: '3' },
        version: { N: '1' },
        updatedAt: { S: full.updatedAt },
      },
    });
    const c = await store.get('support', 'INBOX');
    expect(c).toEqual({
      mailboxId: 'support',
      folder: 'INBOX',
      uidValidity: '1',
      lastUid: 3,
      version: 1,
      updatedAt: full.updatedAt,
      recentMessageIds: [],
    });
    expect(c).not.toHaveProperty('rescanSince');
    expect(c).not.toHaveProperty('lastInternalDate');
  });

  describe('a damaged item is a clear, non-retryable error naming the key and the field, never a reset', () => {
    const valid: Record<string, AttributeValue> = {
      pk: { S: 'checkpoint#support#INBOX' },
      mailboxId: { S: 'support' },
      folder: { S: 'INBOX' },
      uidValidity: { S: '1700000000' },
      lastUid: { N: '3' },
      version: { N: '2' },
      updatedAt: { S: full.updatedAt },
      recentMessageIds: { L: [{ S: 'aaaa' }] },
    };
    const without = (field: string) => Object.fromEntries(Object.entries(valid).filter(([k]) => k !== field));

    it.each<[string, Record<string, AttributeValue>, string]>([
      ['uidValidity missing', without('uidValidity'), 'uidValidity is missing'],
      ['uidValidity empty', { ...valid, uidValidity: { S: '' } }, 'uidValidity must be a decimal number'],
      ['uidValidity not numeric', { ...valid, uidValidity: { S: 'abc' } }, 'uidValidity must be a decimal number'],
      ['uidValidity over 32 bits', { ...valid, uidValidity: { S: '4294967296' } }, 'uidValidity must be a decimal'],
      ['uidValidity a number attribute', { ...valid, uidValidity: { N: '17' } }, 'uidValidity must be a string (S)'],
      ['lastUid missing', without('lastUid'), 'lastUid is missing'],
      ['lastUid negative', { ...valid, lastUid: { N: '-1' } }, 'lastUid must be an integer from 0 to 4294967295'],
      ['lastUid over 32 bits', { ...valid, lastUid: { N: '4294967296' } }, 'lastUid must be an integer from 0'],
      ['lastUid fractional', { ...valid, lastUid: { N: '2.5' } }, 'lastUid must be an integer'],
      ['lastUid a string attribute', { ...valid, lastUid: { S: '3' } }, 'lastUid must be a number (N)'],
      ['version missing', without('version'), 'version is missing'],
      ['version 0', { ...valid, version: { N: '0' } }, 'version must be an integer from 1'],
      ['updatedAt missing', without('updatedAt'), 'updatedAt is missing'],
      ['updatedAt not a time', { ...valid, updatedAt: { S: 'yesterday' } }, 'updatedAt must be an ISO 8601 time'],
      ['rescanSince not a time', { ...valid, rescanSince: { S: 'soon' } }, 'rescanSince must be an ISO 8601 time'],
      ['lastInternalDate a number', { ...valid, lastInternalDate: { N: '1' } }, 'lastInternalDate must be a string'],
      ['recentMessageIds not a list', { ...valid, recentMessageIds: { S: 'x' } }, 'recentMessageIds must be a list'],
      ['recentMessageIds of numbers', { ...valid, recentMessageIds: { L: [{ N: '1' }] } }, 'recentMessageIds must be'],
      ['mailboxId of another mailbox', { ...valid, mailboxId: { S: 'sales' } }, 'mailboxId does not match the key'],
      ['folder of another folder', { ...valid, folder: { S: 'Archive' } }, 'folder does not match the key'],
    ])('%s', async (_case, item, problem) => {
      ddb.on(GetItemCommand).resolves({ Item: item });
      const err = (await store.get('support', 'INBOX').catch((e: unknown) => e)) as CheckpointStoreError;
      expect(err).toBeInstanceOf(CheckpointStoreError);
      expect(err).toMatchObject({ code: 'CHECKPOINT_STORE_FAILED', retryable: false });
      expect(err.message).toBe(
        `The checkpoint item "checkpoint#support#INBOX" in table "${TABLE}" is damaged: ${err.message.split('is damaged: ')[1]}`,
      );
      expect(err.message).toContain(problem);
      expect(err.hint).toMatch(/point-in-time recovery|delete it/);
    });

    it("passes the run's signal to the SDK on every call", async () => {
      const signal = new AbortController().signal;
      ddb.on(GetItemCommand).resolves({ Item: valid });
      ddb.on(PutItemCommand).resolves({});
      ddb.on(DeleteItemCommand).resolves({});
      await store.get('support', 'INBOX', { signal });
      await store.put(full, 6, { signal });
      await store.acquire('support', 'run', new Date(0), new Date(1), { signal });
      await store.release('support', 'run', { signal });
      for (const call of ddb.calls()) expect((call.args as unknown[])[1]).toEqual({ abortSignal: signal });
      expect(ddb.calls()).toHaveLength(4);
    });

    it('the valid item reads as it was written', async () => {
      ddb.on(GetItemCommand).resolves({ Item: valid });
      expect(await store.get('support', 'INBOX')).toMatchObject({ uidValidity: '1700000000', lastUid: 3, version: 2 });
    });
  });

  it.each<[string, Error, boolean]>([
    [
      'ResourceNotFoundException',
      new ResourceNotFoundException({ message: 'Requested resource not found', $metadata: {} }),
      false,
    ],
    ['AccessDeniedException', named('AccessDeniedException'), false],
    ['ProvisionedThroughputExceededException', named('ProvisionedThroughputExceededException'), true],
    ['InternalServerError', named('InternalServerError'), true],
  ])('maps %s to a CheckpointStoreError (retryable: %s)', async (_name, error, retryable) => {
    ddb.on(GetItemCommand).rejects(error);
    const err = await store.get('support', 'INBOX').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointStoreError);
    expect(err).toMatchObject({ retryable, code: 'CHECKPOINT_STORE_FAILED', cause: error });
    expect((err as Error).message).toContain(TABLE);
  });

  it('says where a missing table comes from', async () => {
    ddb.on(GetItemCommand).rejects(named('ResourceNotFoundException'));
    const err = (await store.get('support', 'INBOX').catch((e: unknown) => e)) as CheckpointStoreError;
    expect(err.message).toBe(`The checkpoint table "${TABLE}" does not exist (read).`);
    expect(err.hint).toMatch(/deploy the stack|CHECKPOINT_TABLE/);
  });

  it('marks throttling in the message', async () => {
    ddb.on(GetItemCommand).rejects(named('ThrottlingException'));
    const err = (await store.get('support', 'INBOX').catch((e: unknown) => e)) as CheckpointStoreError;
    expect(err.message).toContain('throttled beyond retries');
    expect(err.retryable).toBe(true);
  });
});

describe('put', () => {
  it('creates a checkpoint only if none exists (expected version 0)', async () => {
    ddb.on(PutItemCommand).resolves({});
    await store.put(
      {
        mailboxId: 'support',
        folder: 'INBOX',
        uidValidity: '7',
        lastUid: 0,
        version: 0,
        updatedAt: full.updatedAt,
        recentMessageIds: [],
      },
      0,
    );
    expect(ddb.commandCalls(PutItemCommand)[0]!.args[0].input).toEqual({
      TableName: TABLE,
      Item: {
        pk: { S: 'checkpoint#support#INBOX' },
        mailboxId: { S: 'support' },
        folder: { S: 'INBOX' },
        uidValidity: { S: '7' },
        lastUid: { N: '0' },
        version: { N: '1' },
        updatedAt: { S: full.updatedAt },
        recentMessageIds: { L: [] },
      },
      ConditionExpression: 'attribute_not_exists(pk)',
    });
  });

  it('updates only the version it read, and writes version + 1', async () => {
    ddb.on(PutItemCommand).resolves({});
    await store.put(full, 6);
    const input = ddb.commandCalls(PutItemCommand)[0]!.args[0].input;
    expect(input.ConditionExpression).toBe('version = :v');
    expect(input.ExpressionAttributeValues).toEqual({ ':v': { N: '6' } });
    expect(input.Item).toMatchObject({
      version: { N: '7' },
      lastUid: { N: '4711' },
      lastInternalDate: { S: full.lastInternalDate },
      rescanSince: { S: full.rescanSince },
      recentMessageIds: { L: [{ S: 'aaaa' }, { S: 'bbbb' }] },
    });
  });

  it('does not write optional attributes that are unset', async () => {
    ddb.on(PutItemCommand).resolves({});
    const { lastInternalDate: _a, rescanSince: _b, recentMessageIds: _c, ...minimal } = full;
    await store.put(minimal, 2);
    const item = ddb.commandCalls(PutItemCommand)[0]!.args[0].input.Item!;
    expect(item).not.toHaveProperty('lastInternalDate');
    expect(item).not.toHaveProperty('rescanSince');
    expect(item.recentMessageIds).toEqual({ L: [] });
  });

  it.each([
    ['a ConditionalCheckFailedException instance', conditionalFailed()],
    ['an error named ConditionalCheckFailedException', named('ConditionalCheckFailedException')],
  ])('maps %s to CheckpointConflictError', async (_name, error) => {
    ddb.on(PutItemCommand).rejects(error);
    const err = await store.put(full, 6).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointConflictError);
    expect(err).toMatchObject({ code: 'CHECKPOINT_CONFLICT', retryable: true, cause: error });
    expect((err as Error).message).toContain('expected version 6');
    expect((err as Error).message).toContain(full.folder);
  });

  it.each<[string, boolean]>([
    ['ResourceNotFoundException', false],
    ['AccessDeniedException', false],
    ['ProvisionedThroughputExceededException', true],
    ['RequestLimitExceeded', true],
    ['ItemCollectionSizeLimitExceededException', true],
  ])('maps %s on write to CheckpointStoreError (retryable: %s)', async (name, retryable) => {
    ddb.on(PutItemCommand).rejects(named(name));
    const err = await store.put(full, 6).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointStoreError);
    expect(err).not.toBeInstanceOf(CheckpointConflictError);
    expect((err as CheckpointStoreError).retryable).toBe(retryable);
    expect((err as Error).message).toMatch(/write/);
  });

  it('round-trips through get', async () => {
    const table = new Map<string, Record<string, AttributeValue>>();
    ddb.on(PutItemCommand).callsFake((input) => {
      table.set(input.Item.pk.S, input.Item);
      return {};
    });
    ddb.on(GetItemCommand).callsFake((input) => ({ Item: table.get(input.Key.pk.S) }));
    await store.put(full, 6);
    expect(await store.get(full.mailboxId, full.folder)).toEqual({ ...full, version: 7 });
  });
});

describe('lease', () => {
  const now = new Date('2026-11-26T12:00:00.000Z');
  const expires = new Date('2026-11-26T12:15:30.000Z');

  it('acquires with a condition: free, expired, or already ours', async () => {
    ddb.on(PutItemCommand).resolves({});
    expect(await store.acquire('support', 'run-1', now, expires)).toBe(true);
    expect(ddb.commandCalls(PutItemCommand)[0]!.args[0].input).toEqual({
      TableName: TABLE,
      Item: {
        pk: { S: 'lease#support' },
        owner: { S: 'run-1' },
        expiresAt: { N: String(expires.getTime()) },
        acquiredAt: { S: now.toISOString() },
      },
      ConditionExpression: 'attribute_not_exists(pk) OR expiresAt < :now OR #owner = :owner',
      ExpressionAttributeNames: { '#owner': 'owner' },
      ExpressionAttributeValues: { ':now': { N: String(now.getTime()) }, ':owner': { S: 'run-1' } },
    });
  });

  it('returns false when another owner holds an unexpired lease', async () => {
    ddb.on(PutItemCommand).rejects(conditionalFailed());
    expect(await store.acquire('support', 'run-2', now, expires)).toBe(false);
  });

  it.each<[string, boolean]>([
    ['ResourceNotFoundException', false],
    ['AccessDeniedException', false],
    ['ThrottlingException', true],
  ])('throws CheckpointStoreError on %s', async (name, retryable) => {
    ddb.on(PutItemCommand).rejects(named(name));
    const err = await store.acquire('support', 'run-1', now, expires).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointStoreError);
    expect((err as CheckpointStoreError).retryable).toBe(retryable);
    expect((err as Error).message).toContain('lease');
  });

  it('releases only its own lease', async () => {
    ddb.on(DeleteItemCommand).resolves({});
    await store.release('support', 'run-1');
    expect(ddb.commandCalls(DeleteItemCommand)[0]!.args[0].input).toEqual({
      TableName: TABLE,
      Key: { pk: { S: 'lease#support' } },
      ConditionExpression: '#owner = :owner',
      ExpressionAttributeNames: { '#owner': 'owner' },
      ExpressionAttributeValues: { ':owner': { S: 'run-1' } },
    });
  });

  it('does not throw when the lease was taken over meanwhile', async () => {
    ddb.on(DeleteItemCommand).rejects(conditionalFailed());
    await expect(store.release('support', 'run-1')).resolves.toBeUndefined();
  });

  it('throws a mapped error when release fails otherwise', async () => {
    ddb.on(DeleteItemCommand).rejects(named('ResourceNotFoundException'));
    const err = await store.release('support', 'run-1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointStoreError);
    expect((err as CheckpointStoreError).retryable).toBe(false);
  });
});
