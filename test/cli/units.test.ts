/** The CLI's pure parts and local adapters, in-process. */

import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer } from 'node:tls';
import { describe, expect, test } from 'vitest';
import { generateDemoCertificates } from '../../cli/demo/certificates.js';
import { encodeModifiedUtf7 } from '../../cli/demo/demo-server.js';
import { DryRunCheckpointStore, FileCheckpointStore } from '../../cli/file-checkpoint-store.js';
import { type FolderInfo, renderFolderTree } from '../../cli/folders.js';
import { JsonLinesPublisher } from '../../cli/json-lines-publisher.js';
import { buildTlsOptions } from '../../functions/poller/adapters/tls-options.js';
import { suggestFolders } from '../../functions/poller/core/folders.js';
import type { Checkpoint } from '../../functions/poller/core/types.js';
import { CheckpointConflictError, CheckpointStoreError } from '../../functions/poller/errors.js';

const folders = (delimiter: string, paths: string[], flags: Record<string, string[]> = {}): FolderInfo[] =>
  paths.map((path) => ({ path, delimiter, flags: flags[path] ?? [] }));

describe('demo certificates (node:crypto only)', () => {
  test('a CA and a server certificate that Node verifies in a real TLS handshake via caBundle', async () => {
    const certs = generateDemoCertificates({ caName: 'Demo CA' });
    const ca = new X509Certificate(certs.caCertPem);
    expect(ca.ca).toBe(true);
    expect(ca.subject).toBe('CN=Demo CA');
    const server = createServer({ key: certs.serverKeyPem, cert: certs.serverCertPem }, (s) => s.end());
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as { port: number };
    try {
      const settings = {
        host: 'localhost',
        port,
        security: 'tls' as const,
        username: 'u',
        password: 'p',
        folder: 'INBOX',
        caBundle: certs.caCertPem,
      };
      const socket = connect({ host: '127.0.0.1', port, ...buildTlsOptions(settings) });
      await once(socket, 'secureConnect');
      expect(socket.authorized).toBe(true);
      socket.destroy();
      // Without the CA the same certificate is rejected.
      const untrusted = connect({ host: '127.0.0.1', port, servername: 'localhost' });
      const [err] = (await once(untrusted, 'error')) as [NodeJS.ErrnoException];
      expect(err.code).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    } finally {
      server.close();
    }
  });
});

test('modified UTF-7 folder names (RFC 3501 5.1.3)', () => {
  expect(encodeModifiedUtf7('Entwürfe')).toBe('Entw&APw-rfe');
  expect(encodeModifiedUtf7('Qualitätssicherung')).toBe('Qualit&AOQ-tssicherung');
  expect(encodeModifiedUtf7('Gelöschte-Objekte')).toBe('Gel&APY-schte-Objekte');
  expect(encodeModifiedUtf7('R&D')).toBe('R&-D');
  expect(encodeModifiedUtf7('INBOX')).toBe('INBOX');
});

describe('suggestFolders', () => {
  const slash = folders('/', [
    'INBOX',
    'Firma',
    'Firma/Kundenbetreuung',
    'Firma/Kundenbetreuung/kunden',
    'Firma/Kundenbetreuung/kunden/a',
    'Firma/Kundenbetreuung/kunden/b',
    'Firma/Qualitätssicherung',
    'Newsletter/IBM',
  ]);

  test('another delimiter and a missing parent level', () => {
    const s = suggestFolders('Kundenbetreuung.kunden.a', slash);
    expect(s.delimiter).toBe('/');
    expect(s.delimiterHint).toBe(
      'This server separates levels with "/", not ".": "Kundenbetreuung.kunden.a" is written "Kundenbetreuung/kunden/a" here.',
    );
    expect(s.suggestions[0]).toBe('Firma/Kundenbetreuung/kunden/a');
  });

  test('case and a typo', () => {
    expect(suggestFolders('firma/kundenbetreuung', slash).suggestions[0]).toBe('Firma/Kundenbetreuung');
    expect(suggestFolders('Firma/Qualitatssicherung', slash).suggestions[0]).toBe('Firma/Qualitätssicherung');
    expect(suggestFolders('Firma/Qualitatssicherung', slash).delimiterHint).toBeUndefined();
  });

  test('nothing near: no suggestions rather than noise', () => {
    expect(suggestFolders('Rechnungseingang', slash).suggestions).toEqual([]);
  });

  test('"." server', () => {
    const dot = folders('.', ['INBOX', 'Firma', 'Firma.Vertrieb']);
    const s = suggestFolders('Firma/Vertrieb', dot);
    expect(s.delimiterHint).toContain('is written "Firma.Vertrieb" here');
    expect(s.suggestions).toEqual(['Firma.Vertrieb']);
  });

  test('folders that cannot hold messages are not suggested', () => {
    const list = folders('/', ['Firma', 'Firma/Vertrieb'], { Firma: ['\\Noselect'] });
    expect(suggestFolders('firma', list).suggestions).not.toContain('Firma');
  });
});

test('renderFolderTree: seed-style indentation, INBOX first, server flags, unlisted parents', () => {
  const lines = renderFolderTree(
    folders('/', ['Newsletter/IBM', 'Firma/Vertrieb', 'INBOX', 'Firma', 'Gesendete-Objekte', 'Archiv/2024'], {
      'Gesendete-Objekte': ['\\HasNoChildren', '\\Sent'],
    }),
    { highlight: 'Firma/Vertrieb' },
  );
  expect(lines).toEqual([
    '-- INBOX',
    '-- Archiv  (not listed by the server)',
    '---- Archiv/2024',
    '-- Firma',
    '---- Firma/Vertrieb  <- configured folder',
    '-- Gesendete-Objekte  \\Sent',
    '-- Newsletter  (not listed by the server)',
    '---- Newsletter/IBM',
  ]);
});

