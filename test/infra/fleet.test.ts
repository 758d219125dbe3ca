import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as events from 'aws-cdk-lib/aws-events';
import { describe, expect, it } from 'vitest';
import { DUE_INDEX, FLEET_DEFAULTS, FLEET_METRICS } from '../../functions/poller/contract/fleet.js';
import { ConfigError, parseConfig } from '../../lib/config.js';
import { ImapEventSourceFleet } from '../../lib/fleet.js';
import { logicalId, synth, TEST_ENV, VPC_ID } from './synth.js';

const TENANT = 'imap-event-source/tenant-a';
const KEY_ARN = 'arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';

/** `n` mailboxes sharing one secret (a Microsoft 365 app for a tenant), each with its own user. */
function fleetConfig(n: number, extra: Record<string, unknown> = {}) {
  return {
    mode: 'fleet',
    mailboxes: Array.from({ length: n }, (_, i) => ({
      id: `box-${i}`,
      secretName: TENANT,
      username: `box-${i}@contoso.com`,
      ...(i === 0 ? { folder: 'Firma/Kundenbetreuung', schedule: 'rate(5 minutes)', startAt: 'all' } : {}),
    })),
    ...extra,
  };
}

function resourceTypes(template: Template): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of Object.values(template.toJSON().Resources as Record<string, { Type: string }>)) {
    counts[r.Type] = (counts[r.Type] ?? 0) + 1;
  }
  return counts;
}

/** The statements of a role's default policy, resolved. */
function statements(s: ReturnType<typeof synth>, role: 'dispatcherRole' | 'workerRole'): Record<string, unknown>[] {
  const policies = s.template.findResources('AWS::IAM::Policy', {
    Properties: { Roles: [{ Ref: logicalId(s.stack, s.stack.fleet![role]) }] },
  });
  expect(Object.keys(policies)).toHaveLength(1);
  return Object.values(policies)[0]!.Properties.PolicyDocument.Statement;
}

const getAtt = (id: string, attribute = 'Arn') => ({ 'Fn::GetAtt': [id, attribute] });

/** The fixed set of fleet mode: the same for 3 and for 3,000 mailboxes. */
const FLEET_RESOURCES = {
  'AWS::DynamoDB::Table': 1,
  'AWS::Events::EventBus': 1,
  'AWS::SQS::Queue': 2,
  'AWS::SQS::QueuePolicy': 2,
  'AWS::IAM::Role': 2,
  'AWS::IAM::Policy': 2,
  'AWS::Logs::LogGroup': 2,
  'AWS::Lambda::Function': 2,
  'AWS::Lambda::EventInvokeConfig': 1,
  'AWS::Lambda::Permission': 1,
  'AWS::Lambda::EventSourceMapping': 1,
  'AWS::Events::Rule': 1,
  'AWS::CloudWatch::Alarm': 7,
  'AWS::CloudWatch::Dashboard': 1,
};

