/**
 * The run: one poll cycle of one mailbox. Settings -> checkpoint beside connect -> STATUS -> plan; nothing new: done,
 * without a write (an idle poll takes no lease: it changes nothing). Else lease -> the checkpoint read again -> plan
 * -> the drain. Then LOGOUT (or, in a warm container that keeps its session, no LOGOUT: session-keeper.ts) beside
 * the lease release, however it ends. Every call is bounded by the run's deadline. Throws the poller's errors; state
 * stays consistent whatever fails.
 */
import { randomUUID } from 'node:crypto';
import { buildResetDetail } from '../core/build-detail.js';
import { advanceCheckpoint, emptyCheckpoint, rebaseline } from '../core/checkpoint.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../core/imap-limits.js';
import { isUidNextBelowCheckpoint } from '../core/imap-numbers.js';
import { hasUidValidityChanged, planPoll } from '../core/plan.js';
import { type MailboxSettings, sameCredentials } from '../core/settings.js';
import {
  type Checkpoint,
  DETAIL_TYPE_RESET,
  type FolderStatus,
  type MessageSummary,
  type StartAt,
} from '../core/types.js';
import { EventPublishError, ImapAuthError, ImapProtocolError } from '../errors.js';
import type { MailboxSession, PollDeps } from '../ports.js';
import { Deadline, imapSilent, publisherSilent, secretsSilent, storeSilent } from './deadline.js';
import { type DrainResult, drain } from './drain.js';
import { type EventTarget, eventEntry, messageIdHash } from './prepare.js';
import { KEPT_SESSION_CHECK_MS } from './session-keeper.js';
import { TimedSession } from './timed-session.js';

export interface PollOptions {
  readonly mailboxId: string;
  readonly eventSource: string;
  readonly eventBusName: string;
  readonly startAt: StartAt;
  /** Epoch ms by which the run must have finished (the Lambda deadline). */
  readonly deadline: number;
  /** Time kept free before the deadline for the last checkpoint write and LOGOUT; capped at 2/3 of the run. @default 5_000 */
  readonly reserveMs?: number;
  /** Messages handled per run at most; the next run continues. @default 1_000 */
  readonly maxMessagesPerRun?: number;
  /** Messages per batch (one FETCH of their sources; their PutEvents calls run concurrently). @default 100 */
  readonly batchSize?: number;
  /** Source bytes per batch at most (by RFC822.SIZE, each capped at maxMessageBytes): bounds memory. @default 4 MiB */
  readonly batchBytes?: number;
  /**
   * The checkpoint is written once this many messages are done since the last write, or `checkpointEveryMs` after
   * it, and when the run ends: what a crash can make the next run publish again (docs/events.md). @default 500
   */
  readonly checkpointEveryMessages?: number;
  /** @default 5_000 */
  readonly checkpointEveryMs?: number;
  /** Download bound per message, for the event content. @default 2 MiB */
  readonly maxMessageBytes?: number;
  /** Identifies this run as lease owner. @default random UUID */
  readonly runId?: string;
  /**
   * Leave the lease to expire instead of releasing it when the run ends (one table write per run instead of two);
   * only for callers whose next run of the mailbox comes after the lease expired, or who release it themselves
   * (fleet mode's turns: a short deadline, the next turn a schedule interval later). @default false
   */
  readonly keepLease?: boolean;
  /** How long the lease outlives the deadline. @default LEASE_GRACE_MS (30 s) */
  readonly leaseGraceMs?: number;
}

export type PollOutcome = 'idle' | 'baseline' | 'published' | 'partial' | 'reset' | 'skipped';

export interface PollSummary {
  readonly mailboxId: string;
  readonly folder: string | null;
  readonly uidValidity: string | null;
  /** First UID considered (lastUid + 1), null when nothing was fetched. */
  readonly fromUid: number | null;
  /** Checkpoint after the run (highest UID done). */
  readonly toUid: number | null;
  /** UIDNEXT of the folder's STATUS at the start of the run; null when the run did not get that far. */
  readonly uidNext: number | null;
  readonly published: number;
  /** Messages passed over without an event (re-scan: arrived before the start time or already published; expunged meanwhile). */
  readonly skipped: number;
  readonly outcome: PollOutcome;
  /** Why a `partial` run stopped early. */
  readonly stoppedBy?: 'deadline' | 'maxMessagesPerRun';
  /** UIDNEXT was below the checkpoint (a server restored from a backup, or a broken one): logged as a warning. */
  readonly uidNextBelowCheckpoint?: true;
  /** How the run reached the folder: a new connection and login, or the session an earlier run of this container kept. */
  readonly imapSession?: 'new' | 'reused';
  readonly durationMs: number;
}

