// Proves the integration-test harness: real Dovecot (TLS, STARTTLS, no-TLS), doveadm helpers, moto_server.

import { DescribeTableCommand, DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { ImapFlow, type ImapFlowOptions } from 'imapflow';
import { afterAll, describe, expect, it } from 'vitest';
import { DynamoDbCallLog } from '../support/aws-proxy.js';
import { SEED_FOLDERS } from '../support/dovecot.js';
import { dovecot, dovecotNoTls, imapFlowOptions, moto, startDovecot, tlsMaterial } from '../support/env.js';
import { buildMessage } from '../support/messages.js';
import { uniqueName } from '../support/moto.js';

const clients: ImapFlow[] = [];
async function connect(options: ImapFlowOptions): Promise<ImapFlow> {
  const client = new ImapFlow(options);
  client.on('error', () => {}); // errors surface through the awaited calls
  clients.push(client);
  await client.connect();
  return client;
}
afterAll(async () => {
  await Promise.allSettled(clients.map((c) => (c.usable ? c.logout() : c.close())));
  moto().destroy();
});

describe('Dovecot', () => {
  const imap = dovecot();

  it('logs a fresh user in over implicit TLS, verified with the test CA', async () => {
    const user = await imap.createUser();
    const client = await connect(imapFlowOptions(imap, user, 'tls'));
    expect(client.secureConnection).toBe(true);
    expect(client.authenticated).toBe(true);
  });

  it('rejects the server certificate without the test CA, or with the wrong CA', async () => {
    const user = await imap.createUser();
    const base = imapFlowOptions(imap, user, 'tls');
    await expect(connect({ ...base, tls: { minVersion: 'TLSv1.2' } })).rejects.toMatchObject({
      code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    });
    await expect(connect({ ...base, tls: { ca: [tlsMaterial().wrongCaCertPem] } })).rejects.toMatchObject({
      code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    });
  });

  it('serves the other host name by SNI and fails verification for a name not in the certificate', async () => {
    const user = await imap.createUser();
    const base = imapFlowOptions(imap, user, 'tls');
    const ca = [tlsMaterial().caCertPem];
    const ok = await connect({ ...base, host: '127.0.0.1', tls: { ca, servername: tlsMaterial().otherHostName } });
    expect(ok.authenticated).toBe(true);
    await expect(connect({ ...base, tls: { ca, servername: 'other.invalid' } })).rejects.toMatchObject({
      code: 'ERR_TLS_CERT_ALTNAME_INVALID',
    });
  });

  it('upgrades with STARTTLS on the plain port', async () => {
    const user = await imap.createUser();
    const client = await connect(imapFlowOptions(imap, user, 'starttls'));
    expect(client.secureConnection).toBe(true);
    expect(client.authenticated).toBe(true);
  });

  it('the no-TLS instance does not offer STARTTLS', async () => {
    const plain = dovecotNoTls();
    expect(plain.imapsPort).toBeNull();
    const user = await plain.createUser();
    const client = await connect(imapFlowOptions(plain, user, 'none'));
    expect(client.secureConnection).toBe(false);
    expect(client.capabilities.has('STARTTLS')).toBe(false);
    await expect(connect(imapFlowOptions(plain, user, 'starttls'))).rejects.toThrow(/STARTTLS/);
  });

  it('rejects a wrong password, and accepts a changed one', async () => {
    const user = await imap.createUser();
    await expect(connect(imapFlowOptions(imap, { ...user, password: 'wrong' }))).rejects.toMatchObject({
      authenticationFailed: true,
    });
    await imap.setPassword(user, 'rotated-password');
    const client = await connect(imapFlowOptions(imap, { ...user, password: 'rotated-password' }));
    expect(client.authenticated).toBe(true);
  });

  it('creates the seed tree with German names and the / delimiter', async () => {
    const user = await imap.createUser();
    await imap.createSeedTree(user);
    expect(new Set(await imap.listFolders(user))).toEqual(new Set(SEED_FOLDERS));
    const client = await connect(imapFlowOptions(imap, user));
    const listed = await client.list();
    expect(listed.map((f) => f.path).sort()).toEqual([...SEED_FOLDERS].sort());
    expect(new Set(listed.map((f) => f.delimiter))).toEqual(new Set(['/']));
    expect(listed.map((f) => f.path)).toEqual(
      expect.arrayContaining([
        'Entwürfe',
        'Firma/Qualitätssicherung',
        'Firma/Kundenbetreuung/kunden/a',
        'Newsletter/United Planet',
      ]),
    );
  });

  it('appends messages with flags and internal date, reports status and flags, expunges', async () => {
    const user = await imap.createUser();
    const folder = 'Firma/Qualitätssicherung';
    await imap.createFolders(user, [folder]);
    const internalDate = new Date('2024-05-01T10:00:00Z');
    const uids = await imap.appendMany(user, folder, [
      buildMessage({ subject: 'Prüfbericht 1' }),
      { raw: buildMessage({ subject: 'Prüfbericht 2' }), flags: ['\\Seen', '\\Flagged'], internalDate },
      buildMessage({ subject: 'Prüfbericht 3' }),
    ]);
    expect(uids).toEqual([1, 2, 3]);
    expect(await imap.status(user, folder)).toMatchObject({ messages: 3, unseen: 2, uidNext: 4 });
    expect(await imap.getFlags(user, folder)).toEqual([
      { uid: 1, flags: [] },
      { uid: 2, flags: ['\\Flagged', '\\Seen'] },
      { uid: 3, flags: [] },
    ]);

    const client = await connect(imapFlowOptions(imap, user));
    const lock = await client.getMailboxLock(folder, { readOnly: true });
    try {
      const msg = await client.fetchOne('2', { internalDate: true, envelope: true }, { uid: true });
      expect(msg && new Date(msg.internalDate!).toISOString()).toBe(internalDate.toISOString());
      expect(msg && msg.envelope ? msg.envelope.subject : undefined).toBe('Prüfbericht 2');
    } finally {
      lock.release();
    }

    await expect(imap.appendMessage(user, 'Firma/Nirgendwo', buildMessage())).rejects.toThrow(/TRYCREATE/);

    await imap.expunge(user, folder, 1);
    expect(await imap.status(user, folder)).toMatchObject({ messages: 2, uidNext: 4 });
    expect((await imap.getFlags(user, folder)).map((m) => m.uid)).toEqual([2, 3]);
  });

  it('changes UIDVALIDITY keeping messages; delete + recreate restarts UIDs', async () => {
    const user = await imap.createUser();
    await imap.appendMessage(user, 'INBOX', buildMessage());
    await imap.setUidValidity(user, 'INBOX', 4242);
    expect(await imap.status(user, 'INBOX')).toMatchObject({ uidValidity: 4242, messages: 1, uidNext: 2 });
    const client = await connect(imapFlowOptions(imap, user));
    expect(await client.status('INBOX', { uidValidity: true })).toMatchObject({ uidValidity: 4242n });

    await imap.createFolders(user, ['Journal']);
    await imap.appendMessage(user, 'Journal', buildMessage());
    const before = await imap.status(user, 'Journal');
    await imap.deleteFolder(user, 'Journal');
    await imap.createFolders(user, ['Journal']);
    const after = await imap.status(user, 'Journal');
    expect(after).toMatchObject({ messages: 0, uidNext: 1 });
    expect(after.uidValidity).not.toBe(before.uidValidity);
  });

  it('renames a folder', async () => {
    const user = await imap.createUser();
    await imap.createFolders(user, ['Newsletter/IBM']);
    await imap.renameFolder(user, 'Newsletter/IBM', 'Newsletter/Kyndryl');
    expect(await imap.listFolders(user)).toEqual(expect.arrayContaining(['Newsletter', 'Newsletter/Kyndryl']));
    expect(await imap.listFolders(user)).not.toContain('Newsletter/IBM');
  });

  it('kicks live sessions', async () => {
    const user = await imap.createUser();
    const client = await connect(imapFlowOptions(imap, user));
    const closed = new Promise((resolve) => client.once('close', resolve));
    await imap.kick(user);
    await closed;
    expect(client.usable).toBe(false);
    await imap.kick(user); // nobody logged in: no error
  });

  it('appends 1,000 messages quickly, in UID order', async () => {
    const user = await imap.createUser();
    const t0 = performance.now();
    const uids = await imap.appendMany(
      user,
      'INBOX',
      Array.from({ length: 1000 }, (_, i) => buildMessage({ subject: `n${i}` })),
    );
    const ms = performance.now() - t0;
    console.log(`appendMany: 1,000 messages in ${Math.round(ms)} ms`);
    expect(uids).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1));
    expect(await imap.status(user, 'INBOX')).toMatchObject({ messages: 1000, uidNext: 1001 });
    expect(ms).toBeLessThan(5_000);
  });
});

