// What happens to one peer's received routes when its session ends, comes back, or the peer is removed:
// a pure transition function (state, event, config) → (next, actions, reason), shaped like ./fsm.ts. The
// Speaker feeds it events and carries out the actions (Adj-RIB-In, Loc-RIB, one timer per peer); every
// rule is table-tested on fake time in test/unit/retention.test.ts.
//
//   live ──down, graceful (§4.2)──────────▶ grStale ──Established, F bit──▶ awaitingEndOfRib{stalePath}
//     ▲   ──down, Cease/De-configured──▶ lingering{deconfiguredUs} ──Established──▶ awaitingEndOfRib{linger}
//     └── End-of-RIB, timer, F bit clear, any other down: sweep or withdraw ◀──┘
//   any ──removed──▶ lingering{removed} ──End-of-RIB of the re-added peer, or timer──▶ gone
//
// Why this is hard: one timer per peer means four different things (the peer's restart time, our
// stale-path time, the linger after it de-configured us, the linger after we removed it), and a mistake
// blackholes pods during restarts: routes swept too early leave a gap, routes kept too long point at a
// node that is gone. Writing the states down makes each rule one line with its RFC 4724 section.
//
// Two make-before-break rules are tortie's own, not RFC 4724's (see the Speaker's header): a removed peer's
// routes, and an iBGP peer's that ended the session with Cease / Peer De-configured, stay (stale, still
// exported) for the linger unless another peer already offers the prefix (`handOver`) — RFC 4271 withdraws
// on every NOTIFICATION; inside the AS the next hops are the nodes that own the blocks, so they still forward.

import { CeaseSubcode, ErrorCode } from './errors.js';

/** Which of the four meanings the peer's one timer has. */
export type RetentionTimer = 'restart' | 'stalePath' | 'linger';

export type RetentionState =
  /** Routes as the session has them (none stale); no timer. */
  | { readonly name: 'live' }
  /** RFC 4724 §4.2: the session ended without a NOTIFICATION; routes stale, the peer's restart time running. */
  | { readonly name: 'grStale'; readonly restartTime: number }
  /** Back up: stale routes go at End-of-RIB, or when the timer (stale-path time, or the linger kept from
   *  before it came back after de-configuring us) fires. */
  | { readonly name: 'awaitingEndOfRib'; readonly timer: 'stalePath' | 'linger' }
  /** Routes stale until a replacement arrives, the linger ends, or (removed) the re-added peer sends End-of-RIB. */
  | { readonly name: 'lingering'; readonly reason: 'deconfiguredUs' | 'removed' }
  /** Removed and nothing of it left. */
  | { readonly name: 'gone' };

export const INITIAL_RETENTION: RetentionState = { name: 'live' };

/** How the session ended, as far as routes are concerned. */
export type DownNotification = 'none' | 'other' | 'deconfiguredUs';

export type RetentionEvent =
  /**
   * An Established session ended. `peerRestartTime`: the restart time of the peer's last graceful restart
   * capability if it covers IPv4 unicast, else null. `held`: routes in its Adj-RIB-In; `uncovered`: those
   * no other peer (nor we) offers.
   */
  | {
      readonly type: 'sessionDown';
      readonly notification: DownNotification;
      readonly peerRestartTime: number | null;
      readonly held: number;
      readonly uncovered: number;
    }
  /** A new session reached Established; `forwardingPreserved`: its OPEN has the F bit for IPv4 unicast. */
  | { readonly type: 'established'; readonly forwardingPreserved: boolean }
  /** End-of-RIB for IPv4 unicast from the peer at this address (for a removed one: the re-added peer's). */
  | { readonly type: 'endOfRib' }
  /** setPeers removed (or restarted) the peer. */
  | { readonly type: 'removed'; readonly held: number; readonly uncovered: number }
  /** The peer's one timer fired. */
  | { readonly type: 'timerFired' };

export type RetentionAction =
  | { readonly type: 'clearTimer' }
  | { readonly type: 'startTimer'; readonly timer: RetentionTimer; readonly ms: number }
  /** Mark every route in the Adj-RIB-In stale (they stay in the Loc-RIB and are still exported). */
  | { readonly type: 'markStale' }
  /** Remove the routes still stale from the Adj-RIB-In and the Loc-RIB. */
  | { readonly type: 'sweepStale' }
  /** Remove every route of the peer from the Adj-RIB-In and the Loc-RIB. */
  | { readonly type: 'withdrawAll' }
  /** Remove the routes another peer (or we) also offers: the replacement takes over now. */
  | { readonly type: 'handOver' }
  /** A removed peer's linger is over: its routes go, except those the re-added peer announced again. */
  | { readonly type: 'endLinger' };

