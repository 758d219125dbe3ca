/**
 * The cost model of fleet mode (docs/fleet.md, "Cost"): cost per mailbox-month, itemised, at a given number of
 * mailboxes polled on one schedule. Pure: prices and assumptions are inputs, `bench/fleet-cost.ts` prints the table.
 */

import { STATUS_HEARTBEAT_MS } from '../functions/fleet/core/status-heartbeat.js';
import { SETTINGS_CACHE_TTL_MS } from '../functions/poller/adapters/secrets-manager-settings.js';

/** us-east-1 list prices, USD, without free tiers. */
export const US_EAST_1_PRICES = {
  /** Lambda arm64, per GB-second and per request. */
  lambdaGbSecond: 0.0000133334,
  lambdaRequest: 0.2 / 1e6,
  /** SQS standard queue, per request (64 KB chunk). */
  sqsRequest: 0.4 / 1e6,
  /** DynamoDB on demand, standard table class: per write and per read request unit. */
  dynamoWrite: 0.625 / 1e6,
  dynamoRead: 0.125 / 1e6,
  /** Secrets Manager: per secret-month and per API call. */
  secretMonth: 0.4,
  secretCall: 0.05 / 10_000,
  /** CloudWatch: log ingestion per GB, custom metric-month, standard alarm-month, dashboard-month. */
  logsGb: 0.5,
  metricMonth: 0.3,
  alarmMonth: 0.1,
  dashboardMonth: 3,
} as const;

/** One DynamoDB operation per poll, in request units. */
export interface DynamoOperation {
  readonly what: string;
  readonly units: number;
}

export interface FleetCostAssumptions {
  /** Polls per mailbox and month (43,200 at one a minute). */
  readonly pollsPerMonth: number;
  /** Worker memory in GB. */
  readonly workerGb: number;
  /** Billed seconds of one empty poll, as if the records of a batch ran one after the other (an upper bound). */
  readonly pollSeconds: number;
  /** Mailboxes per worker invocation (the SQS batch). */
  readonly batchSize: number;
  /** Dispatcher: seconds per cycle, fixed and per mailbox (reading the registry, sending the requests). */
  readonly dispatcherSecondsFixed: number;
  readonly dispatcherSecondsPerMailbox: number;
  readonly dispatcherGb: number;
  /** Cycles per month (one a minute). */
  readonly cyclesPerMonth: number;
  /** SQS requests per poll: send (batch), receive (batch), delete (batch). */
  readonly sqsRequestsPerPoll: number;
  /** The event source's long polls while the queue is empty, per month (fixed). */
  readonly sqsIdleRequestsPerMonth: number;
  /** Write and read request units per poll (itemised). */
  readonly writes: readonly DynamoOperation[];
  readonly reads: readonly DynamoOperation[];
  /** Write units of the dispatcher per cycle for the whole fleet (its cycle item). */
  readonly dispatcherWritesPerCycle: number;
  /** Write units per poll a host cap that can bind adds (a connection slot taken and given back). */
  readonly hostSlotWrites: number;
  /** Size of one registry item in the index (the dispatcher reads every active one per cycle, eventually consistent). */
  readonly registryItemBytes: number;
  /**
   * The pool's size. The dispatcher sends all due mailboxes at once, so about min(pool, mailboxes / batch) containers
   * stay warm, and each reads a shared secret once per settings cache period.
   */
  readonly poolContainers: number;
  /** Polls per settings cache period (SETTINGS_CACHE_TTL_MS, 5 minutes, at one poll a minute). */
  readonly pollsPerSecretRead: number;
  /** Log bytes per poll (summary line, the batch's START/END/REPORT shared) and per dispatcher cycle. */
  readonly logBytesPerPoll: number;
  readonly logBytesPerCycle: number;
  /** Fixed CloudWatch items of the fleet. */
  readonly customMetrics: number;
  readonly alarms: number;
  readonly dashboards: number;
}

