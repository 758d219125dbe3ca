/** `imap-event-source folders`: the folder tree as the server has it, with its delimiter and flags. */
import { parseArgs } from 'node:util';
import { composeMailboxGateway } from '../../functions/poller/compose.js';
import { isImapEventSourceError } from '../../functions/poller/errors.js';
import { type MailboxSession, silentLog } from '../../functions/poller/ports.js';
import type { Command } from '../context.js';
import { renderFolderTree } from '../folders.js';
import { printFailure, UsageError } from '../output.js';
import { SETTINGS_HELP, SETTINGS_OPTIONS, settingsArgsText, settingsSourceFrom } from '../settings-source.js';

const HELP = `Usage: imap-event-source folders (--config FILE | --secret-id ID [--version-stage STAGE])

Logs in and lists every folder as the server names it: one line per folder, indented by level,
with the full path to put into "folder", the server's hierarchy delimiter, and special-use flags
(\\Sent, \\Trash, ...). The configured folder is marked. Changes nothing on the server.

${SETTINGS_HELP}

Options:
      --debug                stack traces on unexpected errors
  -h, --help                 this text`;

export const foldersCommand: Command = {
  name: 'folders',
  help: HELP,
  async run(argv, ctx) {
    const { values } = parseArgs({ args: argv, options: { ...SETTINGS_OPTIONS }, strict: true });
    const resolved = await settingsSourceFrom(values);
    if (!resolved) throw new UsageError('folders needs --config FILE or --secret-id ID');
    const settings = await resolved.source.load({ fresh: true });
    let folders: Awaited<ReturnType<MailboxSession['listFolders']>>;
    try {
      const session = await composeMailboxGateway({ log: silentLog }).connect(settings);
      try {
        folders = await session.listFolders();
      } finally {
        await session.close();
      }
    } catch (err) {
      if (!isImapEventSourceError(err)) throw err;
      printFailure(err, ctx.stderr, { debug: ctx.debug });
      ctx.stderr.write(`  Step by step: imap-event-source check ${settingsArgsText(values)}\n`);
      return 1;
    }
    const delimiters = [...new Set(folders.map((f) => f.delimiter).filter(Boolean))];
    const out = ctx.stdout;
    out.write(
      `${folders.length} folders of "${settings.username}" on ${settings.host}:${settings.port}, delimiter ${delimiters.map((d) => `"${d}"`).join(' and ') || '(none: flat)'}\n\n`,
    );
    for (const line of renderFolderTree(folders, { highlight: settings.folder })) out.write(`${line}\n`);
    const found = folders.some((f) => f.path === settings.folder);
    out.write(
      `\nUse a path exactly as shown as "folder" in the settings.${found ? '' : ` The configured folder "${settings.folder}" is not in this list (imap-event-source check suggests the nearest).`}\n`,
    );
    return 0;
  },
};
