// Best path: the BGP decision process, RFC 4271 §9.1.2.2 with RFC 4456 §9.
//
// Owns: the ordered table of tie-breaking steps (one pairwise comparator walks it, one commented entry per
// step, each citing its rule) and `selectBest`, which picks one route out of a prefix's candidates.
//
// Why this is hard: MED is only compared between routes from the same neighbour AS (RFC 4271 §9.1.2.2 (c)),
// so "a beats b" is not transitive: with A(AS1, MED 10), B(AS2), C(AS1, MED 5) a plain pairwise reduce can
// pick a different winner depending on arrival order. RFC 4271 §9.1.2.2 (c) describes elimination instead:
// among routes from one neighbour AS, drop those whose MED is not the lowest, then compare the rest without
// MED. `selectBest` does exactly that: it takes the best route of each neighbour-AS group with the full
// comparator (inside a group every step is a plain ordering, so the result is the group's unique best),
// then compares the group winners, between which MED never applies (so again a plain ordering). The result
// does not depend on the order candidates arrived in; the tests check every permutation.
//
// Decisions recorded here:
// - Locally originated routes win before any BGP step. BIRD (what Calico ships) compares protocol
//   preference (static/kernel over BGP) before `bgp_rte_better`; FRR puts "locally originated" after
//   LOCAL_PREF. A node's own IPAM block must never be displaced by a learned route, so tortie follows BIRD.
// - Stale routes (graceful restart) are not demoted: RFC 4724 §4.2 keeps them and uses them as before
//   until they are refreshed or swept; only long-lived GR (RFC 9494) demotes stale routes. A fresh route
//   from the same peer simply replaces the stale one (same candidate slot).
// - LOCAL_PREF absent counts as 100. The import step removes LOCAL_PREF received from eBGP peers (RFC 7606
//   §7.5), so eBGP-learned routes get the default unless an import filter sets one.
// - IGP cost to the next hop (RFC 4271 §9.1.2.2 (e)) is skipped: there is no IGP, all next hops are equal.

import { AsPathSegmentType, Origin } from '../types.js';
import type { AsPathSegment } from '../types.js';
import type { Route } from './route.js';

export const DEFAULT_LOCAL_PREF = 100;

/** The neighbour AS of a route whose path is empty or starts with an AS_SET: the local AS (RFC 4271 §9.1.2.2). */
export const LOCAL_NEIGHBOUR_AS = -1;

/**
 * AS_PATH length for the decision: an AS_SEQUENCE counts its ASes, an AS_SET counts 1 (RFC 4271 §9.1.2.2
 * (a)), confederation segments count 0 (RFC 5065 §5.3).
 */
export function asPathLength(segments: readonly AsPathSegment[] | undefined): number {
  if (segments === undefined) return 0;
  let length = 0;
  for (const segment of segments) {
    if (segment.type === AsPathSegmentType.AS_SEQUENCE) length += segment.asns.length;
    else if (segment.type === AsPathSegmentType.AS_SET) length += 1;
  }
  return length;
}

/**
 * The AS the route entered our AS from (RFC 4271 §9.1.2.2 (c)): the first AS of the path, skipping
 * confederation segments (RFC 5065 §5.3); the local AS (`LOCAL_NEIGHBOUR_AS`) when the path is empty or
 * starts with an AS_SET.
 */
export function neighbourAs(route: Route): number {
  const segments = route.attrs.asPath;
  if (segments === undefined) return LOCAL_NEIGHBOUR_AS;
  for (const segment of segments) {
    if (segment.type === AsPathSegmentType.AS_CONFED_SEQUENCE || segment.type === AsPathSegmentType.AS_CONFED_SET)
      continue;
    if (segment.type === AsPathSegmentType.AS_SEQUENCE && segment.asns.length > 0) return segment.asns[0] as number;
    return LOCAL_NEIGHBOUR_AS;
  }
  return LOCAL_NEIGHBOUR_AS;
}

/** One tie-breaking step: negative when `a` is better, positive when `b` is, 0 when this step cannot tell. */
export interface DecisionStep {
  readonly name: string;
  readonly rule: string;
  readonly compare: (a: Route, b: Route) => number;
}

function preferTrue(a: boolean, b: boolean): number {
  return a === b ? 0 : a ? -1 : 1;
}

