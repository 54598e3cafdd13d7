// Builders for RIB tests: sources, routes and attribute sets with readable defaults.

import { parseIpv4, parsePrefix, prefixKey } from '../../../bgp/ip.js';
import { AttrTable } from '../../../bgp/rib/attrs.js';
import type { Attrs } from '../../../bgp/rib/attrs.js';
import { Route } from '../../../bgp/rib/route.js';
import type { RouteSource } from '../../../bgp/rib/route.js';
import { AsPathSegmentType, Origin } from '../../../bgp/types.js';
import type { AsPathSegment, PathAttributes } from '../../../bgp/types.js';

export const LOCAL_AS = 64512;
export const ip = (text: string): number => parseIpv4(text);
export const key = (text: string): number => prefixKey(parsePrefix(text));

export function seq(...asns: number[]): AsPathSegment {
  return { type: AsPathSegmentType.AS_SEQUENCE, asns };
}

export function set(...asns: number[]): AsPathSegment {
  return { type: AsPathSegmentType.AS_SET, asns };
}

export function source(address: string, options: Partial<RouteSource> = {}): RouteSource {
  return {
    address: ip(address),
    routerId: options.routerId ?? ip(address),
    asn: options.asn ?? LOCAL_AS,
    ebgp: options.ebgp ?? false,
    rrClient: options.rrClient ?? false,
    ...(options.local === undefined ? {} : { local: options.local }),
  };
}

export function attrs(overrides: PathAttributes = {}): PathAttributes {
  return { origin: Origin.IGP, asPath: [], nextHop: ip('198.18.0.1'), ...overrides };
}

/** A route built on its own table (tests of pure selection do not care about references). */
const table = new AttrTable();
export function route(from: RouteSource, overrides: PathAttributes = {}, prefix = '10.244.1.0/26'): Route {
  const interned: Attrs = table.intern(attrs(overrides));
  return new Route(key(prefix), interned, from);
}

/** Every ordering of `items` (n! of them). */
export function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [items.slice()];
  const out: T[][] = [];
  items.forEach((item, i) => {
    for (const rest of permutations([...items.slice(0, i), ...items.slice(i + 1)])) out.push([item, ...rest]);
  });
  return out;
}
