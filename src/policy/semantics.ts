// Kubernetes NetworkPolicy semantics (networking.k8s.io/v1), exactly as the Kubernetes documentation
// states them, as pure functions: which pods a policy selects, which peers and ports a rule admits, and
// `decide(from, to, port, protocol)` — allowed or denied, naming the policy and rule that decide each side.
//
// The rules, each applied once below where it is cited:
//  [iso]    a pod is isolated for ingress (egress) when some policy in its namespace selects it and has
//           Ingress (Egress) in policyTypes; policyTypes defaults to Ingress, plus Egress with egress rules
//           (defaults.ts / the API server fill it in). A pod no policy isolates allows everything.
//  [add]    policies are allow-lists and add up: a connection is allowed on a side when any rule of any
//           policy selecting the pod allows it; order does not matter.
//  [peer]   `from`/`to` entries are ORed; namespaceSelector AND podSelector in one entry; podSelector alone
//           = pods of the policy's namespace; namespaceSelector alone = every pod of the selected namespaces;
//           ipBlock = addresses in cidr and not in any except. Empty or missing from/to = every peer.
//  [port]   ports: protocol (TCP default) and a numeric port, a port..endPort range, or a named port (the
//           destination pod's container port of that name and protocol); empty or missing = all ports.
//  [node]   traffic from the pod's own node (its addresses) is always allowed into the pod.
//  [both]   a connection needs the source's egress AND the destination's ingress; replies of an allowed
//           connection are not policy's business (conntrack), so nothing here looks at them.
//
// Why this is hard: the empty cases. `podSelector: {}` selects every pod, an empty rule `{}` allows
// everything, but a missing `ingress` list with Ingress in policyTypes allows nothing; `from: []` means all
// while a peer whose selector matches no pod matches nothing. And named ports resolve against the
// destination, so an egress rule's meaning depends on which pod is on the other end.

import type {
  EndpointPort,
  LabelSelector,
  NetworkPolicyPeer,
  NetworkPolicyPort,
  PolicyProtocol,
  Resource,
} from '../resources/types.js';
import { NAMESPACE_NAME_LABEL } from '../resources/defaults.js';
import { ipv4Range, mergeRanges, rangeContains, subtractRanges, type Range } from './ranges.js';

/** A pod as policy sees it. */
export interface PolicyEndpoint {
  namespace: string;
  pod: string;
  node: string;
  interfaceName: string;
  /** Plain addresses ("10.244.1.5"). */
  ips: string[];
  labels: Record<string, string>;
  ports: EndpointPort[];
}

/** Everything a decision depends on. */
export interface PolicyWorld {
  policies: Array<Resource<'NetworkPolicy'>>;
  /** Namespace → its labels. A namespace with no object has only kubernetes.io/metadata.name. */
  namespaceLabels: ReadonlyMap<string, Record<string, string>>;
  endpoints: PolicyEndpoint[];
  /** Node name → its addresses (for [node]). */
  nodeAddresses: ReadonlyMap<string, string[]>;
}

export type Direction = 'ingress' | 'egress';

/** The policy world from datastore resources (WorkloadEndpoints, Namespaces, Nodes, NetworkPolicies). */
export function buildWorld(input: {
  policies: Array<Resource<'NetworkPolicy'>>;
  namespaces: Array<Resource<'Namespace'>>;
  workloadEndpoints: Array<Resource<'WorkloadEndpoint'>>;
  nodes: Array<Resource<'Node'>>;
}): PolicyWorld {
  const namespaceLabels = new Map<string, Record<string, string>>();
  for (const ns of input.namespaces)
    namespaceLabels.set(ns.metadata.name, { ...(ns.metadata.labels ?? {}), [NAMESPACE_NAME_LABEL]: ns.metadata.name });
  const endpoints = input.workloadEndpoints.map(policyEndpoint);
  const nodeAddresses = new Map<string, string[]>();
  for (const n of input.nodes) {
    const addresses = [n.spec.bgp?.ipv4Address, n.spec.bgp?.ipv4IPIPTunnelAddr]
      .filter((a): a is string => typeof a === 'string')
      .map((a) => a.split('/')[0]!);
    nodeAddresses.set(n.metadata.name, addresses);
  }
  const policies = [...input.policies].sort((a, b) => policyName(a).localeCompare(policyName(b)));
  return { policies, namespaceLabels, endpoints, nodeAddresses };
}

