/**
 * The interval of a poller's schedule, and the CloudWatch alarm windows derived from it, so the alarms can
 * fire at any schedule: one alarm period per interval, the alarm after N empty (or failing) periods.
 *
 * Pure: no CDK. `lib/config.ts` validates schedules with it at synth time; the construct builds the alarms
 * with it; the tests feed the windows to a small CloudWatch evaluator.
 */

/** The interval in minutes, or why none can be derived (the caller then needs an explicit interval). */
export type ScheduleInterval = { readonly minutes: number } | { readonly irregular: string };

const RATE = /^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$/;
const CRON = /^cron\((\S+) (\S+) (\S+) (\S+) (\S+)(?: (\S+))?\)$/;
const UNIT_MINUTES: Record<string, number> = { minute: 1, hour: 60, day: 1440 };

/**
 * `rate(N unit)` -> N in minutes. `cron(...)` -> the spacing of its runs when they are evenly spaced over
 * every day (day-of-month, month, day-of-week and year all `*` or `?`, and the same gap between all runs of a
 * day, across midnight too): `cron(0/15 * * * ? *)` -> 15, `cron(5 * * * ? *)` -> 60, `cron(0 0/6 * * ? *)` -> 360.
 * Anything else (business hours, week days, a day of the month) is irregular.
 */
export function scheduleInterval(expression: string): ScheduleInterval {
  const rate = RATE.exec(expression);
  if (rate) return { minutes: Number(rate[1]) * UNIT_MINUTES[rate[2]!.replace(/s$/, '')]! };
  const cron = CRON.exec(expression);
  if (!cron) return { irregular: `"${expression}" is neither rate(...) nor cron(...)` };
  const [, minute, hour, dayOfMonth, month, dayOfWeek, year = '*'] = cron as unknown as string[];
  const wildcard = (f: string) => f === '*' || f === '?';
  if (!wildcard(dayOfMonth!) || !wildcard(month!) || !wildcard(dayOfWeek!) || !wildcard(year)) {
    return { irregular: `${expression} does not run every day (day-of-month, month, day-of-week or year is set)` };
  }
  const minutes = expandField(minute!, 0, 59);
  const hours = expandField(hour!, 0, 23);
  if (!minutes || !hours) return { irregular: `${expression}: the minute or hour field is not understood` };
  const runs = hours.flatMap((h) => minutes.map((m) => h * 60 + m)).sort((a, b) => a - b);
  const gaps = runs.map((run, i) => (i + 1 < runs.length ? runs[i + 1]! : runs[0]! + 1440) - run);
  if (gaps.some((g) => g !== gaps[0])) {
    return {
      irregular: `${expression} runs at uneven gaps (${Math.min(...gaps)} to ${Math.max(...gaps)} minutes)`,
    };
  }
  return { minutes: gaps[0]! };
}

/** Values of one cron field: `*`, `n`, `a-b`, `*\/s`, `a/s`, `a-b/s` and comma lists of these; undefined otherwise. */
function expandField(field: string, min: number, max: number): number[] | undefined {
  const values = new Set<number>();
  for (const part of field.split(',')) {
    const m = /^(\*|\d+)(?:-(\d+))?(?:\/(\d+))?$/.exec(part);
    if (!m) return undefined;
    const from = m[1] === '*' ? min : Number(m[1]);
    const to = m[2] !== undefined ? Number(m[2]) : m[1] === '*' || m[3] !== undefined ? max : from;
    const step = m[3] !== undefined ? Number(m[3]) : 1;
    if (from < min || to > max || from > to || step < 1) return undefined;
    for (let v = from; v <= to; v += step) values.add(v);
  }
  return [...values];
}

/** One CloudWatch alarm window: `datapointsToAlarm` of the last `evaluationPeriods` periods must breach. */
export interface AlarmWindow {
  readonly periodSeconds: number;
  readonly evaluationPeriods: number;
  readonly datapointsToAlarm: number;
}

/** PutMetricAlarm's limits on period × evaluation periods: 1 day below a 1-hour period, 7 days otherwise. */
export function checkAlarmRange(window: AlarmWindow): string | undefined {
  const range = window.periodSeconds * window.evaluationPeriods;
  const limit = window.periodSeconds < 3600 ? 86_400 : 604_800;
  return range > limit
    ? `the alarm would look back ${range / 3600} h, CloudWatch allows ${limit / 3600} h for a ${window.periodSeconds / 60}-minute period`
    : undefined;
}

/**
 * "No successful poll for N intervals": one period per interval, all N periods empty. A healthy poller leaves
 * at most one period empty in a row (two runs in one period when the invocation time shifts), so N >= 2.
 * Fires between N and N+1 intervals after the last success.
 */
export function staleAlarmWindow(intervalMinutes: number, intervals: number): AlarmWindow {
  return { periodSeconds: intervalMinutes * 60, evaluationPeriods: intervals, datapointsToAlarm: intervals };
}

/**
 * "Failing persistently": a failed run in `runs` of the last `runs + 1` periods (one spare period for a
 * period without a run, or with two), missing data not breaching (no run is the staleness alarm's case).
 */
export function failingAlarmWindow(intervalMinutes: number, runs: number): AlarmWindow {
  return { periodSeconds: intervalMinutes * 60, evaluationPeriods: runs + 1, datapointsToAlarm: runs };
}

export const ALARM_DEFAULTS = {
  /** Intervals without a successful poll before the staleness alarm fires. */
  staleAfterIntervals: 3,
  /** Failed runs (within one more interval) before the failure alarm fires. */
  failingAfterRuns: 3,
} as const;
