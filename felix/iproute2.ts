// The real kernel, through iproute2, optionally inside a network namespace (`ip -n <netns>`), so tests
// never touch the host's routing table.
//
//   reads   `ip -4 -json route show table main`, `ip -json link show`: one process per read, its stdout
//           into an unlinked scratch file (a pipe when no file can be made): ip flushes every route on its
//           own, so through a pipe 10,000 routes reached Node as ~4,500 chunks and cost it ~20 ms of CPU
//           (~3 ms through the file; wall 50 vs 27 ms, measured under load);
//   writes  one `ip -force -batch -` process per batch: every line is a route command, deletions first,
//           then `route replace` lines, written in chunks as they are made (ip starts on the first routes
//           while the last lines are made); `-force` runs every line even after a failure, and the failing
//           lines ("Command failed -:N") are reported together in one KernelError;
//   events  one long-running `ip -o monitor route link` per watch, parsed line by line.
//
// Why iproute2 and not netlink, and one process per call rather than a long-running `ip -batch` — measured
// (test/bench/felix-routes.ts, and bash `time` on ip; iproute2 6.1, 2 CPUs shared with other test runs):
//   - `ip -batch` of 10,000 `route replace` lines: 113-121 ms, of which 83-90 ms is kernel (sys) time — the
//     route insertions, which a netlink socket pays the same — and 15-24 ms ip's own user time. That user
//     time is the most netlink could save, and building the messages in JS would spend part of it again;
//     Node has no AF_NETLINK socket without a native addon (a compiler and a build per Node ABI per node).
//   - `ip -4 -json route show` of 10,000 routes: 18-20 ms (10-13 ms user) into a file, plus ~7 ms of
//     JSON.parse in Node: a no-op resync of 10,000 routes is ~45-60 ms, most of it this read.
//   - starting an `ip` costs ~1.5-2 ms (fork+exec; `ip -n NS link show lo` end to end): all a long-running
//     `ip -batch -` would save per call — about 1.5 % of a 10,000-route batch, and less than a tenth of a
//     one-route change (~20 ms, mostly re-resolving the 10,000 desired routes). Not worth the only
//     reliable end-of-batch signal: `ip -batch` prints nothing after a batch, so a process's exit status
//     and stderr are what say "this batch is done, these lines failed".
//   - Through RouteTable, 10,000 routes into an empty table took 1.26-1.34× a bare `ip -batch` of the
//     same lines (best of 3, load < 4; 1.71× before the changes made with that bench): the rest is two
//     reads of the empty table and ~15-25 ms of JavaScript, not process I/O — test/bench/README.md
//     "felix-routes".
//
// Why this is hard: `ip` prints one route in several spellings (see kernel.ts normalize), a batch reports
// errors only on stderr with a line number, and a child process must never outlive its caller: every
// process has a time limit and is killed by its own PID.

import { spawn } from 'node:child_process';
import { spawnMonitor, stopMonitor } from './monitor-child.js';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KernelError, normalizeDst, type Kernel, type KernelBatch, type KernelEvent, type KernelRoute } from './kernel.js';

export interface Iproute2Options {
  /** Run every command inside this network namespace (`ip -n <netns>`); the host's when absent. */
  netns?: string;
  /** The `ip` binary; default `ip` from PATH. */
  ipPath?: string;
  /** A read or a batch taking longer than this is killed and reported (default 30 s). */
  timeoutMs?: number;
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Route types `ip` prints before the destination (rtnetlink RTN_* names). */
const ROUTE_TYPE_WORDS = new Set([
  'unicast', 'local', 'broadcast', 'anycast', 'multicast', 'blackhole', 'unreachable', 'prohibit', 'throw', 'nat',
]);


export class Iproute2Kernel implements Kernel {
  private readonly ip: string;
  private readonly prefix: string[];
  private readonly timeoutMs: number;
  private readonly monitors = new Set<{ stop(): void }>();

