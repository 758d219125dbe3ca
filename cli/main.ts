/**
 * The `imap-event-source` CLI: command dispatch, --help, exit codes and failure paragraphs.
 * Exit codes: 0 success, 1 failure (explained on stderr or in the step report), 2 wrong usage.
 */
import { createRequire } from 'node:module';
import { isImapEventSourceError } from '../functions/poller/errors.js';
import { checkCommand } from './commands/check.js';
import { demoCommand } from './commands/demo.js';
import { foldersCommand } from './commands/folders.js';
import { mailboxCommand } from './commands/mailbox.js';
import { pollCommand } from './commands/poll.js';
import { secretCommand } from './commands/secret.js';
import { statusCommand } from './commands/status.js';
import type { Command, CommandContext, CommandIo } from './context.js';
import { printFailure, UsageError } from './output.js';

/** The package's own package.json by self-reference: resolves alike from the sources and from dist/. */
const { version } = createRequire(import.meta.url)('imap-event-source/package.json') as { version: string };

const COMMANDS: readonly Command[] = [
  checkCommand,
  foldersCommand,
  pollCommand,
  statusCommand,
  mailboxCommand,
  secretCommand,
  demoCommand,
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
    io.stdout.write(`${topic ? topic.help : overview()}\n`);
    return 0;
  }
  if (name === '--version' || name === '-V') {
    io.stdout.write(`imap-event-source ${version}\n`);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    io.stderr.write(`✖ Unknown command "${name}".\n\n${overview()}\n`);
    return 2;
  }
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
