import { describe, expect, it } from 'vitest';
import { readConfig } from '../../functions/poller/config.js';
import { ConfigurationError } from '../../functions/poller/errors.js';

const complete = {
  MAILBOX_ID: 'support',
  SECRET_ID: 'imap/support',
  CHECKPOINT_TABLE: 'Checkpoints',
  EVENT_BUS_NAME: 'mail-bus',
};

function configError(env: NodeJS.ProcessEnv): ConfigurationError {
  try {
    readConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigurationError);
    return err as ConfigurationError;
  }
  throw new Error('expected a ConfigurationError');
}

describe('readConfig', () => {
  it('reads the required variables and applies the defaults', () => {
    expect(readConfig(complete)).toEqual({
      mailboxId: 'support',
      secretId: 'imap/support',
      checkpointTable: 'Checkpoints',
      eventBusName: 'mail-bus',
      eventSource: 'imap-event-source',
      startAt: { kind: 'now' },
      maxMessagesPerRun: 1_000,
    });
  });

  it('reads every optional variable', () => {
    const config = readConfig({
      ...complete,
      EVENT_SOURCE: 'com.example.mail',
      START_AT: '2026-11-01T00:00:00Z',
      RAW_BUCKET: 'raw-mail',
      MAX_MESSAGES_PER_RUN: '250',
    });
    expect(config).toEqual({
      ...readConfig(complete),
      eventSource: 'com.example.mail',
      startAt: { kind: 'since', since: new Date('2026-11-01T00:00:00Z') },
      rawBucket: 'raw-mail',
      maxMessagesPerRun: 250,
    });
  });

  it('trims values and treats blank optional ones as unset', () => {
    const config = readConfig({
      MAILBOX_ID: ' support ',
      SECRET_ID: ' arn:aws:secretsmanager:eu-central-1:123456789012:secret:imap-AbCdEf ',
      CHECKPOINT_TABLE: ' T ',
      EVENT_BUS_NAME: ' B ',
      EVENT_SOURCE: '  ',
      RAW_BUCKET: ' ',
      START_AT: ' all ',
      MAX_MESSAGES_PER_RUN: '',
    });
    expect(config).toEqual({
      mailboxId: 'support',
      secretId: 'arn:aws:secretsmanager:eu-central-1:123456789012:secret:imap-AbCdEf',
      checkpointTable: 'T',
      eventBusName: 'B',
      eventSource: 'imap-event-source',
      startAt: { kind: 'all' },
      maxMessagesPerRun: 1_000,
    });
    expect(config).not.toHaveProperty('rawBucket');
  });

  it.each(['MAILBOX_ID', 'SECRET_ID', 'CHECKPOINT_TABLE', 'EVENT_BUS_NAME'])(
    'requires %s (missing or blank)',
    (name) => {
      for (const value of [undefined, '', '   ']) {
        const err = configError({ ...complete, [name]: value });
        expect(err.message).toContain(`${name} is not set`);
        expect(err.code).toBe('CONFIGURATION_INVALID');
        expect(err.retryable).toBe(false);
        expect(err.hint).toMatch(/environment variables/);
      }
    },
  );

  it('names every missing variable in one error', () => {
    const err = configError({});
    for (const name of ['MAILBOX_ID', 'SECRET_ID', 'CHECKPOINT_TABLE', 'EVENT_BUS_NAME'])
      expect(err.message).toContain(`${name} is not set`);
    expect(err.message).not.toContain('START_AT');
    expect(err.message).not.toContain('MAILBOX_ID must be');
  });

  it('lists an invalid START_AT and MAX_MESSAGES_PER_RUN together with the missing variables', () => {
    const err = configError({ SECRET_ID: 's', START_AT: 'yesterday', MAX_MESSAGES_PER_RUN: 'many' });
    expect(err.message).toContain('MAILBOX_ID is not set');
    expect(err.message).toContain('START_AT must be "now", "all" or an ISO 8601 date');
    expect(err.message).toContain('MAX_MESSAGES_PER_RUN must be a positive integer');
    expect(err.message).not.toContain('SECRET_ID');
  });

  it.each(['yesterday', 'everything', '2026-13-45', '01.11.2026', 'now!'])('rejects START_AT=%j', (value) => {
    expect(configError({ ...complete, START_AT: value }).message).toContain('START_AT must be');
  });

  it.each([
    ['now', { kind: 'now' }],
    ['NOW', { kind: 'now' }],
    ['all', { kind: 'all' }],
    ['2026-11-01', { kind: 'since', since: new Date('2026-11-01T00:00:00Z') }],
  ])('accepts START_AT=%j', (value, startAt) => {
    expect(readConfig({ ...complete, START_AT: value }).startAt).toEqual(startAt);
  });

  it.each(['0', '-5', '1.5', 'ten', '1e400', 'NaN', ' '])('rejects MAX_MESSAGES_PER_RUN=%j', (value) => {
    expect(configError({ ...complete, MAX_MESSAGES_PER_RUN: value }).message).toContain(
      'MAX_MESSAGES_PER_RUN must be a positive integer',
    );
  });

  it.each([
    ['1', 1],
    ['5000', 5_000],
    ['1e3', 1_000],
  ])('accepts MAX_MESSAGES_PER_RUN=%j', (value, expected) => {
    expect(readConfig({ ...complete, MAX_MESSAGES_PER_RUN: value }).maxMessagesPerRun).toBe(expected);
  });

  it.each(['a', 'support-1', 'team.support_2', 'A'.repeat(64)])('accepts MAILBOX_ID=%j', (id) => {
    expect(readConfig({ ...complete, MAILBOX_ID: id }).mailboxId).toBe(id);
  });

  it.each(['-support', '.hidden', 'has space', 'a#b', 'a/b', 'ü', 'A'.repeat(65)])('rejects MAILBOX_ID=%j', (id) => {
    const err = configError({ ...complete, MAILBOX_ID: id });
    expect(err.message).toContain('MAILBOX_ID must be 1-64 characters');
    expect(err.message).not.toContain(id);
  });
});
