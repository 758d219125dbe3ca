/**
 * One isolated "world" per test for the poller: a fresh Dovecot user with the seed folder tree, a secret,
 * a checkpoint table, and a bus whose rule delivers to an SQS queue (what a subscriber receives).
 * `invoke()` runs the real Lambda handler with the environment the CDK stack would set.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { vi } from 'vitest';
import { DynamoDbCheckpointStore } from '../../functions/poller/adapters/dynamodb-checkpoint-store.js';
import { composePollerDeps } from '../../functions/poller/compose.js';
import { readPollerConfig } from '../../functions/poller/contract/poller-env.js';
import type { Checkpoint } from '../../functions/poller/core/types.js';
import { type PollDeps, silentLog } from '../../functions/poller/ports.js';
import type { PollOptions } from '../../functions/poller/run/poll-mailbox.js';
import type { DovecotServer, User } from '../support/dovecot.js';
import { dovecot, mailboxSecret, moto, type Security } from '../support/env.js';
import { type BusWithSubscriber, type EventEnvelope, uniqueName } from '../support/moto.js';

// Quiet by default; captureLogs() raises the level for tests that read the log lines.
process.env.POWERTOOLS_LOG_LEVEL ??= 'SILENT';
const { handler, logger, resetContainer } = await import('../../functions/poller/handler.js');

export interface WorldOptions {
  readonly server?: DovecotServer;
  /** An existing user of `server` (e.g. one an OAuth2 Dovecot was started for). @default a fresh user */
  readonly user?: User;
  readonly security?: Security;
  readonly folder?: string;
  readonly startAt?: string;
  /** Fields merged into (or, when undefined, removed from) the secret. */
  readonly secret?: Record<string, unknown>;
  readonly env?: Record<string, string>;
}

export class World {
  readonly aws = moto();
  readonly mailboxId = uniqueName('mbx');
  readonly secretName = `imap-event-source/${this.mailboxId}`;
  readonly table = uniqueName('checkpoints');
  private constructor(
    readonly imap: DovecotServer,
    readonly user: User,
    readonly folder: string,
    readonly bus: BusWithSubscriber,
    private readonly env: Record<string, string>,
  ) {}

  static async create(options: WorldOptions = {}): Promise<World> {
    const imap = options.server ?? dovecot();
    const user = options.user ?? (await imap.createUser());
    await imap.createSeedTree(user);
    const folder = options.folder ?? 'Firma/Kundenbetreuung/kunden/a';
    const aws = moto();
    const bus = await aws.createBusWithSubscriber(uniqueName('bus'));
    const world = new World(imap, user, folder, bus, {});
    const secret: Record<string, unknown> = {
      ...mailboxSecret(imap, user, { security: options.security ?? 'tls', folder }),
      ...options.secret,
    };
    for (const [k, v] of Object.entries(secret)) if (v === undefined) delete secret[k];
    await aws.createSecret(world.secretName, secret);
    await aws.createCheckpointTable(world.table);
    Object.assign(world.env, {
      ...aws.awsEnv(),
      MAILBOX_ID: world.mailboxId,
      SECRET_ID: world.secretName,
      CHECKPOINT_TABLE: world.table,
      EVENT_BUS_NAME: bus.busName,
      START_AT: options.startAt ?? 'now',
      ...options.env,
    });
    return world;
  }

  /** The handler's environment for this world (what the CDK stack sets), with `extra` on top. */
  handlerEnv(extra: Record<string, string> = {}): Record<string, string> {
    return { ...this.env, ...extra };
  }

  /** The real adapters as the handler composes them; `endpoint` sends AWS calls elsewhere (e.g. a proxy). */
  async deps(options: { endpoint?: string; overrides?: Partial<PollDeps> } = {}): Promise<PollDeps> {
    const clientConfig = { ...this.aws.clientConfig, ...(options.endpoint ? { endpoint: options.endpoint } : {}) };
    return {
      ...(await composePollerDeps(readPollerConfig(this.env), { log: silentLog, clientConfig })),
      ...options.overrides,
    };
  }

