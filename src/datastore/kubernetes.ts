// The Kubernetes API datastore (DATASTORE_TYPE=kubernetes), on the real @kubernetes/client-node client.
// Where each Calico v3 kind lives, as Calico's own Kubernetes backend keeps it:
// - IPPool, BGPConfiguration, BGPPeer, IPAMBlock, BlockAffinity, IPAMHandle: cluster-scoped custom
//   objects of group crd.projectcalico.org/v1 whose `spec` is the v3 spec. Labels and annotations of the v3
//   object go into the annotation `projectcalico.org/metadata` (JSON). Names: an IPAMBlock is named after
//   its CIDR with dots and slashes as dashes (`10-244-1-0-26`), a BlockAffinity `<node>-<cidr name>`, an
//   IPAMHandle is its handle id in lower case; BlockAffinity's `deleted` is a string in the CRD.
// - Node: the Kubernetes Node itself. BGP data are the Node's annotations projectcalico.org/IPv4Address,
//   IPv4IPIPTunnelAddr, ASNumber and RouteReflectorClusterID; labels are the Kubernetes labels plus
//   Calico-only labels kept in the annotation `projectcalico.org/labels`. Nodes are registered by the
//   kubelet, so create and delete are refused; update merge-patches the annotations (with resourceVersion).
// - NetworkPolicy and Namespace: the Kubernetes objects themselves (networking.k8s.io/v1 networkpolicies,
//   v1 namespaces), read-only here: people write them with kubectl.
// - WorkloadEndpoint: derived from Pods (podIP, nodeName, namespace, named container ports) and read-only. The interface name is
//   `cali` + the first 11 hex characters of sha1("<namespace>.<pod>"); the name is Calico's
//   `<node>-k8s-<pod>-eth0` with dashes inside each part doubled.
//
// Why this is hard: the Kubernetes API is not a key-value store. Custom objects refuse an update without a
// resourceVersion (so an unconditional update reads first and retries on conflict, a bounded number of
// times); a watch may end at any moment (re-open from the last resourceVersion seen) or answer 410 Gone
// when that version is too old (re-list, send `sync`, watch from the list's version); and every request
// needs its own deadline, because a silent server would otherwise hang the caller forever.

import { workloadInterfaceName } from '../../felix/route-calc.js';
import { systemClock, type Clock, type TimerHandle } from '../../bgp/clock.js';
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  NetworkingV1Api,
  PatchStrategy,
  Watch,
  setHeaderOptions,
  type V1Pod,
} from '@kubernetes/client-node';
import { kubeClient } from './kube-client.js';
import type { EndpointPort, Kind, NetworkPolicySpec, NodeSpec, ObjectMeta, Resource, WorkloadEndpointSpec } from '../resources/types.js';
import { API_VERSION, FOREIGN_API_VERSIONS } from '../resources/types.js';
import { NAMESPACE_NAME_LABEL } from '../resources/defaults.js';
import {
  AlreadyExistsError,
  ConflictError,
  DatastoreError,
  DatastoreUnavailableError,
  NotFoundError,
  type Datastore,
  type ListResult,
  type Watch as DatastoreWatch,
  type WatchEvent,
} from './types.js';

export interface KubernetesOptions {
  /** Path of a kubeconfig file; default: $KUBECONFIG, ~/.kube/config, or the in-cluster service account. */
  kubeconfig?: string;
  /** Deadline of every API request and of the first contact, in ms (default 5000). */
  timeoutMs?: number;
  /** First delay before re-opening a failed watch, in ms (default 200; doubles up to 5000). */
  watchRetryMs?: number;
  /** Time for watch retry delays (default: the system clock). */
  clock?: Clock;
}

/** The operation asked for cannot be done on this datastore (e.g. creating a WorkloadEndpoint: Pods are the source). */
export class UnsupportedOperationError extends DatastoreError {}

export const CRD_GROUP = 'crd.projectcalico.org';
export const CRD_VERSION = 'v1';

const METADATA_ANNOTATION = 'projectcalico.org/metadata';
const NODE_LABELS_ANNOTATION = 'projectcalico.org/labels';
const NODE_ANNOTATIONS_ANNOTATION = 'projectcalico.org/annotations';
/** The longest wait between attempts to re-open a watch. */
const MAX_WATCH_RETRY_MS = 5000;
/** Attempts of a read-then-write when the caller gave no resourceVersion and someone else keeps writing. */
const UNCONDITIONAL_ATTEMPTS = 5;

