// The agent's typed view of the datastore: list + watch of every kind the agent reads, kept in memory,
// with one coalesced 'changed' event per burst of changes (a `tortie apply` of ten objects replans once).
// The coalescing adapts: the first change after a quiet period (no 'changed' for `coalesceMs`) fires at
// once (on the next timer turn, so events of one watch response still join); while changes keep coming,
// the window doubles from coalesceMs/8 up to `coalesceMs`, so a storm costs at most one 'changed' per
// coalesceMs. A block claim's three writes a few ms apart are each applied as they arrive.
//
// Why this is hard: a watch can fail in ways the backend reports only as `error` events (endpoint gone,
// compaction) or as a `sync` (the whole set again). After an error we do not trust the watch: that kind is
// re-listed (with exponential backoff while the datastore stays away) and watched again from the list's
// revision, so the cache is never a mix of two histories. Until then the kind is "stale" and the lag
// (seconds since the cache was last known current) grows, which readiness and metrics report.
// An event the cache cannot apply is treated like a watch error (re-list); a 'changed' listener that
// throws is reported through onError, never thrown out of the timer that flushes the burst.

import { EventEmitter } from 'node:events';
import { systemClock, type Clock, type TimerHandle } from '../../bgp/index.js';
import type { Datastore, Watch, WatchEvent } from '../datastore/types.js';
import type { Kind, Resource } from '../resources/types.js';

export const CACHED_KINDS = [
  'Node',
  'BGPConfiguration',
  'BGPPeer',
  'BGPFilter',
  'IPPool',
  'IPAMBlock',
  'BlockAffinity',
  'WorkloadEndpoint',
  'NetworkPolicy',
  'Namespace',
] as const;
export type CachedKind = (typeof CACHED_KINDS)[number];

export interface CacheOptions {
  clock?: Clock;
  /** The longest a change waits while changes keep arriving (default 20 ms); none after a quiet period. */
  coalesceMs?: number;
  /** Re-list backoff: first delay and cap (default 100 ms .. 5 s). */
  backoffMs?: { initial: number; max: number };
  onError?: (kind: Kind, error: Error) => void;
  /** A stored object of `kind` that could not be read and is left out (the rest of the kind still loads). */
  onProblem?: (kind: Kind, problem: string) => void;
}

export interface CacheEvents {
  /** Kinds that changed in the burst. */
  changed: [ReadonlySet<CachedKind>];
}

interface KindState {
  items: Map<string, Resource>;
  watch: Watch | null;
  /** Bumped on every re-list: events from an older watch are ignored. */
  generation: number;
  /** When the kind stopped being current (a watch error), else null. */
  staleSince: number | null;
  failures: number;
  retry: TimerHandle | null;
  lastError?: string;
}

function keyOf(r: Resource): string {
  return r.metadata.namespace !== undefined ? `${r.metadata.namespace}/${r.metadata.name}` : r.metadata.name;
}

export class ResourceCache extends EventEmitter<CacheEvents> {
  private readonly clock: Clock;
  private readonly coalesceMs: number;
  private readonly backoff: { initial: number; max: number };
  private readonly kinds = new Map<CachedKind, KindState>();
  private readonly pending = new Set<CachedKind>();
  private flushTimer: TimerHandle | null = null;
  /** When 'changed' last fired; the current busy window (grows while changes keep coming). */
  private lastFlush = -Infinity;
  private window = 0;
  private stopped = false;

  constructor(
    private readonly ds: Datastore,
    private readonly options: CacheOptions = {},
  ) {
    super();
    this.clock = options.clock ?? systemClock;
    this.coalesceMs = options.coalesceMs ?? 20;
    this.backoff = options.backoffMs ?? { initial: 100, max: 5000 };
    for (const kind of CACHED_KINDS)
      this.kinds.set(kind, {
        items: new Map(),
        watch: null,
        generation: 0,
        staleSince: null,
        failures: 0,
        retry: null,
      });
  }

  /** Lists every kind and starts the watches. Rejects (DatastoreUnavailableError...) if a list fails. */
  async start(): Promise<void> {
    await Promise.all(CACHED_KINDS.map((kind) => this.relist(kind)));
  }

  list<K extends CachedKind>(kind: K): Array<Resource<K>> {
    return [...this.state(kind).items.values()] as Array<Resource<K>>;
  }

  get<K extends CachedKind>(kind: K, name: string, namespace?: string): Resource<K> | undefined {
    return this.state(kind).items.get(namespace !== undefined ? `${namespace}/${name}` : name) as
      Resource<K> | undefined;
  }

