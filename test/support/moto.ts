/**
 * moto_server (AWS API emulator) for integration tests: one server per run, started here; tests use
 * `Moto` helpers with fresh random resource names, so test files can share the server in parallel.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { delimiter, join } from 'node:path';
import type { Readable } from 'node:stream';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  CreateEventBusCommand,
  EventBridgeClient,
  PutRuleCommand,
  PutTargetsCommand,
} from '@aws-sdk/client-eventbridge';
import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  NotFound,
  PutBucketVersioningCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { CreateSecretCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { freePort, stopChild, trackChild } from './dovecot.js';

const MOTO_BIN = process.env.MOTO_SERVER_BIN ?? 'moto_server';
const MOTO_SITE = join(import.meta.dirname, 'moto-site');
export const TEST_REGION = 'us-east-1';
export const DEFAULT_EVENT_SOURCE = 'imap-event-source';

export interface MotoInfo {
  endpoint: string;
  port: number;
  pid: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class MotoServer {
  private constructor(
    readonly info: MotoInfo,
    private readonly child: ChildProcess,
  ) {}

  /**
   * Starts `moto_server -H 127.0.0.1 -p <free port>` and waits until it answers. The Python running it loads
   * moto-site/sitecustomize.py: no log line per request, and moto's module list read once instead of on every request
   * (together about a third of moto_server's CPU per request; behaviour unchanged).
   */
  static async start(): Promise<MotoServer> {
    const port = await freePort();
    const endpoint = `http://127.0.0.1:${port}`;
    const pythonPath = [MOTO_SITE, process.env.PYTHONPATH].filter(Boolean).join(delimiter);
    const child = spawn(MOTO_BIN, ['-H', '127.0.0.1', '-p', String(port)], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, PYTHONPATH: pythonPath },
    });
    trackChild(child, `moto_server -H 127.0.0.1 -p ${port}`);
    let output = '';
    child.stderr!.on('data', (d: Buffer) => {
      output = (output + d.toString()).slice(-4000);
    });
    let spawnError: Error | undefined;
    child.on('error', (e) => {
      spawnError = e;
    });
    const deadline = Date.now() + 30_000;
    for (;;) {
      const why = spawnError
        ? spawnError.message
        : child.exitCode !== null
          ? `exited with ${child.exitCode}`
          : Date.now() > deadline
            ? 'not ready after 30 s'
            : undefined;
      if (why) {
        await stopChild(child, 1000);
        throw new Error(
          `moto_server failed to start: ${why} (is it installed? pip install 'moto[server]')\n${output.trim()}`,
        );
      }
      try {
        const res = await fetch(`${endpoint}/moto-api/data.json`, { signal: AbortSignal.timeout(1000) });
        if (res.ok) break;
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
    return new MotoServer({ endpoint, port, pid: child.pid! }, child);
  }

  async stop(): Promise<void> {
    await stopChild(this.child);
  }
}

export interface BusWithSubscriber {
  busName: string;
  busArn: string;
  ruleName: string;
  queueUrl: string;
  queueArn: string;
}

/** An EventBridge envelope as delivered to an SQS target (moto omits `account`). */
export interface EventEnvelope<D = Record<string, unknown>> {
  version?: string;
  id: string;
  'detail-type': string;
  source: string;
  account?: string;
  time: string;
  region?: string;
  resources?: string[];
  detail: D;
}

export interface ReceiveOptions {
  /** Return as soon as this many events arrived. @default 1 */
  expected?: number;
  /** Give up (returning what arrived) after this long. @default 10_000 */
  timeoutMs?: number;
  /**
   * After `expected` arrived, keep listening this long and include any extra events. @default 0
   * Either way the queue is then drained: moto_server delivers an entry to the rule's queue inside PutEvents, so
   * an event published before this call is in the queue already, and extras (duplicates) are found without waiting.
   */
  quietMs?: number;
}

/** A fresh resource name: `<prefix>-<random>`. */
export function uniqueName(prefix = 'test'): string {
  return `${prefix}-${randomBytes(5).toString('hex')}`;
}

