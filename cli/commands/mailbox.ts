/**
 * `imap-event-source mailbox add | remove | list | pause | resume`: the fleet's registry at run time, without a
 * deploy. `add` validates the mailbox (id, schedule, start position, the secret under the fleet's prefix, its
 * settings with the overrides) before it writes, and with `--check` connects first, step by step as `check` does.
 */
import { parseArgs } from 'node:util';
import { withOverrides } from '../../functions/fleet/compose.js';
import {
  DEFAULT_SCHEDULE,
  declaredMailboxProblems,
  definitionOf,
  mailboxState,
  nextAttemptAt,
  type RegistryEntry,
} from '../../functions/fleet/core/registry.js';
import { FLEET_DEFAULTS, WORKER_ENV } from '../../functions/poller/contract/fleet.js';
import { formatSeconds } from '../../functions/poller/core/health.js';
import { ConfigurationError } from '../../functions/poller/errors.js';
import type { Command, CommandContext } from '../context.js';
import { printStep, UsageError } from '../output.js';
import { quietAwsSdk, requireRegion, settingsSourceFrom } from '../settings-source.js';
import { runCheck } from './check.js';

const HELP = `Usage: imap-event-source mailbox <add|remove|list|pause|resume> --table TABLE [options]

Manages the mailboxes of a fleet-mode deployment (cdk.json "mode": "fleet") at run time, without a
deploy: the dispatcher picks up a change on its next cycle (within a minute).

  add      registers a mailbox; validates the secret (it must be under the fleet's secret prefix, and
           its settings, with --username/--folder applied, must be valid) before writing
  remove   removes a mailbox from the registry (its checkpoint and status stay; adding it again later
           continues where it stopped)
  list     every mailbox: state (active, paused, backoff with the reason and the next attempt), last
           successful poll, schedule, secret
  pause    stops polling a mailbox (it keeps its checkpoint)
  resume   polls a paused mailbox again, or ends a backoff at once (after fixing a password)

Options:
      --table TABLE        the fleet's table (stack output CheckpointTableName); default $CHECKPOINT_TABLE
      --id ID              the mailbox id (add, remove, pause, resume)
      --secret-id ID       add: the secret with the settings (name or ARN); several mailboxes may share one
      --username NAME      add: overrides the secret's username (a shared secret serving a tenant)
      --folder PATH        add: overrides the secret's folder
      --schedule EXPR      add: rate(...) or an evenly spaced cron(...) (default ${DEFAULT_SCHEDULE})
      --start-at WHEN      add: now (default), all, or an ISO 8601 date
      --check              add: connect first (DNS, TCP, TLS, login, folder) and add only if that works
      --timeout SECONDS    add --check: per step (default 10)
      --secret-prefix P    the fleet's secret prefix (default $${WORKER_ENV.secretPrefix} or "${FLEET_DEFAULTS.secretPrefix}")
      --json               list: one JSON document instead of the table
  -h, --help               this text

AWS credentials and region from the environment, as for the AWS CLI.
Exit code 0 on success, 1 when the mailbox or its secret is not usable, 2 on wrong usage.

Examples:
  imap-event-source mailbox add --table T --id berlin --secret-id imap-event-source/tenant \\
      --username berlin@example.com --check
  imap-event-source mailbox list --table T
  imap-event-source mailbox resume --table T --id berlin`;

const ACTIONS = ['add', 'remove', 'list', 'pause', 'resume'] as const;
type Action = (typeof ACTIONS)[number];

