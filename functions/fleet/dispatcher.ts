/**
 * The dispatcher Lambda (a one-minute schedule): one dispatch cycle (run/dispatch.ts) at the schedule tick's time,
 * then the aggregate gauges as custom metrics with the `service` dimension only (a fixed number of metrics for any
 * number of mailboxes).
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { FLEET_METRICS } from '../poller/contract/fleet.js';
import { METRIC_NAMESPACE, SERVICE_NAME } from '../poller/contract/telemetry.js';
import { composeDispatcher, type DispatcherParts } from './compose.js';
import { type DispatcherConfig, readDispatcherConfig } from './config.js';
import { type DispatchSummary, dispatchCycle } from './run/dispatch.js';

export { readDispatcherConfig } from './config.js';

export const logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? SERVICE_NAME });
const metrics = new Metrics({
  namespace: METRIC_NAMESPACE,
  serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? SERVICE_NAME,
});

type Container = { config: DispatcherConfig; parts: DispatcherParts };
let container: Promise<Container> | undefined;

function compose(): Promise<Container> {
  container ??= (async () => {
    const config = readDispatcherConfig(process.env);
    return { config, parts: await composeDispatcher(config, {}) };
  })();
  container.catch(() => (container = undefined));
  return container;
}

/** For tests: forget the composed adapters (environment changed). */
export function resetContainer(): void {
  container = undefined;
}

/**
 * The cycle's time: the scheduled event's `time` (the tick: every invocation for one tick gets the same time, and
 * ticks are exactly a minute apart), never later than the clock (a time ahead of it would hold the fleet's state in
 * the future); the clock when the event has none (a manual invocation).
 */
export function cycleTime(event: unknown, clock: number): Date {
  const time = (event as { time?: unknown } | null)?.time;
  const tick = typeof time === 'string' ? Date.parse(time) : Number.NaN;
  return new Date(Number.isFinite(tick) ? Math.min(tick, clock) : clock);
}

export async function handler(event: unknown): Promise<DispatchSummary> {
  const { config, parts } = await compose();
  const at = cycleTime(event, Date.now());
  const summary = await dispatchCycle({ ...parts, log: logger, now: () => at }, config);
  logger.info('Dispatch finished', { ...summary });
  metrics.addMetric(FLEET_METRICS.dispatched, 'Count', summary.dispatched);
  metrics.addMetric(FLEET_METRICS.overdue, 'Count', summary.overdue);
  metrics.addMetric(FLEET_METRICS.inBackoff, 'Count', summary.inBackoff);
  metrics.publishStoredMetrics();
  return summary;
}
