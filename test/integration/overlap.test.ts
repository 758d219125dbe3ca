/**
 * Issue #4: overlapping runs. A DynamoDB lease per mailbox (item `lease#<mailboxId>`, expiring 30 s after the
 * run's deadline) keeps two invocations from working at the same time; a crashed run's lease expires and is
 * taken over. Without the lease, the conditional checkpoint writes still keep two runs from both advancing it.
 * Real handler invocations against Dovecot and moto_server.
 */
import { GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, describe, expect, it } from 'vitest';
import type { MessageReceivedDetail } from '../../functions/poller/core/event-detail.js';
import { CheckpointConflictError } from '../../functions/poller/errors.js';
import type { EventPublisher, LeaseStore } from '../../functions/poller/ports.js';
import { pollMailbox } from '../../functions/poller/run/poll-mailbox.js';
import { AwsProxy } from '../support/aws-proxy.js';
import { moto } from '../support/env.js';
import type { EventEnvelope } from '../support/moto.js';
import { World } from './world.js';

const { handler, resetContainer } = await import('../../functions/poller/handler.js');

const handlerEnv = (world: World): Record<string, string> => world.handlerEnv({ START_AT: 'now' });

/**
 * Their table calls go through a proxy that applies writes to one item one after the other, as DynamoDB does (moto_server
 * alone can let two simultaneous conditional lease puts both succeed).
 */
let atomicTable: Promise<AwsProxy> | undefined;
afterAll(async () => {
  await (await atomicTable)?.close();
});

/** `n` handler invocations at the same moment, each in its own (cold) container, as Lambda would run them. */
async function invokeConcurrently(
  world: World,
  n: number,
): Promise<PromiseSettledResult<{ outcome: string; published: number }>[]> {
  atomicTable ??= AwsProxy.start(moto().info.endpoint, () => {}, { atomicItems: true });
  const table = await atomicTable;
  const saved = { ...process.env };
  Object.assign(process.env, handlerEnv(world), { AWS_ENDPOINT_URL_DYNAMODB: table.url });
  try {
    const runs: Promise<{ outcome: string; published: number }>[] = [];
    for (let i = 0; i < n; i++) {
      resetContainer(); // the handler composes its container synchronously when called
      runs.push(handler({}, { getRemainingTimeInMillis: () => 60_000 }));
    }
    return await Promise.allSettled(runs);
  } finally {
    process.env = saved;
    resetContainer();
  }
}

/** Delivered message events by UID. */
function deliveries(events: EventEnvelope<MessageReceivedDetail>[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const e of events)
    if (e['detail-type'] === 'IMAP Message Received') counts[e.detail.uid] = (counts[e.detail.uid] ?? 0) + 1;
  return counts;
}

const once = (uids: readonly number[]) => Object.fromEntries(uids.map((uid) => [uid, 1]));

/** Writes the lease item a run with `owner` would hold until `expiresAt`. */
async function holdLease(world: World, owner: string, expiresAt: number): Promise<void> {
  await world.aws.dynamodb.send(
    new PutItemCommand({
      TableName: world.table,
      Item: {
        pk: { S: `lease#${world.mailboxId}` },
        owner: { S: owner },
        expiresAt: { N: String(expiresAt) },
        acquiredAt: { S: new Date().toISOString() },
      },
    }),
  );
}

/** Lets the lease's expiry pass (rewrites it as expired a minute ago), instead of sleeping on a wall clock under load. */
async function expireLease(world: World): Promise<void> {
  const item = await world.aws.dynamodb.send(
    new GetItemCommand({
      TableName: world.table,
      Key: { pk: { S: `lease#${world.mailboxId}` } },
      ConsistentRead: true,
    }),
  );
  expect(item.Item, 'a lease is held').toBeDefined();
  await holdLease(world, item.Item!.owner!.S!, Date.now() - 60_000);
}

