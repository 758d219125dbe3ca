/**
 * Benchmark: the poller's peak memory while it handles one 50 MB message, without and with raw-message storage.
 *   node --import tsx bench/large-message.ts [--runs 1] [--mb 50] [--tsx] [--node-options=FLAGS]
 *
 * Starts its own Dovecot (TLS) and moto_server on 127.0.0.1, appends the 50 MB fixture message once, then runs the
 * Lambda handler for each case in a FRESH child process (independent numbers), polling the same message under its
 * own mailbox id (START_AT=all). By default the child loads the handler bundled the way the CDK stack ships it
 * (esbuild, CJS, minified, AWS SDK external); `--tsx` runs the TypeScript sources through tsx instead (adds the
 * loader's own memory). The child reports:
 *   - peak RSS: the kernel's high-water mark of the child (VmHWM in /proc/self/status), which also catches peaks
 *     the sampler misses while the event loop is busy (ru_maxrss would not do: it inherits the parent's RSS);
 *   - sampled peaks of RSS, V8 heap and ArrayBuffers (process.memoryUsage() every 10 ms), to see where it goes;
 *   - RSS after loading the handler (the floor every run pays).
 * Target (issue #5): peak RSS under 150 MB with raw storage on. `--mb 150` appends a 150 MB message instead
 * (same shape): bounded memory means the peaks hardly change with the message size. `--node-options` passes
 * NODE_OPTIONS to the child (for experiments with V8 flags).
 */
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { base64Lines, buildFiftyMegabyteMessage, pseudoRandomBytes } from '../test/support/fixture-messages.js';
import { uniqueName } from '../test/support/moto.js';
import { startBenchWorld } from './bench-world.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'; // the SDK's Node 22 notice: noise here

const TARGET_MB = 150;
const root = join(import.meta.dirname, '..');
const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '1' },
    mb: { type: 'string', default: '50' },
    tsx: { type: 'boolean', default: false },
    'node-options': { type: 'string', default: '' },
  },
});
const runs = Number(values.runs);
const megabytes = Number(values.mb);

/** The 50 MB fixture message, or one of the same shape (text part + base64 attachment) of about `mb` MiB. */
function bigMessage(mb: number): Uint8Array {
  if (mb === 50) return buildFiftyMegabyteMessage().bytes;
  const head = [
    'From: Alice Example <alice@example.com>',
    'To: Support <support@example.org>',
    `Subject: ${mb} MB message`,
    'Date: Thu, 26 Nov 2026 10:00:00 +0100',
    `Message-ID: <${mb}-mb@bench.imap-event-source.test>`,
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="huge"',
  ].join('\r\n');
  const attachment = base64Lines(pseudoRandomBytes(Math.ceil((mb * 1024 * 1024 * 57) / 78), 7));
  return Buffer.concat([
    Buffer.from(`${head}\r\n\r\n--huge\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nA very big message.\r\n`),
    Buffer.from(
      '--huge\r\nContent-Type: application/zip\r\nContent-Disposition: attachment; filename="archive.zip"\r\nContent-Transfer-Encoding: base64\r\n\r\n',
    ),
    Buffer.from(attachment),
    Buffer.from('\r\n--huge--\r\n'),
  ]);
}

/** What a child reports (bytes). */
interface ChildReport {
  outcome: string;
  published: number;
  durationMs: number;
  maxRss: number;
  sampledRss: number;
  sampledHeapUsed: number;
  sampledArrayBuffers: number;
  loadedRss: number;
}

/** The child: loads the handler, samples memory every 10 ms, runs one poll, prints one JSON line. */
const CHILD_SOURCE = `
const handlerPath = process.env.BENCH_HANDLER;
const load = () => handlerPath.endsWith('.ts') ? import(handlerPath) : Promise.resolve(require(handlerPath));
(async () => {
  const { handler } = await load();
  const loadedRss = process.memoryUsage().rss;
  const peak = { rss: 0, heapUsed: 0, arrayBuffers: 0 };
  const sample = () => {
    const m = process.memoryUsage();
    peak.rss = Math.max(peak.rss, m.rss);
    peak.heapUsed = Math.max(peak.heapUsed, m.heapUsed);
    peak.arrayBuffers = Math.max(peak.arrayBuffers, m.arrayBuffers);
  };
  const timer = setInterval(sample, 10);
  const started = Date.now();
  const result = await handler({}, { getRemainingTimeInMillis: () => 300000 });
  const durationMs = Date.now() - started;
  sample();
  clearInterval(timer);
  // VmHWM: this process's own high-water mark. ru_maxrss (process.resourceUsage().maxRSS) is no good here: on Linux
  // it starts at the RSS of the process that forked this one (the parent holds the big message), exec keeps it.
  let hwm;
  try {
    hwm = Number(/^VmHWM:[ \t]+([0-9]+) kB/m.exec(require('node:fs').readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
  } catch {
    hwm = process.resourceUsage().maxRSS * 1024; // not Linux: an upper bound
  }
  const report = { ...result, durationMs, maxRss: hwm, sampledRss: peak.rss,
    sampledHeapUsed: peak.heapUsed, sampledArrayBuffers: peak.arrayBuffers, loadedRss };
  process.stdout.write('BENCH ' + JSON.stringify(report) + '\\n');
})().catch((err) => { console.error(err); process.exit(1); });
`;

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;

