/**
 * Issue #4, "nothing lost, nothing doubled": every fault the poller must survive, injected against the real
 * servers: network faults through a TCP proxy in front of Dovecot and in front of moto_server, service errors
 * through aws-sdk-client-mock where only a mock can produce them, mailbox changes through doveadm.
 * After each fault: the run fails (or stops) saying why, the checkpoint never passes an unpublished message,
 * and the next fault-free run delivers the rest; duplicates only where the fault explains them.
 * The cases that set a fault on the shared proxies, count their connections or invoke the handler in-process
 * (World.invoke sets process.env) run one at a time; the others (describe.concurrent: pollMailbox with their own
 * mailbox, table and bus) run side by side.
 */

import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DeleteItemCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  type PutItemCommandInput,
} from '@aws-sdk/client-dynamodb';
import {
  EventBridgeClient,
  PutEventsCommand,
  type PutEventsCommandInput,
  type PutEventsResultEntry,
} from '@aws-sdk/client-eventbridge';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { DynamoDbCheckpointStore } from '../../functions/poller/adapters/dynamodb-checkpoint-store.js';
import { EventBridgePublisher } from '../../functions/poller/adapters/eventbridge-publisher.js';
import { ImapFlowMailboxGateway } from '../../functions/poller/adapters/imapflow-mailbox.js';
import { awsClientConfig } from '../../functions/poller/compose.js';
import type { MailboxResetDetail, MessageReceivedDetail } from '../../functions/poller/core/event-detail.js';
import type { ImapEventSourceError } from '../../functions/poller/errors.js';
import type { EventPublisher, MailboxGateway, MailboxSession, PollDeps } from '../../functions/poller/ports.js';
import { type PollOptions, pollMailbox } from '../../functions/poller/run/poll-mailbox.js';
import { proxiesToSharedServers } from '../support/env.js';
import { buildMessage } from '../support/messages.js';
import type { EventEnvelope } from '../support/moto.js';
import { World, type WorldOptions } from './world.js';

const { handler } = await import('../../functions/poller/handler.js');

const proxies = proxiesToSharedServers();
afterEach(async () => {
  await proxies.imap.setFault({ kind: 'pass' });
  await proxies.aws.setFault({ kind: 'pass' });
});

/** A world whose IMAP traffic goes through the IMAP proxy and whose handler reaches AWS through the AWS proxy. */
function proxiedWorld(options: WorldOptions = {}): Promise<World> {
  return World.create({
    ...options,
    secret: { port: proxies.imap.port, ...options.secret },
    env: { AWS_ENDPOINT_URL: proxies.aws.url, ...options.env },
  });
}

/** Runs pollMailbox and returns its error (fails the test when it succeeds). */
async function pollFailing(deps: PollDeps, options: PollOptions): Promise<ImapEventSourceError> {
  const result = await pollMailbox(deps, options).then(
    (summary) => summary,
    (err: unknown) => err as ImapEventSourceError,
  );
  if (!(result instanceof Error))
    throw new Error(`the poll succeeded (${JSON.stringify(result)}) but a failure was expected`);
  return result;
}

/** Environment of the handler for `world` (what the CDK stack sets), AWS through the proxy. */
function handlerEnv(world: World, extra: Record<string, string> = {}): Record<string, string> {
  return world.handlerEnv({ AWS_ENDPOINT_URL: proxies.aws.url, START_AT: 'now', ...extra });
}

/** The real adapters as the handler composes them (AWS through the AWS proxy), for runs that need a hook. */
function realDeps(world: World, overrides: Partial<PollDeps> = {}): Promise<PollDeps> {
  return world.deps({ endpoint: proxies.aws.url, overrides });
}

const pollOptions = (world: World, overrides: Partial<PollOptions> = {}): PollOptions => world.pollOptions(overrides);

/** Invokes the handler in the SAME container as the previous invocation (warm: clients and settings cache kept). */
async function invokeWarm(world: World, remainingMs = 60_000): Promise<{ outcome: string; published: number }> {
  const saved = { ...process.env };
  Object.assign(process.env, handlerEnv(world));
  try {
    return await handler({}, { getRemainingTimeInMillis: () => remainingMs });
  } finally {
    process.env = saved;
  }
}

async function appendBig(world: World, count: number, bytes: number): Promise<number[]> {
  const body = `${'x'.repeat(76)}\n`.repeat(Math.ceil(bytes / 77));
  return world.imap.appendMany(
    world.user,
    world.folder,
    Array.from({ length: count }, (_, i) => buildMessage({ subject: `Big ${i + 1}`, body })),
  );
}

type Received = EventEnvelope<MessageReceivedDetail | MailboxResetDetail>;
const isMessage = (e: Received): e is EventEnvelope<MessageReceivedDetail> =>
  e['detail-type'] === 'IMAP Message Received';

/** What the world's subscriber received (waits for `expected`, then `quietMs`; then what else is in the queue). */
function received(world: World, expected: number, quietMs = 0): Promise<Received[]> {
  return world.events<MessageReceivedDetail | MailboxResetDetail>(expected, quietMs);
}

/** Message events by UID: how often each was delivered. */
function deliveries(events: Received[]): Map<number, number> {
  const counts = new Map<number, number>();
  for (const e of events.filter(isMessage)) counts.set(e.detail.uid, (counts.get(e.detail.uid) ?? 0) + 1);
  return counts;
}

/** Asserts every UID in `uids` was delivered exactly once and nothing else (as message events). */
function expectExactlyOnce(events: Received[], uids: readonly number[]): void {
  const counts = deliveries(events);
  expect([...counts.keys()].sort((a, b) => a - b)).toEqual([...uids].sort((a, b) => a - b));
  expect(
    [...counts.values()].every((n) => n === 1),
    `duplicates: ${JSON.stringify([...counts].filter(([, n]) => n > 1))}`,
  ).toBe(true);
}

