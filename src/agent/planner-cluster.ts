// The cluster as the peering planner (./planner.ts) reads it: nodes (name, labels, IPv4 address, AS, listen
// port, cluster id), BGP configuration lookups, compiled selectors, warnings, and Calico's address and
// duration conventions. Pure; no I/O.

import { formatIpv4, tryParseIpv4 } from '../../bgp/index.js';
import { BGP_DEFAULTS, parseSelector, type Resource, type Selector } from '../resources/index.js';
import type { PlannerInput, SecretKeyRef } from './types.js';

/** One node as the planner sees it. */
export interface NodeView {
  name: string;
  labels: Record<string, string>;
  /** IPv4 address without prefix length, or null when the node has none (or an unreadable one). */
  ip: string | null;
  asNumber: number;
  listenPort: number;
  clusterId: string | null;
}

/** Go's time.ParseDuration units, as Kubernetes' metav1.Duration (BGPPeer.keepaliveTime...) are written. */
const DURATION_UNITS: Readonly<Record<string, number>> = {
  ns: 1e-9,
  us: 1e-6,
  µs: 1e-6,
  μs: 1e-6,
  ms: 1e-3,
  s: 1,
  m: 60,
  h: 3600,
};

/** "1m30s" → 90. Seconds rounded as Calico rounds them (math.Round of Duration.Seconds()); null if not a duration. */
export function durationSeconds(text: string): number | null {
  const body = text.trim();
  if (body === '0') return 0;
  const re = /([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)/y;
  let total = 0;
  let at = 0;
  for (let guard = 0; at < body.length && guard <= body.length; guard++) {
    re.lastIndex = at;
    const m = re.exec(body);
    if (m === null) return null;
    total += Number(m[1]) * (DURATION_UNITS[m[2]!] ?? Number.NaN);
    at = re.lastIndex;
  }
  if (at === 0 || !Number.isFinite(total)) return null;
  return Math.round(total);
}

/** Calico compares addresses as strings (`peerIP > currentNodeIP` in confd): both ends agree either way. */
export function higherAddress(a: string, b: string): boolean {
  return a > b;
}

/** Parsed addresses for sorting: each address parsed once per plan, not once per comparison. */
const parsedAddresses = new Map<string, number | null>();

export function addressOrder(a: string, b: string): number {
  const x = parsedAddress(a);
  const y = parsedAddress(b);
  if (x !== null && y !== null) return x - y;
  return a < b ? -1 : a > b ? 1 : 0;
}

function parsedAddress(text: string): number | null {
  let value = parsedAddresses.get(text);
  if (value === undefined) {
    // Bounded: a cluster's addresses, with a cap so a churn of addresses cannot grow it forever.
    if (parsedAddresses.size > 100_000) parsedAddresses.clear();
    value = tryParseIpv4(text);
    parsedAddresses.set(text, value);
  }
  return value;
}

/** Warnings in the order found, each once. */
export class Warnings {
  private readonly seen = new Set<string>();
  readonly list: string[] = [];
  add(message: string): void {
    if (this.seen.has(message)) return;
    this.seen.add(message);
    this.list.push(message);
  }
}

/** The cluster as the planner reads it: BGP configuration lookups, nodes, compiled selectors. */
export class Cluster {
  readonly nodes: NodeView[];
  readonly globalAs: number;
  readonly globalListenPort: number;
  readonly meshEnabled: boolean;
  readonly bindNodeIp: boolean;
  readonly meshRestartTime: number | undefined;
  /** BGPConfiguration default nodeMeshPassword: every mesh session is signed with it (TCP-MD5). */
  readonly meshPassword: SecretKeyRef | undefined;
  private readonly selectors = new Map<string, Selector | null>();

  constructor(
    input: PlannerInput,
    readonly warnings: Warnings,
  ) {
    const configs = new Map(input.bgpConfigurations.map((c) => [c.metadata.name, c.spec]));
    const global = configs.get('default');
    this.globalAs = global?.asNumber ?? BGP_DEFAULTS.asNumber;
    this.globalListenPort = global?.listenPort ?? BGP_DEFAULTS.listenPort;
    this.meshEnabled = global?.nodeToNodeMeshEnabled ?? BGP_DEFAULTS.nodeToNodeMeshEnabled;
    // Calico reads bindMode from the `default` BGPConfiguration only.
    this.bindNodeIp = global?.bindMode === 'NodeIP';
    this.meshRestartTime =
      global?.nodeMeshMaxRestartTime === undefined
        ? undefined
        : this.seconds('BGPConfiguration default', 'spec.nodeMeshMaxRestartTime', global.nodeMeshMaxRestartTime);
    const meshRef = global?.nodeMeshPassword?.secretKeyRef;
    this.meshPassword = meshRef !== undefined ? { name: meshRef.name, key: meshRef.key } : undefined;
    const sorted = [...input.nodes].sort((a, b) =>
      a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0,
    );
    this.nodes = sorted.map((n) => this.view(n, configs.get(`node.${n.metadata.name}`)));
  }

  private view(node: Resource<'Node'>, nodeConfig: Resource<'BGPConfiguration'>['spec'] | undefined): NodeView {
    const bgp = node.spec.bgp;
    let ip: string | null = null;
    if (bgp?.ipv4Address !== undefined) {
      const text = bgp.ipv4Address.split('/')[0] ?? '';
      const value = tryParseIpv4(text);
      if (value === null) {
        this.warnings.add(
          `Node ${node.metadata.name}: spec.bgp.ipv4Address "${bgp.ipv4Address}" is not an IPv4 address (like 198.18.0.11/24); it gets no BGP peers`,
        );
      } else {
        ip = formatIpv4(value);
      }
    }
    return {
      name: node.metadata.name,
      labels: node.metadata.labels ?? {},
      ip,
      // AS precedence: Node.spec.bgp.asNumber, then BGPConfiguration node.<name>, then default, then 64512.
      asNumber: bgp?.asNumber ?? nodeConfig?.asNumber ?? this.globalAs,
      listenPort: nodeConfig?.listenPort ?? this.globalListenPort,
      clusterId: bgp?.routeReflectorClusterID ? bgp.routeReflectorClusterID : null,
    };
  }

  /** Seconds of a duration field, or undefined with a warning naming the resource and field. */
  seconds(resource: string, field: string, value: string): number | undefined {
    const s = durationSeconds(value);
    if (s !== null) return s;
    this.warnings.add(`${resource}: ${field} "${value}" is not a duration (like 120s, 1m30s or 2h); ignored`);
    return undefined;
  }

  /** A compiled selector, or null (with a warning) when it does not parse. */
  selector(resource: string, field: string, text: string): Selector | null {
    const key = `${resource}\u0000${field}\u0000${text}`;
    if (!this.selectors.has(key)) {
      try {
        this.selectors.set(key, parseSelector(text));
      } catch (err) {
        this.warnings.add(
          `${resource}: ${field} ${JSON.stringify(text)} does not parse (${(err as Error).message.split('\n')[0]}); the BGPPeer is ignored`,
        );
        this.selectors.set(key, null);
      }
    }
    return this.selectors.get(key) ?? null;
  }

  matching(selector: Selector): NodeView[] {
    return this.nodes.filter((n) => selector.matches(n.labels));
  }

  nodesAt(address: string): NodeView[] {
    return this.nodes.filter((n) => n.ip === address);
  }
}
