/**
 * Fleet mode (docs/fleet.md): one fixed set of resources for 1 to 10,000 mailboxes. A dispatcher on a one-minute
 * schedule finds the due mailboxes in the registry (the `due` index of the checkpoint table) and sends one SQS
 * message per mailbox; a bounded pool of workers polls them. The mailboxes declared at synth travel as one S3
 * asset (a JSON file the dispatcher reads), so the template does not grow with their number.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ArnFormat, Duration, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as lambdaEventSources from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import {
  type DeclaredMailbox,
  type DeclaredMailboxesFile,
  DISPATCHER_ENV,
  DUE_INDEX,
  dispatcherStateKey,
  FLEET_DEFAULTS,
  FLEET_LIMITS,
  FLEET_METRICS,
  hostSlotKey,
  isSecretPrefix,
  isUnderSecretPrefix,
  REGISTRY_KEY_PREFIX,
  SECRET_PREFIX_RULE,
  WORKER_BATCH_SIZE,
  WORKER_ENV,
} from '../functions/poller/contract/fleet.js';
import { isMailboxId, MAILBOX_ID_RULE } from '../functions/poller/contract/mailbox-id.js';
import { isEventSource } from '../functions/poller/contract/poller-env.js';
import { METRIC_NAMESPACE, SERVICE_NAME } from '../functions/poller/contract/telemetry.js';
import { MIN_FUNCTION_TIMEOUT_SECONDS } from '../functions/poller/run/deadline.js';
import { grantVpcNetworkInterfaces, nagResource, vpcPlacement } from './grants.js';
import {
  CHECKPOINT_TABLE_ACTIONS,
  checkpointItemKeys,
  type ImapEventSourceProps,
  RAW_MESSAGE_ACTIONS,
} from './imap-event-source.js';
import { FLEET_DISPATCHER_HANDLER, FLEET_WORKER_HANDLER, pollerFunction } from './poller-function.js';
import { ALARM_DEFAULTS } from './schedule-interval.js';

/** SQS messages (mailboxes) per worker invocation (the contract's WORKER_BATCH_SIZE). */
export const FLEET_WORKER_BATCH_SIZE = WORKER_BATCH_SIZE;

/** Receives of one poll request before it goes to the dead-letter queue (a worker that keeps crashing on it). */
export const FLEET_MAX_RECEIVE_COUNT = 5;

/** The registry items and host slots in the shared table: the keys the fleet adds to a mailbox's own. */
export const FLEET_ITEM_KEYS = {
  registry: `${REGISTRY_KEY_PREFIX}*`,
  // `hostslot#<host>#<slot>` for any host and slot (host names are lowercased in the key; `*` stays `*`).
  hostSlots: hostSlotKey('*', 0).replace(/0$/, '*'),
  /** The dispatcher's one state item (exact key: the time of its last cycle). */
  dispatcherState: dispatcherStateKey(),
} as const;

/**
 * The registry actions of the dispatcher: read, upsert (declared mailboxes, carry-overs) and remove; on its state item
 * the cycle's one conditional write.
 */
export const DISPATCHER_REGISTRY_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
];

/** The item actions of the worker: the poller's own, and BatchGetItem to count a host's connection slots. */
export const WORKER_TABLE_ACTIONS = [...CHECKPOINT_TABLE_ACTIONS, 'dynamodb:BatchGetItem'];

/** Adds the sparse `due` index (fleet contract) to a table with the checkpoint key schema. */
export function addDueIndex(table: dynamodb.Table): void {
  table.addGlobalSecondaryIndex({
    indexName: DUE_INDEX.name,
    partitionKey: { name: DUE_INDEX.partitionKey, type: attributeType(DUE_INDEX.partitionKeyType) },
    sortKey: { name: DUE_INDEX.sortKey, type: attributeType(DUE_INDEX.sortKeyType) },
    projectionType: dynamodb.ProjectionType.ALL,
  });
}

function attributeType(type: 'N' | 'S'): dynamodb.AttributeType {
  return type === 'N' ? dynamodb.AttributeType.NUMBER : dynamodb.AttributeType.STRING;
}

/** Props shared with the per-mailbox construct (their docs there; in fleet mode they apply to the pool). */
type SharedProps = Pick<
  ImapEventSourceProps,
  | 'eventSource'
  | 'secretEncryptionKey'
  | 'memorySize'
  | 'logRetention'
  | 'logLevel'
  | 'vpc'
  | 'vpcSubnets'
  | 'securityGroups'
  | 'alarmTopic'
