// The etcd v3 datastore, with Calico's key layout and JSON values, so a cluster can share etcd with Calico
// tools (calicoctl get sees what tortie wrote, and the other way round).
//
//   v3 resources  /calico/resources/v3/projectcalico.org/<plural>/<name>   (WorkloadEndpoint: <plural>/<ns>/<name>)
//                 value: the v3 object as JSON, without metadata.resourceVersion (that is the key's mod_revision)
//   IPAMBlock     /calico/ipam/v2/assignment/ipv4/block/10.244.1.0-26      value: model.AllocationBlock JSON
//   BlockAffinity /calico/ipam/v2/host/<node>/ipv4/block/10.244.1.0-26     value: {"state":…,"deleted":…}
//   IPAMHandle    /calico/ipam/v2/handle/<id>                              value: {"block":{…},"deleted":…}
//   NetworkPolicy /calico/resources/v3/projectcalico.org/kubernetesnetworkpolicies/<ns>/<name>
//                 (networking.k8s.io/v1 objects as JSON. Calico's etcd backend has no key for Kubernetes
//                 NetworkPolicies — with etcd, kube-controllers converts them to Calico policies — so this is
//                 tortie's own key, under the plural of Calico's KubernetesNetworkPolicy kind)
//   Namespace     /calico/resources/v3/projectcalico.org/namespaces/<name>   (v1 objects; tortie's own key:
//                 Calico keeps no Namespace in etcd, only the kns.<ns> Profiles kube-controllers derives)
//
// Why this is hard:
// - Compare-and-swap must write nothing on conflict: every write is one etcd transaction whose compare is
//   on the key's mod_revision (update/delete) or create_revision == 0 (create); when the compare fails the
//   same transaction reads the key so we can tell NotFound from Conflict without a second round trip.
// - Watches must survive an etcd restart without losing or repeating events: we keep the revision of the
//   last event delivered and reopen the stream from the one after it. When that revision was compacted
//   etcd refuses; we re-list and send `sync`, then continue from the list's revision.
// - An unreachable etcd must not hang callers: every unary call carries a gRPC deadline, and the etcd3
//   client's retry/circuit-breaker policies are replaced by pass-through ones (a broken circuit would
//   refuse calls for seconds after etcd came back).

import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  Etcd3,
  EtcdAuthenticationFailedError,
  EtcdInvalidAuthTokenError,
  EtcdPermissionDeniedError,
  GRPCFailedPreconditionError,
  GRPCInvalidArgumentError,
  GRPCNotImplementedError,
  GRPCOutOfRangeError,
  GRPCResourceExhastedError,
  GRPCUnauthenticatedError,
  type IOptions,
  type IKeyValue,
  type IWatchResponse,
} from 'etcd3';
import { API_VERSION, apiVersionOf, type Kind, type Resource, type ResourceSpecs } from '../resources/types.js';
import { affinityName, cidrKeyPart, cidrOfBlockName, blockName, parseAffinityName } from '../ipam/names.js';
import {
  AlreadyExistsError,
  ConflictError,
  DatastoreError,
  DatastoreUnavailableError,
  NotFoundError,
  type Datastore,
  type ListResult,
  type Watch,
  type WatchEvent,
} from './types.js';

export interface EtcdOptions {
  endpoints: string[];
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  /** Deadline of each call and of the connection check in openEtcd (default 5000 ms). */
  timeoutMs?: number;
}

/** Errors that are etcd's answer, not a failure to reach it. */
const REFUSALS: ReadonlyArray<abstract new (...args: never[]) => Error> = [
  EtcdPermissionDeniedError,
  EtcdAuthenticationFailedError,
  EtcdInvalidAuthTokenError,
  GRPCUnauthenticatedError,
  GRPCInvalidArgumentError,
  GRPCResourceExhastedError,
  GRPCFailedPreconditionError,
  GRPCOutOfRangeError,
  GRPCNotImplementedError,
];

const V3_ROOT = '/calico/resources/v3/projectcalico.org/';
const IPAM_ROOT = '/calico/ipam/v2/';

/** Where one object lives: its key (or the prefix to list) and its name/namespace. */
interface Located {
  name: string;
  namespace?: string;
}

