// An in-memory Datastore with the exact semantics of ./types.ts, for unit tests of everything above the
// datastore (IPAM, CLI, node agent) and as the reference the contract suite is checked against.
//
// Revisions are one global counter, as in etcd: every write gets the next integer (as a string), and
// an object's metadata.resourceVersion is the revision of its last write. A bounded history of changes
// lets watch(kind, fromRevision) replay what happened after fromRevision; when the history no longer
// reaches back that far (like etcd after compaction) the watch sends one `sync` with the whole current
// list instead, then continues live.
//
// Why this is hard: watch delivery must be in order and exactly once even when a watcher is started
// from an old revision while writes keep happening, and a callback that writes must not see its own
// event re-entrantly. Events are queued and delivered asynchronously, one watcher queue each.

import { randomUUID } from 'node:crypto';
import { KIND_INFO } from '../resources/kinds.js';
import type { Kind, Resource } from '../resources/types.js';
import {
  AlreadyExistsError,
  ConflictError,
  NotFoundError,
  type Datastore,
  type ListResult,
  type Watch,
  type WatchEvent,
} from './types.js';

export interface MemoryDatastoreOptions {
  /** How many changes to keep for watches from an old revision (default 1000). */
  historyLimit?: number;
  /** For creationTimestamp (default: real time). */
  now?: () => Date;
  /** For metadata.uid (default: random UUIDs). */
  newUid?: () => string;
}

interface Change {
  revision: number;
  kind: Kind;
  type: 'added' | 'modified' | 'deleted';
  resource: Resource;
}

interface Watcher {
  kind: Kind;
  onEvent: (event: WatchEvent<Kind>) => void;
  stopped: boolean;
}

function objectKey(kind: Kind, name: string, namespace: string | undefined): string {
  return KIND_INFO[kind].namespaced ? `${kind}/${namespace ?? 'default'}/${name}` : `${kind}/${name}`;
}

export class MemoryDatastore implements Datastore {
  readonly type = 'memory';
  private revision = 0;
  private readonly objects = new Map<string, Resource>();
  private history: Change[] = [];
  /** Changes older than this revision have been dropped from history. */
  private compactedThrough = 0;
  private readonly watchers = new Set<Watcher>();
  private readonly historyLimit: number;
  private readonly now: () => Date;
  private readonly newUid: () => string;
  private closed = false;

  constructor(options: MemoryDatastoreOptions = {}) {
    this.historyLimit = options.historyLimit ?? 1000;
    this.now = options.now ?? (() => new Date());
    this.newUid = options.newUid ?? randomUUID;
  }

  /** The current revision (for tests). */
  get currentRevision(): string {
    return String(this.revision);
  }

  /** Drops all kept history, as etcd compaction does: older watches then get a `sync` (for tests). */
  compact(): void {
    this.compactedThrough = this.revision;
    this.history = [];
  }

  async get<K extends Kind>(kind: K, name: string, namespace?: string): Promise<Resource<K> | null> {
    const found = this.objects.get(objectKey(kind, name, namespace));
    return found ? (structuredClone(found) as Resource<K>) : null;
  }

  async list<K extends Kind>(kind: K, options: { namespace?: string } = {}): Promise<ListResult<K>> {
    return { items: this.itemsOf(kind, options.namespace), revision: String(this.revision) };
  }

  async create<K extends Kind>(resource: Resource<K>): Promise<Resource<K>> {
    const key = this.keyOf(resource);
    if (this.objects.has(key)) throw new AlreadyExistsError(`${key} already exists (use update or apply to change it)`);
    const stored = structuredClone(resource);
    stored.metadata.uid = this.newUid();
    stored.metadata.creationTimestamp = this.now().toISOString();
    return this.write(key, stored, 'added');
  }

  async update<K extends Kind>(resource: Resource<K>): Promise<Resource<K>> {
    const key = this.keyOf(resource);
    const current = this.objects.get(key);
    if (!current) throw new NotFoundError(`${key} does not exist (use create)`);
    const expected = resource.metadata.resourceVersion;
    if (expected !== undefined && expected !== current.metadata.resourceVersion) {
      throw new ConflictError(
        `${key} was changed by someone else: revision ${expected} is not the current ${current.metadata.resourceVersion}; get it again and retry`,
      );
    }
    const stored = structuredClone(resource);
    stored.metadata.uid = current.metadata.uid;
    stored.metadata.creationTimestamp = current.metadata.creationTimestamp;
    return this.write(key, stored, 'modified');
  }

