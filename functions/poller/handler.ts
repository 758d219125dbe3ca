/**
 * Lambda composition root: read the environment, build the adapters once per container, run one poll,
 * report it (summary log line, heartbeat metric, status item: report.ts). All logic lives in pollMailbox and core/.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import type { Context } from 'aws-lambda';
import { composePollerDeps, composeStatusStore, pollOptions } from './compose.js';
import { POLLER_ENV, type PollerConfig, readPollerConfig } from './contract/poller-env.js';
import { MAILBOX_DIMENSION, METRIC_NAMESPACE, SERVICE_NAME } from './contract/telemetry.js';
import type { PollDeps } from './ports.js';
import { type RunReporter, reportFailed, reportFinished } from './report.js';
import { REPORT_MARGIN_MS, REPORT_RESERVE_MS } from './run/deadline.js';
import { pollMailbox } from './run/poll-mailbox.js';

/** Exported for tests that read the log lines. */
export const logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? SERVICE_NAME });
const metrics = new Metrics({
  namespace: METRIC_NAMESPACE,
  serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? SERVICE_NAME,
});

type Container = { config: PollerConfig; deps: PollDeps; reporter: RunReporter };
let container: Promise<Container> | undefined;

/** Adapters are built once per container: warm invocations reuse clients, the settings cache and the IMAP session. */
function compose(): Promise<Container> {
  container ??= (async () => {
    const config = readPollerConfig(process.env);
    // One mailbox per container, one invocation at a time: the IMAP session is kept for the next warm invocation.
    const deps = await composePollerDeps(config, { log: logger, keepSession: true });
    const reporter: RunReporter = {
      log: logger,
      metrics,
      status: await composeStatusStore(config.checkpointTable, {}),
      now: () => new Date(),
      secretId: config.secretId,
      ...(config.staleAfterSeconds !== undefined ? { staleAfterSeconds: config.staleAfterSeconds } : {}),
    };
    return { config, deps, reporter };
  })();
  // A misconfigured container tries again on the next invocation (the environment may have been fixed).
  container.catch(() => (container = undefined));
  return container;
}

export async function handler(
  _event: unknown,
  context: Pick<Context, 'getRemainingTimeInMillis'>,
): Promise<{ outcome: string; published: number }> {
  const started = Date.now();
  const lambdaDeadline = started + context.getRemainingTimeInMillis();
  // The status write after the run gives up before the Lambda deadline (a timed-out invocation logs nothing more).
  const report = () => ({ signal: AbortSignal.timeout(Math.max(0, lambdaDeadline - REPORT_MARGIN_MS - Date.now())) });
  let mailboxId = process.env[POLLER_ENV.mailboxId] ?? 'unknown';
  metrics.addDimension(MAILBOX_DIMENSION, mailboxId);
  let reporter: RunReporter = { log: logger, metrics, now: () => new Date() };
  try {
    const composed = await compose();
    reporter = composed.reporter;
    mailboxId = composed.config.mailboxId;
    logger.appendKeys({ mailboxId });
    const summary = await pollMailbox(composed.deps, pollOptions(composed.config, lambdaDeadline - REPORT_RESERVE_MS));
    await reportFinished(reporter, summary, report());
    return { outcome: summary.outcome, published: summary.published };
  } catch (err) {
    const { code, message } = await reportFailed(reporter, mailboxId, err, Date.now() - started, report());
    // A fresh error: the message is secret-free, and no foreign stack or cause reaches the runtime's log.
    const failure = new Error(`${code}: ${message}`);
    failure.name = 'PollFailedError';
    failure.stack = `${failure.name}: ${failure.message}`;
    throw failure;
  } finally {
    // Failed and skipped runs emit no metric (Powertools would log a warning for an empty flush).
    if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
    else metrics.clearDimensions();
  }
}

/** For tests: forget the composed adapters (environment changed), closing the IMAP session they kept. */
export function resetContainer(): void {
  void container?.then(
    (c) => c.deps.sessions?.clear(),
    () => {},
  );
  container = undefined;
}
