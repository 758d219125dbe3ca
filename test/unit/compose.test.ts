import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { describe, expect, it } from 'vitest';
import {
  awsClientConfig,
  composeLocalPollerDeps,
  composePollerDeps,
  SDK_RETRY,
} from '../../functions/poller/compose.js';
import { readPollerConfig } from '../../functions/poller/contract/poller-env.js';
import { silentLog } from '../../functions/poller/ports.js';
import { InMemoryCheckpointStore, RecordingPublisher, settings } from './fakes.js';

const config = readPollerConfig({
  MAILBOX_ID: 'support',
  SECRET_ID: 'imap/support',
  CHECKPOINT_TABLE: 'T',
  EVENT_BUS_NAME: 'B',
  RAW_BUCKET: 'raw',
});

describe('compose: the one composition root', () => {
  it('gives every AWS client the SDK standard retry strategy with 4 attempts; the caller adds endpoint and region', async () => {
    const client = new EventBridgeClient(awsClientConfig({ region: 'eu-central-1', endpoint: 'http://127.0.0.1:1' }));
    expect(await client.config.maxAttempts()).toBe(4);
    expect(client.config.retryMode).toBe('standard');
    expect(SDK_RETRY).toEqual({ maxAttempts: 4, retryMode: 'standard' });
    expect(await client.config.region()).toBe('eu-central-1');
  });

  it('the Lambda poller: every port, a lease from the checkpoint table, raw storage when configured', async () => {
    const deps = await composePollerDeps(config, { log: silentLog, clientConfig: { region: 'eu-central-1' } });
    expect(deps.lease).toBe(deps.checkpoints);
    expect(deps.rawStore).toBeDefined();
    const { rawBucket: _, ...withoutRaw } = config;
    expect((await composePollerDeps(withoutRaw, { log: silentLog })).rawStore).toBeUndefined();
    // The IMAP session is kept between polls only when asked (the per-mailbox handler), never by default.
    expect(deps.sessions).toBeUndefined();
    expect((await composePollerDeps(config, { log: silentLog, keepSession: true })).sessions).toBeDefined();
  });

  it('the local poller: the same gateway and lease semantics, over the given store and publisher', async () => {
    const store = new InMemoryCheckpointStore();
    const publisher = new RecordingPublisher();
    const deps = await composeLocalPollerDeps(
      { settings: { load: async () => settings() }, checkpoints: store, publisher },
      { log: silentLog },
    );
    expect(deps.checkpoints).toBe(store);
    expect(deps.lease).toBe(store);
    expect(deps.publisher).toBe(publisher);
    expect(deps.mailbox.constructor.name).toBe('ImapFlowMailboxGateway');
  });
});
