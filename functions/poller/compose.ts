/**
 * The composition root: the only place the poller's clients and adapters are built, for the Lambda handler, the
 * CLI (`poll`, `check`, `folders`, `status`, `secret`), the benchmarks and the tests. The AWS SDK is loaded only when an AWS adapter
 * is asked for, so local runs with a settings file start without it.
 */

import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { type ImapFlowGatewayOptions, ImapFlowMailboxGateway } from './adapters/imapflow-mailbox.js';
import { OAuth2TokenSource } from './adapters/oauth2-token-source.js';
import type { PollerConfig } from './contract/poller-env.js';
import type {
  AccessTokenSource,
  CheckpointStore,
  EventPublisher,
  LeaseStore,
  Log,
  MailboxGateway,
  PollDeps,
  PollStatusStore,
  SettingsSource,
} from './ports.js';
import { parsePool } from './run/parse-pool.js';
import type { PollOptions } from './run/poll-mailbox.js';
import { KeptSession } from './run/session-keeper.js';

/**
 * Whole-call retries of every AWS client: the SDK's standard strategy (throttling, 5xx and network errors, with
 * exponential backoff and full jitter), 4 attempts in all. It is the ONLY layer that retries whole calls: the
 * EventBridge publisher retries just the entries EventBridge refused, the run retries nothing.
 */
export const SDK_RETRY = { maxAttempts: 4, retryMode: 'standard' } as const;

/** SDK client configuration: endpoint, region, credentials, a request handler (tests). */
export type AwsClientConfig = Record<string, unknown>;

export interface ComposeOptions {
  readonly log: Log;
  /** Extra SDK client configuration (endpoint, credentials); the default chain applies otherwise. */
  readonly clientConfig?: AwsClientConfig;
  /** See ImapFlowGatewayOptions.onCommand. */
  readonly onCommand?: (verb: string) => void;
  readonly now?: () => Date;
  /**
   * Keep the logged-in IMAP session between polls of this process (run/session-keeper.ts): the Lambda handler of
   * per-mailbox mode, where one container polls one mailbox, one run at a time. Not in fleet mode: a worker polls many
   * mailboxes, and a connection left open would escape the per-host connection slots. @default false
   */
  readonly keepSession?: boolean;
}

/** The configuration every AWS client gets: the retry strategy, then the caller's endpoint and credentials. */
export function awsClientConfig(extra: AwsClientConfig = {}): AwsClientConfig {
  return { ...SDK_RETRY, ...extra };
}

/**
 * The IMAP gateway (imapflow), with the access-token source for `oauth2` settings (without one: tokens are
 * fetched and cached in memory, a rotated refresh token is not kept); `timeouts` for interactive checks.
 */
export function composeMailboxGateway(
  options: Pick<ComposeOptions, 'log' | 'onCommand'> & { readonly tokens?: AccessTokenSource },
  timeouts: Pick<ImapFlowGatewayOptions, 'connectTimeoutMs' | 'greetingTimeoutMs' | 'socketTimeoutMs'> = {},
): MailboxGateway {
  return new ImapFlowMailboxGateway({
    log: options.log,
    tokens: options.tokens ?? new OAuth2TokenSource({ log: options.log }),
    ...(options.onCommand ? { onCommand: options.onCommand } : {}),
    ...timeouts,
  });
}

/** A Secrets Manager client (the settings source; CLI `secret stage|promote|rollback`). */
export async function composeSecretsManager(
  options: Pick<ComposeOptions, 'clientConfig'>,
): Promise<SecretsManagerClient> {
  const { SecretsManagerClient } = await import('@aws-sdk/client-secrets-manager');
  return new SecretsManagerClient(awsClientConfig(options.clientConfig));
}

/** A DynamoDB client for the checkpoint table (checkpoints, leases, status items, refresh tokens; CLI `status`). */
export async function composeDynamoDb(options: Pick<ComposeOptions, 'clientConfig'>): Promise<DynamoDBClient> {
  const { DynamoDBClient } = await import('@aws-sdk/client-dynamodb');
  return new DynamoDBClient(awsClientConfig(options.clientConfig));
}

