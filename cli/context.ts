/** What every command gets: output streams and the global flags. */
import type { Writer } from './output.js';

export interface CommandContext {
  readonly stdout: Writer;
  readonly stderr: Writer;
  /** --debug: stack traces and debug logs. */
  readonly debug: boolean;
}

export interface Command {
  readonly name: string;
  /** One line for the overview. */
  readonly summary: string;
  /** The full `--help` text. */
  readonly help: string;
  /** Returns the exit code; throws ImapEventSourceError / UsageError for the main loop to explain. */
  run(argv: string[], ctx: CommandContext): Promise<number>;
}
