// Bench `policy`: NetworkPolicy rendered into nftables and applied by the real nft in a network namespace
// of its own (removed in a `finally`): 1,000 pods on one node (the worst case: every pod has chains
// here) in 10 namespaces, 200 policies (podSelector/namespaceSelector/ipBlock peers, numeric and named
// ports). Rows: compile+render time, the first apply and one pod's label change end to end — each through
// the full compile (buildWorld + compileEndpoints + renderFilter) and through the agent's incremental
// compiler (src/policy/incremental.ts) — with its stages (compile, render, diff: the dataplane's own work,
// nft: `nft -f` spawn to exit, timed by a wrapping runner), a no-op apply, a full resync, and how rules and
// set elements grow with the pod count.
//
// What the numbers are not: the machine's CPUs are shared, so times are best of 3.

import { performance } from 'node:perf_hooks';
import { Nft } from '../../felix/nft.js';
import { PolicyDataplane, type DesiredFilter, type NftRunner } from '../../felix/policy-dataplane.js';
import { IncrementalPolicy, type PolicyInput } from '../../src/policy/incremental.js';
import { renderFilter } from '../../src/policy/render.js';
import { buildWorld, compileEndpoints, type PolicyWorld } from '../../src/policy/semantics.js';
import type { NetworkPolicySpec, Resource } from '../../src/resources/index.js';
import { createNetns, netnsUnavailableReason } from '../harness/netns.js';
import type { Bench, BenchRow } from './bench.js';

const NAMESPACES = 10;
const APPS = 50;

function weps(
  count: number,
  labelOf: (i: number) => string = (i) => `app-${i % APPS}`,
): Array<Resource<'WorkloadEndpoint'>> {
  return Array.from({ length: count }, (_, i) => ({
    apiVersion: 'projectcalico.org/v3' as const,
    kind: 'WorkloadEndpoint' as const,
    metadata: {
      name: `node-0-k8s-pod-${i}-eth0`,
      namespace: `ns-${i % NAMESPACES}`,
      labels: { app: labelOf(i), tier: i % 3 === 0 ? 'front' : 'back' },
    },
    spec: {
      node: 'node-0',
      pod: `pod-${i}`,
      interfaceName: `calib${i.toString(16).padStart(10, '0')}`,
      ipNetworks: [`10.244.${Math.floor(i / 250)}.${i % 250}/32`],
      ports: [{ name: 'http', port: 8080 }],
    },
  }));
}

function policies(count: number): Array<Resource<'NetworkPolicy'>> {
  return Array.from({ length: count }, (_, k) => {
    const spec: NetworkPolicySpec = {
      podSelector: { matchLabels: { app: `app-${k % APPS}` } },
      policyTypes: k % 4 === 0 ? ['Ingress', 'Egress'] : ['Ingress'],
      ingress: [
        {
          from: [
            { podSelector: { matchLabels: { app: `app-${(k + 1) % APPS}` } } },
            {
              namespaceSelector: { matchLabels: { team: `t${k % 5}` } },
              podSelector: { matchLabels: { tier: 'front' } },
            },
          ],
          ports: [{ port: 8080 }, { port: 'http' }],
        },
        {
          from: [{ ipBlock: { cidr: '192.168.0.0/16', except: [`192.168.${k % 256}.0/24`] } }],
          ports: [{ protocol: 'UDP', port: 5000, endPort: 5100 }],
        },
      ],
      ...(k % 4 === 0
        ? {
            egress: [
              { ports: [{ protocol: 'UDP' as const, port: 53 }] },
              { to: [{ podSelector: {} }], ports: [{ port: 'http' }] },
            ],
          }
        : {}),
    };
    return {
      apiVersion: 'networking.k8s.io/v1' as const,
      kind: 'NetworkPolicy' as const,
      metadata: { name: `p${k}`, namespace: `ns-${k % NAMESPACES}` },
      spec,
    };
  });
}

const NAMESPACE_RESOURCES: Array<Resource<'Namespace'>> = Array.from({ length: NAMESPACES }, (_, n) => ({
  apiVersion: 'v1' as const,
  kind: 'Namespace' as const,
  metadata: { name: `ns-${n}`, labels: { team: `t${n % 5}` } },
  spec: {},
}));

function worldOf(pods: number, policyCount: number, labelOf?: (i: number) => string): PolicyWorld {
  return buildWorld({
    policies: policies(policyCount),
    namespaces: NAMESPACE_RESOURCES,
    workloadEndpoints: weps(pods, labelOf),
    nodes: [],
  });
}

