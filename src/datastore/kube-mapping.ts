// Where each Calico v3 kind lives in the Kubernetes API, and the pure conversions both ways: custom objects
// of crd.projectcalico.org/v1 (IPPool, BGPConfiguration, BGPPeer, BGPFilter, IPAMBlock, BlockAffinity, IPAMHandle), the
// Kubernetes Node's annotations, Pods → WorkloadEndpoints, NetworkPolicies, Namespaces. No I/O: the
// Datastore (kubernetes.ts) and the watch (kube-watch.ts) call these on what the API server answers.

import { workloadInterfaceName } from '../../felix/index.js';
import type {
  EndpointPort,
  Kind,
  NetworkPolicySpec,
  NodeSpec,
  ObjectMeta,
  Resource,
  WorkloadEndpointSpec,
} from '../resources/types.js';
import { API_VERSION, FOREIGN_API_VERSIONS } from '../resources/types.js';
import { NAMESPACE_NAME_LABEL } from '../resources/defaults.js';
import { workloadEndpointName } from '../resources/workload-names.js';
import { DatastoreError } from './types.js';

export const CRD_GROUP = 'crd.projectcalico.org';
export const CRD_VERSION = 'v1';

const METADATA_ANNOTATION = 'projectcalico.org/metadata';
const NODE_LABELS_ANNOTATION = 'projectcalico.org/labels';
const NODE_ANNOTATIONS_ANNOTATION = 'projectcalico.org/annotations';

export type Spec = Record<string, unknown>;
type CrdKind = 'IPPool' | 'BGPConfiguration' | 'BGPPeer' | 'BGPFilter' | 'IPAMBlock' | 'BlockAffinity' | 'IPAMHandle';

export interface CrdMapping {
  plural: string;
  /** The Kubernetes object name for a v3 name. */
  objectName(name: string): string;
  toCrdSpec(spec: Spec): Spec;
  fromCrdSpec(spec: Spec): Spec;
}

const same = (spec: Spec): Spec => spec;

/** `10.244.1.0/26` or `10.244.1.0-26` → `10-244-1-0-26` (Calico's names.CIDRToName for IPv4). */
export function cidrToName(cidr: string): string {
  return cidr.toLowerCase().replace(/[./:]/g, '-');
}

/** One row per custom-object kind: its plural and how names and specs map. */
const CRD_KINDS: Readonly<Record<CrdKind, CrdMapping>> = {
  IPPool: { plural: 'ippools', objectName: (n) => n, toCrdSpec: same, fromCrdSpec: same },
  BGPConfiguration: { plural: 'bgpconfigurations', objectName: (n) => n, toCrdSpec: same, fromCrdSpec: same },
  BGPPeer: { plural: 'bgppeers', objectName: (n) => n, toCrdSpec: same, fromCrdSpec: same },
  BGPFilter: { plural: 'bgpfilters', objectName: (n) => n, toCrdSpec: same, fromCrdSpec: same },
  IPAMBlock: { plural: 'ipamblocks', objectName: cidrToName, toCrdSpec: same, fromCrdSpec: same },
  BlockAffinity: {
    plural: 'blockaffinities',
    // `<node>-<cidr>`: only the trailing CIDR is mangled; the node name keeps its dots, as in Calico.
    objectName: (n) => n.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)[/-](\d+)$/, '$1-$2-$3-$4-$5').toLowerCase(),
    // Calico's CRD declares `deleted` as a string.
    toCrdSpec: (spec) => ({ ...spec, deleted: String(spec.deleted === true) }),
    fromCrdSpec: (spec) => {
      const { deleted, ...rest } = spec;
      return deleted === 'true' || deleted === true ? { ...rest, deleted: true } : rest;
    },
  },
  IPAMHandle: { plural: 'ipamhandles', objectName: (n) => n.toLowerCase(), toCrdSpec: same, fromCrdSpec: same },
};

export function crdMapping(kind: Kind): CrdMapping | undefined {
  return (CRD_KINDS as Partial<Record<Kind, CrdMapping>>)[kind];
}