>;

export interface ImapEventSourceFleetProps extends SharedProps {
  /**
   * The table of checkpoints, leases, status items, the registry and host slots (partition key `pk`, string),
   * with the `due` index (`addDueIndex`). @default a new table: on demand, point-in-time recovery, encrypted, retained
   */
  readonly checkpointTable?: dynamodb.ITable;

  /** The bus the events go to; pass a reference whose name is a literal (`EventBus.fromEventBusName`). */
  readonly eventBus: events.IEventBus;

  /**
   * Mailboxes registered at deploy time (the dispatcher upserts them from an S3 asset); more are added at run time
   * with `imap-event-source mailbox add`. Each secret must be under `secretPrefix`. @default none
   */
  readonly mailboxes?: readonly DeclaredMailbox[];

  /** The workers may read only secrets whose names start with this. @default FLEET_DEFAULTS.secretPrefix */
  readonly secretPrefix?: string;

  /** Workers at most at once (SQS event source maximum concurrency, 2-1000). @default FLEET_DEFAULTS.poolConcurrency */
  readonly poolConcurrency?: number;

  /** Concurrent IMAP connections per host across the pool. @default FLEET_DEFAULTS.hostConnectionCap */
  readonly hostConnectionCap?: number;

  /** Messages per mailbox and turn before it goes back into the queue. @default FLEET_DEFAULTS.maxMessagesPerTurn */
  readonly maxMessagesPerTurn?: number;

  /** Mailboxes the dispatcher sends per cycle at most. @default FLEET_DEFAULTS.maxPerCycle */
  readonly maxPerCycle?: number;

  /**
   * Reserve the pool's concurrency for the workers (`poolConcurrency`) and 1 for the dispatcher. Turn off where the
   * account's quota is too small; the event source's maximum concurrency still bounds the pool. @default true
   */
  readonly reserveConcurrency?: boolean;

  /** Worker timeout (the queue's visibility timeout is twice this). @default Duration.seconds(50) */
  readonly workerTimeout?: Duration;

  /** Bucket for raw messages (any mailbox's prefix: the pool serves them all). @default no raw storage */
  readonly rawMessageBucket?: s3.IBucket;

  /** Handler sources, bundled at synth. @default the prebuilt handlers of the package, or functions/fleet/ in a clone */
  readonly dispatcherEntry?: string;
  readonly workerEntry?: string;

  /** Minutes a condition must last before the overdue and dispatcher-stale alarms fire (at least 2). @default 3 */
  readonly staleAfterIntervals?: number;
  /** Failing minutes (of one more) before the error and backoff alarms fire. @default 3 */
  readonly failingAfterRuns?: number;
}

/** The fleet's alarms: a fixed set, whatever the number of mailboxes (docs/fleet.md, "Monitoring"). */
export interface FleetAlarms {
  /** Registered mailboxes not polled successfully for more than two intervals. */
  readonly overdue: cloudwatch.Alarm;
  /** Mailboxes in exponential backoff after persistent failures (wrong password, revoked consent). */
  readonly inBackoff: cloudwatch.Alarm;
  /** Poll requests a worker failed on `FLEET_MAX_RECEIVE_COUNT` times. */
  readonly deadLetters: cloudwatch.Alarm;
  readonly workerErrors: cloudwatch.Alarm;
  readonly workerThrottles: cloudwatch.Alarm;
  readonly dispatcherFailing: cloudwatch.Alarm;
  /** The dispatcher did not run (schedule off, throttled). */
  readonly dispatcherStale: cloudwatch.Alarm;
}

/** What the roles were granted, for review and tests. */
export interface FleetGrants {
  readonly dispatcher: readonly iam.Grant[];
  readonly worker: readonly iam.Grant[];
}

/** A registry, a scheduled dispatcher and a bounded pool of pollers fed by SQS: a fixed number of resources. */
export class ImapEventSourceFleet extends Construct {
  public readonly table: dynamodb.ITable;
  /** One message per mailbox to poll now (`PollRequest`); encrypted, TLS only. */
  public readonly queue: sqs.Queue;
  public readonly deadLetterQueue: sqs.Queue;
  public readonly dispatcher: lambda.Function;
  public readonly dispatcherRole: iam.Role;
  public readonly dispatcherLogGroup: logs.LogGroup;
  /** The one-minute rule that invokes the dispatcher. */
  public readonly schedule: events.Rule;
  public readonly worker: lambda.Function;
  public readonly workerRole: iam.Role;
  public readonly workerLogGroup: logs.LogGroup;
  /** The declared mailboxes (`DeclaredMailboxesFile`) in the CDK assets bucket. */
  public readonly declaredMailboxes: s3assets.Asset;
  public readonly alarms: FleetAlarms;
  public readonly grants: FleetGrants;
  public readonly poolConcurrency: number;

