// The shape of a route felix wants in the kernel's main table, the table of route classes that settles
// conflicts for one prefix, and `routeKey()`, the one spelling of a destination that desired routes and
// `ip -json route` output are compared by. Pure; imports only bgp/ip.ts.
//
// Route classes, as Calico felix's routetable has them: when two sources want a route for the same CIDR,
// the class with the LOWER rank wins. A local workload's /32 beats anything remote; a route to a remote
// node (direct, tunnel, or learned from an outside router) beats this node's blackhole for a block —
// e.g. while a block moves between nodes, the remote node's route is the one that can deliver.
//
// How a DesiredRoute reads back from `ip -json route show table main` (checked with iproute2 on this
// machine): `dst` comes without "/32" for host routes and as "default" for 0.0.0.0/0 (`routeKey()`
// folds all three spellings); `protocol` is a string ("80", or a name like "kernel", "bird", "boot");
// `scope` is omitted when it is global; `via` is the `gateway` field; onlink is `"flags":["onlink"]`;
// a blackhole has `"type":"blackhole"` and no `dev`.

import { formatPrefix, parsePrefix, tryParseIpv4 } from '../bgp/ip.js';
import type { Prefix } from '../bgp/types.js';

/** The routing protocol number felix writes on every route it owns (Calico's RTPROT for felix). */
export const FELIX_ROUTE_PROTOCOL = 80;

export type RouteClass = 'workload' | 'direct' | 'tunnel' | 'peer' | 'vxlan' | 'bgp' | 'blackhole';

interface RouteClassRow {
  /** Lower wins when two routes want the same prefix. */
  readonly rank: number;
  /** What routes of this class are, for docs and messages. */
  readonly meaning: string;
  /** The shape, as `ip route` prints it. */
  readonly example: string;
}

/** One row per route class; the ranks follow Calico felix's routetable (lowest numeric value wins). */
export const ROUTE_CLASSES: Readonly<Record<RouteClass, RouteClassRow>> = {
  workload: {
    rank: 0,
    meaning: "a local workload's address on its cali* interface",
    example: '10.244.196.129 dev calie8e9a5cf531 proto 80 scope link',
  },
  direct: {
    rank: 1,
    meaning: 'a remote block without encapsulation, via the remote node on the host interface',
    example: '10.244.140.64/26 via 192.168.31.202 dev eth0 proto 80 onlink',
  },
  tunnel: {
    rank: 2,
    meaning: 'a remote block encapsulated in IPIP, via the remote node on tunl0',
    example: '10.244.140.64/26 via 192.168.31.202 dev tunl0 proto 80 onlink',
  },
  peer: {
    rank: 3,
    meaning:
      "a BGP peer's address through the gateway its BGPPeer names (reachableBy): beats a route to it learned over BGP",
    example: '10.225.0.4 via 10.224.0.1 dev eth0 proto 80 onlink',
  },
  vxlan: {
    rank: 4,
    meaning:
      "a remote block encapsulated in VXLAN, via the remote node's tunnel address on vxlan.calico (from IPAM block affinities, not BGP)",
    example: '10.244.140.64/26 via 10.244.140.64 dev vxlan.calico proto 80 onlink',
  },
  bgp: {
    rank: 5,
    meaning: 'a BGP route outside every IPPool (an office router, a top-of-rack switch), via its next hop',
    example: '172.16.0.0/16 via 192.168.31.1 dev eth0 proto 80 onlink',
  },
  blackhole: {
    rank: 6,
    meaning: 'a block affine to this node: addresses in it without a workload are dropped here',
    example: 'blackhole 10.244.196.128/26 proto 80',
  },
};

export function isRouteClass(value: unknown): value is RouteClass {
  return typeof value === 'string' && Object.hasOwn(ROUTE_CLASSES, value);
}

/** Negative when `a` wins over `b` for the same prefix. */
export function compareRouteClass(a: RouteClass, b: RouteClass): number {
  return ROUTE_CLASSES[a].rank - ROUTE_CLASSES[b].rank;
}

export interface DesiredRoute {
  /** Canonical CIDR, always with the length: "10.244.196.129/32" (see `routeKey`). */
  dst: string;
  type: 'unicast' | 'blackhole';
  dev?: string;
  via?: string;
  onlink?: boolean;
  scope?: 'link' | 'global';
  /** FELIX_ROUTE_PROTOCOL for every route felix writes; never 3 (boot). */
  proto: number;
  class: RouteClass;
}

