// Import and export policy, per peer: the RFC rules every BGP speaker applies between the RIBs, plus the
// per-peer hooks the node agent uses for Calico's own rules (which blocks to export, …) without touching bgp/.
//
// Owns:
// - import: loop detection (our AS in the AS_PATH, RFC 4271 §9.1.2; ORIGINATOR_ID / CLUSTER_LIST, RFC 4456
//   §8), a next hop that is our own address, attributes an eBGP peer must not set (RFC 7606 §7.5, §7.9,
//   §7.10), then `importFilter`;
// - export: `exportFilter`, then who may receive a route (iBGP split horizon and route reflection, RFC 4271
//   §9.2 and RFC 4456 §6; well-known communities, RFC 1997), then the attribute rewriting for the receiving
//   peer (eBGP: our AS prepended, next hop, attributes that must not leave the AS; iBGP: LOCAL_PREF; on
//   reflection ORIGINATOR_ID and CLUSTER_LIST, RFC 4456 §8).
//
// Why this is hard: the rules depend on three things at once (where the route came from, who receives it,
// and whether we reflect), and several are easy to get subtly wrong: a reflected route keeps its next hop
// under 'auto'; MED from a neighbouring AS must not go to another AS but a MED we set ourselves may;
// unknown transitive attributes go on with the Partial bit, unknown non-transitive ones stop here.
//
// Decisions recorded here:
// - nextHop 'self' applies to reflected routes too, as BIRD's `next hop self` (what Calico's nextHopMode:
//   Self configures) does.
// - Next hop toward an eBGP peer under 'auto' (RFC 4271 §5.1.3): when the peer is one IP hop away — the
//   caller says so with `sharedSubnet`, the subnet of ours its address is inside — a route whose NEXT_HOP
//   is inside that subnet too (another node on the same network) keeps it: a third-party next hop
//   (§5.1.3 (2)), so the peer sends traffic straight to that node, not through us. This is BIRD's and
//   FRR's default on a directly connected eBGP session; Calico's generated BIRD config makes every
//   session multihop, so Calico's nodes send their own address instead (a deliberate difference: the
//   node agent gives the subnet only to eBGP peers inside it; nextHopMode Self restores Calico's). The peer's own
//   address is never passed on as its next hop (it would ignore the route, §6.3). Any other next hop
//   becomes ours, as does everything toward a peer that is not one hop away (a multihop eBGP peer, or one
//   the caller gave no subnet for). A next hop the operator set on a route we originate is kept anywhere.
// - MED is sent to eBGP peers only for routes we originate (RFC 4271 §5.1.4 forbids passing on a MED
//   received from a neighbouring AS; an iBGP-learned MED may have come from one, so it is dropped too).
// - RFC 8212 (no eBGP exchange without explicit policy) is left to the node agent's filters: Calico
//   exports its blocks to eBGP peers by default.

import { prefixContains } from '../ip.js';
import { AsPathSegmentType, AttrFlag, Origin } from '../types.js';
import type { Ipv6 } from '../ip6.js';
import type { AsPathSegment, PathAttributes, Prefix, UnknownAttribute } from '../types.js';
import type { AttrTable } from './attrs.js';
import { DEFAULT_LOCAL_PREF } from './best-path.js';
import { Route } from './route.js';
import type { RouteSource } from './route.js';

export type NextHopMode = 'auto' | 'self' | 'keep';

/** This speaker, as policy sees it. */
export interface LocalSpeaker {
  readonly asn: number;
  readonly routerId: number;
  /** Route-reflector cluster id (RFC 4456 §7); defaults to the router id. */
  readonly clusterId?: number;
  /** Our address towards peers: the next hop we announce for ourselves. */
  readonly address: number;
  /** Our IPv6 address: the next hop of IPv6 routes we announce for ourselves (RFC 2545 §3). */
  readonly address6?: Ipv6;
}

/** What a peer's import filter says of one route (see PeerPolicy.importFilter). */
export type ImportFilterResult = Route | null | { readonly refused: string };

