import type { ImapFlow } from 'imapflow';
import { describe, expect, it } from 'vitest';
import { ImapFlowSession, imapFlowOptions, mapImapError } from '../../../functions/poller/adapters/imapflow-mailbox.js';
import type { MailboxSettings } from '../../../functions/poller/core/settings.js';
import {
  FolderNotFoundError,
  ImapAuthError,
  ImapConnectionError,
  ImapEventSourceError,
  ImapProtocolError,
  StartTlsUnavailableError,
  TlsCertificateError,
} from '../../../functions/poller/errors.js';
import { settings as fakeSettings } from '../fakes.js';

/** Regular-expression metacharacters: redaction must treat the password as text. */
const PASSWORD = 'pa$$w0rd-(secret)*';
const settings = fakeSettings({ password: PASSWORD });

/** An error shaped like the ones imapflow and Node's net/tls modules throw. */
function failure(props: Record<string, unknown>, message = 'failure'): Error {
  return Object.assign(new Error(message), props);
}

describe('mapImapError: TLS certificates', () => {
  it.each<[string, RegExp, RegExp]>([
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', /is signed by a certificate authority that is not trusted/, /caBundle/],
    ['UNABLE_TO_GET_ISSUER_CERT_LOCALLY', /is signed by a certificate authority that is not trusted/, /caBundle/],
    ['SELF_SIGNED_CERT_IN_CHAIN', /chains to a self-signed root/, /caBundle/],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', /is self-signed and not trusted/, /caBundle/],
    ['CERT_HAS_EXPIRED', /has expired/, /renew the server certificate/],
    ['CERT_NOT_YET_VALID', /is not yet valid/, /clock/],
    ['ERR_TLS_CERT_ALTNAME_INVALID', /does not match the host name "imap.example.com"/, /tlsServername/],
  ])('%s -> TlsCertificateError', (code, message, hint) => {
    const cause = failure({ code });
    const err = mapImapError(cause, settings, 'connect');
    expect(err).toBeInstanceOf(TlsCertificateError);
    expect(err.message).toMatch(message);
    expect(err.message).toContain('imap.example.com:993');
    expect(err.message).toContain(`(${code})`);
    expect(err.hint).toMatch(hint);
    expect((err as TlsCertificateError).tlsCode).toBe(code);
    expect(err.retryable).toBe(false);
    expect(err.cause).toBe(cause);
  });

  it("names the verified name (tlsServername) and Node's reason for a name mismatch", () => {
    const err = mapImapError(
      failure({
        code: 'ERR_TLS_CERT_ALTNAME_INVALID',
        reason: "Host: mail.internal. is not in the cert's altnames: DNS:other.example",
      }),
      { ...settings, host: '10.0.0.5', tlsServername: 'mail.internal' },
      'connect',
    );
    expect(err.message).toContain('"mail.internal"');
    expect(err.message).toContain("is not in the cert's altnames");
    expect(err.message).toContain('10.0.0.5:993');
  });

  it.each([
    'ERR_SSL_WRONG_VERSION_NUMBER',
    'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION',
    'ERR_TLS_HANDSHAKE_TIMEOUT',
    'EPROTO',
  ])('%s -> TlsCertificateError about the handshake', (code) => {
    const err = mapImapError(failure({ code }), settings, 'connect');
    expect(err).toBeInstanceOf(TlsCertificateError);
    expect(err.message).toBe(`TLS handshake with imap.example.com:993 failed (${code}).`);
    expect(err.hint).toMatch(/implicit TLS/);
  });
});

