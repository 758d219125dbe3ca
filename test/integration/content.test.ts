/**
 * Message content end to end (issue #5): real-world and hostile messages are appended to Dovecot, the real Lambda
 * handler polls them, and what the SQS subscriber receives must be a valid event (JSON Schema, Ajv 2020 + formats)
 * within EventBridge's entry limit, with the expected fields, while the checkpoint moves past every message.
 *
 * "Expected fields" are checked two ways: hand-written values (the fixtures' `expected`, and corpus messages whose
 * decoding was cross-checked with Python's `email` package), and, for every message, equality with the pure
 * pipeline (parseMessageContent -> buildMessageDetail -> fitDetailToBudget) run on the bytes the server serves:
 * whatever IMAP, the download bound, PutEvents, EventBridge and SQS do in between must not change a field.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildMessageDetail } from '../../functions/poller/core/build-detail.js';
import type { MessageReceivedDetail } from '../../functions/poller/core/event-detail.js';
import { eventEntrySize, fitDetailToBudget, MAX_ENTRY_BYTES } from '../../functions/poller/core/event-size.js';
import { parseMessageContent } from '../../functions/poller/core/message-content.js';
import { DETAIL_TYPE_MESSAGE } from '../../functions/poller/core/types.js';
import { corpusDir, corpusFiles } from '../support/corpus.js';
import {
  buildFixtureMessages,
  buildTwentyMegabyteAttachmentMessage,
  type FixtureMessage,
  pseudoRandomBytes,
} from '../support/fixture-messages.js';
import { buildMessage } from '../support/messages.js';
import type { EventEnvelope } from '../support/moto.js';
import { validateMessageDetail } from '../support/schemas.js';
import { World } from './world.js';

const SOURCE = 'imap-event-source';
/** The poller's default download bound (PollOptions.maxMessageBytes). */
const DOWNLOAD_BOUND = 2 * 1024 * 1024;

const validateDetail = validateMessageDetail;

/**
 * What Dovecot serves for appended bytes: bare-LF line ends come back as CRLF (RFC822.SIZE counts the CRLF form),
 * and NUL bytes are dropped silently on APPEND. Not a normalisation of ours: the messages are appended as they are,
 * and the tests compare against what the server serves.
 */
function asServed(bytes: Uint8Array): Buffer {
  return Buffer.from(Buffer.from(bytes).toString('latin1').replace(/\r?\n/g, '\r\n').replaceAll('\0', ''), 'latin1');
}

/** Receives `count` events, checks envelope, schema, size and uniqueness; returns the details by UID. */
async function receiveValid(
  world: World,
  uids: readonly number[],
  timeoutMs = 60_000,
): Promise<Map<number, MessageReceivedDetail>> {
  const events: EventEnvelope<MessageReceivedDetail>[] = await world.aws.receiveEvents(world.bus.queueUrl, {
    expected: uids.length,
    timeoutMs,
    quietMs: 500,
  });
  const byUid = new Map<number, MessageReceivedDetail>();
  for (const event of events) {
    expect(event.source).toBe(SOURCE);
    expect(event['detail-type']).toBe(DETAIL_TYPE_MESSAGE);
    const detail = event.detail;
    const valid = validateDetail(detail as unknown);
    expect(valid ? [] : [detail.uid, validateDetail.errors]).toEqual([]);
    // The entry as PutEvents got it: JSON.stringify of the same object gives the same bytes.
    const size = eventEntrySize({ Source: SOURCE, DetailType: DETAIL_TYPE_MESSAGE, Detail: JSON.stringify(detail) });
    expect(size, `entry of UID ${detail.uid}`).toBeLessThanOrEqual(MAX_ENTRY_BYTES);
    expect(detail.mailboxId).toBe(world.mailboxId);
    expect(detail.folder).toBe(world.folder);
    expect(detail.eventId).toBe(`${world.mailboxId}:${detail.uidValidity}:${detail.uid}`);
    expect(byUid.has(detail.uid), `duplicate event for UID ${detail.uid}`).toBe(false);
    byUid.set(detail.uid, detail);
  }
  expect([...byUid.keys()].sort((a, b) => a - b)).toEqual([...uids].sort((a, b) => a - b));
  return byUid;
}

/**
 * The detail the pure pipeline builds from `served` (cut at the download bound like the poller does), given what
 * only the server knows (UID, size, flags, INTERNALDATE). Header fields the source lacks fall back to the IMAP
 * ENVELOPE in the poller; Dovecot's ENVELOPE parsing is not ours to predict, so the event's own values stand in
 * for it (they only apply where the parsed source has no value).
 */
