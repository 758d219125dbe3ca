/**
 * Types for consumers of our events (contract 2):
 *
 *   import type { MessageReceivedDetail } from 'imap-event-source/types';
 *
 * JSON Schemas of the same details: schema/message-received.schema.json, schema/mailbox-reset.schema.json.
 */
export type {
  AttachmentInfo,
  MailboxResetDetail,
  MessageReceivedDetail,
} from '../functions/poller/core/event-detail.js';
export type { Address } from '../functions/poller/core/types.js';
export { DETAIL_TYPE_MESSAGE, DETAIL_TYPE_RESET } from '../functions/poller/core/types.js';
