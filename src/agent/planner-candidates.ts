// Peering candidates: what one BGPPeer makes of one remote end before the planner (./planner.ts) names and
// types it — Calico's backends.BGPPeer value, filled as confd's setPeerConfigFieldsFromV3Resource,
// nodeAsBGPPeers and the peerIP branch fill it. Pure; no I/O.

import { formatIpv4, tryParseIpv4 } from '../../bgp/index.js';
import { parsePeerIP, type Resource } from '../resources/index.js';
import type { Cluster, NodeView } from './planner-cluster.js';
import type { SecretKeyRef } from './types.js';

/** Port of a BGP peer that does not say otherwise (RFC 4271 §8.2.1: TCP port 179). */
export const DEFAULT_PEER_PORT = 179;

/** A peering before it is named and typed: what Calico's BGPPeer value (backends.BGPPeer) holds. */
export interface Candidate {
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
  /** A local workload (BGPPeer localWorkloadSelector, ./workload-peers.ts): Local_Workload_<ip>, passive. */
  localWorkload?: boolean;
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

/** The BGPPeer's `tortie.dev/max-prefixes` annotation, or undefined (with a warning when it does not parse). */
export function maxPrefixesOf(cluster: Cluster, peer: Resource<'BGPPeer'>): number | undefined {
  const limit = peer.metadata.annotations?.[MAX_PREFIXES_ANNOTATION];
  if (limit === undefined) return undefined;
  const text = limit.trim();
  if (/^[0-9]+$/.test(text) && Number(text) >= 1 && Number(text) <= 4294967295) return Number(text);
  cluster.warnings.add(
    `BGPPeer ${peer.metadata.name}: annotation ${MAX_PREFIXES_ANNOTATION}="${limit}" is not a whole number 1..4294967295; the default limit applies`,
  );
  return undefined;
}

/** The fields every peering made from a BGPPeer carries (Calico's setPeerConfigFieldsFromV3Resource). */
export function sharedFields(
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
  const maxPrefixes = maxPrefixesOf(cluster, peer);
  if (maxPrefixes !== undefined) out.maxPrefixes = maxPrefixes;
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
export function nodeCandidate(cluster: Cluster, node: NodeView, peer: Resource<'BGPPeer'>): Candidate | null {
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
export function peerIpCandidate(cluster: Cluster, peer: Resource<'BGPPeer'>): Candidate | null {
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
