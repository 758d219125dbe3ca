import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { describe, expect, it } from 'vitest';
import { ImapEventSource, type ImapEventSourceProps } from '../../lib/imap-event-source.js';
import { logicalId, PRIVATE_SUBNETS, SUPPORT, synth, TEST_ENV, VPC_ID } from './synth.js';

const SALES_ARN = 'arn:aws:secretsmanager:eu-central-1:123456789012:secret:imap/sales-AbC123';
const KEY_ARN = 'arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const TWO_MAILBOXES = {
  mailboxes: [
    SUPPORT,
    {
      id: 'sales-eu',
      secretArn: SALES_ARN,
      secretKmsKeyArn: KEY_ARN,
      schedule: 'rate(5 minutes)',
      startAt: 'all',
      maxMessagesPerRun: 200,
    },
  ],
};

/** The statements of the default policy of `mailboxId`'s role, resolved. */
function statements(s: ReturnType<typeof synth>, mailboxId: string): Record<string, unknown>[] {
  const role = s.stack.mailboxes.get(mailboxId)!.role;
  const policies = s.template.findResources('AWS::IAM::Policy', {
    Properties: { Roles: [{ Ref: logicalId(s.stack, role) }] },
  });
  expect(Object.keys(policies)).toHaveLength(1);
  return Object.values(policies)[0]!.Properties.PolicyDocument.Statement;
}

const getAtt = (id: string, attribute = 'Arn') => ({ 'Fn::GetAtt': [id, attribute] });

describe('shared resources', () => {
  it('creates one on-demand, point-in-time-recoverable, encrypted checkpoint table that survives stack deletion', () => {
    const { template } = synth(TWO_MAILBOXES);
    template.resourceCountIs('AWS::DynamoDB::Table', 1);
    template.hasResource('AWS::DynamoDB::Table', {
      Properties: {
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
        AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
        BillingMode: 'PAY_PER_REQUEST',
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        SSESpecification: { SSEEnabled: true },
      },
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
  });

  it('creates the bus by name, or uses an existing one', () => {
    synth({ mailboxes: [SUPPORT], busName: 'mail' }).template.hasResourceProperties('AWS::Events::EventBus', {
      Name: 'mail',
    });
    const existing = synth({ mailboxes: [SUPPORT], busName: 'default', createBus: false });
    existing.template.resourceCountIs('AWS::Events::EventBus', 0);
    existing.template.hasOutput('EventBusArn', { Value: 'arn:aws:events:eu-central-1:123456789012:event-bus/default' });
  });

  it('outputs bus name and ARN, table name, dashboard, and per mailbox the function name, log group and secret ARN', () => {
    const s = synth(TWO_MAILBOXES);
    const outputs = s.template.findOutputs('*');
    expect(Object.keys(outputs).sort()).toEqual([
      'CheckpointTableName',
      'DashboardName',
      'EventBusArn',
      'EventBusName',
      'MailboxSalesEuFunctionName',
      'MailboxSalesEuLogGroupName',
      'MailboxSalesEuSecretArn',
      'MailboxSupportFunctionName',
      'MailboxSupportLogGroupName',
      'MailboxSupportSecretArn',
    ]);
    expect(outputs.MailboxSupportLogGroupName!.Value).toEqual({
      Ref: logicalId(s.stack, s.stack.mailboxes.get('support')!.logGroup),
    });
    expect(outputs.DashboardName!.Value).toBe('ImapEventSource');
    expect(outputs.EventBusName!.Value).toBe('imap-event-source');
    expect(outputs.EventBusArn!.Value).toEqual(getAtt(logicalId(s.stack, s.stack.eventBus as never)));
    expect(outputs.CheckpointTableName!.Value).toEqual({ Ref: logicalId(s.stack, s.stack.checkpointTable) });
    expect(outputs.MailboxSalesEuFunctionName!.Value).toEqual({
      Ref: logicalId(s.stack, s.stack.mailboxes.get('sales-eu')!.function),
    });
    expect(outputs.MailboxSalesEuSecretArn!.Value).toBe(SALES_ARN);
    expect(outputs.MailboxSupportSecretArn!.Value).toBe(
      'arn:aws:secretsmanager:eu-central-1:123456789012:secret:imap-event-source/support',
    );
  });
});

describe('per mailbox', () => {
  it('creates a function, role, log group and schedule per mailbox', () => {
    const { template } = synth(TWO_MAILBOXES);
    for (const type of [
      'AWS::Lambda::Function',
      'AWS::IAM::Role',
      'AWS::Logs::LogGroup',
      'AWS::Events::Rule',
      'AWS::Lambda::Permission',
    ]) {
      template.resourceCountIs(type, 2);
    }
  });

  it('runs Node.js 24 on arm64 with reserved concurrency 1, a 50 s timeout and the contract environment', () => {
    const s = synth(TWO_MAILBOXES);
    const support = s.stack.mailboxes.get('support')!;
    const fn = s.template.findResources('AWS::Lambda::Function')[logicalId(s.stack, support.function)]!;
    expect(fn.Properties).toMatchObject({
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      Handler: 'index.handler',
      ReservedConcurrentExecutions: 1,
      Timeout: 50,
      MemorySize: 256,
      Role: getAtt(logicalId(s.stack, support.role)),
      LoggingConfig: { LogGroup: { Ref: logicalId(s.stack, support.logGroup) } },
    });
    // Exactly the contract's variables; the bus name is a literal, the secret only named, never its value.
    expect(fn.Properties.Environment.Variables).toEqual({
      MAILBOX_ID: 'support',
      SECRET_ID: 'imap-event-source/support',
      CHECKPOINT_TABLE: { Ref: logicalId(s.stack, s.stack.checkpointTable) },
      EVENT_BUS_NAME: 'imap-event-source',
      EVENT_SOURCE: 'imap-event-source',
      START_AT: 'now',
      POWERTOOLS_SERVICE_NAME: 'imap-event-source',
      LOG_LEVEL: 'INFO',
      NODE_OPTIONS: '--enable-source-maps',
      STALE_AFTER_SECONDS: '180',
    });
    s.template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          MAILBOX_ID: 'sales-eu',
          SECRET_ID: SALES_ARN,
          START_AT: 'all',
          MAX_MESSAGES_PER_RUN: '200',
        }),
      },
    });
    s.template.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
    // A missed run is repaired by the next: no async retries queueing behind the reserved concurrency.
    s.template.allResourcesProperties('AWS::Lambda::EventInvokeConfig', {
      MaximumRetryAttempts: 0,
      MaximumEventAgeInSeconds: 60,
    });
  });

  it("reserves no concurrency when turned off (the handler's lease then keeps runs apart)", () => {
    const { template } = synth({ ...TWO_MAILBOXES, reserveConcurrency: false });
    template.allResourcesProperties('AWS::Lambda::Function', { ReservedConcurrentExecutions: Match.absent() });
  });

  it('schedules each mailbox on its own expression, targeting its own function', () => {
    const s = synth(TWO_MAILBOXES);
    for (const [id, expression] of [
      ['support', 'rate(1 minute)'],
      ['sales-eu', 'rate(5 minutes)'],
    ] as const) {
      const poller = s.stack.mailboxes.get(id)!;
      const rule = s.template.findResources('AWS::Events::Rule')[logicalId(s.stack, poller.schedule)]!;
      expect(rule.Properties).toMatchObject({
        ScheduleExpression: expression,
        State: 'ENABLED',
        Targets: [{ Arn: getAtt(logicalId(s.stack, poller.function)) }],
      });
      expect(rule.Properties.EventBusName).toBeUndefined(); // schedules live on the default bus
    }
  });
  // The alarms: test/infra/monitoring.test.ts.
});

