// The nftables runner felix's tables go through (natOutgoing's `table ip tortie-nat`, NetworkPolicy's
// `table inet tortie-filter`): one `nft` process per call, optionally inside a network namespace
// (`ip netns exec <ns> nft ...`), so tests never touch the host's ruleset.
//
//   apply(script)      `nft -f -` with the script on stdin. nft parses and checks the whole script, then
//                      commits it to the kernel in one netlink transaction: all of it or none of it. A
//                      refusal is an NftError whose `lines` name each failing script line (number, text,
//                      nft's message), parsed from nft's stderr (`/dev/stdin:4:17-21: Error: ...`).
//   listTable(f, name) `nft -j list table <f> <name>`, the `nftables` array of its JSON (metainfo, table,
//                      sets, chains, rules, in nft's order), or null when the table does not exist.
//   monitor(on, lost)  one long-running `nft -j monitor`: every ruleset change in the namespace as an
//                      NftEvent (action, kind, family, table); lines nft prints that are not JSON ("W:
//                      Received event for an unknown set." for some element deletions) come as events with
//                      table null — "something changed, look". Killed by its PID on stop() or process exit.
//
// Why this is hard: nft reports every problem on stderr only, as "<file>:<line>:<col>-<col>: Error: <msg>"
// followed by the offending line and a caret line, and a missing table is just exit 1 with "No such file or
// directory" — so telling "not there" from "could not ask" means reading the message. Every process has a
// time limit and is killed by its own PID (`ip netns exec` execs nft in place: one PID): command.ts.

import { runCommand } from './command.js';
import { spawnMonitor, stopMonitor } from './monitor-child.js';

export interface NftOptions {
  /** Run every command inside this network namespace (`ip netns exec <netns> nft ...`); the host's when absent. */
  netns?: string;
  /** The `nft` binary; default `nft` from PATH. */
  nftPath?: string;
  /** A command taking longer than this is killed and reported (default 30 s). */
  timeoutMs?: number;
  /** The `ip` binary used for `ip netns exec`; default `ip` from PATH. */
  ipPath?: string;
}

/** One problem nft reported: where in the script (when it said), and its message. */
export interface NftProblem {
  /** 1-based line of the script, or null when nft named no line. */
  line: number | null;
  /** 1-based first column nft marked, or null. */
  column: number | null;
  /** nft's message after "Error: ". */
  message: string;
  /** The script's text on that line ('' when no line). */
  text: string;
}

export class NftError extends Error {
  /** One entry per problem: "line 4: add rule ip t c bogus thing: No symbol type information". */
  readonly lines: string[];
  /** The same problems, structured. */
  readonly problems: NftProblem[];

  constructor(message: string, problems: NftProblem[] = []) {
    super(message);
    this.name = 'NftError';
    this.problems = problems;
    this.lines = problems.map(describeProblem);
  }
}

/** One line of `nft -j monitor`: {"delete": {"rule": {"family": "ip", "table": "tortie-nat", ...}}}. */
export interface NftEvent {
  /** "add", "delete", ... ; "unknown" for a line that is not JSON. */
  action: string;
  /** "table", "chain", "rule", "set", "element", ... ; "unknown" for a line that is not JSON. */
  kind: string;
  family: string | null;
  /** The table the object belongs to (a table event: its own name); null when nft did not say. */
  table: string | null;
  raw: string;
}

export interface NftMonitor {
  stop(): void;
}

