/**
 * `npm run build` (also run by `prepack`): the package's contents in dist/.
 *  - tsc (tsconfig.build.json): JavaScript and .d.ts of what the package's entry points reach
 *    (lib/index.ts, types/index.ts, bin/cli.ts), nothing else;
 *  - esbuild: each Lambda handler (the poller, the fleet's dispatcher and worker) as one CommonJS file with
 *    the AWS SDK left out (dist/handler/, dist/fleet-dispatcher/, dist/fleet-worker/), which the constructs
 *    deploy as they are (lib/poller-function.ts).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { LAMBDA_HANDLERS, PREBUILT_POLLER_FILE } from '../lib/poller-function.js';
import { handlerBundleOptions } from './handler-bundle.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');

rmSync(dist, { recursive: true, force: true });

execFileSync(
  process.execPath,
  [createRequire(import.meta.url).resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
  {
    cwd: root,
    stdio: 'inherit',
  },
);
chmodSync(join(dist, 'bin/cli.js'), 0o755);

const built: string[] = [];
for (const handler of LAMBDA_HANDLERS) {
  const handlerDir = join(dist, handler.prebuiltName);
  await build(handlerBundleOptions(handler.entry, join(handlerDir, PREBUILT_POLLER_FILE)));
  // The package is ESM ("type": "module"); each handler directory is its own CommonJS scope, in the
  // package as in the Lambda asset (the directory is deployed as it is).
  writeFileSync(join(handlerDir, 'package.json'), '{ "type": "commonjs" }\n');
  const kib = (file: string) => `${(statSync(join(handlerDir, file)).size / 1024).toFixed(0)} KiB`;
  built.push(`${handler.prebuiltName} ${kib(PREBUILT_POLLER_FILE)} + source map ${kib(`${PREBUILT_POLLER_FILE}.map`)}`);
}
process.stderr.write(`built dist/: library, types and CLI (tsc); handlers ${built.join(', ')} (esbuild)\n`);