type Spec = Record<string, unknown>;
type CrdKind = 'IPPool' | 'BGPConfiguration' | 'BGPPeer' | 'BGPFilter' | 'IPAMBlock' | 'BlockAffinity' | 'IPAMHandle';

interface CrdMapping {
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

function crdMapping(kind: Kind): CrdMapping | undefined {
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
    ['get', 'list', 'watch', 'create', 'update', 'delete'].map((verb) => ({ verb, resource: `${m.plural}.${CRD_GROUP}` })),
  ),
  ...['get', 'list', 'watch', 'patch'].map((verb) => ({ verb, resource: 'nodes' })),
  ...['get', 'list', 'watch'].map((verb) => ({ verb, resource: 'pods' })),
  ...['get', 'list', 'watch'].map((verb) => ({ verb, resource: 'networkpolicies.networking.k8s.io' })),
  ...['get', 'list', 'watch'].map((verb) => ({ verb, resource: 'namespaces' })),
];

// ---------------------------------------------------------------------------------------------------------
// Conversions (pure)

interface KubeMeta {
  name?: string;
  namespace?: string;
  resourceVersion?: string;
  uid?: string;
  creationTimestamp?: string | Date;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

interface CrdObject {
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
    | { labels?: Record<string, string>; annotations?: Record<string, string> }
    | undefined;
  if (stored && nonEmpty(stored.labels)) metadata.labels = stored.labels;
  if (stored && nonEmpty(stored.annotations)) metadata.annotations = stored.annotations;
  return { apiVersion: API_VERSION, kind, metadata, spec: mapping.fromCrdSpec(obj.spec ?? {}) } as unknown as Resource<K>;
}

/** One row per BGP field kept as a Node annotation (Calico's names). */
const NODE_BGP_ANNOTATIONS: ReadonlyArray<{
  field: keyof NonNullable<NodeSpec['bgp']>;
  annotation: string;
  parse(text: string): string | number | undefined;
}> = [
  { field: 'ipv4Address', annotation: 'projectcalico.org/IPv4Address', parse: (t) => t },
  { field: 'ipv4IPIPTunnelAddr', annotation: 'projectcalico.org/IPv4IPIPTunnelAddr', parse: (t) => t },
  { field: 'asNumber', annotation: 'projectcalico.org/ASNumber', parse: (t) => (/^\d+$/.test(t) ? Number(t) : undefined) },
  { field: 'routeReflectorClusterID', annotation: 'projectcalico.org/RouteReflectorClusterID', parse: (t) => t },
  { field: 'ipv6Address', annotation: 'projectcalico.org/IPv6Address', parse: (t) => t },
];

/** Node spec fields outside `bgp` kept as annotations, Calico's names (its VXLAN tunnel endpoint). */
const NODE_SPEC_ANNOTATIONS: ReadonlyArray<{ field: 'ipv4VXLANTunnelAddr' | 'vxlanTunnelMACAddr'; annotation: string }> = [
  { field: 'ipv4VXLANTunnelAddr', annotation: 'projectcalico.org/IPv4VXLANTunnelAddr' },
  { field: 'vxlanTunnelMACAddr', annotation: 'projectcalico.org/VXLANTunnelMACAddr' },
];

interface KubeNodeLike {
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
  const calicoLabels = Object.fromEntries(Object.entries(resource.metadata.labels ?? {}).filter(([k]) => k8sLabels[k] === undefined));
  if (nonEmpty(calicoLabels)) annotations[NODE_LABELS_ANNOTATION] = JSON.stringify(calicoLabels);
  else delete annotations[NODE_LABELS_ANNOTATION];
  if (nonEmpty(resource.metadata.annotations)) annotations[NODE_ANNOTATIONS_ANNOTATION] = JSON.stringify(resource.metadata.annotations);
  else delete annotations[NODE_ANNOTATIONS_ANNOTATION];
  next.metadata.annotations = annotations;
  return next as N;
}

/** A JSON merge patch (RFC 7386) turning annotations `from` into `to`: changed keys set, removed keys null. */
export function annotationPatch(from: Record<string, string>, to: Record<string, string>): Record<string, string | null> {
  const patch: Record<string, string | null> = {};
  for (const [k, v] of Object.entries(to)) if (from[k] !== v) patch[k] = v;
  for (const k of Object.keys(from)) if (!(k in to)) patch[k] = null;
  return patch;
}

/** `cali` + the first 11 hex characters of sha1("<namespace>.<pod>") — Calico's host-side veth name. */
/** Calico's host-side interface name for a pod: one definition, felix's. */
export { workloadInterfaceName };

/** Calico's WorkloadEndpoint name for a Pod: `<node>-k8s-<pod>-eth0`, dashes inside each part doubled. */
export function workloadEndpointName(node: string, pod: string): string {
  return [node, 'k8s', pod, 'eth0'].map((part) => part.replace(/-/g, '--')).join('-');
}

/** The node and pod a Calico WorkloadEndpoint name stands for; null when it is not `<node>-k8s-<pod>-eth0`. */
export function parseWorkloadEndpointName(name: string): { node: string; pod: string } | null {
  const parts: string[] = [];
  let start = 0;
  for (let i = 1; i < name.length; i++) {
    if (name[i] !== '-') continue;
    if (name[i + 1] === '-') {
      i++; // an escaped dash inside a part
      continue;
    }
    parts.push(name.slice(start, i).replace(/--/g, '-'));
    start = i + 1;
  }
  parts.push(name.slice(start).replace(/--/g, '-'));
  const [node, orchestrator, pod, endpoint] = parts;
  if (parts.length !== 4 || orchestrator !== 'k8s' || endpoint !== 'eth0' || !node || !pod) return null;
  return { node, pod };
}

interface PodLike {
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
  const ips = (pod.status?.podIPs ?? []).map((p) => p.ip).filter((ip): ip is string => typeof ip === 'string' && ip !== '');
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

interface NetworkPolicyLike {
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
  if (spec.policyTypes === undefined || spec.policyTypes.length === 0) spec.policyTypes = (spec.egress ?? []).length > 0 ? ['Ingress', 'Egress'] : ['Ingress'];
  return { apiVersion: FOREIGN_API_VERSIONS.NetworkPolicy, kind: 'NetworkPolicy', metadata, spec };
}

/** A v1 Namespace: its labels (with kubernetes.io/metadata.name, which the API server always sets). */
export function namespaceToResource(obj: { metadata?: KubeMeta }): Resource<'Namespace'> {
  const metadata = baseMeta(obj.metadata ?? {});
  delete metadata.namespace;
  metadata.labels = { ...(obj.metadata?.labels ?? {}), [NAMESPACE_NAME_LABEL]: metadata.name };
  return { apiVersion: FOREIGN_API_VERSIONS.Namespace, kind: 'Namespace', metadata, spec: {} };
}

// ---------------------------------------------------------------------------------------------------------
// Errors: what the API server said → the Datastore's error classes

interface StatusBody {
  code?: number;
  reason?: string;
  message?: string;
}

function statusOf(err: ApiException<unknown>): StatusBody {
  const body = err.body;
  if (typeof body === 'string') {
    try {
      return JSON.parse(body) as StatusBody;
    } catch {
      return { message: body };
    }
  }
  return (body && typeof body === 'object' ? body : {}) as StatusBody;
}

/** One row per HTTP status the backend maps; the first match wins. */
const STATUS_ERRORS: ReadonlyArray<{ code: number; reason?: string; make(what: string, status: StatusBody, server: string): Error }> = [
  { code: 404, make: (what) => new NotFoundError(`${what} not found`) },
  { code: 409, reason: 'AlreadyExists', make: (what) => new AlreadyExistsError(`${what} already exists`) },
  {
    code: 409,
    make: (what, s) => new ConflictError(`${what} was changed by someone else (the resourceVersion given is not the current one); nothing was written${s.message ? `: ${s.message}` : ''}`),
  },
  { code: 401, make: (what, s, server) => new DatastoreError(`${what}: the Kubernetes API server ${server} refused the credentials (401 Unauthorized)${s.message ? `: ${s.message}` : ''}`) },
  { code: 403, make: (what, s, server) => new DatastoreError(`${what}: forbidden by ${server} — check the RBAC rules for tortie (403)${s.message ? `: ${s.message}` : ''}`) },
  { code: 422, make: (what, s) => new DatastoreError(`${what} was refused by the Kubernetes API server as invalid: ${s.message ?? 'no message'}`) },
];

function isApiException(err: unknown): err is ApiException<unknown> {
  return err instanceof ApiException || (typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'number' && 'body' in err);
}

/** A failure to talk to the server at all (refused, reset, DNS, deadline), as opposed to a bug or a refusal. */
function isTransportError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  return ['FetchError', 'AbortError', 'TimeoutError'].includes(err.name) || (typeof code === 'string' && /^E[A-Z_]+$/.test(code));
}

function describeCause(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  if (err.name === 'AbortError' || err.name === 'TimeoutError') return 'no answer in time';
  return typeof code === 'string' ? `${code}: ${err.message}` : err.message;
}

// ---------------------------------------------------------------------------------------------------------
// The backend

interface ListResponse<T> {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: T[];
}

/** Objects per list request; larger collections are read in pages, as Calico does. */
export const LIST_PAGE_SIZE = 500;
/** A bound on pages of one list (5 million objects): a server that never stops sending `continue` is an error. */
const MAX_LIST_PAGES = 10_000;

/**
 * Reads every page of a list. All pages are one consistent snapshot: the API server answers each
 * `continue` at the first page's resourceVersion, which is the revision of the whole list.
 */
async function listAllPages<T>(
  fetchPage: (page: { limit: number; _continue?: string }) => Promise<{ items: T[]; revision: string | undefined; next: string | undefined }>,
): Promise<{ items: T[]; revision: string }> {
  const items: T[] = [];
  let revision: string | undefined;
  let next: string | undefined;
  for (let pages = 0; pages < MAX_LIST_PAGES; pages++) {
    const page = await fetchPage({ limit: LIST_PAGE_SIZE, ...(next ? { _continue: next } : {}) });
    items.push(...page.items);
    revision ??= page.revision;
    next = page.next;
    if (!next) return { items, revision: revision ?? '' };
  }
  throw new DatastoreError(`a list did not end after ${MAX_LIST_PAGES} pages of ${LIST_PAGE_SIZE}`);
}

class KubernetesDatastore implements Datastore {
  readonly type = 'kubernetes';
  private readonly watches = new Set<KindWatch>();

