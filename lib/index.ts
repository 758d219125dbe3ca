/**
 * The package's construct library (`import { ImapEventSource } from 'imap-event-source'`): one
 * scheduled poller per watched mailbox folder, for a CDK app of your own. Event types for consumers:
 * `imap-event-source/types`; JSON Schemas: `imap-event-source/schema/<name>.schema.json`.
 */

export { ImapEventSourceDashboard, type ImapEventSourceDashboardProps } from './dashboard.js';
export {
  addDueIndex,
  DISPATCHER_REGISTRY_ACTIONS,
  FLEET_ITEM_KEYS,
  FLEET_MAX_RECEIVE_COUNT,
  FLEET_WORKER_BATCH_SIZE,
  type FleetAlarms,
  type FleetGrants,
  ImapEventSourceFleet,
  type ImapEventSourceFleetProps,
  WORKER_TABLE_ACTIONS,
} from './fleet.js';
export { ImapEventSourceFleetDashboard, type ImapEventSourceFleetDashboardProps } from './fleet-dashboard.js';
export {
  CHECKPOINT_TABLE_ACTIONS,
  checkpointItemKeys,
  ImapEventSource,
  type ImapEventSourceGrants,
  type ImapEventSourceProps,
  RAW_MESSAGE_ACTIONS,
} from './imap-event-source.js';