/** A WorkloadEndpoint as policy sees it. */
export function policyEndpoint(w: Resource<'WorkloadEndpoint'>): PolicyEndpoint {
  return {
    namespace: w.metadata.namespace ?? 'default',
    pod: w.spec.pod ?? w.metadata.name,
    node: w.spec.node,
    interfaceName: w.spec.interfaceName,
    ips: (w.spec.ipNetworks ?? []).map((n) => n.split('/')[0] ?? '').filter((ip) => ip !== ''),
    labels: w.metadata.labels ?? {},
    ports: w.spec.ports ?? [],
  };
}

export function policyName(p: Resource<'NetworkPolicy'>): string {
  return `${p.metadata.namespace ?? 'default'}/${p.metadata.name}`;
}

export function namespaceLabelsOf(world: PolicyWorld, namespace: string): Record<string, string> {
  return world.namespaceLabels.get(namespace) ?? { [NAMESPACE_NAME_LABEL]: namespace };
}

/** metav1.LabelSelector: every matchLabels pair AND every expression; NotIn and DoesNotExist match an absent key. */
export function labelSelectorMatches(selector: LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (selector === undefined) return true;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const values = e.values ?? [];
    const ok =
      e.operator === 'In'
        ? has && values.includes(labels[e.key]!)
        : e.operator === 'NotIn'
          ? !has || !values.includes(labels[e.key]!)
          : e.operator === 'Exists'
            ? has
            : !has;
    if (!ok) return false;
  }
  return true;
}

/** [iso] Does `policy` select `ep`? Only pods of its own namespace. */
export function policySelects(policy: Resource<'NetworkPolicy'>, ep: PolicyEndpoint): boolean {
  return (
    ep.namespace === (policy.metadata.namespace ?? 'default') &&
    labelSelectorMatches(policy.spec.podSelector, ep.labels)
  );
}

export function hasType(policy: Resource<'NetworkPolicy'>, direction: Direction): boolean {
  return (policy.spec.policyTypes ?? ['Ingress']).includes(direction === 'ingress' ? 'Ingress' : 'Egress');
}

/** Policies that isolate `ep` for `direction` ([iso]), sorted by namespace/name. */
export function isolatingPolicies(
  world: PolicyWorld,
  ep: PolicyEndpoint,
  direction: Direction,
): Array<Resource<'NetworkPolicy'>> {
  return world.policies.filter((p) => hasType(p, direction) && policySelects(p, ep));
}

export interface PolicyRule {
  peers: NetworkPolicyPeer[] | undefined;
  ports: NetworkPolicyPort[] | undefined;
}

export function rulesOf(policy: Resource<'NetworkPolicy'>, direction: Direction): PolicyRule[] {
  if (direction === 'ingress') return (policy.spec.ingress ?? []).map((r) => ({ peers: r.from, ports: r.ports }));
  return (policy.spec.egress ?? []).map((r) => ({ peers: r.to, ports: r.ports }));
}

/** ipBlock: cidr minus its excepts, as ranges. */
export function ipBlockRanges(block: { cidr: string; except?: string[] }): Range[] {
  const range = ipv4Range(block.cidr);
  if (range === null) return [];
  return subtractRanges(
    range,
    (block.except ?? []).map(ipv4Range).filter((r): r is Range => r !== null),
  );
}

function ipValue(ip: string): number | null {
  return ipv4Range(`${ip}/32`)?.[0] ?? null;
}

/** [peer] Does one from/to entry of a policy in `policyNamespace` match a pod? */
export function peerMatchesEndpoint(
  world: PolicyWorld,
  peer: NetworkPolicyPeer,
  policyNamespace: string,
  ep: PolicyEndpoint,
): boolean {
  if (peer.ipBlock !== undefined) {
    const ranges = ipBlockRanges(peer.ipBlock);
    return ep.ips.some((ip) => {
      const v = ipValue(ip);
      return v !== null && rangeContains(ranges, v);
    });
  }
  const namespaceOk =
    peer.namespaceSelector !== undefined
      ? labelSelectorMatches(peer.namespaceSelector, namespaceLabelsOf(world, ep.namespace))
      : ep.namespace === policyNamespace;
  return namespaceOk && (peer.podSelector === undefined || labelSelectorMatches(peer.podSelector, ep.labels));
}

/** [peer] An address that is no pod's: only ipBlock entries can match it. */
export function peerMatchesAddress(peer: NetworkPolicyPeer, ip: string): boolean {
  if (peer.ipBlock === undefined) return false;
  const v = ipValue(ip);
  return v !== null && rangeContains(ipBlockRanges(peer.ipBlock), v);
}

