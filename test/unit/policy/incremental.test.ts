// The incremental policy compiler against the full compile, as a property: a seeded random world (pods
// on this node and others, namespaces, policies with every kind of peer and port), then a bounded number
// of random changes — a pod's labels, addresses or named ports, pods added and removed, a namespace's
// labels, policies added, removed or edited, and the same objects re-delivered as new ones (a resync).
// After every change the incremental result must equal `renderFilter(compileEndpoints(buildWorld(input)))`
// set by set and chain by chain, and an unchanged set or chain must be the same object as before (what the
// dataplane relies on to write only what changed). Any difference fails with the seed and step.

import { describe, expect, it } from 'vitest';
import type { DesiredFilter } from '../../../felix/index.js';
import { IncrementalPolicy, type PolicyInput } from '../../../src/policy/incremental.js';
import { renderFilter } from '../../../src/policy/render.js';
import { buildWorld, compileEndpoints } from '../../../src/policy/semantics.js';
import type {
  LabelSelector,
  NetworkPolicyPeer,
  NetworkPolicyPort,
  NetworkPolicySpec,
  Resource,
} from '../../../src/resources/index.js';

const NODE = 'node-1';
const NAMESPACES = ['a', 'b', 'c'];
const APPS = ['web', 'db', 'cache'];

function prng(seed: number): () => number {
  let t = seed >>> 0;
  return () => {
    t = (t + 0x6d2b79f5) >>> 0;
    let r = Math.imul(t ^ (t >>> 15), 1 | t);
    r ^= r + Math.imul(r ^ (r >>> 7), 61 | r);
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

class Gen {
  constructor(readonly random: () => number) {}
  int(n: number): number {
    return Math.floor(this.random() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  chance(p: number): boolean {
    return this.random() < p;
  }
}

function labels(g: Gen): Record<string, string> {
  const out: Record<string, string> = {};
  if (g.chance(0.9)) out.app = g.pick(APPS);
  if (g.chance(0.5)) out.tier = g.pick(['front', 'back']);
  return out;
}

function wep(g: Gen, i: number, ipSeed: number): Resource<'WorkloadEndpoint'> {
  const ports = g.chance(0.6)
    ? [
        { name: 'http', port: g.pick([80, 8080]) },
        ...(g.chance(0.3) ? [{ name: 'dns', port: 53, protocol: 'UDP' as const }] : []),
      ]
    : undefined;
  return {
    apiVersion: 'projectcalico.org/v3',
    kind: 'WorkloadEndpoint',
    metadata: { name: `pod${i}-eth0`, namespace: g.pick(NAMESPACES), labels: labels(g) },
    spec: {
      node: g.chance(0.6) ? NODE : 'node-2',
      pod: `pod${i}`,
      interfaceName: `cali${i.toString(16).padStart(6, '0')}`,
      ipNetworks: [`10.244.${ipSeed % 4}.${(ipSeed * 7) % 250}/32`],
      ...(ports ? { ports } : {}),
    },
  };
}

function selector(g: Gen): LabelSelector {
  switch (g.int(4)) {
    case 0:
      return {};
    case 1:
      return { matchLabels: { app: g.pick(APPS) } };
    case 2:
      return {
        matchExpressions: [
          { key: 'tier', operator: g.pick(['In', 'NotIn', 'Exists', 'DoesNotExist'] as const), values: ['front'] },
        ],
      };
    default:
      return { matchLabels: { tier: g.pick(['front', 'back']) } };
  }
}

function peer(g: Gen): NetworkPolicyPeer {
  switch (g.int(4)) {
    case 0:
      return { podSelector: selector(g) };
    case 1:
      return { namespaceSelector: { matchLabels: { team: g.pick(['x', 'y']) } } };
    case 2:
      return { namespaceSelector: selector(g), podSelector: selector(g) };
    default:
      return { ipBlock: { cidr: `10.244.${g.int(4)}.0/24`, except: g.chance(0.5) ? [`10.244.${g.int(4)}.0/26`] : [] } };
  }
}

function port(g: Gen): NetworkPolicyPort {
  switch (g.int(4)) {
    case 0:
      return { port: g.pick([80, 443]) };
    case 1:
      return { port: 'http' };
    case 2:
      return { protocol: 'UDP', port: g.pick([53, 'dns']) };
    default:
      return { port: 5000, endPort: 5100 };
  }
}

function rule(g: Gen): { peers?: NetworkPolicyPeer[]; ports?: NetworkPolicyPort[] } {
  return {
    ...(g.chance(0.8) ? { peers: Array.from({ length: g.int(3) }, () => peer(g)) } : {}),
    ...(g.chance(0.7) ? { ports: Array.from({ length: 1 + g.int(2) }, () => port(g)) } : {}),
  };
}

function policy(g: Gen, name: string): Resource<'NetworkPolicy'> {
  const ingress = Array.from({ length: g.int(3) }, () => rule(g)).map((r) => ({
    ...(r.peers ? { from: r.peers } : {}),
    ...(r.ports ? { ports: r.ports } : {}),
  }));
  const egress = Array.from({ length: g.int(3) }, () => rule(g)).map((r) => ({
    ...(r.peers ? { to: r.peers } : {}),
    ...(r.ports ? { ports: r.ports } : {}),
  }));
  const types = g.pick([undefined, ['Ingress'], ['Egress'], ['Ingress', 'Egress']] as const);
  const spec: NetworkPolicySpec = {
    podSelector: selector(g),
    ...(types ? { policyTypes: [...types] } : {}),
    ...(ingress.length > 0 || g.chance(0.5) ? { ingress } : {}),
    ...(egress.length > 0 || g.chance(0.5) ? { egress } : {}),
  };
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace: g.pick(NAMESPACES) },
    spec,
  };
}

function namespace(g: Gen, name: string): Resource<'Namespace'> {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name, labels: g.chance(0.7) ? { team: g.pick(['x', 'y']) } : {} },
    spec: {},
  };
}

