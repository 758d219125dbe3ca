/** What the poller says to the IMAP server: after login an empty poll is STATUS and LOGOUT (no ID, no NAMESPACE); nothing writes. */
import { describe, expect, it } from 'vitest';
import { composePollerDeps, pollOptions } from '../../functions/poller/compose.js';
import { parseStartAt } from '../../functions/poller/contract/start-at.js';
import { silentLog } from '../../functions/poller/ports.js';
import { pollMailbox } from '../../functions/poller/run/poll-mailbox.js';
import { World } from './world.js';

/** Every command one poll sent, the session setup included. */
async function commandsOfOnePoll(world: World, startAt = 'now'): Promise<string[]> {
  const commands: string[] = [];
  const config = {
    mailboxId: world.mailboxId,
    secretId: world.secretName,
    checkpointTable: world.table,
    eventBusName: world.bus.busName,
    eventSource: 'imap-event-source',
    startAt: parseStartAt(startAt)!,
    maxMessagesPerRun: 1_000,
  };
  const deps = await composePollerDeps(config, {
    log: silentLog,
    clientConfig: world.aws.clientConfig,
    onCommand: (verb) => commands.push(verb),
  });
  await pollMailbox(deps, pollOptions(config, Date.now() + 60_000));
  return commands;
}

/** The commands after the login. */
function afterLogin(commands: readonly string[]): string[] {
  const login = commands.findLastIndex((c) => c === 'LOGIN' || c === 'AUTHENTICATE');
  expect(login).toBeGreaterThanOrEqual(0);
  return commands.slice(login + 1);
}

describe('IMAP commands of a poll', () => {
  it('an empty poll: login, then STATUS and LOGOUT; no ID, no NAMESPACE (after a baseline that reads the newest message)', async () => {
    const world = await World.create();
    await world.append(2);
    // The baseline also reads the newest message's INTERNALDATE: the server's time basis for a later re-scan.
    expect(afterLogin(await commandsOfOnePoll(world))).toEqual([
      'STATUS',
      'LIST',
      'EXAMINE',
      'UID SEARCH',
      'UID FETCH',
      'LOGOUT',
    ]);
    const empty = await commandsOfOnePoll(world);
    expect(afterLogin(empty)).toEqual(['STATUS', 'LOGOUT']);
    expect(empty).not.toContain('ID');
    expect(empty).not.toContain('NAMESPACE');
  });

  it('new mail: LIST (imapflow resolves the path), read-only EXAMINE, two UID SEARCHes, one UID FETCH; never SELECT or STORE', async () => {
    const world = await World.create();
    await commandsOfOnePoll(world);
    await world.append(3);
    const commands = afterLogin(await commandsOfOnePoll(world));
    // UID SEARCH (new UIDs), UID SEARCH LARGER (none above the size bound: no size FETCH), UID FETCH (bounded
    // BODY.PEEK[] of the batch with flags, INTERNALDATE and size).
    expect(commands).toEqual(['STATUS', 'LIST', 'EXAMINE', 'UID SEARCH', 'UID SEARCH', 'UID FETCH', 'LOGOUT']);
    expect(commands).not.toContain('SELECT');
    expect(commands).not.toContain('STORE');
    expect(commands).not.toContain('EXPUNGE');
  });
});
