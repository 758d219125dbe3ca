/**
 * End to end: `cdk bootstrap` and `cdk deploy` the app into a fresh moto_server, then run the
 * deployed function's bundled code (from the cloud assembly) with the environment the emulator
 * reports for the deployed function, against the shared Dovecot, and read the event from an SQS
 * queue that a rule on the deployed bus feeds (the rule pattern of docs/deploy.md).
 *
 * moto cannot invoke Lambda functions without Docker, so the bundle runs in a child `node`, as the
 * Lambda runtime would run it: CommonJS, handler `index.handler`, the AWS SDK from outside the bundle.
 */
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { PutRuleCommand, PutTargetsCommand } from '@aws-sdk/client-eventbridge';
import { CreateQueueCommand, GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dovecot, mailboxSecret } from '../support/env.js';
import { buildMessage } from '../support/messages.js';
import { Moto, MotoServer, uniqueName } from '../support/moto.js';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('../..', import.meta.url));
const CDK = join(REPO, 'node_modules', 'aws-cdk', 'bin', 'cdk');
const ACCOUNT = '123456789012'; // moto's default account
const STACK = 'ImapEventSourceE2e';
const MAILBOX_ID = 'e2e';
const SECRET_NAME = `imap-event-source/${MAILBOX_ID}`;

interface Timings {
  [step: string]: number;
}

