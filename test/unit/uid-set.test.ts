import { describe, expect, it } from 'vitest';
import { MAX_UID_SET_CHARS, type UidSet, uidSets } from '../../functions/poller/core/uid-set.js';

const expand = (sets: readonly UidSet[]): number[] =>
  sets.flatMap(({ set }) =>
    set.split(',').flatMap((part) => {
      const [lo, hi = lo] = part.split(':').map(Number) as [number, number?];
      return Array.from({ length: hi - lo + 1 }, (_, k) => lo + k);
    }),
  );
const text = (sets: readonly UidSet[]) => sets.map((s) => s.set);

describe('uidSets', () => {
  it('writes consecutive UIDs as ranges, in ascending order, without duplicates', () => {
    expect(uidSets([5, 1, 2, 3, 3, 7, 8, 10])).toEqual([{ set: '1:3,5,7:8,10', count: 7 }]);
    expect(uidSets([])).toEqual([]);
    expect(uidSets([42])).toEqual([{ set: '42', count: 1 }]);
    expect(uidSets(Array.from({ length: 50_000 }, (_, i) => i + 1))).toEqual([{ set: '1:50000', count: 50_000 }]);
  });

  it('splits a sparse set that would be a command line over 64 KB into bounded sets covering every UID once', () => {
    const sparse = Array.from({ length: 14_000 }, (_, i) => 1_000_000 + 2 * i);
    expect(sparse.join(',').length).toBeGreaterThan(64 * 1024);
    const sets = uidSets(sparse);
    expect(sets.length).toBeGreaterThan(1);
    for (const { set } of sets) expect(set.length).toBeLessThanOrEqual(MAX_UID_SET_CHARS);
    expect(expand(sets)).toEqual(sparse);
    expect(sets.reduce((n, s) => n + s.count, 0)).toBe(sparse.length);
  });

  it('keeps ranges whole across a split, and counts the UIDs of each set', () => {
    const uids = [1, 2, 3, 10, 11, 20];
    const sets = uidSets(uids, 6);
    expect(text(sets)).toEqual(['1:3', '10:11', '20']);
    expect(sets.map((s) => s.count)).toEqual([3, 2, 1]);
    expect(expand(sets)).toEqual(uids);
  });
});
