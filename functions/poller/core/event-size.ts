/**
 * EventBridge entry sizes, and cutting a message detail down to fit one entry.
 * Pure: no SDK, no clock.
 */
import type { MessageReceivedDetail } from './event-detail.js';

/** EventBridge's limit for one PutEvents entry (and for a whole PutEvents request). */
export const MAX_ENTRY_BYTES = 256 * 1024;

/** The PutEvents entry fields that count towards its size. */
export interface SizedEntry {
  readonly Source: string;
  readonly DetailType: string;
  readonly Detail: string;
  readonly Resources?: readonly string[];
  readonly Time?: Date | string;
}

/** UTF-8 length of a string (lone surrogates count as the 3-byte U+FFFD they are sent as). */
export function utf8Length(value: string): number {
  return Buffer.byteLength(value, 'utf8');
}

/**
 * Size of a PutEvents entry as EventBridge computes it ("Calculating Amazon EventBridge PutEvents
 * event entry size"): UTF-8 bytes of Source, DetailType, Detail and each Resource, plus 14 when Time is set.
 * EventBusName does not count.
 */
export function eventEntrySize(entry: SizedEntry): number {
  let size = utf8Length(entry.Source) + utf8Length(entry.DetailType) + utf8Length(entry.Detail);
  for (const resource of entry.Resources ?? []) size += utf8Length(resource);
  if (entry.Time !== undefined) size += 14;
  return size;
}

/** UTF-8 length of `JSON.stringify(value)`. */
export function jsonSize(value: unknown): number {
  return utf8Length(JSON.stringify(value) ?? '');
}

/**
 * The longest prefix of `value` whose JSON form (quotes and escapes included, as JSON.stringify
 * writes it) takes at most `maxBytes` UTF-8 bytes. Cuts between code points only: never inside a
 * surrogate pair. One pass over at most `maxBytes` characters.
 */
export function cutJsonString(value: string, maxBytes: number): { value: string; bytes: number } {
  let bytes = 2; // the quotes
  let i = 0;
  while (i < value.length) {
    const c = value.charCodeAt(i);
    let cost: number;
    let units = 1;
    if (c === 0x22 || c === 0x5c || c === 0x08 || c === 0x09 || c === 0x0a || c === 0x0c || c === 0x0d) cost = 2;
    else if (c < 0x20)
      cost = 6; // \u00XX
    else if (c < 0x80) cost = 1;
    else if (c < 0x800) cost = 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < value.length && (value.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      cost = 4;
      units = 2;
    } else if (c >= 0xd800 && c <= 0xdfff)
      cost = 6; // lone surrogate: JSON.stringify writes \udXXX
    else cost = 3;
    if (bytes + cost > maxBytes) break;
    bytes += cost;
    i += units;
  }
  return i === value.length ? { value, bytes } : { value: value.slice(0, i), bytes };
}

/** The longest prefix of `items` whose JSON array form takes at most `maxBytes` bytes. */
function fitPrefix<T>(items: readonly T[], maxBytes: number): { value: T[]; bytes: number } {
  let bytes = 2; // [ ]
  let count = 0;
  for (const item of items) {
    const cost = jsonSize(item) + (count > 0 ? 1 : 0);
    if (bytes + cost > maxBytes) break;
    bytes += cost;
    count++;
  }
  return { value: items.slice(0, count), bytes };
}

/** Size of the JSON object whose fields (ASCII keys) serialize to the given sizes: braces, `"key":` and commas. */
function objectSize(fieldSizes: ReadonlyMap<string, number>): number {
  let size = 1 + fieldSizes.size;
  for (const [key, valueSize] of fieldSizes) size += key.length + 3 + valueSize;
  return size;
}

type CutField =
  | 'html'
  | 'text'
  | 'attachments'
  | 'references'
  | 'cc'
  | 'to'
  | 'replyTo'
  | 'subject'
  | 'from'
  | 'inReplyTo'
  | 'messageId'
  | 'flags';

/**
 * What is cut, in order, until the entry fits. Bodies first: html before text, because both are
 * renderings of the same content and the html one is usually several times larger per unit of
 * information (markup, inline CSS), while text is what rules, search and downstream parsers use.
 * Then the attachment list (shortened from the end), then as a last resort the header fields,
 * least useful first. Identity fields (eventId, mailboxId, folder, uid, uidValidity) are never cut.
 */
