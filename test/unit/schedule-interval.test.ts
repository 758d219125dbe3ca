import { describe, expect, it } from 'vitest';
import {
  checkAlarmRange,
  failingAlarmWindow,
  scheduleInterval,
  staleAlarmWindow,
} from '../../lib/schedule-interval.js';

describe('scheduleInterval', () => {
  it.each([
    ['rate(1 minute)', 1],
    ['rate(15 minutes)', 15],
    ['rate(2 hours)', 120],
    ['rate(1 day)', 1440],
    ['cron(0/15 * * * ? *)', 15],
    ['cron(*/5 * * * ? *)', 5],
    ['cron(* * * * ? *)', 1],
    ['cron(7 * * * ? *)', 60],
    ['cron(0,30 * * * ? *)', 30],
    ['cron(0 0/6 * * ? *)', 360],
    ['cron(30 12 * * ? *)', 1440],
    ['cron(0/10 * * * ?)', 10],
  ])('%s runs every %i minutes', (expression, minutes) => {
    expect(scheduleInterval(expression)).toEqual({ minutes });
  });

  it.each([
    ['cron(0/15 8-17 * * ? *)', 'uneven gaps (15 to 855 minutes)'],
    ['cron(0,10 * * * ? *)', 'uneven gaps (10 to 50 minutes)'],
    ['cron(0/15 * ? * MON-FRI *)', 'does not run every day'],
    ['cron(0 9 1 * ? *)', 'does not run every day'],
    ['cron(0/15 * * * ? 2027)', 'does not run every day'],
    ['cron(0/x * * * ? *)', 'not understood'],
    ['cron(75 * * * ? *)', 'not understood'],
    ['every minute', 'neither rate'],
  ])('%s is irregular: %s', (expression, reason) => {
    const result = scheduleInterval(expression);
    expect(result).toHaveProperty('irregular');
    expect((result as { irregular: string }).irregular).toContain(reason);
  });
});

describe('alarm windows', () => {
  it('stale: one period per interval, all N must be empty', () => {
    expect(staleAlarmWindow(15, 3)).toEqual({ periodSeconds: 900, evaluationPeriods: 3, datapointsToAlarm: 3 });
  });
  it('failing: N failed of N + 1 periods', () => {
    expect(failingAlarmWindow(1, 3)).toEqual({ periodSeconds: 60, evaluationPeriods: 4, datapointsToAlarm: 3 });
  });
  it("stays within PutMetricAlarm's look-back limits", () => {
    expect(checkAlarmRange(staleAlarmWindow(59, 24))).toBeUndefined(); // 23.6 h, period below 1 h
    expect(checkAlarmRange(staleAlarmWindow(59, 25))).toContain('CloudWatch allows 24 h');
    expect(checkAlarmRange(staleAlarmWindow(1440, 7))).toBeUndefined();
    expect(checkAlarmRange(staleAlarmWindow(1440, 8))).toContain('CloudWatch allows 168 h');
  });
});
