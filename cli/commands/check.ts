/**
 * `imap-event-source check`: validates the settings, then walks the connection layer by layer
 * (DNS, TCP, STARTTLS, TLS, login, folder) and says at the first failure what is wrong and how to fix it.
 */
import { parseArgs } from 'node:util';
import { CERTIFICATE_CODES, FIXES } from '../../functions/poller/adapters/imap-diagnosis.js';
import { OAuth2TokenSource } from '../../functions/poller/adapters/oauth2-token-source.js';
import { composeMailboxGateway } from '../../functions/poller/compose.js';
import { folderNotFoundHint } from '../../functions/poller/core/folders.js';
import { describeOAuth2 } from '../../functions/poller/core/oauth2-settings.js';
import { type MailboxSettings, splitPemBundle } from '../../functions/poller/core/settings.js';
import {
  FolderNotFoundError,
  ImapAuthError,
  isImapEventSourceError,
  SettingsValidationError,
} from '../../functions/poller/errors.js';
import { type MailboxSession, silentLog } from '../../functions/poller/ports.js';
import {
  connectTcp,
  formatAddress,
  ProbeError,
  resolveHost,
  startTls,
  type TlsReport,
  tlsHandshake,
} from '../check/probes.js';
import type { Command, CommandContext } from '../context.js';
import { printInvalidSettings, printStep, UsageError, type Writer } from '../output.js';
import { SETTINGS_HELP, SETTINGS_OPTIONS, settingsSourceFrom } from '../settings-source.js';

const HELP = `Usage: imap-event-source check (--config FILE | --secret-id ID [--version-stage STAGE]) [options]

Checks a mailbox's settings step by step, exactly as the poller will connect:
SETTINGS, DNS, TCP, STARTTLS (security "starttls"), TLS (protocol, certificate, trust), TOKEN (with
oauth2: provider, token endpoint, expiry), LOGIN,
FOLDER, STATUS (UIDVALIDITY, UIDNEXT, messages). Stops at the first failure and prints the fix.
Reads nothing but the folder's STATUS; changes nothing on the server. Never prints the password.

${SETTINGS_HELP}

Options:
      --timeout SECONDS      per step (default 10)
      --debug                stack traces on unexpected errors
  -h, --help                 this text

Exit code 0 when every step passed, 1 when one failed, 2 on wrong usage.

Examples:
  imap-event-source check --config mailbox.json
  imap-event-source check --secret-id prod/support-mailbox --version-stage AWSPENDING`;

const day = (d: Date) => d.toISOString().slice(0, 10);

export const checkCommand: Command = {
  name: 'check',
  help: HELP,
  async run(argv, ctx) {
    const { values } = parseArgs({
      args: argv,
      options: { ...SETTINGS_OPTIONS, timeout: { type: 'string', default: '10' } },
      strict: true,
    });
    const timeoutMs = Number(values.timeout) * 1000;
    if (!(timeoutMs > 0)) throw new UsageError('--timeout must be a positive number of seconds');
    const resolved = await settingsSourceFrom(values);
    if (!resolved) throw new UsageError('check needs --config FILE or --secret-id ID');
    return (await runCheck(() => resolved.source.load({ fresh: true }), resolved.origin, { timeoutMs, ctx })) ? 0 : 1;
  },
};

