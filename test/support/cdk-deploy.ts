/**
 * `cdk synth`, `cdk bootstrap` and `cdk deploy` of this repository's app into a fresh moto_server, and the
 * deployed functions as the emulator reports them, with their bundles from the cloud assembly run in a child
 * `node` as the Lambda runtime would run them (moto cannot invoke functions without Docker). Shared by the
 * end-to-end tests of both deployment modes.
 */
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { PutRuleCommand, PutTargetsCommand } from '@aws-sdk/client-eventbridge';
import { CreateQueueCommand, GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { Moto, MotoServer, uniqueName } from './moto.js';

const run = promisify(execFile);
export const REPO = fileURLToPath(new URL('../..', import.meta.url));
const CDK = join(REPO, 'node_modules', 'aws-cdk', 'bin', 'cdk');
/** moto's default account. */
export const ACCOUNT = '123456789012';

/** A deployed function as the emulator's Lambda API reports it. */
export interface DeployedFunction {
  FunctionName: string;
  Handler: string;
  Runtime: string;
  Timeout: number;
  ReservedConcurrentExecutions?: number;
  Environment: { Variables: Record<string, string> };
}

export class CdkDeployment {
  /** Milliseconds per step (synth, bootstrap, deploy, and what the test times with `timed`). */
  readonly timings: Record<string, number> = {};
  outputs: Record<string, string> = {};

  private constructor(
    readonly server: MotoServer,
    readonly aws: Moto,
    readonly awsEnv: Record<string, string>,
    readonly work: string,
    readonly stack: string,
  ) {}

  /**
   * Starts moto, synthesizes the app with `config` as the `imapEventSource` context while the environment is
   * bootstrapped (both in parallel), then deploys the assembly and reads the stack's outputs.
   */
  static async deploy(stack: string, config: Record<string, unknown>): Promise<CdkDeployment> {
    const server = await MotoServer.start();
    const aws = new Moto(server.info);
    const work = await mkdtemp(join(tmpdir(), 'ies-e2e-'));
    const d = new CdkDeployment(server, aws, aws.awsEnv(), work, stack);
    try {
      const configFile = join(work, 'config.json');
      await writeFile(configFile, JSON.stringify({ stackName: stack, ...config }));
      const assembly = join(work, 'cdk.out');
      // Synthesize in the repo (where cdk.json names the app), bootstrap outside it (no app needed); cdk-nag
      // still runs, --no-validation skips only CDK's built-in template linter (test/infra covers it), for speed.
      await Promise.all([
        d.timed('synth', () =>
          d.cdk(
            ['synth', '--quiet', '--no-validation', '--output', assembly, '--context', `imapEventSource=${configFile}`],
            REPO,
          ),
        ),
        d.timed('bootstrap', () => d.cdk(['bootstrap', `aws://${ACCOUNT}/${d.awsEnv.AWS_REGION}`], work)),
      ]);
      const outputsFile = join(work, 'outputs.json');
      // moto applies a change set without the stack's outputs: create the stack directly.
      await d.timed('deploy', () =>
        d.cdk(
          [
            'deploy',
            stack,
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
      d.outputs = JSON.parse(await readFile(outputsFile, 'utf8'))[stack];
      return d;
    } catch (error) {
      await d.destroy();
      throw error;
    }
  }

  async timed<T>(step: string, fn: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      this.timings[step] = Math.round(performance.now() - t0);
    }
  }

  /** Runs the CDK CLI against moto; throws with its output on failure. */
  async cdk(args: string[], cwd: string): Promise<string> {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...this.awsEnv,
      // moto's CloudFormation fetches templates from its own S3 by this URL.
      AWS_ENDPOINT_URL_S3_FOR_CLOUDFORMATION: `http://localhost:${this.server.info.port}`,
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

  /**
   * A GET on the emulator's Lambda REST API. No Lambda client in the project: moto does not check signatures,
   * it only reads the service from the credential scope of the Authorization header.
   */
  async lambdaApi<T>(path: string): Promise<{ status: number; body: T }> {
    const res = await fetch(`${this.server.info.endpoint}/2015-03-31/${path}`, {
      headers: {
        Authorization: `AWS4-HMAC-SHA256 Credential=testing/20260101/${this.awsEnv.AWS_REGION}/lambda/aws4_request, SignedHeaders=host, Signature=0`,
      },
    });
    return { status: res.status, body: (await res.json()) as T };
  }

  /**
   * A subscriber as documented in docs/deploy.md: a rule with `pattern` on the deployed bus feeding a new SQS queue;
   * its URL.
   */
  async subscribe(pattern: Record<string, unknown>): Promise<string> {
    const { QueueUrl } = await this.aws.sqs.send(new CreateQueueCommand({ QueueName: uniqueName('e2e-subscriber') }));
    const { Attributes } = await this.aws.sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: QueueUrl!, AttributeNames: ['QueueArn'] }),
    );
    const bus = this.outputs.EventBusName!;
    await this.aws.eventbridge.send(
      new PutRuleCommand({ Name: 'mail-to-queue', EventBusName: bus, EventPattern: JSON.stringify(pattern) }),
    );
    await this.aws.eventbridge.send(
      new PutTargetsCommand({
        Rule: 'mail-to-queue',
        EventBusName: bus,
        Targets: [{ Id: 'queue', Arn: Attributes!.QueueArn! }],
      }),
    );
    return QueueUrl!;
  }

  /** The deployed function's configuration. */
  async deployedFunction(name: string): Promise<DeployedFunction> {
    const { status, body } = await this.lambdaApi<DeployedFunction>(
      `functions/${encodeURIComponent(name)}/configuration`,
    );
    if (status !== 200) throw new Error(`GetFunctionConfiguration ${name}: HTTP ${status}`);
    return body;
  }

  /** The synthesized template. */
  async template(): Promise<{
    Resources: Record<
      string,
      { Type: string; Properties?: Record<string, unknown>; Metadata?: Record<string, string> }
    >;
  }> {
    return JSON.parse(await readFile(join(this.work, 'cdk.out', `${this.stack}.template.json`), 'utf8'));
  }

  /**
   * Copies the bundle of the function whose template description matches out of the assembly; the directory the
   * runner loads it from (`invoke`). `event` is what the runtime would pass (a scheduled event, an SQS batch).
   */
  async unpackBundle(description: RegExp, dirName: string, event: unknown): Promise<string> {
    const template = await this.template();
    const fn = Object.values(template.Resources).find(
      (r) => r.Type === 'AWS::Lambda::Function' && description.test(String(r.Properties?.Description)),
    );
    if (!fn) throw new Error(`no function described like ${description} in the template`);
    const dir = join(this.work, dirName);
    await cp(join(this.work, 'cdk.out', fn.Metadata!['aws:asset:path']!), dir, { recursive: true });
    // As in Lambda: index.js is CommonJS, whatever the project's package.json says.
    await writeFile(join(dir, 'package.json'), '{"type":"commonjs"}');
    await writeFile(
      join(dir, 'invoke.cjs'),
      `const { handler } = require('./index.js');
const deadline = Date.now() + Number(process.env.TIMEOUT_SECONDS) * 1000;
const event = ${JSON.stringify(event)};
handler(event, { getRemainingTimeInMillis: () => deadline - Date.now(), functionName: process.env.AWS_LAMBDA_FUNCTION_NAME })
  .then((result) => console.log('INVOKE_RESULT ' + JSON.stringify(result)), (error) => { console.log('INVOKE_ERROR ' + error.message); process.exitCode = 1; });
`,
    );
    return dir;
  }

  /** One invocation of an unpacked bundle in a child node with the deployed function's environment. */
  async invoke(dir: string, fn: DeployedFunction): Promise<{ result: unknown; log: string }> {
    if (fn.Handler !== 'index.handler') throw new Error(`unexpected handler ${fn.Handler}`);
    const env = {
      PATH: process.env.PATH!,
      ...fn.Environment.Variables,
      ...this.awsEnv,
      AWS_LAMBDA_FUNCTION_NAME: fn.FunctionName,
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

  async destroy(): Promise<void> {
    this.aws.destroy();
    await this.server.stop();
    await rm(this.work, { recursive: true, force: true });
  }
}