  constructor(
    private readonly core: CoreV1Api,
    private readonly custom: CustomObjectsApi,
    private readonly networking: NetworkingV1Api,
    private readonly watcher: Watch,
    readonly server: string,
    private readonly timeoutMs: number,
    private readonly watchRetryMs: number,
    readonly clock: Clock,
  ) {}

  /** Maps any failure of a call about `what` (e.g. `IPPool "p1"`) to the Datastore error classes. */
  fail(err: unknown, what: string): Error {
    if (err instanceof DatastoreError) return err;
    if (isApiException(err)) {
      const status = statusOf(err);
      const row = STATUS_ERRORS.find((r) => r.code === err.code && (r.reason === undefined || r.reason === status.reason));
      if (row) return row.make(what, status, this.server);
      return new DatastoreError(`${what}: the Kubernetes API server ${this.server} answered ${err.code}${status.message ? `: ${status.message}` : ''}`);
    }
    if (!isTransportError(err)) return new DatastoreError(`${what}: ${describeCause(err)}`);
    return new DatastoreUnavailableError(
      `cannot reach the Kubernetes API server at ${this.server} (deadline ${this.timeoutMs} ms) for ${what}: ${describeCause(err)}`,
    );
  }

  async get<K extends Kind>(kind: K, name: string, namespace?: string): Promise<Resource<K> | null> {
    const what = describe(kind, name, namespace);
    try {
      return await this.getOrThrow(kind, name, namespace);
    } catch (err) {
      const mapped = this.fail(err, what);
      if (mapped instanceof NotFoundError) return null;
      throw mapped;
    }
  }

