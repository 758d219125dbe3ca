/**
 * The IMAP session a warm container keeps between invocations (run/session-keeper.ts), against the real Dovecot
 * through a TCP proxy that counts connections (and can reset them): reused by warm invocations, replaced when the
 * server or the network ended it, when the settings changed, and after a failed run.
 */
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { composePollerDeps } from '../../functions/poller/compose.js';
import { readPollerConfig } from '../../functions/poller/contract/poller-env.js';
import type { EventPublisher, PollDeps } from '../../functions/poller/ports.js';
import { pollMailbox } from '../../functions/poller/run/poll-mailbox.js';
import { DynamoDbCallLog } from '../support/aws-proxy.js';
import { dovecot, moto } from '../support/env.js';
import { uniqueName } from '../support/moto.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import { World } from './world.js';

let proxy: TcpProxy;
beforeAll(async () => {
  proxy = await TcpProxy.start({ port: dovecot().imapsPort!, name: 'imap-kept' });
});
afterAll(async () => {
  await proxy?.close();
});

/** A world whose IMAP connections go through this file's proxy. */
function keptWorld(): Promise<World> {
  return World.create({ secret: { port: proxy.port } });
}

/**
 * The Lambda's deps with a kept session (as the handler composes them), counting IMAP command verbs; its AWS calls go
 * to `endpoint` (default: the emulator).
 */
async function keptDeps(
  world: World,
  commands: string[],
  overrides: Partial<PollDeps> = {},
  endpoint?: string,
): Promise<PollDeps> {
  const deps = await composePollerDeps(readPollerConfig(world.handlerEnv()), {
    log: { debug() {}, info() {}, warn() {}, error() {} },
    clientConfig: { ...world.aws.clientConfig, ...(endpoint ? { endpoint } : {}) },
    onCommand: (verb) => commands.push(verb),
    keepSession: true,
  });
  return { ...deps, ...overrides };
}

