import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildMessageDetail, buildResetDetail } from '../../functions/poller/core/build-detail.js';
import type { MessageReceivedDetail } from '../../functions/poller/core/event-detail.js';
import { eventEntrySize, fitDetailToBudget, MAX_ENTRY_BYTES } from '../../functions/poller/core/event-size.js';
import { type ParsedContent, parseMessageContent } from '../../functions/poller/core/message-content.js';
import type { MessageSummary } from '../../functions/poller/core/types.js';
import {
  type MessageReceivedDetail as ConsumerDetail,
  DETAIL_TYPE_MESSAGE,
  DETAIL_TYPE_RESET,
  type MailboxResetDetail,
} from '../../types/index.js';
import { corpusDir, corpusFiles } from '../support/corpus.js';
import { buildFixtureMessages } from '../support/fixture-messages.js';
import { validateMessageDetail, validateResetDetail } from '../support/schemas.js';

const root = join(import.meta.dirname, '../..');
const validateMessage = validateMessageDetail;
const validateReset = validateResetDetail;

function expectValid(validate: typeof validateMessage | typeof validateReset, detail: unknown): void {
  const ok = validate(detail);
  expect(ok ? [] : validate.errors).toEqual([]);
}

const SOURCE = 'imap-event-source';
const entrySize = (detail: unknown, detailType = DETAIL_TYPE_MESSAGE) =>
  eventEntrySize({ Source: SOURCE, DetailType: detailType, Detail: JSON.stringify(detail) });

function summary(overrides: Partial<MessageSummary> = {}): MessageSummary {
  return {
    uid: 4711,
    size: 12345,
    flags: ['\\Seen', '$Label1'],
    internalDate: '2026-11-26T10:00:01.000Z',
    envelope: {
      messageId: '<envelope@example.com>',
      inReplyTo: '<envelope-parent@example.com>',
      subject: 'Envelope subject',
      date: '2026-11-26T09:59:00.000Z',
      from: [{ name: 'Envelope From', address: 'env-from@example.com' }],
      to: [{ name: '', address: 'env-to@example.com' }],
      cc: [{ name: '', address: 'env-cc@example.com' }],
      replyTo: [{ name: '', address: 'env-reply@example.com' }],
    },
    ...overrides,
  };
}

function content(overrides: Partial<ParsedContent> = {}): ParsedContent {
  return {
    messageId: '<parsed@example.com>',
    inReplyTo: null,
    references: ['<root@example.com>'],
    subject: 'Grüße aus Köln',
    from: [{ name: 'Jürgen Müller', address: 'jm@example.de' }],
    to: [{ name: 'Support', address: 'support@example.com' }],
    cc: [],
    replyTo: [],
    date: '2026-11-26T09:00:00.000Z',
    text: 'Hallo',
    html: '<p>Hallo</p>',
    attachments: [{ filename: 'a.pdf', contentType: 'application/pdf', size: 10, inline: false, contentId: null }],
    partial: false,
    ...overrides,
  };
}

const base = { mailboxId: 'support', folder: 'Firma/Kundenbetreuung/kunden/a', uidValidity: '1700000000' };

