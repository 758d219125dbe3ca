import { type DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { refreshTokenKey } from '../contract/keys.js';
import type { RefreshTokenStore } from '../ports.js';
import { mapDynamoError } from './dynamodb-checkpoint-store.js';

/**
 * A mailbox's rotated OAuth2 refresh token, sealed (see oauth2-token-source.ts), in the checkpoint table
 * beside its checkpoint: the function's role already may write exactly this mailbox's items there, so
 * rotation needs no write access to the secret (docs/oauth2.md).
 */
export class DynamoDbRefreshTokenStore implements RefreshTokenStore {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
    private readonly mailboxId: string,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async load(): Promise<{ sealed: string; version: number } | undefined> {
    try {
      const { Item } = await this.client.send(
        new GetItemCommand({
          TableName: this.tableName,
          Key: { pk: { S: refreshTokenKey(this.mailboxId) } },
          ConsistentRead: true,
        }),
      );
      const sealed = Item?.sealed?.S;
      const version = Number(Item?.version?.N ?? '0');
      return sealed && Number.isInteger(version) && version > 0 ? { sealed, version } : undefined;
    } catch (err) {
      throw mapDynamoError(err, this.tableName, 'refresh token read');
    }
  }

  async save(sealed: string, expectedVersion: number): Promise<boolean> {
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: {
            pk: { S: refreshTokenKey(this.mailboxId) },
            sealed: { S: sealed },
            version: { N: String(expectedVersion + 1) },
            updatedAt: { S: this.now().toISOString() },
          },
          ...(expectedVersion === 0
            ? { ConditionExpression: 'attribute_not_exists(pk)' }
            : {
                ConditionExpression: 'version = :v',
                ExpressionAttributeValues: { ':v': { N: String(expectedVersion) } },
              }),
        }),
      );
      return true;
    } catch (err) {
      if ((err as Error)?.name === 'ConditionalCheckFailedException') return false;
      throw mapDynamoError(err, this.tableName, 'refresh token write');
    }
  }
}
