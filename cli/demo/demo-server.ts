/**
 * The demo's IMAP server: hoodiecrow-imap (pure Node, in memory) on 127.0.0.1 with implicit TLS from a
 * CA generated on the fly, seeded with the folder tree of the original product's settings page.
 */
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type { MailboxSettings } from '../../functions/poller/core/settings.js';
import { generateDemoCertificates } from './certificates.js';

/** The example folder tree of the seed (an Exchange-like server, delimiter "/"), with special-use flags. */
export const SEED_FOLDERS: readonly { path: string; specialUse?: string }[] = [
  { path: 'Aufgaben' },
  { path: 'Entwürfe', specialUse: '\\Drafts' },
  { path: 'Gelöschte-Objekte', specialUse: '\\Trash' },
  { path: 'Gesendete-Objekte', specialUse: '\\Sent' },
  { path: 'Journal' },
  { path: 'Junk-E-Mail', specialUse: '\\Junk' },
  { path: 'Kalender' },
  { path: 'Kontakte' },
  { path: 'Newsletter' },
  { path: 'Newsletter/IBM' },
  { path: 'Newsletter/Microsoft' },
  { path: 'Newsletter/United Planet' },
  { path: 'Newsletter/VMware' },
  { path: 'Notizen' },
  { path: 'Postausgang' },
  { path: 'RSS-Feeds' },
  { path: 'RSS-Feeds/Tagesschau' },
  { path: 'Firma' },
  { path: 'Firma/Kundenbetreuung' },
  { path: 'Firma/Kundenbetreuung/kunden' },
  ...['a', 'b', 'c', 'd', 'e'].map((x) => ({ path: `Firma/Kundenbetreuung/kunden/${x}` })),
  { path: 'Firma/Qualitätssicherung' },
  { path: 'Firma/Vertrieb' },
  { path: 'Vorgeschlagene-Kontakte' },
];

/** The folder the demo watches: deep, with the server's delimiter, to show how paths are written. */
export const DEMO_FOLDER = 'Firma/Kundenbetreuung/kunden/a';
export const DEMO_USER = 'demo@example.test';

export interface DemoServer {
  readonly host: string;
  readonly port: number;
  /** Settings (contract 1) that reach this server, with `caBundle` = the generated CA. */
  readonly settings: MailboxSettings;
  /** Appends a message (RFC 822 source) to a folder as a mail delivery would; returns its UID. */
  append(folder: string, source: string, date?: Date): number;
  close(): Promise<void>;
}

/** Modified UTF-7 (RFC 3501 5.1.3), the encoding hoodiecrow expects for folder names in its storage. */
export function encodeModifiedUtf7(name: string): string {
  return name.replace(/&/g, '&-').replace(/[^\x20-\x7e]+/g, (run) => {
    const utf16be = Buffer.from(run, 'utf16le').swap16();
    return `&${utf16be.toString('base64').replace(/=+$/, '').replace(/\//g, ',')}-`;
  });
}

interface HoodiecrowFolder {
  'special-use'?: string;
  uidvalidity?: number;
  messages?: { raw: string; internaldate?: Date; flags?: string[] }[];
  folders?: Record<string, HoodiecrowFolder>;
}
interface HoodiecrowMailbox {
  uidnext: number;
}
interface Hoodiecrow {
  listen(port: number, host: string, callback: () => void): void;
  close(callback: () => void): void;
  server: { address(): AddressInfo; on(event: 'error', listener: (err: Error) => void): void };
  getMailbox(path: string): HoodiecrowMailbox | undefined;
  appendMessage(
    mailbox: string,
    flags: string[],
    internaldate: Date | undefined,
    raw: string,
  ): { message: { uid: number } };
}
type HoodiecrowFactory = (options: Record<string, unknown>) => Hoodiecrow;
type FetchHandler = (connection: unknown, message: unknown, query: { partial?: number[] }) => unknown;

/**
 * hoodiecrow 2.1 answers `UID FETCH 1,2 (BODY.PEEK[]<0.N>)` with an empty body for every message but the
 * first: it shortens the shared request's `partial` in place (to label the response `<0>`). This plugin
 * gives each message the range that was asked for. (imapflow fetches a batch of sources exactly so.)
 */
