// The peering planner: from Nodes, BGPConfigurations and BGPPeers, the BGP sessions this node should
// have. A pure function; the agent feeds its result to Speaker.setPeers, which diffs it.
//
// The rules are Calico's (confd's peer computation and calico-node's BIRD template), in the order
// Calico applies them:
//   1. Mesh (BGPConfiguration `default` nodeToNodeMeshEnabled, default true): one `Mesh_<ip>` peer per
//      other node with an IPv4 address, unless we are a route reflector (we then have no mesh peers) or
//      that node is one (nobody meshes with a reflector).
//   2. Global BGPPeers (neither `node` nor `nodeSelector`): `Global_<ip>` peers, emitted first.
//   3. BGPPeers for this node (`node` is our name, or `nodeSelector` matches our labels): `Node_<ip>`
//      peers, dropped when a global peering to the same IP and port exists.
//   4. Automatic reverse peerings: when a BGPPeer selects us as its *remote* end (peerSelector matches
//      us, or peerIP is our IP with our AS), we peer back with the nodes at its local end. This is what
//      makes the documented reflector setup (nodeSelector all(), peerSelector route-reflector == 'true')
//      give the reflectors a session to every client. A peering already emitted wins. Not for a BGPPeer
//      with `reversePeering: Manual` (Calico's opt-out: the other side configures its own BGPPeer).
//   A peer with our own IP is always skipped; IPs are compared as Calico does.
//
// Why this is hard: every node computes its half of each session alone, and the halves must agree —
// exactly one side passive for a mesh pair, both sides seeing each other as iBGP client/reflector the
// same way — from the same datastore snapshot, without ever talking to each other. The Speaker keys
// sessions by address and port, so the plan holds at most one peer per address and port (Calico would
// configure two BIRD protocols and let them fight); two peerings to one address on different ports are two
// sessions, as in Calico (`Global_10_192_0_1_port_150` and `..._port_166`).

import { formatIpv4, parseIpv4, tryParseIpv4 } from '../../bgp/index.js';
import { BGP_DEFAULTS, parsePeerIP, parseSelector, type Resource, type Selector } from '../resources/index.js';
import type { DesiredPeer, PeerType, PeeringPlan, PlannerInput, SecretKeyRef } from './types.js';

/** Port of a BGP peer that does not say otherwise (RFC 4271 §8.2.1: TCP port 179). */
const DEFAULT_PEER_PORT = 179;

/** One node as the planner sees it. */
interface NodeView {
  name: string;
  labels: Record<string, string>;
  /** IPv4 address without prefix length, or null when the node has none (or an unreadable one). */
  ip: string | null;
  asNumber: number;
  listenPort: number;
  clusterId: string | null;
}

