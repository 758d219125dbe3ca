/**
 * The IMAP session as a run uses it: every command bounded by the run's deadline. When the deadline gives up on
 * a command, the run's signal aborts and the adapter closes the connection (connect was given that signal).
 */
import type { MailboxSettings } from '../core/settings.js';
import type { FolderStatus } from '../core/types.js';
import { ImapConnectionError } from '../errors.js';
import type { FetchOptions, ListOptions, MailboxSession, MessageSource } from '../ports.js';
import { type Deadline, imapSilent } from './deadline.js';

export class TimedSession {
  /** See the constructor's `firstCallMs`; cleared by the first call. */
  private firstCallMs: number | undefined;

  /**
   * `firstCallMs`: a budget for the first command alone (the check of a kept session); past it the session is closed
   * and the command fails with ImapConnectionError, while the run's deadline still has time for a new login.
   */
  constructor(
    private readonly session: MailboxSession,
    private readonly deadline: Deadline,
    private readonly server: Pick<MailboxSettings, 'host' | 'port'>,
    options: { readonly firstCallMs?: number } = {},
  ) {
    this.firstCallMs = options.firstCallMs;
  }

  status(folder: string): Promise<FolderStatus> {
    return this.timed('status', () => this.session.status(folder));
  }

  open(folder: string): Promise<FolderStatus> {
    return this.timed('open', () => this.session.open(folder));
  }

  listNew(fromUid: number, limit: number, options?: ListOptions): ReturnType<MailboxSession['listNew']> {
    return this.timed('listNew', () => this.session.listNew(fromUid, limit, options));
  }

  listSizes(fromUid: number, limit: number, sizeBound: number): ReturnType<MailboxSession['listSizes']> {
    return this.timed('listSizes', () => this.session.listSizes(fromUid, limit, sizeBound));
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
    const budget = this.firstCallMs;
    this.firstCallMs = undefined;
    const bounded = budget === undefined ? call : () => this.within(budget, step, call);
    return this.deadline.call(bounded, () => imapSilent(this.server, step));
  }

  private async within<T>(ms: number, step: string, call: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const silent = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        void this.session.close();
        reject(
          new ImapConnectionError(
            `The kept IMAP session to ${this.server.host}:${this.server.port} did not answer ${step} within ${Math.round(ms)} ms.`,
            { hint: 'the run logs in anew.' },
          ),
        );
      }, ms);
    });
    try {
      return await Promise.race([call(), silent]);
    } finally {
      clearTimeout(timer);
    }
  }
}
