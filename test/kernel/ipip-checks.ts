// IPIP for real (issue #10): tortie labs in a kernel that has IPIP, with the real agents, etcd and CNI
// plugin started by the lab code (src/lab/lab.ts), and traffic that must cross tunl0 — or must not.
//
//   npm run test:kernel                         # builds, then runs this inside the VM (scripts/vm/test-kernel.sh)
//   node dist/test/kernel/ipip-checks.js        # directly, as root, on a machine whose kernel has IPIP
//
// Prints one PASS/FAIL line per check with the numbers behind it (tunl0 packet counters, route shapes,
// ping losses, times), and exits 1 when any check failed or could not run. TORTIE_KERNEL_ONLY=always or
// =crosssubnet runs one lab only.
//
//   lab "always": ipipMode Always, 3 nodes on one subnet
//     tunl0      every node: an ipip device, up, carrying its Node's ipv4IPIPTunnelAddr as a /32 (inside
//                one of its blocks), MTU = eth0's − 20
//     routes     every node: each other node's block `via <node> dev tunl0 onlink`, its own a blackhole
//     traffic    every workload pings every other (3 echoes each); every node's tunl0 RX and TX packet
//                counters grow by at least the echoes and replies that crossed it
//     mtu        DF set: 1400 bytes and exactly the tunnel MTU (payload MTU − 28) pass; one byte more fails
//                at once with "Frag needed" / "message too long", not a timeout
//     repair     tunl0 broken by hand (MTU 1300, address gone, down) while the agent is dead: the restarted
//                agent puts MTU, address and up back, and pods reach each other again
//     switch     the live IPPool through `tortie apply`: Always → Never → Always → CrossSubnet, with two
//                continuous pings (20/s) running: every route moves to the shape of the mode, the echoes
//                follow (tunl0 counts them in Always, nothing in Never/CrossSubnet), and no stream loses
//                more than one echo per switch (the one in flight)
//   lab "crosssubnet": ipipMode CrossSubnet, 4 nodes on two subnets joined by a plain router (no BGP)
//     routes     same-subnet blocks `via <node> dev eth0 onlink`, other-subnet blocks via tunl0
//     same       pings between same-subnet workloads pass and leave every tunl0 counter unchanged
//     cross      pings between the subnets pass, and every node's tunl0 counts them
//     matrix     the lab's own ping matrix: every workload reaches every other
//
// Why this is hard: an IPIP setup can have every route right and carry nothing (no tunnel address, wrong
// MTU, rp_filter, an onlink next hop that is not on the underlay), and a check that reads the wrong device
// passes forever. So every claim is measured on the traffic itself (counters before/after, echoes by
// sequence number) and every reader is unit-tested (observe.test.ts). Everything is bounded in time; the
// labs are taken down in `finally`.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ipCommand } from '../../felix/ip-command.js';
import { checkIpip } from '../../ipip/tunl0.js';
import { labDown, labPing, labUp, killAgent, nodeStatus, startAgent, type LabState } from '../../src/lab/lab.js';
import { LAB_DEFAULTS, type LabIpipMode, type LabNode, type LabOptions, type LabWorkload } from '../../src/lab/plan.js';
import {
  counterDelta,
  describeRoute,
  largestEchoPayload,
  parseLink,
  parsePing,
  parseRoutes,
  remotePath,
  type LinkObservation,
  type PingObservation,
  type RemotePath,
} from './observe.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const TORTIE = [process.execPath, CLI];
/** TORTIE_LAB_SLOWDOWN (see labTimeouts) stretches this file's own deadlines too. */
const SLOW = Math.max(1, Math.min(50, Math.floor(Number(process.env.TORTIE_LAB_SLOWDOWN ?? '1')) || 1));
const started = Date.now();
const since = (): string => `${((Date.now() - started) / 1000).toFixed(1)} s`;

// ---- running things, bounded ------------------------------------------------------------------------------

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function sh(
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
    child.stdin.end(options.input ?? '');
  });
}

async function ipJson(ns: string, ...args: string[]): Promise<string> {
  const ran = await sh('ip', ['-n', ns, ...args]);
  if (ran.code !== 0) throw new Error(`ip -n ${ns} ${args.join(' ')}: exit ${ran.code}: ${ran.stderr.trim()}`);
  return ran.stdout;
}

