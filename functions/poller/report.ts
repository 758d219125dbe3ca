/**
 * What one run tells the operator: one summary log line (all per-run figures as fields), the heartbeat
 * metric (the only custom metric, see core/telemetry.ts), and the mailbox's status item. Recording the
 * status never fails the run: a failed write is logged and the next run writes again.
 */

import { HEARTBEAT_METRIC, LOG_POLL_FAILED, LOG_POLL_FINISHED } from './contract/telemetry.js';
import { messagesWaiting } from './core/health.js';
import { describeError } from './errors.js';
import type { CallOptions, Log, PollStatusStore } from './ports.js';
import type { PollSummary } from './run/poll-mailbox.js';

/** The part of Powertools' Metrics the report uses. */
export interface HeartbeatSink {
  addMetric(name: string, unit: 'Count', value: number): void;
}

export interface RunReporter {
  readonly log: Log;
  readonly metrics: HeartbeatSink;
  readonly status?: PollStatusStore;
  readonly now: () => Date;
  readonly secretId?: string;
  readonly staleAfterSeconds?: number;
}

/** Messages waiting after the run (UIDNEXT − 1 − checkpoint), or null when the run did not read STATUS. */
export function waitingAfter(summary: PollSummary): number | null {
  return summary.uidNext === null || summary.toUid === null ? null : messagesWaiting(summary.uidNext, summary.toUid);
}

/** `options.signal` cancels the status write (the handler's own deadline: see REPORT_RESERVE_MS). */
export async function reportFinished(
  reporter: RunReporter,
  summary: PollSummary,
  options: CallOptions = {},
): Promise<void> {
  const waiting = waitingAfter(summary);
  reporter.log.info(LOG_POLL_FINISHED, { ...summary, waiting });
  if (summary.outcome === 'skipped') return; // another run holds the lease: neither a success nor a failure
  reporter.metrics.addMetric(HEARTBEAT_METRIC, 'Count', 1);
  // Only on the anomaly (a server restored from a backup): costs nothing while the server behaves.
  if (summary.uidNextBelowCheckpoint) reporter.metrics.addMetric('UidNextBelowCheckpoint', 'Count', 1);
  await record(reporter, () =>
    reporter.status?.recordSuccess(
      summary.mailboxId,
      {
        at: reporter.now(),
        outcome: summary.outcome,
        folder: summary.folder,
        published: summary.published,
        waiting,
        durationMs: summary.durationMs,
        ...common(reporter),
      },
      options,
    ),
  );
}

/** Logs the failure and records it; returns the error's code and secret-free message. */
export async function reportFailed(
  reporter: RunReporter,
  mailboxId: string,
  err: unknown,
  durationMs: number,
  options: CallOptions = {},
): Promise<{ code: string; message: string }> {
  const { code, message, retryable } = describeError(err);
  reporter.log.error(LOG_POLL_FAILED, {
    mailboxId,
    outcome: 'failed',
    errorCode: code,
    error: message,
    retryable,
    durationMs,
  });
  await record(reporter, () =>
    reporter.status?.recordFailure(
      mailboxId,
      { at: reporter.now(), errorCode: code, message, ...common(reporter) },
      options,
    ),
  );
  return { code, message };
}

function common(reporter: RunReporter): { secretId?: string; staleAfterSeconds?: number } {
  return {
    ...(reporter.secretId ? { secretId: reporter.secretId } : {}),
    ...(reporter.staleAfterSeconds !== undefined ? { staleAfterSeconds: reporter.staleAfterSeconds } : {}),
  };
}

async function record(reporter: RunReporter, write: () => Promise<void> | undefined): Promise<void> {
  try {
    await write();
  } catch (err) {
    reporter.log.warn('Recording the poll status failed; the next run records again', {
      errorCode: describeError(err).code,
    });
  }
}
