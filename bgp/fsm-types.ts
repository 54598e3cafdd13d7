// The FSM's vocabulary (./fsm.ts is the transition function): its states, the events it takes (named after
// RFC 4271 §8.1), the actions it returns for the session to carry out, its timers and the event each one's
// expiry becomes, its config, and the state it carries between events.

import type { BgpError } from './errors.js';

export const BgpState = {
  Idle: 'Idle',
  Connect: 'Connect',
  Active: 'Active',
  OpenSent: 'OpenSent',
  OpenConfirm: 'OpenConfirm',
  Established: 'Established',
} as const;
export type BgpState = (typeof BgpState)[keyof typeof BgpState];

/** Timers the FSM starts and stops. IdleHold is the reconnect backoff; Stable resets the backoff. */
export type TimerName = 'ConnectRetry' | 'Hold' | 'Keepalive' | 'IdleHold' | 'Stable';
export const TIMER_NAMES: readonly TimerName[] = ['ConnectRetry', 'Hold', 'Keepalive', 'IdleHold', 'Stable'];

/** The event a timer's expiry becomes (one table, used by the session). */
export const TIMER_EVENTS: Readonly<Record<TimerName, FsmEvent['type']>> = {
  ConnectRetry: 'ConnectRetryTimer_Expires',
  Hold: 'HoldTimer_Expires',
  Keepalive: 'KeepaliveTimer_Expires',
  IdleHold: 'AutomaticStart',
  Stable: 'StableTimer_Expires',
};

/** Events, named after RFC 4271 §8.1 where one exists. */
export type FsmEvent =
  | { readonly type: 'ManualStart' } // Event 1
  | { readonly type: 'ManualStart_with_PassiveTcpEstablishment' } // Event 4
  | { readonly type: 'ManualStop'; readonly reason?: string; readonly subcode?: number } // Event 2 (Cease subcode, default 2)
  | { readonly type: 'AutomaticStart' } // Event 3 (IdleHold expiry)
  | { readonly type: 'ConnectRetryTimer_Expires' } // Event 9
  | { readonly type: 'HoldTimer_Expires' } // Event 10
  | { readonly type: 'KeepaliveTimer_Expires' } // Event 11
  | { readonly type: 'StableTimer_Expires' } // not in the RFC: resets the backoff
  | { readonly type: 'TcpConnectionConfirmed' } // Events 16/17 (outbound acked or inbound accepted)
  | { readonly type: 'TcpConnectionFails'; readonly reason?: string } // Event 18
  /** Event 19: an OPEN that the session has already checked (§6.2); carries the peer's hold time (s). */
  | { readonly type: 'BGPOpen'; readonly peerHoldTime: number }
  | { readonly type: 'BGPHeaderErr'; readonly error: BgpError } // Event 21
  | { readonly type: 'BGPOpenMsgErr'; readonly error: BgpError } // Event 22
  | { readonly type: 'OpenCollisionDump' } // Event 23
  /** Events 24/25; `code`/`subcode` of the NOTIFICATION received (an administrative Cease is no error). */
  | { readonly type: 'NotifMsg'; readonly reason?: string; readonly code?: number; readonly subcode?: number }
  | { readonly type: 'KeepAliveMsg' } // Event 26
  | { readonly type: 'UpdateMsg' } // Event 27
  | { readonly type: 'UpdateMsgErr'; readonly error: BgpError } // Event 28
  | { readonly type: 'RouteRefreshMsg' } // RFC 2918
  | { readonly type: 'RouteRefreshMsgErr'; readonly error: BgpError } // RFC 7313 §5
  /** A resource limit was passed (RFC 4486: Cease 1 Maximum Number of Prefixes Reached, 8 Out of Resources):
   *  Cease with this subcode and data, then no reconnect (and no inbound) for at least `restartMs`. */
  | {
      readonly type: 'LimitExceeded';
      readonly subcode: number;
      readonly data: Uint8Array;
      readonly reason: string;
      readonly restartMs?: number;
    }
  /** Not in the RFC: handling an event of this session failed unexpectedly (a bug, not the peer's error).
   *  The session is reset with the NOTIFICATION in `error` (Cease unless the failure names another). */
  | { readonly type: 'InternalError'; readonly error: BgpError };