/** The lease item of the world's mailbox, if any. */
/** Waits (bounded) until the mailbox's lease item is gone. */
async function leaseReleased(world: World, timeoutMs = 5_000): Promise<boolean> {
  for (const until = Date.now() + timeoutMs; Date.now() < until; await sleep(100))
    if (!(await world.leaseItem())) return true;
  return false;
}

/** A gateway whose sessions run hooks between the steps of a poll (to change the mailbox mid-run). */
function hookedGateway(hooks: {
  afterStatus?: () => Promise<void>;
  afterList?: (uids: number[]) => Promise<void>;
}): MailboxGateway {
  const inner = new ImapFlowMailboxGateway();
  return {
    async connect(settings) {
      const session = await inner.connect(settings);
      const hooked: MailboxSession = {
        status: async (folder) => {
          const status = await session.status(folder);
          await hooks.afterStatus?.();
          return status;
        },
        open: (folder) => session.open(folder),
        listNew: async (fromUid, limit, since) => {
          const listed = await session.listNew(fromUid, limit, since);
          await hooks.afterList?.(listed.messages.map((m) => m.uid));
          return listed;
        },
        listSizes: async (fromUid, limit, sizeBound) => {
          const listed = await session.listSizes(fromUid, limit, sizeBound);
          await hooks.afterList?.(listed.messages.map((m) => m.uid));
          return listed;
        },
        fetchSources: (uids, options) => session.fetchSources(uids, options),
        exists: (uids) => session.exists(uids),
        streamSource: (uid) => session.streamSource(uid),
        listFolders: () => session.listFolders(),
        close: () => session.close(),
      };
      return hooked;
    },
  };
}

// -------------------------------------------------------------------------------------------------

describe('IMAP network faults (TCP proxy in front of Dovecot)', () => {
  it('connection refused or reset: the run fails retryably, nothing moves; the next run publishes everything once', async () => {
    const world = await proxiedWorld();
    await world.invoke();
    const uids = await world.append(3);
    const before = await world.checkpoint();

    await proxies.imap.setFault({ kind: 'refuse', mode: 'close' });
    expect((await world.invokeFailing()).message).toMatch(/^IMAP_UNREACHABLE: .*refused \(ECONNREFUSED\)/);
    await proxies.imap.setFault({ kind: 'refuse', mode: 'reset' });
    expect((await world.invokeFailing()).message).toMatch(/^IMAP_UNREACHABLE: /);
    expect(await world.checkpoint()).toEqual(before);
    expect(await world.leaseItem()).toBeUndefined();

    await proxies.imap.setFault({ kind: 'pass' });
    expect(await world.invoke()).toEqual({ outcome: 'published', published: 3 });
    expectExactlyOnce(await received(world, 3), uids);
  });

  it('connection dropped mid-FETCH: the published batches stay published, the rest comes with the next run, nothing twice', async () => {
    const world = await proxiedWorld();
    const deps = await realDeps(world);
    await pollMailbox(deps, pollOptions(world));
    const uids = await appendBig(world, 4, 300_000);
    // Batches of 2 messages of ~300 KB: the connection dies in the FETCH of the second batch.
    await proxies.imap.setFault({ kind: 'dropAfter', bytes: 900_000, once: true });
    const error = await pollFailing(deps, pollOptions(world, { batchSize: 2 }));
    expect(error).toMatchObject({ code: 'IMAP_UNREACHABLE', retryable: true });
    expect(error.message).toMatch(/during fetch/);
    expect(proxies.imap.stats.dropped).toBeGreaterThanOrEqual(1);
    expect(await world.checkpoint()).toMatchObject({ lastUid: uids[1] });

    expect(await pollMailbox(deps, pollOptions(world, { batchSize: 2 }))).toMatchObject({
      outcome: 'published',
      fromUid: uids[2],
      published: 2,
    });
    expectExactlyOnce(await received(world, 4), uids);
  });

  it('connection dropped at any point of a run (every 6 % of its bytes): never ahead, never twice', async () => {
    const world = await proxiedWorld();
    const deps = await realDeps(world);
    await pollMailbox(deps, pollOptions(world));
    const uids = await world.append(3);
    // The bytes of a whole run (TLS, LOGIN, STATUS, EXAMINE, SEARCH, FETCH, LOGOUT), measured with a publisher
    // that rejects everything (no checkpoint moves, nothing is published).
    const rejectAll: EventPublisher = {
      publish: async (entries) => ({ accepted: new Set(), failed: new Map(entries.map((_, i) => [i, 'Injected'])) }),
    };
    const bytesBefore = proxies.imap.stats.bytesDown;
    await pollFailing({ ...deps, publisher: rejectAll }, pollOptions(world));
    const runBytes = proxies.imap.stats.bytesDown - bytesBefore;
    expect(runBytes).toBeGreaterThan(3_000);

    const failures: string[] = [];
    let published = 0;
    for (let share = 0.03; share < 1; share += 0.06) {
      await proxies.imap.setFault({ kind: 'dropAfter', bytes: Math.round(share * runBytes), once: true });
      try {
        published += (await pollMailbox(deps, pollOptions(world))).published;
      } catch (err) {
        failures.push((err as ImapEventSourceError).code);
      }
      // Never ahead of what was published.
      if ((await world.checkpoint())!.lastUid >= uids[0]!) expect(published).toBe(3);
    }
    await proxies.imap.setFault({ kind: 'pass' });
    published += (await pollMailbox(deps, pollOptions(world))).published;
    expect(failures.length).toBeGreaterThanOrEqual(4);
    expect(new Set(failures)).toEqual(new Set(['IMAP_UNREACHABLE']));
    expect(published).toBe(3);
    expectExactlyOnce(await received(world, 3), uids);
  });

  it('server goes silent mid-FETCH: the run ends before its deadline, consistent; the next run continues', async () => {
    const world = await proxiedWorld();
    const deps = await realDeps(world);
    await pollMailbox(deps, pollOptions(world));
    const uids = await appendBig(world, 4, 300_000);
    await proxies.imap.setFault({ kind: 'silent', afterBytes: 900_000 });
    // The first batch (FETCH of 600 KB, two PutEvents that moto delivers to SQS, the checkpoint write) must end
    // before the reserve: ~1 s on an idle machine, more than 5 s seen at load 18-20 (a 7 s deadline then cut the
    // PutEvents instead of the FETCH). 18 s to the reserve leaves 3x that; the test waits for the stall idly.
    const deadline = Date.now() + 20_000;
    const error = await pollFailing(deps, pollOptions(world, { batchSize: 2, deadline, reserveMs: 2_000 }));
    expect(Date.now()).toBeLessThan(deadline);
    expect(error).toMatchObject({ code: 'IMAP_UNREACHABLE', retryable: true });
    expect(error.message).toMatch(/did not answer in time \(fetchSources\)/);
    expect(await world.checkpoint()).toMatchObject({ lastUid: uids[1] });
    expect(await world.leaseItem()).toBeUndefined();

    await proxies.imap.setFault({ kind: 'pass' });
    expect(await pollMailbox(deps, pollOptions(world, { batchSize: 2 }))).toMatchObject({
      outcome: 'published',
      published: 2,
    });
    expectExactlyOnce(await received(world, 4), uids);
  });

  it('server silent from the start (no greeting): the Lambda handler returns before its deadline', async () => {
    const world = await proxiedWorld();
    await world.invoke();
    const uids = await world.append(2);
    await proxies.imap.setFault({ kind: 'silent' });
    const started = Date.now();
    // The gateway's own timeouts (10 s to connect, 30 s of silence) are longer than what is left of this run.
    const error = await world.invoke({}, 4_000).then(
      () => new Error('expected a failure'),
      (err: Error) => err,
    );
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(error.message).toMatch(/^IMAP_UNREACHABLE: The IMAP server .* did not answer in time \(login\)/);
    await proxies.imap.setFault({ kind: 'pass' });
    expect(await world.invoke()).toEqual({ outcome: 'published', published: 2 });
    expectExactlyOnce(await received(world, 2), uids);
  });

  it('a slow network (every packet 40 ms late) still delivers everything once', async () => {
    const world = await proxiedWorld();
    await world.invoke();
    const uids = await world.append(2);
    await proxies.imap.setFault({ kind: 'delay', ms: 40 });
    await proxies.aws.setFault({ kind: 'delay', ms: 40 });
    expect(await world.invoke()).toEqual({ outcome: 'published', published: 2 });
    expectExactlyOnce(await received(world, 2), uids);
  });
});

