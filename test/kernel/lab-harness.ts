// The kernel checks' shared machinery (ipip-checks.ts runs them; encap-switch.ts is one of them): bounded
// processes (`ip`, `ping`, `tortie apply`), the PASS/FAIL report, the facts read from a running lab, and
// `withLab`, which brings a lab up with the lab code (src/lab/lab.ts) and always takes it down.
//
// Every reader of kernel output is in observe.ts (unit-tested on captured output); this file only runs
// things and keeps the report. Everything is bounded in time; TORTIE_LAB_SLOWDOWN stretches deadlines only.

import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Datastore } from '../../src/datastore/types.js';
import { labDown, labUp, nodeStatus, type LabState } from '../../src/lab/lab.js';
import { labDir } from '../../src/lab/state.js';
import { LAB_DEFAULTS, type LabIpipMode, type LabNode, type LabOptions, type LabWorkload } from '../../src/lab/plan.js';
import {
  describeRoute,
  parseLink,
  parsePing,
  parseRoutes,
  remotePath,
  type LinkObservation,
  type PingObservation,
  type RemotePath,
} from './observe.js';

export const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
export const TORTIE = [process.execPath, CLI];
/** TORTIE_LAB_SLOWDOWN (see labTimeouts) stretches this file's own deadlines too. */
export const SLOW = Math.max(1, Math.min(50, Math.floor(Number(process.env.TORTIE_LAB_SLOWDOWN ?? '1')) || 1));
export const started = Date.now();
export const since = (): string => `${((Date.now() - started) / 1000).toFixed(1)} s`;

// ---- running things, bounded ------------------------------------------------------------------------------

export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export function sh(
  command: string,
  args: readonly string[],
  options: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<Ran> {
  const begun = Date.now();
  return new Promise((resolve) => {
    const child = spawn(command, [...args], { stdio: ['pipe', 'pipe', 'pipe'], env: options.env ?? process.env });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000 * SLOW);
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString('utf8')));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
    child.once('error', (error) => {
      clearTimeout(timer);
      resolve({ code: 127, stdout, stderr: `${command}: ${error.message}`, ms: Date.now() - begun });
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - begun });
    });
    // A program that exits before reading its (empty) stdin must not turn into an EPIPE that kills the checks.
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

export async function ipJson(ns: string, ...args: string[]): Promise<string> {
  const ran = await sh('ip', ['-n', ns, ...args]);
  if (ran.code !== 0) throw new Error(`ip -n ${ns} ${args.join(' ')}: exit ${ran.code}: ${ran.stderr.trim()}`);
  return ran.stdout;
}

export const link = async (ns: string, dev: string): Promise<LinkObservation> =>
  parseLink(await ipJson(ns, '-s', '-d', '-j', 'addr', 'show', 'dev', dev), dev);
export const routesOf = async (ns: string) =>
  parseRoutes(await ipJson(ns, '-4', '-j', 'route', 'show', 'table', 'main'));

export interface PingRun {
  seen: PingObservation;
  code: number | null;
  ms: number;
  output: string;
  /** continuousPing: the process had ended by itself before stop() (its output says why). */
  endedEarly?: boolean;
}

export async function ping(
  ns: string,
  ip: string,
  options: { count: number; intervalS?: number; size?: number; dontFragment?: boolean; waitS?: number },
): Promise<PingRun> {
  // -W: how long ping waits for a late reply; a slow VM must not turn a late reply into a lost one.
  const args = [
    'netns',
    'exec',
    ns,
    'ping',
    '-n',
    '-c',
    String(options.count),
    '-i',
    String(options.intervalS ?? 0.2),
    '-W',
    String(options.waitS ?? 5 * SLOW),
  ];
  if (options.size !== undefined) args.push('-s', String(options.size));
  if (options.dontFragment) args.push('-M', 'do');
  args.push(ip);
  const ran = await sh('ip', args, { timeoutMs: 30_000 * SLOW });
  const output = ran.stdout + ran.stderr;
  return { seen: parsePing(output), code: ran.code, ms: ran.ms, output };
}