describe('buildMessageDetail', () => {
  it('builds the contract-2 detail from the parsed content and the summary', () => {
    const detail = buildMessageDetail({ ...base, summary: summary(), content: content(), partial: false });
    expect(detail).toEqual({
      version: '1',
      eventId: 'support:1700000000:4711',
      mailboxId: 'support',
      folder: 'Firma/Kundenbetreuung/kunden/a',
      uid: 4711,
      uidValidity: '1700000000',
      messageId: '<parsed@example.com>',
      inReplyTo: '<envelope-parent@example.com>',
      references: ['<root@example.com>'],
      subject: 'Grüße aus Köln',
      from: [{ name: 'Jürgen Müller', address: 'jm@example.de' }],
      to: [{ name: 'Support', address: 'support@example.com' }],
      cc: [{ name: '', address: 'env-cc@example.com' }],
      replyTo: [{ name: '', address: 'env-reply@example.com' }],
      date: '2026-11-26T09:00:00.000Z',
      internalDate: '2026-11-26T10:00:01.000Z',
      size: 12345,
      flags: ['\\Seen', '$Label1'],
      text: 'Hallo',
      html: '<p>Hallo</p>',
      attachments: [{ filename: 'a.pdf', contentType: 'application/pdf', size: 10, inline: false, contentId: null }],
      truncated: false,
    });
    expectValid(validateMessage, detail);
  });

  it('falls back to the envelope field by field, and entirely without content', () => {
    const partialContent = content({ messageId: null, subject: null, date: null, from: [] });
    const detail = buildMessageDetail({ ...base, summary: summary(), content: partialContent, partial: false });
    expect(detail).toMatchObject({
      messageId: '<envelope@example.com>',
      subject: 'Envelope subject',
      // A whole source without a valid Date header: null, never the server's lenient reading of the same header.
      date: null,
      from: [{ name: 'Envelope From', address: 'env-from@example.com' }],
    });
    // A source cut at the download bound may have lost its Date header: then the envelope's date is used.
    const cut = buildMessageDetail({
      ...base,
      summary: summary(),
      content: content({ date: null, partial: true }),
      partial: true,
    });
    expect(cut.date).toBe('2026-11-26T09:59:00.000Z');

    const bare = buildMessageDetail({ ...base, summary: summary(), partial: false });
    expect(bare).toMatchObject({
      messageId: '<envelope@example.com>',
      inReplyTo: '<envelope-parent@example.com>',
      references: [],
      subject: 'Envelope subject',
      to: [{ name: '', address: 'env-to@example.com' }],
      text: null,
      html: null,
      attachments: [],
      truncated: false,
    });
    expectValid(validateMessage, bare);

    const empty = buildMessageDetail({
      ...base,
      summary: summary({ internalDate: undefined, flags: [], envelope: { from: [], to: [], cc: [], replyTo: [] } }),
      partial: false,
    });
    expect(empty).toMatchObject({
      messageId: null,
      inReplyTo: null,
      subject: null,
      date: null,
      internalDate: null,
      from: [],
    });
    expectValid(validateMessage, empty);
  });

  it('marks partial downloads truncated, carries parseError and raw, and does not share arrays with its input', () => {
    const s = summary();
    const c = content({
      parseError: 'MIME structure rejected: Maximum MIME nesting depth of 256 levels exceeded',
      partial: true,
    });
    const detail = buildMessageDetail({
      ...base,
      summary: s,
      content: c,
      partial: true,
      raw: { bucket: 'raw-bucket', key: 'support/1700000000/4711.eml', size: 12345 },
    });
    expect(detail.truncated).toBe(true);
    expect(detail.parseError).toBe(c.parseError);
    expect(detail.raw).toEqual({ bucket: 'raw-bucket', key: 'support/1700000000/4711.eml', size: 12345 });
    expect(detail.flags).not.toBe(s.flags);
    expect(detail.from[0]).not.toBe(c.from[0]);
    expectValid(validateMessage, detail);
    expect('parseError' in buildMessageDetail({ ...base, summary: s, content: content(), partial: false })).toBe(false);
  });

  it('is a pure function of its input', () => {
    const input = { ...base, summary: summary(), content: content(), partial: false };
    expect(buildMessageDetail(input)).toEqual(buildMessageDetail(structuredClone(input)));
  });

  it('rejects what the contract forbids (the schema is not a rubber stamp)', () => {
    const detail = buildMessageDetail({ ...base, summary: summary(), content: content(), partial: false });
    expect(validateMessage({ ...detail, extra: 1 })).toBe(false);
    expect(validateMessage({ ...detail, date: 'yesterday' })).toBe(false);
    expect(validateMessage({ ...detail, uid: 0 })).toBe(false);
    expect(validateMessage({ ...detail, from: [{ name: 'x' }] })).toBe(false);
    const { truncated: _omit, ...missing } = detail;
    expect(validateMessage(missing)).toBe(false);
  });
});

describe('buildResetDetail', () => {
  it('builds the reset detail with a stable eventId distinct from message eventIds', () => {
    const input = {
      mailboxId: 'support',
      folder: 'INBOX',
      previous: { uidValidity: '1700000000', lastUid: 4711 },
      uidValidity: '1800000000',
      rescanSince: '2026-11-20T00:00:00.000Z',
      detectedAt: '2026-11-26T10:00:00.000Z',
    };
    const detail: MailboxResetDetail = buildResetDetail(input);
    expect(detail).toEqual({
      version: '1',
      eventId: 'support:1800000000:reset:1700000000',
      mailboxId: 'support',
      folder: 'INBOX',
      previousUidValidity: '1700000000',
      uidValidity: '1800000000',
      previousLastUid: 4711,
      rescanSince: '2026-11-20T00:00:00.000Z',
      detectedAt: '2026-11-26T10:00:00.000Z',
    });
    expect(buildResetDetail(input)).toEqual(detail);
    expectValid(validateReset, detail);
    expectValid(validateReset, buildResetDetail({ ...input, rescanSince: null }));
    expect(validateMessage(detail)).toBe(false);
    expect(validateReset({ ...detail, detectedAt: 'now' })).toBe(false);
  });
});