/**
 * The one spelling of a route destination: "a.b.c.d/len", network address, length always present.
 * Accepts what `ip -json route` prints: "10.244.196.129" (a /32), "default" (0.0.0.0/0), or a CIDR.
 * Host bits are cleared. Throws an error naming the value for anything else.
 */
export function routeKey(dst: string): string {
  return formatPrefix(routePrefix(dst));
}

/** `routeKey`, as a Prefix. */
export function routePrefix(dst: string): Prefix {
  if (dst === 'default') return { addr: 0, len: 0 };
  if (!dst.includes('/')) {
    const addr = tryParseIpv4(dst);
    if (addr === null) {
      throw new Error(`route destination "${dst}" is not an IPv4 address, a CIDR (like 10.244.1.0/26) or "default"`);
    }
    return { addr, len: 32 };
  }
  return parsePrefix(dst, { what: 'route destination' });
}

/** The route as `ip route` would print it (without a table): for messages and test expectations. */
export function describeRoute(route: DesiredRoute): string {
  const parts: string[] = [];
  if (route.type === 'blackhole') parts.push('blackhole');
  parts.push(route.dst.endsWith('/32') ? route.dst.slice(0, -3) : route.dst);
  if (route.via !== undefined) parts.push('via', route.via);
  if (route.dev !== undefined) parts.push('dev', route.dev);
  parts.push('proto', String(route.proto));
  if (route.scope === 'link') parts.push('scope', 'link');
  if (route.onlink === true) parts.push('onlink');
  return parts.join(' ');
}

/** A prefix that more than one source wanted, and which route won by class. */
export interface RouteConflict {
  dst: string;
  winner: DesiredRoute;
  losers: DesiredRoute[];
}

/**
 * One route per destination: the lowest class rank wins. Within one class the first candidate (in the
 * caller's order) wins, so callers sort candidates to make the result deterministic. Identical
 * duplicates are folded silently; anything else that lost is reported as a conflict.
 */
export function resolveByClass(candidates: readonly DesiredRoute[]): {
  routes: DesiredRoute[];
  conflicts: RouteConflict[];
} {
  const { byDst, conflicts } = resolveByClassMap(candidates);
  return { routes: [...byDst.values()], conflicts };
}

/** `resolveByClass`, the winners keyed by destination (in the order `routes` would have them). */
export function resolveByClassMap(candidates: readonly DesiredRoute[]): {
  byDst: Map<string, DesiredRoute>;
  conflicts: RouteConflict[];
} {
  // Most prefixes have one candidate: it is kept alone; a list is made only for a prefix that has more.
  const byDst = new Map<string, DesiredRoute>();
  let more: Map<string, DesiredRoute[]> | undefined;
  for (const route of candidates) {
    const first = byDst.get(route.dst);
    if (first === undefined) {
      byDst.set(route.dst, route);
      continue;
    }
    more ??= new Map();
    const list = more.get(route.dst);
    if (list === undefined) more.set(route.dst, [first, route]);
    else list.push(route);
  }
  const conflicts: RouteConflict[] = [];
  if (more === undefined) return { byDst, conflicts };
  for (const dst of byDst.keys()) {
    const list = more.get(dst);
    if (list === undefined) continue;
    let winner = list[0] as DesiredRoute;
    for (const route of list) if (compareRouteClass(route.class, winner.class) < 0) winner = route;
    byDst.set(dst, winner); // the key keeps its place
    const losers = list.filter((r) => r !== winner && !sameRoute(r, winner));
    if (losers.length > 0) conflicts.push({ dst, winner, losers: dedupe(losers) });
  }
  return { byDst, conflicts };
}

/** Same destination, shape and class. */
export function sameRoute(a: DesiredRoute, b: DesiredRoute): boolean {
  return (
    a.dst === b.dst &&
    a.type === b.type &&
    a.dev === b.dev &&
    a.via === b.via &&
    (a.onlink ?? false) === (b.onlink ?? false) &&
    (a.scope ?? 'global') === (b.scope ?? 'global') &&
    a.proto === b.proto &&
    a.class === b.class
  );
}

function dedupe(routes: DesiredRoute[]): DesiredRoute[] {
  const out: DesiredRoute[] = [];
  for (const r of routes) if (!out.some((o) => sameRoute(o, r))) out.push(r);
  return out;
}
