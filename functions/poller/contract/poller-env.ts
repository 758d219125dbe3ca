/**
 * The poller's environment: the one contract between the CDK construct (which writes it) and the Lambda (which
 * reads it). Names, defaults and rules live here only; `pollerEnvironment` and `readPollerConfig` are inverse.
 */
import type { StartAt } from '../core/types.js';
import { ConfigurationError } from '../errors.js';
import { isMailboxId, MAILBOX_ID_RULE } from './mailbox-id.js';
import { parseStartAt, START_AT_RULE } from './start-at.js';

/** The variable names. */
export const POLLER_ENV = {
  mailboxId: 'MAILBOX_ID',
  secretId: 'SECRET_ID',
  checkpointTable: 'CHECKPOINT_TABLE',
  eventBusName: 'EVENT_BUS_NAME',
  eventSource: 'EVENT_SOURCE',
  startAt: 'START_AT',
  maxMessagesPerRun: 'MAX_MESSAGES_PER_RUN',
  rawBucket: 'RAW_BUCKET',
  /** Recorded in the status item, so `imap-event-source status` judges staleness as the staleness alarm does. */
  staleAfterSeconds: 'STALE_AFTER_SECONDS',
  /** Parse worker threads (0 = off, the default); used only with more than one core (docs/configuration.md). */
  parseWorkers: 'PARSE_WORKERS',
} as const;

/** Defaults shared by cdk.json, the construct, the Lambda and the CLI. */
export const POLLER_DEFAULTS = {
  eventSource: 'imap-event-source',
  busName: 'imap-event-source',
  startAt: 'now',
  maxMessagesPerRun: 1_000,
} as const;

/** Upper bound of MAX_MESSAGES_PER_RUN (and of `maxMessagesPerRun` in cdk.json). */
export const MAX_MESSAGES_PER_RUN_LIMIT = 100_000;
export const MAX_MESSAGES_PER_RUN_RULE = `must be an integer from 1 to ${MAX_MESSAGES_PER_RUN_LIMIT}`;

/** EventBridge's rule for `Source`, minus the `aws.` prefix reserved for AWS services. */
export const EVENT_SOURCE_RULE = 'must be 1-256 of A-Z a-z 0-9 . _ - / and must not start with "aws."';
export function isEventSource(value: unknown): value is string {
  return typeof value === 'string' && /^[A-Za-z0-9._/-]{1,256}$/.test(value) && !value.startsWith('aws.');
}

export function isMaxMessagesPerRun(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= MAX_MESSAGES_PER_RUN_LIMIT;
}

/** The poller's configuration, validated. */
export interface PollerConfig {
  readonly mailboxId: string;
  readonly secretId: string;
  readonly checkpointTable: string;
  readonly eventBusName: string;
  readonly eventSource: string;
  readonly startAt: StartAt;
  readonly rawBucket?: string;
  readonly maxMessagesPerRun: number;
  /** Seconds without a successful poll after which the mailbox counts as stale. */
  readonly staleAfterSeconds?: number;
  /** Parse worker threads; 0 or absent = parse in the drain's thread. */
  readonly parseWorkers?: number;
}

/** Upper bound of PARSE_WORKERS. */
export const MAX_PARSE_WORKERS = 16;

/** What the construct knows at synth time (values may be CDK tokens); the optional ones default in the Lambda. */
export interface PollerEnvironmentInput {
  readonly mailboxId: string;
  readonly secretId: string;
  readonly checkpointTable: string;
  readonly eventBusName: string;
  readonly eventSource?: string;
  readonly startAt?: string;
  readonly maxMessagesPerRun?: number;
  readonly rawBucket?: string;
  readonly staleAfterSeconds?: number;
  readonly parseWorkers?: number;
}

/** The environment variables the construct sets on the function. */
export function pollerEnvironment(input: PollerEnvironmentInput): Record<string, string> {
  return {
    [POLLER_ENV.mailboxId]: input.mailboxId,
    [POLLER_ENV.secretId]: input.secretId,
    [POLLER_ENV.checkpointTable]: input.checkpointTable,
    [POLLER_ENV.eventBusName]: input.eventBusName,
    [POLLER_ENV.eventSource]: input.eventSource ?? POLLER_DEFAULTS.eventSource,
    [POLLER_ENV.startAt]: input.startAt ?? POLLER_DEFAULTS.startAt,
    ...(input.maxMessagesPerRun !== undefined
      ? { [POLLER_ENV.maxMessagesPerRun]: String(input.maxMessagesPerRun) }
      : {}),
    ...(input.rawBucket !== undefined ? { [POLLER_ENV.rawBucket]: input.rawBucket } : {}),
    ...(input.staleAfterSeconds !== undefined
      ? { [POLLER_ENV.staleAfterSeconds]: String(input.staleAfterSeconds) }
      : {}),
    ...(input.parseWorkers !== undefined ? { [POLLER_ENV.parseWorkers]: String(input.parseWorkers) } : {}),
  };
}

