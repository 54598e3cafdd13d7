// A monitor process started by felix ends with its parent, even a parent killed with SIGKILL (no exit
// hook runs then), and when stopped on purpose; a monitor that ends by itself is seen as closed.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawnMonitor, stopMonitor } from '../../felix/monitor-child.js';
import { waitFor } from '../harness/wait.js';

const BUILT = resolve('dist/felix/monitor-child.js');

/** PIDs of `sleep <marker>` processes (the marker makes them ours). */
function sleepers(marker: string): string[] {
  return spawnSync('pgrep', ['-f', `^sleep ${marker}$`], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter((l) => l !== '');
}

async function gone(marker: string): Promise<boolean> {
  return waitFor(() => sleepers(marker).length === 0, {
    what: `no sleep ${marker} left`,
    timeoutMs: 5_000,
    intervalMs: 50,
  });
}

describe('spawnMonitor', () => {
  it.skipIf(!existsSync(BUILT))('the monitor ends when its parent is killed with SIGKILL', async () => {
    const marker = `${300 + (process.pid % 1000)}.25`;
    const parent = spawn(
      process.execPath,
      [
        '-e',
        `import(${JSON.stringify(BUILT)}).then((m) => { m.spawnMonitor('sleep', [${JSON.stringify(marker)}]); console.log('up'); setInterval(() => {}, 1000); })`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((r) => parent.stdout!.once('data', () => r()));
    await waitFor(() => sleepers(marker).length > 0, {
      what: `sleep ${marker} running`,
      timeoutMs: 2_000,
      intervalMs: 20,
    });
    expect(sleepers(marker)).toHaveLength(1);
    parent.kill('SIGKILL');
    expect(await gone(marker)).toBe(true);
  });

  it('stopMonitor ends it; a monitor that exits by itself closes', async () => {
    const marker = `${300 + (process.pid % 1000)}.5`;
    const child = spawnMonitor('sleep', [marker]);
    await waitFor(() => sleepers(marker).length > 0, {
      what: `sleep ${marker} running`,
      timeoutMs: 2_000,
      intervalMs: 20,
    });
    expect(sleepers(marker)).toHaveLength(1);
    const closed = new Promise((r) => child.once('close', r));
    stopMonitor(child);
    await closed;
    expect(await gone(marker)).toBe(true);
    const short = spawnMonitor('true', []);
    await new Promise((r) => short.once('close', r));
  });
});
