// The incremental policy compiler: the same desired filter as `renderFilter(compileEndpoints(buildWorld(
// input), node))`, but kept up to date between inputs instead of recompiled. A pod's label change
// touches only what it changes:
//
//   selection index   per namespace, the policies there; per local pod, the policies that isolate it per
//                     direction — recomputed only for pods that changed and for the pods of a namespace
//                     whose policies changed;
//   peer index        per rule, the pods its peers match (members): a changed pod is tested against every
//                     rule, and a rule's address set is rebuilt from its members only when they changed;
//                     a changed policy, or (for rules with a namespaceSelector) a namespace's labels,
//                     rebuilds the rule from every pod;
//   render cache      per local pod and direction, its chain (rebuilt only when its rules or their shape
//                     changed); per rule, its sets (rebuilt only when its members changed).
//
// Unchanged sets and chains are the same objects as in the previous result, which the dataplane
// (felix/policy-dataplane.ts) uses to skip comparing them: so the nft script holds only what changed.
//
// Why this is hard: every cache needs a reason to be invalidated, and a missed one is a silent
// difference from the full compile. The property test (test/unit/policy/incremental.test.ts) compares
// this with the full compile after random label, pod, namespace and policy changes.

import type { DesiredFilter, FilterChain, FilterSet } from '../../felix/index.js';
import type { Resource } from '../resources/types.js';
import { NAMESPACE_NAME_LABEL } from '../resources/defaults.js';
import { ipv4Range, mergeRanges, type Range } from './ranges.js';
import { chainName, chainRules, dispatchChains, FORWARD_CHAIN, ruleSets } from './render.js';
import {
  compilePorts,
  hasEgressNamedPorts,
  hasType,
  ipBlockRanges,
  labelSelectorMatches,
  namedTargetsOn,
  normalizeNamedTargets,
  peerMatchesEndpoint,
  peersAreHosts,
  policyEndpoint,
  policyName,
  ruleId,
  rulePeersMatch,
  rulesOf,
  type CompiledRule,
  type Direction,
  type PolicyEndpoint,
  type PolicyRule,
  type PolicyWorld,
} from './semantics.js';

export interface PolicyInput {
  policies: Array<Resource<'NetworkPolicy'>>;
  namespaces: Array<Resource<'Namespace'>>;
  workloadEndpoints: Array<Resource<'WorkloadEndpoint'>>;
  nodes: Array<Resource<'Node'>>;
}

/** What one update did (for the bench and the logs). */
export interface IncrementalStats {
  /** Pods added, removed or changed since the previous input. */
  endpointsChanged: number;
  policiesChanged: number;
  namespacesChanged: number;
  /** Rules whose sets were rebuilt; local chains rebuilt. */
  rulesRebuilt: number;
  chainsRebuilt: number;
}

export interface IncrementalResult {
  desired: DesiredFilter;
  /** Local pods, and how many are isolated per direction. */
  endpoints: number;
  isolatedIngress: number;
  isolatedEgress: number;
  stats: IncrementalStats;
}

const DIRECTIONS = ['ingress', 'egress'] as const;

interface RuleState {
  id: string;
  policy: Resource<'NetworkPolicy'>;
  direction: Direction;
  index: number;
  rule: PolicyRule;
  /** Has a namespaceSelector peer: any namespace's labels change rebuilds it. */
  namespaced: boolean;
  /** Pods matched by the rule's pod/namespace peers (address set); null: the rule has no such peers. */
  podMembers: Map<string, PolicyEndpoint> | null;
  /** Pods matched by any peer (egress named ports); null: no named ports. */
  namedMembers: Map<string, PolicyEndpoint> | null;
  blockRanges: Range[];
  compiled: CompiledRule;
  sets: Array<[string, FilterSet]>;
  /** Bumped when the rule's chain lines may change (named targets appearing or vanishing). */
  shape: number;
}

interface LocalState {
  endpoint: PolicyEndpoint;
  rules: Record<Direction, RuleState[] | null>;
  /** Per direction: the rules' ids and shapes the chain was built from, and the chain. */
  chains: Record<Direction, { signature: string; name: string; chain: FilterChain } | null>;
}

