/**
 * `imap-event-source status`: per mailbox the checkpoint, the lease, the last successful and the last failed
 * poll (the status item the poller records), and the messages waiting against a live STATUS of the folder.
 * Exit code 1 when any mailbox is unhealthy (core/health.ts decides).
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { DynamoDbRegistry } from '../../functions/fleet/adapters/dynamodb-registry.js';
import { withOverrides } from '../../functions/fleet/compose.js';
import type { RegistryEntry } from '../../functions/fleet/core/registry.js';
import {
  assessHealth,
  formatSeconds,
  type Health,
  type LeaseInfo,
  type LiveFolder,
  type PollStatus,
  type ScheduleState,
} from '../../functions/poller/core/health.js';
import type { Checkpoint } from '../../functions/poller/core/types.js';
import { ConfigurationError, describeError } from '../../functions/poller/errors.js';
import type { CheckpointStore, PollStatusStore } from '../../functions/poller/ports.js';
import type { Command, CommandContext } from '../context.js';
import { type DeployedMailbox, readDeployedMailboxes } from '../deployment.js';
import { printStep, type StepStatus, UsageError, type Writer } from '../output.js';
import { quietAwsSdk, requireRegion, settingsSourceFrom } from '../settings-source.js';
import { listing, type MailboxListing } from './mailbox.js';

const HELP = `Usage: imap-event-source status --table TABLE [--mailbox ID]... [options]

Shows for every mailbox of a deployment (or the ones named with --mailbox):
  checkpoint    folder, UIDVALIDITY, last UID, when it was written
  lease         which run holds it and until when (free when no run is active)
  last success  time, outcome, messages published, messages waiting after that poll
  last failure  time and error code (with the fix in the message)
  live          STATUS of the folder now: messages waiting (UIDNEXT − 1 − last UID)
  fleet         (fleet mode) active, paused, or backing off with the reason and the next attempt;
                the live STATUS uses the registry's username and folder for the mailbox
Unhealthy: no successful poll recorded, none for longer than the staleness alarm allows
(STALE), the last poll failed (FAILING), the live STATUS fails (UNREACHABLE), or the fleet
backs the mailbox off after persistent failures (BACKOFF). A paused fleet mailbox is not
expected to poll: neither stale nor unhealthy.

Options:
      --table TABLE       the checkpoint table (stack output CheckpointTableName); default $CHECKPOINT_TABLE
      --mailbox ID        a mailbox to show (repeatable); default: every mailbox of --cdk-json,
                          or, without one, every mailbox with a status item in the table; in
                          fleet mode also every mailbox of the registry
      --cdk-json FILE     the deployment's cdk.json (default ./cdk.json when it has the configuration)
      --stale-after MIN   minutes without a successful poll that count as stale (default: what the
                          staleness alarm uses, recorded by the poller or derived from cdk.json)
      --no-live           skip the live STATUS (no secret read, no IMAP connection)
      --json              one JSON document on stdout instead of the report
  -h, --help              this text

AWS credentials and region from the environment, as for the AWS CLI.
Exit code 0 when every mailbox is healthy, 1 when one is not, 2 on wrong usage.

Examples:
  imap-event-source status --table ImapEventSource-CheckpointTable1234
  imap-event-source status --table mail-checkpoints --mailbox support --json`;

export interface MailboxStatusReport {
  readonly mailboxId: string;
  readonly healthy: boolean;
  readonly problems: Health['problems'];
  readonly checkpoint: Pick<Checkpoint, 'folder' | 'uidValidity' | 'lastUid' | 'updatedAt'> | null;
  readonly lease: (Omit<LeaseInfo, 'expiresAt'> & { expiresAt: string; expired: boolean }) | null;
  readonly lastSuccess: {
    at: string;
    outcome?: string;
    published?: number;
    waiting?: number;
    durationMs?: number;
  } | null;
  readonly lastFailure: { at: string; errorCode?: string; message?: string; consecutiveFailures: number } | null;
  readonly live: LiveFolder | null;
  /** Messages waiting now, against the live STATUS. */
  readonly waiting: number | null;
  readonly staleAfterSeconds: number | null;
  /** Fleet mode: the mailbox's registry entry as `mailbox list` shows it; null in per-mailbox mode. */
  readonly fleet: MailboxListing | null;
}