/** How one kind is stored: keys, and the value's JSON both ways. One row per kind in LAYOUTS. */
interface KindLayout<K extends Kind> {
  /** The prefix that holds every object of this kind (in one namespace when given). */
  prefix(namespace?: string): string;
  key(at: Located): string;
  /** Name (and namespace) from a key under prefix(); null when the key is not one of ours. */
  locate(key: string): Located | null;
  encode(resource: Resource<K>): unknown;
  decode(at: Located, value: unknown): Resource<K>;
}

type AnyLayout = { [K in Kind]: KindLayout<K> };

function v3Layout<K extends Kind>(kind: K, plural: string, namespaced = false): KindLayout<K> {
  const root = `${V3_ROOT}${plural}/`;
  return {
    prefix: (namespace) => (namespaced && namespace !== undefined ? `${root}${namespace}/` : root),
    key: (at) => {
      if (namespaced) {
        if (!at.namespace) throw new Error(`${kind} "${at.name}": metadata.namespace is required (it is a namespaced kind)`);
        return `${root}${at.namespace}/${at.name}`;
      }
      return `${root}${at.name}`;
    },
    locate: (key) => {
      if (!key.startsWith(root)) return null;
      const parts = key.slice(root.length).split('/');
      if (namespaced) return parts.length === 2 && parts[0] && parts[1] ? { namespace: parts[0], name: parts[1] } : null;
      return parts.length === 1 && parts[0] ? { name: parts[0] } : null;
    },
    encode: (resource) => {
      const metadata = { ...resource.metadata };
      delete metadata.resourceVersion;
      return { kind, apiVersion: apiVersionOf(kind), metadata, spec: resource.spec };
    },
    decode: (at, value) => {
      const object = value as { metadata?: Resource<K>['metadata']; spec?: ResourceSpecs[K] };
      return {
        apiVersion: apiVersionOf(kind),
        kind,
        metadata: { ...(object.metadata ?? {}), name: at.name, ...(at.namespace !== undefined ? { namespace: at.namespace } : {}) },
        spec: (object.spec ?? {}) as ResourceSpecs[K],
      } as Resource<K>;
    },
  };
}

function ipamMeta(name: string): Resource['metadata'] {
  return { name };
}

const BLOCK_ROOT = `${IPAM_ROOT}assignment/ipv4/block/`;
const HANDLE_ROOT = `${IPAM_ROOT}handle/`;
const AFFINITY_ROOT = `${IPAM_ROOT}host/`;
const AFFINITY_KEY = /^\/calico\/ipam\/v2\/host\/([^/]+)\/ipv4\/block\/([^/]+)$/;

/** Calico's model.AllocationBlock JSON (field names from libcalico-go lib/backend/model/block.go). */
interface AllocationBlockJson {
  cidr: string;
  affinity: string | null;
  allocations: Array<number | null>;
  unallocated: number[];
  attributes: Array<{ handle_id?: string; secondary?: Record<string, string> }>;
  sequenceNumber: number;
  sequenceNumberForAllocation: Record<string, number> | null;
  deleted: boolean;
}

