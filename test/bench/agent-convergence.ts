// Bench `agent-convergence`: how long from an IPAM block claim on one node until that block is a route
// in every other node agent's Loc-RIB. The whole control-plane path of a new block, end to end:
//
//   Ipam.claimBlock (own etcd client) ──etcd──▶ owner's watch ──cache (20 ms coalescing)──▶ replan
//     ──▶ Speaker.setOriginated ──BGP UPDATE──▶ every other agent's Loc-RIB (directly, or via 2 reflectors)
//
// One real etcd per scenario (test/harness/etcd.ts); N `Agent`s in this process (src/agent/agent.ts,
// TORTIE_DATAPLANE=none, no control socket, no health server), each on its own 127.0.60.N with
// bindMode NodeIP. Scenarios: 10 and 50 agents in a full mesh; 200 agents with the mesh off and 2 route
// reflectors (label + routeReflectorClusterID, BGPPeer nodeSelector all() / peerSelector
// route-reflector == 'true'). Nodes, blocks and the reflector configuration are written before the agents
// start, so no agent swaps its Speaker (a new cluster id would) during the measurement.
//
// Timing, with no polling error: each agent's datastore is wrapped to timestamp the confirmed
// BlockAffinity of its own node as its watch delivers it, and each Speaker is created by the bench so a
// `bestChanged` listener timestamps the first moment a prefix is best in that agent's Loc-RIB. The clock
// starts just before claimBlock; a claim ends when every other agent has the prefix (checked every 1 ms,
// bounded 10 s). Between claims the bench waits for the event loop to be idle, so claims do not overlap.
//
// Why this is hard (and what the numbers are not): all agents share this process's one thread and the
// machine's 2 CPUs with etcd, whereas in a cluster each agent has its own machine. Every claim makes
// *every* agent's cache fire and replan (the block and affinity are watched by all), so at 200 agents the
// owner's replan waits behind up to 199 others: the in-process figure is an upper bound of the real one.
// Every agent has its own etcd client, as in a cluster (200 fit); AGENT_BENCH_CLIENTS=shared makes all
// agents share one (the claimer always has its own), and the row names say so.

import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { formatPrefix } from '../../bgp/ip.js';
import { Speaker, type SpeakerConfig } from '../../bgp/speaker.js';
import { Agent } from '../../src/agent/agent.js';
import { parseAgentConfig } from '../../src/agent/config.js';
import { openEtcd } from '../../src/datastore/etcd.js';
import type { Datastore, ListResult, Watch, WatchEvent } from '../../src/datastore/types.js';
import { Ipam } from '../../src/ipam/index.js';
import { createLogger } from '../../src/log.js';
import { API_VERSION, applyDefaults, type AnyResource, type Kind, type Resource } from '../../src/resources/index.js';
import { addressBlock } from '../harness/addresses.js';
import { requireEtcd, startEtcd, type EtcdInstance } from '../harness/etcd.js';
import type { Bench, BenchRow } from './bench.js';
import { profilerWindow } from './routing-profile.js';
import { runScenarioInProcesses } from './agent-convergence-procs.js';
import {
  spread,
  summarizeClaims,
  summaryRows,
  type ClaimTimeline,
  type ScenarioSummary,
  type Spread,
} from './agent-stats.js';

export interface Scenario {
  label: string;
  agents: number;
  /** 0: full mesh; otherwise the first `reflectors` nodes are route reflectors and the mesh is off. */
  reflectors: number;
  /** One etcd client per agent (as in a cluster) or one shared by all agents in this process. */
  clients: 'per-agent' | 'shared';
}

export const SCENARIOS: readonly Scenario[] = [
  { label: 'mesh 10', agents: 10, reflectors: 0, clients: 'per-agent' },
  { label: 'mesh 50', agents: 50, reflectors: 0, clients: 'per-agent' },
  { label: 'rr 200 (2 RR)', agents: 200, reflectors: 2, clients: 'per-agent' },
];

