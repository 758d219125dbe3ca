import type { Socket } from 'node:net';
import { type FetchMessageObject, ImapFlow, type ImapFlowOptions, type MessageAddressObject } from 'imapflow';
import { folderNotFoundHint } from '../core/folders.js';
import { commandByteBudget, imapResponseLimits } from '../core/imap-limits.js';
import { invalidFolderField, isNzNumber, requestedRows } from '../core/imap-numbers.js';
import { mailboxGrantHint } from '../core/oauth2-token.js';
import type { MailboxSettings } from '../core/settings.js';
import type { Address, FolderStatus, MessageEnvelope, MessageSummary } from '../core/types.js';
import { uidSets } from '../core/uid-set.js';
import {
  ConfigurationError,
  FolderNotFoundError,
  ImapAuthError,
  ImapConnectionError,
  ImapEventSourceError,
  ImapProtocolError,
  OAuth2UnsupportedError,
  StartTlsInjectionError,
  StartTlsUnavailableError,
  TlsCertificateError,
} from '../errors.js';
import type {
  AccessToken,
  AccessTokenSource,
  CallOptions,
  FetchOptions,
  ListOptions,
  Log,
  MailboxGateway,
  MailboxSession,
  MessageSource,
  SizedUid,
} from '../ports.js';
import { CERTIFICATE_CODES, certificateFix, FIXES, UNREACHABLE_CODES } from './imap-diagnosis.js';
import { cachedTlsOptions } from './tls-options.js';

export interface ImapFlowGatewayOptions {
  /** TCP + TLS handshake budget. @default 10_000 */
  readonly connectTimeoutMs?: number;
  /** Greeting wait. @default 10_000 */
  readonly greetingTimeoutMs?: number;
  /** Inactivity timeout of an established connection (a silent server). @default 30_000 */
  readonly socketTimeoutMs?: number;
  readonly log?: Log;
  /** Receives the verb of every IMAP command sent (e.g. "LOGIN", "UID FETCH"); for tests and benchmarks. Never arguments. */
  readonly onCommand?: (verb: string) => void;
  /** Access tokens for settings with `oauth2` (required for those). */
  readonly tokens?: AccessTokenSource;
  /** The download bound per message (PollOptions.maxMessageBytes); imapflow's response limits derive from it. @default 2 MiB */
  readonly maxMessageBytes?: number;
}

/** MailboxGateway over imapflow: connects with verified TLS, maps failures to the poller's errors. */
export class ImapFlowMailboxGateway implements MailboxGateway {
  constructor(private readonly options: ImapFlowGatewayOptions = {}) {}

  async connect(settings: MailboxSettings, options: CallOptions = {}): Promise<MailboxSession> {
    if (settings.oauth2) return this.connectWithToken(settings, options);
    return this.login(settings, options);
  }

  // --- OAuth2 (XOAUTH2 / OAUTHBEARER) ---------------------------------------------------------------

  /** Logs in with an access token; a cached token the server refuses (revoked, expired early) is replaced once. */
  private async connectWithToken(settings: MailboxSettings, options: CallOptions): Promise<MailboxSession> {
    const tokens = this.options.tokens;
    if (!tokens) throw new ConfigurationError('The settings use oauth2, but no access token source was configured.');
    const token = await tokens.get(settings, options);
    try {
      return await this.login(settings, options, token);
    } catch (err) {
      if (!(err instanceof ImapAuthError) || !token.cached) throw err;
      this.options.log?.info('The IMAP server refused the cached access token; fetching a new one');
      return this.login(settings, options, await tokens.get(settings, { ...options, fresh: true }));
    }
  }

  // ---------------------------------------------------------------------------------------------------

  private async login(settings: MailboxSettings, options: CallOptions, token?: AccessToken): Promise<MailboxSession> {
    const accessToken = token?.token;
    const client = new ImapFlow(imapFlowOptions(settings, this.options, accessToken));
    skipUnneededSessionCommands(client, { namespaceCheck: accessToken !== undefined });
    const state = watchClient(client, options.signal, this.options.log);
    try {
      if (options.signal?.aborted) throw options.signal.reason;
      await withReadBudget(client, CONNECT_BYTE_BUDGET, () => client.connect());
    } catch (err) {
      state.detach();
      client.close();
      if (accessToken !== undefined) throw mapOAuth2LoginError(state.explain(err), settings, client, accessToken);
      throw mapImapError(state.explain(err), settings, 'connect');
    }
    return new ImapFlowSession(client, settings, {
      state,
      ...(this.options.log ? { log: this.options.log } : {}),
      ...(token ? { expiresAt: token.expiresAt } : {}),
    });
  }
}