/** Runs all steps, printing one line each to stdout. True when all passed. */
export async function runCheck(
  load: () => Promise<MailboxSettings>,
  origin: string,
  options: { timeoutMs: number; ctx: CommandContext },
): Promise<boolean> {
  const out = options.ctx.stdout;
  const { timeoutMs } = options;

  // SETTINGS
  let settings: MailboxSettings;
  try {
    settings = await load();
  } catch (err) {
    if (err instanceof SettingsValidationError) {
      printInvalidSettings(out, origin, err);
      return false;
    }
    if (isImapEventSourceError(err)) {
      printStep(out, 'fail', 'SETTINGS', err.message, err.hint);
      return false;
    }
    throw err;
  }
  const bundle = settings.caBundle ? splitPemBundle(settings.caBundle).length : 0;
  printStep(
    out,
    'ok',
    'SETTINGS',
    `${origin}: ${settings.security} to ${settings.host}:${settings.port}, user "${settings.username}", folder "${settings.folder}", caBundle ${bundle ? `${bundle} certificate(s)` : 'none'}${settings.tlsServername ? `, tlsServername ${settings.tlsServername}` : ''}${settings.oauth2 ? `, oauth2 ${settings.oauth2.provider} (${describeOAuth2(settings.oauth2).credential})` : ''}`,
  );
  if (settings.security === 'none') {
    printStep(
      out,
      'warn',
      'SECURITY',
      'security is "none": the password and all mail travel unencrypted',
      'use "tls" (port 993) or "starttls" (port 143) unless this network path is trusted end to end.',
    );
  }

  // DNS
  let addresses: string[];
  try {
    addresses = await resolveHost(settings.host, timeoutMs);
  } catch (err) {
    const e = asProbeError(err);
    printStep(
      out,
      'fail',
      'DNS',
      e.message,
      e.code === 'ENOTFOUND'
        ? `check the spelling of "host". A name known only inside a company network resolves only there: run the poller in a VPC whose DNS knows it.`
        : "the DNS resolver did not answer: check this machine's (or the VPC's) DNS settings and try again.",
    );
    return false;
  }
  printStep(
    out,
    'ok',
    'DNS',
    addresses.length === 1 && addresses[0] === settings.host
      ? `${settings.host} is an IP address`
      : `${settings.host} -> ${addresses.join(', ')}`,
  );

  // TCP
  const started = Date.now();
  let tcp: Awaited<ReturnType<typeof connectTcp>>;
  try {
    tcp = await connectTcp(addresses, settings.port, timeoutMs);
  } catch (err) {
    const e = asProbeError(err);
    const fix: Record<string, string> = {
      ECONNREFUSED: `nothing accepts connections on port ${settings.port} of ${settings.host}: check "port" (IMAP uses 993 for security "tls", 143 for "starttls") and that the server is running.`,
      ETIMEDOUT: `the connection attempt got no answer: a firewall or security group drops it. Allow outbound TCP to ${settings.host}:${settings.port} (for the Lambda: a route from its subnet, e.g. via a NAT gateway).`,
    };
    printStep(
      out,
      'fail',
      'TCP',
      e.message,
      fix[e.code] ??
        `no network route to ${settings.host}: check routing, VPN and firewall between here and the server.`,
    );
    return false;
  }
  printStep(out, 'ok', 'TCP', `connected to ${formatAddress(tcp.address, settings.port)} (${Date.now() - started} ms)`);

  try {
    // STARTTLS
    if (settings.security === 'starttls') {
      try {
        await startTls(tcp.socket, timeoutMs);
      } catch (err) {
        const e = asProbeError(err);
        const fix: Record<string, string> = {
          STARTTLS_UNAVAILABLE: FIXES.starttls,
          STARTTLS_INJECTION: `do not use this connection: check the network path to ${settings.host} (proxies, middleboxes, DNS) and the server; until then prefer security "tls" on the implicit-TLS port (usually 993), which has no plaintext phase. The poller refuses such a server (STARTTLS_INJECTION).`,
          NOT_IMAP: `port ${settings.port} does not speak plain IMAP; if it is the implicit-TLS port (usually 993), set security "tls".`,
          ETIMEDOUT: `the server sent no IMAP greeting; if port ${settings.port} is an implicit-TLS port (usually 993), set security "tls".`,
        };
        printStep(
          out,
          'fail',
          'STARTTLS',
          e.message,
          fix[e.code] ?? 'check that "port" is the server\'s plain IMAP port (usually 143).',
        );
        return false;
      }
      printStep(out, 'ok', 'STARTTLS', 'offered and accepted; upgrading to TLS');
    }

    // TLS
    if (settings.security !== 'none') {
      let report: TlsReport;
      try {
        report = await tlsHandshake(tcp.socket, settings, timeoutMs);
      } catch (err) {
        const e = asProbeError(err);
        printStep(out, 'fail', 'TLS', e.message, handshakeFix(e, settings));
        return false;
      }
      if (!report.authorized) {
        const [text, fix] = certificateProblem(report, settings);
        printStep(out, 'fail', 'TLS', text, fix);
        return false;
      }
      printStep(
        out,
        'ok',
        'TLS',
        `${report.protocol}, subject ${report.subject}, issuer ${report.issuer}, valid until ${day(report.validTo)}, trusted via ${report.trustedVia}`,
      );
      const daysLeft = Math.floor((report.validTo.getTime() - Date.now()) / 86_400_000);
      if (daysLeft < 14) {
        printStep(
          out,
          'warn',
          'TLS',
          `the certificate expires in ${daysLeft} day(s), on ${day(report.validTo)}`,
          "have the server's certificate renewed; if the new one comes from another CA, add that CA to caBundle first (see docs/operations.md).",
        );
      }
    } else {
      printStep(out, 'skip', 'TLS', 'skipped (security "none")');
    }
  } finally {
    tcp.socket.destroy();
  }

  // TOKEN (oauth2): the poller's own token source; the gateway below logs in with the token it cached.
  const tokens = new OAuth2TokenSource({
    timeoutMs,
    onRefreshTokenRotated: () =>
      printStep(
        out,
        'warn',
        'TOKEN',
        'the provider rotated the refresh token: the one in the secret is used up, and `check` keeps no state',
        'a deployed poller keeps its own rotated token (docs/oauth2.md); if none ran yet, put a new refresh token into the secret.',
      ),
  });
  if (settings.oauth2 && !(await checkToken(out, tokens, settings))) return false;

  // LOGIN, FOLDER, STATUS: through the poller's own gateway.
  const gateway = composeMailboxGateway(
    { log: silentLog, tokens },
    { connectTimeoutMs: timeoutMs, greetingTimeoutMs: timeoutMs, socketTimeoutMs: timeoutMs },
  );
  let session: MailboxSession;
  try {
    session = await gateway.connect(settings);
  } catch (err) {
    if (err instanceof ImapAuthError && !settings.oauth2) {
      printStep(
        out,
        'fail',
        'LOGIN',
        `the server rejected user "${settings.username}" (wrong user name or password, or IMAP access disabled for the account)`,
        FIXES.login,
      );
      return false;
    }
    if (isImapEventSourceError(err)) {
      printStep(out, 'fail', 'LOGIN', err.message, err.hint);
      return false;
    }
    throw err;
  }
  try {
    printStep(out, 'ok', 'LOGIN', `logged in as "${settings.username}"`);
    try {
      const status = await session.status(settings.folder);
      printStep(out, 'ok', 'FOLDER', `"${settings.folder}" exists`);
      printStep(
        out,
        'ok',
        'STATUS',
        `UIDVALIDITY ${status.uidValidity}, UIDNEXT ${status.uidNext}, ${status.messages} message(s)`,
      );
    } catch (err) {
      if (!(err instanceof FolderNotFoundError)) {
        if (isImapEventSourceError(err)) {
          printStep(out, 'fail', 'FOLDER', err.message, err.hint);
          return false;
        }
        throw err;
      }
      await reportMissingFolder(out, session, settings.folder);
      return false;
    }
  } finally {
    await session.close();
  }
  out.write(`\nAll checks passed: the poller can read "${settings.folder}" on ${settings.host}:${settings.port}.\n`);
  return true;
}

