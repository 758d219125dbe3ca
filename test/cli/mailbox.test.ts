/**
 * `imap-event-source mailbox add|remove|list|pause|resume` in-process (runCli) against moto (the fleet's table
 * with the `due` index, Secrets Manager) and Dovecot (`add --check`).
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { MailboxListing } from '../../cli/commands/mailbox.js';
import { runCli } from '../support/cli.js';
import type { User } from '../support/dovecot.js';
import { dovecot, mailboxSecret } from '../support/env.js';
import { Fleet } from '../support/fleet.js';

const imap = dovecot();
const saved = { ...process.env };
afterEach(() => {
  process.env = { ...saved };
});

describe('mailbox', () => {
  let fleet: Fleet;
  let user: User;
  let secretId: string;
  const cli = (...args: string[]) => runCli(['mailbox', ...args, '--table', fleet.table]);

  beforeAll(async () => {
    fleet = await Fleet.create();
    user = await imap.createUser();
    secretId = `${fleet.secretPrefix}tenant`;
    await fleet.aws.createSecret(secretId, { ...mailboxSecret(imap, user), username: 'placeholder' });
  });

  it('adds a mailbox after checking its secret and connection, lists, pauses, resumes and removes it', async () => {
    fleet.use();
    const added = await cli('add', '--id', 'berlin', '--secret-id', secretId, '--username', user.username, '--check');
    expect(added.stderr).toBe('');
    expect(added.code).toBe(0);
    expect(added.stdout).toMatch(/✔ LOGIN/);
    expect(added.stdout).toMatch(/✔ ADDED\s+mailbox "berlin" \(rate\(1 minute\), start at now\)/);
    expect(added.stdout).not.toContain(user.password);
    const entry = await fleet.registry.get('berlin');
    expect(entry).toMatchObject({ source: 'cli', username: user.username, paused: false, failures: 0 });
    expect(entry!.dueAt).toBeLessThanOrEqual(Date.now());

    expect((await cli('add', '--id', 'berlin', '--secret-id', secretId)).stderr).toMatch(/already registered/);

    let listed = await cli('list');
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/^berlin\s+active\s+never\s+rate\(1 minute\)/m);
    expect(listed.stdout).toContain('1 mailboxes: 1 active, 0 paused, 0 in backoff.');
    // Added since the dispatcher's last cycle (none yet): the next cycle sends it.
    const pending = (JSON.parse((await cli('list', '--json')).stdout) as { mailboxes: MailboxListing[] }).mailboxes[0]!;
    expect(Date.parse(pending.nextAttemptAt!)).toBeLessThanOrEqual(Date.now());

    expect((await cli('pause', '--id', 'berlin')).code).toBe(0);
    expect((await fleet.registry.get('berlin'))?.dueAt).toBeUndefined();
    listed = await cli('list', '--json');
    expect((JSON.parse(listed.stdout) as { mailboxes: MailboxListing[] }).mailboxes[0]).toMatchObject({
      id: 'berlin',
      state: 'paused',
      nextAttemptAt: null,
    });

    // A mailbox in backoff shows its reason and next attempt; resume ends it.
    expect((await cli('resume', '--id', 'berlin')).code).toBe(0);
    const until = Date.now() + 3_600_000;
    await fleet.registry.recordFailure('berlin', {
      failures: 3,
      backoffUntil: until,
      code: 'IMAP_AUTH_FAILED',
      message: 'The IMAP server rejected the login.',
      at: new Date(),
    });
    listed = await cli('list');
    expect(listed.stdout).toMatch(
      new RegExp(
        `^berlin\\s+backoff\\s+never\\s+IMAP_AUTH_FAILED \\(3 in a row\\), next attempt ${new Date(until).toISOString()}`,
        'm',
      ),
    );
    expect((await cli('resume', '--id', 'berlin')).code).toBe(0);
    expect(await fleet.registry.get('berlin')).toMatchObject({ failures: 0, paused: false });

    const removed = await cli('remove', '--id', 'berlin');
    expect(removed.code).toBe(0);
    expect(await fleet.registry.get('berlin')).toBeUndefined();
    const missing = await cli('remove', '--id', 'berlin');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/No mailbox "berlin" is registered/);
  });

  it('refuses a secret outside the prefix, bad options, and a secret with invalid settings, before writing', async () => {
    fleet.use();
    const outside = await cli('add', '--id', 'x', '--secret-id', 'other/secret');
    expect(outside.code).toBe(1);
    expect(outside.stderr).toMatch(/secretId: must be a secret name or ARN under the prefix/);

    const bad = await cli('add', '--id', 'Bad_Id', '--secret-id', secretId, '--schedule', 'cron(0 9 ? * MON-FRI *)');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/id: 1 to 32 characters/);
    expect(bad.stderr).toMatch(/schedule: must be rate/);

    const broken = `${fleet.secretPrefix}broken`;
    await fleet.aws.createSecret(broken, { host: 'localhost', pasword: 'x' });
    const invalid = await cli('add', '--id', 'broken', '--secret-id', broken);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toMatch(/pasword: unknown field/);
    expect(await fleet.registry.get('broken')).toBeUndefined();

    const wrong = `${fleet.secretPrefix}wrong`;
    await fleet.aws.createSecret(wrong, { ...mailboxSecret(imap, user), password: 'not-it' });
    const failed = await cli('add', '--id', 'wrong', '--secret-id', wrong, '--check');
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/✖ LOGIN/);
    expect(failed.stderr).toMatch(/Not added/);
    expect(await fleet.registry.get('wrong')).toBeUndefined();

    delete process.env.CHECKPOINT_TABLE;
    expect((await runCli(['mailbox', 'list'])).code).toBe(2); // no --table, no CHECKPOINT_TABLE
    expect((await runCli(['mailbox', 'frobnicate', '--table', fleet.table])).code).toBe(2);
  });
});
