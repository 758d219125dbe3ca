/**
 * The dispatcher Lambda (a one-minute schedule): one dispatch cycle (run/dispatch.ts), then the aggregate gauges
 * as custom metrics with the `service` dimension only (a fixed number of metrics for any number of mailboxes).
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

export async function handler(_event: unknown): Promise<DispatchSummary> {
  const { config, parts } = await compose();
  const summary = await dispatchCycle({ ...parts, log: logger, now: () => new Date() }, config);
  logger.info('Dispatch finished', { ...summary });
  metrics.addMetric(FLEET_METRICS.dispatched, 'Count', summary.dispatched);
  metrics.addMetric(FLEET_METRICS.overdue, 'Count', summary.overdue);
  metrics.addMetric(FLEET_METRICS.inBackoff, 'Count', summary.inBackoff);
  metrics.publishStoredMetrics();
  return summary;
}
