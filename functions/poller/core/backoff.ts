/** Capped exponential backoff with full jitter: a delay in [0, min(cap, base * 2^attempt)). `random` in [0, 1). */
export function backoffDelay(attempt: number, random: number, baseMs = 100, capMs = 5_000): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt));
  return Math.floor(random * ceiling);
}