  constructor(scope: Construct, id: string, props: ImapEventSourceFleetProps) {
    super(scope, id);
    const options = checkFleetProps(id, props);
    this.poolConcurrency = options.poolConcurrency;
    const reserve = props.reserveConcurrency !== false;
    const workerTimeout = props.workerTimeout ?? Duration.seconds(50);
    const common = {
      POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
      LOG_LEVEL: props.logLevel ?? 'INFO',
      NODE_OPTIONS: '--enable-source-maps',
    };
    const logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;

    this.table = props.checkpointTable ?? this.createTable();

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    this.queue = new sqs.Queue(this, 'PollQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      // AWS requires at least the function timeout; twice it lets a slow batch finish before a redelivery.
      visibilityTimeout: Duration.seconds(workerTimeout.toSeconds() * 2),
      // A request older than this is stale: the dispatcher sends the mailbox again when it is due.
      retentionPeriod: Duration.hours(1),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: FLEET_MAX_RECEIVE_COUNT },
    });

    this.declaredMailboxes = new s3assets.Asset(this, 'DeclaredMailboxes', {
      path: declaredMailboxesFile(props.mailboxes ?? []),
    });

    // The dispatcher: registry in, poll requests out.
    this.dispatcherRole = new iam.Role(this, 'DispatcherRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'imap-event-source fleet dispatcher',
    });
    this.dispatcherLogGroup = new logs.LogGroup(this, 'DispatcherLogGroup', { retention: logRetention });
    this.dispatcher = pollerFunction(
      this,
      'Dispatcher',
      props.dispatcherEntry,
      {
        runtime: lambda.Runtime.NODEJS_24_X,
        architecture: lambda.Architecture.ARM_64,
        memorySize: 256,
        timeout: Duration.seconds(50),
        role: this.dispatcherRole,
        logGroup: this.dispatcherLogGroup,
        reservedConcurrentExecutions: reserve ? 1 : undefined,
        retryAttempts: 0,
        maxEventAge: Duration.minutes(1),
        description: 'imap-event-source fleet: sends the due mailboxes to the poll queue',
        environment: {
          [DISPATCHER_ENV.table]: this.table.tableName,
          [DISPATCHER_ENV.queueUrl]: this.queue.queueUrl,
          [DISPATCHER_ENV.declaredBucket]: this.declaredMailboxes.s3BucketName,
          [DISPATCHER_ENV.declaredKey]: this.declaredMailboxes.s3ObjectKey,
          [DISPATCHER_ENV.maxPerCycle]: String(options.maxPerCycle),
          ...common,
        },
      },
      FLEET_DISPATCHER_HANDLER,
    );
    this.schedule = new events.Rule(this, 'DispatchSchedule', {
      description: 'imap-event-source fleet: dispatch the due mailboxes',
      schedule: events.Schedule.rate(Duration.minutes(1)),
      targets: [new targets.LambdaFunction(this.dispatcher, { retryAttempts: 0, maxEventAge: Duration.minutes(1) })],
    });

    // The pool.
    this.workerRole = new iam.Role(this, 'WorkerRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'imap-event-source fleet worker (polls the mailboxes of the registry)',
    });
    this.workerLogGroup = new logs.LogGroup(this, 'WorkerLogGroup', { retention: logRetention });
    this.worker = pollerFunction(
      this,
      'Worker',
      props.workerEntry,
      {
        runtime: lambda.Runtime.NODEJS_24_X,
        architecture: lambda.Architecture.ARM_64,
        memorySize: props.memorySize ?? 256,
        timeout: workerTimeout,
        role: this.workerRole,
        logGroup: this.workerLogGroup,
        reservedConcurrentExecutions: reserve ? options.poolConcurrency : undefined,
        description: 'imap-event-source fleet: polls the mailboxes sent by the dispatcher',
        environment: {
          [WORKER_ENV.table]: this.table.tableName,
          [WORKER_ENV.queueUrl]: this.queue.queueUrl,
          [WORKER_ENV.eventBusName]: props.eventBus.eventBusName,
          [WORKER_ENV.eventSource]: props.eventSource ?? 'imap-event-source',
          ...(props.rawMessageBucket ? { [WORKER_ENV.rawBucket]: props.rawMessageBucket.bucketName } : {}),
          [WORKER_ENV.secretPrefix]: options.secretPrefix,
          [WORKER_ENV.hostConnectionCap]: String(options.hostConnectionCap),
          [WORKER_ENV.poolConcurrency]: String(options.poolConcurrency),
          [WORKER_ENV.maxMessagesPerTurn]: String(options.maxMessagesPerTurn),
          ...common,
        },
        ...vpcPlacement(props),
      },
      FLEET_WORKER_HANDLER,
    );
    this.worker.addEventSource(
      new lambdaEventSources.SqsEventSource(this.queue, {
        batchSize: FLEET_WORKER_BATCH_SIZE,
        maxConcurrency: options.poolConcurrency,
        reportBatchItemFailures: true,
      }),
    );

    this.grants = {
      dispatcher: this.grantDispatcher(),
      worker: this.grantWorker(props, options.secretPrefix),
    };
    if (props.vpc) grantVpcNetworkInterfaces(this.workerRole);

    this.alarms = this.createAlarms(props);
  }

  /** The default table: the per-mailbox stack's shape plus the `due` index. */
  private createTable(): dynamodb.Table {
    const table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    addDueIndex(table);
    return table;
  }

  private grantDispatcher(): iam.Grant[] {
    const grantee = this.dispatcherRole;
    return [
      iam.Grant.addToPrincipal({
        grantee,
        actions: ['dynamodb:Query'],
        resourceArns: [`${this.table.tableArn}/index/${DUE_INDEX.name}`],
      }),
      // Every registry item, paused ones too, when the declared mailboxes changed (read only; a Scan has no
      // leading key to condition on).
      iam.Grant.addToPrincipal({ grantee, actions: ['dynamodb:Scan'], resourceArns: [this.table.tableArn] }),
      iam.Grant.addToPrincipal({
        grantee,
        actions: DISPATCHER_REGISTRY_ACTIONS,
        resourceArns: [this.table.tableArn],
        conditions: {
          'ForAllValues:StringLike': {
            'dynamodb:LeadingKeys': [FLEET_ITEM_KEYS.registry, FLEET_ITEM_KEYS.dispatcherState],
          },
        },
      }),
      // Send the due mailboxes; read the backlog (the guard against piling a cycle onto an undrained one).
      iam.Grant.addToPrincipal({
        grantee,
        actions: ['sqs:SendMessage', 'sqs:GetQueueAttributes'],
        resourceArns: [this.queue.queueArn],
      }),
      iam.Grant.addToPrincipal({
        grantee,
        actions: ['s3:GetObject'],
        resourceArns: [this.declaredMailboxes.bucket.arnForObjects(this.declaredMailboxes.s3ObjectKey)],
      }),
      this.dispatcherLogGroup.grantWrite(grantee),
    ];
  }

  private grantWorker(props: ImapEventSourceFleetProps, secretPrefix: string): iam.Grant[] {
    const grantee = this.workerRole;
    const policy = () => grantee.node.findChild('DefaultPolicy');
    const stack = Stack.of(this);
    const secrets = stack.formatArn({
      service: 'secretsmanager',
      resource: 'secret',
      resourceName: `${secretPrefix}*`,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    const grants = [
      iam.Grant.addToPrincipal({ grantee, actions: ['secretsmanager:GetSecretValue'], resourceArns: [secrets] }),
      iam.Grant.addToPrincipal({
        grantee,
        actions: WORKER_TABLE_ACTIONS,
        resourceArns: [this.table.tableArn],
        conditions: {
          'ForAllValues:StringLike': {
            'dynamodb:LeadingKeys': [...checkpointItemKeys('*'), FLEET_ITEM_KEYS.registry, FLEET_ITEM_KEYS.hostSlots],
          },
        },
      }),
      props.eventBus.grantPutEventsTo(grantee),
      // Re-queue a mailbox with more work (consuming is granted by the event source).
      iam.Grant.addToPrincipal({ grantee, actions: ['sqs:SendMessage'], resourceArns: [this.queue.queueArn] }),
      this.workerLogGroup.grantWrite(grantee),
    ];
    Validations.of(policy()).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${nagResource(this, secrets)}]`,
      reason:
        'The pool polls every registered mailbox, and mailboxes are registered at run time without a deploy: it may read the secrets ' +
        'under the fleet secret prefix, GetSecretValue only, and no other secret (docs/fleet.md, "Least privilege").',
    });
    if (props.secretEncryptionKey) {
      grants.push(
        iam.Grant.addToPrincipal({
          grantee,
          actions: ['kms:Decrypt'],
          resourceArns: [props.secretEncryptionKey.keyArn],
          conditions: { StringEquals: { 'kms:ViaService': `secretsmanager.${stack.region}.amazonaws.com` } },
        }),
      );
    }
    if (props.rawMessageBucket) {
      const objects = props.rawMessageBucket.arnForObjects('*');
      grants.push(iam.Grant.addToPrincipal({ grantee, actions: RAW_MESSAGE_ACTIONS, resourceArns: [objects] }));
      Validations.of(policy()).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${nagResource(this, objects)}]`,
        reason:
          'One object per raw message below <mailboxId>/, for any registered mailbox (the pool serves them all and mailboxes are added ' +
          'without a deploy); s3:PutObject and s3:AbortMultipartUpload only, in this one bucket.',
      });
    }
    return grants;
  }

  private createAlarms(props: ImapEventSourceFleetProps): FleetAlarms {
    const stale = props.staleAfterIntervals ?? ALARM_DEFAULTS.staleAfterIntervals;
    const failing = props.failingAfterRuns ?? ALARM_DEFAULTS.failingAfterRuns;
    const minute = Duration.minutes(1);
    const runbook = (row: string) => `Runbook: docs/fleet.md, "Monitoring", row ${row}.`;
    const fleetMetric = (metricName: string) =>
      new cloudwatch.Metric({
        namespace: METRIC_NAMESPACE,
        metricName,
        dimensionsMap: { service: SERVICE_NAME },
        statistic: cloudwatch.Stats.MAXIMUM,
        period: minute,
      });
    const atLeastOne = {
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    };
    const sum = { period: minute, statistic: cloudwatch.Stats.SUM };
    const failingWindow = { evaluationPeriods: failing + 1, datapointsToAlarm: failing };
    const alarms: FleetAlarms = {
      overdue: new cloudwatch.Alarm(this, 'OverdueAlarm', {
        alarmDescription: `Registered mailboxes not polled successfully for more than two intervals, for ${stale} minutes. ${runbook('OverdueAlarm')}`,
        metric: fleetMetric(FLEET_METRICS.overdue),
        ...atLeastOne,
        evaluationPeriods: stale,
        datapointsToAlarm: stale,
      }),
      inBackoff: new cloudwatch.Alarm(this, 'BackoffAlarm', {
        alarmDescription: `Mailboxes in backoff after persistent failures (wrong password, revoked consent): see \`imap-event-source mailbox list\`. ${runbook('BackoffAlarm')}`,
        metric: fleetMetric(FLEET_METRICS.inBackoff),
        ...atLeastOne,
        ...failingWindow,
      }),
      deadLetters: new cloudwatch.Alarm(this, 'DeadLetterAlarm', {
        alarmDescription: `Poll requests a worker failed on ${FLEET_MAX_RECEIVE_COUNT} times are in the dead-letter queue. ${runbook('DeadLetterAlarm')}`,
        metric: this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
          period: minute,
          statistic: cloudwatch.Stats.MAXIMUM,
        }),
        ...atLeastOne,
        evaluationPeriods: 1,
      }),
      workerErrors: new cloudwatch.Alarm(this, 'WorkerErrorAlarm', {
        alarmDescription: `Worker invocations keep failing (in ${failing} of ${failing + 1} minutes). ${runbook('WorkerErrorAlarm')}`,
        metric: this.worker.metricErrors(sum),
        ...atLeastOne,
        ...failingWindow,
      }),
      workerThrottles: new cloudwatch.Alarm(this, 'WorkerThrottleAlarm', {
        alarmDescription: `Worker invocations are throttled (in ${failing} of ${failing + 1} minutes): the account's concurrency is short. ${runbook('WorkerThrottleAlarm')}`,
        metric: this.worker.metricThrottles(sum),
        ...atLeastOne,
        ...failingWindow,
      }),
      dispatcherFailing: new cloudwatch.Alarm(this, 'DispatcherErrorAlarm', {
        alarmDescription: `Dispatcher runs keep failing (in ${failing} of ${failing + 1} minutes): no mailbox is sent to the pool. ${runbook('DispatcherErrorAlarm')}`,
        metric: this.dispatcher.metricErrors(sum),
        ...atLeastOne,
        ...failingWindow,
      }),
      dispatcherStale: new cloudwatch.Alarm(this, 'DispatcherStaleAlarm', {
        alarmDescription: `The dispatcher did not run for ${stale} minutes (schedule disabled or throttled). ${runbook('DispatcherStaleAlarm')}`,
        metric: this.dispatcher.metricInvocations(sum),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.BREACHING,
        evaluationPeriods: stale,
        datapointsToAlarm: stale,
      }),
    };
    if (props.alarmTopic) {
      const action = new cloudwatchActions.SnsAction(props.alarmTopic);
      for (const alarm of Object.values(alarms)) {
        alarm.addAlarmAction(action);
        alarm.addOkAction(action);
      }
    }
    return alarms;
  }
}

