/**
 * Deployment configuration of the CDK app (contract 3): read from the `imapEventSource` key of the
 * `cdk.json` context, validated here up front so that a typo fails `cdk synth` with a message that
 * names the mailbox and the field, instead of producing a stack that fails at runtime.
 *
 * Pure: no CDK, no file system, no environment. The rules shared with the Lambda and the CLI (mailbox id,
 * start time, event source, defaults) come from the poller's contract.
 */
import {
  FLEET_DEFAULTS,
  FLEET_LIMITS,
  isSecretPrefix,
  isUnderSecretPrefix,
  SECRET_PREFIX_RULE,
} from '../functions/poller/contract/fleet.js';
import { isMailboxId, MAILBOX_ID_RULE } from '../functions/poller/contract/mailbox-id.js';
import {
  EVENT_SOURCE_RULE,
  isEventSource,
  MAX_MESSAGES_PER_RUN_LIMIT,
  POLLER_DEFAULTS,
} from '../functions/poller/contract/poller-env.js';
import { parseStartAt, START_AT_RULE } from '../functions/poller/contract/start-at.js';
import {
  ALARM_DEFAULTS,
  checkAlarmRange,
  failingAlarmWindow,
  scheduleInterval,
  staleAlarmWindow,
} from './schedule-interval.js';

/** One watched mailbox folder: one scheduled poller. */
export interface MailboxConfig {
  /** Unique, lowercase, used in resource names, outputs, events (`mailboxId`) and S3 keys. */
  readonly id: string;
  /** Name of the mailbox secret (imported, or created when `createSecret` is set). */
  readonly secretName?: string;
  /** Complete ARN of an existing mailbox secret (including the 6-character suffix). */
  readonly secretArn?: string;
  /** Create an empty placeholder secret that the admin fills in after the deploy. */
  readonly createSecret: boolean;
  /** ARN of the customer-managed KMS key that encrypts an imported secret, if any. */
  readonly secretKmsKeyArn?: string;
  /** EventBridge schedule expression: `rate(...)` or `cron(...)`. */
  readonly schedule: string;
  /** Where a mailbox without checkpoint starts: `now`, `all` or an ISO date. */
  readonly startAt: string;
  /** Upper bound of messages published per run; the next run continues. */
  readonly maxMessagesPerRun?: number;
  /**
   * The interval the alarms assume, in minutes: derived from `schedule`, or given (required for a cron
   * schedule whose runs are not evenly spaced over every day; then give the longest gap you accept).
   * In fleet mode: the schedule's interval (the mailbox is due again after it).
   */
  readonly alarmIntervalMinutes: number;
  /** Fleet mode only: overrides the secret's `username` (one secret shared by a tenant's mailboxes). */
  readonly username?: string;
  /** Fleet mode only: overrides the secret's `folder`. */
  readonly folder?: string;
}

/** `per-mailbox`: a function, role, schedule and alarms per mailbox. `fleet`: a fixed set of resources for all. */
export type DeploymentMode = 'per-mailbox' | 'fleet';
export const DEPLOYMENT_MODES: readonly DeploymentMode[] = ['per-mailbox', 'fleet'];

/** The options of fleet mode (docs/fleet.md); defaults from the fleet contract's FLEET_DEFAULTS. */
export interface FleetConfig {
  /** Workers at most at once: the SQS event source's maximum concurrency and the worker's reserved concurrency. */
  readonly poolConcurrency: number;
  /** Concurrent IMAP connections per host across the pool. */
  readonly hostConnectionCap: number;
  /** Messages one mailbox may publish per turn before it goes back into the queue. */
  readonly maxMessagesPerTurn: number;
  /** Mailboxes the dispatcher sends per cycle at most (the rest stay due). */
  readonly maxPerCycle: number;
  /** The pool may read only secrets whose names start with this. */
  readonly secretPrefix: string;
  /** Customer-managed KMS key of the mailbox secrets, if they use one. */
  readonly secretKmsKeyArn?: string;
}

/** The alarms of every mailbox (docs/operations.md, "Alarms"). */
export interface AlarmsConfig {
  /** Intervals without a successful poll before the staleness alarm fires (>= 2). */
  readonly staleAfterIntervals: number;
  /** Failed runs before the failure alarm fires. */
  readonly failingAfterRuns: number;
  /** Existing SNS topic for alarm and OK notifications. */
  readonly topicArn?: string;
  /** Create an SNS topic for the notifications (subscribe to it after the deploy). */
  readonly createTopic: boolean;
}

