import { describe, expect, it } from 'vitest';
import type { AttachmentInfo, MessageReceivedDetail } from '../../functions/poller/core/event-detail.js';
import {
  cutJsonString,
  eventEntrySize,
  fitDetailToBudget,
  jsonSize,
  MAX_ENTRY_BYTES,
  serializeDetail,
  utf8Length,
} from '../../functions/poller/core/event-size.js';
import { DETAIL_TYPE_MESSAGE } from '../../functions/poller/core/types.js';
import { multibyteText } from '../support/fixture-messages.js';

const SOURCE = 'imap-event-source';
const BUDGET = { source: SOURCE, detailType: DETAIL_TYPE_MESSAGE };

function detail(overrides: Partial<MessageReceivedDetail> = {}): MessageReceivedDetail {
  return {
    version: '1',
    eventId: 'support:1700000000:4711',
    mailboxId: 'support',
    folder: 'Firma/Kundenbetreuung',
    uid: 4711,
    uidValidity: '1700000000',
    messageId: '<abc@example.com>',
    inReplyTo: null,
    references: [],
    subject: 'Hello',
    from: [{ name: 'Alice', address: 'alice@example.com' }],
    to: [{ name: 'Support', address: 'support@example.org' }],
    cc: [],
    replyTo: [],
    date: '2026-11-26T10:00:00.000Z',
    internalDate: '2026-11-26T10:00:01.000Z',
    size: 1234,
    flags: ['\\Seen'],
    text: 'Hi',
    html: null,
    attachments: [],
    truncated: false,
    ...overrides,
  };
}

/** The entry size the publisher will compute for this detail. */
function entrySize(d: MessageReceivedDetail, source = SOURCE): number {
  return eventEntrySize({ Source: source, DetailType: DETAIL_TYPE_MESSAGE, Detail: JSON.stringify(d) });
}

const endsInHighSurrogate = (s: string) => /[\uD800-\uDBFF]$/.test(s);
const attachment = (i: number): AttachmentInfo => ({
  filename: `file-${i}.pdf`,
  contentType: 'application/pdf',
  size: i,
  inline: false,
  contentId: null,
});

describe('eventEntrySize', () => {
  it('counts UTF-8 bytes of Source, DetailType, Detail and each Resource, plus 14 for Time', () => {
    expect(eventEntrySize({ Source: 'a', DetailType: 'b', Detail: '{}' })).toBe(4);
    expect(eventEntrySize({ Source: 'ä', DetailType: '日', Detail: '"😀"' })).toBe(2 + 3 + 6);
    expect(eventEntrySize({ Source: 'a', DetailType: 'b', Detail: '{}', Resources: ['arn:1', 'ü'] })).toBe(4 + 5 + 2);
    expect(eventEntrySize({ Source: 'a', DetailType: 'b', Detail: '{}', Time: new Date(0) })).toBe(18);
  });

  it('MAX_ENTRY_BYTES is 256 KiB', () => expect(MAX_ENTRY_BYTES).toBe(262_144));
});

describe('cutJsonString', () => {
  const sample = 'Grüße "quoted" \\ tab\t nl\n ctl\u0001 日本語 😀👍🏽 👨‍👩‍👧 lone\uD800x end\uDC00';

  it('measures exactly what JSON.stringify writes', () => {
    expect(cutJsonString(sample, Number.MAX_SAFE_INTEGER)).toEqual({ value: sample, bytes: jsonSize(sample) });
  });

  it('for every budget returns the longest prefix that fits, never splitting a surrogate pair', () => {
    const full = jsonSize(sample);
    for (let max = 0; max <= full + 2; max++) {
      const { value, bytes } = cutJsonString(sample, max);
      expect(sample.startsWith(value)).toBe(true);
      expect(bytes).toBe(jsonSize(value));
      if (value.length > 0) expect(bytes).toBeLessThanOrEqual(max);
      // a high surrogate at the end is only allowed when the original has a lone one there
      if (endsInHighSurrogate(value)) expect(sample.charCodeAt(value.length) & 0xfc00).not.toBe(0xdc00);
      if (value !== sample) {
        const pair =
          /[\uD800-\uDBFF]/.test(sample[value.length]!) && /[\uDC00-\uDFFF]/.test(sample[value.length + 1] ?? '');
        expect(jsonSize(sample.slice(0, value.length + (pair ? 2 : 1)))).toBeGreaterThan(max);
      }
    }
  });
});