describe('AWS network faults (TCP proxy in front of moto_server)', () => {
  it('endpoint refuses connections: the run fails retryably after the SDK retries, nothing moves', async () => {
    const world = await proxiedWorld();
    await world.invoke();
    const uids = await world.append(2);
    const before = await world.checkpoint();
    await proxies.aws.setFault({ kind: 'refuse', mode: 'reset' });
    const refusedBefore = proxies.aws.stats.refused;
    // The first AWS call of a run is the secret (the settings; the lease comes only once STATUS shows mail).
    expect((await world.invokeFailing()).message).toMatch(/^SECRET_UNAVAILABLE: Reading the secret .* failed/);
    // The SDK's maxAttempts (4) for the secret, then the run gives up; then 4 more for the best-effort status
    // record of the failure (logged, never failing the run).
    expect(proxies.aws.stats.refused - refusedBefore).toBe(8);
    await proxies.aws.setFault({ kind: 'pass' });
    expect(await world.checkpoint()).toEqual(before);
    expect(await world.invoke()).toEqual({ outcome: 'published', published: 2 });
    expectExactlyOnce(await received(world, 2), uids);
  });

  it('endpoint silent from the start: the handler gives up recording the failure at its deadline and returns', async () => {
    const world = await proxiedWorld();
    await world.invoke();
    const before = await world.checkpoint();
    await proxies.aws.setFault({ kind: 'silent' });
    const started = Date.now();
    const error = await world.invoke({}, 4_000).then(
      () => new Error('expected a failure'),
      (err: Error) => err,
    );
    // The run stops at its own deadline (REPORT_RESERVE_MS before the Lambda's); the status write of the failure is
    // cancelled REPORT_MARGIN_MS before the Lambda's instead of waiting for a network that does not answer (without
    // that bound the handler returned only when the network came back). 2 s of slack for a loaded machine.
    expect(Date.now() - started).toBeLessThan(4_000 + 2_000);
    expect(error.message).toMatch(/^SECRET_UNAVAILABLE: Secrets Manager did not answer in time/);
    // Nothing moved.
    await proxies.aws.setFault({ kind: 'pass' });
    expect(await world.checkpoint()).toEqual(before);
  });

  it('endpoint goes silent during PutEvents: the run stops before its deadline; the lease is not left behind', async () => {
    const world = await proxiedWorld();
    const deps = await realDeps(world);
    await pollMailbox(deps, pollOptions(world));
    const uids = await world.append(2);
    const inner = deps.publisher;
    const silencing: EventPublisher = {
      async publish(entries) {
        await proxies.aws.setFault({ kind: 'silent' });
        return inner.publish(entries);
      },
    };
    const deadline = Date.now() + 5_000;
    const error = await pollFailing(
      { ...deps, publisher: silencing },
      pollOptions(world, { deadline, reserveMs: 1_500 }),
    );
    expect(Date.now()).toBeLessThan(deadline);
    expect(error).toMatchObject({ code: 'EVENT_PUBLISH_FAILED', retryable: true });
    expect(error.message).toMatch(/EventBridge did not answer in time/);
    // The held requests (PutEvents, the lease release) go through once the network is back.
    await proxies.aws.setFault({ kind: 'pass' });
    expect(await leaseReleased(world)).toBe(true);
    expect(await world.checkpoint()).toMatchObject({ lastUid: 0 });
    expect(await pollMailbox(deps, pollOptions(world))).toMatchObject({ outcome: 'published', published: 2 });
    // The cut-off PutEvents was delivered too: each message once or twice, never lost.
    const counts = deliveries(await received(world, 2, 1_500));
    expect([...counts.keys()].sort((a, b) => a - b)).toEqual(uids);
    expect([...counts.values()].every((n) => n <= 2)).toBe(true);
  });

  it('PutEvents response lost (connection reset after EventBridge accepted): the SDK retries and the event arrives twice', async () => {
    const world = await proxiedWorld();
    const deps = await realDeps(world);
    await pollMailbox(deps, pollOptions(world));
    const uids = await world.append(1);
    const inner = deps.publisher;
    const dropping: EventPublisher = {
      async publish(entries) {
        await proxies.aws.setFault({ kind: 'dropAfter', bytes: 0, once: true });
        return inner.publish(entries);
      },
    };
    expect(await pollMailbox({ ...deps, publisher: dropping }, pollOptions(world))).toMatchObject({
      outcome: 'published',
      published: 1,
    });
    expect(await world.checkpoint()).toMatchObject({ lastUid: uids[0] });
    // Documented duplicate class: same eventId twice; consumers dedupe on it.
    const events = (await received(world, 2)).filter(isMessage);
    expect(events.map((e) => e.detail.uid)).toEqual([uids[0], uids[0]]);
    expect(events[0]!.detail.eventId).toBe(events[1]!.detail.eventId);
  });
});

