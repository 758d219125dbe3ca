import { describe, expect, it } from 'vitest';
import { type FolderInfo, folderNotFoundHint, suggestFolders } from '../../functions/poller/core/folders.js';

const tree = (delimiter: string, paths: string[]): FolderInfo[] =>
  paths.map((path) => ({ path, delimiter, flags: [] }));

describe('folderNotFoundHint', () => {
  it.each<[string, string, FolderInfo[], string]>([
    [
      '/ in the secret, . on the server',
      'Kundenbetreuung/kunden/a',
      tree('.', ['INBOX', 'Kundenbetreuung', 'Kundenbetreuung.kunden', 'Kundenbetreuung.kunden.a']),
      'Kundenbetreuung.kunden.a',
    ],
    [
      '. in the secret, / on the server',
      'Kundenbetreuung.kunden.a',
      tree('/', ['INBOX', 'Kundenbetreuung/kunden/a']),
      'Kundenbetreuung/kunden/a',
    ],
  ])('names the server delimiter and the folder meant: %s', (_name, wanted, folders, match) => {
    const hint = folderNotFoundHint(wanted, folders);
    expect(hint).toContain(`(delimiter "${folders[0]!.delimiter}")`);
    expect(hint).toMatch(/This server separates levels with/);
    expect(hint).toContain(`Nearest existing folders: "${match}"`);
  });

  it('finds a folder whose parent level is missing in the secret', () => {
    const hint = folderNotFoundHint(
      'Kundenbetreuung/kunden/a',
      tree('/', ['INBOX', 'Firma', 'Firma/Kundenbetreuung/kunden/a', 'Firma/Vertrieb']),
    );
    expect(hint).toContain('Nearest existing folders: "Firma/Kundenbetreuung/kunden/a"');
  });

  it('matches across Unicode normalization and case', () => {
    const { suggestions } = suggestFolders(
      'Firma/Qualita\u0308tssicherung',
      tree('/', ['INBOX', 'firma/qualitätssicherung', 'Firma/Vertrieb']),
    );
    expect(suggestions[0]).toBe('firma/qualitätssicherung');
  });

  it('suggests nothing far away, and copes with an empty list', () => {
    expect(suggestFolders('Zzz', tree('/', ['INBOX', 'Firma/Vertrieb'])).suggestions).toEqual([]);
    expect(folderNotFoundHint('Archiv', [])).toBe(
      'set "folder" to a path exactly as the server lists it (delimiter "/"). `imap-event-source folders` shows the whole tree.',
    );
  });

  it('never suggests folders that cannot be opened', () => {
    const folders: FolderInfo[] = [
      { path: 'Archiv/2024', delimiter: '/', flags: ['\\Noselect'] },
      { path: 'Archiv/2026', delimiter: '/', flags: [] },
    ];
    expect(suggestFolders('Archiv/2025', folders).suggestions).toEqual(['Archiv/2026']);
  });
});
