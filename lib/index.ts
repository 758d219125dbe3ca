/**
 * The package's construct library (`import { ImapEventSource } from 'imap-event-source'`): one
 * scheduled poller per watched mailbox folder, for a CDK app of your own. Event types for consumers:
 * `imap-event-source/types`; JSON Schemas: `imap-event-source/schema/<name>.schema.json`.
 */

export { ImapEventSourceDashboard, type ImapEventSourceDashboardProps } from './dashboard.js';
export {
  CHECKPOINT_TABLE_ACTIONS,
  checkpointItemKeys,
  ImapEventSource,
  type ImapEventSourceGrants,
  type ImapEventSourceProps,
  RAW_MESSAGE_ACTIONS,
} from './imap-event-source.js';
