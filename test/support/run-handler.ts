/**
 * Runs the real Lambda handler in a child process (test/support/handler-runner.ts) and returns its report and
 * output: peak RSS without the test runner's heap, with `--max-old-space-size` unset as on Lambda. The runner and
 * the handler are bundled once (esbuild, CommonJS, as the Lambda asset is built), so a run starts in plain Node.
 */
import { spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Marks the runner's last output line: the report as JSON. */
export const REPORT_PREFIX = 'RUNNER_REPORT ';

export interface RunnerReport {
  readonly result?: { outcome: string; published: number };
  readonly error?: { name: string; message: string };
  /** From the call to the handler until it returned or threw. */
  readonly settledMs: number;
  /** The runner process's own peak RSS (VmHWM, test/support/peak-rss.ts), in MB. */
  readonly peakRssMb: number;
  /** Sockets to RUNNER_IMAP_PORT still open when the handler returned (a successful run keeps its session: 1). */
  readonly imapSockets: number;
  /** The same once the container was reset (the kept session closed): 0 unless something leaked. */
  readonly imapSocketsAfterReset: number;
  /** Active resources right after the handler returned, by type (process.getActiveResourcesInfo()). */
  readonly resources: Record<string, number>;
}

/** Bundles test/support/handler-runner.ts with the handler; returns the bundle's path (about a second). */
export async function bundleHandlerRunner(): Promise<string> {
  const { build } = await import('esbuild');
  const outfile = join(await mkdtemp(join(tmpdir(), 'ies-runner-')), 'runner.cjs');
  await build({
    entryPoints: [new URL('./handler-runner.ts', import.meta.url).pathname],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    outfile,
    logLevel: 'error',
  });
  return outfile;
}

export interface ChildRun {
  readonly report: RunnerReport;
  /** Everything the process wrote (stdout and stderr), for "no secret in the output". */
  readonly output: string;
  /** The handler's JSON log lines. */
  readonly logs: Record<string, unknown>[];
}

export async function runHandlerInChild(
  runner: string,
  env: Record<string, string>,
  options: { remainingMs: number; imapPort: number },
): Promise<ChildRun> {
  const child = spawn(process.execPath, [runner], {
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      POWERTOOLS_METRICS_DISABLED: 'true',
      POWERTOOLS_LOG_LEVEL: 'INFO',
      ...env,
      RUNNER_REMAINING_MS: String(options.remainingMs),
      RUNNER_IMAP_PORT: String(options.imapPort),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const line = output.split('\n').find((l) => l.startsWith(REPORT_PREFIX));
  if (!line) throw new Error(`the handler runner exited (${code}) without a report:\n${output.slice(-2000)}`);
  const logs = output.split('\n').flatMap((l) => {
    if (!l.startsWith('{')) return [];
    try {
      return [JSON.parse(l) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
  return { report: JSON.parse(line.slice(REPORT_PREFIX.length)) as RunnerReport, output, logs };
}