/** A ping running until stopped (SIGINT), every `intervalS`; losses are read from the sequence numbers. */
export function continuousPing(
  ns: string,
  ip: string,
  intervalS: number,
): { stop: () => Promise<PingRun>; peek: () => PingObservation } {
  const begun = Date.now();
  // Bounded by a count (600 s worth), never by `-w`: iputils ping with a deadline exits at its first ICMP error
  // ("Destination Host Unreachable", a router's "Net Unreachable"), so a stream that cannot flow for a while
  // (cross-subnet in Never) would end for good and look like a blackhole in every later mode. With `-c` it
  // counts the errors and keeps sending.
  const count = Math.ceil((600 * SLOW) / intervalS);
  const child = spawn(
    'ip',
    ['netns', 'exec', ns, 'ping', '-n', '-i', String(intervalS), '-W', String(5 * SLOW), '-c', String(count), ip],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (b: Buffer) => (output += b.toString('utf8')));
  child.stderr.on('data', (b: Buffer) => (output += b.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return {
    /** What it has seen so far (the highest reply marks a switch: observe.ts lossesBySwitch). */
    peek: () => parsePing(output),
    stop: async () => {
      const endedEarly = child.exitCode !== null || child.signalCode !== null;
      child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      const code = await exited;
      clearTimeout(timer);
      return { seen: parsePing(output), code, ms: Date.now() - begun, output, endedEarly };
    },
  };
}

export async function waitFor<T>(
  probe: () => Promise<T | false | undefined>,
  timeoutMs: number,
  everyMs = 200,
): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== false && value !== undefined) return value;
    if (Date.now() >= deadline) return undefined;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A live process (not a zombie). */
export function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

/** Runs `jobs` at most `width` at a time. */
export async function inParallel<T, R>(jobs: readonly T[], width: number, work: (job: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(jobs.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await work(jobs[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, jobs.length) }, () => worker()));
  return results;
}

export function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
}

export function inCidr(ip: string, cidr: string): boolean {
  const [base, len] = cidr.split('/');
  const size = 2 ** (32 - Number(len));
  const start = Math.floor(ipv4ToInt(base!) / size) * size;
  const value = ipv4ToInt(ip);
  return value >= start && value < start + size;
}

// ---- the report ---------------------------------------------------------------------------------------------

export interface CheckResult {
  name: string;
  ok: boolean;
  facts: string[];
  problems: string[];
}

export const results: CheckResult[] = [];

export class Check {
  readonly facts: string[] = [];
  readonly problems: string[] = [];
  fact(text: string): void {
    this.facts.push(text);
  }
  /** Records a problem unless `ok`; returns `ok`. */
  expect(ok: boolean, problem: string): boolean {
    if (!ok) this.problems.push(problem);
    return ok;
  }
}

