// What a Session (./session.ts) tells its owner: the typed events (`SessionEvents`), the counters and last
// reason (`SessionStats`), and the shapes they carry. Types only; ./session.ts re-exports them.

import type { BgpState } from './fsm.js';
import type { GracefulRestartCapability } from './negotiation.js';
import type { SessionDownReason } from './down-reason.js';
import type { OpenMessage, PathAttributes, Prefix, UpdateMessage } from './types.js';

/** One announced route as the UPDATE carried it (IPv4 unicast; MP_REACH NLRI with MP_REACH's next hop). */
export interface ReceivedRoute {
  readonly prefix: Prefix;
  readonly attrs: PathAttributes;
}

export interface SessionStats {
  messagesIn: number;
  messagesOut: number;
  updatesIn: number;
  updatesOut: number;
  notificationsIn: number;
  notificationsOut: number;
  /** How many times the session reached Established. */
  establishedCount: number;
  /** clock.now() when the session last reached Established; undefined when not Established. */
  establishedSince?: number;
  /** clock.now() of the last state change (the SINCE column of a status table). */
  stateSince: number;
  /** Why the session last failed, as a value (a NOTIFICATION, a transport error, ...). */
  lastReason?: SessionDownReason;
  /** The same for people: "connect to 127.0.0.2:179: Connection refused (ECONNREFUSED)", a NOTIFICATION, ... */
  lastError?: string;
}

export type SessionState = BgpState;

export interface StateChange {
  readonly from: BgpState;
  readonly to: BgpState;
  readonly reason: string;
}

export interface NotificationEvent {
  readonly direction: 'sent' | 'received';
  readonly code: number;
  readonly subcode: number;
  readonly data: Uint8Array;
  readonly reason: string;
}

export interface SessionEvents {
  state: [StateChange];
  /** An acceptable OPEN arrived (the session is in OpenConfirm): time for collision detection (§6.8). */
  open: [{ bgpId: number; open: OpenMessage }];
  /** An UPDATE with IPv4 unicast routes: all it announces and withdraws (the owner's Adj-RIB-In decides what changed). */
  update: [{ announced: ReceivedRoute[]; withdrawn: Prefix[]; message: UpdateMessage }];
  endOfRib: [{ afi: number; safi: number }];
  /** The session left OpenSent/OpenConfirm/Established, with the peer's graceful restart capability from its last OPEN. */
  down: [{ reason: string; peerGracefulRestart?: GracefulRestartCapability }];
  notification: [NotificationEvent];
  routeRefresh: [{ afi: number; safi: number; subtype: number }];
}
