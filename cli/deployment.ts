/**
 * The mailboxes of a deployment as the CDK app sees them: the `imapEventSource` context of a cdk.json (an
 * object, or the path of a JSON file), validated by the app's own `parseConfig`. For `status`.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { ConfigurationError } from '../functions/poller/errors.js';
import { CONFIG_CONTEXT_KEY, ConfigError, parseConfig } from '../lib/config.js';

export interface DeployedMailbox {
  readonly id: string;
  /** Secret name or ARN, as the poller reads it. */
  readonly secretId: string;
  /** Seconds without a successful poll after which the staleness alarm fires. */
  readonly staleAfterSeconds: number;
}

/** The mailboxes configured in `cdkJsonPath`; undefined when the file has no `imapEventSource` context. */
export async function readDeployedMailboxes(cdkJsonPath: string): Promise<DeployedMailbox[] | undefined> {
  const json = await readJson(cdkJsonPath);
  const raw = (json as { context?: Record<string, unknown> })?.context?.[CONFIG_CONTEXT_KEY];
  if (raw === undefined) return undefined;
  // A string names a JSON file; the CDK app resolves it against its working directory, where cdk.json lives.
  const value = typeof raw === 'string' ? await readJson(resolve(dirname(cdkJsonPath), raw)) : raw;
  try {
    const config = parseConfig(value);
    return config.mailboxes.map((m) => ({
      id: m.id,
      secretId: m.secretArn ?? m.secretName!,
      staleAfterSeconds: m.alarmIntervalMinutes * 60 * config.alarms.staleAfterIntervals,
    }));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    throw new ConfigurationError(
      `The ${CONFIG_CONTEXT_KEY} configuration in "${cdkJsonPath}" is invalid: ${err.problems.join('; ')}.`,
      {
        hint: 'fix it as `cdk synth` would ask you to (docs/deploy.md), or name the mailboxes with --mailbox.',
      },
    );
  }
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigurationError(`Cannot read "${path}" (${(err as { code?: string }).code ?? 'ERROR'}).`, {
      cause: err,
      hint: "pass the deployment's cdk.json with --cdk-json, or name the mailboxes with --mailbox.",
    });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ConfigurationError(`"${path}" is not valid JSON.`, { cause: err, hint: 'correct the file.' });
  }
}
