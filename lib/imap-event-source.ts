import { Duration, Stack, Token, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { checkpointKey, leaseKey, refreshTokenKey, statusKey } from '../functions/poller/contract/keys.js';
import { pollerEnvironment, pollerInputProblems } from '../functions/poller/contract/poller-env.js';
import {
  HEARTBEAT_METRIC,
  MAILBOX_DIMENSION,
  METRIC_NAMESPACE,
  SERVICE_NAME,
} from '../functions/poller/contract/telemetry.js';
import { MIN_FUNCTION_TIMEOUT_SECONDS } from '../functions/poller/run/deadline.js';
import { grantVpcNetworkInterfaces, nagResource, vpcPlacement } from './grants.js';
import { pollerFunction } from './poller-function.js';
import {
  ALARM_DEFAULTS,
  type AlarmWindow,
  checkAlarmRange,
  failingAlarmWindow,
  scheduleInterval,
  staleAlarmWindow,
} from './schedule-interval.js';

export { POLLER_ENTRY } from './poller-function.js';

/**
 * Actions the poller needs on the checkpoint table: read the checkpoint and lease, put them conditionally,
 * delete the lease, update its status item.
 */
export const CHECKPOINT_TABLE_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:PutItem',
  'dynamodb:DeleteItem',
  'dynamodb:UpdateItem',
];

/**
 * The items of one mailbox in the shared table (its checkpoints, any folder, its lease and status, and its sealed
 * OAuth2 refresh token when the provider rotates it): its role may touch only these.
 */
export function checkpointItemKeys(mailboxId: string): string[] {
  return [checkpointKey(mailboxId, '*'), leaseKey(mailboxId), statusKey(mailboxId), refreshTokenKey(mailboxId)];
}
/** Actions the poller needs to store raw messages; multipart create/upload/complete are covered by s3:PutObject. */
export const RAW_MESSAGE_ACTIONS = ['s3:PutObject', 's3:AbortMultipartUpload'];

export interface ImapEventSourceProps {
  /**
   * Id of the mailbox: `mailboxId` of the events, part of the checkpoint and lease keys and of the
   * raw-message keys. 1 to 32 characters: lowercase letters, digits and single inner hyphens, starting with a
   * letter (the rule of `functions/poller/contract/mailbox-id.ts`, the same for cdk.json, the Lambda and the CLI).
   */
  readonly mailboxId: string;

  /** The mailbox secret (contract 1). The function may read this secret and nothing else in Secrets Manager. */
  readonly secret: secretsmanager.ISecret;

  /** How the function names the secret (`SECRET_ID`). @default the secret's ARN */
  readonly secretId?: string;

  /**
   * Customer-managed KMS key that encrypts the secret. The function may decrypt with it only through
   * Secrets Manager (`kms:ViaService`). @default the secret uses the AWS managed key aws/secretsmanager
   */
  readonly secretEncryptionKey?: kms.IKey;

  /** The shared checkpoint table (partition key `pk`), which also holds the per-mailbox lease item. */
  readonly checkpointTable: dynamodb.ITable;

  /**
   * The bus the events go to. Its name is passed to the function as given here, so pass a reference
   * whose name is a literal (e.g. `EventBus.fromEventBusName`) to keep references out of the environment.
   */
  readonly eventBus: events.IEventBus;

  /** `Source` of the events. @default 'imap-event-source' */
  readonly eventSource?: string;

  /** When the poller runs. @default Schedule.rate(Duration.minutes(1)) */
  readonly schedule?: events.Schedule;

  /**
   * Where a mailbox without checkpoint starts: `now`, `all` or an ISO 8601 date (`2026-11-01`,
   * `2026-11-01T08:00:00+01:00`; a time without a zone is UTC). Checked at synth. @default 'now'
   */
  readonly startAt?: string;

  /** Upper bound of messages per run (`MAX_MESSAGES_PER_RUN`). @default the handler's own default */
  readonly maxMessagesPerRun?: number;

  /**
   * Reserve a concurrency of 1, so two polls of this mailbox never run at once. Turn off for accounts
   * whose concurrency quota is too small to reserve; the lease item the handler writes into the
   * checkpoint table (`lease#<mailboxId>`) then keeps overlapping runs apart, and the conditional
   * checkpoint write stays the last line of defence.
   * @default true
   */
  readonly reserveConcurrency?: boolean;

