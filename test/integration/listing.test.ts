/**
 * The listing a drain plans its batches by (listSizes: UIDs, sizes above a bound) and the summaries that come with
 * the bodies, against Dovecot: the same UIDs, flags, INTERNALDATE and sizes the full listing (listNew) reports.
 */
import { describe, expect, it } from 'vitest';
import { ImapFlowMailboxGateway } from '../../functions/poller/adapters/imapflow-mailbox.js';
import { parseMailboxSettings } from '../../functions/poller/adapters/pem-checks.js';
import { dovecot, mailboxSecret } from '../support/env.js';
import { buildMessage } from '../support/messages.js';

describe('the light listing (listSizes) against Dovecot', () => {
  it('names the messages above the bound with their RFC822.SIZE; the bodies bring the summaries listNew lists', async () => {
    const imap = dovecot();
    const user = await imap.createUser();
    const big = 'Zeile mit Inhalt, Qualitätssicherung.\n'.repeat(1_500); // about 57 KB
    const uids = await imap.appendMany(user, 'INBOX', [
      { raw: buildMessage({ subject: 'small 1' }), flags: ['\\Seen'], internalDate: new Date('2026-11-02T08:00:00Z') },
      { raw: buildMessage({ subject: 'big 1', body: big }), flags: ['\\Flagged', '$Label1'] },
      { raw: buildMessage({ subject: 'small 2' }) },
      { raw: buildMessage({ subject: 'big 2', body: big }), internalDate: new Date('2026-11-03T09:30:00Z') },
    ]);
    const settings = parseMailboxSettings(JSON.stringify(mailboxSecret(imap, user)), 'test');
    const commands: string[] = [];
    const session = await new ImapFlowMailboxGateway({ onCommand: (v) => commands.push(v) }).connect(settings);
    try {
      await session.open('INBOX');
      const full = await session.listNew(uids[0]!, 100);
      const sizeOf = (uid: number) => full.messages.find((m) => m.uid === uid)!.size;
      commands.length = 0;
      const light = await session.listSizes(uids[0]!, 100, 40_000);
      // Two searches, one size FETCH for the two big messages.
      expect(commands).toEqual(['UID SEARCH', 'UID SEARCH', 'UID FETCH']);
      expect(light).toEqual({
        messages: [
          { uid: uids[0], size: 40_000 },
          { uid: uids[1], size: sizeOf(uids[1]!) },
          { uid: uids[2], size: 40_000 },
          { uid: uids[3], size: sizeOf(uids[3]!) },
        ],
        complete: true,
      });
      expect(sizeOf(uids[1]!)).toBeGreaterThan(40_000);
      const sources = await session.fetchSources(uids, { maxBytes: 1_000, summaries: true });
      expect(uids.map((uid) => sources.get(uid)?.summary)).toEqual(full.messages);
      expect(sources.get(uids[1]!)).toMatchObject({ partial: true });
      // Fewer than the limit: incomplete, the lowest UIDs first.
      expect(await session.listSizes(uids[0]!, 3, 40_000)).toMatchObject({
        complete: false,
        messages: [{ uid: uids[0] }, { uid: uids[1] }, { uid: uids[2] }],
      });
    } finally {
      await session.close();
    }
  });
});
