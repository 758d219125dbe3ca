import { describe, expect, it } from 'vitest';
import { assessHealth, formatSeconds, messagesWaiting, type PollStatus } from '../../functions/poller/core/health.js';
import type { Checkpoint } from '../../functions/poller/core/types.js';

const NOW = new Date('2026-11-30T08:00:00Z');
const minutesAgo = (m: number) => new Date(NOW.getTime() - m * 60_000).toISOString();
const ok: PollStatus = {
  mailboxId: 'support',
  lastSuccessAt: minutesAgo(1),
  consecutiveFailures: 0,
  staleAfterSeconds: 180,
};
const checkpoint: Checkpoint = {
  mailboxId: 'support',
  folder: 'INBOX',
  uidValidity: '42',
  lastUid: 10,
  version: 3,
  updatedAt: minutesAgo(1),
};

describe('assessHealth', () => {
  it('healthy: a recent success, no failure since, the folder answers; waiting against the live UIDNEXT', () => {
    expect(
      assessHealth({
        status: ok,
        checkpoint,
        live: { ok: true, uidValidity: '42', uidNext: 14, messages: 13 },
        now: NOW,
      }),
    ).toEqual({ healthy: true, problems: [], waiting: 3 });
  });

  it('never polled', () => {
    expect(assessHealth({ now: NOW }).problems).toEqual([
      { code: 'NEVER_SUCCEEDED', message: 'no successful poll recorded' },
    ]);
  });

  it('stale after the recorded limit, or an explicit one', () => {
    expect(assessHealth({ status: { ...ok, lastSuccessAt: minutesAgo(3) }, now: NOW }).healthy).toBe(true);
    expect(assessHealth({ status: { ...ok, lastSuccessAt: minutesAgo(4) }, now: NOW }).problems).toEqual([
      { code: 'STALE', message: 'no successful poll for 4 min (limit 3 min)' },
    ]);
    expect(assessHealth({ status: ok, now: NOW, staleAfterSeconds: 30 }).problems[0]?.code).toBe('STALE');
    // Without any limit staleness is not judged.
    const { staleAfterSeconds: _none, ...unlimited } = ok;
    expect(assessHealth({ status: { ...unlimited, lastSuccessAt: minutesAgo(600) }, now: NOW }).healthy).toBe(true);
  });

  it('failing while the last run failed; healthy again after a later success', () => {
    const failed = { ...ok, lastFailureAt: minutesAgo(0.5), lastErrorCode: 'IMAP_AUTH_FAILED', consecutiveFailures: 1 };
    expect(assessHealth({ status: failed, now: NOW }).problems).toEqual([
      { code: 'FAILING', message: 'the last poll failed with IMAP_AUTH_FAILED' },
    ]);
    expect(
      assessHealth({ status: { ...failed, lastFailureAt: minutesAgo(2), consecutiveFailures: 0 }, now: NOW }).healthy,
    ).toBe(true);
  });

  it('unreachable when the live STATUS fails; no waiting count across a UIDVALIDITY change', () => {
    expect(
      assessHealth({ status: ok, live: { ok: false, errorCode: 'IMAP_UNREACHABLE', message: 'refused' }, now: NOW })
        .problems,
    ).toEqual([{ code: 'UNREACHABLE', message: 'live STATUS failed with IMAP_UNREACHABLE: refused' }]);
    expect(
      assessHealth({
        status: ok,
        checkpoint,
        live: { ok: true, uidValidity: '43', uidNext: 2, messages: 1 },
        now: NOW,
      }),
    ).toEqual({ healthy: true, problems: [] });
  });
});

describe('helpers', () => {
  it('fleet: backing off is a problem with the reason and the way out; an ended backoff is not', () => {
    const backoff = { paused: false, failures: 3, errorCode: 'IMAP_AUTH_FAILED', backoffUntil: minutesAgo(-4) };
    expect(assessHealth({ status: ok, now: NOW, schedule: backoff }).problems).toEqual([
      {
        code: 'BACKOFF',
        message: `not polled until ${minutesAgo(-4)} after 3 persistent failures (IMAP_AUTH_FAILED); fix the cause, then \`imap-event-source mailbox resume\` polls it at once`,
      },
    ]);
    expect(assessHealth({ status: ok, now: NOW, schedule: { ...backoff, backoffUntil: minutesAgo(1) } }).healthy).toBe(
      true,
    );
  });

  it('fleet: a paused mailbox is neither stale nor never-succeeded, but a failure still shows', () => {
    const paused = { paused: true, failures: 0 };
    expect(assessHealth({ now: NOW, schedule: paused })).toEqual({ healthy: true, problems: [] });
    expect(
      assessHealth({ status: { ...ok, lastSuccessAt: minutesAgo(600) }, now: NOW, schedule: paused }).healthy,
    ).toBe(true);
    const failed = { ...ok, consecutiveFailures: 1, lastFailureAt: minutesAgo(0), lastErrorCode: 'IMAP_AUTH_FAILED' };
    expect(assessHealth({ status: failed, now: NOW, schedule: paused }).problems.map((p) => p.code)).toEqual([
      'FAILING',
    ]);
  });

  it('messagesWaiting never goes below zero', () => {
    expect(messagesWaiting(11, 10)).toBe(0);
    expect(messagesWaiting(15, 10)).toBe(4);
    expect(messagesWaiting(5, 10)).toBe(0);
  });
  it('formatSeconds', () => {
    expect([45, 90, 3600, 5400, 200_000].map(formatSeconds)).toEqual([
      '45 s',
      '1 min 30 s',
      '1 h',
      '1 h 30 min',
      '2 d',
    ]);
  });
});
