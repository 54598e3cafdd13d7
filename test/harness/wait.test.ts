// The tests' one polling helper: returns the first real value, gives up at its bound naming what it waited
// for and what it saw last, and stops at once on WaitAborted. No root, no daemons.

import { describe, expect, it } from 'vitest';
import { waitFor, WaitAborted } from './wait.js';

describe('waitFor', () => {
  it('returns the first value that is not undefined, null or false', async () => {
    let calls = 0;
    const values = [undefined, null, false, 0, 'never'];
    expect(await waitFor(() => values[calls++], { intervalMs: 1 })).toBe(0);
    expect(calls).toBe(4);
  });

  it('gives up at its bound, naming what it waited for and the last value', async () => {
    let calls = 0;
    const started = Date.now();
    await expect(waitFor(() => (calls++, false), { what: 'the moon', timeoutMs: 50, intervalMs: 10 })).rejects.toThrow(
      'timed out after 50 ms waiting for the moon (last value: false)',
    );
    expect(calls).toBeGreaterThan(0);
    expect(calls).toBeLessThanOrEqual(50 / 10 + 2); // bounded in count as well as time
    expect(Date.now() - started).toBeGreaterThanOrEqual(50);
  });

  it('reports the last error a probe threw (an assertion is the usual diagnosis)', async () => {
    await expect(
      waitFor(
        () => {
          throw new Error('expected 1 to be 2');
        },
        { what: 'the count', timeoutMs: 20, intervalMs: 5 },
      ),
    ).rejects.toThrow('waiting for the count (last error: expected 1 to be 2)');
  });

  it('stops at once when the probe throws WaitAborted', async () => {
    let calls = 0;
    const aborted = waitFor(
      () => {
        calls++;
        throw new WaitAborted('the daemon exited');
      },
      { timeoutMs: 10_000 },
    );
    await expect(aborted).rejects.toBeInstanceOf(WaitAborted);
    expect(calls).toBe(1);
  });
});