  private async getOrThrow<K extends Kind>(kind: K, name: string, namespace?: string): Promise<Resource<K>> {
    const mapping = crdMapping(kind);
    if (mapping) {
      const obj = (await this.custom.getClusterCustomObject({ group: CRD_GROUP, version: CRD_VERSION, plural: mapping.plural, name: mapping.objectName(name) })) as CrdObject;
      return crdToResource(kind, obj);
    }
    if (kind === 'Node') return nodeToResource(await this.core.readNode({ name })) as Resource<K>;
    if (kind === 'Namespace') return namespaceToResource(await this.core.readNamespace({ name })) as Resource<K>;
    if (kind === 'NetworkPolicy') {
      return networkPolicyToResource(await this.networking.readNamespacedNetworkPolicy({ name, namespace: namespace ?? 'default' })) as Resource<K>;
    }
    if (kind === 'WorkloadEndpoint') {
      if (!namespace) throw new DatastoreError(`WorkloadEndpoint "${name}": a namespace is required (WorkloadEndpoints are namespaced, like their Pods)`);
      const notFound = new NotFoundError(`${describe(kind, name, namespace)} not found (no Pod with an IP has that endpoint name)`);
      const ids = parseWorkloadEndpointName(name);
      if (!ids) throw notFound;
      const wep = podToWorkloadEndpoint(await this.core.readNamespacedPod({ name: ids.pod, namespace }));
      if (!wep || wep.metadata.name !== name) throw notFound;
      return wep as Resource<K>;
    }
    throw new DatastoreError(`kind "${kind}" is not kept by the kubernetes datastore`);
  }

