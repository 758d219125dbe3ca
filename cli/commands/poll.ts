/** `imap-event-source poll`: one poll cycle on this machine, with the Lambda's engine. */
import { basename, extname } from 'node:path';
import { parseArgs } from 'node:util';
import { isMailboxId, MAILBOX_ID_RULE, toMailboxId } from '../../functions/poller/contract/mailbox-id.js';
import { POLLER_DEFAULTS } from '../../functions/poller/contract/poller-env.js';
import { parseStartAt, START_AT_RULE } from '../../functions/poller/contract/start-at.js';
import type { StartAt } from '../../functions/poller/core/types.js';
import { isImapEventSourceError } from '../../functions/poller/errors.js';
import type { Command } from '../context.js';
import { DEMO_FOLDER, startDemoServer } from '../demo/demo-server.js';
import { demoMessage } from '../demo/messages.js';
import { describeSummary, pollLocally } from '../local-poll.js';
import { printFailure, printStep, StderrLog, UsageError } from '../output.js';
import { SETTINGS_HELP, SETTINGS_OPTIONS, settingsArgsText, settingsSourceFrom } from '../settings-source.js';

export const DEFAULT_STATE_FILE = '.imap-event-source-state.json';

const HELP = `Usage: imap-event-source poll [--config FILE | --secret-id ID] [options]

Runs ONE poll cycle here, with the same engine as the Lambda (pollMailbox): reads the checkpoint,
asks the folder for new messages, publishes one event per message, advances the checkpoint.
Events are printed as JSON lines on stdout (logs go to stderr), or sent to EventBridge with --bus.
The checkpoint lives in a local JSON state file instead of DynamoDB.

Without --config/--secret-id it polls a built-in demo mailbox (an in-process IMAP server with
3 messages; see \`imap-event-source demo\`), starting at "all".

${SETTINGS_HELP}

Options:
      --state FILE           checkpoint file (default ${DEFAULT_STATE_FILE}); written atomically
      --dry-run              print the events but leave the state file unchanged
      --bus NAME             send the events to this EventBridge bus (AWS credentials from the
                             environment) instead of printing them
      --start-at WHEN        first poll of a folder: "now" (default: remember the newest UID,
                             publish nothing), "all" (publish every message), or an ISO date
                             (messages received since then), e.g. 2026-11-01T00:00:00Z;
                             a time without a zone is UTC
      --mailbox-id ID        the mailbox id in events and the state file: lowercase letters,
                             digits and inner hyphens, at most 32 (default: made from the config
                             file's name or the secret id, or "demo")
      --source NAME          the events' source (default imap-event-source)
      --max N                at most N messages in this run (default 1000)
      --timeout SECONDS      time budget for the cycle (default 300)
      --debug                debug logs and stack traces
  -h, --help                 this text

Exit code 0 when the cycle finished (with or without new messages), 1 on failure, 2 on wrong usage.
A changed "folder" starts a new checkpoint for that folder (as --start-at says).

Examples:
  imap-event-source poll --config mailbox.json --start-at all
  imap-event-source poll --config mailbox.json --dry-run | jq .detail.subject
  imap-event-source poll --secret-id prod/support --bus support-events`;

export const pollCommand: Command = {
  name: 'poll',
  help: HELP,
  async run(argv, ctx) {
    const { values } = parseArgs({
      args: argv,
      options: {
        ...SETTINGS_OPTIONS,
        state: { type: 'string', default: DEFAULT_STATE_FILE },
        'dry-run': { type: 'boolean', default: false },
        bus: { type: 'string' },
        'start-at': { type: 'string' },
        'mailbox-id': { type: 'string' },
        source: { type: 'string', default: POLLER_DEFAULTS.eventSource },
        max: { type: 'string' },
        timeout: { type: 'string', default: '300' },
      },
      strict: true,
    });
    let startAt: StartAt | undefined;
    if (values['start-at'] !== undefined) {
      startAt = parseStartAt(values['start-at']);
      if (!startAt) throw new UsageError(`--start-at ${START_AT_RULE}`);
    }
    if (values['mailbox-id'] !== undefined && !isMailboxId(values['mailbox-id']))
      throw new UsageError(`--mailbox-id must be ${MAILBOX_ID_RULE}`);
    const max = values.max === undefined ? undefined : Number(values.max);
    if (max !== undefined && !(Number.isInteger(max) && max > 0))
      throw new UsageError('--max must be a positive integer');
    const timeoutMs = Number(values.timeout) * 1000;
    if (!(timeoutMs > 0)) throw new UsageError('--timeout must be a positive number of seconds');
    const log = new StderrLog(ctx.stderr, { debug: ctx.debug });

    const resolved = await settingsSourceFrom(values);
    const demo = resolved
      ? undefined
      : await startDemoServer({
          seed: [1, 2, 3].map((n) => ({ folder: DEMO_FOLDER, source: demoMessage(n) })),
        });
    if (demo) {
      ctx.stderr.write(
        `No --config given: polling the built-in demo mailbox "${DEMO_FOLDER}" (in-process IMAP server on localhost:${demo.port}, 3 messages). Pass --config FILE for a real mailbox.\n`,
      );
    }
    const mailboxId =
      values['mailbox-id'] ??
      (values.config
        ? toMailboxId(basename(values.config, extname(values.config)))
        : values['secret-id']
          ? toMailboxId(values['secret-id'])
          : 'demo');
    try {
      const summary = await pollLocally({
        settings: resolved?.source ?? { load: async () => demo!.settings },
        mailboxId,
        stateFile: values.state,
        dryRun: values['dry-run'],
        startAt: startAt ?? (demo ? { kind: 'all' } : { kind: 'now' }),
        eventSource: values.source,
        ...(values.bus ? { bus: values.bus } : {}),
        stdout: { write: (text, callback) => ctx.stdout.write(text, callback) },
        log,
        timeoutMs,
        ...(max ? { maxMessagesPerRun: max } : {}),
      });
      printStep(
        ctx.stderr,
        'ok',
        'POLL',
        describeSummary(summary, { dryRun: values['dry-run'], stateFile: values.state }),
      );
      return 0;
    } catch (err) {
      if (!isImapEventSourceError(err)) throw err;
      printFailure(err, ctx.stderr, { debug: ctx.debug });
      if (/^(IMAP_|TLS_|STARTTLS_|FOLDER_)/.test(err.code) && resolved) {
        ctx.stderr.write(`  Step by step: imap-event-source check ${settingsArgsText(values)}\n`);
      }
      return 1;
    } finally {
      await demo?.close();
    }
  },
};
