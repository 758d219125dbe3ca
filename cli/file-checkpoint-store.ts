/**
 * CheckpointStore and LeaseStore over a local JSON file, for `poll` and the demo: the same contract as the
 * DynamoDB store (conditional write on the version read; a lease per mailbox that expires), made safe for
 * concurrent local runs with a lock file, and crash-safe by writing a temp file and renaming it over the old one.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Checkpoint } from '../functions/poller/core/types.js';
import { CheckpointConflictError, CheckpointStoreError } from '../functions/poller/errors.js';
import type { CheckpointStore, LeaseStore } from '../functions/poller/ports.js';

interface Lease {
  readonly mailboxId: string;
  readonly owner: string;
  /** Epoch ms. */
  readonly expiresAt: number;
}

interface StateFile {
  readonly format: 'imap-event-source-state';
  readonly formatVersion: 1;
  readonly checkpoints: Checkpoint[];
  /** Runs in progress (added later within format version 1; older files have none). */
  readonly leases?: Lease[];
}

const EMPTY: StateFile = { format: 'imap-event-source-state', formatVersion: 1, checkpoints: [] };
const LOCK_WAIT_MS = 5_000;
/** A lock older than this was left by a crashed run. */
const STALE_LOCK_MS = 30_000;

const sameKey = (c: Checkpoint, mailboxId: string, folder: string) => c.mailboxId === mailboxId && c.folder === folder;

export class FileCheckpointStore implements CheckpointStore, LeaseStore {
  constructor(readonly path: string) {}

  async get(mailboxId: string, folder: string): Promise<Checkpoint | undefined> {
    return (await this.read()).checkpoints.find((c) => sameKey(c, mailboxId, folder));
  }

  async put(next: Checkpoint, expectedVersion: number): Promise<void> {
    await this.locked(async () => {
      const state = await this.read();
      const current = state.checkpoints.find((c) => sameKey(c, next.mailboxId, next.folder));
      if ((current?.version ?? 0) !== expectedVersion) {
        throw new CheckpointConflictError(
          `The checkpoint of "${next.mailboxId}" / "${next.folder}" in ${this.path} changed since it was read (version ${current?.version ?? 0}, expected ${expectedVersion}).`,
          { hint: 'another poll run used the same state file; nothing was lost: run poll again.' },
        );
      }
      // As in DynamoDB: the store owns the version, one up from the version the writer read.
      const checkpoints = [
        ...state.checkpoints.filter((c) => c !== current),
        { ...next, version: expectedVersion + 1 },
      ];
      await this.writeAtomically({ ...state, checkpoints });
    });
  }

  async acquire(mailboxId: string, owner: string, now: Date, expiresAt: Date): Promise<boolean> {
    return this.locked(async () => {
      const state = await this.read();
      const held = state.leases?.find((l) => l.mailboxId === mailboxId);
      if (held && held.owner !== owner && held.expiresAt >= now.getTime()) return false;
      const leases = [
        ...(state.leases ?? []).filter((l) => l !== held),
        { mailboxId, owner, expiresAt: expiresAt.getTime() },
      ];
      await this.writeAtomically({ ...state, leases });
      return true;
    });
  }

  async release(mailboxId: string, owner: string): Promise<void> {
    await this.locked(async () => {
      const state = await this.read();
      const leases = state.leases ?? [];
      const mine = leases.find((l) => l.mailboxId === mailboxId && l.owner === owner);
      if (!mine) return;
      const { leases: _, ...rest } = state;
      const left = leases.filter((l) => l !== mine);
      await this.writeAtomically(left.length > 0 ? { ...rest, leases: left } : rest);
    });
  }

