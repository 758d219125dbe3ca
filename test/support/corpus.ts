/**
 * The real-world mail corpus (shared/corpus/mail-gem), read where it lies, never copied into the repo:
 * MAIL_GEM_CORPUS, or shared/ beside the clone (as CI lays it out), or the development machines' /work/shared.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const CANDIDATES = [
  process.env.MAIL_GEM_CORPUS,
  join(import.meta.dirname, '../../../shared/corpus/mail-gem'),
  '/work/shared/corpus/mail-gem',
];

/** The corpus folder; throws (the test fails, it is never skipped) when it cannot be found. */
export function corpusDir(): string {
  const dir = CANDIDATES.find((d): d is string => !!d && existsSync(d));
  if (!dir)
    throw new Error(
      `the mail-gem corpus was not found (looked in ${CANDIDATES.filter(Boolean).join(', ')}); set MAIL_GEM_CORPUS`,
    );
  return dir;
}

/** Every message file below `dir` (licence and readme files left out). */
export function corpusFiles(dir = corpusDir()): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return corpusFiles(path);
    return /^(LICENSE|README)/i.test(name) ? [] : [path];
  });
}