const LAYOUTS: AnyLayout = {
  IPPool: v3Layout('IPPool', 'ippools'),
  BGPConfiguration: v3Layout('BGPConfiguration', 'bgpconfigurations'),
  BGPPeer: v3Layout('BGPPeer', 'bgppeers'),
  Node: v3Layout('Node', 'nodes'),
  WorkloadEndpoint: v3Layout('WorkloadEndpoint', 'workloadendpoints', true),
  NetworkPolicy: v3Layout('NetworkPolicy', 'kubernetesnetworkpolicies', true),
  Namespace: v3Layout('Namespace', 'namespaces'),
  IPAMBlock: {
    prefix: () => BLOCK_ROOT,
    key: (at) => `${BLOCK_ROOT}${cidrKeyPart(cidrOfBlockName(at.name))}`,
    locate: (key) => {
      if (!key.startsWith(BLOCK_ROOT)) return null;
      try {
        return { name: blockName(cidrOfBlockName(key.slice(BLOCK_ROOT.length))) };
      } catch {
        return null;
      }
    },
    encode: (r): AllocationBlockJson => ({
      cidr: r.spec.cidr,
      affinity: r.spec.affinity ?? null,
      allocations: r.spec.allocations,
      unallocated: r.spec.unallocated,
      attributes: r.spec.attributes.map((a) => ({
        ...(a.handle_id !== null && a.handle_id !== undefined ? { handle_id: a.handle_id } : {}),
        ...(a.secondary !== null && a.secondary !== undefined ? { secondary: a.secondary } : {}),
      })),
      sequenceNumber: r.spec.sequenceNumber ?? 0,
      sequenceNumberForAllocation: null,
      deleted: r.spec.deleted ?? false,
    }),
    decode: (at, value) => {
      const b = value as Partial<AllocationBlockJson> & { hostAffinity?: string };
      // Old Calico blocks carry hostAffinity instead of affinity (block.go: "deprecated in favor of Affinity").
      const affinity = b.affinity ?? (b.hostAffinity ? `host:${b.hostAffinity}` : null);
      return {
        apiVersion: API_VERSION,
        kind: 'IPAMBlock',
        metadata: ipamMeta(at.name),
        spec: {
          cidr: b.cidr ?? cidrOfBlockName(at.name),
          affinity,
          allocations: b.allocations ?? [],
          unallocated: b.unallocated ?? [],
          attributes: (b.attributes ?? []).map((a) => ({ handle_id: a.handle_id ?? null, secondary: a.secondary ?? null })),
          deleted: b.deleted ?? false,
          sequenceNumber: b.sequenceNumber ?? 0,
        },
      };
    },
  },
  BlockAffinity: {
    prefix: () => AFFINITY_ROOT,
    key: (at) => {
      const { node, cidr } = parseAffinityName(at.name);
      return `${AFFINITY_ROOT}${node}/ipv4/block/${cidrKeyPart(cidr)}`;
    },
    locate: (key) => {
      const match = AFFINITY_KEY.exec(key);
      if (!match?.[1] || !match[2]) return null;
      try {
        return { name: affinityName(match[1], cidrOfBlockName(match[2])) };
      } catch {
        return null;
      }
    },
    encode: (r) => ({ state: r.spec.state, deleted: r.spec.deleted ?? false }),
    decode: (at, value) => {
      const v = value as { state?: 'pending' | 'confirmed' | 'pendingDeletion'; deleted?: boolean };
      const { node, cidr } = parseAffinityName(at.name);
      // Calico's oldest affinities have no state: they were written confirmed.
      return { apiVersion: API_VERSION, kind: 'BlockAffinity', metadata: ipamMeta(at.name), spec: { state: v.state ?? 'confirmed', node, cidr, deleted: v.deleted ?? false } };
    },
  },
  IPAMHandle: {
    prefix: () => HANDLE_ROOT,
    key: (at) => `${HANDLE_ROOT}${at.name}`,
    locate: (key) => {
      const rest = key.startsWith(HANDLE_ROOT) ? key.slice(HANDLE_ROOT.length) : '';
      return rest && !rest.includes('/') ? { name: rest } : null;
    },
    encode: (r) => ({ block: r.spec.block, deleted: r.spec.deleted ?? false }),
    decode: (at, value) => {
      const v = value as { block?: Record<string, number>; deleted?: boolean };
      return { apiVersion: API_VERSION, kind: 'IPAMHandle', metadata: ipamMeta(at.name), spec: { handleID: at.name, block: v.block ?? {}, deleted: v.deleted ?? false } };
    },
  },
};

/** The etcd key of a resource, exactly as Calico lays it out (exported for tests and tools). */
export function etcdKeyOf(kind: Kind, name: string, namespace?: string): string {
  return (LAYOUTS[kind] as KindLayout<Kind>).key({ name, ...(namespace !== undefined ? { namespace } : {}) });
}

/** The prefix under which every object of `kind` is stored. */
export function etcdPrefixOf(kind: Kind, namespace?: string): string {
  return (LAYOUTS[kind] as KindLayout<Kind>).prefix(namespace);
}

function layoutOf<K extends Kind>(kind: K): KindLayout<K> {
  const layout = LAYOUTS[kind] as KindLayout<K> | undefined;
  if (!layout) throw new Error(`kind "${String(kind)}" is not stored in etcd (known: ${Object.keys(LAYOUTS).join(', ')})`);
  return layout;
}