export const CLAIMS = 100;
export const TARGET_P99_MS = 50;
export const CLAIM_BOUND_MS = 10_000;
/** Everything of one scenario (setup, claims, teardown excluded) stops after this. */
export const SCENARIO_BOUND_MS = 120_000;
/** Sessions up and initial blocks everywhere, within this. */
export const SETUP_BOUND_MS = 90_000;
export const START_BATCH = 10;
const POOL = { name: 'bench-pool', cidr: '10.244.0.0/16', blockSize: 26 } as const;
const AS = 64512;
const CLUSTER_ID = '244.0.0.1';

export const block = addressBlock('test/bench/agent-convergence.ts');

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** What the bench sees of one agent: when its watch delivered its own confirmed blocks, when prefixes became best. */
export class AgentProbe {
  /** cidr → time the agent's BlockAffinity watch delivered it confirmed for this node. */
  readonly confirmedAt = new Map<string, number>();
  /** prefix text → first time it was a best route in this agent's Loc-RIB. */
  readonly bestAt = new Map<string, number>();

  constructor(readonly node: string) {}

  onAffinity(event: WatchEvent<'BlockAffinity'>): void {
    if (event.type !== 'added' && event.type !== 'modified') return;
    const spec = event.resource.spec;
    if (spec.node === this.node && spec.state === 'confirmed' && !this.confirmedAt.has(spec.cidr))
      this.confirmedAt.set(spec.cidr, performance.now());
  }

  /** A real TCP Speaker whose Loc-RIB changes are timestamped. */
  createSpeaker(config: SpeakerConfig): Speaker {
    const speaker = new Speaker(config);
    speaker.on('bestChanged', (changes) => {
      const now = performance.now();
      for (const c of changes) {
        if (c.best === null) continue;
        const key = formatPrefix(c.prefix);
        if (!this.bestAt.has(key)) this.bestAt.set(key, now);
      }
    });
    return speaker;
  }
}

/** A Datastore that hands every call to `inner`, timestamps BlockAffinity watch events, and does not close `inner`. */
export class ProbedDatastore implements Datastore {
  constructor(
    private readonly inner: Datastore,
    private readonly probe: AgentProbe,
  ) {}

  get type(): string {
    return this.inner.type;
  }
  get<K extends Kind>(kind: K, name: string, namespace?: string): Promise<Resource<K> | null> {
    return this.inner.get(kind, name, namespace);
  }
  list<K extends Kind>(kind: K, options?: { namespace?: string }): Promise<ListResult<K>> {
    return this.inner.list(kind, options);
  }
  create<K extends Kind>(resource: Resource<K>): Promise<Resource<K>> {
    return this.inner.create(resource);
  }
  update<K extends Kind>(resource: Resource<K>): Promise<Resource<K>> {
    return this.inner.update(resource);
  }
  delete<K extends Kind>(
    kind: K,
    name: string,
    options?: { namespace?: string; revision?: string },
  ): Promise<Resource<K>> {
    return this.inner.delete(kind, name, options);
  }
  watch<K extends Kind>(kind: K, fromRevision: string, onEvent: (event: WatchEvent<K>) => void): Watch {
    if (kind !== 'BlockAffinity') return this.inner.watch(kind, fromRevision, onEvent);
    return this.inner.watch(kind, fromRevision, (event) => {
      this.probe.onAffinity(event as WatchEvent<'BlockAffinity'>);
      onEvent(event);
    });
  }
  async close(): Promise<void> {
    // The bench closes the clients it opened.
  }
}

interface Node {
  name: string;
  ip: string;
  reflector: boolean;
  probe: AgentProbe;
  agent: Agent | null;
}

export function resource(
  kind: AnyResource['kind'],
  name: string,
  spec: object,
  labels?: Record<string, string>,
): AnyResource {
  return applyDefaults({
    apiVersion: API_VERSION,
    kind,
    metadata: { name, ...(labels ? { labels } : {}) },
    spec,
  } as AnyResource);
}

