/**
 * Decodes the (possibly cut) RFC 822 source of a message into the fields of an event detail.
 * Pure and total: never throws, keeps no attachment content.
 */
import { addressParser, decodeWords } from 'postal-mime';
import type { AttachmentInfo, MessageReceivedDetail } from './event-detail.js';
import { type ContentParse, parseForContent } from './mime-decoders.js';
import type { Address } from './types.js';

/**
 * The detail fields decoded from the message itself: addresses with groups flattened and names decoded,
 * the first Message-ID token (angle brackets kept), the Date header as ISO 8601 (UTC) or null,
 * attachment metadata only. With `partial`, the last attachment may be cut (its size is a lower bound)
 * and later ones are missing. `parseError` is set when the MIME structure could not be parsed; the
 * fields then come from a plain header scan.
 */
export type ParsedContent = Pick<
  MessageReceivedDetail,
  | 'messageId'
  | 'inReplyTo'
  | 'references'
  | 'subject'
  | 'from'
  | 'to'
  | 'cc'
  | 'replyTo'
  | 'date'
  | 'text'
  | 'html'
  | 'attachments'
  | 'parseError'
> & {
  /** The bytes were cut at the download bound: bodies and attachments are incomplete, the caller sets `truncated`. */
  partial: boolean;
};

/** Lines of a message handed to the MIME parser at most (a 2 MiB base64 attachment has about 27,000). */
export const MAX_PARSE_LINES = 30_000;
const MAX_MIME_NESTING = 50;

/** The first `maxLines` lines of `bytes` (the same view when it has fewer). */
export function cutAtLine(bytes: Uint8Array, maxLines: number): Uint8Array {
  if (bytes.length <= maxLines) return bytes; // a line takes at least its line feed
  let lines = 0;
  for (let i = bytes.indexOf(0x0a); i !== -1; i = bytes.indexOf(0x0a, i + 1)) {
    if (++lines === maxLines) return i + 1 < bytes.length ? bytes.subarray(0, i + 1) : bytes;
  }
  return bytes;
}

interface HeaderField {
  key: string;
  value: string;
}

/**
 * Never throws. A message the MIME parser rejects yields the fields of its top-level header
 * block and `parseError`. Raw 8-bit header lines that are not UTF-8 are decoded in the
 * message's declared charset, else windows-1252.
 */
export async function parseMessageContent(source: Uint8Array, options: { partial: boolean }): Promise<ParsedContent> {
  // The parser's work grows with the number of lines (one part per line), not only with bytes: 2 MiB of
  // empty lines costs seconds of CPU. Past MAX_PARSE_LINES the rest is treated like a cut download.
  const bytes = cutAtLine(source, MAX_PARSE_LINES);
  options = { partial: options.partial || bytes.length < source.length };
  let parsed: ContentParse | undefined;
  let parseError: string | undefined;
  try {
    // The view is read where it lies (mime-decoders.ts: postal-mime itself would copy it).
    // 'arraybuffer' is the cheapest encoding: 'base64' and 'utf8' decode to an ArrayBuffer first and then add a string copy.
    parsed = await parseForContent(bytes, {
      attachmentEncoding: 'arraybuffer',
      // A forwarded message (message/rfc822) is listed as an attachment, not parsed: nesting costs a re-parse per level.
      forceRfc822Attachments: true,
      maxNestingDepth: MAX_MIME_NESTING,
    });
  } catch (error) {
    parseError = describeParseError(error);
  }

  let headers: HeaderField[] = parsed?.headers ?? [];
  if (!parsed || headers.some((h) => h.value.includes('\uFFFD'))) {
    try {
      headers = scanHeaders(bytes);
    } catch (error) {
      parseError ??= describeParseError(error);
    }
  }

  const html = cleanBody(parsed?.html, options.partial);
  const content: ParsedContent = Object.assign(headerFields(headers), {
    text: cleanBody(parsed?.text, options.partial),
    html,
    attachments: parsed && parsed.attachments.length > 0 ? attachmentInfos(parsed, html) : [],
    partial: options.partial,
  });
  if (parseError !== undefined) content.parseError = parseError;
  return content;
}

