// Daemons started by tests: spawn, remember the PID, log to a file, stop that PID and nothing else.
//
// Why this is hard: a failing test must not leave a bgpd listening on 127.0.x.y:179 for the next run.
// Every process and temp dir started here goes into one registry; `stopAll()` (call it from afterAll)
// and a process 'exit' hook kill what is left, by PID only (SIGTERM, then SIGKILL after a bounded wait).
// Daemons write stdout/stderr straight to a file descriptor, so no pipe keeps the test's event loop busy.

import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly logPath: string;
  /** Resolves with the exit code (or the signal name) when the process ends. */
  readonly exited: Promise<number | string>;
  isRunning(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs` (default 3000); resolves once the PID is gone. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL now (a crash, for restart tests); resolves once the PID is gone. */
  kill9(): Promise<void>;
  /** The log so far (stdout and stderr together). */
  log(): string;
}

export interface StartProcessOptions {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  /** Where the log file goes (created by the caller, usually with makeTempDir). */
  readonly dir: string;
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
}

const running = new Set<ManagedProcess>();
const tempDirs = new Set<string>();

/** True while a process with this PID exists (and is not a zombie we can still signal: good enough here). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie (exited, not yet reaped) still answers signal 0; /proc tells the difference.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return false;
  }
}

/** A fresh temp dir, removed by removeTempDir() or stopAll() / process exit. */
export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `tortie-${prefix}-`));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  tempDirs.delete(dir);
  rmSync(dir, { recursive: true, force: true });
}

export function startProcess(options: StartProcessOptions): ManagedProcess {
  const logPath = join(options.dir, `${options.name}.log`);
  const fd = openSync(logPath, 'a');
  const child = spawn(options.command, [...options.args], {
    cwd: options.cwd ?? options.dir,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  if (child.pid === undefined) {
    throw new Error(`could not start ${options.name} (${options.command}): no PID (is it installed and executable?)`);
  }
  const pid = child.pid;
  let exitValue: number | string | undefined;
  const exited = new Promise<number | string>((resolve) => {
    child.on('exit', (code, signal) => {
      exitValue = code ?? signal ?? 'unknown';
      running.delete(managed);
      resolve(exitValue);
    });
    child.on('error', (err) => {
      exitValue = `spawn error: ${err.message}`;
      running.delete(managed);
      resolve(exitValue);
    });
  });

  async function signalAndWait(signal: NodeJS.Signals, waitMs: number): Promise<boolean> {
    if (exitValue !== undefined) return true;
    try {
      process.kill(pid, signal);
    } catch {
      return true;
    }
    const timeout = new Promise<false>((resolve) => setTimeout(() => resolve(false), waitMs).unref());
    return Promise.race([exited.then(() => true as const), timeout]);
  }

  const managed: ManagedProcess = {
    name: options.name,
    pid,
    logPath,
    exited,
    isRunning: () => exitValue === undefined && pidAlive(pid),
    async stop(graceMs = 3000) {
      if (await signalAndWait('SIGTERM', graceMs)) return;
      if (await signalAndWait('SIGKILL', 5000)) return;
      throw new Error(`${options.name} (PID ${pid}) did not exit after SIGTERM and SIGKILL`);
    },
    async kill9() {
      if (await signalAndWait('SIGKILL', 5000)) return;
      throw new Error(`${options.name} (PID ${pid}) did not exit after SIGKILL`);
    },
    log: () => {
      try {
        return readFileSync(logPath, 'utf8');
      } catch {
        return '';
      }
    },
  };
  running.add(managed);
  return managed;
}

/** Stops every process started here that is still running, then removes every temp dir. */
export async function stopAll(): Promise<void> {
  const all = [...running];
  const results = await Promise.allSettled(all.map((p) => p.stop(2000)));
  for (const dir of [...tempDirs]) removeTempDir(dir);
  const failed = results.filter((r) => r.status === 'rejected');
  if (failed.length > 0) {
    throw new Error(
      `stopAll: ${failed.length} process(es) did not stop: ${failed.map((f) => String((f as PromiseRejectedResult).reason)).join('; ')}`,
    );
  }
}

/** PIDs still running, for tests that check nothing was left behind. */
export function runningPids(): number[] {
  return [...running].map((p) => p.pid);
}

// Last resort when a test run ends without afterAll (a crash, a timeout): kill by PID, synchronously.
process.once('exit', () => {
  for (const p of running) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

// The one polling helper lives in wait.ts (no side effects, so unit tests import it too).
export { waitFor, WaitAborted, type WaitOptions } from './wait.js';

/** Stops a child the test spawned itself, by its PID: SIGTERM, then SIGKILL after `graceMs` (default 5 s). */
export async function stopChild(child: import('node:child_process').ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  process.kill(child.pid, 'SIGTERM');
  const timer = setTimeout(() => {
    if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
  }, graceMs);
  await exited;
  clearTimeout(timer);
}
