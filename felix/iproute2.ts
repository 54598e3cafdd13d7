// The real kernel, through iproute2, optionally inside a network namespace (`ip -n <netns>`), so tests
// never touch the host's routing table. Every process goes through command.ts (time-bounded, killed by its
// own PID).
//
//   reads   one `ip -4 -json -batch -` of `route save table main` and `link show`: the routes as the kernel's
//           own rtnetlink messages (rtnetlink.ts decodes them, RTA_OIF named from the links), then the links
//           as JSON; stdout into an unlinked scratch file (a pipe when no file can be made);
//   writes  one `ip -force -batch -` per batch: deletions first, then `route replace` lines, written in
//           chunks as they are made (ip starts on the first routes while the last lines are made);
//           `-force` runs every line even after a failure, and the failing lines ("Command failed -:N")
//           are reported together in one KernelError;
//   both    readThenWrite: one `ip -4 -json -force -batch -` reads as above, then fails a fence line (no such
//           ip object): "Command failed -:3" on stderr says the read is whole in the file; the caller's
//           batch, decided from the read, goes down the same stdin, then a second fence line whose failure
//           says ip ran the batch to its end (ip abandons a batch on a line it cannot parse with exit 1
//           and no "Command failed" line; with the read's fence ip always exits 1, so the status cannot
//           tell; apply() needs no fence: exit 0 is its success). The route table's resyncs that write
//           (the first programming, a restart) start one process instead of two (a read's and a batch's);
//           an ip whose fence does not show before its time limit is not asked again (two processes);
//   events  one long-running `ip -o monitor route link` per watch, parsed line by line.
//
// Why iproute2 and not netlink, why these reads, and why one process per call rather than a long-running
// `ip -batch` — measured here (iproute2 6.1, Linux 6.1, 2 CPUs shared with other test runs, load 2-5;
// test/bench/felix-routes.ts and test/bench/README.md "felix-routes"; `time` and `strace -c` on ip):
//   - `ip -batch` of 10,000 `route replace` lines: 110-130 ms, of which 80-90 ms is kernel (sys) time — the
//     route insertions, which a netlink socket pays the same — and 10-20 ms ip's own user time. That user
//     time is the most netlink could save, and building the messages in JS would spend part of it again;
//     Node has no AF_NETLINK socket without a native addon (a compiler and a build per Node ABI per node).
//   - reading 10,000 routes: `ip -4 -json route show` takes 24-28 ms into a file, and Node ~6 ms more of
//     JSON.parse and ~3 ms of normalizing; `ip -4 route save` + `link show` takes 11-15 ms (printing was
//     most of ip's work) and decoding it 2-3 ms, already in normal form. ip flushes after every route: 10,000
//     write(2)s, which through a pipe reached Node as ~4,500 chunks (~20 ms of its CPU); hence the file.
//     `route show` also opened one netlink socket per interface it had not seen yet (101 here); `route
//     save` names none, and the links come after it.
//   - a no-op resync of 10,000 routes: 23-31 ms median (51-73 ms with `ip -json route show`, the same
//     runs), of which the read ~15 and the diff ~7.
//   - starting an `ip` costs 3-4 ms end to end with `-n` (fork+exec, a mount namespace for the netns), and
//     Node's spawn() blocks the event loop 1-3.4 ms of that (it forks the agent): the resync that writes
//     (readThenWrite) starts one process where it started three. Through RouteTable, 10,000 routes into
//     an empty table: 1.11-1.15× a bare `ip -batch` of the same lines (best of 3, three runs; 1.05× best
//     and 1.07× median of 8; before: 1.18-1.24×, and 1.20×/1.19× of 8, in the same minutes); the medians
//     of 3 (1.26-1.48×) hold the two rounds in which V8 still compiles in the background. What is left is
//     ip's start and read of the empty table (~8 ms, the settling of the desired set runs meanwhile) and
//     ~2-3 ms of JavaScript before the first line.
//   - a long-running `ip -batch -` would save that start per call, most for a one-route change (9-20 ms,
//     ip -batch ~4-9 ms of it). It needs an end-of-batch signal — the fence above would give one — and a
//     child tied to the agent's life and to one namespace; not done.
//
// Why this is hard: `ip` prints one route in several spellings (see kernel.ts normalize; the saved
// messages have one), a batch reports errors only on stderr with a line number, the read and the write of
// one process are told apart by what ip writes to stderr, and a child process must never outlive its
// caller: every process has a time limit and is killed by its own PID.

