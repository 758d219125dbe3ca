/**
 * Benchmark: draining a backlog, and the empty poll, in one run on one generated backlog.
 *   node --import tsx bench/drain.ts [--messages 10000] [--profile DIR] [--empty-runs 3] [--only engine-null]
 *
 * One Dovecot (TLS) and one moto_server; a backlog of typical German business mails (2-5 KB, quoted-printable,
 * bench/business-mail.ts) appended with MULTIAPPEND. Each contender runs in its own Node process, so its CPU time
 * and peak RSS (VmHWM; getrusage's maxRSS would start at the parent's RSS) are its own. That process runs what the
 * Lambda runs: bench/drain-child.ts bundled once per run with esbuild as `npm run build` bundles the handler
 * (scripts/handler-bundle.ts: one minified CommonJS file with its source map, the AWS SDK external, found here in
 * node_modules through NODE_PATH) and started by plain `node --enable-source-maps` as the Lambda runs it, no tsx (a
 * process that has only loaded bench/drain-phases.ts through tsx holds ~96 MB; bare node ~40 MB; the bundle loaded
 * ~64 MB). The parse pool's worker runs that bundle, as in the Lambda. Contenders:
 *   raw          imapflow `UID FETCH 1:* BODY.PEEK[]`, rows collected: the IMAP limit
 *   engine-null  pollMailbox with a publisher that accepts everything at once (checkpoints in the emulator)
 *   engine-null-warm  the same in a warm container: a first poll (one message, not measured) loaded the code, the
 *                secret and the SDK clients and kept its IMAP session, as a Lambda container's previous invocation
 *                does; the measured poll drains the other messages (a cold process spent 0.2-0.4 s more on 10,000)
 *   engine-null-pool  the same with PARSE_WORKERS=1 (BENCH_PARSE_WORKERS=n for n): parsing in a worker thread
 *   engine-moto  pollMailbox into the emulator's EventBridge, a bus without rules (moto spends ~180 ms per event
 *                delivering to a rule's target: that would measure the emulator)
 *   sink-moto    the emulator's own limit: as many entries, each the size of its message, through the poller's
 *                EventBridge publisher alone (no IMAP, no parsing); engine-moto cannot go faster than this
 *   empty        the empty poll: cold (first poll of a fresh process, composing included), warm (the same process
 *                again, on a new connection, and on the session the previous poll kept), against a bare imapflow connect + login + STATUS + logout (a new
 *                connection each time); IMAP commands after login
 * Per contender: CPU ms per message, all the process's threads (process.cpuUsage: V8's compiler and GC helpers and a
 * parse worker included) and its main thread alone (/proc/self/task); `server CPU`: what the servers spent during
 * the drain (bench/proc-stats.ts), Dovecot's processes (the tree under its master: TLS in imap-login, the imap process)
 * and moto_server's (the checkpoints, the events); peak RSS.
 * `process floor`: the peak RSS of a child that loaded the bundle and ran nothing: what a contender adds is its peak
 * RSS less that.
 * The N-core bound (N = os.availableParallelism()): a drain needing M ms of main-thread CPU per message cannot go
 * faster than 1000/M msg/s (one thread does that work in turn), and needing C ms of client CPU (all threads) plus S
 * ms of server CPU per message, not faster than 1000*N/(C+S) msg/s (all cores busy), and moto_server, whose Python
 * runs one thread at a time (the GIL), spending P ms per message, not much faster than 1000/P msg/s: at most
 * min(1000/M, 1000*N/(C+S), 1000/P). Printed for every contender, also as a ratio to raw's measured rate: the best
 * ratio this machine allows for that contender's CPU per message. It is optimistic: it counts neither other load on
 * the machine nor that Dovecot's imap process does its work on one thread too.
 * Absolute figures on a shared 2-core machine vary by +-30 %: read the ratios.
 * With --profile, one more engine-null drain runs under the V8 CPU profiler (the inspector's Profiler, which writes
 * what `node --cpu-prof` writes, for the drain alone) and the top self-time entries are printed. It runs from the
 * sources through tsx (`--child engine-profile`, which also runs any contender ad hoc given BENCH_WORLD), so the
 * profile names the sources' functions and lines.
 * Allocations by site (garbage included), for finding what makes GC work:
 *   BENCH_PROFILE_DIR=DIR BENCH_HEAP_SAMPLING=1 node --import tsx bench/drain.ts --only engine-profile
 * writes a .heapprofile (V8's sampling heap profiler; open it in Chrome DevTools' Memory tab).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { EmptyPollWorld } from './empty-poll.js';

const HERE = import.meta.dirname;
const CORES = availableParallelism();
const BOUND = `M ms/msg client CPU on its main thread, C ms/msg client CPU in all, S ms/msg server CPU (P of it moto's): at most min(1000/M, 1000*${CORES}/(C+S), 1000/P) msg/s`;
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
  /** Dovecot's master process (`dovecot -F`) and moto_server's: their process trees' CPU is the servers'. */
  readonly dovecotPid: number;
  readonly motoPid: number;
}