describe('IAM', () => {
  it('grants exactly: read its own secret, item access to the table, PutEvents to the bus, its own log group', () => {
    const s = synth(TWO_MAILBOXES);
    const support = s.stack.mailboxes.get('support')!;
    expect(statements(s, 'support')).toEqual([
      {
        Effect: 'Allow',
        Action: ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue'],
        Resource: 'arn:aws:secretsmanager:eu-central-1:123456789012:secret:imap-event-source/support-??????',
      },
      {
        Effect: 'Allow',
        Action: ['dynamodb:DeleteItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
        Resource: getAtt(logicalId(s.stack, s.stack.checkpointTable)),
        // Only this mailbox's checkpoint, lease, status and (OAuth2 refresh-token flow) sealed refresh token items.
        Condition: {
          'ForAllValues:StringLike': {
            'dynamodb:LeadingKeys': [
              'checkpoint#support#*',
              'lease#support',
              'status#support',
              'oauth2-refresh-token#support',
            ],
          },
        },
      },
      {
        Effect: 'Allow',
        Action: 'events:PutEvents',
        Resource: 'arn:aws:events:eu-central-1:123456789012:event-bus/imap-event-source',
      },
      {
        Effect: 'Allow',
        Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        Resource: getAtt(logicalId(s.stack, support.logGroup)),
      },
    ]);
  });

  it('grants a secret imported by ARN, and its KMS key only through Secrets Manager', () => {
    const s = synth(TWO_MAILBOXES);
    const granted = statements(s, 'sales-eu');
    expect(granted.slice(0, 2)).toEqual([
      {
        Effect: 'Allow',
        Action: ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue'],
        Resource: SALES_ARN,
      },
      {
        Effect: 'Allow',
        Action: 'kms:Decrypt',
        Resource: KEY_ARN,
        Condition: { StringEquals: { 'kms:ViaService': 'secretsmanager.eu-central-1.amazonaws.com' } },
      },
    ]);
    // Nothing of the other mailbox.
    expect(JSON.stringify(granted)).not.toContain('imap-event-source/support');
    expect(JSON.stringify(statements(s, 'support'))).not.toContain('kms:');
  });

  it('gives each mailbox its own role', () => {
    const s = synth(TWO_MAILBOXES);
    const roles = [...s.stack.mailboxes.values()].map((m) => logicalId(s.stack, m.role));
    expect(new Set(roles).size).toBe(2);
    s.template.allResourcesProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [{ Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' } }],
      },
      ManagedPolicyArns: Match.absent(),
    });
  });
});

