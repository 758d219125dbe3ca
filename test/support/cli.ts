/**
 * Running the CLI in tests: in-process through `main(argv, io)` (the default: fast, no child process), or as
 * the real binary in a child process (`spawnCli`, for the few end-to-end tests of the entry point itself and
 * of commands that need another environment, e.g. AWS credentials).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { main } from '../../cli/main.js';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
/** tsx's loader by URL, so the CLI also starts from a working directory outside the repository. */
const TSX = import.meta.resolve('tsx');

export interface CliResult {
  code: number | null;
  signal?: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface InProcessOptions {
  input?: string;
  /** Environment variables set while the command runs (e.g. moto's AWS endpoint and credentials), then restored. */
  env?: Record<string, string>;
  /** Working directory while the command runs (e.g. a directory without the repository's cdk.json), then restored. */
  cwd?: string;
}

/** Calls that change the process's environment or directory run one at a time. */
let processStateLock: Promise<unknown> = Promise.resolve();

/**
 * Runs `imap-event-source <args>` in this process, with captured output and `input` as stdin; `env` and `cwd`
 * apply for the duration of the call (the AWS SDK reads its endpoint, region and credentials from the environment).
 */
export async function runCli(args: string[], options: InProcessOptions = {}): Promise<CliResult> {
  if (options.env === undefined && options.cwd === undefined) return runMain(args, options.input);
  const run = processStateLock.then(() => withProcessState(options, () => runMain(args, options.input)));
  processStateLock = run.catch(() => {});
  return run;
}

async function withProcessState<T>(options: InProcessOptions, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(options.env ?? {}).map((k) => [k, process.env[k]]));
  const dir = process.cwd();
  Object.assign(process.env, options.env);
  if (options.cwd !== undefined) process.chdir(options.cwd);
  try {
    return await fn();
  } finally {
    if (options.cwd !== undefined) process.chdir(dir);
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
}

async function runMain(args: string[], input: string | undefined): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, {
    stdout: {
      write: (text, callback) => {
        stdout += text;
        callback?.();
        return true;
      },
    },
    stderr: {
      write: (text, callback) => {
        stderr += text;
        callback?.();
        return true;
      },
    },
    stdin: Readable.from(input === undefined ? [] : [Buffer.from(input)]),
  });
  return { code, stdout, stderr };
}

/** Runs the real CLI as a child process (`node --import tsx bin/cli.ts ...`), as an admin would. */
export function spawnCli(
  args: string[],
  options: { env?: Record<string, string>; input?: string; cwd?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--import', TSX, join(REPO, 'bin/cli.ts'), ...args], {
      cwd: options.cwd ?? REPO,
      env: { ...process.env, NO_COLOR: '1', ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 45_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** A fresh temp dir per test file. */
export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'ies-cli-test-'));
}

/** Writes the settings as a JSON config file and returns its path. */
export function writeConfig(dir: string, name: string, settings: Record<string, unknown>): string {
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify(settings, null, 2));
  return path;
}