describe('overlapping runs', () => {
  it('two invocations at the same time: one works, the other is skipped; every message once', async () => {
    const world = await World.create();
    await world.invoke();
    const uids = await world.append(4);
    const results = await invokeConcurrently(world, 2);
    const outcomes = results.map((r) =>
      r.status === 'fulfilled' ? r.value : { outcome: `failed: ${String(r.reason)}`, published: 0 },
    );
    expect(outcomes).toContainEqual({ outcome: 'published', published: 4 });
    // The other one is skipped (or, when it came late on a loaded machine, found nothing left: idle).
    expect([
      { outcome: 'skipped', published: 0 },
      { outcome: 'idle', published: 0 },
    ]).toContainEqual(outcomes.find((o) => o.outcome !== 'published'));
    expect(deliveries(await world.events(4))).toEqual(once(uids));
    expect(await world.checkpoint()).toMatchObject({ lastUid: uids.at(-1) });
  });

  it('five invocations at the same time: exactly one works, the others are skipped (or find nothing left)', async () => {
    const world = await World.create();
    await world.invoke();
    const uids = await world.append(2);
    const results = await invokeConcurrently(world, 5);
    const outcomes = results.map((r) => (r.status === 'fulfilled' ? r.value.outcome : `failed: ${String(r.reason)}`));
    expect(outcomes.filter((o) => o === 'published')).toHaveLength(1);
    // On a loaded machine a late invocation may take the lease after the worker released it: it then finds
    // nothing new (idle). What must never happen is a second run working at the same time.
    expect(outcomes.filter((o) => o !== 'published').every((o) => o === 'skipped' || o === 'idle')).toBe(true);
    expect(outcomes.filter((o) => o === 'skipped').length).toBeGreaterThanOrEqual(1);
    expect(deliveries(await world.events(2))).toEqual(once(uids));
    expect(await world.invoke()).toEqual({ outcome: 'idle', published: 0 });
  });

  it('a lease held by a live run blocks; an expired lease (a crashed run) is taken over', async () => {
    const world = await World.create();
    await world.invoke();
    const uids = await world.append(2);
    // Lease times far from "now" either way, so that no load on the machine can turn one into the other.
    await holdLease(world, 'run-still-working', Date.now() + 10 * 60_000);
    expect(await world.invoke()).toEqual({ outcome: 'skipped', published: 0 });
    expect(await world.events(0)).toEqual([]);
    await expireLease(world); // the time passes: the holder never came back
    expect(await world.invoke()).toEqual({ outcome: 'published', published: 2 });
    expect(deliveries(await world.events(2))).toEqual(once(uids));

    const more = await world.append(1);
    await holdLease(world, 'run-that-crashed', Date.now() - 1);
    expect(await world.invoke()).toEqual({ outcome: 'published', published: 1 });
    expect(deliveries(await world.events(1))).toEqual(once(more));
  });

  it('a run that crashed after PutEvents (no checkpoint, lease left behind): blocks until its lease expires, then nothing is lost', async () => {
    const world = await World.create();
    await world.invoke();
    const uids = await world.append(3);
    const deps = await world.deps();
    const lease = deps.lease!;
    // The crashed run: it never releases its lease (which expires 30 s after its deadline).
    const crashingLease: LeaseStore = {
      acquire: (mailboxId, owner, now, expiresAt) => lease.acquire(mailboxId, owner, now, expiresAt),
      release: async () => {},
    };
    const inner = deps.publisher;
    const crashing: EventPublisher = {
      async publish(entries) {
        await inner.publish(entries);
        throw new Error('the process died here');
      },
    };
    await expect(
      pollMailbox({ ...deps, lease: crashingLease, publisher: crashing }, world.pollOptions()),
    ).rejects.toThrow('the process died here');
    expect(await world.checkpoint()).toMatchObject({ lastUid: 0 });

    expect(await world.invoke()).toEqual({ outcome: 'skipped', published: 0 });
    await expireLease(world); // its expiry passes
    expect(await world.invoke()).toEqual({ outcome: 'published', published: 3 });
    // Published by the crashed run and again by its successor: the documented duplicates of a crash between
    // PutEvents and the checkpoint write (same eventId).
    expect(deliveries(await world.events(6))).toEqual(Object.fromEntries(uids.map((uid) => [uid, 2])));
    expect(await world.checkpoint()).toMatchObject({ lastUid: uids.at(-1) });
  });

  it('without the lease, two overlapping runs never both advance the checkpoint: one stops on a conflict, nothing is lost', async () => {
    const world = await World.create();
    await world.invoke();
    const uids = await world.append(6);
    const deps = await world.deps({ overrides: { lease: undefined } });
    const runs = await Promise.allSettled([
      pollMailbox(deps, world.pollOptions({ batchSize: 2 })),
      pollMailbox(deps, world.pollOptions({ batchSize: 2 })),
    ]);
    const failures = runs.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));
    expect(failures.length).toBeLessThanOrEqual(1);
    expect(failures.every((e) => e instanceof CheckpointConflictError)).toBe(true);
    // Whatever happened, the checkpoint only moved forward over published messages; a later run finishes the job.
    await pollMailbox(deps, world.pollOptions());
    expect(await world.checkpoint()).toMatchObject({ lastUid: uids.at(-1) });
    const counts = deliveries(await world.events(6));
    expect(Object.keys(counts).map(Number)).toEqual(uids);
    // Each message at most once per run.
    expect(Object.values(counts).every((n) => n <= 2)).toBe(true);
    expect(await pollMailbox(deps, world.pollOptions())).toMatchObject({ outcome: 'idle' });
  });
});