if (values.child) {
  // An ad-hoc run of one contender from the sources (BENCH_WORLD set by hand): through tsx, not the bundle.
  const { runChild } = await import('./drain-child.js');
  await runChild(values.child);
}

const { startBenchWorld } = await import('./bench-world.js');
const { businessMail } = await import('./business-mail.js');
const backlog = Number(values.messages);
const bench = await startBenchWorld();
const bundleDir = mkdtempSync(join(tmpdir(), 'ies-bench-drain-'));
try {
  const bundle = await bundleChild(bundleDir);
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
    dovecotPid: bench.imap.info.pid,
    motoPid: bench.motoServer.info.pid,
  };
  const child = (phase: string, world: WorldInfo, env: Record<string, string> = {}) =>
    runContender(bundle, phase, world, env);

  const floor = await child('floor', world);
  const floorLine = `process floor (the bundle loaded, nothing run): peak RSS ${mb(floor.peakRss)} MB`;
  if (values.only) {
    const r = await child(values.only, world);
    console.log(
      `${values.only}: ${r.messages} messages in ${r.seconds.toFixed(1)} s (${(r.messages / r.seconds).toFixed(0)} msg/s), ` +
        `${cpu(r)}, peak RSS ${mb(r.peakRss)} MB${r.duplicates === undefined ? '' : `, duplicates ${r.duplicates} lost ${r.lost}`}`,
    );
    console.log(floorLine);
    if (r.dovecotCpuMs !== undefined) {
      console.log(`the ${CORES}-core bound: ${BOUND}`);
      console.log(
        `  at most ${bound(r).limit.toFixed(0)} msg/s (${bound(r).by}); measured ${(r.messages / r.seconds / bound(r).limit).toFixed(2)} of it`,
      );
    }
  } else {
    const raw = await child('raw', world);
    const engineNull = await child('engine-null', world);
    const engineNullWarm = await child('engine-null-warm', world);
    const engineNullPool = await child('engine-null-pool', world);
    const engineMoto = await child('engine-moto', world);
    const sinkMoto = await child('sink-moto', world);
    const empties: PhaseResult[] = [];
    for (let i = 0; i < Number(values['empty-runs']); i++) empties.push(await child('empty', world));

    const rate = (r: PhaseResult) => r.messages / r.seconds;
    const row = (name: string, r: PhaseResult) =>
      `${name.padEnd(34)} ${rate(r).toFixed(0).padStart(7)} msg/s  ${(rate(r) / rate(raw)).toFixed(2).padStart(5)}x raw  ` +
      `${cpu(r)}  peak RSS ${mb(r.peakRss)} MB` +
      (r.duplicates === undefined ? '' : `  duplicates ${r.duplicates} lost ${r.lost}`);
    console.log(`\ndrain of ${backlog} messages (one run each, own process, the bundle run by node):`);
    console.log(row('raw imapflow UID FETCH 1:* BODY[]', raw));
    console.log(row('engine, null publisher', engineNull));
    console.log(row('  the same, warm container', engineNullWarm));
    console.log(row('  the same with 1 parse worker', engineNullPool));
    console.log(row('engine into moto (bus without rules)', engineMoto));
    console.log(row('  PutEvents alone into moto', sinkMoto));
    console.log(
      `  engine into moto / PutEvents alone: ${(rate(engineMoto) / rate(sinkMoto)).toFixed(2)}x (moto's limit is ${(rate(sinkMoto) / rate(raw)).toFixed(2)}x raw)`,
    );
    console.log(floorLine);
    console.log(`the ${CORES}-core bound: ${BOUND}`);
    const boundRow = (name: string, r: PhaseResult) => {
      const b = bound(r);
      return (
        `  ${name.padEnd(32)} at most ${b.limit.toFixed(0).padStart(6)} msg/s (${b.by}) = ${(b.limit / rate(raw)).toFixed(2)}x raw's rate; ` +
        `measured ${(rate(r) / b.limit).toFixed(2)} of it`
      );
    };
    console.log(boundRow('raw', raw));
    console.log(boundRow('engine, null publisher', engineNull));
    console.log(boundRow('  warm container', engineNullWarm));
    console.log(boundRow('  with 1 parse worker', engineNullPool));
    console.log(boundRow('engine into moto', engineMoto));
    console.log(boundRow('  PutEvents alone into moto', sinkMoto));

    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const all = (key: keyof EmptyTimes) => empties.flatMap((e) => e.empty![key]);
    const bare = median(all('bare'));
    const line = (name: string, xs: number[]) =>
      `${name.padEnd(34)} median ${median(xs).toFixed(1).padStart(6)} ms  ${(median(xs) / bare).toFixed(2)}x bare  (${xs.length} polls)`;
    console.log(`\nempty poll (${empties.length} processes):`);
    console.log(line('bare connect/login/STATUS/logout', all('bare')));
    console.log(line('cold (first poll of a process)', all('cold')));
    console.log(line('warm, new connection', all('warmNew')));
    console.log(line('warm, the kept session', all('warmReused')));
    const e = empties[0]!.empty!;
    console.log(`IMAP commands after login: cold: ${e.commandsCold.join(' ')}`);
    console.log(`                           warm, new connection: ${e.commandsWarmNew.join(' ')}`);
    console.log(`                           warm, the kept session: ${e.commandsWarmReused.join(' ')}`);

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
  rmSync(bundleDir, { recursive: true, force: true });
}