describe('fleet mode: resources', () => {
  it('has the same resources for 3 and for 3,000 mailboxes (the declared list is an S3 asset)', () => {
    const three = synth(fleetConfig(3));
    const many = synth(fleetConfig(3_000));
    expect(resourceTypes(three.template)).toEqual(FLEET_RESOURCES);
    expect(resourceTypes(many.template)).toEqual(FLEET_RESOURCES);
    const total = Object.values(FLEET_RESOURCES).reduce((a, b) => a + b, 0);
    expect(total).toBe(26);
    // Per-mailbox mode for comparison: 9 resources per mailbox (function, role, policy, log group, rule, permission, invoke config, 2 alarms) on top of the shared ones.
    const perMailbox = (n: number) =>
      Object.keys(
        synth({
          mailboxes: Array.from({ length: n }, (_, i) => ({ id: `box-${i}`, secretName: `imap/b${i}` })),
        }).template.toJSON().Resources,
      ).length;
    expect(perMailbox(3) - perMailbox(2)).toBe(9);
    expect(perMailbox(3)).toBeGreaterThan(total);
  });

  it('writes the declared mailboxes into the asset the dispatcher reads, and names it in its environment', () => {
    const s = synth(fleetConfig(3));
    const asm = s.app.synth();
    const fleet = s.stack.fleet!;
    const assetPath = join(asm.directory, fleet.declaredMailboxes.assetPath);
    const file = JSON.parse(readFileSync(assetPath, 'utf8'));
    expect(file).toEqual({
      version: 1,
      mailboxes: [
        {
          id: 'box-0',
          secretId: TENANT,
          username: 'box-0@contoso.com',
          folder: 'Firma/Kundenbetreuung',
          schedule: 'rate(5 minutes)',
          startAt: 'all',
        },
        { id: 'box-1', secretId: TENANT, username: 'box-1@contoso.com', schedule: 'rate(1 minute)', startAt: 'now' },
        { id: 'box-2', secretId: TENANT, username: 'box-2@contoso.com', schedule: 'rate(1 minute)', startAt: 'now' },
      ],
    });
    const queue = logicalId(s.stack, fleet.queue);
    s.template.hasResourceProperties('AWS::Lambda::Function', {
      Description: Match.stringLikeRegexp('sends the due mailboxes'),
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      ReservedConcurrentExecutions: 1,
      Environment: {
        Variables: {
          CHECKPOINT_TABLE: { Ref: logicalId(s.stack, s.stack.checkpointTable) },
          POLL_QUEUE_URL: { Ref: queue },
          DECLARED_MAILBOXES_BUCKET: 'cdk-hnb659fds-assets-123456789012-eu-central-1',
          DECLARED_MAILBOXES_KEY: `${fleet.declaredMailboxes.assetHash}.json`,
          MAX_DISPATCH_PER_CYCLE: String(FLEET_DEFAULTS.maxPerCycle),
          POWERTOOLS_SERVICE_NAME: 'imap-event-source',
        },
      },
    });
    s.template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(1 minute)',
      Targets: [Match.objectLike({ Arn: getAtt(logicalId(s.stack, fleet.dispatcher)) })],
    });
  });

  it('adds the sparse due index to the shared checkpoint table (same key schema, on demand, PITR, encrypted, retained)', () => {
    const { template } = synth(fleetConfig(3));
    template.hasResource('AWS::DynamoDB::Table', {
      Properties: {
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
        AttributeDefinitions: [
          { AttributeName: 'pk', AttributeType: 'S' },
          { AttributeName: DUE_INDEX.partitionKey, AttributeType: 'N' },
          { AttributeName: DUE_INDEX.sortKey, AttributeType: 'N' },
        ],
        GlobalSecondaryIndexes: [
          {
            IndexName: DUE_INDEX.name,
            KeySchema: [
              { AttributeName: DUE_INDEX.partitionKey, KeyType: 'HASH' },
              { AttributeName: DUE_INDEX.sortKey, KeyType: 'RANGE' },
            ],
            Projection: { ProjectionType: 'ALL' },
          },
        ],
        BillingMode: 'PAY_PER_REQUEST',
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        SSESpecification: { SSEEnabled: true },
      },
      DeletionPolicy: 'Retain',
    });
  });

  it('feeds a bounded pool from an encrypted, TLS-only queue with a dead-letter queue, reporting failures per item', () => {
    const s = synth(fleetConfig(3, { fleet: { poolConcurrency: 40, hostConnectionCap: 5, maxMessagesPerTurn: 200 } }));
    const fleet = s.stack.fleet!;
    const queue = logicalId(s.stack, fleet.queue);
    const dlq = logicalId(s.stack, fleet.deadLetterQueue);
    s.template.hasResourceProperties('AWS::SQS::Queue', {
      SqsManagedSseEnabled: true,
      VisibilityTimeout: 100,
      MessageRetentionPeriod: 3600,
      RedrivePolicy: { deadLetterTargetArn: getAtt(dlq), maxReceiveCount: 5 },
    });
    s.template.hasResourceProperties('AWS::SQS::Queue', {
      SqsManagedSseEnabled: true,
      MessageRetentionPeriod: 1209600,
    });
    for (const id of [queue, dlq]) {
      s.template.hasResourceProperties('AWS::SQS::QueuePolicy', {
        Queues: [{ Ref: id }],
        PolicyDocument: {
          Statement: [Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })],
        },
      });
    }
    s.template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: getAtt(queue),
      FunctionName: { Ref: logicalId(s.stack, fleet.worker) },
      BatchSize: 10,
      ScalingConfig: { MaximumConcurrency: 40 },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
    s.template.hasResourceProperties('AWS::Lambda::Function', {
      Description: Match.stringLikeRegexp('polls the mailboxes'),
      ReservedConcurrentExecutions: 40,
      Timeout: 50,
      MemorySize: 256,
      Environment: {
        Variables: {
          CHECKPOINT_TABLE: { Ref: logicalId(s.stack, s.stack.checkpointTable) },
          POLL_QUEUE_URL: { Ref: queue },
          EVENT_BUS_NAME: 'imap-event-source',
          EVENT_SOURCE: 'imap-event-source',
          SECRET_PREFIX: 'imap-event-source/',
          HOST_CONNECTION_CAP: '5',
          POOL_CONCURRENCY: '40',
          MAX_MESSAGES_PER_TURN: '200',
          POWERTOOLS_SERVICE_NAME: 'imap-event-source',
          LOG_LEVEL: 'INFO',
          NODE_OPTIONS: '--enable-source-maps',
        },
      },
    });
  });

  it('reserves no concurrency with reserveConcurrency false: the event source still bounds the pool', () => {
    const { template } = synth(fleetConfig(1, { reserveConcurrency: false }));
    for (const fn of Object.values(template.findResources('AWS::Lambda::Function'))) {
      expect(fn.Properties.ReservedConcurrentExecutions).toBeUndefined();
    }
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      ScalingConfig: { MaximumConcurrency: FLEET_DEFAULTS.poolConcurrency },
    });
  });

  it('creates no per-mailbox function, secret or alarm, and outputs the fleet resources', () => {
    const s = synth(fleetConfig(3));
    expect(s.stack.mailboxes.size).toBe(0);
    expect(s.stack.secrets.size).toBe(0);
    const outputs = Object.keys(s.template.toJSON().Outputs);
    expect(outputs.filter((o) => o.startsWith('Mailbox'))).toEqual([]);
    expect(outputs).toEqual(
      expect.arrayContaining([
        'FleetDispatcherFunctionName',
        'FleetWorkerFunctionName',
        'FleetWorkerLogGroupName',
        'FleetPollQueueUrl',
        'FleetDeadLetterQueueUrl',
        'FleetSecretPrefix',
        'CheckpointTableName',
        'DashboardName',
      ]),
    );
  });
});