  async list<K extends Kind>(kind: K, options: { namespace?: string } = {}): Promise<ListResult<K>> {
    try {
      const mapping = crdMapping(kind);
      if (mapping) {
        const list = await listAllPages(async (page) => {
          const r = (await this.custom.listClusterCustomObject({ group: CRD_GROUP, version: CRD_VERSION, plural: mapping.plural, ...page })) as ListResponse<CrdObject>;
          return { items: r.items ?? [], revision: r.metadata?.resourceVersion, next: r.metadata?.continue };
        });
        return { items: list.items.map((o) => crdToResource(kind, o)), revision: list.revision };
      }
      if (kind === 'Node') {
        const list = await listAllPages(async (page) => {
          const r = await this.core.listNode(page);
          return { items: r.items, revision: r.metadata?.resourceVersion, next: r.metadata?._continue };
        });
        return { items: list.items.map((n) => nodeToResource(n) as Resource<K>), revision: list.revision };
      }
      if (kind === 'Namespace') {
        const list = await listAllPages(async (page) => {
          const r = await this.core.listNamespace(page);
          return { items: r.items, revision: r.metadata?.resourceVersion, next: r.metadata?._continue };
        });
        return { items: list.items.map((n) => namespaceToResource(n) as Resource<K>), revision: list.revision };
      }
      if (kind === 'NetworkPolicy') {
        const list = await listAllPages(async (page) => {
          const r = options.namespace
            ? await this.networking.listNamespacedNetworkPolicy({ namespace: options.namespace, ...page })
            : await this.networking.listNetworkPolicyForAllNamespaces(page);
          return { items: r.items, revision: r.metadata?.resourceVersion, next: r.metadata?._continue };
        });
        return { items: list.items.map((n) => networkPolicyToResource(n) as Resource<K>), revision: list.revision };
      }
      if (kind === 'WorkloadEndpoint') {
        const list = await listAllPages(async (page) => {
          const r = options.namespace ? await this.core.listNamespacedPod({ namespace: options.namespace, ...page }) : await this.core.listPodForAllNamespaces(page);
          return { items: r.items, revision: r.metadata?.resourceVersion, next: r.metadata?._continue };
        });
        const items = list.items.map((p: V1Pod) => podToWorkloadEndpoint(p)).filter((w): w is Resource<'WorkloadEndpoint'> => w !== null);
        return { items: items as Array<Resource<K>>, revision: list.revision };
      }
    } catch (err) {
      throw this.fail(err, `listing ${kind}`);
    }
    throw new DatastoreError(`kind "${kind}" is not kept by the kubernetes datastore`);
  }

  async create<K extends Kind>(resource: Resource<K>): Promise<Resource<K>> {
    const what = describe(resource.kind, resource.metadata.name, resource.metadata.namespace);
    const mapping = crdMapping(resource.kind);
    if (mapping) {
      const body = resourceToCrd(resource as Resource);
      delete body.metadata.resourceVersion;
      try {
        const obj = (await this.custom.createClusterCustomObject({ group: CRD_GROUP, version: CRD_VERSION, plural: mapping.plural, body })) as CrdObject;
        return crdToResource(resource.kind, obj);
      } catch (err) {
        throw this.fail(err, what);
      }
    }
    if (resource.kind === 'Node') {
      // The Calico Node exists exactly when the Kubernetes Node does: creating one is "already exists" or impossible.
      const existing = await this.get('Node', resource.metadata.name);
      if (existing) throw new AlreadyExistsError(`${what} already exists (it is the Kubernetes Node; update it to set its BGP data)`);
      throw new UnsupportedOperationError(
        `cannot create ${what}: on the kubernetes datastore a Node is the Kubernetes Node registered by its kubelet, and there is no Node "${resource.metadata.name}" in the cluster`,
      );
    }
    throw this.readOnly(resource.kind, 'create', what);
  }

