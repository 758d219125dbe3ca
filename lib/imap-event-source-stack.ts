import {
  ArnFormat,
  CfnOutput,
  Duration,
  RemovalPolicy,
  SecretValue,
  Stack,
  type StackProps,
  Validations,
} from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventschemas from 'aws-cdk-lib/aws-eventschemas';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import type { Construct } from 'constructs';
import { type AppConfig, type MailboxConfig, pascalCase, type VpcConfig } from './config.js';
import { ImapEventSourceDashboard } from './dashboard.js';
import { registrySchemas } from './event-schemas.js';
import { addDueIndex, ImapEventSourceFleet, type ImapEventSourceFleetProps } from './fleet.js';
import { ImapEventSourceFleetDashboard } from './fleet-dashboard.js';
import { ImapEventSource } from './imap-event-source.js';

export interface ImapEventSourceStackProps extends StackProps {
  /** The validated deployment configuration (`parseConfig` in `lib/config.ts`). */
  readonly config: AppConfig;
  /** Handler entry of the pollers. @default POLLER_ENTRY (`functions/poller/handler.ts`) */
  readonly pollerEntry?: string;
}

/** Where the fleet's functions may live in a VPC (the workers only). */
type FleetNetwork = Pick<ImapEventSourceFleetProps, 'vpc' | 'vpcSubnets' | 'securityGroups'>;

/** Where the pollers run when placed in a VPC. */
interface Network {
  readonly vpc: ec2.IVpc;
  readonly vpcSubnets: ec2.SubnetSelection;
  readonly securityGroups: [ec2.SecurityGroup];
}

/** Days the raw-message bucket's server access logs are kept. */
export const ACCESS_LOG_RETENTION_DAYS = 365;

/**
 * The shared checkpoint table and event bus, optional raw-message storage and VPC plumbing, and
 * one `ImapEventSource` per configured mailbox.
 */
export class ImapEventSourceStack extends Stack {
  /** Checkpoints and leases of all mailboxes of this stack (partition key `pk`). */
  public readonly checkpointTable: dynamodb.Table;
  /** The bus the events go to (created by this stack or an existing one). */
  public readonly eventBus: events.IEventBus;
  /** One poller per mailbox, by mailbox id. */
  public readonly mailboxes: ReadonlyMap<string, ImapEventSource>;
  /** The mailbox secrets, by mailbox id (imported or created placeholders). */
  public readonly secrets: ReadonlyMap<string, secretsmanager.ISecret>;
  /** Raw-message bucket, when raw-message storage is enabled. */
  public readonly rawMessageBucket?: s3.Bucket;
  /** Security group of the pollers, when they run in a VPC. */
  public readonly securityGroup?: ec2.SecurityGroup;
  /** Topic the alarms notify (given by ARN or created), when configured. */
  public readonly alarmTopic?: sns.ITopic;
  /** The stack's dashboard (per mailbox, or the fleet's aggregate one). */
  public readonly dashboard: ImapEventSourceDashboard | ImapEventSourceFleetDashboard;
  /** The fleet (registry, dispatcher, pool), in fleet mode. */
  public readonly fleet?: ImapEventSourceFleet;
  /** Archive of this stack's events on the bus, when enabled. */
  public readonly archive?: events.Archive;
  /** Schema registry holding the event schemas, when enabled. */
  public readonly schemaRegistry?: eventschemas.CfnRegistry;

