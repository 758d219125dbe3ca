import { parseStartAt } from './core/plan.js';
import type { StartAt } from './core/types.js';
import { ConfigurationError } from './errors.js';

/** The poller's environment, validated. */
export interface PollerConfig {
  readonly mailboxId: string;
  readonly secretId: string;
  readonly checkpointTable: string;
  readonly eventBusName: string;
  readonly eventSource: string;
  readonly startAt: StartAt;
  readonly rawBucket?: string;
  readonly maxMessagesPerRun: number;
}

/** Reads the Lambda environment; every problem names the variable and the fix. */
export function readConfig(env: NodeJS.ProcessEnv): PollerConfig {
  const problems: string[] = [];
  const required = (name: string): string => {
    const value = env[name]?.trim();
    if (!value) problems.push(`${name} is not set`);
    return value ?? '';
  };
  const mailboxId = required('MAILBOX_ID');
  const secretId = required('SECRET_ID');
  const checkpointTable = required('CHECKPOINT_TABLE');
  const eventBusName = required('EVENT_BUS_NAME');
  const eventSource = env.EVENT_SOURCE?.trim() || 'imap-event-source';
  const startAt = parseStartAt(env.START_AT);
  if (!startAt) problems.push('START_AT must be "now", "all" or an ISO 8601 date such as 2026-11-01T00:00:00Z');
  if (mailboxId && !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(mailboxId)) {
    problems.push('MAILBOX_ID must be 1-64 characters: letters, digits, ".", "_", "-"');
  }
  let maxMessagesPerRun = 1_000;
  if (env.MAX_MESSAGES_PER_RUN !== undefined && env.MAX_MESSAGES_PER_RUN !== '') {
    maxMessagesPerRun = Number(env.MAX_MESSAGES_PER_RUN);
    if (!Number.isInteger(maxMessagesPerRun) || maxMessagesPerRun < 1)
      problems.push('MAX_MESSAGES_PER_RUN must be a positive integer');
  }
  if (problems.length > 0) {
    throw new ConfigurationError(`The poller is misconfigured: ${problems.join('; ')}.`, {
      hint: 'set these environment variables on the function (the CDK stack sets all of them).',
    });
  }
  const rawBucket = env.RAW_BUCKET?.trim();
  return {
    mailboxId,
    secretId,
    checkpointTable,
    eventBusName,
    eventSource,
    startAt: startAt!,
    maxMessagesPerRun,
    ...(rawBucket ? { rawBucket } : {}),
  };
}
