/**
 * Which code the Lambda functions deploy. The installed package ships the handlers prebuilt
 * (`dist/handler/`, `dist/fleet-dispatcher/`, `dist/fleet-worker/`, made by `npm run build`), so a consumer's
 * synth needs neither esbuild nor our TypeScript sources. This repository's own sources bundle the handlers
 * with NodejsFunction, so a source change is deployed without a build step.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import type { Construct } from 'constructs';

/** One Lambda handler: its source (bundled in this repository) and its prebuilt directory (in the package). */
export interface LambdaHandlerSource {
  /** The handler's TypeScript source, resolved from this file so any working directory works. */
  readonly entry: string;
  /** Directory name of the prebuilt handler below `dist/` (the package). */
  readonly prebuiltName: string;
  /**
   * The prebuilt handler: `dist/<prebuiltName>/` seen from the compiled `dist/lib/`. From the sources in `lib/`
   * this path (`<repo>/<prebuiltName>/`) never exists, so the sources always bundle from source.
   */
  readonly prebuiltDir: string;
}

function handlerSource(source: string, prebuiltName: string): LambdaHandlerSource {
  return {
    entry: fileURLToPath(new URL(`../functions/${source}`, import.meta.url)),
    prebuiltName,
    prebuiltDir: fileURLToPath(new URL(`../${prebuiltName}/`, import.meta.url)),
  };
}

/** The per-mailbox poller (owned by `functions/poller/`). */
export const POLLER_HANDLER = handlerSource('poller/handler.ts', 'handler');
/** Fleet mode: the scheduled dispatcher and the SQS-fed worker (owned by `functions/fleet/`). */
export const FLEET_DISPATCHER_HANDLER = handlerSource('fleet/dispatcher.ts', 'fleet-dispatcher');
export const FLEET_WORKER_HANDLER = handlerSource('fleet/worker.ts', 'fleet-worker');
/** Every handler the package ships prebuilt (scripts/build.ts). */
export const LAMBDA_HANDLERS = [POLLER_HANDLER, FLEET_DISPATCHER_HANDLER, FLEET_WORKER_HANDLER] as const;

/** The poller's handler source. */
export const POLLER_ENTRY = POLLER_HANDLER.entry;

/** The prebuilt poller handler's directory. */
export const PREBUILT_POLLER_DIR = POLLER_HANDLER.prebuiltDir;

/** File name of each prebuilt handler inside its directory (with a `package.json` that marks it CommonJS). */
export const PREBUILT_POLLER_FILE = 'index.js';

/**
 * The one description of the handler bundle: NodejsFunction follows it inside this repository,
 * `npm run build` (scripts/build.ts) for the package.
 */
export const POLLER_BUNDLE = {
  // CJS: imapflow's logger (pino) fails to load from an ESM bundle.
  format: 'cjs',
  target: 'node24',
  minify: true,
  // Stack traces point into the sources (the function runs with --enable-source-maps).
  sourceMap: true,
  sourcesContent: false,
  // The Node.js 24 runtime provides the AWS SDK v3.
  externalModules: ['@aws-sdk/*'],
  // A CommonJS bundle has no import.meta: code that needs its own file uses __filename there (run/parse-pool.ts).
  define: { 'import.meta.url': 'undefined' },
} as const;

const LOCK_FILE = fileURLToPath(new URL('../package-lock.json', import.meta.url));

/** Everything of the function but its code. */
export type PollerFunctionOptions = lambda.FunctionOptions & { readonly runtime: lambda.Runtime };

/**
 * A function running one of our handlers (default: the poller): with `entry`, bundled from that source file;
 * otherwise from the prebuilt handler when present (the installed package); otherwise bundled from this
 * repository's sources.
 */
export function pollerFunction(
  scope: Construct,
  id: string,
  entry: string | undefined,
  options: PollerFunctionOptions,
  handler: LambdaHandlerSource = POLLER_HANDLER,
): lambda.Function {
  if (entry === undefined && existsSync(join(handler.prebuiltDir, PREBUILT_POLLER_FILE))) {
    return new lambda.Function(scope, id, {
      ...options,
      code: lambda.Code.fromAsset(handler.prebuiltDir),
      handler: `${PREBUILT_POLLER_FILE.replace(/\.js$/, '')}.handler`,
    });
  }
  const source = entry ?? handler.entry;
  if (!existsSync(source)) {
    throw new Error(
      `imap-event-source: the prebuilt handler (${join(handler.prebuiltDir, PREBUILT_POLLER_FILE)}) and its ` +
        `source (${source}) are both missing. Reinstall the package; in a clone of the repository, run \`npm run build\`.`,
    );
  }
  return new nodejs.NodejsFunction(scope, id, {
    ...options,
    entry: source,
    handler: 'handler',
    depsLockFilePath: LOCK_FILE,
    bundling: {
      format: nodejs.OutputFormat.CJS,
      target: POLLER_BUNDLE.target,
      minify: POLLER_BUNDLE.minify,
      sourceMap: POLLER_BUNDLE.sourceMap,
      sourcesContent: POLLER_BUNDLE.sourcesContent,
      externalModules: [...POLLER_BUNDLE.externalModules],
      define: { ...POLLER_BUNDLE.define },
      // import() of the external SDK as require(): the runtime's SDK is found by require, not by ESM resolution.
      esbuildArgs: { '--supported:dynamic-import': 'false' },
    },
  });
}
