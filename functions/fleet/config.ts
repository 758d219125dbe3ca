/**
 * The dispatcher's and the worker's environment (names and defaults in contract/fleet.ts), validated like
 * readPollerConfig: every problem names the variable and the rule, never the value.
 */
import {
  DISPATCHER_ENV,
  FLEET_DEFAULTS,
  FLEET_LIMITS,
  isSecretPrefix,
  SECRET_PREFIX_RULE,
  WORKER_ENV,
} from '../poller/contract/fleet.js';
import { EVENT_SOURCE_RULE, isEventSource, POLLER_DEFAULTS } from '../poller/contract/poller-env.js';
import { ConfigurationError } from '../poller/errors.js';

export interface DispatcherConfig {
  readonly table: string;
  readonly queueUrl: string;
  /** The declared-mailboxes file; absent when cdk.json declares none. */
  readonly declared?: { readonly bucket: string; readonly key: string };
  readonly maxPerCycle: number;
}

export interface WorkerConfig {
  readonly table: string;
  readonly queueUrl: string;
  readonly eventBusName: string;
  readonly eventSource: string;
  readonly rawBucket?: string;
  readonly secretPrefix: string;
  readonly hostConnectionCap: number;
  /** The pool's size: whether the host cap can bind at all (contract `hostCapCanBind`). */
  readonly poolConcurrency: number;
  readonly maxMessagesPerTurn: number;
}

class EnvReader {
  readonly problems: string[] = [];
  constructor(private readonly env: NodeJS.ProcessEnv) {}

  optional(name: string): string | undefined {
    return this.env[name]?.trim() || undefined;
  }

  required(name: string): string {
    const v = this.optional(name);
    if (!v) this.problems.push(`${name} is not set`);
    return v ?? '';
  }

  integer(name: string, fallback: number, min: number, max: number, rule = `must be an integer from ${min} to ${max}`) {
    const raw = this.optional(name);
    const n = raw === undefined ? fallback : Number(raw);
    if (!(Number.isInteger(n) && n >= min && n <= max)) this.problems.push(`${name} ${rule}`);
    return n;
  }

  check(what: string): void {
    if (this.problems.length > 0) {
      throw new ConfigurationError(`The fleet ${what} is misconfigured: ${this.problems.join('; ')}.`, {
        hint: 'set these environment variables on the function (the CDK fleet construct sets all of them).',
      });
    }
  }
}

export function readDispatcherConfig(env: NodeJS.ProcessEnv): DispatcherConfig {
  const r = new EnvReader(env);
  const table = r.required(DISPATCHER_ENV.table);
  const queueUrl = r.required(DISPATCHER_ENV.queueUrl);
  const bucket = r.optional(DISPATCHER_ENV.declaredBucket);
  const key = r.optional(DISPATCHER_ENV.declaredKey);
  if (!bucket !== !key)
    r.problems.push(`${DISPATCHER_ENV.declaredBucket} and ${DISPATCHER_ENV.declaredKey} must be set together`);
  const maxPerCycle = r.integer(
    DISPATCHER_ENV.maxPerCycle,
    FLEET_DEFAULTS.maxPerCycle,
    FLEET_LIMITS.maxPerCycle.min,
    FLEET_LIMITS.maxPerCycle.max,
  );
  r.check('dispatcher');
  return { table, queueUrl, ...(bucket && key ? { declared: { bucket, key } } : {}), maxPerCycle };
}

export function readWorkerConfig(env: NodeJS.ProcessEnv): WorkerConfig {
  const r = new EnvReader(env);
  const table = r.required(WORKER_ENV.table);
  const queueUrl = r.required(WORKER_ENV.queueUrl);
  const eventBusName = r.required(WORKER_ENV.eventBusName);
  const eventSource = r.optional(WORKER_ENV.eventSource) ?? POLLER_DEFAULTS.eventSource;
  if (!isEventSource(eventSource)) r.problems.push(`${WORKER_ENV.eventSource} ${EVENT_SOURCE_RULE}`);
  const secretPrefix = r.optional(WORKER_ENV.secretPrefix) ?? FLEET_DEFAULTS.secretPrefix;
  if (!isSecretPrefix(secretPrefix)) r.problems.push(`${WORKER_ENV.secretPrefix} ${SECRET_PREFIX_RULE}`);
  const hostConnectionCap = r.integer(
    WORKER_ENV.hostConnectionCap,
    FLEET_DEFAULTS.hostConnectionCap,
    FLEET_LIMITS.hostConnectionCap.min,
    FLEET_LIMITS.hostConnectionCap.max,
  );
  const poolConcurrency = r.integer(
    WORKER_ENV.poolConcurrency,
    FLEET_DEFAULTS.poolConcurrency,
    FLEET_LIMITS.poolConcurrency.min,
    FLEET_LIMITS.poolConcurrency.max,
  );
  const maxMessagesPerTurn = r.integer(
    WORKER_ENV.maxMessagesPerTurn,
    FLEET_DEFAULTS.maxMessagesPerTurn,
    FLEET_LIMITS.maxMessagesPerTurn.min,
    FLEET_LIMITS.maxMessagesPerTurn.max,
  );
  r.check('worker');
  const rawBucket = r.optional(WORKER_ENV.rawBucket);
  return {
    table,
    queueUrl,
    eventBusName,
    eventSource,
    ...(rawBucket ? { rawBucket } : {}),
    secretPrefix,
    hostConnectionCap,
    poolConcurrency,
    maxMessagesPerTurn,
  };
}
