// The etcd v3 datastore's semantics, over any transport that can do etcd's Range, Txn and Watch: the gRPC
// client of package `etcd3` (./etcd.ts, the agent's) or etcd's HTTP/JSON gateway (./etcd-gateway.ts, the
// CNI plugin's: a process per pod, which cannot afford to load grpc-js and protobufjs). Keys and values
// are ./etcd-keys.ts's; this module owns what a call means.
//
// Why this is hard:
// - Compare-and-swap must write nothing on conflict: every write is one etcd transaction whose compare is
//   on the key's mod_revision (update/delete) or create_revision == 0 (create); when the compare fails the
//   same transaction reads the key so we can tell NotFound from Conflict without a second round trip.
// - Watches must survive an etcd restart without losing or repeating events: we keep the revision of the
//   last event delivered and reopen the stream from the one after it. When that revision was compacted
//   etcd refuses; we re-list and send `sync`, then continue from the list's revision.
// - An answer from etcd ("no": permissions, a request too large) is not the same as no answer: the
//   transport says which is which (EtcdTransport.isRefusal), and only the second is "unavailable".

import { randomUUID } from 'node:crypto';
import { systemClock, unrefTimer, type Clock, type TimerHandle } from '../../bgp/index.js';
import { API_VERSION, type Kind, type Resource } from '../resources/types.js';
import { V3_ROOT, describeKey, layoutOf, prefixEnd, type KindLayout, type Located } from './etcd-keys.js';
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

// ---------------------------------------------------------------------------------------------------------
// The transport: etcd's KV and Watch messages (rpc.proto), with the field names etcd uses, keys and values
// as bytes and 64-bit numbers as decimal strings (as both package etcd3 and the JSON gateway give them).

export interface KeyValue {
  key: Buffer;
  value: Buffer;
  create_revision: string;
  mod_revision: string;
}

export interface RangeRequest {
  key: Buffer;
  range_end?: Buffer;
  limit?: number;
  keys_only?: boolean;
}

export interface RangeResponse {
  /** The store's revision the answer is consistent at (header.revision). */
  revision: string;
  kvs: KeyValue[];
}

export type Compare =
  | { key: Buffer; target: 'Create'; result: 'Equal' | 'Greater'; create_revision: string | number }
  | { key: Buffer; target: 'Mod'; result: 'Equal'; mod_revision: string | number };

export type RequestOp =
  | { request_put: { key: Buffer; value: Buffer } }
  | { request_range: { key: Buffer } }
  | { request_delete_range: { key: Buffer; prev_kv: boolean } };

export interface TxnRequest {
  compare: Compare[];
  success: RequestOp[];
  failure: RequestOp[];
}

export interface TxnResponse {
  revision: string;
  succeeded: boolean;
  /** One per operation of the branch that ran, in order. */
  responses: Array<{ response_range?: { kvs: KeyValue[] }; response_delete_range?: { prev_kvs: KeyValue[] } }>;
}

export interface WatchCreateRequest {
  key: Buffer;
  range_end: Buffer;
  prev_kv: boolean;
  start_revision: number;
}

export interface WatchResponse {
  created: boolean;
  canceled: boolean;
  cancel_reason: string;
  /** "0" unless the start revision was compacted. */
  compact_revision: string;
  events: Array<{ type: 'Put' | 'Delete'; kv: KeyValue; prev_kv?: KeyValue }>;
}

/** One open watch stream; cancel() closes it and no handler is called after. */
export interface WatchStreamHandle {
  cancel(): void;
}

/** Never called before EtcdTransport.watch() has returned the stream's handle. */
export interface WatchHandlers {
  onResponse(response: WatchResponse): void;
  /** The stream failed or ended (etcd restarted, the connection broke). Called at most once. */
  onBroken(error: unknown): void;
}

/** What the datastore needs from an etcd client. Each unary call is bounded by the transport's deadline. */
export interface EtcdTransport {
  readonly endpoints: readonly string[];
  readonly timeoutMs: number;
  range(request: RangeRequest): Promise<RangeResponse>;
  txn(request: TxnRequest): Promise<TxnResponse>;
  watch(request: WatchCreateRequest, handlers: WatchHandlers): WatchStreamHandle;
  /** True when `error` is etcd's answer (permission denied, request too large...), not a failure to reach it. */
  isRefusal(error: unknown): boolean;
  close(): void;
}

