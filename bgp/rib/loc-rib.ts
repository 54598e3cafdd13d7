// Loc-RIB: per prefix, the candidate routes (at most one per source) and the best of them (RFC 4271 §3.2,
// §9.1.2).
//
// Owns: candidate bookkeeping and best-path re-selection when one source's route for a prefix changes.
// `set(source, key, route | null)` answers with the change of best, or null when the best did not change,
// which is what the speaker propagates to Adj-RIBs-Out and the route agent.
//
// Why this is hard: memory and speed at 100k prefixes. A prefix with one candidate (the common case: every
// remote block is learned from exactly one node) stores the Route itself, no array and no comparison; only
// prefixes with several candidates hold an array, with the best kept at index 0. Candidates are told apart
// by `source.address` and `source.port` (./route.ts `sourceId`), so a peer that reconnects with a new source object replaces its old route instead of
// adding a second candidate.
//
// Each stored candidate holds one reference on its attribute set: usually the Adj-RIB-In's own set (an
// identity lookup), or the set import policy produced, which `set` interns when it stores the route.

import type { RibKey } from '../ip6.js';
import type { AttrTable } from './attrs.js';
import { selectBest } from './best-path.js';
import { Route } from './route.js';
import type { RouteSource } from './route.js';

/** A change of best route for one prefix. `previous` / `best` null mean "none". */
export interface BestChange {
  readonly key: RibKey;
  readonly previous: Route | null;
  readonly best: Route | null;
}

/** One prefix: the single candidate itself, or the candidates with the best at index 0. */
type Slot = Route | Route[];

/** Same route for everyone downstream: same attribute set from the same source. */
function sameRoute(a: Route, b: Route): boolean {
  return a === b || (a.attrs === b.attrs && a.source === b.source);
}

function changeOf(key: RibKey, previous: Route | null, best: Route | null): BestChange | null {
  if (previous === null && best === null) return null;
  if (previous !== null && best !== null && sameRoute(previous, best)) return null;
  return { key, previous, best };
}

export class LocRib {
  private readonly slots = new Map<RibKey, Slot>();

  constructor(private readonly table: AttrTable) {}

  /**
   * Sets (route) or removes (null) the candidate of `source` for the prefix `key`, re-selects the best and
   * returns the change of best, or null when the best is unchanged.
   */
  set(source: RouteSource, key: RibKey, offered: Route | null): BestChange | null {
    const route = offered === null ? null : this.hold(offered);
    const slot = this.slots.get(key);
    if (slot === undefined) {
      if (route === null) return null;
      this.slots.set(key, route);
      return changeOf(key, null, route);
    }
    if (slot instanceof Route) {
      if (slot.source.address === source.address && slot.source.port === source.port) {
        // Fast path: the only candidate is replaced or removed.
        if (route === null) this.slots.delete(key);
        else this.slots.set(key, route);
        this.table.release(slot.attrs);
        return changeOf(key, slot, route);
      }
      if (route === null) return null;
      return this.reselect(key, [slot, route], slot);
    }
    const previous = slot[0] ?? null;
    const index = slot.findIndex(
      (candidate) => candidate.source.address === source.address && candidate.source.port === source.port,
    );
    if (index < 0) {
      if (route === null) return null;
      slot.push(route);
    } else {
      this.table.release((slot[index] as Route).attrs);
      if (route === null) slot.splice(index, 1);
      else slot[index] = route;
    }
    return this.reselect(key, slot, previous);
  }

  /** The best route for a prefix. */
  best(key: RibKey): Route | undefined {
    const slot = this.slots.get(key);
    return slot === undefined ? undefined : slot instanceof Route ? slot : slot[0];
  }

  /** All candidates for a prefix, best first. */
  candidates(key: RibKey): readonly Route[] {
    const slot = this.slots.get(key);
    return slot === undefined ? [] : slot instanceof Route ? [slot] : slot;
  }

  /** Every prefix's best route. */
  *bestRoutes(): IterableIterator<Route> {
    for (const slot of this.slots.values()) {
      const best = slot instanceof Route ? slot : slot[0];
      if (best !== undefined) yield best;
    }
  }

  /** Removes every candidate of a source (a peer went away). Returns the changes of best. */
  removeSource(source: RouteSource): BestChange[] {
    const changes: BestChange[] = [];
    for (const key of [...this.slots.keys()]) {
      const change = this.set(source, key, null);
      if (change !== null) changes.push(change);
    }
    return changes;
  }

  /** The number of prefixes with at least one candidate. */
  get size(): number {
    return this.slots.size;
  }

  /** Takes the reference a stored candidate holds; a route with a set not yet interned gets the shared one. */
  private hold(route: Route): Route {
    const attrs = this.table.intern(route.attrs);
    return attrs === route.attrs ? route : new Route(route.key, attrs, route.source, route.stale);
  }

  private reselect(key: RibKey, candidates: Route[], previous: Route | null): BestChange | null {
    if (candidates.length === 0) {
      this.slots.delete(key);
      return changeOf(key, previous, null);
    }
    if (candidates.length === 1) {
      const only = candidates[0] as Route;
      this.slots.set(key, only);
      return changeOf(key, previous, only);
    }
    const best = selectBest(candidates) as Route;
    const at = candidates.indexOf(best);
    if (at > 0) {
      candidates[at] = candidates[0] as Route;
      candidates[0] = best;
    }
    this.slots.set(key, candidates);
    return changeOf(key, previous, best);
  }
}