/** A peering before it is named and typed: what Calico's BGPPeer value (backends.BGPPeer) holds. */
interface Candidate {
  address: string;
  port: number;
  /** The port came from `peerIP: ip:port` (Calico then names the peer ..._port_<n>). */
  portExplicit: boolean;
  asNumber: number;
  /** The cluster id of the node at that address, when it is one of ours. */
  peerClusterId: string | null;
  /** The address is a Calico node's (Calico's `CalicoNode`): global peers to it follow the passive rule. */
  calicoNode: boolean;
  localAsNumber?: number;
  allowOwnAs: number;
  nextHopMode?: 'Auto' | 'Self' | 'Keep';
  keepOriginalNextHop: boolean;
  sourceAddress: 'UseNodeIP' | 'None';
  restartTime?: number;
  keepaliveTime?: number;
  /** The BGPPeer's `tortie.dev/max-prefixes` annotation. */
  maxPrefixes?: number;
  /** BGPPeer.spec.password.secretKeyRef: the agent resolves it (src/agent/secrets.ts). */
  password?: SecretKeyRef;
  /** BGPPeer.spec.ttlSecurity (GTSM hops), when not 0. */
  ttlSecurity?: number;
  /** BGPPeer.spec.reachableBy, an IPv4 gateway. */
  reachableBy?: string;
  /** BGPPeer.spec.filters: BGPFilter names, in order. */
  filters?: string[];
  fromResource: string;
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
function higherAddress(a: string, b: string): boolean {
  return a > b;
}

/** Parsed addresses for sorting: each address parsed once per plan, not once per comparison. */
const parsedAddresses = new Map<string, number | null>();

function addressOrder(a: string, b: string): number {
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
class Warnings {
  private readonly seen = new Set<string>();
  readonly list: string[] = [];
  add(message: string): void {
    if (this.seen.has(message)) return;
    this.seen.add(message);
    this.list.push(message);
  }
}

/** The cluster as the planner reads it: BGP configuration lookups, nodes, compiled selectors. */
class Cluster {
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

function nextHopOf(spec: Resource<'BGPPeer'>['spec']): Pick<Candidate, 'nextHopMode' | 'keepOriginalNextHop'> {
  // Calico: nextHopMode, when set, wins over the deprecated keepOriginalNextHop.
  if (spec.nextHopMode !== undefined) return { nextHopMode: spec.nextHopMode, keepOriginalNextHop: false };
  return { keepOriginalNextHop: spec.keepOriginalNextHop === true };
}

/**
 * Not in Calico's BGPPeer: the prefix limit for sessions made from this BGPPeer (RFC 4486 Cease subcode 1
 * past it). Absent: the node agent's TORTIE_BGP_MAX_PREFIXES, else the speaker's default (500 000).
 */
export const MAX_PREFIXES_ANNOTATION = 'tortie.dev/max-prefixes';

/** The fields every peering made from a BGPPeer carries (Calico's setPeerConfigFieldsFromV3Resource). */
function sharedFields(
  cluster: Cluster,
  peer: Resource<'BGPPeer'>,
): Pick<
  Candidate,
  | 'sourceAddress'
  | 'restartTime'
  | 'keepaliveTime'
  | 'nextHopMode'
  | 'keepOriginalNextHop'
  | 'fromResource'
  | 'maxPrefixes'
  | 'password'
  | 'ttlSecurity'
  | 'reachableBy'
  | 'filters'
> {
  const s = peer.spec;
  const what = `BGPPeer ${peer.metadata.name}`;
  const out: ReturnType<typeof sharedFields> = {
    sourceAddress: s.sourceAddress ?? 'UseNodeIP',
    fromResource: peer.metadata.name,
    ...nextHopOf(s),
  };
  if (s.maxRestartTime !== undefined) out.restartTime = cluster.seconds(what, 'spec.maxRestartTime', s.maxRestartTime);
  if (s.keepaliveTime !== undefined) out.keepaliveTime = cluster.seconds(what, 'spec.keepaliveTime', s.keepaliveTime);
  const limit = peer.metadata.annotations?.[MAX_PREFIXES_ANNOTATION];
  if (limit !== undefined) {
    const text = limit.trim();
    if (/^[0-9]+$/.test(text) && Number(text) >= 1 && Number(text) <= 4294967295) out.maxPrefixes = Number(text);
    else
      cluster.warnings.add(
        `${what}: annotation ${MAX_PREFIXES_ANNOTATION}="${limit}" is not a whole number 1..4294967295; the default limit applies`,
      );
  }
  const ref = s.password?.secretKeyRef;
  if (ref !== undefined) out.password = { name: ref.name, key: ref.key };
  // Calico: ttlSecurity 0 is off; N → BIRD's `ttl security on; multihop N`.
  if (s.ttlSecurity !== undefined && s.ttlSecurity > 0) out.ttlSecurity = s.ttlSecurity;
  // Calico: a static route `<peer>/32 via <reachableBy>` for every peering the BGPPeer makes (reverse ones too).
  if (s.reachableBy) {
    const gateway = tryParseIpv4(s.reachableBy);
    if (gateway !== null) out.reachableBy = formatIpv4(gateway);
    else
      cluster.warnings.add(
        `${what}: spec.reachableBy "${s.reachableBy}" is not an IPv4 address (tortie peers over IPv4 only); no static route to the peer`,
      );
  }
  if (s.filters !== undefined && s.filters.length > 0) out.filters = [...s.filters];
  return out;
}

/** A node as the remote end of a peering made from a BGPPeer (Calico's nodeAsBGPPeers). */
function nodeCandidate(cluster: Cluster, node: NodeView, peer: Resource<'BGPPeer'>): Candidate | null {
  if (node.ip === null) {
    cluster.warnings.add(
      `Node ${node.name} has no spec.bgp.ipv4Address; BGPPeer ${peer.metadata.name} cannot peer with it`,
    );
    return null;
  }
  return {
    address: node.ip,
    port: node.listenPort,
    portExplicit: false,
    asNumber: node.asNumber,
    peerClusterId: node.clusterId,
    // Calico does not set CalicoNode for selector-made peers: they are never made passive.
    calicoNode: false,
    allowOwnAs: 0,
    ...sharedFields(cluster, peer),
  };
}

/** The peerIP form of a BGPPeer as a candidate (AS, port and CalicoNode looked up among the nodes). */
function peerIpCandidate(cluster: Cluster, peer: Resource<'BGPPeer'>): Candidate | null {
  const s = peer.spec;
  const what = `BGPPeer ${peer.metadata.name}`;
  const parsed = parsePeerIP(s.peerIP ?? '');
  if (parsed === null) {
    cluster.warnings.add(
      `${what}: spec.peerIP "${s.peerIP ?? ''}" is not an IPv4 address or ip:port (like 198.18.0.1 or 198.18.0.1:1179); ignored`,
    );
    return null;
  }
  const value = tryParseIpv4(parsed.address);
  if (value === null) {
    cluster.warnings.add(`${what}: spec.peerIP "${s.peerIP ?? ''}" is IPv6; tortie peers over IPv4 only, ignored`);
    return null;
  }
  const address = formatIpv4(value);
  const atAddress = cluster.nodesAt(address);
  const asNumber = s.asNumber ?? atAddress[0]?.asNumber;
  if (asNumber === undefined) {
    cluster.warnings.add(
      `${what}: spec.asNumber is not set and ${address} is not a node's address; set the peer's AS number (like 64513); ignored`,
    );
    return null;
  }
  // Without a port, a peer that is one of our nodes (same IP and AS) is reached on its listenPort.
  const sameNode = atAddress.find((n) => n.asNumber === asNumber);
  const port = parsed.port ?? sameNode?.listenPort ?? DEFAULT_PEER_PORT;
  return {
    address,
    port,
    portExplicit: parsed.port !== undefined,
    asNumber,
    peerClusterId: atAddress[0]?.clusterId ?? null,
    calicoNode: atAddress.length > 0,
    // Calico applies localASNumber and numAllowedLocalASNumbers to peerIP peerings only.
    ...(s.localASNumber !== undefined ? { localAsNumber: s.localASNumber } : {}),
    allowOwnAs: s.numAllowedLocalASNumbers ?? 0,
    ...sharedFields(cluster, peer),
  };
}

/** Collects peerings keyed as Calico keys them ((global|node), ip, port); the first one for a key wins. */
class Emitter {
  readonly emitted = new Map<string, { type: 'Global' | 'Node'; candidate: Candidate }>();

  constructor(
    private readonly ourIp: string,
    private readonly warnings: Warnings,
  ) {}

  emit(type: 'Global' | 'Node', candidate: Candidate, explicit: boolean): void {
    if (candidate.address === this.ourIp) return; // Calico: "skip ourselves"
    const id = `${candidate.address}:${candidate.port}`;
    const key = `${type}|${id}`;
    if (this.emitted.has(key)) return;
    if (type === 'Node') {
      const global = this.emitted.get(`Global|${id}`);
      if (global !== undefined) {
        if (explicit) {
          this.warnings.add(
            `BGPPeer ${candidate.fromResource}: the node-specific peering to ${id} is dropped; global BGPPeer ${global.candidate.fromResource} already peers with it`,
          );
        }
        return;
      }
    }
    this.emitted.set(key, { type, candidate });
  }
}

function peerName(type: PeerType, address: string, port: number, portExplicit: boolean): string {
  const base = `${type}_${address.replace(/[.:]/g, '_')}`;
  // Calico appends the port when the peering has one; tortie spells out only a non-default one.
  return type !== 'Mesh' && (portExplicit || port !== DEFAULT_PEER_PORT) ? `${base}_port_${port}` : base;
}

function meshPeers(cluster: Cluster, self: NodeView, ourIp: string): DesiredPeer[] {
  if (!cluster.meshEnabled) return [];
  if (self.clusterId !== null) return []; // a route reflector has no mesh peers
  const peers: DesiredPeer[] = [];
  for (const node of cluster.nodes) {
    if (node.name === self.name) continue;
    if (node.ip === null) {
      cluster.warnings.add(`Node ${node.name} has no spec.bgp.ipv4Address; it is left out of the node-to-node mesh`);
      continue;
    }
    if (node.ip === ourIp) {
      cluster.warnings.add(`Node ${node.name} has the same address as this node (${ourIp}); no mesh peer to it`);
      continue;
    }
    if (node.clusterId !== null) continue; // nobody meshes with a route reflector
    const peer: DesiredPeer = {
      name: peerName('Mesh', node.ip, node.listenPort, false),
      address: node.ip,
      port: node.listenPort,
      asNumber: node.asNumber,
      type: 'Mesh',
      localAsNumber: self.asNumber,
      rrClient: false,
      // One side of each mesh pair only accepts, so the pair never races to connect.
      passive: higherAddress(node.ip, ourIp),
      nextHopMode: 'Auto',
      allowOwnAs: 0,
      sourceAddress: ourIp,
    };
    if (cluster.meshRestartTime !== undefined) peer.restartTime = cluster.meshRestartTime;
    if (cluster.meshPassword !== undefined) peer.password = cluster.meshPassword;
    peers.push(peer);
  }
  return peers;
}

/** Which nodes a BGPPeer's local end is, and whether it is global. */
function localEnd(
  cluster: Cluster,
  peer: Resource<'BGPPeer'>,
): { global: boolean; nodes: (self: NodeView) => boolean; all: () => NodeView[] } | null {
  const s = peer.spec;
  const what = `BGPPeer ${peer.metadata.name}`;
  if (s.nodeSelector) {
    if (s.node)
      cluster.warnings.add(
        `${what}: both spec.node "${s.node}" and spec.nodeSelector are set; the nodeSelector is used (set one of them)`,
      );
    const sel = cluster.selector(what, 'spec.nodeSelector', s.nodeSelector);
    if (sel === null) return null;
    return { global: false, nodes: (n) => sel.matches(n.labels), all: () => cluster.matching(sel) };
  }
  if (s.node) {
    const name = s.node;
    return { global: false, nodes: (n) => n.name === name, all: () => cluster.nodes.filter((n) => n.name === name) };
  }
  return { global: true, nodes: () => true, all: () => cluster.nodes };
}

function forwardCandidates(cluster: Cluster, peer: Resource<'BGPPeer'>, ourIp: string): Candidate[] {
  const s = peer.spec;
  const what = `BGPPeer ${peer.metadata.name}`;
  if (s.peerSelector) {
    if (s.peerIP)
      cluster.warnings.add(
        `${what}: both spec.peerIP and spec.peerSelector are set; the peerSelector is used (set one of them)`,
      );
    const sel = cluster.selector(what, 'spec.peerSelector', s.peerSelector);
    if (sel === null) return [];
    const selected = cluster.matching(sel);
    // Matching only ourselves is normal (a lone reflector selected by its own peering); matching nothing is not.
    if (selected.length === 0)
      cluster.warnings.add(`${what}: spec.peerSelector ${JSON.stringify(s.peerSelector)} matches no node`);
    return selected.filter((n) => n.ip !== ourIp).flatMap((n) => nodeCandidate(cluster, n, peer) ?? []);
  }
  if (!s.peerIP) {
    cluster.warnings.add(`${what}: neither spec.peerIP nor spec.peerSelector is set; ignored`);
    return [];
  }
  const candidate = peerIpCandidate(cluster, peer);
  return candidate === null ? [] : [candidate];
}

/** The nodes a BGPPeer's remote end names — those that peer back (Calico's automatic reverse peering). */
function remoteEndIncludes(cluster: Cluster, peer: Resource<'BGPPeer'>, self: NodeView): boolean {
  const s = peer.spec;
  if (s.peerSelector) {
    const sel = cluster.selector(`BGPPeer ${peer.metadata.name}`, 'spec.peerSelector', s.peerSelector);
    return sel !== null && sel.matches(self.labels);
  }
  const parsed = s.peerIP ? parsePeerIP(s.peerIP) : null;
  if (parsed === null || self.ip === null || tryParseIpv4(parsed.address) !== parseIpv4(self.ip)) return false;
  if ((s.asNumber ?? cluster.globalAs) !== self.asNumber) return false;
  return parsed.port === undefined || parsed.port === self.listenPort;
}

function finish(type: 'Global' | 'Node', c: Candidate, self: NodeView, ourIp: string): DesiredPeer {
  const localAs = c.localAsNumber ?? self.asNumber;
  const ebgp = c.asNumber !== localAs;
  // Calico: keepOriginalNextHop (deprecated) only matters toward eBGP peers; nextHopMode always does.
  const nextHopMode = c.nextHopMode ?? (c.keepOriginalNextHop && ebgp ? 'Keep' : 'Auto');
  const peer: DesiredPeer = {
    name: peerName(type, c.address, c.port, c.portExplicit),
    address: c.address,
    port: c.port,
    asNumber: c.asNumber,
    type,
    localAsNumber: localAs,
    // RFC 4456 §6: a reflector's clients are its iBGP peers outside its cluster. eBGP peers never are;
    // reflectors sharing our cluster id are plain iBGP peers (non-clients).
    rrClient: self.clusterId !== null && !ebgp && c.peerClusterId !== self.clusterId,
    passive: type === 'Global' && c.calicoNode && higherAddress(c.address, ourIp),
    nextHopMode,
    allowOwnAs: c.allowOwnAs,
    fromResource: c.fromResource,
  };
  if (c.keepaliveTime !== undefined) peer.keepaliveTime = c.keepaliveTime;
  if (c.restartTime !== undefined) peer.restartTime = c.restartTime;
  if (c.maxPrefixes !== undefined) peer.maxPrefixes = c.maxPrefixes;
  if (c.sourceAddress === 'UseNodeIP') peer.sourceAddress = ourIp;
  if (c.password !== undefined) peer.password = c.password;
  if (c.ttlSecurity !== undefined) peer.ttlSecurity = c.ttlSecurity;
  if (c.reachableBy !== undefined) peer.reachableBy = c.reachableBy;
  if (c.filters !== undefined) peer.filters = c.filters;
  return peer;
}

/** Precedence when two peerings share an address and port (the Speaker holds one session per address and port). */
const TYPE_PRECEDENCE: Readonly<Record<PeerType, number>> = { Global: 0, Node: 1, Mesh: 2 };

/**
 * The sessions `input.nodeName` should have. Throws when that node is missing or has no IPv4 address
 * (there is no router id to speak with); every other problem becomes a warning in the plan.
 */
export function planPeers(input: PlannerInput): PeeringPlan {
  const warnings = new Warnings();
  const cluster = new Cluster(input, warnings);
  const self = cluster.nodes.find((n) => n.name === input.nodeName);
  if (self === undefined) {
    throw new Error(
      `planPeers: nodeName "${input.nodeName}" is not among the ${cluster.nodes.length} Node resources; register the Node before planning its peers`,
    );
  }
  if (self.ip === null) {
    throw new Error(
      `planPeers: Node ${self.name} has no usable spec.bgp.ipv4Address (expected an IPv4 address with prefix length, like 198.18.0.11/24); it is the router id and the source of every session`,
    );
  }
  const ourIp = self.ip;

  const emitter = new Emitter(ourIp, warnings);
  const bgpPeers = [...input.bgpPeers].sort((a, b) =>
    a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0,
  );
  // Global BGPPeers first, then those for this node, so a node-specific duplicate of a global one is dropped.
  for (const globalPass of [true, false]) {
    for (const peer of bgpPeers) {
      const local = localEnd(cluster, peer);
      if (local === null || local.global !== globalPass || !local.nodes(self)) continue;
      for (const c of forwardCandidates(cluster, peer, ourIp)) emitter.emit(globalPass ? 'Global' : 'Node', c, true);
    }
  }
  // Reverse peerings: we are the remote end of a BGPPeer; peer back with its local end.
  for (const peer of bgpPeers) {
    // reversePeering: Manual — the remote end peers back only through a BGPPeer of its own (Calico).
    if (peer.spec.reversePeering === 'Manual') continue;
    const local = localEnd(cluster, peer);
    if (local === null || !remoteEndIncludes(cluster, peer, self)) continue;
    for (const node of local.all()) {
      if (node.ip === ourIp) continue;
      const c = nodeCandidate(cluster, node, peer);
      if (c !== null) emitter.emit('Node', c, false);
    }
  }

  const all: DesiredPeer[] = [
    ...[...emitter.emitted.values()].map((e) => finish(e.type, e.candidate, self, ourIp)),
    ...meshPeers(cluster, self, ourIp),
  ];
  all.sort(
    (a, b) =>
      TYPE_PRECEDENCE[a.type] - TYPE_PRECEDENCE[b.type] || addressOrder(a.address, b.address) || a.port - b.port,
  );
  const byEndpoint = new Map<string, DesiredPeer>();
  for (const p of all) {
    const endpoint = `${p.address}:${p.port}`;
    const kept = byEndpoint.get(endpoint);
    if (kept === undefined) {
      byEndpoint.set(endpoint, p);
      continue;
    }
    warnings.add(
      `${p.name}${p.fromResource ? ` (BGPPeer ${p.fromResource})` : ''} is dropped: ${kept.name}${kept.fromResource ? ` (BGPPeer ${kept.fromResource})` : ''} already peers with ${endpoint}, and a node has one session per address and port`,
    );
  }
  const peers = [...byEndpoint.values()].sort((a, b) => addressOrder(a.address, b.address) || a.port - b.port);

  const plan: PeeringPlan = {
    routerId: ourIp,
    localAsNumber: self.asNumber,
    listenPort: self.listenPort,
    peers,
    warnings: warnings.list,
  };
  if (self.clusterId !== null) plan.clusterId = self.clusterId;
  if (cluster.bindNodeIp) plan.bindAddress = ourIp;
  return plan;
}