interface EmptyTimes {
  cold: number[];
  warmNew: number[];
  warmReused: number[];
  bare: number[];
}
export interface PhaseResult {
  messages: number;
  seconds: number;
  cpuMs: number;
  peakRss: number;
  /** The main thread's CPU alone (no GC helpers, no libuv pool, no parse worker). */
  mainCpuMs?: number;
  /** CPU of Dovecot's processes and of moto_server's during the drain. */
  dovecotCpuMs?: number;
  motoCpuMs?: number;
  duplicates?: number;
  lost?: number;
  empty?: EmptyTimes & { commandsCold: string[]; commandsWarmNew: string[]; commandsWarmReused: string[] };
}

function mb(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(0);
}

/** CPU per message: the client (all threads, its main thread), the servers when measured. */
function cpu(r: PhaseResult): string {
  const per = (ms: number) => (ms / r.messages).toFixed(3);
  const client = `CPU ${per(r.cpuMs)} ms/msg (main thread ${per(r.mainCpuMs!)})`;
  if (r.dovecotCpuMs === undefined || r.motoCpuMs === undefined) return client;
  const server = `server CPU ${per(r.dovecotCpuMs + r.motoCpuMs)} ms/msg (Dovecot ${per(r.dovecotCpuMs)}, moto ${per(r.motoCpuMs)})`;
  return `${client}  ${server}`;
}

/** The most a contender could drain on this machine's cores given the CPU it needs per message (see the header). */
function bound(r: PhaseResult): { limit: number; by: string } {
  const limits = [
    { limit: 1000 / (r.mainCpuMs! / r.messages), by: 'main thread' },
    { limit: (1000 * CORES) / ((r.cpuMs + r.dovecotCpuMs! + r.motoCpuMs!) / r.messages), by: 'cores' },
    // moto_server runs its Python one thread at a time (the GIL): about 1000/P msg/s for P ms of its CPU per message.
    { limit: 1000 / (r.motoCpuMs! / r.messages), by: 'moto' },
  ];
  return limits.reduce((a, b) => (b.limit < a.limit ? b : a));
}

/**
 * Builds the contenders' code as `npm run build` builds the Lambda's handler (one CommonJS file, minified, with its
 * source map, the AWS SDK external) from bench/drain-child.ts into `dir`.
 */
async function bundleChild(dir: string): Promise<string> {
  const { build } = await import('esbuild');
  const { handlerBundleOptions } = await import('../scripts/handler-bundle.js');
  const outfile = join(dir, 'index.js');
  await build(handlerBundleOptions(join(HERE, 'drain-child.ts'), outfile));
  writeFileSync(join(dir, 'package.json'), '{ "type": "commonjs" }\n');
  return outfile;
}

/**
 * One contender in its own process: the bundle run by plain node, with --enable-source-maps as the Lambda runs it, and
 * the AWS SDK (which the Lambda runtime provides) found in this repository's node_modules. The profiled drain runs
 * from the sources through tsx instead, so the profile names the sources' functions and lines.
 */
function runContender(
  bundle: string,
  phase: string,
  world: WorldInfo,
  env: Record<string, string> = {},
): Promise<PhaseResult> {
  const fromSources = phase === 'engine-profile';
  const args = fromSources ? ['--import', 'tsx', join(HERE, 'drain.ts'), '--child', phase] : [bundle];
  return new Promise((resolvePhase, reject) => {
    const proc = spawn(process.execPath, args, {
      env: {
        ...process.env,
        ...env,
        BENCH_WORLD: JSON.stringify(world),
        ...(fromSources
          ? {}
          : { BENCH_PHASE: phase, NODE_OPTIONS: '--enable-source-maps', NODE_PATH: join(HERE, '../node_modules') }),
      },
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