/**
 * imapflow's session setup sends ID (before and again after login) and NAMESPACE; a poll needs neither, and each is
 * a round trip on every new connection. ID: the poll has nothing to learn from the server's identity. NAMESPACE:
 * imapflow only uses it to put the personal namespace's prefix in front of a path that lacks it, and a poll names its
 * folder exactly as the server lists it (contract 1), prefix included. NAMESPACE stays for an OAuth2 login, where it
 * doubles as the login check: Exchange Online accepts a token for a mailbox the app may not open and fails only the
 * next command ("User is authenticated but not connected"), which imapflow turns into an authentication failure
 * there (after STATUS it would be an unexplained refusal).
 */
function skipUnneededSessionCommands(client: ImapFlow, options: { namespaceCheck: boolean }): void {
  const skipped = new Set(options.namespaceCheck ? ['ID'] : ['ID', 'NAMESPACE']);
  // imapflow's internal command runner (not in its types): the one place every session-setup command passes.
  const internal = client as unknown as { run(command: string, ...args: unknown[]): Promise<unknown> };
  const run = internal.run.bind(client);
  internal.run = (command, ...args) =>
    skipped.has(command.toUpperCase()) ? Promise.resolve(undefined) : run(command, ...args);
}

export function imapFlowOptions(
  settings: MailboxSettings,
  options: ImapFlowGatewayOptions = {},
  accessToken?: string,
): ImapFlowOptions {
  const secure = settings.security === 'tls';
  return {
    host: settings.host,
    port: settings.port,
    secure,
    // starttls: the upgrade is REQUIRED (imapflow fails instead of falling back to plaintext);
    // none: never try (explicit plaintext opt-in).
    doSTARTTLS: settings.security === 'starttls' ? true : settings.security === 'none' ? false : undefined,
    // The trust (public roots + caBundle) is built once per container and CA bundle, not on every connect.
    tls: settings.security === 'none' ? undefined : cachedTlsOptions(settings),
    // With a token imapflow uses AUTHENTICATE OAUTHBEARER where offered, else XOAUTH2.
    auth:
      accessToken !== undefined
        ? { user: settings.username, accessToken }
        : { user: settings.username, pass: settings.password },
    logger: options.onCommand ? commandVerbLogger(options.onCommand) : false,
    disableAutoIdle: true,
    connectionTimeout: options.connectTimeoutMs ?? 10_000,
    greetingTimeout: options.greetingTimeoutMs ?? 10_000,
    socketTimeout: options.socketTimeoutMs ?? 30_000,
    // Keep the session to what a poll needs (no ENABLE round trip for CONDSTORE/QRESYNC).
    disableAutoEnable: true,
    clientInfo: { name: 'imap-event-source' },
    // Bounded memory whatever the server sends (core/imap-limits.ts has the rationale).
    ...imapResponseLimits(options.maxMessageBytes),
  };
}

/** An imapflow logger that reports only command verbs (never arguments: LOGIN carries the password). */
function commandVerbLogger(onCommand: (verb: string) => void): NonNullable<ImapFlowOptions['logger']> {
  const ignore = (): void => {};
  return {
    debug: (entry: unknown) => {
      const e = entry as { src?: string; msg?: unknown };
      if (e?.src === 'c' && typeof e.msg === 'string' && !e.msg.startsWith('(')) {
        const [, verb, subverb] = e.msg.split(' ');
        // "UID FETCH", "UID SEARCH": the second word is the command too.
        if (verb)
          onCommand(verb.toUpperCase() === 'UID' && subverb ? `UID ${subverb.toUpperCase()}` : verb.toUpperCase());
      }
    },
    info: ignore,
    warn: ignore,
    error: ignore,
  };
}

/**
 * One FETCH per chunk of a streamed message, one after another. imapflow's default (64 KB) makes a 50 MB message
 * 800 round trips (half a minute at a 40 ms RTT); 256 KB makes it 200, and also lowered the peak RSS with raw
 * storage (bench/large-message.ts, 12 runs each: 127-145 MB, median 143, against 128-129 MB). 1 MiB raised it (138-158 MB).
 */
const DOWNLOAD_CHUNK_BYTES = 256 * 1024;

/** Exported for unit tests only; use ImapFlowMailboxGateway.connect. */
export class ImapFlowSession implements MailboxSession {
  /** Commands under way; a session closed while one is (cut off by the hard stop) is destroyed without LOGOUT. */
  private busy = 0;
  /** FETCH rows for UIDs not asked for are logged once per session (= per run). */
  private unrequestedLogged = false;
  private readonly state: ClientState;
  private readonly log?: Log;
  readonly expiresAt?: Date;

  constructor(
    private readonly client: ImapFlow,
    private readonly settings: MailboxSettings,
    options: { state?: ClientState; log?: Log; expiresAt?: Date } = {},
  ) {
    this.state = options.state ?? { explain: (err) => err, attach: () => {}, detach: () => {} };
    this.log = options.log;
    if (options.expiresAt) this.expiresAt = options.expiresAt;
  }

