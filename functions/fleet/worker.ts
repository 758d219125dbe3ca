/**
 * The worker (pool) Lambda: fed by the poll queue (SQS event source, partial batch responses). Each record is one
 * mailbox's turn (run/turn.ts); the records of a batch run side by side, each bounded by the Lambda deadline.
 * A record fails (and SQS delivers it again) only when its turn could not run at all: the registry could not be
 * read, or too little time was left. Poll failures are the mailbox's (status item, backoff), not the message's.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { METRIC_NAMESPACE, SERVICE_NAME } from '../poller/contract/telemetry.js';
import { describeError } from '../poller/errors.js';
import { parsePollRequest } from './adapters/sqs-poll-queue.js';
import { composeWorker, type WorkerParts } from './compose.js';
import { readWorkerConfig, type WorkerConfig } from './config.js';
import { runTurn, type TurnOutcome } from './run/turn.js';

export { readWorkerConfig } from './config.js';

export const logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? SERVICE_NAME });
/** Dimension `service` only: a fixed number of metrics, whatever the number of mailboxes. */
const metrics = new Metrics({
  namespace: METRIC_NAMESPACE,
  serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? SERVICE_NAME,
});

type Container = { config: WorkerConfig; parts: WorkerParts };
let container: Promise<Container> | undefined;

function compose(): Promise<Container> {
  container ??= (async () => {
    const config = readWorkerConfig(process.env);
    return { config, parts: await composeWorker(config, { log: logger }) };
  })();
  container.catch(() => (container = undefined));
  return container;
}

/** For tests: forget the composed adapters (environment changed). */
export function resetContainer(): void {
  container = undefined;
}

export async function handler(
  event: SQSEvent,
  context: Pick<Context, 'getRemainingTimeInMillis'>,
): Promise<SQSBatchResponse> {
  const deadline = Date.now() + context.getRemainingTimeInMillis();
  const { config, parts } = await compose();
  const batchItemFailures: SQSBatchResponse['batchItemFailures'] = [];
  try {
    await Promise.all(
      event.Records.map(async (record) => {
        const request = parsePollRequest(record.body);
        if (!request) {
          logger.warn('Dropped a message that is not a poll request', { messageId: record.messageId });
          return;
        }
        let outcome: TurnOutcome;
        try {
          const now = () => new Date();
          outcome = await runTurn(
            { ...parts, reporter: { log: logger, metrics, status: parts.status, now }, now },
            config,
            request,
            deadline,
          );
        } catch (err) {
          const { code, message } = describeError(err);
          logger.error('The turn could not run; the message goes back to the queue', {
            messageId: record.messageId,
            mailboxId: request.mailboxId,
            errorCode: code,
            error: message,
          });
          batchItemFailures.push({ itemIdentifier: record.messageId });
          return;
        }
        if (outcome.kind === 'retry-later') batchItemFailures.push({ itemIdentifier: record.messageId });
      }),
    );
  } finally {
    if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
  }
  return { batchItemFailures };
}