/** An EventBridge client whose PutEvents goes through `behave` (aws-sdk-client-mock) and then, for the entries it lets through, to moto. */
function scriptedEventBridge(
  world: World,
  behave: (call: number, entries: number) => { throw?: Error; fail?: ReadonlyMap<number, string> },
) {
  const real = new EventBridgeClient(world.aws.clientConfig);
  const client = new EventBridgeClient(world.aws.clientConfig);
  const calls: { at: number; entries: number }[] = [];
  mockClient(client)
    .on(PutEventsCommand)
    .callsFake(async (input: PutEventsCommandInput) => {
      const entries = input.Entries ?? [];
      calls.push({ at: Date.now(), entries: entries.length });
      const plan = behave(calls.length - 1, entries.length);
      if (plan.throw) throw plan.throw;
      const through = entries.flatMap((_, i) => (plan.fail?.has(i) ? [] : [i]));
      const sent =
        through.length > 0
          ? ((await real.send(new PutEventsCommand({ Entries: through.map((i) => entries[i]!) }))).Entries ?? [])
          : [];
      const results: PutEventsResultEntry[] = entries.map((_, i) =>
        plan.fail?.has(i) ? { ErrorCode: plan.fail.get(i), ErrorMessage: 'injected' } : sent[through.indexOf(i)]!,
      );
      return { FailedEntryCount: results.filter((r) => r.ErrorCode).length, Entries: results };
    });
  return { client, calls };
}

function awsError(name: string): Error {
  return Object.assign(new Error(`${name} (injected)`), { name, $fault: 'client', $metadata: { httpStatusCode: 400 } });
}

describe.concurrent('PutEvents failures (aws-sdk-client-mock over the EventBridge client)', () => {
  it('partial failure: the failed entries are retried with capped, jittered backoff; each message once', async () => {
    const world = await World.create();
    const eb = scriptedEventBridge(world, (call, n) =>
      call < 2
        ? {
            fail: new Map(
              Array.from({ length: n }, (_, i) => i)
                .filter((i) => i % 2 === 1)
                .map((i) => [i, 'InternalFailure']),
            ),
          }
        : {},
    );
    const delays: number[] = [];
    const publisher = new EventBridgePublisher(eb.client, {
      baseDelayMs: 100,
      maxDelayMs: 300,
      sleep: (ms) => (delays.push(ms), sleep(ms)),
    });
    const deps = await realDeps(world, { publisher });
    await pollMailbox(deps, pollOptions(world));
    const uids = await world.append(4);
    expect(await pollMailbox(deps, pollOptions(world))).toMatchObject({ outcome: 'published', published: 4 });
    expect(eb.calls.map((c) => c.entries)).toEqual([4, 2, 1]);
    expect(delays).toHaveLength(2);
    expect(delays[0]).toBeLessThan(100);
    expect(delays[1]).toBeLessThan(200);
    expectExactlyOnce(await received(world, 4), uids);
  });

  it('an entry that keeps failing: the checkpoint stops before it; the accepted entries after it come again (documented duplicates)', async () => {
    const world = await World.create();
    let failing = true;
    const eb = scriptedEventBridge(world, (_call, n) =>
      failing && n === 4
        ? { fail: new Map([[1, 'InternalFailure']]) }
        : failing && n === 1
          ? { fail: new Map([[0, 'InternalFailure']]) }
          : {},
    );
    const deps = await realDeps(world, { publisher: new EventBridgePublisher(eb.client, { baseDelayMs: 10 }) });
    await pollMailbox(deps, pollOptions(world));
    const uids = await world.append(4);
    const error = await pollFailing(deps, pollOptions(world));
    expect(error).toMatchObject({ code: 'EVENT_PUBLISH_FAILED', retryable: true });
    expect(error.message).toMatch(new RegExp(`UID ${uids[1]} after retries \\(InternalFailure\\)`));
    expect(eb.calls.map((c) => c.entries)).toEqual([4, 1, 1, 1]); // 4 attempts for the failing entry
    expect(await world.checkpoint()).toMatchObject({ lastUid: uids[0] });

    failing = false;
    expect(await pollMailbox(deps, pollOptions(world))).toMatchObject({
      outcome: 'published',
      fromUid: uids[1],
      published: 3,
    });
    const counts = deliveries(await received(world, 6));
    expect(Object.fromEntries(counts)).toEqual({ [uids[0]!]: 1, [uids[1]!]: 1, [uids[2]!]: 2, [uids[3]!]: 2 });
  });
});