/** A peer, as policy sees it. */
export interface PeerPolicy {
  readonly address: number;
  /** The peer's TCP port (`RouteSource.port`): two peers on one address are two senders. */
  readonly port?: number;
  readonly asn: number;
  readonly ebgp: boolean;
  /** A route-reflector client of ours (RFC 4456 §6). Ignored for eBGP peers. */
  readonly rrClient: boolean;
  /**
   * 'auto' (default): to eBGP peers ours, or a third-party next hop inside `sharedSubnet`; unchanged to iBGP
   * peers. 'self': always ours. 'keep': never changed.
   */
  readonly nextHop?: NextHopMode;
  /**
   * Set when this eBGP peer is one IP hop away: `prefix` is our subnet that its address is inside (our
   * interface address with its prefix length, host bits cleared), `peerAddress` the peer's own address (the
   * policy's `address` may stand for a whole update group). Under 'auto', a NEXT_HOP inside `prefix` other
   * than `peerAddress` goes to it unchanged (RFC 4271 §5.1.3 (2)). Ignored toward iBGP peers.
   */
  readonly sharedSubnet?: SharedSubnet;
  /** How many times our AS may appear in a received AS_PATH (Calico's numAllowedLocalASNumbers). Default 0. */
  readonly allowOwnAs?: number;
  /**
   * Runs after the RFC import checks: the route to keep (the same Route, or one with other attributes —
   * they need not come from the table, importVerdict makes them canonical), null to drop it, or a refusal
   * with a reason code (the speaker holds and reports it like an import judge's refusal).
   */
  readonly importFilter?: (route: Route) => ImportFilterResult;
  /**
   * Runs before the RFC export rules on the Loc-RIB route; returns the route to export (its attributes may
   * be new, not from the table: they are rewritten for the peer and made canonical then) or null.
   */
  readonly exportFilter?: (route: Route) => Route | null;
}

/** An eBGP peer's and our common subnet (see `PeerPolicy.sharedSubnet`). */
export interface SharedSubnet {
  readonly prefix: Prefix;
  readonly peerAddress: number;
}

/**
 * RFC 4271 §5.1.3 (2): `nextHop` may go to a peer one IP hop away on `shared` as a third-party next hop —
 * it is on that subnet, and it is not the peer's own address.
 */
export function isThirdPartyNextHop(nextHop: number | undefined, shared: SharedSubnet | undefined): boolean {
  return (
    nextHop !== undefined &&
    shared !== undefined &&
    nextHop !== shared.peerAddress &&
    prefixContains(shared.prefix, nextHop)
  );
}

/** RFC 1997 well-known communities. */
export const WellKnownCommunity = {
  NO_EXPORT: 0xffffff01,
  NO_ADVERTISE: 0xffffff02,
  NO_EXPORT_SUBCONFED: 0xffffff03,
} as const;

function clusterIdOf(local: LocalSpeaker): number {
  return local.clusterId ?? local.routerId;
}

function countAs(segments: readonly AsPathSegment[] | undefined, asn: number): number {
  let count = 0;
  for (const segment of segments ?? []) for (const value of segment.asns) if (value === asn) count += 1;
  return count;
}

// ---------------------------------------------------------------------------------------------- import

/**
 * Why a received route must not be used, or null when it may. The reason names the field and the value,
 * for logs and `tortie node routes`.
 */
export function importRejection(attrs: PathAttributes, local: LocalSpeaker, allowOwnAs = 0): string | null {
  // RFC 4271 §9.1.2: a route whose AS_PATH contains our AS is a loop (allowOwnAs relaxes it, as Calico's
  // numAllowedLocalASNumbers / BIRD's `allow local as` do).
  const own = countAs(attrs.asPath, local.asn);
  if (own > allowOwnAs) {
    return `AS_PATH contains our AS ${local.asn} ${own} time(s), more than the ${allowOwnAs} allowed (allowOwnAs)`;
  }
  // RFC 4456 §8: a route carrying our router id as ORIGINATOR_ID came back to its originator.
  if (attrs.originatorId !== undefined && attrs.originatorId === local.routerId) {
    return `ORIGINATOR_ID ${attrs.originatorId} is our own router id`;
  }
  // RFC 4456 §8: a CLUSTER_LIST containing our cluster id is a reflection loop.
  const clusterId = clusterIdOf(local);
  if (attrs.clusterList !== undefined && attrs.clusterList.includes(clusterId)) {
    return `CLUSTER_LIST contains our cluster id ${clusterId}`;
  }
  // RFC 4271 §9.1.2 (resolvable next hop; no IGP here, so only this check): our own address as the next
  // hop would route the traffic to ourselves.
  if (attrs.nextHop !== undefined && attrs.nextHop === local.address) {
    return `NEXT_HOP ${attrs.nextHop} is our own address`;
  }
  return null;
}

