/**
 * End to end, fleet mode: `cdk bootstrap` and `cdk deploy` of the app with `mode: "fleet"` into a fresh
 * moto_server, then what the emulator reports about the deployed resources: the table with its `due` index, the
 * poll queue with its dead-letter queue, the dispatcher and the worker with their environments, the worker's SQS
 * event source, and the declared mailboxes in the asset the dispatcher reads. Then one cycle with the bundled code
 * from the cloud assembly, run as Lambda would run it (test/support/cdk-deploy.ts): the dispatcher reads the
 * declared mailboxes and sends the due ones to the deployed queue, the worker polls them (three Dovecot users, one
 * shared secret with a username per mailbox) and their mail arrives at a subscriber of the deployed bus.
 */
import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DUE_INDEX, FLEET_DEFAULTS } from '../../functions/poller/contract/fleet.js';
import { CdkDeployment, type DeployedFunction } from '../support/cdk-deploy.js';
import { dovecot, mailboxSecret } from '../support/env.js';
import { buildMessage } from '../support/messages.js';
import { uniqueName } from '../support/moto.js';

const STACK = 'ImapEventSourceFleetE2e';
const TENANT_SECRET = 'imap-event-source/tenant-e2e';
/** Dovecot users of this run, one per mailbox (the secret's username is overridden per mailbox). */
const USERS = ['a', 'b', 'c'].map((x) => uniqueName(`fleet-${x}`).toLowerCase());
const MAILBOXES = [
  { id: 'fleet-a', secretName: TENANT_SECRET, username: USERS[0]!, startAt: 'all' },
  { id: 'fleet-b', secretName: TENANT_SECRET, username: USERS[1]!, folder: 'INBOX', startAt: 'all' },
  { id: 'fleet-c', secretName: TENANT_SECRET, username: USERS[2]!, schedule: 'rate(5 minutes)', startAt: 'all' },
];

