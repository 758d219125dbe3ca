import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  costPerWritePerPoll,
  FLEET_COST_ASSUMPTIONS,
  fleetCost,
  fleetCostTable,
  US_EAST_1_PRICES,
} from '../../lib/fleet-cost.js';

const SIZES = [10, 100, 1_000, 10_000];

describe('fleet cost model', () => {
  it('itemises: the lines add up to the total, each non-negative', () => {
    for (const n of SIZES) {
      for (const secrets of ['shared', 'per-mailbox'] as const) {
        const { lines, total } = fleetCost(n, secrets);
        expect(lines.every((l) => l.perMailboxMonth >= 0)).toBe(true);
        expect(lines.reduce((s, l) => s + l.perMailboxMonth, 0)).toBeCloseTo(total, 12);
      }
    }
  });

  it('prices every write per poll at 43,200 writes a month, and a secret per mailbox at $0.40 plus a read per poll', () => {
    expect(costPerWritePerPoll()).toBeCloseTo(43_200 * 0.625e-6, 12);
    const writes = FLEET_COST_ASSUMPTIONS.writes.reduce((s, w) => s + w.units, 0);
    const line = (n: number, secrets: 'shared' | 'per-mailbox', item: RegExp) =>
      fleetCost(n, secrets).lines.find((l) => item.test(l.item))!.perMailboxMonth;
    // Per poll, plus the dispatcher's one write per cycle shared by the fleet.
    expect(line(100, 'shared', /writes/)).toBeCloseTo(writes * costPerWritePerPoll() + costPerWritePerPoll() / 100, 12);
    expect(line(100, 'per-mailbox', /Secrets/)).toBeCloseTo(
      US_EAST_1_PRICES.secretMonth + 43_200 * US_EAST_1_PRICES.secretCall,
      12,
    );
    // Shared: 10,000 mailboxes, 10 secrets, 20 warm containers each reading each secret every 5 minutes.
    expect(line(10_000, 'shared', /Secrets/)).toBeCloseTo((10 * 0.4 + (10 * 20 * 43_200 * 0.05e-4) / 5) / 10_000, 12);
  });

  it('meets the target of $0.10 at 10,000 mailboxes with shared secrets; a host cap that can bind adds 2 writes', () => {
    expect(fleetCost(10_000, 'shared').total).toBeLessThanOrEqual(0.1);
    const capped = fleetCost(10_000, 'shared', FLEET_COST_ASSUMPTIONS, US_EAST_1_PRICES, 1_000, true);
    expect(capped.total - fleetCost(10_000, 'shared').total).toBeCloseTo(2 * costPerWritePerPoll(), 12);
  });

  it('spreads the fixed CloudWatch items over the fleet, and shared secrets cost less than one per mailbox', () => {
    const fixed = (n: number) => fleetCost(n, 'shared').lines.find((l) => /fixed/.test(l.item))!.perMailboxMonth;
    expect(fixed(10)).toBeCloseTo((4 * 0.3 + 7 * 0.1 + 3) / 10, 12);
    expect(fixed(10_000) * 1_000).toBeCloseTo(fixed(10), 12);
    for (const n of SIZES) expect(fleetCost(n, 'shared').total).toBeLessThan(fleetCost(n, 'per-mailbox').total);
    expect(() => fleetCost(0, 'shared')).toThrow(RangeError);
  });

  it('docs/fleet.md shows the tables this model computes', () => {
    const doc = readFileSync(new URL('../../docs/fleet.md', import.meta.url), 'utf8');
    expect(doc).toContain(fleetCostTable(SIZES, 'shared'));
    expect(doc).toContain(fleetCostTable(SIZES, 'per-mailbox'));
    expect(doc).toContain(fleetCostTable(SIZES, 'shared', true));
  });
});
