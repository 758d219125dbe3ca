/**
 * The kept IMAP session (run/session-keeper.ts) with pollMailbox, over the fakes: taken up by the next run, replaced
 * on any doubt, never after a settings change, never kept after an error or a hard stop.
 */
import { describe, expect, it } from 'vitest';
import type { MailboxSettings } from '../../functions/poller/core/settings.js';
import {
  CheckpointStoreError,
  EventPublishError,
  ImapAuthError,
  ImapConnectionError,
} from '../../functions/poller/errors.js';
import type { PollDeps } from '../../functions/poller/ports.js';
import { type PollOptions, pollMailbox } from '../../functions/poller/run/poll-mailbox.js';
import { KeptSession, MAX_IDLE_MS, MAX_SESSION_AGE_MS } from '../../functions/poller/run/session-keeper.js';
import {
  FakeClock,
  FakeFolder,
  FakeMailbox,
  FakeSettingsSource,
  InMemoryCheckpointStore,
  settings as makeSettings,
  PASSWORD,
  RecordingLog,
  RecordingPublisher,
} from './fakes.js';

function world(options: { settings?: Partial<MailboxSettings>; realClock?: boolean } = {}) {
  const folder = new FakeFolder('1700000000');
  const secret = makeSettings(options.settings);
  const mailbox = new FakeMailbox({ [secret.folder]: folder, Archiv: new FakeFolder('1') });
  const store = new InMemoryCheckpointStore();
  const publisher = new RecordingPublisher();
  const settings = new FakeSettingsSource(secret);
  const log = new RecordingLog();
  const clock = new FakeClock();
  const now = options.realClock ? () => new Date() : clock.now;
  const sessions = new KeptSession({ now, log });
  const deps: PollDeps = { settings, checkpoints: store, lease: store, mailbox, publisher, sessions, log, now };
  let runs = 0;
  const run = (o: Partial<PollOptions> = {}) =>
    pollMailbox(deps, {
      mailboxId: 'support',
      eventSource: 'imap-event-source',
      eventBusName: 'mail-bus',
      startAt: { kind: 'now' },
      deadline: now().getTime() + 600_000,
      runId: `run-${++runs}`,
      ...o,
    });
  return { folder, mailbox, store, publisher, settings, log, clock, sessions, deps, run };
}

