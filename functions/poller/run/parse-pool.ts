/**
 * Parse workers: the Details of a batch built in worker threads (node:worker_threads) while the drain's thread reads
 * the next batch from the IMAP server. Pays only with a second core (a Lambda above 1,769 MB, a multi-core host):
 * `parsePool` gives none with one core, and the setting that enables it (PARSE_WORKERS, off by default) is in the
 * README's table of the Lambda's environment; bench/drain.ts measures the drain with and without it.
 *
 * - Bounded: each worker holds one batch at a time (a batch is bounded by the drain: 100 messages, 4 MiB); further
 *   batches wait in the pool, and the drain prepares one batch at a time.
 * - No handle keeps the process alive: a worker is ref()'d only while it holds a batch, so a Lambda container
 *   freezes between invocations and a warm one reuses the pool; `close()` ends the workers (the bench and the CLI).
 * - Same output, same errors: a worker runs message-detail.ts as the drain's thread does. A batch whose worker failed
 *   (any error, the worker died or could not start) is built again in the drain's thread, which yields the result or
 *   the error the drain would have had without workers; a pool whose worker could not start is not used again.
 * The worker runs this same file (the handler bundle in the Lambda: one file, no second entry to deploy).
 */
import { availableParallelism } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import {
  type BuiltDetail,
  type DetailContext,
  type DetailJob,
  inThread,
  type MessageDetailer,
  messageDetail,
} from './message-detail.js';

const ROLE = 'imap-event-source parse worker';

interface Request {
  readonly id: number;
  readonly context: DetailContext;
  readonly jobs: readonly (Omit<DetailJob, 'bytes'> & { readonly offset: number; readonly length: number })[];
  /** Every job's source, back to back (transferred, not copied). */
  readonly bytes: ArrayBuffer;
}
type Reply =
  | { readonly ready: true }
  | { readonly id: number; readonly details: BuiltDetail[] }
  | { readonly id: number; readonly failed: string };

interface Pending {
  readonly jobs: readonly DetailJob[];
  readonly context: DetailContext;
  readonly resolve: (details: BuiltDetail[]) => void;
  readonly reject: (error: unknown) => void;
}

interface Slot {
  readonly worker: Worker;
  /** Serving (its module loaded); until then batches are built in the drain's thread. */
  ready: boolean;
  busy?: { id: number; pending: Pending };
}

/** The file the workers run: this module (the bundle, in the Lambda). */
function selfFile(): string {
  // The CommonJS handler bundle has __filename and no import.meta; the ESM sources and dist/ have import.meta.
  return typeof __filename === 'string' ? __filename : fileURLToPath(import.meta.url);
}

export class ParsePool implements MessageDetailer {
  private readonly slots: Slot[] = [];
  private readonly queue: { id: number; pending: Pending }[] = [];
  private nextId = 1;
  private broken = false;
  private readonly waiting: ((serving: boolean) => void)[] = [];
  private readonly file: string;

  /** `file`: what the workers run (default: this module); tests point it elsewhere. */
  constructor(
    private readonly size: number,
    options: { readonly file?: string } = {},
  ) {
    this.file = options.file ?? selfFile();
  }

  /** Starts the workers; true once one serves, false when they cannot start (then every batch is built in this thread). */
  started(): Promise<boolean> {
    if (this.slots.length < this.size && !this.broken) this.spawn();
    if (this.broken || this.slots.some((s) => s.ready)) return Promise.resolve(!this.broken);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  details(jobs: readonly DetailJob[], context: DetailContext): Promise<BuiltDetail[]> {
    if (this.slots.length < this.size && !this.broken) this.spawn();
    // While the workers start (a second or so), the drain's thread does not wait for them.
    if (this.broken || jobs.length === 0 || !this.slots.some((s) => s.ready)) return inThread.details(jobs, context);
    return new Promise<BuiltDetail[]>((resolve, reject) => {
      this.queue.push({ id: this.nextId++, pending: { jobs, context, resolve, reject } });
      this.dispatch();
    });
  }

  /** Ends the workers; batches not yet done are built in this thread. */
  async close(): Promise<void> {
    const slots = this.slots.splice(0);
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      const slot = this.slots.find((s) => s.ready && !s.busy);
      if (!slot) return;
      const next = this.queue.shift()!;
      slot.busy = next;
      slot.worker.ref();
      const { jobs, context } = next.pending;
      let total = 0;
      for (const j of jobs) total += j.bytes.byteLength;
      const bytes = new Uint8Array(total);
      let offset = 0;
      const described = jobs.map(({ bytes: source, ...job }) => {
        bytes.set(source, offset);
        offset += source.byteLength;
        return { ...job, offset: offset - source.byteLength, length: source.byteLength };
      });
      const request: Request = { id: next.id, context, jobs: described, bytes: bytes.buffer };
      slot.worker.postMessage(request, [bytes.buffer]);
    }
  }