describe('fitDetailToBudget', () => {
  it('returns a detail that fits unchanged (same object)', () => {
    const d = detail();
    expect(fitDetailToBudget(d, BUDGET)).toBe(d);
  });

  it('cuts a big text body to the byte, on a character boundary, and records the original size', () => {
    const text = multibyteText(400_000);
    const out = fitDetailToBudget(detail({ text }), BUDGET);
    expect(entrySize(out)).toBeLessThanOrEqual(MAX_ENTRY_BYTES);
    expect(entrySize(out)).toBeGreaterThan(MAX_ENTRY_BYTES - 16);
    expect(text.startsWith(out.text!)).toBe(true);
    expect(endsInHighSurrogate(out.text!)).toBe(false);
    expect(out.truncated).toBe(true);
    expect(out.originalSizes).toEqual({ text: utf8Length(text) });
  });

  it.each([
    ['German umlauts', 'ä'],
    ['CJK', '語'],
    ['emoji (surrogate pairs)', '😀'],
    ['emoji with modifiers and ZWJ', '👨‍👩‍👧👍🏽'],
  ])('cuts %s at every boundary offset without splitting a character', (_name, unit) => {
    for (let shift = 0; shift < 8; shift++) {
      const text = 'x'.repeat(shift) + unit.repeat(Math.ceil(300_000 / utf8Length(unit)));
      const out = fitDetailToBudget(detail({ text }), BUDGET);
      expect(entrySize(out)).toBeLessThanOrEqual(MAX_ENTRY_BYTES);
      expect(text.startsWith(out.text!)).toBe(true);
      expect(endsInHighSurrogate(out.text!)).toBe(false);
      expect(Buffer.from(out.text!, 'utf8').toString('utf8')).toBe(out.text);
    }
  });

  it('cuts html before text', () => {
    const text = 'plain '.repeat(10_000); // 60 KB
    const html = `<p>${'rich '.repeat(60_000)}</p>`; // 300 KB
    const out = fitDetailToBudget(detail({ text, html }), BUDGET);
    expect(out.text).toBe(text);
    expect(html.startsWith(out.html!)).toBe(true);
    expect(out.html!.length).toBeLessThan(html.length);
    expect(out.originalSizes).toEqual({ html: utf8Length(html) });
    expect(entrySize(out)).toBeLessThanOrEqual(MAX_ENTRY_BYTES);
  });

  it('cuts html away entirely, then text, when both are huge', () => {
    const text = multibyteText(500_000);
    const html = `<div>${multibyteText(900_000)}</div>`;
    const out = fitDetailToBudget(detail({ text, html }), BUDGET);
    expect(out.html).toBe('');
    expect(text.startsWith(out.text!)).toBe(true);
    expect(out.originalSizes).toEqual({ text: utf8Length(text), html: utf8Length(html) });
    expect(entrySize(out)).toBeLessThanOrEqual(MAX_ENTRY_BYTES);
    expect(entrySize(out)).toBeGreaterThan(MAX_ENTRY_BYTES - 64);
  });

  it('shortens the attachment list after the bodies, keeping the first ones', () => {
    const attachments = Array.from({ length: 10_000 }, (_, i) => attachment(i));
    const out = fitDetailToBudget(detail({ text: 'short', attachments }), BUDGET);
    expect(out.text).toBe('');
    expect(out.attachments.length).toBeGreaterThan(1000);
    expect(out.attachments.length).toBeLessThan(10_000);
    expect(out.attachments).toEqual(attachments.slice(0, out.attachments.length));
    expect(out.originalSizes).toEqual({ text: 5, attachments: 10_000 });
    expect(entrySize(out)).toBeLessThanOrEqual(MAX_ENTRY_BYTES);
  });

  it('trims references and address lists as a last resort, so 5,000 recipients fit', () => {
    const people = (prefix: string) =>
      Array.from({ length: 5000 }, (_, i) => ({
        name: `Recipient Number ${i} 😀`,
        address: `${prefix}-${i}@example.com`,
      }));
    const references = Array.from({ length: 5000 }, (_, i) => `<ref-${i}@example.com>`);
    const replyTo = [{ name: 'Help desk', address: 'help@example.com' }];
    const input = detail({ to: people('to'), cc: people('cc'), replyTo, references, text: 'Hello all' });
    const out = fitDetailToBudget(input, BUDGET);
    expect(entrySize(out)).toBeLessThanOrEqual(MAX_ENTRY_BYTES);
    expect(out.truncated).toBe(true);
    expect(out.references).toEqual([]);
    expect(out.cc).toEqual([]);
    expect(out.to.length).toBeGreaterThan(100);
    expect(out.to).toEqual(input.to.slice(0, out.to.length));
    expect(out.from).toEqual(input.from);
    expect(out.replyTo).toEqual(replyTo);
    expect(out.subject).toBe('Hello');
  });

  it('makes any input fit: huge subject, ids, names, flags and filenames', () => {
    const big = 'é'.repeat(300_000);
    const input = detail({
      subject: big,
      messageId: `<${big}>`,
      inReplyTo: `<${big}>`,
      references: [big],
      from: [{ name: big, address: 'a@example.com' }],
      to: [{ name: big, address: 'b@example.com' }],
      flags: Array.from({ length: 50_000 }, (_, i) => `$Keyword${i}`),
      text: big,
      html: big,
      attachments: [{ ...attachment(1), filename: big }],
    });
    const out = fitDetailToBudget(input, BUDGET);
    expect(entrySize(out)).toBeLessThanOrEqual(MAX_ENTRY_BYTES);
    expect(out.eventId).toBe(input.eventId);
    expect(out.folder).toBe(input.folder);
    expect(out.truncated).toBe(true);
  });

  it('counts Source and DetailType, and honours maxBytes', () => {
    const text = 'a'.repeat(300_000);
    const longSource = 's'.repeat(10_000);
    const out = fitDetailToBudget(detail({ text }), { source: longSource, detailType: DETAIL_TYPE_MESSAGE });
    expect(entrySize(out, longSource)).toBeLessThanOrEqual(MAX_ENTRY_BYTES);
    expect(entrySize(out, longSource)).toBeGreaterThan(MAX_ENTRY_BYTES - 16);
    const small = fitDetailToBudget(detail({ text }), { ...BUDGET, maxBytes: 10_000 });
    expect(entrySize(small)).toBeLessThanOrEqual(10_000);
    expect(entrySize(small)).toBeGreaterThan(10_000 - 16);
  });

  it('keeps sizes recorded earlier (e.g. for a partial download) and does not mutate its input', () => {
    const input = detail({ text: 'x'.repeat(300_000), truncated: true, originalSizes: { text: 9_999_999 } });
    const copy = structuredClone(input);
    const out = fitDetailToBudget(input, BUDGET);
    expect(out.originalSizes).toEqual({ text: 9_999_999 });
    expect(input).toEqual(copy);
  });

  it('is deterministic on thousands of items (its speed is measured by bench/, not asserted here)', () => {
    const input = detail({
      text: multibyteText(2_000_000),
      html: multibyteText(4_000_000),
      attachments: Array.from({ length: 20_000 }, (_, i) => attachment(i)),
      to: Array.from({ length: 20_000 }, (_, i) => ({ name: `R ${i}`, address: `r${i}@example.com` })),
    });
    const a = fitDetailToBudget(input, BUDGET);
    expect(fitDetailToBudget(input, BUDGET)).toEqual(a);
    expect(entrySize(a)).toBeLessThanOrEqual(MAX_ENTRY_BYTES);
  });

  it('throws RangeError when the identity fields alone are too large', () => {
    expect(() => fitDetailToBudget(detail({ folder: 'f'.repeat(300_000) }), BUDGET)).toThrow(RangeError);
  });
});

describe('serializeDetail', () => {
  it('is the JSON of the detail when it fits, else the JSON of the detail fitDetailToBudget cut', () => {
    const small = detail({ text: 'kurz' });
    expect(serializeDetail(small, BUDGET)).toBe(JSON.stringify(small));
    for (const text of ['ä'.repeat(200_000), 'x'.repeat(300_000), '€'.repeat(87_000)]) {
      const big = detail({ text });
      const json = serializeDetail(big, BUDGET);
      expect(json).toBe(JSON.stringify(fitDetailToBudget(big, BUDGET)));
      expect(
        eventEntrySize({ Source: BUDGET.source, DetailType: BUDGET.detailType, Detail: json }),
      ).toBeLessThanOrEqual(MAX_ENTRY_BYTES);
    }
  });
});
