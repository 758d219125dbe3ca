/** Large UID sets reach the server as bounded commands of ranges (Dovecot refuses command lines over 64 KB). */
import { describe, expect, it } from 'vitest';
import { ImapFlowMailboxGateway } from '../../functions/poller/adapters/imapflow-mailbox.js';
import { parseMailboxSettings } from '../../functions/poller/adapters/pem-checks.js';
import { dovecot, mailboxSecret } from '../support/env.js';
import { buildMessage } from '../support/messages.js';

describe('UID sets', () => {
  it('fetches and searches a sparse set whose comma list is over 64 KB: every existing message, nothing else', async () => {
    const imap = dovecot();
    const user = await imap.createUser();
    const uids = await imap.appendMany(
      user,
      'INBOX',
      Array.from({ length: 6 }, (_, i) => buildMessage({ subject: `m${i}` })),
    );
    // The existing UIDs 1..6, then 14,000 UIDs that do not exist, none of them adjacent.
    const sparse = [...uids, ...Array.from({ length: 14_000 }, (_, i) => 1_000 + 2 * i)];
    expect(sparse.join(',').length).toBeGreaterThan(64 * 1024);
    const settings = parseMailboxSettings(JSON.stringify(mailboxSecret(imap, user)), 'test');
    const commands: string[] = [];
    const session = await new ImapFlowMailboxGateway({ onCommand: (v) => commands.push(v) }).connect(settings);
    try {
      await session.open('INBOX');
      const sources = await session.fetchSources(sparse, { maxBytes: 1024 });
      expect([...sources.keys()].sort((a, b) => a - b)).toEqual(uids);
      expect(commands.filter((c) => c === 'UID FETCH').length).toBeGreaterThan(1);
      expect(await session.exists(sparse)).toEqual(uids);
    } finally {
      await session.close();
    }
  });
});
