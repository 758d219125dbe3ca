import { readFileSync } from 'node:fs';
import PostalMime from 'postal-mime';
import { describe, expect, it } from 'vitest';
import { businessMail } from '../../bench/business-mail.js';
import {
  fastDecodersInstalled,
  PassThroughDecoder,
  parseForContent,
  parseWithFastDecoders,
  QuotedPrintableDecoder,
} from '../../functions/poller/core/mime-decoders.js';
import { corpusFiles } from '../support/corpus.js';
import { buildFixtureMessages, pseudoRandomBytes } from '../support/fixture-messages.js';

// The options parseMessageContent uses, and the stock defaults.
const OPTIONS = [{ attachmentEncoding: 'arraybuffer', forceRfc822Attachments: true, maxNestingDepth: 50 }, {}] as const;

/** The parse result with binary contents as hex, for a deep comparison. */
function comparable(email: unknown): unknown {
  return JSON.parse(
    JSON.stringify(email, (_key, value) =>
      value instanceof ArrayBuffer ? { bytes: Buffer.from(value).toString('hex') } : value,
    ),
  );
}

/** `bytes` as a view in the middle of a larger buffer, between lines that would change the parse if read. */
function embedded(bytes: Uint8Array): Uint8Array {
  const before = enc('Subject: not this one\r\n--b\r\n');
  const after = enc('\r\n--b--\r\nX-Not: this\r\n');
  const all = new Uint8Array(before.length + bytes.length + after.length);
  all.set(before);
  all.set(bytes, before.length);
  all.set(after, before.length + bytes.length);
  return all.subarray(before.length, before.length + bytes.length);
}

async function expectSameAsStock(bytes: Uint8Array): Promise<void> {
  for (const options of OPTIONS) {
    const stock = await PostalMime.parse(bytes, options).then(comparable, (e: Error) => ({ error: e.message }));
    const fast = await parseWithFastDecoders(bytes, options).then(comparable, (e: Error) => ({ error: e.message }));
    expect(fast).toEqual(stock);
    // A view into a larger buffer (as imapflow hands sources over) is read within its bounds.
    const view = await parseWithFastDecoders(embedded(bytes), options).then(comparable, (e: Error) => ({
      error: e.message,
    }));
    expect(view).toEqual(stock);
    const content = await parseForContent(bytes, options).then(comparable, (e: Error) => ({ error: e.message }));
    const { headers, text, html, attachments, error } = stock as Record<string, unknown>;
    expect(content).toEqual(
      Object.fromEntries(
        Object.entries({ headers, text, html, attachments, error }).filter(([, v]) => v !== undefined),
      ),
    );
  }
}

const enc = (s: string) => new TextEncoder().encode(s);
const decode = (decoder: QuotedPrintableDecoder | PassThroughDecoder, lines: string[]) => {
  for (const line of lines) decoder.update(enc(line));
  return Buffer.from(decoder.finalize()).toString('latin1');
};

describe('postal-mime with the fast body decoders (and without the fields parseMessageContent does not read)', () => {
  it('is installed on this postal-mime (else parsing is stock, and slower)', () => {
    expect(fastDecodersInstalled).toBe(true);
  });

  it('gives the stock result for every message of the real-world corpus', async () => {
    const files = corpusFiles();
    expect(files.length).toBeGreaterThan(90);
    for (const file of files) await expectSameAsStock(readFileSync(file));
  });

  it('gives the stock result for the fixtures and the benchmark backlog', async () => {
    for (const fixture of buildFixtureMessages()) await expectSameAsStock(fixture.bytes);
    for (let i = 1; i <= 30; i++) await expectSameAsStock(businessMail(i));
  });

  it('gives the stock result for quoted-printable, base64 and 8bit edge cases', async () => {
    const part = (encoding: string, body: string) =>
      `Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: ${encoding}\r\n\r\n${body}\r\n`;
    const bodies = [
      part('quoted-printable', 'caf=C3=A9 =e2=82=ac soft=\r\nbreak =\r\n=3D=3d =ZZ =4 trailing =A\r\n='),
      part('quoted-printable', `${'x'.repeat(300_000)}=\r\n${'=C3=BC'.repeat(50_000)}`),
      part('Quoted-Printable', '=\r\n=\r\n\r\n\r\nend='),
      part('base64', 'Z3LDvMOfZQ==\r\nZ3LDvA==w59l\r\n!!bad$$\r\nQQ'),
      part('8bit', 'Grüße\r\n\r\nbare\rCR'),
      part('x-unknown', 'as is'),
      // Line ends as the parse loop cuts them: runs of CR before the LF dropped, a CR inside a line kept, bare LF.
      part('quoted-printable', 'soft=\r\r\nnext\r=41\r\r\n=4\r1 =\r\n\r\r\n\nlf only=3D\nend'),
      part('8bit', 'cr\r\r\r\nin\rside\n\r\n--\n'),
    ];
    for (const body of bodies) await expectSameAsStock(enc(`Subject: edge\r\n${body}`));
    const random = pseudoRandomBytes(200_000);
    const multipart = [
      'Content-Type: multipart/mixed; boundary="b"',
      '',
      '--b',
      part('quoted-printable', 'Hallo=20Welt=\r\n!'),
      '--b',
      'Content-Type: application/octet-stream; name="x.bin"',
      'Content-Transfer-Encoding: base64',
      '',
      Buffer.from(random).toString('base64').replace(/.{76}/g, '$&\r\n'),
      '--b--',
      '',
    ].join('\r\n');
    await expectSameAsStock(enc(multipart));
    // Boundary-like lines outside and inside a multipart, a preamble and an epilogue, a missing terminator.
    const nested = [
      'Content-Type: multipart/mixed; boundary="outer"',
      '',
      'preamble',
      '--not-a-boundary',
      '--outer',
      'Content-Type: multipart/alternative; boundary="inner"',
      '',
      '--inner',
      part('8bit', '--outer-but-longer\r\n--inner-- trailing text\r\n--'),
      '--inner  ',
      'Content-Type: text/html',
      '',
      '<p>--inner</p>',
      '--outer--',
      'epilogue',
      '--outer',
      'after the end',
    ].join('\r\n');
    await expectSameAsStock(enc(nested));
    await expectSameAsStock(enc(nested.slice(0, nested.indexOf('--outer--'))));
    // postal-mime's header size limit, counted across the whole message.
    await expectSameAsStock(enc(`${'X-Filler: 0123456789abcdef\r\n'.repeat(90_000)}\r\nbody`));
  });

  it('decodes quoted-printable and pass-through lines as postal-mime does', () => {
    expect(decode(new QuotedPrintableDecoder(), ['a=3Db=', 'c =ZZ=4', '='])).toBe('a=bc =ZZ=4\n');
    expect(decode(new QuotedPrintableDecoder(), [])).toBe('');
    expect(decode(new PassThroughDecoder(), ['a', '', 'b'])).toBe('a\n\nb\n');
  });
});
