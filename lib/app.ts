import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { type App, type Environment, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { CONFIG_CONTEXT_KEY, parseConfig } from './config.js';
import { ImapEventSourceStack } from './imap-event-source-stack.js';

export interface BuildAppOptions {
  /** Handler entry of the pollers. @default POLLER_ENTRY (`functions/poller/handler.ts`) */
  readonly pollerEntry?: string;
  /**
   * Account and region of the stack; concrete values are needed for the VPC lookup.
   * @default CDK_DEFAULT_ACCOUNT and CDK_DEFAULT_REGION (set by the CLI when it finds credentials)
   */
  readonly env?: Environment;
}

/**
 * Reads the configuration from the `imapEventSource` context (an object, or the path of a JSON
 * file relative to the working directory), validates it, adds the stack and the cdk-nag
 * AwsSolutions checks, which fail the synth on any unacknowledged finding.
 * @throws ConfigError naming the mailbox and field of every problem
 */
export function buildApp(app: App, options: BuildAppOptions = {}): ImapEventSourceStack {
  const raw: unknown = app.node.tryGetContext(CONFIG_CONTEXT_KEY);
  const config = parseConfig(typeof raw === 'string' ? JSON.parse(readFileSync(resolve(raw), 'utf8')) : raw);
  const stack = new ImapEventSourceStack(app, config.stackName, {
    config,
    description: 'imap-event-source: IMAP mailbox folders as EventBridge events',
    env: options.env ?? { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
    ...(options.pollerEntry ? { pollerEntry: options.pollerEntry } : {}),
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return stack;
}