async function prepareChild(): Promise<{ script: string; handler: string; nodeArgs: string[] }> {
  const dir = join(root, '.tmp', 'bench-large-message'); // inside the repo: the bundle resolves the external AWS SDK from node_modules
  await mkdir(dir, { recursive: true });
  const script = join(dir, 'child.cjs');
  await writeFile(script, CHILD_SOURCE);
  if (values.tsx) return { script, handler: join(root, 'functions/poller/handler.ts'), nodeArgs: ['--import', 'tsx'] };
  const handler = join(dir, 'handler.cjs');
  // As lib/imap-event-source.ts bundles it (target: this Node instead of the Lambda's node24).
  await build({
    entryPoints: [join(root, 'functions/poller/handler.ts')],
    outfile: handler,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: `node${process.versions.node.split('.')[0]}`,
    minify: true,
    external: ['@aws-sdk/*'],
    logLevel: 'error',
  });
  return { script, handler, nodeArgs: [] };
}

function runChild(
  child: { script: string; handler: string; nodeArgs: string[] },
  env: Record<string, string>,
): Promise<ChildReport> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [...child.nodeArgs, child.script], {
      cwd: root,
      env: {
        PATH: process.env.PATH ?? '',
        ...env,
        BENCH_HANDLER: child.handler,
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
        ...(values['node-options'] ? { NODE_OPTIONS: values['node-options'] } : {}),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    proc.on('error', reject);
    proc.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('BENCH '));
      if (code !== 0 || !line) reject(new Error(`benchmark child failed (exit ${code}):\n${err}\n${out.slice(-2000)}`));
      else resolve(JSON.parse(line.slice(6)) as ChildReport);
    });
  });
}

const { imap, motoServer, aws, user, folder, secretId, table, busName, stop } = await startBenchWorld();
let failed = false;
try {
  const bucket = uniqueName('raw');
  await aws.createBucket(bucket);

  const message = bigMessage(megabytes);
  const [uid] = await imap.appendMany(user, folder, [Buffer.from(message)]);
  const size = message.length;
  const child = await prepareChild();
  console.log(
    `${megabytes} MB message: ${size} bytes (UID ${uid}); handler ${values.tsx ? 'TypeScript sources via tsx' : 'bundled like the stack ships it (esbuild CJS, minified, AWS SDK external)'}; Node ${process.version}`,
  );

  const cases = [
    { name: 'raw storage off', raw: false },
    { name: 'raw storage on ', raw: true },
  ];
  const peaks: Record<string, number[]> = {};
  for (let run = 1; run <= runs; run++) {
    for (const c of cases) {
      const mailboxId = uniqueName(c.raw ? 'raw' : 'noraw');
      const report = await runChild(child, {
        AWS_ENDPOINT_URL: motoServer.info.endpoint,
        AWS_REGION: 'us-east-1',
        AWS_ACCESS_KEY_ID: 'testing',
        AWS_SECRET_ACCESS_KEY: 'testing',
        MAILBOX_ID: mailboxId,
        SECRET_ID: secretId,
        CHECKPOINT_TABLE: table,
        EVENT_BUS_NAME: busName,
        START_AT: 'all',
        POWERTOOLS_LOG_LEVEL: 'ERROR',
        POWERTOOLS_METRICS_DISABLED: 'true',
        ...(c.raw ? { RAW_BUCKET: bucket } : {}),
      });
      if (report.outcome !== 'published' || report.published !== 1)
        throw new Error(`${c.name}: expected one published message, got ${JSON.stringify(report)}`);
      if (c.raw) {
        const stored = await aws.headObject(
          bucket,
          `${mailboxId}/${(await imap.status(user, folder)).uidValidity}/${uid}.eml`,
        );
        if (stored?.size !== size) throw new Error(`${c.name}: raw object has ${stored?.size} bytes, expected ${size}`);
      }
      (peaks[c.name] ??= []).push(report.maxRss);
      console.log(
        `${c.name}: peak RSS ${mb(report.maxRss)} (sampled ${mb(report.sampledRss)}; after loading the handler ${mb(report.loadedRss)}); ` +
          `sampled peaks: V8 heap ${mb(report.sampledHeapUsed)}, ArrayBuffers ${mb(report.sampledArrayBuffers)}; poll ${(report.durationMs / 1000).toFixed(1)} s`,
      );
    }
  }
  const worstRaw = Math.max(...peaks[cases[1]!.name]!);
  failed = worstRaw >= TARGET_MB * 1024 * 1024;
  console.log(
    `target: peak RSS with raw storage under ${TARGET_MB} MB: ${failed ? 'MISSED' : 'met'} (${mb(worstRaw)})`,
  );
} finally {
  await stop();
}
if (failed) process.exitCode = 1;
