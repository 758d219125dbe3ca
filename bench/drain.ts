/**
 * Benchmark: draining a backlog, and the empty poll, in one run on one generated backlog.
 *   node --import tsx bench/drain.ts [--messages 10000] [--profile DIR] [--empty-runs 3] [--only engine-null]
 *
 * One Dovecot (TLS) and one moto_server; a backlog of typical German business mails (2-5 KB, quoted-printable,
 * bench/business-mail.ts) appended with MULTIAPPEND. Each contender runs in its own Node process, so its CPU time
 * (process.cpuUsage) and peak RSS (getrusage maxRSS) are its own:
 *   raw          imapflow `UID FETCH 1:* BODY.PEEK[]`, rows collected: the IMAP limit
 *   engine-null  pollMailbox with a publisher that accepts everything at once (checkpoints in the emulator)
 *   engine-null-pool  the same with PARSE_WORKERS=1 (BENCH_PARSE_WORKERS=n for n): parsing in a worker thread
 *   engine-moto  pollMailbox into the emulator's EventBridge, a bus without rules (moto spends ~180 ms per event
 *                delivering to a rule's target: that would measure the emulator)
 *   sink-moto    the emulator's own limit: as many entries, each the size of its message, through the poller's
 *                EventBridge publisher alone (no IMAP, no parsing); engine-moto cannot go faster than this
 *   empty        the empty poll: cold (first poll of a fresh process, composing included), warm (the same process
 *                again, a new connection), against a bare imapflow connect + login + STATUS + logout (a new
 *                connection each time); IMAP commands after login
 * Absolute figures on a shared 2-core machine vary by +-30 %: read the ratios.
 * With --profile, one more engine-null drain runs under the V8 CPU profiler (the inspector's Profiler, which writes
 * what `node --cpu-prof` writes, for the drain alone) and the top self-time entries are printed.
 * Allocations by site (garbage included), for finding what makes GC work:
 *   BENCH_PROFILE_DIR=DIR BENCH_HEAP_SAMPLING=1 node --import tsx bench/drain.ts --only engine-profile
 * writes a .heapprofile (V8's sampling heap profiler; open it in Chrome DevTools' Memory tab).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { EmptyPollWorld } from './empty-poll.js';

const HERE = import.meta.dirname;
const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '10000' },
    profile: { type: 'string' },
    'empty-runs': { type: 'string', default: '3' },
    child: { type: 'string' },
    /** Only this contender (e.g. `engine-null` for a 50,000-message run): no ratios, no empty polls. */
    only: { type: 'string' },
  },
});

export interface WorldInfo extends EmptyPollWorld {
  readonly messages: number;
}

