// The attributes of a route we originate, either family: AS_PATH empty unless given (built per peer), and
// for an IPv6 prefix the IPv6 next hop (RFC 2545 §3) — the one set on the route, else our `address6`. An
// IPv6 route's attribute set always carries `nextHop6` (./rib/prefix6.ts): that is how export tells the
// families apart, and why a route without one is refused here, naming the prefix.

import { formatPrefix6, type Ipv6 } from './ip6.js';
import type { OriginatedRoute, OriginatedRoute6 } from './speaker-events.js';
import type { PathAttributes } from './types.js';

export function originatedAttrs(
  route: OriginatedRoute | OriginatedRoute6,
  local: { readonly address6?: Ipv6 },
): PathAttributes {
  const attrs: PathAttributes = { ...route.attrs, asPath: route.attrs.asPath ?? [] };
  if (typeof route.prefix !== 'string') return attrs;
  delete attrs.nextHop; // RFC 4760 §3: the IPv4 NEXT_HOP does not apply to IPv6 NLRI
  const nextHop6 = route.attrs.nextHop6 ?? local.address6;
  if (nextHop6 === undefined)
    throw new Error(
      `IPv6 route ${formatPrefix6(route.prefix)} has no next hop: set attrs.nextHop6 or the speaker's address6`,
    );
  attrs.nextHop6 = nextHop6;
  return attrs;
}
