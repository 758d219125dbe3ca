/**
 * In-memory fakes of the poller's ports, for unit tests of pollMailbox (no network, no servers):
 * - FakeMailbox / FakeSession: a scripted IMAP server with folders (UIDVALIDITY, UIDNEXT, messages);
 * - InMemoryCheckpointStore: CheckpointStore + LeaseStore with versions and conditional writes;
 * - RecordingPublisher: records what it was asked to publish; can reject given entries or throw;
 * - FakeSettingsSource: a cached secret that can be rotated; FakeClock; RecordingLog.
 * Every fake records the calls made to it, so tests can assert what did (not) happen.
 */
import { Readable } from 'node:stream';
import type { MailboxSettings } from '../../functions/poller/core/settings.js';
import type {
  Address,
  Checkpoint,
  EventEntry,
  FolderStatus,
  MessageSummary,
} from '../../functions/poller/core/types.js';
import { CheckpointConflictError, FolderNotFoundError } from '../../functions/poller/errors.js';
import type {
  CheckpointStore,
  EventPublisher,
  FetchOptions,
  LeaseStore,
  ListOptions,
  Log,
  MailboxGateway,
  MailboxSession,
  MessageSource,
  PublishResult,
  SettingsSource,
} from '../../functions/poller/ports.js';

// ---------------------------------------------------------------------------------------------
// RFC 822

export interface Rfc822Spec {
  readonly from?: string;
  readonly to?: string;
  readonly subject?: string;
  /** With angle brackets; omitted = no Message-ID header. */
  readonly messageId?: string;
  /** ISO 8601; used for the Date header. */
  readonly date?: string;
  readonly body?: string;
}

