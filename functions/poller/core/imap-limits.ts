/**
 * How much an IMAP server may send in one response to a poll: imapflow's defaults (1 GiB lines and literals,
 * 2 GiB responses, a million tokens) are far above a 256 MB Lambda, so one hostile answer was an out-of-memory
 * kill (no log line, the lease left held). The limits below are what a poll needs, derived from the download bound;
 * an answer over one of them fails the command as a retryable protocol error.
 */

/** Download bound per message for the event content (PollOptions.maxMessageBytes). */
export const DEFAULT_MAX_MESSAGE_BYTES = 2 * 1024 * 1024;

/**
 * The longest line without a literal a poll reads is the UID SEARCH answer (every UID above the checkpoint, not
 * capped by the per-run limit): 16 MiB hold 1.5 million 10-digit UIDs. Folder lines, STATUS and ENVELOPE rows are
 * far shorter (long header values arrive as literals).
 */
export const MAX_LINE_BYTES = 16 * 1024 * 1024;

/**
 * A compliant server sends at most the `<0.N>` partial we ask for (the download bound, or a 256 KiB chunk when
 * streaming raw messages). A server that ignores the partial still gets messages up to this factor times the bound
 * through (the adapter cuts them to the bound); beyond it the answer fails instead of costing the whole message in
 * memory. The adapter cuts each row as it arrives, and a batch keeps at most its byte bound (FetchOptions.maxTotalBytes)
 * whatever sizes the server reported.
 */
export const PARTIAL_IGNORED_FACTOR = 4;

/** Never below this, whatever the download bound (ENVELOPE literals, a 256 KiB download chunk). */
const MIN_LITERAL_BYTES = 1024 * 1024;

/**
 * Parse-tree nodes in one response: an ENVELOPE with 20,000 addresses has about 120,000. imapflow spends about
 * 100 bytes of heap per token, so 200,000 tokens stay near 20 MB.
 */
export const MAX_RESPONSE_TOKENS = 200_000;

export interface ImapResponseLimits {
  readonly maxLineLength: number;
  readonly maxLiteralSize: number;
  /** One response: its lines and one body literal. */
  readonly maxResponseSize: number;
  readonly maxResponseTokens: number;
}

/** imapflow's response limits for a poll whose download bound per message is `maxMessageBytes`. */
export function imapResponseLimits(maxMessageBytes: number = DEFAULT_MAX_MESSAGE_BYTES): ImapResponseLimits {
  const maxLiteralSize = Math.max(MIN_LITERAL_BYTES, PARTIAL_IGNORED_FACTOR * maxMessageBytes);
  return {
    maxLineLength: MAX_LINE_BYTES,
    maxLiteralSize,
    maxResponseSize: MAX_LINE_BYTES + maxLiteralSize,
    maxResponseTokens: MAX_RESPONSE_TOKENS,
  };
}

/**
 * Bytes one command may read in all before the adapter gives up on the server (an endless stream of untagged
 * responses would otherwise run until the deadline, and some of imapflow's commands collect what they read).
 * Per row or entry asked for, plus a fixed allowance for the status lines around them.
 */
export function commandByteBudget(rows: number, bytesPerRow: number): number {
  return 1024 * 1024 + rows * bytesPerRow;
}
