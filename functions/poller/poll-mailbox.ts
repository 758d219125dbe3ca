import { createHash, randomUUID } from 'node:crypto';
import { buildMessageDetail, buildResetDetail } from './core/build-detail.js';
import {
  advanceCheckpoint,
  emptyCheckpoint,
  isRescanCandidate,
  publishedPrefix,
  rebaseline,
} from './core/checkpoint.js';
import { fitDetailToBudget } from './core/event-size.js';
import { rawMessageKey } from './core/keys.js';
import { parseMessageContent } from './core/message-content.js';
import { planPoll } from './core/plan.js';
import type { MailboxSettings } from './core/settings.js';
import {
  type Checkpoint,
  DETAIL_TYPE_MESSAGE,
  DETAIL_TYPE_RESET,
  type EventEntry,
  type MessageSummary,
  type StartAt,
} from './core/types.js';
import { EventPublishError, ImapAuthError, ImapProtocolError } from './errors.js';
import { CLEANUP_MS, guardDeps, guardPort, HardStop, imapSilent, storeSilent } from './hard-stop.js';
import type {
  CheckpointStore,
  EventPublisher,
  LeaseStore,
  Log,
  MailboxGateway,
  MailboxSession,
  RawMessageStore,
  SettingsSource,
} from './ports.js';

export interface PollDeps {
  readonly settings: SettingsSource;
  readonly checkpoints: CheckpointStore;
  /** Mutual exclusion per mailbox; without it overlapping runs are still safe (conditional writes) but may publish twice. */
  readonly lease?: LeaseStore;
  readonly mailbox: MailboxGateway;
  readonly publisher: EventPublisher;
  /** When set, every message is streamed to it and the event carries `raw`. */
  readonly rawStore?: RawMessageStore;
  readonly log: Log;
  readonly now: () => Date;
}

export interface PollOptions {
  readonly mailboxId: string;
  readonly eventSource: string;
  readonly eventBusName: string;
  readonly startAt: StartAt;
  /** Epoch ms by which the run must have finished (the Lambda deadline). */
  readonly deadline: number;
  /** Time kept free before the deadline for the last checkpoint write and LOGOUT. @default 5_000 */
  readonly reserveMs?: number;
  /** Messages handled per run at most; the next run continues. @default 1_000 */
  readonly maxMessagesPerRun?: number;
  /** Messages per batch (one PutEvents round and one checkpoint write per batch). @default 10 */
  readonly batchSize?: number;
  /** Download bound per message, for the event content. @default 2 MiB */
  readonly maxMessageBytes?: number;
  /** Identifies this run as lease owner. @default random UUID */
  readonly runId?: string;
}

export type PollOutcome = 'idle' | 'baseline' | 'published' | 'partial' | 'reset' | 'skipped';

export interface PollSummary {
  mailboxId: string;
  folder: string | null;
  uidValidity: string | null;
  /** First UID considered (lastUid + 1), null when nothing was fetched. */
  fromUid: number | null;
  /** Checkpoint after the run (highest UID done). */
  toUid: number | null;
  published: number;
  /** Messages passed over without an event (re-scan: arrived before the start time or already published; expunged meanwhile). */
  skipped: number;
  outcome: PollOutcome;
  /** Why a `partial` run stopped early. */
  stoppedBy?: 'deadline' | 'maxMessagesPerRun';
  durationMs: number;
}

/**
 * One poll cycle: settings -> checkpoint -> STATUS -> plan -> (EXAMINE, list, fetch, publish, advance)* -> LOGOUT.
 * The checkpoint only moves over messages whose events EventBridge accepted (or that were deliberately passed over),
 * with a conditional write per batch. Throws the poller's errors; state stays consistent whatever fails.
 */