const link = async (ns: string, dev: string): Promise<LinkObservation> =>
  parseLink(await ipJson(ns, '-s', '-d', '-j', 'addr', 'show', 'dev', dev), dev);
const routesOf = async (ns: string) => parseRoutes(await ipJson(ns, '-4', '-j', 'route', 'show', 'table', 'main'));

interface PingRun {
  seen: PingObservation;
  code: number | null;
  ms: number;
  output: string;
}

async function ping(
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
function continuousPing(ns: string, ip: string, intervalS: number): { stop: () => Promise<PingRun> } {
  const begun = Date.now();
  const child = spawn(
    'ip',
    ['netns', 'exec', ns, 'ping', '-n', '-i', String(intervalS), '-W', String(5 * SLOW), '-w', String(600 * SLOW), ip],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (b: Buffer) => (output += b.toString('utf8')));
  child.stderr.on('data', (b: Buffer) => (output += b.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return {
    stop: async () => {
      child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      const code = await exited;
      clearTimeout(timer);
      return { seen: parsePing(output), code, ms: Date.now() - begun, output };
    },
  };
}

async function waitFor<T>(
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

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A live process (not a zombie). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

/** Runs `jobs` at most `width` at a time. */
async function inParallel<T, R>(jobs: readonly T[], width: number, work: (job: T) => Promise<R>): Promise<R[]> {
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

function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
}

function inCidr(ip: string, cidr: string): boolean {
  const [base, len] = cidr.split('/');
  const size = 2 ** (32 - Number(len));
  const start = Math.floor(ipv4ToInt(base!) / size) * size;
  const value = ipv4ToInt(ip);
  return value >= start && value < start + size;
}

// ---- the report ---------------------------------------------------------------------------------------------

interface CheckResult {
  name: string;
  ok: boolean;
  facts: string[];
  problems: string[];
}

const results: CheckResult[] = [];

class Check {
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

async function check(name: string, body: (c: Check) => Promise<void>): Promise<boolean> {
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

function failWithoutRunning(names: readonly string[], why: string): void {
  for (const name of names) {
    results.push({ name, ok: false, facts: [], problems: [why] });
    process.stdout.write(`FAIL  ${name}\n      ✗ ${why}\n`);
  }
}

function agentLogTails(state: LabState, lines = 25): string {
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
async function diagnostics(): Promise<string> {
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

interface LabFacts {
  state: LabState;
  /** node name → its blocks (from the agent). */
  blocks: Map<string, string[]>;
  /** pod → IP. */
  ip: (w: LabWorkload) => string;
  node: (name: string) => LabNode;
}

async function labFacts(state: LabState): Promise<LabFacts> {
  const blocks = new Map<string, string[]>();
  for (const n of state.plan.nodes) blocks.set(n.name, (await nodeStatus(state, n.name))?.blocks ?? []);
  return {
    state,
    blocks,
    ip: (w) => state.workloadIps[w.pod]!,
    node: (name) => state.plan.nodes.find((n) => n.name === name)!,
  };
}

async function tunnelAddresses(state: LabState): Promise<Map<string, string | undefined>> {
  const { loadDatastoreConfig, openDatastore } = await import('../../src/datastore/index.js');
  const ds = await openDatastore(
    await loadDatastoreConfig({
      DATASTORE_TYPE: 'etcdv3',
      ETCD_ENDPOINTS: `http://127.0.0.1:${state.etcdPort}`,
      TORTIE_DATASTORE_TIMEOUT_MS: String(5000 * SLOW),
    }),
  );
  try {
    const out = new Map<string, string | undefined>();
    for (const n of state.plan.nodes) out.set(n.name, (await ds.get('Node', n.name))?.spec.bgp?.ipv4IPIPTunnelAddr);
    return out;
  } finally {
    await ds.close();
  }
}

/** The path each node's route to each other node's block takes, and the problems against `want`. */
async function routePaths(
  f: LabFacts,
  want: (from: LabNode, to: LabNode) => RemotePath,
): Promise<{ lines: string[]; wrong: string[] }> {
  const lines: string[] = [];
  const wrong: string[] = [];
  for (const from of f.state.plan.nodes) {
    const routes = await routesOf(from.ns);
    for (const to of f.state.plan.nodes) {
      if (to.name === from.name) continue;
      for (const block of f.blocks.get(to.name) ?? []) {
        const path = remotePath(routes, block, to.ip);
        const shown = `${from.name}: ${describeRoute(routes.find((r) => r.dst === block))}`;
        lines.push(shown);
        if (path !== want(from, to))
          wrong.push(
            `${shown} — wanted ${want(from, to) === 'tunl0' ? `via ${to.ip} dev tunl0 onlink` : `via ${to.ip} dev eth0 onlink`} (${to.name}'s block)`,
          );
      }
    }
  }
  return { lines, wrong };
}

async function counters(f: LabFacts): Promise<Map<string, LinkObservation>> {
  const out = new Map<string, LinkObservation>();
  for (const n of f.state.plan.nodes) out.set(n.name, await link(n.ns, 'tunl0'));
  return out;
}

/**
 * Pings each pair `echoes` times; returns the failures and, per node, how many packets must have crossed
 * its tunl0 each way if pairs on different nodes are tunnelled: a local pod's echo to a remote pod leaves
 * (TX) and its reply arrives (RX); a remote pod's echo arrives (RX) and the reply leaves (TX).
 */
async function pingPairs(
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

function allPairs(
  workloads: readonly LabWorkload[],
  keep: (a: LabWorkload, b: LabWorkload) => boolean,
): Array<[LabWorkload, LabWorkload]> {
  const pairs: Array<[LabWorkload, LabWorkload]> = [];
  for (const a of workloads) for (const b of workloads) if (a !== b && keep(a, b)) pairs.push([a, b]);
  return pairs;
}

async function applyPool(state: LabState, mode: LabIpipMode): Promise<Ran> {
  const pool = state.plan.resources.find((r) => r.kind === 'IPPool')!;
  const spec = { ...pool.spec, ipipMode: mode };
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

const suffix = (process.pid % 1296).toString(36);
const io = { progress: (line: string) => process.stdout.write(`  lab: ${line}\n`) };

async function withLab(
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

const ALWAYS_CHECKS = [
  'always/tunl0',
  'always/routes',
  'always/traffic',
  'always/mtu',
  'always/repair',
  'always/switch',
] as const;
const CROSS_CHECKS = ['crosssubnet/routes', 'crosssubnet/same', 'crosssubnet/cross', 'crosssubnet/matrix'] as const;

async function alwaysLab(): Promise<void> {
  await withLab({ name: `ka${suffix}`, nodes: 3, ipipMode: 'Always' }, ALWAYS_CHECKS, async (f) => {
    const { plan } = f.state;
    const tunnel = await tunnelAddresses(f.state);

    await check(
      'always/tunl0: an ipip device on every node, up, with its tunnel address /32 and MTU eth0 − 20',
      async (c) => {
        for (const n of plan.nodes) {
          const t = await link(n.ns, 'tunl0');
          const eth0 = await link(n.ns, 'eth0');
          const address = tunnel.get(n.name);
          c.fact(
            `${n.name}: tunl0 kind ${t.kind || '?'}, ${t.up ? 'UP' : 'DOWN'}, MTU ${t.mtu} (eth0 ${eth0.mtu}), addresses ${t.addresses.join(' ') || 'none'}; Node ipv4IPIPTunnelAddr ${address ?? 'unset'}`,
          );
          c.expect(t.kind === 'ipip', `${n.name}: tunl0 is "${t.kind}", not an ipip tunnel`);
          c.expect(t.up, `${n.name}: tunl0 is not up`);
          c.expect(
            t.mtu === eth0.mtu - 20,
            `${n.name}: tunl0 MTU ${t.mtu}, wanted eth0's ${eth0.mtu} − 20 = ${eth0.mtu - 20}`,
          );
          if (c.expect(address !== undefined, `${n.name}: the Node has no spec.bgp.ipv4IPIPTunnelAddr`)) {
            c.expect(
              t.addresses.length === 1 && t.addresses[0] === `${address}/32`,
              `${n.name}: tunl0 carries [${t.addresses.join(', ')}], wanted exactly ${address}/32`,
            );
            c.expect(
              (f.blocks.get(n.name) ?? []).some((b) => inCidr(address!, b)),
              `${n.name}: tunnel address ${address} is in none of its blocks ${(f.blocks.get(n.name) ?? []).join(', ')}`,
            );
          }
        }
      },
    );

    await check(
      "always/routes: every other node's block via that node, dev tunl0 onlink; own block a blackhole",
      async (c) => {
        const { lines, wrong } = await routePaths(f, () => 'tunl0');
        lines.forEach((l) => c.fact(l));
        wrong.forEach((w) => c.expect(false, w));
        for (const n of plan.nodes) {
          const routes = await routesOf(n.ns);
          for (const block of f.blocks.get(n.name) ?? []) {
            c.expect(
              routes.some((r) => r.dst === block && r.type === 'blackhole'),
              `${n.name}: no blackhole for its own block ${block}`,
            );
          }
        }
      },
    );

    await check(
      'always/traffic: every workload pings every other through tunl0; each tunl0 counts the echoes and replies',
      async (c) => {
        const before = await counters(f);
        const echoes = 3;
        const { failures, crossing } = await pingPairs(
          f,
          allPairs(plan.workloads, () => true),
          echoes,
        );
        const after = await counters(f);
        failures.forEach((x) => c.expect(false, x));
        c.fact(
          `${plan.workloads.length * (plan.workloads.length - 1)} pairs × ${echoes} echoes, ${failures.length} failed`,
        );
        for (const n of plan.nodes) {
          const d = counterDelta(before.get(n.name)!, after.get(n.name)!);
          const want = crossing.get(n.name)!;
          c.fact(`${n.name}: tunl0 RX +${d.rx} TX +${d.tx} packets (at least ${want} each way)`);
          c.expect(want > 0, `${n.name}: no pair crossed between nodes (the lab has one node?)`);
          c.expect(
            d.rx >= want && d.tx >= want,
            `${n.name}: tunl0 counted RX +${d.rx} TX +${d.tx}, fewer than the ${want} packets each way that crossed it`,
          );
        }
      },
    );

    await check(
      'always/mtu: DF set — 1400 bytes and exactly the tunnel MTU pass, one byte more fails at once',
      async (c) => {
        const [a, b] = plan.workloads;
        const t = await link(f.node(a!.node).ns, 'tunl0');
        const fits = largestEchoPayload(t.mtu);
        const small = await ping(a!.ns, f.ip(b!), { count: 1, size: 1400 - 28, dontFragment: true });
        const exact = await ping(a!.ns, f.ip(b!), { count: 1, size: fits, dontFragment: true });
        // Refused at once by the forwarding node ("Frag needed", with the MTU) and then by the sender's own
        // path MTU cache ("message too long"); the evidence of a clean failure is those lines, not a time.
        const big = await ping(a!.ns, f.ip(b!), {
          count: 2,
          intervalS: 0.3,
          size: fits + 1,
          dontFragment: true,
          waitS: 1,
        });
        c.fact(
          `${a!.pod} → ${b!.pod}: -s ${1400 - 28} (1400 bytes) ${small.seen.replies.length}/1; -s ${fits} (${fits + 28} = tunl0 MTU ${t.mtu}) ${exact.seen.replies.length}/1; -s ${fits + 1} (${fits + 29}) exit ${big.code} in ${big.ms} ms: ${big.seen.tooBig.join(' | ') || big.output.trim().split('\n').slice(-3).join(' | ')}`,
        );
        c.expect(small.seen.replies.length === 1, `a 1400-byte echo with DF did not pass: ${small.output.trim()}`);
        c.expect(
          exact.seen.replies.length === 1,
          `a ${fits + 28}-byte echo (the tunnel MTU) with DF did not pass: ${exact.output.trim()}`,
        );
        c.expect(big.code !== 0 && big.seen.replies.length === 0, `a ${fits + 29}-byte echo with DF was answered`);
        c.expect(
          big.seen.tooBig.length > 0,
          `a ${fits + 29}-byte echo with DF failed without "Frag needed"/"message too long": ${big.output.trim()}`,
        );
        c.expect(
          big.seen.tooBig.some((l) => l.includes(String(t.mtu))),
          `the refusal does not name tunl0's MTU ${t.mtu}: ${big.seen.tooBig.join(' | ')}`,
        );
      },
    );

    await check(
      'always/repair: tunl0 broken while the agent is down (MTU 1300, no address, down) — the restarted agent repairs it',
      async (c) => {
        const n = plan.nodes[0]!;
        const address = tunnel.get(n.name);
        const wantMtu = (await link(n.ns, 'eth0')).mtu - 20;
        const old = f.state.processes.find((p) => p.role === `agent-${n.name}`)!.pid;
        await killAgent(f.state, n.name);
        // The old agent must really be gone, or it (not the restarted one) would answer for tunl0 below.
        // (Under emulation a SIGKILLed node can take seconds to finish exiting.)
        const gone = await waitFor(async () => !running(old) || undefined, 10_000 * SLOW);
        if (!c.expect(gone === true, `${n.name}: the agent (pid ${old}) still runs ${10 * SLOW} s after killAgent`)) {
          startAgent(f.state, n.name); // whatever happened, the next checks need an agent there
          return;
        }
        for (const args of [
          ['link', 'set', 'tunl0', 'mtu', '1300'],
          ['addr', 'flush', 'dev', 'tunl0'],
          ['link', 'set', 'tunl0', 'down'],
        ])
          await ipJson(n.ns, ...args);
        const broken = await link(n.ns, 'tunl0');
        c.fact(
          `${n.name}: broken by hand: MTU ${broken.mtu}, ${broken.up ? 'UP' : 'DOWN'}, addresses ${broken.addresses.join(' ') || 'none'}`,
        );
        const begun = Date.now();
        startAgent(f.state, n.name);
        const repaired = await waitFor(async () => {
          const t = await link(n.ns, 'tunl0');
          return t.up && t.mtu === wantMtu && t.addresses.join() === `${address}/32` ? t : undefined;
        }, 20_000 * SLOW);
        const now = await link(n.ns, 'tunl0');
        c.fact(
          `${n.name}: after the restart: MTU ${now.mtu}, ${now.up ? 'UP' : 'DOWN'}, addresses ${now.addresses.join(' ') || 'none'}${repaired ? ` (${((Date.now() - begun) / 1000).toFixed(1)} s after the start)` : ''}`,
        );
        c.expect(
          repaired !== undefined,
          `${n.name}: within ${20 * SLOW} s of the restart tunl0 is not back to MTU ${wantMtu}, UP, ${address}/32`,
        );
        const other = plan.workloads.find((w) => w.node !== n.name)!;
        const mine = plan.workloads.find((w) => w.node === n.name)!;
        const back = await waitFor(
          async () =>
            (await ping(other.ns, f.ip(mine), { count: 1, waitS: 2 })).seen.replies.length === 1 ? true : undefined,
          30_000 * SLOW,
          500,
        );
        c.expect(back === true, `${other.pod} cannot reach ${mine.pod} after the repair`);
        const fresh = f.state.processes.find((p) => p.role === `agent-${n.name}`)!.pid;
        c.expect(
          fresh !== old && running(fresh) && (await nodeStatus(f.state, n.name)) !== null,
          `${n.name}: the restarted agent (pid ${fresh}) is not running and answering`,
        );
      },
    );

    await check(
      'always/switch: the live pool Always → Never → Always → CrossSubnet moves every route, losing at most the echo in flight',
      async (c) => {
        const [w1, w2, w3] = plan.workloads;
        const streams = [
          { name: `${w1!.pod} → ${w2!.pod}`, run: continuousPing(w1!.ns, f.ip(w2!), 0.05) },
          { name: `${w3!.pod} → ${w1!.pod}`, run: continuousPing(w3!.ns, f.ip(w1!), 0.05) },
        ];
        await sleep(1000);
        const steps: Array<[LabIpipMode, RemotePath]> = [
          ['Never', 'direct'],
          ['Always', 'tunl0'],
          ['CrossSubnet', 'direct'], // one subnet: every node is in every other's subnet
        ];
        for (const [mode, path] of steps) {
          const begun = Date.now();
          const applied = await applyPool(f.state, mode);
          if (
            !c.expect(
              applied.code === 0,
              `tortie apply (ipipMode ${mode}) failed, exit ${applied.code}: ${applied.stderr.trim() || applied.stdout.trim()}`,
            )
          )
            break;
          const moved = await waitFor(
            async () => ((await routePaths(f, () => path)).wrong.length === 0 ? true : undefined),
            20_000 * SLOW,
          );
          const { lines, wrong } = await routePaths(f, () => path);
          c.fact(
            `ipipMode ${mode}: tortie apply ${applied.ms} ms; routes ${moved ? `moved within ${((Date.now() - begun) / 1000).toFixed(1)} s of the apply` : `did NOT all move within ${20 * SLOW} s`}; e.g. ${lines[0] ?? '(none)'}`,
          );
          wrong.forEach((w) => c.expect(false, `ipipMode ${mode}: ${w}`));
          // The traffic follows the routes: over 2 s of the two streams (20 echoes/s each), tunl0 counts them
          // in Always and nothing otherwise. (300 ms first, so nothing sent before the switch is counted.)
          await sleep(300);
          const before = await counters(f);
          await sleep(2000);
          const after = await counters(f);
          const moved1 = plan.nodes.map((n) => ({
            n: n.name,
            d: counterDelta(before.get(n.name)!, after.get(n.name)!),
          }));
          c.fact(
            `ipipMode ${mode}: tunl0 packets over 2 s of pinging: ${moved1.map(({ n, d }) => `${n} RX +${d.rx} TX +${d.tx}`).join(', ')}`,
          );
          const senders = new Set([w1!.node, w3!.node]);
          for (const { n, d } of moved1) {
            if (path === 'tunl0' && senders.has(n))
              c.expect(
                d.tx >= 10 && d.rx >= 10,
                `ipipMode ${mode}: ${n}'s tunl0 counted RX +${d.rx} TX +${d.tx} while its pod pinged another node 20 times a second`,
              );
            if (path === 'direct')
              c.expect(
                d.rx === 0 && d.tx === 0,
                `ipipMode ${mode}: ${n}'s tunl0 counted RX +${d.rx} TX +${d.tx}, but its routes no longer use it`,
              );
          }
        }
        for (const s of streams) {
          const r = await s.run.stop();
          const replies = r.seen.replies.length;
          const lost = r.seen.lostBeforeLast;
          c.fact(
            `${s.name}: ${replies} replies over ${(r.ms / 1000).toFixed(1)} s, lost ${lost.length}${lost.length ? ` (icmp_seq ${lost.join(', ')}; longest gap ${r.seen.longestGap})` : ''}`,
          );
          c.expect(replies >= 20, `${s.name}: only ${replies} replies: the stream did not run`);
          c.expect(
            lost.length <= steps.length,
            `${s.name}: lost ${lost.length} echoes over ${steps.length} switches (allowed: ${steps.length}, one in flight per switch)`,
          );
        }
      },
    );
  });
}

async function crossSubnetLab(): Promise<void> {
  await withLab(
    { name: `kb${suffix}`, nodes: 4, subnets: 2, officeRouter: 'none', ipipMode: 'CrossSubnet' },
    CROSS_CHECKS,
    async (f) => {
      const { plan } = f.state;
      const subnetOf = (w: LabWorkload): number => f.node(w.node).subnet;

      await check(
        'crosssubnet/routes: same-subnet blocks via the node on eth0, other-subnet blocks via tunl0 (all onlink)',
        async (c) => {
          const { lines, wrong } = await routePaths(f, (from, to) => (from.subnet === to.subnet ? 'direct' : 'tunl0'));
          lines.forEach((l) => c.fact(l));
          wrong.forEach((w) => c.expect(false, w));
          for (const n of plan.nodes) {
            const t = await link(n.ns, 'tunl0');
            c.expect(
              t.kind === 'ipip' && t.up && t.addresses.length === 1,
              `${n.name}: tunl0 ${t.kind} ${t.up ? 'UP' : 'DOWN'} [${t.addresses.join(', ')}], wanted an ipip device, up, with one /32`,
            );
          }
        },
      );

      await check(
        'crosssubnet/same: same-subnet pairs ping each other directly — no tunl0 counter moves',
        async (c) => {
          const pairs = allPairs(plan.workloads, (a, b) => a.node !== b.node && subnetOf(a) === subnetOf(b));
          c.expect(pairs.length > 0, 'no same-subnet pair of nodes in the lab');
          const before = await counters(f);
          const { failures } = await pingPairs(f, pairs, 3);
          const after = await counters(f);
          c.fact(
            `${pairs.length} pairs (${pairs.map(([a, b]) => `${a.pod}→${b.pod}`).join(', ')}) × 3 echoes, ${failures.length} failed`,
          );
          failures.forEach((x) => c.expect(false, x));
          for (const n of plan.nodes) {
            const d = counterDelta(before.get(n.name)!, after.get(n.name)!);
            c.fact(`${n.name}: tunl0 RX +${d.rx} TX +${d.tx}`);
            c.expect(
              d.rx === 0 && d.tx === 0,
              `${n.name}: tunl0 counted RX +${d.rx} TX +${d.tx} while only same-subnet pairs talked`,
            );
          }
        },
      );

      await check(
        'crosssubnet/cross: pairs across the subnets ping each other through tunl0 — every tunl0 counts them',
        async (c) => {
          const pairs = allPairs(plan.workloads, (a, b) => subnetOf(a) !== subnetOf(b));
          const before = await counters(f);
          const { failures, crossing } = await pingPairs(f, pairs, 3);
          const after = await counters(f);
          c.fact(`${pairs.length} pairs × 3 echoes, ${failures.length} failed`);
          failures.forEach((x) => c.expect(false, x));
          for (const n of plan.nodes) {
            const d = counterDelta(before.get(n.name)!, after.get(n.name)!);
            const want = crossing.get(n.name)!;
            c.fact(`${n.name}: tunl0 RX +${d.rx} TX +${d.tx} (at least ${want} each way)`);
            c.expect(
              d.rx >= want && d.tx >= want,
              `${n.name}: tunl0 counted RX +${d.rx} TX +${d.tx}, fewer than the ${want} packets each way that crossed it`,
            );
          }
        },
      );

      await check("crosssubnet/matrix: the lab's ping matrix — every workload reaches every other", async (c) => {
        const matrix = await labPing(f.state);
        const total = matrix.pods.length * (matrix.pods.length - 1);
        c.fact(`${total - matrix.failures.length}/${total} pairs`);
        matrix.failures.forEach((x) => c.expect(false, x));
      });
    },
  );
}

// ---- main ------------------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write(
      'kernel checks: need root (network namespaces); run them with npm run test:kernel (inside the VM)\n',
    );
    return 1;
  }
  process.env.TORTIE_LAB_ROOT ??= '/run/tortie-kernel-checks';
  // Asked in a namespace of our own (where the kernel has ipip as a module, asking loads it).
  const probe = `kchk${process.pid}`;
  await sh('ip', ['netns', 'add', probe]);
  const support = await checkIpip(probe, { ip: ipCommand({ netns: probe }) }).finally(() =>
    sh('ip', ['netns', 'del', probe]),
  );
  if (!support.supported) {
    process.stdout.write(
      `FAIL  this kernel has no IPIP, so nothing here can be checked: ${support.reason}\n      run them in the VM: npm run test:kernel (scripts/vm/test-kernel.sh)\n`,
    );
    return 1;
  }
  const release = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  process.stdout.write(`kernel checks on Linux ${release}, node ${process.version}\n`);
  const only = process.env.TORTIE_KERNEL_ONLY;
  if (only !== undefined && only !== 'always' && only !== 'crosssubnet') {
    process.stderr.write(`TORTIE_KERNEL_ONLY="${only}": always or crosssubnet (or unset for both)\n`);
    return 2;
  }
  if (only !== 'crosssubnet') await alwaysLab();
  if (only !== 'always') await crossSubnetLab();
  const failed = results.filter((r) => !r.ok);
  process.stdout.write(
    `kernel checks: ${results.length - failed.length} passed, ${failed.length} failed (${since()})\n`,
  );
  return failed.length === 0 && results.length > 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`kernel checks: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