  private async read(): Promise<StateFile> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return EMPTY;
      throw new CheckpointStoreError(`Cannot read the state file ${this.path}.`, {
        cause: err,
        retryable: false,
        hint: 'check the path and its permissions.',
      });
    }
    let parsed: Partial<StateFile> | undefined;
    try {
      parsed = JSON.parse(text) as Partial<StateFile>;
    } catch {
      parsed = undefined;
    }
    if (
      parsed?.format !== EMPTY.format ||
      parsed.formatVersion !== 1 ||
      !Array.isArray(parsed.checkpoints) ||
      (parsed.leases !== undefined && !Array.isArray(parsed.leases))
    ) {
      throw new CheckpointStoreError(
        `The state file ${this.path} is not an imap-event-source state file (version 1).`,
        {
          retryable: false,
          hint: 'pass another --state FILE, or delete this one: the next poll then starts over as --start-at says.',
        },
      );
    }
    return parsed as StateFile;
  }

  private async writeAtomically(state: StateFile): Promise<void> {
    const temp = `${this.path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await mkdir(dirname(this.path), { recursive: true });
      const file = await open(temp, 'w', 0o600);
      try {
        await file.writeFile(`${JSON.stringify(state, null, 2)}\n`);
        await file.sync();
      } finally {
        await file.close();
      }
      await rename(temp, this.path);
    } catch (err) {
      await rm(temp, { force: true });
      throw new CheckpointStoreError(`Cannot write the state file ${this.path}.`, {
        cause: err,
        retryable: false,
        hint: 'check free space and permissions of its directory.',
      });
    }
  }

  /** Runs `fn` holding `<state>.lock` (created exclusively); waits for another holder, breaks stale locks. */
  private async locked<T>(fn: () => Promise<T>): Promise<T> {
    const lock = `${this.path}.lock`;
    const deadline = Date.now() + LOCK_WAIT_MS;
    await mkdir(dirname(this.path), { recursive: true });
    for (;;) {
      try {
        await writeFile(lock, String(process.pid), { flag: 'wx' });
        break;
      } catch (err) {
        if ((err as { code?: string }).code !== 'EEXIST') {
          throw new CheckpointStoreError(`Cannot create the lock file ${lock}.`, {
            cause: err,
            retryable: false,
            hint: "check the permissions of the state file's directory.",
          });
        }
        const age = await stat(lock).then(
          (s) => Date.now() - s.mtimeMs,
          () => 0,
        );
        if (age > STALE_LOCK_MS) {
          await rm(lock, { force: true });
          continue;
        }
        if (Date.now() > deadline) {
          throw new CheckpointStoreError(`The state file ${this.path} is locked by another run (${lock}).`, {
            hint: 'wait for the other poll to finish; if none is running, delete the lock file.',
          });
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    }
    try {
      return await fn();
    } finally {
      await rm(lock, { force: true });
    }
  }
}

/**
 * For `--dry-run`: reads the real store, keeps writes in memory. The run behaves exactly as a real one
 * (batches advance its own view of the checkpoint) but the state file is left as it was.
 */
export class DryRunCheckpointStore implements CheckpointStore, LeaseStore {
  private readonly written = new Map<string, Checkpoint>();

  constructor(private readonly inner: CheckpointStore) {}

  async get(mailboxId: string, folder: string): Promise<Checkpoint | undefined> {
    return this.written.get(JSON.stringify([mailboxId, folder])) ?? this.inner.get(mailboxId, folder);
  }

  async put(next: Checkpoint, expectedVersion: number): Promise<void> {
    const current = await this.get(next.mailboxId, next.folder);
    if ((current?.version ?? 0) !== expectedVersion) {
      throw new CheckpointConflictError(
        `Dry run: the checkpoint of "${next.mailboxId}" / "${next.folder}" changed since it was read.`,
      );
    }
    this.written.set(JSON.stringify([next.mailboxId, next.folder]), { ...next, version: expectedVersion + 1 });
  }

  /** A dry run writes nothing, so it needs no lease, and takes none (the state file stays as it was). */
  async acquire(): Promise<boolean> {
    return true;
  }

  async release(): Promise<void> {}
}