export async function pollMailbox(deps: PollDeps, options: PollOptions): Promise<PollSummary> {
  const started = deps.now().getTime();
  const runId = options.runId ?? randomUUID();
  const summary: PollSummary = {
    mailboxId: options.mailboxId,
    folder: null,
    uidValidity: null,
    fromUid: null,
    toUid: null,
    published: 0,
    skipped: 0,
    outcome: 'idle',
    durationMs: 0,
  };

  // A silent IMAP server or AWS endpoint must not hold the run past the Lambda deadline (socket and SDK timeouts
  // are longer than what may be left of it): every port call races a hard stop shortly before the deadline, which
  // leaves the rest of the reserve for LOGOUT and releasing the lease.
  const cleanupMs = Math.min(options.reserveMs ?? 5_000, CLEANUP_MS);
  const stop = new HardStop(options.deadline - cleanupMs, deps.now);
  const outer = deps;
  deps = guardDeps(deps, stop);

  if (deps.lease) {
    const lease = outer.lease!;
    const acquired = await stop.race(
      lease.acquire(options.mailboxId, runId, deps.now(), new Date(options.deadline + 30_000)),
      () => storeSilent('acquiring the lease'),
      // Acquired after we gave up: give it back rather than block the next runs until it expires.
      (late) => void (late && lease.release(options.mailboxId, runId).catch(() => {})),
    );
    if (!acquired) {
      deps.log.warn('Another run holds the lease of this mailbox; skipping this run', { mailboxId: options.mailboxId });
      summary.outcome = 'skipped';
      summary.durationMs = deps.now().getTime() - started;
      return summary;
    }
  }
  let session: MailboxSession | undefined;
  try {
    const settings = await deps.settings.load();
    summary.folder = settings.folder;
    if (settings.security === 'none') {
      deps.log.warn('Plaintext IMAP: the password and mail cross the network unencrypted (security "none")', {
        host: settings.host,
      });
    }
    const checkpoint = await deps.checkpoints.get(options.mailboxId, settings.folder);
    session = await stop.race(
      connectRefreshingOnAuthFailure(outer, settings),
      () => imapSilent(settings, 'login'),
      (late) => void late.close(), // logged in after we gave up: log out again
    );
    const imap = guardPort(session, stop, (method) => imapSilent(settings, method));
    const active = await imap.status(settings.folder);
    const plan = planPoll(checkpoint, active, options.startAt);
    summary.uidValidity = plan.uidValidity;
    summary.toUid = checkpoint?.lastUid ?? null;

    switch (plan.kind) {
      case 'idle':
        summary.outcome = 'idle';
        return summary;
      case 'baseline': {
        await deps.checkpoints.put(
          emptyCheckpoint(options.mailboxId, settings.folder, plan.uidValidity, plan.lastUid, deps.now()),
          0,
        );
        summary.outcome = 'baseline';
        summary.toUid = plan.lastUid;
        return summary;
      }
      case 'reset': {
        const detail = buildResetDetail({
          mailboxId: options.mailboxId,
          folder: settings.folder,
          previous: plan.previous,
          uidValidity: plan.uidValidity,
          rescanSince: plan.since.toISOString(),
          detectedAt: deps.now().toISOString(),
        });
        await publishAll(deps.publisher, [entry(options, DETAIL_TYPE_RESET, JSON.stringify(detail))]);
        const next = rebaseline(plan.previous, plan.uidValidity, plan.since, deps.now());
        await deps.checkpoints.put(next, plan.previous.version);
        deps.log.warn('UIDVALIDITY changed: published IMAP Mailbox Reset, re-scanning by arrival time', {
          previousUidValidity: plan.previous.uidValidity,
          uidValidity: plan.uidValidity,
          rescanSince: next.rescanSince,
        });
        await drain(deps, options, settings, imap, { ...next, version: plan.previous.version + 1 }, summary);
        if (!summary.stoppedBy) summary.outcome = 'reset';
        return summary;
      }
      case 'fetch': {
        const start =
          checkpoint ??
          ({
            ...emptyCheckpoint(options.mailboxId, settings.folder, plan.uidValidity, 0, deps.now()),
            ...(plan.since ? { rescanSince: plan.since.toISOString() } : {}),
          } satisfies Checkpoint);
        await drain(deps, options, settings, imap, start, summary);
        return summary;
      }
    }
    return summary;
  } finally {
    summary.durationMs = deps.now().getTime() - started;
    // Bounded, so that even after a cut-off call the run ends before the deadline.
    if (session) await stop.within(session.close(), options.deadline - cleanupMs / 2);
    if (outer.lease) {
      const released = await stop.within(
        outer.lease.release(options.mailboxId, runId).then(
          () => true,
          (err: unknown) => {
            deps.log.warn('Releasing the lease failed; it expires by itself', { errorName: (err as Error)?.name });
            return true;
          },
        ),
        options.deadline - cleanupMs / 4,
      );
      if (!released)
        deps.log.warn('Releasing the lease took too long; it expires by itself', { mailboxId: options.mailboxId });
    }
  }
}