describe("whole-call retries are the SDK's alone", () => {
  it('throttled PutEvents calls: the SDK retries them (4 attempts in all), the publisher adds none; when it persists, nothing moves', async () => {
    const world = await World.create();
    let throttle = 2;
    const eb = throttlingEventBridge(world, () => throttle-- > 0);
    const deps = await realDeps(world, { publisher: new EventBridgePublisher(eb.client) });
    await pollMailbox(deps, pollOptions(world));
    const uids = await world.append(2);
    expect(await pollMailbox(deps, pollOptions(world))).toMatchObject({ outcome: 'published', published: 2 });
    expect(eb.requests()).toBe(3);
    expectExactlyOnce(await received(world, 2), uids);

    throttle = 100;
    const more = await world.append(1);
    const error = await pollFailing(deps, pollOptions(world));
    expect(error).toMatchObject({ code: 'EVENT_PUBLISH_FAILED', retryable: true });
    expect(error.message).toMatch(/ThrottlingException/);
    expect(eb.requests()).toBe(3 + 4); // the SDK's 4 attempts, and not one PutEvents more
    expect(await world.checkpoint()).toMatchObject({ lastUid: uids[1] });
    throttle = 0;
    expect(await pollMailbox(deps, pollOptions(world))).toMatchObject({ published: 1 });
    expectExactlyOnce(await received(world, 1), more);
  });
});

/**
 * An EventBridge client configured as compose.ts configures every client (its retry strategy included), whose
 * HTTP requests get EventBridge's throttling answer while `throttled()` says so, and go to moto otherwise.
 */
function throttlingEventBridge(world: World, throttled: () => boolean) {
  const inner = new EventBridgeClient(world.aws.clientConfig).config.requestHandler as unknown as {
    handle(request: unknown, options?: unknown): Promise<unknown>;
  };
  let requests = 0;
  const requestHandler = {
    handle(request: unknown, options?: unknown) {
      requests++;
      if (!throttled()) return inner.handle(request, options);
      const body = JSON.stringify({ __type: 'ThrottlingException', message: 'Rate exceeded' });
      return Promise.resolve({
        response: {
          statusCode: 400,
          reason: 'Bad Request',
          headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-errortype': 'ThrottlingException' },
          body: Readable.from([Buffer.from(body)]),
        },
      });
    },
    updateHttpClientConfig() {},
    httpHandlerConfigs: () => ({}),
  };
  const client = new EventBridgeClient(awsClientConfig({ ...world.aws.clientConfig, requestHandler }));
  return { client, requests: () => requests };
}

/** A DynamoDB client whose commands go through `intercept` (aws-sdk-client-mock) before reaching moto. */
function scriptedDynamoDb(
  world: World,
  intercept: (
    command: 'GetItem' | 'PutItem' | 'DeleteItem',
    input: { Key?: unknown; Item?: PutItemCommandInput['Item'] },
  ) => Error | undefined,
) {
  const real = new DynamoDBClient(world.aws.clientConfig);
  const client = new DynamoDBClient(world.aws.clientConfig);
  const mock = mockClient(client);
  const forward =
    <I extends object>(name: 'GetItem' | 'PutItem' | 'DeleteItem', send: (input: I) => Promise<unknown>) =>
    async (input: I) => {
      const error = intercept(name, input as { Key?: unknown; Item?: PutItemCommandInput['Item'] });
      if (error) throw error;
      return send(input);
    };
  mock.on(GetItemCommand).callsFake(forward('GetItem', (input) => real.send(new GetItemCommand(input as never))));
  mock.on(PutItemCommand).callsFake(forward('PutItem', (input) => real.send(new PutItemCommand(input as never))));
  mock
    .on(DeleteItemCommand)
    .callsFake(forward('DeleteItem', (input) => real.send(new DeleteItemCommand(input as never))));
  return new DynamoDbCheckpointStore(client, world.table);
}

const isCheckpointWrite = (command: string, input: { Item?: PutItemCommandInput['Item'] }) =>
  command === 'PutItem' && !!input.Item?.pk?.S?.startsWith('checkpoint#');