function full(input: PolicyInput): DesiredFilter {
  return renderFilter(compileEndpoints(buildWorld(input), NODE));
}

function plain(f: DesiredFilter): { sets: Record<string, unknown>; chains: Record<string, unknown> } {
  return {
    sets: Object.fromEntries([...f.sets].sort(([a], [b]) => a.localeCompare(b))),
    chains: Object.fromEntries([...f.chains].sort(([a], [b]) => a.localeCompare(b))),
  };
}

const clone = <T>(v: T): T => structuredClone(v);

/** One random change to the input (new arrays; changed objects are new objects, the rest are kept). */
function mutate(g: Gen, input: PolicyInput, counter: { next: number }): string {
  const weps = [...input.workloadEndpoints];
  const policies = [...input.policies];
  const namespaces = [...input.namespaces];
  let what: string;
  switch (g.int(9)) {
    case 0:
    case 1: {
      const i = g.int(weps.length);
      const w = clone(weps[i]!);
      w.metadata.labels = labels(g);
      weps[i] = w;
      what = `labels of ${w.metadata.name}`;
      break;
    }
    case 2: {
      const i = g.int(weps.length);
      const w = clone(weps[i]!);
      w.spec.ipNetworks = [`10.244.${g.int(4)}.${g.int(250)}/32`];
      if (g.chance(0.5)) w.spec.ports = g.chance(0.5) ? [{ name: 'http', port: 9090 }] : [];
      weps[i] = w;
      what = `address/ports of ${w.metadata.name}`;
      break;
    }
    case 3: {
      const n = counter.next++;
      weps.push(wep(g, n, n));
      what = `pod ${n} added`;
      break;
    }
    case 4: {
      const [gone] = weps.splice(g.int(weps.length), 1);
      what = `${gone?.metadata.name} removed`;
      break;
    }
    case 5: {
      const i = g.int(namespaces.length);
      namespaces[i] = namespace(g, namespaces[i]!.metadata.name);
      what = `namespace ${namespaces[i]!.metadata.name} labels`;
      break;
    }
    case 6: {
      if (policies.length > 0 && g.chance(0.4)) {
        const [gone] = policies.splice(g.int(policies.length), 1);
        what = `policy ${gone?.metadata.name} removed`;
      } else {
        const name = `p${counter.next++}`;
        policies.push(policy(g, name));
        what = `policy ${name} added`;
      }
      break;
    }
    case 7: {
      if (policies.length === 0) return 'nothing';
      const i = g.int(policies.length);
      const p = policy(g, policies[i]!.metadata.name);
      p.metadata.namespace = policies[i]!.metadata.namespace;
      policies[i] = p;
      what = `policy ${p.metadata.name} edited`;
      break;
    }
    default: {
      // A resync: every object delivered again as a new, equal object.
      input.workloadEndpoints = weps.map(clone);
      input.policies = policies.map(clone);
      input.namespaces = namespaces.map(clone);
      return 'everything re-delivered';
    }
  }
  input.workloadEndpoints = weps;
  input.policies = policies;
  input.namespaces = namespaces;
  return what;
}