/** Connects; on an authentication failure re-reads the settings once (a rotated password) and retries if they changed. */
async function connectRefreshingOnAuthFailure(deps: PollDeps, settings: MailboxSettings): Promise<MailboxSession> {
  try {
    return await deps.mailbox.connect(settings);
  } catch (err) {
    if (!(err instanceof ImapAuthError)) throw err;
    const fresh = await deps.settings.load({ fresh: true });
    if (fresh.password === settings.password && fresh.username === settings.username) throw err;
    deps.log.info('Login failed with cached settings; retrying once with the re-read secret');
    if (fresh.folder !== settings.folder) throw err; // the folder moved too: the next run starts with consistent settings
    return deps.mailbox.connect(fresh);
  }
}

/** Publishes new messages from `start` in batches, advancing the checkpoint after each. */
async function drain(
  deps: PollDeps,
  options: PollOptions,
  settings: MailboxSettings,
  session: MailboxSession,
  start: Checkpoint,
  summary: PollSummary,
): Promise<void> {
  const cap = options.maxMessagesPerRun ?? 1_000;
  const batchSize = options.batchSize ?? 10;
  const reserve = options.reserveMs ?? 5_000;
  const maxBytes = options.maxMessageBytes ?? 2 * 1024 * 1024;

  const opened = await session.open(settings.folder);
  if (opened.uidValidity !== start.uidValidity) {
    throw new ImapProtocolError(`UIDVALIDITY of "${settings.folder}" changed during the poll.`, {
      hint: 'nothing to do: the next poll handles the change.',
    });
  }
  const since = start.rescanSince ? new Date(start.rescanSince) : undefined;
  const listed = await session.listNew(start.lastUid + 1, cap, since);
  summary.fromUid = start.lastUid + 1;

  let checkpoint = start;
  let stored = start.version > 0;
  const messages = listed.messages;
  for (let i = 0; i < messages.length; i += batchSize) {
    if (deps.now().getTime() > options.deadline - reserve) {
      summary.stoppedBy = 'deadline';
      break;
    }
    const batch = messages.slice(i, i + batchSize);
    const prepared = await prepareBatch(deps, options, settings, session, checkpoint, batch, maxBytes);
    const entries = prepared.flatMap((p) => (p.entry ? [p.entry] : []));
    const result =
      entries.length > 0
        ? await deps.publisher.publish(entries)
        : { accepted: new Set<number>(), failed: new Map<number, string>() };
    const done = publishedPrefix(prepared, (p) => p.entryIndex === undefined || result.accepted.has(p.entryIndex));
    const next = advanceCheckpoint(
      checkpoint,
      done.map((p) => p.summary),
      deps.now(),
      { messageIdHash, passedOver: new Set(done.filter((p) => p.entryIndex === undefined).map((p) => p.uid)) },
    );
    if (done.length > 0) {
      await deps.checkpoints.put(next, checkpoint.version);
      checkpoint = { ...next, version: checkpoint.version + 1 };
      stored = true;
      summary.toUid = checkpoint.lastUid;
      for (const p of done) p.entryIndex === undefined ? summary.skipped++ : summary.published++;
    }
    if (done.length < prepared.length) {
      const codes = [...new Set(result.failed.values())].join(', ');
      throw new EventPublishError(
        `EventBridge did not accept the event of UID ${prepared[done.length]!.summary.uid} after retries (${codes || 'unknown'}).`,
        {
          hint: 'the checkpoint stopped before it; the next poll retries. Check the bus and the PutEvents quota if this repeats.',
        },
      );
    }
  }
  const finished = summary.stoppedBy === undefined && checkpoint.lastUid >= (messages.at(-1)?.uid ?? 0);
  if (finished && listed.complete) {
    // Every UID below UIDNEXT is now either published or gone: skip the gap on later polls; ends a re-scan.
    const next = advanceCheckpoint(checkpoint, [], deps.now(), { exhaustedUpTo: opened.uidNext - 1 });
    if (next.lastUid !== checkpoint.lastUid || next.rescanSince !== checkpoint.rescanSince || !stored) {
      await deps.checkpoints.put(next, checkpoint.version);
      summary.toUid = next.lastUid;
    }
  } else if (finished) {
    summary.stoppedBy = 'maxMessagesPerRun';
  }
  summary.outcome = summary.stoppedBy ? 'partial' : 'published';
}

