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

import { parseIpv4, tryParseIpv4 } from '../../bgp/index.js';
import { parsePeerIP, type Resource } from '../resources/index.js';
import { DEFAULT_PEER_PORT, nodeCandidate, peerIpCandidate, type Candidate } from './planner-candidates.js';
import { addressOrder, Cluster, higherAddress, Warnings, type NodeView } from './planner-cluster.js';
import type { DesiredPeer, PeerType, PeeringPlan, PlannerInput } from './types.js';
import { localWorkloadCandidates } from './workload-peers.js';

export { durationSeconds } from './planner-cluster.js';
export { MAX_PREFIXES_ANNOTATION } from './planner-candidates.js';

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
  const base = `${type === 'LocalWorkload' ? 'Local_Workload' : type}_${address.replace(/[.:]/g, '_')}`;
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

function finish(emitted: 'Global' | 'Node', c: Candidate, self: NodeView, ourIp: string): DesiredPeer {
  const type: PeerType = c.localWorkload === true ? 'LocalWorkload' : emitted;
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
    // Calico: a local workload's session is passive (the workload connects).
    passive: c.localWorkload === true || (type === 'Global' && c.calicoNode && higherAddress(c.address, ourIp)),
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
const TYPE_PRECEDENCE: Readonly<Record<PeerType, number>> = { Global: 0, Node: 1, LocalWorkload: 2, Mesh: 3 };

/**
 * The sessions `input.nodeName` should have. Throws when that node is missing; a node without an IPv4
 * address gets a plan without sessions and `routerId: null` (Calico: "IPv4 disabled on this node"); every
 * other problem becomes a warning in the plan.
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
    // Calico's template: "IPv4 disabled on this node" — no IPv4 session at all, nothing else refused.
    warnings.add(
      `Node ${self.name} has no usable spec.bgp.ipv4Address: IPv4 is disabled on this node (no IPv4 BGP sessions; set an IPv4 address with prefix length, like 198.18.0.11/24, to peer)`,
    );
    return {
      routerId: null,
      localAsNumber: self.asNumber,
      listenPort: self.listenPort,
      peers: [],
      warnings: warnings.list,
      ...(self.clusterId !== null ? { clusterId: self.clusterId } : {}),
    };
  }
  const ourIp = self.ip;

  const emitter = new Emitter(ourIp, warnings);
  const bgpPeers = [...input.bgpPeers].sort((a, b) =>
    a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0,
  );
  // BGPPeers with a localWorkloadSelector active here: our workloads they select (./workload-peers.ts).
  const workloadPeers = localWorkloadCandidates(
    cluster,
    self,
    bgpPeers.filter((p) => p.spec.localWorkloadSelector && localEnd(cluster, p)?.nodes(self) === true),
    input.workloads ?? [],
  );
  // Global BGPPeers first, then those for this node, so a node-specific duplicate of a global one is dropped.
  // Within a pass, Calico emits remote peers first, then local workloads.
  for (const globalPass of [true, false]) {
    const type = globalPass ? 'Global' : 'Node';
    const forPass = bgpPeers.filter((peer) => {
      const local = localEnd(cluster, peer);
      return local !== null && local.global === globalPass && local.nodes(self);
    });
    for (const peer of forPass)
      if (!peer.spec.localWorkloadSelector)
        for (const c of forwardCandidates(cluster, peer, ourIp)) emitter.emit(type, c, true);
    for (const peer of forPass)
      for (const c of workloadPeers.get(peer.metadata.name) ?? []) emitter.emit(type, c, true);
  }
  // Reverse peerings: we are the remote end of a BGPPeer; peer back with its local end.
  for (const peer of bgpPeers) {
    // reversePeering: Manual — the remote end peers back only through a BGPPeer of its own (Calico).
    // A workload BGPPeer has no reverse side either: the workload configures its own.
    if (peer.spec.reversePeering === 'Manual' || peer.spec.localWorkloadSelector) continue;
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