const CUT_ORDER: readonly CutField[] = [
  'html',
  'text',
  'attachments',
  'references',
  'cc',
  'to',
  'replyTo',
  'subject',
  'from',
  'inReplyTo',
  'messageId',
  'flags',
];

/**
 * Returns `detail` itself when its entry fits in `maxBytes` (default 256 KB), otherwise a copy
 * cut to fit (see CUT_ORDER) with `truncated: true` and `originalSizes` (UTF-8 bytes of the cut
 * text / html; number of attachments for a shortened attachment list).
 *
 * Budget is for an entry without Time and Resources: a caller that sets them passes a `maxBytes`
 * reduced by their size. Deterministic and linear: each field is serialized once, strings are cut in one
 * pass, lists by prefix.
 * Throws RangeError only if the identity fields alone exceed the budget (misconfiguration).
 */
export function fitDetailToBudget(
  detail: MessageReceivedDetail,
  budget: { source: string; detailType: string; maxBytes?: number },
): MessageReceivedDetail {
  const limit = (budget.maxBytes ?? MAX_ENTRY_BYTES) - utf8Length(budget.source) - utf8Length(budget.detailType);
  // Each field is serialized once; the size of the object follows from the sizes of its fields.
  const fieldSizes = new Map<string, number>();
  for (const [key, value] of Object.entries(detail)) if (value !== undefined) fieldSizes.set(key, jsonSize(value));
  if (objectSize(fieldSizes) <= limit) return detail;

  // Reserve room for the largest originalSizes we may write; the final one is never larger.
  const reserved = {
    ...detail.originalSizes,
    ...(detail.text !== null && { text: detail.originalSizes?.text ?? utf8Length(detail.text) }),
    ...(detail.html !== null && { html: detail.originalSizes?.html ?? utf8Length(detail.html) }),
    ...(detail.attachments.length > 0 && {
      attachments: detail.originalSizes?.attachments ?? detail.attachments.length,
    }),
  };
  const out: MessageReceivedDetail = { ...detail, truncated: true, originalSizes: reserved };
  fieldSizes.set('truncated', 4);
  fieldSizes.set('originalSizes', jsonSize(reserved));
  let size = objectSize(fieldSizes);
  const cut = new Set<CutField>();

  for (const field of CUT_ORDER) {
    if (size <= limit) break;
    const current = out[field];
    if (current === null || (Array.isArray(current) && current.length === 0)) continue;
    const before = fieldSizes.get(field)!;
    const allowed = Math.max(2, before - (size - limit));
    const fitted = typeof current === 'string' ? cutJsonString(current, allowed) : fitPrefix<unknown>(current, allowed);
    (out as unknown as Record<string, unknown>)[field] = fitted.value;
    size += fitted.bytes - before;
    cut.add(field);
  }
  if (size > limit)
    throw new RangeError('The identity fields of the event alone exceed the EventBridge entry size limit.');

  const originalSizes = { ...detail.originalSizes };
  if (cut.has('text')) originalSizes.text = reserved.text;
  if (cut.has('html')) originalSizes.html = reserved.html;
  if (cut.has('attachments')) originalSizes.attachments = reserved.attachments;
  if (Object.keys(originalSizes).length > 0) out.originalSizes = originalSizes;
  else delete out.originalSizes;
  return out;
}

/**
 * The `Detail` string of a message event: `detail` serialized once, and only when it does not fit, cut by
 * fitDetailToBudget and serialized again. (Sizing field by field first cost a second full serialization for every
 * message, although nearly every message fits.)
 */
export function serializeDetail(
  detail: MessageReceivedDetail,
  budget: { source: string; detailType: string; maxBytes?: number },
): string {
  const limit = (budget.maxBytes ?? MAX_ENTRY_BYTES) - utf8Length(budget.source) - utf8Length(budget.detailType);
  // Bodies longer than the limit (in characters, so in bytes too) cannot fit: cut at once, never serializing a
  // 2 MiB body whole only to learn that (it cost a multi-megabyte string per large message).
  if ((detail.text?.length ?? 0) + (detail.html?.length ?? 0) > limit) {
    return JSON.stringify(fitDetailToBudget(detail, budget));
  }
  const json = JSON.stringify(detail);
  // Bytes are at least characters and at most 3 per UTF-16 unit: count them only when that bound is not decisive.
  if (json.length * 3 <= limit || (json.length <= limit && utf8Length(json) <= limit)) return json;
  return JSON.stringify(fitDetailToBudget(detail, budget));
}
