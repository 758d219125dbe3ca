import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_MESSAGE_BYTES, imapResponseLimits } from '../../functions/poller/core/imap-limits.js';
import {
  invalidFolderField,
  isNzNumber,
  isUidNextBelowCheckpoint,
  requestedRows,
} from '../../functions/poller/core/imap-numbers.js';

describe('isNzNumber (RFC 3501 nz-number: 1..2^32-1)', () => {
  it.each([1, 42, 4_294_967_295, 1n, 4_294_967_295n])('accepts %s', (v) => expect(isNzNumber(v)).toBe(true));
  it.each([0, -1, 4_294_967_296, 1.5, Number.NaN, 0n, 4_294_967_296n, '5', undefined, null])('rejects %s', (v) =>
    expect(isNzNumber(v)).toBe(false),
  );
});

describe('invalidFolderField', () => {
  const ok = { uidValidity: 1_700_000_000n, uidNext: 7, messages: 6 };
  it('a valid state', () => {
    expect(invalidFolderField(ok)).toBeUndefined();
    expect(invalidFolderField({ ...ok, uidValidity: '1700000000', messages: 0 })).toBeUndefined();
  });
  it.each([
    [{ uidValidity: 0n }, 'UIDVALIDITY'],
    [{ uidValidity: '0' }, 'UIDVALIDITY'],
    [{ uidValidity: 4_294_967_296n }, 'UIDVALIDITY'],
    [{ uidValidity: undefined }, 'UIDVALIDITY'],
    [{ uidNext: 4_294_967_296 }, 'UIDNEXT'],
    [{ uidNext: 0 }, 'UIDNEXT'],
    [{ uidNext: undefined }, 'UIDNEXT'],
    [{ messages: -1 }, 'MESSAGES'],
    [{ messages: undefined }, 'MESSAGES'],
  ] as const)('%o: %s', (change, field) => expect(invalidFolderField({ ...ok, ...change })).toBe(field));
});

describe('requestedRows', () => {
  it('keeps the first row of each UID asked for, counts the rest', () => {
    const rows = [{ uid: 6 }, { uid: 500 }, { uid: 6 }, { uid: undefined }, { uid: 7 }];
    expect(requestedRows(rows, new Set([6, 7]))).toEqual({ rows: [{ uid: 6 }, { uid: 7 }], ignored: 3 });
  });
});

describe('isUidNextBelowCheckpoint', () => {
  it('a restored server assigns UIDs the checkpoint passed', () => {
    expect(isUidNextBelowCheckpoint(10, 4)).toBe(true);
    expect(isUidNextBelowCheckpoint(10, 11)).toBe(false);
    expect(isUidNextBelowCheckpoint(10, 12)).toBe(false);
  });
});

describe('imapResponseLimits', () => {
  it('derives the literal limit from the download bound, far below imapflow defaults (1 GiB)', () => {
    const limits = imapResponseLimits();
    expect(limits.maxLiteralSize).toBe(4 * DEFAULT_MAX_MESSAGE_BYTES);
    expect(limits.maxResponseSize).toBeGreaterThan(limits.maxLiteralSize);
    expect(limits.maxResponseSize).toBeLessThan(64 * 1024 * 1024);
    expect(imapResponseLimits(64 * 1024).maxLiteralSize).toBe(1024 * 1024); // never below 1 MiB
  });
});
