// Adj-RIB-Out: per peer, what we want the peer to have (desired) against what we told it (advertised).
//
// Owns: the desired map, the advertised state where it differs from desired, and the diff between them: announcements grouped by interned attribute set (each group packs into as few UPDATEs as
// the 4096-byte limit allows) and withdrawals. After a reconnect or a ROUTE-REFRESH (RFC 2918 §4)
// `resetAdvertised()` forgets what was sent, so the next `pending()` is the whole desired set.
//
// Why this is hard: sending is asynchronous. `pending()` is a snapshot; desired may move again before the
// snapshot is written to the socket. `markSent(batch)` therefore records exactly what the batch carried,
// and a prefix stays dirty when desired moved on since. Only differences are ever sent: a prefix set back
// to what was advertised leaves nothing pending.
//
// Memory: advertised is not a second full map. In steady state it equals desired, so only prefixes where
// they differ are kept (`behind`: key → what the peer has, null for nothing): about one Map entry per
// prefix per peer instead of two. Each desired entry and each non-null `behind` entry holds one reference
// on its set.

import type { PathAttributes } from '../types.js';
import type { Attrs, AttrTable } from './attrs.js';
import { compareRibKeys, ribKeyOf, ribPrefix, type RibKey, type RibPrefix } from './prefix6.js';

/** Prefixes that share one attribute set. */
export interface AnnounceGroup {
  readonly attrs: Attrs;
  readonly prefixes: readonly RibPrefix[];
}

/** What to send: announcements per attribute set, and withdrawals. Prefixes in ascending key order. */
export interface PendingUpdates {
  readonly announce: readonly AnnounceGroup[];
  readonly withdraw: readonly RibPrefix[];
}

/** A prefix or its key: a number is an IPv4 key, a string an IPv6 key, an object an IPv4 prefix. */
const keyOf = (prefix: RibPrefix | RibKey): RibKey => (typeof prefix === 'object' ? ribKeyOf(prefix) : prefix);

export class AdjRibOut {
  private readonly desired = new Map<RibKey, Attrs>();
  /** Prefixes where the peer is behind: what it has (null: nothing). Absent: the peer has `desired`. */
  private behind = new Map<RibKey, Attrs | null>();

  constructor(private readonly table: AttrTable) {}

  /** What the peer should have for `prefix` (a Prefix or its prefixKey): a set, or null for nothing. */
  setDesired(prefix: RibPrefix | RibKey, attrs: PathAttributes | Attrs | null): void {
    const key = keyOf(prefix);
    const old = this.desired.get(key);
    const next = attrs === null ? undefined : this.table.intern(attrs);
    if (next === old) {
      if (next !== undefined) this.table.release(next);
      return;
    }
    // The peer has `old` unless it is already behind; remember what it has before desired moves.
    let has = this.behind.get(key); // undefined: not behind (values are a set or null)
    if (has === undefined) {
      if (old !== undefined) this.table.retain(old);
      has = old ?? null;
      this.behind.set(key, has);
    }
    if (next === undefined) this.desired.delete(key);
    else this.desired.set(key, next);
    if (old !== undefined) this.table.release(old);
    if ((has ?? undefined) === next) this.settle(key);
  }

  desiredOf(prefix: RibPrefix | RibKey): Attrs | undefined {
    return this.desired.get(keyOf(prefix));
  }

  /** What the peer was last sent for `prefix`. */
  advertisedOf(prefix: RibPrefix | RibKey): Attrs | undefined {
    const key = keyOf(prefix);
    return this.behind.has(key) ? (this.behind.get(key) ?? undefined) : this.desired.get(key);
  }

  get desiredSize(): number {
    return this.desired.size;
  }

  get advertisedSize(): number {
    let size = this.desired.size;
    for (const [key, has] of this.behind) size += (has === null ? 0 : 1) - (this.desired.has(key) ? 1 : 0);
    return size;
  }

  /** True when desired and advertised differ somewhere. */
  hasPending(): boolean {
    return this.behind.size > 0;
  }

