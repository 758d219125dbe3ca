/**
 * Folder lists as the server has them: the indented tree of `folders`, and the "did you mean" of `check`
 * when the configured folder does not exist (see functions/poller/core/folders.ts).
 */
import { compareNames, type FolderInfo } from '../functions/poller/core/folders.js';

export type { FolderInfo };

interface Node {
  folder?: FolderInfo;
  path: string;
  children: Map<string, Node>;
}

const SPECIAL_USE = /^\\(All|Archive|Drafts|Flagged|Junk|Sent|Trash|Important)$/i;

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
      if (!child) {
        child = { path, children: new Map() };
        node.children.set(part, child);
      }
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
