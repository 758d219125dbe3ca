import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../../functions/poller/core/backoff.js';
import { prng } from './fakes.js';

describe('backoffDelay (capped exponential, full jitter)', () => {
  it.each([
    [0, 100],
    [1, 200],
    [2, 400],
    [3, 800],
    [5, 3_200],
    [6, 5_000],
    [20, 5_000],
    [1_000, 5_000],
  ])('attempt %d: ceiling %d ms', (attempt, ceiling) => {
    expect(backoffDelay(attempt, 0)).toBe(0);
    expect(backoffDelay(attempt, 0.5)).toBe(Math.floor(ceiling / 2));
    expect(backoffDelay(attempt, 0.999999)).toBe(ceiling - 1);
  });

  it('treats a negative attempt like the first', () => {
    expect(backoffDelay(-3, 0.5)).toBe(50);
  });

  it('uses the given base and cap', () => {
    expect(backoffDelay(0, 0.5, 200, 5_000)).toBe(100);
    expect(backoffDelay(3, 0.5, 200, 1_000)).toBe(500);
  });

  it('always returns an integer in [0, ceiling)', () => {
    const random = prng(1);
    for (let i = 0; i < 1_000; i++) {
      const attempt = Math.floor(random() * 12);
      const r = random();
      const delay = backoffDelay(attempt, r);
      expect(Number.isInteger(delay)).toBe(true);
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThan(Math.min(5_000, 100 * 2 ** attempt));
    }
  });
});
