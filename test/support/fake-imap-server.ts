/**
 * A scriptable IMAP4rev1 server on 127.0.0.1 for what a real server (Dovecot) cannot be made to do: lie, flood,
 * go silent, ignore partial fetches, inject plaintext after STARTTLS. It speaks what imapflow and the poller use
 * (greeting, CAPABILITY, LOGIN, STARTTLS, STATUS, SELECT/EXAMINE, LIST, UID SEARCH, UID FETCH with partial
 * BODY.PEEK[]<0.N>, NOOP, LOGOUT) over a real socket, optionally with implicit TLS or STARTTLS, and misbehaves as
 * `faults` says (mutable between runs). Huge answers are streamed with backpressure, never built in memory.
 *
 *   const server = await FakeImapServer.start({ tls: { key, cert } });
 *   server.addMessages(3);
 *   server.faults = { status: { UIDNEXT: '4294967296' } };
 *   ...
 *   server.openConnections; // sockets still open
 *   await server.close();
 */
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, TLSSocket } from 'node:tls';

export interface FakeImapFaults {
  /** No greeting at all: the server accepts the connection and stays silent. */
  readonly noGreeting?: boolean;
  /** LOGIN gets no tagged answer: silence, an endless stream of untagged lines, or one line of this many bytes without CRLF. */
  readonly login?: 'silent' | 'endless-untagged' | { readonly hugeLineBytes: number };
  /** STATUS: raw values for these items, a STATUS response without its list, or NO. */
  readonly status?: Partial<Record<'UIDNEXT' | 'UIDVALIDITY' | 'MESSAGES', string>> | 'malformed' | 'no';
  /** EXAMINE/SELECT: raw values for these response codes. */
  readonly examine?: Partial<Record<'UIDNEXT' | 'UIDVALIDITY', string>>;
  /** Extra tokens appended to every UID SEARCH answer (e.g. "4294967296"). */
  readonly searchExtra?: readonly string[];
  /** UID SEARCH LARGER n answers as if there were no LARGER (every message). */
  readonly searchIgnoresLarger?: boolean;
  /** The body FETCH answers the whole message, ignoring the `<0.N>` partial. */
  readonly ignorePartial?: boolean;
  /** The body FETCH announces a literal of this many bytes for every message (and streams it). */
  readonly bodyLiteralBytes?: number;
  /** FETCH rows for UIDs nobody asked for, after the real rows (`body`: with a BODY[] literal when one was asked for). */
  readonly unrequestedRows?: readonly { readonly uid: number; readonly body: boolean }[];
  /** Every FETCH is followed by unsolicited rows without end. */
  readonly endlessFetchRows?: boolean;
  /** UIDs the body FETCH leaves out although they exist (SEARCH and the summary FETCH still show them). */
  readonly withheld?: readonly number[];
  /** UIDs the summary FETCH (no body) leaves out although they exist (SEARCH still finds them). */
  readonly withheldFromListing?: readonly number[];
  /** `LIST "" "*"` never ends (a LIST of one exact name answers normally). */
  readonly endlessList?: boolean;
  /** Plaintext right after the STARTTLS OK, before the TLS handshake (a man-in-the-middle's injection). */
  readonly starttlsInjection?: boolean;
}

export interface FakeImapMessage {
  readonly uid: number;
  readonly internalDate: Date;
  readonly subject: string;
  readonly messageId: string;
  /** Size of the whole RFC 822 source in bytes (the body is filler generated on demand). */
  readonly size: number;
}

export interface FakeImapServerOptions {
  /** Implicit TLS with this key and certificate (PEM). */
  readonly tls?: { readonly key: string; readonly cert: string };
  /** Offer STARTTLS with this key and certificate (PEM); ignored with `tls`. */
  readonly starttls?: { readonly key: string; readonly cert: string };
  readonly username?: string;
  readonly password?: string;
  /** The one folder besides INBOX. @default 'Support' */
  readonly folder?: string;
  readonly uidValidity?: number;
}

const DAY_NAMES = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number) => String(n).padStart(2, '0');
const FILLER_LINE = `${'x'.repeat(76)}\r\n`;
/** Size of the chunks huge answers are written in. */
const CHUNK = 64 * 1024;

