import { readFileSync } from 'node:fs';
import { addressParser } from 'postal-mime';
import { describe, expect, it } from 'vitest';
import {
  cutAtLine,
  MAX_PARSE_LINES,
  parseMailDate,
  parseMessageContent,
  repairC1,
  simpleAddressList,
} from '../../functions/poller/core/message-content.js';
import { corpusDir, corpusFiles } from '../support/corpus.js';
import {
  buildFiftyMegabyteMessage,
  buildFixtureMessages,
  buildTwentyMegabyteAttachmentMessage,
  pseudoRandomBytes,
} from '../support/fixture-messages.js';

const CRLF = '\r\n';
const parse = (source: string | Uint8Array, partial = false) =>
  parseMessageContent(typeof source === 'string' ? Buffer.from(source, 'utf8') : source, { partial });
const withHeaders = (lines: string[], body = 'body') => `${lines.join(CRLF)}${CRLF}${CRLF}${body}${CRLF}`;

describe('parseMessageContent: fixtures', () => {
  for (const fixture of buildFixtureMessages()) {
    it(`parses ${fixture.name}`, async () => {
      const content = await parseMessageContent(fixture.bytes, { partial: false });
      const e = fixture.expected;
      if (e.subject !== undefined) expect(content.subject).toBe(e.subject);
      if (e.from !== undefined) expect(content.from).toEqual(e.from);
      if (e.date !== undefined) expect(content.date).toBe(e.date);
      if (e.attachments !== undefined) expect(content.attachments).toHaveLength(e.attachments);
      if (e.textIncludes !== undefined) expect(content.text).toContain(e.textIncludes);
      if (e.htmlIncludes !== undefined) expect(content.html).toContain(e.htmlIncludes);
      expect(content.parseError !== undefined).toBe(e.parseError ?? false);
      expect(content.partial).toBe(false);
      for (const a of content.attachments)
        expect(Object.keys(a).sort()).toEqual(['contentId', 'contentType', 'filename', 'inline', 'size']);
    });
  }
});