  private spawn(): void {
    const file = this.file;
    // The TypeScript sources (tests, bench) load through tsx, as the drain's thread did (a worker does not inherit
    // the loader that `--import tsx` registered).
    const worker = file.endsWith('.ts')
      ? new Worker(
          `import('tsx/esm/api').then((tsx) => tsx.tsImport(${JSON.stringify(pathToFileURL(file).href)}, ${JSON.stringify(pathToFileURL(file).href)}))`,
          { eval: true, workerData: { role: ROLE } },
        )
      : new Worker(file, { workerData: { role: ROLE } });
    worker.unref();
    const slot: Slot = { worker, ready: false };
    this.slots.push(slot);
    worker.on('message', (reply: Reply) => {
      if ('ready' in reply) {
        slot.ready = true;
        for (const wake of this.waiting.splice(0)) wake(true);
        this.dispatch();
        return;
      }
      const busy = slot.busy;
      if (!busy || busy.id !== reply.id) return;
      slot.busy = undefined;
      worker.unref();
      if ('details' in reply) busy.pending.resolve(reply.details);
      else this.fallback(busy.pending);
      this.dispatch();
    });
    // A worker that fails before it serves (e.g. its file cannot be loaded) breaks the pool: no respawn per batch.
    const gone = () => {
      const index = this.slots.indexOf(slot);
      if (index < 0) return;
      this.slots.splice(index, 1);
      if (!slot.ready) {
        this.broken = true;
        for (const wake of this.waiting.splice(0)) wake(false);
      }
      const busy = slot.busy;
      slot.busy = undefined;
      if (busy) this.fallback(busy.pending);
      if (this.broken) for (const queued of this.queue.splice(0)) this.fallback(queued.pending);
      else this.dispatch();
    };
    worker.on('error', gone);
    worker.on('exit', gone);
  }

  private fallback(pending: Pending): void {
    inThread.details(pending.jobs, pending.context).then(pending.resolve, pending.reject);
  }
}

let shared: ParsePool | undefined;

/**
 * The container's pool of `workers` parse workers (at most one less than the cores), or none with one core or
 * `workers` 0. One per process: warm invocations reuse it.
 */
export function parsePool(workers: number, cores = availableParallelism()): ParsePool | undefined {
  const size = Math.min(workers, cores - 1);
  if (size < 1) return undefined;
  shared ??= new ParsePool(size);
  return shared;
}

async function serve(): Promise<void> {
  parentPort!.on('message', async (request: Request) => {
    try {
      const details: BuiltDetail[] = [];
      for (const job of request.jobs) {
        const bytes = new Uint8Array(request.bytes, job.offset, job.length);
        details.push(await messageDetail({ ...job, bytes }, request.context));
      }
      parentPort!.postMessage({ id: request.id, details } satisfies Reply);
    } catch (error) {
      // The drain's thread builds the batch again and meets the error itself.
      parentPort!.postMessage({
        id: request.id,
        failed: error instanceof Error ? error.name : 'error',
      } satisfies Reply);
    }
  });
  parentPort!.postMessage({ ready: true } satisfies Reply);
}

if (!isMainThread && (workerData as { role?: string } | undefined)?.role === ROLE) void serve();
