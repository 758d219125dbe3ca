import { describe, expect, it } from 'vitest';
import { isSecretPrefix, isUnderSecretPrefix, secretNameOf } from '../../functions/poller/contract/fleet.js';

describe('fleet secret prefix (contract)', () => {
  it('takes the name from a name, a complete ARN (suffix removed) or a partial ARN', () => {
    expect(secretNameOf('imap-event-source/support')).toBe('imap-event-source/support');
    expect(secretNameOf('arn:aws:secretsmanager:eu-central-1:123456789012:secret:imap-event-source/a-AbC123')).toBe(
      'imap-event-source/a',
    );
    expect(secretNameOf('arn:aws:secretsmanager:eu-central-1:123456789012:secret:imap-event-source/a')).toBe(
      'imap-event-source/a',
    );
  });

  it('accepts only secrets whose name starts with the prefix, the ARN suffix not counting', () => {
    expect(isUnderSecretPrefix('imap-event-source/tenant-a', 'imap-event-source/')).toBe(true);
    expect(isUnderSecretPrefix('other/tenant-a', 'imap-event-source/')).toBe(false);
    // The name "imap/a" is not under "imap/a-": only its ARN's random suffix would be.
    expect(
      isUnderSecretPrefix('arn:aws:secretsmanager:eu-central-1:123456789012:secret:imap/a-Xyz123', 'imap/a-'),
    ).toBe(false);
  });

  it('rejects an empty prefix (every secret) and characters Secrets Manager does not allow', () => {
    expect(isSecretPrefix('imap-event-source/')).toBe(true);
    expect(isSecretPrefix('')).toBe(false);
    expect(isSecretPrefix('imap event/')).toBe(false);
    expect(isSecretPrefix(7)).toBe(false);
  });
});