describe.concurrent('DynamoDB faults', () => {
  it('throttled checkpoint write after PutEvents: the run fails retryably; the next run publishes that batch again (documented duplicates)', async () => {
    const world = await World.create();
    let throttleWrites = false;
    const store = scriptedDynamoDb(world, (command, input) =>
      throttleWrites && isCheckpointWrite(command, input)
        ? awsError('ProvisionedThroughputExceededException')
        : undefined,
    );
    const deps = await realDeps(world, { checkpoints: store, lease: store });
    await pollMailbox(deps, pollOptions(world));
    const uids = await world.append(2);
    throttleWrites = true;
    const error = await pollFailing(deps, pollOptions(world));
    expect(error).toMatchObject({ code: 'CHECKPOINT_STORE_FAILED', retryable: true });
    expect(error.message).toMatch(/throttled beyond retries/);
    expect(await world.checkpoint()).toMatchObject({ lastUid: 0 });
    expect(await world.leaseItem()).toBeUndefined();
    throttleWrites = false;
    expect(await pollMailbox(deps, pollOptions(world))).toMatchObject({ published: 2 });
    const counts = deliveries(await received(world, 4));
    expect(Object.fromEntries(counts)).toEqual({ [uids[0]!]: 2, [uids[1]!]: 2 });
  });

  it('throttled checkpoint read: the run fails before publishing anything', async () => {
    const world = await World.create();
    let throttleReads = false;
    const store = scriptedDynamoDb(world, (command) =>
      throttleReads && command === 'GetItem' ? awsError('ThrottlingException') : undefined,
    );
    const deps = await realDeps(world, { checkpoints: store, lease: store });
    await pollMailbox(deps, pollOptions(world));
    const uids = await world.append(1);
    throttleReads = true;
    expect(await pollFailing(deps, pollOptions(world))).toMatchObject({
      code: 'CHECKPOINT_STORE_FAILED',
      retryable: true,
    });
    expect(await received(world, 0)).toEqual([]);
    throttleReads = false;
    await pollMailbox(deps, pollOptions(world));
    expectExactlyOnce(await received(world, 1), uids);
  });

  it('conditional-check conflict (another writer advanced the checkpoint meanwhile): the run stops without overwriting it', async () => {
    const world = await World.create();
    const deps = await realDeps(world);
    await pollMailbox(deps, pollOptions(world));
    const uids = await world.append(3);
    const inner = deps.publisher;
    // Between our PutEvents and our checkpoint write, a run whose lease had expired writes its own checkpoint.
    const racing: EventPublisher = {
      async publish(entries) {
        const result = await inner.publish(entries);
        const store = new DynamoDbCheckpointStore(world.aws.dynamodb, world.table);
        const current = (await store.get(world.mailboxId, world.folder))!;
        await store.put({ ...current, lastUid: uids[0]!, updatedAt: new Date().toISOString() }, current.version);
        return result;
      },
    };
    const error = await pollFailing({ ...deps, publisher: racing }, pollOptions(world));
    expect(error).toMatchObject({ code: 'CHECKPOINT_CONFLICT', retryable: true });
    expect(await world.checkpoint()).toMatchObject({ lastUid: uids[0] });
    expect(await pollMailbox(deps, pollOptions(world))).toMatchObject({ fromUid: uids[1], published: 2 });
    const counts = deliveries(await received(world, 5));
    expect(Object.fromEntries(counts)).toEqual({ [uids[0]!]: 1, [uids[1]!]: 2, [uids[2]!]: 2 });
  });
});

describe.concurrent('the mailbox changes under the poller', () => {
  it('message expunged between STATUS and FETCH: passed over, the others published once, the run completes', async () => {
    const world = await World.create();
    let expungeAfterList = false;
    let expungeAfterStatus = false;
    const mailbox = hookedGateway({
      afterStatus: async () => {
        if (expungeAfterStatus) await world.imap.expunge(world.user, world.folder, uids[0]!);
      },
      afterList: async (listed) => {
        if (expungeAfterList && listed.length > 1) await world.imap.expunge(world.user, world.folder, listed[1]!);
      },
    });
    const deps = await realDeps(world, { mailbox });
    await pollMailbox(deps, pollOptions(world));
    let uids = await world.append(3);
    expungeAfterList = true;
    expect(await pollMailbox(deps, pollOptions(world))).toMatchObject({
      outcome: 'published',
      published: 2,
      skipped: 1,
      toUid: uids[2],
    });
    expectExactlyOnce(await received(world, 2), [uids[0]!, uids[2]!]);

    expungeAfterList = false;
    expungeAfterStatus = true;
    uids = await world.append(2);
    expect(await pollMailbox(deps, pollOptions(world))).toMatchObject({
      outcome: 'published',
      published: 1,
      toUid: uids[1],
    });
    expectExactlyOnce(await received(world, 1), [uids[1]!]);
  });

  it('folder deleted: fails clearly and is not retried as if transient; recreated, it resets without re-publishing old mail', async () => {
    const world = await World.create();
    const deps = await realDeps(world);
    await pollMailbox(deps, pollOptions(world));
    const old = await world.append(2);
    await pollMailbox(deps, pollOptions(world));
    expectExactlyOnce(await received(world, 2), old);
    const before = await world.checkpoint();

    await world.imap.deleteFolder(world.user, world.folder);
    const error = await pollFailing(deps, pollOptions(world));
    expect(error).toMatchObject({ code: 'FOLDER_NOT_FOUND', retryable: false });
    expect(error.message).toContain(`"${world.folder}" does not exist`);
    expect(await world.checkpoint()).toEqual(before);

    await world.imap.createFolders(world.user, [world.folder]);
    await sleep(1_100); // INTERNALDATE has second resolution
    const fresh = await world.append(1);
    expect(await pollMailbox(deps, pollOptions(world))).toMatchObject({ outcome: 'reset', published: 1 });
    const events = await received(world, 2);
    expect(events.filter((e) => e['detail-type'] === 'IMAP Mailbox Reset')).toHaveLength(1);
    expectExactlyOnce(events, fresh);
  });

  it('folder deleted between STATUS and EXAMINE: the run fails with FOLDER_NOT_FOUND and changes nothing', async () => {
    const world = await World.create();
    let deleteIt = false;
    const deps = await realDeps(world, {
      mailbox: hookedGateway({
        afterStatus: async () => {
          if (deleteIt) await world.imap.deleteFolder(world.user, world.folder);
        },
      }),
    });
    await pollMailbox(deps, pollOptions(world));
    await world.append(1);
    const before = await world.checkpoint();
    deleteIt = true;
    expect(await pollFailing(deps, pollOptions(world))).toMatchObject({ code: 'FOLDER_NOT_FOUND', retryable: false });
    expect(await world.checkpoint()).toEqual(before);
    expect(await received(world, 0)).toEqual([]);
  });

  it('folder renamed away and back: fails while it is gone, then delivers what arrived meanwhile, once', async () => {
    const world = await World.create();
    const deps = await realDeps(world);
    await pollMailbox(deps, pollOptions(world));
    const moved = `${world.folder}-moved`;
    await world.imap.renameFolder(world.user, world.folder, moved);
    const uids = await world.append(2, moved);
    expect(await pollFailing(deps, pollOptions(world))).toMatchObject({ code: 'FOLDER_NOT_FOUND' });
    await world.imap.renameFolder(world.user, moved, world.folder);
    // Dovecot keeps UIDVALIDITY and UIDs on rename: a plain continuation.
    expect(await pollMailbox(deps, pollOptions(world))).toMatchObject({ outcome: 'published', published: 2 });
    expectExactlyOnce(await received(world, 2), uids);
  });
});

