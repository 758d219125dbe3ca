/**
 * The `imap-event-source` CLI: command dispatch, --help, exit codes and failure paragraphs.
 * Exit codes: 0 success, 1 failure (explained on stderr or in the step report), 2 wrong usage.
 */
import { createRequire } from 'node:module';
import { isImapEventSourceError } from '../functions/poller/errors.js';
import type { CommandContext, CommandEntry, CommandIo } from './context.js';
import { printFailure, UsageError } from './output.js';

/** The package's own package.json by self-reference: resolves alike from the sources and from dist/. */
const { version } = createRequire(import.meta.url)('imap-event-source/package.json') as { version: string };

/**
 * The commands in overview order. A command's module (and what it imports: imapflow, the AWS SDK, ...) is loaded
 * only when that command runs or shows its help; `--help` and `--version` load none of them.
 */
const COMMANDS: readonly CommandEntry[] = [
  {
    name: 'check',
    summary: 'check settings, DNS, TCP, TLS, login and folder, step by step, with the fix for any failure',
    load: async () => (await import('./commands/check.js')).checkCommand,
  },
  {
    name: 'folders',
    summary: 'the folder tree as the server has it, with its delimiter and special-use flags',
    load: async () => (await import('./commands/folders.js')).foldersCommand,
  },
  {
    name: 'poll',
    summary: 'one poll cycle here (same engine as the Lambda); events as JSON lines or to EventBridge',
    load: async () => (await import('./commands/poll.js')).pollCommand,
  },
  {
    name: 'status',
    summary: 'health of every mailbox: checkpoint, lease, last success and failure, messages waiting',
    load: async () => (await import('./commands/status.js')).statusCommand,
  },
  {
    name: 'mailbox',
    summary: 'fleet mode: add, remove, list, pause or resume mailboxes without a deploy',
    load: async () => (await import('./commands/mailbox.js')).mailboxCommand,
  },
  {
    name: 'secret',
    summary: 'example secret (template), offline check (validate), rotation (stage, verify, promote, rollback)',
    load: async () => (await import('./commands/secret.js')).secretCommand,
  },
  {
    name: 'demo',
    summary: 'see it work: in-process IMAP server with TLS, the poller, new mail every few seconds (npm start)',
    load: async () => (await import('./commands/demo.js')).demoCommand,
  },
];

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'Usage: imap-event-source <command> [options]',
    '',
    'Turns an IMAP folder into Amazon EventBridge events. This CLI sets up, checks and runs a mailbox',
    'locally; the same engine runs in the Lambda.',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `imap-event-source <command> --help` for the options of a command. Global: --debug.',
    'Docs: docs/cli.md (commands), docs/operations.md (runbook: status, alarms, rotation, troubleshooting).',
  ].join('\n');
}

/**
 * Runs one command and returns its exit code. Everything it reads and writes goes through `io`, so tests run
 * commands in-process; bin/cli.ts passes the process's streams.
 */
export async function main(argv: readonly string[], io: CommandIo = process): Promise<number> {
  const debug = argv.includes('--debug');
  const args = argv.filter((a) => a !== '--debug');
  const [name, ...rest] = args;
  const ctx: CommandContext = { ...io, debug };

  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
    io.stdout.write(`${topic ? (await topic.load()).help : overview()}\n`);
    return 0;
  }
  if (name === '--version' || name === '-V') {
    io.stdout.write(`imap-event-source ${version}\n`);
    return 0;
  }
  const entry = COMMANDS.find((c) => c.name === name);
  if (!entry) {
    io.stderr.write(`✖ Unknown command "${name}".\n\n${overview()}\n`);
    return 2;
  }
  const command = await entry.load();
  if (rest.includes('--help') || rest.includes('-h')) {
    io.stdout.write(`${command.help}\n`);
    return 0;
  }
  try {
    return await command.run(rest, ctx);
  } catch (err) {
    if (err instanceof UsageError || isParseArgsError(err)) {
      io.stderr.write(`✖ ${(err as Error).message}\n  See: imap-event-source ${command.name} --help\n`);
      return 2;
    }
    printFailure(err, io.stderr, { debug });
    return isImapEventSourceError(err) ? 1 : 70;
  }
}

/** util.parseArgs throws TypeErrors with these codes for unknown or malformed options. */
function isParseArgsError(err: unknown): boolean {
  return (
    typeof (err as { code?: unknown })?.code === 'string' &&
    (err as { code: string }).code.startsWith('ERR_PARSE_ARGS_')
  );
}
