// One configured peer as the Speaker (./speaker.ts) holds it: its spec, its current session (and a collision
// challenger), its export group, its Adj-RIB-In and what happens to those routes (./retention.ts). A record
// the Speaker's parts share; the behaviour lives in the speaker and the modules it names.

import type { TimerHandle } from './clock.js';
import type { RefusedMap } from './import-judge.js';
import type { AdjRibIn, LocalSpeaker, PeerPolicy, Route, UpdateGroup } from './rib/index.js';
import type { DownNotification, RetentionState } from './retention.js';
import type { Session } from './session.js';
import type { NormalSpec } from './speaker-config.js';
import { Afi, Safi } from './types.js';

export interface PeerEntry {
  spec: NormalSpec;
  session: Session;
  /** A second session on an inbound connection that collided with the current one, until §6.8 decides. */
  challenger: Session | null;
  /** The session came from a collision and is passive: replace it with a normal one when it goes down. */
  promoted: boolean;
  policy: PeerPolicy;
  /** Our side as this peer's export sees it (next hop self is `local.address`). */
  local: LocalSpeaker;
  ribIn: AdjRibIn;
  /** The update group this peer is a member of: peers with identical export share one Adj-RIB-Out. */
  group: UpdateGroup<PeerEntry>;
  /** What happens to its routes when the session ends, comes back, or the peer is removed (./retention.ts). */
  retention: RetentionState;
  /** The retention timer (restart, stale-path or linger time: `retention` says which). */
  retentionTimer: TimerHandle | null;
  /** The NOTIFICATION that ends the current session, if one was sent or received (RFC 4724 §4.2). */
  notification: DownNotification;
  /** The peer sent End-of-RIB on the current session. */
  endOfRib: boolean;
  /** Sessions established so far (the R bit goes only on the first when restarting). */
  sessions: number;
  /** Being removed by setPeers: its routes are removePeer's business (linger), not the session's 'down'. */
  removing: boolean;
  /** The current session reached Established and has not gone down since. */
  up: boolean;
  /** Adj-RIB-In routes the import judge refused (prefix key → the route and the reason); never in the Loc-RIB. */
  refused: RefusedMap;
  /** Emits 'refused' for this peer: made once per peer, not once per judged route. */
  reportRefused: (route: Route, reason: string) => void;
  /** clock.now() when a ROUTE-REFRESH was last answered; the answer scheduled for the end of the interval. */
  refreshAnsweredAt: number | null;
  refreshTimer: TimerHandle | null;
  /** Why the listener could not take this peer's TCP-MD5 key or GTSM: its inbound connections are refused. */
  securityRefusal: string | null;
}

/** The peer's GR capability covers IPv4 unicast (and, with `forwarding`, says forwarding was preserved). */
export function hasIpv4Gr(
  gr: { families: ReadonlyArray<{ afi: number; safi: number; forwardingState: boolean }> } | undefined,
  forwarding = false,
): boolean {
  return (
    gr?.families.some((f) => f.afi === Afi.IPV4 && f.safi === Safi.UNICAST && (!forwarding || f.forwardingState)) ??
    false
  );
}
