/**
 * End to end: `cdk bootstrap` and `cdk deploy` the app into a fresh moto_server, then run the
 * deployed function's bundled code (from the cloud assembly) with the environment the emulator
 * reports for the deployed function, against the shared Dovecot, and read the event from an SQS
 * queue that a rule on the deployed bus feeds (the rule pattern of docs/deploy.md).
 *
 * moto cannot invoke Lambda functions without Docker, so the bundle runs in a child `node`, as the
 * Lambda runtime would run it: CommonJS, handler `index.handler`, the AWS SDK from outside the bundle
 * (test/support/cdk-deploy.ts).
 */
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACCOUNT, CdkDeployment } from '../support/cdk-deploy.js';
import { dovecot, mailboxSecret } from '../support/env.js';
import { buildMessage } from '../support/messages.js';
import { uniqueName } from '../support/moto.js';

const STACK = 'ImapEventSourceE2e';
const MAILBOX_ID = 'e2e';
const SECRET_NAME = `imap-event-source/${MAILBOX_ID}`;
const SCHEDULED_EVENT = {
  version: '0',
  id: 'e2e',
  'detail-type': 'Scheduled Event',
  source: 'aws.events',
  time: new Date().toISOString(),
  detail: {},
};

describe('cdk deploy into the AWS emulator', () => {
  let d: CdkDeployment;
  let queueUrl: string;
  const busName = uniqueName('imap-e2e');
  const imap = dovecot();

  beforeAll(async () => {
    const t0 = performance.now();
    d = await CdkDeployment.deploy(STACK, { busName, mailboxes: [{ id: MAILBOX_ID, secretName: SECRET_NAME }] });

    // A subscriber as documented in docs/deploy.md: a rule on the deployed bus feeding an SQS queue.
    queueUrl = await d.subscribe({
      source: ['imap-event-source'],
      'detail-type': ['IMAP Message Received'],
      detail: { mailboxId: [MAILBOX_ID] },
    });
    d.timings.setup = Math.round(performance.now() - t0);
  }, 300_000);

  afterAll(async () => {
    if (!d) return;
    console.log(`[e2e] timings (ms): ${JSON.stringify(d.timings)}`);
    await d.destroy();
  });

  it('deploys the stack, and the deployed function publishes a new message to the deployed bus', async () => {
    const { aws, awsEnv, outputs } = d;
    expect(outputs).toMatchObject({
      EventBusName: busName,
      EventBusArn: `arn:aws:events:${awsEnv.AWS_REGION}:${ACCOUNT}:event-bus/${busName}`,
      MailboxE2eSecretArn: `arn:aws:secretsmanager:${awsEnv.AWS_REGION}:${ACCOUNT}:secret:${SECRET_NAME}`,
    });
    const fn = await d.deployedFunction(outputs.MailboxE2eFunctionName!);
    expect(fn.Runtime).toBe('nodejs24.x');
    expect(fn.Environment.Variables).toMatchObject({
      MAILBOX_ID: MAILBOX_ID,
      SECRET_ID: SECRET_NAME,
      CHECKPOINT_TABLE: outputs.CheckpointTableName,
      EVENT_BUS_NAME: busName,
      EVENT_SOURCE: 'imap-event-source',
      START_AT: 'now',
    });

    // The admin's part: a mailbox and its secret (imported by name by the stack).
    const user = await imap.createUser();
    await aws.createSecret(SECRET_NAME, mailboxSecret(imap, user, { security: 'tls' }));
    await imap.appendMessage(user, 'INBOX', buildMessage({ subject: 'Before the first poll' }));
    const dir = await d.unpackBundle(/^Polls IMAP mailbox/, 'function', SCHEDULED_EVENT);

    // First run: no checkpoint, START_AT=now -> baseline, nothing published.
    const first = await d.timed('first poll', () => d.invoke(dir, fn));
    expect(first.result).toMatchObject({ published: 0 });
    const { Items } = await aws.dynamodb.send(new ScanCommand({ TableName: outputs.CheckpointTableName }));
    expect(Items?.length).toBeGreaterThan(0);

    // New mail, second run: exactly that message arrives at the subscriber.
    const uid = await imap.appendMessage(user, 'INBOX', buildMessage({ subject: 'Deployed end to end' }));
    const second = await d.timed('second poll', () => d.invoke(dir, fn));
    expect(second.result).toMatchObject({ published: 1 });
    const events = await d.timed('receive', () =>
      aws.receiveEvents(queueUrl, { expected: 1, timeoutMs: 15_000, quietMs: 500 }),
    );
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      source: 'imap-event-source',
      'detail-type': 'IMAP Message Received',
      detail: {
        mailboxId: MAILBOX_ID,
        uid,
        subject: 'Deployed end to end',
        eventId: expect.stringMatching(new RegExp(`^${MAILBOX_ID}:\\d+:${uid}$`)),
      },
    });
    for (const { log } of [first, second]) expect(log).not.toContain(user.password);
  }, 120_000);
});