async function pipelineDetail(served: Buffer, event: MessageReceivedDetail): Promise<MessageReceivedDetail> {
  const partial = served.length > DOWNLOAD_BOUND;
  const content = await parseMessageContent(partial ? served.subarray(0, DOWNLOAD_BOUND) : served, { partial });
  return fitDetailToBudget(
    buildMessageDetail({
      mailboxId: event.mailboxId,
      folder: event.folder,
      uidValidity: event.uidValidity,
      summary: {
        uid: event.uid,
        size: event.size,
        flags: event.flags,
        ...(event.internalDate ? { internalDate: event.internalDate } : {}),
        envelope: {
          ...(event.messageId ? { messageId: event.messageId } : {}),
          ...(event.inReplyTo ? { inReplyTo: event.inReplyTo } : {}),
          ...(event.subject !== null ? { subject: event.subject } : {}),
          ...(event.date ? { date: event.date } : {}),
          from: event.from,
          to: event.to,
          cc: event.cc,
          replyTo: event.replyTo,
        },
      },
      content,
      partial,
      ...(event.raw ? { raw: event.raw } : {}),
    }),
    { source: SOURCE, detailType: DETAIL_TYPE_MESSAGE },
  );
}

/** The fixture's hand-written expectations, on the delivered event (a body cut to fit is checked by the pipeline comparison instead). */
function expectFixtureFields(fixture: FixtureMessage, detail: MessageReceivedDetail): void {
  const e = fixture.expected;
  const name = fixture.name;
  if (e.subject !== undefined) expect(detail.subject, name).toBe(e.subject);
  if (e.from !== undefined) expect(detail.from, name).toEqual(e.from);
  if (e.date !== undefined) expect(detail.date, name).toBe(e.date);
  if (e.attachments !== undefined)
    expect(detail.originalSizes?.attachments ?? detail.attachments.length, name).toBe(e.attachments);
  if (e.textIncludes !== undefined && detail.originalSizes?.text === undefined)
    expect(detail.text, name).toContain(e.textIncludes);
  if (e.htmlIncludes !== undefined && detail.originalSizes?.html === undefined)
    expect(detail.html, name).toContain(e.htmlIncludes);
  expect(detail.parseError !== undefined, `${name}: parseError`).toBe(e.parseError ?? false);
}

const entryBytes = (detail: MessageReceivedDetail) =>
  eventEntrySize({ Source: SOURCE, DetailType: DETAIL_TYPE_MESSAGE, Detail: JSON.stringify(detail) });

/** Corpus messages whose decoding was cross-checked with Python's `email` package (policy=default). */
const CORPUS_EXPECTED: Record<
  string,
  Partial<Pick<MessageReceivedDetail, 'subject' | 'from' | 'date'>> & { text?: string; attachments?: string[] }
> = {
  'rfc2822/example01.eml': {
    subject: 'Saying Hello',
    from: [{ name: 'John Doe', address: 'jdoe@machine.example' }],
    date: '1997-11-21T15:55:06.000Z',
  },
  'rfc6532/utf8_headers.eml': {
    subject: 'Säying Hello',
    from: [{ name: 'Jöhn Doe', address: 'jdöe@mächine.example' }],
    date: null,
  },
  'multi_charset/japanese_iso_2022.eml': { subject: 'まみむめも', text: 'すみません。' },
  'multi_charset/japanese_shift_jis.eml': { subject: 'test', text: 'あいうえお' },
  'multi_charset/ks_c_5601-1987.eml': { text: '스티해' },
  'plain_emails/raw_email.eml': { subject: 'NOTE: 한국말로 하는 것', text: '대부분의 마찬가지로' },
  'plain_emails/basic_email_lf.eml': { subject: 'Testing 123', text: 'Hope it works well!' },
  'mime_emails/two_from_in_message.eml': { from: [{ name: 'Tester 1', address: 'tester1@test.com' }] },
  'attachment_emails/attachment_nonascii_filename.eml': { attachments: ['ciële.txt'] },
  'attachment_emails/attachment_with_quoted_filename.eml': {
    subject: 'Eelanalüüsi päring',
    attachments: ['Eelanalüüsi päring.jpg'],
  },
  'multipart_report_emails/report_530.eml': { subject: 'Returned mail: see transcript for details' },
};

