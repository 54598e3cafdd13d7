// One bounded child process, for every short-lived command tortie runs: `ip` (iproute2.ts, and ipip/'s
// tunl0 through iproute2.ts `ipCommand`), `nft` (nft.ts), the `sh` that reads and writes /proc/sys
// (kernel-settings.ts), the CNI plugin's `ip`/`nsenter` and the plugin itself (src/cni/), and the lab's
// setup commands and pings (src/lab/). Long-running watchers (`ip monitor`, `nft -j monitor`) are
// monitor-child.ts's. The lab's daemons are not commands either (nothing waits for their end):
// `startDetached` starts one in its own process group, output to a log file, and leaves it running.
//
//   startCommand(spec)  spawns `command args...` (an argv, never a shell line) at once; its stdin stays open
//                       (`write` some, `end` with the rest), so a caller can start a process before it knows
//                       all it will write — the route table's one `ip -batch` reads the kernel, then takes
//                       the route lines decided from what it read;
//   runCommand(spec)    start, write `stdin`, end: the whole run.
//   runCommandSync(spec) the same bounds and wording, blocking (spawnSync): for code that is synchronous
//                       all through (the lab's setup steps); stdout in memory.
//
// Every run is bounded: after `timeoutMs` the child is killed (SIGKILL, by its own PID) and the run
// rejects; stdout and stderr are collected up to `maxOutputBytes` each (more kills the child), or stdout
// goes to an unlinked scratch file read back after the exit (`stdout: 'scratch'`; `stdoutSoFar()` reads
// it while the child still runs). Failures to run reject with an error that names the command line:
// `cannot run "ip": spawn ip ENOENT`, `ip -n x route show took longer than 200 ms and was killed`; a
// non-zero exit is a result, not a rejection (callers read their tool's stderr: ip -batch line numbers,
// nft script positions), and `failureMessage` words it with the command line and stderr. Errors are made
// by the caller's `makeError`, so each keeps its type (KernelError, NftError).
//
// Why this is hard: a child must never outlive its caller's patience (a hung `ip` on a broken netns, an
// nft waiting on a lock), must not fill memory (a runaway output), and must be killed by its own PID
// only. And a command that prints one line per route (ip flushes after every route it prints) reaches
// Node through a pipe as thousands of small chunks: 10,000 routes cost ~20 ms of Node's CPU that way
// against ~3 ms read back from a file — so bulk readers ask for the scratch file. The scratch file is
// opened and read with synchronous calls: a private file, microseconds each, where every await before the
// spawn is a turn of the event loop the command would wait for.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, fstatSync, openSync, readSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMissingProgramError, missingProgramInStderr, missingProgramMessage } from './programs.js';

export interface CommandSpec {
  /** The program: a name looked up in PATH, or a path. */
  command: string;
  args: readonly string[];
  /** The child is killed and the run rejects after this long (ms, > 0). */
  timeoutMs: number;
  /**
   * `pipe` (the default): collected in memory. `scratch`: into a new, already unlinked file in the temporary
   * directory, read back after the exit — a pipe when no such file can be made (a read-only /tmp).
   */
  stdout?: 'pipe' | 'scratch';
  /** stdout and stderr are each collected up to this many bytes; more kills the child (default 256 MiB). */
  maxOutputBytes?: number;
  /** The error type the caller throws (KernelError, NftError, ...); Error by default. */
  makeError?: (message: string) => Error;
  /** Called with each piece of stderr as it arrives (it is collected all the same). */
  onStderr?: (chunk: Buffer) => void;
  /** The child's environment (default this process's). */
  env?: NodeJS.ProcessEnv;
}