/** A tiny RFC 822 builder: plain-text, CRLF line ends, deterministic. */
export function rfc822(spec: Rfc822Spec = {}): Uint8Array {
  const lines = [
    `From: ${spec.from ?? 'Alice Example <alice@example.com>'}`,
    `To: ${spec.to ?? 'Support <support@example.com>'}`,
    `Subject: ${spec.subject ?? 'Test message'}`,
    ...(spec.messageId ? [`Message-ID: ${spec.messageId}`] : []),
    `Date: ${new Date(spec.date ?? '2026-11-26T10:00:00Z').toUTCString().replace('GMT', '+0000')}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
  ];
  const body = (spec.body ?? 'Hello.\n').replace(/\r?\n/g, '\r\n');
  return new Uint8Array(Buffer.from(`${lines.join('\r\n')}\r\n\r\n${body}`, 'utf8'));
}

// ---------------------------------------------------------------------------------------------
// IMAP

export interface FakeMessage {
  uid: number;
  /** ISO 8601 with milliseconds (as the imapflow adapter produces it). */
  internalDate: string;
  messageId?: string;
  subject: string;
  from: Address;
  flags: string[];
  raw: Uint8Array;
}

export interface AppendSpec {
  subject?: string;
  /** With angle brackets; `null` = no Message-ID. Default: `<n@test.example>` from a counter. */
  messageId?: string | null;
  internalDate?: string;
  body?: string;
  flags?: string[];
}

let messageCounter = 0;

/** One IMAP folder: UIDs are assigned from UIDNEXT and never reused; UIDVALIDITY can be changed. */
export class FakeFolder {
  messages: FakeMessage[] = [];
  constructor(
    public uidValidity = '1700000000',
    public uidNext = 1,
  ) {}

  append(spec: AppendSpec = {}): FakeMessage {
    const n = ++messageCounter;
    const messageId = spec.messageId === null ? undefined : (spec.messageId ?? `<m${n}@test.example>`);
    // Default arrival times increase with the UID: one minute apart from 2026-11-26T08:00Z.
    const internalDate = new Date(
      spec.internalDate ?? Date.UTC(2026, 10, 26, 8, 0, 0) + this.uidNext * 60_000,
    ).toISOString();
    const subject = spec.subject ?? `Message ${n}`;
    const message: FakeMessage = {
      uid: this.uidNext++,
      internalDate,
      ...(messageId ? { messageId } : {}),
      subject,
      from: { name: 'Alice Example', address: 'alice@example.com' },
      flags: spec.flags ?? [],
      raw: rfc822({
        subject,
        ...(messageId ? { messageId } : {}),
        date: internalDate,
        ...(spec.body !== undefined ? { body: spec.body } : {}),
      }),
    };
    this.messages.push(message);
    return message;
  }

  appendMany(count: number, spec: (i: number) => AppendSpec = () => ({})): FakeMessage[] {
    return Array.from({ length: count }, (_, i) => this.append(spec(i)));
  }

  expunge(...uids: number[]): void {
    this.messages = this.messages.filter((m) => !uids.includes(m.uid));
  }

  /** A new UIDVALIDITY: the remaining messages are numbered from 1 again (what a recreated folder looks like). */
  renumber(uidValidity: string): void {
    this.uidValidity = uidValidity;
    this.messages.sort((a, b) => a.uid - b.uid);
    for (const [i, m] of this.messages.entries()) m.uid = i + 1;
    this.uidNext = this.messages.length + 1;
  }

  status(): FolderStatus {
    return { uidValidity: this.uidValidity, uidNext: this.uidNext, messages: this.messages.length };
  }

  snapshot(): string {
    return JSON.stringify({ v: this.uidValidity, n: this.uidNext, m: this.messages.map((m) => [m.uid, m.flags]) });
  }
}

export type SessionCall =
  | { op: 'status'; folder: string }
  | { op: 'open'; folder: string }
  | { op: 'listNew'; fromUid: number; limit: number; since?: string }
  | { op: 'listSizes'; fromUid: number; limit: number; sizeBound: number }
  | { op: 'fetchSources'; uids: number[]; maxBytes: number }
  | { op: 'streamSource'; uid: number }
  | { op: 'exists'; uids: number[] }
  | { op: 'listFolders' }
  | { op: 'close' };

export function toSummary(m: FakeMessage): MessageSummary {
  return {
    uid: m.uid,
    size: m.raw.length,
    flags: [...m.flags],
    internalDate: m.internalDate,
    envelope: {
      ...(m.messageId ? { messageId: m.messageId } : {}),
      subject: m.subject,
      from: [m.from],
      to: [{ name: 'Support', address: 'support@example.com' }],
      cc: [],
      replyTo: [],
    },
  };
}

export class FakeSession implements MailboxSession {
  readonly calls: SessionCall[] = [];
  closed = false;
  /** Times kept for a later run (park) and taken up again (resume). */
  parks = 0;
  resumes = 0;
  /** The next STATUS or EXAMINE throws this (a session the server ended), or never answers ('silent'). */
  failNext?: Error | 'silent';
  expiresAt?: Date;
  private openedFolder?: FakeFolder;
  constructor(
    private readonly mailbox: FakeMailbox,
    readonly settings: MailboxSettings,
  ) {}

  private folder(path: string): FakeFolder {
    const folder = this.mailbox.folders.get(path);
    if (!folder) throw new FolderNotFoundError(path, [...this.mailbox.folders.keys()]);
    return folder;
  }

  async status(folder: string): Promise<FolderStatus> {
    this.calls.push({ op: 'status', folder });
    await this.injectedFailure();
    return this.folder(folder).status();
  }

  private async injectedFailure(): Promise<void> {
    const failure = this.failNext;
    this.failNext = undefined;
    if (failure === 'silent') await new Promise(() => {});
    if (failure) throw failure;
  }

  async park(): Promise<boolean> {
    this.parks++;
    return !this.closed;
  }

  resume(): boolean {
    this.resumes++;
    return !this.closed;
  }

  async open(folder: string): Promise<FolderStatus> {
    this.calls.push({ op: 'open', folder });
    await this.injectedFailure();
    const opened = this.folder(folder);
    this.mailbox.hooks.onOpen?.(opened);
    this.openedFolder = opened;
    return opened.status();
  }

  private opened(): FakeFolder {
    if (!this.openedFolder) throw new Error('FakeSession: command needs a folder opened with EXAMINE first');
    return this.openedFolder;
  }

  async listNew(fromUid: number, limit: number, options: ListOptions = {}): ReturnType<MailboxSession['listNew']> {
    const { since } = options;
    this.calls.push({ op: 'listNew', fromUid, limit, ...(since ? { since: since.toISOString() } : {}) });
    const folder = this.opened();
    const matched = folder.messages
      .filter((m) => m.uid >= fromUid && (!since || new Date(m.internalDate) >= since))
      .sort((a, b) => a.uid - b.uid);
    // Like the IMAP adapter: the ENVELOPE only when asked for.
    const summaries = matched.slice(0, limit).map((m) => {
      const { envelope, ...rest } = toSummary(m);
      return options.envelope ? { ...rest, envelope } : rest;
    });
    // Like the IMAP adapter: a withheld summary ends the list (a fresh search still finds it here).
    const withheld = summaries.find((m) => this.mailbox.hooks.withheldFromListing?.has(m.uid))?.uid;
    if (withheld !== undefined) {
      return { messages: summaries.filter((m) => m.uid < withheld), complete: false, withheld };
    }
    return { messages: summaries, complete: matched.length <= limit };
  }

  async listSizes(fromUid: number, limit: number, sizeBound: number): ReturnType<MailboxSession['listSizes']> {
    this.calls.push({ op: 'listSizes', fromUid, limit, sizeBound });
    const matched = this.opened()
      .messages.filter((m) => m.uid >= fromUid)
      .sort((a, b) => a.uid - b.uid);
    const messages = matched.slice(0, limit).map((m) => ({ uid: m.uid, size: Math.max(m.raw.length, sizeBound) }));
    // Like the IMAP adapter: only a message above the bound is fetched for its size, and may be withheld from that.
    const withheld = matched
      .slice(0, limit)
      .find((m) => m.raw.length > sizeBound && this.mailbox.hooks.withheldFromListing?.has(m.uid))?.uid;
    if (withheld !== undefined) {
      return { messages: messages.filter((m) => m.uid < withheld), complete: false, withheld };
    }
    return { messages, complete: matched.length <= limit };
  }

  async fetchSources(uids: readonly number[], options: FetchOptions): Promise<Map<number, MessageSource>> {
    this.calls.push({ op: 'fetchSources', uids: [...uids], maxBytes: options.maxBytes });
    const folder = this.opened();
    this.mailbox.hooks.beforeFetch?.(folder, uids);
    const result = new Map<number, MessageSource>();
    for (const uid of uids) {
      const m = folder.messages.find((x) => x.uid === uid);
      if (!m || this.mailbox.hooks.withheld?.has(uid)) continue;
      const bytes = m.raw.subarray(0, options.maxBytes);
      const { envelope: _, ...summary } = toSummary(m);
      result.set(uid, {
        uid,
        bytes,
        partial: bytes.length < m.raw.length,
        ...(options.summaries ? { summary } : {}),
      });
    }
    return result;
  }

  async exists(uids: readonly number[]): Promise<number[]> {
    this.calls.push({ op: 'exists', uids: [...uids] });
    const held = new Set(this.opened().messages.map((m) => m.uid));
    return uids.filter((uid) => held.has(uid)).sort((a, b) => a - b);
  }

  async streamSource(uid: number): Promise<{ stream: NodeJS.ReadableStream; size: number } | undefined> {
    this.calls.push({ op: 'streamSource', uid });
    const m = this.opened().messages.find((x) => x.uid === uid);
    return m ? { stream: Readable.from([Buffer.from(m.raw)]), size: m.raw.length } : undefined;
  }

  async listFolders(): Promise<{ path: string; delimiter: string; flags: string[] }[]> {
    this.calls.push({ op: 'listFolders' });
    return [...this.mailbox.folders.keys()].map((path) => ({ path, delimiter: '/', flags: [] }));
  }

  async close(): Promise<void> {
    this.calls.push({ op: 'close' });
    await this.mailbox.logoutAnswered;
    this.closed = true;
  }

  /** The operations after connect, in order (e.g. ['status', 'close']). */
  ops(): string[] {
    return this.calls.map((c) => c.op);
  }
}

export interface MailboxHooks {
  /** Runs on EXAMINE, before the status is returned (e.g. to change UIDVALIDITY during a poll). */
  onOpen?: (folder: FakeFolder) => void;
  /** Runs before a fetch of sources (e.g. to expunge a listed message). */
  beforeFetch?: (folder: FakeFolder, uids: readonly number[]) => void;
  /** UIDs left out of the body FETCH although they still exist (a broken server). */
  withheld?: ReadonlySet<number>;
  /** UIDs left out of the listing (summary FETCH) although they still exist. */
  withheldFromListing?: ReadonlySet<number>;
}

/** MailboxGateway over FakeFolders. `connectErrors` are thrown by the next connects, in order. */
export class FakeMailbox implements MailboxGateway {
  readonly folders = new Map<string, FakeFolder>();
  readonly sessions: FakeSession[] = [];
  readonly connects: MailboxSettings[] = [];
  connectErrors: Error[] = [];
  hooks: MailboxHooks = {};
  /** A session's close() (LOGOUT) ends when this settles; undefined: at once. */
  logoutAnswered?: Promise<void>;

  constructor(folders: Record<string, FakeFolder> = { INBOX: new FakeFolder() }) {
    for (const [path, folder] of Object.entries(folders)) this.folders.set(path, folder);
  }

  folder(path = 'INBOX'): FakeFolder {
    const f = this.folders.get(path);
    if (!f) throw new Error(`no fake folder ${path}`);
    return f;
  }

  async connect(settings: MailboxSettings): Promise<MailboxSession> {
    this.connects.push(settings);
    const error = this.connectErrors.shift();
    if (error) throw error;
    const session = new FakeSession(this, settings);
    this.sessions.push(session);
    return session;
  }

  /** The single session of a run. */
  get session(): FakeSession {
    if (this.sessions.length !== 1) throw new Error(`expected exactly one session, got ${this.sessions.length}`);
    return this.sessions[0]!;
  }
}

// ---------------------------------------------------------------------------------------------
// DynamoDB-like checkpoint and lease store

export interface Lease {
  owner: string;
  expiresAt: number;
}

export class InMemoryCheckpointStore implements CheckpointStore, LeaseStore {
  readonly items = new Map<string, Checkpoint>();
  readonly leases = new Map<string, Lease>();
  readonly gets: { mailboxId: string; folder: string }[] = [];
  readonly puts: { next: Checkpoint; expectedVersion: number; ok: boolean }[] = [];
  readonly leaseCalls: { op: 'acquire' | 'release'; mailboxId: string; owner: string; result?: boolean }[] = [];
  /** Runs before each put is checked (e.g. to simulate another run writing first). */
  beforePut?: (next: Checkpoint, expectedVersion: number) => void;

  static key(mailboxId: string, folder: string): string {
    return `${mailboxId}#${folder}`;
  }

  /** Stores a checkpoint as if written earlier (version 1 unless given). */
  seed(
    checkpoint: Omit<Checkpoint, 'version' | 'updatedAt'> & Partial<Pick<Checkpoint, 'version' | 'updatedAt'>>,
  ): Checkpoint {
    const stored: Checkpoint = {
      version: 1,
      updatedAt: '2026-11-01T00:00:00.000Z',
      recentMessageIds: [],
      ...checkpoint,
    };
    this.items.set(InMemoryCheckpointStore.key(stored.mailboxId, stored.folder), stored);
    return stored;
  }

  current(mailboxId: string, folder = 'INBOX'): Checkpoint | undefined {
    return this.items.get(InMemoryCheckpointStore.key(mailboxId, folder));
  }

  async get(mailboxId: string, folder: string): Promise<Checkpoint | undefined> {
    this.gets.push({ mailboxId, folder });
    const c = this.current(mailboxId, folder);
    return c === undefined ? undefined : structuredClone(c);
  }

  async put(next: Checkpoint, expectedVersion: number): Promise<void> {
    this.beforePut?.(next, expectedVersion);
    const key = InMemoryCheckpointStore.key(next.mailboxId, next.folder);
    const stored = this.items.get(key);
    const ok = (stored?.version ?? 0) === expectedVersion && (expectedVersion !== 0 || stored === undefined);
    this.puts.push({ next: structuredClone(next), expectedVersion, ok });
    if (!ok) {
      throw new CheckpointConflictError(
        `checkpoint of ${next.mailboxId} changed (expected version ${expectedVersion})`,
      );
    }
    this.items.set(key, { ...structuredClone(next), version: expectedVersion + 1 });
  }

  get successfulPuts(): Checkpoint[] {
    return this.puts.filter((p) => p.ok).map((p) => p.next);
  }

  async acquire(mailboxId: string, owner: string, now: Date, expiresAt: Date): Promise<boolean> {
    const lease = this.leases.get(mailboxId);
    const result = !lease || lease.expiresAt < now.getTime() || lease.owner === owner;
    if (result) this.leases.set(mailboxId, { owner, expiresAt: expiresAt.getTime() });
    this.leaseCalls.push({ op: 'acquire', mailboxId, owner, result });
    return result;
  }

  async release(mailboxId: string, owner: string): Promise<void> {
    this.leaseCalls.push({ op: 'release', mailboxId, owner });
    if (this.leases.get(mailboxId)?.owner === owner) this.leases.delete(mailboxId);
  }
}

