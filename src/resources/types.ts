// Calico's v3 API resources as tortie keeps them (`apiVersion: projectcalico.org/v3`), so users' existing
// YAML works unchanged. Field names and meanings follow Calico's documentation; defaults are applied by
// ./defaults.ts and checked by ./validate.ts, never here.
//
// IPAM state (IPAMBlock, BlockAffinity, IPAMHandle) has Calico's shapes too: etcd keeps them at
// /calico/ipam/v2/..., Kubernetes as crd.projectcalico.org/v1 objects.

export const API_VERSION = 'projectcalico.org/v3';

export interface ObjectMeta {
  name: string;
  /** Only WorkloadEndpoint and NetworkPolicy are namespaced. */
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** The datastore's revision of this object (etcd mod_revision / Kubernetes resourceVersion), as a string. */
  resourceVersion?: string;
  uid?: string;
  creationTimestamp?: string;
}

export type EncapMode = 'Never' | 'Always' | 'CrossSubnet';

export interface IPPoolSpec {
  cidr: string;
  /** 20..32 for IPv4, default 26. */
  blockSize?: number;
  ipipMode?: EncapMode;
  vxlanMode?: EncapMode;
  natOutgoing?: boolean;
  disabled?: boolean;
  disableBGPExport?: boolean;
  /** Calico selector; default all(). */
  nodeSelector?: string;
  allowedUses?: Array<'Workload' | 'Tunnel' | 'LoadBalancer'>;
  /** Automatic (default): IPAM picks it; Manual: only when a request names it (Calico's assignmentMode). */
  assignmentMode?: 'Automatic' | 'Manual';
  /** Calico selector over namespace labels (stored; not in effect). */
  namespaceSelector?: string;
}

export interface BGPConfigurationSpec {
  nodeToNodeMeshEnabled?: boolean;
  asNumber?: number;
  listenPort?: number;
  logSeverityScreen?: string;
  bindMode?: 'None' | 'NodeIP';
  /** Duration like "120s". */
  nodeMeshMaxRestartTime?: string;
  nodeMeshPassword?: { secretKeyRef: { name: string; key: string } };
  serviceClusterIPs?: Array<{ cidr: string }>;
  serviceExternalIPs?: Array<{ cidr: string }>;
  serviceLoadBalancerIPs?: Array<{ cidr: string }>;
  communities?: Array<{ name: string; value: string }>;
  prefixAdvertisements?: Array<{ cidr: string; communities: string[] }>;
  ignoredInterfaces?: string[];
  /** Calico's Enabled | Disabled (stored; not in effect). */
  programClusterRoutes?: 'Enabled' | 'Disabled';
}

export interface BGPPeerSpec {
  /** Only this node peers (mutually exclusive with nodeSelector). */
  node?: string;
  nodeSelector?: string;
  /** Selects Nodes to peer with (their BGP addresses), instead of peerIP. */
  peerSelector?: string;
  /** "ip" or "ip:port". */
  peerIP?: string;
  asNumber?: number;
  localASNumber?: number;
  nextHopMode?: 'Auto' | 'Self' | 'Keep';
  keepOriginalNextHop?: boolean;
  sourceAddress?: 'UseNodeIP' | 'None';
  /** Durations like "120s", "1m30s". */
  maxRestartTime?: string;
  keepaliveTime?: string;
  numAllowedLocalASNumbers?: number;
  password?: { secretKeyRef: { name: string; key: string } };
  /** Auto (default): the remote end of a peerSelector/peerIP peering peers back by itself; Manual: it does not. */
  reversePeering?: 'Auto' | 'Manual';
  /** GTSM (RFC 5082): the peer is at most this many hops away; 0 or absent = off (Calico's uint8). */
  ttlSecurity?: number;
  filters?: string[];
  /** Calico: a gateway address through which the peer is reachable (stored; not in effect). */
  reachableBy?: string;
  /** Calico: BGP with local workloads matching this selector (stored; not in effect). */
  localWorkloadSelector?: string;
}