  /**
   * Function timeout. The handler reads `context.getRemainingTimeInMillis()` and stops publishing
   * in time, so the next run continues where this one stopped. At least 5 seconds: the run keeps up to
   * 5 s (at most two thirds of its time) in reserve for its last checkpoint write, LOGOUT and the lease.
   * @default Duration.seconds(50) (below the default 1-minute schedule)
   */
  readonly timeout?: Duration;

  /** Memory of the function in MiB. @default 256 */
  readonly memorySize?: number;

  /** Retention of the function's log group. @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;

  /** `LOG_LEVEL` of the handler. @default 'INFO' */
  readonly logLevel?: 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';

  /** Bucket for raw messages; the function may write only below `<mailboxId>/`. @default no raw storage */
  readonly rawMessageBucket?: s3.IBucket;

  /** VPC to place the function in (private mail servers). @default not in a VPC */
  readonly vpc?: ec2.IVpc;

  /** Subnets within `vpc`. @default the VPC's private subnets */
  readonly vpcSubnets?: ec2.SubnetSelection;

  /** Security groups of the function when in a VPC. @default one created by the Lambda construct */
  readonly securityGroups?: ec2.ISecurityGroup[];

  /**
   * Handler source file, bundled with esbuild at synth (needs esbuild installed).
   * @default the handler prebuilt in the package; in a clone of the repository, POLLER_ENTRY
   * (`functions/poller/handler.ts`) bundled at synth
   */
  readonly entry?: string;

  /**
   * The interval the alarms assume (one alarm period). Required for a cron schedule whose runs are not evenly
   * spaced over every day (business hours, week days): give the longest gap between two runs to accept.
   * @default derived from `schedule` (`rate(...)`, or a cron that runs at even gaps every day)
   */
  readonly alarmInterval?: Duration;

  /** Intervals without a successful poll before `staleAlarm` fires (at least 2). @default 3 */
  readonly staleAfterIntervals?: number;

  /** Failed runs (within one more interval) before `failureAlarm` fires. @default 3 */
  readonly failingAfterRuns?: number;

  /** Topic notified when an alarm fires and when it is OK again. @default no action */
  readonly alarmTopic?: sns.ITopic;
}

/** What the function was granted, for review and tests. */
export interface ImapEventSourceGrants {
  readonly secret: iam.Grant;
  readonly secretEncryptionKey?: iam.Grant;
  readonly checkpointTable: iam.Grant;
  readonly eventBus: iam.Grant;
  readonly logs: iam.Grant;
  readonly rawMessages?: iam.Grant;
}

/** One watched mailbox folder: a scheduled poller with its own role, log group and least-privilege grants. */
export class ImapEventSource extends Construct {
  /** The poller function. */
  public readonly function: lambda.Function;
  /** The function's own execution role. */
  public readonly role: iam.Role;
  /** The function's log group. */
  public readonly logGroup: logs.LogGroup;
  /** The EventBridge rule that invokes the function on the schedule. */
  public readonly schedule: events.Rule;
  /** The grants given to the role. */
  public readonly grants: ImapEventSourceGrants;
  /**
   * In alarm when polls keep failing: a failed run (Lambda `Errors`) in `failingAfterRuns` of the last
   * `failingAfterRuns + 1` intervals; not on a single transient failure the next run repairs.
   */
  public readonly failureAlarm: cloudwatch.Alarm;
  /**
   * In alarm when no poll succeeded for `staleAfterIntervals` intervals (the heartbeat metric is missing or 0
   * in every one of them; missing data breaches): the schedule is off, the function throttled, the lease stuck,
   * or every run fails.
   */
  public readonly staleAlarm: cloudwatch.Alarm;
  /** The heartbeat: `PollSucceeded` (Count, Sum per interval) of this mailbox. */
  public readonly heartbeatMetric: cloudwatch.Metric;
  /** The interval the alarms assume, in minutes. */
  public readonly alarmIntervalMinutes: number;
  /** The mailbox id (`mailboxId` of the events, the metric dimension). */
  public readonly mailboxId: string;

