/**
 * The ports of the poll use case: small interfaces the adapters implement
 * (imapflow, DynamoDB, EventBridge, Secrets Manager, S3) and tests fake.
 */
import type { LeaseInfo, PollStatus } from './core/health.js';
import type { MailboxSettings } from './core/settings.js';
import type { Checkpoint, EventEntry, FolderStatus, MessageSummary } from './core/types.js';
import type { MessageDetailer } from './run/message-detail.js';

/**
 * Per-call options of every port call that crosses the network. The run's deadline aborts `signal` when it gives
 * up on a call (or when the run ends), and the adapter cancels the call: the SDK drops the request, the IMAP
 * adapter closes its connection. A call never outlives the run that made it.
 */
export interface CallOptions {
  readonly signal?: AbortSignal;
}

export interface SettingsSource {
  /** The current, validated settings. `fresh` bypasses any cache (after an authentication failure). */
  load(options?: { fresh?: boolean } & CallOptions): Promise<MailboxSettings>;
}

export interface CheckpointStore {
  /** Strongly consistent read; undefined when this (mailbox, folder) has no checkpoint yet. */
  get(mailboxId: string, folder: string, options?: CallOptions): Promise<Checkpoint | undefined>;
  /**
   * Writes `next` if the stored version still equals `expectedVersion` (0 = must not exist yet).
   * Throws CheckpointConflictError when another writer got there first.
   */
  put(next: Checkpoint, expectedVersion: number, options?: CallOptions): Promise<void>;
}

/** Mutual exclusion per mailbox with expiry, so a crashed run does not block forever. */
export interface LeaseStore {
  /** True when acquired (free, expired, or already ours); false when another holder has it. */
  acquire(mailboxId: string, owner: string, now: Date, expiresAt: Date, options?: CallOptions): Promise<boolean>;
  /** Releases the lease if we still hold it; never throws for a lease taken over by someone else. */
  release(mailboxId: string, owner: string, options?: CallOptions): Promise<void>;
}

/** What a successful run records (see PollStatus). */
export interface PollSuccessRecord {
  readonly at: Date;
  readonly outcome: string;
  readonly folder: string | null;
  readonly published: number;
  /** UIDNEXT − 1 − lastUid after the run; null when the run did not read the folder's STATUS. */
  readonly waiting: number | null;
  readonly durationMs: number;
  readonly secretId?: string;
  readonly staleAfterSeconds?: number;
}

/** What a failed run records. */
export interface PollFailureRecord {
  readonly at: Date;
  readonly errorCode: string;
  /** Secret-free (the errors' own messages); cut to a bounded length by the store. */
  readonly message: string;
  readonly secretId?: string;
  readonly staleAfterSeconds?: number;
}

/** The per-mailbox record of the last successful and the last failed poll, for `status` and fleet tooling. */
export interface PollStatusStore {
  recordSuccess(mailboxId: string, record: PollSuccessRecord, options?: CallOptions): Promise<void>;
  recordFailure(mailboxId: string, record: PollFailureRecord, options?: CallOptions): Promise<void>;
  getStatus(mailboxId: string): Promise<PollStatus | undefined>;
  /** The lease item as stored (also when expired), or undefined when no run holds it. */
  getLease(mailboxId: string): Promise<LeaseInfo | undefined>;
}

/** A message's content as read from the server: bounded bytes of the RFC 822 source. */
export interface MessageSource {
  readonly uid: number;
  /** The first bytes of the message (up to the download bound). */
  readonly bytes: Uint8Array;
  /** True when `bytes` is shorter than the message. */
  readonly partial: boolean;
  /** Its size, flags and INTERNALDATE, sent with the body (FetchOptions.summaries). */
  readonly summary?: MessageSummary;
}

export interface FetchOptions {
  /** Download bound per message in bytes. */
  readonly maxBytes: number;
  /**
   * Bytes of sources one call keeps at most. The batch was sized by the sizes the server reported (RFC822.SIZE);
   * a server that understates them would otherwise make a batch of 100 messages cost 100 x maxBytes. Past it the
   * call fails as a protocol error and the connection is closed. @default unbounded
   */
  readonly maxTotalBytes?: number;
  /** Each source's summary (size, flags, INTERNALDATE) from the same FETCH (MessageSource.summary). @default false */
  readonly summaries?: boolean;
}

