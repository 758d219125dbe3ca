/** `imap-event-source secret template|validate`: write and check the mailbox secret (contract 1) offline. */
import { parseArgs } from 'node:util';
import {
  parseMailboxSettings as parseSettings,
  validateOAuth2Settings as validateOAuth2,
} from '../../functions/poller/adapters/pem-checks.js';
import {
  defaultTokenUrl,
  OAUTH2_PROVIDERS,
  type OAuth2Provider,
  type OAuth2Settings,
} from '../../functions/poller/core/oauth2-settings.js';
import type { MailboxSettings } from '../../functions/poller/core/settings.js';
import { SettingsValidationError } from '../../functions/poller/errors.js';
import { inspectCaBundle } from '../ca-bundle.js';
import type { Command, CommandContext } from '../context.js';
import { printInvalidSettings, printStep, UsageError } from '../output.js';
import { readSettingsFile } from '../settings-source.js';
import { ROTATION_HELP, ROTATION_SUBCOMMANDS, type RotationSubcommand, runRotation } from './secret-rotation.js';

const HELP = `Usage: imap-event-source secret template [--ca-file FILE] [--oauth2 PROVIDER | --google-key FILE]
       imap-event-source secret validate [FILE | -]
${ROTATION_HELP}

template   prints a valid example of the mailbox secret (JSON) on stdout, to edit and store in
           Secrets Manager. --ca-file FILE embeds a PEM file as caBundle (with the JSON line breaks
           done right). --oauth2 microsoft|google|refresh-token prints the shape for OAuth2 sign-in
           instead of a password (docs/oauth2.md). --google-key FILE turns a Google service account's
           JSON key file into the "oauth2" object (the private key goes to stdout only, into the
           secret). Explanations of the fields go to stderr.
validate   checks a secret value offline: JSON, required fields, types, unknown fields (typos),
           and that every caBundle certificate parses. Reads stdin without FILE or with "-".
           Prints a summary, never the password. Exit code 1 with the list of problems.

Examples:
  imap-event-source secret template > mailbox.json
  imap-event-source secret template --oauth2 microsoft > mailbox.json
  imap-event-source secret template --google-key service-account.json > mailbox.json
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
  oauth2                    instead of password: OAuth2 sign-in (docs/oauth2.md); provider "microsoft"
                            (tenantId, clientId, clientSecret or certificate + privateKey), "google"
                            (clientEmail, privateKey), "refresh-token" (tokenUrl, clientId, refreshToken,
                            clientSecret); optional tokenUrl and scope for all
`;

/** Example secrets for OAuth2 sign-in, one per provider (placeholders, never real credentials). */
const OAUTH2_TEMPLATES: Readonly<Record<OAuth2Provider, Record<string, unknown>>> = {
  microsoft: {
    host: 'outlook.office365.com',
    username: 'events@contoso.com',
    oauth2: {
      provider: 'microsoft',
      tenantId: '00000000-0000-0000-0000-000000000000',
      clientId: '00000000-0000-0000-0000-000000000000',
      clientSecret: 'the Value of the client secret (not its Secret ID)',
    },
  },
  google: {
    host: 'imap.gmail.com',
    username: 'events@example.com',
    oauth2: {
      provider: 'google',
      clientEmail: 'poller@project-id.iam.gserviceaccount.com',
      privateKey: '-----BEGIN PRIVATE KEY-----\n(use --google-key FILE to fill this in)\n-----END PRIVATE KEY-----\n',
    },
  },
  'refresh-token': {
    host: 'imap.example.com',
    username: 'events@example.com',
    oauth2: {
      provider: 'refresh-token',
      tokenUrl: 'https://login.example.com/oauth2/token',
      clientId: 'client id',
      clientSecret: 'client secret (omit for public clients)',
      refreshToken: 'refresh token',
    },
  },
};