  /** pollMailbox options for this world: START_AT=now, 30 s to the deadline, unless overridden. */
  pollOptions(overrides: Partial<PollOptions> = {}): PollOptions {
    return {
      mailboxId: this.mailboxId,
      eventSource: 'imap-event-source',
      eventBusName: this.bus.busName,
      startAt: { kind: 'now' },
      deadline: Date.now() + 30_000,
      ...overrides,
    };
  }

  /** The lease item of this world's mailbox, if any. */
  async leaseItem(): Promise<Record<string, unknown> | undefined> {
    const { GetItemCommand } = await import('@aws-sdk/client-dynamodb');
    const res = await this.aws.dynamodb.send(
      new GetItemCommand({
        TableName: this.table,
        Key: { pk: { S: `lease#${this.mailboxId}` } },
        ConsistentRead: true,
      }),
    );
    return res.Item;
  }

  /** The settings currently in the secret. */
  secretValue(overrides: Record<string, unknown> = {}): Record<string, unknown> {
    return { ...mailboxSecret(this.imap, this.user, { folder: this.folder }), ...overrides };
  }

  /** Runs the Lambda handler once, as the schedule would. */
  async invoke(
    env: Record<string, string> = {},
    remainingMs = 60_000,
  ): Promise<{ outcome: string; published: number }> {
    const saved = { ...process.env };
    Object.assign(process.env, this.env, env);
    resetContainer();
    try {
      return await handler({}, { getRemainingTimeInMillis: () => remainingMs });
    } finally {
      process.env = saved;
    }
  }

  /** Runs the handler again in the same container (a warm invocation: adapters and their caches are reused). */
  async invokeWarm(remainingMs = 60_000): Promise<{ outcome: string; published: number }> {
    const saved = { ...process.env };
    Object.assign(process.env, this.env);
    try {
      return await handler({}, { getRemainingTimeInMillis: () => remainingMs });
    } finally {
      process.env = saved;
    }
  }

  /** Runs `fn` with the handler's logger at INFO and returns the JSON log lines it printed. */
  async captureLogs(fn: () => Promise<unknown>): Promise<Record<string, unknown>[]> {
    const lines: Record<string, unknown>[] = [];
    const level = logger.getLevelName();
    // The logger writes to process.stdout/stderr through its own Console, one JSON object per line.
    const capture = (chunk: unknown): boolean => {
      for (const line of String(chunk).split('\n')) {
        try {
          lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // not a JSON log line
        }
      }
      return true;
    };
    const spies = [
      vi.spyOn(process.stdout, 'write').mockImplementation(capture),
      vi.spyOn(process.stderr, 'write').mockImplementation(capture),
    ];
    logger.setLogLevel('INFO');
    try {
      await fn().catch(() => undefined);
    } finally {
      logger.setLogLevel(level);
      for (const spy of spies) spy.mockRestore();
    }
    return lines;
  }

  /** Runs the handler and returns the thrown error (fails the test if it succeeds). */
  async invokeFailing(env: Record<string, string> = {}): Promise<Error> {
    try {
      await this.invoke(env);
    } catch (err) {
      return err as Error;
    }
    throw new Error('the handler succeeded but a failure was expected');
  }

  async append(
    count: number,
    folder = this.folder,
    spec: (i: number) => { subject?: string; messageId?: string; date?: Date } = () => ({}),
  ): Promise<number[]> {
    const { buildMessage } = await import('../support/messages.js');
    const items = Array.from({ length: count }, (_, i) => buildMessage({ subject: `Message ${i + 1}`, ...spec(i) }));
    return this.imap.appendMany(this.user, folder, items);
  }

  /** Events the subscriber received (waits for `expected`, then `quietMs`; then what else is in the queue). */
  events<D = Record<string, unknown>>(expected: number, quietMs = 0): Promise<EventEnvelope<D>[]> {
    return this.aws.receiveEvents<D>(this.bus.queueUrl, { expected, timeoutMs: 20_000, quietMs });
  }

  async checkpoint(folder = this.folder): Promise<Checkpoint | undefined> {
    return new DynamoDbCheckpointStore(new DynamoDBClient(this.aws.clientConfig), this.table).get(
      this.mailboxId,
      folder,
    );
  }
}