/** The Kubernetes object name a v3 resource of `kind` named `name` is stored under. */
export function objectNameFor(kind: Kind, name: string): string {
  return crdMapping(kind)?.objectName(name) ?? name;
}

/**
 * Every API call this backend makes (RBAC verb + resource), so the RBAC manifest can be checked against it.
 * `nodes` needs `patch` only to write the BGP annotations; Pods are only read.
 */
export const KUBERNETES_API_CALLS: ReadonlyArray<{ verb: string; resource: string }> = [
  ...Object.values(CRD_KINDS).flatMap((m) =>
    ['get', 'list', 'watch', 'create', 'update', 'delete'].map((verb) => ({
      verb,
      resource: `${m.plural}.${CRD_GROUP}`,
    })),
  ),
  ...['get', 'list', 'watch', 'patch'].map((verb) => ({ verb, resource: 'nodes' })),
  ...['get', 'list', 'watch'].map((verb) => ({ verb, resource: 'pods' })),
  ...['get', 'list', 'watch'].map((verb) => ({ verb, resource: 'networkpolicies.networking.k8s.io' })),
  ...['get', 'list', 'watch'].map((verb) => ({ verb, resource: 'namespaces' })),
];

export interface KubeMeta {
  name?: string;
  namespace?: string;
  resourceVersion?: string;
  uid?: string;
  creationTimestamp?: string | Date;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface CrdObject {
  apiVersion: string;
  kind: string;
  metadata: KubeMeta;
  spec?: Spec;
}

function timestamp(value: string | Date | undefined): string | undefined {
  if (value === undefined) return undefined;
  return value instanceof Date ? value.toISOString().replace(/\.\d{3}Z$/, 'Z') : String(value);
}

function nonEmpty(map: Record<string, string> | undefined): map is Record<string, string> {
  return map !== undefined && Object.keys(map).length > 0;
}

function parseJsonMap(text: string | undefined): Record<string, string> | undefined {
  if (text === undefined) return undefined;
  try {
    const value = JSON.parse(text) as unknown;
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, string>) : undefined;
  } catch {
    return undefined;
  }
}

/** The v3 metadata kept from a Kubernetes object's own metadata. */
function baseMeta(meta: KubeMeta): ObjectMeta {
  const out: ObjectMeta = { name: meta.name ?? '' };
  if (meta.namespace) out.namespace = meta.namespace;
  if (meta.resourceVersion) out.resourceVersion = meta.resourceVersion;
  if (meta.uid) out.uid = meta.uid;
  const created = timestamp(meta.creationTimestamp);
  if (created) out.creationTimestamp = created;
  return out;
}

export function resourceToCrd(resource: Resource): CrdObject {
  const mapping = crdMapping(resource.kind);
  if (!mapping) throw new Error(`${resource.kind} is not kept as a custom object`);
  const stored: { labels?: Record<string, string>; annotations?: Record<string, string> } = {};
  if (nonEmpty(resource.metadata.labels)) stored.labels = resource.metadata.labels;
  if (nonEmpty(resource.metadata.annotations)) stored.annotations = resource.metadata.annotations;
  const metadata: KubeMeta = { name: mapping.objectName(resource.metadata.name) };
  if (resource.metadata.resourceVersion) metadata.resourceVersion = resource.metadata.resourceVersion;
  if (stored.labels || stored.annotations) metadata.annotations = { [METADATA_ANNOTATION]: JSON.stringify(stored) };
  return {
    apiVersion: `${CRD_GROUP}/${CRD_VERSION}`,
    kind: resource.kind,
    metadata,
    spec: mapping.toCrdSpec(JSON.parse(JSON.stringify(resource.spec ?? {})) as Spec),
  };
}

export function crdToResource<K extends Kind>(kind: K, obj: CrdObject): Resource<K> {
  const mapping = crdMapping(kind);
  if (!mapping) throw new Error(`${kind} is not kept as a custom object`);
  const metadata = baseMeta(obj.metadata);
  delete metadata.namespace;
  const stored = parseJsonMap(obj.metadata.annotations?.[METADATA_ANNOTATION]) as
    { labels?: Record<string, string>; annotations?: Record<string, string> } | undefined;
  if (stored && nonEmpty(stored.labels)) metadata.labels = stored.labels;
  if (stored && nonEmpty(stored.annotations)) metadata.annotations = stored.annotations;
  return {
    apiVersion: API_VERSION,
    kind,
    metadata,
    spec: mapping.fromCrdSpec(obj.spec ?? {}),
  } as unknown as Resource<K>;
}

