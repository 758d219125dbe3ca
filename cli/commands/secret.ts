/** `imap-event-source secret template|validate`: write and check the mailbox secret (contract 1) offline. */
import { parseArgs } from 'node:util';
import { type MailboxSettings, parseSettings } from '../../functions/poller/core/settings.js';
import { SettingsValidationError } from '../../functions/poller/errors.js';
import { inspectCaBundle } from '../ca-bundle.js';
import type { Command } from '../context.js';
import { printInvalidSettings, printStep, UsageError } from '../output.js';
import { readSettingsFile } from '../settings-source.js';

const HELP = `Usage: imap-event-source secret template [--ca-file FILE]
       imap-event-source secret validate [FILE | -]

template   prints a valid example of the mailbox secret (JSON) on stdout, to edit and store in
           Secrets Manager. --ca-file FILE embeds a PEM file as caBundle (with the JSON line breaks
           done right). Explanations of the fields go to stderr.
validate   checks a secret value offline: JSON, required fields, types, unknown fields (typos),
           and that every caBundle certificate parses. Reads stdin without FILE or with "-".
           Prints a summary, never the password. Exit code 1 with the list of problems.

Examples:
  imap-event-source secret template > mailbox.json
  imap-event-source secret template | imap-event-source secret validate
  aws secretsmanager get-secret-value --secret-id prod/support --query SecretString --output text \\
    | imap-event-source secret validate`;

const FIELD_NOTES = `Fields (see docs/cli.md):
  host, username, password  required; the password is never logged or printed
  port                      default 993 for "tls", 143 otherwise
  security                  "tls" (implicit TLS, default), "starttls" (upgrade required), "none" (plaintext)
  folder                    default "INBOX"; with the server's own delimiter, e.g. "Firma/Vertrieb" or
                            "Firma.Vertrieb" (\`imap-event-source folders\` shows the tree)
  caBundle                  optional PEM, trusted in addition to the public roots (private CA or the
                            server's self-signed certificate); \`secret template --ca-file ca.pem\` embeds one
  tlsServername             optional name to verify the certificate against (server reached by IP/alias)
`;

export const secretCommand: Command = {
  name: 'secret',
  summary: 'print an example secret (template) or validate one (validate FILE)',
  help: HELP,
  async run(argv, ctx) {
    const [sub, ...rest] = argv;
    if (sub === 'template') {
      const { values } = parseArgs({ args: rest, options: { 'ca-file': { type: 'string' } }, strict: true });
      const template: Record<string, unknown> = {
        host: 'imap.example.com',
        port: 993,
        security: 'tls',
        username: 'events@example.com',
        password: 'change-me',
        folder: 'INBOX',
      };
      if (values['ca-file']) template.caBundle = await readSettingsFile(values['ca-file'], 'CA file');
      ctx.stdout.write(`${JSON.stringify(template, null, 2)}\n`);
      ctx.stderr.write(FIELD_NOTES);
      return 0;
    }
    if (sub === 'validate') {
      const { positionals } = parseArgs({ args: rest, options: {}, allowPositionals: true, strict: true });
      if (positionals.length > 1) throw new UsageError('secret validate takes one FILE (or - for stdin)');
      const file = positionals[0] ?? '-';
      const origin = file === '-' ? 'stdin' : `file "${file}"`;
      const text = file === '-' ? await readStdin() : await readSettingsFile(file);
      let settings: MailboxSettings;
      try {
        settings = parseSettings(text, origin);
      } catch (err) {
        if (!(err instanceof SettingsValidationError)) throw err;
        printInvalidSettings(ctx.stdout, origin, err);
        return 1;
      }
      printStep(
        ctx.stdout,
        'ok',
        'SETTINGS',
        `${origin} is valid: ${settings.security} to ${settings.host}:${settings.port}, user "${settings.username}", folder "${settings.folder}"${settings.tlsServername ? `, tlsServername ${settings.tlsServername}` : ''}`,
      );
      for (const e of inspectCaBundle(settings.caBundle)) {
        const expired = e.validTo! < new Date();
        printStep(
          ctx.stdout,
          expired ? 'warn' : 'info',
          'caBundle',
          `certificate ${e.index}: ${e.subject}${e.isCa ? ' (CA)' : ''}, ${expired ? 'EXPIRED on' : 'valid until'} ${e.validTo!.toISOString().slice(0, 10)}`,
        );
      }
      return 0;
    }
    throw new UsageError(
      sub
        ? `unknown secret subcommand "${sub}" (template or validate)`
        : 'secret needs a subcommand: template or validate',
    );
  },
};

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) throw new UsageError('secret validate: pass a FILE, or pipe the secret into stdin');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