describe('cdk deploy of fleet mode into the AWS emulator', () => {
  let d: CdkDeployment;
  const busName = uniqueName('imap-fleet-e2e');

  beforeAll(async () => {
    d = await CdkDeployment.deploy(STACK, {
      mode: 'fleet',
      busName,
      fleet: { poolConcurrency: 5, hostConnectionCap: 3 },
      mailboxes: MAILBOXES,
    });
  }, 300_000);

  afterAll(async () => {
    if (!d) return;
    console.log(`[e2e fleet] timings (ms): ${JSON.stringify(d.timings)}`);
    await d.destroy();
  });

  it('deploys the registry table with its due index and the encrypted poll queue with its dead-letter queue', async () => {
    const { aws, outputs } = d;
    const { Table } = await aws.dynamodb.send(new DescribeTableCommand({ TableName: outputs.CheckpointTableName }));
    expect(Table?.KeySchema).toEqual([{ AttributeName: 'pk', KeyType: 'HASH' }]);
    expect(Table?.GlobalSecondaryIndexes).toEqual([
      expect.objectContaining({
        IndexName: DUE_INDEX.name,
        KeySchema: [
          { AttributeName: DUE_INDEX.partitionKey, KeyType: 'HASH' },
          { AttributeName: DUE_INDEX.sortKey, KeyType: 'RANGE' },
        ],
        Projection: expect.objectContaining({ ProjectionType: 'ALL' }),
      }),
    ]);

    const attributes = async (url: string) =>
      (await aws.sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['All'] }))).Attributes!;
    const dlq = await attributes(outputs.FleetDeadLetterQueueUrl!);
    const queue = await attributes(outputs.FleetPollQueueUrl!);
    expect(JSON.parse(queue.RedrivePolicy!)).toEqual({ deadLetterTargetArn: dlq.QueueArn, maxReceiveCount: 5 });
    expect(queue).toMatchObject({ VisibilityTimeout: '100', MessageRetentionPeriod: '3600' });
    // The TLS-only queue policies (AWS::SQS::QueuePolicy) are pinned by test/infra/fleet.test.ts: moto's
    // CloudFormation accepts them without attaching them to the queues.
  });

  it('deploys the dispatcher and the worker with their environments, and the worker fed by the queue', async () => {
    const { awsEnv, outputs } = d;
    const dispatcher = await d.deployedFunction(outputs.FleetDispatcherFunctionName!);
    const worker = await d.deployedFunction(outputs.FleetWorkerFunctionName!);
    for (const fn of [dispatcher, worker]) {
      expect(fn).toMatchObject({ Runtime: 'nodejs24.x', Handler: 'index.handler' });
    }
    expect(dispatcher.Environment.Variables).toMatchObject({
      CHECKPOINT_TABLE: outputs.CheckpointTableName,
      POLL_QUEUE_URL: outputs.FleetPollQueueUrl,
      DECLARED_MAILBOXES_BUCKET: `cdk-hnb659fds-assets-123456789012-${awsEnv.AWS_REGION}`,
      DECLARED_MAILBOXES_KEY: expect.stringMatching(/^[0-9a-f]{64}\.json$/),
      MAX_DISPATCH_PER_CYCLE: String(FLEET_DEFAULTS.maxPerCycle),
    });
    expect(worker.Environment.Variables).toMatchObject({
      CHECKPOINT_TABLE: outputs.CheckpointTableName,
      POLL_QUEUE_URL: outputs.FleetPollQueueUrl,
      EVENT_BUS_NAME: busName,
      EVENT_SOURCE: 'imap-event-source',
      SECRET_PREFIX: 'imap-event-source/',
      HOST_CONNECTION_CAP: '3',
      MAX_MESSAGES_PER_TURN: String(FLEET_DEFAULTS.maxMessagesPerTurn),
    });

    const { status, body } = await d.lambdaApi<{
      EventSourceMappings: { EventSourceArn: string; FunctionArn: string; BatchSize: number }[];
    }>(`event-source-mappings/?FunctionName=${encodeURIComponent(worker.FunctionName)}`);
    expect(status).toBe(200);
    expect(body.EventSourceMappings).toEqual([
      expect.objectContaining({
        EventSourceArn: expect.stringMatching(/:sqs:.*PollQueue/),
        FunctionArn: expect.stringContaining(worker.FunctionName),
        BatchSize: 10,
      }),
    ]);
  });

  it('uploads the declared mailboxes, a shared secret with per-mailbox users and folders, where the dispatcher reads them', async () => {
    const { aws } = d;
    const env = (await d.deployedFunction(d.outputs.FleetDispatcherFunctionName!)).Environment.Variables;
    const object = await aws.s3.send(
      new GetObjectCommand({ Bucket: env.DECLARED_MAILBOXES_BUCKET, Key: env.DECLARED_MAILBOXES_KEY }),
    );
    expect(JSON.parse(await object.Body!.transformToString())).toEqual({
      version: 1,
      // The declared entries: the cdk.json mailboxes with the defaults applied, the secret as `secretId`.
      mailboxes: MAILBOXES.map(({ secretName, ...m }) => ({ schedule: 'rate(1 minute)', ...m, secretId: secretName })),
    });
  });

  it('runs one cycle with the bundled code: dispatcher, then worker, the mail of each mailbox published once', async () => {
    const { aws, outputs } = d;
    const imap = dovecot();
    const password = 'shared-tenant-credential';
    const users = await Promise.all(USERS.map((username) => imap.createUser({ username, password })));
    // The shared secret: the tenant's server and credential; username (and folder) come from each mailbox.
    await aws.createSecret(TENANT_SECRET, mailboxSecret(imap, users[0]!, { security: 'tls' }));
    const uids = await Promise.all(
      users.map((user, i) => imap.appendMessage(user, 'INBOX', buildMessage({ subject: `Fleet mailbox ${i}` }))),
    );
    const subscriber = await d.subscribe({ source: ['imap-event-source'], 'detail-type': ['IMAP Message Received'] });

    // moto's CloudFormation gives the queue an amazonaws.com URL, and the SDK sends to a QueueUrl's own host when
    // it differs from the endpoint from the environment: point the URL at the emulator (on AWS the hosts agree).
    const inEmulator = (fn: DeployedFunction): DeployedFunction => {
      const vars = fn.Environment.Variables;
      const url = vars.POLL_QUEUE_URL!.replace(/^https:\/\/sqs\.[^/]+\.amazonaws\.com/, d.server.info.endpoint);
      return { ...fn, Environment: { Variables: { ...vars, POLL_QUEUE_URL: url } } };
    };
    const dispatcherFn = inEmulator(await d.deployedFunction(outputs.FleetDispatcherFunctionName!));
    const dispatcherDir = await d.unpackBundle(/sends the due mailboxes/, 'dispatcher', {
      'detail-type': 'Scheduled Event',
      source: 'aws.events',
      detail: {},
    });
    const dispatched = await d.timed('dispatch', () => d.invoke(dispatcherDir, dispatcherFn));
    expect(dispatched.result).toMatchObject({ dispatched: 3 });

    // The event source's part: the poll requests from the deployed queue, as one SQS batch.
    const { Messages = [] } = await d.timed('receive requests', () =>
      aws.sqs.send(
        new ReceiveMessageCommand({ QueueUrl: outputs.FleetPollQueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 5 }),
      ),
    );
    expect(Messages.map((m) => JSON.parse(m.Body!).mailboxId).sort()).toEqual(['fleet-a', 'fleet-b', 'fleet-c']);
    const workerFn = inEmulator(await d.deployedFunction(outputs.FleetWorkerFunctionName!));
    const workerDir = await d.unpackBundle(/polls the mailboxes/, 'worker', {
      Records: Messages.map((m) => ({
        messageId: m.MessageId,
        receiptHandle: m.ReceiptHandle,
        body: m.Body,
        attributes: {},
        messageAttributes: {},
        md5OfBody: m.MD5OfBody,
        eventSource: 'aws:sqs',
        eventSourceARN: 'arn:aws:sqs:us-east-1:123456789012:poll-queue',
        awsRegion: 'us-east-1',
      })),
    });
    const worked = await d.timed('worker', () => d.invoke(workerDir, workerFn));
    expect(worked.result).toEqual({ batchItemFailures: [] });

    const events = await d.timed('receive events', () =>
      aws.receiveEvents(subscriber, { expected: 3, timeoutMs: 15_000, quietMs: 500 }),
    );
    expect(
      events
        .map((e) => [e.detail.mailboxId, e.detail.uid, e.detail.subject])
        .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    ).toEqual([
      ['fleet-a', uids[0], 'Fleet mailbox 0'],
      ['fleet-b', uids[1], 'Fleet mailbox 1'],
      ['fleet-c', uids[2], 'Fleet mailbox 2'],
    ]);
    for (const { log } of [dispatched, worked]) expect(log).not.toContain(password);
  }, 120_000);
});
