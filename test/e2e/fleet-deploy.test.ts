/**
 * End to end, fleet mode: `cdk bootstrap` and `cdk deploy` of the app with `mode: "fleet"` into a fresh
 * moto_server, then what the emulator reports about the deployed resources: the table with its `due` index, the
 * poll queue with its dead-letter queue, the dispatcher and the worker with their environments, the worker's SQS
 * event source, and the declared mailboxes in the asset the dispatcher reads.
 */
import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DUE_INDEX, FLEET_DEFAULTS } from '../../functions/poller/contract/fleet.js';
import { CdkDeployment } from '../support/cdk-deploy.js';
import { uniqueName } from '../support/moto.js';

const STACK = 'ImapEventSourceFleetE2e';
const TENANT_SECRET = 'imap-event-source/tenant-e2e';
const MAILBOXES = [
  { id: 'fleet-a', secretName: TENANT_SECRET, username: 'a@tenant.example' },
  { id: 'fleet-b', secretName: TENANT_SECRET, username: 'b@tenant.example', folder: 'Firma/Kundenbetreuung' },
  { id: 'fleet-c', secretName: TENANT_SECRET, username: 'c@tenant.example', schedule: 'rate(5 minutes)' },
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
      mailboxes: [
        {
          id: 'fleet-a',
          secretId: TENANT_SECRET,
          username: 'a@tenant.example',
          schedule: 'rate(1 minute)',
          startAt: 'now',
        },
        {
          id: 'fleet-b',
          secretId: TENANT_SECRET,
          username: 'b@tenant.example',
          folder: 'Firma/Kundenbetreuung',
          schedule: 'rate(1 minute)',
          startAt: 'now',
        },
        {
          id: 'fleet-c',
          secretId: TENANT_SECRET,
          username: 'c@tenant.example',
          schedule: 'rate(5 minutes)',
          startAt: 'now',
        },
      ],
    });
  });
});
