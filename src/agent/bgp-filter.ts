// Calico's BGPFilter, evaluated: the rules of the filters a BGPPeer names (`spec.filters`, in order) turned
// into one decision per route, as Calico's confd renders them into BIRD filter functions
// (confd/pkg/resource/template/template_funcs.go; confd/docs/bgpfilter-bird-config-examples.md):
//
// - The filters run in the order the peer lists them, each filter's rules in order. A rule whose peerType
//   does not fit the session (same AS = iBGP) is skipped. The first rule whose every match criterion holds
//   decides: Reject, or Accept after its operations. Accept and reject are terminal (BIRD's accept/reject
//   end the whole filter), so no later rule or filter sees the route.
// - No rule matched: on import the route is accepted unchanged (Calico's `accept` after the filter calls);
//   on export the caller applies Calico's default export rules (`calico_export_to_bgp_peers`, then reject):
//   `none` says so.
// - Matching, as BIRD evaluates Calico's expressions: cidr with matchOperator Equal (`net = cidr`), In
//   (`net ~ cidr`: inside, at least as long), NotEqual, NotIn; prefixLength narrows to `cidr{min,max}` with
//   min raised to the cidr's own length and max capped at 32 / 128. source RemotePeers: learned from a BGP
//   peer, not originated here. interface: the route's outgoing interface (the caller resolves it from the
//   next hop; an originated block has none, as BIRD's blackhole statics have no ifname), `*` and `?` as
//   wildcards. communities: the route carries that standard or large community. asPathPrefix: the AS_PATH
//   begins with those AS numbers. priority: the route's kernel priority (routes here carry none, so such a
//   rule matches nothing — reported as not in effect, src/resources/effect.ts).
// - Operations on Accept, in order: addCommunity (standard or large, not added twice), prependASPath (the
//   listed AS numbers end up first, in the listed order), setPriority (no kernel priority here: not in
//   effect, and left out).
// - Only the IPv4 lists apply: tortie's BGP carries IPv4 unicast. The V6 lists are kept for when it does.

import { AsPathSegmentType, maskOf, parseCommunity, type AsPathSegment, type PathAttributes } from '../../bgp/index.js';
import { parseCidr } from '../resources/cidr.js';
import type { BGPFilterRule, Resource } from '../resources/types.js';

/** A route as a filter sees it. */
export interface FilterRoute {
  readonly addr: number;
  readonly len: number;
  readonly attrs: PathAttributes;
  /** Learned from a BGP peer (false: originated by this node). */
  readonly learned: boolean;
  /** The outgoing interface towards the route's next hop, when the caller knows one. */
  readonly iface?: string;
}

export type FilterDecision =
  | { readonly action: 'accept'; readonly attrs: PathAttributes; readonly rule: string }
  | { readonly action: 'reject'; readonly rule: string }
  | { readonly action: 'none' };

export type Direction = 'import' | 'export';

/** One rule, compiled: its name for messages, a predicate and what Accept does to the attributes. */
interface CompiledRule {
  readonly name: string;
  readonly peerType: 'eBGP' | 'iBGP' | undefined;
  readonly matches: (route: FilterRoute) => boolean;
  readonly action: 'Accept' | 'Reject';
  readonly apply: (attrs: PathAttributes) => PathAttributes;
}

/** BIRD's string match (`ifname ~ "eth*"`): `*` any run of characters, `?` one character. */
function globMatcher(pattern: string): (text: string) => boolean {
  const source = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  const re = new RegExp(`^${source}$`);
  return (text) => re.test(text);
}

function cidrMatcher(rule: BGPFilterRule): ((route: FilterRoute) => boolean) | null {
  if (rule.cidr === undefined || rule.cidr === '' || rule.matchOperator === undefined) return null;
  const cidr = parseCidr(rule.cidr);
  if (cidr === null || cidr.family !== 4) return () => false;
  const net = Number(cidr.network) >>> 0;
  const min = Math.max(cidr.len, rule.prefixLength?.min ?? 0);
  const max = Math.min(32, rule.prefixLength?.max ?? 32);
  const inside = (r: FilterRoute): boolean => r.len >= cidr.len && (r.addr & maskOf(cidr.len)) >>> 0 === net;
  const equal = (r: FilterRoute): boolean => r.len === cidr.len && r.addr >>> 0 === net;
  // With a prefixLength the set is `cidr{min,max}`: inside the cidr, length in min..max.
  const inSet =
    rule.prefixLength === undefined ? inside : (r: FilterRoute) => inside(r) && r.len >= min && r.len <= max;
  const equalSet =
    rule.prefixLength === undefined ? equal : (r: FilterRoute) => equal(r) && r.len >= min && r.len <= max;
  switch (rule.matchOperator) {
    case 'Equal':
      return equalSet;
    case 'NotEqual':
      return (r) => !equalSet(r);
    case 'In':
      return inSet;
    case 'NotIn':
      return (r) => !inSet(r);
  }
}

