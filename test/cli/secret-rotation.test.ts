/**
 * `secret stage | verify | promote | rollback` against moto (Secrets Manager staging labels) and Dovecot
 * (verify logs in with the pending value): a password rotation end to end, no version ids by hand.
 */
import { DescribeSecretCommand, GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { dovecot, mailboxSecret, moto } from '../support/env.js';
import { uniqueName } from '../support/moto.js';

const aws = moto();
const env = aws.awsEnv();

async function stages(secretId: string): Promise<Record<string, string[]>> {
  const res = await aws.secrets.send(new DescribeSecretCommand({ SecretId: secretId }));
  return Object.fromEntries(Object.entries(res.VersionIdsToStages ?? {}).filter(([, s]) => s.length > 0));
}

async function valueAt(secretId: string, stage: string): Promise<Record<string, unknown>> {
  const res = await aws.secrets.send(new GetSecretValueCommand({ SecretId: secretId, VersionStage: stage }));
  return JSON.parse(res.SecretString!) as Record<string, unknown>;
}

describe('secret rotation', () => {
  it('stage -> verify -> promote -> rollback: a password change without copying version ids', async () => {
    const imap = dovecot();
    const user = await imap.createUser();
    const secretId = uniqueName('imap-event-source/rotate');
    const current = mailboxSecret(imap, user);
    await aws.createSecret(secretId, current);
    const [originalVersion] = Object.keys(await stages(secretId));

    // The mail admin changes the password on the server; the secret still has the old one.
    const newPassword = 'rotated-Pa55word';
    await imap.setPassword(user, newPassword);
    const next = { ...current, password: newPassword };

    const staged = await runCli(['secret', 'stage', '--secret-id', secretId], { env, input: JSON.stringify(next) });
    expect(staged.stderr).toBe('');
    expect(staged.code).toBe(0);
    const pendingVersion = /version (\S+) of secret/.exec(staged.stdout)![1]!;
    expect(staged.stdout).toContain('labelled AWSPENDING; the poller still uses AWSCURRENT');
    expect(staged.stdout).toContain(`Next: imap-event-source secret verify --secret-id ${secretId}`);
    expect(await stages(secretId)).toEqual({ [originalVersion!]: ['AWSCURRENT'], [pendingVersion]: ['AWSPENDING'] });
    expect(await valueAt(secretId, 'AWSCURRENT')).toMatchObject({ password: user.password });

    const verified = await runCli(['secret', 'verify', '--secret-id', secretId], { env });
    expect(verified.code).toBe(0);
    expect(verified.stdout).toContain(`✔ SETTINGS  secret "${secretId}" (AWSPENDING)`);
    expect(verified.stdout).toMatch(/✔ LOGIN/);

    const promoted = await runCli(['secret', 'promote', '--secret-id', secretId], { env });
    expect(promoted.code).toBe(0);
    expect(promoted.stdout).toContain(
      `✔ PROMOTED  AWSCURRENT of "${secretId}" is version ${pendingVersion}; version ${originalVersion} is AWSPREVIOUS`,
    );
    expect(await stages(secretId)).toEqual({ [originalVersion!]: ['AWSPREVIOUS'], [pendingVersion]: ['AWSCURRENT'] });
    expect(await valueAt(secretId, 'AWSCURRENT')).toMatchObject({ password: newPassword });

    const rolledBack = await runCli(['secret', 'rollback', '--secret-id', secretId], { env });
    expect(rolledBack.code).toBe(0);
    expect(rolledBack.stdout).toContain(
      `AWSCURRENT of "${secretId}" is version ${originalVersion} again; version ${pendingVersion} is AWSPREVIOUS`,
    );
    expect(await stages(secretId)).toEqual({ [originalVersion!]: ['AWSCURRENT'], [pendingVersion]: ['AWSPREVIOUS'] });
    expect(await valueAt(secretId, 'AWSCURRENT')).toMatchObject({ password: user.password });

    const text = [staged, verified, promoted, rolledBack].map((r) => r.stdout + r.stderr).join('');
    expect(text).not.toContain(newPassword);
    expect(text).not.toContain(user.password);
  }, 180_000);

  it('stage refuses an invalid value (nothing stored); promote and rollback without a version to move are explained', async () => {
    const imap = dovecot();
    const user = await imap.createUser();
    const secretId = uniqueName('imap-event-source/rotate');
    await aws.createSecret(secretId, mailboxSecret(imap, user));
    const before = await stages(secretId);

    const invalid = await runCli(['secret', 'stage', '--secret-id', secretId], {
      env,
      input: JSON.stringify({ host: 'imap.example.com', username: 'x', pasword: 'typo-secret' }),
    });
    expect(invalid.code).toBe(1);
    expect(invalid.stdout).toContain('✖ SETTINGS  stdin is invalid');
    expect(invalid.stdout).toContain('pasword: unknown field (did you mean "password"?)');
    expect(invalid.stdout).not.toContain('typo-secret');
    expect(await stages(secretId)).toEqual(before);

    const noPending = await runCli(['secret', 'promote', '--secret-id', secretId], { env });
    expect(noPending.code).toBe(1);
    expect(noPending.stderr).toContain(
      `✖ The secret "${secretId}" has no AWSPENDING version to promote. [CONFIGURATION_INVALID]`,
    );
    expect(noPending.stderr).toContain(`Fix: stage one first: imap-event-source secret stage --secret-id ${secretId}`);
    const noPrevious = await runCli(['secret', 'rollback', '--secret-id', secretId], { env });
    expect(noPrevious.code).toBe(1);
    expect(noPrevious.stderr).toContain('has no AWSPREVIOUS version to roll back to');
  }, 180_000);

  it('verify fails at LOGIN for a wrong pending password; a missing secret and missing options are explained', async () => {
    const imap = dovecot();
    const user = await imap.createUser();
    const secretId = uniqueName('imap-event-source/rotate');
    await aws.createSecret(secretId, mailboxSecret(imap, user));
    await runCli(['secret', 'stage', '--secret-id', secretId], {
      env,
      input: JSON.stringify({ ...mailboxSecret(imap, user), password: 'not-the-password-9' }),
    });
    const verify = await runCli(['secret', 'verify', '--secret-id', secretId], { env });
    expect(verify.code).toBe(1);
    expect(verify.stdout).toMatch(/✖ LOGIN/);
    expect(verify.stdout + verify.stderr).not.toContain('not-the-password-9');

    const missing = await runCli(['secret', 'promote', '--secret-id', 'no/such/secret'], { env });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(
      'Secrets Manager refused the describe of secret "no/such/secret" (ResourceNotFoundException).',
    );
    const usage = await runCli(['secret', 'promote'], { env });
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('secret promote needs --secret-id ID');
  }, 180_000);
});
