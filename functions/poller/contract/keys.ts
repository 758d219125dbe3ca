/**
 * Keys: items in the shared checkpoint table (partition key `pk`) and raw-message objects. The CDK stack
 * scopes each mailbox's role to its own keys with these functions, so the formats live in one place.
 */

/** A (mailbox, folder) checkpoint. The folder is part of the key: a changed folder starts afresh. */
export function checkpointKey(mailboxId: string, folder: string): string {
  return `checkpoint#${mailboxId}#${folder}`;
}

/** The lease that keeps two runs of one mailbox apart. */
export function leaseKey(mailboxId: string): string {
  return `lease#${mailboxId}`;
}

/** The record of the mailbox's last successful and last failed poll (read by `imap-event-source status`). */
export function statusKey(mailboxId: string): string {
  return `status#${mailboxId}`;
}

/** `<mailboxId>/<uidValidity>/<uid>.eml`: one raw-message object per message, stable across retries (a retry overwrites). */
export function rawMessageKey(mailboxId: string, uidValidity: string, uid: number): string {
  return `${mailboxId}/${uidValidity}/${uid}.eml`;
}

/** The sealed, rotated OAuth2 refresh token of a mailbox (provider `refresh-token`; see docs/oauth2.md). */
export function refreshTokenKey(mailboxId: string): string {
  return `oauth2-refresh-token#${mailboxId}`;
}