/** What a run found and did, before its duration is known. */
type RunResult = Omit<PollSummary, 'mailboxId' | 'durationMs'>;

/**
 * One poll cycle: settings -> checkpoint -> STATUS -> plan -> (with mail: lease -> checkpoint again -> plan ->
 * (EXAMINE, list, fetch, publish, advance)*) -> LOGOUT (or the session kept for the next run).
 * The checkpoint only moves over messages whose events EventBridge accepted (or that were deliberately passed over),
 * with a conditional write per batch.
 */
export async function pollMailbox(deps: PollDeps, options: PollOptions): Promise<PollSummary> {
  const started = deps.now().getTime();
  const deadline = Deadline.start({
    at: options.deadline,
    now: deps.now,
    ...(options.reserveMs !== undefined ? { reserveMs: options.reserveMs } : {}),
    ...(options.leaseGraceMs !== undefined ? { leaseGraceMs: options.leaseGraceMs } : {}),
  });
  const summary = (result: RunResult): PollSummary => ({
    mailboxId: options.mailboxId,
    ...result,
    durationMs: deps.now().getTime() - started,
  });
  try {
    const lease = new RunLease(deps, options, deadline, options.runId ?? randomUUID());
    const closing: Closing = [];
    try {
      return summary(await run(deps, options, deadline, lease, closing));
    } finally {
      // The lease is released while the LOGOUT runs: the run has written and published all it will, and LOGOUT
      // changes nothing (a next run may log in while this session is still logging out).
      await Promise.all([...closing, lease.end()]);
    }
  } finally {
    deadline.end();
  }
}

/**
 * The lease of the mailbox (a DynamoDB item: two runs never work on one mailbox at the same time), taken only once
 * the run has something to change (events to publish, a checkpoint to write): an idle poll reads the checkpoint and
 * STATUS and writes nothing. Released when the run ends, beside LOGOUT, unless `keepLease`.
 */
class RunLease {
  private held = false;

  constructor(
    private readonly deps: PollDeps,
    private readonly options: PollOptions,
    private readonly deadline: Deadline,
    private readonly runId: string,
  ) {}

  /** Whether there is a lease to take (without one, the conditional checkpoint writes alone keep runs apart). */
  get exists(): boolean {
    return this.deps.lease !== undefined;
  }

  /** Takes the lease (again: a no-op); false, with a warning, when another run holds it. */
  async take(): Promise<boolean> {
    const lease = this.deps.lease;
    if (!lease || this.held) return true;
    const { mailboxId } = this.options;
    this.held = await this.deadline.call(
      (signal) => lease.acquire(mailboxId, this.runId, this.deps.now(), this.deadline.leaseExpiresAt(), { signal }),
      () => storeSilent('acquiring the lease'),
      // Acquired after we gave up: give it back rather than block the next runs until it expires.
      (late) => void (late && lease.release(mailboxId, this.runId).catch(() => {})),
    );
    if (!this.held) this.deps.log.warn('Another run holds the lease of this mailbox; skipping this run', { mailboxId });
    return this.held;
  }

  /** Gives the lease back if the run took it (bounded by the deadline's cleanup share; a failure is only logged). */
  async end(): Promise<void> {
    const lease = this.deps.lease;
    if (!lease || !this.held || this.options.keepLease) return;
    const { mailboxId } = this.options;
    const released = await this.deadline.cleanup(
      (signal) =>
        lease.release(mailboxId, this.runId, { signal }).catch((err: unknown) => {
          this.deps.log.warn('Releasing the lease failed; it expires by itself', { errorName: (err as Error)?.name });
        }),
      1 / 4,
    );
    if (!released) this.deps.log.warn('Releasing the lease took too long; it expires by itself', { mailboxId });
  }
}

/** LOGOUTs still running when the run's work is done (each bounded by Deadline.cleanup); pollMailbox awaits them. */
type Closing = Promise<unknown>[];

const NOTHING: RunResult = {
  folder: null,
  uidValidity: null,
  fromUid: null,
  toUid: null,
  uidNext: null,
  published: 0,
  skipped: 0,
  outcome: 'idle',
};

