// Values the global setup (test/support/global-setup.ts) provides to every test file via `inject`.
import type { DovecotInfo } from './dovecot.js';
import type { MotoInfo } from './moto.js';
import type { TlsMaterial } from './tls.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Test CA, server certs, wrong CA. */
    tls: TlsMaterial;
    /** Dovecot with TLS: implicit TLS on `imapsPort`, STARTTLS on `imapPort`; '/' delimiter. */
    dovecot: DovecotInfo;
    /** Dovecot with `ssl = no`: its plain port does not offer STARTTLS; '/' delimiter. */
    dovecotNoTls: DovecotInfo;
    /** The shared moto_server. */
    moto: MotoInfo;
  }
}
