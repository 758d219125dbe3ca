/** What every command gets: its streams and the global flags. Commands touch no other process state. */
import type { Writer } from './output.js';

/** The process streams a command may use; `main` gets them from the process, tests pass their own. */
export interface CommandIo {
  readonly stdout: Writer;
  readonly stderr: Writer;
  /** Piped input (`secret validate` without FILE). */
  readonly stdin: AsyncIterable<Uint8Array | string> & { readonly isTTY?: boolean };
}

export interface CommandContext extends CommandIo {
  /** --debug: stack traces and debug logs. */
  readonly debug: boolean;
}

export interface Command {
  readonly name: string;
  /** The full `--help` text. */
  readonly help: string;
  /** Returns the exit code; throws ImapEventSourceError / UsageError for the main loop to explain. */
  run(argv: string[], ctx: CommandContext): Promise<number>;
}

/** A command as `main` lists it: the overview line, and its module loaded on use. */
export interface CommandEntry {
  readonly name: string;
  /** One line for the overview. */
  readonly summary: string;
  load(): Promise<Command>;
}
