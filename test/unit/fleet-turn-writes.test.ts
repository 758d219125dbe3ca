/**
 * The rules that decide what a fleet turn writes (the cost of a mailbox, docs/fleet.md "Cost"): the status item's
 * heartbeat, whether a host cap can bind, and that a turn's lease is gone before the mailbox's next turn.
 */
import { describe, expect, it } from 'vitest';
import { scheduleIntervalMs } from '../../functions/fleet/core/registry.js';
import {
  fleetStaleAfterSeconds,
  STATUS_HEARTBEAT_MS,
  type StoredStatus,
  statusWriteNeeded,
  type TurnRecord,
} from '../../functions/fleet/core/status-heartbeat.js';
import { KEPT_LEASE_GRACE_MS, TURN_BUDGET_MS } from '../../functions/fleet/run/turn.js';
import { FLEET_LIMITS, hostCapCanBind, WORKER_BATCH_SIZE } from '../../functions/poller/contract/fleet.js';

const now = Date.parse('2026-11-30T12:00:00Z');
const turn: TurnRecord = { outcome: 'idle', folder: 'INBOX', waiting: 0, secretId: 's', staleAfterSeconds: 720 };
const stored: StoredStatus = {
  lastSuccessAt: new Date(now - 60_000).toISOString(),
  lastOutcome: 'idle',
  lastWaiting: 0,
  folder: 'INBOX',
  secretId: 's',
  staleAfterSeconds: 720,
  consecutiveFailures: 0,
};

describe('status heartbeat', () => {
  it('leaves an unchanged, recent status item alone', () => {
    expect(statusWriteNeeded(stored, turn, now)).toBe(false);
    expect(
      statusWriteNeeded({ ...stored, lastSuccessAt: new Date(now - STATUS_HEARTBEAT_MS + 1).toISOString() }, turn, now),
    ).toBe(false);
  });

  it('writes when anything an operator reads there changed, after a failure, and with the heartbeat', () => {
    const cases: [string, StoredStatus | undefined, TurnRecord][] = [
      ['no item yet', undefined, turn],
      ['never succeeded', { consecutiveFailures: 1 }, turn],
      ['a failure since the last success', { ...stored, consecutiveFailures: 2 }, turn],
      ['mail published now', stored, { ...turn, outcome: 'published' }],
      ['mail published last time', { ...stored, lastOutcome: 'published' }, turn],
      ['another folder', stored, { ...turn, folder: 'Archive' }],
      ['another secret', stored, { ...turn, secretId: 't' }],
      ['a backlog appeared', stored, { ...turn, waiting: 3 }],
      ['no STATUS read', stored, { ...turn, waiting: null }],
      ['another schedule', stored, { ...turn, staleAfterSeconds: 840 }],
      ['heartbeat due', { ...stored, lastSuccessAt: new Date(now - STATUS_HEARTBEAT_MS).toISOString() }, turn],
      ['stored in the future', { ...stored, lastSuccessAt: new Date(now + 1_000).toISOString() }, turn],
      ['unreadable time', { ...stored, lastSuccessAt: 'yesterday' }, turn],
    ];
    for (const [why, before, record] of cases)
      expect([why, statusWriteNeeded(before, record, now)]).toEqual([why, true]);
  });

  it('calls a fleet mailbox stale after two intervals plus the heartbeat', () => {
    expect(fleetStaleAfterSeconds(60_000)).toBe(120 + STATUS_HEARTBEAT_MS / 1000);
  });
});

describe('host connection slots', () => {
  it('are needed only when the pool could open more connections than the cap', () => {
    expect(hostCapCanBind(10, 20)).toBe(true);
    expect(hostCapCanBind(20 * WORKER_BATCH_SIZE - 1, 20)).toBe(true);
    expect(hostCapCanBind(20 * WORKER_BATCH_SIZE, 20)).toBe(false);
    expect(hostCapCanBind(FLEET_LIMITS.hostConnectionCap.max, FLEET_LIMITS.poolConcurrency.max)).toBe(true);
  });
});

describe('kept lease', () => {
  it('expires well before the next turn of the most frequent schedule', () => {
    const shortest = scheduleIntervalMs('rate(1 minute)')!;
    // Half the interval left for queue delays that differ between two turns of the mailbox.
    expect(TURN_BUDGET_MS + KEPT_LEASE_GRACE_MS).toBeLessThanOrEqual(shortest / 2);
  });
});