/**
 * The assumptions of docs/fleet.md. The operations per poll are those of the runtime (functions/fleet/): a healthy
 * idle poll of an active mailbox whose settings are cached, counted call by call in
 * test/integration/fleet-writes.test.ts. The registry is written only on a first success and after failures; the
 * host's connection slots only when the cap can bind (`hostCapCanBind`), which a tenant of a provider whose limits
 * are per mailbox (Exchange Online, Gmail: the lease keeps each mailbox to one draining connection) avoids by setting
 * `hostConnectionCap` to at least `poolConcurrency` x 10.
 */
export const FLEET_COST_ASSUMPTIONS: FleetCostAssumptions = {
  pollsPerMonth: 43_200,
  workerGb: 0.25,
  // README "Measured": an empty poll took 98 ms median, 119 ms p95 against local servers (bench/poll.ts);
  // plus about 60 ms for the fleet's own table calls (registry, status).
  pollSeconds: 0.18,
  batchSize: 10,
  dispatcherSecondsFixed: 0.3,
  dispatcherSecondsPerMailbox: 0.001,
  dispatcherGb: 0.25,
  cyclesPerMonth: 43_200,
  // SendMessageBatch, ReceiveMessage and DeleteMessageBatch each carry up to 10 messages.
  sqsRequestsPerPoll: 0.3,
  // About five long polls (20 s) in parallel while idle.
  sqsIdleRequestsPerMonth: 5 * 3 * 43_200,
  // No lease: a poll takes it only when it has mail to publish (an idle poll changes nothing).
  writes: [
    {
      what: 'status item: only its heartbeat (every 10 minutes) while the mailbox is idle',
      units: 60_000 / STATUS_HEARTBEAT_MS,
    },
  ],
  reads: [
    { what: 'registry item (eventually consistent)', units: 0.5 },
    { what: 'status item (strongly consistent)', units: 1 },
    { what: 'checkpoint (strongly consistent)', units: 1 },
  ],
  dispatcherWritesPerCycle: 1,
  hostSlotWrites: 2,
  registryItemBytes: 400,
  poolContainers: 20,
  pollsPerSecretRead: SETTINGS_CACHE_TTL_MS / 60_000,
  logBytesPerPoll: 700,
  logBytesPerCycle: 1_000,
  customMetrics: 4,
  alarms: 7,
  dashboards: 1,
};

export type SecretLayout = 'shared' | 'per-mailbox';

/** One line of the cost table: USD per mailbox-month. */
export interface CostLine {
  readonly item: string;
  readonly perMailboxMonth: number;
}

export interface FleetCost {
  readonly mailboxes: number;
  readonly secrets: SecretLayout;
  readonly lines: readonly CostLine[];
  readonly total: number;
}

/**
 * Cost per mailbox-month of `mailboxes` mailboxes on a one-minute schedule: `shared` = the mailboxes share a few
 * secrets (one per `mailboxesPerSecret`, e.g. a tenant's app), `per-mailbox` = one secret each (read on nearly every
 * poll: a container rarely sees the same mailbox twice within its settings cache). `hostCapBinds`: the host
 * connection cap is below what the pool can open, so every poll takes and gives back a slot.
 */
