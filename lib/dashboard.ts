/**
 * One CloudWatch dashboard per stack: alarm states, and per mailbox the last successful poll, the messages
 * waiting at the last poll, what was published, failures by error code, and run times. Per-mailbox figures
 * come from the structured summary lines (Logs Insights, no custom metrics); the heartbeat and the Lambda
 * metrics (free) give the time series.
 */
import { ArnFormat, Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { Construct } from 'constructs';
import { LOG_POLL_FAILED, LOG_POLL_FINISHED } from '../functions/poller/contract/telemetry.js';
import type { ImapEventSource } from './imap-event-source.js';

/** Logs Insights queries one widget runs over at most this many log groups (a CloudWatch limit). */
export const LOG_GROUPS_PER_QUERY = 50;

/**
 * The Logs Insights queries of the dashboard, also listed in docs/operations.md (keep both the same).
 * Each runs over the pollers' log groups.
 */
export const DASHBOARD_QUERIES = {
  perMailbox: [
    `filter message = "${LOG_POLL_FINISHED}" and outcome != "skipped"`,
    'stats max(@timestamp) as lastSuccess, latest(waiting) as waitingAtLastPoll, sum(published) as published, count(*) as polls, max(durationMs) as maxDurationMs by mailboxId',
    'sort mailboxId asc',
  ],
  failuresByCode: [
    `filter message = "${LOG_POLL_FAILED}"`,
    'stats count(*) as failures, max(@timestamp) as lastFailure, latest(error) as lastError by mailboxId, errorCode',
    'sort failures desc',
  ],
  waiting: [
    `filter message = "${LOG_POLL_FINISHED}" and ispresent(waiting)`,
    'stats max(waiting) by bin(15m), mailboxId',
  ],
  published: [`filter message = "${LOG_POLL_FINISHED}"`, 'stats sum(published) by bin(1h), mailboxId'],
} as const;

export interface ImapEventSourceDashboardProps {
  readonly dashboardName?: string;
  /** The pollers, in display order. */
  readonly mailboxes: readonly ImapEventSource[];
}

export class ImapEventSourceDashboard extends Construct {
  public readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: ImapEventSourceDashboardProps) {
    super(scope, id);
    const pollers = props.mailboxes;
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      ...(props.dashboardName ? { dashboardName: props.dashboardName } : {}),
      defaultInterval: Duration.days(1),
    });
    this.dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({
        title: 'Alarms: no successful poll (Stale) / polls keep failing (Failure)',
        alarms: pollers.flatMap((p) => [p.staleAlarm, p.failureAlarm]).map((alarm) => byName(this, alarm)),
        width: 24,
        height: Math.min(12, 2 + Math.ceil((pollers.length * 2) / 4)),
      }),
    );
    for (const [part, group] of chunks(pollers, LOG_GROUPS_PER_QUERY).entries()) {
      const suffix = pollers.length > LOG_GROUPS_PER_QUERY ? ` (part ${part + 1})` : '';
      const logGroupNames = group.map((p) => p.logGroup.logGroupName);
      const query = (title: string, lines: readonly string[], view: cloudwatch.LogQueryVisualizationType, width = 12) =>
        new cloudwatch.LogQueryWidget({
          title: `${title}${suffix}`,
          logGroupNames,
          queryLines: [...lines],
          view,
          width,
          height: 6,
        });
      this.dashboard.addWidgets(
        query(
          'Per mailbox: last success, messages waiting at the last poll, published',
          DASHBOARD_QUERIES.perMailbox,
          cloudwatch.LogQueryVisualizationType.TABLE,
          24,
        ),
      );
      this.dashboard.addWidgets(
        query('Failures by error code', DASHBOARD_QUERIES.failuresByCode, cloudwatch.LogQueryVisualizationType.TABLE),
        query(
          'Messages waiting (UIDNEXT − 1 − checkpoint)',
          DASHBOARD_QUERIES.waiting,
          cloudwatch.LogQueryVisualizationType.LINE,
        ),
      );
      this.dashboard.addWidgets(
        query('Messages published per hour', DASHBOARD_QUERIES.published, cloudwatch.LogQueryVisualizationType.BAR),
      );
    }
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Successful polls (heartbeat PollSucceeded)',
        left: pollers.map((p) => p.heartbeatMetric.with({ label: p.mailboxId })),
        width: 12,
        height: 6,
      }),
      new cloudwatch.GraphWidget({
        title: 'Run duration (Lambda Duration, maximum)',
        left: pollers.map((p) =>
          p.function.metricDuration({ statistic: cloudwatch.Stats.MAXIMUM, label: mailboxLabel(p) }),
        ),
        width: 12,
        height: 6,
      }),
      new cloudwatch.GraphWidget({
        title: 'Failed runs (Lambda Errors) and throttles',
        left: pollers.map((p) => p.function.metricErrors({ statistic: cloudwatch.Stats.SUM, label: mailboxLabel(p) })),
        right: pollers.map((p) =>
          p.function.metricThrottles({ statistic: cloudwatch.Stats.SUM, label: `${mailboxLabel(p)} throttled` }),
        ),
        width: 12,
        height: 6,
      }),
    );
  }
}

function mailboxLabel(poller: ImapEventSource): string {
  return poller.mailboxId;
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * The alarm as the widget needs it, its ARN built from the alarm's name (a `Ref`) instead of `Fn::GetAtt ... Arn`:
 * the same ARN, and a template the AWS emulator (moto) also deploys, since it has no `Arn` attribute for alarms.
 */
export function byName(scope: Construct, alarm: cloudwatch.IAlarm): cloudwatch.IAlarm {
  const arn = Stack.of(scope).formatArn({
    service: 'cloudwatch',
    resource: 'alarm',
    resourceName: alarm.alarmName,
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
  });
  return cloudwatch.Alarm.fromAlarmArn(scope, `${alarm.node.path.replaceAll('/', '-')}-ByName`, arn);
}