/**
 * Removes what an eBGP peer may not set: LOCAL_PREF (RFC 7606 §7.5, RFC 4271 §5.1.5), ORIGINATOR_ID and
 * CLUSTER_LIST (RFC 7606 §7.9, §7.10). Returns `attrs` itself when nothing is removed.
 */
export function importAttributes(attrs: PathAttributes, from: RouteSource): PathAttributes {
  if (!from.ebgp) return attrs;
  if (attrs.localPref === undefined && attrs.originatorId === undefined && attrs.clusterList === undefined)
    return attrs;
  const { localPref: _lp, originatorId: _oid, clusterList: _cl, ...kept } = attrs;
  return kept;
}

/**
 * A received route after the RFC import rules and the peer's `importFilter`, or null when it must not be
 * used. The result is the same Route object when nothing changed (so the Loc-RIB shares the Adj-RIB-In's).
 */
export function importRoute(route: Route, peer: PeerPolicy, local: LocalSpeaker, table: AttrTable): Route | null {
  const verdict = importVerdict(route, peer, local, table);
  return verdict instanceof Route ? verdict : null;
}

/**
 * importRoute with the filter's refusal kept: the Route to use, null (dropped by the RFC rules or the
 * filter), or `{ refused }` with the filter's reason. A Route the filter returns with other attributes
 * gets the table's canonical set of them.
 */
export function importVerdict(
  route: Route,
  peer: PeerPolicy,
  local: LocalSpeaker,
  table: AttrTable,
): ImportFilterResult {
  if (importRejection(route.attrs, local, peer.allowOwnAs ?? 0) !== null) return null;
  const attrs = importAttributes(route.attrs, route.source);
  const imported =
    attrs === route.attrs ? route : new Route(route.key, table.canonical(attrs), route.source, route.stale);
  if (peer.importFilter === undefined) return imported;
  const filtered = peer.importFilter(imported);
  if (!(filtered instanceof Route) || filtered.attrs === imported.attrs) return filtered;
  return new Route(filtered.key, table.canonical(filtered.attrs), filtered.source, filtered.stale);
}

// ---------------------------------------------------------------------------------------------- export

/**
 * Whether a route may go to `to` at all, and whether it would be reflected. RFC 4271 §9.2 (iBGP-learned
 * routes are not sent to iBGP peers) and RFC 4456 §6 (a reflector sends routes from clients to clients and
 * non-clients, from non-clients to clients; eBGP-learned and local routes to everyone).
 */
export function exportScope(from: RouteSource, to: PeerPolicy): 'none' | 'plain' | 'reflected' {
  if (!from.local && from.address === to.address && from.port === to.port) return 'none'; // never back to the peer it came from
  if (to.ebgp || from.local || from.ebgp) return 'plain';
  if (from.rrClient) return 'reflected'; // RFC 4456 §6 (a): client → clients and non-clients
  if (to.rrClient && !to.ebgp) return 'reflected'; // RFC 4456 §6 (b): non-client → clients only
  return 'none'; // RFC 4271 §9.2: iBGP split horizon
}

/** An AS_PATH with `asn` prepended (RFC 4271 §5.1.2 (b)); confederation segments removed (RFC 5065 §5.3). */
export function prependAs(segments: readonly AsPathSegment[] | undefined, asn: number): AsPathSegment[] {
  const rest = (segments ?? []).filter(
    (s) => s.type !== AsPathSegmentType.AS_CONFED_SEQUENCE && s.type !== AsPathSegmentType.AS_CONFED_SET,
  );
  const first = rest[0];
  // A segment holds at most 255 ASes (RFC 4271 §4.3): start a new one when the first is full.
  if (first !== undefined && first.type === AsPathSegmentType.AS_SEQUENCE && first.asns.length < 255) {
    return [{ type: AsPathSegmentType.AS_SEQUENCE, asns: [asn, ...first.asns] }, ...rest.slice(1)];
  }
  return [{ type: AsPathSegmentType.AS_SEQUENCE, asns: [asn] }, ...rest];
}

/**
 * RFC 4271 §5: unknown optional non-transitive attributes are not passed on; unknown optional transitive
 * ones are, with the Partial bit set.
 */
