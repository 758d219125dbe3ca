/**
 * The logged-in IMAP session a warm Lambda container keeps between invocations, so that an empty poll is one
 * STATUS on a connection that is already there (no TCP and TLS handshake, no login, no LOGOUT).
 *
 * - Keyed by a fingerprint of every setting the session depends on (server, TLS trust, user, credential, folder):
 *   settings that differ in anything (a rotated secret, re-read after its cache expired or after a failed login)
 *   never find the old session: it is closed. The fingerprint is an HMAC under a key made per container, so it is
 *   no stand-in for the password; it is never logged.
 * - One run at a time: `take` hands the session out and forgets it; only a run that ended without an error gives it
 *   back (`keep`). An error, a hard stop, a failed deselect: the session is closed (poll-mailbox.ts).
 * - Checked on `take` (the container was frozen in between, so no timer could have run): older than
 *   MAX_SESSION_AGE_MS, idle longer than MAX_IDLE_MS, its OAuth2 token about to expire, or no longer usable ->
 *   closed, and the run logs in anew. Whether the server still has it, the run's STATUS tells (poll-mailbox.ts).
 */
import { createHmac, randomBytes } from 'node:crypto';
import { EXPIRY_MARGIN_MS } from '../core/oauth2-token.js';
import type { MailboxSettings } from '../core/settings.js';
import type { CallOptions, Log, MailboxSession, SessionKeeper } from '../ports.js';

/**
 * A session idle longer than this is not taken up. NAT gateways and Lambda's own network path drop TCP flows idle
 * for 350 s, sometimes silently (the next STATUS then waits for its check budget); 5 minutes stays below that.
 */
export const MAX_IDLE_MS = 5 * 60_000;
/**
 * A session is logged in anew after this long, however busy. RFC 9051 lets a server log out a client after 30
 * minutes of inactivity; servers also end long sessions on their own (restarts, failover behind a load balancer).
 */
export const MAX_SESSION_AGE_MS = 25 * 60_000;

/**
 * The first command on a kept session is its check: a session the network dropped silently would hold it until the
 * run's hard stop. A live session answers STATUS in a round trip (milliseconds to a few hundred); past this budget
 * (or a third of the time left, if less) it is closed and the run logs in anew.
 */
export const KEPT_SESSION_CHECK_MS = 3_000;

type DropReason = 'settings changed' | 'idle too long' | 'too old' | 'access token expiring' | 'no longer usable';

export class KeptSession implements SessionKeeper {
  private kept?: { fingerprint: string; session: MailboxSession; parkedAt: number };
  /** When each session logged in (its first `keep`), for MAX_SESSION_AGE_MS. */
  private readonly loggedInAt = new WeakMap<MailboxSession, number>();
  private readonly key = randomBytes(32);

  constructor(private readonly options: { readonly now: () => Date; readonly log?: Log }) {}

  take(settings: MailboxSettings, options: CallOptions): MailboxSession | undefined {
    const kept = this.kept;
    if (!kept) return undefined;
    this.kept = undefined;
    const now = this.options.now().getTime();
    const reason = this.unfit(kept, settings, now);
    if (reason) {
      this.drop(kept.session, reason);
      return undefined;
    }
    if (!kept.session.resume?.(options)) {
      this.options.log?.debug('The kept IMAP session was dropped', { reason: 'no longer usable' });
      return undefined;
    }
    return kept.session;
  }

  async keep(settings: MailboxSettings, session: MailboxSession): Promise<void> {
    const now = this.options.now().getTime();
    if (!this.loggedInAt.has(session)) this.loggedInAt.set(session, now);
    const previous = this.kept;
    this.kept = undefined;
    if (previous && previous.session !== session) this.drop(previous.session, 'settings changed');
    if (!session.park || !(await session.park().catch(() => false))) {
      await session.close();
      return;
    }
    this.kept = { fingerprint: this.fingerprint(settings), session, parkedAt: now };
  }

  clear(): void {
    const kept = this.kept;
    this.kept = undefined;
    if (kept) void kept.session.close();
  }

  private unfit(
    kept: { fingerprint: string; session: MailboxSession; parkedAt: number },
    settings: MailboxSettings,
    now: number,
  ): DropReason | undefined {
    if (kept.fingerprint !== this.fingerprint(settings)) return 'settings changed';
    if (now - kept.parkedAt > MAX_IDLE_MS) return 'idle too long';
    if (now - (this.loggedInAt.get(kept.session) ?? kept.parkedAt) > MAX_SESSION_AGE_MS) return 'too old';
    const expiresAt = kept.session.expiresAt?.getTime();
    if (expiresAt !== undefined && now > expiresAt - EXPIRY_MARGIN_MS) return 'access token expiring';
    return undefined;
  }

  private drop(session: MailboxSession, reason: DropReason): void {
    this.options.log?.debug('The kept IMAP session was dropped', { reason });
    void session.close();
  }

  /** Every setting the session depends on, the credential included, as an HMAC under this container's key. */
  private fingerprint(s: MailboxSettings): string {
    const fields = [
      s.host,
      s.port,
      s.security,
      s.tlsServername ?? null,
      s.caBundle ?? null,
      s.username,
      s.password ?? null,
      s.oauth2 ? JSON.stringify(s.oauth2) : null,
      s.folder,
    ];
    return createHmac('sha256', this.key).update(JSON.stringify(fields)).digest('base64url');
  }
}