  async delete<K extends Kind>(
    kind: K,
    name: string,
    options: { namespace?: string; revision?: string } = {},
  ): Promise<Resource<K>> {
    const key = objectKey(kind, name, options.namespace);
    const current = this.objects.get(key);
    if (!current) throw new NotFoundError(`${key} does not exist`);
    if (options.revision !== undefined && options.revision !== current.metadata.resourceVersion) {
      throw new ConflictError(
        `${key} was changed by someone else: revision ${options.revision} is not the current ${current.metadata.resourceVersion}; nothing was deleted`,
      );
    }
    this.objects.delete(key);
    this.revision++;
    const deleted = structuredClone(current);
    this.record({ revision: this.revision, kind, type: 'deleted', resource: deleted });
    return structuredClone(deleted) as Resource<K>;
  }

  watch<K extends Kind>(kind: K, fromRevision: string, onEvent: (event: WatchEvent<K>) => void): Watch {
    const watcher: Watcher = { kind, onEvent: onEvent as (event: WatchEvent<Kind>) => void, stopped: false };
    const from = /^[0-9]+$/.test(fromRevision) ? Number(fromRevision) : NaN;
    if (Number.isNaN(from)) {
      this.deliver(watcher, {
        type: 'error',
        error: new Error(
          `memory datastore: watch revision ${JSON.stringify(fromRevision)} is not a revision (a non-negative integer)`,
        ),
      });
    } else if (from < this.compactedThrough) {
      // History no longer reaches back to `from`: re-list, as after etcd compaction.
      this.deliver(watcher, { type: 'sync', items: this.itemsOf(kind, undefined), revision: String(this.revision) });
    } else {
      for (const change of this.history) {
        if (change.revision > from && change.kind === kind) this.deliver(watcher, this.eventOf(change));
      }
    }
    this.watchers.add(watcher);
    return {
      stop: () => {
        watcher.stopped = true;
        this.watchers.delete(watcher);
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const watcher of this.watchers) watcher.stopped = true;
    this.watchers.clear();
  }

  private keyOf(resource: Resource): string {
    return objectKey(resource.kind, resource.metadata.name, resource.metadata.namespace);
  }

  private itemsOf<K extends Kind>(kind: K, namespace: string | undefined): Array<Resource<K>> {
    const items: Array<Resource<K>> = [];
    for (const r of this.objects.values()) {
      if (r.kind !== kind) continue;
      if (namespace !== undefined && (r.metadata.namespace ?? 'default') !== namespace) continue;
      items.push(structuredClone(r) as Resource<K>);
    }
    return items.sort((a, b) => this.keyOf(a).localeCompare(this.keyOf(b)));
  }

  private write<K extends Kind>(key: string, stored: Resource<K>, type: 'added' | 'modified'): Resource<K> {
    this.revision++;
    stored.metadata.resourceVersion = String(this.revision);
    if (KIND_INFO[stored.kind].namespaced) stored.metadata.namespace ??= 'default';
    this.objects.set(key, stored);
    this.record({ revision: this.revision, kind: stored.kind, type, resource: structuredClone(stored) });
    return structuredClone(stored);
  }

  private record(change: Change): void {
    this.history.push(change);
    if (this.history.length > this.historyLimit) {
      const dropped = this.history.splice(0, this.history.length - this.historyLimit);
      this.compactedThrough = dropped[dropped.length - 1]!.revision;
    }
    if (this.closed) return;
    for (const watcher of this.watchers) {
      if (watcher.kind === change.kind) this.deliver(watcher, this.eventOf(change));
    }
  }

  private eventOf(change: Change): WatchEvent<Kind> {
    return { type: change.type, resource: structuredClone(change.resource), revision: String(change.revision) };
  }

  /** Asynchronous, in order: each event is queued as a microtask in the order it happened. */
  private deliver(watcher: Watcher, event: WatchEvent<Kind>): void {
    queueMicrotask(() => {
      if (!watcher.stopped) watcher.onEvent(event);
    });
  }
}
