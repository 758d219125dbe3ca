/**
 * A real Dovecot 2.3 for integration tests, run in the foreground from a self-contained temp dir
 * (`dovecot -F -c DIR/dovecot.conf`) on free 127.0.0.1 ports, with helpers that change mailboxes
 * through `doveadm`, and append messages with one IMAP MULTIAPPEND.
 *
 * Each user has its own passwd-file (`DIR/passwd/<user>`), read by Dovecot on first use, so every
 * test creates its own user without a restart. The harness reaches any mailbox as a master user
 * (`<user>*harness`), so tests may change a user's password freely.
 * Must run as root (CI does): Dovecot switches to its login users and to mail uid 5000.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { TlsMaterial } from './tls.js';

const run = promisify(execFile);

const DOVECOT_BIN = process.env.DOVECOT_BIN ?? (existsSync('/usr/sbin/dovecot') ? '/usr/sbin/dovecot' : 'dovecot');
const DOVEADM_BIN = process.env.DOVEADM_BIN ?? (existsSync('/usr/bin/doveadm') ? '/usr/bin/doveadm' : 'doveadm');

/** Mail uid/gid for all users (uid 0 is always rejected by Dovecot). */
const MAIL_UID = 5000;
const MAIL_GID = 5000;
const MASTER_USER = 'harness';

export type Separator = '/' | '.';

/** The seed folder tree (the product's Exchange-like settings page), parents before children. */
export function seedFolders(separator: Separator = '/'): string[] {
  const kunden = ['Firma', 'Kundenbetreuung', 'kunden'];
  const paths = [
    ['Aufgaben'],
    ['Entwürfe'],
    ['Gelöschte-Objekte'],
    ['Gesendete-Objekte'],
    ['Journal'],
    ['Junk-E-Mail'],
    ['Kalender'],
    ['Kontakte'],
    ['Newsletter'],
    ['Newsletter', 'IBM'],
    ['Newsletter', 'Microsoft'],
    ['Newsletter', 'United Planet'],
    ['Newsletter', 'VMware'],
    ['Notizen'],
    ['Postausgang'],
    ['INBOX'],
    ['RSS-Feeds'],
    ['RSS-Feeds', 'Tagesschau'],
    ['Firma'],
    ['Firma', 'Kundenbetreuung'],
    kunden,
    ...['a', 'b', 'c', 'd', 'e'].map((x) => [...kunden, x]),
    ['Firma', 'Qualitätssicherung'],
    ['Firma', 'Vertrieb'],
    ['Vorgeschlagene-Kontakte'],
  ];
  return paths.map((p) => p.join(separator));
}

/** The seed tree with the `/` delimiter. */
export const SEED_FOLDERS: readonly string[] = Object.freeze(seedFolders('/'));

export interface DovecotStartOptions {
  /** TLS material: enables `ssl = yes` (imaps listener + STARTTLS). Omit for `ssl = no`. */
  tls?: TlsMaterial;
  /** Hierarchy delimiter of the inbox namespace. @default '/' */
  separator?: Separator;
  /** OAuth2 sign-in (oauth2 passdb, token introspection) for these users instead of passwords. */
  oauth2?: DovecotOAuth2Options;
}

/**
 * Dovecot 2.3's oauth2 passdb: each user gets its own passdb (`username_filter`) whose introspection URL is
 * `<introspectionBaseUrl>/<user>`, so the endpoint can answer "token valid, but not for this mailbox"
 * (Dovecot does not send the login name). Users must be known at start; the master user still logs in
 * with PLAIN (the harness's APPEND), so AUTH=PLAIN stays on offer, as on Exchange Online.
 */
export interface DovecotOAuth2Options {
  /** `['xoauth2']` behaves like Exchange Online, `['xoauth2', 'oauthbearer']` like Gmail. */
  mechanisms: ReadonlyArray<'xoauth2' | 'oauthbearer'>;
  introspectionBaseUrl: string;
  users: readonly string[];
}