// ---------------------------------------------------------------------------------------------------------

/** A broken watch is re-opened after these delays, one per failure in a row (then the last, again and again). */
export const WATCH_BACKOFF_MS = [50, 100, 200, 400, 800, 1000] as const;

export interface EtcdStoreOptions {
  /** Time for the watch re-open backoff (default: the system clock). */
  clock?: Clock;
}

/** The Datastore (./types.ts) on an EtcdTransport. */
export class EtcdStore implements Datastore {
  readonly type = 'etcdv3';
  readonly clock: Clock;
  private readonly watches = new Set<EtcdWatch<Kind>>();

  constructor(
    readonly transport: EtcdTransport,
    options: EtcdStoreOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
  }

  get endpoints(): readonly string[] {
    return this.transport.endpoints;
  }

  /** Runs one etcd call; transport failures become DatastoreUnavailableError naming the endpoints. */
  async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      // etcd answered and said no (permissions, a request too large...): trying again will not help, so it
      // is not "unavailable" (WAIT_FOR_DATASTORE would retry it for an hour).
      if (this.transport.isRefusal(err)) {
        throw new DatastoreError(
          `etcd at ${this.endpoints.join(', ')}: ${what} refused: ${err instanceof Error ? err.message : String(err)}`,
        );
      }
      throw this.unavailable(what, err);
    }
  }

  unavailable(what: string, err: unknown): DatastoreUnavailableError {
    const cause = err instanceof Error ? err.message : String(err);
    return new DatastoreUnavailableError(
      `etcd at ${this.endpoints.join(', ')}: ${what} failed within ${this.transport.timeoutMs} ms: ${cause}`,
    );
  }

  decodeKv<K extends Kind>(kind: K, kv: KeyValue): Resource<K> | null {
    const layout = layoutOf(kind);
    const at = layout.locate(kv.key.toString());
    if (!at) return null;
    let value: unknown;
    try {
      value = JSON.parse(kv.value.toString());
    } catch (err) {
      throw new Error(
        `etcd key ${kv.key.toString()} (${kind}) does not hold JSON: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new Error(
        `etcd key ${kv.key.toString()} (${kind}) holds ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}, not a JSON object`,
      );
    }
    const resource = layout.decode(at, value);
    resource.metadata.resourceVersion = String(kv.mod_revision);
    return resource;
  }

  /** Checks that etcd answers (one keys-only read of at most one key under /calico/). */
  async check(): Promise<void> {
    await this.call('connection check', () =>
      this.transport.range({ key: Buffer.from('/calico/'), limit: 1, keys_only: true }),
    );
  }

  async get<K extends Kind>(kind: K, name: string, namespace?: string): Promise<Resource<K> | null> {
    const key = layoutOf(kind).key({ name, ...(namespace !== undefined ? { namespace } : {}) });
    const response = await this.call(`get ${key}`, () => this.transport.range({ key: Buffer.from(key) }));
    const kv = response.kvs[0];
    return kv ? this.decodeKv(kind, kv) : null;
  }

  async list<K extends Kind>(kind: K, options: { namespace?: string } = {}): Promise<ListResult<K>> {
    const prefix = layoutOf(kind).prefix(options.namespace);
    const response = await this.call(`list ${prefix}`, () =>
      this.transport.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix) }),
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
    return { items, revision: response.revision, ...(problems.length > 0 ? { problems } : {}) };
  }

  private where<K extends Kind>(resource: Resource<K>): { layout: KindLayout<K>; at: Located; key: Buffer } {
    const layout = layoutOf(resource.kind);
    const at: Located = {
      name: resource.metadata.name,
      ...(resource.metadata.namespace !== undefined ? { namespace: resource.metadata.namespace } : {}),
    };
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
      this.transport.txn({
        compare: [{ key, target: 'Create', result: 'Equal', create_revision: 0 }],
        success: [{ request_put: { key, value } }],
        failure: [],
      }),
    );
    if (!response.succeeded)
      throw new AlreadyExistsError(
        `${describeKey(at, resource.kind)} already exists (use update/replace to change it)`,
      );
    stored.metadata.resourceVersion = response.revision;
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
      if (!current) throw new NotFoundError(`${describeKey(at, resource.kind)} does not exist (create it first)`);
      stored.metadata.uid ??= current.metadata.uid;
      stored.metadata.creationTimestamp ??= current.metadata.creationTimestamp;
      expected ??= current.metadata.resourceVersion;
    }
    const value = Buffer.from(JSON.stringify(layout.encode(stored)));
    const compare: Compare = expected
      ? { key, target: 'Mod', result: 'Equal', mod_revision: expected }
      : { key, target: 'Create', result: 'Greater', create_revision: 0 };
    const response = await this.call(`update ${key.toString()}`, () =>
      this.transport.txn({
        compare: [compare],
        success: [{ request_put: { key, value } }],
        failure: [{ request_range: { key } }],
      }),
    );
    if (!response.succeeded) {
      const current = response.responses[0]?.response_range?.kvs[0];
      if (!current) throw new NotFoundError(`${describeKey(at, resource.kind)} does not exist (create it first)`);
      throw new ConflictError(
        `${describeKey(at, resource.kind)} was changed by someone else: resourceVersion ${expected} is not the current ${current.mod_revision}; nothing was written (get it again and retry)`,
      );
    }
    stored.metadata.resourceVersion = response.revision;
    return stored;
  }

  async delete<K extends Kind>(
    kind: K,
    name: string,
    options: { namespace?: string; revision?: string } = {},
  ): Promise<Resource<K>> {
    const layout = layoutOf(kind);
    const at: Located = { name, ...(options.namespace !== undefined ? { namespace: options.namespace } : {}) };
    const key = Buffer.from(layout.key(at));
    const compare: Compare = options.revision
      ? { key, target: 'Mod', result: 'Equal', mod_revision: options.revision }
      : { key, target: 'Create', result: 'Greater', create_revision: 0 };
    const response = await this.call(`delete ${key.toString()}`, () =>
      this.transport.txn({
        compare: [compare],
        success: [{ request_delete_range: { key, prev_kv: true } }],
        failure: [{ request_range: { key } }],
      }),
    );
    if (!response.succeeded) {
      const current = response.responses[0]?.response_range?.kvs[0];
      if (!current) throw new NotFoundError(`${describeKey(at, kind)} does not exist`);
      throw new ConflictError(
        `${describeKey(at, kind)} was changed by someone else: revision ${options.revision} is not the current ${current.mod_revision}; nothing was deleted`,
      );
    }
    const previous = response.responses[0]?.response_delete_range?.prev_kvs[0];
    const deleted = previous ? this.decodeKv(kind, previous) : null;
    if (!deleted) throw new NotFoundError(`${describeKey(at, kind)} does not exist`);
    return deleted;
  }

  watch<K extends Kind>(kind: K, fromRevision: string, onEvent: (event: WatchEvent<K>) => void): Watch {
    const watch = new EtcdWatch<K>(this, kind, fromRevision, onEvent, () =>
      this.watches.delete(watch as unknown as EtcdWatch<Kind>),
    );
    this.watches.add(watch as unknown as EtcdWatch<Kind>);
    watch.open();
    return watch;
  }

  async close(): Promise<void> {
    for (const watch of [...this.watches]) watch.stop();
    this.transport.close();
  }
}

/**
 * One watch: one watch stream on the kind's prefix, reopened from the revision after the last event
 * delivered (so nothing is lost or repeated across a disconnect), re-listed when that revision was compacted.
 */
class EtcdWatch<K extends Kind> implements Watch {
  /** The first revision not yet delivered; -1 when fromRevision was not a number. */
  private nextRevision: number;
  private readonly nextRevisionText: string;
  private stream: WatchStreamHandle | undefined;
  private stopped = false;
  private failures = 0;
  /** Responses in a row that could not be read (see onResponse). */
  private unreadable = 0;
  private timer: TimerHandle | undefined;
  private readonly prefix: string;

  constructor(
    private readonly ds: EtcdStore,
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
    if (this.timer !== undefined) this.ds.clock.clearTimeout(this.timer);
    this.closeStream();
    this.onStop();
  }

  private emit(event: WatchEvent<K>): void {
    if (this.stopped) return;
    try {
      this.onEvent(event);
    } catch (err) {
      // A throwing handler must not kill the stream; report it as an error event once.
      if (event.type !== 'error')
        this.emit({ type: 'error', error: err instanceof Error ? err : new Error(String(err)) });
    }
  }

  private closeStream(): void {
    const stream = this.stream;
    this.stream = undefined;
    stream?.cancel();
  }

  open(): void {
    if (this.stopped) return;
    if (this.nextRevision < 0) {
      const error = new Error(
        `watch ${this.kind}: fromRevision "${this.nextRevisionText}" is not a revision (expected a decimal number from list() or a resource's resourceVersion)`,
      );
      queueMicrotask(() => this.emit({ type: 'error', error }));
      return;
    }
    const request: WatchCreateRequest = {
      key: Buffer.from(this.prefix),
      range_end: prefixEnd(this.prefix),
      prev_kv: true,
      start_revision: this.nextRevision,
    };
    // Handlers compare against this.stream: a stream that was replaced or closed is ignored.
    const stream: WatchStreamHandle = this.ds.transport.watch(request, {
      onResponse: (response) => this.onResponse(stream, response),
      onBroken: (err) => this.onBroken(stream, err),
    });
    this.stream = stream;
  }

  private onResponse(stream: WatchStreamHandle, response: WatchResponse): void {
    if (stream !== this.stream) return;
    try {
      this.readResponse(stream, response);
      if (response.events.length > 0) this.unreadable = 0;
    } catch (err) {
      // A response that cannot be read must not throw into the transport's stream (an exception there ends
      // the process): give this stream up, say so (once while it lasts), and re-open from the first
      // revision not delivered, backing off while the responses stay unreadable.
      if (stream !== this.stream) return;
      this.closeStream();
      this.unreadable++;
      if (this.unreadable === 1)
        this.emit({
          type: 'error',
          error: new DatastoreError(
            `etcd at ${this.ds.endpoints.join(', ')}: watch ${this.prefix}: cannot read a response (${err instanceof Error ? err.message : String(err)}); re-opening the watch`,
          ),
        });
      this.failures = Math.max(this.failures, this.unreadable - 1);
      this.retryLater(() => this.open());
    }
  }

  private readResponse(stream: WatchStreamHandle, response: WatchResponse): void {
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
        this.emit({
          type: 'error',
          error: new Error(
            `etcd at ${this.ds.endpoints.join(', ')}: cannot decode ${event.kv.key.toString()}: ${err instanceof Error ? err.message : String(err)}`,
          ),
        });
      }
    }
  }

  private deliver(type: 'Put' | 'Delete', kv: KeyValue, previous: KeyValue | undefined): void {
    const revision = String(kv.mod_revision);
    if (type === 'Delete') {
      const layout = layoutOf(this.kind);
      const at = layout.locate(kv.key.toString());
      if (!at) return;
      const resource = previous && previous.value.length > 0 ? this.ds.decodeKv(this.kind, previous) : null;
      const gone =
        resource ??
        ({ apiVersion: API_VERSION, kind: this.kind, metadata: { ...at }, spec: {} } as unknown as Resource<K>);
      gone.metadata.resourceVersion = revision;
      this.emit({ type: 'deleted', resource: gone, revision });
      return;
    }
    const resource = this.ds.decodeKv(this.kind, kv);
    if (!resource) return;
    this.emit({ type: kv.create_revision === kv.mod_revision ? 'added' : 'modified', resource, revision });
  }

  private onBroken(stream: WatchStreamHandle | undefined, err: unknown): void {
    if (this.stopped || (stream !== undefined && stream !== this.stream)) return;
    this.closeStream();
    if (this.failures === 0) this.emit({ type: 'error', error: this.ds.unavailable(`watch ${this.prefix}`, err) });
    this.retryLater(() => this.open());
  }

  private retryLater(action: () => void): void {
    const delay = WATCH_BACKOFF_MS[Math.min(this.failures, WATCH_BACKOFF_MS.length - 1)] ?? 1000;
    this.failures++;
    if (this.timer !== undefined) this.ds.clock.clearTimeout(this.timer);
    this.timer = this.ds.clock.setTimeout(() => {
      this.timer = undefined;
      action();
    }, delay);
    unrefTimer(this.timer);
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
      if (this.failures === 0)
        this.emit({
          type: 'error',
          error: this.ds.unavailable(`re-list of ${this.prefix} after compaction at ${compactRevision}`, err),
        });
      this.retryLater(() => void this.resync(compactRevision));
    }
  }
}