export function render(pods: number, policyCount: number, labelOf?: (i: number) => string): DesiredFilter {
  return renderFilter(compileEndpoints(worldOf(pods, policyCount, labelOf), 'node-0'));
}

/** An NftRunner that times each call of the real one. */
class TimedNft implements NftRunner {
  applyMs = 0;
  listMs = 0;
  constructor(private readonly inner: Nft) {}
  async apply(script: string): Promise<void> {
    const t0 = performance.now();
    try {
      await this.inner.apply(script);
    } finally {
      this.applyMs += performance.now() - t0;
    }
  }
  async listTable(family: 'ip' | 'inet', name: string): Promise<unknown[] | null> {
    const t0 = performance.now();
    try {
      return await this.inner.listTable(family, name);
    } finally {
      this.listMs += performance.now() - t0;
    }
  }
  reset(): void {
    this.applyMs = 0;
    this.listMs = 0;
  }
}

/** Stage times of one end-to-end pass (ms). */
interface Stages {
  compile: number;
  render: number;
  /** PolicyDataplane's own work: canonical forms, the diff, the script text. */
  diff: number;
  /** `nft -f` from spawn to exit (and `nft -j list` when the pass read the table). */
  nft: number;
  total: number;
  lines: number;
}

function stagesText(s: Stages): string {
  const f = (v: number): string => v.toFixed(1);
  return `compile ${f(s.compile)} + render ${f(s.render)} + diff ${f(s.diff)} + nft ${f(s.nft)} ms; ${s.lines}-line script`;
}

/** Produces the desired filter: compile (and render, when the compiler does both at once) timed by the caller. */
type Producer = () => { desired: DesiredFilter; compileMs: number; renderMs: number };

/** The full path: buildWorld + compileEndpoints, then renderFilter. */
function fullProducer(world: () => PolicyWorld): Producer {
  return () => {
    const t0 = performance.now();
    const compiled = compileEndpoints(world(), 'node-0');
    const t1 = performance.now();
    const desired = renderFilter(compiled);
    return { desired, compileMs: t1 - t0, renderMs: performance.now() - t1 };
  };
}

/** The incremental path (the agent's): IncrementalPolicy.update compiles and renders what changed. */
function incrementalProducer(compiler: IncrementalPolicy, input: () => PolicyInput): Producer {
  return () => {
    const next = input();
    const t0 = performance.now();
    const { desired } = compiler.update(next);
    return { desired, compileMs: performance.now() - t0, renderMs: 0 };
  };
}

/** One pass: produce the desired filter, apply it; each stage timed. */
async function pass(dp: PolicyDataplane, nft: TimedNft, produce: Producer): Promise<Stages> {
  nft.reset();
  const t0 = performance.now();
  const { desired, compileMs, renderMs } = produce();
  const t2 = performance.now();
  const stats = await dp.apply(desired);
  const t3 = performance.now();
  const nftMs = nft.applyMs + nft.listMs;
  return {
    compile: compileMs,
    render: renderMs,
    diff: t3 - t2 - nftMs,
    nft: nftMs,
    total: t3 - t0,
    lines: stats.scriptLines,
  };
}

export function benchInput(pods: number, policyCount: number): PolicyInput {
  return {
    policies: policies(policyCount),
    namespaces: NAMESPACE_RESOURCES,
    workloadEndpoints: weps(pods),
    nodes: [],
  };
}

/** The input with pod-7's WorkloadEndpoint replaced by a new object labelled app-8 (or its original back). */
export function flipped(base: PolicyInput, changed: boolean): PolicyInput {
  if (!changed) return { ...base, workloadEndpoints: [...base.workloadEndpoints] };
  const w = structuredClone(base.workloadEndpoints[7]!);
  w.metadata.labels = { ...w.metadata.labels, app: 'app-8' };
  const workloadEndpoints = [...base.workloadEndpoints];
  workloadEndpoints[7] = w;
  return { ...base, workloadEndpoints };
}

function size(f: DesiredFilter): { rules: number; elements: number } {
  let rules = 0;
  let elements = 0;
  for (const c of f.chains.values()) rules += c.rules.length;
  for (const s of f.sets.values())
    elements += s.kind === 'addresses' ? s.ranges.length : s.kind === 'hosts' ? s.addresses.length : s.entries.length;
  return { rules, elements };
}

async function best(n: number, fn: () => Promise<unknown> | unknown): Promise<number> {
  let bestMs = Infinity;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn();
    bestMs = Math.min(bestMs, performance.now() - t0);
  }
  return bestMs;
}