export interface NodeSpec {
  bgp?: {
    /** With prefix length: "198.18.0.11/24" (CrossSubnet depends on it). */
    ipv4Address?: string;
    asNumber?: number;
    ipv4IPIPTunnelAddr?: string;
    routeReflectorClusterID?: string;
    /** IPv6 BGP address with prefix length (stored; tortie's BGP is IPv4 only: not in effect). */
    ipv6Address?: string;
  };
  orchRefs?: Array<{ nodeName?: string; orchestrator: string }>;
  /** Calico's VXLAN tunnel endpoint: the agent assigns it from a VXLAN pool (src/agent/vxlan-tunnel.ts), felix programs it (felix/vxlan.ts). */
  ipv4VXLANTunnelAddr?: string;
  vxlanTunnelMACAddr?: string;
  /** The node's addresses as Calico records them (stored; informational). */
  addresses?: Array<{ address: string; type?: string }>;
}

/** Calico's BGPFilter rule (`exportV4`/`importV4`, and the V6 lists): match criteria ANDed, then a terminal action. */
export interface BGPFilterRule {
  /** With matchOperator: the route's prefix compared against this CIDR. */
  cidr?: string;
  matchOperator?: 'Equal' | 'NotEqual' | 'In' | 'NotIn';
  /** Narrows an `In` match to prefix lengths min..max (defaults: the cidr's length .. 32 / 128). */
  prefixLength?: { min?: number; max?: number };
  /** RemotePeers: only routes learned from BGP peers (export rules), not the ones this node originates. */
  source?: 'RemotePeers';
  /** Only routes whose outgoing interface matches (a name, `*` wildcards). */
  interface?: string;
  /** Only for peers of this type (same AS = iBGP). */
  peerType?: 'eBGP' | 'iBGP';
  /** Only routes carrying this community (exactly one value, standard `aa:nn` or large `aa:bb:cc`). */
  communities?: { values: string[] };
  /** Only routes whose AS_PATH begins with these AS numbers. */
  asPathPrefix?: number[];
  /** Only routes with this kernel priority (metric). */
  priority?: number;
  action: 'Accept' | 'Reject';
  /** Changes made to an accepted route, in order (each entry sets exactly one field). */
  operations?: Array<{
    addCommunity?: { value: string };
    prependASPath?: { prefix: number[] };
    setPriority?: { value: number };
  }>;
}

/** Calico's BGPFilter: ordered rules per direction and family, referenced by name from BGPPeer.spec.filters. */
export interface BGPFilterSpec {
  exportV4?: BGPFilterRule[];
  importV4?: BGPFilterRule[];
  exportV6?: BGPFilterRule[];
  importV6?: BGPFilterRule[];
}

/** A container port of the workload (Calico's WEP `ports`): what a NetworkPolicy's named port resolves to. */
export interface EndpointPort {
  name: string;
  protocol?: 'TCP' | 'UDP' | 'SCTP';
  port: number;
}

export interface WorkloadEndpointSpec {
  node: string;
  orchestrator?: string;
  workload?: string;
  pod?: string;
  endpoint?: string;
  containerID?: string;
  interfaceName: string;
  mac?: string;
  /** "10.244.1.5/32". */
  ipNetworks: string[];
  profiles?: string[];
  /** Named container ports (from the Pod's containers), for NetworkPolicy named ports. */
  ports?: EndpointPort[];
}

/** Calico's allocation block (model.AllocationBlock). `allocations[i]` indexes `attributes`, or null = free. */
export interface IPAMBlockSpec {
  cidr: string;
  /** "host:<node>" when affine to a node. */
  affinity?: string | null;
  strictAffinity?: boolean;
  allocations: Array<number | null>;
  unallocated: number[];
  attributes: Array<{ handle_id?: string | null; secondary?: Record<string, string> | null }>;
  deleted?: boolean;
  sequenceNumber?: number;
}

