/**
 * Folder lists as the server has them: the indented tree of `folders`, and the "did you mean" of `check`
 * when the configured folder does not exist.
 */

export interface FolderInfo {
  readonly path: string;
  /** Hierarchy delimiter as the server lists it ('' for a flat namespace). */
  readonly delimiter: string;
  /** LIST attributes as the server sent them, special-use flags (\\Sent, \\Trash, ...) included. */
  readonly flags: readonly string[];
}

interface Node {
  folder?: FolderInfo;
  path: string;
  children: Map<string, Node>;
}

const SPECIAL_USE = /^\\(All|Archive|Drafts|Flagged|Junk|Sent|Trash|Important)$/i;

const compareNames = (a: string, b: string) =>
  a.toUpperCase() === 'INBOX' ? -1 : b.toUpperCase() === 'INBOX' ? 1 : a.localeCompare(b, undefined, { sensitivity: 'base' });

/**
 * The tree, one folder per line, indented like the original product's settings page:
 * `-- Firma`, `---- Firma/Vertrieb`, with the full path (what goes into `folder`) and flags.
 */
export function renderFolderTree(folders: readonly FolderInfo[], options: { highlight?: string } = {}): string[] {
  const root: Node = { path: '', children: new Map() };
  for (const folder of folders) {
    const parts = folder.delimiter ? folder.path.split(folder.delimiter) : [folder.path];
    let node = root;
    parts.forEach((part, i) => {
      const path = parts.slice(0, i + 1).join(folder.delimiter);
      let child = node.children.get(part);
      if (!child) node.children.set(part, (child = { path, children: new Map() }));
      node = child;
    });
    node.folder = folder;
  }
  const lines: string[] = [];
  const walk = (node: Node, depth: number) => {
    for (const [, child] of [...node.children].sort(([a], [b]) => compareNames(a, b))) {
      const notes = [
        // Only what the server says (RFC 6154); imapflow's `specialUse` may be guessed from the name.
        ...(child.folder?.flags.filter((f) => SPECIAL_USE.test(f)) ?? []),
        ...(!child.folder ? ['(not listed by the server)'] : []),
        ...(child.folder?.flags.some((f) => /^\\(Noselect|NonExistent)$/i.test(f)) ? ['(cannot hold messages)'] : []),
      ];
      if (child.path === options.highlight) notes.push('<- configured folder');
      lines.push(`${'--'.repeat(depth + 1)} ${child.path}${notes.length ? `  ${notes.join(' ')}` : ''}`);
      walk(child, depth + 1);
    }
  };
  walk(root, 0);
  return lines;
}

const DELIMITERS = ['/', '.', '\\'];
const normalize = (path: string) => path.normalize('NFC').toLowerCase().replace(/[/.\\]/g, '/');

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
    if (candidate === target) score = 0; // only case, delimiter or Unicode form differ
    else if (candidate.endsWith(`/${target}`)) score = 1; // a parent level is missing
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

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[b.length]!;
}