/** Serializable description of a running instance (travels through vitest `provide`/`inject`). */
export interface DovecotInfo {
  host: '127.0.0.1';
  /** Plain IMAP port; offers STARTTLS iff `tls`. */
  imapPort: number;
  /** Implicit-TLS port, or null when `tls` is false. */
  imapsPort: number | null;
  tls: boolean;
  separator: Separator;
  dir: string;
  confPath: string;
  logPath: string;
  pid: number;
  masterUser: string;
  masterPassword: string;
}

export interface User {
  username: string;
  password: string;
}
export type UserRef = string | { username: string };

export interface AppendOptions {
  internalDate?: Date;
  flags?: string[];
}
export interface AppendItem extends AppendOptions {
  raw: Buffer | string;
}

export interface FolderStatus {
  messages: number;
  unseen: number;
  uidNext: number;
  /** A number here; imapflow reports it as a BigInt. */
  uidValidity: number;
  highestModseq: number;
}

export interface MessageFlags {
  uid: number;
  /** Flags without the session-dependent `\Recent`, sorted. */
  flags: string[];
}

/**
 * Servers started by this process, also recorded in a registry dir so that a later run can clean
 * up after a runner that was killed without running its teardown (see `sweepOrphans`).
 */
const REGISTRY_DIR = join(tmpdir(), 'ies-test-servers');
interface RegistryEntry {
  owner: number;
  pid: number;
  marker: string;
  dir?: string;
}
const liveChildren = new Map<ChildProcess, RegistryEntry>();
let exitHookInstalled = false;
const registryFile = (pid: number) => join(REGISTRY_DIR, `${pid}.json`);

/**
 * Tracks a server process: SIGKILLs it if this process exits without stopping it, and registers
 * it for `sweepOrphans`. `marker` must appear in its command line (guards against pid reuse).
 */
export function trackChild(child: ChildProcess, marker: string, dir?: string): void {
  if (child.pid === undefined) return;
  const entry: RegistryEntry = { owner: process.pid, pid: child.pid, marker, dir };
  mkdirSync(REGISTRY_DIR, { recursive: true });
  writeFileSync(registryFile(child.pid), JSON.stringify(entry));
  liveChildren.set(child, entry);
  child.once('exit', () => {
    liveChildren.delete(child);
    rmSync(registryFile(entry.pid), { force: true });
  });
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', killLiveChildren);
  }
}

function killLiveChildren(): void {
  for (const [child, entry] of liveChildren) {
    child.kill('SIGKILL');
    rmSync(registryFile(entry.pid), { force: true });
    if (entry.dir) rmSafe(entry.dir);
  }
}