function communityMatcher(text: string): (attrs: PathAttributes) => boolean {
  const community = parseCommunity(text);
  if (community === null) return () => false;
  if (community.kind === 'standard') return (attrs) => attrs.communities?.includes(community.value) === true;
  const [a, b, c] = community.value;
  return (attrs) => {
    const large = attrs.largeCommunities ?? [];
    for (let i = 0; i + 2 < large.length; i += 3)
      if (large[i] === a && large[i + 1] === b && large[i + 2] === c) return true;
    return false;
  };
}

/** The AS numbers of a path in order, sets and confederation segments included (as BIRD's `[= a b * =]`). */
function flatPath(path: readonly AsPathSegment[] | undefined): number[] {
  return (path ?? []).flatMap((segment) => segment.asns);
}

function asPathPrefixMatcher(prefix: readonly number[]): (attrs: PathAttributes) => boolean {
  return (attrs) => {
    const path = flatPath(attrs.asPath);
    return prefix.length <= path.length && prefix.every((asn, i) => path[i] === asn);
  };
}

function addCommunity(attrs: PathAttributes, text: string): PathAttributes {
  const community = parseCommunity(text);
  if (community === null) return attrs;
  if (community.kind === 'standard') {
    const current = attrs.communities ?? [];
    return current.includes(community.value) ? attrs : { ...attrs, communities: [...current, community.value] };
  }
  if (communityMatcher(text)(attrs)) return attrs;
  return { ...attrs, largeCommunities: [...(attrs.largeCommunities ?? []), ...community.value] };
}

/** Prepends `asns` so that they come first in the listed order (BIRD: prepend in reverse). */
function prependAsPath(attrs: PathAttributes, asns: readonly number[]): PathAttributes {
  const path = attrs.asPath ?? [];
  const [first, ...rest] = path;
  const asPath: AsPathSegment[] =
    first !== undefined && first.type === AsPathSegmentType.AS_SEQUENCE && first.asns.length + asns.length <= 255
      ? [{ type: AsPathSegmentType.AS_SEQUENCE, asns: [...asns, ...first.asns] }, ...rest]
      : [{ type: AsPathSegmentType.AS_SEQUENCE, asns: [...asns] }, ...path];
  return { ...attrs, asPath };
}

function compileRule(name: string, rule: BGPFilterRule): CompiledRule {
  const checks: Array<(route: FilterRoute) => boolean> = [];
  const cidr = cidrMatcher(rule);
  if (cidr !== null) checks.push(cidr);
  if (rule.source === 'RemotePeers') checks.push((r) => r.learned);
  if (rule.interface !== undefined && rule.interface !== '') {
    const match = globMatcher(rule.interface);
    checks.push((r) => r.iface !== undefined && match(r.iface));
  }
  const community = rule.communities?.values?.[0];
  if (community !== undefined) {
    const match = communityMatcher(community);
    checks.push((r) => match(r.attrs));
  }
  if (rule.asPathPrefix !== undefined && rule.asPathPrefix.length > 0) {
    const match = asPathPrefixMatcher(rule.asPathPrefix);
    checks.push((r) => match(r.attrs));
  }
  // No route here carries a kernel priority (krt_metric): a priority match holds for none.
  if (rule.priority !== undefined) checks.push(() => false);
  const operations = rule.operations ?? [];
  return {
    name,
    peerType: rule.peerType,
    action: rule.action,
    matches: (route) => checks.every((check) => check(route)),
    apply: (attrs) =>
      operations.reduce((out, op) => {
        if (op.addCommunity !== undefined) return addCommunity(out, op.addCommunity.value);
        if (op.prependASPath !== undefined) return prependAsPath(out, op.prependASPath.prefix);
        return out; // setPriority: no kernel priority here (not in effect).
      }, attrs),
  };
}

/** Names of the filters a peer lists that do not exist (the peer then gets no filter from them; status says so). */
export function missingFilters(names: readonly string[], filters: ReadonlyArray<Resource<'BGPFilter'>>): string[] {
  const known = new Set(filters.map((f) => f.metadata.name));
  return names.filter((name) => !known.has(name));
}

/**
 * The decision function for one peer and direction, or undefined when the peer's filters have no rule for
 * that direction (then nothing changes). Filters named but not present are skipped (see missingFilters).
 */
export function compilePeerFilter(
  names: readonly string[],
  filters: ReadonlyArray<Resource<'BGPFilter'>>,
  direction: Direction,
  ebgp: boolean,
): ((route: FilterRoute) => FilterDecision) | undefined {
  const byName = new Map(filters.map((f) => [f.metadata.name, f]));
  const list = direction === 'import' ? 'importV4' : 'exportV4';
  const peerType = ebgp ? 'eBGP' : 'iBGP';
  const rules = names.flatMap((name) =>
    (byName.get(name)?.spec[list] ?? [])
      .map((rule, i) => compileRule(`BGPFilter ${name} ${list}[${i}]`, rule))
      .filter((rule) => rule.peerType === undefined || rule.peerType === peerType),
  );
  if (rules.length === 0) return undefined;
  return (route) => {
    for (const rule of rules) {
      if (!rule.matches(route)) continue;
      if (rule.action === 'Reject') return { action: 'reject', rule: rule.name };
      return { action: 'accept', attrs: rule.apply(route.attrs), rule: rule.name };
    }
    return { action: 'none' };
  };
}
