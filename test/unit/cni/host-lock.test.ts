// The host IPAM lock: work under it never overlaps, a lock left by a dead process is taken over, a lock
// held too long lets the work run anyway (and says so), and the file is gone afterwards.

import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { withHostLock } from '../../../src/cni/host-lock.js';

const dir = mkdtempSync(join(tmpdir(), 'tortie-host-lock-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('withHostLock', () => {
  it('serialises work: eight at once never overlap, each holds the lock, the file is removed', async () => {
    const path = join(dir, 'a', 'ipam-node-1.lock');
    let inside = 0;
    let most = 0;
    const runs = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        withHostLock(path, async () => {
          inside++;
          most = Math.max(most, inside);
          await new Promise((resolve) => setTimeout(resolve, 5));
          inside--;
          return i;
        }),
      ),
    );
    expect(runs.map((r) => r.result)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(runs.every((r) => r.locked)).toBe(true);
    expect(most).toBe(1);
    expect(existsSync(path)).toBe(false);
  });

  it('takes over a lock whose owner is gone', async () => {
    const path = join(dir, 'stale.lock');
    writeFileSync(path, '999999');
    const run = await withHostLock(path, async () => 'done', { alive: (pid) => pid !== 999999 });
    expect(run).toEqual({ result: 'done', locked: true });
    expect(existsSync(path)).toBe(false);
  });

  it('runs the work anyway after the timeout when a live process holds the lock, and leaves its lock alone', async () => {
    const path = join(dir, 'held.lock');
    writeFileSync(path, '1');
    let slept = 0;
    const run = await withHostLock(path, async () => 'anyway', {
      timeoutMs: 100,
      alive: () => true,
      sleep: async (ms) => void (slept += ms),
      random: () => 0,
    });
    expect(run).toEqual({ result: 'anyway', locked: false });
    expect(slept).toBeGreaterThan(100);
    expect(existsSync(path)).toBe(true);
  });
});
