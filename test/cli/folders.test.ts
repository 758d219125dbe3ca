/** `folders`: the tree as the server has it, indented like the seed's example, for '/' and '.' servers. */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type DemoServer, startDemoServer } from '../../cli/demo/demo-server.js';
import { runCli, tempDir, writeConfig } from '../support/cli.js';
import type { DovecotServer, User } from '../support/dovecot.js';
import { dovecot, mailboxSecret, startDovecot } from '../support/env.js';

const dir = tempDir();

/** The seed tree as `folders` prints it, for a delimiter. */
function expectedTree(d: string, configured?: string): string {
  const lines = [
    '-- INBOX',
    '-- Aufgaben',
    '-- Entwürfe',
    '-- Firma',
    `---- Firma${d}Kundenbetreuung`,
    `------ Firma${d}Kundenbetreuung${d}kunden`,
    ...['a', 'b', 'c', 'd', 'e'].map((x) => `-------- Firma${d}Kundenbetreuung${d}kunden${d}${x}`),
    `---- Firma${d}Qualitätssicherung`,
    `---- Firma${d}Vertrieb`,
    '-- Gelöschte-Objekte',
    '-- Gesendete-Objekte',
    '-- Journal',
    '-- Junk-E-Mail',
    '-- Kalender',
    '-- Kontakte',
    '-- Newsletter',
    `---- Newsletter${d}IBM`,
    `---- Newsletter${d}Microsoft`,
    `---- Newsletter${d}United Planet`,
    `---- Newsletter${d}VMware`,
    '-- Notizen',
    '-- Postausgang',
    '-- RSS-Feeds',
    `---- RSS-Feeds${d}Tagesschau`,
    '-- Vorgeschlagene-Kontakte',
  ];
  return lines.map((l) => (configured && l.endsWith(` ${configured}`) ? `${l}  <- configured folder` : l)).join('\n');
}

describe.each([
  { separator: '/' as const, folder: 'Firma/Vertrieb' },
  { separator: '.' as const, folder: 'Firma.Vertrieb' },
])('folders on a "$separator" server', ({ separator, folder }) => {
  let server: DovecotServer;
  let user: User;
  beforeAll(async () => {
    server = separator === '/' ? dovecot() : await startDovecot({ separator });
    user = await server.createUser();
    await server.createSeedTree(user);
  });
  afterAll(async () => {
    if (separator !== '/') await server?.stop();
  });

  test('prints the indented tree with full paths, the delimiter and the configured folder', async () => {
    const config = writeConfig(
      dir,
      `folders-${separator === '/' ? 'slash' : 'dot'}`,
      mailboxSecret(server, user, { folder }),
    );
    const r = await runCli(['folders', '--config', config]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      `29 folders of "${user.username}" on localhost:${server.imapsPort}, delimiter "${separator}"\n`,
    );
    expect(r.stdout).toContain(`\n${expectedTree(separator, folder)}\n`);
    expect(r.stdout).toContain('Use a path exactly as shown as "folder" in the settings.');
    expect(r.stdout + r.stderr).not.toContain(user.password);
  });

  test('says when the configured folder is not in the list', async () => {
    const config = writeConfig(
      dir,
      `folders-missing-${separator === '/' ? 'slash' : 'dot'}`,
      mailboxSecret(server, user, { folder: 'Nope' }),
    );
    const r = await runCli(['folders', '--config', config]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('The configured folder "Nope" is not in this list');
  });
});

describe('folders on a server with special-use flags (the demo server)', () => {
  let demo: DemoServer;
  beforeAll(async () => {
    demo = await startDemoServer();
  });
  afterAll(() => demo?.close());

  test('shows the flags the server sends', async () => {
    const config = writeConfig(dir, 'folders-demo', { ...demo.settings });
    const r = await runCli(['folders', '--config', config]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^-- Entwürfe {2}\\Drafts$/m);
    expect(r.stdout).toMatch(/^-- Gesendete-Objekte {2}\\Sent$/m);
    expect(r.stdout).toMatch(/^-- Gelöschte-Objekte {2}\\Trash$/m);
    expect(r.stdout).toMatch(/^-------- Firma\/Kundenbetreuung\/kunden\/a {2}<- configured folder$/m);
  });
});

describe('folders failures', () => {
  test('a connection failure is one paragraph with the fix and a pointer to check', async () => {
    const server = dovecot();
    const user = await server.createUser();
    const { caBundle: _omit, ...noCa } = mailboxSecret(server, user);
    const config = writeConfig(dir, 'folders-noca', noCa);
    const r = await runCli(['folders', '--config', config]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/✖ .*UNABLE_TO_VERIFY_LEAF_SIGNATURE.*\[TLS_CERTIFICATE_REJECTED\]/);
    expect(r.stderr).toMatch(/Fix: .*caBundle/);
    expect(r.stderr).toContain(`Step by step: imap-event-source check --config ${config}`);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  test('missing --config exits 2', async () => {
    const r = await runCli(['folders']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('folders needs --config FILE or --secret-id ID');
  });
});