/** The first key after every key that starts with `prefix` (etcd's range_end for a prefix). */
function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  end[end.length - 1] = (end[end.length - 1] ?? 0) + 1;
  return end;
}

function describe(at: Located, kind: Kind): string {
  return at.namespace !== undefined ? `${kind} "${at.namespace}/${at.name}"` : `${kind} "${at.name}"`;
}

/** A pass-through fault policy: no retries, no circuit breaker (see the header). */
function passThroughPolicy(): NonNullable<NonNullable<IOptions['faultHandling']>['global']> {
  const noEvent = () => ({ dispose: () => undefined });
  return {
    onSuccess: noEvent,
    onFailure: noEvent,
    execute: async <T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T) => fn({ signal: new AbortController().signal }),
  } as unknown as NonNullable<NonNullable<IOptions['faultHandling']>['global']>;
}

const WATCH_BACKOFF_MS = [50, 100, 200, 400, 800, 1000] as const;

class EtcdDatastore implements Datastore {
  readonly type = 'etcdv3';
  private readonly watches = new Set<EtcdWatch<Kind>>();

  constructor(
    readonly client: Etcd3,
    readonly endpoints: readonly string[],
    readonly timeoutMs: number,
  ) {}

  /** Runs one etcd call; transport failures become DatastoreUnavailableError naming the endpoints. */
  async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      // etcd answered and said no (permissions, a request too large...): trying again will not help, so it
      // is not "unavailable" (WAIT_FOR_DATASTORE would retry it for an hour).
      if (REFUSALS.some((type) => err instanceof type)) {
        throw new DatastoreError(`etcd at ${this.endpoints.join(', ')}: ${what} refused: ${err instanceof Error ? err.message : String(err)}`);
      }
      throw this.unavailable(what, err);
    }
  }

  unavailable(what: string, err: unknown): DatastoreUnavailableError {
    // (REFUSALS, below, are answers from etcd, not unavailability.)
    const cause = err instanceof Error ? err.message : String(err);
    return new DatastoreUnavailableError(`etcd at ${this.endpoints.join(', ')}: ${what} failed within ${this.timeoutMs} ms: ${cause}`);
  }

  decodeKv<K extends Kind>(kind: K, kv: IKeyValue): Resource<K> | null {
    const layout = layoutOf(kind);
    const at = layout.locate(kv.key.toString());
    if (!at) return null;
    let value: unknown;
    try {
      value = JSON.parse(kv.value.toString());
    } catch (err) {
      throw new Error(`etcd key ${kv.key.toString()} (${kind}) does not hold JSON: ${err instanceof Error ? err.message : String(err)}`);
    }
    const resource = layout.decode(at, value);
    resource.metadata.resourceVersion = String(kv.mod_revision);
    return resource;
  }

  async get<K extends Kind>(kind: K, name: string, namespace?: string): Promise<Resource<K> | null> {
    const key = layoutOf(kind).key({ name, ...(namespace !== undefined ? { namespace } : {}) });
    const response = await this.call(`get ${key}`, () => this.client.kv.range({ key: Buffer.from(key) }));
    const kv = response.kvs[0];
    return kv ? this.decodeKv(kind, kv) : null;
  }

  async list<K extends Kind>(kind: K, options: { namespace?: string } = {}): Promise<ListResult<K>> {
    const prefix = layoutOf(kind).prefix(options.namespace);
    const response = await this.call(`list ${prefix}`, () =>
      this.client.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix) }),
    );
    const items: Array<Resource<K>> = [];
    const problems: string[] = [];
    for (const kv of response.kvs) {
      // One unreadable value (written by hand, or by another tool) must not make the whole kind unreadable.
      try {
        const resource = this.decodeKv(kind, kv);
        if (resource) items.push(resource);
      } catch (error) {
        problems.push(error instanceof Error ? error.message : String(error));
      }
    }
    return { items, revision: String(response.header.revision), ...(problems.length > 0 ? { problems } : {}) };
  }

  private where<K extends Kind>(resource: Resource<K>): { layout: KindLayout<K>; at: Located; key: Buffer } {
    const layout = layoutOf(resource.kind);
    const at: Located = { name: resource.metadata.name, ...(resource.metadata.namespace !== undefined ? { namespace: resource.metadata.namespace } : {}) };
    return { layout, at, key: Buffer.from(layout.key(at)) };
  }

  async create<K extends Kind>(resource: Resource<K>): Promise<Resource<K>> {
    const { layout, at, key } = this.where(resource);
    const stored = structuredClone(resource);
    delete stored.metadata.resourceVersion;
    if (key.toString().startsWith(V3_ROOT)) {
      // Calico's client stamps these on create (libcalico-go clientv3/resources.go).
      stored.metadata.uid ??= randomUUID();
      stored.metadata.creationTimestamp ??= new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    }
    const value = Buffer.from(JSON.stringify(layout.encode(stored)));
    const response = await this.call(`create ${key.toString()}`, () =>
      this.client.kv.txn({
        compare: [{ key, target: 'Create', result: 'Equal', create_revision: 0 }],
        success: [{ request_put: { key, value } }],
        failure: [],
      }),
    );
    if (!response.succeeded) throw new AlreadyExistsError(`${describe(at, resource.kind)} already exists (use update/replace to change it)`);
    stored.metadata.resourceVersion = String(response.header.revision);
    return stored;
  }

  async update<K extends Kind>(resource: Resource<K>): Promise<Resource<K>> {
    const { layout, at, key } = this.where(resource);
    let expected = resource.metadata.resourceVersion;
    const stored = structuredClone(resource);
    delete stored.metadata.resourceVersion;
    if (key.toString().startsWith(V3_ROOT) && (!stored.metadata.uid || !stored.metadata.creationTimestamp)) {
      // Keep what create stamped (as Calico's client does): read it, and write only if nothing changed since.
      const current = await this.get(resource.kind, at.name, at.namespace);
      if (!current) throw new NotFoundError(`${describe(at, resource.kind)} does not exist (create it first)`);
      stored.metadata.uid ??= current.metadata.uid;
      stored.metadata.creationTimestamp ??= current.metadata.creationTimestamp;
      expected ??= current.metadata.resourceVersion;
    }
    const value = Buffer.from(JSON.stringify(layout.encode(stored)));
    const compare = expected
      ? { key, target: 'Mod' as const, result: 'Equal' as const, mod_revision: expected }
      : { key, target: 'Create' as const, result: 'Greater' as const, create_revision: 0 };
    const response = await this.call(`update ${key.toString()}`, () =>
      this.client.kv.txn({ compare: [compare], success: [{ request_put: { key, value } }], failure: [{ request_range: { key } }] }),
    );
    if (!response.succeeded) {
      const current = response.responses[0]?.response_range?.kvs[0];
      if (!current) throw new NotFoundError(`${describe(at, resource.kind)} does not exist (create it first)`);
      throw new ConflictError(
        `${describe(at, resource.kind)} was changed by someone else: resourceVersion ${expected} is not the current ${current.mod_revision}; nothing was written (get it again and retry)`,
      );
    }
    stored.metadata.resourceVersion = String(response.header.revision);
    return stored;
  }

  async delete<K extends Kind>(kind: K, name: string, options: { namespace?: string; revision?: string } = {}): Promise<Resource<K>> {
    const layout = layoutOf(kind);
    const at: Located = { name, ...(options.namespace !== undefined ? { namespace: options.namespace } : {}) };
    const key = Buffer.from(layout.key(at));
    const compare = options.revision
      ? { key, target: 'Mod' as const, result: 'Equal' as const, mod_revision: options.revision }
      : { key, target: 'Create' as const, result: 'Greater' as const, create_revision: 0 };
    const response = await this.call(`delete ${key.toString()}`, () =>
      this.client.kv.txn({
        compare: [compare],
        success: [{ request_delete_range: { key, prev_kv: true } }],
        failure: [{ request_range: { key } }],
      }),
    );
    if (!response.succeeded) {
      const current = response.responses[0]?.response_range?.kvs[0];
      if (!current) throw new NotFoundError(`${describe(at, kind)} does not exist`);
      throw new ConflictError(
        `${describe(at, kind)} was changed by someone else: revision ${options.revision} is not the current ${current.mod_revision}; nothing was deleted`,
      );
    }
    const previous = response.responses[0]?.response_delete_range?.prev_kvs[0];
    const deleted = previous ? this.decodeKv(kind, previous) : null;
    if (!deleted) throw new NotFoundError(`${describe(at, kind)} does not exist`);
    return deleted;
  }

  watch<K extends Kind>(kind: K, fromRevision: string, onEvent: (event: WatchEvent<K>) => void): Watch {
    const watch = new EtcdWatch<K>(this, kind, fromRevision, onEvent, () => this.watches.delete(watch as unknown as EtcdWatch<Kind>));
    this.watches.add(watch as unknown as EtcdWatch<Kind>);
    watch.open();
    return watch;
  }

  async close(): Promise<void> {
    for (const watch of [...this.watches]) watch.stop();
    this.client.close();
  }
}