describe('parseMessageContent: header fields', () => {
  it.each([
    ['ISO-8859-1 Q', '=?ISO-8859-1?Q?Gr=FC=DFe_aus_K=F6ln?=', 'Grüße aus Köln'],
    ['ISO-8859-1 B', '=?iso-8859-1?b?R3L832UgYXVzIEv2bG4=?=', 'Grüße aus Köln'],
    ['Windows-1252 Q (0x80-0x9F)', '=?windows-1252?Q?=80_=93Zitat=94_=96_=85_=99?=', '€ “Zitat” – … ™'],
    ['Windows-1252 B', '=?Windows-1252?B?gCCTWml0YXSU?=', '€ “Zitat”'],
    ['ISO-2022-JP B', '=?ISO-2022-JP?B?GyRCJF4kXyRgJGEkYhsoQg==?=', 'まみむめも'],
    ['UTF-8 Q', '=?UTF-8?Q?Gr=C3=BC=C3=9Fe_=F0=9F=98=80?=', 'Grüße 😀'],
    ['UTF-8 B', '=?utf-8?B?5pel5pys6Kqe44Gu5Lu25ZCN?=', '日本語の件名'],
    ['adjacent words, folded', '=?UTF-8?B?R3LDvA==?=\r\n =?UTF-8?B?w59l?= und mehr', 'Grüße und mehr'],
    ['unknown charset falls back to windows-1252', '=?x-unknown?Q?Caf=E9?=', 'Café'],
    ['plain text', 'Just a subject', 'Just a subject'],
  ])('decodes a %s subject', async (_name, raw, expected) => {
    expect((await parse(withHeaders([`Subject: ${raw}`]))).subject).toBe(expected);
  });

  it.each([
    ['ISO-8859-1', '=?ISO-8859-1?Q?J=FCrgen_M=FCller?= <jm@example.de>', 'Jürgen Müller'],
    ['Windows-1252', '=?windows-1252?Q?Caf=E9_=80?= <cafe@example.fr>', 'Café €'],
    ['ISO-2022-JP', '=?ISO-2022-JP?B?GyRCRnxLXDhsGyhC?= <nihongo@example.jp>', '日本語'],
    ['UTF-8 B', '=?UTF-8?B?Wm/Dqw==?= <zoe@example.com>', 'Zoë'],
    ['quoted encoded word', '"=?utf-8?Q?J=C3=BCrgen?=" <j@example.com>', 'Jürgen'],
  ])('decodes %s display names', async (_name, raw, expected) => {
    const [from] = (await parse(withHeaders([`From: ${raw}`]))).from;
    expect(from?.name).toBe(expected);
  });

  it('flattens groups, keeps all mailboxes of the first From header, and drops empty groups', async () => {
    const c = await parse(
      withHeaders([
        'From: a@example.com, "Doe, John" <jd@example.com>',
        'From: spoofed@evil.example',
        'To: Team: "Doe, Jane" <jane@example.com>, zoe@example.com;, bob@example.net',
        'To: second@example.com',
        'Cc: undisclosed-recipients:;',
        'Reply-To: Help <help@example.com>',
      ]),
    );
    expect(c.from).toEqual([
      { name: '', address: 'a@example.com' },
      { name: 'Doe, John', address: 'jd@example.com' },
    ]);
    expect(c.to.map((a) => a.address)).toEqual([
      'jane@example.com',
      'zoe@example.com',
      'bob@example.net',
      'second@example.com',
    ]);
    expect(c.cc).toEqual([]);
    expect(c.replyTo).toEqual([{ name: 'Help', address: 'help@example.com' }]);
  });

  it('gives null and empty lists for missing headers, and never invents values', async () => {
    const c = await parse('\r\nno headers at all\r\n');
    expect(c).toMatchObject({
      messageId: null,
      inReplyTo: null,
      references: [],
      subject: null,
      from: [],
      to: [],
      cc: [],
      replyTo: [],
      date: null,
    });
    expect(c.text).toContain('no headers at all');
    expect(c.html).toBeNull();
  });

  it('reads Message-ID, In-Reply-To and References as message-id tokens', async () => {
    const c = await parse(
      withHeaders([
        'Message-ID:  <id-1@example.com> ',
        "In-Reply-To: <parent@example.com> (Alice's message of Monday)",
        'References: <a@x>\r\n\t<b@x> <c@x>',
      ]),
    );
    expect(c.messageId).toBe('<id-1@example.com>');
    expect(c.inReplyTo).toBe('<parent@example.com>');
    expect(c.references).toEqual(['<a@x>', '<b@x>', '<c@x>']);
    const empty = await parse(withHeaders(['Message-ID:', 'In-Reply-To: ']));
    expect(empty.messageId).toBeNull();
    expect(empty.inReplyTo).toBeNull();
  });

  it('decodes raw 8-bit headers in the declared charset, else windows-1252', async () => {
    const latin1 = Buffer.from(withHeaders(['Subject: Gr\xfc\xdfe \x80', 'From: J\xfcrgen <j@example.de>']), 'latin1');
    const c = await parse(latin1);
    expect(c.subject).toBe('Grüße €');
    expect(c.from).toEqual([{ name: 'Jürgen', address: 'j@example.de' }]);

    const koi8 = Buffer.concat([
      Buffer.from('Subject: '),
      Buffer.from([0xf0, 0xd2, 0xc9, 0xd7, 0xc5, 0xd4]),
      Buffer.from('\r\nContent-Type: text/plain;\r\n charset="koi8-r"\r\n\r\nbody\r\n'),
    ]);
    expect((await parse(koi8)).subject).toBe('Привет');

    // valid UTF-8 (RFC 6532) stays UTF-8, also on lines next to 8-bit ones
    const mixed = Buffer.concat([
      Buffer.from('Subject: Säying 日本\r\nFrom: ', 'utf8'),
      Buffer.from('Z\xf6e <z@example.com>\r\n\r\nx', 'latin1'),
    ]);
    const m = await parse(mixed);
    expect(m.subject).toBe('Säying 日本');
    expect(m.from[0]?.name).toBe('Zöe');
  });
});