  constructor(readonly options: Iproute2Options = {}) {
    this.ip = options.ipPath ?? 'ip';
    this.prefix = options.netns !== undefined ? ['-n', options.netns] : [];
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  async listRoutes(): Promise<KernelRoute[]> {
    const out = await this.read(['-4', '-json', 'route', 'show', 'table', 'main']);
    return parseRouteJson(out);
  }

  async listLinks(): Promise<string[]> {
    const out = await this.read(['-json', 'link', 'show']);
    const parsed = parseJsonArray(out, 'ip -json link show');
    return parsed.map((l) => (typeof l.ifname === 'string' ? l.ifname : '')).filter((n) => n !== '');
  }

  async linkExists(name: string): Promise<boolean> {
    return (await this.listLinks()).includes(name);
  }

  async apply(batch: KernelBatch): Promise<void> {
    if (batch.del.length + batch.add.length === 0) return;
    // The lines are made while `ip` starts, and written in chunks as they are made: `ip` runs the first
    // routes while the last lines are still being made.
    const lines: string[] = [];
    const result = await this.run([...this.prefix, '-force', '-batch', '-'], batchText(batch, lines));
    if (result.code === 0) return;
    const failed = parseBatchErrors(result.stderr, lines);
    throw new KernelError(
      `ip -batch: ${failed.length || 'some'} of ${lines.length} route commands failed` +
        (this.options.netns ? ` in netns ${this.options.netns}` : '') +
        (failed[0] ? ` (first: "${failed[0].command}": ${failed[0].error})` : `: ${result.stderr.trim().slice(0, 300)}`),
      failed,
    );
  }

  watch(onChange: (event: KernelEvent) => void): { stop(): void } {
    // Tied to this process: it ends with the agent, even one killed with SIGKILL (monitor-child.ts).
    const child = spawnMonitor(this.ip, [...this.prefix, '-o', 'monitor', 'route', 'link']);
    let stopped = false;
    let pending = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      pending += chunk;
      let nl = pending.indexOf('\n');
      while (nl >= 0) {
        const event = parseMonitorLine(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
        if (event) onChange(event);
        nl = pending.indexOf('\n');
      }
    });
    child.stderr.resume();
    const lost = (reason: string): void => {
      if (stopped) return;
      stopped = true;
      onChange({ kind: 'lost', reason });
    };
    child.on('error', (err) => lost(`ip monitor could not run: ${err.message}`));
    child.on('exit', (code, signal) => lost(`ip monitor exited (${code ?? signal})`));
    const handle = {
      stop: () => {
        stopped = true;
        this.monitors.delete(handle);
        stopMonitor(child);
      },
    };
    this.monitors.add(handle);
    return handle;
  }

  async close(): Promise<void> {
    for (const monitor of [...this.monitors]) monitor.stop();
  }

  private async read(args: string[]): Promise<string> {
    // Into a scratch file when one can be made, not a pipe (see the header: ~20 ms of Node's CPU per 10k).
    const file = await openScratchFile();
    try {
      const result = await this.run([...this.prefix, ...args], undefined, file ?? undefined);
      if (result.code !== 0) {
        throw new KernelError(
          `ip ${args.join(' ')}${this.options.netns ? ` (netns ${this.options.netns})` : ''} failed: ${result.stderr.trim() || `exit ${result.code}`}`,
        );
      }
      return file ? await readWhole(file) : result.stdout;
    } finally {
      await file?.close().catch(() => undefined);
    }
  }

  /**
   * Runs `ip args`; `stdin` is written to it (chunk by chunk, as an iterable yields them) and closed.
   * With `stdoutFile`, ip's stdout goes there (and `stdout` of the result is empty).
   */
  private run(args: string[], stdin?: string | Iterable<string>, stdoutFile?: FileHandle): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.ip, args, { stdio: ['pipe', stdoutFile?.fd ?? 'pipe', 'pipe'] });
      const { stdin: input, stderr } = child;
      if (input === null || stderr === null) throw new Error('spawn gave no stdin/stderr pipe'); // cannot happen: both are 'pipe'
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new KernelError(`ip ${args.join(' ')} took longer than ${this.timeoutMs} ms and was killed`));
      }, this.timeoutMs);
      child.stdout?.on('data', (b: Buffer) => out.push(b));
      stderr.on('data', (b: Buffer) => err.push(b));
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(new KernelError(`cannot run "${this.ip}": ${e.message}`));
      });
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
      });
      input.on('error', () => undefined);
      if (typeof stdin === 'string' || stdin === undefined) {
        input.end(stdin ?? '');
        return;
      }
      for (const chunk of stdin) input.write(chunk);
      input.end();
    });
  }
}

let scratchFiles = 0;

/**
 * A new file for one command's output, already unlinked (nothing is left behind, even by a crash after
 * this returns); null when none can be made here (a read-only /tmp): the caller uses a pipe instead.
 * `wx+` refuses a path that exists (a planted symlink in a shared /tmp included).
 */
async function openScratchFile(): Promise<FileHandle | null> {
  const path = join(tmpdir(), `tortie-ip-${process.pid}-${++scratchFiles}`);
  let handle: FileHandle;
  try {
    handle = await open(path, 'wx+', 0o600);
  } catch {
    return null;
  }
  await unlink(path).catch(() => undefined);
  return handle;
}