export interface BlockAffinitySpec {
  state: 'pending' | 'confirmed' | 'pendingDeletion';
  node: string;
  cidr: string;
  deleted?: boolean;
}

export interface IPAMHandleSpec {
  handleID: string;
  /** Block CIDR → number of addresses this handle holds there. */
  block: Record<string, number>;
  deleted?: boolean;
}

// Kubernetes kinds tortie reads for NetworkPolicy (apiVersion networking.k8s.io/v1 and v1, not
// projectcalico.org/v3): field names and meanings are the Kubernetes API's.

/** metav1.LabelSelector: matchLabels AND every matchExpression; empty selects everything. */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }>;
}

export type PolicyProtocol = 'TCP' | 'UDP' | 'SCTP';

export interface NetworkPolicyPort {
  /** Default TCP. */
  protocol?: PolicyProtocol;
  /** A number, or the name of a container port. Absent: every port of the protocol. */
  port?: number | string;
  /** With a numeric port: the range port..endPort. */
  endPort?: number;
}

export interface NetworkPolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: { cidr: string; except?: string[] };
}

export interface NetworkPolicyIngressRule {
  from?: NetworkPolicyPeer[];
  ports?: NetworkPolicyPort[];
}

export interface NetworkPolicyEgressRule {
  to?: NetworkPolicyPeer[];
  ports?: NetworkPolicyPort[];
}

export interface NetworkPolicySpec {
  podSelector: LabelSelector;
  /** Defaulted: Ingress, plus Egress when spec.egress is set. */
  policyTypes?: Array<'Ingress' | 'Egress'>;
  ingress?: NetworkPolicyIngressRule[];
  egress?: NetworkPolicyEgressRule[];
}

/** A Kubernetes Namespace: what matters (its labels) is in metadata. */
export interface NamespaceSpec {
  finalizers?: string[];
}

export interface ResourceSpecs {
  IPPool: IPPoolSpec;
  BGPConfiguration: BGPConfigurationSpec;
  BGPPeer: BGPPeerSpec;
  BGPFilter: BGPFilterSpec;
  Node: NodeSpec;
  WorkloadEndpoint: WorkloadEndpointSpec;
  IPAMBlock: IPAMBlockSpec;
  BlockAffinity: BlockAffinitySpec;
  IPAMHandle: IPAMHandleSpec;
  NetworkPolicy: NetworkPolicySpec;
  Namespace: NamespaceSpec;
}

export type Kind = keyof ResourceSpecs;

export const KINDS: readonly Kind[] = [
  'IPPool',
  'BGPConfiguration',
  'BGPPeer',
  'BGPFilter',
  'Node',
  'WorkloadEndpoint',
  'IPAMBlock',
  'BlockAffinity',
  'IPAMHandle',
  'NetworkPolicy',
  'Namespace',
];

/** The apiVersion of each kind that is not Calico's own (projectcalico.org/v3). */
export const FOREIGN_API_VERSIONS = { NetworkPolicy: 'networking.k8s.io/v1', Namespace: 'v1' } as const;
/** Every apiVersion a resource may carry (apiVersionOf(kind) says which one a kind has). */
export type ApiVersion = typeof API_VERSION | (typeof FOREIGN_API_VERSIONS)[keyof typeof FOREIGN_API_VERSIONS];

/** The apiVersion a kind is written with. */
export function apiVersionOf(kind: Kind): string {
  return (FOREIGN_API_VERSIONS as Partial<Record<Kind, string>>)[kind] ?? API_VERSION;
}

export interface Resource<K extends Kind = Kind> {
  apiVersion: ApiVersion;
  kind: K;
  metadata: ObjectMeta;
  spec: ResourceSpecs[K];
}

export type AnyResource = { [K in Kind]: Resource<K> }[Kind];
