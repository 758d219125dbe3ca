/**
 * The mailbox secret (contract 1) parsed and validated with its keys and certificates checked by node:crypto: the
 * core's validation (core/settings.ts, core/oauth2-settings.ts) with the PEM parsing it cannot do itself. Used by the
 * Secrets Manager adapter and the CLI; the validation messages are the core's.
 */
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { type OAuth2Settings, type PemChecks, validateOAuth2 } from '../core/oauth2-settings.js';
import { type MailboxSettings, parseSettings, validateSettings } from '../core/settings.js';

export const nodePemChecks: PemChecks = {
  isCertificate(pem) {
    try {
      new X509Certificate(pem);
      return true;
    } catch {
      return false;
    }
  },
  privateKeyType(pem) {
    try {
      return createPrivateKey(pem).asymmetricKeyType ?? '';
    } catch {
      return undefined;
    }
  },
  keyMatchesCertificate(certificate, privateKey) {
    const derived = createPublicKey(createPrivateKey(privateKey)).export({ type: 'spki', format: 'der' });
    return new X509Certificate(certificate).publicKey.export({ type: 'spki', format: 'der' }).equals(derived);
  },
};

/** Parses the secret string (JSON) and validates it (see core/settings.ts parseSettings). */
export function parseMailboxSettings(secretString: string, source?: string): MailboxSettings {
  return parseSettings(secretString, nodePemChecks, source);
}

/** Validates a decoded secret (see core/settings.ts validateSettings). */
export function validateMailboxSettings(input: unknown, source?: string): MailboxSettings {
  return validateSettings(input, nodePemChecks, source);
}

/** Validates the secret's `oauth2` value, pushing problems (see core/oauth2-settings.ts validateOAuth2). */
export function validateOAuth2Settings(raw: unknown, problems: string[]): OAuth2Settings | undefined {
  return validateOAuth2(raw, problems, nodePemChecks);
}
