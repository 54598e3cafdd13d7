// BGP with local workloads (BGPPeer `localWorkloadSelector`): a node peers with the pods on it that a
// BGPPeer selects — a virtual router, a load balancer or a VM in a pod announcing its own routes.
//
// Calico's facts (felix calc/active_bpgpeer_calculator.go, confd client.go localBGPPeerDataAsBGPPeers,
// bgp_processor.go and the compiled template explicit_peering/local_bgp_peer/bird.cfg):
// - a BGPPeer with a localWorkloadSelector is active on a node when its `node` is that node, or, without
//   `node`, when its nodeSelector matches the node (none: every node);
// - each WorkloadEndpoint on this node whose labels an active BGPPeer's localWorkloadSelector matches gets
//   one session, from the first such BGPPeer by name (one workload, one BGPPeer);
// - the session is to the workload's first IPv4 address, AS `asNumber` (required), our AS
//   `localASNumber` when set, the BGPPeer's `filters`; passive (the workload connects), no source address
//   (`sourceAddress: None`), multihop, no TTL security; named Local_Workload_<ip with _>. The rest of the
//   BGPPeer (password, keepalive, restart time, next hop mode, reachableBy) is not applied to it;
// - no automatic reverse peering from a workload BGPPeer (the workload configures its own side).
// Not as Calico: felix puts BGPConfiguration localWorkloadPeeringIPV4 (a link-local address such as
// 169.254.0.179) on the workload's host-side interface for the workload to connect to; tortie has no such
// field and listens on the node's address as for any peer (bindMode NodeIP: only there), which the
// workload reaches through its default route. Pure; no I/O.

import { formatIpv4, tryParseIpv4 } from '../../bgp/index.js';
import type { Resource } from '../resources/index.js';
import { maxPrefixesOf, type Candidate } from './planner-candidates.js';
import type { Cluster, NodeView } from './planner-cluster.js';

/** Port of a local workload's session: BIRD's default (Calico sets none). */
const WORKLOAD_PEER_PORT = 179;

/**
 * The local workloads each active BGPPeer peers with: BGPPeer name → its workloads' candidates. `active`:
 * the BGPPeers (sorted by name) with a localWorkloadSelector whose local end includes this node.
 */
export function localWorkloadCandidates(
  cluster: Cluster,
  self: NodeView,
  active: ReadonlyArray<Resource<'BGPPeer'>>,
  workloads: ReadonlyArray<Resource<'WorkloadEndpoint'>>,
): Map<string, Candidate[]> {
  const out = new Map<string, Candidate[]>();
  const selectors = active.flatMap((peer) => {
    const what = `BGPPeer ${peer.metadata.name}`;
    if (peer.spec.asNumber === undefined) {
      cluster.warnings.add(
        `${what}: spec.asNumber is required with spec.localWorkloadSelector (the workloads' AS, like 64516); ignored`,
      );
      return [];
    }
    if (peer.spec.peerIP || peer.spec.peerSelector)
      cluster.warnings.add(
        `${what}: spec.peerIP and spec.peerSelector must be empty with spec.localWorkloadSelector; the localWorkloadSelector is used`,
      );
    const sel = cluster.selector(what, 'spec.localWorkloadSelector', peer.spec.localWorkloadSelector ?? '');
    return sel === null ? [] : [{ peer, sel }];
  });
  if (selectors.length === 0) return out;
  for (const wep of workloads) {
    if (wep.spec.node !== self.name) continue;
    const labels = wep.metadata.labels ?? {};
    // Felix: the first matching BGPPeer by name is the workload's (active is sorted by name).
    const chosen = selectors.find((s) => s.sel.matches(labels));
    if (chosen === undefined) continue;
    const address = firstIpv4(wep.spec.ipNetworks);
    if (address === null) {
      cluster.warnings.add(
        `WorkloadEndpoint ${wep.metadata.namespace ?? ''}/${wep.metadata.name}: selected by BGPPeer ${chosen.peer.metadata.name}'s localWorkloadSelector but has no IPv4 address; no session`,
      );
      continue;
    }
    const s = chosen.peer.spec;
    const candidate: Candidate = {
      address,
      port: WORKLOAD_PEER_PORT,
      portExplicit: false,
      asNumber: s.asNumber!,
      peerClusterId: null,
      calicoNode: false,
      ...(s.localASNumber !== undefined ? { localAsNumber: s.localASNumber } : {}),
      allowOwnAs: 0,
      keepOriginalNextHop: false,
      sourceAddress: 'None',
      fromResource: chosen.peer.metadata.name,
      localWorkload: true,
    };
    if (s.filters !== undefined && s.filters.length > 0) candidate.filters = [...s.filters];
    const maxPrefixes = maxPrefixesOf(cluster, chosen.peer);
    if (maxPrefixes !== undefined) candidate.maxPrefixes = maxPrefixes;
    const list = out.get(chosen.peer.metadata.name) ?? [];
    list.push(candidate);
    out.set(chosen.peer.metadata.name, list);
  }
  return out;
}

/** Calico's endpoint status: the first IPv4 of ipNetworks, without its length. */
function firstIpv4(networks: readonly string[]): string | null {
  for (const net of networks) {
    const value = tryParseIpv4(net.split('/')[0] ?? '');
    if (value !== null) return formatIpv4(value);
  }
  return null;
}