describe('simpleAddressList: the fast path of address headers', () => {
  /** The address header values (unfolded) of a message's top-level header block. */
  const addressHeaders = (bytes: Uint8Array): string[] => {
    const text = Buffer.from(bytes).toString('latin1');
    const end = text.search(/\r?\n\r?\n/);
    const block = (end < 0 ? text : text.slice(0, end)).replace(/\r?\n[ \t]/g, ' ');
    return block
      .split(/\r?\n/)
      .map((line) => /^(?:from|to|cc|bcc|reply-to|sender)\s*:(.*)$/i.exec(line)?.[1])
      .filter((v): v is string => v !== undefined);
  };
  const expected = (value: string) =>
    addressParser(value).map((a) => ('group' in a && a.group ? a : { name: a.name, address: a.address }));

  it('answers what addressParser answers wherever it answers: the corpus, the fixtures, generated lists', () => {
    const values = [
      ...corpusFiles(corpusDir()).flatMap((file) => addressHeaders(readFileSync(file))),
      ...buildFixtureMessages().flatMap((f) => addressHeaders(f.bytes)),
    ];
    const names = ['', 'Anna', '=?UTF-8?Q?Bj=C3=B6rn_Wei=C3=9F?=', ' Two  Spaces ', 'a=?b', 'x?=y', '=?utf-8?B?YUBi?='];
    const addrs = ['a@b.example', 'a.b+c@d', '=?x?=@y', 'weird=@x', 'a@b@c', 'a@', '@b', 'a b@c'];
    const mailboxes = names.flatMap((n) =>
      addrs.flatMap((a) => [`${n} <${a}>`, a, `<${a}>`, ` ${a} `, `${n}<${a}>  `, `${a} <${a}>`, `${n} <${a}> x`]),
    );
    for (const [i, m] of mailboxes.entries()) values.push(m, `${m}, ${mailboxes[(i * 7) % mailboxes.length]}`, `${m};`);
    values.push('"Q" <a@b>', '(c) a@b', 'a@b (c)', 'Grp: a@b;', 'Grp:;', ',,', ' ', 'x <a@b', 'a\tb <a@b>', 'Ä <ä@b>');
    let fast = 0;
    for (const value of values) {
      const got = simpleAddressList(value);
      if (got === undefined) continue;
      fast++;
      expect(got, JSON.stringify(value)).toEqual(expected(value));
    }
    // The fast path carries most real headers (else it buys nothing), and leaves the odd ones to addressParser.
    expect(fast).toBeGreaterThan(values.length / 3);
    expect(fast).toBeLessThan(values.length);
  });

  it('leaves quotes, comments, groups and malformed addresses to addressParser', () => {
    for (const value of ['"Q" <a@b>', '(c) a@b', 'Grp: a@b;', 'x <a@b', 'a@b@c', 'a@b <a@b>', 'A <a@b> x'])
      expect(simpleAddressList(value), value).toBeUndefined();
  });
});

describe('parseMailDate', () => {
  it.each([
    ['Thu, 26 Nov 2026 10:00:00 +0100', '2026-11-26T09:00:00.000Z'],
    ['26 Nov 2026 10:00 -0330', '2026-11-26T13:30:00.000Z'],
    ['Tue, 1 Jul 2003 10:52:37 +0200 (CEST)', '2003-07-01T08:52:37.000Z'],
    ['Fri, 21 Nov 97 09(comment):   55  :  06 -0600', '1997-11-21T15:55:06.000Z'],
    ['Mon, 2 Jan 06 15:04:05 PST', '2006-01-02T23:04:05.000Z'],
    ['Mon, 2 Jan 2006 15:04:05 GMT', '2006-01-02T15:04:05.000Z'],
    ['Mon, 2 January 2006 15:04:05 +01:00', '2006-01-02T14:04:05.000Z'],
    ['Mon, 2 Jan 2006 15:04:05', '2006-01-02T15:04:05.000Z'], // no zone: UTC, whatever the host's TZ
    ['Sat, 31 Dec 2016 23:59:60 +0000', '2016-12-31T23:59:59.000Z'], // leap second
    ['2026-11-26T10:00:00+01:00', '2026-11-26T09:00:00.000Z'],
    ['Mon, 30 Jun 3609 15:33:50 +0600', '3609-06-30T09:33:50.000Z'],
  ])('parses %s', (raw, iso) => expect(parseMailDate(raw)).toBe(iso));

  it.each([
    [''],
    ['yesterday'],
    ['<HR>'],
    ['Sat, 31 Feb 2026 10:00:00 +0000'],
    ['Wed, 15 Dec 2010    59:10 -0500'],
    ['Tue, 12 Oct 2010 16:21:05 H0500'],
    ['Pn, 29 paX 2007 21:13:00 +0100'],
    ['2026-11-26'],
    ['1700000000'],
  ])('gives null for %j', (raw) => expect(parseMailDate(raw)).toBeNull());

  it('reads a date written with comments, folding and spaced colons as its plain form (which skips that clean-up)', () => {
    const dates = [
      'Thu, 26 Nov 2026 10:00:00 +0100',
      '26 Nov 2026 10:00 -0330',
      'Mon, 2 Jan 06 15:04:05 PST',
      '2026-11-26T10:00:00+01:00',
      'Sat, 31 Feb 2026 10:00:00 +0000',
      'Wed, 15 Dec 2010 59:10 -0500',
    ];
    for (const plain of dates) {
      const spaced = ` (sent) ${plain.replace(/ /g, '\t \r\n ').replace(/:/g, ' : ')}  (UTC) `;
      expect(parseMailDate(spaced)).toBe(parseMailDate(plain));
    }
  });
});

