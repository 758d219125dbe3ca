/**
 * Names that cross the Lambda, the CDK stack (alarms, dashboard queries) and the CLI: the one custom
 * metric, its dimensions, and the constant messages of the summary log lines. Change them here only.
 */

/** CloudWatch namespace of the poller's custom metric (Powertools `namespace`). */
export const METRIC_NAMESPACE = 'ImapEventSource';

/** `service` dimension (Powertools `serviceName`, from POWERTOOLS_SERVICE_NAME). */
export const SERVICE_NAME = 'imap-event-source';

/**
 * The heartbeat: Count 1 per successful poll (any outcome but `skipped`), dimensions `service` and
 * `mailboxId`. The only custom metric; the staleness alarm and the dashboard read it.
 */
export const HEARTBEAT_METRIC = 'PollSucceeded';

/** Dimension name of the mailbox id on the heartbeat. */
export const MAILBOX_DIMENSION = 'mailboxId';

/** Message of the summary line of a run that did not fail (fields: the PollSummary, `waiting`). */
export const LOG_POLL_FINISHED = 'Poll finished';

/** Message of the summary line of a failed run (fields: `errorCode`, `error`, `retryable`, `durationMs`). */
export const LOG_POLL_FAILED = 'Poll failed';