describe('mapImapError: login and STARTTLS', () => {
  it('authenticationFailed -> ImapAuthError naming the user, not the password', () => {
    const cause = failure(
      { authenticationFailed: true, responseText: `Authentication failed for ${PASSWORD}` },
      'Command failed',
    );
    const err = mapImapError(cause, settings, 'connect');
    expect(err).toBeInstanceOf(ImapAuthError);
    expect(err.code).toBe('IMAP_AUTH_FAILED');
    expect(err.retryable).toBe(false);
    expect(err.message).toBe('The IMAP server imap.example.com:993 rejected the login of user "support@example.com".');
    expect(err.explanation).not.toContain(PASSWORD);
  });

  it('tlsFailed without a TLS code (server offers no STARTTLS) -> StartTlsUnavailableError', () => {
    const err = mapImapError(
      failure({ tlsFailed: true }, 'Server does not support STARTTLS'),
      { ...settings, security: 'starttls', port: 143 },
      'connect',
    );
    expect(err).toBeInstanceOf(StartTlsUnavailableError);
    expect(err.message).toContain('imap.example.com:143 does not offer STARTTLS');
    expect(err.hint).toMatch(/never fall back to plaintext/);
    expect(err.retryable).toBe(false);
  });

  // imapflow marks every failure of the STARTTLS upgrade with tlsFailed, keeping Node's TLS code:
  // an untrusted or mismatching certificate behind STARTTLS is a certificate problem, not a missing STARTTLS.
  it.each([
    'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    'DEPTH_ZERO_SELF_SIGNED_CERT',
    'ERR_TLS_CERT_ALTNAME_INVALID',
    'CERT_HAS_EXPIRED',
  ])('a STARTTLS upgrade rejected with %s -> TlsCertificateError', (code) => {
    const err = mapImapError(
      failure({ code, tlsFailed: true }),
      { ...settings, security: 'starttls', port: 143 },
      'connect',
    );
    expect(err).toBeInstanceOf(TlsCertificateError);
    expect((err as TlsCertificateError).tlsCode).toBe(code);
  });

  it('authenticationFailed wins over other properties', () => {
    expect(
      mapImapError(failure({ authenticationFailed: true, code: 'ECONNRESET' }), settings, 'connect'),
    ).toBeInstanceOf(ImapAuthError);
  });
});

describe('mapImapError: reachability', () => {
  it.each<[string, RegExp]>([
    ['ECONNREFUSED', /the connection was refused/],
    ['ENOTFOUND', /the host name does not resolve \(DNS\)/],
    ['EAI_AGAIN', /DNS lookup failed temporarily/],
    ['ETIMEDOUT', /the connection timed out/],
    ['ETIMEOUT', /the server went silent \(socket timeout\)/],
    ['ECONNRESET', /the connection was reset/],
    ['EHOSTUNREACH', /the host is unreachable/],
    ['CONNECT_TIMEOUT', /the connection timed out/],
    ['GREETING_TIMEOUT', /the server sent no greeting in time/],
    ['UPGRADE_TIMEOUT', /the STARTTLS upgrade timed out/],
    ['NoConnection', /the connection is closed/],
    ['ClosedAfterConnectText', /wrong port or security/],
  ])('%s -> retryable ImapConnectionError', (code, message) => {
    const err = mapImapError(failure({ code }), settings, 'status');
    expect(err).toBeInstanceOf(ImapConnectionError);
    expect(err.code).toBe('IMAP_UNREACHABLE');
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(message);
    expect(err.message).toContain('imap.example.com:993 during status');
    expect(err.message).toContain(`(${code})`);
    expect(err.hint).toMatch(/security groups/);
  });

  it.each([undefined, null])('a missing error (%s) is a lost connection', (value) => {
    const err = mapImapError(value, settings, 'fetch');
    expect(err).toBeInstanceOf(ImapConnectionError);
    expect(err.message).toBe('The connection to the IMAP server imap.example.com:993 was lost during fetch.');
  });
});

