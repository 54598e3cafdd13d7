// One IPAM assignment at a time per node, across the plugin processes a runtime starts in parallel
// (Calico's plugin does the same with a host file lock, /var/run/calico/ipam.lock).
//
// Why: a node with no block yet (or a full one) that gets eight ADDs at once would see eight times "no
// block with room" and claim eight blocks. IPAM itself stays correct (no address twice), but the node
// would hold blocks it does not need. Serialising the assign step on the host makes the first ADD claim
// the block and the other seven find it.
//
// The lock is a file created with O_EXCL holding the owner's PID. Best effort, as Calico's: a lock whose
// owner is gone (crashed between create and unlink) is taken over; waiting is bounded (`timeoutMs`), and
// after that the work runs anyway (IPAM is still race-free, only less tidy) and the caller is told.

import { mkdir, open, readFile, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface HostLockOptions {
  timeoutMs?: number;
  /** Whether a PID still runs (default: signal 0). */
  alive?: (pid: number) => boolean;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function tryCreate(path: string): Promise<boolean> {
  try {
    const handle = await open(path, 'wx', 0o600);
    await handle.writeFile(String(process.pid));
    await handle.close();
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}

/**
 * Runs `work` holding the lock file `path`. Resolves to its result and whether the lock was held
 * (false: the wait timed out, or the lock's folder could not be made, and `work` ran without it).
 */
export async function withHostLock<T>(
  path: string,
  work: () => Promise<T>,
  options: HostLockOptions = {},
): Promise<{ result: T; locked: boolean }> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const alive = options.alive ?? pidAlive;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const random = options.random ?? Math.random;
  let locked = false;
  try {
    await mkdir(dirname(path), { recursive: true });
    let waited = 0;
    for (let attempt = 0; attempt < 10_000 && waited <= timeoutMs; attempt++) {
      if (await tryCreate(path)) {
        locked = true;
        break;
      }
      const owner = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(owner) && owner > 0 && !alive(owner)) {
        // The owner died holding it: take it over (unlink, then race for the create like everyone).
        await unlink(path).catch(() => undefined);
        continue;
      }
      const pause = 5 + Math.floor(random() * 20);
      await sleep(pause);
      waited += pause;
    }
  } catch {
    locked = false;
  }
  try {
    return { result: await work(), locked };
  } finally {
    if (locked) {
      const owner = (await readFile(path, 'utf8').catch(() => '')).trim();
      if (owner === String(process.pid)) await unlink(path).catch(() => undefined);
    }
  }
}
