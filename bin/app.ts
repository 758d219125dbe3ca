#!/usr/bin/env node
// The CDK app: `npx cdk synth` / `npx cdk deploy` (see docs/deploy.md). Configuration: `cdk.json` context `imapEventSource`.
import { App } from 'aws-cdk-lib';
import { buildApp } from '../lib/app.js';

buildApp(new App());
