#!/usr/bin/env node
/** The `imap-event-source` CLI: the package's `bin` compiled to dist/bin/cli.js; in a clone `node bin/imap-event-source.mjs` (tsx). */
import { main } from '../cli/main.js';

// `imap-event-source poll | head`: a closed stdout is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

const code = await main(process.argv.slice(2));
process.exitCode = code;
// Exit even if a library left a socket or timer behind; stdout is flushed by then.
setTimeout(() => process.exit(code), 1_000).unref();