  async status(folder: string): Promise<FolderStatus> {
    let result: Awaited<ReturnType<ImapFlow['status']>>;
    try {
      result = await this.command(STATUS_BYTE_BUDGET, () =>
        this.client.status(folder, { uidNext: true, uidValidity: true, messages: true }),
      );
    } catch (err) {
      if (errorCode(err) === 'NotFound' || isNoResponse(err)) throw await this.folderNotFound(folder, err);
      throw this.mapError(err, 'status');
    }
    // imapflow answers false when the server refused STATUS (NO/BAD) for a folder that LIST shows: not a missing
    // folder (that is NotFound above), and not something a new secret fixes.
    if (!result) {
      if (!this.client.usable) throw this.mapError(undefined, 'status');
      throw this.protocolError(`refused STATUS for "${folder}"`);
    }
    return this.folderState(folder, 'STATUS', {
      uidValidity: result.uidValidity,
      uidNext: result.uidNext,
      messages: result.messages,
    });
  }

  async open(folder: string): Promise<FolderStatus> {
    try {
      const box = await this.command(STATUS_BYTE_BUDGET, () => this.client.mailboxOpen(folder, { readOnly: true }));
      return this.folderState(folder, 'EXAMINE', {
        uidValidity: box.uidValidity,
        uidNext: box.uidNext,
        messages: box.exists,
      });
    } catch (err) {
      if (errorCode(err) === 'NotFound' || isNoResponse(err)) throw await this.folderNotFound(folder, err);
      throw this.mapError(err, 'examine');
    }
  }

  async listNew(
    fromUid: number,
    limit: number,
    options: ListOptions = {},
  ): Promise<{ messages: MessageSummary[]; complete: boolean; withheld?: number }> {
    const { since } = options;
    const { wanted, complete } = await this.searchNew(fromUid, limit, since);
    if (wanted.length === 0) return { messages: [], complete };
    // Each row becomes its summary as it arrives: imapflow's row (token tree) is garbage at once, so a run of 50,000
    // messages holds 50,000 small summaries, not 50,000 parsed FETCH rows. ENVELOPE only when asked for (its cost:
    // ListOptions.envelope); the event's header fields come from the parsed source anyway.
    const messages = await this.fetchRows(
      wanted,
      { uid: true, flags: true, internalDate: true, size: true, ...(options.envelope ? { envelope: true } : {}) },
      SUMMARY_ROW_BYTES,
      toSummary,
    );
    return this.endBeforeWithheld(wanted, messages, complete);
  }

  async listSizes(
    fromUid: number,
    limit: number,
    sizeBound: number,
  ): Promise<{ messages: SizedUid[]; complete: boolean; withheld?: number }> {
    const { wanted, complete } = await this.searchNew(fromUid, limit);
    if (wanted.length === 0) return { messages: [], complete };
    // One more SEARCH names the messages above the bound (RFC 9051 6.4.4: LARGER compares RFC822.SIZE); only those
    // are fetched, for their exact size. The rest count as `sizeBound` each.
    const larger = new Set(await this.searchUids({ uid: `${wanted[0]}:${wanted.at(-1)}`, larger: sizeBound }));
    const large = wanted.filter((uid) => larger.has(uid));
    const rows =
      large.length === 0
        ? []
        : await this.fetchRows(large, { uid: true, size: true }, SUMMARY_ROW_BYTES, (m) => ({
            uid: m.uid,
            size: Math.max(m.size ?? 0, sizeBound),
          }));
    const sized = await this.endBeforeWithheld(large, rows, complete);
    const sizes = new Map(sized.messages.map((m) => [m.uid, m.size]));
    const end = sized.withheld ?? Number.POSITIVE_INFINITY;
    // A large message gone meanwhile is left out, like one withheld and all after it.
    const messages = wanted
      .filter((uid) => uid < end && (sizes.has(uid) || !larger.has(uid)))
      .map((uid) => ({ uid, size: sizes.get(uid) ?? sizeBound }));
    return {
      messages,
      complete: sized.complete,
      ...(sized.withheld !== undefined ? { withheld: sized.withheld } : {}),
    };
  }

  /**
   * UIDs >= fromUid in the open folder, ascending, at most `limit` (the lowest first): `complete` when none was left
   * out. With `since`, narrowed by SEARCH SINCE (see listNew). Filters the `n:*` quirk.
   */
  private async searchNew(
    fromUid: number,
    limit: number,
    since?: Date,
  ): Promise<{ wanted: number[]; complete: boolean }> {
    const query: Record<string, unknown> = { uid: `${fromUid}:*` };
    // SEARCH SINCE compares dates in the server's time zone: ask for one day earlier. What arrived before `since`
    // stays in the result: the caller passes it over by its exact INTERNALDATE and moves its checkpoint past it.
    // (Dropping it here made a run whose first `limit` UIDs all arrived shortly before `since` return nothing,
    // and the next run look at the same UIDs again: no progress, ever.)
    if (since) query.since = new Date(since.getTime() - 24 * 3600 * 1000);
    const uids = (await this.searchUids(query)).filter((uid) => uid >= fromUid);
    uids.sort((a, b) => a - b);
    return { wanted: uids.slice(0, limit), complete: uids.length <= limit };
  }