describe('fleet mode: least privilege', () => {
  it('dispatcher: query the due index, scan (read only), write registry items and its state item only, send to the queue and read its backlog, read its asset, write its logs', () => {
    const s = synth(fleetConfig(3));
    const fleet = s.stack.fleet!;
    const table = logicalId(s.stack, s.stack.checkpointTable);
    expect(statements(s, 'dispatcherRole')).toEqual([
      {
        Action: 'dynamodb:Query',
        Effect: 'Allow',
        Resource: { 'Fn::Join': ['', [getAtt(table), `/index/${DUE_INDEX.name}`]] },
      },
      { Action: 'dynamodb:Scan', Effect: 'Allow', Resource: getAtt(table) },
      {
        Action: ['dynamodb:DeleteItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
        Condition: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['mailbox#*', 'dispatcher#state'] } },
        Effect: 'Allow',
        Resource: getAtt(table),
      },
      {
        Action: ['sqs:GetQueueAttributes', 'sqs:SendMessage'],
        Effect: 'Allow',
        Resource: getAtt(logicalId(s.stack, fleet.queue)),
      },
      {
        Action: 's3:GetObject',
        Effect: 'Allow',
        Resource: `arn:aws:s3:::cdk-hnb659fds-assets-123456789012-eu-central-1/${fleet.declaredMailboxes.assetHash}.json`,
      },
      {
        Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        Effect: 'Allow',
        Resource: getAtt(logicalId(s.stack, fleet.dispatcherLogGroup)),
      },
    ]);
  });

  it('worker: secrets under the prefix, the mailbox items, PutEvents, the queue, its logs; a KMS key only via Secrets Manager', () => {
    const s = synth({
      mode: 'fleet',
      mailboxes: [{ id: 'a', secretName: 'mail/tenant' }],
      fleet: { secretPrefix: 'mail/', secretKmsKeyArn: KEY_ARN },
    });
    const fleet = s.stack.fleet!;
    const table = logicalId(s.stack, s.stack.checkpointTable);
    expect(statements(s, 'workerRole')).toEqual([
      {
        Action: [
          'sqs:ChangeMessageVisibility',
          'sqs:DeleteMessage',
          'sqs:GetQueueAttributes',
          'sqs:GetQueueUrl',
          'sqs:ReceiveMessage',
          'sqs:SendMessage',
        ],
        Effect: 'Allow',
        Resource: getAtt(logicalId(s.stack, fleet.queue)),
      },
      {
        Action: 'secretsmanager:GetSecretValue',
        Effect: 'Allow',
        Resource: 'arn:aws:secretsmanager:eu-central-1:123456789012:secret:mail/*',
      },
      {
        Action: [
          'dynamodb:BatchGetItem',
          'dynamodb:DeleteItem',
          'dynamodb:GetItem',
          'dynamodb:PutItem',
          'dynamodb:UpdateItem',
        ],
        Condition: {
          'ForAllValues:StringLike': {
            'dynamodb:LeadingKeys': [
              'checkpoint#*#*',
              'lease#*',
              'status#*',
              'oauth2-refresh-token#*',
              'mailbox#*',
              'hostslot#*#*',
            ],
          },
        },
        Effect: 'Allow',
        Resource: getAtt(table),
      },
      {
        Action: 'events:PutEvents',
        Effect: 'Allow',
        Resource: 'arn:aws:events:eu-central-1:123456789012:event-bus/imap-event-source',
      },
      {
        Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        Effect: 'Allow',
        Resource: getAtt(logicalId(s.stack, fleet.workerLogGroup)),
      },
      {
        Action: 'kms:Decrypt',
        Condition: { StringEquals: { 'kms:ViaService': 'secretsmanager.eu-central-1.amazonaws.com' } },
        Effect: 'Allow',
        Resource: KEY_ARN,
      },
    ]);
  });

  it('with raw storage the pool writes below any mailbox prefix of the bucket; in a VPC only the worker is placed', () => {
    const s = synth(
      fleetConfig(2, {
        rawMessageStorage: { enabled: true },
        vpc: { vpcId: VPC_ID, imapServerCidr: '10.0.12.7/32' },
      }),
    );
    const worker = statements(s, 'workerRole');
    expect(worker).toContainEqual({
      Action: ['s3:AbortMultipartUpload', 's3:PutObject'],
      Effect: 'Allow',
      Resource: { 'Fn::Join': ['', [getAtt(logicalId(s.stack, s.stack.rawMessageBucket!)), '/*']] },
    });
    expect(worker).toContainEqual(expect.objectContaining({ Resource: '*', Effect: 'Allow' }));
    const fns = s.template.findResources('AWS::Lambda::Function');
    const inVpc = Object.values(fns).filter((f) => f.Properties.VpcConfig);
    expect(inVpc.map((f) => f.Properties.Description)).toEqual([expect.stringMatching(/polls the mailboxes/)]);
    expect(inVpc[0]!.Properties.Environment.Variables.RAW_BUCKET).toEqual({
      Ref: logicalId(s.stack, s.stack.rawMessageBucket!),
    });
  });
});