  async update<K extends Kind>(resource: Resource<K>): Promise<Resource<K>> {
    const what = describe(resource.kind, resource.metadata.name, resource.metadata.namespace);
    // An empty resourceVersion is no resourceVersion: unconditional.
    const wanted = resource.metadata.resourceVersion || undefined;
    const mapping = crdMapping(resource.kind);
    if (!mapping && resource.kind !== 'Node') throw this.readOnly(resource.kind, 'update', what);
    for (let attempt = 1; ; attempt++) {
      try {
        if (mapping) {
          const body = resourceToCrd(resource as Resource);
          // Custom objects refuse an update without resourceVersion: read the current one when none was given.
          body.metadata.resourceVersion = wanted ?? (await this.getOrThrow(resource.kind, resource.metadata.name)).metadata.resourceVersion;
          const obj = (await this.custom.replaceClusterCustomObject({
            group: CRD_GROUP,
            version: CRD_VERSION,
            plural: mapping.plural,
            name: body.metadata.name ?? '',
            body,
          })) as CrdObject;
          return crdToResource(resource.kind, obj);
        }
        // A JSON merge patch of the annotations only, so fields of the Node this client's model does not
        // know are never written back; metadata.resourceVersion in the patch makes it compare-and-swap.
        const current = await this.core.readNode({ name: resource.metadata.name });
        const next = mergeNodeAnnotations(current, resource as Resource<'Node'>);
        const body = {
          metadata: {
            resourceVersion: wanted ?? current.metadata?.resourceVersion,
            annotations: annotationPatch(current.metadata?.annotations ?? {}, next.metadata?.annotations ?? {}),
          },
        };
        const patched = await this.core.patchNode({ name: resource.metadata.name, body }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
        return nodeToResource(patched) as Resource<K>;
      } catch (err) {
        const mapped = this.fail(err, what);
        // Without a resourceVersion from the caller a conflict only means someone wrote between our read
        // and our write: read again, a bounded number of times.
        if (mapped instanceof ConflictError && wanted === undefined && attempt < UNCONDITIONAL_ATTEMPTS) continue;
        throw mapped;
      }
    }
  }

  async delete<K extends Kind>(kind: K, name: string, options: { namespace?: string; revision?: string } = {}): Promise<Resource<K>> {
    const what = describe(kind, name, options.namespace);
    const mapping = crdMapping(kind);
    if (!mapping) {
      if (kind === 'Node') {
        throw new UnsupportedOperationError(`cannot delete ${what}: on the kubernetes datastore a Node is the Kubernetes Node; remove it with kubectl delete node`);
      }
      throw this.readOnly(kind, 'delete', what);
    }
    try {
      const obj = (await this.custom.deleteClusterCustomObject({
        group: CRD_GROUP,
        version: CRD_VERSION,
        plural: mapping.plural,
        name: mapping.objectName(name),
        ...(options.revision ? { body: { preconditions: { resourceVersion: options.revision } } } : {}),
      })) as CrdObject;
      return crdToResource(kind, obj);
    } catch (err) {
      throw this.fail(err, what);
    }
  }

  watch<K extends Kind>(kind: K, fromRevision: string, onEvent: (event: WatchEvent<K>) => void): DatastoreWatch {
    const w = new KindWatch(this, kind, fromRevision, onEvent as (event: WatchEvent<Kind>) => void);
    this.watches.add(w);
    w.start();
    return {
      stop: () => {
        w.stop();
        this.watches.delete(w);
      },
    };
  }

  /** Opens a raw watch stream (client-node's Watch) on the collection that backs `kind`. */
  openStream(kind: Kind, resourceVersion: string, onLine: (type: string, obj: unknown) => void, onDone: (err: unknown) => void): Promise<AbortController> {
    const query: Record<string, string | boolean> = { allowWatchBookmarks: false };
    if (resourceVersion !== '') query.resourceVersion = resourceVersion;
    return this.watcher.watch(collectionPath(kind), query, onLine, onDone);
  }

  get retryMs(): number {
    return this.watchRetryMs;
  }

  async close(): Promise<void> {
    for (const w of this.watches) w.stop();
    this.watches.clear();
  }

  private readOnly(kind: Kind, op: string, what: string): Error {
    if (kind === 'NetworkPolicy' || kind === 'Namespace') {
      return new UnsupportedOperationError(`cannot ${op} ${what}: on the kubernetes datastore ${kind}s are the Kubernetes objects themselves; use kubectl ${op === 'delete' ? 'delete' : 'apply'}`);
    }
    if (kind === 'WorkloadEndpoint') {
      return new UnsupportedOperationError(
        `cannot ${op} ${what}: on the kubernetes datastore WorkloadEndpoints are derived from Pods and are read-only (change the Pod instead)`,
      );
    }
    return new DatastoreError(`kind "${kind}" is not kept by the kubernetes datastore`);
  }
}

function describe(kind: Kind, name: string, namespace?: string): string {
  return namespace ? `${kind} "${namespace}/${name}"` : `${kind} "${name}"`;
}

function collectionPath(kind: Kind): string {
  const mapping = crdMapping(kind);
  if (mapping) return `/apis/${CRD_GROUP}/${CRD_VERSION}/${mapping.plural}`;
  if (kind === 'Node') return '/api/v1/nodes';
  if (kind === 'Namespace') return '/api/v1/namespaces';
  if (kind === 'NetworkPolicy') return '/apis/networking.k8s.io/v1/networkpolicies';
  if (kind === 'WorkloadEndpoint') return '/api/v1/pods';
  throw new DatastoreError(`kind "${kind}" is not kept by the kubernetes datastore`);
}

/** The v3 resource(s) a raw watched object stands for; null when it has none (a Pod without an IP). */
function convertWatched(kind: Kind, obj: unknown): Resource | null {
  if (crdMapping(kind)) return crdToResource(kind, obj as CrdObject);
  if (kind === 'Node') return nodeToResource(obj as KubeNodeLike);
  if (kind === 'Namespace') return namespaceToResource(obj as { metadata?: KubeMeta });
  if (kind === 'NetworkPolicy') return networkPolicyToResource(obj as NetworkPolicyLike);
  return podToWorkloadEndpoint(obj as PodLike);
}

/**
 * One kind's watch: a stream from the last resourceVersion seen, re-opened when it ends, re-listed (with a
 * `sync` event) on 410 Gone. `generation` tells callbacks of an abandoned stream to stay quiet.
 * client-node's Watch hands out its AbortController only once the response headers have arrived, so a
 * stream abandoned before that is aborted the moment they do.
 */
class KindWatch {
  private revision: string;
  private generation = 0;
  private stopped = false;
  private controller: AbortController | undefined;
  private timer: TimerHandle | undefined;
  private delayMs: number;