/** Opt-in EventBridge archive of this stack's events on the bus. */
export interface ArchiveConfig {
  readonly enabled: boolean;
  /** Days the archive keeps events; 0 = indefinitely. */
  readonly retentionDays: number;
}

/** Opt-in registration of the event schemas in an EventBridge schema registry. */
export interface SchemaRegistryConfig {
  readonly enabled: boolean;
  readonly registryName: string;
}

/** Placement of the pollers in an existing VPC (private mail servers). */
export interface VpcConfig {
  /** Id of the existing VPC (looked up at synth time). */
  readonly vpcId: string;
  /** Address range of the IMAP server(s); the only non-HTTPS egress allowed. */
  readonly imapServerCidr: string;
  /** IMAP port of the server. */
  readonly imapPort: number;
  /** Subnets to use; default: the VPC's private subnets. */
  readonly subnetIds?: readonly string[];
  /** Create interface endpoints (Secrets Manager, EventBridge) and gateway endpoints (DynamoDB, S3). */
  readonly endpoints: boolean;
}

/** Optional storage of each raw message in S3 (issue #5). */
export interface RawMessageStorageConfig {
  readonly enabled: boolean;
  /** Objects expire after this many days. */
  readonly expirationDays: number;
}

/** The validated deployment configuration, with defaults applied. */
export interface AppConfig {
  readonly stackName: string;
  /** @default 'per-mailbox' */
  readonly mode: DeploymentMode;
  /** Present exactly in fleet mode. */
  readonly fleet?: FleetConfig;
  readonly busName: string;
  /** Create the bus (true) or use an existing bus of that name (false). */
  readonly createBus: boolean;
  readonly eventSource: string;
  /** Reserve a concurrency of 1 per poller; turn off where the account quota is too small. */
  readonly reserveConcurrency: boolean;
  readonly mailboxes: readonly MailboxConfig[];
  readonly vpc?: VpcConfig;
  readonly rawMessageStorage: RawMessageStorageConfig;
  readonly alarms: AlarmsConfig;
  readonly archive: ArchiveConfig;
  readonly schemaRegistry: SchemaRegistryConfig;
}

/** The context key in `cdk.json` that holds the configuration (or the path of a JSON file). */
export const CONFIG_CONTEXT_KEY = 'imapEventSource';

export const DEFAULTS = {
  stackName: 'ImapEventSource',
  busName: POLLER_DEFAULTS.busName,
  eventSource: POLLER_DEFAULTS.eventSource,
  schedule: 'rate(1 minute)',
  startAt: POLLER_DEFAULTS.startAt,
  imapPort: 993,
  rawExpirationDays: 30,
  archiveRetentionDays: 30,
  schemaRegistryName: 'imap-event-source',
} as const;