  constructor(scope: Construct, id: string, props: ImapEventSourceStackProps) {
    super(scope, id, props);
    const { config } = props;

    this.checkpointTable = new dynamodb.Table(this, 'CheckpointTable', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // The pollers get a reference by the literal name: the name then appears verbatim in their
    // environment and the PutEvents grant is the bus's exact ARN either way.
    const busByName = events.EventBus.fromEventBusName(this, 'EventBusByName', config.busName);
    const createdBus = config.createBus
      ? new events.EventBus(this, 'EventBus', { eventBusName: config.busName })
      : undefined;
    this.eventBus = createdBus ?? busByName;

    if (config.rawMessageStorage.enabled) {
      this.rawMessageBucket = this.createRawMessageBucket(config.rawMessageStorage.expirationDays);
    }

    const network = config.vpc ? this.createNetwork(config.vpc) : undefined;
    this.securityGroup = network?.securityGroups[0];

    this.alarmTopic = this.createAlarmTopic(config);

    if (config.fleet) {
      addDueIndex(this.checkpointTable);
      this.fleet = this.createFleet(config, busByName, network);
      if (createdBus) this.fleet.worker.node.addDependency(createdBus);
    }

    const mailboxes = new Map<string, ImapEventSource>();
    const secrets = new Map<string, secretsmanager.ISecret>();
    for (const mailbox of config.fleet ? [] : config.mailboxes) {
      const name = pascalCase(mailbox.id);
      const secret = this.mailboxSecret(mailbox, name);
      const poller = new ImapEventSource(this, `Mailbox${name}`, {
        mailboxId: mailbox.id,
        secret,
        ...(mailbox.secretKmsKeyArn
          ? { secretEncryptionKey: kms.Key.fromKeyArn(this, `Mailbox${name}SecretKey`, mailbox.secretKmsKeyArn) }
          : {}),
        secretId: mailbox.secretArn ?? mailbox.secretName,
        checkpointTable: this.checkpointTable,
        eventBus: busByName,
        eventSource: config.eventSource,
        schedule: events.Schedule.expression(mailbox.schedule),
        startAt: mailbox.startAt,
        reserveConcurrency: config.reserveConcurrency,
        ...(mailbox.maxMessagesPerRun !== undefined ? { maxMessagesPerRun: mailbox.maxMessagesPerRun } : {}),
        alarmInterval: Duration.minutes(mailbox.alarmIntervalMinutes),
        staleAfterIntervals: config.alarms.staleAfterIntervals,
        failingAfterRuns: config.alarms.failingAfterRuns,
        ...(this.alarmTopic ? { alarmTopic: this.alarmTopic } : {}),
        ...(this.rawMessageBucket ? { rawMessageBucket: this.rawMessageBucket } : {}),
        ...network,
        ...(props.pollerEntry ? { entry: props.pollerEntry } : {}),
      });
      if (createdBus) poller.function.node.addDependency(createdBus);
      mailboxes.set(mailbox.id, poller);
      secrets.set(mailbox.id, secret);
      new CfnOutput(this, `Mailbox${name}FunctionName`, {
        description: `Poller function of mailbox ${mailbox.id}`,
        value: poller.function.functionName,
      });
      new CfnOutput(this, `Mailbox${name}LogGroupName`, {
        description: `Log group of mailbox ${mailbox.id}'s poller (one "Poll finished" or "Poll failed" line per run)`,
        value: poller.logGroup.logGroupName,
      });
      new CfnOutput(this, `Mailbox${name}SecretArn`, {
        description: `Secret of mailbox ${mailbox.id} (a partial ARN when imported by name)`,
        value: secret.secretArn,
      });
    }
    this.mailboxes = mailboxes;
    this.secrets = secrets;

    new CfnOutput(this, 'EventBusName', { description: 'Bus the mail events are published to', value: config.busName });
    new CfnOutput(this, 'EventBusArn', { value: this.eventBus.eventBusArn });
    new CfnOutput(this, 'CheckpointTableName', { value: this.checkpointTable.tableName });
    if (this.rawMessageBucket) new CfnOutput(this, 'RawMessageBucketName', { value: this.rawMessageBucket.bucketName });

    this.dashboard = this.fleet
      ? new ImapEventSourceFleetDashboard(this, 'Monitoring', { dashboardName: config.stackName, fleet: this.fleet })
      : new ImapEventSourceDashboard(this, 'Monitoring', {
          dashboardName: config.stackName,
          mailboxes: [...mailboxes.values()],
        });
    new CfnOutput(this, 'DashboardName', {
      description: this.fleet ? 'CloudWatch dashboard of the fleet' : 'CloudWatch dashboard of the mailboxes',
      value: config.stackName,
    });
    if (this.alarmTopic) {
      new CfnOutput(this, 'AlarmTopicArn', {
        description: 'SNS topic the alarms notify',
        value: this.alarmTopic.topicArn,
      });
    }

    if (config.archive.enabled) {
      this.archive = new events.Archive(this, 'EventArchive', {
        sourceEventBus: this.eventBus,
        description: `Events of ${config.eventSource} on ${config.busName}, for replay (docs/operations.md)`,
        eventPattern: { source: [config.eventSource] },
        retention: Duration.days(config.archive.retentionDays),
      });
      new CfnOutput(this, 'EventArchiveName', {
        description: 'Archive to replay events from (aws events start-replay)',
        value: this.archive.archiveName,
      });
    }
    if (config.schemaRegistry.enabled) {
      this.schemaRegistry = new eventschemas.CfnRegistry(this, 'SchemaRegistry', {
        registryName: config.schemaRegistry.registryName,
        description: `Event schemas of ${config.eventSource}`,
      });
      for (const schema of registrySchemas(config.eventSource)) {
        const registered = new eventschemas.CfnSchema(this, `Schema${schema.detailType.replace(/\s+/g, '')}`, {
          registryName: config.schemaRegistry.registryName,
          schemaName: schema.name,
          type: 'JSONSchemaDraft4',
          description: schema.description,
          content: schema.content,
        });
        registered.addDependency(this.schemaRegistry);
      }
      new CfnOutput(this, 'SchemaRegistryName', { value: config.schemaRegistry.registryName });
    }
  }

  /** Fleet mode: the registry's dispatcher and the pool, with their outputs. */
  private createFleet(
    config: AppConfig,
    bus: events.IEventBus,
    network: FleetNetwork | undefined,
  ): ImapEventSourceFleet {
    const fleetConfig = config.fleet!;
    const fleet = new ImapEventSourceFleet(this, 'Fleet', {
      checkpointTable: this.checkpointTable,
      eventBus: bus,
      eventSource: config.eventSource,
      mailboxes: config.mailboxes.map((m) => ({
        id: m.id,
        secretId: (m.secretArn ?? m.secretName)!,
        ...(m.username !== undefined ? { username: m.username } : {}),
        ...(m.folder !== undefined ? { folder: m.folder } : {}),
        schedule: m.schedule,
        startAt: m.startAt,
      })),
      secretPrefix: fleetConfig.secretPrefix,
      ...(fleetConfig.secretKmsKeyArn
        ? { secretEncryptionKey: kms.Key.fromKeyArn(this, 'FleetSecretKey', fleetConfig.secretKmsKeyArn) }
        : {}),
      poolConcurrency: fleetConfig.poolConcurrency,
      hostConnectionCap: fleetConfig.hostConnectionCap,
      maxMessagesPerTurn: fleetConfig.maxMessagesPerTurn,
      maxPerCycle: fleetConfig.maxPerCycle,
      reserveConcurrency: config.reserveConcurrency,
      staleAfterIntervals: config.alarms.staleAfterIntervals,
      failingAfterRuns: config.alarms.failingAfterRuns,
      ...(this.alarmTopic ? { alarmTopic: this.alarmTopic } : {}),
      ...(this.rawMessageBucket ? { rawMessageBucket: this.rawMessageBucket } : {}),
      ...network,
    });
    new CfnOutput(this, 'FleetDispatcherFunctionName', {
      description: 'Dispatcher: sends the due mailboxes of the registry to the poll queue every minute',
      value: fleet.dispatcher.functionName,
    });
    new CfnOutput(this, 'FleetWorkerFunctionName', {
      description: 'Worker: polls the mailboxes it receives from the poll queue',
      value: fleet.worker.functionName,
    });
    new CfnOutput(this, 'FleetDispatcherLogGroupName', { value: fleet.dispatcherLogGroup.logGroupName });
    new CfnOutput(this, 'FleetWorkerLogGroupName', {
      description: 'Log group of the pool (one "Poll finished" or "Poll failed" line per mailbox turn)',
      value: fleet.workerLogGroup.logGroupName,
    });
    new CfnOutput(this, 'FleetPollQueueUrl', { value: fleet.queue.queueUrl });
    new CfnOutput(this, 'FleetDeadLetterQueueUrl', { value: fleet.deadLetterQueue.queueUrl });
    new CfnOutput(this, 'FleetSecretPrefix', {
      description: 'The pool reads only secrets whose names start with this (imap-event-source mailbox add)',
      value: fleetConfig.secretPrefix,
    });
    return fleet;
  }

  /** The alarms' SNS topic: imported by ARN, or created with TLS-only publishing; none when not configured. */
  private createAlarmTopic(config: AppConfig): sns.ITopic | undefined {
    if (config.alarms.topicArn) return sns.Topic.fromTopicArn(this, 'AlarmTopic', config.alarms.topicArn);
    if (!config.alarms.createTopic) return undefined;
    const topic = new sns.Topic(this, 'AlarmTopic', {
      displayName: `${config.stackName} mailbox alarms`,
      enforceSSL: true,
    });
    Validations.of(topic).acknowledge({
      id: 'AwsSolutions-SNS2',
      reason:
        'The topic carries CloudWatch alarm notifications only (alarm names, states, reasons: no mail, no credentials). ' +
        'CloudWatch cannot publish to a topic encrypted with the AWS managed key, and a customer-managed key would cost more than the rest of the stack.',
    });
    return topic;
  }

  /** Imports the mailbox's secret (its KMS key, if any, is granted by the construct), or creates an empty placeholder the admin fills in after the deploy. */
  private mailboxSecret(mailbox: MailboxConfig, name: string): secretsmanager.ISecret {
    if (mailbox.createSecret) {
      const secret = new secretsmanager.Secret(this, `Mailbox${name}Secret`, {
        secretName: mailbox.secretName,
        description: `IMAP settings of mailbox ${mailbox.id} (imap-event-source); fill in with put-secret-value`,
        // A placeholder, not a credential: the admin replaces it. CloudFormation does not touch the
        // value again while this template property is unchanged, so redeploys keep the admin's value.
        secretStringValue: SecretValue.unsafePlainText('{}'),
        removalPolicy: RemovalPolicy.RETAIN,
      });
      Validations.of(secret).acknowledge({
        id: 'AwsSolutions-SMG4',
        reason:
          'The secret holds the password of an external IMAP account that Secrets Manager cannot change; the mail admin rotates it ' +
          'on the mail server and then updates the secret (the poller re-reads it on the next run and after an authentication failure).',
      });
      return secret;
    }
    return secretsmanager.Secret.fromSecretAttributes(this, `Mailbox${name}Secret`, {
      ...(mailbox.secretArn
        ? { secretCompleteArn: mailbox.secretArn }
        : {
            secretPartialArn: this.formatArn({
              service: 'secretsmanager',
              resource: 'secret',
              resourceName: mailbox.secretName,
              arnFormat: ArnFormat.COLON_RESOURCE_NAME,
            }),
          }),
    });
  }

  private createRawMessageBucket(expirationDays: number): s3.Bucket {
    const accessLogs = new s3.Bucket(this, 'RawMessageAccessLogs', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ expiration: Duration.days(ACCESS_LOG_RETENTION_DAYS) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(accessLogs).acknowledge({
      id: 'AwsSolutions-S1',
      reason:
        'This bucket is the server-access-log destination of the raw-message bucket; logging it into itself would loop.',
    });
    return new s3.Bucket(this, 'RawMessageBucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: accessLogs,
      serverAccessLogsPrefix: 'raw-messages/',
      lifecycleRules: [
        { expiration: Duration.days(expirationDays), abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
      removalPolicy: RemovalPolicy.RETAIN,
    });
  }

  /** The looked-up VPC, the subnets, the pollers' security group and, optionally, the endpoints. */
  private createNetwork(config: VpcConfig): Network {
    const vpc = ec2.Vpc.fromLookup(this, 'Vpc', { vpcId: config.vpcId });
    const vpcSubnets: ec2.SubnetSelection = config.subnetIds
      ? { subnetFilters: [ec2.SubnetFilter.byIds([...config.subnetIds])] }
      : {
          subnetType:
            vpc.privateSubnets.length > 0 ? ec2.SubnetType.PRIVATE_WITH_EGRESS : ec2.SubnetType.PRIVATE_ISOLATED,
        };

    const securityGroup = new ec2.SecurityGroup(this, 'PollerSecurityGroup', {
      vpc,
      allowAllOutbound: false,
      description: 'imap-event-source pollers: IMAP to the mail server and HTTPS to AWS APIs only',
    });
    securityGroup.addEgressRule(ec2.Peer.ipv4(config.imapServerCidr), ec2.Port.tcp(config.imapPort), 'IMAP server');
    securityGroup.addEgressRule(
      ec2.Peer.anyIpv4(),
      ec2.Port.tcp(443),
      'HTTPS to AWS APIs (endpoints, gateway endpoints or NAT)',
    );

    if (config.endpoints) {
      const endpointGroup = new ec2.SecurityGroup(this, 'EndpointSecurityGroup', {
        vpc,
        allowAllOutbound: false,
        description: 'imap-event-source interface endpoints: HTTPS from the pollers only',
      });
      endpointGroup.addIngressRule(securityGroup, ec2.Port.tcp(443), 'HTTPS from the pollers');
      const interfaceSubnets = { ...vpcSubnets, onePerAz: true };
      for (const [id, service] of [
        ['SecretsManagerEndpoint', ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER],
        ['EventBridgeEndpoint', ec2.InterfaceVpcEndpointAwsService.EVENTBRIDGE],
      ] as const) {
        new ec2.InterfaceVpcEndpoint(this, id, {
          vpc,
          service,
          subnets: interfaceSubnets,
          securityGroups: [endpointGroup],
          open: false,
          privateDnsEnabled: true,
        });
      }
      new ec2.GatewayVpcEndpoint(this, 'DynamoDbEndpoint', {
        vpc,
        service: ec2.GatewayVpcEndpointAwsService.DYNAMODB,
        subnets: [vpcSubnets],
      });
      if (this.rawMessageBucket) {
        new ec2.GatewayVpcEndpoint(this, 'S3Endpoint', {
          vpc,
          service: ec2.GatewayVpcEndpointAwsService.S3,
          subnets: [vpcSubnets],
        });
      }
    }
    return { vpc, vpcSubnets, securityGroups: [securityGroup] };
  }
}
