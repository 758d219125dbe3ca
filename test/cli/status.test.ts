/**
 * `imap-event-source status` against moto (status item, checkpoint, lease) and Dovecot (live STATUS): a healthy,
 * a stale and a failing mailbox in one table, each recorded by the real Lambda handler.
 */

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { beforeAll, describe, expect, it } from 'vitest';
import type { MailboxStatusReport } from '../../cli/commands/status.js';
import { DynamoDbCheckpointStore } from '../../functions/poller/adapters/dynamodb-checkpoint-store.js';
import { DynamoDbPollStatusStore } from '../../functions/poller/adapters/dynamodb-status-store.js';
import { World } from '../integration/world.js';
import { runCli, tempDir } from '../support/cli.js';

const dir = tempDir(); // no cdk.json here: mailboxes come from --mailbox or the table

interface StatusJson {
  healthy: boolean;
  mailboxes: MailboxStatusReport[];
}

// The CLI runs in-process (runCli) with moto's endpoint in the environment; the cwd has no cdk.json.
describe('status', { timeout: 180_000 }, () => {
  let healthy: World;
  let stale: World;
  let failing: World;
  let table: string;
  let env: Record<string, string>;
  let statuses: DynamoDbPollStatusStore;

  beforeAll(async () => {
    healthy = await World.create({ env: { STALE_AFTER_SECONDS: '180' } });
    table = healthy.table;
    const shared = { CHECKPOINT_TABLE: table, STALE_AFTER_SECONDS: '180' };
    stale = await World.create({ env: shared });
    failing = await World.create({ env: shared });
    env = healthy.aws.awsEnv();
    statuses = new DynamoDbPollStatusStore(new DynamoDBClient(healthy.aws.clientConfig), table);

    // healthy: baselined, then two messages arrive that the next poll will publish
    expect(await healthy.invoke()).toEqual({ outcome: 'baseline', published: 0 });
    await healthy.append(2);
    // stale: its last success was an hour ago (a poller whose schedule stopped)
    await stale.invoke();
    await statuses.recordSuccess(stale.mailboxId, {
      at: new Date(Date.now() - 3_600_000),
      outcome: 'idle',
      folder: stale.folder,
      published: 0,
      waiting: 0,
      durationMs: 800,
      secretId: stale.secretName,
      staleAfterSeconds: 180,
    });
    // failing: succeeded once, then the password in the secret went wrong
    await failing.invoke();
    await failing.aws.putSecretValue(failing.secretName, failing.secretValue({ password: 'wrong-password-1' }));
    await failing.invokeFailing();
    await failing.invokeFailing();
  }, 180_000);

  it('--json: healthy, stale and failing told apart; exit 1 because two are unhealthy', async () => {
    const r = await runCli(
      ['status', '--table', table, '--json', ...[healthy, stale, failing].flatMap((w) => ['--mailbox', w.mailboxId])],
      { env, cwd: dir },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout) as StatusJson;
    expect(out.healthy).toBe(false);
    const [h, s, f] = out.mailboxes;

    const checkpoint = await healthy.checkpoint();
    expect(h).toMatchObject({
      mailboxId: healthy.mailboxId,
      healthy: true,
      problems: [],
      checkpoint: {
        folder: healthy.folder,
        uidValidity: checkpoint!.uidValidity,
        lastUid: checkpoint!.lastUid,
        updatedAt: checkpoint!.updatedAt,
      },
      lease: null,
      lastSuccess: { outcome: 'baseline', published: 0, waiting: 0, at: expect.any(String) },
      lastFailure: null,
      live: { ok: true, uidValidity: checkpoint!.uidValidity, uidNext: checkpoint!.lastUid + 3 },
      waiting: 2,
      staleAfterSeconds: 180,
    });

    expect(s).toMatchObject({ mailboxId: stale.mailboxId, healthy: false, lastFailure: null });
    expect(s!.problems).toEqual([
      { code: 'STALE', message: expect.stringMatching(/^no successful poll for 1 h( \d+ min)? \(limit 3 min\)$/) },
    ]);

    expect(f).toMatchObject({
      mailboxId: failing.mailboxId,
      healthy: false,
      lastSuccess: { outcome: 'baseline' },
      lastFailure: { errorCode: 'IMAP_AUTH_FAILED', consecutiveFailures: 2 },
      live: { ok: false, errorCode: 'IMAP_AUTH_FAILED' },
    });
    expect(f!.problems.map((p) => p.code)).toEqual(['FAILING', 'UNREACHABLE']);
    expect(f!.problems[0]!.message).toBe('the last 2 polls failed with IMAP_AUTH_FAILED');
    expect(r.stdout).not.toContain(failing.user.password);
    expect(r.stdout).not.toContain('wrong-password-1');
  });

  it('human report; a success after failures makes the mailbox healthy again', async () => {
    const r = await runCli(['status', '--table', table, '--mailbox', healthy.mailboxId, '--mailbox', stale.mailboxId], {
      env,
      cwd: dir,
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`✔ ${healthy.mailboxId}  healthy\n`);
    expect(r.stdout).toMatch(new RegExp(`✖ ${stale.mailboxId} {2}STALE: no successful poll for 1 h`));
    expect(r.stdout).toMatch(
      /· checkpoint {2}folder "Firma\/Kundenbetreuung\/kunden\/a", UIDVALIDITY \d+, last UID \d+/,
    );
    expect(r.stdout).toContain('· lease       free (no run active)');
    expect(r.stdout).toMatch(/✔ live {8}UIDNEXT \d+, 2 messages, 2 waiting/);
    expect(r.stdout).toContain(`1 of 2 mailboxes unhealthy: ${stale.mailboxId}. Runbook: docs/operations.md.`);

    // The healthy one publishes its two messages: nothing waiting any more, exit 0.
    expect(await healthy.invoke()).toEqual({ outcome: 'published', published: 2 });
    const again = await runCli(['status', '--table', table, '--mailbox', healthy.mailboxId, '--json'], {
      env,
      cwd: dir,
    });
    expect(again.code).toBe(0);
    const out = JSON.parse(again.stdout) as StatusJson;
    expect(out.mailboxes[0]).toMatchObject({
      healthy: true,
      waiting: 0,
      lastSuccess: { outcome: 'published', published: 2, waiting: 0 },
    });
  });

  it('shows the lease holder; without --mailbox lists every mailbox of the table; --no-live skips IMAP', async () => {
    const leases = new DynamoDbCheckpointStore(new DynamoDBClient(healthy.aws.clientConfig), table);
    const until = new Date(Date.now() + 600_000);
    expect(await leases.acquire(stale.mailboxId, 'run-4711', new Date(), until)).toBe(true);
    try {
      const r = await runCli(['status', '--table', table, '--json', '--no-live'], { env, cwd: dir });
      const out = JSON.parse(r.stdout) as StatusJson;
      expect(out.mailboxes.map((m) => m.mailboxId)).toEqual(
        [healthy.mailboxId, stale.mailboxId, failing.mailboxId].sort(),
      );
      const s = out.mailboxes.find((m) => m.mailboxId === stale.mailboxId)!;
      expect(s.lease).toEqual({
        owner: 'run-4711',
        expiresAt: until.toISOString(),
        acquiredAt: expect.any(String),
        expired: false,
      });
      expect(out.mailboxes.every((m) => m.live === null)).toBe(true);
      // Without the live STATUS the failing mailbox is still unhealthy from its record alone.
      expect(out.mailboxes.find((m) => m.mailboxId === failing.mailboxId)!.problems.map((p) => p.code)).toEqual([
        'FAILING',
      ]);
    } finally {
      await leases.release(stale.mailboxId, 'run-4711');
    }
  });

  it("reads the mailboxes and the staleness limit from the deployment's cdk.json", async () => {
    const cdkJson = join(dir, 'cdk.json');
    writeFileSync(
      cdkJson,
      JSON.stringify({
        context: {
          imapEventSource: {
            mailboxes: [{ id: healthy.mailboxId, secretName: healthy.secretName, schedule: 'rate(15 minutes)' }],
            alarms: { staleAfterIntervals: 4 },
          },
        },
      }),
    );
    const r = await runCli(['status', '--table', table, '--json'], { env, cwd: dir });
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as StatusJson;
    expect(out.mailboxes).toHaveLength(1);
    expect(out.mailboxes[0]).toMatchObject({
      mailboxId: healthy.mailboxId,
      staleAfterSeconds: 4 * 15 * 60,
      live: { ok: true },
    });
  });

  it('wrong usage exits 2; a missing table is explained', async () => {
    const usage = await runCli(['status'], { env: { ...env, CHECKPOINT_TABLE: '' }, cwd: dir });
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('status needs --table TABLE');
    const missing = await runCli(['status', '--table', 'no-such-table', '--mailbox', 'x'], { env, cwd: dir });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(
      'The checkpoint table "no-such-table" failed during status read (ResourceNotFoundException).',
    );
    expect(missing.stderr).toContain(
      'Fix: the table "no-such-table" does not exist: pass the stack\'s CheckpointTableName output.',
    );
  });
});