/** The run: settings, checkpoint, session, plan, and (taking the lease) the drain. */
async function run(
  deps: PollDeps,
  options: PollOptions,
  deadline: Deadline,
  lease: RunLease,
  closing: Closing,
): Promise<RunResult> {
  const settings = await deadline.call((signal) => deps.settings.load({ signal }), secretsSilent);
  if (settings.security === 'none') {
    deps.log.warn('Plaintext IMAP: the password and mail cross the network unencrypted (security "none")', {
      host: settings.host,
    });
  }
  const reading = readCheckpoint(deps, options, deadline, settings);
  reading.catch(() => undefined); // awaited below on every path; never an unhandled rejection meanwhile
  const kept = deps.sessions?.take(settings, { signal: deadline.signal });
  if (kept) {
    const tracked = trackingChanges(deps);
    try {
      return await onSession(
        tracked.deps,
        options,
        deadline,
        reading,
        { session: kept, settings },
        'reused',
        lease,
        closing,
      );
    } catch (err) {
      // Any doubt about a kept session (the server ended it, its token expired, it went silent): once more on a new
      // connection, as long as this run has changed nothing yet (nothing published, no checkpoint written). A failed
      // checkpoint read is no doubt about the session (onSession kept it for the next run).
      if (!(await succeeds(reading)) || tracked.changed() || deadline.signal.aborted) throw err;
      deps.log.info('The kept IMAP session failed; retrying on a new connection', { errorName: (err as Error)?.name });
      await Promise.all(closing.splice(0)); // one connection at a time: the failed one is closed first
    }
  }
  // A new connection: the checkpoint is read while connecting (neither needs the other). Its failure still comes
  // first, as when it was read before connecting; a session logged in meanwhile is logged out again.
  const connecting = deadline.call(
    (signal) => connectRefreshingOnAuthFailure(deps, settings, signal),
    () => imapSilent(settings, 'login'),
    (late) => void late.session.close(), // logged in after we gave up: log out again
  );
  // Awaited below, after the read: a connect failing first must not be an unhandled rejection meanwhile.
  connecting.catch(() => undefined);
  const checkpoint = await reading.catch((err: unknown) => {
    connecting.then(
      (c) => c.session.close(),
      () => undefined,
    );
    throw err;
  });
  const connected = await connecting;
  return onSession(deps, options, deadline, Promise.resolve(checkpoint), connected, 'new', lease, closing);
}

function readCheckpoint(
  deps: PollDeps,
  options: PollOptions,
  deadline: Deadline,
  settings: MailboxSettings,
): Promise<Checkpoint | undefined> {
  return deadline.call(
    (signal) => deps.checkpoints.get(options.mailboxId, settings.folder, { signal }),
    () => storeSilent('reading the checkpoint'),
  );
}

/**
 * The run on one session; then LOGOUT, or (with a SessionKeeper, after a run without an error or hard stop) the
 * session kept for the next run of this container.
 */
async function onSession(
  deps: PollDeps,
  options: PollOptions,
  deadline: Deadline,
  reading: Promise<Checkpoint | undefined>,
  { session, settings }: { session: MailboxSession; settings: MailboxSettings },
  how: 'new' | 'reused',
  lease: RunLease,
  closing: Closing,
): Promise<RunResult> {
  let kept = false;
  const keeper = deps.sessions;
  const keep = async () => {
    if (!keeper || deadline.signal.aborted) return;
    kept = true; // keep() closes the session itself when it cannot be kept
    await deadline.cleanup(() => keeper.keep(settings, session), 1 / 2);
  };
  try {
    // A kept session's first command is its check: when it does not answer within the budget, the run must still
    // have time to log in anew.
    const timed = new TimedSession(session, deadline, settings, {
      ...(how === 'reused' ? { firstCallMs: deadline.budget(KEPT_SESSION_CHECK_MS) } : {}),
    });
    // On a kept session, STATUS is sent while the checkpoint is still being read: a warm idle poll is one round trip
    // on each. (On a new connection the checkpoint was read while connecting.)
    const asking = timed.status(settings.folder);
    asking.catch(() => undefined); // awaited below on every path
    const checkpoint = await reading.catch(async (err: unknown) => {
      // The table failed, not the session: once STATUS has answered, the session is kept for the next run.
      if (await succeeds(asking)) await keep();
      throw err;
    });
    const result = await planAndDrain(deps, options, deadline, settings, checkpoint, await asking, timed, lease);
    await keep();
    return { ...result, imapSession: how };
  } finally {
    // Bounded, so that even after a cut-off call the run ends before the deadline; awaited by pollMailbox, beside
    // the lease release (or, after a kept session failed, beside the retry on a new connection).
    if (!kept) closing.push(deadline.cleanup(() => session.close(), 1 / 2));
  }
}