  /** One UID SEARCH, its answer checked: a list of UIDs within 1..2^32-1, never "refused". */
  private async searchUids(query: Record<string, unknown>): Promise<number[]> {
    let found: Awaited<ReturnType<ImapFlow['search']>>;
    try {
      found = await this.command(SEARCH_BYTE_BUDGET, () => this.client.search(query, { uid: true }));
    } catch (err) {
      throw this.mapError(err, 'search');
    }
    // imapflow answers a refused SEARCH (NO/BAD) with false: that is a failure, never "no new mail"
    // (taken as an empty result, the checkpoint would move over unpublished messages).
    if (!Array.isArray(found)) {
      throw new ImapProtocolError(
        `The IMAP server ${this.settings.host}:${this.settings.port} refused UID SEARCH in "${this.settings.folder}".`,
        {
          hint: 'nothing to do if it passes: the next poll retries. If it repeats, check the server log for this user and folder.',
        },
      );
    }
    // A UID outside 1..2^32-1 is no UID: the checkpoint must never move to it.
    if (!found.every(isNzNumber)) throw this.protocolError('answered UID SEARCH with a UID outside 1..4294967295');
    return found;
  }

  /**
   * The rows fetched for `wanted`, in UID order. A UID the SEARCH found and the FETCH left out is expunged meanwhile
   * (left out here) or withheld by the server: then the list ends before it, so that no checkpoint moves past a
   * message nobody read.
   */
  private async endBeforeWithheld<T extends { uid: number }>(
    wanted: readonly number[],
    rows: T[],
    complete: boolean,
  ): Promise<{ messages: T[]; complete: boolean; withheld?: number }> {
    rows.sort((a, b) => a.uid - b.uid);
    const sent = new Set(rows.map((m) => m.uid));
    const missing = wanted.filter((uid) => !sent.has(uid));
    const [withheld] = missing.length > 0 ? await this.exists(missing) : [];
    if (withheld === undefined) return { messages: rows, complete };
    return { messages: rows.filter((m) => m.uid < withheld), complete: false, withheld };
  }

  async fetchSources(uids: readonly number[], options: FetchOptions): Promise<Map<number, MessageSource>> {
    const result = new Map<number, MessageSource>();
    if (uids.length === 0) return result;
    let kept = 0;
    const sources = await this.fetchRows(
      uids,
      {
        uid: true,
        size: true,
        ...(options.summaries ? { flags: true, internalDate: true } : {}),
        source: { start: 0, maxLength: options.maxBytes },
      },
      imapResponseLimits(options.maxBytes).maxResponseSize,
      (m): MessageSource | undefined => {
        if (!m.source) return undefined;
        // A server that ignores the partial sends the whole message: keep the download bound (a copy, so the rest
        // of the literal is freed now, not when the event is built).
        const cut = m.source.length > options.maxBytes;
        const bytes = cut ? Buffer.from(m.source.subarray(0, options.maxBytes)) : m.source;
        const size = Math.max(m.size ?? 0, m.source.length);
        kept += bytes.length;
        if (options.maxTotalBytes !== undefined && kept > options.maxTotalBytes) {
          this.client.close(); // the rest of this answer is not read
          throw new ReadBudgetExceeded(options.maxTotalBytes);
        }
        return {
          uid: m.uid,
          bytes,
          partial: bytes.length < size,
          ...(options.summaries ? { summary: { ...toSummary(m), size } } : {}),
        };
      },
    );
    for (const source of sources) result.set(source.uid, source);
    return result;
  }

  async exists(uids: readonly number[]): Promise<number[]> {
    if (uids.length === 0) return [];
    const found: number[] = [];
    // As ranges, in bounded commands (core/uid-set.ts).
    for (const { set } of uidSets(uids)) found.push(...(await this.searchUids({ uid: set })));
    const asked = new Set(uids);
    return found.filter((uid) => asked.has(uid)).sort((a, b) => a - b);
  }

  async streamSource(uid: number): Promise<{ stream: NodeJS.ReadableStream; size: number } | undefined> {
    try {
      const download = await this.command(Number.POSITIVE_INFINITY, () =>
        this.client.download(String(uid), undefined, {
          uid: true,
          chunkSize: DOWNLOAD_CHUNK_BYTES,
        }),
      );
      if (!download || !('content' in download) || !download.content) return undefined;
      return { stream: download.content, size: download.meta?.expectedSize ?? 0 };
    } catch (err) {
      throw this.mapError(err, 'fetch');
    }
  }

  async listFolders(): Promise<{ path: string; delimiter: string; specialUse?: string; flags: string[] }[]> {
    return this.listFoldersWithin(LIST_BYTE_BUDGET, LIST_TIMEOUT_MS);
  }