describe('fleet mode: aggregate monitoring', () => {
  it('a fixed set of seven alarms on the fleet metrics, the queues and the two functions, all notifying the topic', () => {
    const s = synth(fleetConfig(3_000, { alarms: { createTopic: true } }));
    const alarms = s.template.findResources('AWS::CloudWatch::Alarm');
    expect(Object.keys(alarms)).toHaveLength(7);
    const topic = { Ref: logicalId(s.stack, s.stack.alarmTopic as never) };
    for (const alarm of Object.values(alarms)) {
      expect(alarm.Properties.AlarmActions).toEqual([topic]);
      expect(alarm.Properties.OKActions).toEqual([topic]);
      expect(alarm.Properties.AlarmDescription).toMatch(/Runbook: docs\/fleet\.md/);
    }
    const byMetric = (name: string) =>
      Object.values(alarms)
        .filter((a) => a.Properties.MetricName === name)
        .map((a) => a.Properties);
    for (const name of [FLEET_METRICS.overdue, FLEET_METRICS.inBackoff]) {
      expect(byMetric(name)).toEqual([
        expect.objectContaining({
          Namespace: 'ImapEventSource',
          Dimensions: [{ Name: 'service', Value: 'imap-event-source' }],
          Statistic: 'Maximum',
          Threshold: 1,
          ComparisonOperator: 'GreaterThanOrEqualToThreshold',
          TreatMissingData: 'notBreaching',
        }),
      ]);
    }
    expect(byMetric('ApproximateNumberOfMessagesVisible')).toEqual([
      expect.objectContaining({
        Dimensions: [
          { Name: 'QueueName', Value: getAtt(logicalId(s.stack, s.stack.fleet!.deadLetterQueue), 'QueueName') },
        ],
        EvaluationPeriods: 1,
      }),
    ]);
    expect(byMetric('Errors')).toHaveLength(2);
    expect(byMetric('Throttles')).toHaveLength(1);
    expect(byMetric('Invocations')).toEqual([
      expect.objectContaining({
        ComparisonOperator: 'LessThanThreshold',
        TreatMissingData: 'breaching',
        EvaluationPeriods: 3,
        DatapointsToAlarm: 3,
      }),
    ]);
  });

  it('one dashboard with the alarm states, the fleet metrics, the queue and pool, and the worker log queries', () => {
    const { template } = synth(fleetConfig(3));
    const [dashboard] = Object.values(template.findResources('AWS::CloudWatch::Dashboard'));
    const body = JSON.stringify(dashboard!.Properties.DashboardBody);
    for (const text of [
      'Fleet alarms',
      FLEET_METRICS.overdue,
      FLEET_METRICS.inBackoff,
      FLEET_METRICS.dispatched,
      FLEET_METRICS.hostCapDeferred,
      'ApproximateAgeOfOldestMessage',
      'ConcurrentExecutions',
      'Poll finished',
      'Poll failed',
    ]) {
      expect(body).toContain(text);
    }
  });
});