describe('FileCheckpointStore', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ies-cli-store-'));
  const checkpoint = (lastUid: number, version = 0): Checkpoint => ({
    mailboxId: 'm',
    folder: 'INBOX',
    uidValidity: '7',
    lastUid,
    version,
    updatedAt: new Date(0).toISOString(),
  });

  test('put/get with versions; a stale writer gets CheckpointConflictError', async () => {
    const store = new FileCheckpointStore(join(dir, 'a', 'state.json'));
    expect(await store.get('m', 'INBOX')).toBeUndefined();
    await store.put(checkpoint(3), 0);
    expect(await store.get('m', 'INBOX')).toMatchObject({ lastUid: 3, version: 1 });
    await store.put(checkpoint(5, 1), 1);
    expect(await store.get('m', 'INBOX')).toMatchObject({ lastUid: 5, version: 2 });
    await expect(store.put(checkpoint(9, 1), 1)).rejects.toBeInstanceOf(CheckpointConflictError);
    await expect(store.put(checkpoint(9), 0)).rejects.toBeInstanceOf(CheckpointConflictError);
    expect(await store.get('m', 'INBOX')).toMatchObject({ lastUid: 5 });
    // Another folder is another checkpoint (a moved folder starts over).
    expect(await store.get('m', 'Archive')).toBeUndefined();
    expect(readdirSync(join(dir, 'a'))).toEqual(['state.json']); // no temp or lock files left behind
  });

  test('concurrent writers of the same version: exactly one wins', async () => {
    const path = join(dir, 'race.json');
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) => new FileCheckpointStore(path).put(checkpoint(i + 1), 0)),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(
      results
        .filter((r) => r.status === 'rejected')
        .every((r) => (r as PromiseRejectedResult).reason instanceof CheckpointConflictError),
    ).toBe(true);
    expect(JSON.parse(readFileSync(path, 'utf8')).checkpoints).toHaveLength(1);
  });

  test('a file that is not a state file is refused with the fix', async () => {
    const path = join(dir, 'garbage.json');
    writeFileSync(path, '{"hello": 1}');
    const err = await new FileCheckpointStore(path).get('m', 'INBOX').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointStoreError);
    expect((err as CheckpointStoreError).explanation).toContain('delete this one');
  });

  test('the lease in the state file: held by one poll at a time, taken over when expired, released by its owner', async () => {
    const path = join(dir, 'lease.json');
    const a = new FileCheckpointStore(path);
    const b = new FileCheckpointStore(path);
    const t = (s: number) => new Date(Date.UTC(2026, 10, 1, 8, 0, s));
    await a.put(checkpoint(2), 0);
    expect(await a.acquire('m', 'run-a', t(0), t(30))).toBe(true);
    expect(await b.acquire('m', 'run-b', t(1), t(31))).toBe(false);
    expect(await b.acquire('other', 'run-b', t(1), t(31))).toBe(true); // another mailbox, another lease
    expect(await a.acquire('m', 'run-a', t(2), t(32))).toBe(true); // already ours
    await b.release('m', 'run-b'); // not b's: nothing happens
    expect(await b.acquire('m', 'run-b', t(3), t(33))).toBe(false);
    expect(await b.acquire('m', 'run-b', t(33), t(63))).toBe(true); // a's lease expired (a crashed poll)
    await b.release('m', 'run-b');
    await b.release('other', 'run-b');
    const state = JSON.parse(readFileSync(path, 'utf8'));
    expect(state).not.toHaveProperty('leases');
    expect(await a.get('m', 'INBOX')).toMatchObject({ lastUid: 2, version: 1 }); // checkpoints untouched
  });

  test('DryRunCheckpointStore keeps writes in memory', async () => {
    const path = join(dir, 'dry.json');
    const real = new FileCheckpointStore(path);
    await real.put(checkpoint(2), 0);
    const dry = new DryRunCheckpointStore(real);
    await dry.put(checkpoint(4, 1), 1);
    expect(await dry.get('m', 'INBOX')).toMatchObject({ lastUid: 4, version: 2 });
    expect(await real.get('m', 'INBOX')).toMatchObject({ lastUid: 2, version: 1 });
    const before = readFileSync(path, 'utf8');
    expect(await dry.acquire()).toBe(true);
    await dry.release();
    expect(readFileSync(path, 'utf8')).toBe(before); // a dry run leaves the state file as it was, lease included
  });
});

test('JsonLinesPublisher: one event per line, shaped like a delivered EventBridge event', async () => {
  let out = '';
  const publisher = new JsonLinesPublisher(
    { write: (t: string, cb: (e?: Error | null) => void) => ((out += t), cb()) },
    { now: () => new Date('2026-01-02T03:04:05Z') },
  );
  const result = await publisher.publish([
    { Source: 's', DetailType: 'IMAP Message Received', Detail: '{"uid":1}', EventBusName: 'b', uid: 1 },
    { Source: 's', DetailType: 'IMAP Message Received', Detail: '{"uid":2}', EventBusName: 'b', uid: 2 },
  ]);
  expect([...result.accepted]).toEqual([0, 1]);
  expect(out.split('\n')).toEqual([
    '{"source":"s","detail-type":"IMAP Message Received","time":"2026-01-02T03:04:05.000Z","detail":{"uid":1}}',
    '{"source":"s","detail-type":"IMAP Message Received","time":"2026-01-02T03:04:05.000Z","detail":{"uid":2}}',
    '',
  ]);
});
