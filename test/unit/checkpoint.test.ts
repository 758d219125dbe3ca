import { describe, expect, it } from 'vitest';
import {
  advanceCheckpoint,
  emptyCheckpoint,
  isRescanCandidate,
  type PublishedMessage,
  publishedPrefix,
  RECENT_MESSAGE_IDS,
  rebaseline,
} from '../../functions/poller/core/checkpoint.js';
import type { Checkpoint, MessageSummary } from '../../functions/poller/core/types.js';
import { prng } from './fakes.js';

const NOW = new Date('2026-11-26T12:00:00.000Z');
const hash = (id: string): string => `h(${id})`;

function checkpoint(overrides: Partial<Checkpoint> = {}): Checkpoint {
  return {
    mailboxId: 'support',
    folder: 'INBOX',
    uidValidity: '1700000000',
    lastUid: 10,
    version: 4,
    updatedAt: '2026-11-20T08:00:00.000Z',
    recentMessageIds: [],
    ...overrides,
  };
}

/** A listed message (with its ENVELOPE, as a re-scan lists it) that is also what advanceCheckpoint remembers. */
function msg(uid: number, internalDate?: string, messageId?: string): MessageSummary & PublishedMessage {
  return {
    uid,
    size: 100,
    flags: [],
    ...(internalDate ? { internalDate } : {}),
    ...(messageId ? { messageId } : {}),
    envelope: { ...(messageId ? { messageId } : {}), from: [], to: [], cc: [], replyTo: [] },
  };
}

describe('emptyCheckpoint', () => {
  it('is version 0 with the given position and no memory', () => {
    expect(emptyCheckpoint('support', 'Archiv/2026', '42', 17, NOW)).toEqual({
      mailboxId: 'support',
      folder: 'Archiv/2026',
      uidValidity: '42',
      lastUid: 17,
      version: 0,
      updatedAt: NOW.toISOString(),
      recentMessageIds: [],
    });
  });
});