/** Thrown when the configuration is invalid; lists every problem found, one per line. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid ${CONFIG_CONTEXT_KEY} configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

const SECRET_NAME = /^[A-Za-z0-9/_+=.@-]{1,512}$/;
const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$/;
const KMS_KEY_ARN = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+$/;
const BUS_NAME = /^[A-Za-z0-9._/-]{1,256}$/;
const STACK_NAME = /^[A-Za-z][A-Za-z0-9-]{0,127}$/;
const RATE = /^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$/;
const CRON = /^cron\((\S+ ){5}\S+\)$/;
const CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;
const VPC_ID = /^vpc-[0-9a-f]{8,17}$/;
const SUBNET_ID = /^subnet-[0-9a-f]{8,17}$/;
const TOPIC_ARN = /^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$/;
const REGISTRY_NAME = /^[A-Za-z0-9._-]{1,64}$/;

const STACK_KEYS = [
  'stackName',
  'mode',
  'fleet',
  'busName',
  'createBus',
  'eventSource',
  'reserveConcurrency',
  'mailboxes',
  'vpc',
  'rawMessageStorage',
  'alarms',
  'archive',
  'schemaRegistry',
];
const MAILBOX_KEYS = [
  'id',
  'secretName',
  'secretArn',
  'createSecret',
  'secretKmsKeyArn',
  'schedule',
  'startAt',
  'maxMessagesPerRun',
  'alarmIntervalMinutes',
];
/** In fleet mode: no per-mailbox resources (secret, key grant, alarms), but per-mailbox `username` and `folder`. */
const FLEET_MAILBOX_KEYS = ['id', 'secretName', 'secretArn', 'username', 'folder', 'schedule', 'startAt'];
const FLEET_ONLY_MAILBOX_KEYS = ['username', 'folder'];
/** Per-mailbox options that fleet mode replaces, and with what. */
const NOT_IN_FLEET: Record<string, string> = {
  createSecret: 'not in fleet mode: create the secret under fleet.secretPrefix before the deploy',
  secretKmsKeyArn: 'not in fleet mode: give the key of all mailbox secrets as fleet.secretKmsKeyArn',
  maxMessagesPerRun: 'not in fleet mode: the pool uses fleet.maxMessagesPerTurn for every mailbox',
  alarmIntervalMinutes: 'not in fleet mode: its alarms are aggregate (docs/fleet.md, "Monitoring")',
};
const FLEET_KEYS = [
  'poolConcurrency',
  'hostConnectionCap',
  'maxMessagesPerTurn',
  'maxPerCycle',
  'secretPrefix',
  'secretKmsKeyArn',
];
const OVERRIDE = /^\P{Cc}{1,1024}$/u;
const VPC_KEYS = ['vpcId', 'imapServerCidr', 'imapPort', 'subnetIds', 'endpoints'];
const RAW_KEYS = ['enabled', 'expirationDays'];
const ALARM_KEYS = ['staleAfterIntervals', 'failingAfterRuns', 'topicArn', 'createTopic'];
const ARCHIVE_KEYS = ['enabled', 'retentionDays'];
const REGISTRY_KEYS = ['enabled', 'registryName'];

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Collects problems; every message starts with the field's location. */
class Problems {
  readonly list: string[] = [];
  add(where: string, rule: string): void {
    this.list.push(`${where}: ${rule}`);
  }
  unknownKeys(where: string, obj: Json, allowed: readonly string[]): void {
    for (const key of Object.keys(obj)) {
      if (!allowed.includes(key)) this.add(`${where}.${key}`, `unknown field (allowed: ${allowed.join(', ')})`);
    }
  }
  string(where: string, value: unknown, pattern: RegExp, rule: string): string | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || !pattern.test(value)) {
      this.add(where, rule);
      return undefined;
    }
    return value;
  }
  boolean(where: string, value: unknown, fallback: boolean): boolean {
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') this.add(where, 'must be true or false');
    return value === true;
  }
  integer(where: string, value: unknown, min: number, max: number): number | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      this.add(where, `must be an integer from ${min} to ${max}`);
      return undefined;
    }
    return value;
  }
}

/** True for `rate(1 minute)`, `rate(5 minutes)`, `cron(0/5 * * * ? *)`; AWS wants the singular unit for 1 only. */
export function isScheduleExpression(value: string): boolean {
  const rate = RATE.exec(value);
  if (rate) {
    const n = Number(rate[1]);
    return n >= 1 && rate[2]!.endsWith('s') === (n !== 1);
  }
  return CRON.test(value);
}

function isCidr(value: string): boolean {
  const m = CIDR.exec(value);
  return m !== null && m.slice(1, 5).every((octet) => Number(octet) <= 255) && Number(m[5]) <= 32;
}

/** `support-eu` -> `SupportEu`: the mailbox's part of construct ids and output names. */
export function pascalCase(id: string): string {
  return id
    .split('-')
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join('');
}