/** Test helpers against a running moto_server (construct from the injected `MotoInfo`). */
export class Moto {
  readonly clientConfig: {
    endpoint: string;
    region: string;
    credentials: { accessKeyId: string; secretAccessKey: string };
  };
  readonly secrets: SecretsManagerClient;
  readonly dynamodb: DynamoDBClient;
  readonly eventbridge: EventBridgeClient;
  readonly sqs: SQSClient;

  constructor(readonly info: MotoInfo) {
    this.clientConfig = {
      endpoint: info.endpoint,
      region: TEST_REGION,
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    };
    this.secrets = new SecretsManagerClient(this.clientConfig);
    this.dynamodb = new DynamoDBClient(this.clientConfig);
    this.eventbridge = new EventBridgeClient(this.clientConfig);
    this.sqs = new SQSClient(this.clientConfig);
  }

  /** Environment for code (or a child process) that builds its own SDK clients. */
  awsEnv(): Record<string, string> {
    return {
      AWS_ENDPOINT_URL: this.info.endpoint,
      AWS_REGION: TEST_REGION,
      AWS_DEFAULT_REGION: TEST_REGION,
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
    };
  }

  /** Creates a secret (objects are stored as JSON); returns its ARN. */
  async createSecret(name: string, value: string | object): Promise<string> {
    const res = await this.secrets.send(
      new CreateSecretCommand({
        Name: name,
        SecretString: typeof value === 'string' ? value : JSON.stringify(value),
      }),
    );
    return res.ARN!;
  }

  /** Stores a new AWSCURRENT version of the secret; returns the version id. */
  async putSecretValue(secretId: string, value: string | object): Promise<string> {
    const res = await this.secrets.send(
      new PutSecretValueCommand({
        SecretId: secretId,
        SecretString: typeof value === 'string' ? value : JSON.stringify(value),
      }),
    );
    return res.VersionId!;
  }