type WatchStream = Awaited<ReturnType<Etcd3['watchClient']['watch']>>;

/**
 * One watch: one gRPC watch stream on the kind's prefix, reopened from the revision after the last event
 * delivered (so nothing is lost or repeated across a disconnect), re-listed when that revision was compacted.
 */
class EtcdWatch<K extends Kind> implements Watch {
  /** The first revision not yet delivered; -1 when fromRevision was not a number. */
  private nextRevision: number;
  private readonly nextRevisionText: string;
  private stream: WatchStream | undefined;
  private stopped = false;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly prefix: string;

  constructor(
    private readonly ds: EtcdDatastore,
    private readonly kind: K,
    fromRevision: string,
    private readonly onEvent: (event: WatchEvent<K>) => void,
    private readonly onStop: () => void,
  ) {
    this.nextRevisionText = fromRevision;
    // Every change after `fromRevision`: "0" replays all of etcd's history that was not compacted.
    this.nextRevision = /^\d+$/.test(fromRevision) ? Number(fromRevision) + 1 : -1;
    this.prefix = layoutOf(kind).prefix();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    this.closeStream();
    this.onStop();
  }

  private emit(event: WatchEvent<K>): void {
    if (this.stopped) return;
    try {
      this.onEvent(event);
    } catch (err) {
      // A throwing handler must not kill the stream; report it as an error event once.
      if (event.type !== 'error') this.emit({ type: 'error', error: err instanceof Error ? err : new Error(String(err)) });
    }
  }