interface Stores {
  readonly status: PollStatusStore & { listMailboxIds(limit?: number): Promise<string[]> };
  readonly checkpoints: CheckpointStore;
  readonly registry: Pick<DynamoDbRegistry, 'get' | 'list'>;
}

export const statusCommand: Command = {
  name: 'status',
  help: HELP,
  async run(argv, ctx) {
    const { values } = parseArgs({
      args: argv,
      options: {
        table: { type: 'string' },
        mailbox: { type: 'string', multiple: true },
        'cdk-json': { type: 'string' },
        'stale-after': { type: 'string' },
        'no-live': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
      },
      strict: true,
    });
    const table = values.table ?? process.env.CHECKPOINT_TABLE;
    if (!table) throw new UsageError('status needs --table TABLE (the stack output CheckpointTableName)');
    let staleOverride: number | undefined;
    if (values['stale-after'] !== undefined) {
      staleOverride = Number(values['stale-after']) * 60;
      if (!(staleOverride > 0)) throw new UsageError('--stale-after must be a positive number of minutes');
    }

    const stores = await openStores(table);
    const deployed = await deployedMailboxes(values['cdk-json']);
    // Fleet mode: the registry names every mailbox, also those added with the CLI or never polled yet.
    const registered = values.mailbox?.length ? undefined : await stores.registry.list();
    const ids = values.mailbox?.length
      ? values.mailbox
      : [
          ...new Set([
            ...(deployed?.map((m) => m.id) ?? (await stores.status.listMailboxIds())),
            ...(registered ?? []).map((e) => e.id),
          ]),
        ];
    if (ids.length === 0) {
      throw new ConfigurationError(`No mailbox has a status item in table "${table}" yet.`, {
        hint: 'name the mailboxes with --mailbox or pass the deployment with --cdk-json; a mailbox gets its status item with its first poll.',
      });
    }
    const now = new Date();
    const reports: MailboxStatusReport[] = [];
    for (const id of ids) {
      const config = deployed?.find((m) => m.id === id);
      reports.push(
        await mailboxStatus(stores, id, {
          now,
          live: !values['no-live'],
          ...(registered ? { registered: registered.find((e) => e.id === id) ?? null } : {}),
          ...(config ? { deployed: config } : {}),
          ...(staleOverride !== undefined ? { staleAfterSeconds: staleOverride } : {}),
        }),
      );
    }
    const healthy = reports.every((r) => r.healthy);
    if (values.json) {
      ctx.stdout.write(`${JSON.stringify({ healthy, checkedAt: now.toISOString(), mailboxes: reports }, null, 2)}\n`);
    } else {
      for (const report of reports) printReport(ctx.stdout, report, now);
      summary(ctx, reports);
    }
    return healthy ? 0 : 1;
  },
};

async function openStores(table: string): Promise<Stores> {
  quietAwsSdk();
  const { composeDynamoDb } = await import('../../functions/poller/compose.js');
  const [client, { DynamoDbPollStatusStore }, { DynamoDbCheckpointStore }, { DynamoDbRegistry }] = await Promise.all([
    composeDynamoDb({}),
    import('../../functions/poller/adapters/dynamodb-status-store.js'),
    import('../../functions/poller/adapters/dynamodb-checkpoint-store.js'),
    import('../../functions/fleet/adapters/dynamodb-registry.js'),
  ]);
  await requireRegion(() => client.config.region(), 'reading the checkpoint table', 'status --table ...');
  return {
    status: new DynamoDbPollStatusStore(client, table),
    checkpoints: new DynamoDbCheckpointStore(client, table),
    registry: new DynamoDbRegistry(client, table),
  };
}

async function deployedMailboxes(cdkJson: string | undefined): Promise<DeployedMailbox[] | undefined> {
  if (cdkJson !== undefined) {
    const mailboxes = await readDeployedMailboxes(cdkJson);
    if (!mailboxes) {
      throw new ConfigurationError(`"${cdkJson}" has no imapEventSource configuration in its context.`, {
        hint: "pass the deployment's cdk.json, or name the mailboxes with --mailbox.",
      });
    }
    return mailboxes;
  }
  return existsSync('cdk.json') ? readDeployedMailboxes('cdk.json') : undefined;
}

