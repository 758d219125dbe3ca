/**
 * Fleet mode's composition root: the clients and adapters of the dispatcher and the worker, built once per
 * container. A worker polls many mailboxes, so the per-mailbox parts (settings with overrides, the OAuth2
 * refresh-token store, the IMAP gateway) are cached per mailbox in a bounded cache, and the secrets per secret
 * (several mailboxes may share one), so warm invocations reuse clients, settings and access tokens.
 */
import { OAuth2TokenSource } from '../poller/adapters/oauth2-token-source.js';
import {
  type AwsClientConfig,
  awsClientConfig,
  composeEventPublisher,
  composeMailboxGateway,
  composeRawStore,
  composeStatusStore,
} from '../poller/compose.js';
import type { MailboxSettings } from '../poller/core/settings.js';
import type { AccessTokenSource, Log, PollDeps, PollStatusStore, SettingsSource } from '../poller/ports.js';
import { DynamoDbHostSlots } from './adapters/dynamodb-host-slots.js';
import { DynamoDbRegistry } from './adapters/dynamodb-registry.js';
import { SqsPollQueue } from './adapters/sqs-poll-queue.js';
import type { DispatcherConfig, WorkerConfig } from './config.js';
import { BoundedCache } from './core/bounded-cache.js';
import type { RegistryEntry } from './core/registry.js';

/** Mailboxes whose composed parts a worker container keeps (settings, tokens, gateway). */
export const MAX_CACHED_MAILBOXES = 500;
/** Secrets whose settings a worker container keeps (each cached for a minute, as in per-mailbox mode). */
export const MAX_CACHED_SECRETS = 500;

export interface FleetComposeOptions {
  readonly log: Log;
  /** Extra SDK client configuration (tests: an endpoint). */
  readonly clientConfig?: AwsClientConfig;
  readonly now?: () => Date;
}

/** A mailbox's settings: its secret's, with the registry's `username` and `folder` overrides applied. */
export function withOverrides(
  settings: MailboxSettings,
  entry: Pick<RegistryEntry, 'username' | 'folder'>,
): MailboxSettings {
  return {
    ...settings,
    ...(entry.username !== undefined ? { username: entry.username } : {}),
    ...(entry.folder !== undefined ? { folder: entry.folder } : {}),
  };
}

export interface WorkerParts {
  readonly registry: DynamoDbRegistry;
  readonly hostSlots: DynamoDbHostSlots;
  readonly queue: SqsPollQueue;
  readonly status: PollStatusStore;
  /** The poll's ports for a mailbox (cached per mailbox and secret). */
  depsFor(entry: RegistryEntry): PollDeps;
}

export async function composeWorker(config: WorkerConfig, options: FleetComposeOptions): Promise<WorkerParts> {
  const [
    { DynamoDBClient },
    { SQSClient },
    { SecretsManagerClient },
    { DynamoDbCheckpointStore },
    { DynamoDbRefreshTokenStore },
    { SecretsManagerSettingsSource },
    publisher,
    status,
    rawStore,
  ] = await Promise.all([
    import('@aws-sdk/client-dynamodb'),
    import('@aws-sdk/client-sqs'),
    import('@aws-sdk/client-secrets-manager'),
    import('../poller/adapters/dynamodb-checkpoint-store.js'),
    import('../poller/adapters/dynamodb-refresh-token-store.js'),
    import('../poller/adapters/secrets-manager-settings.js'),
    composeEventPublisher(options),
    composeStatusStore(config.table, options),
    config.rawBucket ? composeRawStore(config.rawBucket, options) : undefined,
  ]);
  const clientConfig = awsClientConfig(options.clientConfig);
  const dynamodb = new DynamoDBClient(clientConfig);
  const secretsClient = new SecretsManagerClient(clientConfig);
  const checkpoints = new DynamoDbCheckpointStore(dynamodb, config.table);
  const now = options.now ?? (() => new Date());
  // App-only tokens (Microsoft, Google) are shared by every mailbox of a tenant: one source for all of them.
  const sharedTokens = new OAuth2TokenSource({ log: options.log });
  const secrets = new BoundedCache<string, SettingsSource>(MAX_CACHED_SECRETS);
  const mailboxes = new BoundedCache<string, { key: string; deps: PollDeps }>(MAX_CACHED_MAILBOXES);

  const depsFor = (entry: RegistryEntry): PollDeps => {
    const key = JSON.stringify([entry.secretId, entry.username, entry.folder]);
    const hit = mailboxes.get(entry.id);
    if (hit?.key === key) return hit.deps;
    const secret = secrets.getOrSet(
      entry.secretId,
      () => new SecretsManagerSettingsSource(secretsClient, { secretId: entry.secretId }),
    );
    // A rotated refresh token belongs to one mailbox: kept under its own key, as in per-mailbox mode.
    const ownTokens = new OAuth2TokenSource({
      log: options.log,
      refreshTokens: new DynamoDbRefreshTokenStore(dynamodb, config.table, entry.id),
    });
    const tokens: AccessTokenSource = {
      get: (settings, o) => (settings.oauth2?.provider === 'refresh-token' ? ownTokens : sharedTokens).get(settings, o),
    };
    const deps: PollDeps = {
      settings: { load: async (o) => withOverrides(await secret.load(o), entry) },
      checkpoints,
      lease: checkpoints,
      mailbox: composeMailboxGateway({ log: options.log, tokens }),
      publisher,
      ...(rawStore ? { rawStore } : {}),
      log: options.log,
      now,
    };
    mailboxes.set(entry.id, { key, deps });
    return deps;
  };

  return {
    registry: new DynamoDbRegistry(dynamodb, config.table),
    hostSlots: new DynamoDbHostSlots(dynamodb, config.table),
    queue: new SqsPollQueue(new SQSClient(clientConfig), config.queueUrl),
    status,
    depsFor,
  };
}

export interface DispatcherParts {
  readonly registry: DynamoDbRegistry;
  readonly queue: SqsPollQueue;
  readonly declared?: import('./adapters/s3-declared-mailboxes.js').S3DeclaredMailboxes;
}

export async function composeDispatcher(
  config: DispatcherConfig,
  options: Pick<FleetComposeOptions, 'clientConfig'>,
): Promise<DispatcherParts> {
  const [{ DynamoDBClient }, { SQSClient }] = await Promise.all([
    import('@aws-sdk/client-dynamodb'),
    import('@aws-sdk/client-sqs'),
  ]);
  const clientConfig = awsClientConfig(options.clientConfig);
  let declared: DispatcherParts['declared'];
  if (config.declared) {
    const [{ S3Client }, { S3DeclaredMailboxes }] = await Promise.all([
      import('@aws-sdk/client-s3'),
      import('./adapters/s3-declared-mailboxes.js'),
    ]);
    declared = new S3DeclaredMailboxes(new S3Client(clientConfig), config.declared.bucket, config.declared.key);
  }
  return {
    registry: new DynamoDbRegistry(new DynamoDBClient(clientConfig), config.table),
    queue: new SqsPollQueue(new SQSClient(clientConfig), config.queueUrl),
    ...(declared ? { declared } : {}),
  };
}

/** The registry on its own (the CLI's `mailbox` commands). */
export async function composeRegistry(table: string, options: Pick<FleetComposeOptions, 'clientConfig'> = {}) {
  const { DynamoDBClient } = await import('@aws-sdk/client-dynamodb');
  const client = new DynamoDBClient(awsClientConfig(options.clientConfig));
  return { registry: new DynamoDbRegistry(client, table), region: () => client.config.region() };
}
