/**
 * One error hierarchy for the poller. Every error carries:
 * - `code`: a stable machine-readable identifier (used in logs, metrics and the CLI),
 * - `retryable`: whether running the same poll again later can succeed without a human,
 * - `hint`: the fix, in one sentence, where there is one.
 * Messages never contain secrets (passwords, secret values) and never raw server payloads.
 */
export interface ErrorDetails {
  readonly cause?: unknown;
  /** The fix, in one sentence. */
  readonly hint?: string;
  /** Overrides the class's default (`retryableByDefault`). */
  readonly retryable?: boolean;
}

export abstract class ImapEventSourceError extends Error {
  abstract readonly code: string;
  /** Whether the class's errors can go away by themselves (a later poll may succeed). */
  static readonly retryableByDefault: boolean = false;
  readonly retryable: boolean;
  readonly hint?: string;

  constructor(message: string, options: ErrorDetails = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.hint = options.hint;
    this.retryable = options.retryable ?? (new.target as unknown as typeof ImapEventSourceError).retryableByDefault;
  }

  /** Message plus the fix: what a user should read. */
  get explanation(): string {
    return this.hint ? `${this.message} Fix: ${this.hint}` : this.message;
  }
}

/** The Lambda's environment (or the CLI's options) is incomplete or invalid. */
export class ConfigurationError extends ImapEventSourceError {
  readonly code = 'CONFIGURATION_INVALID';
}

/** The mailbox secret is not valid JSON, misses a field, has an invalid or an unknown field. */
export class SettingsValidationError extends ImapEventSourceError {
  readonly code = 'SETTINGS_INVALID';
  /** Each problem as `field: rule`; never contains values. */
  readonly problems: readonly string[];
  constructor(problems: readonly string[], options: { source?: string } = {}) {
    super(`The mailbox settings${options.source ? ` in ${options.source}` : ''} are invalid: ${problems.join('; ')}.`, {
      hint: 'correct the listed fields (see "secret format" in the README); `imap-event-source secret template` prints a valid example.',
    });
    this.problems = problems;
  }
}

/** The secret could not be read (missing, access denied, KMS). */
export class SecretAccessError extends ImapEventSourceError {
  readonly code = 'SECRET_UNAVAILABLE';
}

/** DNS failure, connection refused, reset or timed out: the server could not be reached or went away. */
export class ImapConnectionError extends ImapEventSourceError {
  readonly code = 'IMAP_UNREACHABLE';
  static override readonly retryableByDefault = true;
}

/** The server's certificate was not accepted (unknown CA, wrong host name, expired ...). */
export class TlsCertificateError extends ImapEventSourceError {
  readonly code = 'TLS_CERTIFICATE_REJECTED';
  /** Node's TLS error code, e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE, ERR_TLS_CERT_ALTNAME_INVALID. */
  readonly tlsCode: string | undefined;
  constructor(message: string, options: ErrorDetails & { tlsCode?: string } = {}) {
    super(message, options);
    this.tlsCode = options.tlsCode;
  }
}

/** `security: "starttls"` was configured but the server does not offer STARTTLS. */
export class StartTlsUnavailableError extends ImapEventSourceError {
  readonly code = 'STARTTLS_UNAVAILABLE';
}

/**
 * Data arrived after the server's STARTTLS OK and before the TLS handshake (RFC 3501 6.2.1 forbids it): a possible
 * man-in-the-middle injecting plaintext. Not retried silently: someone should look at the network path.
 */
export class StartTlsInjectionError extends ImapEventSourceError {
  readonly code = 'STARTTLS_INJECTION';
}

/** The server rejected the user name or password (or, with OAuth2, the access token for this mailbox). */
export class ImapAuthError extends ImapEventSourceError {
  readonly code = 'IMAP_AUTH_FAILED';
}

/**
 * The OAuth2 token endpoint refused the credential (`invalid_client`, `invalid_grant`, `unauthorized_client`,
 * AADSTS codes ...): only an admin can fix it. `providerCode` is the provider's own code, e.g. `invalid_client AADSTS7000215`.
 */
export class OAuth2TokenError extends ImapEventSourceError {
  readonly code = 'OAUTH2_TOKEN_REFUSED';
  readonly providerCode: string | undefined;
  constructor(message: string, options: ErrorDetails & { providerCode?: string } = {}) {
    super(message, options);
    this.providerCode = options.providerCode;
  }
}

/** The OAuth2 token endpoint is unreachable, timed out, answered 5xx/429, or sent a response we cannot use. */
export class OAuth2EndpointError extends ImapEventSourceError {
  readonly code = 'OAUTH2_TOKEN_UNAVAILABLE';
  static override readonly retryableByDefault = true;
}

/** The settings ask for OAuth2, but the IMAP server offers neither AUTH=OAUTHBEARER nor AUTH=XOAUTH2. */
export class OAuth2UnsupportedError extends ImapEventSourceError {
  readonly code = 'IMAP_OAUTH2_UNSUPPORTED';
}

/** The configured folder does not exist on the server. */
export class FolderNotFoundError extends ImapEventSourceError {
  readonly code = 'FOLDER_NOT_FOUND';
  readonly folder: string;
  readonly existing: readonly string[];
  constructor(folder: string, existing: readonly string[], options: { hint?: string; cause?: unknown } = {}) {
    super(`The folder "${folder}" does not exist on the IMAP server.`, options);
    this.folder = folder;
    this.existing = existing;
  }
}

/** The server answered in a way we cannot work with (NO/BAD, unexpected state). */
export class ImapProtocolError extends ImapEventSourceError {
  readonly code = 'IMAP_PROTOCOL_ERROR';
  static override readonly retryableByDefault = true;
}

/** Another run advanced or created the checkpoint since we read it: our write was refused. */
export class CheckpointConflictError extends ImapEventSourceError {
  readonly code = 'CHECKPOINT_CONFLICT';
  static override readonly retryableByDefault = true;
}

/** The checkpoint table is missing, not accessible, or throttling beyond our retries. */
export class CheckpointStoreError extends ImapEventSourceError {
  readonly code = 'CHECKPOINT_STORE_FAILED';
  static override readonly retryableByDefault = true;
}

/** EventBridge did not accept some entries after all retries, or the bus is missing / not accessible. */
export class EventPublishError extends ImapEventSourceError {
  readonly code = 'EVENT_PUBLISH_FAILED';
  static override readonly retryableByDefault = true;
}

/** Storing the raw message in S3 failed. */
export class RawStorageError extends ImapEventSourceError {
  readonly code = 'RAW_STORAGE_FAILED';
  static override readonly retryableByDefault = true;
}

export function isImapEventSourceError(error: unknown): error is ImapEventSourceError {
  return error instanceof ImapEventSourceError;
}

/** A short, secret-free description of any thrown value, for logs. */
export function describeError(error: unknown): { code: string; message: string; retryable: boolean } {
  if (isImapEventSourceError(error)) {
    return { code: error.code, message: error.explanation, retryable: error.retryable };
  }
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return { code: 'UNEXPECTED', message, retryable: true };
}
