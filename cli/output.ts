/**
 * How the CLI talks to people: step lines (`✔ TLS  ...`, `✖ TLS  ...` + `Fix: ...`), failure paragraphs,
 * and a human log on stderr. Results go to stdout, logs and diagnostics to stderr.
 * Nothing here ever prints a password or a secret value: callers pass only descriptions.
 */
import { describeError, isImapEventSourceError, type SettingsValidationError } from '../functions/poller/errors.js';
import type { Log } from '../functions/poller/ports.js';

/** An output stream: process.stdout/stderr, or a test's capture. Calls `callback` once the text is written. */
export interface Writer {
  write(text: string, callback?: (err?: Error | null) => void): unknown;
}

const useColor = (stream: Writer) => !process.env.NO_COLOR && (stream as { isTTY?: boolean }).isTTY === true;
const paint = (stream: Writer, code: string, text: string) => (useColor(stream) ? `\x1b[${code}m${text}\x1b[0m` : text);

export type StepStatus = 'ok' | 'fail' | 'warn' | 'skip' | 'info';
const MARK: Record<StepStatus, [string, string]> = {
  ok: ['✔', '32'],
  fail: ['✖', '31'],
  warn: ['⚠', '33'],
  skip: ['-', '2'],
  info: ['·', '2'],
};
/** Width of the step label column: the longest label is STARTTLS. */
const LABEL_WIDTH = 8;

/** One line of a step-by-step report, e.g. `✔ TCP       connected to 127.0.0.1:993 (2 ms)`. */
export function printStep(out: Writer, status: StepStatus, label: string, text: string, fix?: string): void {
  const [mark, color] = MARK[status];
  out.write(`${paint(out, color, mark)} ${label.padEnd(LABEL_WIDTH)}  ${text}\n`);
  if (fix) out.write(`  ${paint(out, '1', 'Fix:')} ${fix}\n`);
}

/** `✖ SETTINGS  <origin> is invalid (N problems):`, one problem per line, then the fix. */
export function printInvalidSettings(out: Writer, origin: string, err: SettingsValidationError): void {
  const n = err.problems.length;
  printStep(out, 'fail', 'SETTINGS', `${origin} is invalid (${n} problem${n === 1 ? '' : 's'}):`);
  for (const p of err.problems) out.write(`    - ${p}\n`);
  out.write(`  ${paint(out, '1', 'Fix:')} ${err.hint}\n`);
}

/**
 * The one-paragraph explanation of a failure, for stderr: what happened, and the fix.
 * Stack traces only with --debug.
 */
export function printFailure(err: unknown, out: Writer, options: { debug?: boolean } = {}): void {
  if (isImapEventSourceError(err)) {
    out.write(`${paint(out, '31', '✖')} ${err.message} [${err.code}]\n`);
    if (err.hint) out.write(`  ${paint(out, '1', 'Fix:')} ${err.hint}\n`);
  } else {
    const { message } = describeError(err);
    out.write(`${paint(out, '31', '✖')} Unexpected error: ${message}\n`);
    out.write(`  This is probably a bug in imap-event-source; run again with --debug and report the output.\n`);
  }
  if (options.debug && err instanceof Error && err.stack) {
    out.write(`${err.stack}\n`);
    let cause = err.cause;
    while (cause instanceof Error) {
      out.write(`Caused by: ${cause.stack ?? cause.message}\n`);
      cause = cause.cause;
    }
  }
}

/** A usage error (bad options): exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Human-readable log lines on stderr: `12:00:01 info  poll finished  published=3 folder=INBOX`. */
export class StderrLog implements Log {
  constructor(
    private readonly out: Writer = process.stderr,
    private readonly options: { debug?: boolean; quiet?: boolean } = {},
  ) {}

  debug(message: string, ...extra: Record<string, unknown>[]): void {
    if (this.options.debug) this.line('debug', '2', message, extra);
  }
  info(message: string, ...extra: Record<string, unknown>[]): void {
    if (!this.options.quiet) this.line('info', '36', message, extra);
  }
  warn(message: string, ...extra: Record<string, unknown>[]): void {
    this.line('warn', '33', message, extra);
  }
  error(message: string, ...extra: Record<string, unknown>[]): void {
    this.line('error', '31', message, extra);
  }

  private line(level: string, color: string, message: string, extra: Record<string, unknown>[]): void {
    const time = new Date().toISOString().slice(11, 19);
    const fields = Object.entries(Object.assign({}, ...extra) as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${formatValue(v)}`)
      .join(' ');
    this.out.write(
      `${paint(this.out, '2', time)} ${paint(this.out, color, level.padEnd(5))} ${message}${fields ? `  ${paint(this.out, '2', fields)}` : ''}\n`,
    );
  }
}

function formatValue(v: unknown): string {
  if (typeof v === 'string') return /[\s"=]/.test(v) || v === '' ? JSON.stringify(v) : v;
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Error) return JSON.stringify(v.message);
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x));
}