/** Whether `promise` fulfils (after it settled). */
function succeeds(promise: Promise<unknown>): Promise<boolean> {
  return promise.then(
    () => true,
    () => false,
  );
}

/** `deps` with a flag raised when the run publishes or writes anything (a retry is safe only before that). */
function trackingChanges(deps: PollDeps): { deps: PollDeps; changed: () => boolean } {
  let changed = false;
  const changing = <A extends unknown[], R>(call: (...args: A) => R) => {
    return (...args: A): R => {
      changed = true;
      return call(...args);
    };
  };
  const { publisher, checkpoints, rawStore } = deps;
  return {
    deps: {
      ...deps,
      publisher: { publish: changing(publisher.publish.bind(publisher)) },
      checkpoints: { get: checkpoints.get.bind(checkpoints), put: changing(checkpoints.put.bind(checkpoints)) },
      ...(rawStore ? { rawStore: { put: changing(rawStore.put.bind(rawStore)) } } : {}),
    },
    changed: () => changed,
  };
}

async function planAndDrain(
  deps: PollDeps,
  options: PollOptions,
  deadline: Deadline,
  settings: MailboxSettings,
  read: Checkpoint | undefined,
  status: FolderStatus,
  session: TimedSession,
  lease: RunLease,
): Promise<RunResult> {
  let checkpoint = read;
  let plan = planPoll(checkpoint, status, options.startAt);
  if (plan.kind !== 'idle' && lease.exists) {
    if (!(await lease.take())) {
      return {
        ...NOTHING,
        folder: settings.folder,
        uidValidity: status.uidValidity,
        uidNext: status.uidNext,
        outcome: 'skipped',
      };
    }
    // A run that held the lease until now may have moved the checkpoint since it was read: plan on what it wrote.
    checkpoint = await readCheckpoint(deps, options, deadline, settings);
    plan = planPoll(checkpoint, status, options.startAt);
  }
  const restored = checkpoint !== undefined && uidNextBelowCheckpoint(deps, checkpoint, status);
  const before: RunResult = {
    ...NOTHING,
    folder: settings.folder,
    uidValidity: plan.uidValidity,
    uidNext: status.uidNext,
    toUid: checkpoint?.lastUid ?? null,
    ...(restored ? { uidNextBelowCheckpoint: true as const } : {}),
  };
  const target: EventTarget = {
    mailboxId: options.mailboxId,
    folder: settings.folder,
    eventSource: options.eventSource,
    eventBusName: options.eventBusName,
  };
  const drainFrom = async (start: Checkpoint): Promise<DrainResult> =>
    drain({
      start,
      target,
      session,
      deadline,
      limits: {
        maxMessagesPerRun: options.maxMessagesPerRun ?? 1_000,
        batchSize: options.batchSize ?? 100,
        batchBytes: options.batchBytes ?? 4 * 1024 * 1024,
        checkpointEveryMessages: options.checkpointEveryMessages ?? 500,
        checkpointEveryMs: options.checkpointEveryMs ?? 5_000,
        maxMessageBytes: options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      },
      checkpoints: deps.checkpoints,
      publisher: deps.publisher,
      ...(deps.rawStore ? { rawStore: deps.rawStore } : {}),
      ...(deps.detailer ? { detailer: deps.detailer } : {}),
      now: deps.now,
    });
  const write = (next: Checkpoint, expectedVersion: number) =>
    deadline.call(
      (signal) => deps.checkpoints.put(next, expectedVersion, { signal }),
      () => storeSilent('writing the checkpoint'),
    );

  switch (plan.kind) {
    case 'idle':
      return before;
    case 'baseline': {
      // The newest message's INTERNALDATE is the server's time basis for a later re-scan (never the Lambda clock).
      const newest = plan.lastUid > 0 ? await newestMessage(session, settings.folder, plan.lastUid) : undefined;
      const empty = emptyCheckpoint(options.mailboxId, settings.folder, plan.uidValidity, plan.lastUid, deps.now());
      const remembered = newest && {
        uid: newest.uid,
        internalDate: newest.internalDate,
        messageId: newest.envelope?.messageId,
      };
      await write(remembered ? advanceCheckpoint(empty, [remembered], deps.now(), { messageIdHash }) : empty, 0);
      return { ...before, outcome: 'baseline', toUid: plan.lastUid };
    }
    case 'reset': {
      // STATUS alone is not enough to tell subscribers the mailbox was reset: EXAMINE must confirm it.
      const confirmed = await session.open(settings.folder);
      if (confirmed.uidValidity !== plan.uidValidity) {
        throw new ImapProtocolError(
          `The IMAP server reported UIDVALIDITY ${plan.uidValidity} for "${settings.folder}" in STATUS but ${confirmed.uidValidity} on EXAMINE.`,
          { hint: 'nothing was published and the checkpoint did not move; the next poll checks again.' },
        );
      }
      const detail = buildResetDetail({
        mailboxId: options.mailboxId,
        folder: settings.folder,
        previous: plan.previous,
        uidValidity: plan.uidValidity,
        rescanSince: plan.since.toISOString(),
        detectedAt: deps.now().toISOString(),
      });
      const entry = eventEntry(target, DETAIL_TYPE_RESET, JSON.stringify(detail));
      const result = await deadline.call((signal) => deps.publisher.publish([entry], { signal }), publisherSilent);
      if (result.accepted.size < 1) {
        throw new EventPublishError(
          `EventBridge did not accept the ${DETAIL_TYPE_RESET} event (${[...result.failed.values()].join(', ')}).`,
          { hint: 'the checkpoint is unchanged; the next poll retries.' },
        );
      }
      const next = rebaseline(plan.previous, plan.uidValidity, plan.since, deps.now());
      await write(next, plan.previous.version);
      deps.log.warn('UIDVALIDITY changed: published IMAP Mailbox Reset, re-scanning by arrival time', {
        previousUidValidity: plan.previous.uidValidity,
        uidValidity: plan.uidValidity,
        rescanSince: next.rescanSince,
      });
      const drained = await drainFrom({ ...next, version: plan.previous.version + 1 });
      return withDrain(before, drained, drained.stoppedBy ? 'partial' : 'reset');
    }
    case 'fetch': {
      const start =
        checkpoint ??
        ({
          ...emptyCheckpoint(options.mailboxId, settings.folder, plan.uidValidity, 0, deps.now()),
          ...(plan.since ? { rescanSince: plan.since.toISOString() } : {}),
        } satisfies Checkpoint);
      const drained = await drainFrom(start);
      return withDrain(before, drained, drained.stoppedBy ? 'partial' : 'published');
    }
  }
}

