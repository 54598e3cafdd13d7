// Long-running watcher processes (`ip monitor`, `nft -j monitor`) that end when the agent ends — also
// when it is killed with SIGKILL, which runs no exit hook.
//
// Why this is hard: Node cannot ask the kernel to signal a child when its parent dies (prctl
// PR_SET_PDEATHSIG). A monitor whose parent is gone writes nothing until the next event, so it can live
// on for ever, one more after every crash of the agent (found by the lab test that kill -9s an agent).
// So the monitor runs under a tiny `sh` in a process group of its own: the shell blocks reading its
// stdin, a pipe only the agent holds; when the agent dies the pipe closes, `read` returns, and the shell
// kills the whole group. If the monitor itself ends, the group goes too, so the agent sees `close`.
// Stopping it on purpose is a signal to the group.

import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';

// The monitor's own end is said on stderr (the shell then ends by the group's SIGTERM, not its status).
const TIE_SCRIPT = '{ "$@" </dev/null; echo "$1 exited with status $?" >&2; kill 0; } & read -r _; kill 0';

export type MonitorChild = ChildProcessByStdio<Writable, Readable, Readable>;

/** Children still running: their groups are signalled if this process exits normally without stop(). */
const live = new Set<MonitorChild>();
let exitHooked = false;

function signalGroup(child: MonitorChild, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

/** Starts `command args...` tied to this process; its stdout/stderr are the child's. */
export function spawnMonitor(command: string, args: readonly string[]): MonitorChild {
  if (!exitHooked) {
    exitHooked = true;
    process.on('exit', () => {
      for (const child of live) signalGroup(child, 'SIGTERM');
    });
  }
  const child = spawn('sh', ['-c', TIE_SCRIPT, 'sh', command, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
  });
  live.add(child);
  child.once('close', () => live.delete(child));
  child.stdin.on('error', () => undefined);
  return child;
}

/** Ends the monitor and its shell (the whole group). */
export function stopMonitor(child: MonitorChild): void {
  live.delete(child);
  signalGroup(child, 'SIGTERM');
}