export class FakeImapServer {
  faults: FakeImapFaults = {};
  uidValidity: number;
  readonly username: string;
  readonly password: string;
  readonly folder: string;
  /** Messages of `folder`, in UID order. */
  readonly messages: FakeImapMessage[] = [];
  /** UIDNEXT; `addMessages` moves it. */
  uidNext = 1;
  /** Every connection accepted so far. */
  connections = 0;
  /** Command names received, in order (e.g. "LOGIN", "UID FETCH"). */
  readonly commands: string[] = [];
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    private readonly options: FakeImapServerOptions,
  ) {
    this.username = options.username ?? 'fake-user';
    this.password = options.password ?? 'fake-password-Zq9';
    this.folder = options.folder ?? 'Support';
    this.uidValidity = options.uidValidity ?? 1_700_000_000;
  }

  static async start(options: FakeImapServerOptions = {}): Promise<FakeImapServer> {
    let self: FakeImapServer | undefined;
    const onSocket = (socket: Socket) => self?.accept(socket);
    const server = options.tls
      ? createTlsServer({ key: options.tls.key, cert: options.tls.cert }, onSocket)
      : createServer(onSocket);
    self = new FakeImapServer(server, options);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return self;
  }

  get port(): number {
    const address = this.server.address();
    if (!address || typeof address === 'string') throw new Error('FakeImapServer is not listening');
    return address.port;
  }

  /** Connections still open (from the server's side). */
  get openConnections(): number {
    return this.sockets.size;
  }

  /** Waits until every connection is closed; false when `timeoutMs` passed first. */
  async waitForNoConnections(timeoutMs: number): Promise<boolean> {
    for (const until = Date.now() + timeoutMs; Date.now() < until; ) {
      if (this.sockets.size === 0) return true;
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.sockets.size === 0;
  }

  /** Appends `count` messages of `size` bytes (at least the header), arriving at `internalDate`. */
  addMessages(count: number, spec: { size?: number; internalDate?: Date } = {}): number[] {
    const uids: number[] = [];
    for (let i = 0; i < count; i++) {
      const uid = this.uidNext++;
      this.messages.push({
        uid,
        internalDate: spec.internalDate ?? new Date(),
        subject: `Fake message ${uid}`,
        messageId: `<fake-${uid}-${this.uidValidity}@fake.example>`,
        size: Math.max(spec.size ?? 0, this.header({ uid, subject: `Fake message ${uid}` } as FakeImapMessage).length),
      });
      uids.push(uid);
    }
    return uids;
  }

  /** Removes messages (EXPUNGE). */
  expunge(uids: readonly number[]): void {
    for (const uid of uids) {
      const i = this.messages.findIndex((m) => m.uid === uid);
      if (i >= 0) this.messages.splice(i, 1);
    }
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---------------------------------------------------------------------------------------------
  // Connections

  private accept(socket: Socket): void {
    this.connections++;
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => {});
    const connection = new Connection(this, socket);
    const caps = this.capabilities(false, socket instanceof TLSSocket);
    if (!this.faults.noGreeting) void connection.write(`* OK [CAPABILITY ${caps}] Fake IMAP ready\r\n`);
  }

  /** Capabilities after (or before) login. */
  capabilities(loggedIn: boolean, tlsActive: boolean): string {
    const caps = ['IMAP4rev1', 'LITERAL+'];
    if (!loggedIn && !tlsActive && this.options.starttls && !this.options.tls) caps.push('STARTTLS');
    return caps.join(' ');
  }

  starttlsMaterial(): { key: string; cert: string } | undefined {
    return this.options.tls ? undefined : this.options.starttls;
  }

  header(m: Pick<FakeImapMessage, 'uid' | 'subject'> & Partial<FakeImapMessage>): string {
    const date = m.internalDate ?? new Date(0);
    return [
      'From: Fake Sender <sender@fake.example>',
      'To: Support <support@fake.example>',
      `Subject: ${m.subject}`,
      `Message-ID: ${m.messageId ?? `<fake-${m.uid}@fake.example>`}`,
      `Date: ${rfc2822(date)}`,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=us-ascii',
      '',
      '',
    ].join('\r\n');
  }
}

