// Adj-RIB-In: the routes one peer has announced to us, as received (RFC 4271 §3.2), keyed by prefixKey.
//
// Owns: applying an UPDATE (withdrawals, then announcements, IPv4 unicast in the classic fields or in
// MP_REACH/MP_UNREACH), the stale marks of graceful restart (RFC 4724 §4.2), and one attribute-set
// reference per route. It reports which prefixes changed; the speaker runs import policy on those and
// feeds the Loc-RIB.
//
// Why this is hard: memory. There is one entry per prefix per peer, so an entry is a Route with an interned
// attribute set (shared with every other prefix of the same UPDATE), and re-announcing an unchanged route
// (a graceful-restart refresh, a ROUTE-REFRESH answer) only clears its stale mark: no new object, no change
// reported.

import { ipv4UnicastRoutes, ipv6UnicastRoutes, type UpdateRoutesInput } from '../codec/index.js';
import { prefixKey } from '../ip.js';
import type { Prefix6, RibKey } from '../ip6.js';
import type { PathAttributes, Prefix } from '../types.js';
import type { Attrs, AttrTable } from './attrs.js';
import { Route } from './route.js';
import type { RouteSource } from './route.js';

/** The parts of an UPDATE the Adj-RIB-In needs (an `UpdateMessage` fits). */
export type RibInUpdate = UpdateRoutesInput;

export class AdjRibIn {
  private readonly byKey = new Map<RibKey, Route>();
  private currentSource: RouteSource;

  constructor(
    source: RouteSource,
    private readonly table: AttrTable,
  ) {
    this.currentSource = source;
  }

  /** The source new routes are stamped with. */
  get source(): RouteSource {
    return this.currentSource;
  }

  /**
   * A new session with the same peer (its router id may differ after a restart). Routes already held keep
   * the old source until they are re-announced.
   */
  setSource(source: RouteSource): void {
    this.currentSource = source;
  }

  /**
   * Applies one UPDATE: withdrawals first, then announcements, so a prefix in both ends up announced (the
   * later field wins; a choice, not an RFC rule). Returns the keys of prefixes whose route was added,
   * replaced or removed, each once.
   */
  apply(update: RibInUpdate): RibKey[] {
    // A Set, not a number[]: prefix keys are mostly HeapNumbers (≥ 2^31), and a Set keeps the very box
    // `prefixKey` made, which the Adj-RIB-In and Loc-RIB Maps then share as their key; a number[] would
    // store raw doubles and every later Map would box its own copy (+16 B per route, measured).
    const changed = new Set<RibKey>();
    // The codec reads the IPv4 unicast routes out of the classic fields and MP_REACH/MP_UNREACH (RFC 4760).
    const routes = ipv4UnicastRoutes(update);
    for (const prefix of routes.withdrawn) if (this.remove(prefixKey(prefix))) changed.add(prefixKey(prefix));
    for (const group of routes.announced) this.announceAll(group.nlri, group.attributes, changed);
    // IPv6 unicast (RFC 2545): MP_UNREACH / MP_REACH for AFI 2, keyed by their 17-character strings.
    const mp = update.attributes;
    if (mp.mpReach !== undefined || mp.mpUnreach !== undefined) {
      const v6 = ipv6UnicastRoutes(update);
      for (const key of v6.withdrawn) if (this.remove(key)) changed.add(key);
      for (const group of v6.announced) this.announceKeys(group.nlri, group.attributes, changed);
    }
    return [...changed];
  }

  /** Withdraws prefixes by key (also for RFC 7606 treat-as-withdraw). Returns the keys that were present. */
  withdraw(keys: Iterable<RibKey>): RibKey[] {
    const changed: RibKey[] = [];
    for (const key of keys) if (this.remove(key)) changed.push(key);
    return changed;
  }

  get(key: RibKey): Route | undefined {
    return this.byKey.get(key);
  }

  routes(): IterableIterator<Route> {
    return this.byKey.values();
  }

  get size(): number {
    return this.byKey.size;
  }

  /** Graceful restart began (RFC 4724 §4.2): every route is kept but marked stale. Returns how many. */
  markStale(): number {
    for (const route of this.byKey.values()) route.stale = true;
    return this.byKey.size;
  }

  /** End-of-RIB or the stale timer (RFC 4724 §4.2): removes routes still stale. Returns their keys. */
  sweepStale(): RibKey[] {
    const removed: RibKey[] = [];
    for (const [key, route] of this.byKey) {
      if (!route.stale) continue;
      this.byKey.delete(key);
      this.table.release(route.attrs);
      removed.push(key);
    }
    return removed;
  }

  /** The session ended without graceful restart: removes everything. Returns the keys removed. */
  clear(): RibKey[] {
    const removed = [...this.byKey.keys()];
    for (const route of this.byKey.values()) this.table.release(route.attrs);
    this.byKey.clear();
    return removed;
  }

  /** `received` is a fresh object of this call (the rest of the UPDATE's attributes): the table may adopt it. */
  private announceAll(prefixes: readonly Prefix[], received: PathAttributes, changed: Set<RibKey>): void {
    const attrs = this.table.internOwned(received);
    for (const prefix of prefixes) {
      const key = prefixKey(prefix);
      if (this.announce(key, attrs)) changed.add(key);
    }
    this.table.release(attrs); // the reference `intern` took; each stored route holds its own
  }

  /** `announceAll` for IPv6 keys (`received` carries the next hop in nextHop6). */
  private announceKeys(keys: readonly Prefix6[], received: PathAttributes, changed: Set<RibKey>): void {
    const attrs = this.table.internOwned(received);
    for (const key of keys) if (this.announce(key, attrs)) changed.add(key);
    this.table.release(attrs);
  }

  private announce(key: RibKey, attrs: Attrs): boolean {
    const old = this.byKey.get(key);
    if (old !== undefined && old.attrs === attrs && old.source === this.currentSource) {
      old.stale = false; // refreshed (RFC 4724 §4.2): same route, no change
      return false;
    }
    this.table.retain(attrs);
    this.byKey.set(key, new Route(key, attrs, this.currentSource));
    if (old !== undefined) this.table.release(old.attrs);
    return true;
  }

  private remove(key: RibKey): boolean {
    const old = this.byKey.get(key);
    if (old === undefined) return false;
    this.byKey.delete(key);
    this.table.release(old.attrs);
    return true;
  }
}
