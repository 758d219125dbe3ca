/**
 * Issue #9: a broken or hostile IMAP server can't make the poller lose mail, hang, leak connections or run out of
 * memory. Each case runs the real Lambda handler in a child process (peak RSS without the test runner's heap) against
 * the scriptable fake IMAP server (test/support/fake-imap-server.ts) over TLS with the test CA, and moto_server.
 * Every case checks: the run settles before its deadline, the peak RSS stays under a 256 MB Lambda's memory, no
 * socket to the IMAP server is open when the handler returns, the checkpoint and the events are right, the password
 * is nowhere in the output, and the error code says what happened.
 * Set HOSTILE_TABLE=1 to print the table of cases (outcome, peak RSS, time to settle, connection closed).
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoDbCheckpointStore } from '../../functions/poller/adapters/dynamodb-checkpoint-store.js';
import type { Checkpoint } from '../../functions/poller/core/types.js';
import { moto, tlsMaterial } from '../support/env.js';
import { FakeImapServer, type FakeImapServerOptions } from '../support/fake-imap-server.js';
import { buildMessage } from '../support/messages.js';
import type { EventEnvelope } from '../support/moto.js';
import { uniqueName } from '../support/moto.js';
import { bundleHandlerRunner, type ChildRun, runHandlerInChild } from '../support/run-handler.js';
import { World } from './world.js';

/** The Lambda's memory (the construct's default). */
const LAMBDA_MB = 256;

interface Row {
  case: string;
  outcome: string;
  peakRssMb: number;
  settledMs: number;
  closed: boolean;
}
const table: Row[] = [];
afterAll(() => {
  if (process.env.HOSTILE_TABLE) console.table(table);
});

let runner: string;
beforeAll(async () => {
  runner = await bundleHandlerRunner();
});

