/**
 * Lambda composition root: read the environment, build the adapters once per container, run one poll,
 * log one summary line and emit metrics. All logic lives in pollMailbox and core/.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context } from 'aws-lambda';
import { composePollerDeps, pollOptions } from './compose.js';
import { POLLER_ENV, type PollerConfig, readPollerConfig } from './contract/poller-env.js';
import { describeError } from './errors.js';
import type { PollDeps } from './ports.js';
import { pollMailbox } from './run/poll-mailbox.js';

/** Exported for tests that read the log lines. */
export const logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'imap-event-source' });
const metrics = new Metrics({
  namespace: 'ImapEventSource',
  serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'imap-event-source',
});

let container: { config: PollerConfig; deps: PollDeps } | undefined;

/** Adapters are built once per container: warm invocations reuse clients and the settings cache. */
function compose(): { config: PollerConfig; deps: PollDeps } {
  if (container) return container;
  const config = readPollerConfig(process.env);
  container = { config, deps: composePollerDeps(config, { log: logger }) };
  return container;
}

export async function handler(
  _event: unknown,
  context: Pick<Context, 'getRemainingTimeInMillis'>,
): Promise<{ outcome: string; published: number }> {
  const started = Date.now();
  let mailboxId = process.env[POLLER_ENV.mailboxId] ?? 'unknown';
  metrics.addDimension('mailboxId', mailboxId);
  try {
    const { config, deps } = compose();
    mailboxId = config.mailboxId;
    logger.appendKeys({ mailboxId });
    const summary = await pollMailbox(deps, pollOptions(config, started + context.getRemainingTimeInMillis()));
    logger.info('Poll finished', { ...summary });
    metrics.addMetric('MessagesPublished', MetricUnit.Count, summary.published);
    metrics.addMetric('PollDuration', MetricUnit.Milliseconds, summary.durationMs);
    metrics.addMetric(summary.outcome === 'skipped' ? 'PollSkipped' : 'PollSucceeded', MetricUnit.Count, 1);
    return { outcome: summary.outcome, published: summary.published };
  } catch (err) {
    const { code, message, retryable } = describeError(err);
    logger.error('Poll failed', {
      mailboxId,
      outcome: 'failed',
      errorCode: code,
      error: message,
      retryable,
      durationMs: Date.now() - started,
    });
    metrics.addMetric('PollFailed', MetricUnit.Count, 1);
    // A fresh error: the message is secret-free, and no foreign stack or cause reaches the runtime's log.
    const failure = new Error(`${code}: ${message}`);
    failure.name = 'PollFailedError';
    failure.stack = `${failure.name}: ${failure.message}`;
    throw failure;
  } finally {
    metrics.publishStoredMetrics();
  }
}

/** For tests: forget the composed adapters (environment changed). */
export function resetContainer(): void {
  container = undefined;
}
