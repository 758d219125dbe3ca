import { readFileSync } from 'node:fs';

/**
 * This process's peak RSS in bytes: the kernel's high-water mark of its memory (VmHWM), worker threads included.
 * Not getrusage's ru_maxrss (process.resourceUsage().maxRSS): on Linux that starts at the RSS of the process that
 * forked this one, and exec keeps it, so a child of a 90 MB parent never reports less than about 90 MB.
 */
export function peakRss(): number {
  const hwm = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'latin1'));
  return hwm ? Number(hwm[1]) * 1024 : Number.NaN;
}
