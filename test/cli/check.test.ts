/**
 * `check` against the shared Dovecot: the success report and every failure class, each with its cause
 * and its fix. Runs the command in-process (main(argv, io)) against real servers.
 */
import { once } from 'node:events';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { generateDemoCertificates } from '../../cli/demo/certificates.js';
import { runCli, tempDir, writeConfig } from '../support/cli.js';
import type { DovecotServer, User } from '../support/dovecot.js';
import { freePort } from '../support/dovecot.js';
import { dovecot, dovecotNoTls, mailboxSecret, startDovecot, tlsMaterial } from '../support/env.js';
import { FakeImapServer } from '../support/fake-imap-server.js';

const dir = tempDir();
let server: DovecotServer;
let user: User;
let check: (name: string, settings: Record<string, unknown>) => ReturnType<typeof runCli>;

beforeAll(async () => {
  server = dovecot();
  user = await server.createUser();
  await server.createSeedTree(user);
  await server.appendMessage(user, 'Firma/Vertrieb', 'Subject: one\r\n\r\nbody\r\n');
  check = (name, settings) => runCli(['check', '--config', writeConfig(dir, name, settings)]);
});

const noPassword = (out: string) => expect(out).not.toContain(user.password);

describe('check: success', () => {
  test.concurrent('implicit TLS: every step passes, TLS trusted via caBundle, folder status', async () => {
    const r = await check('ok-tls', mailboxSecret(server, user, { folder: 'Firma/Vertrieb' }));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /^✔ SETTINGS .*tls to localhost:\d+, user "u[0-9a-f]+", folder "Firma\/Vertrieb", caBundle 1 certificate\(s\)$/m,
    );
    expect(r.stdout).toMatch(/^✔ DNS +localhost -> /m);
    expect(r.stdout).toMatch(/^✔ TCP +connected to (127\.0\.0\.1|\[::1\]):\d+ \(\d+ ms\)$/m);
    expect(r.stdout).toMatch(
      /^✔ TLS +TLSv1\.[23], subject CN=localhost, issuer CN=imap-event-source test CA, valid until \d{4}-\d\d-\d\d, trusted via caBundle$/m,
    );
    expect(r.stdout).toMatch(/^✔ LOGIN +logged in as "u[0-9a-f]+"$/m);
    expect(r.stdout).toMatch(/^✔ FOLDER +"Firma\/Vertrieb" exists$/m);
    expect(r.stdout).toMatch(/^✔ STATUS +UIDVALIDITY \d+, UIDNEXT 2, 1 message\(s\)$/m);
    expect(r.stdout).toContain('All checks passed');
    noPassword(r.stdout + r.stderr);
  });

  test.concurrent('STARTTLS: the upgrade is reported before TLS', async () => {
    const r = await check('ok-starttls', mailboxSecret(server, user, { security: 'starttls' }));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^✔ STARTTLS +offered and accepted/m);
    expect(r.stdout).toMatch(/^✔ TLS +TLSv1\.[23], subject CN=localhost.*trusted via caBundle$/m);
    expect(r.stdout.indexOf('STARTTLS')).toBeLessThan(r.stdout.indexOf('✔ TLS'));
  });

  test.concurrent('security "none": warned about, TLS skipped, login and folder checked', async () => {
    const plain = dovecotNoTls();
    const plainUser = await plain.createUser();
    const r = await check('ok-none', mailboxSecret(plain, plainUser, { security: 'none' }));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^⚠ SECURITY +security is "none": the password and all mail travel unencrypted$/m);
    expect(r.stdout).toMatch(/^- TLS +skipped \(security "none"\)$/m);
    expect(r.stdout).toMatch(/^✔ LOGIN/m);
  });

  test.concurrent('tlsServername: server reached by IP, certificate verified against the configured name', async () => {
    const tls = tlsMaterial();
    const r = await check('ok-servername', {
      ...mailboxSecret(server, user),
      host: '127.0.0.1',
      tlsServername: tls.otherHostName,
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^✔ DNS +127\.0\.0\.1 is an IP address$/m);
    expect(r.stdout).toMatch(
      new RegExp(`^✔ TLS +.*subject CN=${tls.otherHostName.replace(/\./g, '\\.')}, .*trusted via caBundle$`, 'm'),
    );
  });
});

