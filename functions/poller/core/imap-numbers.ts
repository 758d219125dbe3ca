/**
 * What an IMAP server may say about UIDs, checked against RFC 3501/9051 (section 9, `nz-number`: a 32-bit unsigned
 * number, never 0). A value outside these ranges is a broken or hostile server: never a reason to move a checkpoint.
 * Pure predicates; the imapflow adapter turns a failed check into a protocol error.
 */

/** 2^32 - 1, the largest UID, UIDNEXT and UIDVALIDITY an IMAP server may send. */
export const MAX_NZ_NUMBER = 4_294_967_295;

/** A UID, UIDNEXT or UIDVALIDITY: an integer in 1..2^32-1. */
export function isNzNumber(value: unknown): value is number | bigint {
  if (typeof value === 'bigint') return value >= 1n && value <= BigInt(MAX_NZ_NUMBER);
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= MAX_NZ_NUMBER;
}

/** A message count (EXISTS, STATUS MESSAGES): an integer in 0..2^32-1. */
export function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= MAX_NZ_NUMBER;
}

/**
 * The first field of a folder state that breaks the rules, or undefined when all are valid.
 * `uidValidity` may arrive as a BigInt (imapflow) or a decimal string.
 */
export function invalidFolderField(state: {
  readonly uidValidity: unknown;
  readonly uidNext: unknown;
  readonly messages: unknown;
}): 'UIDVALIDITY' | 'UIDNEXT' | 'MESSAGES' | undefined {
  const validity =
    typeof state.uidValidity === 'string' && /^\d{1,10}$/.test(state.uidValidity)
      ? BigInt(state.uidValidity)
      : state.uidValidity;
  if (!isNzNumber(validity)) return 'UIDVALIDITY';
  if (!isNzNumber(state.uidNext)) return 'UIDNEXT';
  if (!isCount(state.messages)) return 'MESSAGES';
  return undefined;
}

/**
 * Splits FETCH rows into the ones for UIDs that were asked for (each at most once, first row wins) and the
 * number of the others (unsolicited rows, rows without a valid UID, repeats). Order of `rows` is kept.
 */
export function requestedRows<T extends { readonly uid?: unknown }>(
  rows: Iterable<T>,
  requested: ReadonlySet<number>,
): { rows: T[]; ignored: number } {
  const seen = new Set<number>();
  const kept: T[] = [];
  let ignored = 0;
  for (const row of rows) {
    const uid = row.uid;
    if (typeof uid === 'number' && requested.has(uid) && !seen.has(uid)) {
      seen.add(uid);
      kept.push(row);
    } else ignored++;
  }
  return { rows: kept, ignored };
}

/** True when a restored (or broken) server assigns UIDs again that the checkpoint already passed. */
export function isUidNextBelowCheckpoint(lastUid: number, uidNext: number): boolean {
  return uidNext - 1 < lastUid;
}