describe('repairC1', () => {
  it('maps C1 characters to windows-1252 as the WHATWG decoder does', () => {
    const decoded = repairC1(
      new TextDecoder('windows-1252').decode(Uint8Array.from({ length: 32 }, (_, i) => 0x80 + i)),
    );
    expect(decoded).toBe('€\u0081‚ƒ„…†‡ˆ‰Š‹Œ\u008DŽ\u008F\u0090‘’“”•–—˜™š›œ\u009DžŸ');
    expect(repairC1('plain ASCII and ü')).toBe('plain ASCII and ü');
  });
});

describe('parseMessageContent: robustness', () => {
  it('never throws, whatever the bytes', async () => {
    const inputs: Uint8Array[] = [
      new Uint8Array(0),
      Buffer.from('\r\n\r\n'),
      Buffer.from('no colon here\nand no blank line'),
      pseudoRandomBytes(50_000, 1),
      Buffer.from('Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n--\r\n'),
      Buffer.from(
        'Content-Type: multipart/mixed; boundary="x"\r\n\r\n--x\r\nContent-Type: message/rfc822\r\n\r\n--x--',
      ),
      Buffer.from('Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!'),
      Buffer.from(
        'Content-Transfer-Encoding: quoted-printable\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n=E2=82=\r\n=ZZ',
      ),
    ];
    for (const bytes of inputs) {
      const c = await parseMessageContent(bytes, { partial: false });
      expect(Array.isArray(c.attachments)).toBe(true);
    }
  });

  it('reads a view into a larger buffer without its neighbours', async () => {
    const backing = Buffer.from(`GARBAGE${withHeaders(['Subject: inside'])}TRAILING`);
    const c = await parseMessageContent(backing.subarray(7, backing.length - 8), { partial: false });
    expect(c.subject).toBe('inside');
  });

  it('falls back to a header scan with a short, secret-free parseError when the parser gives up', async () => {
    const big = 'x'.repeat(2 * 1024 * 1024 + 10);
    const c = await parse(
      withHeaders(['Subject: still readable', 'From: a@example.com', `X-Huge: ${big}`], 'secret body text'),
    );
    expect(c.parseError).toBe('MIME structure rejected: Maximum header size of 2097152 bytes exceeded');
    expect(c.subject).toBe('still readable');
    expect(c.from).toEqual([{ name: '', address: 'a@example.com' }]);
    expect(c.text).toBeNull();

    const deep = buildFixtureMessages().find((f) => f.name === 'too-deeply-nested')!;
    const d = await parseMessageContent(deep.bytes, { partial: false });
    expect(d.parseError).toMatch(/^MIME structure rejected: Maximum MIME nesting depth/);
    expect(d.parseError!.length).toBeLessThan(100);
  });

  it('marks inline parts: disposition inline, or a Content-ID the HTML references', async () => {
    const c = await parse(
      withHeaders(
        ['Content-Type: multipart/mixed; boundary="b"'],
        [
          '--b',
          'Content-Type: text/html',
          '',
          '<img src="CID:Logo@X">',
          '--b',
          'Content-Type: image/png',
          'Content-ID: <logo@x>',
          'Content-Transfer-Encoding: base64',
          '',
          'iVBORw0KGgo=',
          '--b',
          'Content-Type: image/gif',
          'Content-Disposition: inline',
          '',
          'GIF89a',
          '--b',
          'Content-Type: image/jpeg',
          'Content-ID: <unused@x>',
          '',
          'jpeg',
          '--b--',
        ].join(CRLF),
      ),
    );
    expect(c.attachments.map((a) => [a.contentType, a.inline, a.contentId])).toEqual([
      ['image/png', true, '<logo@x>'],
      ['image/gif', true, null],
      ['image/jpeg', false, '<unused@x>'],
    ]);
    expect(c.attachments[0]!.size).toBe(8);
  });
});

