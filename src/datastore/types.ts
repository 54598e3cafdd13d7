// One interface over the datastores tortie supports (etcd v3, Kubernetes API, and an in-memory one for
// tests). Everything above it (CLI, IPAM, node agent) sees only this.
//
// Semantics every backend must keep (tests run the same contract suite against each):
// - `revision` / `metadata.resourceVersion` are opaque strings from the backend; `update` and `delete` with
//   a revision are compare-and-swap: a stale revision rejects with ConflictError and writes nothing.
// - `create` of an existing name rejects with AlreadyExistsError; `get` of a missing one resolves null;
//   `update`/`delete` of a missing one reject with NotFoundError.
// - `watch(kind, fromRevision)` delivers every change after `fromRevision` in order, once. When the backend
//   cannot resume (etcd compaction, Kubernetes 410 Gone), it re-lists and sends a `sync` event carrying the
//   full current list, then continues; after a disconnect it resumes where it was. It never ends by itself
//   until `stop()`; problems are reported as `error` events (with the backend's endpoint named).
// - An unreachable datastore rejects within a few seconds with DatastoreUnavailableError naming where it
//   tried, never hangs.

import type { Kind, Resource } from '../resources/types.js';

export interface ListResult<K extends Kind> {
  items: Array<Resource<K>>;
  /** The revision the list is consistent at: pass it to watch() to see every later change. */
  revision: string;
  /** Stored objects that could not be read (named, with why): left out of `items` rather than failing the list. */
  problems?: string[];
}

export type WatchEvent<K extends Kind> =
  | { type: 'added' | 'modified'; resource: Resource<K>; revision: string }
  | { type: 'deleted'; resource: Resource<K>; revision: string }
  /** The watch could not resume and re-listed: this is now the whole set. */
  | { type: 'sync'; items: Array<Resource<K>>; revision: string }
  | { type: 'error'; error: Error };

export interface Watch {
  stop(): void;
}

export interface Datastore {
  /** 'etcdv3' | 'kubernetes' | 'memory' */
  readonly type: string;
  get<K extends Kind>(kind: K, name: string, namespace?: string): Promise<Resource<K> | null>;
  list<K extends Kind>(kind: K, options?: { namespace?: string }): Promise<ListResult<K>>;
  create<K extends Kind>(resource: Resource<K>): Promise<Resource<K>>;
  /** Compare-and-swap on metadata.resourceVersion when it is set; unconditional when it is not. */
  update<K extends Kind>(resource: Resource<K>): Promise<Resource<K>>;
  delete<K extends Kind>(
    kind: K,
    name: string,
    options?: { namespace?: string; revision?: string },
  ): Promise<Resource<K>>;
  watch<K extends Kind>(kind: K, fromRevision: string, onEvent: (event: WatchEvent<K>) => void): Watch;
  close(): Promise<void>;
}

export class DatastoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}
export class NotFoundError extends DatastoreError {}
export class AlreadyExistsError extends DatastoreError {}
/** The revision given is not the current one: someone else wrote first. Nothing was written. */
export class ConflictError extends DatastoreError {}
/** The datastore cannot be reached; the message names the endpoints tried and the cause. */
export class DatastoreUnavailableError extends DatastoreError {}