/** The TOKEN step: one token request, reported with provider, endpoint host and expiry; never the token. */
async function checkToken(out: Writer, tokens: OAuth2TokenSource, settings: MailboxSettings): Promise<boolean> {
  const o = settings.oauth2!;
  try {
    const token = await tokens.get(settings);
    const minutes = Math.round((token.expiresAt.getTime() - Date.now()) / 60_000);
    printStep(
      out,
      'ok',
      'TOKEN',
      `${o.provider} access token from ${token.endpointHost}, expires ${token.expiresAt.toISOString()} (in ${minutes} min)`,
    );
    return true;
  } catch (err) {
    if (!isImapEventSourceError(err)) throw err;
    printStep(out, 'fail', 'TOKEN', err.message, err.hint);
    return false;
  }
}

async function reportMissingFolder(out: Writer, session: MailboxSession, folder: string): Promise<void> {
  const folders = await session.listFolders();
  printStep(out, 'fail', 'FOLDER', `"${folder}" does not exist on the server`, folderNotFoundHint(folder, folders));
}

function asProbeError(err: unknown): ProbeError {
  if (err instanceof ProbeError) return err;
  const code = (err as { code?: string })?.code ?? 'ERROR';
  return new ProbeError(code, `${(err as Error)?.message ?? String(err)} (${code})`);
}

