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
//
// The parts: kube-mapping.ts (where each kind lives, conversions both ways, pure), kube-errors.ts (API
// errors → Datastore errors), kube-watch.ts (one kind's watch); this file is the Datastore itself, the one
// place that calls the API server (test/unit/manifests.test.ts reads its calls against the RBAC rules).

import { systemClock, type Clock } from '../../bgp/index.js';
import {
  CoreV1Api,
  CustomObjectsApi,
  NetworkingV1Api,
  PatchStrategy,
  Watch,
  setHeaderOptions,
  type V1Pod,
} from '@kubernetes/client-node';
import { kubeClient } from './kube-client.js';
import type { Kind, Resource } from '../resources/types.js';
import { parseWorkloadEndpointName } from '../resources/workload-names.js';
import { translateApiError } from './kube-errors.js';
import {
  annotationPatch,
  collectionPath,
  crdMapping,
  crdToResource,
  CRD_GROUP,
  CRD_VERSION,
  mergeNodeAnnotations,
  namespaceToResource,
  networkPolicyToResource,
  nodeToResource,
  podToWorkloadEndpoint,
  resourceToCrd,
  type CrdObject,
} from './kube-mapping.js';
import { KindWatch } from './kube-watch.js';
import {
  AlreadyExistsError,
  ConflictError,
  DatastoreError,
  NotFoundError,
  type Datastore,
  type ListResult,
  type Watch as DatastoreWatch,
  type WatchEvent,
} from './types.js';

export {
  annotationPatch,
  cidrToName,
  crdToResource,
  CRD_GROUP,
  CRD_VERSION,
  KUBERNETES_API_CALLS,
  mergeNodeAnnotations,
  namedPorts,
  namespaceToResource,
  networkPolicyToResource,
  nodeToResource,
  objectNameFor,
  podAddresses,
  podToWorkloadEndpoint,
  resourceToCrd,
} from './kube-mapping.js';
export { parseWorkloadEndpointName, workloadEndpointName } from '../resources/workload-names.js';
/** Calico's host-side interface name for a pod: one definition, felix's. */
export { workloadInterfaceName } from '../../felix/index.js';

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

/** Attempts of a read-then-write when the caller gave no resourceVersion and someone else keeps writing. */
const UNCONDITIONAL_ATTEMPTS = 5;

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
  fetchPage: (page: {
    limit: number;
    _continue?: string;
  }) => Promise<{ items: T[]; revision: string | undefined; next: string | undefined }>,
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
    return translateApiError(err, what, this.server, this.timeoutMs);
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
      const obj = (await this.custom.getClusterCustomObject({
        group: CRD_GROUP,
        version: CRD_VERSION,
        plural: mapping.plural,
        name: mapping.objectName(name),
      })) as CrdObject;
      return crdToResource(kind, obj);
    }
    if (kind === 'Node') return nodeToResource(await this.core.readNode({ name })) as Resource<K>;
    if (kind === 'Namespace') return namespaceToResource(await this.core.readNamespace({ name })) as Resource<K>;
    if (kind === 'NetworkPolicy') {
      return networkPolicyToResource(
        await this.networking.readNamespacedNetworkPolicy({ name, namespace: namespace ?? 'default' }),
      ) as Resource<K>;
    }
    if (kind === 'WorkloadEndpoint') {
      if (!namespace)
        throw new DatastoreError(
          `WorkloadEndpoint "${name}": a namespace is required (WorkloadEndpoints are namespaced, like their Pods)`,
        );
      const notFound = new NotFoundError(
        `${describe(kind, name, namespace)} not found (no Pod with an IP has that endpoint name)`,
      );
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
          const r = (await this.custom.listClusterCustomObject({
            group: CRD_GROUP,
            version: CRD_VERSION,
            plural: mapping.plural,
            ...page,
          })) as ListResponse<CrdObject>;
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
          const r = options.namespace
            ? await this.core.listNamespacedPod({ namespace: options.namespace, ...page })
            : await this.core.listPodForAllNamespaces(page);
          return { items: r.items, revision: r.metadata?.resourceVersion, next: r.metadata?._continue };
        });
        const items = list.items
          .map((p: V1Pod) => podToWorkloadEndpoint(p))
          .filter((w): w is Resource<'WorkloadEndpoint'> => w !== null);
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
        const obj = (await this.custom.createClusterCustomObject({
          group: CRD_GROUP,
          version: CRD_VERSION,
          plural: mapping.plural,
          body,
        })) as CrdObject;
        return crdToResource(resource.kind, obj);
      } catch (err) {
        throw this.fail(err, what);
      }
    }
    if (resource.kind === 'Node') {
      // The Calico Node exists exactly when the Kubernetes Node does: creating one is "already exists" or impossible.
      const existing = await this.get('Node', resource.metadata.name);
      if (existing)
        throw new AlreadyExistsError(
          `${what} already exists (it is the Kubernetes Node; update it to set its BGP data)`,
        );
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
          body.metadata.resourceVersion =
            wanted ?? (await this.getOrThrow(resource.kind, resource.metadata.name)).metadata.resourceVersion;
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
        const patched = await this.core.patchNode(
          { name: resource.metadata.name, body },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        );
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

  async delete<K extends Kind>(
    kind: K,
    name: string,
    options: { namespace?: string; revision?: string } = {},
  ): Promise<Resource<K>> {
    const what = describe(kind, name, options.namespace);
    const mapping = crdMapping(kind);
    if (!mapping) {
      if (kind === 'Node') {
        throw new UnsupportedOperationError(
          `cannot delete ${what}: on the kubernetes datastore a Node is the Kubernetes Node; remove it with kubectl delete node`,
        );
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
  openStream(
    kind: Kind,
    resourceVersion: string,
    onLine: (type: string, obj: unknown) => void,
    onDone: (err: unknown) => void,
  ): Promise<AbortController> {
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
      return new UnsupportedOperationError(
        `cannot ${op} ${what}: on the kubernetes datastore ${kind}s are the Kubernetes objects themselves; use kubectl ${op === 'delete' ? 'delete' : 'apply'}`,
      );
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
      throw new DatastoreError(
        `the Kubernetes API server ${server} does not serve ippools.${CRD_GROUP}/${CRD_VERSION}: install the CRDs (kubectl apply -f manifests/tortie.yaml, or Calico's)`,
      );
    }
    throw err;
  }
  return ds;
}