  async close(): Promise<void> {
    try {
      // A command still under way (cut off by the run's hard stop) would keep LOGOUT waiting: just close.
      if (this.busy === 0 && this.client.usable) await withTimeout(this.client.logout(), 3_000);
    } catch {
      // LOGOUT is a courtesy; the socket is closed below either way.
    } finally {
      this.client.close();
      this.state.detach(); // after LOGOUT: the run's signal still closes a LOGOUT that hangs
    }
  }

  async park(): Promise<boolean> {
    let deselected = this.busy === 0 && this.client.usable;
    // After EXAMINE: CLOSE (on a read-only folder it removes nothing), so that the next run's STATUS does not name
    // the selected folder (RFC 9051 6.3.11: its answer may then be stale).
    if (deselected && this.client.mailbox) {
      const closed = await withTimeout(
        this.command(STATUS_BYTE_BUDGET, () => this.client.mailboxClose()).catch(() => false),
        PARK_TIMEOUT_MS,
      );
      deselected = closed === true && this.client.usable;
    }
    this.state.detach();
    if (!deselected) {
      this.client.close();
      return false;
    }
    // Frozen or idle until the next run: imapflow's inactivity timeout must not end the session (it fires at once
    // when a thawed container finds it overdue), and the socket must not keep Node running.
    for (const socket of this.sockets()) {
      socket.setTimeout(0);
      socket.unref();
    }
    this.unrequestedLogged = false;
    return true;
  }

  resume(options: CallOptions): boolean {
    if (!this.client.usable) {
      this.client.close();
      return false;
    }
    this.state.attach(options.signal);
    const internal = this.client as unknown as { socketTimeout?: number };
    for (const socket of this.sockets()) socket.ref();
    this.sockets()[0]?.setTimeout(internal.socketTimeout ?? 30_000);
    return this.client.usable;
  }

  /** The session's socket, and the TCP socket under it after a STARTTLS upgrade. */
  private sockets(): Socket[] {
    const socket = (this.client as unknown as { socket?: Socket & { _parent?: Socket } }).socket;
    if (!socket) return [];
    return socket._parent ? [socket, socket._parent] : [socket];
  }

  /**
   * UID FETCH of `uids`, keeping only the rows asked for (streamed: nothing else is collected). The UIDs go out as
   * ranges in bounded commands (core/uid-set.ts: a comma list of thousands of UIDs exceeds a server's line limit),
   * each command with a read budget of `rowBytes` per UID it names and at most UNREQUESTED_ROWS_ALLOWED rows beyond
   * those (RFC 9051 allows unsolicited FETCH responses, but an endless stream of small ones would otherwise run until
   * the byte budget of a body FETCH: megabytes of rows, seconds of parsing). Each row kept is turned into `T` as it
   * arrives (`undefined`: nothing kept for it).
   */
  private async fetchRows<T>(
    uids: readonly number[],
    query: Parameters<ImapFlow['fetch']>[1],
    rowBytes: number,
    keep: (row: FetchMessageObject) => T | undefined,
  ): Promise<T[]> {
    const wanted = new Set(uids);
    const rows: T[] = [];
    let ignored = 0;
    try {
      for (const { set, count } of uidSets(uids)) {
        await this.command(commandByteBudget(count, rowBytes), async () => {
          // Collect first, process later: running another command inside the fetch loop deadlocks imapflow.
          const maxRows = count + UNREQUESTED_ROWS_ALLOWED;
          let received = 0;
          for await (const m of this.client.fetch(set, query, { uid: true })) {
            if (++received > maxRows) {
              this.client.close(); // the rest of this answer is not read
              throw new ReadBudgetExceeded(maxRows, 'FETCH rows');
            }
            const kept = requestedRows([m], wanted);
            ignored += kept.ignored;
            if (kept.rows.length > 0) {
              wanted.delete(m.uid);
              const row = keep(m);
              if (row !== undefined) rows.push(row);
            }
          }
        });
      }
    } catch (err) {
      throw this.mapError(err, 'fetch');
    }
    if (ignored > 0 && !this.unrequestedLogged) {
      this.unrequestedLogged = true;
      this.log?.warn('The IMAP server sent FETCH rows for UIDs that were not asked for; ignored', {
        host: this.settings.host,
        ignoredRows: ignored,
      });
    }
    return rows;
  }

  /** Runs one imapflow call within a byte budget (and counts it as under way). */
  private async command<T>(budget: number, call: () => Promise<T>): Promise<T> {
    this.busy++;
    try {
      return await withReadBudget(this.client, budget, call);
    } finally {
      this.busy--;
    }
  }

  private folderState(
    folder: string,
    verb: 'STATUS' | 'EXAMINE',
    raw: { uidValidity: unknown; uidNext: unknown; messages: unknown },
  ): FolderStatus {
    const field = invalidFolderField(raw);
    if (field) {
      const value = raw[field === 'UIDVALIDITY' ? 'uidValidity' : field === 'UIDNEXT' ? 'uidNext' : 'messages'];
      const shown = typeof value === 'number' || typeof value === 'bigint' ? ` ${value}` : ' (missing or not a number)';
      throw this.protocolError(
        `answered ${verb} "${folder}" with ${field}${shown}, outside ${field === 'MESSAGES' ? '0' : '1'}..4294967295`,
      );
    }
    return { uidValidity: String(raw.uidValidity), uidNext: raw.uidNext as number, messages: raw.messages as number };
  }