describe('Dovecot with the . delimiter', () => {
  it('starts a private instance and names nested folders with dots', async () => {
    const server = await startDovecot({ separator: '.' });
    try {
      const user = await server.createUser();
      await server.createSeedTree(user);
      const client = await connect(imapFlowOptions(server, user, 'tls'));
      const listed = await client.list();
      expect(listed.map((f) => f.path)).toContain('Firma.Kundenbetreuung.kunden.a');
      expect(new Set(listed.map((f) => f.delimiter))).toEqual(new Set(['.']));
      await client.logout();
    } finally {
      await server.stop();
    }
  });
});

describe('moto_server', () => {
  const aws = moto();

  it('round-trips a secret', async () => {
    const name = uniqueName('secret');
    const arn = await aws.createSecret(name, { host: 'localhost', password: 'p1' });
    expect(arn).toMatch(/^arn:aws:secretsmanager:us-east-1:\d{12}:secret:secret-/);
    await aws.putSecretValue(name, { host: 'localhost', password: 'p2' });
    const res = await aws.secrets.send(new GetSecretValueCommand({ SecretId: arn, VersionStage: 'AWSCURRENT' }));
    expect(JSON.parse(res.SecretString!)).toEqual({ host: 'localhost', password: 'p2' });
  });

  it('creates a checkpoint table', async () => {
    const name = uniqueName('checkpoints');
    await aws.createCheckpointTable(name);
    const { Table } = await aws.dynamodb.send(new DescribeTableCommand({ TableName: name }));
    expect(Table?.KeySchema).toEqual([{ AttributeName: 'pk', KeyType: 'HASH' }]);
    expect(Table?.BillingModeSummary?.BillingMode).toBe('PAY_PER_REQUEST');
  });

  it('delivers matching PutEvents entries from the bus to the SQS subscriber', async () => {
    const bus = await aws.createBusWithSubscriber(uniqueName('bus'));
    const res = await aws.eventbridge.send(
      new PutEventsCommand({
        Entries: [
          {
            EventBusName: bus.busName,
            Source: 'imap-event-source',
            DetailType: 'IMAP Message Received',
            Detail: JSON.stringify({ uid: 7 }),
          },
          { EventBusName: bus.busName, Source: 'someone-else', DetailType: 'Other', Detail: '{}' },
        ],
      }),
    );
    expect(res.FailedEntryCount).toBe(0);
    const events = await aws.receiveEvents(bus.queueUrl, { expected: 1, timeoutMs: 10_000, quietMs: 500 });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      'detail-type': 'IMAP Message Received',
      source: 'imap-event-source',
      detail: { uid: 7 },
    });
    expect(await aws.collectUnexpected(bus.queueUrl, 500)).toEqual([]);
  });

  it('applies simultaneous conditional writes to one item one at a time behind an atomic-items proxy', async () => {
    // moto_server alone can let two of them win (see AwsProxyOptions.atomicItems); DynamoDB never does.
    const table = uniqueName('atomic');
    await aws.createCheckpointTable(table);
    const proxy = await DynamoDbCallLog.start(aws.info.endpoint, { atomicItems: true });
    const client = new DynamoDBClient({ ...aws.clientConfig, endpoint: proxy.url, maxAttempts: 1 });
    try {
      const winners: number[] = [];
      for (let round = 0; round < 40; round++) {
        const results = await Promise.allSettled(
          Array.from({ length: 8 }, (_, owner) =>
            client.send(
              new PutItemCommand({
                TableName: table,
                Item: { pk: { S: `slot#${round}` }, owner: { S: String(owner) } },
                ConditionExpression: 'attribute_not_exists(pk)',
              }),
            ),
          ),
        );
        winners.push(results.filter((r) => r.status === 'fulfilled').length);
        // The losers saw the condition fail (not some other error).
        for (const r of results) {
          if (r.status === 'rejected') expect((r.reason as Error).name).toBe('ConditionalCheckFailedException');
        }
      }
      expect(new Set(winners)).toEqual(new Set([1]));
      expect(proxy.writes()).toHaveLength(40 * 8);
    } finally {
      client.destroy();
      await proxy.close();
    }
  });

  it('exposes env vars and client config for code under test', () => {
    expect(aws.awsEnv()).toMatchObject({ AWS_ENDPOINT_URL: aws.info.endpoint, AWS_REGION: 'us-east-1' });
    expect(aws.clientConfig.endpoint).toBe(aws.info.endpoint);
  });
});