function parseMailbox(
  raw: unknown,
  index: number,
  problems: Problems,
  alarms: Pick<AlarmsConfig, 'staleAfterIntervals' | 'failingAfterRuns'>,
  fleet: Pick<FleetConfig, 'secretPrefix'> | undefined,
): MailboxConfig | undefined {
  if (!isObject(raw)) {
    problems.add(`mailboxes[${index}]`, 'must be an object');
    return undefined;
  }
  const idOk = isMailboxId(raw.id);
  const where = idOk ? `mailbox "${raw.id as string}"` : `mailboxes[${index}]`;
  if (!idOk) {
    problems.add(`${where}.id`, `required; ${MAILBOX_ID_RULE}`);
  }
  if (fleet) {
    for (const key of Object.keys(raw)) {
      if (NOT_IN_FLEET[key]) problems.add(`${where}.${key}`, NOT_IN_FLEET[key]);
    }
    problems.unknownKeys(
      where,
      Object.fromEntries(Object.entries(raw).filter(([key]) => !NOT_IN_FLEET[key])),
      FLEET_MAILBOX_KEYS,
    );
  } else {
    for (const key of FLEET_ONLY_MAILBOX_KEYS) {
      if (raw[key] !== undefined)
        problems.add(`${where}.${key}`, 'only in fleet mode (mode "fleet"); else set it in the secret');
    }
    problems.unknownKeys(
      where,
      Object.fromEntries(Object.entries(raw).filter(([key]) => !FLEET_ONLY_MAILBOX_KEYS.includes(key))),
      MAILBOX_KEYS,
    );
  }
  const username = problems.string(
    `${where}.username`,
    raw.username,
    OVERRIDE,
    'must be 1-1024 characters without control characters',
  );
  const folder = problems.string(
    `${where}.folder`,
    raw.folder,
    OVERRIDE,
    'must be 1-1024 characters without control characters',
  );

  // Fleet mode reports createSecret above and goes on as without it.
  const createSecret = fleet ? false : problems.boolean(`${where}.createSecret`, raw.createSecret, false);
  const secretName = problems.string(
    `${where}.secretName`,
    raw.secretName,
    SECRET_NAME,
    'must be a Secrets Manager secret name (1-512 of A-Z a-z 0-9 / _ + = . @ -)',
  );
  const secretArn = problems.string(
    `${where}.secretArn`,
    raw.secretArn,
    SECRET_ARN,
    'must be the complete ARN of a Secrets Manager secret, including its 6-character suffix',
  );
  const secretKmsKeyArn = problems.string(
    `${where}.secretKmsKeyArn`,
    raw.secretKmsKeyArn,
    KMS_KEY_ARN,
    'must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)',
  );
  if (raw.secretName !== undefined && raw.secretArn !== undefined) {
    problems.add(`${where}.secretArn`, 'give either secretName or secretArn, not both');
  } else if (createSecret && raw.secretArn !== undefined) {
    problems.add(
      `${where}.secretArn`,
      'cannot be combined with createSecret (a created secret has no ARN yet); use secretName',
    );
  } else if (!createSecret && raw.secretName === undefined && raw.secretArn === undefined) {
    problems.add(
      `${where}.secretName`,
      fleet
        ? 'required: give secretName or secretArn of the mailbox secret (several mailboxes may share one)'
        : 'required: give secretName or secretArn of the mailbox secret, or set createSecret',
    );
  } else if (
    fleet &&
    (secretName ?? secretArn) &&
    !isUnderSecretPrefix((secretName ?? secretArn)!, fleet.secretPrefix)
  ) {
    problems.add(
      `${where}.${secretName ? 'secretName' : 'secretArn'}`,
      `must be under fleet.secretPrefix "${fleet.secretPrefix}": the pool may read no other secret`,
    );
  }
  if (createSecret && raw.secretKmsKeyArn !== undefined) {
    problems.add(
      `${where}.secretKmsKeyArn`,
      'only for imported secrets; a created secret uses the account key aws/secretsmanager',
    );
  }

  const schedule = raw.schedule === undefined ? DEFAULTS.schedule : raw.schedule;
  if (typeof schedule !== 'string' || !isScheduleExpression(schedule)) {
    problems.add(
      `${where}.schedule`,
      'must be an EventBridge schedule expression such as "rate(1 minute)", "rate(5 minutes)" or "cron(0/5 * * * ? *)"',
    );
  }
  const startAt = raw.startAt === undefined ? DEFAULTS.startAt : raw.startAt;
  if (typeof startAt !== 'string' || !parseStartAt(startAt)) problems.add(`${where}.startAt`, START_AT_RULE);
  const maxMessagesPerRun = problems.integer(
    `${where}.maxMessagesPerRun`,
    raw.maxMessagesPerRun,
    1,
    MAX_MESSAGES_PER_RUN_LIMIT,
  );
  const alarmIntervalMinutes = fleet
    ? fleetInterval(where, schedule, problems)
    : alarmInterval(where, raw.alarmIntervalMinutes, schedule, problems, alarms);

  if (!idOk) return undefined;
  return {
    id: raw.id as string,
    ...(createSecret || secretName ? { secretName: secretName ?? `imap-event-source/${raw.id as string}` } : {}),
    ...(secretArn ? { secretArn } : {}),
    createSecret,
    ...(secretKmsKeyArn ? { secretKmsKeyArn } : {}),
    schedule: schedule as string,
    startAt: startAt as string,
    ...(maxMessagesPerRun !== undefined ? { maxMessagesPerRun } : {}),
    alarmIntervalMinutes: alarmIntervalMinutes ?? 1,
    ...(username !== undefined ? { username } : {}),
    ...(folder !== undefined ? { folder } : {}),
  };
}

