/**
 * The package as a cloud team gets it: `npm pack` in this repository (`prepack` builds dist/), then
 * `npm install <tarball>` into an empty project, and what that team does next: run the CLI (against
 * the test Dovecot too), type-check a strict CDK app of its own under NodeNext and bundler resolution,
 * synthesize it without esbuild, and run the synthesized Lambda asset as the Node.js 24 runtime would
 * (the AWS SDK from outside the asset, via NODE_PATH) against the test Dovecot and moto_server.
 * One pack and one install, shared by all checks; `npm install` uses the npm cache that `npm ci` filled.
 */
import { type SpawnOptions, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dovecot, mailboxSecret, moto } from '../support/env.js';
import { buildMessage } from '../support/messages.js';
import { uniqueName } from '../support/moto.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const repoPackage = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as {
  version: string;
  dependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
};
/** The consumer's dev tools in the versions this repository locked, so the warm npm cache has them. */
const lockedVersion = (name: string) =>
  (JSON.parse(readFileSync(join(REPO, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment of a fresh shell: no npm lifecycle variables (an outer `npm test` sets its prefix), no loaders. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { NO_COLOR: '1', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^npm_|^NODE_OPTIONS$|^NODE_PATH$|^AWS_/i.test(key)) env[key] = value;
  }
  return { ...env, ...extra };
}

/** Runs a command to its end; never throws for a non-zero exit (tests assert on the result). */
function exec(command: string, args: string[], options: SpawnOptions & { timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: cleanEnv(), ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Like exec, but a non-zero exit is an error carrying the output. */
async function must(command: string, args: string[], options: SpawnOptions & { timeoutMs?: number } = {}) {
  const r = await exec(command, args, options);
  if (r.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** Memoized: each expensive step runs once, whichever test needs it first. */
function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= fn());
}

/** A consumer's CDK app: its own table (`pk`), bus and secret, one ImapEventSource. */
const APP_TS = `import { App, Stack } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { ImapEventSource, type ImapEventSourceProps } from 'imap-event-source';
import { DETAIL_TYPE_MESSAGE, type MessageReceivedDetail } from 'imap-event-source/types';

const app = new App({ outdir: process.argv[2] ?? 'cdk.out' });
const stack = new Stack(app, 'ConsumerStack', { env: { account: '123456789012', region: 'eu-central-1' } });
const table = new dynamodb.Table(stack, 'Checkpoints', {
  partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
});
const bus = new events.EventBus(stack, 'Bus', { eventBusName: 'mail-events' });
const secret = new secretsmanager.Secret(stack, 'SupportMailbox');
const props: ImapEventSourceProps = {
  mailboxId: 'support',
  secret,
  checkpointTable: table,
  eventBus: events.EventBus.fromEventBusName(stack, 'BusByName', bus.eventBusName),
  startAt: 'all',
};
const source = new ImapEventSource(stack, 'Support', props);

// The types are real types, not \`any\`: a wrong field type must not compile.
// @ts-expect-error mailboxId is a string
const wrong: ImapEventSourceProps = { ...props, mailboxId: 42 };
function subjectOf(detail: MessageReceivedDetail): string {
  return detail.subject ?? '(no subject)';
}

console.log(JSON.stringify({ detailType: DETAIL_TYPE_MESSAGE, fn: source.function.node.path, ok: [wrong, subjectOf].length }));
app.synth();
`;

const STRICT = { target: 'ES2022', lib: ['ES2023'], strict: true, skipLibCheck: false, types: ['node'] };

describe('the npm package, installed from its tarball into an empty project', () => {
  let work: string;
  let consumer: string;
  let installed: string;
  let pack: { filename: string; size: number; unpackedSize: number; files: { path: string }[] };
  const timings: Record<string, number> = {};

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'ies-pack-'));
    let t0 = performance.now();
    const packed = await must('npm', ['pack', '--pack-destination', work, '--json'], {
      cwd: REPO,
      timeoutMs: 600_000,
    });
    timings.packMs = Math.round(performance.now() - t0);
    [pack] = JSON.parse(packed.stdout);

    consumer = join(work, 'consumer');
    await mkdir(join(consumer, 'src'), { recursive: true });
    await writeFile(
      join(consumer, 'package.json'),
      JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
    );
    t0 = performance.now();
    await must(
      'npm',
      [
        'install',
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        join(work, pack.filename),
        `typescript@${lockedVersion('typescript')}`,
        `@types/node@${lockedVersion('@types/node')}`,
      ],
      { cwd: consumer, timeoutMs: 600_000 },
    );
    timings.installMs = Math.round(performance.now() - t0);
    installed = join(consumer, 'node_modules', 'imap-event-source');
    // The type checks and the synth are the long steps: they start now and run while the CLI cases run; the
    // tests below await their results (a failure surfaces there, not here).
    synth().catch(() => {});
  }, 1_200_000);

  afterAll(async () => {
    console.log(
      `package: tarball ${(pack.size / 1024).toFixed(0)} KiB, ${pack.files.length} files, unpacked ` +
        `${(pack.unpackedSize / 1024).toFixed(0)} KiB; npm pack (with the build) ${timings.packMs} ms, ` +
        `npm install into an empty project ${timings.installMs} ms`,
    );
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('the tarball holds the build, the schemas and the docs, and no sources, tests, benchmarks or CI files', () => {
    const files = pack.files.map((f) => f.path).sort();
    const allowed =
      /^(dist\/(bin|cli|functions|lib|types)\/.+\.(js|d\.ts)|dist\/(handler|fleet-dispatcher|fleet-worker)\/(index\.js|index\.js\.map|package\.json)|schema\/[a-z-]+\.schema\.json|docs\/[a-z0-9-]+\.md|README\.md|LICENSE|CHANGELOG\.md|SECURITY\.md|package\.json)$/;
    expect(files.filter((f) => !allowed.test(f))).toEqual([]);
    expect(files).toEqual(
      expect.arrayContaining([
        'dist/bin/cli.js',
        'dist/lib/index.js',
        'dist/lib/index.d.ts',
        'dist/types/index.js',
        'dist/types/index.d.ts',
        'dist/handler/index.js',
        'dist/handler/package.json',
        'dist/fleet-dispatcher/index.js',
        'dist/fleet-worker/index.js',
        'schema/message-received.schema.json',
        'schema/mailbox-reset.schema.json',
        'docs/deploy.md',
        'LICENSE',
        'CHANGELOG.md',
        'SECURITY.md',
      ]),
    );
    // The handler bundle is not also shipped as loose modules (it ships prebuilt).
    expect(files).not.toContain('dist/functions/poller/handler.js');
  });

  it('installs its runtime dependencies only, and they are exactly what the installed code imports', async () => {
    for (const devTool of ['tsx', 'esbuild', 'vitest', '@biomejs/biome', 'aws-cdk', 'cdk-nag']) {
      expect(existsSync(join(consumer, 'node_modules', devTool)), devTool).toBe(false);
    }
    const result = await build({
      entryPoints: ['dist/bin/cli.js', 'dist/lib/index.js', 'dist/types/index.js'].map((e) => join(installed, e)),
      bundle: true,
      platform: 'node',
      format: 'esm',
      packages: 'external',
      write: false,
      outdir: join(work, 'imports'),
      metafile: true,
      logLevel: 'silent',
    });
    const imported = new Set<string>();
    for (const input of Object.values(result.metafile.inputs)) {
      for (const i of input.imports) {
        if (!i.external || i.path.startsWith('node:')) continue;
        imported.add(
          i.path
            .split('/')
            .slice(0, i.path.startsWith('@') ? 2 : 1)
            .join('/'),
        );
      }
    }
    // The demo's IMAP server is loaded lazily with createRequire, which a bundler does not follow.
    const demoServer = await readFile(join(installed, 'dist/cli/demo/demo-server.js'), 'utf8');
    expect(demoServer).toContain("require('hoodiecrow-imap')");
    imported.add('hoodiecrow-imap');

    const manifest = JSON.parse(await readFile(join(installed, 'package.json'), 'utf8'));
    expect([...imported].sort()).toEqual(
      [...Object.keys(manifest.dependencies), ...Object.keys(manifest.peerDependencies)].sort(),
    );
    expect(manifest.peerDependencies).toEqual(repoPackage.peerDependencies);
    expect(manifest.private).toBeUndefined();
  });

  it('the CLI runs without dev tools: --help through npx, --version, secret template, usage errors', async () => {
    const bin = join(consumer, 'node_modules', '.bin', 'imap-event-source');
    const [help, version, template, noSettings] = await Promise.all([
      exec('npx', ['imap-event-source', '--help'], { cwd: consumer }),
      exec(bin, ['--version'], { cwd: consumer }),
      exec(bin, ['secret', 'template'], { cwd: consumer }),
      exec(bin, ['folders'], { cwd: consumer }),
    ]);
    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help.stdout).toMatch(/^Usage: imap-event-source <command>/);
    for (const command of ['check', 'folders', 'poll', 'secret', 'demo']) expect(help.stdout).toContain(`  ${command}`);
    expect(version).toEqual({ code: 0, stdout: `imap-event-source ${repoPackage.version}\n`, stderr: '' });
    expect(template.code).toBe(0);
    expect(JSON.parse(template.stdout)).toMatchObject({ host: expect.any(String), password: expect.any(String) });
    expect(noSettings.code).toBe(2);
    expect(noSettings.stderr).toContain('folders needs --config FILE or --secret-id ID');
  });

  it('check, folders and poll work against a real IMAP server', async () => {
    const imap = dovecot();
    const user = await imap.createUser();
    await imap.appendMessage(user, 'INBOX', buildMessage({ subject: 'Packed and installed' }));
    const config = join(work, 'mailbox.json');
    await writeFile(config, JSON.stringify(mailboxSecret(imap, user)));
    const bin = join(consumer, 'node_modules', '.bin', 'imap-event-source');
    const state = join(work, 'state.json');

    const [check, folders, poll] = await Promise.all([
      exec(bin, ['check', '--config', config], { cwd: consumer }),
      exec(bin, ['folders', '--config', config], { cwd: consumer }),
      exec(bin, ['poll', '--config', config, '--start-at', 'all', '--state', state], { cwd: consumer }),
    ]);
    expect(check.code, check.stdout + check.stderr).toBe(0);
    expect(folders.code, folders.stderr).toBe(0);
    expect(folders.stdout).toContain('INBOX');
    expect(poll.code, poll.stderr).toBe(0);
    const events = poll.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      'detail-type': 'IMAP Message Received',
      detail: { subject: 'Packed and installed', folder: 'INBOX' },
    });
  });

  it('demo starts its own IMAP server, shows events, and stops on SIGINT', async () => {
    const child = spawn(join(consumer, 'node_modules', '.bin', 'imap-event-source'), ['demo', '--interval', '0.5'], {
      cwd: consumer,
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const firstEvent = new Promise<void>((resolve) =>
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        if (stdout.includes('\n')) resolve();
      }),
    );
    const timeout = setTimeout(() => child.kill('SIGKILL'), 60_000);
    try {
      await Promise.race([firstEvent, exited]);
    } finally {
      child.kill('SIGINT');
    }
    expect(await exited, stderr).toBe(0);
    clearTimeout(timeout);
    expect(JSON.parse(stdout.split('\n')[0]!)).toMatchObject({ 'detail-type': 'IMAP Message Received' });
    // The hint for a second terminal names the installed CLI, not the repository's launcher.
    expect(stderr).toContain('npx imap-event-source check --config ');
    expect(stderr).toContain('Demo stopped.');
  });

  it('the JSON Schemas, the types entry and package.json resolve by package path; internals do not', async () => {
    const resolve = createRequire(join(consumer, 'src', 'app.js')).resolve;
    for (const name of ['message-received', 'mailbox-reset']) {
      const path = resolve(`imap-event-source/schema/${name}.schema.json`);
      expect(path).toBe(join(installed, 'schema', `${name}.schema.json`));
      expect(JSON.parse(await readFile(path, 'utf8'))).toMatchObject({ $id: expect.stringContaining(name) });
    }
    expect(resolve('imap-event-source/package.json')).toBe(join(installed, 'package.json'));
    expect(resolve('imap-event-source/types')).toBe(join(installed, 'dist', 'types', 'index.js'));
    expect(() => resolve('imap-event-source/dist/lib/imap-event-source.js')).toThrow(
      expect.objectContaining({ code: 'ERR_PACKAGE_PATH_NOT_EXPORTED' }),
    );
  });

  /**
   * tsc with NodeNext (emits the app to out/) and with bundler resolution, both strict, no skipLibCheck; both
   * started at once, each awaited on its own (the synth needs only the NodeNext emit).
   */
  const typeChecks = once(async () => {
    await writeFile(join(consumer, 'src', 'app.ts'), APP_TS);
    const nodeNext = {
      compilerOptions: { ...STRICT, module: 'NodeNext', moduleResolution: 'NodeNext', rootDir: 'src', outDir: 'out' },
      include: ['src'],
    };
    const bundler = {
      compilerOptions: { ...STRICT, module: 'Preserve', moduleResolution: 'Bundler', noEmit: true },
      include: ['src'],
    };
    await writeFile(join(consumer, 'tsconfig.json'), JSON.stringify(nodeNext));
    await writeFile(join(consumer, 'tsconfig.bundler.json'), JSON.stringify(bundler));
    const tsc = join(consumer, 'node_modules', 'typescript', 'bin', 'tsc');
    const [nodeNextRun, bundlerRun] = ['tsconfig.json', 'tsconfig.bundler.json'].map((p) =>
      exec(process.execPath, [tsc, '-p', p, '--pretty', 'false'], { cwd: consumer, timeoutMs: 600_000 }),
    );
    return { nodeNext: nodeNextRun!, bundler: bundlerRun! };
  });

  it('a strict TypeScript CDK app type-checks with NodeNext and with bundler resolution (no skipLibCheck)', async () => {
    const checks = await typeChecks();
    const [nodeNext, bundler] = await Promise.all([checks.nodeNext, checks.bundler]);
    expect(nodeNext, 'NodeNext').toEqual({ code: 0, stdout: '', stderr: '' });
    expect(bundler, 'bundler').toEqual({ code: 0, stdout: '', stderr: '' });
  }, 1_200_000);

  /** `node out/app.js`: the compiled consumer app synthesizes, with no esbuild anywhere it could find. */
  const synth = once(async () => {
    const nodeNext = await (await typeChecks()).nodeNext;
    expect(nodeNext.code, nodeNext.stdout).toBe(0);
    const assembly = join(work, 'cdk.out');
    const run = await must(process.execPath, ['out/app.js', assembly], { cwd: consumer, timeoutMs: 300_000 });
    const read = async (file: string) => JSON.parse(await readFile(join(assembly, file), 'utf8'));
    const template = (await read('ConsumerStack.template.json')) as {
      Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
    };
    const functions = Object.values(template.Resources).filter((r) => r.Type === 'AWS::Lambda::Function');
    expect(functions).toHaveLength(1);
    const fn = functions[0]!;
    // The function's code is the file asset the CDK CLI would zip and upload: `<hash>.zip` in the manifest.
    const { S3Key } = fn.Properties.Code as { S3Key: string };
    const assets = (await read('ConsumerStack.assets.json')) as { files: Record<string, { source: { path: string } }> };
    const asset = assets.files[S3Key.replace(/\.zip$/, '')]!;
    return { log: run.stdout, fn, asset: join(assembly, asset.source.path) };
  });

  it('a consumer app with its own table, bus and secret synthesizes without esbuild: the prebuilt handler is the asset', async () => {
    expect(existsSync(join(consumer, 'node_modules', 'esbuild'))).toBe(false);
    const { log, fn, asset } = await synth();
    expect(JSON.parse(log)).toMatchObject({
      detailType: 'IMAP Message Received',
      fn: 'ConsumerStack/Support/Function',
    });
    expect(fn.Properties).toMatchObject({ Handler: 'index.handler', Runtime: 'nodejs24.x', Architectures: ['arm64'] });
    expect((await readdir(asset)).sort()).toEqual(['index.js', 'index.js.map', 'package.json']);
    expect(await readFile(join(asset, 'index.js'))).toEqual(await readFile(join(installed, 'dist/handler/index.js')));
  }, 1_200_000);

  it('the synthesized asset runs as Lambda runs it (AWS SDK from outside) and publishes a new message', async () => {
    const { fn, asset } = await synth();
    const imap = dovecot();
    const user = await imap.createUser();
    await imap.appendMessage(user, 'INBOX', buildMessage({ subject: 'From the packaged handler' }));
    const aws = moto();
    const secretName = uniqueName('pack-secret');
    const table = uniqueName('pack-checkpoints');
    const bus = await aws.createBusWithSubscriber(uniqueName('pack-bus'));
    await Promise.all([aws.createSecret(secretName, mailboxSecret(imap, user)), aws.createCheckpointTable(table)]);

    // The function's environment as synthesized; references to the consumer's resources point at moto's.
    const synthesized = (fn.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
    const literal = Object.fromEntries(Object.entries(synthesized).filter(([, v]) => typeof v === 'string')) as Record<
      string,
      string
    >;
    expect(literal).toMatchObject({ MAILBOX_ID: 'support', START_AT: 'all', NODE_OPTIONS: '--enable-source-maps' });
    const invoker = join(work, 'invoke.cjs');
    await writeFile(
      invoker,
      `const { handler } = require(process.argv[2]);
handler({}, { getRemainingTimeInMillis: () => 50_000 }).then((r) => console.log(JSON.stringify(r)));
`,
    );
    const run = await must(process.execPath, [invoker, join(asset, 'index.js')], {
      cwd: work,
      env: cleanEnv({
        ...literal,
        ...aws.awsEnv(),
        SECRET_ID: secretName,
        CHECKPOINT_TABLE: table,
        EVENT_BUS_NAME: bus.busName,
        POWERTOOLS_METRICS_DISABLED: 'true',
        // The Lambda runtime provides the AWS SDK v3; here it comes from this repository.
        NODE_PATH: join(REPO, 'node_modules'),
      }),
    });
    expect(JSON.parse(run.stdout.trim().split('\n').at(-1)!)).toMatchObject({ published: 1 });
    const [event] = await aws.receiveEvents<{ subject: string; mailboxId: string }>(bus.queueUrl);
    expect(event?.detail).toMatchObject({ subject: 'From the packaged handler', mailboxId: 'support' });
  }, 1_200_000);
});