// ---------------------------------------------------------------------------------------------
// EventBridge-like publisher

/** Records every publish call; accepted entries are appended to `published`. */
export class RecordingPublisher implements EventPublisher {
  readonly calls: EventEntry[][] = [];
  readonly published: EventEntry[] = [];
  /** Returns an error code for an entry that must fail (after the publisher's retries), else undefined. */
  reject?: (entry: EventEntry, index: number, call: number) => string | undefined;
  /** Thrown by the next publish calls, in order (e.g. a non-retryable EventPublishError). */
  throwErrors: Error[] = [];
  /** Runs at the start of each call (e.g. to advance a fake clock). */
  onCall?: (entries: readonly EventEntry[]) => void;

  async publish(entries: readonly EventEntry[]): Promise<PublishResult> {
    const call = this.calls.length;
    this.calls.push([...entries]);
    this.onCall?.(entries);
    const error = this.throwErrors.shift();
    if (error) throw error;
    const accepted = new Set<number>();
    const failed = new Map<number, string>();
    entries.forEach((entry, index) => {
      const code = this.reject?.(entry, index, call);
      if (code) failed.set(index, code);
      else {
        accepted.add(index);
        this.published.push(entry);
      }
    });
    return { accepted, failed };
  }

  /** Details of the accepted message events, parsed. */
  messageDetails(): {
    uid: number;
    eventId: string;
    messageId: string | null;
    subject: string | null;
    [k: string]: unknown;
  }[] {
    return this.published.filter((e) => e.DetailType === 'IMAP Message Received').map((e) => JSON.parse(e.Detail));
  }