interface PreparedMessage {
  readonly uid: number;
  readonly summary: MessageSummary;
  readonly entry?: EventEntry;
  /** Index into the batch's entries; undefined = passed over (no event). */
  readonly entryIndex?: number;
}

async function prepareBatch(
  deps: PollDeps,
  options: PollOptions,
  settings: MailboxSettings,
  session: MailboxSession,
  checkpoint: Checkpoint,
  batch: readonly MessageSummary[],
  maxBytes: number,
): Promise<PreparedMessage[]> {
  const wanted = batch.filter((m) => isRescanCandidate(checkpoint, m, messageIdHash));
  const sources = await session.fetchSources(
    wanted.map((m) => m.uid),
    { maxBytes },
  );
  const prepared: PreparedMessage[] = [];
  let entryIndex = 0;
  for (const summary of batch) {
    const source = sources.get(summary.uid);
    if (!source) {
      // Passed over by the re-scan, or expunged between listing and fetching: nothing to publish.
      prepared.push({ uid: summary.uid, summary });
      continue;
    }
    let raw: { bucket: string; key: string; size: number } | undefined;
    if (deps.rawStore) {
      const stream = await session.streamSource(summary.uid);
      if (stream)
        raw = await deps.rawStore.put(
          rawMessageKey(options.mailboxId, checkpoint.uidValidity, summary.uid),
          stream.stream,
          stream.size || summary.size,
        );
    }
    const content = await parseMessageContent(source.bytes, { partial: source.partial });
    const detail = fitDetailToBudget(
      buildMessageDetail({
        mailboxId: options.mailboxId,
        folder: settings.folder,
        uidValidity: checkpoint.uidValidity,
        summary,
        content,
        partial: source.partial,
        ...(raw ? { raw } : {}),
      }),
      { source: options.eventSource, detailType: DETAIL_TYPE_MESSAGE },
    );
    prepared.push({
      uid: summary.uid,
      summary,
      entry: { ...entry(options, DETAIL_TYPE_MESSAGE, JSON.stringify(detail)), uid: summary.uid },
      entryIndex: entryIndex++,
    });
  }
  return prepared;
}

function entry(options: PollOptions, detailType: string, detail: string): EventEntry {
  return { Source: options.eventSource, DetailType: detailType, Detail: detail, EventBusName: options.eventBusName };
}

async function publishAll(publisher: EventPublisher, entries: EventEntry[]): Promise<void> {
  const result = await publisher.publish(entries);
  if (result.accepted.size < entries.length) {
    throw new EventPublishError(
      `EventBridge did not accept the ${entries[0]?.DetailType ?? ''} event (${[...result.failed.values()].join(', ')}).`,
      {
        hint: 'the checkpoint is unchanged; the next poll retries.',
      },
    );
  }
}

/** Short, stable hash of a Message-ID (case-insensitive, trimmed) for the re-scan memory. */
export function messageIdHash(messageId: string): string {
  return createHash('sha256').update(messageId.trim().toLowerCase()).digest('base64url').slice(0, 16);
}
