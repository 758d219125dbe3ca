import { describe, expect, it } from 'vitest';
import { isMailboxId, toMailboxId } from '../../functions/poller/contract/mailbox-id.js';
import {
  POLLER_ENV,
  pollerEnvironment,
  pollerInputProblems,
  readPollerConfig as readConfig,
} from '../../functions/poller/contract/poller-env.js';
import { parseStartAt } from '../../functions/poller/contract/start-at.js';
import type { StartAt } from '../../functions/poller/core/types.js';
import { ConfigurationError } from '../../functions/poller/errors.js';
import { parseConfig } from '../../lib/config.js';

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

describe('readPollerConfig (the Lambda reads its environment)', () => {
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
    expect(err.message).toContain('MAX_MESSAGES_PER_RUN must be an integer from 1 to 100000');
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

  it.each(['0', '-5', '1.5', 'ten', '1e400', 'NaN', '100001'])('rejects MAX_MESSAGES_PER_RUN=%j', (value) => {
    expect(configError({ ...complete, MAX_MESSAGES_PER_RUN: value }).message).toContain(
      'MAX_MESSAGES_PER_RUN must be an integer from 1 to 100000',
    );
  });

  it.each([
    ['1', 1],
    ['5000', 5_000],
    ['1e3', 1_000],
  ])('accepts MAX_MESSAGES_PER_RUN=%j', (value, expected) => {
    expect(readConfig({ ...complete, MAX_MESSAGES_PER_RUN: value }).maxMessagesPerRun).toBe(expected);
  });

  it.each(['a', 'support-1', 'sales-eu-2', 'a'.repeat(32)])('accepts MAILBOX_ID=%j', (id) => {
    expect(readConfig({ ...complete, MAILBOX_ID: id }).mailboxId).toBe(id);
  });

  it.each([
    '-support',
    '.hidden',
    'has space',
    'a#b',
    'a/b',
    'ü',
    'Support',
    'team.support_2',
    'a--b',
    'a-',
    '1st',
    'a'.repeat(33),
  ])('rejects MAILBOX_ID=%j', (id) => {
    const err = configError({ ...complete, MAILBOX_ID: id });
    expect(err.message).toContain('MAILBOX_ID must be 1 to 32 characters: lowercase letters, digits');
    expect(err.message).not.toContain(`"${id}"`);
  });

  it.each(['-1', '1.5', 'two', '17'])('rejects PARSE_WORKERS=%j', (workers) => {
    expect(configError({ ...complete, PARSE_WORKERS: workers }).message).toContain(
      'PARSE_WORKERS must be an integer from 0 to 16',
    );
  });

  it('parses in the drain thread unless PARSE_WORKERS asks for workers', () => {
    expect(readConfig(complete).parseWorkers).toBeUndefined();
    expect(readConfig({ ...complete, PARSE_WORKERS: '0' }).parseWorkers).toBeUndefined();
    expect(readConfig({ ...complete, PARSE_WORKERS: '2' }).parseWorkers).toBe(2);
  });

  it('rejects an EVENT_SOURCE EventBridge would refuse', () => {
    expect(configError({ ...complete, EVENT_SOURCE: 'aws.mail' }).message).toContain('EVENT_SOURCE must be');
  });
});

describe('pollerEnvironment (the construct writes the environment)', () => {
  it('is the inverse of readPollerConfig, with the same names and defaults', () => {
    const env = pollerEnvironment({
      mailboxId: 'support',
      secretId: 'imap/support',
      checkpointTable: 'T',
      eventBusName: 'B',
      maxMessagesPerRun: 50,
      rawBucket: 'raw',
      staleAfterSeconds: 180,
      parseWorkers: 1,
    });
    expect(Object.keys(env).sort()).toEqual(Object.values(POLLER_ENV).sort());
    expect(readConfig(env)).toEqual({
      mailboxId: 'support',
      secretId: 'imap/support',
      checkpointTable: 'T',
      eventBusName: 'B',
      eventSource: 'imap-event-source',
      startAt: { kind: 'now' },
      maxMessagesPerRun: 50,
      rawBucket: 'raw',
      staleAfterSeconds: 180,
      parseWorkers: 1,
    });
  });

  it('names each field the Lambda would refuse, never the value', () => {
    expect(
      pollerInputProblems({
        mailboxId: 'Support_1',
        eventSource: 'aws.x',
        startAt: '2026-02-30',
        maxMessagesPerRun: 0,
      }),
    ).toEqual([
      'mailboxId: 1 to 32 characters: lowercase letters, digits and single inner hyphens, starting with a letter',
      'eventSource: must be 1-256 of A-Z a-z 0-9 . _ - / and must not start with "aws."',
      'startAt: must be "now", "all" or an ISO 8601 date such as 2026-11-01 or 2026-11-01T08:00:00Z (a time without a zone is UTC)',
      'maxMessagesPerRun: must be an integer from 1 to 100000',
    ]);
    expect(pollerInputProblems({ mailboxId: 'support' })).toEqual([]);
  });
});

