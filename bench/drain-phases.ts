/** The contenders of bench/drain.ts, each run in its own process (see there). */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { composePollerDeps, pollOptions } from '../functions/poller/compose.js';
import type { PollerConfig } from '../functions/poller/contract/poller-env.js';
import { DETAIL_TYPE_MESSAGE, type StartAt } from '../functions/poller/core/types.js';
import { type EventPublisher, silentLog } from '../functions/poller/ports.js';
import type { ParsePool } from '../functions/poller/run/parse-pool.js';
import { pollMailbox } from '../functions/poller/run/poll-mailbox.js';
import { eventEntry } from '../functions/poller/run/prepare.js';
import { businessMail } from './business-mail.js';
import type { PhaseResult, WorldInfo } from './drain.js';
import { bareClient, measureEmptyPolls } from './empty-poll.js';
import { mainThreadCpuMs, peakRss, processTreeCpuMs } from './proc-stats.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export async function runPhase(phase: string, world: WorldInfo): Promise<PhaseResult> {
  switch (phase) {
    case 'floor':
      // The bundle loaded, nothing run (the SDK's clients, loaded when composing, are not in it).
      return { messages: 0, seconds: 0, cpuMs: 0, peakRss: peakRss() };
    case 'raw':
      return measure(world, () => rawDrain(world));
    case 'engine-null':
      return engineDrain(world, 'drain-null', true);
    case 'engine-null-warm':
      return engineDrain(world, 'drain-null-warm', true, 0, true);
    case 'engine-null-pool':
      return engineDrain(world, 'drain-null-pool', true, Number(process.env.BENCH_PARSE_WORKERS ?? 1));
    case 'engine-profile':
      return profiled(process.env.BENCH_PROFILE_DIR!, () => engineDrain(world, 'drain-profile', true));
    case 'engine-moto':
      return engineDrain(world, 'drain-moto', false);
    case 'sink-moto':
      return sinkDrain(world);
    case 'empty':
      return emptyPolls(world);
    default:
      throw new Error(`unknown phase ${phase}`);
  }
}

/**
 * A CPU profile of `work` alone (the same .cpuprofile `node --cpu-prof` writes, without module loading and
 * start-up in it), written to `dir`.
 */
async function profiled<T>(dir: string, work: () => Promise<T>): Promise<T> {
  const session = new Session();
  session.connect();
  if (process.env.BENCH_HEAP_SAMPLING) {
    await session.post('HeapProfiler.enable');
    await session.post('HeapProfiler.startSampling', {
      samplingInterval: 32 * 1024,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    } as never);
    const result = await work();
    const { profile } = await session.post('HeapProfiler.stopSampling');
    writeFileSync(join(dir, `drain-${Date.now()}.heapprofile`), JSON.stringify(profile));
    session.disconnect();
    return result;
  }
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 200 });
  await session.post('Profiler.start');
  const result = await work();
  const { profile } = await session.post('Profiler.stop');
  writeFileSync(join(dir, `drain-${Date.now()}.cpuprofile`), JSON.stringify(profile));
  session.disconnect();
  return result;
}

/** `work`'s wall time, this process's CPU (all threads, and the main thread alone), the servers' CPU, peak RSS. */
async function measure(world: WorldInfo, work: () => Promise<number>): Promise<PhaseResult> {
  const dovecot = processTreeCpuMs(world.dovecotPid);
  const moto = processTreeCpuMs(world.motoPid);
  const main = mainThreadCpuMs();
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  const messages = await work();
  const seconds = (performance.now() - t0) / 1000;
  const used = process.cpuUsage(cpu);
  return {
    messages,
    seconds,
    cpuMs: (used.user + used.system) / 1000,
    mainCpuMs: mainThreadCpuMs() - main,
    dovecotCpuMs: processTreeCpuMs(world.dovecotPid) - dovecot,
    motoCpuMs: processTreeCpuMs(world.motoPid) - moto,
    peakRss: peakRss(),
  };
}

/** The IMAP limit: every message's full source in one UID FETCH, rows collected. */
async function rawDrain(world: WorldInfo): Promise<number> {
  const client = bareClient(world);
  await client.connect();
  await client.mailboxOpen(world.folder, { readOnly: true });
  const rows: Buffer[] = [];
  for await (const m of client.fetch('1:*', { uid: true, source: true }, { uid: true }))
    if (m.source) rows.push(m.source);
  await client.logout();
  return rows.length;
}

function config(world: WorldInfo, mailboxId: string, startAt: StartAt, parseWorkers = 0): PollerConfig {
  return {
    ...(parseWorkers > 0 ? { parseWorkers } : {}),
    mailboxId,
    secretId: world.secretId,
    checkpointTable: world.table,
    eventBusName: world.busName,
    eventSource: 'imap-event-source',
    startAt,
    maxMessagesPerRun: world.messages,
  };
}