describe('a kept session', () => {
  it('is taken up by the next run: no connect, STATUS alone, no LOGOUT; the summary says so', async () => {
    const w = world();
    expect(await w.run()).toMatchObject({ outcome: 'baseline', imapSession: 'new' });
    const [session] = w.mailbox.sessions;
    expect(session!.ops()).toEqual(['status']);
    expect(session!.parks).toBe(1);
    expect(await w.run()).toMatchObject({ outcome: 'idle', imapSession: 'reused' });
    expect(await w.run()).toMatchObject({ outcome: 'idle', imapSession: 'reused' });
    expect(w.mailbox.connects).toHaveLength(1);
    expect(session!.ops()).toEqual(['status', 'status', 'status']);
    expect(session!.closed).toBe(false);
    // Mail arrives: the drain runs on the kept session too, and it is kept again.
    w.folder.append();
    expect(await w.run()).toMatchObject({ outcome: 'published', published: 1, imapSession: 'reused' });
    expect(w.mailbox.sessions).toHaveLength(1);
    expect(session!.parks).toBe(4);
  });

  it('is closed when the settings changed (rotated secret, re-read): a new login with the new ones', async () => {
    for (const change of [
      { password: 'rotated-Pa55word' },
      { username: 'other@example.com' },
      { host: 'imap2.example.com' },
      { port: 10993 },
      { caBundle: 'another bundle' },
      { tlsServername: 'mail.example.com' },
    ] satisfies Partial<MailboxSettings>[]) {
      const w = world();
      await w.run();
      const [old] = w.mailbox.sessions;
      w.settings.rotate(change);
      w.settings.prime(); // the settings cache expired: the next run reads the new secret
      expect(await w.run()).toMatchObject({ outcome: 'idle', imapSession: 'new' });
      expect(old!.closed).toBe(true);
      expect(w.mailbox.connects.at(-1)).toMatchObject(change);
      expect(w.mailbox.sessions).toHaveLength(2);
    }
  });

  it('is closed when the folder changed', async () => {
    const w = world();
    await w.run();
    w.settings.rotate({ folder: 'Archiv' });
    w.settings.prime();
    expect(await w.run()).toMatchObject({ outcome: 'baseline', folder: 'Archiv', imapSession: 'new' });
    expect(w.mailbox.sessions[0]!.closed).toBe(true);
  });

  it('the server ended it (STATUS fails): replaced by a new connection within the same run, which is then kept', async () => {
    for (const failure of [
      new ImapConnectionError('The connection to the IMAP server was lost during status.'),
      new ImapAuthError('token expired'),
    ]) {
      const w = world();
      await w.run();
      const [old] = w.mailbox.sessions;
      old!.failNext = failure;
      w.folder.append();
      expect(await w.run()).toMatchObject({ outcome: 'published', published: 1, imapSession: 'new' });
      expect(old!.closed).toBe(true);
      expect(w.mailbox.connects).toHaveLength(2);
      expect(w.log.lines.map((l) => l.message)).toContain('The kept IMAP session failed; retrying on a new connection');
      expect(await w.run()).toMatchObject({ imapSession: 'reused' });
      expect(w.mailbox.sessions).toHaveLength(2);
    }
  });

  it('silent (dropped by the network): given up after its check budget, the run logs in anew before its deadline', async () => {
    const w = world({ realClock: true });
    await w.run();
    const [old] = w.mailbox.sessions;
    old!.failNext = 'silent';
    const started = Date.now();
    // 6 s to the deadline, 1.5 s reserved: the check may take a third of the 4.5 s before the reserve.
    const summary = await w.run({ deadline: started + 6_000, reserveMs: 1_500 });
    expect(summary).toMatchObject({ outcome: 'idle', imapSession: 'new' });
    expect(Date.now() - started).toBeLessThan(6_000);
    expect(old!.closed).toBe(true);
  });

  it('is not retried once the run published: the error stands, and the session is not kept', async () => {
    const w = world();
    await w.run();
    const [session] = w.mailbox.sessions;
    w.folder.appendMany(2);
    w.publisher.throwErrors.push(new EventPublishError('PutEvents failed'));
    await expect(w.run()).rejects.toBeInstanceOf(EventPublishError);
    expect(w.mailbox.connects).toHaveLength(1); // no retry on a new connection
    expect(session!.closed).toBe(true);
    expect(await w.run()).toMatchObject({ outcome: 'published', published: 2, imapSession: 'new' });
  });

  it('is not kept after a failed run, nor after a hard stop', async () => {
    const w = world();
    w.mailbox.connectErrors.push(new ImapConnectionError('refused'));
    await expect(w.run()).rejects.toBeInstanceOf(ImapConnectionError);
    await w.run();
    const [first] = w.mailbox.sessions;
    first!.failNext = new ImapConnectionError('lost');
    w.mailbox.connectErrors.push(new ImapConnectionError('refused')); // the retry's connect fails too
    await expect(w.run()).rejects.toBeInstanceOf(ImapConnectionError);
    expect(first!.closed).toBe(true);
    expect(await w.run()).toMatchObject({ imapSession: 'new' });

    const h = world({ realClock: true });
    h.folder.append();
    await h.run({ startAt: { kind: 'now' } });
    h.folder.append();
    // A publish that never answers: the hard stop cuts the run off.
    const stalled = { ...h.deps, publisher: { publish: () => new Promise<never>(() => {}) } };
    const started = Date.now();
    await expect(
      pollMailbox(stalled, {
        mailboxId: 'support',
        eventSource: 'imap-event-source',
        eventBusName: 'mail-bus',
        startAt: { kind: 'now' },
        deadline: started + 2_500,
        runId: 'stalled',
      }),
    ).rejects.toThrow(/did not answer in time/);
    expect(h.mailbox.sessions[0]!.closed).toBe(true);
    expect(h.sessions.take(makeSettings(), {})).toBeUndefined();
  });

  it('is dropped when idle too long, too old, or its access token is about to expire', async () => {
    const idle = world();
    await idle.run();
    idle.clock.advance(MAX_IDLE_MS + 1);
    expect(await idle.run()).toMatchObject({ imapSession: 'new' });
    expect(idle.mailbox.sessions[0]!.closed).toBe(true);

    const old = world();
    for (let t = 0; t <= MAX_SESSION_AGE_MS; t += MAX_IDLE_MS - 1_000) {
      await old.run();
      old.clock.advance(MAX_IDLE_MS - 1_000);
    }
    expect(old.mailbox.sessions.length).toBe(1);
    expect(await old.run()).toMatchObject({ imapSession: 'new' });

    const token = world();
    await token.run();
    token.mailbox.sessions[0]!.expiresAt = new Date(token.clock.ms + 10 * 60_000);
    token.clock.advance(4 * 60_000);
    expect(await token.run()).toMatchObject({ imapSession: 'reused' });
    token.clock.advance(2 * 60_000); // 4 minutes left: inside the 5-minute margin
    expect(await token.run()).toMatchObject({ imapSession: 'new' });
  });

  it('an authentication failure of a new login re-reads the secret and never takes the kept session up', async () => {
    const w = world();
    await w.run();
    const [old] = w.mailbox.sessions;
    old!.failNext = new ImapConnectionError('lost');
    w.settings.rotate({ password: 'rotated-Pa55word' });
    w.mailbox.connectErrors.push(new ImapAuthError('rejected'));
    expect(await w.run()).toMatchObject({ imapSession: 'new' });
    expect(w.mailbox.connects.map((s) => s.password)).toEqual([PASSWORD, PASSWORD, 'rotated-Pa55word']);
    expect(w.settings.loads.at(-1)).toEqual({ fresh: true });
    // Kept under the settings it logged in with (the re-read ones, now cached): the next run takes it up.
    expect(await w.run()).toMatchObject({ imapSession: 'reused' });
    expect(w.mailbox.sessions).toHaveLength(2); // the failed login opened none
    expect(w.mailbox.connects).toHaveLength(3);
    expect(w.log.text()).not.toContain(PASSWORD);
  });
});

