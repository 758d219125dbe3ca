/**
 * Fleet mode in tests: the table with the `due` index, the poll queue and a bus in moto_server, the environment the
 * fleet construct sets, and the dispatcher and worker handlers driven as Lambda drives them: the schedule invokes
 * the dispatcher; the SQS event source receives up to 10 messages, invokes the worker with them, and deletes the
 * ones not reported as batch item failures. `lanes` invocations run side by side (the pool's concurrency).
 */
import { randomUUID } from 'node:crypto';
import { CreateTableCommand } from '@aws-sdk/client-dynamodb';
import { CreateEventBusCommand } from '@aws-sdk/client-eventbridge';
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
} from '@aws-sdk/client-sqs';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { DynamoDbRegistry } from '../../functions/fleet/adapters/dynamodb-registry.js';
import { definitionOf } from '../../functions/fleet/core/registry.js';
import {
  type DeclaredMailbox,
  DISPATCHER_ENV,
  DUE_INDEX,
  type RegistrySource,
  WORKER_ENV,
} from '../../functions/poller/contract/fleet.js';
import { moto } from './env.js';
import { type BusWithSubscriber, type Moto, uniqueName } from './moto.js';

process.env.POWERTOOLS_LOG_LEVEL ??= 'SILENT';
const dispatcher = await import('../../functions/fleet/dispatcher.js');
const worker = await import('../../functions/fleet/worker.js');

export interface FleetOptions {
  readonly hostConnectionCap?: number;
  readonly maxMessagesPerTurn?: number;
  readonly maxPerCycle?: number;
  /** A bus whose rule delivers to an SQS queue (what a subscriber receives); else a bus without rules. */
  readonly subscriber?: boolean;
  /** Extra environment (e.g. AWS_ENDPOINT_URL_EVENTBRIDGE for an EventRecorder). */
  readonly env?: Record<string, string>;
  /** The emulator of the table, the secrets and the bus; default: the run's shared moto_server. */
  readonly aws?: Moto;
  /**
   * The emulator of the poll queue (the handlers reach it through AWS_ENDPOINT_URL_SQS); default: `aws`. Its own
   * moto_server takes the queue's work off the others' (one Python process answers on about one core).
   */
  readonly queueAws?: Moto;
}

export interface DrainStats {
  /** Worker invocations. */
  invocations: number;
  /** Records handed to the worker. */
  records: number;
  /** Records reported back as batch item failures. */
  failures: number;
}

export class Fleet {
  readonly table = uniqueName('fleet');
  readonly secretPrefix = `${uniqueName('ies')}/`;
  queueUrl = '';
  busName = uniqueName('bus');
  bus?: BusWithSubscriber;
  readonly env: Record<string, string> = {};
  readonly registry: DynamoDbRegistry;

  private constructor(
    readonly aws: Moto,
    readonly queueAws: Moto,
  ) {
    this.registry = new DynamoDbRegistry(this.aws.dynamodb, this.table);
  }