export const mailboxCommand: Command = {
  name: 'mailbox',
  help: HELP,
  async run(argv, ctx) {
    const [action, ...rest] = argv;
    if (!ACTIONS.includes(action as Action))
      throw new UsageError(`mailbox needs one of: ${ACTIONS.join(', ')}${action ? ` (not "${action}")` : ''}`);
    const { values } = parseArgs({
      args: rest,
      options: {
        table: { type: 'string' },
        id: { type: 'string' },
        'secret-id': { type: 'string' },
        username: { type: 'string' },
        folder: { type: 'string' },
        schedule: { type: 'string' },
        'start-at': { type: 'string' },
        check: { type: 'boolean', default: false },
        'secret-prefix': { type: 'string' },
        json: { type: 'boolean', default: false },
        timeout: { type: 'string', default: '10' },
      },
      strict: true,
    });
    const table = values.table ?? process.env.CHECKPOINT_TABLE;
    if (!table) throw new UsageError(`mailbox ${action} needs --table TABLE (the stack output CheckpointTableName)`);
    const id = values.id;
    if (action !== 'list' && !id) throw new UsageError(`mailbox ${action} needs --id ID`);
    const prefix = values['secret-prefix'] ?? process.env[WORKER_ENV.secretPrefix] ?? FLEET_DEFAULTS.secretPrefix;

    quietAwsSdk();
    const { composeRegistry } = await import('../../functions/fleet/compose.js');
    const { registry, region } = await composeRegistry(table);
    await requireRegion(region, 'reading the registry', `mailbox ${action} --table ...`);
    const out = ctx.stdout;

    switch (action as Action) {
      case 'add': {
        if (!values['secret-id']) throw new UsageError('mailbox add needs --secret-id ID');
        const declared = {
          id: id!,
          secretId: values['secret-id'],
          ...(values.username !== undefined ? { username: values.username } : {}),
          ...(values.folder !== undefined ? { folder: values.folder } : {}),
          ...(values.schedule !== undefined ? { schedule: values.schedule } : {}),
          ...(values['start-at'] !== undefined ? { startAt: values['start-at'] } : {}),
        };
        const problems = declaredMailboxProblems(declared, prefix);
        if (problems.length > 0) {
          throw new ConfigurationError(`The mailbox cannot be added: ${problems.join('; ')}.`, {
            hint: 'correct the listed options (see imap-event-source mailbox --help).',
          });
        }
        const definition = definitionOf(declared);
        const resolved = (await settingsSourceFrom({ 'secret-id': definition.secretId }))!;
        const load = async () => withOverrides(await resolved.source.load({ fresh: true }), definition);
        if (values.check) {
          const timeoutMs = Number(values.timeout) * 1000;
          if (!(timeoutMs > 0)) throw new UsageError('--timeout must be a positive number of seconds');
          if (!(await runCheck(load, resolved.origin, { timeoutMs, ctx }))) {
            ctx.stderr.write(`✖ Not added: the check above failed.\n`);
            return 1;
          }
        } else {
          const settings = await load(); // throws SettingsValidationError / SecretAccessError with the fix
          printStep(
            out,
            'ok',
            'SETTINGS',
            `${resolved.origin}: user "${settings.username}", folder "${settings.folder}" on ${settings.host}`,
          );
        }
        await registry.create(definition, 'cli', new Date());
        printStep(
          out,
          'ok',
          'ADDED',
          `mailbox "${definition.id}" (${definition.schedule}, start at ${definition.startAt}); the dispatcher polls it within a minute`,
        );
        return 0;
      }
      case 'remove': {
        const entry = await existing(registry, id!, table);
        await registry.remove(entry.id);
        printStep(out, 'ok', 'REMOVED', `mailbox "${entry.id}"; its checkpoint and status stay in the table`);
        if (entry.source === 'cdk') {
          printStep(
            out,
            'warn',
            'CDK.JSON',
            'it is declared in cdk.json: the next deploy that changes the declared mailboxes adds it again; remove it there too (or pause it instead)',
          );
        }
        return 0;
      }
      case 'pause':
      case 'resume': {
        await existing(registry, id!, table);
        if (action === 'pause') await registry.pause(id!);
        else await registry.resume(id!, new Date());
        printStep(
          out,
          'ok',
          action === 'pause' ? 'PAUSED' : 'RESUMED',
          action === 'pause'
            ? `mailbox "${id}" is not polled until resumed`
            : `mailbox "${id}" is due now (backoff and failure count cleared)`,
        );
        return 0;
      }
      case 'list': {
        const [entries, lastCycleAt] = await Promise.all([registry.list(), registry.lastCycleAt()]);
        return list(ctx, entries, values.json, lastCycleAt);
      }
    }
  },
};