/**
 * A message as listSizes knows it before its body is read: its UID and a size to plan batches by (RFC822.SIZE above
 * the listing's bound, the bound itself below it).
 */
export interface SizedUid {
  readonly uid: number;
  readonly size: number;
}

/** What a listing asks for beyond UID, size, flags and INTERNALDATE. */
export interface ListOptions {
  /** Only messages that arrived on or after this day (SEARCH SINCE; see MailboxSession.listNew). */
  readonly since?: Date;
  /**
   * The server's ENVELOPE of each message (MessageSummary.envelope). Costly (for 10,000 typical mails imapflow
   * spent as much CPU parsing the ENVELOPEs as on the rest of the listing, and 0.6 times what it spent on their
   * bodies): asked for only where a Message-ID is needed before the body is read. @default false
   */
  readonly envelope?: boolean;
}

/** One logged-in IMAP session on the watched folder. */
export interface MailboxSession {
  /** STATUS of the folder (UIDVALIDITY, UIDNEXT, MESSAGES); one command. */
  status(folder: string): Promise<FolderStatus>;
  /** EXAMINE (read-only) the folder; returns its current state. */
  open(folder: string): Promise<FolderStatus>;
  /**
   * Summaries of messages with UID >= fromUid, in UID order, at most `limit` (the lowest UIDs first).
   * With `options.since`, a server-side SEARCH SINCE narrows the result by date (day granularity, so it may still hold
   * messages that arrived shortly before `since`: the caller filters exactly on `internalDate` and passes those
   * over, which lets its checkpoint move past them). Filters the `n:*` quirk.
   * `complete` is false when more messages matched than `limit`. A UID the SEARCH found whose summary the server did
   * not send, although a fresh search still finds it, is `withheld`: the list ends before it (and is not complete).
   */
  listNew(
    fromUid: number,
    limit: number,
    options?: ListOptions,
  ): Promise<{ messages: MessageSummary[]; complete: boolean; withheld?: number }>;
  /**
   * listNew without a summary FETCH for most messages: UIDs >= fromUid in UID order, at most `limit`, each with a size
   * for planning batches. A second UID SEARCH (LARGER `sizeBound`) names the messages above the bound; only those are
   * fetched (RFC822.SIZE), the others count as `sizeBound`. Their flags and INTERNALDATE come with the bodies
   * (FetchOptions.summaries). `complete` and `withheld` as for listNew.
   */
  listSizes(
    fromUid: number,
    limit: number,
    sizeBound: number,
  ): Promise<{ messages: SizedUid[]; complete: boolean; withheld?: number }>;
  /**
   * The sources of these messages (one round trip), each bounded by `maxBytes` (also when the server ignores the
   * partial request); rows for UIDs not asked for are ignored. A message absent from the result may be expunged, or
   * the server failed to send it: `exists` tells which. Never sets \Seen.
   */
  fetchSources(uids: readonly number[], options: FetchOptions): Promise<Map<number, MessageSource>>;
  /** Which of these UIDs the folder still holds (a fresh UID SEARCH), in UID order. */
  exists(uids: readonly number[]): Promise<number[]>;
  /** Streams the whole message (for raw storage) without holding it in memory; undefined if expunged. */
  streamSource(uid: number): Promise<{ stream: NodeJS.ReadableStream; size: number } | undefined>;
  /** All folder paths as the server names them (for "folder not found" errors). */
  listFolders(): Promise<{ path: string; delimiter: string; specialUse?: string; flags: string[] }[]>;
  /** LOGOUT and close; never throws. */
  close(): Promise<void>;
  /**
   * Ends the run's use of the session WITHOUT LOGOUT, for a later run of this container to take it up
   * (SessionKeeper): deselects the folder (CLOSE after an EXAMINE: a later STATUS must not name the selected folder),
   * stops listening to the run's signal, and lets the process sleep (the socket neither times out nor keeps Node
   * alive). False when the session is not fit to keep (closed, a command under way, the deselect failed): it is then
   * closed. Optional: sessions that cannot be kept leave it out.
   */
  park?(): Promise<boolean>;
  /** Takes a parked session up for a run (`signal` closes it, as after connect); false, and closed, when it is no longer usable. */
  resume?(options: CallOptions): boolean;
  /** When the server may end the session by itself (an OAuth2 access token expires); undefined: no known bound. */
  readonly expiresAt?: Date;
}

