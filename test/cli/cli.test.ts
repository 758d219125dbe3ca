/**
 * The CLI as a whole, end to end: the real binary in a child process (help, a usage error, the package launcher,
 * settings from Secrets Manager with AWS credentials from the environment). Every other CLI test runs in-process.
 */

import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { describe, expect, test } from 'vitest';
import { REPO, runCli, spawnCli } from '../support/cli.js';
import { dovecot, mailboxSecret, moto } from '../support/env.js';

describe('help and usage', () => {
  test('overview lists every command', async () => {
    const r = await spawnCli(['--help']);
    expect(r.code).toBe(0);
    for (const name of ['check', 'folders', 'poll', 'secret', 'demo'])
      expect(r.stdout).toMatch(new RegExp(`^  ${name} `, 'm'));
  });

  test.each(['check', 'folders', 'poll', 'secret', 'demo'])('%s --help', async (name) => {
    const r = await runCli([name, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: imap-event-source /);
  });

  test('unknown command and unknown option exit 2 with a pointer to --help', async () => {
    const unknown = await runCli(['chek']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('Unknown command "chek"');
    const option = await spawnCli(['check', '--config', 'x.json', '--pasword', 'x']);
    expect(option.code).toBe(2);
    expect(option.stderr).toMatch(/Unknown option '--pasword'/);
    expect(option.stderr).toContain('See: imap-event-source check --help');
  });

  test("the clone's launcher (bin/imap-event-source.mjs) works from any directory", () => {
    const r = spawnSync(process.execPath, [join(REPO, 'bin/imap-event-source.mjs'), 'secret', 'template'], {
      cwd: tmpdir(),
      encoding: 'utf8',
    });
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toHaveProperty('host');
  });
});

describe('check --secret-id (Secrets Manager, rotation)', () => {
  test('verifies the AWSPENDING value before it is promoted', async () => {
    const server = dovecot();
    const user = await server.createUser();
    const aws = moto();
    const name = `cli/check-${Date.now()}`;
    // AWSCURRENT still holds the old password; AWSPENDING the new one.
    await aws.createSecret(name, { ...mailboxSecret(server, user), password: 'old-password' });
    await aws.secrets.send(
      new PutSecretValueCommand({
        SecretId: name,
        SecretString: JSON.stringify(mailboxSecret(server, user)),
        VersionStages: ['AWSPENDING'],
      }),
    );

    const pending = await spawnCli(['check', '--secret-id', name, '--version-stage', 'AWSPENDING'], {
      env: aws.awsEnv(),
    });
    expect(pending.code).toBe(0);
    expect(pending.stdout).toMatch(new RegExp(`^✔ SETTINGS +secret "${name}" \\(AWSPENDING\\): tls to localhost`, 'm'));
    expect(pending.stdout).toMatch(/^✔ LOGIN/m);

    // The same with the CLI in-process (the environment applies while it runs).
    const current = await runCli(['check', '--secret-id', name], { env: aws.awsEnv() });
    expect(current.code).toBe(1);
    expect(current.stdout).toMatch(/^✖ LOGIN/m);
    expect(current.stdout + current.stderr).not.toMatch(/old-password|${user.password}/);
  });

  test('a missing secret is explained', async () => {
    const aws = moto();
    const r = await runCli(['check', '--secret-id', 'cli/does-not-exist'], { env: aws.awsEnv() });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^✖ SETTINGS +The secret "cli\/does-not-exist" does not exist/m);
  });
});