/** Resolves once a 5 ms timer twice fires less than 3 ms late: the agents' replans of the last claim are done. */
async function eventLoopIdle(boundMs: number): Promise<void> {
  const until = performance.now() + boundMs;
  let calm = 0;
  while (calm < 2 && performance.now() < until) {
    const before = performance.now();
    await sleep(5);
    calm = performance.now() - before < 8 ? calm + 1 : 0;
  }
}

/** Polls `check` every `everyMs` until it returns true or `boundMs` passes; returns whether it did. */
export async function waitUntil(check: () => boolean, boundMs: number, everyMs: number): Promise<boolean> {
  const until = performance.now() + boundMs;
  for (;;) {
    if (check()) return true;
    if (performance.now() >= until) return false;
    await sleep(everyMs);
  }
}

interface ScenarioResult {
  summary: ScenarioSummary | null;
  setupMs: number;
  /** Agents that were Established with every peer and held every initial block when setup ended. */
  converged: number;
  /** Main-thread busy ms per claim (every agent's work for it, in this one thread). */
  busy?: Spread | null;
  error?: string;
}

/** Every peer Established and every initial block best in its Loc-RIB. */
function nodeConverged(node: Node, initial: readonly string[]): boolean {
  const agent = node.agent;
  if (!agent) return false;
  const peers = agent.status().peers;
  if (peers.length === 0 || !peers.every((p) => p.bgpState === 'Established')) return false;
  return initial.every((cidr) => node.probe.bestAt.has(cidr));
}

/** The pool, the BGP configuration (and reflectors' BGPPeer), every Node and its first block: before any agent starts. */
export async function seedCluster(
  admin: Datastore,
  s: Scenario,
  nodes: ReadonlyArray<{ name: string; ip: string; reflector: boolean }>,
): Promise<string[]> {
  await admin.create(
    resource('IPPool', POOL.name, {
      cidr: POOL.cidr,
      blockSize: POOL.blockSize,
      ipipMode: 'Never',
      natOutgoing: true,
      nodeSelector: 'all()',
    }),
  );
  await admin.create(
    resource('BGPConfiguration', 'default', {
      bindMode: 'NodeIP',
      nodeToNodeMeshEnabled: s.reflectors === 0,
      asNumber: AS,
      logSeverityScreen: 'Error',
    }),
  );
  if (s.reflectors > 0) {
    await admin.create(
      resource('BGPPeer', 'peer-with-route-reflectors', {
        nodeSelector: 'all()',
        peerSelector: "route-reflector == 'true'",
      }),
    );
  }
  // Nodes and their first block before any agent starts: the agents then only confirm them (no claim race,
  // no Speaker swap for a cluster id that arrives late).
  const ipam = new Ipam(admin);
  const initial: string[] = [];
  for (const node of nodes) {
    await admin.create(
      resource(
        'Node',
        node.name,
        { bgp: { ipv4Address: `${node.ip}/24`, ...(node.reflector ? { routeReflectorClusterID: CLUSTER_ID } : {}) } },
        node.reflector ? { 'route-reflector': 'true' } : undefined,
      ),
    );
    initial.push(await ipam.claimBlock(node.name));
  }
  return initial;
}

/** One node agent as the bench runs it: no dataplane, no control socket or health server, probed. */
export function benchAgent(
  name: string,
  ip: string,
  probe: AgentProbe,
  client: Datastore,
  logger: ReturnType<typeof createLogger>,
): Agent {
  const env = {
    NODENAME: name,
    IP: `${ip}/24`,
    TORTIE_DATAPLANE: 'none',
    NO_DEFAULT_POOLS: 'true',
    TORTIE_HEALTH_PORT: '0',
    TORTIE_LOG_LEVEL: 'error',
  };
  return new Agent(parseAgentConfig(env, name), {
    datastore: new ProbedDatastore(client, probe),
    logger: logger.child({ node: name }),
    createSpeaker: (config) => probe.createSpeaker(config),
    interfaces: () => [],
    serveControl: null,
    startHealth: null,
    connectRetryMs: 500,
  });
}