  constructor(
    private readonly ds: KubernetesDatastore,
    private readonly kind: Kind,
    fromRevision: string,
    private readonly onEvent: (event: WatchEvent<Kind>) => void,
  ) {
    this.revision = fromRevision;
    this.delayMs = ds.retryMs;
  }

  /**
   * Hands one event to the consumer. client-node's Watch calls us inside a try that ignores what is thrown,
   * so a consumer that throws would lose the event without a word: it gets an error event instead (the
   * agent's cache re-lists the kind on one).
   */
  private emit(event: WatchEvent<Kind>): void {
    if (this.stopped) return;
    try {
      this.onEvent(event);
    } catch (err) {
      if (event.type !== 'error') this.emit({ type: 'error', error: new DatastoreError(`watch of ${this.kind} on ${this.ds.server}: a ${event.type} event could not be handled: ${describeCause(err)}`) });
    }
  }

  start(): void {
    if (this.stopped) return;
    const generation = ++this.generation;
    const current = (): boolean => !this.stopped && generation === this.generation;
    this.ds
      .openStream(
        this.kind,
        this.revision,
        (type, obj) => {
          if (!current()) return;
          try {
            this.onLine(type, obj);
          } catch (err) {
            this.emit({ type: 'error', error: new DatastoreError(`watch of ${this.kind} on ${this.ds.server}: cannot read a ${type} event: ${describeCause(err)}`) });
          }
        },
        (err) => {
          if (!current()) return;
          this.controller = undefined;
          if (err) this.report(err);
          else this.delayMs = this.ds.retryMs; // a clean end: the server closed the stream; re-open soon.
          this.retry(() => this.start());
        },
      )
      .then((controller) => {
        if (current()) this.controller = controller;
        else controller.abort();
      })
      .catch((err: unknown) => {
        if (!current()) return;
        this.report(err);
        this.retry(() => this.start());
      });
  }

