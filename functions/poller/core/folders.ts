/**
 * Folder names as the server lists them: ordering, and what to suggest when the configured folder
 * does not exist (the delimiter the server uses, the nearest existing names). Shared by the poller's
 * FolderNotFoundError and the CLI's `check`.
 */
import { editDistance } from './edit-distance.js';

export interface FolderInfo {
  readonly path: string;
  /** Hierarchy delimiter as the server lists it ('' for a flat namespace). */
  readonly delimiter: string;
  /** LIST attributes as the server sent them, special-use flags (\\Sent, \\Trash, ...) included. */
  readonly flags: readonly string[];
}

/** INBOX first, then case-insensitive by name. */
export const compareNames = (a: string, b: string) =>
  a.toUpperCase() === 'INBOX'
    ? -1
    : b.toUpperCase() === 'INBOX'
      ? 1
      : a.localeCompare(b, undefined, { sensitivity: 'base' });

const DELIMITERS = ['/', '.', '\\'];
const normalize = (path: string) =>
  path
    .normalize('NFC')
    .toLowerCase()
    .replace(/[/.\\]/g, '/');

/**
 * What to say when `wanted` is not on the server: the delimiter it uses (if `wanted` was written with
 * another one) and up to `max` existing folders nearest to `wanted`, best first.
 */
export function suggestFolders(
  wanted: string,
  folders: readonly FolderInfo[],
  max = 3,
): { delimiter: string; delimiterHint?: string; suggestions: string[] } {
  const delimiter = folders.find((f) => f.delimiter)?.delimiter ?? '/';
  const selectable = folders.filter((f) => !f.flags.some((x) => /^\\(Noselect|NonExistent)$/i.test(x)));
  const others = DELIMITERS.filter((d) => d !== delimiter && wanted.includes(d));
  const delimiterHint =
    others.length > 0 && !wanted.includes(delimiter)
      ? `This server separates levels with "${delimiter}", not "${others[0]}": "${wanted}" is written "${others.reduce((p, d) => p.split(d).join(delimiter), wanted)}" here.`
      : undefined;

  const target = normalize(wanted);
  const leaf = target.split('/').pop()!;
  const scored = selectable.map((f) => {
    const candidate = normalize(f.path);
    let score: number;
    if (candidate === target)
      score = 0; // only case, delimiter or Unicode form differ
    else if (candidate.endsWith(`/${target}`))
      score = 1; // a parent level is missing
    else score = 2 + Math.min(editDistance(target, candidate), editDistance(leaf, candidate.split('/').pop()!) + 1);
    return { path: f.path, score };
  });
  const limit = 2 + Math.max(2, Math.floor(target.length * 0.4));
  const suggestions = scored
    .filter((s) => s.score <= limit)
    .sort((a, b) => a.score - b.score || compareNames(a.path, b.path))
    .slice(0, max)
    .map((s) => s.path);
  return { delimiter, ...(delimiterHint ? { delimiterHint } : {}), suggestions };
}

/** The fix for a missing folder, in one paragraph. */
export function folderNotFoundHint(wanted: string, folders: readonly FolderInfo[]): string {
  const { delimiter, delimiterHint, suggestions } = suggestFolders(wanted, folders);
  return [
    `set "folder" to a path exactly as the server lists it (delimiter "${delimiter}").`,
    ...(delimiterHint ? [delimiterHint] : []),
    suggestions.length ? `Nearest existing folders: ${suggestions.map((s) => `"${s}"`).join(', ')}.` : '',
    '`imap-event-source folders` shows the whole tree.',
  ]
    .filter(Boolean)
    .join(' ');
}
