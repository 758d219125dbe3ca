import { describe, expect, it } from 'vitest';
import { generateDemoCertificates } from '../../cli/demo/certificates.js';
import {
  parseMailboxSettings as parseSettings,
  validateMailboxSettings as validateSettings,
} from '../../functions/poller/adapters/pem-checks.js';
import {
  DEFAULT_PORTS,
  describeSettings,
  type MailboxSettings,
  splitPemBundle,
} from '../../functions/poller/core/settings.js';
import { SettingsValidationError } from '../../functions/poller/errors.js';

const PASSWORD = 'Hunter2-very-secret';
const HOST = 'imap.mail.example.org';
// Real certificates: validation parses each one.
const certificates = generateDemoCertificates();
const PEM_A = certificates.caCertPem.trim();
const PEM_B = certificates.serverCertPem.trim();

const base = { host: HOST, username: 'support@example.org', password: PASSWORD };

/** The SettingsValidationError thrown for `input`; fails the test if none is thrown. */
function problemsOf(input: unknown): SettingsValidationError {
  try {
    validateSettings(input);
  } catch (err) {
    expect(err).toBeInstanceOf(SettingsValidationError);
    return err as SettingsValidationError;
  }
  throw new Error('expected a SettingsValidationError');
}

describe('validateSettings: defaults', () => {
  it('applies security "tls", port 993 and folder INBOX to the minimal secret', () => {
    expect(validateSettings(base)).toEqual<MailboxSettings>({
      host: HOST,
      port: 993,
      security: 'tls',
      username: 'support@example.org',
      password: PASSWORD,
      folder: 'INBOX',
    });
  });

  it.each([
    ['tls', 993],
    ['starttls', 143],
    ['none', 143],
  ] as const)('security "%s" defaults the port to %d', (security, port) => {
    expect(validateSettings({ ...base, security }).port).toBe(port);
    expect(DEFAULT_PORTS[security]).toBe(port);
  });

  it('keeps an explicit port whatever the security', () => {
    expect(validateSettings({ ...base, security: 'tls', port: 1993 }).port).toBe(1993);
    expect(validateSettings({ ...base, security: 'starttls', port: 10143 }).port).toBe(10143);
  });

  it('treats folder null like a missing folder (INBOX)', () => {
    expect(validateSettings({ ...base, folder: null }).folder).toBe('INBOX');
  });

  it('omits caBundle and tlsServername when not set (no undefined keys)', () => {
    const s = validateSettings(base);
    expect(Object.keys(s)).not.toContain('caBundle');
    expect(Object.keys(s)).not.toContain('tlsServername');
  });

  it('returns every field of a complete secret unchanged', () => {
    const full = {
      host: '10.0.0.5',
      port: 10993,
      security: 'tls',
      username: 'u',
      password: PASSWORD,
      folder: 'Firma/Kundenbetreuung/kunden/a',
      caBundle: `${PEM_A}\n${PEM_B}\n`,
      tlsServername: 'mail.internal.example',
    };
    expect(validateSettings(full)).toEqual(full);
  });
});

