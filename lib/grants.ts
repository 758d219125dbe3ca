/**
 * Building blocks shared by the per-mailbox construct and the fleet: a function's VPC placement and the
 * network-interface actions it needs, and the form in which cdk-nag names a resource in its finding ids (for
 * acknowledgements next to the grant).
 */
import { Stack, Validations } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type { Construct } from 'constructs';

/** The function options that place a poller in the VPC, if one is given (never in a public subnet). */
export function vpcPlacement(props: {
  readonly vpc?: ec2.IVpc;
  readonly vpcSubnets?: ec2.SubnetSelection;
  readonly securityGroups?: ec2.ISecurityGroup[];
}): Pick<lambda.FunctionOptions, 'vpc' | 'vpcSubnets' | 'securityGroups' | 'allowPublicSubnet'> {
  if (!props.vpc) return {};
  return {
    vpc: props.vpc,
    vpcSubnets: props.vpcSubnets,
    securityGroups: props.securityGroups,
    allowPublicSubnet: false,
  };
}

/**
 * Lambda's service creates a VPC function's network interfaces with the execution role. These are the actions of
 * the managed AWSLambdaVPCAccessExecutionRole, inline so the role stays our own; acknowledged on the role's policy.
 */
export function grantVpcNetworkInterfaces(role: iam.Role): void {
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: [
        'ec2:CreateNetworkInterface',
        'ec2:DescribeNetworkInterfaces',
        'ec2:DescribeSubnets',
        'ec2:DeleteNetworkInterface',
        'ec2:AssignPrivateIpAddresses',
        'ec2:UnassignPrivateIpAddresses',
      ],
      resources: ['*'],
    }),
  );
  Validations.of(role.node.findChild('DefaultPolicy')).acknowledge({
    id: 'AwsSolutions-IAM5[Resource::*]',
    reason:
      'Only the EC2 network-interface actions Lambda needs to attach a VPC function (those of AWSLambdaVPCAccessExecutionRole); ' +
      'the Describe actions support no resource-level permissions and the interface ids are not known before Lambda creates them.',
  });
}

/** A resource ARN as cdk-nag names it in finding ids: `<Logical.Arn>/suffix` for references, the string otherwise. */
export function nagResource(scope: Construct, arn: string): string {
  const flatten = (node: unknown): string => {
    if (typeof node === 'string') return node;
    const ref = node as { 'Fn::Join'?: [string, unknown[]]; 'Fn::GetAtt'?: [string, string]; Ref?: string };
    if (ref['Fn::Join']) return ref['Fn::Join'][1].map(flatten).join(ref['Fn::Join'][0]);
    if (ref['Fn::GetAtt']) return `<${ref['Fn::GetAtt'].join('.')}>`;
    if (ref.Ref) return `<${ref.Ref}>`;
    return JSON.stringify(node);
  };
  return flatten(Stack.of(scope).resolve(arn));
}