export function fleetCost(
  mailboxes: number,
  secrets: SecretLayout,
  a: FleetCostAssumptions = FLEET_COST_ASSUMPTIONS,
  prices: typeof US_EAST_1_PRICES = US_EAST_1_PRICES,
  mailboxesPerSecret = 1_000,
  hostCapBinds = false,
): FleetCost {
  if (!Number.isInteger(mailboxes) || mailboxes < 1) throw new RangeError('mailboxes must be a positive integer');
  const polls = a.pollsPerMonth;
  const per = (fleetMonth: number) => fleetMonth / mailboxes;
  const sum = (ops: readonly DynamoOperation[]) => ops.reduce((n, op) => n + op.units, 0);

  const dispatcherSeconds = a.dispatcherSecondsFixed + a.dispatcherSecondsPerMailbox * mailboxes;
  const lambda =
    polls * a.workerGb * a.pollSeconds * prices.lambdaGbSecond +
    (polls / a.batchSize) * prices.lambdaRequest +
    per(a.cyclesPerMonth * (dispatcherSeconds * a.dispatcherGb * prices.lambdaGbSecond + prices.lambdaRequest));
  const sqs = polls * a.sqsRequestsPerPoll * prices.sqsRequest + per(a.sqsIdleRequestsPerMonth * prices.sqsRequest);
  const writeUnits = sum(a.writes) + (hostCapBinds ? a.hostSlotWrites : 0);
  const writes =
    polls * writeUnits * prices.dynamoWrite + per(a.cyclesPerMonth * a.dispatcherWritesPerCycle * prices.dynamoWrite);
  // The dispatcher reads every active registry item per cycle: 4 KB per read unit, half for eventual consistency.
  const indexReadUnits = Math.ceil((mailboxes * a.registryItemBytes) / 4096) * 0.5;
  const reads = polls * sum(a.reads) * prices.dynamoRead + per(a.cyclesPerMonth * indexReadUnits * prices.dynamoRead);
  const secretCount = secrets === 'shared' ? Math.ceil(mailboxes / mailboxesPerSecret) : mailboxes;
  const containers = Math.min(a.poolContainers, Math.ceil(mailboxes / a.batchSize));
  const secretReads =
    secrets === 'shared'
      ? Math.min(mailboxes * polls, (secretCount * containers * polls) / a.pollsPerSecretRead)
      : mailboxes * polls;
  const secretCost = per(secretCount * prices.secretMonth + secretReads * prices.secretCall);
  const logs = (polls * a.logBytesPerPoll + per(a.cyclesPerMonth * a.logBytesPerCycle)) * (prices.logsGb / 1e9);
  const cloudwatch = per(
    a.customMetrics * prices.metricMonth + a.alarms * prices.alarmMonth + a.dashboards * prices.dashboardMonth,
  );
  const lines: CostLine[] = [
    { item: 'Lambda (workers and dispatcher: GB-s and requests)', perMailboxMonth: lambda },
    { item: 'SQS requests', perMailboxMonth: sqs },
    {
      item: `DynamoDB writes (${writeUnits} per poll${hostCapBinds ? ', with host slots' : ''}, and 1 per dispatcher cycle)`,
      perMailboxMonth: writes,
    },
    { item: `DynamoDB reads (${sum(a.reads)} per poll, and the index query)`, perMailboxMonth: reads },
    {
      item:
        secrets === 'shared'
          ? `Secrets Manager (one secret per ${mailboxesPerSecret} mailboxes)`
          : 'Secrets Manager (a secret per mailbox)',
      perMailboxMonth: secretCost,
    },
    { item: 'CloudWatch Logs ingestion', perMailboxMonth: logs },
    { item: 'CloudWatch metrics, alarms, dashboard (fixed)', perMailboxMonth: cloudwatch },
  ];
  return { mailboxes, secrets, lines, total: lines.reduce((n, l) => n + l.perMailboxMonth, 0) };
}

/** The cost of one more write request unit per poll, per mailbox-month (the lever that matters most). */
export function costPerWritePerPoll(a = FLEET_COST_ASSUMPTIONS, prices = US_EAST_1_PRICES): number {
  return a.pollsPerMonth * prices.dynamoWrite;
}

/** The markdown table of docs/fleet.md: one column per fleet size. */
export function fleetCostTable(sizes: readonly number[], secrets: SecretLayout, hostCapBinds = false): string {
  const costs = sizes.map((n) =>
    fleetCost(n, secrets, FLEET_COST_ASSUMPTIONS, US_EAST_1_PRICES, undefined, hostCapBinds),
  );
  const money = (v: number) => `$${v < 0.001 ? v.toFixed(5) : v < 1 ? v.toFixed(4) : v.toFixed(2)}`;
  const title = `${secrets} secrets${hostCapBinds ? ', a host cap that can bind' : ''}`;
  const header = `| per mailbox-month (${title}) | ${sizes.map((n) => n.toLocaleString('en-US')).join(' | ')} |`;
  const rule = `| --- | ${sizes.map(() => '---:').join(' | ')} |`;
  const rows = costs[0]!.lines.map(
    (line, i) => `| ${line.item} | ${costs.map((c) => money(c.lines[i]!.perMailboxMonth)).join(' | ')} |`,
  );
  const total = `| **total** | ${costs.map((c) => `**${money(c.total)}**`).join(' | ')} |`;
  return [header, rule, ...rows, total].join('\n');
}