/** Fleet mode: the mailbox is due again one interval after its last turn, so the schedule must have one. */
function fleetInterval(where: string, schedule: unknown, problems: Problems): number | undefined {
  if (typeof schedule !== 'string' || !isScheduleExpression(schedule)) return undefined;
  const derived = scheduleInterval(schedule);
  if ('irregular' in derived) {
    problems.add(
      `${where}.schedule`,
      `fleet mode needs rate(...) or a cron that runs at even gaps every day: ${derived.irregular}`,
    );
    return undefined;
  }
  return derived.minutes;
}

function parseFleet(raw: unknown, problems: Problems): FleetConfig {
  const f = section('fleet', raw, FLEET_KEYS, problems);
  const int = (key: keyof typeof FLEET_LIMITS) =>
    problems.integer(`fleet.${key}`, f[key], FLEET_LIMITS[key].min, FLEET_LIMITS[key].max) ?? FLEET_DEFAULTS[key];
  let secretPrefix: string = FLEET_DEFAULTS.secretPrefix;
  if (f.secretPrefix !== undefined) {
    if (isSecretPrefix(f.secretPrefix)) secretPrefix = f.secretPrefix;
    else problems.add('fleet.secretPrefix', SECRET_PREFIX_RULE);
  }
  const secretKmsKeyArn = problems.string(
    'fleet.secretKmsKeyArn',
    f.secretKmsKeyArn,
    KMS_KEY_ARN,
    'must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)',
  );
  return {
    poolConcurrency: int('poolConcurrency'),
    hostConnectionCap: int('hostConnectionCap'),
    maxMessagesPerTurn: int('maxMessagesPerTurn'),
    maxPerCycle: int('maxPerCycle'),
    secretPrefix,
    ...(secretKmsKeyArn ? { secretKmsKeyArn } : {}),
  };
}

/** The given or derived alarm interval; a problem when neither works or the alarm windows exceed CloudWatch's limits. */
function alarmInterval(
  where: string,
  given: unknown,
  schedule: unknown,
  problems: Problems,
  alarms: Pick<AlarmsConfig, 'staleAfterIntervals' | 'failingAfterRuns'>,
): number | undefined {
  let minutes = problems.integer(`${where}.alarmIntervalMinutes`, given, 1, 10_080);
  if (given === undefined && typeof schedule === 'string' && isScheduleExpression(schedule)) {
    const derived = scheduleInterval(schedule);
    if ('irregular' in derived) {
      problems.add(
        `${where}.alarmIntervalMinutes`,
        `required: ${derived.irregular}, so the alarms cannot derive an interval; give the longest gap between two runs the alarms should accept, in minutes`,
      );
    } else {
      minutes = derived.minutes;
    }
  }
  if (minutes === undefined) return undefined;
  for (const window of [
    staleAlarmWindow(minutes, alarms.staleAfterIntervals),
    failingAlarmWindow(minutes, alarms.failingAfterRuns),
  ]) {
    const tooLong = checkAlarmRange(window);
    if (tooLong) {
      problems.add(
        `${where}.alarmIntervalMinutes`,
        `${minutes} minutes is too long for the alarms: ${tooLong}; use a shorter schedule or fewer alarms.staleAfterIntervals / failingAfterRuns`,
      );
      break;
    }
  }
  return minutes;
}