/** `profile`: a file to write a CPU profile of the claims window to (setup and teardown left out). */
async function runScenario(s: Scenario, log: (line: string) => void, profile?: string): Promise<ScenarioResult> {
  const started = performance.now();
  let etcd: EtcdInstance | undefined;
  const clients: Datastore[] = [];
  const nodes: Node[] = Array.from({ length: s.agents }, (_, i) => {
    const name = `bench-node-${i + 1}`;
    return { name, ip: block.host(i + 1), reflector: i < s.reflectors, probe: new AgentProbe(name), agent: null };
  });
  const logger = createLogger({ level: 'error' });
  let setupMs = 0;
  let converged = 0;
  try {
    etcd = await startEtcd();
    const open = async (): Promise<Datastore> => {
      const ds = await openEtcd({ endpoints: [etcd!.endpoint], timeoutMs: 10_000 });
      clients.push(ds);
      return ds;
    };
    const admin = await open();
    const initial = await seedCluster(admin, s, nodes);
    const shared = s.clients === 'shared' ? await open() : null;
    for (let i = 0; i < nodes.length; i += START_BATCH) {
      await Promise.all(
        nodes.slice(i, i + START_BATCH).map(async (node) => {
          const agent = benchAgent(node.name, node.ip, node.probe, shared ?? (await open()), logger);
          node.agent = agent;
          await agent.start();
        }),
      );
    }
    log(
      `${s.label}: ${nodes.length} agents started in ${((performance.now() - started) / 1000).toFixed(1)} s (${s.clients === 'shared' ? 'one shared etcd client' : 'one etcd client per agent'})`,
    );
    const setupDone = await waitUntil(() => nodes.every((n) => nodeConverged(n, initial)), SETUP_BOUND_MS, 50);
    setupMs = performance.now() - started;
    converged = nodes.filter((n) => nodeConverged(n, initial)).length;
    if (!setupDone) {
      return {
        summary: null,
        setupMs,
        converged,
        error: `only ${converged} of ${nodes.length} agents had every session Established and every block within ${SETUP_BOUND_MS / 1000} s`,
      };
    }
    log(
      `${s.label}: every session Established, ${initial.length} blocks in every Loc-RIB after ${(setupMs / 1000).toFixed(1)} s`,
    );

    const claimer = new Ipam(await open());
    const timelines: ClaimTimeline[] = [];
    /** Main-thread busy time per claim, from the claim until every agent's replan of it is done. */
    const busy: number[] = [];
    const deadline = performance.now() + SCENARIO_BOUND_MS;
    await eventLoopIdle(2000);
    const profiler = profile !== undefined ? profilerWindow(profile) : null;
    await profiler?.start();
    for (let i = 0; i < CLAIMS && performance.now() < deadline; i++) {
      const owner = nodes[i % nodes.length]!;
      const others = nodes.filter((n) => n !== owner);
      const elu = performance.eventLoopUtilization();
      const t0 = performance.now();
      const cidr = await claimer.claimBlock(owner.name);
      const written = performance.now() - t0;
      await waitUntil(
        () => others.every((n) => n.probe.bestAt.has(cidr)),
        Math.max(0, t0 + CLAIM_BOUND_MS - performance.now()),
        1,
      );
      const rel = (t: number | undefined): number | undefined => (t === undefined ? undefined : t - t0);
      timelines.push({
        node: owner.name,
        cidr,
        written,
        ownerEvent: rel(owner.probe.confirmedAt.get(cidr)),
        originated: rel(owner.probe.bestAt.get(cidr)),
        others: others.map((n) => rel(n.probe.bestAt.get(cidr))),
      });
      await eventLoopIdle(2000);
      busy.push(performance.eventLoopUtilization(elu).active);
    }
    await profiler?.stop();
    if (profile !== undefined) log(`${s.label}: CPU profile of the claims written to ${profile}`);
    const summary = summarizeClaims(`${s.label}${s.clients === 'shared' ? ', shared etcd client' : ''}`, timelines);
    const load = loadavg()[0]!.toFixed(1);
    if (summary.total)
      log(
        `${s.label}: ${summary.complete}/${summary.claims} claims, p50 ${summary.total.p50.toFixed(1)} ms, p99 ${summary.total.p99.toFixed(1)} ms, max ${summary.total.max.toFixed(1)} ms (load average ${load} on this machine)`,
      );
    return { summary, setupMs, converged, busy: busy.length > 0 ? spread(busy) : null };
  } catch (error) {
    return {
      summary: null,
      setupMs: setupMs || performance.now() - started,
      converged,
      error: error instanceof Error ? error.message : String(error),
    };
  } finally {
    const stopping = nodes.map((n) => n.agent?.stop().catch(() => undefined));
    await Promise.race([Promise.all(stopping), sleep(20_000)]);
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await etcd?.stop().catch(() => undefined);
  }
}