describe('advanceCheckpoint', () => {
  it('moves to the highest published UID, records the write time, keeps identity and version', () => {
    const next = advanceCheckpoint(checkpoint(), [msg(11), msg(12), msg(15)], NOW);
    expect(next).toMatchObject({
      mailboxId: 'support',
      folder: 'INBOX',
      uidValidity: '1700000000',
      lastUid: 15,
      version: 4,
      updatedAt: NOW.toISOString(),
    });
  });

  it('does not mutate its input', () => {
    const current = checkpoint({ recentMessageIds: ['a'], rescanSince: '2026-11-01T00:00:00.000Z' });
    const copy = structuredClone(current);
    advanceCheckpoint(current, [msg(11, '2026-11-25T00:00:00.000Z', '<x@y>')], NOW, {
      messageIdHash: hash,
      exhaustedUpTo: 30,
    });
    expect(current).toEqual(copy);
  });

  it.each<[string, number, MessageSummary[], number | undefined, number]>([
    ['nothing published, nothing exhausted', 10, [], undefined, 10],
    ['only older UIDs (replayed batch)', 10, [msg(3), msg(9)], undefined, 10],
    ['mixed older and newer', 10, [msg(9), msg(12)], undefined, 12],
    ['out-of-order input still takes the maximum', 10, [msg(14), msg(12)], undefined, 14],
    ['exhausted below lastUid', 10, [], 7, 10],
    ['exhausted equal to lastUid', 10, [], 10, 10],
    ['exhausted over a gap', 10, [msg(11)], 20, 20],
    ['exhausted below the published UID', 10, [msg(25)], 20, 25],
  ])('never moves backwards: %s', (_name, lastUid, published, exhaustedUpTo, expected) => {
    const next = advanceCheckpoint(
      checkpoint({ lastUid }),
      published,
      NOW,
      exhaustedUpTo === undefined ? {} : { exhaustedUpTo },
    );
    expect(next.lastUid).toBe(expected);
  });

  it('never moves backwards over many random inputs', () => {
    const random = prng(7);
    for (let run = 0; run < 500; run++) {
      const lastUid = Math.floor(random() * 100);
      const published = Array.from({ length: Math.floor(random() * 5) }, () => msg(1 + Math.floor(random() * 150)));
      const exhaustedUpTo = random() < 0.5 ? Math.floor(random() * 150) : undefined;
      const next = advanceCheckpoint(
        checkpoint({ lastUid }),
        published,
        NOW,
        exhaustedUpTo === undefined ? {} : { exhaustedUpTo },
      );
      expect(next.lastUid).toBe(Math.max(lastUid, ...published.map((m) => m.uid), exhaustedUpTo ?? 0));
    }
  });

  it('keeps the highest internalDate, including the one already stored', () => {
    const current = checkpoint({ lastInternalDate: '2026-11-20T00:00:00.000Z' });
    expect(advanceCheckpoint(current, [msg(11, '2026-11-19T00:00:00.000Z')], NOW).lastInternalDate).toBe(
      '2026-11-20T00:00:00.000Z',
    );
    expect(
      advanceCheckpoint(
        current,
        [msg(11, '2026-11-22T00:00:00.000Z'), msg(12, '2026-11-21T00:00:00.000Z'), msg(13)],
        NOW,
      ).lastInternalDate,
    ).toBe('2026-11-22T00:00:00.000Z');
  });

  it('has no lastInternalDate until a message with one was published', () => {
    expect(advanceCheckpoint(checkpoint(), [msg(11)], NOW)).not.toHaveProperty('lastInternalDate');
    expect(advanceCheckpoint(checkpoint(), [msg(11, '2026-11-21T00:00:00.000Z')], NOW).lastInternalDate).toBe(
      '2026-11-21T00:00:00.000Z',
    );
  });

  it('remembers hashes of published Message-IDs in order, only with a hash function', () => {
    const published = [msg(11, undefined, '<a@x>'), msg(12), msg(13, undefined, '<b@x>')];
    expect(
      advanceCheckpoint(checkpoint({ recentMessageIds: ['old'] }), published, NOW, { messageIdHash: hash })
        .recentMessageIds,
    ).toEqual(['old', 'h(<a@x>)', 'h(<b@x>)']);
    expect(advanceCheckpoint(checkpoint({ recentMessageIds: ['old'] }), published, NOW).recentMessageIds).toEqual([
      'old',
    ]);
  });

  it(`bounds the Message-ID memory to the ${RECENT_MESSAGE_IDS} most recent`, () => {
    const current = checkpoint({
      lastUid: 0,
      recentMessageIds: Array.from({ length: RECENT_MESSAGE_IDS }, (_, i) => `old${i}`),
    });
    const published = Array.from({ length: 25 }, (_, i) => msg(i + 1, undefined, `<n${i}@x>`));
    const next = advanceCheckpoint(current, published, NOW, { messageIdHash: hash });
    expect(next.recentMessageIds).toHaveLength(RECENT_MESSAGE_IDS);
    expect(next.recentMessageIds!.at(-1)).toBe('h(<n24@x>)');
    expect(next.recentMessageIds![0]).toBe('old25');
    expect(next.recentMessageIds).not.toContain('old24');

    const many = Array.from({ length: RECENT_MESSAGE_IDS * 2 }, (_, i) => msg(i + 1, undefined, `<m${i}@x>`));
    const big = advanceCheckpoint(checkpoint({ lastUid: 0 }), many, NOW, { messageIdHash: hash });
    expect(big.recentMessageIds).toEqual(many.slice(-RECENT_MESSAGE_IDS).map((m) => hash(m.messageId!)));
  });

  it('treats a missing recentMessageIds as empty', () => {
    const { recentMessageIds: _omit, ...withoutMemory } = checkpoint();
    expect(
      advanceCheckpoint(withoutMemory, [msg(11, undefined, '<a@x>')], NOW, { messageIdHash: hash }).recentMessageIds,
    ).toEqual(['h(<a@x>)']);
  });

  it('keeps a re-scan going while the fetch range is not exhausted', () => {
    const current = checkpoint({ lastUid: 0, rescanSince: '2026-11-15T00:00:00.000Z' });
    expect(advanceCheckpoint(current, [msg(1), msg(2)], NOW).rescanSince).toBe('2026-11-15T00:00:00.000Z');
  });

  it('ends a re-scan when the fetch range is exhausted (even without moving)', () => {
    const current = checkpoint({ lastUid: 5, rescanSince: '2026-11-15T00:00:00.000Z' });
    const ended = advanceCheckpoint(current, [], NOW, { exhaustedUpTo: 5 });
    expect(ended).not.toHaveProperty('rescanSince');
    expect(ended.lastUid).toBe(5);
  });

  it('never changes UIDVALIDITY', () => {
    expect(advanceCheckpoint(checkpoint({ uidValidity: '9' }), [msg(50)], NOW, { exhaustedUpTo: 60 }).uidValidity).toBe(
      '9',
    );
  });
});