  /** Seconds since the cache was last known current (0 when every watch is healthy). */
  lagSeconds(): number {
    let oldest: number | null = null;
    for (const s of this.kinds.values())
      if (s.staleSince !== null && (oldest === null || s.staleSince < oldest)) oldest = s.staleSince;
    return oldest === null ? 0 : (this.clock.now() - oldest) / 1000;
  }

  /** True when every kind's watch is healthy. */
  get connected(): boolean {
    return [...this.kinds.values()].every((s) => s.staleSince === null);
  }

  /** The most recent watch/list error of a kind that is still stale. */
  get lastError(): string | undefined {
    for (const s of this.kinds.values()) if (s.staleSince !== null && s.lastError) return s.lastError;
    return undefined;
  }

  stop(): void {
    this.stopped = true;
    if (this.flushTimer) this.clock.clearTimeout(this.flushTimer);
    this.flushTimer = null;
    for (const s of this.kinds.values()) {
      s.watch?.stop();
      s.watch = null;
      if (s.retry) this.clock.clearTimeout(s.retry);
      s.retry = null;
    }
  }

  private state(kind: CachedKind): KindState {
    return this.kinds.get(kind)!;
  }

  private async relist(kind: CachedKind): Promise<void> {
    const s = this.state(kind);
    s.watch?.stop();
    s.watch = null;
    const generation = ++s.generation;
    const result = await this.ds.list(kind);
    if (this.stopped || generation !== s.generation) return;
    s.items = new Map(result.items.map((r) => [keyOf(r), r as Resource]));
    for (const problem of result.problems ?? []) this.options.onProblem?.(kind, problem);
    s.staleSince = null;
    s.failures = 0;
    delete s.lastError;
    s.watch = this.ds.watch(kind, result.revision, (event) => {
      if (generation !== s.generation || this.stopped) return;
      try {
        this.onEvent(kind, event as WatchEvent<Kind>);
      } catch (error) {
        // An event we cannot apply (a resource without metadata...): the kind is no longer trusted; re-list it.
        this.onWatchError(
          kind,
          new Error(
            `a ${event.type} event could not be applied: ${error instanceof Error ? error.message : String(error)}`,
          ),
        );
      }
    });
    this.markChanged(kind);
  }

  private onEvent(kind: CachedKind, event: WatchEvent<Kind>): void {
    const s = this.state(kind);
    switch (event.type) {
      case 'added':
      case 'modified':
        s.items.set(keyOf(event.resource), event.resource);
        break;
      case 'deleted':
        s.items.delete(keyOf(event.resource));
        break;
      case 'sync':
        s.items = new Map(event.items.map((r) => [keyOf(r), r]));
        break;
      case 'error':
        this.onWatchError(kind, event.error);
        return;
    }
    if (s.staleSince !== null && s.retry === null) s.staleSince = null;
    this.markChanged(kind);
  }

  /** A failed watch: mark the kind stale and re-list after a backoff that doubles while failures last. */
  private onWatchError(kind: CachedKind, error: Error): void {
    const s = this.state(kind);
    s.lastError = error.message;
    s.staleSince ??= this.clock.now();
    this.options.onError?.(kind, error);
    if (s.retry !== null || this.stopped) return;
    s.watch?.stop();
    s.watch = null;
    s.generation++;
    const delay = Math.min(this.backoff.max, this.backoff.initial * 2 ** Math.min(s.failures, 16));
    s.failures++;
    s.retry = this.clock.setTimeout(() => {
      s.retry = null;
      if (this.stopped) return;
      this.relist(kind).catch((e: unknown) => this.onWatchError(kind, e instanceof Error ? e : new Error(String(e))));
    }, delay);
  }

  private markChanged(kind: CachedKind): void {
    this.pending.add(kind);
    if (this.flushTimer !== null || this.stopped) return;
    const sinceFlush = this.clock.now() - this.lastFlush;
    let delay: number;
    if (sinceFlush >= this.coalesceMs) {
      // Quiet until now: no wait.
      this.window = this.coalesceMs / 8;
      delay = 0;
    } else {
      delay = Math.max(0, this.window - sinceFlush);
      this.window = Math.min(this.coalesceMs, this.window * 2);
    }
    this.flushTimer = this.clock.setTimeout(() => this.flush(), delay);
  }

  private flush(): void {
    this.flushTimer = null;
    this.lastFlush = this.clock.now();
    const kinds = new Set(this.pending);
    this.pending.clear();
    if (kinds.size === 0) return;
    try {
      this.emit('changed', kinds);
    } catch (error) {
      // A listener's own failure; the cache is fine. Reported, never thrown out of the timer.
      const [first] = kinds;
      this.options.onError?.(
        first!,
        new Error(
          `a listener of the cache's changes failed: ${error instanceof Error ? error.message : String(error)}`,
        ),
      );
    }
  }
}