  private closeStream(): void {
    const stream = this.stream;
    this.stream = undefined;
    if (stream) {
      // Our handlers ignore a stream that is no longer this.stream; cancelling may emit an error.
      stream.on('error', () => undefined);
      stream.cancel();
    }
  }

  open(): void {
    if (this.stopped) return;
    if (this.nextRevision < 0) {
      const error = new Error(`watch ${this.kind}: fromRevision "${this.nextRevisionText}" is not a revision (expected a decimal number from list() or a resource's resourceVersion)`);
      queueMicrotask(() => this.emit({ type: 'error', error }));
      return;
    }
    void this.ds.client.watchClient
      .watch()
      .then((stream) => {
        if (this.stopped) {
          stream.on('error', () => undefined);
          stream.cancel();
          return;
        }
        this.stream = stream;
        stream.on('data', (response: IWatchResponse) => this.onResponse(stream, response));
        stream.on('error', (err: Error) => this.onBroken(stream, err));
        stream.on('end', () => this.onBroken(stream, new Error('watch stream ended')));
        stream.write({
          create_request: {
            key: Buffer.from(this.prefix),
            range_end: prefixEnd(this.prefix),
            prev_kv: true,
            start_revision: this.nextRevision,
          },
        });
      })
      .catch((err: unknown) => this.onBroken(undefined, err));
  }

