/**
 * Prints the cost tables of docs/fleet.md ("Cost"): fleet mode per mailbox-month at 10, 100, 1,000 and 10,000
 * mailboxes on a one-minute schedule, with shared and with per-mailbox secrets, and with shared secrets behind a
 * host cap that can bind (lib/fleet-cost.ts holds the model).
 *   node --import tsx bench/fleet-cost.ts
 */
import { costPerWritePerPoll, fleetCostTable } from '../lib/fleet-cost.js';

const SIZES = [10, 100, 1_000, 10_000];
for (const table of [
  fleetCostTable(SIZES, 'shared'),
  fleetCostTable(SIZES, 'per-mailbox'),
  fleetCostTable(SIZES, 'shared', true),
])
  process.stdout.write(`${table}\n\n`);
process.stdout.write(
  `each DynamoDB write per poll: $${costPerWritePerPoll().toFixed(4)} per mailbox-month at one poll a minute\n`,
);
