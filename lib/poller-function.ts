/**
 * Which code the poller function deploys. The installed package ships the handler prebuilt
 * (`dist/handler/`, made by `npm run build`), so a consumer's synth needs neither esbuild nor our
 * TypeScript sources. This repository's own sources bundle the handler with NodejsFunction, so a
 * source change is deployed without a build step.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import type { Construct } from 'constructs';

/** The poller's handler source (owned by `functions/poller/`), resolved from this file so any working directory works. */
export const POLLER_ENTRY = fileURLToPath(new URL('../functions/poller/handler.ts', import.meta.url));

/**
 * The prebuilt handler: `dist/handler/` seen from the compiled `dist/lib/`. From the sources in
 * `lib/` this path (`<repo>/handler/`) never exists, so the sources always bundle from source.
 */
export const PREBUILT_POLLER_DIR = fileURLToPath(new URL('../handler/', import.meta.url));

/** File name of the prebuilt handler inside its directory (with a `package.json` that marks it CommonJS). */
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
} as const;

const LOCK_FILE = fileURLToPath(new URL('../package-lock.json', import.meta.url));

/** Everything of the function but its code. */
export type PollerFunctionOptions = lambda.FunctionOptions & { readonly runtime: lambda.Runtime };

/**
 * The poller function: with `entry`, bundled from that source file; otherwise from the prebuilt
 * handler when present (the installed package); otherwise bundled from this repository's sources.
 */
export function pollerFunction(
  scope: Construct,
  id: string,
  entry: string | undefined,
  options: PollerFunctionOptions,
): lambda.Function {
  if (entry === undefined && existsSync(join(PREBUILT_POLLER_DIR, PREBUILT_POLLER_FILE))) {
    return new lambda.Function(scope, id, {
      ...options,
      code: lambda.Code.fromAsset(PREBUILT_POLLER_DIR),
      handler: `${PREBUILT_POLLER_FILE.replace(/\.js$/, '')}.handler`,
    });
  }
  const source = entry ?? POLLER_ENTRY;
  if (!existsSync(source)) {
    throw new Error(
      `imap-event-source: the prebuilt poller handler (${join(PREBUILT_POLLER_DIR, PREBUILT_POLLER_FILE)}) and its ` +
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
      // import() of the external SDK as require(): the runtime's SDK is found by require, not by ESM resolution.
      esbuildArgs: { '--supported:dynamic-import': 'false' },
    },
  });
}