/** [port] Does a rule's port list admit (protocol, port) toward `target` (whose named ports resolve)? */
export function portsMatch(
  ports: NetworkPolicyPort[] | undefined,
  protocol: PolicyProtocol,
  port: number,
  target: PolicyEndpoint | null,
): boolean {
  if (ports === undefined || ports.length === 0) return true;
  return ports.some((p) => {
    if ((p.protocol ?? 'TCP') !== protocol) return false;
    if (p.port === undefined) return true;
    if (typeof p.port === 'number') return port >= p.port && port <= (p.endPort ?? p.port);
    return resolveNamedPort(target, p.port, protocol) === port;
  });
}

/** The number a named port has on `target`, or null (no such container port, or not a pod). */
export function resolveNamedPort(target: PolicyEndpoint | null, name: string, protocol: PolicyProtocol): number | null {
  return target?.ports.find((c) => c.name === name && (c.protocol ?? 'TCP') === protocol)?.port ?? null;
}

export type Source = { endpoint: PolicyEndpoint } | { ip: string };

export interface SideDecision {
  direction: Direction;
  allowed: boolean;
  /** The policies isolating the pod on this side (empty: not isolated). */
  isolatedBy: string[];
  /** The policy and 0-based rule index that allow it, when one does. */
  policy?: string;
  rule?: number;
  reason: string;
}

export interface Decision {
  allowed: boolean;
  egress: SideDecision;
  ingress: SideDecision;
}

/** The pod that has `ip`, if any. */
export function endpointByIp(world: PolicyWorld, ip: string): PolicyEndpoint | undefined {
  return world.endpoints.find((e) => e.ips.includes(ip));
}

function describePeer(source: Source): string {
  return 'endpoint' in source ? `${source.endpoint.namespace}/${source.endpoint.pod}` : source.ip;
}

/** [both] Is a new connection from `from` to pod `to` on port/protocol allowed, and by what? */
export function decide(
  world: PolicyWorld,
  from: Source,
  to: PolicyEndpoint,
  port: number,
  protocol: PolicyProtocol,
): Decision {
  // A bare address that is a pod's is that pod.
  const source: Source =
    'ip' in from
      ? endpointByIp(world, from.ip) !== undefined
        ? { endpoint: endpointByIp(world, from.ip)! }
        : from
      : from;
  const egress = decideEgress(world, source, to, port, protocol);
  const ingress = decideIngress(world, source, to, port, protocol);
  return { allowed: egress.allowed && ingress.allowed, egress, ingress };
}

function decideEgress(
  world: PolicyWorld,
  source: Source,
  to: PolicyEndpoint,
  port: number,
  protocol: PolicyProtocol,
): SideDecision {
  const base = { direction: 'egress' as const };
  if (!('endpoint' in source))
    return {
      ...base,
      allowed: true,
      isolatedBy: [],
      reason: `the source ${source.ip} is not a pod: no egress policy applies to it`,
    };
  const isolating = isolatingPolicies(world, source.endpoint, 'egress');
  const names = isolating.map(policyName);
  if (isolating.length === 0)
    return {
      ...base,
      allowed: true,
      isolatedBy: [],
      reason: `${describePeer(source)} is not isolated for egress (no policy with Egress in policyTypes selects it)`,
    };
  for (const policy of isolating) {
    const rules = rulesOf(policy, 'egress');
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i]!;
      const peerOk =
        rule.peers === undefined ||
        rule.peers.length === 0 ||
        rule.peers.some((p) => peerMatchesEndpoint(world, p, policy.metadata.namespace ?? 'default', to));
      if (peerOk && portsMatch(rule.ports, protocol, port, to)) {
        return {
          ...base,
          allowed: true,
          isolatedBy: names,
          policy: policyName(policy),
          rule: i,
          reason: `allowed by ${policyName(policy)} egress rule ${i}`,
        };
      }
    }
  }
  return {
    ...base,
    allowed: false,
    isolatedBy: names,
    reason: `${describePeer(source)} is isolated for egress by ${names.join(', ')} and no egress rule allows ${to.namespace}/${to.pod} port ${port}/${protocol}`,
  };
}

