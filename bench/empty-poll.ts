/**
 * The empty poll, measured in one process (bench/poll.ts and bench/drain.ts run it in a fresh one, so the first poll
 * is a cold start): a mailbox whose checkpoint is at UIDNEXT - 1, polled
 *   cold         the first poll of the process, composing included (a new Lambda container; it keeps its session)
 *   warm new     the same process again on a new connection (a warm container whose session was not kept)
 *   warm reused  the same process again on the session the previous poll kept (the Lambda's warm invocation)
 * against a bare imapflow connect + login + STATUS + logout on a new connection; the three alternate round by round,
 * so they share the machine's load. Also the IMAP commands each sends after login.
 */
import { ImapFlow } from 'imapflow';
import { composePollerDeps, pollOptions } from '../functions/poller/compose.js';
import type { PollerConfig } from '../functions/poller/contract/poller-env.js';
import { type PollDeps, silentLog } from '../functions/poller/ports.js';
import { pollMailbox } from '../functions/poller/run/poll-mailbox.js';

/** What the empty poll needs of the benchmark's world (servers started by the parent process). */
export interface EmptyPollWorld {
  readonly host: string;
  readonly port: number;
  readonly caPem: string;
  readonly username: string;
  readonly password: string;
  readonly folder: string;
  readonly secretId: string;
  readonly table: string;
  readonly busName: string;
  readonly clientConfig: Record<string, unknown>;
}

export interface EmptyPollTimes {
  cold: number[];
  warmNew: number[];
  warmReused: number[];
  bare: number[];
  /** IMAP command verbs after LOGIN/AUTHENTICATE (all of them on a reused session). */
  commands: { cold: string[]; warmNew: string[]; warmReused: string[] };
}

/** A bare imapflow client: the baseline (and bench/drain.ts's raw drain). */
export function bareClient(world: EmptyPollWorld): ImapFlow {
  const client = new ImapFlow({
    host: world.host,
    port: world.port,
    secure: true,
    tls: { ca: [world.caPem] },
    auth: { user: world.username, pass: world.password },
    logger: false,
  });
  client.on('error', () => {});
  return client;
}

/** `rounds` rounds of bare / warm new / warm reused, after one cold poll, on `mailboxId` (already baselined, no new mail). */
export async function measureEmptyPolls(
  world: EmptyPollWorld,
  mailboxId: string,
  rounds = 20,
): Promise<EmptyPollTimes> {
  const config: PollerConfig = {
    mailboxId,
    secretId: world.secretId,
    checkpointTable: world.table,
    eventBusName: world.busName,
    eventSource: 'imap-event-source',
    startAt: { kind: 'now' },
    maxMessagesPerRun: 1_000,
  };
  const commands: string[] = [];
  const compose = (keepSession: boolean) =>
    composePollerDeps(config, {
      log: silentLog,
      clientConfig: world.clientConfig,
      onCommand: (v) => commands.push(v),
      keepSession,
    });
  const poll = async (deps: PollDeps, expected: 'new' | 'reused'): Promise<{ ms: number; commands: string[] }> => {
    commands.length = 0;
    const t0 = performance.now();
    const summary = await pollMailbox(deps, pollOptions(config, Date.now() + 60_000));
    const ms = performance.now() - t0;
    if (summary.outcome !== 'idle') throw new Error(`expected idle, got ${summary.outcome}`);
    if (summary.imapSession !== expected) throw new Error(`expected a ${expected} session, got ${summary.imapSession}`);
    return { ms, commands: afterLogin(commands) };
  };
  // Cold: the Lambda's composition (it keeps its session), composing included.
  const t0 = performance.now();
  const kept = await compose(true);
  const cold = await poll(kept, 'new');
  cold.ms = performance.now() - t0;
  const fresh = await compose(false);
  const times: EmptyPollTimes = {
    cold: [cold.ms],
    warmNew: [],
    warmReused: [],
    bare: [],
    commands: { cold: cold.commands, warmNew: [], warmReused: [] },
  };
  for (let i = 0; i < rounds; i++) {
    const t1 = performance.now();
    const client = bareClient(world);
    await client.connect();
    await client.status(world.folder, { uidNext: true, uidValidity: true, messages: true });
    await client.logout();
    times.bare.push(performance.now() - t1);
    const n = await poll(fresh, 'new');
    times.warmNew.push(n.ms);
    times.commands.warmNew = n.commands;
    const r = await poll(kept, 'reused');
    times.warmReused.push(r.ms);
    times.commands.warmReused = r.commands;
  }
  kept.sessions?.clear();
  return times;
}

/** The commands after LOGIN / AUTHENTICATE (all of them when the session was already logged in). */
function afterLogin(commands: readonly string[]): string[] {
  const login = commands.findLastIndex((c) => c === 'LOGIN' || c === 'AUTHENTICATE');
  return commands.slice(login + 1);
}

export function median(xs: readonly number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
}
