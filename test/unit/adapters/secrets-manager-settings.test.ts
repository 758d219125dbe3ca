import {
  GetSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type SecretsManagerSettingsOptions,
  SecretsManagerSettingsSource,
} from '../../../functions/poller/adapters/secrets-manager-settings.js';
import { SecretAccessError, SettingsValidationError } from '../../../functions/poller/errors.js';
import { settings } from '../fakes.js';

const sm = mockClient(SecretsManagerClient);
const SECRET_ID = 'imap/support';
const PASSWORD = 'Rotated-Secret-42!';
const secret = (password = PASSWORD): string =>
  JSON.stringify({ host: 'imap.example.com', username: 'support@example.com', password });

let clock: number;
beforeEach(() => {
  sm.reset();
  clock = 1_000_000;
});
afterEach(() => sm.reset());

function source(options: Partial<SecretsManagerSettingsOptions> = {}): SecretsManagerSettingsSource {
  return new SecretsManagerSettingsSource(new SecretsManagerClient({ region: 'eu-central-1' }), {
    secretId: SECRET_ID,
    now: () => clock,
    ...options,
  });
}

const named = (name: string): Error => Object.assign(new Error(`${name}: service message`), { name });
const calls = (): number => sm.commandCalls(GetSecretValueCommand).length;