/** Counts the UIDs of accepted entries, to find duplicates and lost messages. */
function counting(inner: EventPublisher, seen: Map<number, number>): EventPublisher {
  return {
    async publish(entries) {
      const result = await inner.publish(entries);
      for (const i of result.accepted) {
        const uid = entries[i]!.uid;
        if (uid !== undefined) seen.set(uid, (seen.get(uid) ?? 0) + 1);
      }
      return result;
    },
  };
}

const nullPublisher: EventPublisher = {
  async publish(entries) {
    return { accepted: new Set(entries.map((_, i) => i)), failed: new Map() };
  },
};

/**
 * The engine's drain of the backlog in a fresh process. `warm`: a warm container's instead, whose previous poll (one
 * message, not measured) loaded the code, the secret and the SDK clients and kept its IMAP session; the measured
 * poll drains the rest.
 */
async function engineDrain(
  world: WorldInfo,
  mailboxId: string,
  nullPublish: boolean,
  parseWorkers = 0,
  warm = false,
): Promise<PhaseResult> {
  const cfg = config(world, mailboxId, { kind: 'all' }, parseWorkers);
  const deps = await composePollerDeps(cfg, { log: silentLog, clientConfig: world.clientConfig });
  const seen = new Map<number, number>();
  const publisher = counting(nullPublish ? nullPublisher : deps.publisher, seen);
  if (warm) {
    const first = await pollMailbox(
      { ...deps, publisher },
      pollOptions({ ...cfg, maxMessagesPerRun: 1 }, Date.now() + 60_000),
    );
    if (first.published !== 1) throw new Error(`the warm-up poll published ${first.published}`);
  }
  let summary: Awaited<ReturnType<typeof pollMailbox>> | undefined;
  const result = await measure(world, async () => {
    summary = await pollMailbox({ ...deps, publisher }, pollOptions(cfg, Date.now() + 30 * 60_000));
    return summary.published;
  });
  // A pool whose workers could not start (e.g. their file failed to load) builds every batch in the drain's thread:
  // that would measure the drain without workers. (With one core there is no pool.)
  const pool = deps.detailer as ParsePool | undefined;
  if (pool && !(await pool.started())) throw new Error('the parse workers did not start');
  await pool?.close();
  if (summary!.outcome !== 'published') throw new Error(`drain ended ${summary!.outcome} (${summary!.stoppedBy})`);
  let duplicates = 0;
  for (const n of seen.values()) duplicates += n - 1;
  let lost = 0;
  for (let uid = 1; uid <= world.messages; uid++) if (!seen.has(uid)) lost++;
  return { ...result, duplicates, lost };
}

/**
 * The emulator's own limit: as many entries as the backlog has messages, each carrying its message's text (about the
 * size of the engine's events), through the poller's EventBridge publisher in the drain's batches of 100 (chunks of
 * 10 entries, 4 PutEvents calls at a time). No IMAP, no parsing: what moto_server accepts per second on this machine.
 */
async function sinkDrain(world: WorldInfo): Promise<PhaseResult> {
  const cfg = config(world, 'sink-moto', { kind: 'all' });
  const deps = await composePollerDeps(cfg, { log: silentLog, clientConfig: world.clientConfig });
  const target = {
    mailboxId: cfg.mailboxId,
    folder: world.folder,
    eventSource: cfg.eventSource,
    eventBusName: cfg.eventBusName,
  };
  const entries = Array.from({ length: world.messages }, (_, i) =>
    eventEntry(
      target,
      DETAIL_TYPE_MESSAGE,
      JSON.stringify({ uid: i + 1, text: businessMail(i + 1).toString('latin1') }),
    ),
  );
  return measure(world, async () => {
    let accepted = 0;
    for (let i = 0; i < entries.length; i += 100) {
      accepted += (await deps.publisher.publish(entries.slice(i, i + 100))).accepted.size;
    }
    return accepted;
  });
}

async function emptyPolls(world: WorldInfo): Promise<PhaseResult> {
  // The engine-null drain left this mailbox's checkpoint at the end of the backlog: every poll is empty.
  const e = await measureEmptyPolls(world, 'drain-null');
  return {
    messages: 0,
    seconds: 0,
    cpuMs: 0,
    peakRss: peakRss(),
    empty: {
      cold: e.cold,
      warmNew: e.warmNew,
      warmReused: e.warmReused,
      bare: e.bare,
      commandsCold: e.commands.cold,
      commandsWarmNew: e.commands.warmNew,
      commandsWarmReused: e.commands.warmReused,
    },
  };
}