// Every case has its own fake server, bus, secret and table and runs the handler in a child process: the cases run
// concurrently (most of a case is waiting on a child or on a hard stop); the servers close when the file is done.
// The Dovecot case invokes the handler in-process (World.invoke sets process.env): it runs alone.
const servers: FakeImapServer[] = [];
afterAll(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

class FakeWorld {
  readonly aws = moto();
  private constructor(
    readonly server: FakeImapServer,
    readonly mailboxId: string,
    readonly table: string,
    readonly queueUrl: string,
    readonly env: Record<string, string>,
  ) {}

  static async create(
    options: { security?: 'tls' | 'starttls'; startAt?: string; server?: FakeImapServerOptions } = {},
  ): Promise<FakeWorld> {
    const tls = tlsMaterial();
    const material = { key: tls.serverKeyPem, cert: tls.serverCertPem };
    const security = options.security ?? 'tls';
    const server = await FakeImapServer.start({
      ...(security === 'tls' ? { tls: material } : { starttls: material }),
      ...options.server,
    });
    servers.push(server);
    const aws = moto();
    const bus = await aws.createBusWithSubscriber(uniqueName('bus'));
    const mailboxId = uniqueName('hostile');
    const secretName = `imap-event-source/${mailboxId}`;
    await aws.createSecret(secretName, {
      host: 'localhost',
      port: server.port,
      security,
      username: server.username,
      password: server.password,
      folder: server.folder,
      caBundle: tls.caCertPem,
    });
    const checkpointTable = uniqueName('checkpoints');
    await aws.createCheckpointTable(checkpointTable);
    return new FakeWorld(server, mailboxId, checkpointTable, bus.queueUrl, {
      ...aws.awsEnv(),
      MAILBOX_ID: mailboxId,
      SECRET_ID: secretName,
      CHECKPOINT_TABLE: checkpointTable,
      EVENT_BUS_NAME: bus.busName,
      START_AT: options.startAt ?? 'now',
    });
  }

  /** Runs the handler in a child process and checks what every case must hold. */
  async run(name: string, remainingMs = 30_000): Promise<ChildRun> {
    const run = await runHandlerInChild(runner, this.env, { remainingMs, imapPort: this.server.port });
    const { report } = run;
    const outcome = report.result?.outcome ?? /^([A-Z_]+):/.exec(report.error?.message ?? '')?.[1] ?? 'UNKNOWN';
    table.push({
      case: name,
      outcome,
      peakRssMb: report.peakRssMb,
      settledMs: report.settledMs,
      closed: report.imapSocketsAfterReset === 0,
    });
    expect(report.settledMs, 'settled before the deadline').toBeLessThan(remainingMs);
    expect(report.peakRssMb, 'peak RSS within the Lambda memory').toBeLessThan(LAMBDA_MB);
    // A successful run keeps its logged-in session for the next invocation (run/session-keeper.ts); nothing else.
    expect(report.imapSockets, 'no IMAP socket left open when the handler returned').toBeLessThanOrEqual(
      report.result ? 1 : 0,
    );
    expect(report.imapSocketsAfterReset, 'no IMAP socket left once the kept session is closed').toBe(0);
    expect(run.output).not.toContain(this.server.password);
    // The server sees the close too (its side of the socket).
    expect(await this.server.waitForNoConnections(5_000)).toBe(true);
    return run;
  }

  /** The error code of a failed run (the handler's PollFailedError message starts with it). */
  static errorCode(run: ChildRun): string | undefined {
    return /^([A-Z_]+):/.exec(run.report.error?.message ?? '')?.[1];
  }

  async checkpoint(): Promise<Checkpoint | undefined> {
    return new DynamoDbCheckpointStore(new DynamoDBClient(this.aws.clientConfig), this.table).get(
      this.mailboxId,
      this.server.folder,
    );
  }

  /** Moves the stored checkpoint to `lastUid` (as a run would have). */
  async setCheckpoint(lastUid: number): Promise<void> {
    const store = new DynamoDbCheckpointStore(new DynamoDBClient(this.aws.clientConfig), this.table);
    const current = (await store.get(this.mailboxId, this.server.folder))!;
    await store.put({ ...current, lastUid, version: current.version + 1 }, current.version);
  }

  events(expected: number, quietMs = 0): Promise<EventEnvelope<{ uid?: number; uidValidity: string }>[]> {
    return this.aws.receiveEvents(this.queueUrl, { expected, timeoutMs: 20_000, quietMs });
  }

  /** UIDs of the message events received. */
  async publishedUids(expected: number, quietMs = 0): Promise<number[]> {
    return (await this.events(expected, quietMs))
      .filter((e) => e['detail-type'] === 'IMAP Message Received')
      .map((e) => e.detail.uid!)
      .sort((a, b) => a - b);
  }

  /** A first run that baselines the folder as it is (START_AT=now), fault-free. */
  async baseline(): Promise<void> {
    const run = await this.run('baseline (fault-free)');
    expect(run.report.result).toEqual({ outcome: 'baseline', published: 0 });
  }
}

describe.concurrent('a login that never completes', () => {
  it('silent after the greeting: the hard stop ends the run, the connection is closed', async () => {
    const world = await FakeWorld.create();
    world.server.faults = { login: 'silent' };
    const run = await world.run('silent after greeting', 6_000);
    expect(FakeWorld.errorCode(run)).toBe('IMAP_UNREACHABLE');
    expect(run.report.error?.message).toContain('did not answer in time (login)');
    expect(await world.checkpoint()).toBeUndefined();
  });

  it('an endless stream of untagged lines: cut off, a protocol error', async () => {
    const world = await FakeWorld.create();
    world.server.faults = { login: 'endless-untagged' };
    const run = await world.run('endless untagged lines at login', 20_000);
    expect(FakeWorld.errorCode(run)).toBe('IMAP_PROTOCOL_ERROR');
    expect(run.report.error?.message).toContain('sent more than a poll accepts during connect');
  });

  it('a 600 MB line without CRLF: cut off, a protocol error, never read whole', async () => {
    const world = await FakeWorld.create();
    world.server.faults = { login: { hugeLineBytes: 600 * 1024 * 1024 } };
    const run = await world.run('600 MB line without CRLF', 20_000);
    expect(FakeWorld.errorCode(run)).toBe('IMAP_PROTOCOL_ERROR');
  });
});

describe.concurrent('more than a poll asked for', () => {
  it('a 400 MB literal for a 2 MiB partial FETCH: a protocol error, nothing published, the checkpoint stays', async () => {
    const world = await FakeWorld.create();
    world.server.addMessages(5);
    await world.baseline();
    world.server.addMessages(1);
    world.server.faults = { bodyLiteralBytes: 400 * 1024 * 1024 };
    const run = await world.run('400 MB literal for a partial FETCH');
    expect(FakeWorld.errorCode(run)).toBe('IMAP_PROTOCOL_ERROR');
    expect(run.report.error?.message).toContain('LiteralTooLarge');
    expect(await world.checkpoint()).toMatchObject({ lastUid: 5 });
    expect(await world.publishedUids(0)).toEqual([]);
  });

  it('the partial ignored, three 20 MB sources: a protocol error, nothing published', async () => {
    const world = await FakeWorld.create();
    await world.baseline();
    world.server.addMessages(3, { size: 20 * 1024 * 1024 });
    world.server.faults = { ignorePartial: true };
    const run = await world.run('partial ignored, 3 x 20 MB');
    expect(FakeWorld.errorCode(run)).toBe('IMAP_PROTOCOL_ERROR');
    expect(await world.checkpoint()).toMatchObject({ lastUid: 0 });
  });

  it('the partial ignored, a 5 MB source among small ones: cut to the 2 MiB bound and published as truncated', async () => {
    const world = await FakeWorld.create();
    await world.baseline();
    const uids = [
      ...world.server.addMessages(1, { size: 60_000 }),
      ...world.server.addMessages(1, { size: 5 * 1024 * 1024 }),
      ...world.server.addMessages(1, { size: 60_000 }),
    ];
    world.server.faults = { ignorePartial: true };
    const run = await world.run('partial ignored, 5 MB source (cut)');
    expect(run.report.result).toEqual({ outcome: 'published', published: 3 });
    const events = await world.events(3);
    expect(events.map((e) => e.detail.uid).sort()).toEqual(uids);
    const big = events.find((e) => e.detail.uid === uids[1])?.detail as { truncated?: boolean } | undefined;
    expect(big?.truncated).toBe(true);
    expect(await world.checkpoint()).toMatchObject({ lastUid: uids.at(-1) });
  });

  it('an endless stream of unsolicited FETCH rows: cut off, a protocol error', async () => {
    const world = await FakeWorld.create();
    world.server.addMessages(2);
    await world.baseline();
    world.server.addMessages(1);
    world.server.faults = { endlessFetchRows: true };
    const run = await world.run('endless FETCH rows');
    expect(FakeWorld.errorCode(run)).toBe('IMAP_PROTOCOL_ERROR');
    expect(await world.checkpoint()).toMatchObject({ lastUid: 2 });
  });

  it('an endless LIST while diagnosing a missing folder: still FOLDER_NOT_FOUND, bounded', async () => {
    const world = await FakeWorld.create();
    world.server.faults = { endlessList: true };
    // The configured folder does not exist on the server.
    await world.aws.putSecretValue(world.env.SECRET_ID, {
      host: 'localhost',
      port: world.server.port,
      security: 'tls',
      username: world.server.username,
      password: world.server.password,
      folder: 'Kundenbetreuung',
      caBundle: tlsMaterial().caCertPem,
    });
    const run = await world.run('endless LIST for "did you mean"');
    expect(FakeWorld.errorCode(run)).toBe('FOLDER_NOT_FOUND');
  });
});

describe.concurrent('answers that do not match the request', () => {
  it('FETCH rows for UIDs not asked for (no body): ignored and logged once; the checkpoint stops at the real mail', async () => {
    const world = await FakeWorld.create();
    world.server.addMessages(5);
    await world.baseline();
    const [uid] = world.server.addMessages(1);
    world.server.faults = { unrequestedRows: [{ uid: 500, body: false }] };
    const run = await world.run('unrequested FETCH row (no body)');
    expect(run.report.result).toEqual({ outcome: 'published', published: 1 });
    expect(await world.publishedUids(1)).toEqual([uid]);
    expect(await world.checkpoint()).toMatchObject({ lastUid: uid });
    expect(run.logs.filter((l) => String(l.message).includes('not asked for'))).toHaveLength(1);
  });

  it('FETCH rows for UIDs not asked for (with a body): no event for a UID that does not exist', async () => {
    const world = await FakeWorld.create();
    world.server.addMessages(5);
    await world.baseline();
    const uids = world.server.addMessages(2);
    world.server.faults = { unrequestedRows: [{ uid: 500, body: true }] };
    const run = await world.run('unrequested FETCH row (with body)');
    expect(run.report.result).toEqual({ outcome: 'published', published: 2 });
    expect(await world.publishedUids(2)).toEqual(uids);
    expect(await world.checkpoint()).toMatchObject({ lastUid: 7 });
  });

  it('a listed message missing from the body FETCH but still there: the checkpoint stops before it; the next run publishes it', async () => {
    const world = await FakeWorld.create();
    await world.baseline();
    const uids = world.server.addMessages(3);
    world.server.faults = { withheld: [uids[1]!] };
    const run = await world.run('listed message withheld from body FETCH');
    expect(FakeWorld.errorCode(run)).toBe('IMAP_PROTOCOL_ERROR');
    expect(run.report.error?.message).toContain(`did not send UID ${uids[1]}`);
    expect(await world.checkpoint()).toMatchObject({ lastUid: uids[0] });
    world.server.faults = {};
    const next = await world.run('... next run, fault gone');
    expect(next.report.result).toEqual({ outcome: 'published', published: 2 });
    expect(await world.publishedUids(3)).toEqual(uids);
  });

  it('a UID SEARCH that ignores LARGER: every message is fetched for its size (one FETCH more), each published once', async () => {
    const world = await FakeWorld.create();
    await world.baseline();
    const uids = world.server.addMessages(3);
    world.server.faults = { searchIgnoresLarger: true };
    const before = world.server.commands.length;
    const run = await world.run('SEARCH ignores LARGER');
    expect(run.report.result).toEqual({ outcome: 'published', published: 3 });
    expect(await world.publishedUids(3)).toEqual(uids);
    // STATUS, EXAMINE, UID SEARCH, UID SEARCH LARGER, UID FETCH of the sizes, UID FETCH of the bodies.
    expect(world.server.commands.slice(before).filter((c) => c === 'UID FETCH')).toHaveLength(2);
    world.server.faults = {};
    const more = world.server.addMessages(2);
    const honest = world.server.commands.length;
    expect((await world.run('LARGER answered')).report.result).toEqual({ outcome: 'published', published: 2 });
    expect(await world.publishedUids(2)).toEqual(more);
    expect(world.server.commands.slice(honest).filter((c) => c === 'UID FETCH')).toHaveLength(1);
  });

  it('a message UID SEARCH finds but the listing leaves out, still there: published up to it, the checkpoint stops before it', async () => {
    const world = await FakeWorld.create();
    await world.baseline();
    // Above the listing's size bound (batchBytes / batchSize): each is fetched for its RFC822.SIZE.
    const uids = world.server.addMessages(3, { size: 50_000 });
    world.server.faults = { withheldFromListing: [uids[1]!] };
    const run = await world.run('message withheld from the listing');
    expect(FakeWorld.errorCode(run)).toBe('IMAP_PROTOCOL_ERROR');
    expect(run.report.error?.message).toContain(`did not send UID ${uids[1]}`);
    expect(await world.publishedUids(1)).toEqual([uids[0]]);
    expect(await world.checkpoint()).toMatchObject({ lastUid: uids[0] });
    world.server.faults = {};
    const next = await world.run('... next run, fault gone');
    expect(next.report.result).toEqual({ outcome: 'published', published: 2 });
    expect(await world.publishedUids(2)).toEqual([uids[1], uids[2]]); // the events since the first run's
  });

  it('a message gone from the listing and from a fresh search (expunged meanwhile): passed over', async () => {
    const world = await FakeWorld.create();
    await world.baseline();
    // Above the listing's size bound (batchBytes / batchSize): each is fetched for its RFC822.SIZE.
    const uids = world.server.addMessages(3, { size: 50_000 });
    world.server.faults = { withheldFromListing: [uids[1]!] };
    world.server.expunge([uids[1]!]);
    const run = await world.run('message expunged before the listing');
    expect(run.report.result).toEqual({ outcome: 'published', published: 2 });
    expect(await world.publishedUids(2)).toEqual([uids[0], uids[2]]);
    expect(await world.checkpoint()).toMatchObject({ lastUid: uids[2] });
  });

  it('a listed message gone from the body FETCH and from a fresh search (expunged): passed over', async () => {
    const world = await FakeWorld.create();
    await world.baseline();
    const uids = world.server.addMessages(3);
    // Withheld and gone: the fresh UID SEARCH no longer finds it.
    world.server.faults = { withheld: [uids[1]!] };
    const originalCommands = world.server.commands.length;
    world.server.expunge([uids[1]!]);
    const run = await world.run('listed message expunged');
    expect(run.report.result).toEqual({ outcome: 'published', published: 2 });
    expect(await world.publishedUids(2)).toEqual([uids[0], uids[2]]);
    expect(world.server.commands.length).toBeGreaterThan(originalCommands);
  });
});

describe.concurrent('numbers outside RFC 3501 ranges', () => {
  async function numbersCase(
    name: string,
    faults: FakeImapServer['faults'],
  ): Promise<{ world: FakeWorld; run: ChildRun }> {
    const world = await FakeWorld.create();
    world.server.addMessages(5);
    await world.baseline();
    world.server.addMessages(1);
    world.server.faults = faults;
    const run = await world.run(name);
    expect(FakeWorld.errorCode(run)).toBe('IMAP_PROTOCOL_ERROR');
    expect(await world.checkpoint()).toMatchObject({ lastUid: 5, uidValidity: String(world.server.uidValidity) });
    expect(await world.events(0)).toEqual([]);
    return { world, run };
  }

  it('UIDNEXT 4294967296: a protocol error, the checkpoint stays', async () => {
    const { run } = await numbersCase('STATUS UIDNEXT 4294967296', { status: { UIDNEXT: '4294967296' } });
    expect(run.report.error?.message).toContain('UIDNEXT 4294967296');
  });

  it('UIDVALIDITY 0: a protocol error, no reset event', async () => {
    const { run } = await numbersCase('STATUS UIDVALIDITY 0', { status: { UIDVALIDITY: '0' } });
    expect(run.report.error?.message).toContain('UIDVALIDITY 0');
  });

  it('a non-numeric UIDNEXT: a protocol error', async () => {
    await numbersCase('STATUS UIDNEXT non-numeric', { status: { UIDNEXT: 'many' } });
  });

  it('a malformed STATUS answer: a protocol error, not FOLDER_NOT_FOUND', async () => {
    await numbersCase('malformed STATUS', { status: 'malformed' });
  });

  it('a refused STATUS on an existing folder: a protocol error, not FOLDER_NOT_FOUND', async () => {
    await numbersCase('STATUS refused (NO)', { status: 'no' });
  });

  it('UIDVALIDITY out of range on EXAMINE: a protocol error', async () => {
    await numbersCase('EXAMINE UIDVALIDITY 4294967296', { examine: { UIDVALIDITY: '4294967296' } });
  });

  it('a UID SEARCH answer with UID 4294967296 or 0: never taken as a UID', async () => {
    const world = await FakeWorld.create();
    world.server.addMessages(5);
    await world.baseline();
    const [uid] = world.server.addMessages(1);
    world.server.faults = { searchExtra: ['4294967296', '0'] };
    const run = await world.run('SEARCH answers UID 4294967296 and 0');
    // imapflow drops what is no nz-number, the adapter would fail on it: either way the checkpoint never moves there.
    expect(run.report.result).toEqual({ outcome: 'published', published: 1 });
    expect(await world.publishedUids(1)).toEqual([uid]);
    expect(await world.checkpoint()).toMatchObject({ lastUid: uid });
  });
});

describe.concurrent('UIDVALIDITY and UIDNEXT changes', () => {
  it('a UIDVALIDITY change in STATUS that EXAMINE does not confirm: no reset event, the checkpoint stays', async () => {
    const world = await FakeWorld.create();
    world.server.addMessages(3);
    await world.baseline();
    world.server.faults = { status: { UIDVALIDITY: '42' } };
    const run = await world.run('UIDVALIDITY change not confirmed by EXAMINE');
    expect(FakeWorld.errorCode(run)).toBe('IMAP_PROTOCOL_ERROR');
    expect(await world.events(0)).toEqual([]);
    expect(await world.checkpoint()).toMatchObject({ uidValidity: String(world.server.uidValidity), lastUid: 3 });
  });

  it('a confirmed UIDVALIDITY change: one reset event, then the re-scan', async () => {
    const world = await FakeWorld.create();
    world.server.addMessages(2, { internalDate: new Date(Date.now() - 3_600_000) });
    world.server.addMessages(1, { internalDate: new Date(Date.now() - 600_000) });
    await world.baseline();
    world.server.uidValidity = 42;
    const run = await world.run('UIDVALIDITY change confirmed');
    expect(run.report.result?.outcome).toBe('reset');
    const events = await world.events(1);
    expect(events.map((e) => e['detail-type'])).toEqual(['IMAP Mailbox Reset']);
    expect(await world.checkpoint()).toMatchObject({ uidValidity: '42' });
  });

  it('UIDNEXT below the checkpoint (a restored server): a warning, nothing moves', async () => {
    const world = await FakeWorld.create();
    world.server.addMessages(3);
    await world.baseline();
    await world.setCheckpoint(10);
    const run = await world.run('UIDNEXT below the checkpoint');
    expect(run.report.result).toEqual({ outcome: 'idle', published: 0 });
    expect(run.logs.some((l) => l.level === 'WARN' && String(l.message).startsWith('UIDNEXT is below'))).toBe(true);
    expect(await world.checkpoint()).toMatchObject({ lastUid: 10 });
  });
});

describe('the re-scan after a reset uses the server time basis (Dovecot)', () => {
  it("a server clock 2 h behind the Lambda's: mail that arrived after the baseline is re-scanned, older mail is not", async () => {
    const world = await World.create();
    const hour = 3_600_000;
    const at = (msAgo: number) => new Date(Date.now() - msAgo);
    const append = (subjects: string[], internalDate: Date) =>
      world.imap.appendMany(
        world.user,
        world.folder,
        subjects.map((subject) => ({ raw: buildMessage({ subject }), internalDate })),
      );
    await append(['old 1'], at(4 * hour));
    await append(['old 2'], at(3 * hour));
    expect(await world.invoke()).toEqual({ outcome: 'baseline', published: 0 });
    // Arrived after the baseline, stamped by a server whose clock is 2 h behind: before the baseline's write time.
    const fresh = await append(['new 1', 'new 2'], at(2 * hour));
    await world.imap.setUidValidity(world.user, world.folder, 4242);
    expect(await world.invoke()).toEqual({ outcome: 'reset', published: 2 });
    const events = await world.events<{ uid?: number; subject?: string }>(3);
    const messages = events.filter((e) => e['detail-type'] === 'IMAP Message Received');
    expect(messages.map((e) => e.detail.subject).sort()).toEqual(['new 1', 'new 2']);
    expect(messages.map((e) => e.detail.uid).sort()).toEqual(fresh);
  });
});

describe.concurrent('STARTTLS', () => {
  it('plaintext injected after the STARTTLS OK: its own error (a possible man-in-the-middle), no login', async () => {
    const world = await FakeWorld.create({ security: 'starttls' });
    world.server.faults = { starttlsInjection: true };
    const run = await world.run('STARTTLS plaintext injection');
    expect(FakeWorld.errorCode(run)).toBe('STARTTLS_INJECTION');
    expect(run.report.error?.message).toContain('man-in-the-middle');
    expect(world.server.commands).not.toContain('LOGIN');
  });

  it('a server that does not offer STARTTLS: STARTTLS_UNAVAILABLE, distinct from the injection', async () => {
    const world = await FakeWorld.create({ security: 'starttls', server: { starttls: undefined } });
    const run = await world.run('STARTTLS not offered');
    expect(FakeWorld.errorCode(run)).toBe('STARTTLS_UNAVAILABLE');
  });
});