/** Settings from a Secrets Manager secret (cached briefly; `versionStage` e.g. AWSPENDING for checks). */
export async function composeSecretsSettings(
  secret: { readonly secretId: string; readonly versionStage?: string },
  options: Pick<ComposeOptions, 'clientConfig'>,
): Promise<{ source: SettingsSource; region: () => Promise<string> }> {
  const [client, { SecretsManagerSettingsSource }] = await Promise.all([
    composeSecretsManager(options),
    import('./adapters/secrets-manager-settings.js'),
  ]);
  return { source: new SecretsManagerSettingsSource(client, secret), region: () => client.config.region() };
}

/** The EventBridge publisher (entry-level retries only; whole calls are the SDK's). */
export async function composeEventPublisher(options: ComposeOptions): Promise<EventPublisher> {
  const [{ EventBridgeClient }, { EventBridgePublisher }] = await Promise.all([
    import('@aws-sdk/client-eventbridge'),
    import('./adapters/eventbridge-publisher.js'),
  ]);
  return new EventBridgePublisher(new EventBridgeClient(awsClientConfig(options.clientConfig)), { log: options.log });
}

/** The Lambda's poller (also the benchmarks' and the integration tests'): everything from the configuration. */
export async function composePollerDeps(config: PollerConfig, options: ComposeOptions): Promise<PollDeps> {
  const [dynamodb, { DynamoDbCheckpointStore }, { DynamoDbRefreshTokenStore }, settings, publisher, rawStore] =
    await Promise.all([
      composeDynamoDb(options),
      import('./adapters/dynamodb-checkpoint-store.js'),
      import('./adapters/dynamodb-refresh-token-store.js'),
      composeSecretsSettings({ secretId: config.secretId }, options),
      composeEventPublisher(options),
      config.rawBucket ? composeRawStore(config.rawBucket, options) : undefined,
    ]);
  const checkpoints = new DynamoDbCheckpointStore(dynamodb, config.checkpointTable);
  // Built once per container: warm invocations reuse its access tokens until shortly before they expire.
  const tokens = new OAuth2TokenSource({
    log: options.log,
    refreshTokens: new DynamoDbRefreshTokenStore(dynamodb, config.checkpointTable, config.mailboxId),
  });
  const now = options.now ?? (() => new Date());
  const detailer = config.parseWorkers ? parsePool(config.parseWorkers) : undefined;
  return {
    settings: settings.source,
    checkpoints,
    lease: checkpoints,
    mailbox: composeMailboxGateway({ ...options, tokens }),
    publisher,
    ...(rawStore ? { rawStore } : {}),
    ...(options.keepSession ? { sessions: new KeptSession({ now, log: options.log }) } : {}),
    ...(detailer ? { detailer } : {}),
    log: options.log,
    now,
  };
}

/**
 * A poller on this machine (CLI `poll`, the demo): the Lambda's engine, gateway and retry settings, with a local
 * checkpoint store that also holds the lease, and events printed or (without `publisher`) sent to EventBridge.
 */
export async function composeLocalPollerDeps(
  parts: {
    readonly settings: SettingsSource;
    readonly checkpoints: CheckpointStore & LeaseStore;
    readonly publisher?: EventPublisher;
  },
  options: ComposeOptions,
): Promise<PollDeps> {
  return {
    settings: parts.settings,
    checkpoints: parts.checkpoints,
    lease: parts.checkpoints,
    mailbox: composeMailboxGateway(options),
    publisher: parts.publisher ?? (await composeEventPublisher(options)),
    log: options.log,
    now: options.now ?? (() => new Date()),
  };
}

/** The status item store (last success, last failure) in the checkpoint table. */
export async function composeStatusStore(
  table: string,
  options: Pick<ComposeOptions, 'clientConfig'>,
): Promise<PollStatusStore> {
  const [client, { DynamoDbPollStatusStore }] = await Promise.all([
    composeDynamoDb(options),
    import('./adapters/dynamodb-status-store.js'),
  ]);
  return new DynamoDbPollStatusStore(client, table);
}

/** The raw-message store (S3). */
export async function composeRawStore(bucket: string, options: ComposeOptions) {
  const [{ S3Client }, { S3RawMessageStore }] = await Promise.all([
    import('@aws-sdk/client-s3'),
    import('./adapters/s3-raw-store.js'),
  ]);
  return new S3RawMessageStore(new S3Client(awsClientConfig(options.clientConfig)), bucket);
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
