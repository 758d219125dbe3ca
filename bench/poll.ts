/**
 * Benchmark: the poller against local servers (Dovecot with TLS, moto_server), real adapters.
 *   node --import tsx bench/poll.ts [--processes 3] [--rounds 20] [--messages 1000] [--subscriber]
 *
 * The empty poll (bench/empty-poll.ts), in `--processes` fresh Node processes of `--rounds` rounds each: cold, warm on
 * a new connection, warm on the kept session, against a bare imapflow connect + login + STATUS + logout (ratios to
 * it: absolute figures on a shared 2-core machine vary by +-30 %), and the IMAP commands after login.
 * Then the duration and throughput of a `--messages` backlog (0: skip) and peak RSS.
 * Without --subscriber the bus has no rule: moto_server spends ~180 ms per event delivering to an SQS
 * target, which would measure the emulator, not the poller (real EventBridge answers PutEvents in milliseconds).
 */

import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { composePollerDeps, pollOptions } from '../functions/poller/compose.js';
import type { PollerConfig } from '../functions/poller/contract/poller-env.js';
import type { StartAt } from '../functions/poller/core/types.js';
import { silentLog } from '../functions/poller/ports.js';
import { pollMailbox } from '../functions/poller/run/poll-mailbox.js';
import { buildMessage } from '../test/support/messages.js';
import { uniqueName } from '../test/support/moto.js';
import { startBenchWorld } from './bench-world.js';
import { type EmptyPollTimes, type EmptyPollWorld, measureEmptyPolls, median } from './empty-poll.js';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '1000' },
    subscriber: { type: 'boolean', default: false },
    processes: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '20' },
    child: { type: 'boolean', default: false },
  },
});

if (values.child) {
  const world = JSON.parse(process.env.BENCH_WORLD!) as EmptyPollWorld;
  const times = await measureEmptyPolls(world, 'empty', Number(values.rounds));
  process.stdout.write(`${JSON.stringify(times)}\n`);
  process.exit(0);
}

const backlog = Number(values.messages);
const { imap, aws, user, folder, secretId, table, busName, caPem, stop } = await startBenchWorld();
let peakRss = 0;
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 20);
try {
  const bus = values.subscriber ? await aws.createBusWithSubscriber(uniqueName('bus')) : { busName };
  const config = (mailboxId: string, startAt: StartAt): PollerConfig => ({
    mailboxId,
    secretId,
    checkpointTable: table,
    eventBusName: bus.busName,
    eventSource: 'imap-event-source',
    startAt,
    maxMessagesPerRun: 100_000,
  });
  const deps = await composePollerDeps(config('bench', { kind: 'now' }), {
    log: silentLog,
    clientConfig: aws.clientConfig,
  });
  const poll = (mailboxId: string, startAt: StartAt) =>
    pollMailbox(deps, pollOptions(config(mailboxId, startAt), Date.now() + 600_000));

  // Empty polls: a baseline, then each process polls the same empty mailbox.
  await poll('empty', { kind: 'now' });
  const world: EmptyPollWorld = {
    host: 'localhost',
    port: imap.info.imapsPort!,
    caPem,
    username: user.username,
    password: user.password,
    folder,
    secretId,
    table,
    busName: bus.busName,
    clientConfig: aws.clientConfig,
  };
  const runs: EmptyPollTimes[] = [];
  for (let i = 0; i < Number(values.processes); i++) runs.push(await child(world));
  const all = (key: 'cold' | 'warmNew' | 'warmReused' | 'bare') => runs.flatMap((r) => r[key]);
  const bare = median(all('bare'));
  const line = (name: string, xs: number[]) =>
    `  ${name.padEnd(38)} median ${median(xs).toFixed(1).padStart(6)} ms  ${(median(xs) / bare).toFixed(2)}x bare  (${xs.length} polls)`;
  console.log(`empty poll (${runs.length} processes x ${values.rounds} rounds):`);
  console.log(line('bare connect/login/STATUS/logout', all('bare')));
  console.log(line('cold (first poll of a process)', all('cold')));
  console.log(line('warm, new connection', all('warmNew')));
  console.log(line('warm, reused session', all('warmReused')));
  const c = runs[0]!.commands;
  console.log(
    `IMAP commands after login: cold: ${c.cold.join(' ')}; warm, new connection: ${c.warmNew.join(' ')}; warm, reused session: ${c.warmReused.join(' ')} (no login)`,
  );

  if (backlog > 0) {
    const t0 = performance.now();
    const messages = Array.from({ length: backlog }, (_, i) =>
      buildMessage({ subject: `Backlog ${i + 1}`, body: `Message ${i + 1}\n`.repeat(40) }),
    );
    await imap.appendMany(user, folder, messages);
    console.log(`appended ${backlog} messages in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const t1 = performance.now();
    const summary = await poll('backlog', { kind: 'all' });
    const seconds = (performance.now() - t1) / 1000;
    if (summary.published !== backlog) throw new Error(`published ${summary.published}, expected ${backlog}`);
    console.log(
      `backlog (${values.subscriber ? 'bus with SQS subscriber rule' : 'bus without rules'}): ${summary.published} messages published in ${seconds.toFixed(1)} s (${(summary.published / seconds).toFixed(0)} msg/s)`,
    );
    console.log(`peak RSS: ${(peakRss / 1024 / 1024).toFixed(0)} MB`);
  }
} finally {
  clearInterval(sampler);
  await stop();
}

/** One empty-poll process (its first poll is a cold start). */
function child(world: EmptyPollWorld): Promise<EmptyPollTimes> {
  return new Promise((resolve, reject) => {
    const proc = spawn(
      process.execPath,
      ['--import', 'tsx', import.meta.filename, '--child', '--rounds', String(values.rounds)],
      { env: { ...process.env, BENCH_WORLD: JSON.stringify(world) }, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.on('error', reject);
    proc.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`empty-poll process exited with ${code}: ${out.slice(-2000)}`));
      resolve(JSON.parse(out.trim().split('\n').pop()!) as EmptyPollTimes);
    });
  });
}
