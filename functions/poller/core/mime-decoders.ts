/**
 * postal-mime 4.0.0 with cheaper body decoders: the same bytes, without its per-part waste.
 *
 * Why (bench/drain.ts --profile, 10,000 business mails of 2-5 KB in quoted-printable, null publisher): the garbage
 * collector took 13.6 % of the drain, postal-mime's QPDecoder constructor 5.6 % on its own (it zero-fills a 100 KB
 * buffer for every part, however small: about 1.5 GB for the backlog), and the Blob it builds to join each part's
 * chunks and read them back (Blob, makeTransferable, blob readNext, createBlob, arrayBuffer) another ~6 %. The
 * decoders here keep postal-mime's algorithms byte for byte (quoted-printable: a soft break drops the line end,
 * an invalid escape stays literal, every hard line ends in LF; pass-through: every line plus LF; base64: postal-mime's
 * own decoder) and differ only in where the bytes go: one buffer per part that grows with what it holds, returned
 * without a Blob. test/unit/mime-decoders.test.ts compares them with the stock parser over the real-world corpus and
 * the fixtures.
 *
 * postal-mime exports no hook for its decoders: MimeNode (reached through a parser's root node) gets a wrapper around
 * setupContentDecoder that swaps in these decoders for parsers made by `fastPostalMime` only; every other parser,
 * nested message parsers included, keeps the stock ones. Should a postal-mime release change those internals, the
 * wrapper is not installed (`fastDecodersInstalled` is false, which the test pins) and parsing stays correct, only
 * slower.
 */
import PostalMime, { type Email, type PostalMimeOptions } from 'postal-mime';

interface BodyDecoder {
  update(line: Uint8Array): void;
  finalize(): ArrayBuffer | Promise<ArrayBuffer>;
}

/** The MimeNode internals the wrapper relies on (postal-mime 4.0.0, src/mime-node.ts). */
interface MimeNodeInternals {
  postalMime: object;
  contentDecoder: BodyDecoder | null;
  setupContentDecoder(transferEncoding: string): void;
  parseStructuredHeader(value: string): StructuredHeader;
}

/** A parsed Content-Type or Content-Disposition (MimeNode.parseStructuredHeader). */
interface StructuredHeader {
  value: string;
  params: Record<string, string>;
}

/** postal-mime's Base64Decoder internals used to return its chunks without a Blob. */
interface Base64Internals extends BodyDecoder {
  chunks: ArrayBuffer[];
  flushRemainder(): void;
}

/**
 * Scratch buffers the decoders write into, reused across parts and messages: a part then costs one ArrayBuffer, its
 * exact-size result (fresh ArrayBuffers are expensive to collect; a 1 KB one per part still showed up in the profile).
 * Bounded: at most SCRATCH_KEPT buffers of at most SCRATCH_MAX_KEPT bytes are kept. A part that is never finalized
 * (the parser threw) just does not give its buffer back.
 */
const scratch: Uint8Array[] = [];
const SCRATCH_KEPT = 8;
const SCRATCH_MAX_KEPT = 256 * 1024;

/** Bytes of one part, in a scratch buffer that doubles when full. */
class ByteSink {
  private buf: Uint8Array | undefined;
  /** Bytes written so far (the writer moves it on after writing into what `reserve` returned). */
  pos = 0;

  /** The buffer, with room for `extra` more bytes at `pos`. */
  reserve(extra: number): Uint8Array {
    this.buf ??= scratch.pop() ?? new Uint8Array(16 * 1024);
    const buf = this.buf;
    if (this.pos + extra <= buf.length) return buf;
    let size = buf.length * 2;
    while (size < this.pos + extra) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(buf.subarray(0, this.pos));
    this.buf = grown;
    return grown;
  }

  /** The bytes written, as a new ArrayBuffer of their size; the scratch buffer goes back to the pool. */
  take(): ArrayBuffer {
    const buf = this.buf;
    if (!buf) return new ArrayBuffer(0);
    const out = new Uint8Array(this.pos);
    out.set(buf.subarray(0, this.pos));
    this.buf = undefined;
    this.pos = 0;
    if (scratch.length < SCRATCH_KEPT && buf.length <= SCRATCH_MAX_KEPT) scratch.push(buf);
    return out.buffer;
  }
}

