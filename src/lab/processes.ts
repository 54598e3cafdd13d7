// The lab's processes: commands run to completion (bounded), processes left running detached (recorded in
// the state file as they start) and stopped again by PID — only while the PID still runs what we started —
// and waiting with a deadline that says what it was still waiting for.

import { closeSync, openSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { runCommandSync, startDetached } from '../../felix/index.js';
import { saveState, type LabProcess, type LabState } from './state.js';

const COMMAND_TIMEOUT_MS = 20_000;

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** One setup command through the one runner (felix/command.ts); a failure to run is exit 127 with the reason. */
export function run(
  command: string,
  args: readonly string[],
  options: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): RunResult {
  try {
    const stdin = options.input !== undefined ? { stdin: options.input } : {};
    const result = runCommandSync({
      command,
      args,
      ...stdin,
      env: options.env ?? process.env,
      timeoutMs: options.timeoutMs ?? COMMAND_TIMEOUT_MS,
    });
    return { code: result.code ?? 128, stdout: result.stdout.toString('utf8'), stderr: result.stderr };
  } catch (error) {
    return { code: 127, stdout: '', stderr: (error as Error).message };
  }
}

export function must(
  command: string,
  args: readonly string[],
  options: { input?: string; env?: NodeJS.ProcessEnv } = {},
): string {
  const result = run(command, args, options);
  if (result.code !== 0)
    throw new Error(
      `${command} ${args.join(' ')} failed (exit ${result.code}): ${result.stderr.trim() || result.stdout.trim()}`,
    );
  return result.stdout;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` every `everyMs` until it returns a value that is not false/undefined; throws with `what()` at the deadline. */
export async function waitUntil<T>(
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  what: () => string,
  timeoutMs: number,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 100_000; i++) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() >= deadline) break;
    await sleep(everyMs);
  }
  throw new Error(`gave up after ${Math.round(timeoutMs / 1000)} s waiting for ${what()}`);
}

export function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export function spawnDetached(
  state: LabState,
  role: string,
  marker: string,
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): LabProcess {
  const log = join(state.dir, `${role}.log`);
  const fd = openSync(log, 'a');
  try {
    let pid: number;
    try {
      pid = startDetached(command, args, { logFd: fd, env });
    } catch {
      throw new Error(`could not start ${role}: ${command} ${args.join(' ')}`);
    }
    const entry = { role, pid, marker, log };
    state.processes.push(entry);
    saveState(state);
    return entry;
  } finally {
    closeSync(fd);
  }
}

/** What a log says went wrong, for an error message: its last error line (else its last line), and where it is. */
export function logTail(path: string): string {
  try {
    const lines = readFileSync(path, 'utf8')
      .trim()
      .split('\n')
      .slice(-30)
      .map((l) => l.trim())
      .filter((l) => l !== '');
    const error = [...lines].reverse().find((l) => /error|refus|cannot|failed/i.test(l));
    return `${error ?? lines[lines.length - 1] ?? '(empty log)'} (log: ${path})`;
  } catch {
    return `(no log at ${path})`;
  }
}

/** Running (a zombie — exited, not yet reaped — is not). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/**
 * Whether `pid` still runs what we started (not a reused PID): its command line or its environment
 * contains `marker` (an agent's marker, its control socket, is in its environment: TORTIE_CTL_SOCKET).
 */
function stillOurs(proc: LabProcess): boolean {
  for (const file of ['cmdline', 'environ']) {
    try {
      if (readFileSync(`/proc/${proc.pid}/${file}`, 'utf8').includes(proc.marker)) return true;
    } catch {
      return false;
    }
  }
  return false;
}

export async function stopProcess(proc: LabProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
  if (!stillOurs(proc)) return;
  try {
    process.kill(proc.pid, signal);
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (alive(proc.pid) && stillOurs(proc) && Date.now() < deadline) await sleep(50);
  if (alive(proc.pid) && stillOurs(proc)) {
    try {
      process.kill(proc.pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
}
