/**
 * IMAP UID sets (RFC 9051 `sequence-set`) for commands: consecutive UIDs as ranges, and split so that no command
 * line grows without bound (Dovecot refuses lines over 64 KB; a comma list of ~12,000 UIDs is that long).
 */

/** Characters of the UID set in one command at most: far below every server's line limit (8 KB per RFC 7162). */
export const MAX_UID_SET_CHARS = 4_000;

/** One command's UID set and how many UIDs it names (for the command's read budget). */
export interface UidSet {
  readonly set: string;
  readonly count: number;
}

/**
 * The UIDs (any order, duplicates allowed) as UID sets of consecutive runs (`1:500,502,504:900`), in ascending
 * order, each at most `maxChars` long. A range names only UIDs of the input, so an answer row for any other UID
 * is still one that was not asked for.
 */
export function uidSets(uids: readonly number[], maxChars = MAX_UID_SET_CHARS): UidSet[] {
  const sorted = [...new Set(uids)].sort((a, b) => a - b);
  const sets: UidSet[] = [];
  let current = '';
  let count = 0;
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    const run = j > i ? `${sorted[i]}:${sorted[j]}` : `${sorted[i]}`;
    if (current && current.length + 1 + run.length > maxChars) {
      sets.push({ set: current, count });
      current = '';
      count = 0;
    }
    current = current ? `${current},${run}` : run;
    count += j - i + 1;
    i = j + 1;
  }
  if (current) sets.push({ set: current, count });
  return sets;
}