function rmSafe(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch {
    // a dying server may still write into it; a later sweep retries
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Kills servers (and removes their temp dirs) whose starting process is gone. Returns how many. */
export function sweepOrphans(): number {
  let swept = 0;
  let files: string[];
  try {
    files = readdirSync(REGISTRY_DIR);
  } catch {
    return 0;
  }
  for (const file of files) {
    let entry: RegistryEntry;
    try {
      entry = JSON.parse(readFileSync(join(REGISTRY_DIR, file), 'utf8')) as RegistryEntry;
    } catch {
      continue;
    }
    if (isAlive(entry.owner)) continue;
    let cmdline = '';
    try {
      cmdline = readFileSync(`/proc/${entry.pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      // gone already
    }
    if (cmdline.includes(entry.marker)) {
      process.kill(entry.pid, 'SIGKILL');
      swept++;
    }
    if (entry.dir) rmSafe(entry.dir);
    rmSync(join(REGISTRY_DIR, file), { force: true });
  }
  return swept;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Sends SIGTERM, then SIGKILL if the process is still there after `graceMs`. */
export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves with the first line the server sends (e.g. an IMAP greeting). */
function readGreeting(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    let buf = '';
    sock.setTimeout(2000, () => sock.destroy(new Error('greeting timeout')));
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      if (buf.includes('\r\n')) {
        sock.destroy();
        resolve(buf.split('\r\n')[0]!);
      }
    });
    sock.on('error', reject);
    sock.on('close', () => reject(new Error('closed before greeting')));
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    sock.on('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.on('error', () => resolve(false));
  });
}

async function tail(path: string, lines = 30): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log file)';
  }
}

function renderConf(o: {
  dir: string;
  tls?: TlsMaterial;
  separator: Separator;
  imapPort: number;
  imapsPort: number;
  oauth2?: DovecotOAuth2Options;
}): string {
  const { dir, tls } = o;
  const ssl = tls
    ? [
        'ssl = yes',
        `ssl_cert = <${tls.serverCertPath}`,
        `ssl_key = <${tls.serverKeyPath}`,
        'ssl_min_protocol = TLSv1.2',
        // SNI: a client asking for the other host name gets that host's certificate.
        `local_name ${tls.otherHostName} {`,
        `  ssl_cert = <${tls.otherHostCertPath}`,
        `  ssl_key = <${tls.otherHostKeyPath}`,
        '}',
      ]
    : ['ssl = no', 'disable_plaintext_auth = no'];
  return [
    `instance_name = ies-${randomBytes(4).toString('hex')}`,
    `base_dir = ${dir}/run`,
    `state_dir = ${dir}/state`,
    `log_path = ${dir}/dovecot.log`,
    'protocols = imap',
    'listen = 127.0.0.1',
    ...ssl,
    `auth_mechanisms = plain login${o.oauth2 ? ` ${o.oauth2.mechanisms.join(' ')}` : ''}`,
    'auth_verbose = yes',
    // All tests log in from 127.0.0.1: without these, one test's failed logins would delay the
    // logins of other tests (auth penalty per IP, up to 15 s) and each failure takes 2 s.
    'auth_failure_delay = 0',
    'service anvil {',
    '  unix_listener anvil-auth-penalty {',
    '    mode = 0',
    '  }',
    '}',
    'auth_master_user_separator = *',
    'mail_location = maildir:~/Maildir:LAYOUT=fs',
    'mail_fsync = never',
    'mail_max_userip_connections = 200',
    'namespace inbox {',
    '  inbox = yes',
    `  separator = ${o.separator}`,
    '  prefix =',
    '}',
    'passdb {',
    '  driver = passwd-file',
    `  args = scheme=PLAIN ${dir}/master-users`,
    '  master = yes',
    '}',
    // One passwd-file per user: Dovecot re-checks a passwd-file at most once per second (mtime and
    // size), so users appended to a shared file by parallel tests could stay unknown for a second.
    'passdb {',
    '  driver = passwd-file',
    `  args = scheme=PLAIN ${dir}/passwd/%u`,
    ...(o.oauth2 ? ['  mechanisms = plain login'] : []),
    '}',
    ...(o.oauth2?.users ?? []).flatMap((user, i) => [
      'passdb {',
      '  driver = oauth2',
      `  mechanisms = ${o.oauth2!.mechanisms.join(' ')}`,
      `  username_filter = ${user}`,
      `  args = ${dir}/oauth2-${i}.conf.ext`,
      '}',
    ]),
    'userdb {',
    '  driver = static',
    // allow_all_users: an oauth2 passdb cannot answer user lookups (doveadm, master logins).
    `  args = uid=${MAIL_UID} gid=${MAIL_GID} home=${dir}/mail/%u${o.oauth2 ? ' allow_all_users=yes' : ''}`,
    '}',
    'service imap-login {',
    '  inet_listener imap {',
    '    address = 127.0.0.1',
    `    port = ${o.imapPort}`,
    '  }',
    '  inet_listener imaps {',
    '    address = 127.0.0.1',
    `    port = ${o.imapsPort}`,
    '    ssl = yes',
    '  }',
    // Login and mail processes serve one connection after another instead of one process per connection (a
    // fork, exec, config read and TLS setup each): ~13 instead of ~70 ms of Dovecot CPU per TLS session
    // (connect, login, STATUS, FETCH, LOGOUT). All users share one uid, so a process can serve any of them.
    '  service_count = 0',
    '  process_min_avail = 2',
    '}',
    'service imap {',
    '  service_count = 0',
    '  process_min_avail = 4',
    '}',
    '',
  ].join('\n');
}

const nameOf = (u: UserRef) => (typeof u === 'string' ? u : u.username);

export class DovecotServer {
  private constructor(
    readonly info: DovecotInfo,
    private readonly child?: ChildProcess,
  ) {}

  /** Starts a new instance; the caller owns it and must `stop()` it. */
  static async start(options: DovecotStartOptions = {}): Promise<DovecotServer> {
    if (typeof process.getuid === 'function' && process.getuid() !== 0) {
      throw new Error('DovecotServer must run as root (Dovecot switches to the mail uid and login users)');
    }
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        return await DovecotServer.tryStart(options);
      } catch (err) {
        lastError = err;
        if (!/Address already in use/.test(String(err))) break; // a port race: retry with new ports
      }
    }
    throw lastError;
  }

  private static async tryStart(options: DovecotStartOptions): Promise<DovecotServer> {
    const separator = options.separator ?? '/';
    const dir = await mkdtemp(join(tmpdir(), 'ies-dovecot-'));
    await chmod(dir, 0o755); // mail processes (uid 5000) must traverse it
    await mkdir(join(dir, 'mail'));
    await chown(join(dir, 'mail'), MAIL_UID, MAIL_GID);
    const masterPassword = randomBytes(12).toString('hex');
    await writeFile(join(dir, 'master-users'), `${MASTER_USER}:{PLAIN}${masterPassword}\n`, { mode: 0o644 });
    await mkdir(join(dir, 'passwd'));
    const imapPort = await freePort();
    const imapsPort = options.tls ? await freePort() : 0;
    const confPath = join(dir, 'dovecot.conf');
    const logPath = join(dir, 'dovecot.log');
    await writeFile(
      confPath,
      renderConf({ dir, tls: options.tls, separator, imapPort, imapsPort, oauth2: options.oauth2 }),
    );
    for (const [i, user] of (options.oauth2?.users ?? []).entries()) {
      if (!/^[A-Za-z0-9._@+-]+$/.test(user)) throw new Error(`unsupported test username: ${user}`);
      await writeFile(
        join(dir, `oauth2-${i}.conf.ext`),
        [
          'introspection_mode = post',
          `introspection_url = ${options.oauth2!.introspectionBaseUrl}/${user}`,
          'username_attribute = username',
          'active_attribute = active',
          'active_value = true',
          'timeout_msecs = 5000',
          '',
        ].join('\n'),
      );
    }

    const child = spawn(DOVECOT_BIN, ['-F', '-c', confPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    trackChild(child, `-c ${confPath}`, dir);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    let spawnError: Error | undefined;
    child.on('error', (e) => {
      spawnError = e;
    });

    const fail = async (why: string): Promise<never> => {
      await stopChild(child, 1000);
      const log = await tail(logPath);
      await rm(dir, { recursive: true, force: true });
      throw new Error(
        `Dovecot failed to start: ${why}\n--- stderr ---\n${stderr.trim()}\n--- ${logPath} (tail) ---\n${log}`,
      );
    };

    const deadline = Date.now() + 10_000;
    for (;;) {
      if (spawnError) return fail(spawnError.message);
      if (child.exitCode !== null || child.signalCode !== null)
        return fail(`exited with ${child.exitCode ?? child.signalCode}`);
      if (Date.now() > deadline) return fail('ports not ready after 10 s');
      try {
        const greeting = await readGreeting(imapPort);
        if (!greeting.startsWith('* OK')) return fail(`unexpected greeting: ${greeting}`);
        if (!options.tls || (await canConnect(imapsPort))) break;
      } catch {
        // not listening yet
      }
      await sleep(20);
    }
    const info: DovecotInfo = {
      host: '127.0.0.1',
      imapPort,
      imapsPort: options.tls ? imapsPort : null,
      tls: !!options.tls,
      separator,
      dir,
      confPath,
      logPath,
      pid: child.pid!,
      masterUser: MASTER_USER,
      masterPassword,
    };
    return new DovecotServer(info, child);
  }

  /** A handle on an instance started elsewhere (e.g. by the global setup); it cannot stop it. */
  static attach(info: DovecotInfo): DovecotServer {
    return new DovecotServer(info);
  }

  get host(): string {
    return this.info.host;
  }
  get imapPort(): number {
    return this.info.imapPort;
  }
  get imapsPort(): number | null {
    return this.info.imapsPort;
  }
  get separator(): Separator {
    return this.info.separator;
  }
  get confPath(): string {
    return this.info.confPath;
  }

  /** Stops an instance this handle started: SIGTERM, SIGKILL after 5 s; removes the temp dir. */
  async stop(): Promise<void> {
    if (!this.child) throw new Error('this DovecotServer handle is attached, not owned: it cannot stop the server');
    await stopChild(this.child);
    await rm(this.info.dir, { recursive: true, force: true });
  }

  /** Runs `doveadm -c CONF ...args` and returns stdout. */
  async doveadm(args: string[]): Promise<string> {
    try {
      const { stdout } = await run(DOVEADM_BIN, ['-c', this.info.confPath, ...args], { maxBuffer: 64 << 20 });
      return stdout;
    } catch (err) {
      const e = err as { stderr?: string; code?: number; message: string };
      throw new Error(`doveadm ${args.join(' ')} failed (exit ${e.code}): ${(e.stderr ?? e.message).trim()}`, {
        cause: err,
      });
    }
  }

  private passwdFile(username: string): string {
    if (!/^[A-Za-z0-9._@+-]+$/.test(username)) throw new Error(`unsupported test username: ${username}`);
    return join(this.info.dir, 'passwd', username);
  }

  /** Adds a fresh user (random unique name and password unless given); usable immediately. */
  async createUser(opts: Partial<User> = {}): Promise<User> {
    const username = opts.username ?? `u${randomBytes(6).toString('hex')}`;
    const password = opts.password ?? randomBytes(12).toString('base64url');
    if (/[\r\n]/.test(password)) throw new Error('password must not contain line breaks');
    await writeFile(this.passwdFile(username), `${username}:{PLAIN}${password}\n`, { flag: 'wx', mode: 0o644 });
    return { username, password };
  }

  /**
   * Changes a user's password. Takes up to a second: Dovecot re-checks a passwd-file at most once
   * per second, by mtime (1 s resolution) and size, so this moves the mtime forward and waits for
   * the next second before returning.
   */
  async setPassword(user: UserRef, password: string): Promise<void> {
    const file = this.passwdFile(nameOf(user));
    const before = await stat(file);
    await writeFile(file, `${nameOf(user)}:{PLAIN}${password}\n`);
    const mtime = Math.floor(before.mtimeMs / 1000) + 1; // differs from what Dovecot last saw
    await utimes(file, mtime, mtime);
    await sleep(1010 - (Date.now() % 1000)); // a lookup earlier in this second may have synced already
  }

  /** Folder names as Dovecot lists them (UTF-8, with this server's separator). */
  async listFolders(user: UserRef): Promise<string[]> {
    return (await this.doveadm(['mailbox', 'list', '-u', nameOf(user)])).split('\n').filter(Boolean);
  }

  /** Creates (and subscribes) folders; missing parents are created explicitly first. */
  async createFolders(user: UserRef, paths: readonly string[]): Promise<void> {
    const sep = this.info.separator;
    const wanted: string[] = [];
    for (const path of paths) {
      const parts = path.split(sep);
      for (let i = 1; i <= parts.length; i++) {
        const p = parts.slice(0, i).join(sep);
        if (!wanted.includes(p)) wanted.push(p);
      }
    }
    const existing = new Set(await this.listFolders(user));
    const missing = wanted.filter((p) => !existing.has(p));
    if (missing.length) await this.doveadm(['mailbox', 'create', '-u', nameOf(user), '-s', ...missing]);
  }

  /** Creates the seed folder tree (see `seedFolders`) with this server's separator. */
  async createSeedTree(user: UserRef): Promise<string[]> {
    const folders = seedFolders(this.info.separator);
    await this.createFolders(user, folders);
    return folders;
  }

  async deleteFolder(user: UserRef, folder: string, opts: { recursive?: boolean } = {}): Promise<void> {
    await this.doveadm(['mailbox', 'delete', '-u', nameOf(user), '-s', ...(opts.recursive ? ['-r'] : []), folder]);
  }

  async renameFolder(user: UserRef, from: string, to: string): Promise<void> {
    await this.doveadm(['mailbox', 'rename', '-u', nameOf(user), '-s', from, to]);
  }

  /** Sets UIDVALIDITY; messages and UIDs stay. */
  async setUidValidity(user: UserRef, folder: string, uidValidity: number): Promise<void> {
    await this.doveadm(['mailbox', 'update', '-u', nameOf(user), '--uid-validity', String(uidValidity), folder]);
  }

  /** Raises UIDNEXT to at least `uidNext`. */
  async setMinUidNext(user: UserRef, folder: string, uidNext: number): Promise<void> {
    await this.doveadm(['mailbox', 'update', '-u', nameOf(user), '--min-next-uid', String(uidNext), folder]);
  }

  async expunge(user: UserRef, folder: string, uid: number | string): Promise<void> {
    await this.doveadm(['expunge', '-u', nameOf(user), 'mailbox', folder, 'uid', String(uid)]);
  }

  /** Drops the user's live IMAP sessions. */
  async kick(user: UserRef): Promise<void> {
    await this.doveadm(['kick', nameOf(user)]).catch((err: Error) => {
      if ((err.cause as { code?: number } | undefined)?.code !== 68) throw err; // 68: nobody was logged in
    });
  }

  async status(user: UserRef, folder: string): Promise<FolderStatus> {
    const out = await this.doveadm([
      '-f',
      'tab',
      'mailbox',
      'status',
      '-u',
      nameOf(user),
      'messages unseen uidnext uidvalidity highestmodseq',
      folder,
    ]);
    const [head, values] = out
      .trim()
      .split('\n')
      .map((l) => l.split('\t'));
    const get = (k: string) => Number(values![head!.indexOf(k)]);
    return {
      messages: get('messages'),
      unseen: get('unseen'),
      uidNext: get('uidnext'),
      uidValidity: get('uidvalidity'),
      highestModseq: get('highestmodseq'),
    };
  }

  /** Flags of every message in the folder, read with doveadm (no IMAP session, changes nothing). */
  async getFlags(user: UserRef, folder: string): Promise<MessageFlags[]> {
    const out = await this.doveadm(['-f', 'tab', 'fetch', '-u', nameOf(user), 'uid flags', 'mailbox', folder, 'all']);
    return out
      .trim()
      .split('\n')
      .slice(1)
      .filter(Boolean)
      .map((line) => {
        const [uid, flags = ''] = line.split('\t');
        return {
          uid: Number(uid),
          flags: flags
            .split(' ')
            .filter((f) => f && f !== '\\Recent')
            .sort(),
        };
      })
      .sort((a, b) => a.uid - b.uid);
  }

  /**
   * Delivers messages straight into the user's INBOX Maildir (`new/`), as a local delivery agent does: no IMAP
   * session, so thousands of mailboxes fill in seconds. Dovecot assigns their UIDs when the folder is next opened
   * (STATUS included), in the order written.
   */
  async deliverToInbox(user: UserRef, messages: readonly Buffer[]): Promise<void> {
    const home = join(this.info.dir, 'mail', nameOf(user));
    const maildir = join(home, 'Maildir');
    for (const dir of [home, maildir, join(maildir, 'cur'), join(maildir, 'new'), join(maildir, 'tmp')]) {
      await mkdir(dir, { recursive: true });
      await chown(dir, MAIL_UID, MAIL_GID);
    }
    for (const [i, raw] of messages.entries()) {
      const name = `${Math.floor(Date.now() / 1000)}.M${i}P${process.pid}R${randomBytes(6).toString('hex')}.ies`;
      const tmp = join(maildir, 'tmp', name);
      await writeFile(tmp, raw, { mode: 0o600 });
      await chown(tmp, MAIL_UID, MAIL_GID);
      await rename(tmp, join(maildir, 'new', name));
    }
  }

  /** Appends one message with IMAP APPEND; returns its UID. */
  async appendMessage(user: UserRef, folder: string, raw: Buffer | string, opts: AppendOptions = {}): Promise<number> {
    const [uid] = await this.appendMany(user, folder, [{ raw, ...opts }]);
    return uid!;
  }

  /**
   * Appends messages in order with one MULTIAPPEND command (one transaction: 1,000 small messages
   * take about 0.3 s); returns their UIDs in the same order. Logs in as the master user on the
   * plain port.
   */
  async appendMany(
    user: UserRef,
    folder: string,
    messages: ReadonlyArray<Buffer | string | AppendItem>,
  ): Promise<number[]> {
    if (messages.length === 0) return [];
    const append: Array<string | Buffer> = [`APPEND ${quote(encodeMailboxName(folder))}`];
    for (const m of messages) {
      const item: AppendItem = Buffer.isBuffer(m) || typeof m === 'string' ? { raw: m } : m;
      const raw = Buffer.isBuffer(item.raw) ? item.raw : Buffer.from(item.raw, 'utf8');
      const date = item.internalDate ? ` ${quote(imapDate(item.internalDate))}` : '';
      append.push(` (${(item.flags ?? []).join(' ')})${date} {${raw.length}+}\r\n`, raw);
    }
    const [, reply] = await imapPipeline(this.info.imapPort, [
      [`LOGIN ${quote(`${nameOf(user)}*${this.info.masterUser}`)} ${quote(this.info.masterPassword)}`],
      append,
      ['LOGOUT'],
    ]);
    const uidSet = /^OK \[APPENDUID \d+ ([\d:,]+)\]/.exec(reply!)?.[1];
    if (!uidSet) throw new Error(`APPEND to ${folder} failed: ${reply}`);
    const uids = uidSet.split(',').flatMap((range) => {
      const [lo, hi = lo] = range.split(':').map(Number) as [number, number?];
      return Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
    });
    if (uids.length !== messages.length)
      throw new Error(`APPENDUID ${uidSet} does not match ${messages.length} messages`);
    return uids;
  }
}

function quote(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** IMAP modified UTF-7 (RFC 3501 5.1.3). */
export function encodeMailboxName(name: string): string {
  return name.replace(/&/g, '&-').replace(/[^\x20-\x7e]+/g, (chunk) => {
    const utf16 = Buffer.alloc(chunk.length * 2);
    for (let i = 0; i < chunk.length; i++) utf16.writeUInt16BE(chunk.charCodeAt(i), i * 2);
    return `&${utf16.toString('base64').replace(/=+$/, '').replace(/\//g, ',')}-`;
  });
}

function imapDate(d: Date): string {
  const m = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][d.getUTCMonth()];
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getUTCDate())}-${m}-${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

/**
 * Sends all commands at once (each a list of parts; literals inline as LITERAL+) and resolves with
 * the tagged reply of each (`OK ...`, `NO ...`), in order. A minimal client for the harness only:
 * the commands used here get no literals back.
 */
function imapPipeline(port: number, commands: ReadonlyArray<ReadonlyArray<string | Buffer>>): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    const replies: string[] = [];
    let buf = '';
    let greeted = false;
    const fail = (err: Error) => {
      sock.destroy();
      reject(err);
    };
    sock.on('error', fail);
    sock.on('close', () =>
      fail(
        new Error(`IMAP connection closed after ${replies.length}/${commands.length} replies: ${buf.slice(0, 200)}`),
      ),
    );
    sock.on('data', (chunk) => {
      buf += chunk.toString('latin1');
      let nl: number;
      while ((nl = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        if (!greeted) {
          greeted = true;
          if (!/^\* OK .*LITERAL\+/.test(line)) return fail(new Error(`unexpected greeting: ${line}`));
          commands.forEach((parts, i) => {
            sock.write(`A${i} `);
            for (const part of parts) sock.write(part);
            sock.write('\r\n');
          });
          continue;
        }
        const tagged = /^A(\d+) (.*)$/.exec(line);
        if (!tagged) continue; // untagged data
        const reply = tagged[2]!;
        if (replies.length === 0 && !reply.startsWith('OK')) return fail(new Error(`harness login failed: ${reply}`));
        replies.push(reply);
        if (replies.length === commands.length) {
          sock.removeAllListeners('close');
          sock.end();
          resolve(replies);
        }
      }
    });
  });
}
