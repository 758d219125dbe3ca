/** `secret template | secret validate`, and validation failures, in-process. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { generateDemoCertificates } from '../../cli/demo/certificates.js';
import { runCli, tempDir } from '../support/cli.js';

const dir = tempDir();

describe('secret', () => {
  test('template | validate round trip', async () => {
    const template = await runCli(['secret', 'template']);
    expect(template.code).toBe(0);
    const value = JSON.parse(template.stdout) as Record<string, unknown>;
    expect(value).toMatchObject({ host: 'imap.example.com', port: 993, security: 'tls', folder: 'INBOX' });
    expect(template.stderr).toContain('caBundle');

    const validated = await runCli(['secret', 'validate'], { input: template.stdout });
    expect(validated.code).toBe(0);
    expect(validated.stdout).toBe(
      '✔ SETTINGS  stdin is valid: tls to imap.example.com:993, user "events@example.com", folder "INBOX"\n',
    );
    expect(validated.stdout).not.toContain('change-me');
  });

  test('template --ca-file embeds the PEM; validate lists the certificate', async () => {
    const ca = join(dir, 'ca.pem');
    writeFileSync(ca, generateDemoCertificates({ caName: 'Example Corp Root CA' }).caCertPem);
    const template = await runCli(['secret', 'template', '--ca-file', ca]);
    const file = join(dir, 'with-ca.json');
    writeFileSync(file, template.stdout);
    const r = await runCli(['secret', 'validate', file]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^· caBundle {2}certificate 1: CN=Example Corp Root CA \(CA\), valid until \d{4}-\d\d-\d\d$/m,
    );
  });

  test('validate FILE: exit 1 with every field problem, never the values', async () => {
    const file = join(dir, 'bad.json');
    writeFileSync(
      file,
      JSON.stringify({
        host: 'https://imap.example.com',
        username: 'x',
        password: 'hunter2',
        Folder: 'INBOX',
        tlsServername: 42,
      }),
    );
    const r = await runCli(['secret', 'validate', file]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`✖ SETTINGS  file "${file}" is invalid (3 problems):`);
    expect(r.stdout).toContain('- Folder: unknown field (did you mean "folder"?)');
    expect(r.stdout).toContain('- host: must be a host name or IP address, without scheme, port or path');
    expect(r.stdout).toContain('- tlsServername: must be a string');
    expect(r.stdout).toMatch(/Fix: .*secret template/);
    expect(r.stdout + r.stderr).not.toContain('hunter2');
  });

  test('validate a file that does not exist: one paragraph, exit 1', async () => {
    const r = await runCli(['secret', 'validate', join(dir, 'nope.json')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/✖ Cannot read the settings file ".*nope\.json" \(ENOENT\)\. \[CONFIGURATION_INVALID\]/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  test('unknown subcommand exits 2', async () => {
    const r = await runCli(['secret', 'rotate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown secret subcommand "rotate"');
  });
});
