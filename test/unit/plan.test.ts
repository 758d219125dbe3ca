import { describe, expect, it } from 'vitest';
import { canSkipSync, hasUidValidityChanged, planPoll, rescanStart } from '../../functions/poller/core/plan.js';
import type { Checkpoint, FolderStatus, StartAt } from '../../functions/poller/core/types.js';

const NOW: StartAt = { kind: 'now' };
const ALL: StartAt = { kind: 'all' };
const SINCE: StartAt = { kind: 'since', since: new Date('2026-11-01T00:00:00Z') };

function checkpoint(overrides: Partial<Checkpoint> = {}): Checkpoint {
  return {
    mailboxId: 'support',
    folder: 'INBOX',
    uidValidity: '1700000000',
    lastUid: 10,
    version: 3,
    updatedAt: '2026-11-20T08:00:00.000Z',
    recentMessageIds: [],
    ...overrides,
  };
}

function status(uidNext: number, uidValidity = '1700000000', messages = Math.max(0, uidNext - 1)): FolderStatus {
  return { uidValidity, uidNext, messages };
}

describe('planPoll without a checkpoint', () => {
  it.each<[string, StartAt, FolderStatus, unknown]>([
    [
      'now on a folder with mail remembers UIDNEXT-1',
      NOW,
      status(42),
      { kind: 'baseline', uidValidity: '1700000000', lastUid: 41 },
    ],
    [
      'now on an empty folder (UIDNEXT=1) remembers 0',
      NOW,
      status(1, '7', 0),
      { kind: 'baseline', uidValidity: '7', lastUid: 0 },
    ],
    [
      'now with a bogus UIDNEXT=0 never goes negative',
      NOW,
      status(0, '7', 0),
      { kind: 'baseline', uidValidity: '7', lastUid: 0 },
    ],
    ['all fetches from UID 1', ALL, status(42), { kind: 'fetch', uidValidity: '1700000000', fromUid: 1 }],
    [
      'all on an empty folder still fetches (creates the checkpoint)',
      ALL,
      status(1),
      { kind: 'fetch', uidValidity: '1700000000', fromUid: 1 },
    ],
    [
      'since fetches from UID 1 with the date',
      SINCE,
      status(42),
      { kind: 'fetch', uidValidity: '1700000000', fromUid: 1, since: new Date('2026-11-01T00:00:00Z') },
    ],
  ])('%s', (_name, startAt, folder, expected) => {
    expect(planPoll(undefined, folder, startAt)).toEqual(expected);
  });

  it('all plans carry no `since` key', () => {
    expect(planPoll(undefined, status(5), ALL)).not.toHaveProperty('since');
  });
});

describe('planPoll with a checkpoint', () => {
  it.each<[string, number, string]>([
    ['UIDNEXT-1 < lastUid (messages expunged, server reports less)', 5, 'idle'],
    ['UIDNEXT-1 == lastUid', 11, 'idle'],
    ['UIDNEXT-1 == lastUid+1', 12, 'fetch'],
    ['far ahead', 1000, 'fetch'],
  ])('%s -> %s', (_name, uidNext, kind) => {
    expect(planPoll(checkpoint({ lastUid: 10 }), status(uidNext), NOW).kind).toBe(kind);
  });

  it('is idle on an empty folder that was baselined at 0 (UIDNEXT=1)', () => {
    expect(planPoll(checkpoint({ lastUid: 0 }), status(1, '1700000000', 0), NOW)).toEqual({
      kind: 'idle',
      uidValidity: '1700000000',
    });
  });

  it('fetches from lastUid+1 whatever START_AT says (START_AT only applies without a checkpoint)', () => {
    for (const startAt of [NOW, ALL, SINCE]) {
      expect(planPoll(checkpoint({ lastUid: 10 }), status(20), startAt)).toEqual({
        kind: 'fetch',
        uidValidity: '1700000000',
        fromUid: 11,
      });
    }
  });

  it('carries a pending re-scan as `since`', () => {
    const plan = planPoll(checkpoint({ lastUid: 0, rescanSince: '2026-11-15T00:00:00.000Z' }), status(3), NOW);
    expect(plan).toEqual({
      kind: 'fetch',
      uidValidity: '1700000000',
      fromUid: 1,
      since: new Date('2026-11-15T00:00:00.000Z'),
    });
  });

  it('stays idle with a pending re-scan when nothing is new', () => {
    expect(planPoll(checkpoint({ lastUid: 5, rescanSince: '2026-11-15T00:00:00.000Z' }), status(6), NOW).kind).toBe(
      'idle',
    );
  });
});

describe('planPoll on a UIDVALIDITY change', () => {
  it('resets even when UIDNEXT says nothing is new, and keeps the previous checkpoint', () => {
    const previous = checkpoint({ lastUid: 10, lastInternalDate: '2026-11-19T10:00:00.000Z' });
    const plan = planPoll(previous, status(1, '1800000000', 0), NOW);
    expect(plan).toEqual({
      kind: 'reset',
      uidValidity: '1800000000',
      previous,
      since: new Date('2026-11-19T10:00:00.000Z'),
    });
  });

  it('compares UIDVALIDITY as strings (values beyond 2^31 included)', () => {
    expect(hasUidValidityChanged(checkpoint({ uidValidity: '4294967295' }), status(5, '4294967295'))).toBe(false);
    expect(hasUidValidityChanged(checkpoint({ uidValidity: '4294967295' }), status(5, '4294967294'))).toBe(true);
  });

  it.each<[string, Partial<Checkpoint>, string]>([
    // The last write time is the Lambda's clock: with the server's clock behind, mail would be skipped for good.
    ['no server time known: the whole folder (never the last write time)', {}, '1970-01-01T00:00:00.000Z'],
    [
      'published: the highest internalDate',
      { lastInternalDate: '2026-11-19T10:00:00.000Z' },
      '2026-11-19T10:00:00.000Z',
    ],
    ['pending re-scan only: its start', { rescanSince: '2026-11-10T00:00:00.000Z' }, '2026-11-10T00:00:00.000Z'],
    [
      'pending re-scan older than the last published: the re-scan start',
      { rescanSince: '2026-11-10T00:00:00.000Z', lastInternalDate: '2026-11-19T10:00:00.000Z' },
      '2026-11-10T00:00:00.000Z',
    ],
    [
      'last published older than the re-scan start: the older one',
      { rescanSince: '2026-11-19T00:00:00.000Z', lastInternalDate: '2026-11-18T10:00:00.000Z' },
      '2026-11-18T10:00:00.000Z',
    ],
    [
      'compares as dates, not strings (offsets)',
      { rescanSince: '2026-11-19T01:00:00+02:00', lastInternalDate: '2026-11-18T23:30:00.000Z' },
      '2026-11-18T23:00:00.000Z',
    ],
  ])('rescanStart: %s', (_name, overrides, expected) => {
    const c = checkpoint(overrides);
    expect(rescanStart(c).toISOString()).toBe(expected);
    expect(planPoll(c, status(20, '99'), NOW)).toMatchObject({ kind: 'reset', since: new Date(expected) });
  });
});

describe('canSkipSync', () => {
  it.each([
    [10, 1, true],
    [10, 10, true],
    [10, 11, true],
    [10, 12, false],
    [0, 1, true],
    [0, 2, false],
  ])('lastUid %d, UIDNEXT %d -> %s', (lastUid, uidNext, skip) => {
    expect(canSkipSync(checkpoint({ lastUid }), status(uidNext))).toBe(skip);
  });
});