describe('mapImapError: everything else', () => {
  it("passes the poller's own errors through unchanged", () => {
    const own = new FolderNotFoundError('Archiv', ['INBOX']);
    expect(mapImapError(own, settings, 'status')).toBe(own);
  });

  it('maps a NO/BAD response to ImapProtocolError with the server text', () => {
    const err = mapImapError(
      failure({ responseText: 'Mailbox is locked', code: 'INUSE' }, 'Command failed'),
      settings,
      'examine',
    );
    expect(err).toBeInstanceOf(ImapProtocolError);
    expect(err.message).toBe('The IMAP server imap.example.com:993 failed during examine: Mailbox is locked (INUSE).');
    expect(err.retryable).toBe(true);
  });

  it('uses the message when there is no response text, and copes with non-Error values', () => {
    expect(mapImapError(new Error('Unexpected tagged response'), settings, 'search').message).toContain(
      'failed during search: Unexpected tagged response.',
    );
    expect(mapImapError('weird', settings, 'search')).toBeInstanceOf(ImapProtocolError);
  });

  it('bounds the server text to 300 characters', () => {
    const err = mapImapError(failure({ responseText: 'x'.repeat(5_000) }), settings, 'fetch');
    expect(err.message.length).toBeLessThan(400);
  });
});

describe('mapImapError never reveals the password', () => {
  const carriers: Record<string, unknown>[] = [
    { authenticationFailed: true },
    { tlsFailed: true },
    { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' },
    { code: 'ERR_TLS_CERT_ALTNAME_INVALID' },
    { code: 'CERT_HAS_EXPIRED' },
    { code: 'ERR_SSL_WRONG_VERSION_NUMBER' },
    { code: 'ECONNREFUSED' },
    { code: 'ENOTFOUND' },
    { code: 'ETIMEOUT' },
    { code: 'SOMETHING_ELSE' },
    {},
    { responseText: `LOGIN "support@example.com" "${PASSWORD}" failed` },
    { responseText: `${PASSWORD}${PASSWORD} twice` },
  ];
  it.each(carriers.map((c, i) => [i, c] as const))('case %d', (_i, props) => {
    const err = mapImapError(failure(props, `error quoting the password ${PASSWORD}`), settings, 'connect');
    expect(err).toBeInstanceOf(ImapEventSourceError);
    expect(err.message).not.toContain(PASSWORD);
    expect(err.explanation).not.toContain(PASSWORD);
    expect(err.hint ?? '').not.toContain(PASSWORD);
  });

  it('redacts the password in echoed server text', () => {
    const err = mapImapError(failure({ responseText: `LOGIN support "${PASSWORD}" rejected` }), settings, 'connect');
    expect(err.message).toContain('LOGIN support "***" rejected');
  });
});

describe('imapFlowOptions', () => {
  it.each<[MailboxSettings['security'], boolean, boolean | undefined, boolean]>([
    ['tls', true, undefined, true],
    ['starttls', false, true, true],
    ['none', false, false, false],
  ])('security %s: secure %s, doSTARTTLS %s, TLS options %s', (security, secure, doSTARTTLS, hasTls) => {
    const options = imapFlowOptions({ ...settings, security });
    expect(options.secure).toBe(secure);
    expect(options.doSTARTTLS).toBe(doSTARTTLS);
    expect(options.tls !== undefined).toBe(hasTls);
    expect(options.logger).toBe(false);
    expect(options.auth).toEqual({ user: 'support@example.com', pass: PASSWORD });
  });

  it('passes the timeouts, with defaults', () => {
    expect(imapFlowOptions(settings)).toMatchObject({
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 30_000,
    });
    expect(imapFlowOptions(settings, { connectTimeoutMs: 1, greetingTimeoutMs: 2, socketTimeoutMs: 3 })).toMatchObject({
      connectionTimeout: 1,
      greetingTimeout: 2,
      socketTimeout: 3,
    });
  });
});

describe('ImapFlowSession.listNew', () => {
  /** A summary row for every UID of a `a:b,c` set, except `leftOut`. */
  const rows = (leftOut: readonly number[] = []) =>
    async function* (set: string) {
      for (const part of set.split(',')) {
        const [from, to = from] = part.split(':').map(Number);
        for (let uid = from!; uid <= to!; uid++) {
          if (!leftOut.includes(uid)) yield { uid, size: 10, flags: new Set<string>(), internalDate: new Date(0) };
        }
      }
    };
  const session = (search: (query: { uid: string }) => Promise<unknown>, leftOut: readonly number[] = []) =>
    new ImapFlowSession({ search, fetch: rows(leftOut), usable: true } as unknown as ImapFlow, settings);
  const uidsOf = (listed: { messages: readonly { uid: number }[] }) => listed.messages.map((m) => m.uid);

  it('a refused SEARCH (imapflow answers false) is an error, never "no new mail"', async () => {
    await expect(session(async () => false).listNew(5, 100)).rejects.toBeInstanceOf(ImapProtocolError);
    await expect(session(async () => undefined).listNew(5, 100)).rejects.toThrow(/refused UID SEARCH/);
  });

  it('an empty SEARCH result is a complete, empty list', async () => {
    expect(await session(async () => []).listNew(5, 100)).toEqual({ messages: [], complete: true });
  });

  it('drops the n:* quirk (a UID below the range) and reports more than the limit as incomplete', async () => {
    const listed = await session(async () => [4, 5, 6, 7]).listNew(5, 2);
    expect(uidsOf(listed)).toEqual([5, 6]);
    expect(listed).toMatchObject({ complete: false });
  });

  it('a UID the listing left out: passed over when a fresh search no longer finds it, else the list ends before it', async () => {
    // The first SEARCH lists 5..8; the fresh one (for the missing UIDs) finds what `stillThere` says.
    const searching = (stillThere: number[]) => async (query: { uid: string }) =>
      query.uid === '5:*' ? [5, 6, 7, 8] : stillThere;
    const expunged = await session(searching([]), [6]).listNew(5, 10);
    expect(uidsOf(expunged)).toEqual([5, 7, 8]);
    expect(expunged).toEqual(expect.objectContaining({ complete: true }));
    expect(expunged).not.toHaveProperty('withheld');
    const withheld = await session(searching([7]), [6, 7]).listNew(5, 10);
    expect(uidsOf(withheld)).toEqual([5]);
    expect(withheld).toMatchObject({ complete: false, withheld: 7 });
  });

  it('lists UID, flags, INTERNALDATE and size; the ENVELOPE only when asked for (a re-scan, the baseline)', async () => {
    const queries: Record<string, unknown>[] = [];
    const envelope = {
      messageId: '<a@example.com>',
      subject: 'Angebot',
      from: [{ name: 'Anna', address: 'anna@example.com' }],
    };
    const client = {
      usable: true,
      search: async () => [5, 6],
      fetch: async function* (_set: string, query: Record<string, unknown>) {
        queries.push(query);
        for (const uid of [5, 6]) {
          yield {
            uid,
            size: 100 * uid,
            flags: new Set(['\\Seen', '\\Recent']),
            internalDate: new Date('2026-11-30T10:00:00Z'),
            ...(query.envelope ? { envelope } : {}),
          };
        }
      },
    };
    const session = new ImapFlowSession(client as unknown as ImapFlow, settings);
    const plain = await session.listNew(5, 10);
    expect(queries[0]).toEqual({ uid: true, flags: true, internalDate: true, size: true });
    expect(plain.messages).toEqual([
      { uid: 5, size: 500, flags: ['\\Seen'], internalDate: '2026-11-30T10:00:00.000Z' },
      { uid: 6, size: 600, flags: ['\\Seen'], internalDate: '2026-11-30T10:00:00.000Z' },
    ]);
    const withEnvelope = await session.listNew(5, 10, { envelope: true });
    expect(queries[1]).toEqual({ uid: true, flags: true, internalDate: true, size: true, envelope: true });
    expect(withEnvelope.messages[0]!.envelope).toEqual({
      messageId: '<a@example.com>',
      subject: 'Angebot',
      from: [{ name: 'Anna', address: 'anna@example.com' }],
      to: [],
      cc: [],
      replyTo: [],
    });
  });
});

describe('ImapFlowSession.listSizes', () => {
  /** SEARCH answers `all` for `5:*` and `larger` for a LARGER query; FETCH answers sizes for all but `leftOut`. */
  const listing = (all: number[], larger: number[], leftOut: number[] = [], stillThere: number[] = []) => {
    const searches: Record<string, unknown>[] = [];
    const fetches: { set: string; query: Record<string, unknown> }[] = [];
    const client = {
      usable: true,
      search: async (query: Record<string, unknown>) => {
        searches.push(query);
        if (query.larger !== undefined) return larger;
        return query.uid === '5:*' ? all : stillThere;
      },
      fetch: async function* (set: string, query: Record<string, unknown>) {
        fetches.push({ set, query });
        for (const part of set.split(',')) {
          const [from, to = from] = part.split(':').map(Number);
          for (let uid = from!; uid <= to!; uid++) if (!leftOut.includes(uid)) yield { uid, size: uid * 1_000 };
        }
      },
    };
    return { searches, fetches, session: new ImapFlowSession(client as unknown as ImapFlow, settings) };
  };

  it('two SEARCHes; RFC822.SIZE fetched only for the messages above the bound, the others count as the bound', async () => {
    const { searches, fetches, session } = listing([5, 6, 7, 8, 9], [6, 8]);
    expect(await session.listSizes(5, 10, 4_000)).toEqual({
      messages: [
        { uid: 5, size: 4_000 },
        { uid: 6, size: 6_000 },
        { uid: 7, size: 4_000 },
        { uid: 8, size: 8_000 },
        { uid: 9, size: 4_000 },
      ],
      complete: true,
    });
    expect(searches).toEqual([{ uid: '5:*' }, { uid: '5:9', larger: 4_000 }]);
    expect(fetches).toEqual([{ set: '6,8', query: { uid: true, size: true } }]);
  });

  it('no FETCH at all when no message is above the bound; the limit cuts as in listNew', async () => {
    const { fetches, session } = listing([5, 6, 7], []);
    expect(await session.listSizes(5, 2, 4_000)).toEqual({
      messages: [
        { uid: 5, size: 4_000 },
        { uid: 6, size: 4_000 },
      ],
      complete: false,
    });
    expect(fetches).toEqual([]);
  });

  it('a size below the bound for a message LARGER named still counts as the bound (batches stay within their bytes)', async () => {
    const { session } = listing([5, 6], [5]);
    expect((await session.listSizes(5, 10, 9_000)).messages).toEqual([
      { uid: 5, size: 9_000 },
      { uid: 6, size: 9_000 },
    ]);
  });

  it('a large message the size FETCH left out: left out when gone, else the list ends before it', async () => {
    const gone = await listing([5, 6, 7, 8], [6, 7], [6]).session.listSizes(5, 10, 4_000);
    expect(gone).toEqual({
      messages: [
        { uid: 5, size: 4_000 },
        { uid: 7, size: 7_000 },
        { uid: 8, size: 4_000 },
      ],
      complete: true,
    });
    const withheld = await listing([5, 6, 7, 8], [6, 7], [6], [6]).session.listSizes(5, 10, 4_000);
    expect(withheld).toEqual({ messages: [{ uid: 5, size: 4_000 }], complete: false, withheld: 6 });
  });

  it('a refused LARGER SEARCH is an error, never "nothing above the bound"', async () => {
    const { session } = listing([5, 6], []);
    const refused = new ImapFlowSession(
      {
        usable: true,
        search: async (query: Record<string, unknown>) => (query.larger === undefined ? [5, 6] : false),
      } as unknown as ImapFlow,
      settings,
    );
    await expect(refused.listSizes(5, 10, 4_000)).rejects.toThrow(/refused UID SEARCH/);
    expect((await session.listSizes(5, 10, 4_000)).messages).toHaveLength(2);
  });
});

describe('ImapFlowSession.fetchSources', () => {
  /** A client whose FETCH answers every UID asked for with a source of `bytes` bytes (any size it reported). */
  const client = (bytes: number) => {
    const state = { closed: false };
    const fake = {
      usable: true,
      close: () => {
        state.closed = true;
      },
      fetch: async function* (set: string) {
        for (const part of set.split(',')) {
          const [lo, hi = lo] = part.split(':').map(Number) as [number, number?];
          for (let uid = lo; uid <= hi; uid++) yield { uid, size: 1_000, source: Buffer.alloc(bytes, 0x78) };
        }
      },
    };
    return { state, session: new ImapFlowSession(fake as unknown as ImapFlow, settings) };
  };

  it('keeps what a batch asked for when it fits its byte bound', async () => {
    const { session } = client(1_000);
    const sources = await session.fetchSources([1, 2, 3], { maxBytes: 2_000, maxTotalBytes: 3_000 });
    expect([...sources.keys()]).toEqual([1, 2, 3]);
  });

  it('with summaries: each source carries its size, flags (without \\Recent) and INTERNALDATE from the same FETCH', async () => {
    const queries: Record<string, unknown>[] = [];
    const fake = {
      usable: true,
      fetch: async function* (_set: string, query: Record<string, unknown>) {
        queries.push(query);
        yield {
          uid: 7,
          size: 5_000,
          flags: new Set(['\\Seen', '\\Recent']),
          internalDate: new Date('2026-11-30T08:00:00Z'),
          source: Buffer.alloc(1_000, 0x78),
        };
      },
    };
    const session = new ImapFlowSession(fake as unknown as ImapFlow, settings);
    const sources = await session.fetchSources([7], { maxBytes: 1_000, summaries: true });
    expect(queries).toEqual([
      { uid: true, size: true, flags: true, internalDate: true, source: { start: 0, maxLength: 1_000 } },
    ]);
    expect(sources.get(7)).toMatchObject({
      partial: true,
      summary: { uid: 7, size: 5_000, flags: ['\\Seen'], internalDate: '2026-11-30T08:00:00.000Z' },
    });
    const plain = await session.fetchSources([7], { maxBytes: 1_000 });
    expect(queries[1]).toEqual({ uid: true, size: true, source: { start: 0, maxLength: 1_000 } });
    expect(plain.get(7)).not.toHaveProperty('summary');
  });

  it('an endless stream of unrequested rows ends after 1,000 beyond those asked for: a protocol error, closed', async () => {
    const state = { closed: false, rows: 0 };
    const fake = {
      usable: true,
      close: () => {
        state.closed = true;
      },
      fetch: async function* () {
        yield { uid: 1, size: 10, source: Buffer.from('x') };
        for (let uid = 100; ; uid++) {
          state.rows++;
          yield { uid, size: 10 };
        }
      },
    };
    const session = new ImapFlowSession(fake as unknown as ImapFlow, settings);
    const err = await session.fetchSources([1, 2], { maxBytes: 1_000 }).catch((e) => e);
    expect(err).toBeInstanceOf(ImapProtocolError);
    expect((err as Error).message).toMatch(/sent more than a poll accepts during fetch: .*more than 1002 FETCH rows/);
    expect(state).toEqual({ closed: true, rows: 1_002 });
  });

  it('a server that understates RFC822.SIZE cannot make a batch cost more than its bound: a protocol error, closed', async () => {
    const { session, state } = client(2_000);
    const err = await session.fetchSources([1, 2, 3, 4, 5], { maxBytes: 2_000, maxTotalBytes: 5_000 }).catch((e) => e);
    expect(err).toBeInstanceOf(ImapProtocolError);
    expect((err as Error).message).toMatch(/sent more than a poll accepts during fetch/);
    expect(state.closed).toBe(true);
  });
});