  private onResponse(stream: WatchStream, response: IWatchResponse): void {
    if (stream !== this.stream) return;
    if (response.canceled || Number(response.compact_revision) > 0) {
      if (Number(response.compact_revision) > 0) {
        void this.resync(Number(response.compact_revision));
      } else {
        this.onBroken(stream, new Error(`watch canceled by etcd: ${response.cancel_reason || 'no reason given'}`));
      }
      return;
    }
    this.failures = 0;
    if (response.created) {
      return;
    }
    // One revision can carry several events (a multi-key delete or transaction), and etcd sends them in one
    // response: decide what was already delivered once per response, not after each event.
    const delivered = this.nextRevision;
    for (const event of response.events) {
      const revision = Number(event.kv.mod_revision);
      if (revision < delivered) continue; // already delivered before a reconnect
      this.nextRevision = Math.max(this.nextRevision, revision + 1);
      try {
        this.deliver(event.type, event.kv, event.prev_kv);
      } catch (err) {
        this.emit({ type: 'error', error: new Error(`etcd at ${this.ds.endpoints.join(', ')}: cannot decode ${event.kv.key.toString()}: ${err instanceof Error ? err.message : String(err)}`) });
      }
    }
  }

  private deliver(type: string, kv: IKeyValue, previous: IKeyValue | undefined): void {
    const revision = String(kv.mod_revision);
    if (type === 'Delete') {
      const layout = layoutOf(this.kind);
      const at = layout.locate(kv.key.toString());
      if (!at) return;
      const resource = previous && previous.value.length > 0 ? this.ds.decodeKv(this.kind, previous) : null;
      const gone = resource ?? ({ apiVersion: API_VERSION, kind: this.kind, metadata: { ...at }, spec: {} } as unknown as Resource<K>);
      gone.metadata.resourceVersion = revision;
      this.emit({ type: 'deleted', resource: gone, revision });
      return;
    }
    const resource = this.ds.decodeKv(this.kind, kv);
    if (!resource) return;
    this.emit({ type: kv.create_revision === kv.mod_revision ? 'added' : 'modified', resource, revision });
  }

  private onBroken(stream: WatchStream | undefined, err: unknown): void {
    if (this.stopped || (stream !== undefined && stream !== this.stream)) return;
    this.closeStream();
    if (this.failures === 0) this.emit({ type: 'error', error: this.ds.unavailable(`watch ${this.prefix}`, err) });
    this.retryLater(() => this.open());
  }

  private retryLater(action: () => void): void {
    const delay = WATCH_BACKOFF_MS[Math.min(this.failures, WATCH_BACKOFF_MS.length - 1)] ?? 1000;
    this.failures++;
    clearTimeout(this.timer);
    this.timer = setTimeout(action, delay);
  }

  /** The revision we wanted was compacted: re-list, send `sync`, continue after the list's revision. */
  private async resync(compactRevision: number): Promise<void> {
    this.closeStream();
    if (this.stopped) return;
    try {
      const listed = await this.ds.list(this.kind);
      if (this.stopped) return;
      this.nextRevision = Number(listed.revision) + 1;
      this.failures = 0;
      this.emit({ type: 'sync', items: listed.items, revision: listed.revision });
      this.open();
    } catch (err) {
      if (this.failures === 0) this.emit({ type: 'error', error: this.ds.unavailable(`re-list of ${this.prefix} after compaction at ${compactRevision}`, err) });
      this.retryLater(() => void this.resync(compactRevision));
    }
  }
}

/**
 * Connects to etcd and checks it answers within `timeoutMs` (default 5 s); rejects with
 * DatastoreUnavailableError naming the endpoints when it does not.
 */
export async function openEtcd(options: EtcdOptions): Promise<Datastore> {
  if (options.endpoints.length === 0) throw new Error('etcd endpoints: none given (expected e.g. ["http://127.0.0.1:2379"])');
  const timeoutMs = options.timeoutMs ?? 5000;
  const credentials = options.caFile
    ? {
        rootCertificate: await readFile(options.caFile),
        ...(options.keyFile ? { privateKey: await readFile(options.keyFile) } : {}),
        ...(options.certFile ? { certChain: await readFile(options.certFile) } : {}),
      }
    : undefined;
  const client = new Etcd3({
    hosts: options.endpoints,
    ...(credentials ? { credentials } : {}),
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + timeoutMs }),
    faultHandling: { host: () => passThroughPolicy(), global: passThroughPolicy() },
  });
  const ds = new EtcdDatastore(client, options.endpoints, timeoutMs);
  try {
    await ds.call('connection check', () => client.kv.range({ key: Buffer.from('/calico/'), limit: 1, keys_only: true }));
  } catch (err) {
    client.close();
    throw err;
  }
  return ds;
}
