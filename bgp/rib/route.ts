// A route: a prefix (as its prefixKey number), an interned attribute set, and the source it came from.
//
// Owns: the `Route` shape and `RouteSource`, the description of where a route was learned. Routes are kept
// small (four fields, no strings) because there is one per prefix per peer: the Adj-RIB-In and the Loc-RIB
// share the same Route object whenever import policy leaves the attributes unchanged.

import { prefixFromKey } from '../ip.js';
import type { Prefix6, RibKey } from '../ip6.js';
import type { Prefix } from '../types.js';
import type { Attrs } from './attrs.js';

/** Where a route came from. One object per peer session (or one for locally originated routes). */
export interface RouteSource {
  /** The peer's IPv4 address as uint32 (for local routes: our own address). Candidates are keyed on it. */
  readonly address: number;
  /**
   * The peer's TCP port, where the speaker knows it: with `address`, what tells two peers on one address
   * apart (two sessions to one router on different ports). Absent for local routes.
   */
  readonly port?: number;
  /** The peer's BGP identifier from its OPEN (for local routes: our router id). */
  readonly routerId: number;
  /** The peer's AS (for local routes: our AS). */
  readonly asn: number;
  /** The session is eBGP (the peer is in another AS). */
  readonly ebgp: boolean;
  /** The peer is a route-reflector client of ours (RFC 4456 §6). Never true for eBGP peers. */
  readonly rrClient: boolean;
  /** Originated by this speaker (an IPAM block), not learned. */
  readonly local?: boolean;
}

export class Route {
  /**
   * @param key `prefixKey(prefix)` for IPv4 (`prefix` rebuilds the `{addr, len}`), the `Prefix6` string for
   *   IPv6 (./prefix6.ts).
   * @param stale marked by graceful restart (RFC 4724 §4.2) until the peer re-announces or the timer sweeps.
   */
  constructor(
    readonly key: RibKey,
    readonly attrs: Attrs,
    readonly source: RouteSource,
    public stale = false,
  ) {}

  /** The IPv4 prefix. Only for IPv4 routes (`typeof key === 'number'`); an IPv6 route has `prefix6`. */
  get prefix(): Prefix {
    if (typeof this.key === 'string') throw new Error('an IPv6 route has no IPv4 prefix: use prefix6');
    return prefixFromKey(this.key);
  }

  /** The IPv6 prefix key, or undefined for an IPv4 route. */
  get prefix6(): Prefix6 | undefined {
    return typeof this.key === 'string' ? this.key : undefined;
  }
}

/**
 * The number a source is told apart by (Loc-RIB candidates, update-group members, "not back to the sender"):
 * its address, and its port when it has one (address + port × 2^32, exact in a double).
 */
export function sourceId(source: { readonly address: number; readonly port?: number }): number {
  return source.port === undefined ? source.address : source.address + source.port * 0x1_0000_0000;
}

/** The source of locally originated routes. */
export function localSource(local: { address: number; routerId: number; asn: number }): RouteSource {
  return Object.freeze({
    address: local.address,
    routerId: local.routerId,
    asn: local.asn,
    ebgp: false,
    rrClient: false,
    local: true,
  });
}