import { failureMessage, runCommand, startCommand, type CommandResult, type RunningCommand } from './command.js';
import { spawnMonitor, stopMonitor } from './monitor-child.js';
import {
  KernelError,
  normalizeDst,
  type Kernel,
  type KernelBatch,
  type KernelEvent,
  type KernelRoute,
  type KernelSnapshot,
} from './kernel.js';
import { decodeRouteDump, frameRouteDump, RouteDumpError } from './rtnetlink.js';

export interface Iproute2Options {
  /** Run every command inside this network namespace (`ip -n <netns>`); the host's when absent. */
  netns?: string;
  /** The `ip` binary; default `ip` from PATH. */
  ipPath?: string;
  /** A read or a batch taking longer than this is killed and reported (default 30 s). */
  timeoutMs?: number;
}

/** Route types `ip` prints before the destination (rtnetlink RTN_* names). */
const ROUTE_TYPE_WORDS = new Set([
  'unicast',
  'local',
  'broadcast',
  'anycast',
  'multicast',
  'blackhole',
  'unreachable',
  'prohibit',
  'throw',
  'nat',
]);

/**
 * The full read as batch lines: the routes as the kernel's own messages first (`route save` writes them with
 * write(2) as the dump arrives, before its own `[]` JSON wrapper leaves ip's stdio buffer), then the links
 * as JSON. With the links last ip resolves no interface name for the routes (with `route show` it opened
 * one netlink socket per interface it had not seen).
 */
const READ_LINES = ['route save table main', 'link show'] as const;

/**
 * The line after the read in readThenWrite's batch: no ip object, so ip says so on stderr ("Object ... is
 * unknown") and then `Command failed -:3` — unbuffered, after both reads flushed their stdout. Seeing it
 * on stderr means the read is whole in the file.
 */
const FENCE = 'tortie-read-done';
const FENCE_LINE = READ_LINES.length + 1;

/**
 * The line after readThenWrite's batch, failing as FENCE does: its `Command failed -:<line>` says ip ran
 * to the end of the batch. Without it the exit status cannot tell a whole batch from one ip abandoned
 * part-way: `-force` goes on after a line the kernel refused ("Command failed -:N", exit 1), but ip
 * exit(1)s at once, with no such line, on one it cannot parse (a bad address or prefix: get_addr,
 * get_prefix) or a malformed netlink answer — and the lines after it never run (iproute2 6.1).
 */
const BATCH_END = 'tortie-batch-done';

/**
 * `ip` binaries whose fence never showed (the read ran out of time before it): their resyncs read and write
 * with two processes (readAll, then apply), as if readThenWrite did not exist. Per binary, not per kernel:
 * the route table's retry makes a new kernel.
 */
const fenceless = new Set<string>();

export class Iproute2Kernel implements Kernel {
  private readonly ip: string;
  private readonly prefix: string[];
  private readonly timeoutMs: number;
  private readonly monitors = new Set<{ stop(): void }>();
  /** readThenWrite processes not yet ended: close() kills them. */
  private readonly sessions = new Set<RunningCommand>();