/** One row per BGP field kept as a Node annotation (Calico's names). */
const NODE_BGP_ANNOTATIONS: ReadonlyArray<{
  field: keyof NonNullable<NodeSpec['bgp']>;
  annotation: string;
  parse(text: string): string | number | undefined;
}> = [
  { field: 'ipv4Address', annotation: 'projectcalico.org/IPv4Address', parse: (t) => t },
  { field: 'ipv4IPIPTunnelAddr', annotation: 'projectcalico.org/IPv4IPIPTunnelAddr', parse: (t) => t },
  {
    field: 'asNumber',
    annotation: 'projectcalico.org/ASNumber',
    parse: (t) => (/^\d+$/.test(t) ? Number(t) : undefined),
  },
  { field: 'routeReflectorClusterID', annotation: 'projectcalico.org/RouteReflectorClusterID', parse: (t) => t },
  { field: 'ipv6Address', annotation: 'projectcalico.org/IPv6Address', parse: (t) => t },
];

/** Node spec fields outside `bgp` kept as annotations, Calico's names (its VXLAN tunnel endpoint). */
const NODE_SPEC_ANNOTATIONS: ReadonlyArray<{
  field: 'ipv4VXLANTunnelAddr' | 'vxlanTunnelMACAddr';
  annotation: string;
}> = [
  { field: 'ipv4VXLANTunnelAddr', annotation: 'projectcalico.org/IPv4VXLANTunnelAddr' },
  { field: 'vxlanTunnelMACAddr', annotation: 'projectcalico.org/VXLANTunnelMACAddr' },
];

export interface KubeNodeLike {
  metadata?: KubeMeta;
}

export function nodeToResource(node: KubeNodeLike): Resource<'Node'> {
  const meta = node.metadata ?? {};
  const annotations = meta.annotations ?? {};
  const metadata = baseMeta(meta);
  const labels = { ...(parseJsonMap(annotations[NODE_LABELS_ANNOTATION]) ?? {}), ...(meta.labels ?? {}) };
  if (nonEmpty(labels)) metadata.labels = labels;
  const calicoAnnotations = parseJsonMap(annotations[NODE_ANNOTATIONS_ANNOTATION]);
  if (nonEmpty(calicoAnnotations)) metadata.annotations = calicoAnnotations;
  const bgp: Record<string, string | number> = {};
  for (const row of NODE_BGP_ANNOTATIONS) {
    const text = annotations[row.annotation];
    const value = text === undefined ? undefined : row.parse(text);
    if (value !== undefined) bgp[row.field] = value;
  }
  const spec: NodeSpec = Object.keys(bgp).length > 0 ? { bgp: bgp as NodeSpec['bgp'] } : {};
  for (const row of NODE_SPEC_ANNOTATIONS) {
    const text = annotations[row.annotation];
    if (text !== undefined && text !== '') spec[row.field] = text;
  }
  return { apiVersion: API_VERSION, kind: 'Node', metadata, spec };
}

/**
 * The Kubernetes Node with `resource`'s BGP data and Calico labels/annotations written into its annotations.
 * Kubernetes labels are never changed (Calico does not either): a label the Kubernetes Node has wins.
 */