/**
 * Scenarios by label from AGENT_BENCH_SCENARIOS ("mesh 10,rr 200 (2 RR)" or indexes "0,2"); all by default.
 * AGENT_BENCH_CLIENTS=per-agent|shared overrides every scenario's etcd clients; AGENT_BENCH_PROFILE=<path>
 * writes a CPU profile of each scenario's claims window to <path>.<scenario index>.cpuprofile.
 */
export function selectScenarios(spec: string | undefined, all: readonly Scenario[] = SCENARIOS): Scenario[] {
  if (spec === undefined || spec.trim() === '') return [...all];
  return spec.split(',').map((part) => {
    const text = part.trim();
    const found = /^\d+$/.test(text) ? all[Number(text)] : all.find((s) => s.label === text);
    if (!found)
      throw new Error(
        `AGENT_BENCH_SCENARIOS: no scenario "${text}"; known: ${all.map((s, i) => `${i} "${s.label}"`).join(', ')}`,
      );
    return found;
  });
}

export const agentConvergenceBench: Bench = {
  name: 'agent-convergence',
  async run(): Promise<BenchRow[]> {
    if (!requireEtcd()) {
      console.warn('agent-convergence: etcd is not installed (package etcd-server); skipped');
      return [];
    }
    const rows: BenchRow[] = [];
    const clients = process.env.AGENT_BENCH_CLIENTS;
    if (clients !== undefined && clients !== 'per-agent' && clients !== 'shared')
      throw new Error(`AGENT_BENCH_CLIENTS="${clients}": expected per-agent or shared`);
    for (const selected of selectScenarios(process.env.AGENT_BENCH_SCENARIOS)) {
      const scenario: Scenario = clients !== undefined ? { ...selected, clients } : selected;
      const profile = process.env.AGENT_BENCH_PROFILE
        ? `${process.env.AGENT_BENCH_PROFILE}.${SCENARIOS.indexOf(selected)}.cpuprofile`
        : undefined;
      const processes = Number(process.env.AGENT_BENCH_PROCESSES ?? '0');
      if (processes > 0) {
        const r = await runScenarioInProcesses(scenario, processes, (line) => console.log(line));
        if (r.error) console.warn(`agent-convergence ${scenario.label}: ${r.error}`);
        rows.push({
          name: `${scenario.label}, ${processes} processes: setup (agents up, every block everywhere)`,
          value: r.setupMs,
          unit: 'ms',
          vs: `${r.converged}/${scenario.agents} agents converged`,
        });
        if (r.summary) rows.push(...summaryRows(r.summary, TARGET_P99_MS));
        continue;
      }
      const result = await runScenario(scenario, (line) => console.log(line), profile);
      if (result.error) console.warn(`agent-convergence ${scenario.label}: ${result.error}`);
      rows.push({
        name: `${scenario.label}: setup (agents up, every block everywhere)`,
        value: result.setupMs,
        unit: 'ms',
        vs: `${result.converged}/${scenario.agents} agents converged`,
      });
      if (result.summary) rows.push(...summaryRows(result.summary, TARGET_P99_MS));
      if (result.busy) {
        rows.push({
          name: `${scenario.label}: this thread busy per claim (all agents' work), p50 (p99)`,
          value: result.busy.p50,
          unit: 'ms',
          vs: `p99 ${result.busy.p99.toFixed(1)} ms`,
        });
      }
    }
    return rows;
  },
};