async function existing(
  registry: { get(id: string): Promise<RegistryEntry | undefined> },
  id: string,
  table: string,
): Promise<RegistryEntry> {
  const entry = await registry.get(id);
  if (!entry) {
    throw new ConfigurationError(`No mailbox "${id}" is registered in "${table}".`, {
      hint: '`imap-event-source mailbox list --table ...` shows the registered ones.',
    });
  }
  return entry;
}

/** One mailbox as `list` shows it. */
export interface MailboxListing {
  readonly id: string;
  readonly state: 'active' | 'paused' | 'backoff';
  readonly source: string;
  readonly schedule: string;
  readonly secretId: string;
  readonly username?: string;
  readonly folder?: string;
  readonly lastSuccessAt: string | null;
  readonly failures: number;
  readonly lastError: { code: string; message?: string } | null;
  /**
   * When it is sent to the pool next: its next moment on its schedule, the end of its backoff, or now (due since the
   * dispatcher's last cycle: the next cycle, within a minute, sends it); null when paused.
   */
  readonly nextAttemptAt: string | null;
}

export function listing(entry: RegistryEntry, now: number, lastCycleAt?: number): MailboxListing {
  const state = mailboxState(entry, now);
  const next = nextAttemptAt(entry, now, lastCycleAt);
  return {
    id: entry.id,
    state,
    source: entry.source,
    schedule: entry.schedule,
    secretId: entry.secretId,
    ...(entry.username !== undefined ? { username: entry.username } : {}),
    ...(entry.folder !== undefined ? { folder: entry.folder } : {}),
    lastSuccessAt: entry.lastSuccessAt ?? null,
    failures: entry.failures,
    lastError: entry.lastErrorCode
      ? { code: entry.lastErrorCode, ...(entry.lastErrorMessage ? { message: entry.lastErrorMessage } : {}) }
      : null,
    nextAttemptAt: next !== undefined ? new Date(next).toISOString() : null,
  };
}

function list(ctx: CommandContext, entries: readonly RegistryEntry[], json: boolean, lastCycleAt?: number): number {
  const now = Date.now();
  const rows = entries.map((e) => listing(e, now, lastCycleAt));
  if (json) {
    ctx.stdout.write(`${JSON.stringify({ mailboxes: rows }, null, 2)}\n`);
    return 0;
  }
  if (rows.length === 0) {
    ctx.stdout.write('No mailboxes registered.\n');
    return 0;
  }
  const ago = (iso: string | null) =>
    iso ? `${formatSeconds(Math.max(0, (now - Date.parse(iso)) / 1000))} ago` : 'never';
  const width = Math.max(2, ...rows.map((r) => r.id.length));
  ctx.stdout.write(`${'ID'.padEnd(width)}  ${'STATE'.padEnd(8)}  ${'LAST SUCCESS'.padEnd(16)}  DETAIL\n`);
  for (const r of rows) {
    const detail =
      r.state === 'backoff'
        ? `${r.lastError?.code ?? '?'} (${r.failures} in a row), next attempt ${r.nextAttemptAt}${r.lastError?.message ? ` — ${r.lastError.message}` : ''}`
        : r.state === 'paused'
          ? 'paused (mailbox resume to poll again)'
          : `${r.schedule}, next ${r.nextAttemptAt}${r.username ? `, user ${r.username}` : ''}`;
    ctx.stdout.write(`${r.id.padEnd(width)}  ${r.state.padEnd(8)}  ${ago(r.lastSuccessAt).padEnd(16)}  ${detail}\n`);
  }
  const count = (s: string) => rows.filter((r) => r.state === s).length;
  ctx.stdout.write(
    `${rows.length} mailboxes: ${count('active')} active, ${count('paused')} paused, ${count('backoff')} in backoff.\n`,
  );
  return 0;
}
