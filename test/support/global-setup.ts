/**
 * Vitest global setup: per run, generates the TLS material and starts one Dovecot with TLS, one
 * Dovecot without TLS, and one moto_server; hands their coordinates to tests through `provide`
 * (types in ./provided.d.ts; read them with `inject`, or use ./env); stops everything at teardown.
 * Set HARNESS_TIMINGS=1 to print start/stop times.
 */
import { rm } from 'node:fs/promises';
import type { TestProject } from 'vitest/node';
import { DovecotServer, sweepOrphans } from './dovecot.js';
import { MotoServer } from './moto.js';
import { generateTlsMaterial } from './tls.js';

async function timed<T>(label: string, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  try {
    return await fn();
  } finally {
    if (process.env.HARNESS_TIMINGS) console.log(`[harness] ${label}: ${Math.round(performance.now() - t0)} ms`);
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const swept = sweepOrphans(); // servers left behind by a runner that was killed
  if (swept) console.warn(`[harness] stopped ${swept} server(s) orphaned by an earlier, killed test run`);
  const tls = await timed('TLS material', generateTlsMaterial);
  const results = await Promise.allSettled([
    timed('Dovecot start', () => DovecotServer.start({ tls })),
    timed('Dovecot (no TLS) start', () => DovecotServer.start()),
    timed('moto_server start', () => MotoServer.start()),
  ] as const);

  const teardown = (): Promise<void> =>
    timed('teardown', async () => {
      await Promise.allSettled(results.map((r) => (r.status === 'fulfilled' ? r.value.stop() : undefined)));
      await rm(tls.dir, { recursive: true, force: true });
    });

  const [dovecot, dovecotNoTls, moto] = results;
  if (dovecot.status === 'rejected' || dovecotNoTls.status === 'rejected' || moto.status === 'rejected') {
    await teardown();
    const reasons = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));
    throw new AggregateError(
      reasons,
      `integration test servers failed to start:\n\n${reasons.map((e) => e.message).join('\n\n')}`,
    );
  }
  project.provide('tls', tls);
  project.provide('dovecot', dovecot.value.info);
  project.provide('dovecotNoTls', dovecotNoTls.value.info);
  project.provide('moto', moto.value.info);
  return teardown;
}