describe('fleet mode: configuration', () => {
  const problems = (raw: unknown): string[] => {
    try {
      parseConfig(raw);
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return [...(error as ConfigError).problems];
    }
    throw new Error('expected a ConfigError');
  };

  it('defaults from the contract; mailboxes may be empty (all added with the CLI) and share a secret', () => {
    expect(parseConfig({ mode: 'fleet' })).toMatchObject({
      mode: 'fleet',
      mailboxes: [],
      fleet: {
        poolConcurrency: FLEET_DEFAULTS.poolConcurrency,
        hostConnectionCap: FLEET_DEFAULTS.hostConnectionCap,
        maxMessagesPerTurn: FLEET_DEFAULTS.maxMessagesPerTurn,
        maxPerCycle: FLEET_DEFAULTS.maxPerCycle,
        secretPrefix: FLEET_DEFAULTS.secretPrefix,
      },
    });
    expect(parseConfig(fleetConfig(2)).mailboxes.map((m) => [m.secretName, m.username])).toEqual([
      [TENANT, 'box-0@contoso.com'],
      [TENANT, 'box-1@contoso.com'],
    ]);
  });

  it('names the field of every problem with the fleet options', () => {
    expect(
      problems({
        mode: 'fleet',
        fleet: {
          poolConcurrency: 1,
          hostConnectionCap: 0,
          maxMessagesPerTurn: 1.5,
          maxPerCycle: 'all',
          secretPrefix: '',
          x: 1,
        },
      }),
    ).toEqual([
      'fleet.x: unknown field (allowed: poolConcurrency, hostConnectionCap, maxMessagesPerTurn, maxPerCycle, secretPrefix, secretKmsKeyArn)',
      'fleet.secretPrefix: must be 1-256 of A-Z a-z 0-9 / _ + = . @ - (the start of the secret names the pool may read; end it with "/")',
      'fleet.poolConcurrency: must be an integer from 2 to 1000',
      'fleet.hostConnectionCap: must be an integer from 1 to 1000',
      'fleet.maxMessagesPerTurn: must be an integer from 1 to 100000',
      'fleet.maxPerCycle: must be an integer from 1 to 100000',
    ]);
    expect(problems({ mode: 'swarm', mailboxes: [{ id: 'a', secretName: 'x' }] })).toEqual([
      'mode: must be one of "per-mailbox", "fleet"',
    ]);
    expect(problems({ fleet: {}, mailboxes: [{ id: 'a', secretName: 'x', username: 'u', folder: 'f' }] })).toEqual([
      'fleet: only with mode "fleet"',
      'mailbox "a".username: only in fleet mode (mode "fleet"); else set it in the secret',
      'mailbox "a".folder: only in fleet mode (mode "fleet"); else set it in the secret',
    ]);
  });

  it('rejects per-mailbox options, secrets outside the prefix and irregular schedules in fleet mode', () => {
    expect(
      problems({
        mode: 'fleet',
        mailboxes: [
          { id: 'a', secretName: 'other/a', createSecret: true, secretKmsKeyArn: KEY_ARN, maxMessagesPerRun: 5 },
          {
            id: 'b',
            secretArn: 'arn:aws:secretsmanager:eu-central-1:123456789012:secret:other/b-AbC123',
            schedule: 'cron(0/15 8-17 ? * MON-FRI *)',
            alarmIntervalMinutes: 60,
          },
          { id: 'c' },
          { id: 'c', secretName: `${TENANT}`, username: '' },
        ],
      }),
    ).toEqual([
      'mailbox "a".createSecret: not in fleet mode: create the secret under fleet.secretPrefix before the deploy',
      'mailbox "a".secretKmsKeyArn: not in fleet mode: give the key of all mailbox secrets as fleet.secretKmsKeyArn',
      'mailbox "a".maxMessagesPerRun: not in fleet mode: the pool uses fleet.maxMessagesPerTurn for every mailbox',
      'mailbox "a".secretName: must be under fleet.secretPrefix "imap-event-source/": the pool may read no other secret',
      'mailbox "b".alarmIntervalMinutes: not in fleet mode: its alarms are aggregate (docs/fleet.md, "Monitoring")',
      'mailbox "b".secretArn: must be under fleet.secretPrefix "imap-event-source/": the pool may read no other secret',
      'mailbox "b".schedule: fleet mode needs rate(...) or a cron that runs at even gaps every day: cron(0/15 8-17 ? * MON-FRI *) does not run every day (day-of-month, month, day-of-week or year is set)',
      'mailbox "c".secretName: required: give secretName or secretArn of the mailbox secret (several mailboxes may share one)',
      'mailbox "c".username: must be 1-1024 characters without control characters',
      'mailbox "c".id: must be unique; it appears more than once',
    ]);
  });

  it('the construct checks its props too, naming each', () => {
    const stack = new Stack(new App(), 'S', { env: TEST_ENV });
    const eventBus = events.EventBus.fromEventBusName(stack, 'Bus', 'b');
    expect(
      () =>
        new ImapEventSourceFleet(stack, 'Fleet', {
          eventBus,
          poolConcurrency: 1_001,
          secretPrefix: '',
          mailboxes: [
            { id: 'A', secretId: 'x' },
            { id: 'b', secretId: 'other/b' },
            { id: 'b', secretId: 'other/b' },
          ],
        }),
    ).toThrow(
      'ImapEventSourceFleet Fleet: poolConcurrency: must be an integer from 2 to 1000; secretPrefix: must be 1-256 of A-Z a-z 0-9 / _ + = . @ - (the start of the secret names the pool may read; end it with "/"); mailboxes[0].id: 1 to 32 characters: lowercase letters, digits and single inner hyphens, starting with a letter; mailboxes[2].id: "b" appears more than once',
    );
  });

  it('as a construct of its own it creates its table with the due index', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] }, builtinCloudFormationValidation: false });
    const stack = new Stack(app, 'S', { env: TEST_ENV });
    new ImapEventSourceFleet(stack, 'Fleet', {
      eventBus: events.EventBus.fromEventBusName(stack, 'Bus', 'b'),
      mailboxes: [{ id: 'a', secretId: 'imap-event-source/a' }],
    });
    const template = Template.fromStack(stack);
    template.hasResource('AWS::DynamoDB::Table', {
      Properties: { GlobalSecondaryIndexes: [Match.objectLike({ IndexName: DUE_INDEX.name })] },
      DeletionPolicy: 'Retain',
    });
  });
});
