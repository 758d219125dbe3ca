/**
 * Raw-message storage (issue #5), end to end: the real Lambda handler with RAW_BUCKET set streams each original
 * RFC 822 message from Dovecot to an S3 bucket in moto_server, and the event carries `raw: {bucket, key, size}`.
 * The stored object must be byte-identical to what was appended (SHA-256), its key deterministic per
 * (mailbox, UIDVALIDITY, UID) so that a retry overwrites it instead of adding a copy, and a 50 MB message must be
 * streamed (multipart upload), never held whole.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { MessageReceivedDetail } from '../../functions/poller/core/event-detail.js';
import { eventEntrySize, MAX_ENTRY_BYTES } from '../../functions/poller/core/event-size.js';
import { DETAIL_TYPE_MESSAGE } from '../../functions/poller/core/types.js';
import { buildFiftyMegabyteMessage, buildFixtureMessages } from '../support/fixture-messages.js';
import { buildMessage } from '../support/messages.js';
import { uniqueName } from '../support/moto.js';
import { validateMessageDetail } from '../support/schemas.js';
import { World } from './world.js';

const SOURCE = 'imap-event-source';
const validateDetail = validateMessageDetail;

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** A world whose handler stores raw messages in a fresh bucket (versioned, so every write of a key is counted). */
async function rawWorld(opts: { createBucket?: boolean } = {}): Promise<{ world: World; bucket: string }> {
  const bucket = uniqueName('raw');
  const world = await World.create({ startAt: 'now', env: { RAW_BUCKET: bucket } });
  if (opts.createBucket ?? true) await world.aws.createBucket(bucket, { versioning: true });
  await world.invoke(); // baseline
  return { world, bucket };
}

async function receive(world: World, count: number, timeoutMs = 30_000): Promise<MessageReceivedDetail[]> {
  const events = await world.aws.receiveEvents<MessageReceivedDetail>(world.bus.queueUrl, {
    expected: count,
    timeoutMs,
    quietMs: 500,
  });
  for (const e of events) {
    expect(e['detail-type']).toBe(DETAIL_TYPE_MESSAGE);
    expect(validateDetail(e.detail) ? [] : validateDetail.errors).toEqual([]);
    expect(
      eventEntrySize({ Source: SOURCE, DetailType: DETAIL_TYPE_MESSAGE, Detail: JSON.stringify(e.detail) }),
    ).toBeLessThanOrEqual(MAX_ENTRY_BYTES);
  }
  expect(events).toHaveLength(count);
  return events.map((e) => e.detail).sort((a, b) => a.uid - b.uid);
}

/** The event's `raw` points at an object byte-identical to `appended`, under the deterministic key. */
async function expectStored(
  world: World,
  bucket: string,
  detail: MessageReceivedDetail,
  appended: Uint8Array,
): Promise<void> {
  const key = `${world.mailboxId}/${detail.uidValidity}/${detail.uid}.eml`;
  expect(detail.raw).toEqual({ bucket, key, size: appended.length });
  expect(await world.aws.headObject(bucket, key)).toMatchObject({
    size: appended.length,
    contentType: 'message/rfc822',
  });
  expect(await world.aws.objectDigest(bucket, key)).toEqual({ size: appended.length, sha256: sha256(appended) });
}