describe('check: each failure names the cause and the fix', () => {
  test.concurrent('bad JSON', async () => {
    const path = `${dir}/bad.json`;
    await import('node:fs/promises').then((fs) => fs.writeFile(path, '{"host": "x", "password": "hunter2"'));
    const r = await runCli(['check', '--config', path]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^✖ SETTINGS +file ".*bad\.json" is invalid \(1 problem\):$/m);
    expect(r.stdout).toContain('- (root): is not valid JSON');
    expect(r.stdout).toMatch(/Fix: .*secret template/);
    expect(r.stdout + r.stderr).not.toContain('hunter2');
  });

  test.concurrent('invalid and unknown fields, listed one per line, values never shown', async () => {
    const r = await check('fields', {
      host: 'imap.example.com',
      port: 99999,
      username: 'u',
      pasword: 'hunter2',
      security: 'ssl',
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/✖ SETTINGS .* is invalid \(4 problems\):/);
    expect(r.stdout).toContain('- pasword: unknown field (did you mean "password"?)');
    expect(r.stdout).toContain('- password: is required');
    expect(r.stdout).toContain('- port: must be an integer between 1 and 65535');
    expect(r.stdout).toMatch(/- security: must be one of "tls", "starttls", "none"/);
    expect(r.stdout + r.stderr).not.toContain('hunter2');
    expect(r.stdout).not.toMatch(/✔ DNS/);
  });

  test.concurrent('caBundle that is not a certificate', async () => {
    const r = await check('badca', {
      ...mailboxSecret(server, user),
      caBundle: '-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----',
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('- caBundle: certificate 1 is not a parseable X.509 certificate');
  });

  test.concurrent('DNS failure (.invalid never resolves)', async () => {
    const r = await check('dns', { ...mailboxSecret(server, user), host: 'imap.example.invalid' });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^✖ DNS +imap\.example\.invalid does not resolve/m);
    expect(r.stdout).toMatch(/Fix: check the spelling of "host"/);
    expect(r.stdout).not.toMatch(/TCP/);
  });

  test.concurrent('TCP refused (a closed port)', async () => {
    const port = await freePort();
    const r = await check('tcp', { ...mailboxSecret(server, user), host: '127.0.0.1', port });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      new RegExp(`^✖ TCP +connection to 127\\.0\\.0\\.1:${port} refused \\(ECONNREFUSED\\)$`, 'm'),
    );
    expect(r.stdout).toMatch(new RegExp(`Fix: nothing accepts connections on port ${port} .*check "port"`));
  });

  test.concurrent('unknown CA (no caBundle)', async () => {
    const { caBundle: _ca, ...settings } = mailboxSecret(server, user);
    const r = await check('unknown-ca', settings);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /^✖ TLS +certificate not trusted \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\): subject CN=localhost, issuer CN=imap-event-source test CA$/m,
    );
    expect(r.stdout).toMatch(/Fix: put the server's CA certificate \(CN=imap-event-source test CA\) into caBundle/);
    expect(r.stdout).not.toMatch(/LOGIN/);
  });

  test.concurrent('wrong CA in caBundle', async () => {
    const r = await check('wrong-ca', { ...mailboxSecret(server, user), caBundle: tlsMaterial().wrongCaCertPem });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^✖ TLS +certificate not trusted \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/m);
    expect(r.stdout).toMatch(
      /Fix: caBundle \(CN=imap-event-source unrelated CA\) does not hold the CA that issued this certificate: put the server's CA certificate \(CN=imap-event-source test CA\) into caBundle/,
    );
  });

  test.concurrent('CA renewed: caBundle holds a CA of the same name but another key', async () => {
    const renamed = generateDemoCertificates({ caName: 'imap-event-source test CA' }).caCertPem;
    const r = await check('same-name-ca', { ...mailboxSecret(server, user), caBundle: renamed });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(
      'Fix: caBundle holds a certificate named CN=imap-event-source test CA, but not the one that signed this server certificate (same name, another key: was the CA renewed?)',
    );
  });

  describe('name mismatch', () => {
    let tlsServer: TlsServer;
    let port: number;
    beforeAll(async () => {
      // A server presenting the certificate of another host (signed by the trusted test CA).
      const tls = tlsMaterial();
      tlsServer = createTlsServer({ key: tls.otherHostKeyPem, cert: tls.otherHostCertPem }, (s) =>
        s.end('* OK hello\r\n'),
      );
      tlsServer.listen(0, '127.0.0.1');
      await once(tlsServer, 'listening');
      port = (tlsServer.address() as { port: number }).port;
    });
    afterAll(() => tlsServer.close());

    test('certificate for another host: says which host, and to set tlsServername', async () => {
      const r = await check('mismatch', { ...mailboxSecret(server, user), host: 'localhost', port });
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(
        /^✖ TLS +certificate name mismatch \(ERR_TLS_CERT_ALTNAME_INVALID\): the certificate is for mail\.example\.test, not "localhost"$/m,
      );
      expect(r.stdout).toContain(
        'Fix: the certificate is for mail.example.test; set tlsServername to "mail.example.test" or use that host.',
      );
    });
  });

  test.concurrent('STARTTLS not offered', async () => {
    const plain = dovecotNoTls();
    const plainUser = await plain.createUser();
    const r = await check('no-starttls', {
      ...mailboxSecret(plain, plainUser, { security: 'none' }),
      security: 'starttls',
      caBundle: tlsMaterial().caCertPem,
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^✔ TCP/m);
    expect(r.stdout).toMatch(/^✖ STARTTLS +the server does not offer STARTTLS$/m);
    expect(r.stdout).toMatch(
      /Fix: use security "tls" with the server's implicit-TLS port \(usually 993\), or enable STARTTLS on the server/,
    );
  });

  test.concurrent('STARTTLS with plaintext injected after the OK: a possible man-in-the-middle, not "not offered"', async () => {
    const tls = tlsMaterial();
    const fake = await FakeImapServer.start({ starttls: { key: tls.serverKeyPem, cert: tls.serverCertPem } });
    fake.faults = { starttlsInjection: true };
    try {
      const r = await check('starttls-injection', {
        host: 'localhost',
        port: fake.port,
        security: 'starttls',
        username: fake.username,
        password: fake.password,
        folder: fake.folder,
        caBundle: tls.caCertPem,
      });
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/^✖ STARTTLS +the server sent data after agreeing to STARTTLS.*man-in-the-middle/m);
      expect(r.stdout).toMatch(/Fix: do not use this connection/);
      expect(r.stdout).not.toContain('does not offer STARTTLS');
      expect(fake.commands).not.toContain('LOGIN');
    } finally {
      await fake.close();
    }
  });

  test.concurrent('implicit TLS configured on the plain IMAP port', async () => {
    const r = await check('tls-on-plain', { ...mailboxSecret(server, user), port: server.imapPort });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^✖ TLS +TLS handshake failed/m);
    expect(r.stdout).toMatch(
      /Fix: port \d+ does not start with TLS. If it is the plain IMAP port \(usually 143\), set security "starttls"/,
    );
  });

  test.concurrent('wrong password', async () => {
    const r = await check('wrong-password', { ...mailboxSecret(server, user), password: 'not-the-password' });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^✔ TLS/m);
    expect(r.stdout).toMatch(/^✖ LOGIN +the server rejected user "u[0-9a-f]+"/m);
    expect(r.stdout).toMatch(/Fix: check "username" .* and "password"/);
    expect(r.stdout + r.stderr).not.toContain('not-the-password');
  });

  test.concurrent('folder missing on a "/" server: delimiter hint and the nearest folders', async () => {
    const r = await check('folder-slash', mailboxSecret(server, user, { folder: 'Kundenbetreuung.kunden.a' }));
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^✔ LOGIN/m);
    expect(r.stdout).toMatch(/^✖ FOLDER +"Kundenbetreuung\.kunden\.a" does not exist on the server$/m);
    expect(r.stdout).toContain(
      'This server separates levels with "/", not ".": "Kundenbetreuung.kunden.a" is written "Kundenbetreuung/kunden/a" here.',
    );
    expect(r.stdout).toMatch(/Nearest existing folders: "Firma\/Kundenbetreuung\/kunden\/a"/);
  });

  test.concurrent('folder with a typo: the nearest names', async () => {
    const r = await check('folder-typo', mailboxSecret(server, user, { folder: 'Firma/Qualitatssicherung' }));
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/Nearest existing folders: "Firma\/Qualitätssicherung"/);
    expect(r.stdout).not.toContain('separates levels');
  });
});

describe('check on a "." server', () => {
  let dotServer: DovecotServer;
  let dotUser: User;
  beforeAll(async () => {
    dotServer = await startDovecot({ separator: '.' });
    dotUser = await dotServer.createUser();
    await dotServer.createSeedTree(dotUser);
  });
  afterAll(() => dotServer?.stop());

  test('a "/" path is explained with the "." spelling', async () => {
    const r = await check(
      'folder-dot',
      mailboxSecret(dotServer, dotUser, { folder: 'Firma/Kundenbetreuung/kunden/a' }),
    );
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(
      'This server separates levels with ".", not "/": "Firma/Kundenbetreuung/kunden/a" is written "Firma.Kundenbetreuung.kunden.a" here.',
    );
    expect(r.stdout).toMatch(/Nearest existing folders: "Firma\.Kundenbetreuung\.kunden\.a"/);
  });

  test('the "." path passes', async () => {
    const r = await check('folder-dot-ok', mailboxSecret(dotServer, dotUser, { folder: 'Firma.Qualitätssicherung' }));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^✔ FOLDER +"Firma\.Qualitätssicherung" exists$/m);
  });
});