export interface RetentionConfig {
  /** How long stale routes wait for End-of-RIB once the peer is back, ms (FRR's stalepath-time). */
  readonly stalePathMs: number;
  /** Make-before-break after a removal or a Cease / Peer De-configured, ms; 0 = withdraw at once. */
  readonly lingerMs: number;
}

export interface RetentionTransition {
  readonly next: RetentionState;
  readonly actions: readonly RetentionAction[];
  /** Why, for the log. */
  readonly reason: string;
}

const CLEAR: RetentionAction = { type: 'clearTimer' };
const LIVE: RetentionState = { name: 'live' };
const GONE: RetentionState = { name: 'gone' };

/**
 * What a NOTIFICATION means for the routes when the session ends. Any NOTIFICATION, sent or received, rules
 * out a graceful restart (RFC 4724 §4.2; tortie does not offer RFC 8538's N bit). Cease / Peer De-configured
 * received from an iBGP peer is the make-before-break case; from an eBGP peer it is not (routers send it
 * when they shut down, and their routes' next hop is the router itself).
 */
export function classifyNotification(
  n: { direction: 'sent' | 'received'; code: number; subcode: number },
  ebgp: boolean,
): DownNotification {
  return !ebgp &&
    n.direction === 'received' &&
    n.code === ErrorCode.CEASE &&
    n.subcode === CeaseSubcode.PEER_DECONFIGURED
    ? 'deconfiguredUs'
    : 'other';
}

/** RFC 4724 §4.2: routes are kept through a session's end only without a NOTIFICATION and with the peer's GR for IPv4 unicast. */
export function isGracefulDown(notification: DownNotification, peerHasIpv4Gr: boolean): boolean {
  return notification === 'none' && peerHasIpv4Gr;
}

/** Routes the peer lingers with (make-before-break): its stale copy gives way to a live path at once. */
export function lingersInPlace(state: RetentionState): boolean {
  return state.name === 'lingering' && state.reason === 'deconfiguredUs';
}

/** The one transition function. Events that mean nothing in a state return no actions. */
export function retentionTransition(
  state: RetentionState,
  event: RetentionEvent,
  config: RetentionConfig,
): RetentionTransition {
  if (state.name === 'gone') return { next: state, actions: [], reason: 'removed' };
  switch (event.type) {
    case 'sessionDown':
      return onSessionDown(state, event, config);
    case 'established':
      return onEstablished(state, event, config);
    case 'endOfRib':
      return onEndOfRib(state);
    case 'removed':
      return onRemoved(state, event, config);
    case 'timerFired':
      return onTimer(state);
  }
}

function onSessionDown(
  state: RetentionState,
  event: Extract<RetentionEvent, { type: 'sessionDown' }>,
  config: RetentionConfig,
): RetentionTransition {
  if (state.name === 'lingering' && state.reason === 'removed')
    return { next: state, actions: [], reason: 'removed: its session no longer decides' };
  // RFC 4724 §4.2: "the Receiving Speaker MUST retain the routes received from the Restarting Speaker ...
  // mark them as stale" and start the restart timer with the peer's Restart Time. A restart time of 0 is
  // kept as given: the routes go when that timer fires (at once, on the next turn of the event loop).
  if (isGracefulDown(event.notification, event.peerRestartTime !== null) && event.held > 0) {
    const restartTime = event.peerRestartTime!;
    return {
      next: { name: 'grStale', restartTime },
      actions: [{ type: 'markStale' }, CLEAR, { type: 'startTimer', timer: 'restart', ms: restartTime * 1000 }],
      reason: "graceful restart: keeping the peer's routes as stale",
    };
  }
  // tortie's make-before-break (header): an iBGP peer that de-configured us keeps what no one else offers.
  if (event.notification === 'deconfiguredUs' && config.lingerMs > 0 && event.held > 0) {
    if (event.uncovered === 0)
      return {
        next: LIVE,
        actions: [CLEAR, { type: 'handOver' }],
        reason: 'peer de-configured us: every route is offered by another peer',
      };
    return {
      next: { name: 'lingering', reason: 'deconfiguredUs' },
      actions: [
        { type: 'handOver' },
        { type: 'markStale' },
        CLEAR,
        { type: 'startTimer', timer: 'linger', ms: config.lingerMs },
      ],
      reason: 'peer de-configured us: keeping its routes (stale) until another peer offers them',
    };
  }
  // RFC 4271 §8.2.2 (and RFC 4724 §4.2 when a NOTIFICATION ended it, or the peer has no GR): withdraw.
  return { next: LIVE, actions: [CLEAR, { type: 'withdrawAll' }], reason: 'session down: routes withdrawn' };
}

