/**
 * `imap-event-source secret stage|verify|promote|rollback`: rotate a mailbox secret in one command per step,
 * with Secrets Manager's staging labels (no version ids copied by hand):
 *   stage     a new value (validated offline) becomes AWSPENDING; the poller keeps AWSCURRENT
 *   verify    connects with the AWSPENDING value, step by step (what `check` does)
 *   promote   AWSCURRENT moves to the AWSPENDING version; the old current becomes AWSPREVIOUS
 *   rollback  AWSCURRENT moves back to the AWSPREVIOUS version (the one just replaced becomes AWSPREVIOUS)
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { parseMailboxSettings as parseSettings } from '../../functions/poller/adapters/pem-checks.js';
import { ConfigurationError, SecretAccessError, SettingsValidationError } from '../../functions/poller/errors.js';
import type { CommandContext } from '../context.js';
import { printInvalidSettings, printStep, UsageError } from '../output.js';
import { quietAwsSdk, readSettingsFile, requireRegion, settingsSourceFrom } from '../settings-source.js';
import { runCheck } from './check.js';

export const ROTATION_SUBCOMMANDS = ['stage', 'verify', 'promote', 'rollback'] as const;
export type RotationSubcommand = (typeof ROTATION_SUBCOMMANDS)[number];

export const ROTATION_HELP = `       imap-event-source secret stage --secret-id ID [FILE | -]
       imap-event-source secret verify --secret-id ID [--timeout SECONDS]
       imap-event-source secret promote --secret-id ID
       imap-event-source secret rollback --secret-id ID

Rotation (docs/operations.md), one command per step, no version ids by hand:
stage      validates the new value (FILE, or stdin) offline and stores it as AWSPENDING; the poller
           keeps using AWSCURRENT. A previous AWSPENDING value is replaced.
verify     connects with the AWSPENDING value exactly as the poller will (what \`check\` does).
promote    moves AWSCURRENT to the AWSPENDING version (validated again); the old value becomes
           AWSPREVIOUS. The poller follows within 60 seconds, at once after a failed login.
rollback   moves AWSCURRENT back to the AWSPREVIOUS version.`;

export async function runRotation(
  sub: RotationSubcommand,
  argv: string[],
  ctx: CommandContext,
  readStdin: () => Promise<string>,
): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { 'secret-id': { type: 'string' }, timeout: { type: 'string', default: '10' } },
    allowPositionals: sub === 'stage',
    strict: true,
  });
  const secretId = values['secret-id'];
  if (!secretId) throw new UsageError(`secret ${sub} needs --secret-id ID`);

  if (sub === 'verify') {
    const timeoutMs = Number(values.timeout) * 1000;
    if (!(timeoutMs > 0)) throw new UsageError('--timeout must be a positive number of seconds');
    const resolved = (await settingsSourceFrom({ 'secret-id': secretId, 'version-stage': 'AWSPENDING' }))!;
    return (await runCheck(() => resolved.source.load({ fresh: true }), resolved.origin, { timeoutMs, ctx })) ? 0 : 1;
  }

  const client = await secretsClient();
  const secrets = new SecretVersions(client, secretId);
  if (sub === 'stage') {
    if (positionals.length > 1) throw new UsageError('secret stage takes one FILE (or - for stdin)');
    const file = positionals[0] ?? '-';
    const origin = file === '-' ? 'stdin' : `file "${file}"`;
    const text = file === '-' ? await readStdin() : await readSettingsFile(file);
    try {
      parseSettings(text, origin);
    } catch (err) {
      if (!(err instanceof SettingsValidationError)) throw err;
      printInvalidSettings(ctx.stdout, origin, err);
      return 1;
    }
    const versionId = await secrets.stagePending(text);
    printStep(
      ctx.stdout,
      'ok',
      'STAGED',
      `${origin} is version ${versionId} of secret "${secretId}", labelled AWSPENDING; the poller still uses AWSCURRENT`,
    );
    ctx.stdout.write(`  Next: imap-event-source secret verify --secret-id ${secretId}\n`);
    return 0;
  }
  if (sub === 'promote') {
    const before = await secrets.stages();
    const pending = before.byStage.get('AWSPENDING');
    if (!pending) {
      throw new ConfigurationError(`The secret "${secretId}" has no AWSPENDING version to promote.`, {
        hint: `stage one first: imap-event-source secret stage --secret-id ${secretId} new.json`,
      });
    }
    const current = before.byStage.get('AWSCURRENT');
    if (pending === current) {
      await secrets.removeStage('AWSPENDING', pending);
      printStep(ctx.stdout, 'ok', 'PROMOTED', `version ${pending} is already AWSCURRENT; removed its AWSPENDING label`);
      return 0;
    }
    // A value that does not parse would stop every poll: checked again, in case it was staged around `stage`.
    parseSettings(await secrets.value('AWSPENDING'), `secret "${secretId}" (AWSPENDING)`);
    await secrets.moveCurrent(pending, current);
    await secrets.removeStage('AWSPENDING', pending);
    printStep(
      ctx.stdout,
      'ok',
      'PROMOTED',
      `AWSCURRENT of "${secretId}" is version ${pending}${current ? `; version ${current} is AWSPREVIOUS` : ''}`,
    );
    ctx.stdout.write(
      `  The poller follows within 60 seconds. Undo: imap-event-source secret rollback --secret-id ${secretId}\n`,
    );
    return 0;
  }
  // rollback
  const before = await secrets.stages();
  const previous = before.byStage.get('AWSPREVIOUS');
  if (!previous) {
    throw new ConfigurationError(`The secret "${secretId}" has no AWSPREVIOUS version to roll back to.`, {
      hint: 'nothing was promoted since the secret was created; stage and promote the value you want instead.',
    });
  }
  const current = before.byStage.get('AWSCURRENT');
  await secrets.moveCurrent(previous, current);
  printStep(
    ctx.stdout,
    'ok',
    'ROLLED BACK',
    `AWSCURRENT of "${secretId}" is version ${previous} again${current ? `; version ${current} is AWSPREVIOUS` : ''}`,
  );
  ctx.stdout.write('  The poller follows within 60 seconds.\n');
  return 0;
}

async function secretsClient(): Promise<SecretsManagerClient> {
  quietAwsSdk();
  const { composeSecretsManager } = await import('../../functions/poller/compose.js');
  const client = await composeSecretsManager({});
  await requireRegion(() => client.config.region(), 'the secret', 'secret promote --secret-id ...');
  return client;
}

/** The staging labels of one secret, and the moves between them. */
class SecretVersions {
  constructor(
    private readonly client: SecretsManagerClient,
    private readonly secretId: string,
  ) {}