describe('the mailbox id: one rule for cdk.json, the construct, the Lambda and the CLI', () => {
  const ids = [
    'support',
    'sales-eu',
    'a1',
    'Support',
    'team.support',
    'a--b',
    'a-',
    '-a',
    '1a',
    'a'.repeat(32),
    'a'.repeat(33),
  ];

  it.each(ids)('%j: cdk.json and the Lambda agree', (id) => {
    const synth = (() => {
      try {
        parseConfig({ mailboxes: [{ id, secretName: 's' }] });
        return true;
      } catch {
        return false;
      }
    })();
    const lambda = (() => {
      try {
        readConfig({ ...complete, MAILBOX_ID: id });
        return true;
      } catch {
        return false;
      }
    })();
    expect(lambda).toBe(synth);
    expect(isMailboxId(id)).toBe(synth);
  });

  it.each([
    ['mailbox', 'mailbox'],
    ['Support.Mailbox', 'support-mailbox'],
    ['prod/support', 'prod-support'],
    ['2026_inbox', 'inbox'],
    ['--', 'local'],
    ['ü', 'local'],
    ['x'.repeat(40), 'x'.repeat(32)],
    [`${'a'.repeat(31)}-b`, 'a'.repeat(31)],
  ])('the CLI makes %j into the valid id %j', (name, id) => {
    expect(toMailboxId(name)).toBe(id);
    expect(isMailboxId(toMailboxId(name))).toBe(true);
  });
});

describe('parseStartAt: one meaning everywhere', () => {
  it.each<[string | undefined, StartAt]>([
    [undefined, { kind: 'now' }],
    ['', { kind: 'now' }],
    ['   ', { kind: 'now' }],
    ['now', { kind: 'now' }],
    ['NOW', { kind: 'now' }],
    [' now ', { kind: 'now' }],
    ['all', { kind: 'all' }],
    ['All', { kind: 'all' }],
    ['2026-11-01', { kind: 'since', since: new Date('2026-11-01T00:00:00Z') }],
    ['2026-11-01T00:00:00Z', { kind: 'since', since: new Date('2026-11-01T00:00:00Z') }],
    ['2026-11-01T10:30:00.250Z', { kind: 'since', since: new Date('2026-11-01T10:30:00.250Z') }],
    ['2026-11-01T10:30:00+01:00', { kind: 'since', since: new Date('2026-11-01T09:30:00Z') }],
    ['2026-11-01T10:30:00+0100', { kind: 'since', since: new Date('2026-11-01T09:30:00Z') }],
    ['2026-11-01T10:30:00-0500', { kind: 'since', since: new Date('2026-11-01T15:30:00Z') }],
    ['2026-11-01T10:30', { kind: 'since', since: new Date('2026-11-01T10:30:00Z') }],
    ['2026-11-01 10:30:00', { kind: 'since', since: new Date('2026-11-01T10:30:00Z') }],
    ['2028-02-29', { kind: 'since', since: new Date('2028-02-29T00:00:00Z') }],
    ['2026-12-31T23:59:59Z', { kind: 'since', since: new Date('2026-12-31T23:59:59Z') }],
    ['0099-01-01', { kind: 'since', since: new Date('0099-01-01T00:00:00Z') }],
  ])('accepts %j', (value, expected) => {
    expect(parseStartAt(value)).toEqual(expected);
  });

  it.each([
    'yesterday',
    'later',
    'everything',
    '1700000000',
    '2026-13-01',
    '2026-02-30',
    '2026-02-30T00:00:00Z',
    '2026-02-29',
    '2026-04-31',
    '2026-11-00',
    '2026/11/01',
    '01.11.2026',
    '2026-11-01T24:00:00Z',
    '2026-11-01T25:00:00Z',
    '2026-11-01T10:60Z',
    '2026-11-01T10:30:60Z',
    '2026-11-01T10:30:00+25:00',
    '2026-11-01T10:30:00+01:60',
    '2026-11-01T10:30:00+1',
    '2026-11-01Tnoon',
    'Sun, 01 Nov 2026 00:00:00 GMT',
    '2026-11-01 garbage',
    'now please',
  ])('rejects %j', (value) => {
    expect(parseStartAt(value)).toBeUndefined();
  });

  it('reads a time without a zone as UTC whatever the host zone is', () => {
    const saved = process.env.TZ;
    try {
      for (const zone of ['UTC', 'Europe/Berlin', 'Pacific/Kiritimati', 'America/Los_Angeles']) {
        process.env.TZ = zone;
        expect(parseStartAt('2026-11-01T08:00:00')).toEqual({ kind: 'since', since: new Date('2026-11-01T08:00:00Z') });
      }
    } finally {
      if (saved === undefined) delete process.env.TZ;
      else process.env.TZ = saved;
    }
  });

  it.each([
    ['2026-02-30', false],
    ['2026-11-01T08:00:00+0100', true],
    ['2026-11-01T08:00:00+01:00', true],
    ['2026-11-01T08:00:00', true],
    ['yesterday', false],
  ])('cdk.json startAt %j: synth and the Lambda agree (valid: %s)', (startAt, valid) => {
    const synth = () => parseConfig({ mailboxes: [{ id: 'support', secretName: 's', startAt }] });
    const lambda = () => readConfig({ ...complete, START_AT: startAt });
    if (valid) {
      expect(synth).not.toThrow();
      expect(lambda).not.toThrow();
    } else {
      expect(synth).toThrow(/startAt: must be "now", "all" or an ISO 8601 date/);
      expect(lambda).toThrow(/START_AT must be "now", "all" or an ISO 8601 date/);
    }
  });
});