function decideIngress(
  world: PolicyWorld,
  source: Source,
  to: PolicyEndpoint,
  port: number,
  protocol: PolicyProtocol,
): SideDecision {
  const base = { direction: 'ingress' as const };
  const isolating = isolatingPolicies(world, to, 'ingress');
  const names = isolating.map(policyName);
  const sourceIps = 'endpoint' in source ? source.endpoint.ips : [source.ip];
  // [node] the node's own traffic (kubelet probes) always reaches its pods.
  const nodeIps = world.nodeAddresses.get(to.node) ?? [];
  if (!('endpoint' in source) && sourceIps.some((ip) => nodeIps.includes(ip))) {
    return {
      ...base,
      allowed: true,
      isolatedBy: names,
      reason: `${source.ip} is the address of ${to.node}, the pod's own node: always allowed`,
    };
  }
  if (isolating.length === 0)
    return {
      ...base,
      allowed: true,
      isolatedBy: [],
      reason: `${to.namespace}/${to.pod} is not isolated for ingress (no policy with Ingress in policyTypes selects it)`,
    };
  for (const policy of isolating) {
    const rules = rulesOf(policy, 'ingress');
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i]!;
      const ns = policy.metadata.namespace ?? 'default';
      const peerOk =
        rule.peers === undefined ||
        rule.peers.length === 0 ||
        rule.peers.some((p) =>
          'endpoint' in source ? peerMatchesEndpoint(world, p, ns, source.endpoint) : peerMatchesAddress(p, source.ip),
        );
      if (peerOk && portsMatch(rule.ports, protocol, port, to)) {
        return {
          ...base,
          allowed: true,
          isolatedBy: names,
          policy: policyName(policy),
          rule: i,
          reason: `allowed by ${policyName(policy)} ingress rule ${i}`,
        };
      }
    }
  }
  return {
    ...base,
    allowed: false,
    isolatedBy: names,
    reason: `${to.namespace}/${to.pod} is isolated for ingress by ${names.join(', ')} and no ingress rule allows ${describePeer(source)} on port ${port}/${protocol}`,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Compiled form for the dataplane: per rule, the peer addresses as ranges (shared by every pod the policy
// selects) and the ports; per pod and direction, the rules that apply (null = not isolated).

export interface CompiledPort {
  protocol: PolicyProtocol;
  /** Absent: every port of the protocol. */
  first?: number;
  last?: number;
}

export interface CompiledRule {
  /** "<ns>/<name>/<ingress|egress>/<index>": the identity of the rule (and of its sets). */
  id: string;
  policy: string;
  index: number;
  /** Peer addresses (sorted, disjoint); null = every peer. */
  peers: Range[] | null;
  /** Every peer is a pod selector (no ipBlock): the peers are single addresses (a hash set, not intervals). */
  hostsOnly?: boolean;
  /** Numeric ports; null = every port and protocol; [] = none numeric (only named ones below). */
  ports: CompiledPort[] | null;
  /**
   * Egress named ports: (destination address, protocol, port) triples, one per pod the rule's peers
   * match that has a container port of that name. Ingress named ports resolve to `ports` per pod instead.
   */
  namedTargets: Array<{ ip: number; protocol: PolicyProtocol; port: number }>;
}

export interface CompiledEndpoint {
  endpoint: PolicyEndpoint;
  /** null: not isolated in that direction. */
  ingress: CompiledRule[] | null;
  egress: CompiledRule[] | null;
}

/** Peer ranges of one rule: every matched pod's addresses plus every ipBlock (minus excepts). */
export function rulePeerRanges(
  world: PolicyWorld,
  policy: Resource<'NetworkPolicy'>,
  peers: NetworkPolicyPeer[] | undefined,
): Range[] | null {
  if (peers === undefined || peers.length === 0) return null;
  const ns = policy.metadata.namespace ?? 'default';
  const ranges: Range[] = [];
  for (const peer of peers) {
    if (peer.ipBlock !== undefined) {
      ranges.push(...ipBlockRanges(peer.ipBlock));
      continue;
    }
    for (const ep of world.endpoints) {
      if (!peerMatchesEndpoint(world, peer, ns, ep)) continue;
      for (const ip of ep.ips) {
        const r = ipv4Range(ip);
        if (r !== null) ranges.push(r);
      }
    }
  }
  return mergeRanges(ranges);
}

/** Compiles the pods of `node` (all pods when node is undefined). Rule peer sets are computed once per rule. */
export function compileEndpoints(world: PolicyWorld, node?: string): CompiledEndpoint[] {
  const peerCache = new Map<string, Range[] | null>();
  const namedCache = new Map<string, CompiledRule['namedTargets']>();
  const compileRule = (
    policy: Resource<'NetworkPolicy'>,
    direction: Direction,
    index: number,
    rule: PolicyRule,
    ep: PolicyEndpoint,
  ): CompiledRule => {
    const id = ruleId(policy, direction, index);
    if (!peerCache.has(id)) peerCache.set(id, rulePeerRanges(world, policy, rule.peers));
    let namedTargets: CompiledRule['namedTargets'] = [];
    if (hasEgressNamedPorts(rule, direction)) {
      if (!namedCache.has(id)) namedCache.set(id, egressNamedTargets(world, policy, rule));
      namedTargets = namedCache.get(id)!;
    }
    const ports = compilePorts(rule, direction, ep);
    const hostsOnly = peersAreHosts(rule);
    return {
      id,
      policy: policyName(policy),
      index,
      peers: peerCache.get(id)!,
      ...(hostsOnly ? { hostsOnly } : {}),
      ports,
      namedTargets,
    };
  };
  const side = (ep: PolicyEndpoint, direction: Direction): CompiledRule[] | null => {
    const isolating = isolatingPolicies(world, ep, direction);
    if (isolating.length === 0) return null;
    return isolating.flatMap((policy) =>
      rulesOf(policy, direction).map((rule, i) => compileRule(policy, direction, i, rule, ep)),
    );
  };
  return world.endpoints
    .filter((ep) => node === undefined || ep.node === node)
    .map((endpoint) => ({ endpoint, ingress: side(endpoint, 'ingress'), egress: side(endpoint, 'egress') }));
}

export function ruleId(policy: Resource<'NetworkPolicy'>, direction: Direction, index: number): string {
  return `${policyName(policy)}/${direction}/${index}`;
}

/** Non-empty peers, none of them an ipBlock: the rule's peer set holds only pod addresses. */
export function peersAreHosts(rule: PolicyRule): boolean {
  return rule.peers !== undefined && rule.peers.length > 0 && rule.peers.every((p) => p.ipBlock === undefined);
}

/** An egress rule with a named port: its (address, protocol, port) targets depend on the peer pods. */
export function hasEgressNamedPorts(rule: PolicyRule, direction: Direction): boolean {
  return direction === 'egress' && (rule.ports ?? []).some((p) => typeof p.port === 'string');
}

/** A rule's numeric ports ([port]); an ingress rule's named ports resolve on `ep`, the destination. */
export function compilePorts(rule: PolicyRule, direction: Direction, ep: PolicyEndpoint): CompiledPort[] | null {
  const specs = rule.ports ?? [];
  if (specs.length === 0) return null;
  const ports: CompiledPort[] = [];
  for (const p of specs) {
    const protocol = p.protocol ?? 'TCP';
    if (p.port === undefined) ports.push({ protocol });
    else if (typeof p.port === 'number') ports.push({ protocol, first: p.port, last: p.endPort ?? p.port });
    else if (direction === 'ingress') {
      const n = resolveNamedPort(ep, p.port, protocol);
      if (n !== null) ports.push({ protocol, first: n, last: n });
    }
  }
  return ports;
}

/** An egress rule's named-port targets on one peer pod (already known to match the rule's peers). */
export function namedTargetsOn(rule: PolicyRule, ep: PolicyEndpoint): CompiledRule['namedTargets'] {
  const out: CompiledRule['namedTargets'] = [];
  for (const p of rule.ports ?? []) {
    if (typeof p.port !== 'string') continue;
    const protocol = p.protocol ?? 'TCP';
    const n = resolveNamedPort(ep, p.port, protocol);
    if (n === null) continue;
    for (const ip of ep.ips) {
      const v = ipValue(ip);
      if (v !== null) out.push({ ip: v, protocol, port: n });
    }
  }
  return out;
}

/** Sorted, without duplicates (the order compileEndpoints gives). */
export function normalizeNamedTargets(targets: CompiledRule['namedTargets']): CompiledRule['namedTargets'] {
  const seen = new Set<string>();
  const out: CompiledRule['namedTargets'] = [];
  for (const t of targets) {
    const key = `${t.ip}/${t.protocol}/${t.port}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(t);
  }
  return out.sort((a, b) => a.ip - b.ip || a.port - b.port || a.protocol.localeCompare(b.protocol));
}

/** Does one of the rule's peers (any kind, ipBlock included) match the pod? Empty peers: every pod. */
export function rulePeersMatch(
  world: PolicyWorld,
  policy: Resource<'NetworkPolicy'>,
  rule: PolicyRule,
  ep: PolicyEndpoint,
): boolean {
  const ns = policy.metadata.namespace ?? 'default';
  return (
    rule.peers === undefined || rule.peers.length === 0 || rule.peers.some((p) => peerMatchesEndpoint(world, p, ns, ep))
  );
}

function egressNamedTargets(
  world: PolicyWorld,
  policy: Resource<'NetworkPolicy'>,
  rule: PolicyRule,
): CompiledRule['namedTargets'] {
  const out: CompiledRule['namedTargets'] = [];
  for (const ep of world.endpoints) if (rulePeersMatch(world, policy, rule, ep)) out.push(...namedTargetsOn(rule, ep));
  return normalizeNamedTargets(out);
}