  publishedUids(): number[] {
    return this.messageDetails().map((d) => d.uid);
  }
}

// ---------------------------------------------------------------------------------------------
// Settings, clock, log

export const PASSWORD = 'S3cret-Pa55word!';

export function settings(overrides: Partial<MailboxSettings> = {}): MailboxSettings {
  return {
    host: 'imap.example.com',
    port: 993,
    security: 'tls',
    username: 'support@example.com',
    password: PASSWORD,
    folder: 'INBOX',
    ...overrides,
  };
}

/** A secret that is read through a cache: `rotate` changes the secret; only `fresh` loads see it before the cache is dropped. */
export class FakeSettingsSource implements SettingsSource {
  readonly loads: { fresh: boolean }[] = [];
  private cached?: MailboxSettings;
  constructor(public secret: MailboxSettings = settings()) {}

  /** Caches the current secret, as an earlier (warm) invocation would have; not recorded as a load. */
  prime(): void {
    this.cached = { ...this.secret };
  }

  rotate(next: Partial<MailboxSettings>): void {
    this.secret = { ...this.secret, ...next };
  }

  async load(options: { fresh?: boolean } = {}): Promise<MailboxSettings> {
    this.loads.push({ fresh: options.fresh ?? false });
    if (options.fresh || !this.cached) this.cached = { ...this.secret };
    return this.cached;
  }
}

export class FakeClock {
  constructor(public ms = Date.UTC(2026, 10, 26, 12, 0, 0)) {}
  readonly now = (): Date => new Date(this.ms);
  advance(ms: number): void {
    this.ms += ms;
  }
}

export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  fields: Record<string, unknown>;
}

export class RecordingLog implements Log {
  readonly lines: LogLine[] = [];
  private add(level: LogLine['level'], message: string, extra: Record<string, unknown>[]): void {
    this.lines.push({ level, message, fields: Object.assign({}, ...extra) });
  }
  debug(message: string, ...extra: Record<string, unknown>[]): void {
    this.add('debug', message, extra);
  }
  info(message: string, ...extra: Record<string, unknown>[]): void {
    this.add('info', message, extra);
  }
  warn(message: string, ...extra: Record<string, unknown>[]): void {
    this.add('warn', message, extra);
  }
  error(message: string, ...extra: Record<string, unknown>[]): void {
    this.add('error', message, extra);
  }
  /** Everything logged, as one string (to assert that secrets are absent). */
  text(): string {
    return JSON.stringify(this.lines);
  }
}

// ---------------------------------------------------------------------------------------------
// Small deterministic PRNG for property-style tests

export { prng } from '../support/prng.js';