function parseVpc(raw: unknown, problems: Problems): VpcConfig | undefined {
  if (raw === undefined) return undefined;
  if (!isObject(raw)) {
    problems.add('vpc', 'must be an object');
    return undefined;
  }
  problems.unknownKeys('vpc', raw, VPC_KEYS);
  const vpcId = problems.string('vpc.vpcId', raw.vpcId, VPC_ID, 'must be a VPC id (vpc-...)');
  if (raw.vpcId === undefined) problems.add('vpc.vpcId', 'required');
  const imapServerCidr =
    typeof raw.imapServerCidr === 'string' && isCidr(raw.imapServerCidr) ? raw.imapServerCidr : undefined;
  if (!imapServerCidr) problems.add('vpc.imapServerCidr', 'required; an IPv4 CIDR such as "10.0.12.7/32"');
  const imapPort = problems.integer('vpc.imapPort', raw.imapPort, 1, 65535) ?? DEFAULTS.imapPort;
  let subnetIds: string[] | undefined;
  if (raw.subnetIds !== undefined) {
    if (!Array.isArray(raw.subnetIds) || raw.subnetIds.length === 0) {
      problems.add('vpc.subnetIds', 'must be a non-empty list of subnet ids');
    } else {
      raw.subnetIds.forEach((s, i) => {
        problems.string(`vpc.subnetIds[${i}]`, s, SUBNET_ID, 'must be a subnet id (subnet-...)');
      });
      subnetIds = raw.subnetIds as string[];
    }
  }
  const endpoints = problems.boolean('vpc.endpoints', raw.endpoints, false);
  if (!vpcId || !imapServerCidr) return undefined;
  return { vpcId, imapServerCidr, imapPort, ...(subnetIds ? { subnetIds } : {}), endpoints };
}

function parseRawStorage(raw: unknown, problems: Problems): RawMessageStorageConfig {
  const off = { enabled: false, expirationDays: DEFAULTS.rawExpirationDays };
  if (raw === undefined) return off;
  if (!isObject(raw)) {
    problems.add('rawMessageStorage', 'must be an object');
    return off;
  }
  problems.unknownKeys('rawMessageStorage', raw, RAW_KEYS);
  if (raw.enabled === undefined) problems.add('rawMessageStorage.enabled', 'required (true or false)');
  return {
    enabled: problems.boolean('rawMessageStorage.enabled', raw.enabled, false),
    expirationDays:
      problems.integer('rawMessageStorage.expirationDays', raw.expirationDays, 1, 3650) ?? DEFAULTS.rawExpirationDays,
  };
}

function section(name: string, raw: unknown, keys: readonly string[], problems: Problems): Json {
  if (raw === undefined) return {};
  if (!isObject(raw)) {
    problems.add(name, 'must be an object');
    return {};
  }
  problems.unknownKeys(name, raw, keys);
  return raw;
}

function parseAlarms(raw: unknown, problems: Problems): AlarmsConfig {
  const a = section('alarms', raw, ALARM_KEYS, problems);
  const topicArn = problems.string(
    'alarms.topicArn',
    a.topicArn,
    TOPIC_ARN,
    'must be an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)',
  );
  const createTopic = problems.boolean('alarms.createTopic', a.createTopic, false);
  if (topicArn && createTopic) problems.add('alarms.createTopic', 'give either topicArn or createTopic, not both');
  return {
    staleAfterIntervals:
      problems.integer('alarms.staleAfterIntervals', a.staleAfterIntervals, 2, 1_000) ??
      ALARM_DEFAULTS.staleAfterIntervals,
    failingAfterRuns:
      problems.integer('alarms.failingAfterRuns', a.failingAfterRuns, 1, 1_000) ?? ALARM_DEFAULTS.failingAfterRuns,
    ...(topicArn ? { topicArn } : {}),
    createTopic,
  };
}

function parseArchive(raw: unknown, problems: Problems): ArchiveConfig {
  const a = section('archive', raw, ARCHIVE_KEYS, problems);
  if (raw !== undefined && a.enabled === undefined) problems.add('archive.enabled', 'required (true or false)');
  return {
    enabled: problems.boolean('archive.enabled', a.enabled, false),
    retentionDays:
      problems.integer('archive.retentionDays', a.retentionDays, 0, 36_500) ?? DEFAULTS.archiveRetentionDays,
  };
}