describe('validateSettings: field rules', () => {
  it.each<[string, Record<string, unknown>, string]>([
    // host
    ['host missing', { username: 'u', password: 'p' }, 'host: is required'],
    ['host null', { ...base, host: null }, 'host: is required'],
    ['host not a string', { ...base, host: 42 }, 'host: must be a string'],
    ['host empty', { ...base, host: '' }, 'host: must not be empty'],
    ['host blank', { ...base, host: '   ' }, 'host: must not be empty'],
    [
      'host with scheme',
      { ...base, host: 'imaps://imap.example.com' },
      'host: must be a host name or IP address, without scheme, port or path',
    ],
    ['host with port', { ...base, host: 'imap.example.com:993' }, 'host: must be a host name or IP address'],
    ['host with path', { ...base, host: 'imap.example.com/mail' }, 'host: must be a host name or IP address'],
    ['host with space', { ...base, host: 'imap example.com' }, 'host: must be a host name or IP address'],
    ['host label starting with -', { ...base, host: '-imap.example.com' }, 'host: must be a host name or IP address'],
    [
      'host too long',
      { ...base, host: `${`${'a'.repeat(60)}.`.repeat(5)}com` },
      'host: must be a host name or IP address',
    ],
    // username / password
    ['username missing', { host: HOST, password: 'p' }, 'username: is required'],
    ['username not a string', { ...base, username: ['u'] }, 'username: must be a string'],
    ['username empty', { ...base, username: '' }, 'username: must not be empty'],
    ['password missing', { host: HOST, username: 'u' }, 'password: is required'],
    ['password a number', { ...base, password: 1234 }, 'password: must be a string'],
    ['password blank', { ...base, password: ' \t ' }, 'password: must not be empty'],
    // security
    ['security unknown', { ...base, security: 'ssl' }, 'security: must be one of "tls", "starttls", "none"'],
    ['security upper case', { ...base, security: 'TLS' }, 'security: must be one of'],
    ['security boolean', { ...base, security: true }, 'security: must be one of'],
    // port
    ['port 0', { ...base, port: 0 }, 'port: must be an integer between 1 and 65535'],
    ['port 65536', { ...base, port: 65536 }, 'port: must be an integer between 1 and 65535'],
    ['port negative', { ...base, port: -993 }, 'port: must be an integer between 1 and 65535'],
    ['port fractional', { ...base, port: 993.5 }, 'port: must be an integer between 1 and 65535'],
    ['port as string', { ...base, port: '993' }, 'port: must be an integer between 1 and 65535'],
    ['port null', { ...base, port: null }, 'port: must be an integer between 1 and 65535'],
    // folder
    ['folder empty', { ...base, folder: '' }, 'folder: must not be empty'],
    ['folder not a string', { ...base, folder: ['INBOX'] }, 'folder: must be a string'],
    [
      'folder with CRLF',
      { ...base, folder: 'INBOX\r\nA1 DELETE INBOX' },
      'folder: must not contain line breaks or NUL',
    ],
    ['folder with NUL', { ...base, folder: 'IN\0BOX' }, 'folder: must not contain line breaks or NUL'],
    // caBundle
    [
      'caBundle without a certificate',
      { ...base, caBundle: 'not a pem' },
      'caBundle: must contain at least one PEM certificate',
    ],
    [
      'caBundle with a private key only',
      { ...base, caBundle: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----' },
      'caBundle: must contain at least one PEM certificate',
    ],
    ['caBundle not a string', { ...base, caBundle: { pem: PEM_A } }, 'caBundle: must be a string'],
    [
      'caBundle with a damaged certificate',
      {
        ...base,
        caBundle: `${PEM_A}\n-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUAAAA\n-----END CERTIFICATE-----`,
      },
      'caBundle: certificate 2 is not a parseable X.509 certificate',
    ],
    ['caBundle empty', { ...base, caBundle: '' }, 'caBundle: must not be empty'],
    // tlsServername
    ['tlsServername with space', { ...base, tlsServername: 'mail internal' }, 'tlsServername: must be a DNS host name'],
    [
      'tlsServername with scheme',
      { ...base, tlsServername: 'https://mail.example' },
      'tlsServername: must be a DNS host name',
    ],
    ['tlsServername IPv6', { ...base, tlsServername: '2001:db8::1' }, 'tlsServername: must be a DNS host name'],
    ['tlsServername not a string', { ...base, tlsServername: 7 }, 'tlsServername: must be a string'],
    // plaintext with TLS-only fields
    [
      'none with caBundle',
      { ...base, security: 'none', caBundle: PEM_A },
      'security: is "none" (plaintext) but caBundle/tlsServername are set',
    ],
    [
      'none with tlsServername',
      { ...base, security: 'none', tlsServername: 'mail.example' },
      'security: is "none" (plaintext) but caBundle/tlsServername are set',
    ],
  ])('%s', (_name, input, problem) => {
    const err = problemsOf(input);
    expect(err.problems.some((p) => p.startsWith(problem))).toBe(true);
    expect(err.message).toContain(problem);
    expect(err.code).toBe('SETTINGS_INVALID');
    expect(err.retryable).toBe(false);
    expect(err.hint).toBeTruthy();
  });

  it.each([
    'imap.example.com',
    'imap.example.com.',
    'localhost',
    'mail-01.eu-central-1.example.internal',
    '192.0.2.10',
    '::1',
    '2001:db8::25',
    '::ffff:192.0.2.1',
  ])('accepts host %s', (host) => {
    expect(validateSettings({ ...base, host }).host).toBe(host);
  });

  it.each([
    'INBOX',
    'Firma/Kundenbetreuung/kunden/a',
    'Kundenbetreuung.kunden.a',
    'Qualitätssicherung',
    'Отдел/Входящие',
    '[Gmail]/All Mail',
    'a\\b',
  ])('keeps folder %s exactly as given', (folder) => {
    expect(validateSettings({ ...base, folder }).folder).toBe(folder);
  });

  it('accepts the boundary ports 1 and 65535', () => {
    expect(validateSettings({ ...base, port: 1 }).port).toBe(1);
    expect(validateSettings({ ...base, port: 65535 }).port).toBe(65535);
  });

  it('accepts an IPv4 tlsServername and a bundle with text around the certificates', () => {
    const s = validateSettings({
      ...base,
      tlsServername: '192.0.2.1',
      caBundle: `subject=CN=Private CA\n${PEM_A}\ntrailing text`,
    });
    expect(s.tlsServername).toBe('192.0.2.1');
    expect(s.caBundle).toContain(PEM_A);
  });

  it('keeps the password exactly (no trimming: spaces can be part of it)', () => {
    expect(validateSettings({ ...base, password: '  pass word  ' }).password).toBe('  pass word  ');
  });
});

describe('validateSettings: unknown fields', () => {
  it.each([
    ['pasword', 'password'],
    ['Password', 'password'],
    ['usrname', 'username'],
    ['hots', 'host'],
    ['securty', 'security'],
    ['cabundle', 'caBundle'],
    ['CABundle', 'caBundle'],
    ['tlsServerName', 'tlsServername'],
    ['folders', 'folder'],
    ['prot', 'port'],
  ])('rejects %s and suggests %s', (typo, near) => {
    const err = problemsOf({ ...base, [typo]: 'x' });
    const problem = err.problems.find((p) => p.startsWith(`${typo}:`));
    expect(problem).toContain('unknown field');
    expect(problem).toContain(`did you mean "${near}"?`);
    expect(problem).toContain(
      'allowed: host, port, security, username, password, oauth2, folder, caBundle, tlsServername',
    );
  });

  it('rejects a field with no near name without a suggestion', () => {
    const err = problemsOf({ ...base, mailboxOwner: 'x' });
    expect(err.problems).toEqual([
      'mailboxOwner: unknown field; allowed: host, port, security, username, password, oauth2, folder, caBundle, tlsServername',
    ]);
  });

  it('reports the typo AND the missing field it was meant to be', () => {
    const err = problemsOf({ host: HOST, username: 'u', pasword: PASSWORD });
    expect(err.problems).toHaveLength(2);
    expect(err.problems[0]).toMatch(/^pasword: unknown field \(did you mean "password"\?\)/);
    expect(err.problems[1]).toBe('password: is required (or oauth2 instead, for OAuth2 sign-in)');
    expect(err.message).not.toContain(PASSWORD);
  });
});

describe('validateSettings: not an object', () => {
  it.each([
    ['null', null],
    ['an array', [base]],
    ['a string', 'host=imap.example.com'],
    ['a number', 993],
    ['a boolean', true],
    ['undefined', undefined],
  ])('rejects %s at the root', (_name, input) => {
    const err = problemsOf(input);
    expect(err.problems).toEqual(['(root): must be a JSON object with host, username and password (or oauth2)']);
  });
});

describe('validateSettings: several problems and secrecy', () => {
  it('lists every problem at once, in field order', () => {
    const err = problemsOf({ host: 'https://x', port: 70000, security: 'ssl', username: '', folder: '', extra: 1 });
    expect(err.problems.map((p) => p.split(':')[0])).toEqual([
      'extra',
      'host',
      'username',
      'password',
      'security',
      'port',
      'folder',
    ]);
    for (const p of err.problems) expect(err.message).toContain(p);
  });

  it('names the source in the message when given', () => {
    expect(() => validateSettings({}, 'secret "support"')).toThrow(
      /The mailbox settings in secret "support" are invalid/,
    );
  });

  const secretValues = {
    host: 'https://leaky-host.example.com:993',
    port: 'port-value-993',
    security: 'security-value-x',
    username: 1234567,
    password: 98765.4321,
    folder: 'Leaky\r\nFolder',
    caBundle: 'caBundle-value-not-pem',
    tlsServername: 'leaky servername',
    pasword: 'typo-field-value-Hunter3',
  };

  it('never puts a value into the message or the problems', () => {
    const err = problemsOf(secretValues);
    expect(err.problems.length).toBeGreaterThanOrEqual(9);
    const text = `${err.message} ${err.problems.join(' ')} ${err.explanation}`;
    for (const value of [
      'leaky-host',
      'port-value-993',
      'security-value-x',
      '1234567',
      '98765',
      'Leaky',
      'caBundle-value',
      'leaky servername',
      'Hunter3',
    ]) {
      expect(text).not.toContain(value);
    }
  });

  it('does not leak the password when another field is invalid', () => {
    const err = problemsOf({ ...base, port: 0 });
    expect(err.message).not.toContain(PASSWORD);
    expect(err.message).not.toContain(HOST);
    expect(JSON.stringify(err)).not.toContain(PASSWORD);
  });
});

describe('parseSettings', () => {
  it('parses and validates JSON text', () => {
    expect(parseSettings(JSON.stringify({ ...base, security: 'starttls' }))).toMatchObject({
      host: HOST,
      port: 143,
      security: 'starttls',
    });
  });

  it.each([
    ['truncated JSON', `{"host":"${HOST}","password":"${PASSWORD}"`],
    ['single quotes', `{'host':'${HOST}','password':'${PASSWORD}'}`],
    ['plain text', `password=${PASSWORD}`],
    ['empty', ''],
  ])('rejects %s without quoting the secret', (_name, text) => {
    let thrown: unknown;
    try {
      parseSettings(text, 'secret "support"');
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(SettingsValidationError);
    const err = thrown as SettingsValidationError;
    expect(err.problems).toEqual(['(root): is not valid JSON']);
    expect(err.message).toContain('secret "support"');
    expect(err.message).not.toContain(PASSWORD);
    expect(err.message).not.toContain(HOST);
    expect(err.cause).toBeUndefined();
  });

  it('rejects valid JSON that is not an object', () => {
    expect(() => parseSettings('["a"]')).toThrow(/\(root\): must be a JSON object/);
    expect(() => parseSettings('null')).toThrow(/\(root\): must be a JSON object/);
  });
});

describe('splitPemBundle and describeSettings', () => {
  it('splits a bundle into its certificates', () => {
    expect(splitPemBundle(`# private CA\n${PEM_A}\n\n${PEM_B}\n`)).toEqual([PEM_A, PEM_B]);
    expect(splitPemBundle('nothing here')).toEqual([]);
  });

  it('describes the connection without credentials', () => {
    const s = validateSettings({ ...base, caBundle: `${PEM_A}${PEM_B}`, folder: 'Archiv' });
    const d = describeSettings(s);
    expect(d).toEqual({
      host: HOST,
      port: 993,
      security: 'tls',
      folder: 'Archiv',
      caBundle: '2 certificate(s)',
      tlsServername: HOST,
    });
    expect(JSON.stringify(d)).not.toContain(PASSWORD);
    expect(JSON.stringify(d)).not.toContain('support@example.org');
    expect(describeSettings(validateSettings({ ...base, tlsServername: 'alias.example' }))).toMatchObject({
      caBundle: 'none',
      tlsServername: 'alias.example',
    });
  });
});