/** The decision process, in order. The first step that tells the routes apart decides. */
export const DECISION_STEPS: readonly DecisionStep[] = [
  // Locally originated over learned. Not an RFC step: BIRD decides it by protocol preference before any
  // BGP rule (see the header). Own IPAM blocks always win.
  {
    name: 'local',
    rule: 'local preference over BGP (BIRD protocol preference)',
    compare: (a, b) => preferTrue(a.source.local === true, b.source.local === true),
  },
  // RFC 4271 §9.1.1 / §9.1.2.1: degree of preference is LOCAL_PREF; higher wins. Absent → 100.
  {
    name: 'local-pref',
    rule: 'RFC 4271 §9.1.2.1',
    compare: (a, b) => (b.attrs.localPref ?? DEFAULT_LOCAL_PREF) - (a.attrs.localPref ?? DEFAULT_LOCAL_PREF),
  },
  // RFC 4271 §9.1.2.2 (a): shortest AS_PATH; an AS_SET counts 1.
  {
    name: 'as-path',
    rule: 'RFC 4271 §9.1.2.2 (a)',
    compare: (a, b) => asPathLength(a.attrs.asPath) - asPathLength(b.attrs.asPath),
  },
  // RFC 4271 §9.1.2.2 (b): lowest ORIGIN (IGP < EGP < INCOMPLETE). Absent is treated as INCOMPLETE.
  {
    name: 'origin',
    rule: 'RFC 4271 §9.1.2.2 (b)',
    compare: (a, b) => (a.attrs.origin ?? Origin.INCOMPLETE) - (b.attrs.origin ?? Origin.INCOMPLETE),
  },
  // RFC 4271 §9.1.2.2 (c): lowest MED, only between routes from the same neighbour AS; a missing MED is 0.
  {
    name: 'med',
    rule: 'RFC 4271 §9.1.2.2 (c)',
    compare: (a, b) => (neighbourAs(a) === neighbourAs(b) ? (a.attrs.med ?? 0) - (b.attrs.med ?? 0) : 0),
  },
  // RFC 4271 §9.1.2.2 (d): routes learned over eBGP over routes learned over iBGP.
  {
    name: 'ebgp',
    rule: 'RFC 4271 §9.1.2.2 (d)',
    compare: (a, b) => preferTrue(a.source.ebgp, b.source.ebgp),
  },
  // RFC 4271 §9.1.2.2 (e), IGP cost to the NEXT_HOP: skipped, there is no IGP (see the header).
  // RFC 4271 §9.1.2.2 (f) with RFC 4456 §9: lowest BGP identifier, the ORIGINATOR_ID when present.
  {
    name: 'router-id',
    rule: 'RFC 4271 §9.1.2.2 (f), RFC 4456 §9',
    compare: (a, b) => (a.attrs.originatorId ?? a.source.routerId) - (b.attrs.originatorId ?? b.source.routerId),
  },
  // RFC 4456 §9: shortest CLUSTER_LIST (a route reflected fewer times).
  {
    name: 'cluster-list',
    rule: 'RFC 4456 §9',
    compare: (a, b) => (a.attrs.clusterList?.length ?? 0) - (b.attrs.clusterList?.length ?? 0),
  },
  // RFC 4271 §9.1.2.2 (g): lowest peer address.
  {
    name: 'peer-address',
    rule: 'RFC 4271 §9.1.2.2 (g)',
    compare: (a, b) => a.source.address - b.source.address,
  },
];

/** The pairwise comparator: negative when `a` is preferred, positive when `b` is, 0 when equal. */
export function compareRoutes(a: Route, b: Route): number {
  for (const step of DECISION_STEPS) {
    const order = step.compare(a, b);
    if (order !== 0) return order;
  }
  return 0;
}

/** The name of the step that decides between `a` and `b` (for `tortie node routes` and for tests). */
export function decidingStep(a: Route, b: Route): string | null {
  for (const step of DECISION_STEPS) {
    if (step.compare(a, b) !== 0) return step.name;
  }
  return null;
}

/**
 * The best of a prefix's candidates, independent of their order (see the header): the best of each
 * neighbour-AS group by the full comparator, then the best of the group winners.
 */
export function selectBest(candidates: readonly Route[]): Route | undefined {
  const first = candidates[0];
  if (candidates.length <= 1 || first === undefined) return first;
  const firstAs = neighbourAs(first);
  let oneGroup = true;
  for (let i = 1; i < candidates.length && oneGroup; i++) oneGroup = neighbourAs(candidates[i] as Route) === firstAs;
  if (oneGroup) return reduceBest(candidates);
  const winners = new Map<number, Route>();
  for (const route of candidates) {
    const group = neighbourAs(route);
    const winner = winners.get(group);
    if (winner === undefined || compareRoutes(route, winner) < 0) winners.set(group, route);
  }
  return reduceBest([...winners.values()]);
}

function reduceBest(routes: readonly Route[]): Route | undefined {
  let best: Route | undefined;
  for (const route of routes) if (best === undefined || compareRoutes(route, best) < 0) best = route;
  return best;
}