/** One client connection: reads commands (with literals), answers them one after another. */
class Connection {
  private buffer = Buffer.alloc(0);
  private loggedIn = false;
  private tlsActive: boolean;
  private selected = false;
  private queue: Promise<void> = Promise.resolve();
  private pendingLiteral: { bytes: number; parts: string[] } | undefined;

  constructor(
    private readonly server: FakeImapServer,
    private socket: Socket,
  ) {
    this.tlsActive = socket instanceof TLSSocket;
    socket.on('data', this.onData);
  }

  private readonly onData = (chunk: Buffer): void => {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      if (this.pendingLiteral) {
        if (this.buffer.length < this.pendingLiteral.bytes) return;
        this.pendingLiteral.parts.push(this.buffer.subarray(0, this.pendingLiteral.bytes).toString('latin1'));
        this.buffer = this.buffer.subarray(this.pendingLiteral.bytes);
        const rest = this.buffer.indexOf('\r\n');
        if (rest < 0) return;
        const line = this.buffer.subarray(0, rest).toString('latin1');
        this.buffer = this.buffer.subarray(rest + 2);
        if (!this.continueLine(line)) return;
        continue;
      }
      const end = this.buffer.indexOf('\r\n');
      if (end < 0) return;
      const line = this.buffer.subarray(0, end).toString('latin1');
      this.buffer = this.buffer.subarray(end + 2);
      this.pendingLiteral = { bytes: 0, parts: [] };
      if (!this.continueLine(line)) return;
    }
  };

  /** Adds a line to the command under construction; false while a literal is still expected. */
  private continueLine(line: string): boolean {
    const pending = this.pendingLiteral!;
    const literal = /\{(\d+)(\+?)\}$/.exec(line);
    if (literal) {
      pending.parts.push(line.slice(0, literal.index));
      pending.bytes = Number(literal[1]);
      if (!literal[2]) void this.write('+ go ahead\r\n');
      return true;
    }
    pending.parts.push(line);
    this.pendingLiteral = undefined;
    const command = pending.parts.join('');
    this.queue = this.queue
      .then(() => this.handle(command))
      .catch(() => {
        this.socket.destroy();
      });
    return true;
  }

  /** Writes with backpressure; resolves false when the socket is gone. */
  async write(data: string | Buffer): Promise<boolean> {
    if (this.socket.destroyed) return false;
    if (!this.socket.write(data)) {
      const socket = this.socket;
      await new Promise<void>((resolve) => {
        const done = () => {
          socket.off('drain', done);
          socket.off('close', done);
          resolve();
        };
        socket.on('drain', done);
        socket.on('close', done);
      });
    }
    return !this.socket.destroyed;
  }

  private async handle(command: string): Promise<void> {
    const [tag = '*', rawName = '', ...rest] = tokenize(command);
    let name = rawName.toUpperCase();
    let args = rest;
    if (name === 'UID') {
      name = `UID ${(args[0] ?? '').toUpperCase()}`;
      args = args.slice(1);
    }
    this.server.commands.push(name);
    const faults = this.server.faults;
    switch (name) {
      case 'CAPABILITY':
        await this.write(
          `* CAPABILITY ${this.server.capabilities(this.loggedIn, this.tlsActive)}\r\n${tag} OK CAPABILITY done\r\n`,
        );
        return;
      case 'NOOP':
        await this.write(`${tag} OK NOOP done\r\n`);
        return;
      case 'STARTTLS':
        await this.startTls(tag);
        return;
      case 'LOGIN':
        await this.login(tag, args);
        return;
      case 'LOGOUT':
        await this.write(`* BYE Fake IMAP logging out\r\n${tag} OK LOGOUT done\r\n`);
        this.socket.end();
        return;
    }
    if (!this.loggedIn) {
      await this.write(`${tag} BAD not logged in\r\n`);
      return;
    }
    switch (name) {
      case 'LIST':
      case 'LSUB':
        await this.list(tag, args[1] ?? '');
        return;
      case 'STATUS':
        await this.status(tag, args[0] ?? '');
        return;
      case 'SELECT':
      case 'EXAMINE':
        await this.select(tag, name, args[0] ?? '');
        return;
      case 'UID SEARCH':
        await this.search(tag, args);
        return;
      case 'UID FETCH':
        await this.fetch(tag, args[0] ?? '', args.slice(1).join(' '));
        return;
      case 'CLOSE':
      case 'UNSELECT':
        this.selected = false;
        await this.write(`${tag} OK ${name} done\r\n`);
        return;
      default:
        void faults;
        await this.write(`${tag} BAD unknown command\r\n`);
    }
  }

  private async startTls(tag: string): Promise<void> {
    const material = this.server.starttlsMaterial();
    if (!material || this.tlsActive) {
      await this.write(`${tag} BAD STARTTLS not available\r\n`);
      return;
    }
    const injected = this.server.faults.starttlsInjection ? '* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] injected\r\n' : '';
    await this.write(`${tag} OK Begin TLS negotiation now\r\n${injected}`);
    const plain = this.socket;
    plain.off('data', this.onData);
    this.buffer = Buffer.alloc(0);
    const secure = new TLSSocket(plain, { isServer: true, key: material.key, cert: material.cert });
    secure.on('error', () => plain.destroy());
    secure.on('data', this.onData);
    this.socket = secure;
    this.tlsActive = true;
  }

  private async login(tag: string, args: string[]): Promise<void> {
    const fault = this.server.faults.login;
    if (fault === 'silent') return;
    if (fault === 'endless-untagged') {
      for (let i = 0; await this.write(`* OK still thinking about your login (${i})\r\n`.repeat(500)); i++);
      return;
    }
    if (fault) {
      const line = Buffer.alloc(CHUNK, 'y');
      await this.write('* OK ');
      for (let sent = 0; sent < fault.hugeLineBytes && (await this.write(line)); sent += CHUNK);
      return;
    }
    if (args[0] !== this.server.username || args[1] !== this.server.password) {
      await this.write(`${tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n`);
      return;
    }
    this.loggedIn = true;
    await this.write(`${tag} OK [CAPABILITY ${this.server.capabilities(true, this.tlsActive)}] Logged in\r\n`);
  }

  private folders(): string[] {
    return ['INBOX', this.server.folder];
  }

  private async list(tag: string, pattern: string): Promise<void> {
    if (pattern === '*' && this.server.faults.endlessList) {
      for (let i = 0; ; i++) {
        const lines = Array.from({ length: 200 }, (_, j) => `* LIST (\\HasNoChildren) "/" "Folder ${i}-${j}"\r\n`);
        if (!(await this.write(lines.join('')))) return;
      }
    }
    const names = pattern === '*' || pattern === '%' ? this.folders() : this.folders().filter((f) => f === pattern);
    await this.write(
      `${names.map((f) => `* LIST (\\HasNoChildren) "/" ${quote(f)}\r\n`).join('')}${tag} OK LIST done\r\n`,
    );
  }

  private async status(tag: string, folder: string): Promise<void> {
    const fault = this.server.faults.status;
    if (!this.folders().includes(folder)) {
      await this.write(`${tag} NO [NONEXISTENT] Mailbox doesn't exist: ${folder}\r\n`);
      return;
    }
    if (fault === 'no') {
      await this.write(`${tag} NO [SERVERBUG] Internal error\r\n`);
      return;
    }
    if (fault === 'malformed') {
      await this.write(`* STATUS ${quote(folder)} UIDNEXT\r\n${tag} OK STATUS done\r\n`);
      return;
    }
    const state = this.state(folder);
    const values = {
      MESSAGES: String(state.messages),
      UIDNEXT: String(state.uidNext),
      UIDVALIDITY: String(this.server.uidValidity),
      ...fault,
    };
    await this.write(
      `* STATUS ${quote(folder)} (MESSAGES ${values.MESSAGES} UIDNEXT ${values.UIDNEXT} UIDVALIDITY ${values.UIDVALIDITY})\r\n${tag} OK STATUS done\r\n`,
    );
  }

  private state(folder: string): { messages: number; uidNext: number } {
    return folder === this.server.folder
      ? { messages: this.server.messages.length, uidNext: this.server.uidNext }
      : { messages: 0, uidNext: 1 };
  }

  private async select(tag: string, verb: string, folder: string): Promise<void> {
    if (!this.folders().includes(folder)) {
      await this.write(`${tag} NO [NONEXISTENT] Mailbox doesn't exist: ${folder}\r\n`);
      return;
    }
    this.selected = true;
    const state = this.state(folder);
    const values = {
      UIDNEXT: String(state.uidNext),
      UIDVALIDITY: String(this.server.uidValidity),
      ...this.server.faults.examine,
    };
    await this.write(
      [
        '* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)',
        '* OK [PERMANENTFLAGS ()] Read-only mailbox.',
        `* ${state.messages} EXISTS`,
        '* 0 RECENT',
        `* OK [UIDVALIDITY ${values.UIDVALIDITY}] UIDs valid`,
        `* OK [UIDNEXT ${values.UIDNEXT}] Predicted next UID`,
        `${tag} OK [${verb === 'EXAMINE' ? 'READ-ONLY' : 'READ-WRITE'}] ${verb} completed`,
        '',
      ].join('\r\n'),
    );
  }

  private async search(tag: string, args: string[]): Promise<void> {
    const i = args.findIndex((a) => a.toUpperCase() === 'UID');
    const set = i >= 0 ? (args[i + 1] ?? '') : '1:*';
    // LARGER n (RFC 9051 6.4.4): RFC822.SIZE above n; ignored with the `searchIgnoresLarger` fault.
    const larger = args.findIndex((a) => a.toUpperCase() === 'LARGER');
    const above = larger >= 0 && !this.server.faults.searchIgnoresLarger ? Number(args[larger + 1]) : -1;
    const uids = this.inSet(set, false)
      .filter((m) => m.size > above)
      .map((m) => m.uid);
    const extra = this.server.faults.searchExtra ?? [];
    await this.write(`* SEARCH${[...uids, ...extra].map((u) => ` ${u}`).join('')}\r\n${tag} OK SEARCH done\r\n`);
  }

  /** Messages whose UID is in `set`; with `starQuirk`, `n:*` beyond the last UID still matches the last message (RFC 3501 6.4.8). */
  private inSet(set: string, starQuirk: boolean): FakeImapMessage[] {
    const last = this.server.messages.at(-1)?.uid ?? 0;
    const ranges = set.split(',').map((part) => {
      const [a = '', b = a] = part.split(':');
      const lo = a === '*' ? last : Number(a);
      const hi = b === '*' ? last : Number(b);
      return [Math.min(lo, hi), Math.max(lo, hi)] as const;
    });
    const hit = (uid: number) => ranges.some(([lo, hi]) => uid >= lo && uid <= hi);
    const matched = this.server.messages.filter((m) => hit(m.uid));
    if (matched.length === 0 && starQuirk && set.endsWith(':*') && last > 0) return [this.server.messages.at(-1)!];
    return matched;
  }

  private async fetch(tag: string, set: string, items: string): Promise<void> {
    if (!this.selected) {
      await this.write(`${tag} BAD no mailbox selected\r\n`);
      return;
    }
    const faults = this.server.faults;
    const partial = /BODY\.PEEK\[\]<(\d+)\.(\d+)>/i.exec(items);
    const wantsBody = partial !== null || /BODY(\.PEEK)?\[\]/i.test(items);
    const withheld = new Set((wantsBody ? faults.withheld : faults.withheldFromListing) ?? []);
    for (const m of this.inSet(set, true)) {
      if (withheld.has(m.uid)) continue;
      if (!(await this.row(m, items, wantsBody, partial))) return;
    }
    for (const extra of faults.unrequestedRows ?? []) {
      const m = this.fakeMessage(extra.uid);
      if (!(await this.row(m, items, wantsBody && extra.body, partial))) return;
    }
    if (faults.endlessFetchRows) {
      for (let uid = 100_000; ; uid++) {
        const row = `* ${uid} FETCH (UID ${uid} FLAGS () RFC822.SIZE 10)\r\n`.repeat(100);
        if (!(await this.write(row))) return;
      }
    }
    await this.write(`${tag} OK FETCH done\r\n`);
  }

  private fakeMessage(uid: number): FakeImapMessage {
    return {
      uid,
      internalDate: new Date(),
      subject: `Unrequested ${uid}`,
      messageId: `<unrequested-${uid}@fake.example>`,
      size: 500,
    };
  }

  /** One FETCH row; false when the socket is gone. */
  private async row(
    m: FakeImapMessage,
    items: string,
    body: boolean,
    partial: RegExpExecArray | null,
  ): Promise<boolean> {
    const faults = this.server.faults;
    const seq = Math.max(1, this.server.messages.findIndex((x) => x.uid === m.uid) + 1);
    const parts = [`UID ${m.uid}`];
    if (/FLAGS/i.test(items)) parts.push('FLAGS ()');
    if (/INTERNALDATE/i.test(items)) parts.push(`INTERNALDATE "${internalDate(m.internalDate)}"`);
    if (/RFC822\.SIZE/i.test(items)) parts.push(`RFC822.SIZE ${m.size}`);
    if (/ENVELOPE/i.test(items)) parts.push(`ENVELOPE ${envelope(m)}`);
    if (!body) return this.write(`* ${seq} FETCH (${parts.join(' ')})\r\n`);
    const start = partial ? Number(partial[1]) : 0;
    const length =
      faults.bodyLiteralBytes ??
      (partial && !faults.ignorePartial ? Math.max(0, Math.min(Number(partial[2]), m.size - start)) : m.size - start);
    const key =
      partial && !faults.ignorePartial && faults.bodyLiteralBytes === undefined ? `BODY[]<${start}>` : 'BODY[]';
    if (!(await this.write(`* ${seq} FETCH (${parts.join(' ')} ${key} {${length}}\r\n`))) return false;
    if (!(await this.source(m, start, length))) return false;
    return this.write(')\r\n');
  }

  /** Streams `length` bytes of the message's source from `start` (filler beyond the message's size). */
  private async source(m: FakeImapMessage, start: number, length: number): Promise<boolean> {
    const header = Buffer.from(this.server.header(m), 'latin1');
    const filler = Buffer.from(FILLER_LINE.repeat(Math.ceil(CHUNK / FILLER_LINE.length) + 1), 'latin1');
    let position = start;
    const end = start + length;
    while (position < end) {
      let chunk: Buffer;
      if (position < header.length) chunk = header.subarray(position, Math.min(end, header.length));
      else {
        const offset = (position - header.length) % FILLER_LINE.length;
        chunk = filler.subarray(offset, offset + Math.min(CHUNK, end - position));
      }
      if (!(await this.write(chunk))) return false;
      position += chunk.length;
    }
    return true;
  }
}