describe('secrets', () => {
  it('creates an empty placeholder secret, retained on delete, when asked to', () => {
    const s = synth({ mailboxes: [{ id: 'hr', createSecret: true }] });
    s.template.resourceCountIs('AWS::SecretsManager::Secret', 1);
    s.template.hasResource('AWS::SecretsManager::Secret', {
      Properties: { Name: 'imap-event-source/hr', SecretString: '{}', GenerateSecretString: Match.absent() },
      DeletionPolicy: 'Retain',
    });
    const secretId = logicalId(s.stack, s.stack.secrets.get('hr') as never);
    expect(statements(s, 'hr')[0]).toEqual({
      Effect: 'Allow',
      Action: ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue'],
      Resource: { Ref: secretId },
    });
    s.template.hasOutput('MailboxHrSecretArn', { Value: { Ref: secretId } });
  });

  it('creates no secret when importing', () => {
    synth(TWO_MAILBOXES).template.resourceCountIs('AWS::SecretsManager::Secret', 0);
  });
});

describe('raw-message storage', () => {
  it('is off by default', () => {
    const { template } = synth(TWO_MAILBOXES);
    template.resourceCountIs('AWS::S3::Bucket', 0);
    template.allResourcesProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ RAW_BUCKET: Match.absent() }) },
    });
  });

  it('creates an encrypted, private, TLS-only, expiring, access-logged bucket; each mailbox may write only its prefix', () => {
    const s = synth({ ...TWO_MAILBOXES, rawMessageStorage: { enabled: true, expirationDays: 14 } });
    const bucket = logicalId(s.stack, s.stack.rawMessageBucket!);
    const privateBucket = {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
    };
    s.template.resourceCountIs('AWS::S3::Bucket', 2); // raw messages + their access logs
    s.template.hasResourceProperties('AWS::S3::Bucket', privateBucket);
    const raw = s.template.findResources('AWS::S3::Bucket')[bucket]!;
    expect(raw.Properties).toMatchObject({
      ...privateBucket,
      LifecycleConfiguration: {
        Rules: [
          { ExpirationInDays: 14, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 }, Status: 'Enabled' },
        ],
      },
      LoggingConfiguration: {
        DestinationBucketName: { Ref: expect.stringMatching(/^RawMessageAccessLogs/) },
        LogFilePrefix: 'raw-messages/',
      },
    });
    expect(raw.DeletionPolicy).toBe('Retain');
    s.template.allResourcesProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
    for (const id of ['support', 'sales-eu']) {
      expect(statements(s, id)).toContainEqual({
        Effect: 'Allow',
        Action: ['s3:AbortMultipartUpload', 's3:PutObject'],
        Resource: { 'Fn::Join': ['', [getAtt(bucket), `/${id}/*`]] },
      });
    }
    s.template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ MAILBOX_ID: 'support', RAW_BUCKET: { Ref: bucket } }) },
    });
    s.template.hasOutput('RawMessageBucketName', { Value: { Ref: bucket } });
  });
});

