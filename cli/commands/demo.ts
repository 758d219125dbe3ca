/**
 * `imap-event-source demo` (`npm start`): the whole product on a laptop with nothing but Node.
 * An in-process IMAP server with TLS from a CA made on the fly, the poller (pollMailbox) polling it every
 * few seconds with a local state file, and new mail arriving while it runs.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { isImapEventSourceError } from '../../functions/poller/errors.js';
import type { Command } from '../context.js';
import { DEMO_FOLDER, startDemoServer } from '../demo/demo-server.js';
import { demoMessage } from '../demo/messages.js';
import { describeSummary, pollLocally } from '../local-poll.js';
import { printFailure, printStep, StderrLog, UsageError } from '../output.js';

const HELP = `Usage: imap-event-source demo [options]     (also: npm start)

Shows the product working on this machine, with nothing but Node:
  1. starts an IMAP server in this process (hoodiecrow-imap) on localhost, with TLS from a
     certificate authority generated just now, and the folder tree of the original product's
     example (Firma/Kundenbetreuung/kunden/a, ...);
  2. polls "${DEMO_FOLDER}" every few seconds with the Lambda's engine, trusting that CA through
     caBundle (TLS is verified for real), the checkpoint in a local state file;
  3. delivers a new message every few seconds; each one becomes an "IMAP Message Received" event,
     printed on stdout (one JSON line each; indented on a terminal).
Nothing leaves this machine. Stop with Ctrl+C.

Options:
      --interval SECONDS     poll every SECONDS (default 2)
      --messages N           messages delivered while running (default 5)
      --state FILE           keep the checkpoint here (default: a temp file, removed at exit)
      --port N               IMAP port on 127.0.0.1 (default: any free port)
      --debug                debug logs and stack traces
  -h, --help                 this text`;

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });

export const demoCommand: Command = {
  name: 'demo',
  help: HELP,
  async run(argv, ctx) {
    const { values } = parseArgs({
      args: argv,
      options: {
        interval: { type: 'string', default: '2' },
        messages: { type: 'string', default: '5' },
        state: { type: 'string' },
        port: { type: 'string', default: '0' },
      },
      strict: true,
    });
    const intervalMs = Number(values.interval) * 1000;
    const total = Number(values.messages);
    const port = Number(values.port);
    if (!(intervalMs > 0)) throw new UsageError('--interval must be a positive number of seconds');
    if (!(Number.isInteger(total) && total >= 0)) throw new UsageError('--messages must be a whole number');
    if (!(Number.isInteger(port) && port >= 0 && port < 65536)) throw new UsageError('--port must be a port number');

    const err = ctx.stderr;
    // How to run the CLI from here: the clone's launcher (relative to the working directory), else the package's bin.
    const launcher = fileURLToPath(new URL('../../bin/imap-event-source.mjs', import.meta.url));
    const cli = existsSync(launcher) ? `node ${relative(process.cwd(), launcher)}` : 'npx imap-event-source';
    const log = new StderrLog(err, { debug: ctx.debug, quiet: !ctx.debug });
    const stop = new AbortController();
    const dir = mkdtempSync(join(tmpdir(), 'imap-event-source-demo-'));
    const onSignal = (signal: NodeJS.Signals) => {
      if (stop.signal.aborted) {
        err.write(`Second ${signal}: exiting now.\n`);
        rmSync(dir, { recursive: true, force: true });
        process.exit(130);
      }
      err.write(`\n${signal} received: stopping the demo...\n`);
      stop.abort();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);

    const started = Date.now();
    const server = await startDemoServer({
      port,
      seed: [1, 2].map((n) => ({ folder: DEMO_FOLDER, source: demoMessage(n) })),
    });
    const stateFile = values.state ?? join(dir, 'state.json');
    const settingsFile = join(dir, 'mailbox.json');
    await writeFile(settingsFile, `${JSON.stringify(server.settings, null, 2)}\n`, { mode: 0o600 });

    err.write(
      `${[
        '',
        'imap-event-source demo: everything runs on this machine, nothing is sent anywhere.',
        `  * IMAP server (hoodiecrow, in this process) on localhost:${server.port}, implicit TLS with a`,
        '    certificate from a CA generated just now; the poller trusts that CA via caBundle.',
        `  * The poller checks "${DEMO_FOLDER}" every ${intervalMs / 1000} s (the Lambda's engine, pollMailbox);`,
        `    checkpoint in ${stateFile}.`,
        `  * The folder holds 2 messages; ${total} more arrive while the demo runs. Each message becomes one`,
        '    "IMAP Message Received" event, printed on stdout.',
        `  * Meanwhile, in another terminal:  ${cli} check --config ${settingsFile}`,
        `                                    ${cli} folders --config ${settingsFile}`,
        'Stop with Ctrl+C.',
        '',
      ].join('\n')}\n`,
    );

    let delivered = 0;
    let nextDelivery = Date.now() + intervalMs * 1.5;
    let firstEventShown = false;
    const pretty = (ctx.stdout as { isTTY?: boolean }).isTTY === true;
    try {
      while (!stop.signal.aborted) {
        if (delivered < total && Date.now() >= nextDelivery) {
          delivered++;
          const uid = server.append(DEMO_FOLDER, demoMessage(delivered + 2));
          printStep(
            err,
            'info',
            'MAIL',
            `new message delivered to "${DEMO_FOLDER}" (UID ${uid}, ${delivered}/${total})`,
          );
          nextDelivery = Date.now() + intervalMs * 1.5;
          if (delivered === total) {
            setTimeout(
              () =>
                !stop.signal.aborted &&
                err.write(`That was the last message of the demo. The poller keeps polling; Ctrl+C to stop.\n`),
              intervalMs * 1.2,
            ).unref();
          }
        }
        try {
          const summary = await pollLocally({
            settings: { load: async () => server.settings },
            mailboxId: 'demo',
            stateFile,
            startAt: { kind: 'all' },
            eventSource: 'imap-event-source',
            stdout: { write: (text, callback) => ctx.stdout.write(text, callback) },
            prettyEvents: pretty,
            log,
            timeoutMs: 20_000,
          });
          if (summary.published > 0 || summary.outcome === 'reset') {
            printStep(err, 'ok', 'POLL', describeSummary(summary));
            if (!firstEventShown) {
              firstEventShown = true;
              log.debug('first event shown', { secondsSinceStart: (Date.now() - started) / 1000 });
            }
          }
        } catch (e) {
          if (!isImapEventSourceError(e)) throw e;
          printFailure(e, err, { debug: ctx.debug });
        }
        await sleep(intervalMs, stop.signal);
      }
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await Promise.race([server.close(), new Promise((r) => setTimeout(r, 2_000).unref())]);
      await rm(dir, { recursive: true, force: true });
    }
    err.write('Demo stopped.\n');
    return 0;
  },
};