function withDrain(before: RunResult, drained: DrainResult, outcome: PollOutcome): RunResult {
  return {
    ...before,
    fromUid: drained.fromUid,
    toUid: drained.toUid ?? before.toUid,
    published: drained.published,
    skipped: drained.skipped,
    outcome,
    ...(drained.stoppedBy ? { stoppedBy: drained.stoppedBy } : {}),
  };
}

/** Warns (once per run) when a server assigns UIDs the checkpoint already passed: a restore from a backup. */
function uidNextBelowCheckpoint(deps: PollDeps, checkpoint: Checkpoint, status: FolderStatus): boolean {
  if (hasUidValidityChanged(checkpoint, status) || !isUidNextBelowCheckpoint(checkpoint.lastUid, status.uidNext))
    return false;
  deps.log.warn('UIDNEXT is below the checkpoint: mail the server assigns these UIDs again is not published', {
    uidNext: status.uidNext,
    lastUid: checkpoint.lastUid,
    hint: 'a server restored from a backup keeps its UIDVALIDITY; if so, set the checkpoint back (or delete it to rebaseline)',
  });
  return true;
}

/** The summary of message `uid` (the newest at a baseline), if the folder still holds it. */
async function newestMessage(session: TimedSession, folder: string, uid: number): Promise<MessageSummary | undefined> {
  await session.open(folder);
  const listed = await session.listNew(uid, 1, { envelope: true }); // its Message-ID, for a later re-scan
  return listed.messages.find((m) => m.uid === uid);
}

/**
 * Connects (always anew, never to a kept session); on an authentication failure re-reads the settings once (a
 * rotated password) and retries if they changed. Returns the session and the settings it logged in with.
 */
async function connectRefreshingOnAuthFailure(
  deps: PollDeps,
  settings: MailboxSettings,
  signal: AbortSignal,
): Promise<{ session: MailboxSession; settings: MailboxSettings }> {
  try {
    return { session: await deps.mailbox.connect(settings, { signal }), settings };
  } catch (err) {
    if (!(err instanceof ImapAuthError)) throw err;
    const fresh = await deps.settings.load({ fresh: true, signal });
    if (sameCredentials(fresh, settings)) throw err;
    deps.log.info('Login failed with cached settings; retrying once with the re-read secret');
    if (fresh.folder !== settings.folder) throw err; // the folder moved too: the next run starts with consistent settings
    return { session: await deps.mailbox.connect(fresh, { signal }), settings: fresh };
  }
}