describe('SecretsManagerSettingsSource', () => {
  it('reads AWSCURRENT by default and validates the settings', async () => {
    sm.on(GetSecretValueCommand).resolves({ SecretString: secret() });
    expect(await source().load()).toEqual(settings({ password: PASSWORD }));
    expect(sm.commandCalls(GetSecretValueCommand)[0]!.args[0].input).toEqual({
      SecretId: SECRET_ID,
      VersionStage: 'AWSCURRENT',
    });
  });

  it('always names the configured version stage, also on fresh reads', async () => {
    sm.on(GetSecretValueCommand).resolves({ SecretString: secret() });
    const s = source({ versionStage: 'AWSPENDING' });
    await s.load();
    await s.load({ fresh: true });
    expect(sm.commandCalls(GetSecretValueCommand).map((c) => c.args[0].input)).toEqual([
      { SecretId: SECRET_ID, VersionStage: 'AWSPENDING' },
      { SecretId: SECRET_ID, VersionStage: 'AWSPENDING' },
    ]);
  });

  it('reuses the settings within the TTL and re-reads after it', async () => {
    sm.on(GetSecretValueCommand)
      .resolvesOnce({ SecretString: secret('first-password') })
      .resolves({ SecretString: secret('second-password') });
    const s = source({ cacheTtlMs: 60_000 });
    expect((await s.load()).password).toBe('first-password');
    clock += 59_999;
    expect((await s.load()).password).toBe('first-password');
    expect(calls()).toBe(1);
    clock += 1;
    expect((await s.load()).password).toBe('second-password');
    expect(calls()).toBe(2);
    // The new read starts a new TTL.
    clock += 30_000;
    await s.load();
    expect(calls()).toBe(2);
  });

  it('defaults the TTL to five minutes: a 1-minute schedule reads the secret on one poll in five', async () => {
    sm.on(GetSecretValueCommand).resolves({ SecretString: secret() });
    const s = source();
    await s.load();
    for (let i = 0; i < 4; i++) {
      clock += 60_000;
      await s.load();
    }
    clock += 59_000;
    await s.load();
    expect(calls()).toBe(1);
    clock += 1_000;
    await s.load();
    expect(calls()).toBe(2);
  });

  it('bypasses the cache with fresh and keeps the fresh value for later loads', async () => {
    sm.on(GetSecretValueCommand)
      .resolvesOnce({ SecretString: secret('old-password') })
      .resolves({ SecretString: secret('new-password') });
    const s = source();
    expect((await s.load()).password).toBe('old-password');
    expect((await s.load({ fresh: true })).password).toBe('new-password');
    expect((await s.load()).password).toBe('new-password');
    expect(calls()).toBe(2);
  });

  it('caches nothing when the secret is invalid', async () => {
    sm.on(GetSecretValueCommand).resolvesOnce({ SecretString: '{"host":' }).resolves({ SecretString: secret() });
    const s = source();
    await expect(s.load()).rejects.toBeInstanceOf(SettingsValidationError);
    expect((await s.load()).password).toBe(PASSWORD);
    expect(calls()).toBe(2);
  });

  it.each<[string, Error, boolean, RegExp]>([
    [
      'ResourceNotFoundException',
      new ResourceNotFoundException({ message: "Secrets Manager can't find the specified secret.", $metadata: {} }),
      false,
      /does not exist/,
    ],
    ['AccessDeniedException', named('AccessDeniedException'), false, /was denied/],
    ['DecryptionFailure', named('DecryptionFailure'), false, /could not be decrypted/],
    ['InternalServiceError', named('InternalServiceError'), true, /failed \(InternalServiceError\)/],
    ['ThrottlingException', named('ThrottlingException'), true, /failed \(ThrottlingException\)/],
  ])('maps %s to SecretAccessError (retryable: %s)', async (_name, error, retryable, message) => {
    sm.on(GetSecretValueCommand).rejects(error);
    const err = await source()
      .load()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SecretAccessError);
    expect(err).toMatchObject({ code: 'SECRET_UNAVAILABLE', retryable, cause: error });
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).toContain(`"${SECRET_ID}"`);
  });

  it('tells how to grant access when denied', async () => {
    sm.on(GetSecretValueCommand).rejects(named('AccessDeniedException'));
    const err = (await source()
      .load()
      .catch((e: unknown) => e)) as SecretAccessError;
    expect(err.hint).toContain('secretsmanager:GetSecretValue');
  });

  it.each([
    ['a binary secret', { SecretBinary: new Uint8Array([1, 2, 3]) }],
    ['an empty string', { SecretString: '' }],
    ['only whitespace', { SecretString: '  \n' }],
  ])('rejects %s as SecretAccessError', async (_name, response) => {
    sm.on(GetSecretValueCommand).resolves(response);
    const err = await source()
      .load()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SecretAccessError);
    expect((err as Error).message).toContain('has no string value');
  });

  it.each([
    ['cut JSON', `{"host":"imap.example.com","username":"u","password":"${PASSWORD}"`],
    ['key=value text', `host=imap.example.com\npassword=${PASSWORD}`],
    ['JSON with a trailing comma', `{"host":"imap.example.com","password":"${PASSWORD}",}`],
  ])('rejects %s as SettingsValidationError without the secret content', async (_name, text) => {
    sm.on(GetSecretValueCommand).resolves({ SecretString: text });
    const err = await source()
      .load()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SettingsValidationError);
    const e = err as SettingsValidationError;
    expect(e.problems).toEqual(['(root): is not valid JSON']);
    expect(e.message).toContain(`secret "${SECRET_ID}"`);
    for (const shown of [e.message, e.explanation, JSON.stringify(e), String(e.cause ?? '')]) {
      expect(shown).not.toContain(PASSWORD);
      expect(shown).not.toContain('imap.example.com');
    }
  });

  it('reports invalid fields by name only', async () => {
    sm.on(GetSecretValueCommand).resolves({
      SecretString: JSON.stringify({ host: 'imap.example.com:993', username: 'u', pasword: PASSWORD }),
    });
    const err = (await source()
      .load()
      .catch((e: unknown) => e)) as SettingsValidationError;
    expect(err).toBeInstanceOf(SettingsValidationError);
    expect(err.problems.map((p) => p.split(':')[0])).toEqual(['pasword', 'host', 'password']);
    expect(err.message).not.toContain(PASSWORD);
    expect(err.message).not.toContain('imap.example.com:993');
  });
});
