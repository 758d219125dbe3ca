/** What is in a caBundle: each certificate's subject, validity and whether it parses at all. */
import { X509Certificate } from 'node:crypto';
import { splitPemBundle } from '../functions/poller/core/settings.js';
import { formatName } from './check/probes.js';

export interface BundleEntry {
  /** 1-based position in the bundle. */
  readonly index: number;
  readonly subject?: string;
  readonly issuer?: string;
  readonly validTo?: Date;
  readonly isCa?: boolean;
  /** Set when the PEM block is not a parseable X.509 certificate. */
  readonly error?: string;
}

export function inspectCaBundle(bundle: string | undefined): BundleEntry[] {
  return splitPemBundle(bundle ?? '').map((pem, i) => {
    try {
      const cert = new X509Certificate(pem);
      return {
        index: i + 1,
        subject: formatName(cert.subject),
        issuer: formatName(cert.issuer),
        validTo: new Date(cert.validTo),
        isCa: cert.ca,
      };
    } catch {
      return { index: i + 1, error: 'is not a parseable X.509 certificate (broken base64 or line breaks?)' };
    }
  });
}
