/**
 * The mailbox id: `mailboxId` of every event, part of the checkpoint, lease and raw-message keys, and (in the CDK
 * app) of resource and output names. One rule for cdk.json, the construct, the Lambda's MAILBOX_ID and the CLI.
 */

/** Lowercase letters and digits, single inner hyphens, starting with a letter. */
const MAILBOX_ID = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;
export const MAILBOX_ID_MAX_LENGTH = 32;

/** The rule in words, for error messages (never with the value). */
export const MAILBOX_ID_RULE = `1 to ${MAILBOX_ID_MAX_LENGTH} characters: lowercase letters, digits and single inner hyphens, starting with a letter`;

export function isMailboxId(value: unknown): value is string {
  return typeof value === 'string' && value.length <= MAILBOX_ID_MAX_LENGTH && MAILBOX_ID.test(value);
}

/**
 * A valid mailbox id made from any name (a file name, a secret id): lowercased, other characters as hyphens,
 * starting with a letter, cut to the maximum length; `fallback` when nothing is left.
 */
export function toMailboxId(name: string, fallback = 'local'): string {
  const id = name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^[^a-z]+/, '')
    .slice(0, MAILBOX_ID_MAX_LENGTH)
    .replace(/-+$/, '');
  return isMailboxId(id) ? id : fallback;
}
