/**
 * START_AT: where a mailbox without checkpoint starts. One parser for cdk.json, the construct, the Lambda and the
 * CLI, so a value that passes `cdk synth` means the same in every run, on every host:
 * - `now` (default): only mail arriving from now on; `all`: everything in the folder (case-insensitive);
 * - an ISO 8601 date `2026-11-01` (midnight UTC) or date and time `2026-11-01T08:00`, `...T08:00:00`,
 *   `...T08:00:00.250` (a space instead of `T` also works), with an optional zone `Z`, `+01:00` or `+0100`.
 *   A time WITHOUT a zone is UTC (never the host's zone: the Lambda runs in UTC, a laptop does not).
 * Impossible dates and times (`2026-02-30`, `24:00`, `+25:00`) are rejected, not rolled over.
 * Pure: no clock, no time zone database.
 */
import type { StartAt } from '../core/types.js';

/** The rule in words, for error messages. */
export const START_AT_RULE =
  'must be "now", "all" or an ISO 8601 date such as 2026-11-01 or 2026-11-01T08:00:00Z (a time without a zone is UTC)';

const DATE_TIME =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:(Z)|([+-])(\d{2}):?(\d{2}))?)?$/;

/** Parses START_AT; undefined when invalid. Blank means the default, `now`. */
export function parseStartAt(value: string | undefined): StartAt | undefined {
  const v = (value ?? '').trim();
  if (v === '' || v.toLowerCase() === 'now') return { kind: 'now' };
  if (v.toLowerCase() === 'all') return { kind: 'all' };
  const since = parseIsoDateTime(v);
  return since ? { kind: 'since', since } : undefined;
}

/** The instant an ISO 8601 date or date-time names (zone-less = UTC); undefined when malformed or impossible. */
export function parseIsoDateTime(value: string): Date | undefined {
  const m = DATE_TIME.exec(value);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4], m[5], m[6]].map((p) => Number(p ?? 0)) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const millis = Math.floor(Number(`0.${m[7] ?? '0'}`) * 1000);
  const offsetHours = Number(m[10] ?? 0);
  const offsetMinutes = Number(m[11] ?? 0);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  if (hour > 23 || minute > 59 || second > 59 || offsetHours > 23 || offsetMinutes > 59) return undefined;
  const sign = m[9] === '-' ? -1 : 1;
  return new Date(
    utc(year, month - 1, day, hour, minute, second, millis) - sign * (offsetHours * 60 + offsetMinutes) * 60_000,
  );
}

function daysInMonth(year: number, month: number): number {
  return new Date(utc(year, month, 0)).getUTCDate();
}

/** Date.UTC without its two-digit-year rule (it reads 0099 as 1999). */
function utc(year: number, monthIndex: number, day: number, hour = 0, minute = 0, second = 0, ms = 0): number {
  const d = new Date(Date.UTC(2000, 0, 1, hour, minute, second, ms));
  d.setUTCFullYear(year, monthIndex, day);
  return d.getTime();
}