export async function check(name: string, body: (c: Check) => Promise<void>): Promise<boolean> {
  const c = new Check();
  try {
    await body(c);
  } catch (error) {
    c.problems.push(`stopped: ${(error as Error).message}`);
  }
  const ok = c.problems.length === 0;
  results.push({ name, ok, facts: c.facts, problems: c.problems });
  const lines = [
    `${ok ? 'PASS' : 'FAIL'}  ${name}  [${since()}]`,
    ...c.facts.map((f) => `        ${f}`),
    ...c.problems.map((p) => `      ✗ ${p}`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  return ok;
}

export function failWithoutRunning(names: readonly string[], why: string): void {
  for (const name of names) {
    results.push({ name, ok: false, facts: [], problems: [why] });
    process.stdout.write(`FAIL  ${name}\n      ✗ ${why}\n`);
  }
}

export function agentLogTails(state: LabState, lines = 25): string {
  return state.plan.nodes
    .map((n) => {
      let text = '';
      try {
        text = readFileSync(`${state.dir}/agent-${n.name}.log`, 'utf8');
      } catch {
        text = '(no log)';
      }
      return `---- ${n.name} agent log, last ${lines} lines ----\n${text.trimEnd().split('\n').slice(-lines).join('\n')}`;
    })
    .join('\n');
}

/** What the VM looked like when a check failed: memory, the kernel's complaints, the biggest processes. */
export async function diagnostics(): Promise<string> {
  const parts: string[] = [];
  for (const [what, command, args] of [
    ['memory', 'free', ['-m']],
    ['kernel log (last lines)', 'dmesg', ['--level=emerg,alert,crit,err,warn']],
    ['processes', 'ps', ['-eo', 'pid,stat,etimes,rss,args', '--sort=-rss']],
  ] as const) {
    const ran = await sh(command, args, { timeoutMs: 10_000 });
    parts.push(
      `---- ${what} ----\n${(ran.stdout || ran.stderr).trimEnd().split('\n').slice(-20).join('\n').slice(0, 4000)}`,
    );
  }
  return `${parts.join('\n')}\n`;
}

// ---- lab facts -------------------------------------------------------------------------------------------------

export interface LabFacts {
  state: LabState;
  /** node name → its blocks (from the agent). */
  blocks: Map<string, string[]>;
  /** pod → IP. */
  ip: (w: LabWorkload) => string;
  node: (name: string) => LabNode;
}

export async function labFacts(state: LabState): Promise<LabFacts> {
  const blocks = new Map<string, string[]>();
  for (const n of state.plan.nodes) blocks.set(n.name, (await nodeStatus(state, n.name))?.blocks ?? []);
  return {
    state,
    blocks,
    ip: (w) => state.workloadIps[w.pod]!,
    node: (name) => state.plan.nodes.find((n) => n.name === name)!,
  };
}

/** The lab's etcd through tortie's own datastore client (close it). */
export async function openLabDatastore(state: LabState): Promise<Datastore> {
  const { loadDatastoreConfig, openDatastore } = await import('../../src/datastore/index.js');
  return openDatastore(
    await loadDatastoreConfig({
      DATASTORE_TYPE: 'etcdv3',
      ETCD_ENDPOINTS: `http://127.0.0.1:${state.etcdPort}`,
      TORTIE_DATASTORE_TIMEOUT_MS: String(5000 * SLOW),
    }),
  );
}

export async function tunnelAddresses(state: LabState): Promise<Map<string, string | undefined>> {
  const ds = await openLabDatastore(state);
  try {
    const out = new Map<string, string | undefined>();
    for (const n of state.plan.nodes) out.set(n.name, (await ds.get('Node', n.name))?.spec.bgp?.ipv4IPIPTunnelAddr);
    return out;
  } finally {
    await ds.close();
  }
}

/** The path each node's route to each other node's block takes, and the problems against `want`. */
export async function routePaths(
  f: LabFacts,
  want: (from: LabNode, to: LabNode) => RemotePath,
  /** node → its VXLAN tunnel address (Node.spec.ipv4VXLANTunnelAddr): what a VXLAN route must go via. */
  vteps: ReadonlyMap<string, string | undefined> = new Map(),
): Promise<{ lines: string[]; wrong: string[] }> {
  const lines: string[] = [];
  const wrong: string[] = [];
  for (const from of f.state.plan.nodes) {
    const routes = await routesOf(from.ns);
    for (const to of f.state.plan.nodes) {
      if (to.name === from.name) continue;
      for (const block of f.blocks.get(to.name) ?? []) {
        const vtep = vteps.get(to.name);
        const path = remotePath(routes, block, to.ip, 'eth0', vtep);
        const shown = `${from.name}: ${describeRoute(routes.find((r) => r.dst === block))}`;
        lines.push(shown);
        const wanted = want(from, to);
        const shape =
          wanted === 'tunl0'
            ? `via ${to.ip} dev tunl0 onlink`
            : wanted === 'vxlan'
              ? `via ${vtep ?? '(its VTEP: the Node has none)'} dev vxlan.calico onlink`
              : `via ${to.ip} dev eth0 onlink`;
        if (path !== wanted) wrong.push(`${shown} — wanted ${shape} (${to.name}'s block)`);
      }
    }
  }
  return { lines, wrong };
}

export async function counters(f: LabFacts, dev = 'tunl0'): Promise<Map<string, LinkObservation>> {
  const out = new Map<string, LinkObservation>();
  for (const n of f.state.plan.nodes) out.set(n.name, await link(n.ns, dev));
  return out;
}

/**
 * Pings each pair `echoes` times; returns the failures and, per node, how many packets must have crossed
 * its tunl0 each way if pairs on different nodes are tunnelled: a local pod's echo to a remote pod leaves
 * (TX) and its reply arrives (RX); a remote pod's echo arrives (RX) and the reply leaves (TX).
 */
export async function pingPairs(
  f: LabFacts,
  pairs: ReadonlyArray<[LabWorkload, LabWorkload]>,
  echoes: number,
): Promise<{ failures: string[]; crossing: Map<string, number> }> {
  const crossing = new Map<string, number>(f.state.plan.nodes.map((n) => [n.name, 0]));
  const runs = await inParallel(pairs, 3, ([from, to]) => ping(from.ns, f.ip(to), { count: echoes, intervalS: 0.2 }));
  const failures: string[] = [];
  pairs.forEach(([from, to], i) => {
    const run = runs[i]!;
    if (run.seen.replies.length !== echoes)
      failures.push(`${from.pod} → ${to.pod} (${f.ip(to)}): ${run.seen.replies.length}/${echoes} replies`);
    if (from.node !== to.node) {
      crossing.set(from.node, crossing.get(from.node)! + echoes);
      crossing.set(to.node, crossing.get(to.node)! + echoes);
    }
  });
  return { failures, crossing };
}

export function allPairs(
  workloads: readonly LabWorkload[],
  keep: (a: LabWorkload, b: LabWorkload) => boolean,
): Array<[LabWorkload, LabWorkload]> {
  const pairs: Array<[LabWorkload, LabWorkload]> = [];
  for (const a of workloads) for (const b of workloads) if (a !== b && keep(a, b)) pairs.push([a, b]);
  return pairs;
}

export async function applyPool(
  state: LabState,
  modes: { ipipMode?: LabIpipMode; vxlanMode?: LabIpipMode },
): Promise<Ran> {
  const pool = state.plan.resources.find((r) => r.kind === 'IPPool')!;
  const spec = { ...pool.spec, ...modes };
  const yaml = `apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: ${pool.metadata.name}\nspec: ${JSON.stringify(spec)}\n`;
  return sh(TORTIE[0]!, [...TORTIE.slice(1), 'apply', '-f', '-'], {
    input: yaml,
    timeoutMs: 30_000 * SLOW,
    env: {
      ...process.env,
      DATASTORE_TYPE: 'etcdv3',
      ETCD_ENDPOINTS: `http://127.0.0.1:${state.etcdPort}`,
      TORTIE_DATASTORE_TIMEOUT_MS: String(5_000 * SLOW),
    },
  });
}

// ---- the labs ------------------------------------------------------------------------------------------------

export const suffix = (process.pid % 1296).toString(36);
export const io = { progress: (line: string) => process.stdout.write(`  lab: ${line}\n`) };

/** The last lines of every log in a lab's directory (agents, etcd), read without a LabState (lab up failed). */
function labLogTails(name: string, lines = 25): string {
  const dir = labDir(name);
  let files: string[] = [];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.log'));
  } catch {
    return `---- no lab directory ${dir} ----`;
  }
  return files
    .map((f) => {
      const text = readFileSync(`${dir}/${f}`, 'utf8');
      return `---- ${f}, last ${lines} lines ----\n${text.trimEnd().split('\n').slice(-lines).join('\n')}`;
    })
    .join('\n');
}

export async function withLab(
  options: Partial<LabOptions> & { name: string },
  names: readonly string[],
  body: (f: LabFacts) => Promise<void>,
): Promise<void> {
  let state: LabState | undefined;
  try {
    try {
      state = await labUp({ ...LAB_DEFAULTS, ...options }, io, TORTIE);
    } catch (error) {
      failWithoutRunning(names, `lab up failed: ${(error as Error).message}`);
      // The VM's files are gone after the run: what the agents said is only here.
      process.stdout.write(`${labLogTails(options.name)}\n${await diagnostics()}`);
      return;
    }
    const before = results.length;
    await body(await labFacts(state));
    if (results.slice(before).some((r) => !r.ok))
      process.stdout.write(`${agentLogTails(state)}\n${await diagnostics()}`);
  } finally {
    await labDown(options.name, { progress: () => undefined }).catch((error: unknown) =>
      process.stdout.write(`  lab down ${options.name}: ${(error as Error).message}\n`),
    );
  }
}