/** Everything `status` shows about one mailbox. */
export async function mailboxStatus(
  stores: Stores,
  mailboxId: string,
  options: {
    now: Date;
    live: boolean;
    deployed?: DeployedMailbox;
    staleAfterSeconds?: number;
    /** The registry entry when the caller listed the registry already (null: not registered). */
    registered?: RegistryEntry | null;
  },
): Promise<MailboxStatusReport> {
  const [status, lease] = await Promise.all([stores.status.getStatus(mailboxId), stores.status.getLease(mailboxId)]);
  // After them: a missing table or a denied read is reported by the status read, whatever the timing.
  const entry = options.registered !== undefined ? options.registered : await stores.registry.get(mailboxId);
  const secretId = entry?.secretId ?? options.deployed?.secretId ?? status?.secretId;
  let folder = status?.folder;
  let live: LiveFolder | null = null;
  if (options.live) {
    if (!secretId) {
      live = {
        ok: false,
        errorCode: 'CONFIGURATION_INVALID',
        message: 'no secret known for this mailbox (no status item, not in cdk.json)',
      };
    } else {
      const probe = await liveStatus(secretId, entry ?? {});
      live = probe.live;
      folder = probe.folder ?? folder;
    }
  }
  const checkpoint = folder ? await stores.checkpoints.get(mailboxId, folder) : undefined;
  const staleAfterSeconds =
    options.staleAfterSeconds ?? options.deployed?.staleAfterSeconds ?? status?.staleAfterSeconds;
  const fleet = entry ? listing(entry, options.now.getTime()) : null;
  const health = assessHealth({
    now: options.now,
    ...(entry ? { schedule: scheduleState(entry) } : {}),
    ...(status ? { status } : {}),
    ...(checkpoint ? { checkpoint } : {}),
    ...(live ? { live } : {}),
    ...(staleAfterSeconds !== undefined ? { staleAfterSeconds } : {}),
  });
  return {
    mailboxId,
    healthy: health.healthy,
    problems: health.problems,
    checkpoint: checkpoint
      ? {
          folder: checkpoint.folder,
          uidValidity: checkpoint.uidValidity,
          lastUid: checkpoint.lastUid,
          updatedAt: checkpoint.updatedAt,
        }
      : null,
    lease: lease
      ? {
          owner: lease.owner,
          expiresAt: lease.expiresAt.toISOString(),
          ...(lease.acquiredAt ? { acquiredAt: lease.acquiredAt } : {}),
          expired: lease.expiresAt.getTime() <= options.now.getTime(),
        }
      : null,
    lastSuccess: successOf(status),
    lastFailure: status?.lastFailureAt
      ? {
          at: status.lastFailureAt,
          ...(status.lastErrorCode ? { errorCode: status.lastErrorCode } : {}),
          ...(status.lastErrorMessage ? { message: status.lastErrorMessage } : {}),
          consecutiveFailures: status.consecutiveFailures,
        }
      : null,
    live,
    waiting: health.waiting ?? null,
    staleAfterSeconds: staleAfterSeconds ?? null,
    fleet,
  };
}

function scheduleState(entry: RegistryEntry): ScheduleState {
  return {
    paused: entry.paused,
    failures: entry.failures,
    ...(entry.backoffUntil !== undefined ? { backoffUntil: new Date(entry.backoffUntil).toISOString() } : {}),
    ...(entry.lastErrorCode !== undefined ? { errorCode: entry.lastErrorCode } : {}),
  };
}

function successOf(status: PollStatus | undefined): MailboxStatusReport['lastSuccess'] {
  if (!status?.lastSuccessAt) return null;
  return {
    at: status.lastSuccessAt,
    ...(status.lastOutcome ? { outcome: status.lastOutcome } : {}),
    ...(status.lastPublished !== undefined ? { published: status.lastPublished } : {}),
    ...(status.lastWaiting !== undefined ? { waiting: status.lastWaiting } : {}),
    ...(status.lastDurationMs !== undefined ? { durationMs: status.lastDurationMs } : {}),
  };
}

/**
 * Reads the secret (with a fleet mailbox's `username` and `folder`) and asks the folder for its STATUS, as the poller
 * would; every failure becomes a LiveFolder error.
 */
