/** Synthesizes the app for template assertions: bundling skipped, built-in CloudFormation validation off (speed). */
import { readFileSync } from 'node:fs';
import { App, type Environment } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { buildApp } from '../../lib/app.js';
import type { ImapEventSourceStack } from '../../lib/imap-event-source-stack.js';

/** The feature flags of the committed cdk.json, so tests see what `cdk synth` produces. */
const { imapEventSource: _example, ...FEATURE_FLAGS } = JSON.parse(
  readFileSync(new URL('../../cdk.json', import.meta.url), 'utf8'),
).context as Record<string, unknown>;

export const TEST_ENV: Environment = { account: '123456789012', region: 'eu-central-1' };

export interface Synthesized {
  app: App;
  stack: ImapEventSourceStack;
  template: Template;
}

export const VPC_ID = 'vpc-0123456789abcdef0';
export const PRIVATE_SUBNETS = ['subnet-0000000000000000a', 'subnet-0000000000000000b'];

/** What `cdk synth` caches in cdk.context.json after looking up VPC_ID: public and private subnets in two AZs. */
const VPC_LOOKUP = {
  [`vpc-provider:account=123456789012:filter.vpc-id=${VPC_ID}:region=eu-central-1:returnAsymmetricSubnets=true`]: {
    vpcId: VPC_ID,
    vpcCidrBlock: '10.0.0.0/16',
    ownerAccountId: '123456789012',
    availabilityZones: [],
    subnetGroups: [
      {
        name: 'Public',
        type: 'Public',
        subnets: [
          {
            subnetId: 'subnet-0000000000000001a',
            cidr: '10.0.0.0/24',
            availabilityZone: 'eu-central-1a',
            routeTableId: 'rtb-public',
          },
          {
            subnetId: 'subnet-0000000000000001b',
            cidr: '10.0.1.0/24',
            availabilityZone: 'eu-central-1b',
            routeTableId: 'rtb-public',
          },
        ],
      },
      {
        name: 'Private',
        type: 'Private',
        subnets: PRIVATE_SUBNETS.map((subnetId, i) => ({
          subnetId,
          cidr: `10.0.${10 + i}.0/24`,
          availabilityZone: `eu-central-1${'ab'[i]}`,
          routeTableId: `rtb-private-${'ab'[i]}`,
        })),
      },
    ],
  },
};

export function synth(config: unknown, options: { env?: Environment; validate?: boolean } = {}): Synthesized {
  const app = new App({
    context: { ...FEATURE_FLAGS, ...VPC_LOOKUP, imapEventSource: config, 'aws:cdk:bundling-stacks': [] },
    builtinCloudFormationValidation: options.validate ?? false,
  });
  const stack = buildApp(app, { env: options.env ?? TEST_ENV });
  let template: Template | undefined;
  return {
    app,
    stack,
    // Synthesized on first use, so a test may still add constructs or synthesize the app itself.
    get template() {
      return (template ??= Template.fromStack(stack));
    },
  };
}

/** The logical id of a construct's CloudFormation resource. */
export function logicalId(stack: ImapEventSourceStack, construct: { node: { defaultChild?: unknown } }): string {
  return stack.getLogicalId(construct.node.defaultChild as Parameters<ImapEventSourceStack['getLogicalId']>[0]);
}

export const SUPPORT = { id: 'support', secretName: 'imap-event-source/support' };