  constructor(scope: Construct, id: string, props: ImapEventSourceProps) {
    super(scope, id);
    // The rules the Lambda applies to its environment, checked at synth (values still unresolved pass).
    const problems = pollerInputProblems({
      mailboxId: props.mailboxId,
      ...(props.eventSource !== undefined && !Token.isUnresolved(props.eventSource)
        ? { eventSource: props.eventSource }
        : {}),
      ...(props.startAt !== undefined && !Token.isUnresolved(props.startAt) ? { startAt: props.startAt } : {}),
      ...(props.maxMessagesPerRun !== undefined && !Token.isUnresolved(props.maxMessagesPerRun)
        ? { maxMessagesPerRun: props.maxMessagesPerRun }
        : {}),
    });
    if (problems.length > 0) throw new Error(`ImapEventSource ${id}: ${problems.join('; ')}`);
    if (props.vpcSubnets && !props.vpc) throw new Error(`ImapEventSource ${id}: vpcSubnets needs vpc`);
    if (props.timeout && props.timeout.toMilliseconds() < MIN_FUNCTION_TIMEOUT_SECONDS * 1000) {
      throw new Error(
        `ImapEventSource ${id}: timeout ${props.timeout.toHumanString()} is too short to poll; use at least ${MIN_FUNCTION_TIMEOUT_SECONDS} seconds`,
      );
    }
    this.mailboxId = props.mailboxId;
    const schedule = props.schedule ?? events.Schedule.rate(Duration.minutes(1));
    this.alarmIntervalMinutes = alarmIntervalMinutes(id, schedule, props.alarmInterval);
    const staleAfterIntervals = props.staleAfterIntervals ?? ALARM_DEFAULTS.staleAfterIntervals;
    const failingAfterRuns = props.failingAfterRuns ?? ALARM_DEFAULTS.failingAfterRuns;
    if (!Number.isInteger(staleAfterIntervals) || staleAfterIntervals < 2)
      throw new Error(`ImapEventSource ${id}: staleAfterIntervals must be an integer of at least 2`);
    if (!Number.isInteger(failingAfterRuns) || failingAfterRuns < 1)
      throw new Error(`ImapEventSource ${id}: failingAfterRuns must be a positive integer`);
    const staleWindow = staleAlarmWindow(this.alarmIntervalMinutes, staleAfterIntervals);
    const failingWindow = failingAlarmWindow(this.alarmIntervalMinutes, failingAfterRuns);
    for (const window of [staleWindow, failingWindow]) {
      const tooLong = checkAlarmRange(window);
      if (tooLong) throw new Error(`ImapEventSource ${id}: ${tooLong}; shorten the interval or the alarm counts`);
    }

    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `imap-event-source poller of mailbox ${props.mailboxId}`,
    });
    this.logGroup = new logs.LogGroup(this, 'LogGroup', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
    });

    // The code: prebuilt in the package, bundled from source in this repository (poller-function.ts).
    this.function = pollerFunction(this, 'Function', props.entry, {
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySize ?? 256,
      timeout: props.timeout ?? Duration.seconds(50),
      role: this.role,
      logGroup: this.logGroup,
      reservedConcurrentExecutions: props.reserveConcurrency === false ? undefined : 1,
      // A missed or failed run is repaired by the next scheduled one: no async retries that would
      // queue up behind the reserved concurrency.
      retryAttempts: 0,
      maxEventAge: Duration.minutes(1),
      description: `Polls IMAP mailbox ${props.mailboxId} and publishes new mail to EventBridge`,
      environment: {
        ...pollerEnvironment({
          mailboxId: props.mailboxId,
          secretId: props.secretId ?? props.secret.secretArn,
          checkpointTable: props.checkpointTable.tableName,
          eventBusName: props.eventBus.eventBusName,
          ...(props.eventSource !== undefined ? { eventSource: props.eventSource } : {}),
          ...(props.startAt !== undefined ? { startAt: props.startAt } : {}),
          ...(props.maxMessagesPerRun !== undefined ? { maxMessagesPerRun: props.maxMessagesPerRun } : {}),
          ...(props.rawMessageBucket ? { rawBucket: props.rawMessageBucket.bucketName } : {}),
          // `imap-event-source status` judges staleness as the staleness alarm does.
          staleAfterSeconds: staleWindow.periodSeconds * staleWindow.evaluationPeriods,
        }),
        POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
        LOG_LEVEL: props.logLevel ?? 'INFO',
        // Stack traces point into the TypeScript sources (the bundle ships its source map).
        NODE_OPTIONS: '--enable-source-maps',
      },
      ...vpcPlacement(props),
    });

    this.grants = {
      secret: props.secret.grantRead(this.role),
      ...(props.secretEncryptionKey
        ? {
            secretEncryptionKey: iam.Grant.addToPrincipal({
              grantee: this.role,
              actions: ['kms:Decrypt'],
              resourceArns: [props.secretEncryptionKey.keyArn],
              conditions: {
                StringEquals: { 'kms:ViaService': `secretsmanager.${Stack.of(this).region}.amazonaws.com` },
              },
            }),
          }
        : {}),
      checkpointTable: iam.Grant.addToPrincipal({
        grantee: this.role,
        actions: CHECKPOINT_TABLE_ACTIONS,
        resourceArns: [props.checkpointTable.tableArn],
        conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': checkpointItemKeys(props.mailboxId) } },
      }),
      eventBus: props.eventBus.grantPutEventsTo(this.role),
      logs: this.logGroup.grantWrite(this.role),
      ...(props.rawMessageBucket
        ? {
            rawMessages: iam.Grant.addToPrincipal({
              grantee: this.role,
              actions: RAW_MESSAGE_ACTIONS,
              resourceArns: [props.rawMessageBucket.arnForObjects(`${props.mailboxId}/*`)],
            }),
          }
        : {}),
    };
    const policy = this.role.node.findChild('DefaultPolicy');
    if (props.rawMessageBucket) {
      const objects = nagResource(this, props.rawMessageBucket.arnForObjects(`${props.mailboxId}/*`));
      Validations.of(policy).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${objects}]`,
        reason:
          "One object per raw message, under this mailbox's own key prefix: the wildcard covers only keys below " +
          '<mailboxId>/ in the raw-message bucket, for s3:PutObject and s3:AbortMultipartUpload only.',
      });
    }
    if (props.vpc) grantVpcNetworkInterfaces(this.role);

    this.schedule = new events.Rule(this, 'Schedule', {
      description: `Polls IMAP mailbox ${props.mailboxId}`,
      schedule,
      targets: [new targets.LambdaFunction(this.function, { retryAttempts: 0, maxEventAge: Duration.minutes(1) })],
    });

    this.heartbeatMetric = new cloudwatch.Metric({
      namespace: METRIC_NAMESPACE,
      metricName: HEARTBEAT_METRIC,
      dimensionsMap: { service: SERVICE_NAME, [MAILBOX_DIMENSION]: props.mailboxId },
      statistic: cloudwatch.Stats.SUM,
      period: Duration.seconds(staleWindow.periodSeconds),
    });
    this.staleAlarm = new cloudwatch.Alarm(this, 'StaleAlarm', {
      alarmDescription:
        `No successful poll of IMAP mailbox ${props.mailboxId} for ${staleAfterIntervals} intervals of ${this.alarmIntervalMinutes} min. ` +
        'Runbook: docs/operations.md, "Alarm: no successful poll (StaleAlarm)".',
      metric: this.heartbeatMetric,
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      ...alarmWindowProps(staleWindow),
    });
    this.failureAlarm = new cloudwatch.Alarm(this, 'FailureAlarm', {
      alarmDescription:
        `Polls of IMAP mailbox ${props.mailboxId} keep failing (a failed run in ${failingAfterRuns} of ${failingAfterRuns + 1} intervals). ` +
        'Runbook: docs/operations.md, "Alarm: polls keep failing (FailureAlarm)".',
      metric: this.function.metricErrors({
        period: Duration.seconds(failingWindow.periodSeconds),
        statistic: cloudwatch.Stats.SUM,
      }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      ...alarmWindowProps(failingWindow),
    });
    if (props.alarmTopic) {
      const action = new cloudwatchActions.SnsAction(props.alarmTopic);
      for (const alarm of [this.staleAlarm, this.failureAlarm]) {
        alarm.addAlarmAction(action);
        alarm.addOkAction(action);
      }
    }
  }
}

/** The alarms' interval in minutes: given, or derived from the schedule; throws with the fix when neither works. */
function alarmIntervalMinutes(id: string, schedule: events.Schedule, given: Duration | undefined): number {
  if (given) {
    const minutes = given.toMinutes();
    if (!Number.isInteger(minutes) || minutes < 1)
      throw new Error(`ImapEventSource ${id}: alarmInterval must be a whole number of minutes`);
    return minutes;
  }
  const derived = scheduleInterval(schedule.expressionString);
  if ('irregular' in derived) {
    throw new Error(
      `ImapEventSource ${id}: ${derived.irregular}; set alarmInterval to the longest gap between two runs the alarms should accept`,
    );
  }
  return derived.minutes;
}

function alarmWindowProps(window: AlarmWindow): { evaluationPeriods: number; datapointsToAlarm: number } {
  return { evaluationPeriods: window.evaluationPeriods, datapointsToAlarm: window.datapointsToAlarm };
}