function passOnUnknown(unknown: readonly UnknownAttribute[] | undefined): UnknownAttribute[] | undefined {
  if (unknown === undefined) return undefined;
  const out: UnknownAttribute[] = [];
  for (const attribute of unknown) {
    const transitive = (attribute.flags & AttrFlag.TRANSITIVE) !== 0;
    if ((attribute.flags & AttrFlag.OPTIONAL) !== 0 && !transitive) continue;
    out.push(transitive ? { ...attribute, flags: attribute.flags | AttrFlag.PARTIAL } : attribute);
  }
  return out.length > 0 ? out : undefined;
}

/**
 * The attributes to announce `route` with to `to`, or null when it must not be sent. Applies the peer's
 * `exportFilter` first, then the RFC rules (see the header).
 */
export function exportAttributes(route: Route, to: PeerPolicy, local: LocalSpeaker): PathAttributes | null {
  const filtered = to.exportFilter === undefined ? route : to.exportFilter(route);
  if (filtered === null) return null;
  return rewriteForPeer(filtered.attrs, filtered.source, to, local);
}

/** The RFC part of `exportAttributes`, without the filter: a function of (attributes, source, peer). */
export function rewriteForPeer(
  attrs: PathAttributes,
  from: RouteSource,
  to: PeerPolicy,
  local: LocalSpeaker,
): PathAttributes | null {
  const scope = exportScope(from, to);
  if (scope === 'none') return null;
  // RFC 1997: NO_ADVERTISE goes to no peer; NO_EXPORT and NO_EXPORT_SUBCONFED stay inside the AS.
  const communities = attrs.communities;
  if (communities !== undefined) {
    if (communities.includes(WellKnownCommunity.NO_ADVERTISE)) return null;
    if (
      to.ebgp &&
      (communities.includes(WellKnownCommunity.NO_EXPORT) ||
        communities.includes(WellKnownCommunity.NO_EXPORT_SUBCONFED))
    ) {
      return null;
    }
  }
  const mode = to.nextHop ?? 'auto';
  const out: { -readonly [K in keyof PathAttributes]: PathAttributes[K] } = {};
  out.origin = attrs.origin ?? Origin.INCOMPLETE;
  if (to.ebgp) {
    // RFC 4271 §5.1.2 (b): prepend our AS when sending to an external peer.
    out.asPath = prependAs(attrs.asPath, local.asn);
    // RFC 4271 §5.1.3: our address to an external peer, unless configured to keep it ('keep'). Under
    // 'auto', two kinds of third-party next hop (§5.1.3 (2)) are kept: one inside the subnet we share with
    // a peer one IP hop away (the node that owns the route, on the peer's own network), and one the operator
    // set on a route we originate.
    const keep =
      mode === 'keep' ||
      (mode === 'auto' &&
        ((from.local === true && attrs.nextHop !== undefined) || isThirdPartyNextHop(attrs.nextHop, to.sharedSubnet)));
    out.nextHop = keep ? (attrs.nextHop ?? local.address) : local.address;
    // RFC 4271 §5.1.4: a MED received from a neighbouring AS is not passed to other ASes; ours may be.
    if (from.local && attrs.med !== undefined) out.med = attrs.med;
    // RFC 4271 §5.1.5: LOCAL_PREF is never sent to external peers. ORIGINATOR_ID and CLUSTER_LIST are
    // optional non-transitive (RFC 4456 §8) and stay inside the AS too.
  } else {
    // RFC 4271 §5.1.2 (a): the AS_PATH is not modified towards internal peers.
    out.asPath = attrs.asPath ?? [];
    // RFC 4271 §5.1.3: unchanged towards internal peers ('auto', 'keep'); a reflected route keeps its next
    // hop (RFC 4456 §10) unless 'self'. A local route without one gets ours.
    out.nextHop = mode === 'self' ? local.address : (attrs.nextHop ?? local.address);
    if (attrs.med !== undefined) out.med = attrs.med;
    // RFC 4271 §5.1.5: LOCAL_PREF is included in every UPDATE to an internal peer.
    out.localPref = attrs.localPref ?? DEFAULT_LOCAL_PREF;
  }
  if (attrs.nextHop6 !== undefined) {
    // An IPv6 route (its attribute sets always carry nextHop6, ./prefix6.ts): the IPv4 NEXT_HOP does not
    // apply (RFC 4760 §3); the same next-hop rules pick the IPv6 global next hop (RFC 2545 §3).
    delete out.nextHop;
    const nextHop6 = nextHop6For(attrs.nextHop6, from, to, local);
    if (nextHop6 === undefined) return null; // ours is needed and we have no IPv6 address: not sent
    out.nextHop6 = nextHop6;
  }
  if (attrs.atomicAggregate) out.atomicAggregate = true;
  if (attrs.aggregator !== undefined) out.aggregator = attrs.aggregator;
  if (attrs.communities !== undefined) out.communities = attrs.communities;
  // RFC 8092: optional transitive, passed on unchanged to every peer.
  if (attrs.largeCommunities !== undefined) out.largeCommunities = attrs.largeCommunities;
  if (!to.ebgp) {
    if (scope === 'reflected') {
      // RFC 4456 §8: ORIGINATOR_ID set to the originator's router id if absent; our cluster id prepended.
      out.originatorId = attrs.originatorId ?? from.routerId;
      out.clusterList = [clusterIdOf(local), ...(attrs.clusterList ?? [])];
    } else {
      if (attrs.originatorId !== undefined) out.originatorId = attrs.originatorId;
      if (attrs.clusterList !== undefined) out.clusterList = attrs.clusterList;
    }
  }
  const unknown = from.local ? attrs.unknown : passOnUnknown(attrs.unknown);
  if (unknown !== undefined && unknown.length > 0) out.unknown = unknown;
  return out;
}