  constructor(readonly options: Iproute2Options = {}) {
    this.ip = options.ipPath ?? 'ip';
    this.prefix = options.netns !== undefined ? ['-n', options.netns] : [];
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  async readAll(): Promise<KernelSnapshot> {
    const args = ['-4', '-json', '-batch', '-'];
    const result = await this.run(args, `${READ_LINES.join('\n')}\n`, 'scratch');
    const what = `${this.line(args)} (${READ_LINES.join('; ')})`;
    if (result.code !== 0)
      throw new KernelError(`reading the routes and links${this.where()}: ${failureMessage(what, result)}`);
    return parseReadAll(result.stdout, what);
  }

  async listRoutes(): Promise<KernelRoute[]> {
    // The routes need the links anyway (RTA_OIF is an interface index): the same one process.
    return (await this.readAll()).routes;
  }

  async listLinks(): Promise<string[]> {
    const args = ['-json', 'link', 'show'];
    const result = await this.run(args, undefined, 'scratch');
    if (result.code !== 0) throw new KernelError(failureMessage(this.line(args), result));
    const parsed = parseJsonArray(result.stdout.toString('utf8'), 'ip -json link show');
    return parsed.map((l) => (typeof l.ifname === 'string' ? l.ifname : '')).filter((n) => n !== '');
  }

  async linkExists(name: string): Promise<boolean> {
    return (await this.listLinks()).includes(name);
  }

  /**
   * One `ip -4 -json -force -batch -`: its first lines read (READ_LINES, stdout into a scratch file), then the
   * FENCE; when the fence's failure shows on stderr the read is decoded, and the route lines the caller
   * decides go down the same stdin. One process start for a resync that writes, instead of two.
   */
  readThenWrite(): { read: Promise<KernelSnapshot>; write(batch: KernelBatch): Promise<void> } {
    if (fenceless.has(this.ip)) return { read: this.readAll(), write: (batch) => this.apply(batch) };
    const flags = ['-4', '-json', '-force', '-batch', '-'];
    const what = `${this.line(flags)} (${READ_LINES.join('; ')})`;
    let stderr = ''; // until the fence: what the read said
    let fenceSeen = false;
    let onFence: () => void = () => undefined;
    const marker = `Command failed -:${FENCE_LINE}\n`;
    const running = startCommand({
      command: this.ip,
      args: [...this.prefix, ...flags],
      stdout: 'scratch',
      timeoutMs: this.timeoutMs,
      makeError: kernelError,
      onStderr: (chunk) => {
        if (fenceSeen) return; // the batch's own stderr comes with the exit
        stderr += chunk.toString('utf8');
        if (!stderr.includes(marker)) return;
        fenceSeen = true;
        onFence();
      },
    });
    this.sessions.add(running);
    void running.exited.finally(() => this.sessions.delete(running)).catch(() => undefined);
    running.write(`${READ_LINES.join('\n')}\n${FENCE}\n`);

    const read = new Promise<KernelSnapshot>((resolve, reject) => {
      const refuse = (error: Error): void => {
        running.kill();
        reject(error);
      };
      onFence = () => {
        const readFailed = batchFailures(stderr).filter((f) => f.line < FENCE_LINE);
        if (readFailed.length > 0) {
          const first = readFailed[0] as { line: number; error: string };
          refuse(
            new KernelError(
              `reading the routes and links${this.where()}: ${what}: "${READ_LINES[first.line - 1]}" failed: ${first.error}`,
            ),
          );
          return;
        }
        try {
          resolve(parseReadAll(running.stdoutSoFar(), what));
        } catch (error) {
          refuse(error as Error);
        }
      };
      // The process ended, or could not run, before the fence: the read failed. Out of time before the
      // fence: this ip may not fail it as iproute2 6.1 does — no more sessions with it.
      running.exited.then(
        (result) =>
          refuse(new KernelError(`reading the routes and links${this.where()}: ${failureMessage(what, result)}`)),
        (error: unknown) => {
          if (running.timedOut && !fenceSeen) fenceless.add(this.ip);
          refuse(error as Error);
        },
      );
    });
    read.catch(() => undefined); // the caller awaits it; not an unhandled rejection meanwhile

    let readDone = false;
    read.then(
      () => {
        readDone = true;
      },
      () => undefined,
    );
    // Not async: once the read is done, the lines go down ip's stdin before write() returns (the caller
    // updates its view of the kernel while ip works through them).
    const write = (batch: KernelBatch): Promise<void> => {
      if (!readDone) return read.then(() => write(batch)); // rejects as the read did (the process is gone then)
      const count = batch.del.length + batch.add.length;
      const endLine = FENCE_LINE + count + 1;
      return running.end(withBatchEnd(count === 0 ? [] : batchText(batch))).then((result) => {
        const failures = batchFailures(result.stderr);
        const ended = failures.some((f) => f.line === endLine);
        const failed = failures
          .filter((f) => f.line > FENCE_LINE && f.line < endLine)
          .map((f) => ({
            command: batchLine(batch, f.line - FENCE_LINE) ?? `line ${f.line - FENCE_LINE}`,
            error: f.error,
          }));
        // Exit 1 with no failure but the two fences' is success; a signal or another status is not.
        if (ended && failed.length === 0 && (result.code === 0 || result.code === 1)) return;
        if (ended || result.signal !== null) throw batchError(batch, failed, result, this.where());
        throw stoppedError(batch, failed, result, this.where());
      });
    };
    return { read, write };
  }

  async apply(batch: KernelBatch): Promise<void> {
    if (batch.del.length + batch.add.length === 0) return;
    // The lines are made while `ip` runs, and written in chunks as they are made: ip runs the first routes
    // while the last lines are still being made. They are not kept (10,000 strings alive until ip exits): a
    // failing one is made again from its number.
    const result = await startCommand({
      command: this.ip,
      args: [...this.prefix, '-force', '-batch', '-'],
      timeoutMs: this.timeoutMs,
      makeError: kernelError,
    }).end(batchText(batch));
    if (result.code === 0) return;
    throw batchError(
      batch,
      parseBatchErrors(result.stderr, (n) => batchLine(batch, n)),
      result,
      this.where(),
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
    for (const session of [...this.sessions]) session.kill();
    this.sessions.clear();
  }

  private where(): string {
    return this.options.netns !== undefined ? ` in netns ${this.options.netns}` : '';
  }

  private line(args: readonly string[]): string {
    return [this.ip, ...this.prefix, ...args].join(' ');
  }

  private run(args: readonly string[], stdin: string | undefined, stdout: 'pipe' | 'scratch'): Promise<CommandResult> {
    return runCommand({
      command: this.ip,
      args: [...this.prefix, ...args],
      ...(stdin !== undefined ? { stdin } : {}),
      stdout,
      timeoutMs: this.timeoutMs,
      makeError: kernelError,
    });
  }
}

/** The KernelError of a batch that did not go through: how many lines failed, the first, all of them. */
function batchError(
  batch: KernelBatch,
  failed: Array<{ command: string; error: string }>,
  result: CommandResult,
  where: string,
): KernelError {
  const first = failed[0];
  return new KernelError(
    `ip -batch: ${failed.length || 'some'} of ${batch.del.length + batch.add.length} route commands failed` +
      where +
      (first
        ? ` (first: "${first.command}": ${first.error})`
        : `: ${result.stderr.trim().slice(0, 300) || `exit ${result.code ?? result.signal}`}`),
    failed,
  );
}

/**
 * The KernelError of a batch ip stopped part-way (BATCH_END never failed): what ip said last (it names the
 * value it could not parse, not the line), and the lines that failed before.
 */
function stoppedError(
  batch: KernelBatch,
  failed: Array<{ command: string; error: string }>,
  result: CommandResult,
  where: string,
): KernelError {
  const count = batch.del.length + batch.add.length;
  const lines = result.stderr.split('\n');
  let lastFailure = -1;
  lines.forEach((line, i) => {
    if (/^Command failed -:\d+$/.test(line.trim())) lastFailure = i;
  });
  const said =
    lines
      .slice(lastFailure + 1)
      .map((l) => l.trim())
      .filter((l) => l !== '')
      .join('; ')
      .slice(0, 300) || 'nothing on stderr';
  const first = failed[0];
  return new KernelError(
    `ip -batch stopped before the end of its ${count} route commands${where} (its end-of-batch line, ${count + 1}, never ran; ` +
      `exit ${result.code ?? result.signal}): ${said}; the commands after the one it stopped at were not run` +
      (first ? `; before that ${failed.length} failed (first: "${first.command}": ${first.error})` : ''),
    failed,
  );
}

/** The batch's chunks, then BATCH_END. */
function* withBatchEnd(chunks: Iterable<string>): Generator<string> {
  yield* chunks;
  yield `${BATCH_END}\n`;
}

const kernelError = (message: string): Error => new KernelError(message);

/**
 * The output of the full read (READ_LINES) → routes and links: the route dump (rtnetlink.ts), then
 * JSON arrays one per line — `route save`'s own empty one, then the links (`ifindex`, `ifname`).
 */
export function parseReadAll(bytes: Uint8Array, what = 'ip route save + link show'): KernelSnapshot {
  let frame;
  try {
    frame = frameRouteDump(bytes);
  } catch (e) {
    throw new KernelError(`${what}: ${(e as Error).message}`);
  }
  const last = linkListText(bytes, frame.end, frame.count, what);
  const links = parseJsonArray(last, `${what} (the interface list)`);
  const names = new Map<number, string>();
  const linkNames: string[] = [];
  for (const link of links) {
    if (typeof link.ifname !== 'string' || link.ifname === '') continue;
    linkNames.push(link.ifname);
    if (typeof link.ifindex === 'number') names.set(link.ifindex, link.ifname);
  }
  if (linkNames.length === 0)
    throw new KernelError(`${what}: the interface list names no interface (not even lo): ${last.slice(0, 120)}`);
  try {
    return { routes: decodeRouteDump(bytes, frame, names), links: linkNames };
  } catch (e) {
    if (e instanceof RouteDumpError) throw new KernelError(`${what}: ${e.message}`);
    throw e;
  }
}

/**
 * The text after the route messages, which must be exactly `route save`'s own `[]\n` (optional) and then
 * one line of JSON starting with `[`: the links. Anything else means the route stream did not end where
 * the frame did — a stray or missing byte ends frameRouteDump at the first bytes that are not a route
 * header, and the routes after them would be lost without a word (route bytes hold 0x0a often enough that
 * the last line is still the links) — so it is an error naming the offset. JSON escapes every control
 * character, so a byte below 0x20 other than the final newline is never part of the links.
 */
function linkListText(bytes: Uint8Array, end: number, count: number, what: string): string {
  let at = end;
  if (bytes[at] === 0x5b && bytes[at + 1] === 0x5d && bytes[at + 2] === 0x0a) at += 3; // route save's `[]`
  let stop = bytes.length;
  if (stop > at && bytes[stop - 1] === 0x0a) stop--;
  if (at >= stop) throw new KernelError(`${what}: no interface list after the ${count} route messages`);
  const after = `after the ${count} route messages that end at offset ${end}`;
  if (bytes[at] !== 0x5b) {
    throw new KernelError(
      `${what}: byte 0x${hexByte(bytes[at])} at offset ${at} ${after}; expected a route message (type 24 at offset ${at + 4}) or the interface list (a JSON line starting with "[")`,
    );
  }
  for (let i = at; i < stop; i++) {
    if ((bytes[i] as number) < 0x20) {
      throw new KernelError(
        `${what}: byte 0x${hexByte(bytes[i])} at offset ${i}, inside the interface list that starts at offset ${at} ${after}; expected one line of JSON (no byte below 0x20 but its final newline)`,
      );
    }
  }
  return Buffer.from(bytes.buffer, bytes.byteOffset + at, stop - at).toString('utf8');
}

function hexByte(b: number | undefined): string {
  return (b ?? 0).toString(16).padStart(2, '0');
}

/** Lines per chunk written to `ip -batch` (~70 bytes each: well under the 64 KiB a pipe holds). */
const BATCH_CHUNK_LINES = 256;

/** Line `n` (1-based) of the batch's text, as batchText makes it; undefined past its end. */
export function batchLine(batch: KernelBatch, n: number): string | undefined {
  if (!Number.isInteger(n) || n < 1) return undefined;
  if (n <= batch.del.length) return routeCommand('del', batch.del[n - 1] as KernelRoute);
  const add = batch.add[n - 1 - batch.del.length];
  return add === undefined ? undefined : routeCommand('replace', add);
}

/** The batch's text in chunks, deletions first; every line made is also pushed to `lines` when given. */
export function* batchText(batch: KernelBatch, lines?: string[]): Generator<string> {
  let chunk = '';
  let inChunk = 0;
  for (const [verb, routes] of [
    ['del', batch.del],
    ['replace', batch.add],
  ] as const) {
    for (const route of routes) {
      const line = routeCommand(verb, route);
      lines?.push(line);
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
 * `ip -force -batch` stderr → the failing lines, by number. iproute2 prints the kernel's message (or its
 * own), then `Command failed -:<line>` for each failing line (1-based line number of the batch).
 */
export function batchFailures(stderr: string): Array<{ line: number; error: string }> {
  const failed: Array<{ line: number; error: string }> = [];
  let messages: string[] = [];
  for (const raw of stderr.split('\n')) {
    const text = raw.trim();
    if (text === '') continue;
    const m = /^Command failed -:(\d+)$/.exec(text);
    if (!m) {
      messages.push(text);
      continue;
    }
    failed.push({ line: Number(m[1]), error: messages.join('; ') || 'failed' });
    messages = [];
  }
  return failed;
}

/** `batchFailures` with each line's command: from `lines` (1-based: lines[n - 1]) or made by `lines(n)`. */
export function parseBatchErrors(
  stderr: string,
  lines: readonly string[] | ((n: number) => string | undefined),
): Array<{ command: string; error: string }> {
  const lineAt = typeof lines === 'function' ? lines : (n: number): string | undefined => lines[n - 1];
  return batchFailures(stderr).map(({ line, error }) => ({ command: lineAt(line) ?? `line ${line}`, error }));
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
