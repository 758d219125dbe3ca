/**
 * Where a command gets the mailbox settings: `--config FILE` (JSON, the secret's format) or
 * `--secret-id ID [--version-stage STAGE]` (Secrets Manager, with the poller's own adapter).
 * One place for all commands.
 */
import { readFile } from 'node:fs/promises';
import { parseMailboxSettings } from '../functions/poller/adapters/pem-checks.js';
import type { MailboxSettings } from '../functions/poller/core/settings.js';
import { ConfigurationError, SecretAccessError } from '../functions/poller/errors.js';
import type { SettingsSource } from '../functions/poller/ports.js';
import { UsageError } from './output.js';

/** The parseArgs options every settings-reading command accepts. */
export const SETTINGS_OPTIONS = {
  config: { type: 'string', short: 'c' },
  'secret-id': { type: 'string' },
  'version-stage': { type: 'string' },
} as const;

export const SETTINGS_HELP = `Settings (one of):
  -c, --config FILE          JSON file with the mailbox settings (the secret's format)
      --secret-id ID         Secrets Manager secret name or ARN (AWS credentials and region from
                             the environment, as for the AWS CLI)
      --version-stage STAGE  with --secret-id: the version to read, e.g. AWSPENDING (default AWSCURRENT)`;

export interface SettingsArgs {
  config?: string;
  'secret-id'?: string;
  'version-stage'?: string;
}

export interface ResolvedSettingsSource {
  readonly source: SettingsSource;
  /** For messages: `file mailbox.json`, `secret "prod/support" (AWSPENDING)`. */
  readonly origin: string;
}

/** A JSON file in the secret's format; re-read on every load so edits apply to the next poll. */
export class FileSettingsSource implements SettingsSource {
  constructor(private readonly path: string) {}

  async load(): Promise<MailboxSettings> {
    return parseMailboxSettings(await readSettingsFile(this.path), `file "${this.path}"`);
  }
}

/** Reads a settings file; a missing or unreadable file is a ConfigurationError with the fix. */
export async function readSettingsFile(path: string, what = 'settings file'): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as { code?: string }).code ?? 'ERROR';
    throw new ConfigurationError(`Cannot read the ${what} "${path}" (${code}).`, {
      cause: err,
      hint:
        what === 'settings file'
          ? 'pass a JSON file with the mailbox settings; `imap-event-source secret template > mailbox.json` writes an example to edit.'
          : 'check the path.',
    });
  }
}

/** The options again, for messages such as `Step by step: imap-event-source check --config x.json`. */
export function settingsArgsText(args: SettingsArgs): string {
  if (args.config !== undefined) return `--config ${args.config}`;
  return `--secret-id ${args['secret-id']}${args['version-stage'] ? ` --version-stage ${args['version-stage']}` : ''}`;
}

/** The settings source the options name, or undefined when none is given. */
export async function settingsSourceFrom(args: SettingsArgs): Promise<ResolvedSettingsSource | undefined> {
  const { config, 'secret-id': secretId, 'version-stage': versionStage } = args;
  if (config !== undefined && secretId !== undefined)
    throw new UsageError('use either --config or --secret-id, not both');
  if (versionStage !== undefined && secretId === undefined) throw new UsageError('--version-stage needs --secret-id');
  if (config !== undefined) return { source: new FileSettingsSource(config), origin: `file "${config}"` };
  if (secretId === undefined) return undefined;

  // The AWS SDK is loaded only when a secret is used (compose loads it lazily): file-based commands start faster.
  quietAwsSdk();
  const { composeSecretsSettings } = await import('../functions/poller/compose.js');
  const { source: secrets, region } = await composeSecretsSettings(
    { secretId, ...(versionStage ? { versionStage } : {}) },
    {},
  );
  await requireRegion(region, 'reading the secret', 'check --secret-id ...');
  return {
    source: {
      async load(options) {
        try {
          return await secrets.load(options);
        } catch (err) {
          if (
            err instanceof SecretAccessError &&
            (err.cause as { name?: string } | undefined)?.name === 'CredentialsProviderError'
          ) {
            throw new ConfigurationError('No AWS credentials were found for reading the secret.', {
              cause: err,
              hint: 'log in as for the AWS CLI (e.g. `aws sso login` and AWS_PROFILE=...), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.',
            });
          }
          throw err;
        }
      },
    },
    origin: `secret "${secretId}"${versionStage ? ` (${versionStage})` : ''}`,
  };
}

/** Fails with the fix when an SDK client finds no region (AWS_REGION, or a profile with one). */
export async function requireRegion(region: () => Promise<string>, purpose: string, example: string): Promise<void> {
  try {
    await region();
  } catch (err) {
    throw new ConfigurationError(`No AWS region is configured for ${purpose}.`, {
      cause: err,
      hint: `set AWS_REGION (or AWS_PROFILE with a region), e.g. \`AWS_REGION=eu-central-1 imap-event-source ${example}\`.`,
    });
  }
}

/**
 * The AWS SDK warns on Node 20 that future SDK releases will need Node 22: a note for maintainers
 * (package.json pins the SDK), noise in an admin's terminal. Respects an explicit setting.
 */
export function quietAwsSdk(): void {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
}