describe('VPC placement', () => {
  const VPC = { vpcId: VPC_ID, imapServerCidr: '10.0.12.7/32', imapPort: 143 };

  it('places the functions in private subnets behind a security group that allows only IMAP to the server and HTTPS', () => {
    const s = synth({ ...TWO_MAILBOXES, vpc: VPC });
    const group = logicalId(s.stack, s.stack.securityGroup!);
    s.template.resourceCountIs('AWS::EC2::SecurityGroup', 1);
    s.template.hasResourceProperties('AWS::EC2::SecurityGroup', {
      VpcId: VPC_ID,
      SecurityGroupEgress: [
        { CidrIp: '10.0.12.7/32', IpProtocol: 'tcp', FromPort: 143, ToPort: 143, Description: 'IMAP server' },
        { CidrIp: '0.0.0.0/0', IpProtocol: 'tcp', FromPort: 443, ToPort: 443, Description: Match.anyValue() },
      ],
      SecurityGroupIngress: Match.absent(),
    });
    s.template.resourceCountIs('AWS::EC2::SecurityGroupIngress', 0);
    s.template.allResourcesProperties('AWS::Lambda::Function', {
      VpcConfig: { SecurityGroupIds: [getAtt(group, 'GroupId')], SubnetIds: PRIVATE_SUBNETS },
    });
    s.template.resourceCountIs('AWS::EC2::VPCEndpoint', 0);
    // The network-interface permissions Lambda needs for VPC placement: the only "*" resource.
    expect(statements(s, 'support')).toContainEqual({
      Effect: 'Allow',
      Action: [
        'ec2:AssignPrivateIpAddresses',
        'ec2:CreateNetworkInterface',
        'ec2:DeleteNetworkInterface',
        'ec2:DescribeNetworkInterfaces',
        'ec2:DescribeSubnets',
        'ec2:UnassignPrivateIpAddresses',
      ],
      Resource: '*',
    });
  });

  it('creates interface endpoints for Secrets Manager and EventBridge and gateway endpoints for DynamoDB (and S3), so no NAT is needed', () => {
    const s = synth({ ...TWO_MAILBOXES, vpc: { ...VPC, endpoints: true }, rawMessageStorage: { enabled: true } });
    const endpoints = Object.values(s.template.findResources('AWS::EC2::VPCEndpoint')).map((r) => r.Properties);
    const service = (p: { ServiceName: unknown }) => /\.(\w+)"(\]\]\})?$/.exec(JSON.stringify(p.ServiceName))![1];
    expect(endpoints.map((p) => `${p.VpcEndpointType} ${service(p)}`).sort()).toEqual([
      'Gateway dynamodb',
      'Gateway s3',
      'Interface events',
      'Interface secretsmanager',
    ]);
    for (const p of endpoints) {
      if (p.VpcEndpointType === 'Interface')
        expect(p).toMatchObject({ PrivateDnsEnabled: true, SubnetIds: PRIVATE_SUBNETS });
      else expect(p.RouteTableIds).toEqual(['rtb-private-a', 'rtb-private-b']);
    }
    // The endpoints accept HTTPS from the pollers only.
    s.template.resourceCountIs('AWS::EC2::SecurityGroupIngress', 1);
    s.template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      IpProtocol: 'tcp',
      FromPort: 443,
      ToPort: 443,
      SourceSecurityGroupId: getAtt(logicalId(s.stack, s.stack.securityGroup!), 'GroupId'),
    });
  });

  it('uses the given subnets', () => {
    const s = synth({ mailboxes: [SUPPORT], vpc: { ...VPC, subnetIds: [PRIVATE_SUBNETS[1]] } });
    s.template.hasResourceProperties('AWS::Lambda::Function', { VpcConfig: { SubnetIds: [PRIVATE_SUBNETS[1]] } });
  });
});

describe('ImapEventSource props', () => {
  function source(
    timeout: Duration,
    props: Partial<Pick<ImapEventSourceProps, 'mailboxId' | 'startAt' | 'eventSource'>> = {},
  ): () => ImapEventSource {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new Stack(app, 'Props', { env: TEST_ENV });
    return () =>
      new ImapEventSource(stack, 'Source', {
        mailboxId: 'support',
        secret: secretsmanager.Secret.fromSecretNameV2(stack, 'Secret', 'imap-event-source/support'),
        checkpointTable: new dynamodb.Table(stack, 'Table', {
          partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
        }),
        eventBus: events.EventBus.fromEventBusName(stack, 'Bus', 'mail'),
        timeout,
        ...props,
      });
  }

  it("applies the Lambda's rules at synth: mailbox id, start time, event source", () => {
    expect(source(Duration.seconds(50), { mailboxId: 'Support_1' })).toThrow(
      /ImapEventSource Source: mailboxId: 1 to 32 characters: lowercase letters/,
    );
    expect(source(Duration.seconds(50), { startAt: '2026-02-30' })).toThrow(/startAt: must be "now", "all"/);
    expect(source(Duration.seconds(50), { eventSource: 'aws.mail' })).toThrow(/eventSource: must be/);
    expect(source(Duration.seconds(50), { startAt: '2026-11-01T08:00:00+0100' })).not.toThrow();
  });

  it('rejects a function timeout too short to poll, naming it and the minimum', () => {
    expect(source(Duration.seconds(3))).toThrow(
      /ImapEventSource Source: timeout 3 seconds is too short to poll; use at least 5 seconds/,
    );
    expect(source(Duration.millis(4_500))).toThrow(/too short to poll/);
  });

  it('accepts the minimum timeout', () => {
    const built = source(Duration.seconds(5))();
    expect(built.function.timeout?.toSeconds()).toBe(5);
  });
});