describe('cdk deploy into the AWS emulator', () => {
  const timings: Timings = {};
  const timed = async <T>(step: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      timings[step] = Math.round(performance.now() - t0);
    }
  };

  let server: MotoServer;
  let aws: Moto;
  let work: string;
  let outputs: Record<string, string>;
  let awsEnv: Record<string, string>;
  let queueUrl: string;
  const busName = uniqueName('imap-e2e');
  const imap = dovecot();

  /** Runs the CDK CLI against moto; throws with its output on failure. */
  async function cdk(args: string[], cwd: string): Promise<string> {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...awsEnv,
      // moto's CloudFormation fetches templates from its own S3 by this URL.
      AWS_ENDPOINT_URL_S3_FOR_CLOUDFORMATION: `http://localhost:${server.info.port}`,
      CDK_DISABLE_VERSION_CHECK: '1',
      CDK_DISABLE_CLI_TELEMETRY: 'true',
    };
    delete env.AWS_PROFILE;
    try {
      const { stdout, stderr } = await run(process.execPath, [CDK, ...args, '--no-notices'], {
        cwd,
        env,
        maxBuffer: 32 << 20,
      });
      return stdout + stderr;
    } catch (error) {
      const e = error as { stdout?: string; stderr?: string; message: string };
      throw new Error(`cdk ${args[0]} failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
    }
  }

  beforeAll(async () => {
    const t0 = performance.now();
    server = await MotoServer.start();
    aws = new Moto(server.info);
    awsEnv = aws.awsEnv();
    work = await mkdtemp(join(tmpdir(), 'ies-e2e-'));
    const config = join(work, 'config.json');
    await writeFile(
      config,
      JSON.stringify({ stackName: STACK, busName, mailboxes: [{ id: MAILBOX_ID, secretName: SECRET_NAME }] }),
    );
    const assembly = join(work, 'cdk.out');

    // Synthesize once (in the repo, where cdk.json names the app) while the environment is bootstrapped
    // (outside the repo: no app needed); deploy the synthesized assembly. cdk-nag still runs;
    // --no-validation skips only CDK's built-in template linter (test/infra covers it), for speed.
    await Promise.all([
      timed('synth', () =>
        cdk(
          ['synth', '--quiet', '--no-validation', '--output', assembly, '--context', `imapEventSource=${config}`],
          REPO,
        ),
      ),
      timed('bootstrap', () => cdk(['bootstrap', `aws://${ACCOUNT}/${awsEnv.AWS_REGION}`], work)),
    ]);
    const outputsFile = join(work, 'outputs.json');
    // moto applies a change set without the stack's outputs: create the stack directly.
    await timed('deploy', () =>
      cdk(
        [
          'deploy',
          STACK,
          '--app',
          assembly,
          '--method=direct',
          '--require-approval',
          'never',
          '--outputs-file',
          outputsFile,
        ],
        work,
      ),
    );
    outputs = JSON.parse(await readFile(outputsFile, 'utf8'))[STACK];

    // A subscriber as documented in docs/deploy.md: a rule on the deployed bus feeding an SQS queue.
    const { QueueUrl } = await aws.sqs.send(new CreateQueueCommand({ QueueName: uniqueName('e2e-subscriber') }));
    queueUrl = QueueUrl!;
    const { Attributes } = await aws.sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }),
    );
    await aws.eventbridge.send(
      new PutRuleCommand({
        Name: 'mail-to-queue',
        EventBusName: outputs.EventBusName,
        EventPattern: JSON.stringify({
          source: ['imap-event-source'],
          'detail-type': ['IMAP Message Received'],
          detail: { mailboxId: [MAILBOX_ID] },
        }),
      }),
    );
    await aws.eventbridge.send(
      new PutTargetsCommand({
        Rule: 'mail-to-queue',
        EventBusName: outputs.EventBusName,
        Targets: [{ Id: 'queue', Arn: Attributes!.QueueArn! }],
      }),
    );
    timings.setup = Math.round(performance.now() - t0);
  }, 300_000);

  afterAll(async () => {
    console.log(`[e2e] timings (ms): ${JSON.stringify(timings)}`);
    aws?.destroy();
    await server?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** The deployed function's configuration, as the emulator's Lambda API reports it. */
  async function deployedFunction(name: string): Promise<{
    Handler: string;
    Runtime: string;
    Timeout: number;
    Environment: { Variables: Record<string, string> };
  }> {
    // No Lambda client in the project: moto does not check signatures, it only reads the service
    // from the credential scope of the Authorization header.
    const res = await fetch(`${server.info.endpoint}/2015-03-31/functions/${encodeURIComponent(name)}/configuration`, {
      headers: {
        Authorization: `AWS4-HMAC-SHA256 Credential=testing/20260101/${awsEnv.AWS_REGION}/lambda/aws4_request, SignedHeaders=host, Signature=0`,
      },
    });
    expect(res.status).toBe(200);
    return res.json() as never;
  }

  /** Copies the function's bundle out of the assembly; the directory the runner loads it from. */
  async function unpackBundle(): Promise<string> {
    const template = JSON.parse(await readFile(join(work, 'cdk.out', `${STACK}.template.json`), 'utf8'));
    const fn = Object.values(
      template.Resources as Record<string, { Type: string; Metadata?: Record<string, string> }>,
    ).find((r) => r.Type === 'AWS::Lambda::Function')!;
    const dir = join(work, 'function');
    await cp(join(work, 'cdk.out', fn.Metadata!['aws:asset:path']!), dir, { recursive: true });
    // As in Lambda: index.js is CommonJS, whatever the project's package.json says.
    await writeFile(join(dir, 'package.json'), '{"type":"commonjs"}');
    await writeFile(
      join(dir, 'invoke.cjs'),
      `const { handler } = require('./index.js');
const deadline = Date.now() + Number(process.env.TIMEOUT_SECONDS) * 1000;
const event = { version: '0', id: 'e2e', 'detail-type': 'Scheduled Event', source: 'aws.events', time: new Date().toISOString(), detail: {} };
handler(event, { getRemainingTimeInMillis: () => deadline - Date.now(), functionName: process.env.AWS_LAMBDA_FUNCTION_NAME })
  .then((result) => console.log('INVOKE_RESULT ' + JSON.stringify(result)), (error) => { console.log('INVOKE_ERROR ' + error.message); process.exitCode = 1; });
`,
    );
    return dir;
  }

  /** One invocation of the bundle in a child node with the deployed function's environment. */
  async function invoke(
    dir: string,
    fn: Awaited<ReturnType<typeof deployedFunction>>,
    name: string,
  ): Promise<{ result: unknown; log: string }> {
    expect(fn.Handler).toBe('index.handler');
    const env = {
      PATH: process.env.PATH!,
      ...fn.Environment.Variables,
      ...awsEnv,
      AWS_LAMBDA_FUNCTION_NAME: name,
      TIMEOUT_SECONDS: String(fn.Timeout),
      // The runtime provides the AWS SDK; here it comes from the project's node_modules.
      NODE_PATH: join(REPO, 'node_modules'),
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    };
    const { stdout, stderr } = await run(process.execPath, ['invoke.cjs'], { cwd: dir, env, timeout: 60_000 }).catch(
      (e) => {
        throw new Error(`the bundled handler failed:\n${e.stdout}\n${e.stderr}`);
      },
    );
    const line = stdout.split('\n').find((l) => l.startsWith('INVOKE_RESULT '));
    return { result: line && JSON.parse(line.slice('INVOKE_RESULT '.length)), log: stdout + stderr };
  }

  it('deploys the stack, and the deployed function publishes a new message to the deployed bus', async () => {
    expect(outputs).toMatchObject({
      EventBusName: busName,
      EventBusArn: `arn:aws:events:${awsEnv.AWS_REGION}:${ACCOUNT}:event-bus/${busName}`,
      MailboxE2eSecretArn: `arn:aws:secretsmanager:${awsEnv.AWS_REGION}:${ACCOUNT}:secret:${SECRET_NAME}`,
    });
    const fnName = outputs.MailboxE2eFunctionName!;
    const fn = await deployedFunction(fnName);
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
    const dir = await unpackBundle();

    // First run: no checkpoint, START_AT=now -> baseline, nothing published.
    const first = await timed('first poll', () => invoke(dir, fn, fnName));
    expect(first.result).toMatchObject({ published: 0 });
    const { Items } = await aws.dynamodb.send(new ScanCommand({ TableName: outputs.CheckpointTableName }));
    expect(Items?.length).toBeGreaterThan(0);

    // New mail, second run: exactly that message arrives at the subscriber.
    const uid = await imap.appendMessage(user, 'INBOX', buildMessage({ subject: 'Deployed end to end' }));
    const second = await timed('second poll', () => invoke(dir, fn, fnName));
    expect(second.result).toMatchObject({ published: 1 });
    const events = await timed('receive', () =>
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