  /** Version id per staging label. */
  async stages(): Promise<{ byStage: Map<string, string> }> {
    const { DescribeSecretCommand } = await import('@aws-sdk/client-secrets-manager');
    const res = await this.call('describe', () =>
      this.client.send(new DescribeSecretCommand({ SecretId: this.secretId })),
    );
    const byStage = new Map<string, string>();
    for (const [version, stages] of Object.entries(res.VersionIdsToStages ?? {})) {
      for (const stage of stages) byStage.set(stage, version);
    }
    return { byStage };
  }

  async value(stage: string): Promise<string> {
    const { GetSecretValueCommand } = await import('@aws-sdk/client-secrets-manager');
    const res = await this.call('read', () =>
      this.client.send(new GetSecretValueCommand({ SecretId: this.secretId, VersionStage: stage })),
    );
    return res.SecretString ?? '';
  }

  async stagePending(text: string): Promise<string> {
    const { PutSecretValueCommand } = await import('@aws-sdk/client-secrets-manager');
    const res = await this.call('stage', () =>
      this.client.send(
        new PutSecretValueCommand({
          SecretId: this.secretId,
          SecretString: text,
          VersionStages: ['AWSPENDING'],
          ClientRequestToken: randomUUID(),
        }),
      ),
    );
    return res.VersionId!;
  }

  /**
   * AWSCURRENT to `to`, AWSPREVIOUS to the version it left. Secrets Manager moves AWSPREVIOUS itself; the label is
   * set explicitly when it did not (emulators), so both behave the same.
   */
  async moveCurrent(to: string, from: string | undefined): Promise<void> {
    await this.updateStage('AWSCURRENT', to, from);
    if (!from) return;
    const after = await this.stages();
    const previous = after.byStage.get('AWSPREVIOUS');
    if (previous !== from) await this.updateStage('AWSPREVIOUS', from, previous);
  }

  async removeStage(stage: string, from: string): Promise<void> {
    await this.updateStage(stage, undefined, from);
  }

  private async updateStage(stage: string, moveTo: string | undefined, removeFrom: string | undefined): Promise<void> {
    const { UpdateSecretVersionStageCommand } = await import('@aws-sdk/client-secrets-manager');
    await this.call('update stage', () =>
      this.client.send(
        new UpdateSecretVersionStageCommand({
          SecretId: this.secretId,
          VersionStage: stage,
          ...(moveTo ? { MoveToVersionId: moveTo } : {}),
          ...(removeFrom ? { RemoveFromVersionId: removeFrom } : {}),
        }),
      ),
    );
  }

  private async call<T>(step: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      const name = (err as { name?: string })?.name ?? 'Error';
      const hints: Record<string, string> = {
        ResourceNotFoundException: `check the secret name or ARN "${this.secretId}" and the region.`,
        AccessDeniedException:
          'rotation needs secretsmanager:DescribeSecret, GetSecretValue, PutSecretValue and UpdateSecretVersionStage on the secret (and kms:Decrypt/GenerateDataKey on its key).',
        CredentialsProviderError:
          'log in as for the AWS CLI (e.g. `aws sso login` and AWS_PROFILE=...), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.',
      };
      throw new SecretAccessError(`Secrets Manager refused the ${step} of secret "${this.secretId}" (${name}).`, {
        cause: err,
        ...(hints[name] ? { hint: hints[name] } : {}),
      });
    }
  }
}
