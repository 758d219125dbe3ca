/** The mocked DynamoDB client the table adapters' unit tests share (aws-sdk-client-mock). */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach } from 'vitest';

export const TABLE = 'ImapCheckpoints';

/** Mocks every DynamoDBClient of the calling test file; the mock is reset before and after each test. */
export function mockDynamoDb() {
  const ddb = mockClient(DynamoDBClient);
  beforeEach(() => ddb.reset());
  afterEach(() => ddb.reset());
  return ddb;
}

/** A client for the adapter under test (its calls go to the mock). */
export function testDynamoDbClient(): DynamoDBClient {
  return new DynamoDBClient({ region: 'eu-central-1' });
}
