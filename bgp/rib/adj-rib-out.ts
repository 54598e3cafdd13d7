// Adj-RIB-Out: per peer, what we want the peer to have (desired) against what we told it (advertised).
//
// Owns: the two maps, the set of prefixes whose desired state moved since the last send, and the diff
// between them: announcements grouped by interned attribute set (each group packs into as few UPDATEs as
// the 4096-byte limit allows) and withdrawals. After a reconnect or a ROUTE-REFRESH (RFC 2918 §4)
// `resetAdvertised()` forgets what was sent, so the next `pending()` is the whole desired set.
//
// Why this is hard: sending is asynchronous. `pending()` is a snapshot; desired may move again before the
// snapshot is written to the socket. `markSent(batch)` therefore records exactly what the batch carried,
// and a prefix stays dirty when desired moved on since. Only differences are ever sent: a prefix set back
// to what was advertised leaves nothing pending. Each entry in either map holds one reference on its set.

import { prefixFromKey, prefixKey } from '../ip.js';
import type { PathAttributes, Prefix } from '../types.js';
import type { Attrs, AttrTable } from './attrs.js';

/** Prefixes that share one attribute set. */
export interface AnnounceGroup {
  readonly attrs: Attrs;
  readonly prefixes: readonly Prefix[];
}

/** What to send: announcements per attribute set, and withdrawals. Prefixes in ascending key order. */
export interface PendingUpdates {
  readonly announce: readonly AnnounceGroup[];
  readonly withdraw: readonly Prefix[];
}

export class AdjRibOut {
  private readonly desired = new Map<number, Attrs>();
  private readonly advertised = new Map<number, Attrs>();
  private readonly dirty = new Set<number>();

  constructor(private readonly table: AttrTable) {}

  /** What the peer should have for `prefix` (a Prefix or its prefixKey): a set, or null for nothing. */
  setDesired(prefix: Prefix | number, attrs: PathAttributes | Attrs | null): void {
    const key = typeof prefix === 'number' ? prefix : prefixKey(prefix);
    const old = this.desired.get(key);
    if (attrs === null) {
      if (old === undefined) return;
      this.desired.delete(key);
      this.table.release(old);
    } else {
      const interned = this.table.intern(attrs);
      if (interned === old) {
        this.table.release(interned);
        return;
      }
      this.desired.set(key, interned);
      if (old !== undefined) this.table.release(old);
    }
    this.dirty.add(key);
  }

  desiredOf(prefix: Prefix | number): Attrs | undefined {
    return this.desired.get(typeof prefix === 'number' ? prefix : prefixKey(prefix));
  }

  advertisedOf(prefix: Prefix | number): Attrs | undefined {
    return this.advertised.get(typeof prefix === 'number' ? prefix : prefixKey(prefix));
  }

  get desiredSize(): number {
    return this.desired.size;
  }

  get advertisedSize(): number {
    return this.advertised.size;
  }

  /** True when desired and advertised differ somewhere. */
  hasPending(): boolean {
    for (const key of this.dirty) if (this.desired.get(key) !== this.advertised.get(key)) return true;
    return false;
  }

  /** The differences between desired and advertised. Does not change state: call `markSent` once written. */
  pending(): PendingUpdates {
    const groups = new Map<Attrs, number[]>();
    const withdraw: number[] = [];
    for (const key of this.dirty) {
      const want = this.desired.get(key);
      const have = this.advertised.get(key);
      if (want === have) continue;
      if (want === undefined) {
        withdraw.push(key);
        continue;
      }
      const keys = groups.get(want);
      if (keys === undefined) groups.set(want, [key]);
      else keys.push(key);
    }
    const byKey = (a: number, b: number): number => a - b;
    const announce: AnnounceGroup[] = [];
    for (const [attrs, keys] of groups) announce.push({ attrs, prefixes: keys.sort(byKey).map(prefixFromKey) });
    return { announce, withdraw: withdraw.sort(byKey).map(prefixFromKey) };
  }

  /** Records that `batch` (from `pending()`) reached the peer. */
  markSent(batch: PendingUpdates): void {
    for (const group of batch.announce) {
      for (const prefix of group.prefixes) this.recordAdvertised(prefixKey(prefix), group.attrs);
    }
    for (const prefix of batch.withdraw) this.recordAdvertised(prefixKey(prefix), undefined);
  }

  /** The peer lost (or asked again for, RFC 2918 §4) everything: the next `pending()` sends the whole desired set. */
  resetAdvertised(): void {
    for (const attrs of this.advertised.values()) this.table.release(attrs);
    this.advertised.clear();
    for (const key of this.desired.keys()) this.dirty.add(key);
  }

  /** Drops desired and advertised state (the peer is gone for good). */
  clear(): void {
    for (const attrs of this.advertised.values()) this.table.release(attrs);
    for (const attrs of this.desired.values()) this.table.release(attrs);
    this.advertised.clear();
    this.desired.clear();
    this.dirty.clear();
  }

  private recordAdvertised(key: number, attrs: Attrs | undefined): void {
    const old = this.advertised.get(key);
    // `intern`, not `retain`: desired may have moved on and released the set since `pending()`.
    const held = attrs === undefined ? undefined : this.table.intern(attrs);
    if (held === undefined) this.advertised.delete(key);
    else this.advertised.set(key, held);
    if (old !== undefined) this.table.release(old);
    if (this.desired.get(key) === held) this.dirty.delete(key);
  }
}