describe('raw storage: the original message in S3, referenced by the event', () => {
  it('stores every message byte for byte (8-bit headers, non-UTF-8 bodies, attachments) under its deterministic key', async () => {
    const names = [
      'plain-utf8',
      'attachments',
      'windows-1252-body',
      'raw-8bit-latin1-headers',
      'iso-2022-jp',
      'too-deeply-nested',
      'huge-multibyte-text',
    ];
    const fixtures = buildFixtureMessages().filter((f) => names.includes(f.name));
    expect(fixtures).toHaveLength(names.length);
    const { world, bucket } = await rawWorld();
    const uids = await world.imap.appendMany(
      world.user,
      world.folder,
      fixtures.map((f) => Buffer.from(f.bytes)),
    );

    expect(await world.invoke()).toEqual({ outcome: 'published', published: fixtures.length });
    const details = await receive(world, fixtures.length);
    expect(details.map((d) => d.uid)).toEqual(uids);
    for (const [i, fixture] of fixtures.entries()) await expectStored(world, bucket, details[i]!, fixture.bytes);
    // The event itself is unchanged by raw storage: e.g. the huge body is still cut to fit, the poison still reported.
    expect(details[names.indexOf('huge-multibyte-text')]!.truncated).toBe(true);
    expect(details[names.indexOf('too-deeply-nested')]!.parseError).toBeDefined();
    expect((await world.aws.listObjects(bucket)).map((o) => o.key).sort()).toEqual(
      details.map((d) => d.raw!.key).sort(),
    );
    expect((await world.checkpoint())?.lastUid).toBe(uids.at(-1));
  }, 60_000);

  it('a retry after a failed publish overwrites the same keys: one object per message, no duplicates', async () => {
    const { world, bucket } = await rawWorld();
    const messages = [1, 2, 3].map((i) => buildMessage({ subject: `Retry ${i}`, body: `Grüße ${i}\n` }));
    const uids = await world.imap.appendMany(world.user, world.folder, messages);

    // The raw messages are stored, then PutEvents fails (no such bus): nothing published, checkpoint unchanged.
    const before = await world.checkpoint();
    const error = await world.invokeFailing({ EVENT_BUS_NAME: uniqueName('missing-bus') });
    expect(error.message).toMatch(/EVENT_PUBLISH_FAILED/);
    expect(await world.checkpoint()).toEqual(before);
    const keys = uids.map((uid) => `${world.mailboxId}/${before!.uidValidity}/${uid}.eml`);
    expect((await world.aws.listObjectVersions(bucket)).map((v) => v.key).sort()).toEqual([...keys].sort());

    // The retry publishes the same UIDs and writes the same keys again.
    expect(await world.invoke()).toEqual({ outcome: 'published', published: 3 });
    const details = await receive(world, 3);
    expect(details.map((d) => d.raw!.key)).toEqual(keys);
    expect((await world.aws.listObjects(bucket)).map((o) => o.key).sort()).toEqual([...keys].sort()); // one object per message
    const versions = await world.aws.listObjectVersions(bucket);
    for (const key of keys)
      expect(
        versions.filter((v) => v.key === key),
        key,
      ).toHaveLength(2); // overwritten, not copied elsewhere
    expect(versions).toHaveLength(6);
    for (const [i, d] of details.entries()) await expectStored(world, bucket, d, messages[i]!);
    expect((await world.checkpoint())?.lastUid).toBe(uids.at(-1));
  }, 60_000);

  it('a missing bucket fails the run clearly without publishing; once it exists the next run stores and publishes', async () => {
    const { world, bucket } = await rawWorld({ createBucket: false });
    const [uid] = await world.append(1);
    const before = await world.checkpoint();
    const started = Date.now();
    const error = await world.invokeFailing();
    expect(error.message).toMatch(/RAW_STORAGE_FAILED.*bucket/);
    expect(Date.now() - started).toBeLessThan(15_000); // fails, does not hang on the abandoned download
    expect(await world.checkpoint()).toEqual(before);
    expect(await world.aws.collectUnexpected(world.bus.queueUrl, 500)).toEqual([]);

    await world.aws.createBucket(bucket);
    expect(await world.invoke()).toEqual({ outcome: 'published', published: 1 });
    const [detail] = await receive(world, 1);
    expect(detail!.uid).toBe(uid);
    expect(detail!.raw?.key).toBe(`${world.mailboxId}/${before!.uidValidity}/${uid}.eml`);
  }, 60_000);

  it('a 50 MB message is streamed to S3 in parts and stored byte for byte; the event is built from the first 2 MiB', async () => {
    const fixture = buildFiftyMegabyteMessage();
    const appended = Buffer.from(fixture.bytes);
    const digest = sha256(appended);
    const { world, bucket } = await rawWorld();
    const [uid] = await world.imap.appendMany(world.user, world.folder, [appended]);

    const started = performance.now();
    expect(await world.invoke({}, 120_000)).toEqual({ outcome: 'published', published: 1 });
    const seconds = (performance.now() - started) / 1000;
    const [detail] = await receive(world, 1);
    expect(detail).toMatchObject({
      uid,
      subject: 'fifty-megabyte-message',
      size: appended.length,
      text: 'A very big message.\n',
      truncated: true,
      raw: { bucket, key: `${world.mailboxId}/${detail!.uidValidity}/${uid}.eml`, size: appended.length },
    });
    expect(detail!.attachments).toHaveLength(1);
    expect(detail!.attachments[0]!.size).toBeLessThanOrEqual(1.5 * 1024 * 1024);

    const head = await world.aws.headObject(bucket, detail!.raw!.key);
    // A multipart upload (ETag "<md5>-<parts>") in 5 MiB parts: streamed, not one PUT of a buffered message.
    expect(head?.etag).toMatch(new RegExp(`-${Math.ceil(appended.length / (5 * 1024 * 1024))}"$`));
    expect(await world.aws.objectDigest(bucket, detail!.raw!.key)).toEqual({ size: appended.length, sha256: digest });
    expect((await world.checkpoint())?.lastUid).toBe(uid);
    console.log(
      `[raw-storage] 50 MB message (${appended.length} bytes): poll with raw storage took ${seconds.toFixed(1)} s`,
    );
  }, 180_000);
});
