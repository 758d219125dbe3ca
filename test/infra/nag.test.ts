import { readFileSync } from 'node:fs';
import { type Stack, Validations } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { describe, expect, it } from 'vitest';
import { SUPPORT, synth, VPC_ID } from './synth.js';

const EXAMPLE = JSON.parse(readFileSync(new URL('../../cdk.json', import.meta.url), 'utf8')).context.imapEventSource;
/** Every optional feature at once. */
const EVERYTHING = {
  busName: 'mail-prod',
  mailboxes: [
    SUPPORT,
    { id: 'hr', createSecret: true, schedule: 'rate(5 minutes)' },
    {
      id: 'sales-eu',
      secretArn: 'arn:aws:secretsmanager:eu-central-1:123456789012:secret:imap/sales-AbC123',
      secretKmsKeyArn: 'arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab',
    },
  ],
  vpc: { vpcId: VPC_ID, imapServerCidr: '10.0.12.7/32', endpoints: true },
  rawMessageStorage: { enabled: true },
  alarms: { createTopic: true, staleAfterIntervals: 4 },
  archive: { enabled: true, retentionDays: 14 },
  schemaRegistry: { enabled: true },
};

/** Fleet mode with every option that adds a grant or a resource. */
const FLEET_EVERYTHING = {
  mode: 'fleet',
  fleet: {
    secretPrefix: 'mail/',
    secretKmsKeyArn: 'arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab',
  },
  mailboxes: [
    { id: 'a', secretName: 'mail/tenant', username: 'a@contoso.com' },
    { id: 'b', secretName: 'mail/tenant', username: 'b@contoso.com', folder: 'Firma' },
  ],
  vpc: { vpcId: VPC_ID, imapServerCidr: '10.0.12.7/32', endpoints: true },
  rawMessageStorage: { enabled: true },
  alarms: { createTopic: true },
  archive: { enabled: true },
  schemaRegistry: { enabled: true },
};

/** Our cdk-nag acknowledgements in the stack: construct path (below the stack) -> rule id -> reason. */
function acknowledgements(stack: Stack): Record<string, Record<string, string>> {
  const found: Record<string, Record<string, string>> = {};
  for (const construct of stack.node.findAll()) {
    for (const entry of construct.node.metadata) {
      if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
      for (const [qualifiedId, reason] of Object.entries(entry.data as Record<string, string>)) {
        // CDK stores ids with a namespace ("Annotation::"); it also acknowledges its own
        // CloudFormation-Validate rules (literal AZs after a VPC lookup): not ours.
        const id = qualifiedId.replace(/^[^:]+::/, '');
        if (!id.startsWith('AwsSolutions-')) continue;
        (found[construct.node.path.slice(stack.node.path.length + 1)] ??= {})[id] = reason;
      }
    }
  }
  return found;
}

describe('cdk-nag AwsSolutions', () => {
  it.each([
    ['the committed example', EXAMPLE],
    ['every option', EVERYTHING],
    [
      'an existing bus, no reserved concurrency',
      { mailboxes: [SUPPORT], busName: 'default', createBus: false, reserveConcurrency: false },
    ],
    ['fleet mode', { mode: 'fleet', mailboxes: [SUPPORT] }],
    ['fleet mode with every option', FLEET_EVERYTHING],
  ])('reports no unacknowledged finding for %s', (_name, config) => {
    const { stack } = synth(config);
    const report = new AwsSolutionsChecks().validateScope(stack);
    expect(
      report.violations.map((v) => `${v.ruleName}: ${v.violatingResources.map((r) => r.resourceLogicalId).join(', ')}`),
    ).toEqual([]);
  });

  it('acknowledges only these findings, each on its own resource, each with a reason', () => {
    const acks = acknowledgements(synth(EVERYTHING).stack);
    expect(Object.fromEntries(Object.entries(acks).map(([path, rules]) => [path, Object.keys(rules)]))).toEqual({
      RawMessageAccessLogs: ['AwsSolutions-S1'],
      MailboxHrSecret: ['AwsSolutions-SMG4'],
      AlarmTopic: ['AwsSolutions-SNS2'],
      ...Object.fromEntries(
        ['Support', 'Hr', 'SalesEu'].map((name) => [
          `Mailbox${name}/Role/DefaultPolicy`,
          [
            `AwsSolutions-IAM5[Resource::<RawMessageBucket6EAA0BE7.Arn>/${name === 'SalesEu' ? 'sales-eu' : name.toLowerCase()}/*]`,
            'AwsSolutions-IAM5[Resource::*]',
          ],
        ]),
      ),
    });
    for (const rules of Object.values(acks)) {
      for (const reason of Object.values(rules)) expect(reason.length).toBeGreaterThan(80);
    }
  });

  it('fleet mode acknowledges only the prefix-wide secret read and raw objects of the pool, and VPC interfaces', () => {
    const acks = acknowledgements(synth(FLEET_EVERYTHING).stack);
    expect(Object.fromEntries(Object.entries(acks).map(([path, rules]) => [path, Object.keys(rules)]))).toEqual({
      RawMessageAccessLogs: ['AwsSolutions-S1'],
      AlarmTopic: ['AwsSolutions-SNS2'],
      'Fleet/WorkerRole/DefaultPolicy': [
        'AwsSolutions-IAM5[Resource::arn:aws:secretsmanager:eu-central-1:123456789012:secret:mail/*]',
        'AwsSolutions-IAM5[Resource::<RawMessageBucket6EAA0BE7.Arn>/*]',
        'AwsSolutions-IAM5[Resource::*]',
      ],
    });
    for (const rules of Object.values(acks)) {
      for (const reason of Object.values(rules)) expect(reason.length).toBeGreaterThan(80);
    }
    // The default fleet: only the secret prefix.
    expect(Object.keys(acknowledgements(synth({ mode: 'fleet' }).stack))).toEqual(['Fleet/WorkerRole/DefaultPolicy']);
  });

  it('acknowledges nothing in the default deployment', () => {
    expect(acknowledgements(synth(EXAMPLE).stack)).toEqual({});
  });

  it('runs on every synth of the app and fails it on an unacknowledged finding', () => {
    const { app, stack } = synth(EXAMPLE);
    new sqs.Queue(stack, 'UnencryptedQueue', { encryption: sqs.QueueEncryption.UNENCRYPTED }); // AwsSolutions-SQS3/SQS4
    expect(() => app.synth()).toThrow(/AwsSolutions-SQS4/);
  });

  it('passes the full synth with every option, CloudFormation validation included', { timeout: 60_000 }, () => {
    const { app } = synth(EVERYTHING, { validate: true });
    expect(() => app.synth()).not.toThrow();
  });
});