/** Everything in `file`, from offset 0 (its own offset was moved to the end by the child's writes). */
async function readWhole(file: FileHandle): Promise<string> {
  const { size } = await file.stat();
  const buffer = Buffer.allocUnsafe(size);
  let done = 0;
  while (done < size) {
    const { bytesRead } = await file.read(buffer, done, size - done, done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return buffer.toString('utf8', 0, done);
}

/** Lines per chunk written to `ip -batch` (~70 bytes each: well under the 64 KiB a pipe holds). */
const BATCH_CHUNK_LINES = 256;

/** The batch's text in chunks, deletions first; every line made is also pushed to `lines` (for errors). */
export function* batchText(batch: KernelBatch, lines: string[]): Generator<string> {
  let chunk = '';
  let inChunk = 0;
  for (const [verb, routes] of [['del', batch.del], ['replace', batch.add]] as const) {
    for (const route of routes) {
      const line = routeCommand(verb, route);
      lines.push(line);
      chunk += `${line}\n`;
      if (++inChunk === BATCH_CHUNK_LINES) {
        yield chunk;
        chunk = '';
        inChunk = 0;
      }
    }
  }
  if (chunk !== '') yield chunk;
}

/** One `ip route` batch line for a route: `route replace blackhole 10.244.1.0/26 proto 80`. */
export function routeCommand(verb: 'replace' | 'del', route: KernelRoute): string {
  // String concatenation, not words.push + join: 10,000 of these per full programming.
  let line = `route ${verb}`;
  if (route.type !== undefined && route.type !== 'unicast') line += ` ${route.type}`;
  line += ` ${normalizeDst(route.dst)}`;
  if (route.gateway !== undefined) line += ` via ${route.gateway}`;
  if (route.dev !== undefined) line += ` dev ${route.dev}`;
  if (verb === 'replace' && route.scope !== undefined && route.scope !== 'global') line += ` scope ${route.scope}`;
  if (route.protocol !== undefined) line += ` proto ${route.protocol}`;
  if (route.metric !== undefined && route.metric !== 0) line += ` metric ${route.metric}`;
  line += ' table main';
  if (verb === 'replace' && route.flags?.includes('onlink')) line += ' onlink';
  return line;
}

/** `ip -json route` output → routes, keeping only the fields KernelRoute mirrors. */
export function parseRouteJson(text: string): KernelRoute[] {
  return parseJsonArray(text, 'ip -json route show').map((r) => {
    const route: KernelRoute = { dst: typeof r.dst === 'string' ? r.dst : '' };
    if (typeof r.type === 'string') route.type = r.type;
    if (typeof r.gateway === 'string') route.gateway = r.gateway;
    if (typeof r.dev === 'string') route.dev = r.dev;
    if (typeof r.protocol === 'string') route.protocol = r.protocol;
    if (typeof r.scope === 'string') route.scope = r.scope;
    if (typeof r.prefsrc === 'string') route.prefsrc = r.prefsrc;
    if (typeof r.metric === 'number') route.metric = r.metric;
    if (Array.isArray(r.flags)) route.flags = r.flags.filter((f): f is string => typeof f === 'string');
    return route;
  });
}

function parseJsonArray(text: string, what: string): Array<Record<string, unknown>> {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(trimmed);
  } catch (e) {
    throw new KernelError(`${what}: output is not JSON (${(e as Error).message}): ${trimmed.slice(0, 120)}`);
  }
  if (!Array.isArray(parsed)) throw new KernelError(`${what}: expected a JSON array, got ${typeof parsed}`);
  return parsed.filter((x): x is Record<string, unknown> => typeof x === 'object' && x !== null);
}

/**
 * `ip -force -batch` stderr → the failing lines. iproute2 prints the kernel's message, then
 * `Command failed -:<line>` for each failing line (1-based line number of the batch).
 */
export function parseBatchErrors(stderr: string, lines: readonly string[]): Array<{ command: string; error: string }> {
  const failed: Array<{ command: string; error: string }> = [];
  let messages: string[] = [];
  for (const raw of stderr.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    const m = /^Command failed -:(\d+)$/.exec(line);
    if (!m) {
      messages.push(line);
      continue;
    }
    const n = Number(m[1]);
    failed.push({ command: lines[n - 1] ?? `line ${n}`, error: messages.join('; ') || 'failed' });
    messages = [];
  }
  return failed;
}

/** One line of `ip -o monitor route link` → an event; null for lines felix does not care about. */
export function parseMonitorLine(line: string): KernelEvent | null {
  let rest = line.trim();
  if (rest === '') return null;
  let deleted = false;
  if (rest.startsWith('Deleted ')) {
    deleted = true;
    rest = rest.slice('Deleted '.length);
  }
  const link = /^\d+:\s+([^:@\s]+)(@[^:\s]*)?:/.exec(rest);
  if (link?.[1]) return { kind: 'link', name: link[1], deleted };
  const words = rest.split(/\s+/);
  let i = 0;
  if (words[i] !== undefined && ROUTE_TYPE_WORDS.has(words[i] as string)) i++;
  const dst = words[i];
  if (dst === undefined) return null;
  const table = words.indexOf('table');
  if (table >= 0 && words[table + 1] !== 'main') return null;
  if (dst.includes(':')) return null; // IPv6: not ours
  const normalized = normalizeDst(dst);
  if (!/^\d+\.\d+\.\d+\.\d+\/\d+$/.test(normalized)) return null;
  return { kind: 'route', dst: normalized, deleted };
}
