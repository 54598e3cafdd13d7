// What the Speaker tells people and tests about its peers and routes: the rows of `peerStatus()`,
// `receivedRoutes()`, `refusedRoutes()` and the Loc-RIB entries of `bestRoutes()`/`best()`. Read-only
// views of the speaker's state (./peer-entry.ts, the Loc-RIB); nothing here changes it.

import type { RefusedRoute } from './import-judge.js';
import { formatIpv4 } from './ip.js';
import { formatIpv6, formatPrefix6, type Prefix6 } from './ip6.js';
import type { PeerEntry } from './peer-entry.js';
import { sourceId, type LocRib, type Route } from './rib/index.js';
import type { SessionDownReason, SessionState } from './session.js';
import type { PathAttributes, Prefix } from './types.js';

/** A Loc-RIB route for people and tests. */
export interface RibEntry {
  prefix: Prefix;
  attrs: PathAttributes;
  /** The peer it came from, or null when we originate it. */
  from: string | null;
  stale: boolean;
}

/** A Loc-RIB IPv6 route for people, tests and the node agent (its next hop in `attrs.nextHop6`). */
export interface RibEntry6 {
  /** The prefix key (./ip6.ts); `text` is its RFC 5952 form, "fd00:10:244::/122". */
  key: Prefix6;
  text: string;
  /** The global next hop as text, when the route has one. */
  nextHop: string | undefined;
  attrs: PathAttributes;
  from: string | null;
  stale: boolean;
}

export interface PeerStatus {
  address: string;
  port: number;
  peerAs: number;
  state: SessionState;
  since: number;
  routesReceived: number;
  routesAccepted: number;
  routesAdvertised: number;
  staleRoutes: number;
  lastError?: string;
  /** Why the session last failed, as a value (format it with ./down-reason.ts). */
  lastReason?: SessionDownReason;
}

export function toRibEntry(route: Route): RibEntry {
  return {
    prefix: route.prefix,
    attrs: route.attrs,
    from: route.source.local ? null : formatIpv4(route.source.address),
    stale: route.stale,
  };
}

export function toRibEntry6(route: Route): RibEntry6 {
  const key = route.key as Prefix6;
  return {
    key,
    text: formatPrefix6(key),
    nextHop: route.attrs.nextHop6 === undefined ? undefined : formatIpv6(route.attrs.nextHop6),
    attrs: route.attrs,
    from: route.source.local ? null : formatIpv4(route.source.address),
    stale: route.stale,
  };
}

/** IPv4 routes only (the rows whose `prefix` is an IPv4 `{addr, len}`); IPv6 ones have their own rows. */
export const isIpv4Route = (route: Route): boolean => typeof route.key === 'number';

/** One peer's status row; without `detail`, `routesAccepted` and `staleRoutes` are 0 (no walk over its routes). */
export function peerStatusRow(entry: PeerEntry, locRib: LocRib, detail: boolean): PeerStatus {
  const stats = entry.session.stats;
  let stale = 0;
  let accepted = 0;
  if (detail)
    for (const route of entry.ribIn.routes()) {
      if (route.stale) stale++;
      if (locRib.candidates(route.key).some((c) => sourceId(c.source) === sourceId(entry.policy))) accepted++;
    }
  return {
    address: entry.spec.address,
    port: entry.spec.port,
    peerAs: entry.spec.peerAs,
    state: entry.session.state,
    since: stats.stateSince,
    routesReceived: entry.ribIn.size,
    routesAccepted: accepted,
    routesAdvertised: entry.session.established ? entry.group.advertisedCount(entry) : 0,
    staleRoutes: stale,
    ...(stats.lastError ? { lastError: stats.lastError } : {}),
    ...(stats.lastReason ? { lastReason: stats.lastReason } : {}),
  };
}

/** Routes received from one peer (its Adj-RIB-In, before import policy). */
export function receivedRows(entry: PeerEntry | undefined, address: string): RibEntry[] {
  return entry
    ? [...entry.ribIn.routes()]
        .filter(isIpv4Route)
        .map((r) => ({ prefix: r.prefix, attrs: r.attrs, from: address, stale: r.stale }))
    : [];
}

/** Routes the import judge refused, per peer, as held in the peers' Adj-RIBs-In. */
export function refusedRows(peers: Iterable<PeerEntry>): RefusedRoute[] {
  const out: RefusedRoute[] = [];
  for (const entry of peers) {
    for (const { route, reason } of entry.refused.values()) {
      if (!isIpv4Route(route)) continue;
      out.push({ prefix: route.prefix, attrs: route.attrs, from: entry.spec.address, reason, stale: route.stale });
    }
  }
  return out;
}
