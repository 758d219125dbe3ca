/**
 * From Linux's /proc, for bench/drain.ts: this process's peak RSS, the CPU time of its main thread alone, and of a
 * server's whole process tree (Dovecot: its master, which test/support/dovecot.ts starts with `dovecot -F`, and every
 * process under it; moto_server).
 *
 * /proc/<pid>/stat is readable for every process whoever runs the benchmark (as root in CI, Dovecot's children run
 * as other users; as a user, they all run as that user). Times are in clock ticks: USER_HZ, which Linux fixes at 100
 * for user space whatever the kernel's own tick.
 */
import { readdirSync, readFileSync } from 'node:fs';

const MS_PER_TICK = 1000 / 100;

interface Stat {
  readonly ppid: number;
  /** utime + stime: the process's own CPU, all its threads. */
  readonly ownTicks: number;
  /** cutime + cstime: its children that ended and were waited for. */
  readonly childTicks: number;
}

/** The fields of a /proc stat file, or undefined when the process (or thread) is gone. */
function stat(path: string): Stat | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'latin1');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces: fields 3.. follow the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const field = (n: number) => Number(fields[n - 3]);
  return { ppid: field(4), ownTicks: field(14) + field(15), childTicks: field(16) + field(17) };
}

/** CPU ms this process's main thread has used (not the GC's helper threads, not the libuv pool, not workers). */
export function mainThreadCpuMs(): number {
  return (stat(`/proc/self/task/${process.pid}/stat`)?.ownTicks ?? Number.NaN) * MS_PER_TICK;
}

/**
 * CPU ms used by `rootPid` and every process below it, alive or ended: a process that ended and was waited for is in
 * its parent's cutime/cstime (Dovecot's per-connection imap and imap-login processes end at logout). The difference
 * of two readings is what the tree spent in between. NaN when `rootPid` is gone.
 */
export function processTreeCpuMs(rootPid: number): number {
  const all = new Map<number, Stat>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = stat(`/proc/${name}/stat`);
    if (s) all.set(Number(name), s);
  }
  if (!all.has(rootPid)) return Number.NaN;
  const children = new Map<number, number[]>();
  for (const [pid, s] of all) {
    const siblings = children.get(s.ppid);
    if (siblings) siblings.push(pid);
    else children.set(s.ppid, [pid]);
  }
  let ticks = 0;
  const todo = [rootPid];
  for (let pid = todo.pop(); pid !== undefined; pid = todo.pop()) {
    const s = all.get(pid)!;
    ticks += s.ownTicks + s.childTicks;
    todo.push(...(children.get(pid) ?? []));
  }
  return ticks * MS_PER_TICK;
}

/** The child's own peak RSS (test/support/peak-rss.ts). */
export { peakRss } from '../test/support/peak-rss.js';