describe('consumer types', () => {
  it('re-exports the contract types and detail-type constants', () => {
    const detail: ConsumerDetail = buildMessageDetail({
      ...base,
      summary: summary(),
      partial: false,
    }) satisfies MessageReceivedDetail;
    expect(detail.version).toBe('1');
    expect([DETAIL_TYPE_MESSAGE, DETAIL_TYPE_RESET]).toEqual(['IMAP Message Received', 'IMAP Mailbox Reset']);
  });
});

/** Parse, build, fit to budget: the pure pipeline of one message. */
async function pipeline(bytes: Uint8Array, uid: number, partial = false): Promise<MessageReceivedDetail> {
  const parsed = await parseMessageContent(bytes, { partial });
  const detail = buildMessageDetail({
    ...base,
    summary: {
      uid,
      size: bytes.length,
      flags: [],
      internalDate: '2026-11-26T10:00:01.000Z',
      envelope: { from: [], to: [], cc: [], replyTo: [] },
    },
    content: parsed,
    partial,
  });
  return fitDetailToBudget(detail, { source: SOURCE, detailType: DETAIL_TYPE_MESSAGE });
}

describe('pipeline: every fixture message', () => {
  for (const [i, fixture] of buildFixtureMessages().entries()) {
    it(`${fixture.name} builds a valid detail that fits`, async () => {
      const detail = await pipeline(fixture.bytes, i + 1);
      expectValid(validateMessage, detail);
      expect(entrySize(detail)).toBeLessThanOrEqual(MAX_ENTRY_BYTES);
    });
  }

  it('the 5,000-recipient and huge-body messages are cut and marked truncated', async () => {
    const fixtures = buildFixtureMessages();
    for (const name of [
      'five-thousand-recipients',
      'huge-multibyte-text',
      'huge-multibyte-html-and-text',
      'many-attachments',
    ]) {
      const detail = await pipeline(fixtures.find((f) => f.name === name)!.bytes, 1);
      expect(detail.truncated, name).toBe(true);
    }
  });
});

describe('pipeline: the mail-gem corpus', () => {
  it('every message parses without throwing, validates against the schema and fits', async () => {
    const CORPUS = corpusDir();
    const files = corpusFiles(CORPUS).sort();
    expect(files.length).toBeGreaterThan(90);
    let largest = { file: '', size: 0 };
    for (const [i, file] of files.entries()) {
      const detail = await pipeline(readFileSync(file), i + 1);
      const ok = validateMessage(detail);
      expect(ok ? [] : [file, validateMessage.errors]).toEqual([]);
      const size = entrySize(detail);
      expect(size, file).toBeLessThanOrEqual(MAX_ENTRY_BYTES);
      if (size > largest.size) largest = { file: file.slice(CORPUS.length + 1), size };
    }
    console.log(`mail-gem corpus: ${files.length} messages, largest entry ${largest.size} bytes (${largest.file})`);
  });

  it('every message also survives a download cut in half', async () => {
    for (const [i, file] of corpusFiles().entries()) {
      const bytes = readFileSync(file);
      const detail = await pipeline(bytes.subarray(0, bytes.length >> 1), i + 1, true);
      expectValid(validateMessage, detail);
      expect(detail.truncated).toBe(true);
    }
  });
});

describe('docs/events.md', () => {
  it('its example events validate against the schemas', () => {
    const docs = readFileSync(join(root, 'docs/events.md'), 'utf8');
    const examples = [...docs.matchAll(/```json\n([\s\S]*?)```/g)]
      .map((m) => JSON.parse(m[1]!))
      .filter((e) => e && typeof e === 'object' && 'detail-type' in e);
    expect(examples.length).toBeGreaterThanOrEqual(3);
    for (const event of examples) {
      expect(event.source).toBe(SOURCE);
      expectValid(event['detail-type'] === DETAIL_TYPE_RESET ? validateReset : validateMessage, event.detail);
    }
  });
});