describe('publishedPrefix', () => {
  const batch = [11, 12, 13, 14, 15].map((uid) => ({ uid }));

  it.each<[string, number[], number[]]>([
    ['all accepted', [0, 1, 2, 3, 4], [11, 12, 13, 14, 15]],
    ['none accepted', [], []],
    ['first rejected', [1, 2, 3, 4], []],
    ['middle rejected', [0, 1, 3, 4], [11, 12]],
    ['last rejected', [0, 1, 2, 3], [11, 12, 13, 14]],
    ['every other', [0, 2, 4], [11]],
  ])('%s', (_name, acceptedIndexes, expected) => {
    expect(publishedPrefix(batch, (_item, i) => acceptedIndexes.includes(i)).map((m) => m.uid)).toEqual(expected);
  });

  it('is empty for an empty batch', () => {
    expect(publishedPrefix([], () => true)).toEqual([]);
  });

  it('passes item and index to the predicate, in order, and stops at the first rejection', () => {
    const seen: [number, number][] = [];
    publishedPrefix(batch, (item, i) => {
      seen.push([item.uid, i]);
      return i < 2;
    });
    expect(seen).toEqual([
      [11, 0],
      [12, 1],
      [13, 2],
    ]);
  });

  it('the checkpoint never passes an unpublished UID (random accept patterns)', () => {
    const random = prng(20261126);
    for (let run = 0; run < 2_000; run++) {
      const lastUid = Math.floor(random() * 50);
      // Increasing UIDs with gaps (expunged messages), as listed by the server.
      const uids: number[] = [];
      let uid = lastUid;
      for (let n = Math.floor(random() * 12); n > 0; n--) uids.push((uid += 1 + Math.floor(random() * 3)));
      const accepted = uids.map(() => random() < 0.8);
      const items = uids.map((u) => msg(u));

      const done = publishedPrefix(items, (_m, i) => accepted[i]!);
      const next = advanceCheckpoint(checkpoint({ lastUid }), done, NOW);

      const firstUnpublished = uids.find((_u, i) => !accepted[i]);
      if (firstUnpublished !== undefined) expect(next.lastUid).toBeLessThan(firstUnpublished);
      // Everything at or below the checkpoint (and above the old one) was accepted.
      uids.forEach((u, i) => {
        if (u <= next.lastUid) expect(accepted[i]).toBe(true);
      });
      // And it advances as far as allowed: to the UID before the first unpublished one.
      const allowed = firstUnpublished === undefined ? uids : uids.filter((u) => u < firstUnpublished);
      expect(next.lastUid).toBe(Math.max(lastUid, ...allowed));
    }
  });
});

describe('rebaseline', () => {
  it('starts the new UIDVALIDITY from 0, keeps the memory and version, records the re-scan start', () => {
    const previous = checkpoint({
      lastUid: 99,
      lastInternalDate: '2026-11-19T10:00:00.000Z',
      recentMessageIds: ['h1', 'h2'],
    });
    const next = rebaseline(previous, '1800000000', new Date('2026-11-19T10:00:00.000Z'), NOW);
    expect(next).toEqual({
      ...previous,
      uidValidity: '1800000000',
      lastUid: 0,
      updatedAt: NOW.toISOString(),
      rescanSince: '2026-11-19T10:00:00.000Z',
    });
    expect(previous.uidValidity).toBe('1700000000');
  });

  it('replaces a pending re-scan start', () => {
    const next = rebaseline(
      checkpoint({ rescanSince: '2026-11-01T00:00:00.000Z' }),
      '2',
      new Date('2026-10-01T00:00:00.000Z'),
      NOW,
    );
    expect(next.rescanSince).toBe('2026-10-01T00:00:00.000Z');
  });
});

describe('isRescanCandidate', () => {
  const rescanning = checkpoint({ rescanSince: '2026-11-19T10:00:00.000Z', recentMessageIds: [hash('<published@x>')] });

  it.each<[string, Checkpoint, MessageSummary, boolean]>([
    [
      'no re-scan: everything is a candidate',
      checkpoint({ recentMessageIds: [hash('<published@x>')] }),
      msg(1, '2000-01-01T00:00:00.000Z', '<published@x>'),
      true,
    ],
    ['arrived before the start', rescanning, msg(1, '2026-11-19T09:59:59.999Z', '<new@x>'), false],
    ['arrived exactly at the start, not published', rescanning, msg(1, '2026-11-19T10:00:00.000Z', '<new@x>'), true],
    [
      'arrived exactly at the start, already published',
      rescanning,
      msg(1, '2026-11-19T10:00:00.000Z', '<published@x>'),
      false,
    ],
    ['arrived later, already published', rescanning, msg(1, '2026-11-20T00:00:00.000Z', '<published@x>'), false],
    ['arrived later, new', rescanning, msg(1, '2026-11-20T00:00:00.000Z', '<new@x>'), true],
    ['arrived later, no Message-ID', rescanning, msg(1, '2026-11-20T00:00:00.000Z'), true],
    ['no internalDate, new', rescanning, msg(1, undefined, '<new@x>'), true],
    ['no internalDate, already published', rescanning, msg(1, undefined, '<published@x>'), false],
  ])('%s -> %s', (_name, c, m, expected) => {
    expect(isRescanCandidate(c, m, hash)).toBe(expected);
  });

  it('matches Message-IDs through the hash function', () => {
    const normalizing = (id: string): string => id.trim().toLowerCase();
    const c = checkpoint({ rescanSince: '2026-11-19T10:00:00.000Z', recentMessageIds: ['<abc@example.com>'] });
    expect(isRescanCandidate(c, msg(1, '2026-11-20T00:00:00.000Z', ' <ABC@Example.com> '), normalizing)).toBe(false);
  });
});