describe.concurrent('the Lambda deadline', () => {
  it('reached mid-backlog: stops between batches with a consistent checkpoint; the next run continues', async () => {
    const world = await World.create();
    const deps = await realDeps(world);
    await pollMailbox(deps, pollOptions(world));
    const uids = await world.append(12);
    // Each batch takes more than 0.5 s: with 5 s reserved (the default), batches start during the first 3 s only.
    const inner = deps.publisher;
    const slow: EventPublisher = { publish: async (entries) => (await sleep(500), inner.publish(entries)) };
    const first = await pollMailbox(
      { ...deps, publisher: slow },
      pollOptions(world, { batchSize: 2, deadline: Date.now() + 8_000 }),
    );
    expect(first).toMatchObject({ outcome: 'partial', stoppedBy: 'deadline' });
    expect(first.published).toBeGreaterThanOrEqual(2);
    expect(first.published).toBeLessThan(12);
    expect(await world.checkpoint()).toMatchObject({ lastUid: uids[first.published - 1] });
    expect(await pollMailbox(deps, pollOptions(world, { batchSize: 5 }))).toMatchObject({
      outcome: 'published',
      published: 12 - first.published,
    });
    expectExactlyOnce(await received(world, 12), uids);
  });
});

// The warm container keeps its logged-in session (run/session-keeper.ts). Dovecot keeps a session alive when the
// user's password changes; many servers end it. These tests kick the session after the change, as such a server
// would; what happens when the server keeps it is in 'the kept IMAP session' below.
describe('credentials rotated between runs', () => {
  it('password changed at the server and in the secret: the warm container re-reads the secret once and works, no redeploy', async () => {
    const world = await proxiedWorld();
    expect(await world.invoke()).toEqual({ outcome: 'baseline', published: 0 }); // a fresh container
    expect(await invokeWarm(world)).toEqual({ outcome: 'idle', published: 0 }); // settings now cached
    const uids = await world.append(1);
    await world.imap.setPassword(world.user, 'rotated-Pa55word');
    await world.imap.kick(world.user); // the server ends the session of the old password
    await world.aws.putSecretValue(
      world.secretName,
      world.secretValue({ port: proxies.imap.port, password: 'rotated-Pa55word' }),
    );
    const connections = proxies.imap.stats.accepted;
    expect(await invokeWarm(world)).toEqual({ outcome: 'published', published: 1 });
    expect(proxies.imap.stats.accepted - connections).toBe(2); // the cached password failed once, the re-read one worked
    expectExactlyOnce(await received(world, 1), uids);
  });

  it('password changed at the server only: fails as not retryable, one login per run (no retry loop); works once the secret follows', async () => {
    const world = await proxiedWorld();
    await world.invoke();
    const uids = await world.append(1);
    await world.imap.setPassword(world.user, 'only-at-the-server');
    await world.imap.kick(world.user); // the server ends the session of the old password
    const connections = proxies.imap.stats.accepted;
    for (let run = 0; run < 2; run++) {
      const error = await invokeWarm(world).then(
        () => new Error('expected a failure'),
        (err: Error) => err,
      );
      expect(error.message).toMatch(/^IMAP_AUTH_FAILED: .*rejected the login/);
      expect(error.message).not.toContain('only-at-the-server');
    }
    expect(proxies.imap.stats.accepted - connections).toBe(2);
    const direct = await pollFailing(await realDeps(world), pollOptions(world));
    expect(direct).toMatchObject({ code: 'IMAP_AUTH_FAILED', retryable: false });
    await world.aws.putSecretValue(
      world.secretName,
      world.secretValue({ port: proxies.imap.port, password: 'only-at-the-server' }),
    );
    expect(await invokeWarm(world)).toEqual({ outcome: 'published', published: 1 });
    expectExactlyOnce(await received(world, 1), uids);
  });
});

