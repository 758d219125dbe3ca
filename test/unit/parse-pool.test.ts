import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { businessMail } from '../../bench/business-mail.js';
import type { MessageSummary } from '../../functions/poller/core/types.js';
import { type DetailJob, inThread } from '../../functions/poller/run/message-detail.js';
import { ParsePool, parsePool } from '../../functions/poller/run/parse-pool.js';
import { corpusFiles } from '../support/corpus.js';

const summary = (uid: number): MessageSummary => ({
  uid,
  size: 100,
  flags: ['\\Seen'],
  internalDate: '2026-11-26T10:00:00.000Z',
  envelope: { subject: 'from the envelope', from: [], to: [], cc: [], replyTo: [] },
});
const context = { mailboxId: 'support', folder: 'INBOX', uidValidity: '7', eventSource: 'imap-event-source' };
const jobs = (sources: readonly Uint8Array[], partial = false): DetailJob[] =>
  sources.map((bytes, i) => ({ summary: summary(i + 1), bytes, partial }));

const pools: ParsePool[] = [];
const pool = (size: number, options: { file?: string } = {}) => {
  const p = new ParsePool(size, options);
  pools.push(p);
  return p;
};
afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
});

describe('ParsePool', () => {
  it('builds in a worker the Details the drain thread builds: the corpus, cut sources, the backlog', async () => {
    const p = pool(1);
    expect(await p.started()).toBe(true);
    const corpus = corpusFiles()
      .sort()
      .map((f) => new Uint8Array(readFileSync(f)));
    const backlog = Array.from({ length: 50 }, (_, i) => new Uint8Array(businessMail(i + 1)));
    for (const batch of [
      jobs(corpus),
      jobs(
        corpus.map((b) => b.subarray(0, 700)),
        true,
      ),
      jobs(backlog),
    ]) {
      // A job's source may be a view into a larger buffer: the worker gets exactly its bytes.
      expect(await p.details(batch, context)).toEqual(await inThread.details(batch, context));
    }
  });

  it('spreads concurrent batches over its workers and keeps each batch in order', async () => {
    const p = pool(2);
    expect(await p.started()).toBe(true);
    const batches = [0, 1, 2, 3].map((b) =>
      jobs(Array.from({ length: 20 }, (_, i) => new Uint8Array(businessMail(b * 20 + i + 1)))),
    );
    const got = await Promise.all(batches.map((batch) => p.details(batch, context)));
    for (const [i, batch] of batches.entries()) expect(got[i]).toEqual(await inThread.details(batch, context));
  });

  it('rejects with the error the drain thread meets (an identity too large for an entry)', async () => {
    const p = pool(1);
    expect(await p.started()).toBe(true);
    const huge = { ...context, folder: 'x'.repeat(300_000) };
    const batch = jobs([new Uint8Array(businessMail(1))]);
    await expect(inThread.details(batch, huge)).rejects.toThrow(RangeError);
    await expect(p.details(batch, huge)).rejects.toThrow(RangeError);
    // The worker is still there for the next batch.
    expect(await p.details(batch, context)).toEqual(await inThread.details(batch, context));
  });

  it('builds every batch in the drain thread when its workers cannot start', async () => {
    const p = pool(1, { file: join(import.meta.dirname, 'no-such-worker.js') });
    expect(await p.started()).toBe(false);
    const batch = jobs([new Uint8Array(businessMail(2))]);
    expect(await p.details(batch, context)).toEqual(await inThread.details(batch, context));
  });

  it('is not used with one core or zero workers, and is one per process', () => {
    expect(parsePool(1, 1)).toBeUndefined();
    expect(parsePool(0, 8)).toBeUndefined();
    const shared = parsePool(3, 2);
    expect(shared).toBeInstanceOf(ParsePool);
    expect(parsePool(1, 2)).toBe(shared);
  });

  it('keeps no process alive: a process that used the pool and never closed it ends by itself', async () => {
    const script = [
      "const { ParsePool } = await import('./functions/poller/run/parse-pool.ts');",
      'const pool = new ParsePool(1);',
      "if (!(await pool.started())) throw new Error('no worker');",
      'const bytes = new TextEncoder().encode("Subject: hi\\r\\n\\r\\nbody\\r\\n");',
      'const summary = { uid: 1, size: 1, flags: [], envelope: { from: [], to: [], cc: [], replyTo: [] } };',
      "const ctx = { mailboxId: 'm', folder: 'INBOX', uidValidity: '1', eventSource: 's' };",
      'const [built] = await pool.details([{ summary, bytes, partial: false }], ctx);',
      'console.log(JSON.parse(built.detail).subject);',
    ].join('\n');
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      { cwd: join(import.meta.dirname, '../..'), timeout: 120_000 },
    );
    expect(stdout.trim()).toBe('hi');
  });
});