function onEstablished(
  state: RetentionState,
  event: Extract<RetentionEvent, { type: 'established' }>,
  config: RetentionConfig,
): RetentionTransition {
  switch (state.name) {
    case 'live':
    case 'gone':
      return { next: state, actions: [], reason: 'established' };
    case 'lingering':
      // Back after it de-configured us (its side re-added us): no graceful-restart rule applies; the linger
      // timer keeps running and its End-of-RIB sweeps what it did not send again.
      if (state.reason === 'deconfiguredUs')
        return {
          next: { name: 'awaitingEndOfRib', timer: 'linger' },
          actions: [],
          reason: 'back after de-configuring us',
        };
      return { next: state, actions: [], reason: 'removed' };
    case 'grStale':
    case 'awaitingEndOfRib':
      // RFC 4724 §4.2: "If the Forwarding State bit is not set for an address family ... the Receiving
      // Speaker MUST immediately remove all the stale routes"; otherwise they wait for End-of-RIB (§4.2),
      // bounded by our stale-path time.
      if (!event.forwardingPreserved)
        return {
          next: LIVE,
          actions: [CLEAR, { type: 'sweepStale' }],
          reason: 'the peer came back without preserving forwarding state',
        };
      return {
        next: { name: 'awaitingEndOfRib', timer: 'stalePath' },
        actions: [CLEAR, { type: 'startTimer', timer: 'stalePath', ms: config.stalePathMs }],
        reason: 'the peer is back: stale routes wait for End-of-RIB',
      };
  }
}

function onEndOfRib(state: RetentionState): RetentionTransition {
  switch (state.name) {
    case 'live':
      return { next: state, actions: [], reason: 'End-of-RIB' };
    case 'lingering':
      // The same peer, added back, has sent everything it has: what lingers from its previous
      // configuration and was not sent again goes now, not at the end of the linger.
      if (state.reason === 'removed')
        return { next: GONE, actions: [CLEAR, { type: 'endLinger' }], reason: 'the re-added peer sent End-of-RIB' };
      return { next: LIVE, actions: [CLEAR, { type: 'sweepStale' }], reason: 'End-of-RIB received' };
    default:
      // RFC 4724 §4.2: End-of-RIB from the restarted peer removes the stale routes it did not send again.
      return { next: LIVE, actions: [CLEAR, { type: 'sweepStale' }], reason: 'End-of-RIB received' };
  }
}

function onRemoved(
  state: RetentionState,
  event: Extract<RetentionEvent, { type: 'removed' }>,
  config: RetentionConfig,
): RetentionTransition {
  if (state.name === 'lingering' && state.reason === 'removed')
    return { next: state, actions: [], reason: 'already removed' };
  // Make-before-break: where another peer already offers the prefix, hand over now; keep the rest (stale)
  // until a replacement had time to arrive.
  if (config.lingerMs > 0 && event.held > 0 && event.uncovered > 0) {
    return {
      next: { name: 'lingering', reason: 'removed' },
      actions: [
        CLEAR,
        { type: 'handOver' },
        { type: 'markStale' },
        { type: 'startTimer', timer: 'linger', ms: config.lingerMs },
      ],
      reason: 'removed: its routes linger until a replacement arrives',
    };
  }
  return { next: GONE, actions: [CLEAR, { type: 'withdrawAll' }], reason: 'removed: routes withdrawn' };
}

function onTimer(state: RetentionState): RetentionTransition {
  switch (state.name) {
    case 'live':
    case 'gone':
      return { next: state, actions: [], reason: 'no timer' };
    case 'grStale':
      // RFC 4724 §4.2: the session did not come back within the peer's Restart Time.
      return { next: LIVE, actions: [{ type: 'sweepStale' }], reason: `restart time of ${state.restartTime} s passed` };
    case 'awaitingEndOfRib':
      // RFC 4724 §4.2 leaves the wait for End-of-RIB to "a configurable timer" (our stale-path time).
      if (state.timer === 'stalePath')
        return { next: LIVE, actions: [{ type: 'sweepStale' }], reason: 'no End-of-RIB within the stale-path time' };
      return {
        next: LIVE,
        actions: [{ type: 'sweepStale' }],
        reason: 'it de-configured us and no replacement came within the linger',
      };
    case 'lingering':
      if (state.reason === 'removed')
        return { next: GONE, actions: [{ type: 'endLinger' }], reason: 'the linger of a removed peer is over' };
      return {
        next: LIVE,
        actions: [{ type: 'sweepStale' }],
        reason: 'it de-configured us and no replacement came within the linger',
      };
  }
}
