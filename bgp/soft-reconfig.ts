// Soft reconfiguration: a peer's import or export policy changes on a live session, without a reset.
//
// BIRD reloads a protocol's filters in place (`configure` keeps the session when only filters changed:
// it re-runs import over the routes it kept as received, and re-evaluates export); tortie does the same.
// When the only fields of a PeerSpec that changed are its policy hooks (`importFilter`, `exportFilter`):
// - import: the peer's Adj-RIB-In holds its routes as received (before policy), so every route is run
//   through the import rules and the new filter again (then the import judge), and the Loc-RIB changes that
//   follow go to every peer as any best-route change does (RFC 4271 §9.1: the Decision Process runs on
//   the routes held; no ROUTE-REFRESH is needed, as in RFC 2918's "soft reconfiguration inbound");
// - export: the peer leaves its update group for the group of its new export, taking with it what it was
//   sent (`UpdateGroup.viewOf`); the new group sends it only the difference (`UpdateGroup.adopt`) —
//   withdrawals for what the new policy no longer exports, announcements for what it now does.
// Any other change (AS, address, timers, password, next-hop mode...) still restarts the session (the
// Speaker's setPeers): BGP has no way to change those on an established session.
//
// Why this is hard: the peer's exceptions ("never back to the sender", its `own` prefixes) must move with it
// into the new group, and what it has must be known exactly — a prefix it lacks because it was its own must
// not be withdrawn from it, and one it has must not be announced again unchanged.

import type { PeerEntry } from './peer-entry.js';
import type { AttrTable, BestChange, LocRib, LocalSpeaker, PeerPolicy, Route, UpdateGroup } from './rib/index.js';
import { sourceId } from './rib/index.js';
import type { RibKey } from './rib/prefix6.js';
import { policyOf, SPEC_FIELDS, type NormalSpec } from './speaker-config.js';

/** The spec fields a live session can take without a reset (see the header). */
const POLICY_FIELDS = ['importFilter', 'exportFilter'] as const;

/** What the Speaker lends soft reconfiguration (its private parts, as ./collision.ts gets them). */
export interface SoftReconfigHost {
  readonly localAs: number;
  readonly table: AttrTable;
  readonly locRib: LocRib;
  /** The RFC import rules, the peer's import filter, then the import judge; null = not in the Loc-RIB. */
  judge(entry: PeerEntry, received: Route): Route | null;
  /** Best-route changes to every update group (and the 'bestChanged' event). */
  propagate(changes: readonly BestChange[]): void;
  /** The update group for an export policy (made when new). */
  groupFor(policy: PeerPolicy, local: LocalSpeaker): UpdateGroup<PeerEntry>;
  leaveGroup(entry: PeerEntry): void;
  markDirty(group: UpdateGroup<PeerEntry>): void;
}

/** Which policy hooks differ between `a` and `b`, or null when anything else differs too (a reset is needed). */
export function policyOnlyChange(
  a: NormalSpec,
  b: NormalSpec,
): { importChanged: boolean; exportChanged: boolean } | null {
  for (const key of SPEC_FIELDS) {
    if ((POLICY_FIELDS as readonly string[]).includes(key)) continue;
    if (a[key] !== b[key]) return null;
  }
  return { importChanged: a.importFilter !== b.importFilter, exportChanged: a.exportFilter !== b.exportFilter };
}

/**
 * Applies `want` to a live peer whose spec differs from it only in policy hooks; false (nothing done) when
 * something else differs too.
 */
export function softReconfigure(host: SoftReconfigHost, entry: PeerEntry, want: NormalSpec): boolean {
  const change = policyOnlyChange(entry.spec, want);
  if (change === null) return false;
  entry.spec = want;
  entry.policy = policyOf(want, host.localAs);
  if (change.importChanged) reimport(host, entry);
  if (change.exportChanged) reexport(host, entry);
  return true;
}

/** Every route the peer sent, through import again (RFC 2918 §1: "soft reconfiguration inbound"). */
function reimport(host: SoftReconfigHost, entry: PeerEntry): void {
  const changes: BestChange[] = [];
  for (const received of [...entry.ribIn.routes()]) {
    const route = host.judge(entry, received);
    const change = host.locRib.set(entry.ribIn.source, received.key, route);
    if (change) changes.push(change);
  }
  host.propagate(changes);
}

/** The peer into the update group of its new export, sent only what changed for it. */
function reexport(host: SoftReconfigHost, entry: PeerEntry): void {
  const view = entry.group.viewOf(entry);
  const id = sourceId(entry.policy);
  // Its own prefixes (best from it) stay exceptions: never sent back to it.
  const own: RibKey[] = [];
  for (const route of entry.ribIn.routes()) {
    const best = host.locRib.best(route.key);
    if (best !== undefined && sourceId(best.source) === id) own.push(route.key);
  }
  host.leaveGroup(entry);
  entry.group = host.groupFor(entry.policy, entry.local);
  if (view === null) entry.group.add(entry, id, own);
  else entry.group.adopt(entry, id, own, view);
  host.markDirty(entry.group);
}