  private protocolError(what: string): ImapProtocolError {
    return new ImapProtocolError(`The IMAP server ${this.settings.host}:${this.settings.port} ${what}.`, {
      hint: 'the checkpoint did not move; the next poll retries. If this repeats, the server is broken: check it (or the proxy in front of it).',
    });
  }

  private mapError(err: unknown, step: string): ImapEventSourceError {
    return mapImapError(this.state.explain(err), this.settings, step);
  }

  /** The folder list for "did you mean", bounded in bytes and time: a server that lists endlessly is cut off. */
  private async listFoldersWithin(
    maxBytes: number,
    timeMs: number,
  ): Promise<{ path: string; delimiter: string; specialUse?: string; flags: string[] }[]> {
    let list: Awaited<ReturnType<ImapFlow['list']>> | undefined;
    try {
      list = await this.command(maxBytes, () => withTimeout(this.client.list(), timeMs));
    } catch (err) {
      throw this.mapError(err, 'list');
    }
    if (!list) {
      this.client.close(); // LIST still under way: this connection is of no further use
      throw this.protocolError(`did not finish LIST within ${timeMs / 1000} s`);
    }
    return list.slice(0, MAX_LISTED_FOLDERS).map((f) => ({
      path: f.path,
      delimiter: f.delimiter,
      ...(f.specialUse ? { specialUse: f.specialUse } : {}),
      flags: [...f.flags],
    }));
  }

  private async folderNotFound(folder: string, cause?: unknown): Promise<ImapEventSourceError> {
    let existing: Awaited<ReturnType<MailboxSession['listFolders']>> = [];
    try {
      existing = await this.listFoldersWithin(SUGGESTION_LIST_BYTE_BUDGET, SUGGESTION_LIST_TIMEOUT_MS);
    } catch {
      // Listing is best effort: the error below is still right.
    }
    return new FolderNotFoundError(
      folder,
      existing.map((f) => f.path),
      { cause, hint: folderNotFoundHint(folder, existing) },
    );
  }
}

// -------------------------------------------------------------------------------------------------
// Bounds on what a server may make a run read, and the connection's life (closed when the run ends).

/** Greeting, CAPABILITY and LOGIN answers are a few KB; a server that sends more during login is cut off. */
const CONNECT_BYTE_BUDGET = 1024 * 1024;
/** STATUS or EXAMINE (and imapflow's LIST of that one name after a NO). */
const STATUS_BYTE_BUDGET = 1024 * 1024;
/** One UID SEARCH answer: at most a line (core/imap-limits.ts MAX_LINE_BYTES) and its status lines. */
const SEARCH_BYTE_BUDGET = imapResponseLimits().maxLineLength + 1024 * 1024;
/** A FETCH row of flags, INTERNALDATE, size and (when asked for) ENVELOPE; 256 KiB is an envelope of thousands of addresses. */
const SUMMARY_ROW_BYTES = 256 * 1024;
/** FETCH rows one command may bring beyond one per UID it names (fetchRows). */
const UNREQUESTED_ROWS_ALLOWED = 1_000;
/**
 * The folder listing: about 20,000 folders of 50 bytes. imapflow collects the whole listing before it returns
 * (about 1 KB of heap per entry), so this also bounds its memory (about 20 MB).
 */
const LIST_BYTE_BUDGET = 1024 * 1024;
const LIST_TIMEOUT_MS = 30_000;
/** The "did you mean" listing of a missing folder: a diagnosis, not worth more than this. */
const SUGGESTION_LIST_BYTE_BUDGET = 1024 * 1024;
const SUGGESTION_LIST_TIMEOUT_MS = 5_000;
/** At most this many folders are compared for suggestions. */
const MAX_LISTED_FOLDERS = 10_000;
/** CLOSE before a session is kept: past this, it is closed instead. */
const PARK_TIMEOUT_MS = 3_000;
/** How often a command's bytes read are compared with its budget. */
const BUDGET_CHECK_MS = 20;

/** What the gateway knows about a client beyond imapflow's promises: its last error, and the run's abort signal. */
export interface ClientState {
  /** The error to report for `err`: a response over imapflow's limits arrives as an 'error' event, the command only sees the closed connection. */
  explain(err: unknown): unknown;
  /** Listens to another run's signal (a kept session taken up); closes the client at once if it already aborted. */
  attach(signal: AbortSignal | undefined): void;
  /** Stops listening to the run's signal (the session is closed or kept). */
  detach(): void;
}

