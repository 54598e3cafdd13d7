// An Adj-RIB-In (bgp/rib/adj-rib-in.ts) kept for one Session, as an owner keeps it: each 'update' event's
// message applied, End-of-RIB sweeps stale routes, 'down' marks every route stale (graceful) or clears
// them. The Session holds no routes itself; tests that look at what a peer announced use this.
import { AdjRibIn, AttrTable, type RouteSource } from '../../../bgp/rib/index.js';
import type { Session } from '../../../bgp/session.js';

export interface SessionRibHooks {
  /** Asked when the session goes down: keep the routes as stale (RFC 4724 §4.2)? Default: no. */
  graceful?: () => boolean;
  /** After each UPDATE that changed the RIB: how many prefixes it now has from it, how many went. */
  onChange?: (change: { announced: number; withdrawn: number }) => void;
  /** After 'down': whether the routes were kept and how many were withdrawn. */
  onDown?: (down: { graceful: boolean; withdrawn: number }) => void;
}

export function sessionRib(session: Session, source: RouteSource, hooks: SessionRibHooks = {}): AdjRibIn {
  const rib = new AdjRibIn(source, new AttrTable());
  session.on('update', (e) => {
    const changed = rib.apply(e.message);
    const withdrawn = changed.filter((key) => rib.get(key) === undefined).length;
    if (changed.length > 0) hooks.onChange?.({ announced: changed.length - withdrawn, withdrawn });
  });
  session.on('endOfRib', () => rib.sweepStale());
  session.on('down', () => {
    const graceful = hooks.graceful?.() ?? false;
    if (graceful) rib.markStale();
    const withdrawn = graceful ? 0 : rib.clear().length;
    hooks.onDown?.({ graceful, withdrawn });
  });
  return rib;
}