  /** A checkpoint table: partition key `pk` (String), on-demand. */
  async createCheckpointTable(name: string): Promise<string> {
    const res = await this.dynamodb.send(
      new CreateTableCommand({
        TableName: name,
        AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
    return res.TableDescription!.TableArn!;
  }

  /** A custom bus, an SQS queue, and a rule on the bus (`source` match) targeting the queue. */
  async createBusWithSubscriber(busName: string, opts: { source?: string } = {}): Promise<BusWithSubscriber> {
    const { EventBusArn } = await this.eventbridge.send(new CreateEventBusCommand({ Name: busName }));
    const { QueueUrl } = await this.sqs.send(new CreateQueueCommand({ QueueName: `${busName}-sub` }));
    const { Attributes } = await this.sqs.send(
      new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['QueueArn'] }),
    );
    const queueArn = Attributes!.QueueArn!;
    const ruleName = `${busName}-all`;
    await this.eventbridge.send(
      new PutRuleCommand({
        Name: ruleName,
        EventBusName: busName,
        EventPattern: JSON.stringify({ source: [opts.source ?? DEFAULT_EVENT_SOURCE] }),
      }),
    );
    // (Real AWS also needs a queue policy allowing events.amazonaws.com; moto does not check it.)
    await this.eventbridge.send(
      new PutTargetsCommand({
        Rule: ruleName,
        EventBusName: busName,
        Targets: [{ Id: 'sqs', Arn: queueArn }],
      }),
    );
    return { busName, busArn: EventBusArn!, ruleName, queueUrl: QueueUrl!, queueArn };
  }

  /**
   * Long-polls the queue and returns the parsed envelopes (deleting them), as soon as `expected`
   * arrived, or what arrived by `timeoutMs`. With `quietMs`, keeps listening that long afterwards
   * so a test can assert that no extra events come.
   */
  async receiveEvents<D = Record<string, unknown>>(
    queueUrl: string,
    opts: ReceiveOptions = {},
  ): Promise<EventEnvelope<D>[]> {
    const expected = opts.expected ?? 1;
    const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
    const events: EventEnvelope<D>[] = [];
    let quietUntil: number | undefined = expected <= 0 ? Date.now() + (opts.quietMs ?? 0) : undefined;
    for (;;) {
      if (quietUntil === undefined && events.length >= expected) quietUntil = Date.now() + (opts.quietMs ?? 0);
      const until = quietUntil ?? deadline;
      const left = until - Date.now();
      if (left <= 0) {
        // What is in the queue now: receive without waiting until it is empty.
        for (
          let batch = await this.receiveBatch<D>(queueUrl, 0);
          batch.length;
          batch = await this.receiveBatch<D>(queueUrl, 0)
        )
          events.push(...batch);
        return events;
      }
      const batch = await this.receiveBatch<D>(queueUrl, Math.min(20, Math.floor(left / 1000)));
      if (!batch.length && left < 1000) await sleep(Math.min(100, left)); // short poll near the end
      events.push(...batch);
    }
  }

  /** One ReceiveMessage (up to 10, waiting up to `waitSeconds`); what it returns is deleted from the queue. */
  private async receiveBatch<D>(queueUrl: string, waitSeconds: number): Promise<EventEnvelope<D>[]> {
    const res = await this.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: waitSeconds }),
    );
    const messages = res.Messages ?? [];
    if (messages.length) {
      await this.sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
        }),
      );
    }
    return messages.map((m) => JSON.parse(m.Body!) as EventEnvelope<D>);
  }

  /** Listens for `quietMs` and returns whatever arrived (expect an empty array). */
  async collectUnexpected(queueUrl: string, quietMs = 2000): Promise<EventEnvelope[]> {
    return this.receiveEvents(queueUrl, { expected: 0, quietMs });
  }

  destroy(): void {
    for (const c of [this.secrets, this.dynamodb, this.eventbridge, this.sqs]) c.destroy();
  }

  // --- S3 (raw-message storage) ---

  private s3Client?: S3Client;

  /** An S3 client for moto_server (path-style: bucket names are not resolvable host names here). Created on first use. */
  get s3(): S3Client {
    return (this.s3Client ??= new S3Client({ ...this.clientConfig, forcePathStyle: true }));
  }

  /** Creates a bucket; with `versioning`, every overwrite of a key keeps the previous version (to count writes). */
  async createBucket(name: string, opts: { versioning?: boolean } = {}): Promise<void> {
    await this.s3.send(new CreateBucketCommand({ Bucket: name }));
    if (opts.versioning) {
      await this.s3.send(
        new PutBucketVersioningCommand({ Bucket: name, VersioningConfiguration: { Status: 'Enabled' } }),
      );
    }
  }

  /**
   * Size, content type and ETag of an object, or undefined when there is none. The ETag of a multipart upload
   * ends in `-<number of parts>`.
   */
  async headObject(
    bucket: string,
    key: string,
  ): Promise<{ size: number; contentType?: string; etag?: string } | undefined> {
    try {
      const res = await this.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return {
        size: res.ContentLength ?? 0,
        ...(res.ContentType ? { contentType: res.ContentType } : {}),
        ...(res.ETag ? { etag: res.ETag } : {}),
      };
    } catch (err) {
      if (
        err instanceof NotFound ||
        (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404
      )
        return undefined;
      throw err;
    }
  }

  /** The object's content as a stream (not buffered). */
  async getObjectStream(bucket: string, key: string): Promise<Readable> {
    const res = await this.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return res.Body as Readable;
  }

  /** Size and SHA-256 (hex) of an object, streamed: a 50 MB object is never held in memory whole. */
  async objectDigest(bucket: string, key: string): Promise<{ size: number; sha256: string }> {
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of await this.getObjectStream(bucket, key)) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    return { size, sha256: hash.digest('hex') };
  }

  /** Current objects (latest versions) under `prefix`. */
  async listObjects(bucket: string, prefix = ''): Promise<{ key: string; size: number }[]> {
    const out: { key: string; size: number }[] = [];
    let token: string | undefined;
    do {
      const res = await this.s3.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const o of res.Contents ?? []) out.push({ key: o.Key!, size: o.Size ?? 0 });
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  /** Every stored version under `prefix` (bucket created with `versioning`): one entry per write. */
  async listObjectVersions(
    bucket: string,
    prefix = '',
  ): Promise<{ key: string; versionId: string; size: number; isLatest: boolean }[]> {
    const res = await this.s3.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: prefix }));
    return (res.Versions ?? []).map((v) => ({
      key: v.Key!,
      versionId: v.VersionId!,
      size: v.Size ?? 0,
      isLatest: v.IsLatest ?? false,
    }));
  }
}