describe('UIDVALIDITY changes: nothing lost, no flood', () => {
  it('reset while a backlog is pending: the backlog is published under the new UIDVALIDITY, old mail is not', async () => {
    const world = await World.create();
    await world.invoke();
    const old = await world.append(3);
    await world.invoke();
    expectExactlyOnce(await received(world, 3), old);
    const backlog = await world.append(2, world.folder, (i) => ({ subject: `Backlog ${i + 1}` }));
    await world.imap.setUidValidity(world.user, world.folder, 777);
    expect(await world.invoke()).toEqual({ outcome: 'reset', published: 2 });
    const events = await received(world, 3);
    const reset = events.find((e) => e['detail-type'] === 'IMAP Mailbox Reset')!.detail as MailboxResetDetail;
    expect(reset).toMatchObject({ uidValidity: '777', previousLastUid: old.at(-1) });
    expectExactlyOnce(events, backlog); // the same UIDs, now under UIDVALIDITY 777
    expect(events.filter(isMessage).every((e) => e.detail.uidValidity === '777')).toBe(true);
    expect(await world.checkpoint()).toMatchObject({ uidValidity: '777', lastUid: backlog.at(-1) });
    expect((await world.checkpoint())?.rescanSince).toBeUndefined();
  });

  it('folder recreated with re-numbered UIDs: old mail re-appended with its INTERNALDATE is skipped; pending and new mail is published', async () => {
    const world = await World.create();
    await world.invoke();
    const t0 = Date.now();
    const at = (s: number) => new Date(Math.floor(t0 / 1000) * 1000 - s * 1000);
    const raw = (i: number, subject: string) =>
      buildMessage({ subject, messageId: `<m${i}-${world.mailboxId}@test.example.com>` });
    const oldMessages = [0, 1, 2].map((i) => ({ raw: raw(i, `Old ${i}`), internalDate: at(300 - i) }));
    await world.imap.appendMany(world.user, world.folder, oldMessages);
    await world.invoke();
    expect((await received(world, 3)).filter(isMessage).map((e) => e.detail.subject)).toEqual([
      'Old 0',
      'Old 1',
      'Old 2',
    ]);
    // Arrived after the last poll, not yet published:
    const pending = { raw: raw(3, 'Pending'), internalDate: at(60) };
    await world.imap.appendMany(world.user, world.folder, [pending]);

    // The folder is rebuilt (e.g. restored on a new server): new UIDVALIDITY, UIDs from 1, mail re-appended with its dates,
    // in another order; plus mail that arrives afterwards.
    await world.imap.deleteFolder(world.user, world.folder);
    await world.imap.createFolders(world.user, [world.folder]);
    await world.imap.appendMany(world.user, world.folder, [pending, oldMessages[2]!, oldMessages[0]!, oldMessages[1]!]);
    const fresh = await world.append(2, world.folder, (i) => ({ subject: `New ${i + 1}` }));

    expect(await world.invoke()).toEqual({ outcome: 'reset', published: 3 });
    const events = await received(world, 4);
    expect(events.filter((e) => e['detail-type'] === 'IMAP Mailbox Reset')).toHaveLength(1);
    const messages = events.filter(isMessage);
    expect(messages.map((e) => e.detail.subject).sort()).toEqual(['New 1', 'New 2', 'Pending']);
    expect(messages.map((e) => e.detail.uid).sort((a, b) => a - b)).toEqual([1, ...fresh]);
    expect(await world.invoke()).toEqual({ outcome: 'idle', published: 0 });
  });
});

describe('START_AT with an ISO date', () => {
  it('makes progress when more messages than the per-run cap arrived shortly before the start time', async () => {
    // SEARCH SINCE has day granularity: the mail of the day before START_AT comes back from the server too and
    // is filtered out by arrival time. With more of it than MAX_MESSAGES_PER_RUN, every run used to look at the
    // same first UIDs, filter them all out and stop without moving the checkpoint: nothing was ever published again.
    const now = Date.now();
    const since = new Date(now - 3600_000);
    const world = await World.create({ startAt: since.toISOString(), env: { MAX_MESSAGES_PER_RUN: '3' } });
    const before = Array.from({ length: 7 }, (_, i) => ({
      raw: buildMessage({ subject: `Before ${i}` }),
      internalDate: new Date(since.getTime() - (i + 1) * 600_000),
    }));
    const after = [1, 2].map((i) => ({
      raw: buildMessage({ subject: `After ${i}` }),
      internalDate: new Date(since.getTime() + i * 600_000),
    }));
    const uids = await world.imap.appendMany(world.user, world.folder, [...before, ...after]);
    let published = 0;
    for (let run = 0; run < 6; run++) published += (await world.invoke()).published;
    expect(published).toBe(2);
    expectExactlyOnce(await received(world, 2), uids.slice(7));
    expect(await world.checkpoint()).toMatchObject({ lastUid: uids.at(-1) });
    expect((await world.checkpoint())?.rescanSince).toBeUndefined();
  });

  it('publishes mail received since then (by INTERNALDATE), then continues with new mail', async () => {
    const now = Date.now();
    const since = new Date(now - 2 * 3600_000);
    const world = await World.create({ startAt: since.toISOString() });
    const items = [
      { subject: 'Last year', internalDate: new Date(now - 400 * 86400_000) },
      { subject: 'Yesterday', internalDate: new Date(now - 26 * 3600_000) },
      { subject: 'Just before', internalDate: new Date(since.getTime() - 60_000) },
      { subject: 'Just after', internalDate: new Date(since.getTime() + 60_000) },
      { subject: 'An hour ago', internalDate: new Date(now - 3600_000) },
    ];
    const uids = await world.imap.appendMany(
      world.user,
      world.folder,
      items.map((m) => ({ raw: buildMessage({ subject: m.subject }), internalDate: m.internalDate })),
    );
    expect(await world.invoke()).toEqual({ outcome: 'published', published: 2 });
    const first = (await received(world, 2)).filter(isMessage);
    expect(first.map((e) => e.detail.subject)).toEqual(['Just after', 'An hour ago']);
    expect(await world.checkpoint()).toMatchObject({ lastUid: uids.at(-1) });
    expect((await world.checkpoint())?.rescanSince).toBeUndefined();

    const later = await world.append(1);
    expect(await world.invoke()).toEqual({ outcome: 'published', published: 1 });
    expectExactlyOnce(await received(world, 1), later);
    expect(await world.invoke()).toEqual({ outcome: 'idle', published: 0 });
  });
});