describe('content: the mail-gem corpus through Dovecot, the handler, EventBridge and SQS', () => {
  it('every message the server stores becomes one valid event with the expected fields; the checkpoint passes all', async () => {
    const started = performance.now();
    const CORPUS = corpusDir();
    const files = corpusFiles(CORPUS).sort();
    expect(files.length).toBeGreaterThan(90);
    const world = await World.create({ startAt: 'all' });

    // Dovecot refuses to store a zero-byte message ("NO Can't save a zero byte message"), so no mailbox can hold
    // one and there is nothing to poll. Asserted, so that a server which accepts it makes this test include it.
    // Nothing else is changed: bare-LF files are appended as they are (the server serves them with CRLF).
    const rejected: string[] = [];
    const stored: { file: string; bytes: Buffer }[] = [];
    for (const file of files) {
      const bytes = readFileSync(file);
      if (bytes.length === 0) {
        await expect(world.imap.appendMessage(world.user, world.folder, bytes)).rejects.toThrow(/zero byte message/);
        rejected.push(file.slice(CORPUS.length + 1));
      } else {
        stored.push({ file: file.slice(CORPUS.length + 1), bytes });
      }
    }
    expect(rejected).toEqual(['sample_output_multipart']);
    const uids = await world.imap.appendMany(
      world.user,
      world.folder,
      stored.map((s) => s.bytes),
    );

    expect(await world.invoke({}, 120_000)).toEqual({ outcome: 'published', published: stored.length });
    const details = await receiveValid(world, uids);
    expect((await world.checkpoint())?.lastUid).toBe(uids.at(-1));

    let crlfServed = 0;
    let largest = { file: '', bytes: 0 };
    for (const [i, { file, bytes }] of stored.entries()) {
      const detail = details.get(uids[i]!)!;
      if (entryBytes(detail) > largest.bytes) largest = { file, bytes: entryBytes(detail) };
      const served = asServed(bytes);
      if (served.length !== bytes.length) crlfServed++;
      expect(detail.size, file).toBe(served.length);
      expect(detail.truncated, file).toBe(false);
      expect(detail, file).toEqual(await pipelineDetail(served, detail));
      const want = CORPUS_EXPECTED[file];
      if (want) {
        const { text, attachments, ...fields } = want;
        expect(detail, file).toMatchObject(fields);
        if (text !== undefined) expect(detail.text, file).toContain(text);
        if (attachments !== undefined)
          expect(
            detail.attachments.map((a) => a.filename),
            file,
          ).toEqual(attachments);
      }
    }
    expect(crlfServed).toBe(6); // the files with bare LF line ends
    console.log(
      `[content] mail-gem: ${stored.length} messages published, ${rejected.length} refused by Dovecot (${rejected.join(', ')}); ` +
        `largest entry ${largest.bytes} bytes (${largest.file}); ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
  }, 120_000);
});

describe('content: the fixture messages', () => {
  it('every fixture and the 20 MB attachment (over the download bound) become valid events with the expected fields', async () => {
    const started = performance.now();
    const fixtures = [...buildFixtureMessages(), buildTwentyMegabyteAttachmentMessage()];
    const world = await World.create({ startAt: 'all' });
    const uids = await world.imap.appendMany(
      world.user,
      world.folder,
      fixtures.map((f) => Buffer.from(f.bytes)),
    );

    expect(await world.invoke({}, 120_000)).toEqual({ outcome: 'published', published: fixtures.length });
    const details = await receiveValid(world, uids);
    expect((await world.checkpoint())?.lastUid).toBe(uids.at(-1));

    let largest = { name: '', bytes: 0 };
    for (const [i, fixture] of fixtures.entries()) {
      const detail = details.get(uids[i]!)!;
      if (entryBytes(detail) > largest.bytes) largest = { name: fixture.name, bytes: entryBytes(detail) };
      const served = asServed(fixture.bytes);
      expect(served.length, `${fixture.name}: fixtures are CRLF throughout`).toBe(fixture.bytes.length);
      expect(detail.size, fixture.name).toBe(served.length);
      expect(detail.raw, fixture.name).toBeUndefined();
      expectFixtureFields(fixture, detail);
      expect(detail, fixture.name).toEqual(await pipelineDetail(served, detail));
    }
    const truncated = fixtures.filter((_, i) => details.get(uids[i]!)!.truncated).map((f) => f.name);
    expect(truncated.sort()).toEqual(
      [
        'five-thousand-recipients',
        'huge-multibyte-html-and-text',
        'huge-multibyte-text',
        'many-attachments',
        'twenty-megabyte-attachment',
      ].sort(),
    );

    // Over the download bound, raw storage off: headers and the parts that fit, truncated.
    const big = details.get(uids.at(-1)!)!;
    expect(big).toMatchObject({
      subject: 'twenty-megabyte-attachment',
      from: [{ name: 'Alice Example', address: 'alice@example.com' }],
      messageId: '<twenty-megabyte-attachment@fixtures.imap-event-source.test>',
      date: '2026-11-26T09:00:00.000Z',
      size: fixtures.at(-1)!.bytes.length,
      text: 'A big file is attached.\n',
      html: null,
      truncated: true,
    });
    expect(big.originalSizes).toBeUndefined(); // nothing was cut to fit: the download was cut
    // The attachment is listed with what the first 2 MiB held of it: base64 decodes 4 bytes to 3, so at most
    // 1.5 MiB of its 20 MiB. The pipeline comparison above pins it exactly to the first 2 MiB.
    expect(big.attachments).toHaveLength(1);
    expect(big.attachments[0]).toMatchObject({
      filename: 'big.bin',
      contentType: 'application/octet-stream',
      inline: false,
    });
    expect(big.attachments[0]!.size).toBeGreaterThan(DOWNLOAD_BOUND / 2);
    expect(big.attachments[0]!.size).toBeLessThanOrEqual((DOWNLOAD_BOUND * 3) / 4);
    console.log(
      `[content] fixtures: ${fixtures.length} published; largest entry ${largest.bytes} bytes (${largest.name}); ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
  }, 120_000);
});

describe('content: malformed input never blocks the checkpoint', () => {
  it('a poison message in the middle of a batch yields an event with parseError; the messages behind it are delivered', async () => {
    const deep = buildFixtureMessages().find((f) => f.name === 'too-deeply-nested')!;
    const header =
      'From: Mallory <m@example.com>\r\nTo: support@example.org\r\nSubject: hostile\r\nDate: Thu, 26 Nov 2026 10:00:00 +0100\r\n';
    const hostile: { name: string; bytes: Buffer }[] = [
      { name: 'too-deeply-nested (parser rejects it)', bytes: Buffer.from(deep.bytes) },
      {
        name: 'random binary (NUL bytes included), no header block',
        bytes: Buffer.from(pseudoRandomBytes(50_000, 11)),
      },
      {
        name: 'a 3 MB header line (beyond the download bound)',
        bytes: Buffer.from(`${header}X-Junk: ${'a'.repeat(3_000_000)}\r\n\r\nbody\r\n`),
      },
      {
        name: 'multipart with an empty boundary',
        bytes: Buffer.from(`${header}Content-Type: multipart/mixed; boundary=""\r\n\r\n--\r\nx\r\n----\r\n`),
      },
      {
        name: 'base64 body that is not base64',
        bytes: Buffer.from(
          `${header}Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n${'!%&'.repeat(10_000)}\r\n`,
        ),
      },
    ];
    const good = (i: number) => buildMessage({ subject: `Good ${i}`, body: `Good message ${i}\n` });
    // One batch of 10: 2 good, 5 hostile, 3 good; the first poison sits in the middle.
    const items = [good(1), good(2), ...hostile.map((h) => h.bytes), good(3), good(4), good(5)];
    const world = await World.create({ startAt: 'now' });
    await world.invoke();
    const uids = await world.imap.appendMany(world.user, world.folder, items);

    expect(await world.invoke()).toEqual({ outcome: 'published', published: items.length });
    const details = await receiveValid(world, uids);
    expect((await world.checkpoint())?.lastUid).toBe(uids.at(-1));

    const poison = details.get(uids[2]!)!;
    expect(poison.parseError).toMatch(/nesting depth/);
    expect(poison).toMatchObject({
      subject: 'too-deeply-nested',
      from: [{ name: 'Alice Example', address: 'alice@example.com' }],
      text: null,
      attachments: [],
    });
    for (const [i, h] of hostile.entries()) {
      const detail = details.get(uids[2 + i]!)!;
      expect(detail, h.name).toEqual(await pipelineDetail(asServed(h.bytes), detail));
    }
    expect(details.get(uids[4]!)!.truncated).toBe(true); // the 3 MB header: cut at the download bound
    expect([0, 1, 7, 8, 9].map((i) => details.get(uids[i]!)!.subject)).toEqual([
      'Good 1',
      'Good 2',
      'Good 3',
      'Good 4',
      'Good 5',
    ]);
    expect([0, 1, 7, 8, 9].every((i) => details.get(uids[i]!)!.parseError === undefined)).toBe(true);

    // Nothing is stuck: the next poll has nothing to do.
    expect(await world.invoke()).toEqual({ outcome: 'idle', published: 0 });
  }, 60_000);
});