  /** The differences between desired and advertised. Does not change state: call `markSent` once written. */
  pending(): PendingUpdates {
    const { announce, withdraw } = this.pendingKeys();
    return {
      announce: announce.map((g): AnnounceGroup => ({ attrs: g.attrs, prefixes: g.keys.map(ribPrefix) })),
      withdraw: withdraw.map(ribPrefix),
    };
  }

  /** True when `key` is among the differences (the peer is behind for it). */
  isPending(key: RibKey): boolean {
    return this.behind.has(key);
  }

  /** How many prefixes differ. */
  get pendingSize(): number {
    return this.behind.size;
  }

  /**
   * `pending()` as prefix keys, plus each announcement group's index by attribute set. Used by update groups,
   * which commit with `markAllSent()` in the same synchronous turn.
   */
  pendingKeys(): { announce: Array<{ attrs: Attrs; keys: RibKey[] }>; withdraw: RibKey[] } {
    const groups = new Map<Attrs, RibKey[]>();
    const withdraw: RibKey[] = [];
    for (const key of this.behind.keys()) {
      const want = this.desired.get(key);
      if (want === undefined) {
        withdraw.push(key);
        continue;
      }
      const keys = groups.get(want);
      if (keys === undefined) groups.set(want, [key]);
      else keys.push(key);
    }
    const byKey = compareRibKeys;
    const announce: Array<{ attrs: Attrs; keys: RibKey[] }> = [];
    for (const [attrs, keys] of groups) announce.push({ attrs, keys: keys.sort(byKey) });
    return { announce, withdraw: withdraw.sort(byKey) };
  }

  /** Every difference reached the peer (desired has not moved since `pending()`/`pendingKeys()`). */
  markAllSent(): void {
    for (const had of this.behind.values()) if (had !== null) this.table.release(had);
    this.behind = new Map();
  }

  /** What an in-sync peer was last sent: every prefix it has, with its set. */
  *advertisedEntries(): Generator<[RibKey, Attrs]> {
    for (const [key, attrs] of this.desired) if (!this.behind.has(key)) yield [key, attrs];
    for (const [key, has] of this.behind) if (has !== null) yield [key, has];
  }

  /** Every desired entry, for a full table. */
  desiredEntries(): IterableIterator<[RibKey, Attrs]> {
    return this.desired.entries();
  }

  /** Records that `batch` (from `pending()`) reached the peer. */
  markSent(batch: PendingUpdates): void {
    for (const group of batch.announce) {
      for (const prefix of group.prefixes) this.recordAdvertised(ribKeyOf(prefix), group.attrs);
    }
    for (const prefix of batch.withdraw) this.recordAdvertised(ribKeyOf(prefix), null);
    // A Map keeps its grown capacity after deletes; a full resend would otherwise cost a second full map.
    if (this.behind.size === 0) this.behind = new Map();
  }

  /** The peer lost (or asked again for, RFC 2918 §4) everything: the next `pending()` sends the whole desired set. */
  resetAdvertised(): void {
    for (const key of [...this.behind.keys()]) this.settle(key);
    for (const key of this.desired.keys()) this.behind.set(key, null);
  }

  /** Drops desired and advertised state (the peer is gone for good). */
  clear(): void {
    for (const key of [...this.behind.keys()]) this.settle(key);
    for (const attrs of this.desired.values()) this.table.release(attrs);
    this.desired.clear();
  }

  /** The peer is up to date for `key`: forget what it had. */
  private settle(key: RibKey): void {
    const had = this.behind.get(key);
    if (had !== undefined && had !== null) this.table.release(had);
    this.behind.delete(key);
  }

  private recordAdvertised(key: RibKey, sent: Attrs | null): void {
    if (!this.behind.has(key)) {
      // Desired had already been sent (or moved back): only a send of something else puts the peer behind.
      const want = this.desired.get(key) ?? null;
      if (want === sent) return;
    }
    this.settle(key);
    if ((this.desired.get(key) ?? null) === sent) return;
    // Desired moved on since `pending()`: the peer has what was sent. `intern`, not `retain`: the set may
    // have been released meanwhile.
    this.behind.set(key, sent === null ? null : this.table.intern(sent));
  }
}
