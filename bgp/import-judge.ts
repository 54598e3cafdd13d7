// The import judge's plumbing: after the RFC import rules (./rib/policy.ts), a caller-supplied function may
// refuse a received route with a reason code. A refused route stays in its peer's Adj-RIB-In, recorded
// with its reason, and never enters the Loc-RIB; `routesWithin` finds what to ask again about when what the
// judge depends on changed (the Speaker's `rejudge`).

import { prefixContains, prefixKey } from './ip.js';
import type { RibKey } from './ip6.js';
import {
  importVerdict,
  Route,
  type AdjRibIn,
  type AttrTable,
  type LocalSpeaker,
  type PeerPolicy,
} from './rib/index.js';
import type { PathAttributes, Prefix } from './types.js';

/**
 * Says why a received route must not enter the Loc-RIB — a short reason code (a value the caller defines and
 * formats, not prose) — or null to accept it. Runs after the RFC import rules on the imported route (its
 * `source.address` is the peer's). Must be a pure function of the route and of what the caller last told
 * `rejudge()` about: the speaker asks again only then.
 */
export type ImportJudge = (route: Route) => string | null;

/** A route the import judge refused, still held in its peer's Adj-RIB-In. */
export interface RefusedRoute {
  prefix: Prefix;
  attrs: PathAttributes;
  from: string;
  reason: string;
  stale: boolean;
}

/** Adj-RIB-In routes the import judge refused (prefix key → the route and the reason). */
export type RefusedMap = Map<RibKey, { route: Route; reason: string }>;

/** What one peer's import needs. */
export interface ImportingPeer {
  readonly policy: PeerPolicy;
  readonly local: LocalSpeaker;
  readonly refused: RefusedMap;
}

/**
 * What the Loc-RIB gets from `peer` for a received route: the RFC import rules, then the judge. A refusal
 * is recorded on the peer, and `onRefused` called once per route and reason; null = not used.
 */
export function judgeImport(
  peer: ImportingPeer,
  received: Route,
  table: AttrTable,
  judge: ImportJudge | undefined,
  onRefused: (route: Route, reason: string) => void,
): Route | null {
  const verdict = importVerdict(received, peer.policy, peer.local, table);
  const route = verdict instanceof Route ? verdict : null;
  // The peer's own filter refused it, or else the judge (import protection) may.
  const reason =
    verdict !== null && !(verdict instanceof Route)
      ? verdict.refused
      : route === null || judge === undefined
        ? null
        : judge(route);
  if (reason === null) {
    if (peer.refused.size > 0) peer.refused.delete(received.key); // no Map hash per route when nothing is refused
    return route;
  }
  const held = peer.refused.get(received.key);
  if (held?.route !== received || held.reason !== reason) {
    peer.refused.set(received.key, { route: received, reason });
    onRefused(received, reason);
  }
  return null;
}

/** Prefixes longer than this are looked up one by one inside a `rejudge` prefix (at most 2^(n+1) − 1 keys). */
const REJUDGE_ENUMERATE_BITS = 10;

/**
 * The routes of `ribIn` inside `within` (equal or more specific), or all of them. A short prefix (a /26
 * block: 127 possible keys) is looked up key by key, so a change to one block costs the same whatever the
 * size of the table; a wide one (a pool) scans the table once.
 */
export function* routesWithin(ribIn: AdjRibIn, within: readonly Prefix[] | undefined): Generator<Route> {
  if (within === undefined) {
    yield* [...ribIn.routes()];
    return;
  }
  const narrow = within.filter((p) => 32 - p.len <= REJUDGE_ENUMERATE_BITS);
  const wide = within.filter((p) => 32 - p.len > REJUDGE_ENUMERATE_BITS);
  const seen = new Set<number>();
  for (const outer of narrow) {
    for (let len = outer.len; len <= 32; len++) {
      const step = 2 ** (32 - len);
      for (let addr = outer.addr; addr < outer.addr + 2 ** (32 - outer.len); addr += step) {
        const key = prefixKey({ addr, len });
        const route = ribIn.get(key);
        if (route !== undefined && !seen.has(key)) {
          seen.add(key);
          yield route;
        }
      }
    }
  }
  if (wide.length === 0) return;
  for (const route of [...ribIn.routes()]) {
    if (typeof route.key === 'string' || seen.has(route.key)) continue; // IPv6: not an IPv4 `within`
    const { addr, len } = route.prefix;
    if (wide.some((outer) => len >= outer.len && prefixContains(outer, addr))) yield route;
  }
}