/** Parses one line of `nft -j monitor` (pure). Blank lines give null. */
export function parseMonitorLine(line: string): NftEvent | null {
  const raw = line.trim();
  if (raw === '') return null;
  let doc: unknown;
  try {
    doc = JSON.parse(raw);
  } catch {
    return { action: 'unknown', kind: 'unknown', family: null, table: null, raw };
  }
  const action = typeof doc === 'object' && doc !== null ? Object.keys(doc)[0] : undefined;
  const body = action !== undefined ? (doc as Record<string, unknown>)[action] : undefined;
  const kind = typeof body === 'object' && body !== null ? Object.keys(body)[0] : undefined;
  const obj = kind !== undefined ? ((body as Record<string, unknown>)[kind] as Record<string, unknown> | null) : null;
  if (action === undefined || kind === undefined || typeof obj !== 'object' || obj === null) {
    return { action: action ?? 'unknown', kind: kind ?? 'unknown', family: null, table: null, raw };
  }
  const table = kind === 'table' ? obj.name : obj.table;
  return {
    action,
    kind,
    family: typeof obj.family === 'string' ? obj.family : null,
    table: typeof table === 'string' ? table : null,
    raw,
  };
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** "line 4: <text>: <message>", or just the message when nft named no line. */
export function describeProblem(p: NftProblem): string {
  if (p.line === null) return p.message;
  return `line ${p.line}: ${p.text.trim()}: ${p.message}`;
}

const ERROR_LINE = /^(?:[^:\s]*):(\d+):(\d+)(?:-\d+)?: Error: (.*)$/;
const BARE_ERROR = /^Error: (.*)$/;

/**
 * The problems in nft's stderr for `script`. Located errors ("/dev/stdin:4:17-21: Error: msg") carry the
 * script line; unlocated ones ("Error: msg") carry none; the echoed line and caret line nft prints after
 * each are skipped. Any other non-empty stderr text with no "Error:" at all becomes one unlocated problem,
 * so nothing nft said is lost.
 */
export function parseNftErrors(stderr: string, script: string): NftProblem[] {
  const scriptLines = script.split('\n');
  const problems: NftProblem[] = [];
  for (const raw of stderr.split('\n')) {
    const line = raw.trimEnd();
    const located = ERROR_LINE.exec(line);
    if (located !== null) {
      const n = Number(located[1]);
      problems.push({ line: n, column: Number(located[2]), message: located[3] ?? '', text: scriptLines[n - 1] ?? '' });
      continue;
    }
    const bare = BARE_ERROR.exec(line);
    if (bare !== null) problems.push({ line: null, column: null, message: bare[1] ?? '', text: '' });
  }
  if (problems.length === 0 && stderr.trim() !== '') {
    problems.push({ line: null, column: null, message: stderr.trim().split('\n')[0] ?? '', text: '' });
  }
  return problems;
}

/** True when nft's stderr for `list table` says the table is not there (not a failure to ask). */
export function isNoSuchTable(stderr: string): boolean {
  return /^Error: No such file or directory/m.test(stderr);
}

/** The `nftables` array of `nft -j` output; throws NftError naming what was wrong with it. */
export function parseNftJson(stdout: string): unknown[] {
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch (e) {
    throw new NftError(`nft -j printed something that is not JSON (${(e as Error).message}): ${stdout.slice(0, 120)}`);
  }
  const list = (doc as { nftables?: unknown } | null)?.nftables;
  if (typeof doc !== 'object' || doc === null || !Array.isArray(list)) {
    throw new NftError(`nft -j printed JSON without an "nftables" array: ${stdout.slice(0, 120)}`);
  }
  return list;
}

const TABLE_NAME = /^[A-Za-z][A-Za-z0-9_.-]*$/;

export class Nft {
  private readonly nft: string;
  private readonly timeoutMs: number;

  constructor(readonly options: NftOptions = {}) {
    this.nft = options.nftPath ?? 'nft';
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** `nft -f -` with the script (atomic: all or nothing); rejects with NftError naming the failing line. */
  async apply(script: string): Promise<void> {
    const result = await this.run(['-f', '-'], script);
    if (result.code === 0) return;
    const problems = parseNftErrors(result.stderr, script);
    const first = problems[0] !== undefined ? describeProblem(problems[0]) : `exit ${result.code}`;
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
    throw new NftError(`nft refused the script${this.where()}, nothing applied: ${first}${more}`, problems);
  }

  /** `nft -j list table <family> <name>` parsed (the `nftables` array), or null when the table does not exist. */
  async listTable(family: 'ip' | 'inet', name: string): Promise<unknown[] | null> {
    if (family !== 'ip' && family !== 'inet') {
      throw new NftError(`table family "${String(family)}" is not one tortie uses (accepted: ip, inet)`);
    }
    if (!TABLE_NAME.test(name)) {
      throw new NftError(`table name "${name}" is not an nft identifier (a letter, then letters, digits, _ . -)`);
    }
    const result = await this.run(['-j', 'list', 'table', family, name]);
    if (result.code === 0) return parseNftJson(result.stdout);
    if (isNoSuchTable(result.stderr)) return null;
    const problems = parseNftErrors(result.stderr, '');
    throw new NftError(
      `nft -j list table ${family} ${name}${this.where()} failed (exit ${result.code}): ${problems.map(describeProblem).join('; ')}`,
      problems,
    );
  }

  /**
   * Watches every ruleset change in the namespace (`nft -j monitor`) until stop(). `onLost` is called once
   * if the monitor ends or cannot start (the caller falls back on its periodic check).
   */
  monitor(onEvent: (event: NftEvent) => void, onLost: (reason: string) => void): NftMonitor {
    const [command, argv] =
      this.options.netns !== undefined
        ? [this.options.ipPath ?? 'ip', ['netns', 'exec', this.options.netns, this.nft, '-j', 'monitor']]
        : [this.nft, ['-j', 'monitor']];
    // Tied to this process: it ends with the agent, even one killed with SIGKILL (monitor-child.ts).
    const child = spawnMonitor(command, argv);
    let stopped = false;
    let buffer = '';
    let stderr = '';
    const lost = (reason: string): void => {
      if (stopped) return;
      stopped = true;
      onLost(reason);
    };
    child.stdout.on('data', (b: Buffer) => {
      buffer += b.toString('utf8');
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        const event = parseMonitorLine(line);
        if (event !== null && !stopped) onEvent(event);
      }
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString('utf8')).slice(-500);
    });
    child.on('error', (e) => lost(`nft monitor could not run ("${command}"): ${e.message}`));
    child.on('close', (code, signal) =>
      lost(
        `nft monitor${this.where()} ended (${signal ?? `exit ${code}`})${stderr.trim() ? `: ${stderr.trim()}` : ''}`,
      ),
    );
    return {
      stop: () => {
        stopped = true;
        stopMonitor(child);
      },
    };
  }

  private where(): string {
    return this.options.netns !== undefined ? ` in netns ${this.options.netns}` : '';
  }

  /** One bounded `nft` (command.ts); its stdout and stderr as text. */
  private async run(args: string[], stdin?: string): Promise<RunResult> {
    const [command, argv] =
      this.options.netns !== undefined
        ? [this.options.ipPath ?? 'ip', ['netns', 'exec', this.options.netns, this.nft, ...args]]
        : [this.nft, args];
    const result = await runCommand({
      command,
      args: argv,
      ...(stdin !== undefined ? { stdin } : {}),
      timeoutMs: this.timeoutMs,
      makeError: (message) => new NftError(message),
    });
    return { code: result.code, stdout: result.stdout.toString('utf8'), stderr: result.stderr };
  }
}