export function mergeNodeAnnotations<N extends KubeNodeLike>(current: N, resource: Resource<'Node'>): N {
  const next = { ...current, metadata: { ...(current.metadata ?? {}) } };
  const annotations = { ...(next.metadata.annotations ?? {}) };
  const bgp = (resource.spec.bgp ?? {}) as Record<string, unknown>;
  for (const row of NODE_BGP_ANNOTATIONS) {
    const value = bgp[row.field];
    if (value === undefined || value === null || value === '') delete annotations[row.annotation];
    else annotations[row.annotation] = String(value);
  }
  for (const row of NODE_SPEC_ANNOTATIONS) {
    const value = resource.spec[row.field];
    if (value === undefined || value === '') delete annotations[row.annotation];
    else annotations[row.annotation] = value;
  }
  const k8sLabels = next.metadata.labels ?? {};
  const calicoLabels = Object.fromEntries(
    Object.entries(resource.metadata.labels ?? {}).filter(([k]) => k8sLabels[k] === undefined),
  );
  if (nonEmpty(calicoLabels)) annotations[NODE_LABELS_ANNOTATION] = JSON.stringify(calicoLabels);
  else delete annotations[NODE_LABELS_ANNOTATION];
  if (nonEmpty(resource.metadata.annotations))
    annotations[NODE_ANNOTATIONS_ANNOTATION] = JSON.stringify(resource.metadata.annotations);
  else delete annotations[NODE_ANNOTATIONS_ANNOTATION];
  next.metadata.annotations = annotations;
  return next as N;
}

/** A JSON merge patch (RFC 7386) turning annotations `from` into `to`: changed keys set, removed keys null. */
export function annotationPatch(
  from: Record<string, string>,
  to: Record<string, string>,
): Record<string, string | null> {
  const patch: Record<string, string | null> = {};
  for (const [k, v] of Object.entries(to)) if (from[k] !== v) patch[k] = v;
  for (const k of Object.keys(from)) if (!(k in to)) patch[k] = null;
  return patch;
}

export interface PodLike {
  metadata?: KubeMeta;
  spec?: {
    nodeName?: string;
    hostNetwork?: boolean;
    serviceAccountName?: string;
    containers?: Array<{ ports?: Array<{ name?: string; containerPort?: number; protocol?: string }> }>;
  };
  status?: { podIP?: string; podIPs?: Array<{ ip?: string }>; phase?: string };
}

/**
 * A Pod's addresses as Calico reads them: the CNI plugin's annotations first (`cni.projectcalico.org/podIPs`,
 * a comma list of "10.244.1.5/32", then `podIP`) — they are written at ADD, before the kubelet reports
 * `status.podIPs`, so felix can route to a new pod at once — else `status.podIPs` / `status.podIP`.
 */
export function podAddresses(pod: PodLike): string[] {
  const annotations = pod.metadata?.annotations ?? {};
  const annotated = (annotations['cni.projectcalico.org/podIPs'] ?? annotations['cni.projectcalico.org/podIP'] ?? '')
    .split(',')
    .map((text) => text.trim().split('/')[0] ?? '')
    .filter((ip) => ip !== '');
  if (annotated.length > 0) return annotated;
  const ips = (pod.status?.podIPs ?? [])
    .map((p) => p.ip)
    .filter((ip): ip is string => typeof ip === 'string' && ip !== '');
  if (ips.length === 0 && pod.status?.podIP) ips.push(pod.status.podIP);
  return ips;
}

/**
 * The WorkloadEndpoint of a Pod, or null when the Pod has none: not scheduled, host-networked, finished
 * (Succeeded/Failed) or without an IP yet.
 */
export function podToWorkloadEndpoint(pod: PodLike): Resource<'WorkloadEndpoint'> | null {
  const namespace = pod.metadata?.namespace ?? 'default';
  const name = pod.metadata?.name;
  const node = pod.spec?.nodeName;
  if (!name || !node || pod.spec?.hostNetwork === true) return null;
  if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') return null;
  const ips = podAddresses(pod);
  if (ips.length === 0) return null;
  const serviceAccount = pod.spec?.serviceAccountName;
  const metadata = baseMeta(pod.metadata ?? {});
  metadata.name = workloadEndpointName(node, name);
  metadata.namespace = namespace;
  metadata.labels = {
    ...(pod.metadata?.labels ?? {}),
    'projectcalico.org/namespace': namespace,
    'projectcalico.org/orchestrator': 'k8s',
    ...(serviceAccount ? { 'projectcalico.org/serviceaccount': serviceAccount } : {}),
  };
  const spec: WorkloadEndpointSpec = {
    orchestrator: 'k8s',
    node,
    pod: name,
    endpoint: 'eth0',
    interfaceName: workloadInterfaceName(namespace, name),
    ipNetworks: ips.map((ip) => (ip.includes(':') ? `${ip}/128` : `${ip}/32`)),
    profiles: [`kns.${namespace}`, ...(serviceAccount ? [`ksa.${namespace}.${serviceAccount}`] : [])],
  };
  const containerID = pod.metadata?.annotations?.['cni.projectcalico.org/containerID'];
  if (containerID) spec.containerID = containerID;
  const ports = namedPorts(pod);
  if (ports.length > 0) spec.ports = ports;
  return { apiVersion: API_VERSION, kind: 'WorkloadEndpoint', metadata, spec };
}

