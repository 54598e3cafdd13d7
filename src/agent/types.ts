// The node agent's shared shapes: what the peering planner decides, what the agent reports about itself,
// and the control-socket protocol between `tortie node run` and `tortie node status|routes`.
// The agent (./agent.ts) wires datastore → planner/advertiser → Speaker; nothing here does I/O.

import type { Resource } from '../resources/types.js';
import type { ImportRefusal } from './import-guard.js';

import type { DataplaneStatus } from '../../felix/index.js';
import type { EnforcerStatus } from '../policy/enforcer.js';

/** Calico's peer types, as `calicoctl node status` names them in its PEER TYPE column. */
export type PeerType = 'Mesh' | 'Global' | 'Node' | 'LocalWorkload';
export const PEER_TYPE_LABEL: Readonly<Record<PeerType, string>> = {
  Mesh: 'node-to-node mesh',
  Global: 'global',
  Node: 'node specific',
  // calicoctl shows no Local_Workload protocols at all; tortie names them.
  LocalWorkload: 'local workload',
};

/** One BGP session this node should have. The planner's output; equal inputs give equal outputs. */
/** A BGPFilter rule refused an imported route: `filter <name> importV4[<i>]`. */
export type FilterRefusal = `filter ${string}`;

export interface DesiredPeer {
  /** Calico's protocol names: Mesh_<ip with _>, Global_<ip>, Node_<ip>, Local_Workload_<ip> (dots and colons as underscores). */
  name: string;
  address: string;
  port: number;
  asNumber: number;
  type: PeerType;
  /** Our AS toward this peer (BGPPeer.localASNumber, else the node's, else the global one). */
  localAsNumber: number;
  /** We are a route reflector and this peer is our client (RFC 4456). */
  rrClient: boolean;
  /** Passive: only accept (Calico: the node with the higher IP is passive for a mesh pair). */
  passive: boolean;
  nextHopMode: 'Auto' | 'Self' | 'Keep';
  /** Seconds; undefined = default. */
  keepaliveTime?: number;
  /** Graceful restart time to ask for, seconds (maxRestartTime / nodeMeshMaxRestartTime). */
  restartTime?: number;
  /** Calico's numAllowedLocalASNumbers. */
  allowOwnAs: number;
  /** Prefixes the peer may send (BGPPeer annotation tortie.dev/max-prefixes); undefined = the agent's default. */
  maxPrefixes?: number;
  /** Source address for the session (UseNodeIP → the node's IP; None → let the kernel choose). */
  sourceAddress?: string;
  /** The BGPPeer resource it came from (Global/Node types). */
  fromResource?: string;
  /** TCP-MD5: where the password is (BGPPeer password / BGPConfiguration nodeMeshPassword); never the value. */
  password?: SecretKeyRef;
  /** GTSM (RFC 5082): BGPPeer ttlSecurity hops. */
  ttlSecurity?: number;
  /** BGPPeer reachableBy: the gateway felix routes this peer's address through (a static /32, as Calico). */
  reachableBy?: string;
  /** BGPPeer spec.filters: the BGPFilters applied to this session, in order. */
  filters?: string[];
}

/** Calico's secretKeyRef: a key of a Secret in the agent's namespace (or, with etcd, of a mounted one). */
export interface SecretKeyRef {
  name: string;
  key: string;
}

export interface PlannerInput {
  nodeName: string;
  nodes: ReadonlyArray<Resource<'Node'>>;
  bgpConfigurations: ReadonlyArray<Resource<'BGPConfiguration'>>;
  bgpPeers: ReadonlyArray<Resource<'BGPPeer'>>;
  /** WorkloadEndpoints (those on this node count): BGPPeer localWorkloadSelector peers with them. */
  workloads?: ReadonlyArray<Resource<'WorkloadEndpoint'>>;
}