describe('the checkpoint read and the session', () => {
  it('a new connection is made while the checkpoint is read: a read that waits for the login still finishes', async () => {
    const w = world();
    const get = w.store.get.bind(w.store);
    // Resolves only once the run has connected: a run that read the checkpoint before connecting would hang here.
    w.store.get = async (mailboxId, folder) => {
      while (w.mailbox.connects.length === 0) await new Promise((r) => setImmediate(r));
      return get(mailboxId, folder);
    };
    expect(await w.run()).toMatchObject({ outcome: 'baseline', imapSession: 'new' });
  });

  it('a failed checkpoint read fails the run with its own error; the session logged in meanwhile is logged out', async () => {
    const w = world();
    w.store.get = async () => {
      while (w.mailbox.connects.length === 0) await new Promise((r) => setImmediate(r));
      throw new CheckpointStoreError('the table is gone');
    };
    await expect(w.run()).rejects.toThrow('the table is gone');
    for (let i = 0; i < 100 && !w.mailbox.sessions[0]?.closed; i++) await new Promise((r) => setImmediate(r));
    expect(w.mailbox.sessions).toHaveLength(1);
    expect(w.mailbox.sessions[0]!.closed).toBe(true);
  });

  it('a connect that fails while the checkpoint is still being read: the run fails with it, nothing left unhandled', async () => {
    const w = world();
    w.mailbox.connectErrors = [new ImapConnectionError('connection refused')];
    const get = w.store.get.bind(w.store);
    w.store.get = async (mailboxId, folder) => {
      await new Promise((r) => setTimeout(r, 50)); // the connect has failed long before
      return get(mailboxId, folder);
    };
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      await expect(w.run()).rejects.toThrow('connection refused');
      await new Promise((r) => setTimeout(r, 10));
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    expect(unhandled).toEqual([]);
  });

  it('on a kept session, STATUS is sent while the checkpoint is read (a warm idle poll: one round trip on each)', async () => {
    const w = world();
    await w.run();
    const session = w.mailbox.sessions[0]!;
    const get = w.store.get.bind(w.store);
    let statusFirst = false;
    w.store.get = async (mailboxId, folder) => {
      for (let i = 0; i < 200 && session.ops().length < 2; i++) await new Promise((r) => setImmediate(r));
      statusFirst = session.ops().length === 2;
      return get(mailboxId, folder);
    };
    expect(await w.run()).toMatchObject({ outcome: 'idle', imapSession: 'reused' });
    expect(statusFirst).toBe(true);
    expect(w.store.leaseCalls.filter((c) => c.owner === 'run-2')).toEqual([]); // idle: no lease
  });

  it('a failed checkpoint read on a kept session: the session stays kept for the next run', async () => {
    const w = world();
    await w.run();
    const get = w.store.get.bind(w.store);
    w.store.get = async () => {
      throw new CheckpointStoreError('throttled');
    };
    await expect(w.run()).rejects.toThrow('throttled');
    w.store.get = get;
    expect(await w.run()).toMatchObject({ outcome: 'idle', imapSession: 'reused' });
    expect(w.mailbox.connects).toHaveLength(1);
    expect(w.mailbox.sessions[0]!.closed).toBe(false);
  });
});
