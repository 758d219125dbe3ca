/**
 * What a fleet turn writes to the table, call by call, through a proxy in front of moto's DynamoDB API: the cost
 * model's write units (docs/fleet.md, "Cost"; lib/fleet-cost.ts). A healthy idle turn writes nothing (no lease: it
 * changes nothing); the status item only when it changed or its heartbeat is due; host slots only when the cap can
 * bind.
 * "Later" is the system clock moved on (Date only: timers and sockets run in real time).
 */
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { DynamoDbHostSlots } from '../../functions/fleet/adapters/dynamodb-host-slots.js';
import { STATUS_HEARTBEAT_MS } from '../../functions/fleet/core/status-heartbeat.js';
import { DynamoDbPollStatusStore } from '../../functions/poller/adapters/dynamodb-status-store.js';
import { FLEET_DEFAULTS, WORKER_BATCH_SIZE } from '../../functions/poller/contract/fleet.js';
import { DynamoDbCallLog } from '../support/aws-proxy.js';
import { dovecot, mailboxSecret, moto } from '../support/env.js';
import { Fleet } from '../support/fleet.js';
import { buildMessage } from '../support/messages.js';

const imap = dovecot();
const saved = { ...process.env };
let table: DynamoDbCallLog;

beforeAll(async () => {
  table = await DynamoDbCallLog.start(moto().info.endpoint);
});
afterAll(() => table.close());
afterEach(() => {
  vi.useRealTimers();
  process.env = { ...saved };
});

/** A fleet whose workers reach DynamoDB through the call log, with one registered mailbox holding one message (and its user). */
async function fleetWithMailbox(hostConnectionCap: number) {
  const fleet = await Fleet.create({ hostConnectionCap, env: { AWS_ENDPOINT_URL_DYNAMODB: table.url } });
  fleet.use();
  const user = await imap.createUser();
  await imap.appendMany(user, 'INBOX', [buildMessage({ subject: 'Fleet writes' })]);
  await fleet.aws.createSecret(`${fleet.secretPrefix}m`, mailboxSecret(imap, user));
  await fleet.register({ id: 'm', secretId: `${fleet.secretPrefix}m`, startAt: 'all' });
  return { fleet, user };
}

/** The clock `ms` later than now, and standing still there (Date only). */
function later(ms: number): void {
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(Date.now() + ms);
}

describe('fleet: table writes per turn', () => {
  const uncapped = FLEET_DEFAULTS.poolConcurrency * WORKER_BATCH_SIZE;

  it('a healthy idle turn writes nothing; the status item again only with its heartbeat', async () => {
    const { fleet } = await fleetWithMailbox(uncapped);
    // The first turn publishes: checkpoint, status and the registry's first success are written as well.
    table.clear();
    expect((await fleet.turn('m')).batchItemFailures).toEqual([]);
    expect(table.writes().sort()).toEqual(
      ['PutItem lease#', 'PutItem checkpoint#', 'UpdateItem status#', 'UpdateItem mailbox#'].sort(),
    );
    expect(table.writes()).not.toContain('DeleteItem lease#'); // left to expire, not released

    // A minute later: an idle turn records its outcome, `idle` instead of `published`; it takes no lease.
    later(60_000);
    table.clear();
    expect((await fleet.turn('m')).batchItemFailures).toEqual([]);
    expect(table.writes()).toEqual(['UpdateItem status#']);

    // Another minute: an idle turn after an idle turn writes nothing.
    later(60_000);
    table.clear();
    expect((await fleet.turn('m')).batchItemFailures).toEqual([]);
    expect(table.writes()).toEqual([]);
    // The read units of the cost model: 0.5 (registry) + 1 (status) + 1 (checkpoint).
    expect(table.reads().sort()).toEqual([
      'GetItem checkpoint# (consistent)',
      'GetItem mailbox#',
      'GetItem status# (consistent)',
    ]);

    // Past the heartbeat: the idle turn refreshes the status item (what `status` shows stays recent).
    const status = new DynamoDbPollStatusStore(fleet.aws.dynamodb, fleet.table);
    const before = (await status.getStatus('m'))!.lastSuccessAt!;
    later(STATUS_HEARTBEAT_MS);
    table.clear();
    await fleet.turn('m');
    expect(table.writes()).toEqual(['UpdateItem status#']);
    const after = await status.getStatus('m');
    expect(Date.parse(after!.lastSuccessAt!)).toBeGreaterThan(Date.parse(before));
    expect(after).toMatchObject({ lastOutcome: 'idle', lastWaiting: 0, consecutiveFailures: 0 });
  });

  it('a turn right after another, with new mail, finds the lease held and writes nothing more', async () => {
    const { fleet, user } = await fleetWithMailbox(uncapped);
    later(0); // both turns at the same instant, however slow the machine
    await fleet.turn('m');
    await imap.appendMany(user, 'INBOX', [buildMessage({ subject: 'Right after' })]);
    table.clear();
    await fleet.turn('m');
    // The lease is still the first turn's (it outlives that turn by seconds): a failed conditional put, no drain.
    expect(table.calls.filter((c) => c.operation === 'PutItem')).toEqual([
      { operation: 'PutItem', pk: 'lease#m', conditionFailed: true, consistent: false },
    ]);
    expect(table.writes()).toEqual(['PutItem lease#']);
  });

  it('takes and gives back a host connection slot only when the cap can bind', async () => {
    const { fleet } = await fleetWithMailbox(uncapped - 1);
    await fleet.turn('m');
    later(60_000);
    await fleet.turn('m');
    later(60_000);
    table.clear();
    await fleet.turn('m');
    expect(table.writes().sort()).toEqual(['DeleteItem hostslot#', 'PutItem hostslot#']);
  });
});

describe('fleet: a host without a free connection slot', () => {
  it('sends the mailbox back into the queue with a delay, without taking its lease', async () => {
    const { fleet } = await fleetWithMailbox(1);
    // Another worker holds the host's only slot for the next minute.
    const other = new DynamoDbHostSlots(fleet.aws.dynamodb, fleet.table);
    const now = new Date();
    expect(await other.acquire('localhost', 1, 'another-turn', now, new Date(now.getTime() + 60_000))).toBeDefined();

    table.clear();
    expect((await fleet.turn('m')).batchItemFailures).toEqual([]);
    // Tried the slot (a failed conditional put each time, then a read of the host's slots), never the lease.
    expect(table.writes().every((w) => w === 'PutItem hostslot#')).toBe(true);
    expect(table.calls.some((c) => c.pk?.startsWith('lease#'))).toBe(false);
    expect(table.calls.filter((c) => c.operation === 'PutItem').every((c) => c.conditionFailed)).toBe(true);
    const { Attributes } = await fleet.aws.sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: fleet.queueUrl,
        AttributeNames: ['ApproximateNumberOfMessagesDelayed'],
      }),
    );
    expect(Attributes?.ApproximateNumberOfMessagesDelayed).toBe('1');
  });
});
