// Bench `policy`: NetworkPolicy rendered into nftables and applied by the real nft in a network namespace
// of its own (removed in a `finally`): 1,000 pods on one node (the worst case: every pod has chains
// here) in 10 namespaces, 200 policies (podSelector/namespaceSelector/ipBlock peers, numeric and named
// ports). Rows: compile+render time, the first apply, a no-op apply, one pod's label change end to end
// (compile, render, diff, nft), and how rules and set elements grow with the pod count.
//
// What the numbers are not: the machine's CPUs are shared, so times are best of 3.

import { performance } from 'node:perf_hooks';
import { Nft } from '../../felix/nft.js';
import { PolicyDataplane, type DesiredFilter, type NftRunner } from '../../felix/policy-dataplane.js';
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

function render(pods: number, policyCount: number, labelOf?: (i: number) => string): DesiredFilter {
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

/** One pass: compile (buildWorld + compileEndpoints), render, apply; each timed. */
async function pass(dp: PolicyDataplane, nft: TimedNft, world: () => PolicyWorld): Promise<Stages> {
  nft.reset();
  const t0 = performance.now();
  const compiled = compileEndpoints(world(), 'node-0');
  const t1 = performance.now();
  const desired = renderFilter(compiled);
  const t2 = performance.now();
  const stats = await dp.apply(desired);
  const t3 = performance.now();
  const nftMs = nft.applyMs + nft.listMs;
  return {
    compile: t1 - t0,
    render: t2 - t1,
    diff: t3 - t2 - nftMs,
    nft: nftMs,
    total: t3 - t0,
    lines: stats.scriptLines,
  };
}

function size(f: DesiredFilter): { rules: number; elements: number } {
  let rules = 0;
  let elements = 0;
  for (const c of f.chains.values()) rules += c.rules.length;
  for (const s of f.sets.values()) elements += s.kind === 'addresses' ? s.ranges.length : s.entries.length;
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
      let first: Stages | null = null;
      let dp = new PolicyDataplane(nft);
      for (let i = 0; i < 3; i++) {
        await dp.removeTable();
        dp = new PolicyDataplane(nft);
        const s = await pass(dp, nft, () => worldOf(1000, 200));
        if (first === null || s.total < first.total) first = s;
      }
      rows.push({
        name: 'policy: first apply (compile + render + nft -f into an empty table), 1,000 pods, 200 policies',
        value: first!.total,
        unit: 'ms',
        vs: stagesText(first!),
      });
      rows.push({
        name: 'policy: no-op apply (nothing changed)',
        value: await best(3, () => dp.apply(full)),
        unit: 'ms',
      });
      // One pod's label changes (pod-7: app-7 → app-8), back and forth: compile, render, diff, nft.
      let flip = false;
      let change: Stages | null = null;
      for (let i = 0; i < 3; i++) {
        flip = !flip;
        const label = flip;
        const s = await pass(dp, nft, () =>
          worldOf(1000, 200, (j) => (j === 7 && label ? 'app-8' : `app-${j % APPS}`)),
        );
        if (change === null || s.total < change.total) change = s;
      }
      rows.push({
        name: 'policy: one label change end to end (compile + render + diff + nft)',
        value: change!.total,
        unit: 'ms',
        vs: stagesText(change!),
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