const EQUALS = 0x3d;
const LF = 0x0a;

function hexNibble(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

/**
 * A body decoder that also takes a line as a range of a larger buffer (the fast parse loop hands body lines over
 * without a view of their own).
 */
abstract class LineDecoder implements BodyDecoder {
  protected readonly out = new ByteSink();

  /** The line `bytes[start, end)`, without its line end. */
  abstract updateRange(bytes: Uint8Array, start: number, end: number): void;

  update(line: Uint8Array): void {
    this.updateRange(line, 0, line.length);
  }

  finalize(): ArrayBuffer {
    return this.out.take();
  }
}

/** Quoted-printable as postal-mime 4.0.0 decodes it (src/qp-decoder.ts): lines come without their line end. */
export class QuotedPrintableDecoder extends LineDecoder {
  updateRange(bytes: Uint8Array, start: number, end: number): void {
    // A soft break (a final "=") drops the line end; "=XX" is a byte, any other "=" stays literal; the output is
    // never longer than the line plus its LF.
    const softBreak = end > start && bytes[end - 1] === EQUALS;
    if (softBreak) end--;
    const buf = this.out.reserve(end - start + 1);
    let pos = this.out.pos;
    for (let i = start; i < end; i++) {
      const c = bytes[i]!;
      if (c === EQUALS && i + 2 < end) {
        const high = hexNibble(bytes[i + 1]!);
        const low = hexNibble(bytes[i + 2]!);
        if (high >= 0 && low >= 0) {
          buf[pos++] = (high << 4) | low;
          i += 2;
          continue;
        }
      }
      buf[pos++] = c;
    }
    if (!softBreak) buf[pos++] = LF;
    this.out.pos = pos;
  }
}

/** 7bit, 8bit, binary and unknown encodings as postal-mime 4.0.0 keeps them (src/pass-through-decoder.ts). */
export class PassThroughDecoder extends LineDecoder {
  updateRange(bytes: Uint8Array, start: number, end: number): void {
    const buf = this.out.reserve(end - start + 1);
    let pos = this.out.pos;
    if (end - start > 256) {
      buf.set(bytes.subarray(start, end), pos);
      pos += end - start;
    } else {
      // A line of a body is short: copied without a subarray view.
      for (let i = start; i < end; i++) buf[pos++] = bytes[i]!;
    }
    buf[pos++] = LF;
    this.out.pos = pos;
  }
}

function concat(chunks: readonly ArrayBuffer[]): ArrayBuffer {
  if (chunks.length === 1) return chunks[0]!;
  let length = 0;
  for (const c of chunks) length += c.byteLength;
  const out = new Uint8Array(length);
  let at = 0;
  for (const c of chunks) {
    out.set(new Uint8Array(c), at);
    at += c.byteLength;
  }
  return out.buffer;
}

const fastParsers = new WeakSet<object>();

function installFastDecoders(): boolean {
  const probe = new PostalMime() as unknown as { root?: object };
  const proto = probe.root ? (Object.getPrototypeOf(probe.root) as Partial<MimeNodeInternals>) : undefined;
  const original = proto?.setupContentDecoder;
  if (!proto || typeof original !== 'function' || original.length !== 1) return false;
  proto.setupContentDecoder = function (this: MimeNodeInternals, transferEncoding: string): void {
    // The same tests, in the same order, as MimeNode.setupContentDecoder.
    if (!fastParsers.has(this.postalMime)) {
      original.call(this, transferEncoding);
    } else if (/base64/i.test(transferEncoding)) {
      original.call(this, transferEncoding);
      const stock = this.contentDecoder as Partial<Base64Internals> | null;
      if (stock && Array.isArray(stock.chunks) && typeof stock.flushRemainder === 'function') {
        const decoder = stock as Base64Internals;
        decoder.finalize = () => {
          decoder.flushRemainder();
          return concat(decoder.chunks);
        };
      }
    } else if (/quoted-printable/i.test(transferEncoding)) {
      this.contentDecoder = new QuotedPrintableDecoder();
    } else {
      this.contentDecoder = new PassThroughDecoder();
    }
  };
  installStructuredHeaderMemo(proto);
  return true;
}

/**
 * MimeNode.parseStructuredHeader, remembered for the values it saw last: it walks Content-Type and Content-Disposition
 * character by character, twice per part (3.4 % of the drain's profile), and mail repeats these values
 * ("text/plain; charset=utf-8", an absent disposition). Its result depends on the value alone; each caller gets its
 * own copy. Bounded: values up to STRUCTURED_MEMO_VALUE_CHARS characters, at most STRUCTURED_MEMO_ENTRIES of them
 * (then it starts over). Fast parsers only, like the decoders.
 */
function installStructuredHeaderMemo(proto: Partial<MimeNodeInternals>): void {
  const original = proto.parseStructuredHeader;
  if (typeof original !== 'function' || original.length !== 1) return;
  const memo = new Map<string, StructuredHeader>();
  proto.parseStructuredHeader = function (this: MimeNodeInternals, value: string): StructuredHeader {
    if (!fastParsers.has(this.postalMime) || typeof value !== 'string' || value.length > STRUCTURED_MEMO_VALUE_CHARS)
      return original.call(this, value);
    let parsed = memo.get(value);
    if (!parsed) {
      parsed = original.call(this, value);
      if (memo.size >= STRUCTURED_MEMO_ENTRIES) memo.clear();
      memo.set(value, { value: parsed.value, params: { ...parsed.params } });
      return parsed;
    }
    return { value: parsed.value, params: { ...parsed.params } };
  };
}
const STRUCTURED_MEMO_VALUE_CHARS = 200;
const STRUCTURED_MEMO_ENTRIES = 256;

/** Whether the decoders are in place (false only if postal-mime's internals changed: then parsing is stock). */
export const fastDecodersInstalled = installFastDecoders();

/** A MimeNode as the line loop sees it (postal-mime 4.0.0, src/mime-node.ts). */
interface LineNode {
  state: string;
  contentDecoder: BodyDecoder | null;
  feed(line: Uint8Array): void;
}

/** postal-mime's line loop and what it calls (postal-mime 4.0.0, src/postal-mime.ts). */
interface LineInternals {
  boundaries: unknown[];
  currentNode: LineNode;
  processLine(line: Uint8Array, isFinal: boolean): Promise<void> | undefined;
  started: boolean;
  options: PostalMimeOptions;
  root: object;
  buf: ArrayBuffer;
  av: Uint8Array;
  readPos: number;
  forceRfc822Attachments: boolean;
  parse(input: ArrayBuffer | Uint8Array): Promise<Email>;
  resolveInput(input: ArrayBuffer | Uint8Array): Promise<ArrayBuffer>;
  hasReportParts(): boolean;
  collectNode(node: object, alternative: false, related: false): Promise<void>;
  renderTextContent(): void;
  buildMessage(): Email;
  encodeAttachments(): void;
}

const LOOP_METHODS = [
  'processLine',
  'parse',
  'resolveInput',
  'hasReportParts',
  'collectNode',
  'renderTextContent',
  'buildMessage',
  'encodeAttachments',
] as const;

/**
 * A parser with the decoders above, whose lines skip an async call when they can be no boundary: postal-mime's
 * processLine is async for every line and its parse loop awaits each (a promise and a frame per line: 370 MB of the
 * 1.8 GB the 10,000-mail drain allocated). A line that is not the last and does not start with "--" while a boundary
 * is open goes straight to the current part, as processLine would send it; every other line goes to processLine, and
 * the loop awaits only what returns a promise. The rest of parse is postal-mime's, step by step.
 */
function fastParser(options: PostalMimeOptions): PostalMime {
  const parser = new PostalMime(options);
  fastParsers.add(parser);
  const lines = parser as unknown as Partial<LineInternals>;
  if (
    LOOP_METHODS.every((m) => typeof lines[m] === 'function') &&
    Array.isArray(lines.boundaries) &&
    lines.currentNode &&
    lines.root
  ) {
    const state = lines as LineInternals;
    const processLine = state.processLine;
    state.processLine = (line, isFinal) => {
      if (isFinal || (state.boundaries.length > 0 && line.length > 2 && line[0] === 0x2d && line[1] === 0x2d))
        return processLine.call(state, line, isFinal);
      state.currentNode.feed(line);
      return undefined;
    };
    // PostalMime.parse, awaiting a line only when processLine returned a promise (postal-mime awaits every line).
    state.parse = async (input) => {
      if (state.started) throw new Error('Can not reuse parser, create a new PostalMime object');
      state.started = true;
      if (input instanceof Uint8Array && input.buffer instanceof ArrayBuffer) {
        // A view is read where it lies: resolveInput would copy it into an ArrayBuffer of its own (an allocation
        // and a copy per message; imapflow's sources are views into its read buffers). readLine cuts lines from
        // `buf` at readPos, so the loop runs over the view's range of the buffer.
        state.buf = input.buffer;
        state.av = new Uint8Array(input.buffer, 0, input.byteOffset + input.byteLength);
        state.readPos = input.byteOffset;
      } else {
        state.buf = await state.resolveInput(input);
        state.av = new Uint8Array(state.buf);
        state.readPos = 0;
      }
      // readLine's lines (up to LF, trailing CRs dropped), cut here: a body line that can be no boundary goes to the
      // part's decoder as a range of the buffer (no view, no result object: 7 KB per message), every other line to
      // processLine as readLine would hand it over.
      const av = state.av;
      const length = av.length;
      let pos = state.readPos;
      while (pos < length) {
        let end = av.indexOf(LF, pos);
        if (end < 0) end = length;
        const next = end < length ? end + 1 : length;
        while (end > pos && av[end - 1] === 0x0d) end--;
        const node = state.currentNode as LineNode;
        if (
          next < length &&
          node.state === 'body' &&
          node.contentDecoder instanceof LineDecoder &&
          !(state.boundaries.length > 0 && end - pos > 2 && av[pos] === 0x2d && av[pos + 1] === 0x2d)
        ) {
          node.contentDecoder.updateRange(av, pos, end);
        } else {
          state.readPos = next;
          const pending = state.processLine(new Uint8Array(state.buf, pos, end - pos), next >= length);
          if (pending) await pending;
        }
        pos = next;
      }
      state.readPos = pos;
      state.forceRfc822Attachments = Boolean(state.options.forceRfc822Attachments) || state.hasReportParts();
      await state.collectNode(state.root, false, false);
      state.renderTextContent();
      const message = state.buildMessage();
      state.encodeAttachments();
      return message;
    };
  }
  return parser;
}

/** PostalMime.parse with the decoders above (the result is the stock parser's, byte for byte). */
export function parseWithFastDecoders(
  input: ArrayBuffer | Uint8Array,
  options: PostalMimeOptions,
): ReturnType<typeof PostalMime.parse> {
  return fastParser(options).parse(input);
}

/** What parseMessageContent reads of a parse. */
export type ContentParse = Pick<Email, 'headers' | 'text' | 'html' | 'attachments'>;

/** postal-mime's parser state that buildMessage reads (postal-mime 4.0.0, src/postal-mime.ts). */
interface ParserInternals {
  root: { headers: Email['headers'] };
  textContent: { html?: string; plain?: string };
  attachments: Email['attachments'];
  buildMessage(): Email;
}

/**
 * parseWithFastDecoders without the fields parseMessageContent does not read: postal-mime's buildMessage also runs
 * the address parser over From, Sender, To, Cc, Bcc, Reply-To, Delivered-To, Return-Path and decodes Subject,
 * Message-ID, In-Reply-To, References and Date, all of which parseMessageContent does again by its own rules (1.7 %
 * buildMessage + 1.1 % address parser in the profile). The four fields are built as buildMessage builds them.
 */
export async function parseForContent(
  input: ArrayBuffer | Uint8Array,
  options: PostalMimeOptions,
): Promise<ContentParse> {
  const parser = fastParser(options) as unknown as Partial<ParserInternals> & PostalMime;
  if (typeof parser.buildMessage === 'function' && parser.root && parser.textContent && parser.attachments) {
    const state = parser as ParserInternals;
    state.buildMessage = () => {
      const message = { headers: state.root.headers } as Email;
      if (state.textContent.html) message.html = state.textContent.html;
      if (state.textContent.plain) message.text = state.textContent.plain;
      message.attachments = state.attachments;
      return message;
    };
  }
  return parser.parse(input);
}
