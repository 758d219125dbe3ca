/**
 * The fleet's dashboard: a fixed set of widgets whatever the number of mailboxes. The alarm states; the aggregate
 * metrics of the dispatcher (overdue, in backoff, dispatched, deferred by the host cap); the queue and the pool;
 * per mailbox and per error code from the workers' summary lines (the Logs Insights queries of the per-mailbox
 * dashboard, over the one worker log group).
 */
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { Construct } from 'constructs';
import { FLEET_METRICS } from '../functions/poller/contract/fleet.js';
import { METRIC_NAMESPACE, SERVICE_NAME } from '../functions/poller/contract/telemetry.js';
import { byName, DASHBOARD_QUERIES } from './dashboard.js';
import type { ImapEventSourceFleet } from './fleet.js';

export interface ImapEventSourceFleetDashboardProps {
  readonly dashboardName?: string;
  readonly fleet: ImapEventSourceFleet;
}

export class ImapEventSourceFleetDashboard extends Construct {
  public readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: ImapEventSourceFleetDashboardProps) {
    super(scope, id);
    const { fleet } = props;
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      ...(props.dashboardName ? { dashboardName: props.dashboardName } : {}),
      defaultInterval: Duration.days(1),
    });
    const metric = (metricName: string, statistic: string = cloudwatch.Stats.MAXIMUM) =>
      new cloudwatch.Metric({
        namespace: METRIC_NAMESPACE,
        metricName,
        dimensionsMap: { service: SERVICE_NAME },
        statistic,
        period: Duration.minutes(1),
      });
    const max = { statistic: cloudwatch.Stats.MAXIMUM };
    const sum = { statistic: cloudwatch.Stats.SUM };
    this.dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({
        title: 'Fleet alarms',
        alarms: Object.values(fleet.alarms).map((alarm) => byName(this, alarm)),
        width: 24,
        height: 3,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Mailboxes overdue / in backoff',
        left: [metric(FLEET_METRICS.overdue), metric(FLEET_METRICS.inBackoff)],
        width: 12,
        height: 6,
      }),
      new cloudwatch.GraphWidget({
        title: 'Mailboxes dispatched / deferred by the host connection cap',
        left: [metric(FLEET_METRICS.dispatched, cloudwatch.Stats.SUM)],
        right: [metric(FLEET_METRICS.hostCapDeferred, cloudwatch.Stats.SUM)],
        width: 12,
        height: 6,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Poll queue: waiting, age of the oldest request (s); dead letters',
        left: [
          fleet.queue.metricApproximateNumberOfMessagesVisible(max),
          fleet.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ ...max, label: 'dead letters' }),
        ],
        right: [fleet.queue.metricApproximateAgeOfOldestMessage(max)],
        width: 12,
        height: 6,
      }),
      new cloudwatch.GraphWidget({
        title: `Pool: concurrent workers (of ${fleet.poolConcurrency}), errors, throttles`,
        left: [fleet.worker.metric('ConcurrentExecutions', max)],
        right: [
          fleet.worker.metricErrors(sum),
          fleet.worker.metricThrottles(sum),
          fleet.dispatcher.metricErrors({ ...sum, label: 'dispatcher errors' }),
        ],
        width: 12,
        height: 6,
      }),
    );
    const query = (title: string, lines: readonly string[], view: cloudwatch.LogQueryVisualizationType) =>
      new cloudwatch.LogQueryWidget({
        title,
        logGroupNames: [fleet.workerLogGroup.logGroupName],
        queryLines: [...lines],
        view,
        width: 12,
        height: 6,
      });
    this.dashboard.addWidgets(
      query(
        'Per mailbox: last success, messages waiting, published',
        DASHBOARD_QUERIES.perMailbox,
        cloudwatch.LogQueryVisualizationType.TABLE,
      ),
      query('Failures by error code', DASHBOARD_QUERIES.failuresByCode, cloudwatch.LogQueryVisualizationType.TABLE),
    );
  }
}