/**
 * The IPv6 next hop toward `to` (RFC 4271 §5.1.3 rules applied to RFC 2545's global next hop): toward eBGP
 * peers ours unless 'keep' or (under 'auto') a route we originate with an operator-set next hop; toward iBGP
 * peers unchanged unless 'self'. No third-party next hop on a shared IPv6 subnet yet, and a received
 * link-local next hop is never passed on (it means something on the link it came from only). Undefined:
 * ours is wanted but we have no IPv6 address.
 */
function nextHop6For(received: Ipv6, from: RouteSource, to: PeerPolicy, local: LocalSpeaker): Ipv6 | undefined {
  const mode = to.nextHop ?? 'auto';
  const keep = to.ebgp ? mode === 'keep' || (mode === 'auto' && from.local === true) : mode !== 'self';
  return keep ? received : local.address6;
}

/**
 * Export for one peer with a cache: routes that share an attribute set and a source (100k blocks from one
 * node) are rewritten once. Results are canonical sets of `table`, so an Adj-RIB-Out interning them is an
 * identity lookup. Build a new one when the peer's policy or the local identity changes.
 */
export class PeerExport {
  /** attrs → the answer for one source (the common case), or a Map when several sources share the set. */
  private readonly cache = new WeakMap<
    object,
    { source: RouteSource; result: PathAttributes | null } | Map<RouteSource, PathAttributes | null>
  >();

  constructor(
    readonly peer: PeerPolicy,
    readonly local: LocalSpeaker,
    private readonly table: AttrTable,
  ) {}

  /** Same answer as `exportAttributes(route, peer, local)`, as a canonical set of the table. */
  attributes(route: Route): PathAttributes | null {
    // Never back to the peer it came from (RFC 4271 §9.2, RFC 4456 §6): decided before any allocation.
    if (route.source.address === this.peer.address && route.source.port === this.peer.port && !route.source.local)
      return null;
    const filtered = this.peer.exportFilter === undefined ? route : this.peer.exportFilter(route);
    if (filtered === null) return null;
    // Who may receive it depends on (source, peer) only: a 'none' needs no cache entry per attribute set.
    if (exportScope(filtered.source, this.peer) === 'none') return null;
    const entry = this.cache.get(filtered.attrs);
    if (entry !== undefined) {
      if (entry instanceof Map) {
        const cached = entry.get(filtered.source);
        if (cached !== undefined) return cached;
      } else if (entry.source === filtered.source) {
        return entry.result;
      }
    }
    const rewritten = rewriteForPeer(filtered.attrs, filtered.source, this.peer, this.local);
    const result = rewritten === null ? null : this.table.canonical(rewritten);
    if (entry === undefined) this.cache.set(filtered.attrs, { source: filtered.source, result });
    else if (entry instanceof Map) entry.set(filtered.source, result);
    else
      this.cache.set(
        filtered.attrs,
        new Map([
          [entry.source, entry.result],
          [filtered.source, result],
        ]),
      );
    return result;
  }
}