export const secretCommand: Command = {
  name: 'secret',
  help: HELP,
  async run(argv, ctx) {
    const [sub, ...rest] = argv;
    if ((ROTATION_SUBCOMMANDS as readonly string[]).includes(sub ?? '')) {
      return runRotation(sub as RotationSubcommand, rest, ctx, () => readStdin(ctx.stdin));
    }
    if (sub === 'template') {
      const { values } = parseArgs({
        args: rest,
        options: { 'ca-file': { type: 'string' }, oauth2: { type: 'string' }, 'google-key': { type: 'string' } },
        strict: true,
      });
      const provider = values['google-key'] !== undefined ? 'google' : values.oauth2;
      if (values.oauth2 !== undefined && values['google-key'] !== undefined && values.oauth2 !== 'google') {
        throw new UsageError('--google-key makes a "google" secret: leave out --oauth2 or use --oauth2 google');
      }
      if (provider !== undefined && !(OAUTH2_PROVIDERS as readonly string[]).includes(provider)) {
        throw new UsageError(`--oauth2 must be one of ${OAUTH2_PROVIDERS.join(', ')}`);
      }
      const template: Record<string, unknown> = {
        host: 'imap.example.com',
        port: 993,
        security: 'tls',
        username: 'events@example.com',
        password: 'change-me',
        folder: 'INBOX',
      };
      if (provider !== undefined) {
        delete template.password;
        Object.assign(template, OAUTH2_TEMPLATES[provider as OAuth2Provider]);
      }
      if (values['google-key'] !== undefined) {
        template.oauth2 = googleKeyToOAuth2(
          await readSettingsFile(values['google-key'], 'key file'),
          values['google-key'],
        );
      }
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
      const text = file === '-' ? await readStdin(ctx.stdin) : await readSettingsFile(file);
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
        `${origin} is valid: ${settings.security} to ${settings.host}:${settings.port}, user "${settings.username}", folder "${settings.folder}"${settings.tlsServername ? `, tlsServername ${settings.tlsServername}` : ''}${settings.oauth2 ? `, oauth2 ${settings.oauth2.provider}` : ''}`,
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
        ? `unknown secret subcommand "${sub}" (template, validate, ${ROTATION_SUBCOMMANDS.join(', ')})`
        : `secret needs a subcommand: template, validate, ${ROTATION_SUBCOMMANDS.join(', ')}`,
    );
  },
};

/**
 * The `oauth2` object from a Google service account's JSON key file (type "service_account"): client_email and
 * private_key, and token_uri when it is not Google's default. Problems name the key file's field, never a value.
 */
export function googleKeyToOAuth2(text: string, file: string): Record<string, unknown> {
  let key: Record<string, unknown>;
  try {
    key = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new UsageError(`--google-key: "${file}" is not JSON (download the key as JSON in the Cloud console)`);
  }
  if (typeof key !== 'object' || key === null || key.type !== 'service_account') {
    throw new UsageError(`--google-key: "${file}" is not a service account key (its "type" must be "service_account")`);
  }
  const oauth2: Record<string, unknown> = {
    provider: 'google',
    clientEmail: key.client_email,
    privateKey: key.private_key,
    ...(typeof key.token_uri === 'string' && key.token_uri !== defaultTokenUrl({ provider: 'google' } as OAuth2Settings)
      ? { tokenUrl: key.token_uri }
      : {}),
  };
  // The same validation as the poller's: a broken key is reported here, with the key file's field names.
  const problems: string[] = [];
  validateOAuth2(oauth2, problems);
  if (problems.length > 0) {
    const named = problems.map((p) =>
      p
        .replace('oauth2.clientEmail', 'client_email')
        .replace('oauth2.privateKey', 'private_key')
        .replace('oauth2.tokenUrl', 'token_uri'),
    );
    throw new UsageError(`--google-key: "${file}": ${named.join('; ')}`);
  }
  return oauth2;
}

async function readStdin(stdin: CommandContext['stdin']): Promise<string> {
  if (stdin.isTTY) throw new UsageError('pass a FILE, or pipe the secret into stdin');
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks).toString('utf8');
}
