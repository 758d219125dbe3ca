/** Builds the poller's adapters from its configuration: shared by the Lambda handler, benchmarks and tests. */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { DynamoDbCheckpointStore } from './adapters/dynamodb-checkpoint-store.js';
import { DynamoDbRefreshTokenStore } from './adapters/dynamodb-refresh-token-store.js';
import { DynamoDbPollStatusStore } from './adapters/dynamodb-status-store.js';
import { EventBridgePublisher } from './adapters/eventbridge-publisher.js';
import { ImapFlowMailboxGateway } from './adapters/imapflow-mailbox.js';
import { OAuth2TokenSource } from './adapters/oauth2-token-source.js';
import { S3RawMessageStore } from './adapters/s3-raw-store.js';
import { SecretsManagerSettingsSource } from './adapters/secrets-manager-settings.js';
import type { PollerConfig } from './contract/poller-env.js';
import type { Log, PollDeps, PollStatusStore } from './ports.js';
import type { PollOptions } from './run/poll-mailbox.js';

export interface ComposeOptions {
  readonly log: Log;
  /** Extra SDK client configuration (endpoint, credentials); the default chain applies otherwise. */
  readonly clientConfig?: Record<string, unknown>;
  /** See ImapFlowGatewayOptions.onCommand. */
  readonly onCommand?: (verb: string) => void;
}

export function composePollerDeps(config: PollerConfig, options: ComposeOptions): PollDeps {
  // The SDK retries throttling and transient errors itself (standard mode, with backoff and jitter).
  const sdk = { maxAttempts: 4, ...options.clientConfig };
  const dynamodb = new DynamoDBClient(sdk);
  const checkpoints = new DynamoDbCheckpointStore(dynamodb, config.checkpointTable);
  // Built once per container: warm invocations reuse its access tokens until shortly before they expire.
  const tokens = new OAuth2TokenSource({
    log: options.log,
    refreshTokens: new DynamoDbRefreshTokenStore(dynamodb, config.checkpointTable, config.mailboxId),
  });
  return {
    settings: new SecretsManagerSettingsSource(new SecretsManagerClient(sdk), { secretId: config.secretId }),
    checkpoints,
    lease: checkpoints,
    mailbox: new ImapFlowMailboxGateway({
      log: options.log,
      tokens,
      ...(options.onCommand ? { onCommand: options.onCommand } : {}),
    }),
    publisher: new EventBridgePublisher(new EventBridgeClient(sdk), { log: options.log }),
    ...(config.rawBucket ? { rawStore: new S3RawMessageStore(new S3Client(sdk), config.rawBucket) } : {}),
    log: options.log,
    now: () => new Date(),
  };
}

/** The status item store (last success, last failure) in the checkpoint table. */
export function composeStatusStore(table: string, options: Pick<ComposeOptions, 'clientConfig'>): PollStatusStore {
  return new DynamoDbPollStatusStore(new DynamoDBClient({ maxAttempts: 4, ...options.clientConfig }), table);
}

/** The pollMailbox options for a configuration and a deadline (epoch ms). */
export function pollOptions(config: PollerConfig, deadline: number): PollOptions {
  return {
    mailboxId: config.mailboxId,
    eventSource: config.eventSource,
    eventBusName: config.eventBusName,
    startAt: config.startAt,
    deadline,
    maxMessagesPerRun: config.maxMessagesPerRun,
  };
}