/**
 * The logged-in IMAP session a warm container keeps between runs (per-mailbox mode): taken by one run at a time,
 * given back only by a run that ended without an error. run/session-keeper.ts.
 */
export interface SessionKeeper {
  /** The kept session if it was logged in with exactly these settings and is young enough; resumed for the run. */
  take(settings: MailboxSettings, options: CallOptions): MailboxSession | undefined;
  /** Keeps `session` (logged in with `settings`) for the next run; closes it when it cannot be kept. Never throws. */
  keep(settings: MailboxSettings, session: MailboxSession): Promise<void>;
  /** Closes the kept session, if any. */
  clear(): void;
}

export interface MailboxGateway {
  /**
   * Connects, verifies TLS, logs in. Throws the mapped errors (ImapAuthError, TlsCertificateError, ...).
   * When `signal` aborts (during the login or any later command), the connection is closed at once.
   */
  connect(settings: MailboxSettings, options?: CallOptions): Promise<MailboxSession>;
}

/** An OAuth2 access token for the IMAP login (never logged, never in errors). */
export interface AccessToken {
  readonly token: string;
  /** When the provider says it expires. */
  readonly expiresAt: Date;
  /** Host of the token endpoint it came from (for `check` and logs). */
  readonly endpointHost: string;
  /** True when it came from the per-container cache, not a new request. */
  readonly cached: boolean;
}

/** Obtains (and caches) access tokens for settings with `oauth2`. Throws OAuth2TokenError / OAuth2EndpointError. */
export interface AccessTokenSource {
  /** A token usable for a while; `fresh` skips the cache (the server refused the cached one). */
  get(settings: MailboxSettings, options?: { fresh?: boolean } & CallOptions): Promise<AccessToken>;
}

/** Keeps a rotated OAuth2 refresh token between runs (an opaque, sealed value; see docs/oauth2.md). */
export interface RefreshTokenStore {
  load(): Promise<{ readonly sealed: string; readonly version: number } | undefined>;
  /** Writes if the stored version still equals `expectedVersion` (0 = none yet); false when another run wrote first. */
  save(sealed: string, expectedVersion: number): Promise<boolean>;
}

export interface PublishResult {
  /** Indexes (into the input array) of entries EventBridge accepted. */
  readonly accepted: ReadonlySet<number>;
  /** Error code of the last failure of each entry that was not accepted after all retries. */
  readonly failed: ReadonlyMap<number, string>;
}

export interface EventPublisher {
  /** Sends entries (any number; the publisher chunks and retries failed entries). */
  publish(entries: readonly EventEntry[], options?: CallOptions): Promise<PublishResult>;
}

export interface RawMessageStore {
  /** Streams the message to a deterministic key; returns where it is. Overwrites on retry. */
  put(
    key: string,
    body: NodeJS.ReadableStream,
    size: number,
    options?: CallOptions,
  ): Promise<{ bucket: string; key: string; size: number }>;
}

/** Structured logger: a constant message, details in fields (the Powertools Logger's shape). */
export interface Log {
  debug(message: string, ...extra: Record<string, unknown>[]): void;
  info(message: string, ...extra: Record<string, unknown>[]): void;
  warn(message: string, ...extra: Record<string, unknown>[]): void;
  error(message: string, ...extra: Record<string, unknown>[]): void;
}

/** A Log that drops everything (local tools, benchmarks, tests). */
export const silentLog: Log = { debug() {}, info() {}, warn() {}, error() {} };

/** The ports one poll runs on; built by compose.ts (or by tests with fakes). */
export interface PollDeps {
  readonly settings: SettingsSource;
  readonly checkpoints: CheckpointStore;
  /** Mutual exclusion per mailbox; without it overlapping runs are still safe (conditional writes) but may publish twice. */
  readonly lease?: LeaseStore;
  readonly mailbox: MailboxGateway;
  readonly publisher: EventPublisher;
  /** When set, every message is streamed to it and the event carries `raw`. */
  readonly rawStore?: RawMessageStore;
  /** When set, a run takes up the session an earlier run of this container kept, and keeps its own (no LOGOUT). */
  readonly sessions?: SessionKeeper;
  /** Builds the events' Details off the drain's thread (parse workers, run/parse-pool.ts); absent: in the drain's thread. */
  readonly detailer?: MessageDetailer;
  readonly log: Log;
  readonly now: () => Date;
}