function handshakeFix(e: ProbeError, settings: MailboxSettings): string {
  if (/WRONG_VERSION_NUMBER|ECONNRESET|ETIMEDOUT|PACKET_LENGTH_TOO_LONG|UNKNOWN_PROTOCOL/.test(e.code + e.message)) {
    return settings.security === 'tls'
      ? `port ${settings.port} does not start with TLS. If it is the plain IMAP port (usually 143), set security "starttls"; otherwise use the implicit-TLS port (usually 993).`
      : "the server accepted STARTTLS but the TLS handshake failed; check the server's TLS configuration.";
  }
  if (/PROTOCOL|VERSION|NO_PROTOCOLS/i.test(e.code + e.message)) {
    return "the server offers only TLS versions older than 1.2, which the poller refuses: upgrade the server's TLS configuration.";
  }
  return FIXES.handshake;
}

/** The failure line and the fix for a certificate the poller would reject. */
function certificateProblem(r: TlsReport, settings: MailboxSettings): [string, string] {
  const names = r.names.join(', ') || '(no names)';
  const nameFix = settings.tlsServername
    ? `the certificate is for ${names}; tlsServername is "${settings.tlsServername}": set it to one of the certificate's names, or remove it.`
    : `the certificate is for ${names}; set tlsServername to "${r.names[0] ?? ''}" or use that host.`;
  const code = r.error ?? 'UNKNOWN';
  // The gateway's table says what the code means; the probe adds the names and subjects it saw.
  const problem = CERTIFICATE_CODES[code]?.problem;
  if (problem === 'untrusted' || problem === 'self-signed') {
    let fix =
      problem === 'self-signed'
        ? FIXES.selfSigned
        : settings.caBundle && r.bundleSubjects.includes(r.issuer)
          ? `caBundle holds a certificate named ${r.issuer}, but not the one that signed this server certificate (same name, another key: was the CA renewed?). Put the server's current CA certificate into caBundle.`
          : settings.caBundle
            ? `caBundle (${r.bundleSubjects.join('; ') || 'no parseable certificate'}) does not hold the CA that issued this certificate: put the server's CA certificate (${r.issuer}) into caBundle.`
            : `put the server's CA certificate (${r.issuer}) into caBundle (PEM).`;
    if (!r.nameMatches) fix += ` Also, ${nameFix}`;
    return [`certificate not trusted (${code}): subject ${r.subject}, issuer ${r.issuer}`, fix];
  }
  if (problem === 'name' || !r.nameMatches) {
    return [`certificate name mismatch (${code}): the certificate is for ${names}, not "${r.expectedName}"`, nameFix];
  }
  if (problem === 'expired') {
    return [`certificate expired on ${day(r.validTo)} (${code}): subject ${r.subject}`, FIXES.expired];
  }
  if (problem === 'not-yet-valid') {
    return [`certificate not valid before ${day(r.validFrom)} (${code})`, FIXES.notYetValid];
  }
  return [`certificate rejected (${code}): subject ${r.subject}, issuer ${r.issuer}`, FIXES.untrusted];
}