async function liveStatus(
  secretId: string,
  overrides: Pick<RegistryEntry, 'username' | 'folder'>,
): Promise<{ live: LiveFolder; folder?: string }> {
  let folder: string | undefined;
  try {
    const resolved = await settingsSourceFrom({ 'secret-id': secretId });
    const settings = withOverrides(await resolved!.source.load({ fresh: true }), overrides);
    folder = settings.folder;
    const { ImapFlowMailboxGateway } = await import('../../functions/poller/adapters/imapflow-mailbox.js');
    const session = await new ImapFlowMailboxGateway().connect(settings);
    try {
      const s = await session.status(settings.folder);
      return { live: { ok: true, uidValidity: s.uidValidity, uidNext: s.uidNext, messages: s.messages }, folder };
    } finally {
      await session.close();
    }
  } catch (err) {
    const { code, message } = describeError(err);
    return { live: { ok: false, errorCode: code, message }, ...(folder ? { folder } : {}) };
  }
}

function ago(iso: string, now: Date): string {
  return `${formatSeconds(Math.max(0, (now.getTime() - Date.parse(iso)) / 1000))} ago`;
}

function printReport(out: Writer, r: MailboxStatusReport, now: Date): void {
  const step = (status: StepStatus, label: string, text: string) => printStep(out, status, label.padEnd(10), text);
  const problems = r.problems.map((p) => `${p.code}: ${p.message}`).join('; ');
  out.write(`${r.healthy ? '✔' : '✖'} ${r.mailboxId}  ${r.healthy ? 'healthy' : problems}\n`);
  const c = r.checkpoint;
  step(
    'info',
    'checkpoint',
    c
      ? `folder "${c.folder}", UIDVALIDITY ${c.uidValidity}, last UID ${c.lastUid}, updated ${c.updatedAt} (${ago(c.updatedAt, now)})`
      : 'none (the first poll writes it)',
  );
  step(
    'info',
    'lease',
    r.lease
      ? `held by ${r.lease.owner} until ${r.lease.expiresAt}${r.lease.expired ? ' (expired: the next run takes it over)' : ''}`
      : 'free (no run active)',
  );
  const s = r.lastSuccess;
  step(
    s ? 'ok' : 'warn',
    'success',
    s
      ? `${s.at} (${ago(s.at, now)}): ${s.outcome ?? '?'}, ${s.published ?? 0} published${s.waiting !== undefined ? `, ${s.waiting} waiting after it` : ''}`
      : 'never',
  );
  const f = r.lastFailure;
  step(
    r.problems.some((p) => p.code === 'FAILING') ? 'fail' : 'info',
    'failure',
    f
      ? `${f.at} (${ago(f.at, now)}): ${f.errorCode ?? '?'}${f.consecutiveFailures > 0 ? ` (${f.consecutiveFailures} in a row)` : ''}${f.message ? ` — ${f.message}` : ''}`
      : 'none recorded',
  );
  if (r.fleet) {
    const f = r.fleet;
    step(
      f.state === 'backoff' ? 'fail' : 'info',
      'fleet',
      f.state === 'backoff'
        ? `backoff: ${f.lastError?.code ?? '?'} (${f.failures} in a row), next attempt ${f.nextAttemptAt}; after the fix, \`mailbox resume\` polls it at once`
        : f.state === 'paused'
          ? 'paused (`mailbox resume` polls it again)'
          : `active, ${f.schedule}, next ${f.nextAttemptAt}${f.username ? `, user ${f.username}` : ''}`,
    );
  }
  if (r.live === null) step('skip', 'live', 'not checked (--no-live)');
  else if (!r.live.ok) step('fail', 'live', `${r.live.errorCode}: ${r.live.message}`);
  else {
    const versus =
      r.waiting !== null
        ? `, ${r.waiting} waiting`
        : r.checkpoint
          ? `, UIDVALIDITY ${r.live.uidValidity} differs from the checkpoint's: the next poll publishes a reset`
          : '';
    step('ok', 'live', `UIDNEXT ${r.live.uidNext}, ${r.live.messages} messages${versus}`);
  }
  out.write('\n');
}

function summary(ctx: CommandContext, reports: readonly MailboxStatusReport[]): void {
  const bad = reports.filter((r) => !r.healthy);
  ctx.stdout.write(
    bad.length === 0
      ? `All ${reports.length} mailbox${reports.length === 1 ? '' : 'es'} healthy.\n`
      : `${bad.length} of ${reports.length} mailbox${reports.length === 1 ? '' : 'es'} unhealthy: ${bad.map((r) => r.mailboxId).join(', ')}. Runbook: docs/operations.md.\n`,
  );
}