export interface PeeringPlan {
  /** This node's BGP identity: its IPv4 address; null when it has none (IPv4 disabled: no sessions). */
  routerId: string | null;
  localAsNumber: number;
  /** Set when this node is a route reflector (Node.spec.bgp.routeReflectorClusterID). */
  clusterId?: string;
  listenPort: number;
  /** bindMode NodeIP: listen on the node IP only. */
  bindAddress?: string;
  peers: DesiredPeer[];
  /** Things a person should know (a BGPPeer whose selector matches nothing, a node without an address...). */
  warnings: string[];
}

/** The agent's readiness (kubelet probe): `notes` are facts worth a look that do not make it unready. */
export interface Readiness {
  ready: boolean;
  reason?: string;
  notes?: string[];
}

/** What `tortie node status -o json` prints, and what the control socket answers to "status". */
export interface AgentStatus {
  /** "tortie is running." (the first line of the table output; Calico says "Calico process is running.") */
  summary: string;
  node: string;
  version: string;
  pid: number;
  startedAt: string;
  ipv4Address: string | null;
  asNumber: number;
  routerId: string | null;
  clusterId: string | null;
  datastore: { type: string; connected: boolean; lastError?: string };
  ready: boolean;
  /** Why not ready, for people. */
  notReadyReason?: string;
  peers: PeerStatusRow[];
  /** Blocks originated by this node. */
  blocks: string[];
  /** The kernel dataplane (felix): `none` with TORTIE_DATAPLANE=none. */
  dataplane:
    | ({ mode: 'kernel'; hostInterface: string | null } & DataplaneStatus)
    | { mode: 'none'; hostInterface: string | null };
  /** NetworkPolicy enforcement (nftables table inet tortie-filter); absent with TORTIE_DATAPLANE=none. */
  policy?: EnforcerStatus;
  /** Messages worth a look (planner warnings, IPIP unavailable, ...). */
  warnings: string[];
}

export interface PeerStatusRow {
  address: string;
  /** PEER TYPE column: 'node-to-node mesh' | 'global' | 'node specific'. */
  type: string;
  name: string;
  /** STATE column as Calico shows BIRD's protocol state: 'up' | 'start' | 'stop' ... */
  state: string;
  /** SINCE column: HH:MM:SS of the last state change (local time), as calicoctl shows it. */
  since: string;
  /** INFO column: 'Established', 'Active', 'Connect', 'OpenSent', 'Active Socket: Connection refused', ... */
  info: string;
  /** The BGP FSM state. */
  bgpState: string;
  sinceIso: string;
  uptimeMs: number | null;
  routesReceived: number;
  routesAccepted: number;
  routesAdvertised: number;
  lastError?: string;
}

/** `tortie node routes`: the Loc-RIB. */
export interface RouteRow {
  prefix: string;
  nextHop: string | null;
  asPath: Array<number | number[]>;
  /** Peer address, or 'local' for routes this node originates. */
  from: string;
  best: boolean;
  stale: boolean;
  /** Whether the route is programmed in the kernel (false with TORTIE_DATAPLANE=none). */
  inKernel: boolean;
  /** Import protection refused this route (it is held, never best): why (./import-guard.ts IMPORT_REFUSALS). */
  refused?: ImportRefusal | FilterRefusal;
}

/**
 * Control socket protocol: newline-delimited JSON over a Unix socket. One request per connection:
 *   {"command":"status"}  → {"ok":true,"status":AgentStatus}
 *   {"command":"routes"}  → {"ok":true,"routes":RouteRow[]}
 *   {"command":"stop","graceful":true|false}  → {"ok":true,"stopping":{"graceful":...}}, then the agent stops:
 *     graceful = BGP connections closed without NOTIFICATION (peers keep our routes: RFC 4724), else Cease
 * Errors: {"ok":false,"error":"..."}.
 */
export type ControlRequest = { command: 'status' } | { command: 'routes' } | { command: 'stop'; graceful: boolean };
export type ControlResponse =
  | { ok: true; status: AgentStatus }
  | { ok: true; routes: RouteRow[] }
  | { ok: true; stopping: { graceful: boolean } }
  | { ok: false; error: string };

export const DEFAULT_CTL_SOCKET = '/var/run/tortie/tortie.ctl';
export const DEFAULT_HEALTH_PORT = 9099;