describe('IncrementalPolicy equals the full compile after random changes', () => {
  const SEEDS = 40;
  const STEPS = 60;
  it(`${SEEDS} seeds × ${STEPS} changes`, () => {
    for (let seed = 1; seed <= SEEDS; seed++) {
      const g = new Gen(prng(seed));
      const counter = { next: 0 };
      const input: PolicyInput = {
        workloadEndpoints: Array.from({ length: 12 }, () => {
          const n = counter.next++;
          return wep(g, n, n);
        }),
        namespaces: NAMESPACES.map((n) => namespace(g, n)),
        policies: Array.from({ length: 4 }, () => policy(g, `p${counter.next++}`)),
        nodes: [],
      };
      const inc = new IncrementalPolicy(NODE);
      let previous = inc.update(input).desired;
      expect(plain(previous), `seed ${seed}, initial`).toEqual(plain(full(input)));
      for (let step = 0; step < STEPS; step++) {
        const what = mutate(g, input, counter);
        const next = inc.update(input).desired;
        const want = full(input);
        expect(plain(next), `seed ${seed}, step ${step}: ${what}`).toEqual(plain(want));
        // Reused objects: the same content as before (the dataplane skips them).
        for (const [name, set] of next.sets)
          if (previous.sets.get(name) === set)
            expect(set, `seed ${seed}, step ${step}: set ${name}`).toEqual(want.sets.get(name));
        previous = next;
      }
    }
  });

  it('a label change rebuilds only the rules and chains it touches', () => {
    const pods: Array<Resource<'WorkloadEndpoint'>> = Array.from({ length: 30 }, (_, i) => ({
      apiVersion: 'projectcalico.org/v3',
      kind: 'WorkloadEndpoint',
      metadata: { name: `pod${i}`, namespace: 'a', labels: { app: APPS[i % 3]! } },
      spec: { node: NODE, pod: `pod${i}`, interfaceName: `cali${i}`, ipNetworks: [`10.244.0.${i}/32`] },
    }));
    const policies: Array<Resource<'NetworkPolicy'>> = APPS.map((app, k) => ({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: `allow-${app}`, namespace: 'a' },
      spec: {
        podSelector: { matchLabels: { app } },
        ingress: [{ from: [{ podSelector: { matchLabels: { app: APPS[(k + 1) % 3]! } } }] }],
      },
    }));
    const input: PolicyInput = { workloadEndpoints: pods, namespaces: [], policies, nodes: [] };
    const inc = new IncrementalPolicy(NODE);
    const before = inc.update(input);
    expect(before.stats.chainsRebuilt).toBe(30);
    const changed = clone(pods[0]!);
    changed.metadata.labels = { app: 'db' };
    input.workloadEndpoints = [changed, ...pods.slice(1)];
    const after = inc.update(input);
    expect(after.stats).toEqual({
      endpointsChanged: 1,
      policiesChanged: 0,
      namespacesChanged: 0,
      rulesRebuilt: 2,
      chainsRebuilt: 1,
    });
    let sameSets = 0;
    for (const [name, set] of after.desired.sets) if (before.desired.sets.get(name) === set) sameSets++;
    expect(sameSets).toBe(1);
    expect(plain(after.desired)).toEqual(plain(full(input)));
  });
});
