/**
 * One poll cycle on this machine with the Lambda's engine (pollMailbox), composed by the same root
 * (compose.ts: the same gateway, retry settings and lease semantics), with the checkpoint and the lease in a
 * local JSON file and events printed as JSON lines (or sent to EventBridge). Shared by `poll` and the demo.
 */
import { composeLocalPollerDeps } from '../functions/poller/compose.js';
import type { StartAt } from '../functions/poller/core/types.js';
import type { Log, SettingsSource } from '../functions/poller/ports.js';
import { type PollSummary, pollMailbox } from '../functions/poller/run/poll-mailbox.js';
import { DryRunCheckpointStore, FileCheckpointStore } from './file-checkpoint-store.js';
import { JsonLinesPublisher, type LineSink } from './json-lines-publisher.js';
import { quietAwsSdk } from './settings-source.js';

export interface LocalPollOptions {
  readonly settings: SettingsSource;
  readonly mailboxId: string;
  readonly stateFile: string;
  readonly dryRun?: boolean;
  readonly startAt: StartAt;
  readonly eventSource: string;
  /** Send to this EventBridge bus; without it, events go to `stdout` as JSON lines. */
  readonly bus?: string;
  readonly stdout: LineSink;
  readonly prettyEvents?: boolean;
  readonly log: Log;
  /** Budget for the whole cycle. */
  readonly timeoutMs: number;
  readonly maxMessagesPerRun?: number;
}

export async function pollLocally(options: LocalPollOptions): Promise<PollSummary> {
  const now = () => new Date();
  const fileStore = new FileCheckpointStore(options.stateFile);
  // With --bus the AWS SDK is loaded (by compose), without it never: it adds start-up time.
  if (options.bus) quietAwsSdk();
  const deps = await composeLocalPollerDeps(
    {
      settings: options.settings,
      checkpoints: options.dryRun ? new DryRunCheckpointStore(fileStore) : fileStore,
      ...(options.bus
        ? {}
        : { publisher: new JsonLinesPublisher(options.stdout, { now, pretty: options.prettyEvents ?? false }) }),
    },
    { log: options.log, now },
  );
  return pollMailbox(deps, {
    mailboxId: options.mailboxId,
    eventSource: options.eventSource,
    eventBusName: options.bus ?? 'local',
    startAt: options.startAt,
    deadline: Date.now() + options.timeoutMs,
    // A local run has no Lambda to hand over to: keep only a little time back.
    reserveMs: Math.min(5_000, options.timeoutMs / 10),
    ...(options.maxMessagesPerRun ? { maxMessagesPerRun: options.maxMessagesPerRun } : {}),
  });
}

/** One line for a human about what a poll did. */
export function describeSummary(s: PollSummary, options: { dryRun?: boolean; stateFile?: string } = {}): string {
  const where = `"${s.folder ?? '?'}"`;
  const range =
    s.fromUid !== null && s.toUid !== null && s.toUid >= s.fromUid ? ` (UIDs ${s.fromUid}..${s.toUid})` : '';
  const text: Record<PollSummary['outcome'], string> = {
    idle: `no new messages in ${where}`,
    baseline: `first poll of ${where}: remembered UID ${s.toUid ?? 0} as the starting point; only messages arriving from now on become events (--start-at all publishes the existing ones)`,
    published: `${s.published} event(s) from ${where}${range}`,
    partial: `${s.published} event(s) from ${where}${range}; stopped early (${s.stoppedBy ?? 'limit'}), the next poll continues`,
    reset: `UIDVALIDITY of ${where} changed: published an "IMAP Mailbox Reset" event and ${s.published} message event(s)`,
    skipped: `skipped: another poll holds the lease of this mailbox${options.stateFile ? ` in ${options.stateFile}` : ''} (it expires 30 s after that poll's --timeout)`,
  };
  const state = options.dryRun ? 'dry run: state not saved' : options.stateFile ? `state: ${options.stateFile}` : '';
  return `${text[s.outcome]}${s.skipped ? `, ${s.skipped} passed over` : ''} [${s.durationMs} ms${state ? `; ${state}` : ''}]`;
}
