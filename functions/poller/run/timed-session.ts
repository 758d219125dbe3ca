/**
 * The IMAP session as a run uses it: every command bounded by the run's deadline. When the deadline gives up on
 * a command, the run's signal aborts and the adapter closes the connection (connect was given that signal).
 */
import type { MailboxSettings } from '../core/settings.js';
import type { FolderStatus, MessageSummary } from '../core/types.js';
import type { FetchOptions, MailboxSession, MessageSource } from '../ports.js';
import { type Deadline, imapSilent } from './deadline.js';

export class TimedSession {
  constructor(
    private readonly session: MailboxSession,
    private readonly deadline: Deadline,
    private readonly server: Pick<MailboxSettings, 'host' | 'port'>,
  ) {}

  status(folder: string): Promise<FolderStatus> {
    return this.timed('status', () => this.session.status(folder));
  }

  open(folder: string): Promise<FolderStatus> {
    return this.timed('open', () => this.session.open(folder));
  }

  listNew(fromUid: number, limit: number, since?: Date): Promise<{ messages: MessageSummary[]; complete: boolean }> {
    return this.timed('listNew', () => this.session.listNew(fromUid, limit, since));
  }

  fetchSources(uids: readonly number[], options: FetchOptions): Promise<Map<number, MessageSource>> {
    return this.timed('fetchSources', () => this.session.fetchSources(uids, options));
  }

  exists(uids: readonly number[]): Promise<number[]> {
    return this.timed('exists', () => this.session.exists(uids));
  }

  streamSource(uid: number): Promise<{ stream: NodeJS.ReadableStream; size: number } | undefined> {
    return this.timed('streamSource', () => this.session.streamSource(uid));
  }

  private timed<T>(step: string, call: () => Promise<T>): Promise<T> {
    return this.deadline.call(call, () => imapSilent(this.server, step));
  }
}