/**
 * Problems with the construct's input that would make every run fail, each as `field: rule` (empty when fine).
 * Token values (unknown until deploy) are the caller's to skip.
 */
export function pollerInputProblems(input: {
  readonly mailboxId?: unknown;
  readonly eventSource?: unknown;
  readonly startAt?: unknown;
  readonly maxMessagesPerRun?: unknown;
}): string[] {
  const problems: string[] = [];
  if (!isMailboxId(input.mailboxId)) problems.push(`mailboxId: ${MAILBOX_ID_RULE}`);
  if (input.eventSource !== undefined && !isEventSource(input.eventSource))
    problems.push(`eventSource: ${EVENT_SOURCE_RULE}`);
  if (input.startAt !== undefined && (typeof input.startAt !== 'string' || !parseStartAt(input.startAt)))
    problems.push(`startAt: ${START_AT_RULE}`);
  if (input.maxMessagesPerRun !== undefined && !isMaxMessagesPerRun(input.maxMessagesPerRun))
    problems.push(`maxMessagesPerRun: ${MAX_MESSAGES_PER_RUN_RULE}`);
  return problems;
}

/** Reads the Lambda environment; every problem names the variable and the rule, never the value. */
export function readPollerConfig(env: NodeJS.ProcessEnv): PollerConfig {
  const problems: string[] = [];
  const value = (name: string): string | undefined => env[name]?.trim() || undefined;
  const required = (name: string): string => {
    const v = value(name);
    if (!v) problems.push(`${name} is not set`);
    return v ?? '';
  };
  const mailboxId = required(POLLER_ENV.mailboxId);
  const secretId = required(POLLER_ENV.secretId);
  const checkpointTable = required(POLLER_ENV.checkpointTable);
  const eventBusName = required(POLLER_ENV.eventBusName);
  if (mailboxId && !isMailboxId(mailboxId)) problems.push(`${POLLER_ENV.mailboxId} must be ${MAILBOX_ID_RULE}`);
  const eventSource = value(POLLER_ENV.eventSource) ?? POLLER_DEFAULTS.eventSource;
  if (!isEventSource(eventSource)) problems.push(`${POLLER_ENV.eventSource} ${EVENT_SOURCE_RULE}`);
  const startAt = parseStartAt(env[POLLER_ENV.startAt]);
  if (!startAt) problems.push(`${POLLER_ENV.startAt} ${START_AT_RULE}`);
  const rawMax = value(POLLER_ENV.maxMessagesPerRun);
  const maxMessagesPerRun = rawMax === undefined ? POLLER_DEFAULTS.maxMessagesPerRun : Number(rawMax);
  if (!isMaxMessagesPerRun(maxMessagesPerRun))
    problems.push(`${POLLER_ENV.maxMessagesPerRun} ${MAX_MESSAGES_PER_RUN_RULE}`);
  const rawStale = value(POLLER_ENV.staleAfterSeconds);
  const staleAfterSeconds = rawStale === undefined ? undefined : Number(rawStale);
  if (staleAfterSeconds !== undefined && !(Number.isInteger(staleAfterSeconds) && staleAfterSeconds >= 1))
    problems.push(`${POLLER_ENV.staleAfterSeconds} must be a positive integer`);
  const rawWorkers = value(POLLER_ENV.parseWorkers);
  const parseWorkers = rawWorkers === undefined ? 0 : Number(rawWorkers);
  if (!(Number.isInteger(parseWorkers) && parseWorkers >= 0 && parseWorkers <= MAX_PARSE_WORKERS))
    problems.push(`${POLLER_ENV.parseWorkers} must be an integer from 0 to ${MAX_PARSE_WORKERS}`);
  if (problems.length > 0) {
    throw new ConfigurationError(`The poller is misconfigured: ${problems.join('; ')}.`, {
      hint: 'set these environment variables on the function (the CDK stack sets all of them).',
    });
  }
  const rawBucket = value(POLLER_ENV.rawBucket);
  return {
    mailboxId,
    secretId,
    checkpointTable,
    eventBusName,
    eventSource,
    startAt: startAt!,
    maxMessagesPerRun,
    ...(rawBucket ? { rawBucket } : {}),
    ...(staleAfterSeconds !== undefined ? { staleAfterSeconds } : {}),
    ...(parseWorkers > 0 ? { parseWorkers } : {}),
  };
}