/** Listens to the client's errors (without a listener a late socket error crashes the process) and to the run's signal. */
function watchClient(client: ImapFlow, signal: AbortSignal | undefined, log: Log | undefined): ClientState {
  let failure: unknown;
  client.on('error', (err: unknown) => {
    failure ??= err;
    log?.debug('IMAP connection error', { code: errorCode(err) });
  });
  // The run ended or reached its hard stop: whatever is under way (a login that never completes, an endless
  // answer), the socket goes now, not when a socket timeout fires in a frozen container.
  const abort = () => client.close();
  let bound: AbortSignal | undefined;
  const attach = (next: AbortSignal | undefined) => {
    bound?.removeEventListener('abort', abort);
    bound = next;
    if (next?.aborted) client.close();
    else next?.addEventListener('abort', abort, { once: true });
  };
  attach(signal);
  return {
    explain: (err) => {
      if (err instanceof ReadBudgetExceeded) return err;
      const code = errorCode(failure);
      if (code && (LIMIT_CODES.has(code) || code === 'STARTTLS_INJECTION')) return failure;
      return err ?? failure;
    },
    attach,
    detach: () => attach(undefined),
  };
}

class ReadBudgetExceeded extends Error {
  readonly code = 'ReadBudgetExceeded';
  constructor(
    readonly budget: number,
    unit: 'bytes' | 'FETCH rows' = 'bytes',
  ) {
    super(`the server sent more than ${budget} ${unit} in answer to one command`);
  }
}

/**
 * Runs `call` while watching the bytes the client reads: past `budget` the connection is closed (an endless
 * stream of untagged responses, a listing that never ends) and the call fails with ReadBudgetExceeded.
 */
async function withReadBudget<T>(client: ImapFlow, budget: number, call: () => Promise<T>): Promise<T> {
  if (!Number.isFinite(budget)) return call();
  const socketOf = () => (client as unknown as { socket?: { bytesRead: number } }).socket;
  let socket = socketOf();
  let start = socket?.bytesRead ?? 0;
  let exceeded = false;
  const timer = setInterval(() => {
    const current = socketOf();
    if (current !== socket) {
      socket = current; // the socket changes when STARTTLS upgrades it
      start = 0;
    }
    if (current && current.bytesRead - start > budget) {
      exceeded = true;
      client.close();
    }
  }, BUDGET_CHECK_MS);
  try {
    return await call();
  } catch (err) {
    throw exceeded ? new ReadBudgetExceeded(budget) : err;
  } finally {
    clearInterval(timer);
  }
}

function toSummary(m: FetchMessageObject): MessageSummary {
  const internalDate = toIso(m.internalDate);
  return {
    uid: m.uid,
    size: m.size ?? 0,
    // \\Recent is session state (and gone in IMAP4rev2): it says nothing a subscriber could use.
    flags: [...(m.flags ?? [])].filter((f) => f !== '\\Recent'),
    ...(internalDate ? { internalDate } : {}),
    ...(m.envelope ? { envelope: toEnvelope(m.envelope) } : {}),
  };
}

function toEnvelope(env: NonNullable<FetchMessageObject['envelope']>): MessageEnvelope {
  const date = toIso(env.date);
  return {
    ...(env.messageId ? { messageId: env.messageId } : {}),
    ...(env.inReplyTo ? { inReplyTo: env.inReplyTo } : {}),
    ...(env.subject ? { subject: env.subject } : {}),
    ...(date ? { date } : {}),
    from: addresses(env.from),
    to: addresses(env.to),
    cc: addresses(env.cc),
    replyTo: addresses(env.replyTo),
  };
}

function addresses(list: MessageAddressObject[] | undefined): Address[] {
  return (list ?? []).filter((a) => a.address || a.name).map((a) => ({ name: a.name ?? '', address: a.address ?? '' }));
}

function toIso(value: Date | string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const d = value instanceof Date ? value : new Date(value);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

function errorCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

function isNoResponse(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { responseStatus?: string }).responseStatus === 'NO';
}

/** imapflow's codes for a response over its limits (imapResponseLimits) or too many rows for one command. */
const LIMIT_CODES = new Set([
  'LineTooLarge',
  'LiteralTooLarge',
  'ResponseTooLarge',
  'TooManyTokens',
  'TooManyResponses',
]);

