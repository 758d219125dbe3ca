import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, isScheduleExpression, parseConfig } from '../../lib/config.js';

const SUPPORT = { id: 'support', secretName: 'imap-event-source/support' };
const ARN = 'arn:aws:secretsmanager:eu-central-1:123456789012:secret:imap/sales-AbC123';

/** The problems parseConfig reports for `raw` (fails the test if it accepts it). */
function problems(raw: unknown): readonly string[] {
  try {
    parseConfig(raw);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error('expected the configuration to be rejected');
}

describe('parseConfig', () => {
  it('accepts the committed cdk.json example', () => {
    const cdkJson = JSON.parse(readFileSync(new URL('../../cdk.json', import.meta.url), 'utf8'));
    const config = parseConfig(cdkJson.context.imapEventSource);
    expect(config.mailboxes.map((m) => m.id)).toEqual(['support']);
  });

  it('applies the defaults', () => {
    expect(parseConfig({ mailboxes: [SUPPORT] })).toEqual({
      stackName: 'ImapEventSource',
      mode: 'per-mailbox',
      busName: 'imap-event-source',
      createBus: true,
      eventSource: 'imap-event-source',
      reserveConcurrency: true,
      mailboxes: [
        { ...SUPPORT, createSecret: false, schedule: 'rate(1 minute)', startAt: 'now', alarmIntervalMinutes: 1 },
      ],
      rawMessageStorage: { enabled: false, expirationDays: 30 },
      alarms: { staleAfterIntervals: 3, failingAfterRuns: 3, createTopic: false },
      archive: { enabled: false, retentionDays: 30 },
      schemaRegistry: { enabled: false, registryName: 'imap-event-source' },
    });
  });

  it('keeps every option given', () => {
    const config = parseConfig({
      stackName: 'Mail-Prod',
      busName: 'shared-bus',
      createBus: false,
      eventSource: 'acme.mail',
      reserveConcurrency: false,
      mailboxes: [
        {
          id: 'sales-eu',
          secretArn: ARN,
          secretKmsKeyArn: 'arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab',
          schedule: 'cron(0/5 * * * ? *)',
          startAt: '2026-01-31T08:00:00Z',
          maxMessagesPerRun: 200,
        },
        { id: 'hr', createSecret: true, startAt: 'all', schedule: 'rate(5 minutes)' },
      ],
      vpc: {
        vpcId: 'vpc-0123456789abcdef0',
        imapServerCidr: '10.0.12.7/32',
        imapPort: 143,
        subnetIds: ['subnet-0123456789abcdef0'],
        endpoints: true,
      },
      rawMessageStorage: { enabled: true, expirationDays: 7 },
    });
    expect(config.mailboxes[0]).toMatchObject({
      id: 'sales-eu',
      secretArn: ARN,
      createSecret: false,
      maxMessagesPerRun: 200,
    });
    expect(config.mailboxes[0]!.secretName).toBeUndefined();
    expect(config.mailboxes[1]).toMatchObject({ id: 'hr', createSecret: true, secretName: 'imap-event-source/hr' });
    expect(config.vpc).toEqual({
      vpcId: 'vpc-0123456789abcdef0',
      imapServerCidr: '10.0.12.7/32',
      imapPort: 143,
      subnetIds: ['subnet-0123456789abcdef0'],
      endpoints: true,
    });
    expect(config.rawMessageStorage).toEqual({ enabled: true, expirationDays: 7 });
    expect(config).toMatchObject({
      busName: 'shared-bus',
      createBus: false,
      eventSource: 'acme.mail',
      reserveConcurrency: false,
    });
  });

  it.each([
    ['no config at all', undefined, /imapEventSource: must be an object/],
    ['no mailboxes', {}, /^mailboxes: required/],
    ['an empty mailbox list', { mailboxes: [] }, /^mailboxes: required/],
    [
      'a typo in a mailbox field',
      { mailboxes: [{ ...SUPPORT, schedul: 'rate(1 minute)' }] },
      /^mailbox "support"\.schedul: unknown field/,
    ],
    ['a typo in a stack field', { mailboxes: [SUPPORT], busname: 'x' }, /^imapEventSource\.busname: unknown field/],
    [
      'an id with capitals',
      { mailboxes: [{ ...SUPPORT, id: 'Support' }] },
      /^mailboxes\[0\]\.id: required; 1 to 32 characters/,
    ],
    ['an id with an underscore', { mailboxes: [{ ...SUPPORT, id: 'sup_port' }] }, /^mailboxes\[0\]\.id:/],
    ['an id that is too long', { mailboxes: [{ ...SUPPORT, id: 'a'.repeat(33) }] }, /^mailboxes\[0\]\.id:/],
    ['a missing id', { mailboxes: [{ secretName: 'x' }] }, /^mailboxes\[0\]\.id: required/],
    [
      'no secret',
      { mailboxes: [{ id: 'support' }] },
      /^mailbox "support"\.secretName: required: give secretName or secretArn/,
    ],
    [
      'both secret name and ARN',
      { mailboxes: [{ ...SUPPORT, secretArn: ARN }] },
      /^mailbox "support"\.secretArn: give either/,
    ],
    [
      'a partial secret ARN',
      { mailboxes: [{ id: 'support', secretArn: ARN.slice(0, -7) }] },
      /^mailbox "support"\.secretArn: must be the complete ARN/,
    ],
    [
      'createSecret with an ARN',
      { mailboxes: [{ id: 'support', createSecret: true, secretArn: ARN }] },
      /^mailbox "support"\.secretArn: cannot be combined with createSecret/,
    ],
    [
      'a KMS key for a created secret',
      {
        mailboxes: [
          { id: 'support', createSecret: true, secretKmsKeyArn: 'arn:aws:kms:eu-central-1:123456789012:key/abc' },
        ],
      },
      /^mailbox "support"\.secretKmsKeyArn: only for imported secrets/,
    ],
    [
      'a KMS alias instead of a key ARN',
      { mailboxes: [{ ...SUPPORT, secretKmsKeyArn: 'alias/mail' }] },
      /^mailbox "support"\.secretKmsKeyArn: must be a KMS key ARN/,
    ],
    [
      'a plural unit for 1',
      { mailboxes: [{ ...SUPPORT, schedule: 'rate(1 minutes)' }] },
      /^mailbox "support"\.schedule: must be an EventBridge schedule expression/,
    ],
    [
      'free text as schedule',
      { mailboxes: [{ ...SUPPORT, schedule: 'every minute' }] },
      /^mailbox "support"\.schedule:/,
    ],
    [
      'an unknown startAt',
      { mailboxes: [{ ...SUPPORT, startAt: 'yesterday' }] },
      /^mailbox "support"\.startAt: must be "now", "all" or an ISO 8601 date/,
    ],
    ['an impossible date', { mailboxes: [{ ...SUPPORT, startAt: '2026-13-45' }] }, /^mailbox "support"\.startAt:/],
    [
      'a day the month does not have',
      { mailboxes: [{ ...SUPPORT, startAt: '2026-02-30' }] },
      /^mailbox "support"\.startAt:/,
    ],
    [
      'a zero message cap',
      { mailboxes: [{ ...SUPPORT, maxMessagesPerRun: 0 }] },
      /^mailbox "support"\.maxMessagesPerRun: must be an integer from 1/,
    ],
    [
      'creating the default bus',
      { mailboxes: [SUPPORT], busName: 'default' },
      /^busName: "default" is the account's default bus/,
    ],
    [
      'an AWS event source',
      { mailboxes: [SUPPORT], eventSource: 'aws.mail' },
      /^eventSource: must be 1-256 .* must not start with "aws\."/,
    ],
    [
      'a string for a flag',
      { mailboxes: [SUPPORT], reserveConcurrency: 'no' },
      /^reserveConcurrency: must be true or false/,
    ],
    [
      'a VPC without the IMAP server',
      { mailboxes: [SUPPORT], vpc: { vpcId: 'vpc-0123456789abcdef0' } },
      /^vpc\.imapServerCidr: required/,
    ],
    [
      'a VPC with a bad CIDR',
      { mailboxes: [SUPPORT], vpc: { vpcId: 'vpc-0123456789abcdef0', imapServerCidr: '10.0.300.1/32' } },
      /^vpc\.imapServerCidr:/,
    ],
    [
      'a VPC name instead of an id',
      { mailboxes: [SUPPORT], vpc: { vpcId: 'mail-vpc', imapServerCidr: '10.0.0.0/24' } },
      /^vpc\.vpcId: must be a VPC id/,
    ],
    [
      'raw storage without enabled',
      { mailboxes: [SUPPORT], rawMessageStorage: { expirationDays: 5 } },
      /^rawMessageStorage\.enabled: required/,
    ],
    [
      'a zero expiry',
      { mailboxes: [SUPPORT], rawMessageStorage: { enabled: true, expirationDays: 0 } },
      /^rawMessageStorage\.expirationDays: must be an integer/,
    ],
  ])('rejects %s, naming the field', (_name, raw, message) => {
    expect(problems(raw)).toEqual(expect.arrayContaining([expect.stringMatching(message)]));
  });

  it('rejects duplicate mailbox ids and ids that collide in resource names', () => {
    expect(problems({ mailboxes: [SUPPORT, SUPPORT] })).toEqual([
      'mailbox "support".id: must be unique; it appears more than once',
    ]);
    expect(
      problems({
        mailboxes: [
          { ...SUPPORT, id: 'a-1' },
          { ...SUPPORT, id: 'a1' },
        ],
      }),
    ).toEqual(['mailbox "a1".id: collides with "a-1" in resource names; choose a more distinct id']);
  });

  it('reports every problem at once, in one error message', () => {
    expect(() =>
      parseConfig({
        mailboxes: [
          { id: 'support', schedule: 'hourly' },
          { id: 'sales', secretName: 'x', startAt: 'soon' },
        ],
      }),
    ).toThrowError(
      'Invalid imapEventSource configuration:\n' +
        '  - mailbox "support".secretName: required: give secretName or secretArn of the mailbox secret, or set createSecret\n' +
        '  - mailbox "support".schedule: must be an EventBridge schedule expression such as "rate(1 minute)", "rate(5 minutes)" or "cron(0/5 * * * ? *)"\n' +
        '  - mailbox "sales".startAt: must be "now", "all" or an ISO 8601 date such as 2026-11-01 or 2026-11-01T08:00:00Z (a time without a zone is UTC)',
    );
  });
});

describe('isScheduleExpression', () => {
  it.each([
    'rate(1 minute)',
    'rate(2 minutes)',
    'rate(1 hour)',
    'rate(12 hours)',
    'rate(1 day)',
    'cron(0/5 * * * ? *)',
    'cron(0 8 ? * MON-FRI *)',
  ])('accepts %s', (expression) => expect(isScheduleExpression(expression)).toBe(true));
  it.each([
    'rate(0 minutes)',
    'rate(1 minutes)',
    'rate(5 minute)',
    'rate(1 second)',
    'cron(* * * * *)',
    'rate(1 minute) ',
    '',
  ])('rejects "%s"', (expression) => expect(isScheduleExpression(expression)).toBe(false));
});
