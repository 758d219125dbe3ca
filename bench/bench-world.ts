/**
 * What every benchmark needs: its own Dovecot (TLS, the seed tree) and moto_server on 127.0.0.1, one user,
 * its mailbox secret, a checkpoint table and a bus without rules (moto's delivery to a rule's target costs
 * ~180 ms per event and would measure the emulator, not the poller).
 */
// The SDK's notice that it will need Node 22 is noise in benchmark output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

import { CreateEventBusCommand } from '@aws-sdk/client-eventbridge';
import { DovecotServer, type User } from '../test/support/dovecot.js';
import { Moto, MotoServer, uniqueName } from '../test/support/moto.js';
import { generateTlsMaterial } from '../test/support/tls.js';

export interface BenchWorld {
  readonly imap: DovecotServer;
  readonly motoServer: MotoServer;
  readonly aws: Moto;
  readonly user: User;
  readonly folder: string;
  readonly secretId: string;
  readonly table: string;
  readonly busName: string;
  /** The test CA (PEM) the server certificate chains to; the secret's caBundle. */
  readonly caPem: string;
  stop(): Promise<void>;
}

export async function startBenchWorld(folder = 'Firma/Kundenbetreuung/kunden/a'): Promise<BenchWorld> {
  const tls = await generateTlsMaterial();
  const [imap, motoServer] = await Promise.all([DovecotServer.start({ tls }), MotoServer.start()]);
  const aws = new Moto(motoServer.info);
  const user = await imap.createUser();
  await imap.createSeedTree(user);
  const secretId = uniqueName('bench');
  await aws.createSecret(secretId, {
    host: 'localhost',
    port: imap.info.imapsPort,
    security: 'tls',
    username: user.username,
    password: user.password,
    folder,
    caBundle: tls.caCertPem,
  });
  const table = uniqueName('cp');
  await aws.createCheckpointTable(table);
  const busName = (await aws.eventbridge.send(new CreateEventBusCommand({ Name: uniqueName('bus') })))
    .EventBusArn!.split('/')
    .pop()!;
  return {
    imap,
    motoServer,
    aws,
    user,
    folder,
    secretId,
    table,
    busName,
    caPem: tls.caCertPem,
    async stop() {
      aws.destroy();
      await Promise.all([imap.stop(), motoServer.stop()]);
    },
  };
}