/** A failed OAuth2 login: the token refused for this mailbox, or no OAuth2 mechanism offered; else as mapImapError. */
function mapOAuth2LoginError(
  err: unknown,
  settings: MailboxSettings,
  client: ImapFlow,
  accessToken: string,
): ImapEventSourceError {
  const where = `${settings.host}:${settings.port}`;
  const provider = settings.oauth2!.provider;
  const e = (err ?? {}) as { authenticationFailed?: boolean; message?: string; oauthError?: unknown };
  if (e.message === 'Unsupported authentication mechanism') {
    const offered = [...(client.capabilities?.keys() ?? [])].filter((c) => c.startsWith('AUTH=')).join(' ');
    return new OAuth2UnsupportedError(
      `The IMAP server ${where} offers neither AUTH=OAUTHBEARER nor AUTH=XOAUTH2 (it offers ${offered || 'no AUTH= mechanism'}), so the OAuth2 access token cannot be used.`,
      {
        cause: err,
        hint: 'check "host" (Microsoft 365: outlook.office365.com, Google: imap.gmail.com) and "security"/"port" (some servers offer OAuth2 only after TLS); for a server without OAuth2 use "password" instead of "oauth2".',
      },
    );
  }
  if (e.authenticationFailed) {
    // The SASL error the server sent (RFC 7628: {"status": "401", ...}): only its status, it is the server's text.
    const status = (e.oauthError as { status?: unknown } | undefined)?.status;
    const detail = typeof status === 'string' && /^[\w.-]{1,32}$/.test(status) ? ` (SASL status ${status})` : '';
    return new ImapAuthError(
      `The IMAP server ${where} refused the OAuth2 access token for mailbox "${settings.username}"${detail}: the token was issued, but it does not grant this mailbox.`,
      { cause: err, hint: mailboxGrantHint(provider) },
    );
  }
  return mapImapError(err, settings, 'connect', accessToken);
}

/** Maps imapflow, socket and TLS failures to the poller's errors. Never includes the password. */
export function mapImapError(
  err: unknown,
  settings: MailboxSettings,
  step: string,
  accessToken?: string,
): ImapEventSourceError {
  if (err instanceof ImapEventSourceError) return err;
  const code = errorCode(err);
  const where = `${settings.host}:${settings.port}`;
  const e = (err ?? {}) as {
    authenticationFailed?: boolean;
    tlsFailed?: boolean;
    message?: string;
    reason?: string;
    responseText?: string;
  };
  if (e.authenticationFailed) {
    return new ImapAuthError(`The IMAP server ${where} rejected the login of user "${settings.username}".`, {
      cause: err,
      hint: FIXES.login,
    });
  }
  const certificate = code ? CERTIFICATE_CODES[code] : undefined;
  if (code && certificate) {
    const name = settings.tlsServername ?? settings.host;
    const detail = certificate.problem === 'name' ? ` "${name}" (${e.reason ?? 'name not in the certificate'})` : '';
    return new TlsCertificateError(`The TLS certificate of ${where} ${certificate.text}${detail} (${code}).`, {
      cause: err,
      hint: certificateFix(certificate.problem),
      tlsCode: code,
    });
  }
  if (code && /^ERR_SSL|^ERR_TLS|^EPROTO$/.test(code)) {
    return new TlsCertificateError(`TLS handshake with ${where} failed (${code}).`, {
      cause: err,
      tlsCode: code,
      hint: FIXES.handshake,
    });
  }
  if (code === 'STARTTLS_INJECTION') {
    return new StartTlsInjectionError(
      `The IMAP server ${where} (or something between it and the poller) sent data after agreeing to STARTTLS and before the TLS handshake: a possible man-in-the-middle injecting plaintext commands. The connection was closed before login.`,
      {
        cause: err,
        hint: 'check the network path to the server (proxies, middleboxes, DNS) and the server itself; until then prefer security "tls" on the implicit-TLS port (usually 993), which leaves no plaintext phase.',
      },
    );
  }
  if (code && (LIMIT_CODES.has(code) || code === 'ReadBudgetExceeded')) {
    return new ImapProtocolError(
      `The IMAP server ${where} sent more than a poll accepts during ${step}: ${redact(e.message ?? code, settings)} (${code}).`,
      {
        cause: err,
        hint: 'the connection was closed and the checkpoint did not move; the next poll retries. If it repeats, the server answers with far more than asked for (a whole message for a partial fetch, an endless line or listing): check the server or the proxy in front of it.',
      },
    );
  }
  // After the TLS codes: imapflow also sets tlsFailed when the upgrade's handshake rejects the certificate.
  if (e.tlsFailed) {
    return new StartTlsUnavailableError(
      `The IMAP server ${where} does not offer STARTTLS, and security is "starttls" (required upgrade).`,
      {
        cause: err,
        hint: FIXES.starttls,
      },
    );
  }

  if (code && code in UNREACHABLE_CODES) {
    return new ImapConnectionError(
      `Cannot talk to the IMAP server ${where} during ${step}: ${UNREACHABLE_CODES[code]} (${code}).`,
      { cause: err, hint: FIXES.unreachable },
    );
  }
  if (err === undefined || err === null) {
    return new ImapConnectionError(`The connection to the IMAP server ${where} was lost during ${step}.`, {
      hint: 'check the server and the network path; the next poll retries.',
    });
  }
  const text = e.responseText ?? e.message ?? String(err);
  return new ImapProtocolError(
    `The IMAP server ${where} failed during ${step}: ${redact(text, settings, accessToken)}${code ? ` (${code})` : ''}.`,
    { cause: err },
  );
}

function redact(text: string, settings: MailboxSettings, accessToken?: string): string {
  let out = text;
  for (const secret of [settings.password, accessToken]) if (secret) out = out.split(secret).join('***');
  return out.slice(0, 300);
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
