import { describe, expect, it } from 'vitest';
import { chunkEntries } from '../../functions/poller/core/batching.js';
import { eventEntrySize } from '../../functions/poller/core/event-size.js';
import { prng } from './fakes.js';

const KIB = 1024;
const LIMIT = 256 * KIB;

/** Items whose size is given, named by their position. */
const sized = (sizes: number[]): { id: number; size: number }[] => sizes.map((size, id) => ({ id, size }));
const sizeOf = (item: { size: number }): number => item.size;
const ids = (chunks: { id: number }[][]): number[][] => chunks.map((c) => c.map((i) => i.id));

describe('chunkEntries', () => {
  it('returns no chunk for no entries', () => {
    expect(chunkEntries([], sizeOf)).toEqual([]);
  });

  it.each<[string, number, number[][]]>([
    ['1 entry', 1, [[0]]],
    ['10 entries: one call', 10, [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]],
    ['11 entries: 10 + 1', 11, [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [10]]],
    [
      '25 entries: 10 + 10 + 5',
      25,
      [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [10, 11, 12, 13, 14, 15, 16, 17, 18, 19],
        [20, 21, 22, 23, 24],
      ],
    ],
  ])('by count: %s', (_name, count, expected) => {
    expect(ids(chunkEntries(sized(Array(count).fill(100)), sizeOf))).toEqual(expected);
  });

  it.each<[string, number[], number[][]]>([
    ['two that fit exactly 256 KiB together', [128 * KIB, 128 * KIB], [[0, 1]]],
    ['one byte too many starts a new call', [128 * KIB, 128 * KIB + 1], [[0], [1]]],
    ['a full entry alone', [LIMIT, 1, LIMIT], [[0], [1], [2]]],
    [
      'large ones between small ones',
      [10, 200 * KIB, 100 * KIB, 10],
      [
        [0, 1],
        [2, 3],
      ],
    ],
    ['oversize entry goes alone, neighbours are not merged into it', [10, LIMIT + 1, 10], [[0], [1], [2]]],
    ['oversize entry first', [LIMIT * 2, 10, 10], [[0], [1, 2]]],
  ])('by bytes: %s', (_name, sizes, expected) => {
    expect(ids(chunkEntries(sized(sizes), sizeOf))).toEqual(expected);
  });

  it('honours custom limits', () => {
    expect(ids(chunkEntries(sized([1, 1, 1, 1, 1]), sizeOf, 2))).toEqual([[0, 1], [2, 3], [4]]);
    expect(ids(chunkEntries(sized([3, 3, 3, 3]), sizeOf, 10, 6))).toEqual([
      [0, 1],
      [2, 3],
    ]);
  });

  it('measures each entry once', () => {
    const items = sized([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    let calls = 0;
    chunkEntries(items, (i) => (calls++, i.size));
    expect(calls).toBe(items.length);
  });

  it('works with real EventBridge entries measured by eventEntrySize', () => {
    const entry = (n: number, bytes: number) => ({
      Source: 'imap-event-source',
      DetailType: 'IMAP Message Received',
      Detail: JSON.stringify({ n, pad: 'x'.repeat(bytes) }),
      EventBusName: 'bus',
    });
    const entries = [entry(0, 100 * KIB), entry(1, 100 * KIB), entry(2, 100 * KIB), entry(3, 10)];
    const chunks = chunkEntries(entries, eventEntrySize);
    expect(chunks.map((c) => c.length)).toEqual([2, 2]);
    for (const c of chunks) expect(c.reduce((s, e) => s + eventEntrySize(e), 0)).toBeLessThanOrEqual(LIMIT);
  });

  it('property: order kept, nothing lost, limits held, no needless split (random sizes)', () => {
    const random = prng(4242);
    for (let run = 0; run < 300; run++) {
      const count = Math.floor(random() * 40);
      const sizes = Array.from({ length: count }, () => {
        const r = random();
        // Mostly small, some large, a few over the limit.
        return r < 0.7
          ? 1 + Math.floor(random() * 4 * KIB)
          : r < 0.97
            ? Math.floor(random() * LIMIT) + 1
            : LIMIT + 1 + Math.floor(random() * KIB);
      });
      const items = sized(sizes);
      const chunks = chunkEntries(items, sizeOf);

      expect(chunks.flat()).toEqual(items);
      for (const [i, chunk] of chunks.entries()) {
        expect(chunk.length).toBeGreaterThan(0);
        expect(chunk.length).toBeLessThanOrEqual(10);
        const bytes = chunk.reduce((s, it) => s + it.size, 0);
        if (chunk.length > 1) expect(bytes).toBeLessThanOrEqual(LIMIT);
        else if (chunk[0]!.size > LIMIT) expect(chunk).toHaveLength(1);
        // Greedy: the next chunk's first entry did not fit into this one.
        const next = chunks[i + 1];
        if (next) expect(chunk.length === 10 || bytes + next[0]!.size > LIMIT).toBe(true);
      }
    }
  });
});