function parseSchemaRegistry(raw: unknown, problems: Problems): SchemaRegistryConfig {
  const r = section('schemaRegistry', raw, REGISTRY_KEYS, problems);
  if (raw !== undefined && r.enabled === undefined) problems.add('schemaRegistry.enabled', 'required (true or false)');
  return {
    enabled: problems.boolean('schemaRegistry.enabled', r.enabled, false),
    registryName:
      problems.string(
        'schemaRegistry.registryName',
        r.registryName,
        REGISTRY_NAME,
        'must be 1-64 of A-Z a-z 0-9 . _ -',
      ) ?? DEFAULTS.schemaRegistryName,
  };
}

/**
 * Validates the raw context value and applies the defaults.
 * @throws ConfigError listing every problem, each naming the mailbox (or the stack option) and the field.
 */
export function parseConfig(raw: unknown): AppConfig {
  const problems = new Problems();
  if (!isObject(raw)) {
    throw new ConfigError([`${CONFIG_CONTEXT_KEY}: must be an object with a "mailboxes" list (see docs/deploy.md)`]);
  }
  problems.unknownKeys(CONFIG_CONTEXT_KEY, raw, STACK_KEYS);

  const stackName =
    problems.string(
      'stackName',
      raw.stackName,
      STACK_NAME,
      'must start with a letter; letters, digits and hyphens, at most 128',
    ) ?? DEFAULTS.stackName;
  const busName =
    problems.string('busName', raw.busName, BUS_NAME, 'must be 1-256 of A-Z a-z 0-9 . _ - /') ?? DEFAULTS.busName;
  const createBus = problems.boolean('createBus', raw.createBus, true);
  if (createBus && busName === 'default')
    problems.add('busName', '"default" is the account\'s default bus: set createBus to false to use it');
  const eventSource = raw.eventSource === undefined ? DEFAULTS.eventSource : raw.eventSource;
  if (!isEventSource(eventSource)) problems.add('eventSource', EVENT_SOURCE_RULE);
  const reserveConcurrency = problems.boolean('reserveConcurrency', raw.reserveConcurrency, true);
  const mode = raw.mode === undefined ? 'per-mailbox' : raw.mode;
  if (!DEPLOYMENT_MODES.includes(mode as DeploymentMode)) {
    problems.add('mode', `must be one of ${DEPLOYMENT_MODES.map((m) => `"${m}"`).join(', ')}`);
  }
  const fleet = mode === 'fleet' ? parseFleet(raw.fleet, problems) : undefined;
  if (mode !== 'fleet' && raw.fleet !== undefined) problems.add('fleet', 'only with mode "fleet"');

  const alarms = parseAlarms(raw.alarms, problems);
  const mailboxes: MailboxConfig[] = [];
  if (fleet && raw.mailboxes === undefined) {
    // Fleet mode: every mailbox may come from the CLI (`imap-event-source mailbox add`).
  } else if (!Array.isArray(raw.mailboxes) || (!fleet && raw.mailboxes.length === 0)) {
    problems.add('mailboxes', fleet ? 'must be a list of mailboxes' : 'required; a non-empty list of mailboxes');
  } else {
    raw.mailboxes.forEach((m, i) => {
      const mailbox = parseMailbox(m, i, problems, alarms, fleet);
      if (mailbox) mailboxes.push(mailbox);
    });
  }
  const seen = new Map<string, string>();
  for (const { id } of mailboxes) {
    // Fleet mode creates no resource per mailbox: only exact duplicates collide.
    const key = fleet ? id : pascalCase(id);
    const other = seen.get(key);
    if (other === id) problems.add(`mailbox "${id}".id`, 'must be unique; it appears more than once');
    else if (other)
      problems.add(`mailbox "${id}".id`, `collides with "${other}" in resource names; choose a more distinct id`);
    seen.set(key, id);
  }

  const vpc = parseVpc(raw.vpc, problems);
  const rawMessageStorage = parseRawStorage(raw.rawMessageStorage, problems);
  const archive = parseArchive(raw.archive, problems);
  const schemaRegistry = parseSchemaRegistry(raw.schemaRegistry, problems);

  if (problems.list.length > 0) throw new ConfigError(problems.list);
  return {
    stackName,
    mode: mode as DeploymentMode,
    ...(fleet ? { fleet } : {}),
    busName,
    createBus,
    eventSource: eventSource as string,
    reserveConcurrency,
    mailboxes,
    ...(vpc ? { vpc } : {}),
    rawMessageStorage,
    alarms,
    archive,
    schemaRegistry,
  };
}