if (values.child) {
  const { runPhase } = await import('./drain-phases.js');
  const world = JSON.parse(process.env.BENCH_WORLD!) as WorldInfo;
  const result = await runPhase(values.child, world);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

const { startBenchWorld } = await import('./bench-world.js');
const { businessMail } = await import('./business-mail.js');
const backlog = Number(values.messages);
const bench = await startBenchWorld();
try {
  const t0 = performance.now();
  let bytes = 0;
  for (let from = 1; from <= backlog; from += 2_000) {
    const chunk = Array.from({ length: Math.min(2_000, backlog - from + 1) }, (_, i) => businessMail(from + i));
    for (const m of chunk) bytes += m.length;
    await bench.imap.appendMany(bench.user, bench.folder, chunk);
  }
  console.log(
    `backlog: ${backlog} messages, ${(bytes / backlog / 1024).toFixed(1)} KB average, appended in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  const world: WorldInfo = {
    host: 'localhost',
    port: bench.imap.info.imapsPort!,
    caPem: bench.caPem,
    username: bench.user.username,
    password: bench.user.password,
    folder: bench.folder,
    secretId: bench.secretId,
    table: bench.table,
    busName: bench.busName,
    clientConfig: bench.aws.clientConfig,
    messages: backlog,
  };

  if (values.only) {
    const r = await child(values.only, world);
    console.log(
      `${values.only}: ${r.messages} messages in ${r.seconds.toFixed(1)} s (${(r.messages / r.seconds).toFixed(0)} msg/s), ` +
        `CPU ${(r.cpuMs / r.messages).toFixed(3)} ms/msg, peak RSS ${(r.peakRss / 1024 / 1024).toFixed(0)} MB, ` +
        `duplicates ${r.duplicates} lost ${r.lost}`,
    );
  } else {
    const raw = await child('raw', world);
    const engineNull = await child('engine-null', world);
    const engineNullPool = await child('engine-null-pool', world);
    const engineMoto = await child('engine-moto', world);
    const sinkMoto = await child('sink-moto', world);
    const empties: PhaseResult[] = [];
    for (let i = 0; i < Number(values['empty-runs']); i++) empties.push(await child('empty', world));

    const rate = (r: PhaseResult) => r.messages / r.seconds;
    const row = (name: string, r: PhaseResult) =>
      `${name.padEnd(34)} ${rate(r).toFixed(0).padStart(7)} msg/s  ${(rate(r) / rate(raw)).toFixed(2).padStart(5)}x raw  ` +
      `CPU ${(r.cpuMs / r.messages).toFixed(3)} ms/msg  peak RSS ${(r.peakRss / 1024 / 1024).toFixed(0)} MB` +
      (r.duplicates === undefined ? '' : `  duplicates ${r.duplicates} lost ${r.lost}`);
    console.log(`\ndrain of ${backlog} messages (one run each, own process):`);
    console.log(row('raw imapflow UID FETCH 1:* BODY[]', raw));
    console.log(row('engine, null publisher', engineNull));
    console.log(row('  the same with 1 parse worker', engineNullPool));
    console.log(row('engine into moto (bus without rules)', engineMoto));
    console.log(row('  PutEvents alone into moto', sinkMoto));
    console.log(
      `  engine into moto / PutEvents alone: ${(rate(engineMoto) / rate(sinkMoto)).toFixed(2)}x (moto's limit is ${(rate(sinkMoto) / rate(raw)).toFixed(2)}x raw)`,
    );

    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const all = (key: keyof EmptyTimes) => empties.flatMap((e) => e.empty![key]);
    const bare = median(all('bare'));
    const line = (name: string, xs: number[]) =>
      `${name.padEnd(34)} median ${median(xs).toFixed(1).padStart(6)} ms  ${(median(xs) / bare).toFixed(2)}x bare  (${xs.length} polls)`;
    console.log(`\nempty poll (${empties.length} processes):`);
    console.log(line('bare connect/login/STATUS/logout', all('bare')));
    console.log(line('cold (first poll of a process)', all('cold')));
    console.log(line('warm, new connection', all('warmNew')));
    const e = empties[0]!.empty!;
    console.log(`IMAP commands after login: cold: ${e.commandsCold.join(' ')}`);
    console.log(`                           warm, new connection: ${e.commandsWarmNew.join(' ')}`);

    if (values.profile) {
      const dir = resolve(values.profile);
      mkdirSync(dir, { recursive: true });
      const profiled = await child('engine-profile', world, { BENCH_PROFILE_DIR: dir });
      const file = readdirSync(dir)
        .filter((f) => f.endsWith('.cpuprofile'))
        .map((f) => join(dir, f))
        .sort()
        .pop()!;
      console.log(`\nCPU profile of an engine-null drain of ${profiled.messages} messages (${file}), top self time:`);
      for (const l of topEntries(file, 15)) console.log(l);
    }
  }
} finally {
  await bench.stop();
}

interface EmptyTimes {
  cold: number[];
  warmNew: number[];
  bare: number[];
}
export interface PhaseResult {
  messages: number;
  seconds: number;
  cpuMs: number;
  peakRss: number;
  duplicates?: number;
  lost?: number;
  empty?: EmptyTimes & { commandsCold: string[]; commandsWarmNew: string[] };
}

function child(phase: string, world: WorldInfo, env: Record<string, string> = {}): Promise<PhaseResult> {
  return new Promise((resolvePhase, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', join(HERE, 'drain.ts'), '--child', phase], {
      env: { ...process.env, ...env, BENCH_WORLD: JSON.stringify(world) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.on('error', reject);
    proc.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`phase ${phase} exited with ${code}: ${out.slice(-2000)}`));
      resolvePhase(JSON.parse(out.trim().split('\n').pop()!) as PhaseResult);
    });
  });
}

/** Self time per function (name, file:line) of a .cpuprofile, largest first, with its share of all samples. */
function topEntries(file: string, count: number): string[] {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as {
    nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
    samples: number[];
    timeDeltas: number[];
  };
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const frame = byId.get(id)!.callFrame;
    const where = frame.url ? `${shortUrl(frame.url)}:${frame.lineNumber + 1}` : '';
    const key = `${frame.functionName || '(anonymous)'} ${where}`.trim();
    const dt = profile.timeDeltas[i] ?? 0;
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  });
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(
      ([key, us]) =>
        `${((100 * us) / total).toFixed(1).padStart(5)} %  ${(us / 1000).toFixed(0).padStart(6)} ms  ${key}`,
    );
}

function shortUrl(url: string): string {
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length);
  const fn = url.indexOf('/functions/');
  return fn >= 0 ? url.slice(fn + 1) : url.replace(/^file:\/\//, '');
}