  static async create(options: FleetOptions = {}): Promise<Fleet> {
    const aws = options.aws ?? moto();
    const fleet = new Fleet(aws, options.queueAws ?? aws);
    await aws.dynamodb.send(
      new CreateTableCommand({
        TableName: fleet.table,
        AttributeDefinitions: [
          { AttributeName: 'pk', AttributeType: 'S' },
          { AttributeName: DUE_INDEX.partitionKey, AttributeType: 'N' },
          { AttributeName: DUE_INDEX.sortKey, AttributeType: 'N' },
        ],
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
        GlobalSecondaryIndexes: [
          {
            IndexName: DUE_INDEX.name,
            KeySchema: [
              { AttributeName: DUE_INDEX.partitionKey, KeyType: 'HASH' },
              { AttributeName: DUE_INDEX.sortKey, KeyType: 'RANGE' },
            ],
            Projection: { ProjectionType: DUE_INDEX.projection },
          },
        ],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
    const { QueueUrl } = await fleet.queueAws.sqs.send(
      new CreateQueueCommand({ QueueName: uniqueName('poll'), Attributes: { VisibilityTimeout: '120' } }),
    );
    fleet.queueUrl = QueueUrl!;
    if (options.subscriber) {
      fleet.bus = await aws.createBusWithSubscriber(fleet.busName);
    } else {
      await aws.eventbridge.send(new CreateEventBusCommand({ Name: fleet.busName }));
    }
    Object.assign(fleet.env, {
      ...aws.awsEnv(),
      ...(fleet.queueAws !== aws ? { AWS_ENDPOINT_URL_SQS: fleet.queueAws.info.endpoint } : {}),
      [WORKER_ENV.table]: fleet.table,
      [WORKER_ENV.queueUrl]: fleet.queueUrl,
      [WORKER_ENV.eventBusName]: fleet.busName,
      [WORKER_ENV.secretPrefix]: fleet.secretPrefix,
      ...(options.hostConnectionCap ? { [WORKER_ENV.hostConnectionCap]: String(options.hostConnectionCap) } : {}),
      ...(options.maxMessagesPerTurn ? { [WORKER_ENV.maxMessagesPerTurn]: String(options.maxMessagesPerTurn) } : {}),
      ...(options.maxPerCycle ? { [DISPATCHER_ENV.maxPerCycle]: String(options.maxPerCycle) } : {}),
      ...options.env,
    });
    return fleet;
  }

  /** Points the handlers (and the CLI, which reads the same environment) at this fleet. */
  use(extra: Record<string, string> = {}): void {
    Object.assign(process.env, this.env, extra);
    dispatcher.resetContainer();
    worker.resetContainer();
  }

  /** Registers a mailbox directly in the registry (as the dispatcher does for declared ones). */
  async register(mailbox: DeclaredMailbox, source: RegistrySource = 'cdk', now = new Date()): Promise<void> {
    await this.registry.create(definitionOf(mailbox), source, now);
  }

  /**
   * One scheduled dispatcher invocation: EventBridge's scheduled event, whose `time` (the tick) is the cycle's time;
   * `at` must not be ahead of the clock (the handler takes the clock then). Without `at`: an event without a time.
   */
  dispatch(at?: Date): ReturnType<typeof dispatcher.handler> {
    return dispatcher.handler(
      at ? { source: 'aws.events', 'detail-type': 'Scheduled Event', time: at.toISOString() } : {},
    );
  }

  /** One worker invocation with these messages, as the SQS event source makes it. */
  invokeWorker(records: readonly SQSRecord[], remainingMs = 60_000): ReturnType<typeof worker.handler> {
    const event: SQSEvent = { Records: [...records] };
    return worker.handler(event, { getRemainingTimeInMillis: () => remainingMs });
  }

  /** One worker invocation with one poll request for `mailboxId`, as if the dispatcher had just sent it. */
  turn(mailboxId: string): ReturnType<typeof worker.handler> {
    const body = JSON.stringify({ mailboxId, sentAt: Date.now() });
    return this.invokeWorker([
      sqsRecord({ MessageId: randomUUID(), ReceiptHandle: 'direct', Body: body }, this.queueUrl),
    ]);
  }

  /**
   * The SQS event source until the queue is empty (delayed and in-flight messages included): `lanes` pollers,
   * each receiving up to 10 messages, invoking the worker and deleting what it did not report as failed. Throws when
   * the queue is not empty after `timeoutMs` (default 10 minutes), rather than return with work left.
   */
  async drain(options: { lanes?: number; batchSize?: number; timeoutMs?: number } = {}): Promise<DrainStats> {
    const stats: DrainStats = { invocations: 0, records: 0, failures: 0 };
    const until = Date.now() + (options.timeoutMs ?? 600_000);
    let busy = 0;
    const lane = async (): Promise<void> => {
      while (Date.now() < until) {
        const res = await this.queueAws.sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: this.queueUrl,
            MaxNumberOfMessages: options.batchSize ?? 10,
            WaitTimeSeconds: 1,
            AttributeNames: ['All'],
          }),
        );
        const messages = res.Messages ?? [];
        if (messages.length === 0) {
          if (busy === 0 && (await this.queueEmpty())) return;
          continue;
        }
        busy++;
        try {
          const records = messages.map((m) => sqsRecord(m, this.queueUrl));
          stats.invocations++;
          stats.records += records.length;
          const { batchItemFailures } = await this.invokeWorker(records);
          stats.failures += batchItemFailures.length;
          const failed = new Set(batchItemFailures.map((f) => f.itemIdentifier));
          const done = messages.filter((m) => !failed.has(m.MessageId!));
          if (done.length) {
            await this.queueAws.sqs.send(
              new DeleteMessageBatchCommand({
                QueueUrl: this.queueUrl,
                Entries: done.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
              }),
            );
          }
        } finally {
          busy--;
        }
      }
    };
    await Promise.all(Array.from({ length: options.lanes ?? 4 }, lane));
    if (!(await this.queueEmpty())) {
      throw new Error(
        `The poll queue still held messages after ${(options.timeoutMs ?? 600_000) / 1000} s of draining (${stats.invocations} worker invocations, ${stats.records} records so far).`,
      );
    }
    return stats;
  }

  /** Nothing visible, in flight or delayed. */
  async queueEmpty(): Promise<boolean> {
    const { Attributes = {} } = await this.queueAws.sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: this.queueUrl,
        AttributeNames: [
          'ApproximateNumberOfMessages',
          'ApproximateNumberOfMessagesNotVisible',
          'ApproximateNumberOfMessagesDelayed',
        ],
      }),
    );
    return Object.values(Attributes).every((v) => v === '0');
  }
}

function sqsRecord(
  m: {
    MessageId?: string;
    ReceiptHandle?: string;
    Body?: string;
    MD5OfBody?: string;
    Attributes?: Record<string, string>;
  },
  queueUrl: string,
): SQSRecord {
  return {
    messageId: m.MessageId ?? randomUUID(),
    receiptHandle: m.ReceiptHandle!,
    body: m.Body ?? '',
    attributes: m.Attributes as unknown as SQSRecord['attributes'],
    messageAttributes: {},
    md5OfBody: m.MD5OfBody ?? '',
    eventSource: 'aws:sqs',
    eventSourceARN: `arn:aws:sqs:us-east-1:123456789012:${queueUrl.split('/').pop()}`,
    awsRegion: 'us-east-1',
  };
}