/** The Pod's named container ports, as Calico's WorkloadEndpoint `ports` (what NetworkPolicy named ports resolve to). */
export function namedPorts(pod: PodLike): EndpointPort[] {
  const out: EndpointPort[] = [];
  for (const container of pod.spec?.containers ?? []) {
    for (const p of container.ports ?? []) {
      if (!p.name || typeof p.containerPort !== 'number') continue;
      const protocol = p.protocol === 'UDP' || p.protocol === 'SCTP' ? p.protocol : 'TCP';
      out.push({ name: p.name, protocol, port: p.containerPort });
    }
  }
  return out;
}

export interface NetworkPolicyLike {
  metadata?: KubeMeta;
  spec?: unknown;
}

/** A networking.k8s.io/v1 NetworkPolicy as tortie keeps it (the API server has already defaulted it). */
export function networkPolicyToResource(obj: NetworkPolicyLike): Resource<'NetworkPolicy'> {
  const metadata = baseMeta(obj.metadata ?? {});
  metadata.namespace ??= 'default';
  if (nonEmpty(obj.metadata?.labels)) metadata.labels = obj.metadata.labels;
  // Through JSON: client-node's model objects carry undefined fields; the spec's own names are the API's.
  const spec = JSON.parse(JSON.stringify(obj.spec ?? {})) as NetworkPolicySpec;
  spec.podSelector ??= {};
  if (spec.policyTypes === undefined || spec.policyTypes.length === 0)
    spec.policyTypes = (spec.egress ?? []).length > 0 ? ['Ingress', 'Egress'] : ['Ingress'];
  return { apiVersion: FOREIGN_API_VERSIONS.NetworkPolicy, kind: 'NetworkPolicy', metadata, spec };
}

/** A v1 Namespace: its labels (with kubernetes.io/metadata.name, which the API server always sets). */
export function namespaceToResource(obj: { metadata?: KubeMeta }): Resource<'Namespace'> {
  const metadata = baseMeta(obj.metadata ?? {});
  delete metadata.namespace;
  metadata.labels = { ...(obj.metadata?.labels ?? {}), [NAMESPACE_NAME_LABEL]: metadata.name };
  return { apiVersion: FOREIGN_API_VERSIONS.Namespace, kind: 'Namespace', metadata, spec: {} };
}

/** The API path of the collection that backs `kind` (what a watch streams). */
export function collectionPath(kind: Kind): string {
  const mapping = crdMapping(kind);
  if (mapping) return `/apis/${CRD_GROUP}/${CRD_VERSION}/${mapping.plural}`;
  if (kind === 'Node') return '/api/v1/nodes';
  if (kind === 'Namespace') return '/api/v1/namespaces';
  if (kind === 'NetworkPolicy') return '/apis/networking.k8s.io/v1/networkpolicies';
  if (kind === 'WorkloadEndpoint') return '/api/v1/pods';
  throw new DatastoreError(`kind "${kind}" is not kept by the kubernetes datastore`);
}

/** The v3 resource(s) a raw watched object stands for; null when it has none (a Pod without an IP). */
export function convertWatched(kind: Kind, obj: unknown): Resource | null {
  if (crdMapping(kind)) return crdToResource(kind, obj as CrdObject);
  if (kind === 'Node') return nodeToResource(obj as KubeNodeLike);
  if (kind === 'Namespace') return namespaceToResource(obj as { metadata?: KubeMeta });
  if (kind === 'NetworkPolicy') return networkPolicyToResource(obj as NetworkPolicyLike);
  return podToWorkloadEndpoint(obj as PodLike);
}
