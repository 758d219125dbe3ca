/**
 * Benchmark: the poller against local servers (Dovecot with TLS, moto_server), real adapters.
 * Prints: IMAP commands of an empty poll, empty-poll latency (median/p95 over 20 runs),
 * the duration and throughput of a 1,000-message backlog, and peak RSS.
 *   node --import tsx bench/poll.ts [--messages 1000] [--subscriber]
 * Without --subscriber the bus has no rule: moto_server spends ~180 ms per event delivering to an SQS
 * target, which would measure the emulator, not the poller (real EventBridge answers PutEvents in milliseconds).
 */

import { parseArgs } from 'node:util';
import { composePollerDeps, pollOptions } from '../functions/poller/compose.js';
import type { PollerConfig } from '../functions/poller/contract/poller-env.js';
import type { StartAt } from '../functions/poller/core/types.js';
import { silentLog } from '../functions/poller/ports.js';
import { pollMailbox } from '../functions/poller/run/poll-mailbox.js';
import { buildMessage } from '../test/support/messages.js';
import { uniqueName } from '../test/support/moto.js';
import { startBenchWorld } from './bench-world.js';

const { values } = parseArgs({
  options: { messages: { type: 'string', default: '1000' }, subscriber: { type: 'boolean', default: false } },
});
const backlog = Number(values.messages);

const { imap, aws, user, folder, secretId, table, busName, stop } = await startBenchWorld();
let peakRss = 0;
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 20);
try {
  const bus = values.subscriber ? await aws.createBusWithSubscriber(uniqueName('bus')) : { busName };
  const commands: string[] = [];
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
    onCommand: (verb) => commands.push(verb),
  });
  const poll = (mailboxId: string, startAt: StartAt) =>
    pollMailbox(deps, pollOptions(config(mailboxId, startAt), Date.now() + 600_000));

  // Empty polls (after a baseline).
  await poll('empty', { kind: 'now' });
  commands.length = 0;
  await poll('empty', { kind: 'now' });
  const ours = commands.slice(commands.findLastIndex((c) => c === 'LOGIN' || c === 'AUTHENTICATE') + 1);
  console.log(`empty poll IMAP commands: ${commands.join(' ')} (after login: ${ours.join(' ')})`);
  const times: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    const s = await poll('empty', { kind: 'now' });
    times.push(performance.now() - t0);
    if (s.outcome !== 'idle') throw new Error(`expected idle, got ${s.outcome}`);
  }
  times.sort((a, b) => a - b);
  console.log(
    `empty poll: median ${times[10]!.toFixed(1)} ms, p95 ${times[18]!.toFixed(1)} ms (20 runs; TLS connect + login + STATUS + LOGOUT, lease + checkpoint read)`,
  );

  // Backlog.
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
} finally {
  clearInterval(sampler);
  await stop();
}