/** Attachment metadata; inline when so disposed, related, or referenced by a `cid:` of the HTML body. */
function attachmentInfos(parsed: ContentParse, html: string | null): AttachmentInfo[] {
  const referenced = new Set<string>();
  if (html && parsed.attachments.some((a) => a.contentId)) {
    for (const m of html.matchAll(/cid:([^"'\s)>]+)/gi)) referenced.add(m[1]!.toLowerCase());
  }
  return parsed.attachments.map((a): AttachmentInfo => {
    const contentId = a.contentId?.trim() || null;
    const cid = contentId?.replace(/^<|>$/g, '').toLowerCase();
    return {
      filename: a.filename ? repairC1(a.filename) : null,
      contentType: a.mimeType || 'application/octet-stream',
      size: typeof a.content === 'string' ? Buffer.byteLength(a.content) : a.content.byteLength,
      inline: a.disposition === 'inline' || a.related === true || (!!cid && referenced.has(cid)),
      contentId,
    };
  });
}

/**
 * Node 20.18.3+, 22.13+ and 24 (until fixed) decode windows-1252, and the latin1 / iso-8859-1 / us-ascii
 * labels the WHATWG maps to it, through a Latin-1 fast path: bytes 0x80-0x9F come out as C1 controls
 * instead of € “ ” – … (nodejs/node#56542, #60888). postal-mime uses TextDecoder, so its output is
 * repaired here, on affected runtimes only. C1 controls have no business in mail text anyway.
 */
const C1_BROKEN = new TextDecoder('windows-1252').decode(Uint8Array.of(0x80)) !== '\u20ac';
const CP1252_C1 =
  '\u20ac\u0081\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u008d\u017d\u008f' +
  '\u0090\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u009d\u017e\u0178';

export function repairC1(value: string): string {
  if (!C1_BROKEN || !/[\u0080-\u009f]/.test(value)) return value;
  return value.replace(/[\u0080-\u009f]/g, (c) => CP1252_C1[c.charCodeAt(0) - 0x80]!);
}

function describeParseError(error: unknown): string {
  const message = error instanceof Error ? error.message : '';
  // postal-mime's own limit errors carry no message content; anything else is reduced to its type.
  if (/^Maximum [\w -]+ of \d+ [\w ]+ exceeded$/.test(message)) return `MIME structure rejected: ${message}`;
  return `MIME parser failed (${error instanceof Error ? error.name : typeof error})`;
}

/** A body cut at the download bound may end in a broken character (U+FFFD, then the parser's line end): drop it. */
function cleanBody(body: string | undefined, partial: boolean): string | null {
  if (body === undefined) return null;
  let end = body.length;
  while (partial && end > 0 && (body[end - 1] === '\n' || body[end - 1] === '\r')) end--;
  if (partial && body[end - 1] === '\uFFFD') {
    while (end > 0 && body[end - 1] === '\uFFFD') end--;
    body = body.slice(0, end);
  }
  return repairC1(body);
}

/** The header fields the detail reads: the first of each, all of the address lists. */
interface HeaderValues {
  messageId?: string;
  inReplyTo?: string;
  references?: string;
  subject?: string;
  from?: string;
  date?: string;
  to: string[];
  cc: string[];
  replyTo: string[];
}

type FirstValue = 'messageId' | 'inReplyTo' | 'references' | 'subject' | 'from' | 'date';
const FIRST_VALUE = new Map<string, FirstValue>([
  ['message-id', 'messageId'],
  ['in-reply-to', 'inReplyTo'],
  ['references', 'references'],
  ['subject', 'subject'],
  ['from', 'from'],
  ['date', 'date'],
]);
const ALL_VALUES = new Map<string, 'to' | 'cc' | 'replyTo'>([
  ['to', 'to'],
  ['cc', 'cc'],
  ['reply-to', 'replyTo'],
]);

/** One pass over the headers (instead of one search per field). */
function headerValues(headers: readonly HeaderField[]): HeaderValues {
  const v: HeaderValues = { to: [], cc: [], replyTo: [] };
  for (const { key, value } of headers) {
    const first = FIRST_VALUE.get(key);
    if (first) {
      v[first] ??= value;
      continue;
    }
    const all = ALL_VALUES.get(key);
    if (all) v[all].push(value);
  }
  return v;
}

function headerFields(headers: readonly HeaderField[]) {
  const v = headerValues(headers);
  return {
    messageId: firstMessageId(v.messageId),
    inReplyTo: firstMessageId(v.inReplyTo),
    references: v.references === undefined ? [] : messageIds(v.references),
    subject: v.subject === undefined ? null : repairC1(decodeWordsIn(v.subject)),
    // Only the first From header counts (a second one is a spoofing device), with all its mailboxes.
    from: addresses(v.from === undefined ? [] : [v.from]),
    to: addresses(v.to),
    cc: addresses(v.cc),
    replyTo: addresses(v.replyTo),
    date: parseMailDate(v.date),
  };
}

/** postal-mime's decodeWords, which returns a value without "=?" (no encoded word) as it is. */
function decodeWordsIn(value: string): string {
  return value.includes('=?') ? decodeWords(value) : value;
}

function messageIds(value: string): string[] {
  return value.match(/<[^<>]*>/g) ?? value.split(/[\s,]+/).filter(Boolean);
}

/** The first Message-ID token of a header value (angle brackets kept); null when it has none. */
export function firstMessageId(value: string | undefined): string | null {
  return value === undefined ? null : (messageIds(value)[0] ?? null);
}

function addresses(values: readonly string[]): Address[] {
  const out: Address[] = [];
  for (const value of values) {
    const simple = simpleAddressList(value);
    if (simple) {
      for (const item of simple) addAddress(out, item.name, item.address);
      continue;
    }
    for (const item of addressParser(value)) {
      if (item.group) for (const member of item.group) addAddress(out, member.name, member.address);
      else addAddress(out, item.name, item.address);
    }
  }
  return out;
}

function addAddress(out: Address[], name: string | undefined, address: string | undefined): void {
  const entry = { name: repairC1((name ?? '').trim()), address: (address ?? '').trim() };
  if (entry.name || entry.address) out.push(entry);
}

/** An addr-spec without anything postal-mime's tokenizer treats specially: no space, quote, bracket, separator, control. */
const PLAIN_ADDRESS = '[^\\s<>"(),;:\\\\@\\x00-\\x1f\\x7f]+@[^\\s<>"(),;:\\\\@\\x00-\\x1f\\x7f]+';
/** `Name <addr>` with a name of plain text (encoded words allowed), or a bare `addr`, and only spaces around. */
const SIMPLE_MAILBOX = new RegExp(
  `^(?:([^"(),:;<>\\\\@\\x00-\\x1f\\x7f]*)<(${PLAIN_ADDRESS})>|( *${PLAIN_ADDRESS}))[ ]*$`,
);

/**
 * What postal-mime's addressParser returns for an address list whose every member is `Name <addr>` or a bare `addr`
 * (the usual From/To/Cc), without its tokenizer (a third of the header work in bench/drain.ts); undefined for
 * anything else (quotes, comments, groups, odd characters), which goes to addressParser. Same result, pinned in
 * test/unit/message-content.test.ts against addressParser over the corpus and generated lists.
 */
export function simpleAddressList(value: string): { name: string; address: string }[] | undefined {
  const out: { name: string; address: string }[] = [];
  for (const part of value.split(/[,;]/)) {
    if (part.trim() === '') continue; // no tokens: addressParser skips it too
    const m = SIMPLE_MAILBOX.exec(part);
    if (!m) return undefined;
    const address = (m[2] ?? m[3]!).trim();
    const text = (m[1] ?? '').trim();
    // addressParser: the name is the decoded text, else the decoded address; a name equal to the address is dropped.
    const name = decodeWordsIn(text || address);
    out.push({ name: name === address ? '' : name, address });
  }
  return out;
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const ZONES: Record<string, number> = {
  ut: 0,
  utc: 0,
  gmt: 0,
  z: 0,
  edt: -4,
  est: -5,
  cdt: -5,
  cst: -6,
  mdt: -6,
  mst: -7,
  pdt: -7,
  pst: -8,
};

/** Words of anything but whitespace, "(" and ":", and colons between them, one space apart. */
const NORMAL_DATE = /^[^\s(:]+(?::[^\s(:]+)*(?: [^\s(:]+(?::[^\s(:]+)*)*$/;

/**
 * RFC 5322 date-time (obsolete forms included: comments, 2-digit years, named zones) to ISO 8601 UTC;
 * also accepts ISO 8601 with a zone. Independent of the host time zone: a missing or unknown zone is UTC
 * (RFC 5322 4.3). Null for anything else, or an impossible date.
 */
export function parseMailDate(value: string | undefined): string | null {
  if (!value) return null;
  let s = value;
  // Comments out, whitespace around colons out, whitespace runs to one space, trimmed (nothing to do for the usual
  // "Mon, 2 Nov 2026 08:01:01 +0000").
  if (!NORMAL_DATE.test(s)) {
    for (let i = 0; i < 5 && s.includes('('); i++) s = s.replace(/\([^()]*\)/g, ' ');
    s = s
      .replace(/\s*:\s*/g, ':')
      .replace(/\s+/g, ' ')
      .trim();
  }

  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i.test(s)) {
    const time = Date.parse(s);
    return Number.isNaN(time) ? null : new Date(time).toISOString();
  }
  const m =
    /^(?:[a-z]+,? ?)?(\d{1,2}) ([a-z]{3})[a-z]*\.? (\d{2,4}) (\d{1,2}):(\d{2})(?::(\d{2}))?(?: ?([+-]\d{2}:?\d{2}|[a-z]{1,5}))?$/i.exec(
      s,
    );
  if (!m) return null;
  const [, dd, mon, yy, hh, mi, ss, zone] = m;
  const month = MONTHS.indexOf(mon!.toLowerCase());
  let year = Number(yy);
  if (yy!.length === 2) year += year < 50 ? 2000 : 1900;
  else if (yy!.length === 3) year += 1900;
  const [day, hour, minute, second] = [Number(dd), Number(hh), Number(mi), Math.min(Number(ss ?? 0), 59)];
  if (month < 0 || hour > 23 || minute > 59) return null;
  let offset = 0;
  if (zone && /^[+-]/.test(zone)) {
    const z = Number(zone.slice(1, 3)) * 60 + Number(zone.slice(-2));
    offset = zone.startsWith('-') ? -z : z;
  } else if (zone) offset = (ZONES[zone.toLowerCase()] ?? 0) * 60;
  const utc = new Date(Date.UTC(year, month, day, hour, minute, second));
  if (utc.getUTCDate() !== day || utc.getUTCMonth() !== month) return null; // e.g. 31 Feb
  const iso = new Date(utc.getTime() - offset * 60_000).toISOString();
  return /^\d{4}-/.test(iso) ? iso : null;
}

/** The fallback scan reads at most this much (postal-mime itself gives up on 2 MiB of headers). */
const HEADER_SCAN_LIMIT = 4 * 1024 * 1024;

/**
 * Minimal scan of the top-level header block (up to the first empty line), for when postal-mime
 * failed or read raw 8-bit header bytes as UTF-8. Each line is decoded as UTF-8 when valid, else in
 * the charset the Content-Type declares, else windows-1252. Folded lines are unfolded.
 */
function scanHeaders(bytes: Uint8Array): HeaderField[] {
  const raw: Uint8Array[][] = []; // the physical lines of each field
  const limit = Math.min(bytes.length, HEADER_SCAN_LIMIT);
  let start = 0;
  while (start < limit) {
    let end = bytes.indexOf(0x0a, start);
    if (end < 0 || end > limit) end = limit;
    const line = bytes.subarray(start, end > start && bytes[end - 1] === 0x0d ? end - 1 : end);
    start = end + 1;
    if (line.length === 0) break;
    if ((line[0] === 0x20 || line[0] === 0x09) && raw.length > 0) raw[raw.length - 1]!.push(line);
    else raw.push([line]);
  }

  const latin1 = new TextDecoder('latin1');
  const contentType = raw
    .map((lines) => lines.map((l) => latin1.decode(l)).join(''))
    .find((f) => /^content-type\s*:/i.test(f));
  const charset = /charset\s*=\s*"?([\w.:-]+)/i.exec(contentType ?? '')?.[1];
  let fallback = new TextDecoder('windows-1252');
  try {
    if (charset && !/^(utf-?8|us-ascii)$/i.test(charset)) fallback = new TextDecoder(charset);
  } catch {
    // unknown label: keep windows-1252
  }
  const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const decode = (line: Uint8Array) => {
    try {
      return utf8.decode(line);
    } catch {
      return fallback.decode(line);
    }
  };

  const fields: HeaderField[] = [];
  for (const lines of raw) {
    const text = lines.map(decode).join('');
    const colon = text.indexOf(':');
    if (colon > 0) fields.push({ key: text.slice(0, colon).trim().toLowerCase(), value: text.slice(colon + 1).trim() });
  }
  return fields;
}