  private onLine(type: string, obj: unknown): void {
    if (type === 'ERROR') {
      const status = (obj ?? {}) as StatusBody;
      this.abandon();
      if (status.code === 410) {
        // Kubernetes 410 Gone: our resourceVersion is older than the server keeps. Re-list and start over.
        void this.relist();
        return;
      }
      this.emit({ type: 'error', error: new DatastoreError(`watch of ${this.kind} on ${this.ds.server}: ${status.message ?? JSON.stringify(obj)}`) });
      this.retry(() => this.start());
      return;
    }
    const meta = (obj as { metadata?: KubeMeta } | null)?.metadata;
    const revision = meta?.resourceVersion ?? this.revision;
    this.revision = revision;
    this.delayMs = this.ds.retryMs;
    let resource: Resource | null;
    try {
      resource = convertWatched(this.kind, obj);
    } catch (err) {
      this.emit({ type: 'error', error: new DatastoreError(`watch of ${this.kind} on ${this.ds.server}: cannot read ${meta?.name ?? 'an object'}: ${describeCause(err)}`) });
      return;
    }
    if (type === 'ADDED' && resource) this.emit({ type: 'added', resource, revision });
    else if (type === 'MODIFIED' && resource) this.emit({ type: 'modified', resource, revision });
    else if (type === 'DELETED' && resource) this.emit({ type: 'deleted', resource, revision });
    else if (type === 'MODIFIED' && this.kind === 'WorkloadEndpoint') {
      // A Pod that lost its endpoint (finished, or lost its IP): its WorkloadEndpoint is gone.
      const gone = podToWorkloadEndpoint({ ...(obj as PodLike), status: { podIP: '0.0.0.0', phase: 'Running' } });
      if (gone) this.emit({ type: 'deleted', resource: { ...gone, spec: { ...gone.spec, ipNetworks: [] } }, revision });
    }
  }

  private async relist(): Promise<void> {
    if (this.stopped) return;
    const generation = this.generation;
    try {
      const list = await this.ds.list(this.kind);
      if (this.stopped || generation !== this.generation) return;
      this.revision = list.revision;
      this.emit({ type: 'sync', items: list.items, revision: list.revision });
      this.start();
    } catch (err) {
      if (this.stopped || generation !== this.generation) return;
      this.report(err);
      this.retry(() => void this.relist());
    }
  }

  private report(err: unknown): void {
    const error = err instanceof DatastoreError ? err : this.ds.fail(err, `watch of ${this.kind}`);
    this.emit({ type: 'error', error });
  }

  /** Stops the current stream without stopping the watch. */
  private abandon(): void {
    this.generation++;
    this.controller?.abort();
    this.controller = undefined;
  }

  private retry(action: () => void): void {
    if (this.stopped) return;
    this.cancelTimer();
    const delay = this.delayMs;
    this.delayMs = Math.min(this.delayMs * 2, MAX_WATCH_RETRY_MS);
    this.timer = this.ds.clock.setTimeout(() => {
      this.timer = undefined;
      action();
    }, delay);
  }

  private cancelTimer(): void {
    if (this.timer) this.ds.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  stop(): void {
    this.stopped = true;
    this.cancelTimer();
    this.abandon();
  }
}

/**
 * Opens the Kubernetes datastore: loads the kubeconfig and checks, within `timeoutMs`, that the API server
 * answers and serves Calico's IPPool CRD. Unreachable → DatastoreUnavailableError naming the server URL.
 */
export async function openKubernetes(options: KubernetesOptions = {}): Promise<Datastore> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const { kc, server, configuration } = kubeClient(options.kubeconfig, timeoutMs);
  const ds = new KubernetesDatastore(
    new CoreV1Api(configuration),
    new CustomObjectsApi(configuration),
    new NetworkingV1Api(configuration),
    new Watch(kc),
    server,
    timeoutMs,
    options.watchRetryMs ?? 200,
    options.clock ?? systemClock,
  );
  try {
    await ds.list('IPPool');
  } catch (err) {
    if (err instanceof NotFoundError) {
      throw new DatastoreError(`the Kubernetes API server ${server} does not serve ippools.${CRD_GROUP}/${CRD_VERSION}: install the CRDs (kubectl apply -f manifests/tortie.yaml, or Calico's)`);
    }
    throw err;
  }
  return ds;
}
