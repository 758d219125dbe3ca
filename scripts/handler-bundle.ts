/**
 * The esbuild options of a Lambda handler bundle, following lib/poller-function.ts's POLLER_BUNDLE: for
 * `npm run build` (scripts/build.ts) and for bench/drain.ts, which measures the drain in such a bundle.
 */
import type { BuildOptions } from 'esbuild';
import { POLLER_BUNDLE } from '../lib/poller-function.js';

export function handlerBundleOptions(entry: string, outfile: string): BuildOptions {
  return {
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    format: POLLER_BUNDLE.format,
    target: POLLER_BUNDLE.target,
    minify: POLLER_BUNDLE.minify,
    sourcemap: POLLER_BUNDLE.sourceMap,
    sourcesContent: POLLER_BUNDLE.sourcesContent,
    external: [...POLLER_BUNDLE.externalModules],
    define: { ...POLLER_BUNDLE.define },
    // import() of the external SDK as require(): the runtime's SDK is found by require, not by ESM resolution.
    supported: { 'dynamic-import': false },
    logLevel: 'warning',
  };
}