function endpointKey(w: Resource<'WorkloadEndpoint'>): string {
  return `${w.metadata.namespace ?? 'default'}/${w.metadata.name}`;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export class IncrementalPolicy {
  private readonly world: PolicyWorld & { namespaceLabels: Map<string, Record<string, string>> } = {
    policies: [],
    namespaceLabels: new Map(),
    endpoints: [],
    nodeAddresses: new Map(),
  };
  private readonly wepObjects = new Map<string, Resource<'WorkloadEndpoint'>>();
  private readonly endpoints = new Map<string, PolicyEndpoint>();
  private readonly policyObjects = new Map<string, Resource<'NetworkPolicy'>>();
  /** namespace → policies there (sorted by name, as buildWorld sorts them). */
  private readonly policiesByNamespace = new Map<string, Array<Resource<'NetworkPolicy'>>>();
  /** policy name → its rules per direction. */
  private readonly rules = new Map<string, Record<Direction, RuleState[]>>();
  private readonly local = new Map<string, LocalState>();
  /** Shape counter: every rule shape is unique, so a rebuilt policy's rules never look like its old ones. */
  private shapes = 0;
  /** Chain name → the one object every pod with that chain shares. */
  private readonly shared = new Map<string, FilterChain>();
  /** The local pods sorted by interface (null: re-sort, a local pod came, went or changed). */
  private sorted: LocalState[] | null = null;
  private dispatch: { key: string; chains: Array<[string, FilterChain]> } | null = null;

  constructor(private readonly node: string) {}

  update(input: PolicyInput): IncrementalResult {
    const stats: IncrementalStats = {
      endpointsChanged: 0,
      policiesChanged: 0,
      namespacesChanged: 0,
      rulesRebuilt: 0,
      chainsRebuilt: 0,
    };
    const namespacesChanged = this.updateNamespaces(input.namespaces);
    stats.namespacesChanged = namespacesChanged;
    const changedPolicies = this.updatePolicies(input.policies);
    stats.policiesChanged = changedPolicies.size;
    const changedEndpoints = this.updateEndpoints(input.workloadEndpoints);
    stats.endpointsChanged = changedEndpoints.size;

    // Rules: new or changed policies from every pod; namespaced rules when a namespace changed; the others
    // only for the changed pods.
    const dirtyRules = new Set<RuleState>();
    for (const name of changedPolicies) {
      const policy = this.policyObjects.get(name);
      if (policy === undefined) {
        this.rules.delete(name);
        continue;
      }
      const states = { ingress: [] as RuleState[], egress: [] as RuleState[] };
      for (const direction of DIRECTIONS)
        rulesOf(policy, direction).forEach((rule, index) => {
          const state = this.newRule(policy, direction, index, rule);
          states[direction].push(state);
          dirtyRules.add(state);
        });
      this.rules.set(name, states);
    }
    for (const [name, states] of this.rules) {
      if (changedPolicies.has(name)) continue;
      for (const direction of DIRECTIONS)
        for (const state of states[direction]) {
          if (namespacesChanged > 0 && state.namespaced) {
            this.fillMembers(state);
            dirtyRules.add(state);
            continue;
          }
          for (const key of changedEndpoints) if (this.retest(state, key)) dirtyRules.add(state);
        }
    }
    const shapesBefore = this.shapes;
    for (const state of dirtyRules) this.rebuildRule(state);
    const shapesChanged = this.shapes !== shapesBefore || changedPolicies.size > 0;
    stats.rulesRebuilt = dirtyRules.size;

    // Local pods: selection, then chains.
    const namespacesWithPolicyChanges = new Set<string>();
    for (const name of changedPolicies) namespacesWithPolicyChanges.add(name.slice(0, name.indexOf('/')));
    for (const key of [...this.local.keys()])
      if (!this.endpoints.has(key)) {
        this.local.delete(key);
        this.sorted = null;
      }
    for (const [key, ep] of this.endpoints) {
      if (ep.node !== this.node) {
        if (this.local.delete(key)) this.sorted = null;
        continue;
      }
      let state = this.local.get(key);
      const rebuilt = state === undefined || changedEndpoints.has(key) || namespacesWithPolicyChanges.has(ep.namespace);
      // Nothing this pod's chains depend on changed: skip it (the common case for a single pod's change).
      if (!rebuilt && !shapesChanged) continue;
      if (state === undefined || rebuilt) {
        this.sorted = null;
        state = {
          endpoint: ep,
          rules: { ingress: this.select(ep, 'ingress'), egress: this.select(ep, 'egress') },
          chains: state?.endpoint === ep ? state.chains : { ingress: null, egress: null },
        };
        this.local.set(key, state);
      }
      for (const direction of DIRECTIONS) {
        const rules = state.rules[direction];
        if (rules === null) {
          state.chains[direction] = null;
          continue;
        }
        const signature = rules.map((r) => `${r.id}#${r.shape}`).join(' ');
        if (state.chains[direction]?.signature === signature) continue;
        const compiled = rules.map((r) => this.compiledFor(r, ep));
        const lines = chainRules(compiled, direction);
        state.chains[direction] = { signature, name: chainName(direction, lines), chain: { rules: lines } };
        stats.chainsRebuilt++;
      }
    }
    return this.result(stats);
  }

  private updateNamespaces(namespaces: Array<Resource<'Namespace'>>): number {
    const next = new Map<string, Record<string, string>>();
    for (const ns of namespaces)
      next.set(ns.metadata.name, { ...(ns.metadata.labels ?? {}), [NAMESPACE_NAME_LABEL]: ns.metadata.name });
    let changed = 0;
    const names = new Set([...next.keys(), ...this.world.namespaceLabels.keys()]);
    for (const name of names) if (!sameJson(next.get(name), this.world.namespaceLabels.get(name))) changed++;
    if (changed > 0) {
      this.world.namespaceLabels.clear();
      for (const [k, v] of next) this.world.namespaceLabels.set(k, v);
    }
    return changed;
  }

  /** Names of policies added, removed or changed. */
  private updatePolicies(policies: Array<Resource<'NetworkPolicy'>>): Set<string> {
    const changed = new Set<string>();
    const seen = new Set<string>();
    for (const p of policies) {
      const name = policyName(p);
      seen.add(name);
      const old = this.policyObjects.get(name);
      if (old === p) continue;
      this.policyObjects.set(name, p);
      if (old !== undefined && sameJson(old.spec, p.spec)) {
        this.replacePolicyObject(name, p);
        continue;
      }
      changed.add(name);
    }
    for (const name of [...this.policyObjects.keys()])
      if (!seen.has(name)) {
        this.policyObjects.delete(name);
        changed.add(name);
      }
    if (changed.size > 0) {
      this.policiesByNamespace.clear();
      const sorted = [...this.policyObjects.values()].sort((a, b) => policyName(a).localeCompare(policyName(b)));
      for (const p of sorted) {
        const ns = p.metadata.namespace ?? 'default';
        const list = this.policiesByNamespace.get(ns) ?? [];
        list.push(p);
        this.policiesByNamespace.set(ns, list);
      }
      this.world.policies = sorted;
    }
    return changed;
  }

  /** The same spec in a new object (a resync): keep every index, point them at the new object. */
  private replacePolicyObject(name: string, p: Resource<'NetworkPolicy'>): void {
    const list = this.policiesByNamespace.get(p.metadata.namespace ?? 'default') ?? [];
    const i = list.findIndex((q) => policyName(q) === name);
    if (i >= 0) list[i] = p;
    this.world.policies = this.world.policies.map((q) => (policyName(q) === name ? p : q));
    const states = this.rules.get(name);
    if (states !== undefined) for (const d of DIRECTIONS) for (const s of states[d]) s.policy = p;
  }

  /** Keys of pods added, removed or changed. */
  private updateEndpoints(weps: Array<Resource<'WorkloadEndpoint'>>): Set<string> {
    const changed = new Set<string>();
    const seen = new Set<string>();
    for (const w of weps) {
      const key = endpointKey(w);
      seen.add(key);
      if (this.wepObjects.get(key) === w) continue;
      this.wepObjects.set(key, w);
      const ep = policyEndpoint(w);
      const old = this.endpoints.get(key);
      if (old !== undefined && sameJson(old, ep)) continue;
      this.endpoints.set(key, ep);
      changed.add(key);
    }
    for (const key of [...this.endpoints.keys()])
      if (!seen.has(key)) {
        this.endpoints.delete(key);
        this.wepObjects.delete(key);
        changed.add(key);
      }
    if (changed.size > 0) this.world.endpoints = [...this.endpoints.values()];
    return changed;
  }

  private newRule(policy: Resource<'NetworkPolicy'>, direction: Direction, index: number, rule: PolicyRule): RuleState {
    const peers = rule.peers ?? [];
    const podPeers = peers.some((p) => p.ipBlock === undefined);
    const state: RuleState = {
      id: ruleId(policy, direction, index),
      policy,
      direction,
      index,
      rule,
      namespaced: peers.some((p) => p.ipBlock === undefined && p.namespaceSelector !== undefined),
      podMembers: podPeers ? new Map() : null,
      namedMembers: hasEgressNamedPorts(rule, direction) ? new Map() : null,
      blockRanges: peers.flatMap((p) => (p.ipBlock !== undefined ? ipBlockRanges(p.ipBlock) : [])),
      compiled: { id: '', policy: '', index, peers: null, ports: null, namedTargets: [] },
      sets: [],
      shape: 0,
    };
    this.fillMembers(state);
    return state;
  }

  /** Tests every pod against the rule. */
  private fillMembers(state: RuleState): void {
    state.podMembers?.clear();
    state.namedMembers?.clear();
    for (const [key, ep] of this.endpoints) this.retest(state, key, ep);
  }

  /** Re-tests one pod (gone: undefined) against the rule; true when its membership or its content matters. */
  private retest(state: RuleState, key: string, ep = this.endpoints.get(key)): boolean {
    let dirty = false;
    const ns = state.policy.metadata.namespace ?? 'default';
    if (state.podMembers !== null) {
      const now =
        ep !== undefined &&
        (state.rule.peers ?? []).some((p) => p.ipBlock === undefined && peerMatchesEndpoint(this.world, p, ns, ep));
      dirty = this.setMember(state.podMembers, key, now ? ep : undefined) || dirty;
    }
    if (state.namedMembers !== null) {
      const now = ep !== undefined && rulePeersMatch(this.world, state.policy, state.rule, ep);
      dirty = this.setMember(state.namedMembers, key, now ? ep : undefined) || dirty;
    }
    return dirty;
  }

  private setMember(members: Map<string, PolicyEndpoint>, key: string, ep: PolicyEndpoint | undefined): boolean {
    const old = members.get(key);
    if (ep === undefined) return members.delete(key);
    members.set(key, ep);
    return old !== ep;
  }

  /** The rule's peer ranges and named targets from its members. */
  private rebuildRule(state: RuleState): void {
    const peers = state.rule.peers;
    let ranges: Range[] | null = null;
    if (peers !== undefined && peers.length > 0) {
      const all: Range[] = [...state.blockRanges];
      for (const ep of state.podMembers?.values() ?? [])
        for (const ip of ep.ips) {
          const r = ipv4Range(ip);
          if (r !== null) all.push(r);
        }
      ranges = mergeRanges(all);
    }
    const named =
      state.namedMembers === null
        ? []
        : normalizeNamedTargets([...state.namedMembers.values()].flatMap((ep) => namedTargetsOn(state.rule, ep)));
    const hadNamed = state.compiled.namedTargets.length > 0;
    const fresh = state.compiled.id === '';
    state.compiled = {
      id: state.id,
      policy: policyName(state.policy),
      index: state.index,
      peers: ranges,
      ...(peersAreHosts(state.rule) ? { hostsOnly: true } : {}),
      ports: null,
      namedTargets: named,
    };
    state.sets = ruleSets(state.compiled);
    if (fresh || hadNamed !== named.length > 0) state.shape = ++this.shapes;
  }

  /** The rule as one pod's chain sees it (ingress named ports resolve on the pod). */
  private compiledFor(state: RuleState, ep: PolicyEndpoint): CompiledRule {
    return { ...state.compiled, ports: compilePorts(state.rule, state.direction, ep) };
  }

  /** [iso] The rules that apply to a local pod in one direction; null: not isolated. */
  private select(ep: PolicyEndpoint, direction: Direction): RuleState[] | null {
    const isolating = (this.policiesByNamespace.get(ep.namespace) ?? []).filter(
      (p) => hasType(p, direction) && labelSelectorMatches(p.spec.podSelector, ep.labels),
    );
    if (isolating.length === 0) return null;
    return isolating.flatMap((p) => this.rules.get(policyName(p))?.[direction] ?? []);
  }

  private result(stats: IncrementalStats): IncrementalResult {
    const sets = new Map<string, FilterSet>();
    const chains = new Map<string, FilterChain>();
    const isolated: Record<Direction, Array<[string, string]>> = { ingress: [], egress: [] };
    this.sorted ??= [...this.local.values()].sort((a, b) =>
      a.endpoint.interfaceName.localeCompare(b.endpoint.interfaceName),
    );
    const sorted = this.sorted;
    for (const state of sorted) {
      const ifname = state.endpoint.interfaceName;
      for (const direction of DIRECTIONS) {
        const rules = state.rules[direction];
        const chain = state.chains[direction];
        if (rules === null || chain === null) continue;
        for (const rule of rules) for (const [name, set] of rule.sets) sets.set(name, set);
        // Pods with the same rules share the chain: keep the first object (the same one every time).
        if (!this.shared.has(chain.name)) this.shared.set(chain.name, chain.chain);
        if (!chains.has(chain.name)) chains.set(chain.name, this.shared.get(chain.name)!);
        isolated[direction].push([ifname, chain.name]);
      }
    }
    chains.set('forward', FORWARD_CHAIN);
    for (const name of [...this.shared.keys()]) if (!chains.has(name)) this.shared.delete(name);
    const key = JSON.stringify(isolated);
    if (this.dispatch?.key !== key) this.dispatch = { key, chains: dispatchChains(isolated) };
    for (const [name, chain] of this.dispatch.chains) chains.set(name, chain);
    return {
      desired: { sets, chains },
      endpoints: sorted.length,
      isolatedIngress: isolated.ingress.length,
      isolatedEgress: isolated.egress.length,
      stats,
    };
  }
}
