/**
 * Splits entries into PutEvents calls of at most `maxEntries` entries and `maxBytes` bytes
 * (sizes measured by `sizeOf`, the way EventBridge counts them). Order is kept.
 * An entry larger than `maxBytes` on its own is a caller bug: it is sent alone (EventBridge rejects it per entry).
 */
export function chunkEntries<T>(
  entries: readonly T[],
  sizeOf: (entry: T) => number,
  maxEntries = 10,
  maxBytes = 256 * 1024,
): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const entry of entries) {
    const size = sizeOf(entry);
    if (current.length > 0 && (current.length >= maxEntries || bytes + size > maxBytes)) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(entry);
    bytes += size;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}