export const policyBench: Bench = {
  name: 'policy',
  async run(): Promise<BenchRow[]> {
    const unavailable = netnsUnavailableReason();
    if (unavailable !== null) {
      console.warn(`policy: ${unavailable}; skipped`);
      return [];
    }
    const rows: BenchRow[] = [];
    const renderMs = await best(3, () => render(1000, 200));
    rows.push({ name: 'policy: compile + render, 1,000 pods, 200 policies', value: renderMs, unit: 'ms' });
    const full = render(1000, 200);
    const { rules, elements } = size(full);
    rows.push({
      name: 'policy: nft rules for 1,000 pods, 200 policies',
      value: rules,
      unit: 'rules',
      vs: `${full.chains.size} chains, ${full.sets.size} sets, ${elements} set elements`,
    });
    for (const pods of [250, 500]) {
      const s = size(render(pods, 200));
      rows.push({
        name: `policy: nft rules for ${pods} pods, 200 policies`,
        value: s.rules,
        unit: 'rules',
        vs: `${s.elements} set elements`,
      });
    }
    const ns = await createNetns('policybench');
    try {
      const nft = new TimedNft(new Nft({ netns: ns.name, timeoutMs: 120_000 }));
      // First apply into an empty table, 3 times (the table removed in between): best, with its stages.
      const firstApply = async (producer: () => Producer): Promise<{ best: Stages; dp: PolicyDataplane }> => {
        let bestStages: Stages | null = null;
        let dp = new PolicyDataplane(nft);
        for (let i = 0; i < 3; i++) {
          await dp.removeTable();
          dp = new PolicyDataplane(nft);
          const s = await pass(dp, nft, producer());
          if (bestStages === null || s.total < bestStages.total) bestStages = s;
        }
        return { best: bestStages!, dp };
      };
      // One pod's label changes (pod-7: app-7 → app-8), back and forth, 3 times: best, with its stages.
      const labelChange = async (dp: PolicyDataplane, producer: (flip: boolean) => Producer): Promise<Stages> => {
        let bestStages: Stages | null = null;
        for (let i = 0; i < 3; i++) {
          const s = await pass(dp, nft, producer(i % 2 === 0));
          if (bestStages === null || s.total < bestStages.total) bestStages = s;
        }
        return bestStages!;
      };

      const fullFirst = await firstApply(() => fullProducer(() => worldOf(1000, 200)));
      rows.push({
        name: 'policy: first apply, full compile (compile + render + nft -f into an empty table), 1,000 pods, 200 policies',
        value: fullFirst.best.total,
        unit: 'ms',
        vs: stagesText(fullFirst.best),
      });
      const fullChange = await labelChange(fullFirst.dp, (flip) =>
        fullProducer(() => worldOf(1000, 200, (j) => (j === 7 && flip ? 'app-8' : `app-${j % APPS}`))),
      );
      rows.push({
        name: 'policy: one label change, full recompile (compile + render + diff + nft)',
        value: fullChange.total,
        unit: 'ms',
        vs: stagesText(fullChange),
      });

      const base = benchInput(1000, 200);
      const incFirst = await firstApply(() => incrementalProducer(new IncrementalPolicy('node-0'), () => base));
      rows.push({
        name: 'policy: first apply, incremental compiler (compile + render + nft -f into an empty table)',
        value: incFirst.best.total,
        unit: 'ms',
        vs: stagesText(incFirst.best),
      });
      const compiler = new IncrementalPolicy('node-0');
      const dp = new PolicyDataplane(nft);
      await pass(
        dp,
        nft,
        incrementalProducer(compiler, () => base),
      );
      rows.push({
        name: 'policy: no-op apply (nothing changed)',
        value: await best(3, () =>
          pass(
            dp,
            nft,
            incrementalProducer(compiler, () => flipped(base, false)),
          ),
        ),
        unit: 'ms',
      });
      const incChange = await labelChange(dp, (flip) => incrementalProducer(compiler, () => flipped(base, flip)));
      rows.push({
        name: 'policy: one label change, incremental (compile + render + diff + nft)',
        value: incChange.total,
        unit: 'ms',
        vs: stagesText(incChange),
      });
      rows.push({
        name: 'policy: full resync (nft -j list + compare)',
        value: await best(3, () => dp.resync(full)),
        unit: 'ms',
      });
    } finally {
      await ns.destroy();
    }
    return rows;
  },
};