function partialFetchFix(require: NodeRequire) {
  const builtin = require('hoodiecrow-imap/lib/commands/handlers/fetch') as Record<string, FetchHandler>;
  const requested = new WeakMap<object, number[]>();
  return (server: { fetchHandlers: Record<string, FetchHandler> }) => {
    for (const key of ['BODY', 'BODY.PEEK']) {
      server.fetchHandlers[key] = (connection, message, query) => {
        if (query.partial) {
          if (!requested.has(query)) requested.set(query, [...query.partial]);
          query.partial = [...requested.get(query)!];
        }
        return builtin[key]!(connection, message, query);
      };
    }
  };
}

function buildStorage(uidValidity: number, seed: readonly { folder: string; source: string; date?: Date }[]) {
  const root: Record<string, HoodiecrowFolder> = {};
  for (const { path, specialUse } of SEED_FOLDERS) {
    const parts = path.split('/');
    let level = root;
    let folder: HoodiecrowFolder | undefined;
    for (const part of parts) {
      const key = encodeModifiedUtf7(part);
      folder = level[key] ??= { uidvalidity: uidValidity, messages: [] };
      level = folder.folders ??= {};
    }
    if (specialUse) folder!['special-use'] = specialUse;
  }
  const inbox: HoodiecrowFolder = { uidvalidity: uidValidity, messages: [], 'special-use': '\\Inbox' };
  for (const m of seed) {
    const target =
      m.folder === 'INBOX'
        ? inbox
        : m.folder
            .split('/')
            .reduce<HoodiecrowFolder | undefined>(
              (f, part, i) => (i === 0 ? root : f?.folders)?.[encodeModifiedUtf7(part)],
              undefined,
            );
    if (!target) throw new Error(`demo seed: unknown folder ${m.folder}`);
    target.messages!.push({ raw: m.source, internaldate: m.date ?? new Date(), flags: [] });
  }
  return { INBOX: inbox, '': { separator: '/', folders: root } };
}

/**
 * Starts the demo server on 127.0.0.1 (port 0 = any free port).
 * `uidValidity` is fixed by default so that a local state file stays valid across demo runs.
 */
export async function startDemoServer(
  options: {
    port?: number;
    uidValidity?: number;
    seed?: readonly { folder: string; source: string; date?: Date }[];
  } = {},
): Promise<DemoServer> {
  // Loaded lazily: a dev dependency, needed only by the demo.
  const require = createRequire(import.meta.url);
  const hoodiecrow = require('hoodiecrow-imap') as HoodiecrowFactory;
  const certs = generateDemoCertificates({ serverName: 'localhost', altNames: ['localhost', '127.0.0.1'] });
  const password = randomBytes(12).toString('base64url');
  const server = hoodiecrow({
    secureConnection: true,
    credentials: { key: certs.serverKeyPem, cert: certs.serverCertPem },
    users: { [DEMO_USER]: { password } },
    plugins: ['ID', 'UNSELECT', 'ENABLE', 'NAMESPACE', 'UIDPLUS', 'SPECIAL-USE', 'IDLE', partialFetchFix(require)],
    storage: buildStorage(options.uidValidity ?? 1_700_000_000, options.seed ?? []),
  });
  await new Promise<void>((resolve, reject) => {
    server.server.on('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', resolve);
  });
  const { port } = server.server.address();
  return {
    host: 'localhost',
    port,
    settings: {
      host: 'localhost',
      port,
      security: 'tls',
      username: DEMO_USER,
      password,
      folder: DEMO_FOLDER,
      caBundle: certs.caCertPem,
    },
    append(folder, source, date) {
      const mailbox = folder === 'INBOX' ? folder : encodeModifiedUtf7Path(folder);
      if (!server.getMailbox(mailbox)) throw new Error(`demo server: no folder ${folder}`);
      return server.appendMessage(mailbox, [], date, source).message.uid;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function encodeModifiedUtf7Path(path: string): string {
  return path.split('/').map(encodeModifiedUtf7).join('/');
}