export interface CommandResult {
  /** The exit status; null when the child ended by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

/** A started command whose stdin is still open. */
export interface RunningCommand {
  /** `ip -n x route show`: the command line, for messages. */
  readonly line: string;
  /** Writes to the child's stdin now, leaving it open. */
  write(chunk: string): void;
  /**
   * Writes `input` (a string, or chunks written as an iterable yields them), closes stdin and waits for the
   * exit. Call once.
   */
  end(input?: string | Iterable<string>): Promise<CommandResult>;
  /** What the child wrote to stdout until now: the scratch file's content, or what came through the pipe. */
  stdoutSoFar(): Buffer;
  /** Ends the child now (SIGKILL) when it is still running; `end()` then resolves with the signal. */
  kill(): void;
  /** Whether the run is over: exited, killed, or failed to start. */
  readonly finished: boolean;
  /** The run's end, without ending stdin (what `end()` returns, for a caller that only watches). */
  readonly exited: Promise<CommandResult>;
  /** Whether the child was killed for its time bound. */
  readonly timedOut: boolean;
}

const DEFAULT_MAX_OUTPUT = 256 * 1024 * 1024;

/** The command line as people read it in messages (arguments with spaces quoted). */
export function commandLine(command: string, args: readonly string[]): string {
  return [command, ...args]
    .map((word) => (word === '' || /[\s"'\\]/.test(word) ? JSON.stringify(word) : word))
    .join(' ');
}

/** `<line> failed (exit 2): <stderr>` (stderr trimmed to 300 characters), for a run that did not exit 0. */
export function failureMessage(line: string, result: CommandResult): string {
  const status = result.code !== null ? `exit ${result.code}` : `signal ${result.signal ?? 'unknown'}`;
  const stderr = result.stderr.trim();
  const missing = missingProgramInStderr(stderr);
  if (missing !== null) return `${line} failed (${status}): ${missing}`;
  return `${line} failed (${status})${stderr === '' ? '' : `: ${stderr.slice(0, 300)}`}`;
}

/** Spawns the command now, stdin open (`stdin: 'ignore'` gives it /dev/null instead: no input then). */
export function startCommand(spec: CommandSpec & { stdin?: 'pipe' | 'ignore' }): RunningCommand {
  if (!(spec.timeoutMs > 0))
    throw new Error(`command timeoutMs is ${spec.timeoutMs}; expected a number of milliseconds > 0`);
  const makeError = spec.makeError ?? ((message: string) => new Error(message));
  const maxOutput = spec.maxOutputBytes ?? DEFAULT_MAX_OUTPUT;
  const line = commandLine(spec.command, spec.args);
  let fd = spec.stdout === 'scratch' ? openScratchFile() : null;
  let child: ChildProcess;
  try {
    child = spawn(spec.command, [...spec.args], {
      stdio: [spec.stdin ?? 'pipe', fd ?? 'pipe', 'pipe'],
      ...(spec.env !== undefined ? { env: spec.env } : {}),
    });
  } catch (error) {
    if (fd !== null) closeSync(fd);
    throw error;
  }
  const closeFile = (): void => {
    if (fd !== null) closeSync(fd);
    fd = null;
  };

  let settled = false;
  let timedOut = false;
  // The time bound runs from the spawn (the callback runs later, when fail and kill below exist).
  const timer = setTimeout(() => {
    timedOut = true;
    kill();
    fail(`${line} took longer than ${spec.timeoutMs} ms and was killed`);
  }, spec.timeoutMs);
  let resolveRun: (result: CommandResult) => void = () => undefined;
  let rejectRun: (error: Error) => void = () => undefined;
  const done = new Promise<CommandResult>((resolve, reject) => {
    resolveRun = resolve;
    rejectRun = reject;
  });
  // Nobody may be waiting yet (end() not called): a failure must not be an unhandled rejection meanwhile.
  done.catch(() => undefined);
  const fail = (message: string): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    closeFile();
    rejectRun(makeError(message));
  };
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    child.stdin?.destroy();
  };

  /** Collects one output stream, up to maxOutput bytes; more kills the child. */
  const collect = (
    stream: NodeJS.ReadableStream | null,
    name: 'stdout' | 'stderr',
    onChunk?: (b: Buffer) => void,
  ): Buffer[] => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    stream?.on('data', (b: Buffer) => {
      bytes += b.length;
      if (bytes > maxOutput) {
        kill();
        fail(`${line} printed more than ${maxOutput} bytes on ${name} and was killed`);
        return;
      }
      chunks.push(b);
      onChunk?.(b);
    });
    return chunks;
  };
  const out = collect(child.stdout, 'stdout');
  const err = collect(child.stderr, 'stderr', spec.onStderr);
  child.on('error', (e) => {
    kill();
    fail(`cannot run "${spec.command}": ${isMissingProgramError(e) ? missingProgramMessage(spec.command) : e.message}`);
  });
  child.on('close', (code, signal) => {
    clearTimeout(timer);
    if (settled) return;
    let stdout: Buffer;
    if (fd !== null) {
      const size = fstatSync(fd).size;
      if (size > maxOutput) {
        fail(`${line} printed more than ${maxOutput} bytes on stdout`);
        return;
      }
      stdout = readFrom(fd, size);
      closeFile();
    } else {
      stdout = Buffer.concat(out);
    }
    settled = true;
    resolveRun({ code, signal, stdout, stderr: Buffer.concat(err).toString('utf8') });
  });
  child.stdin?.on('error', () => undefined); // a child that exits early: its exit status says why

  let ended = false;
  return {
    line,
    write(chunk) {
      if (ended) throw new Error(`${line}: write() after end()`);
      child.stdin?.write(chunk);
    },
    end(input) {
      if (ended) throw new Error(`${line}: end() called twice`);
      ended = true;
      const stdin = child.stdin;
      if (stdin !== null && stdin !== undefined) {
        if (input === undefined || typeof input === 'string') {
          stdin.end(input ?? '');
        } else {
          for (const chunk of input) stdin.write(chunk);
          stdin.end();
        }
      } else if (input !== undefined && input !== '') {
        kill();
        fail(`${line}: input given to a command started without stdin`);
      }
      return done;
    },
    stdoutSoFar() {
      if (fd === null) return Buffer.concat(out);
      return readFrom(fd, fstatSync(fd).size);
    },
    kill,
    get finished() {
      return settled;
    },
    exited: done,
    get timedOut() {
      return timedOut;
    },
  };
}

/** Runs the command to its end: `stdin` is written and closed (absent: the child's stdin is /dev/null). */
export function runCommand(spec: CommandSpec & { stdin?: string | Iterable<string> }): Promise<CommandResult> {
  const running = startCommand({ ...spec, stdin: spec.stdin === undefined ? 'ignore' : 'pipe' });
  return running.end(spec.stdin);
}

/**
 * runCommand, blocking the event loop until the child ends (spawnSync): the same time bound (SIGKILL),
 * output bound and wording of failures to run. Only for code that is synchronous all through.
 */
export function runCommandSync(spec: Omit<CommandSpec, 'stdout' | 'onStderr'> & { stdin?: string }): CommandResult {
  if (!(spec.timeoutMs > 0))
    throw new Error(`command timeoutMs is ${spec.timeoutMs}; expected a number of milliseconds > 0`);
  const makeError = spec.makeError ?? ((message: string) => new Error(message));
  const maxOutput = spec.maxOutputBytes ?? DEFAULT_MAX_OUTPUT;
  const line = commandLine(spec.command, spec.args);
  const result = spawnSync(spec.command, [...spec.args], {
    ...(spec.stdin !== undefined ? { input: spec.stdin } : {}),
    stdio: [spec.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    timeout: spec.timeoutMs,
    killSignal: 'SIGKILL',
    maxBuffer: maxOutput,
    ...(spec.env !== undefined ? { env: spec.env } : {}),
  });
  const error = result.error as NodeJS.ErrnoException | undefined;
  if (error !== undefined) {
    if (error.code === 'ETIMEDOUT') throw makeError(`${line} took longer than ${spec.timeoutMs} ms and was killed`);
    if (error.code === 'ENOBUFS') throw makeError(`${line} printed more than ${maxOutput} bytes and was killed`);
    throw makeError(
      `cannot run "${spec.command}": ${isMissingProgramError(error) ? missingProgramMessage(spec.command) : error.message}`,
    );
  }
  return { code: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr.toString('utf8') };
}

/**
 * Starts a daemon that outlives this call (and may outlive this process): its own process group, stdin
 * /dev/null, stdout and stderr appended to `logFd`, not waited for. Returns its PID (the caller records
 * it and stops it by that PID); throws when it could not be started.
 */
export function startDetached(
  command: string,
  args: readonly string[],
  options: { logFd: number; env?: NodeJS.ProcessEnv },
): number {
  const child = spawn(command, [...args], {
    detached: true,
    stdio: ['ignore', options.logFd, options.logFd],
    env: options.env ?? process.env,
  });
  if (child.pid === undefined) throw new Error(`could not start ${commandLine(command, args)}`);
  child.on('error', () => undefined); // a failed exec after the PID was given: the daemon's log and its absence say it
  child.unref();
  return child.pid;
}

let scratchFiles = 0;

/**
 * A new file for one command's output, already unlinked (nothing is left behind, even by a crash after
 * this returns); null when none can be made here (a read-only /tmp): the caller uses a pipe instead.
 * `wx+` refuses a path that exists (a planted symlink in a shared /tmp included).
 */
function openScratchFile(): number | null {
  const path = join(tmpdir(), `tortie-cmd-${process.pid}-${++scratchFiles}`);
  let fd: number;
  try {
    fd = openSync(path, 'wx+', 0o600);
  } catch {
    return null;
  }
  try {
    unlinkSync(path);
  } catch {
    // still ours (0600); it stays behind in the temporary directory, nothing worse
  }
  return fd;
}

/** The first `size` bytes of file `fd` (its own offset was moved to the end by the child's writes). */
function readFrom(fd: number, size: number): Buffer {
  const buffer = Buffer.allocUnsafe(size);
  let filled = 0;
  while (filled < size) {
    const bytesRead = readSync(fd, buffer, filled, size - filled, filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return filled === size ? buffer : buffer.subarray(0, filled);
}