/** Top-level tokens of a command line: atoms, quoted strings (unescaped), parenthesized lists and literals (raw). */
function tokenize(line: string): string[] {
  const tokens: string[] = [];
  let i = 0;
  while (i < line.length) {
    const c = line[i]!;
    if (c === ' ') {
      i++;
    } else if (c === '"') {
      let value = '';
      for (i++; i < line.length && line[i] !== '"'; i++) value += line[i] === '\\' ? line[++i] : line[i];
      tokens.push(value);
      i++;
    } else if (c === '(' || c === '[') {
      let depth = 0;
      const begin = i;
      for (; i < line.length; i++) {
        if (line[i] === '(' || line[i] === '[') depth++;
        if (line[i] === ')' || line[i] === ']') depth--;
        if (depth === 0 && line[i] === ' ') break;
      }
      tokens.push(line.slice(begin, i));
    } else {
      const begin = i;
      while (i < line.length && line[i] !== ' ') {
        if (line[i] === '[' || line[i] === '(') {
          let depth = 0;
          for (; i < line.length; i++) {
            if (line[i] === '[' || line[i] === '(') depth++;
            if (line[i] === ']' || line[i] === ')') depth--;
            if (depth === 0) break;
          }
        }
        i++;
      }
      tokens.push(line.slice(begin, i));
    }
  }
  return tokens;
}

function quote(value: string): string {
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

function rfc2822(d: Date): string {
  return `${DAY_NAMES[d.getUTCDay()]}, ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
}

function internalDate(d: Date): string {
  return `${pad(d.getUTCDate())}-${MONTHS[d.getUTCMonth()]}-${d.getUTCFullYear()} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
}

function envelope(m: FakeImapMessage): string {
  const sender = '(("Fake Sender" NIL "sender" "fake.example"))';
  return `(${quote(rfc2822(m.internalDate))} ${quote(m.subject)} ${sender} ${sender} ${sender} ((NIL NIL "support" "fake.example")) NIL NIL NIL ${quote(m.messageId)})`;
}
