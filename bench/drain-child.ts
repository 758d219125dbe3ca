/**
 * A contender's process in bench/drain.ts, which bundles this file with esbuild as the Lambda's handler is bundled
 * (one CommonJS file, the AWS SDK external) and runs it with plain node: `BENCH_PHASE` names the contender,
 * `BENCH_WORLD` the servers. The parse pool's workers run the same file (as the Lambda's run its bundle), where this
 * does nothing: the pool's own module serves there. The last stdout line is the PhaseResult as JSON.
 */
import { isMainThread } from 'node:worker_threads';
import type { WorldInfo } from './drain.js';
import { runPhase } from './drain-phases.js';

export async function runChild(phase: string): Promise<void> {
  const world = JSON.parse(process.env.BENCH_WORLD!) as WorldInfo;
  const result = await runPhase(phase, world);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

if (isMainThread && process.env.BENCH_PHASE) {
  runChild(process.env.BENCH_PHASE).catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}