/** The resolved options; throws naming the prop and the rule. */
function checkFleetProps(id: string, props: ImapEventSourceFleetProps) {
  const problems: string[] = [];
  const int = (key: keyof typeof FLEET_LIMITS): number => {
    const value = props[key] ?? FLEET_DEFAULTS[key];
    const { min, max } = FLEET_LIMITS[key];
    if (!Token.isUnresolved(value) && !(Number.isInteger(value) && value >= min && value <= max))
      problems.push(`${key}: must be an integer from ${min} to ${max}`);
    return value;
  };
  const options = {
    poolConcurrency: int('poolConcurrency'),
    hostConnectionCap: int('hostConnectionCap'),
    maxMessagesPerTurn: int('maxMessagesPerTurn'),
    maxPerCycle: int('maxPerCycle'),
    secretPrefix: props.secretPrefix ?? FLEET_DEFAULTS.secretPrefix,
  };
  if (!isSecretPrefix(options.secretPrefix)) problems.push(`secretPrefix: ${SECRET_PREFIX_RULE}`);
  if (props.eventSource !== undefined && !Token.isUnresolved(props.eventSource) && !isEventSource(props.eventSource))
    problems.push('eventSource: must be 1-256 of A-Z a-z 0-9 . _ - / and must not start with "aws."');
  if (props.vpcSubnets && !props.vpc) problems.push('vpcSubnets: needs vpc');
  if (props.workerTimeout && props.workerTimeout.toSeconds() < MIN_FUNCTION_TIMEOUT_SECONDS)
    problems.push(`workerTimeout: at least ${MIN_FUNCTION_TIMEOUT_SECONDS} seconds`);
  const seen = new Set<string>();
  for (const [i, mailbox] of (props.mailboxes ?? []).entries()) {
    if (!isMailboxId(mailbox.id)) problems.push(`mailboxes[${i}].id: ${MAILBOX_ID_RULE}`);
    else if (seen.has(mailbox.id)) problems.push(`mailboxes[${i}].id: "${mailbox.id}" appears more than once`);
    seen.add(mailbox.id);
    if (isSecretPrefix(options.secretPrefix) && !isUnderSecretPrefix(mailbox.secretId, options.secretPrefix))
      problems.push(`mailboxes[${i}].secretId: must be under secretPrefix "${options.secretPrefix}"`);
  }
  if (problems.length > 0) throw new Error(`ImapEventSourceFleet ${id}: ${problems.join('; ')}`);
  return options;
}

/**
 * The declared mailboxes as a file for the asset: in a directory named by the content's hash (under the system's
 * temporary directory), so every synth of the same list yields the same asset and nothing else accumulates.
 */
function declaredMailboxesFile(mailboxes: readonly DeclaredMailbox[]): string {
  const file: DeclaredMailboxesFile = { version: 1, mailboxes };
  const content = `${JSON.stringify(file, null, 1)}\n`;
  const hash = createHash('sha256').update(content).digest('hex').slice(0, 32);
  const dir = join(tmpdir(), 'imap-event-source-declared', hash);
  const path = join(dir, 'mailboxes.json');
  if (!existsSync(path)) {
    mkdirSync(dir, { recursive: true });
    // Written aside and renamed: a concurrent synth never reads half a file.
    const partial = `${path}.${process.pid}`;
    writeFileSync(partial, content);
    renameSync(partial, path);
  }
  return path;
}
