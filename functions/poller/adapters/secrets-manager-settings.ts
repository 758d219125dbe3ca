import {
  GetSecretValueCommand,
  type GetSecretValueCommandOutput,
  type SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import type { MailboxSettings } from '../core/settings.js';
import { SecretAccessError } from '../errors.js';
import type { CallOptions, SettingsSource } from '../ports.js';
import { parseMailboxSettings } from './pem-checks.js';

export interface SecretsManagerSettingsOptions {
  /** Secret name or ARN. */
  readonly secretId: string;
  /** Version stage to read. @default 'AWSCURRENT' */
  readonly versionStage?: string;
  /**
   * How long settings are reused by warm invocations. Longer than a 1-minute schedule's interval, so that most polls
   * read no secret; a changed password applies at once anyway (re-read on an authentication failure), any other
   * change (CA bundle, folder, host) within this time. @default 300_000
   */
  readonly cacheTtlMs?: number;
  readonly now?: () => number;
}

/** How long a warm container reuses the settings it read: 5 polls of a 1-minute schedule read the secret once. */
export const SETTINGS_CACHE_TTL_MS = 300_000;

/**
 * Settings from one Secrets Manager secret (contract 1), cached briefly so rotation takes effect
 * within `cacheTtlMs` without a redeploy; `load({ fresh: true })` bypasses the cache (after an auth failure).
 */
export class SecretsManagerSettingsSource implements SettingsSource {
  private cached?: { settings: MailboxSettings; at: number };

  constructor(
    private readonly client: SecretsManagerClient,
    private readonly options: SecretsManagerSettingsOptions,
  ) {}

  async load(options: { fresh?: boolean } & CallOptions = {}): Promise<MailboxSettings> {
    const now = (this.options.now ?? Date.now)();
    const ttl = this.options.cacheTtlMs ?? SETTINGS_CACHE_TTL_MS;
    if (!options.fresh && this.cached && now - this.cached.at < ttl) return this.cached.settings;
    const settings = parseMailboxSettings(
      await this.readSecretString(options.signal),
      `secret "${this.options.secretId}"`,
    );
    this.cached = { settings, at: now };
    return settings;
  }

  private async readSecretString(signal: AbortSignal | undefined): Promise<string> {
    const id = this.options.secretId;
    let response: GetSecretValueCommandOutput;
    try {
      // Always name the stage: some emulators return a stale version without it.
      response = await this.client.send(
        new GetSecretValueCommand({ SecretId: id, VersionStage: this.options.versionStage ?? 'AWSCURRENT' }),
        signal ? { abortSignal: signal } : {},
      );
    } catch (err) {
      throw mapSecretsError(err, id);
    }
    if (response.SecretString === undefined || response.SecretString.trim() === '') {
      throw new SecretAccessError(`The secret "${id}" has no string value.`, {
        hint: 'store the mailbox settings as JSON text in the secret (see "secret format" in the README); `imap-event-source secret template` prints an example.',
      });
    }
    return response.SecretString;
  }
}

function mapSecretsError(err: unknown, id: string): SecretAccessError {
  const name = (err as { name?: string })?.name ?? 'Error';
  switch (name) {
    case 'ResourceNotFoundException':
      return new SecretAccessError(`The secret "${id}" does not exist (or has no value in the requested stage).`, {
        cause: err,
        hint: 'create it (or put a value into it) with the mailbox settings, or fix SECRET_ID.',
      });
    case 'AccessDeniedException':
      return new SecretAccessError(`Access to the secret "${id}" was denied.`, {
        cause: err,
        hint: 'grant the function secretsmanager:GetSecretValue on this secret (and kms:Decrypt on its key); the CDK stack does this for the secret it is configured with.',
      });
    case 'DecryptionFailure':
      return new SecretAccessError(`The secret "${id}" could not be decrypted with its KMS key.`, {
        cause: err,
        hint: "grant kms:Decrypt on the secret's key to the function role.",
      });
    case 'CredentialsProviderError':
      return new SecretAccessError(`No AWS credentials were found to read the secret "${id}".`, {
        cause: err,
        hint: 'run with AWS credentials (AWS_PROFILE, environment variables, or a role) and a region (AWS_REGION).',
      });
    default:
      return new SecretAccessError(`Reading the secret "${id}" failed (${name}).`, { cause: err, retryable: true });
  }
}