describe('parseMessageContent: partial downloads', () => {
  it('parses a message cut in the middle of an attachment', async () => {
    const fixture = buildFixtureMessages().find((f) => f.name === 'attachments')!;
    const cut = fixture.bytes.subarray(0, Math.floor(fixture.bytes.length * 0.8));
    const c = await parseMessageContent(cut, { partial: true });
    expect(c.partial).toBe(true);
    expect(c.subject).toBe('attachments');
    expect(c.text).toContain('See attached.');
    expect(c.attachments.length).toBeGreaterThan(0);
  });

  it('drops the broken character at a cut inside a multibyte sequence', async () => {
    const bytes = Buffer.from(withHeaders(['Content-Type: text/plain; charset=utf-8'], 'Grüße 日本'));
    const cut = bytes.subarray(0, bytes.indexOf(Buffer.from('本')) + 1);
    const c = await parseMessageContent(cut, { partial: true });
    expect(c.text).toBe('Grüße 日');
  });

  it('parses a message cut inside its header block', async () => {
    const bytes = Buffer.from(withHeaders(['Subject: complete', 'From: a@example.com', 'To: b@example.com']));
    const c = await parseMessageContent(bytes.subarray(0, bytes.indexOf('To:') + 5), { partial: true });
    expect(c.subject).toBe('complete');
    expect(c.from).toHaveLength(1);
  });
});

describe('parseMessageContent: big messages', () => {
  it('parses a 20 MiB attachment message only up to MAX_PARSE_LINES, as a cut download', async () => {
    const fixture = buildTwentyMegabyteAttachmentMessage();
    const c = await parseMessageContent(fixture.bytes, { partial: false });
    expect(c.partial).toBe(true);
    expect(c.text).toContain('A big file');
    expect(c.attachments).toHaveLength(1);
    expect(c.attachments[0]).toMatchObject({
      filename: 'big.bin',
      contentType: 'application/octet-stream',
      inline: false,
      contentId: null,
    });
    // A lower bound: the lines after the cut are not parsed.
    expect(c.attachments[0]!.size).toBeGreaterThan(1024 * 1024);
    expect(c.attachments[0]!.size).toBeLessThan(20 * 1024 * 1024);
  }, 60_000);

  it('parses the first 5 MiB of a 50 MiB message as a partial download', async () => {
    const fixture = buildFiftyMegabyteMessage();
    expect(fixture.bytes.length).toBeGreaterThanOrEqual(50 * 1024 * 1024);
    const head = await parseMessageContent(fixture.bytes.subarray(0, 5 * 1024 * 1024), { partial: true });
    expect(head).toMatchObject({ subject: 'fifty-megabyte-message', partial: true, text: 'A very big message.\n' });
    expect(head.attachments[0]!.size).toBeLessThan(5 * 1024 * 1024);
  }, 60_000);

  it('bounds the parser work by lines: 2 MiB of empty lines or deeply nested forwards are cut, not parsed for seconds', async () => {
    const head = 'From: a@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\n';
    const blank = Buffer.from(`${head}Content-Type: text/plain\r\n\r\n${'\r\n'.repeat(1024 * 1024)}`);
    expect(cutAtLine(blank, MAX_PARSE_LINES).length).toBeLessThan(blank.length);
    const c = await parseMessageContent(blank, { partial: false });
    expect(c).toMatchObject({ subject: 'x', partial: true });
    const nested = Buffer.from(`${`${head}Content-Type: message/rfc822\r\n\r\n`.repeat(20_000)}body\r\n`);
    const n = await parseMessageContent(nested, { partial: false });
    expect(n).toMatchObject({ subject: 'x', partial: true });
    expect(n.attachments.length).toBeLessThanOrEqual(2); // the forward inside the forward stays an attachment
  }, 60_000);

  it('cutAtLine keeps short inputs as they are and cuts after the n-th line feed', () => {
    const bytes = Buffer.from('a\nb\nc\nd');
    expect(cutAtLine(bytes, 10)).toBe(bytes);
    expect(Buffer.from(cutAtLine(bytes, 2)).toString()).toBe('a\nb\n');
    expect(cutAtLine(Buffer.from('a\nb\n'), 2).length).toBe(4);
  });
});
