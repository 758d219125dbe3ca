/**
 * What a failure to reach, secure or log in to an IMAP server means, and its fix: ONE table, read by the
 * imapflow gateway (the poller's errors) and by the CLI's `check` (which adds what its own probes saw, such as
 * the certificate's names and the CA bundle's subjects).
 */

/** Node's certificate verification codes, grouped by what the admin has to do. */
export type CertificateProblem = 'untrusted' | 'self-signed' | 'name' | 'expired' | 'not-yet-valid';

export const CERTIFICATE_CODES: Readonly<
  Record<string, { readonly problem: CertificateProblem; readonly text: string }>
> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: {
    problem: 'untrusted',
    text: 'is signed by a certificate authority that is not trusted',
  },
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: {
    problem: 'untrusted',
    text: 'is signed by a certificate authority that is not trusted',
  },
  UNABLE_TO_GET_ISSUER_CERT: { problem: 'untrusted', text: 'is signed by a certificate authority that is not trusted' },
  CERT_UNTRUSTED: { problem: 'untrusted', text: 'is signed by a certificate authority that is not trusted' },
  SELF_SIGNED_CERT_IN_CHAIN: { problem: 'untrusted', text: 'chains to a self-signed root that is not trusted' },
  DEPTH_ZERO_SELF_SIGNED_CERT: { problem: 'self-signed', text: 'is self-signed and not trusted' },
  CERT_HAS_EXPIRED: { problem: 'expired', text: 'has expired' },
  CERT_NOT_YET_VALID: { problem: 'not-yet-valid', text: 'is not yet valid' },
  ERR_TLS_CERT_ALTNAME_INVALID: { problem: 'name', text: 'does not match the host name' },
};

/** The fix for each kind of failure, in one sentence. */
export const FIXES = {
  untrusted: "put the server's CA certificate (or its self-signed certificate) into caBundle as PEM.",
  selfSigned: "the server's certificate is self-signed: put that certificate itself into caBundle (PEM).",
  name: 'connect to a host name the certificate is issued for, or set tlsServername to that name.',
  expired: 'renew the server certificate (or check the clock of the server).',
  notYetValid: 'check the clocks of this machine and of the server.',
  handshake:
    'check that the port speaks the configured security ("tls" = implicit TLS, usually 993; "starttls" = plain port with upgrade, usually 143) and supports TLS 1.2 or newer.',
  starttls:
    'use security "tls" with the server\'s implicit-TLS port (usually 993), or enable STARTTLS on the server; never fall back to plaintext.',
  login:
    'check "username" (often the full e-mail address) and "password" in the secret; an admin who changed the password on the mail server must put the new one into the secret too (docs/operations.md, "Rotate the password"). Some providers also require IMAP access to be enabled for the account.',
  unreachable:
    'check host, port and security in the secret, the server, and the network path (security groups, firewall, VPC routing).',
} as const;

/** The fix for a certificate problem. */
export function certificateFix(problem: CertificateProblem): string {
  switch (problem) {
    case 'untrusted':
      return FIXES.untrusted;
    case 'self-signed':
      return FIXES.selfSigned;
    case 'name':
      return FIXES.name;
    case 'expired':
      return FIXES.expired;
    case 'not-yet-valid':
      return FIXES.notYetValid;
  }
}

/** Socket and imapflow codes for a server that cannot be reached or went away. */
export const UNREACHABLE_CODES: Readonly<Record<string, string>> = {
  ENOTFOUND: 'the host name does not resolve (DNS)',
  EAI_AGAIN: 'DNS lookup failed temporarily',
  ECONNREFUSED: 'the connection was refused',
  ECONNRESET: 'the connection was reset',
  EPIPE: 'the connection was closed',
  ETIMEDOUT: 'the connection timed out',
  EHOSTUNREACH: 'the host is unreachable',
  ENETUNREACH: 'the network is unreachable',
  CONNECT_TIMEOUT: 'the connection timed out',
  GREETING_TIMEOUT: 'the server sent no greeting in time',
  UPGRADE_TIMEOUT: 'the STARTTLS upgrade timed out',
  ETIMEOUT: 'the server went silent (socket timeout)',
  NoConnection: 'the connection is closed',
  EConnectionClosed: 'the server closed the connection',
  ClosedAfterConnectText: 'the server closed the connection right after connecting (wrong port or security?)',
  ClosedAfterConnectTLS: 'the server closed the TLS connection right after connecting',
};