/** What the session must do, in order. */
export type FsmAction =
  | { readonly type: 'connect' }
  /** Flush what is queued (a NOTIFICATION included) and close the connection. */
  | { readonly type: 'close' }
  | { readonly type: 'sendOpen' }
  | { readonly type: 'sendKeepalive' }
  | {
      readonly type: 'sendNotification';
      readonly code: number;
      readonly subcode: number;
      readonly data: Uint8Array;
      readonly reason: string;
    }
  | { readonly type: 'startTimer'; readonly name: TimerName; readonly ms: number }
  | { readonly type: 'stopTimer'; readonly name: TimerName }
  /** The OPEN exchange fixed these (seconds; 0 = no hold timer, no keepalives). */
  | { readonly type: 'negotiated'; readonly holdTime: number; readonly keepaliveTime: number }
  | { readonly type: 'established' }
  /** The session left OpenSent/OpenConfirm/Established: release routes (Adj-RIB-In) unless graceful. */
  | { readonly type: 'down'; readonly reason: string }
  /** The UPDATE / ROUTE-REFRESH of this event is valid here: apply it. */
  | { readonly type: 'processUpdate' }
  | { readonly type: 'processRouteRefresh' };

export interface FsmConfig {
  /** Our configured hold time in seconds: 0 or ≥ 3 (RFC 4271 §4.2). */
  readonly holdTime: number;
  /** Configured keepalive interval in seconds; default hold/3 (RFC 4271 §10). Never above hold/3. */
  readonly keepaliveTime?: number;
  /** ConnectRetryTimer in ms (RFC 4271 §10 suggests 120 s; tortie's session defaults to 5 s). Caps the backoff. */
  readonly connectRetryMs: number;
  /** First backoff step in ms (default 1000). */
  readonly backoffInitialMs?: number;
  /** Jitter fraction 0..1 taken off the backoff (RFC 4271 §10 suggests 0.75..1.0 → 0.25). Default 0. */
  readonly jitter?: number;
  /** Random source 0..1 for the jitter; injected so tests are exact. Default: no jitter. */
  readonly random?: () => number;
  /** How long a session must stay Established before the backoff resets (default 30 s). */
  readonly stableMs?: number;
  /** The large hold time used while waiting for the OPEN, §8.2.2 "suggested value 4 minutes". Default 240 s. */
  readonly openHoldMs?: number;
  /** DampPeerOscillations: the first wait after a session ended in an error, ms (BIRD/Calico: 5000).
   *  Absent: errors wait only the ordinary backoff. */
  readonly errorWaitInitialMs?: number;
  /** The longest such wait, ms (BIRD/Calico: 30 000). Default: the initial wait. */
  readonly errorWaitMaxMs?: number;
  /** The smallest non-zero hold time accepted from a peer, seconds (default 3, RFC 4271 §4.2's floor). */
  readonly minHoldTime?: number;
}

export interface FsmState {
  readonly name: BgpState;
  /** ConnectRetryCounter: failures since the last stable session; drives the backoff. */
  readonly attempts: number;
  /** Started with ManualStart_with_PassiveTcpEstablishment: wait in Active, never connect. */
  readonly passive: boolean;
  /** Negotiated hold time (s) once the OPEN is received; restarts the hold timer on KEEPALIVE/UPDATE. */
  readonly holdTime: number;
  /** Negotiated keepalive interval (s); 0 when the hold time is 0. */
  readonly keepaliveTime: number;
  /** Sessions in a row that ended in an error (DampPeerOscillations); reset by a stable session. */
  readonly errors: number;
  /** Waiting in Idle after an error: the peer's own connections are refused too until the wait ends. */
  readonly holdingDown: boolean;
  /** Established for `stableMs` already: a plain TCP loss now is not an error. */
  readonly stable: boolean;
}

export interface Transition {
  readonly next: FsmState;
  readonly actions: readonly FsmAction[];
  /** Why, for logs and `state` events. */
  readonly reason: string;
}

export const INITIAL_STATE: FsmState = {
  name: 'Idle',
  attempts: 0,
  passive: false,
  holdTime: 0,
  keepaliveTime: 0,
  errors: 0,
  holdingDown: false,
  stable: false,
};

export const DEFAULT_OPEN_HOLD_MS = 240_000;
export const DEFAULT_BACKOFF_INITIAL_MS = 1_000;
export const DEFAULT_STABLE_MS = 30_000;
