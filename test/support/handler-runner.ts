/**
 * Runs the real Lambda handler once in this (child) process, as the Lambda runtime would, and reports what the run
 * cost: peak RSS, time to settle, and what it left open. For tests that must measure memory (a 256 MB Lambda) without
 * the test runner's own heap in the figure. Bundled with esbuild like the Lambda asset (run-handler.ts does it), then
 *
 *   node runner.cjs      (environment: the handler's, plus RUNNER_*)
 *
 * RUNNER_REMAINING_MS: what getRemainingTimeInMillis answers (default 60000).
 * RUNNER_IMAP_PORT: the IMAP server's port; sockets to it still open after the handler returned are counted.
 * The handler's log lines go to stdout as usual; the last line is `RUNNER_REPORT <json>` (see RunnerReport).
 */
import { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { handler, resetContainer } from '../../functions/poller/handler.js';
import { peakRss } from './peak-rss.js';
import { REPORT_PREFIX, type RunnerReport } from './run-handler.js';

async function main(): Promise<void> {
  const remainingMs = Number(process.env.RUNNER_REMAINING_MS ?? 60_000);
  const imapPort = Number(process.env.RUNNER_IMAP_PORT ?? 0);
  const started = performance.now();
  let report: Pick<RunnerReport, 'result' | 'error'>;
  try {
    report = { result: await handler({}, { getRemainingTimeInMillis: () => remainingMs }) };
  } catch (err) {
    const e = err as Error;
    report = { error: { name: e.name, message: e.message } };
  }
  const settledMs = Math.round(performance.now() - started);
  const openImapSockets = () =>
    (process as unknown as { _getActiveHandles(): unknown[] })
      ._getActiveHandles()
      .filter((h) => h instanceof Socket && !h.destroyed && (h.remotePort === imapPort || h.localPort === imapPort))
      .length;
  const imapSockets = openImapSockets();
  const resources: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) resources[r] = (resources[r] ?? 0) + 1;
  // The session a successful run kept for the next invocation is closed with the container; nothing else stays.
  resetContainer();
  for (let waited = 0; openImapSockets() > 0 && waited < 5_000; waited += 50) await sleep(50);
  const imapSocketsAfterReset = openImapSockets();
  const full: RunnerReport = {
    ...report,
    settledMs,
    peakRssMb: Math.round(peakRss() / 1024 / 1024),
    imapSockets,
    imapSocketsAfterReset,
    resources,
  };
  process.stdout.write(`\n${REPORT_PREFIX}${JSON.stringify(full)}\n`, () => process.exit(0));
}

void main();