describe('the kept IMAP session', () => {
  it('warm invocations reuse it: one connection for three polls; the summary line says so', async () => {
    const world = await keptWorld();
    const accepted = proxy.stats.accepted;
    const lines = await world.captureLogs(async () => {
      expect(await world.invoke()).toEqual({ outcome: 'baseline', published: 0 }); // a fresh container
      expect(await world.invokeWarm()).toEqual({ outcome: 'idle', published: 0 });
      await world.append(1);
      expect(await world.invokeWarm()).toEqual({ outcome: 'published', published: 1 });
    });
    expect(proxy.stats.accepted - accepted).toBe(1);
    expect(lines.filter((l) => l.message === 'Poll finished').map((l) => l.imapSession)).toEqual([
      'new',
      'reused',
      'reused',
    ]);
    expect(await world.events(1)).toHaveLength(1);
  });

  it('an empty poll on a kept session sends STATUS alone (no login, no LOGOUT) and reads the checkpoint alone (no lease)', async () => {
    const world = await keptWorld();
    const table = await DynamoDbCallLog.start(moto().info.endpoint);
    try {
      const commands: string[] = [];
      const deps = await keptDeps(world, commands, {}, table.url);
      await pollMailbox(deps, world.pollOptions());
      expect(commands).toContain('AUTHENTICATE'); // imapflow logs in with AUTHENTICATE PLAIN where offered
      expect(commands).not.toContain('LOGOUT');
      commands.length = 0;
      table.clear();
      expect(await pollMailbox(deps, world.pollOptions())).toMatchObject({ outcome: 'idle', imapSession: 'reused' });
      expect(commands).toEqual(['STATUS']);
      expect(table.writes()).toEqual([]);
      expect(table.reads()).toEqual(['GetItem checkpoint# (consistent)']);
      // A run with mail takes the lease, reads the checkpoint again under it, and deselects the folder before
      // keeping the session (the next STATUS must not name it).
      await world.append(1);
      commands.length = 0;
      table.clear();
      expect(await pollMailbox(deps, world.pollOptions())).toMatchObject({ published: 1, imapSession: 'reused' });
      expect(commands.at(-1)).toBe('CLOSE');
      expect(table.writes()).toEqual(['PutItem lease#', 'PutItem checkpoint#', 'DeleteItem lease#']);
      expect(table.reads()).toEqual(['GetItem checkpoint# (consistent)', 'GetItem checkpoint# (consistent)']);
      commands.length = 0;
      expect(await pollMailbox(deps, world.pollOptions())).toMatchObject({ outcome: 'idle', imapSession: 'reused' });
      expect(commands).toEqual(['STATUS']);
      deps.sessions?.clear();
    } finally {
      await table.close();
    }
  });

  it('ended by the server (doveadm kick) or reset by the network: the next run logs in anew and delivers', async () => {
    const world = await keptWorld();
    await world.invoke();
    await world.imap.kick(world.user);
    const [first] = await world.append(1);
    let accepted = proxy.stats.accepted;
    expect(await world.invokeWarm()).toEqual({ outcome: 'published', published: 1 });
    expect(proxy.stats.accepted - accepted).toBe(1);

    proxy.dropAll(); // RST on the kept session
    const [second] = await world.append(1);
    accepted = proxy.stats.accepted;
    const lines = await world.captureLogs(async () => {
      expect(await world.invokeWarm()).toEqual({ outcome: 'published', published: 1 });
    });
    expect(proxy.stats.accepted - accepted).toBe(1);
    expect(lines.find((l) => l.message === 'Poll finished')).toMatchObject({ imapSession: 'new' });
    const uids = (await world.events<{ uid: number }>(2)).map((e) => e.detail.uid).sort((a, b) => a - b);
    expect(uids).toEqual([first, second]);
  });

  it('never outlives a settings change: a re-read secret with a new password closes it (LOGOUT) and logs in anew', async () => {
    const world = await keptWorld();
    const commands: string[] = [];
    const base = await keptDeps(world, commands);
    // Every run reads the secret (as when the settings cache expired between two polls).
    const deps: PollDeps = { ...base, settings: { load: (o) => base.settings.load({ ...o, fresh: true }) } };
    await pollMailbox(deps, world.pollOptions());
    expect(await pollMailbox(deps, world.pollOptions())).toMatchObject({ imapSession: 'reused' });
    const password = 'rotated-Pa55word';
    await world.imap.setPassword(world.user, password); // Dovecot keeps the logged-in session alive
    await world.aws.putSecretValue(world.secretName, world.secretValue({ port: proxy.port, password }));
    const accepted = proxy.stats.accepted;
    commands.length = 0;
    expect(await pollMailbox(deps, world.pollOptions())).toMatchObject({ outcome: 'idle', imapSession: 'new' });
    expect(proxy.stats.accepted - accepted).toBe(1);
    await vi.waitFor(() => expect(commands).toContain('LOGOUT')); // the old session, logged out
    expect(await pollMailbox(deps, world.pollOptions())).toMatchObject({ imapSession: 'reused' });
    deps.sessions?.clear();
  });

  it('is not kept after a failed run: the next run logs in anew', async () => {
    const world = await keptWorld();
    const commands: string[] = [];
    const deps = await keptDeps(world, commands);
    await pollMailbox(deps, world.pollOptions());
    await world.append(1);
    const rejectAll: EventPublisher = {
      publish: async (entries) => ({ accepted: new Set(), failed: new Map(entries.map((_, i) => [i, 'Injected'])) }),
    };
    commands.length = 0;
    await expect(pollMailbox({ ...deps, publisher: rejectAll }, world.pollOptions())).rejects.toMatchObject({
      code: 'EVENT_PUBLISH_FAILED',
    });
    expect(commands).not.toContain('AUTHENTICATE'); // the failing run used the kept session (and did not retry: it published)
    expect(commands.at(-1)).toBe('LOGOUT');
    const accepted = proxy.stats.accepted;
    expect(await pollMailbox(deps, world.pollOptions())).toMatchObject({ published: 1, imapSession: 'new' });
    expect(proxy.stats.accepted - accepted).toBe(1);
    deps.sessions?.clear();
  });

  it.each(['tls', 'starttls'] as const)(
    'keeps no handle that holds Node (%s): a process that polled twice exits by itself',
    async (security) => {
      const world = await World.create({ security });
      const script = join(tmpdir(), `${uniqueName('kept')}.mts`);
      const handler = new URL('../../functions/poller/handler.ts', import.meta.url).pathname;
      await writeFile(
        script,
        `const { handler } = await import(${JSON.stringify(handler)});
const context = { getRemainingTimeInMillis: () => 30_000 };
const results = [await handler({}, context), await handler({}, context)];
process.stdout.write('RESULTS ' + JSON.stringify(results) + '\\n');
`,
      );
      const child = spawn(process.execPath, ['--import', 'tsx', script], {
        env: {
          ...process.env,
          ...world.handlerEnv(),
          POWERTOOLS_LOG_LEVEL: 'INFO',
          POWERTOOLS_METRICS_DISABLED: 'true',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      const exited = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 60_000);
        child.on('exit', () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      if (!exited) child.kill();
      expect(exited, output.slice(-2000)).toBe(true);
      expect(output).toContain('RESULTS [{"outcome":"baseline","published":0},{"outcome":"idle","published":0}]');
      expect(output).toMatch(/"imapSession":"reused"/);
    },
    90_000,
  );
});
