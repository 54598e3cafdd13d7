// The BGP finite state machine of RFC 4271 §8 as one pure function: (state, event, config) → (next,
// actions, reason). No timers, sockets or clocks here: actions are data the session carries out, so every
// decision is table-tested in test/unit/fsm.test.ts. Its vocabulary (states, events, actions, timers,
// config) is ./fsm-types.ts, re-exported here.
//
// Why this is hard: the RFC's FSM is written per state as "on event N do a, b, c", with many events that
// "cannot happen" in a given state but must still be handled (a stale timer, a message a broken peer
// sends too early). Each state below is one function with its events listed explicitly and a single
// `otherwise` branch for the rest, so nothing falls through silently.
//
// Deliberate simplifications (documented so nobody hunts for them):
// - No DelayOpen, no collision tracking inside one session: connection collision (§6.8) is resolved by
//   the speaker, which owns both connections and calls OpenCollisionDump.
// - DampPeerOscillations (§8.1.1), as BIRD's `error wait time` (Calico: 5,30): a session that ends in an
//   error — a NOTIFICATION sent or received (not a deliberate Cease received: administrative shutdown or
//   reset, de-configured, configuration change, collision), or a TCP loss before it was Established for
//   `stableMs` — waits `errorWaitInitialMs` · 2^(errors so far), at most `errorWaitMaxMs`, before
//   reconnecting; after a NOTIFICATION it also refuses the peer's own connections meanwhile
//   (`holdingDown`; the session checks it). A plain TCP loss still lets the peer reconnect to us at once
//   (a restarting graceful-restart peer must be able to come back within its restart time). The count
//   resets once a session stays up for `stableMs`. A resource limit (RFC 4486 Cease: too many prefixes,
//   send queue full) is such an error, with its own restart delay (`LimitExceeded.restartMs`) on top.
// - Hold time (§4.2, §6.2 "MAY reject"): a peer's hold time below `minHoldTime` (default 3 s) is refused,
//   and 0 (no keepalives at all) only accepted when our own configured hold time is 0.
// - Where RFC 4271 goes to Active to wait for the ConnectRetryTimer after a failure, we go to Idle and
//   start the IdleHold timer with a bounded exponential backoff (1 s, 2 s, 4 s, … ≤ ConnectRetry) whose
//   expiry is AutomaticStart (§8.1.3 Event 3; the IdleHoldTimer idea of §8.1.1, simplified). The attempt
//   counter (ConnectRetryCounter) resets once a session has stayed Established for `stableMs`.
// - A passive session (ManualStart_with_PassiveTcpEstablishment, §8.1.2 Event 4) waits in Active and
//   never connects; it starts no ConnectRetryTimer.

import type { BgpError } from './errors.js';
import {
  DEFAULT_BACKOFF_INITIAL_MS,
  DEFAULT_OPEN_HOLD_MS,
  DEFAULT_STABLE_MS,
  TIMER_NAMES,
  type BgpState,
  type FsmAction,
  type FsmConfig,
  type FsmEvent,
  type FsmState,
  type Transition,
} from './fsm-types.js';
import { CeaseSubcode, ErrorCode, fitNotificationData, FsmSubcode, OpenSubcode } from './errors.js';

export {
  BgpState,
  DEFAULT_BACKOFF_INITIAL_MS,
  DEFAULT_OPEN_HOLD_MS,
  DEFAULT_STABLE_MS,
  INITIAL_STATE,
  TIMER_EVENTS,
  TIMER_NAMES,
  type FsmAction,
  type FsmConfig,
  type FsmEvent,
  type FsmState,
  type TimerName,
  type Transition,
} from './fsm-types.js';

/** RFC 4271 §4.2: the hold time is 0 or at least 3 seconds. */
export function isAcceptableHoldTime(seconds: number): boolean {
  return Number.isInteger(seconds) && seconds >= 0 && seconds <= 65535 && (seconds === 0 || seconds >= 3);
}

/** RFC 4271 §4.2: the smaller of ours and theirs; keepalive = hold/3 unless configured lower (§10). */
export function negotiateHoldTime(
  ours: number,
  theirs: number,
  keepaliveTime?: number,
): { holdTime: number; keepaliveTime: number } {
  const holdTime = Math.min(ours, theirs);
  if (holdTime === 0) return { holdTime: 0, keepaliveTime: 0 };
  const third = Math.max(1, Math.floor(holdTime / 3));
  const keepalive = keepaliveTime !== undefined && keepaliveTime > 0 ? Math.min(keepaliveTime, third) : third;
  return { holdTime, keepaliveTime: keepalive };
}

/** Bounded exponential backoff: initial · 2^attempts, capped at ConnectRetry, minus up to `jitter` of it. */
export function backoffMs(attempts: number, config: FsmConfig): number {
  const initial = config.backoffInitialMs ?? DEFAULT_BACKOFF_INITIAL_MS;
  const cap = Math.max(initial, config.connectRetryMs);
  const base = Math.min(cap, initial * 2 ** Math.min(attempts, 30));
  const jitter = config.jitter ?? 0;
  const r = config.random ? config.random() : 0;
  return Math.max(1, Math.round(base * (1 - jitter * r)));
}

/** DampPeerOscillations: initial · 2^errors, capped; 0 when not configured. No jitter: the point is to be slow. */
export function errorWaitMs(errors: number, config: FsmConfig): number {
  const initial = config.errorWaitInitialMs;
  if (initial === undefined || initial <= 0) return 0;
  const cap = Math.max(initial, config.errorWaitMaxMs ?? initial);
  return Math.min(cap, initial * 2 ** Math.min(errors, 30));
}

/** RFC 4271 §4.2 and §6.2 ("MAY reject"): the peer's hold time, or why it is refused. */
export function refuseHoldTime(peerHoldTime: number, config: FsmConfig): string | undefined {
  if (!isAcceptableHoldTime(peerHoldTime)) return `peer hold time ${peerHoldTime} s is not acceptable (0 or 3..65535)`;
  if (peerHoldTime === 0) {
    return config.holdTime === 0
      ? undefined
      : `peer hold time 0 (no keepalives, a dead peer is never noticed) refused: ours is ${config.holdTime} s; set our hold time to 0 to allow it`;
  }
  const min = config.minHoldTime ?? 3;
  return peerHoldTime < min ? `peer hold time ${peerHoldTime} s is below the minimum accepted, ${min} s` : undefined;
}

// ---- building blocks shared by the states ------------------------------------------------------------

const stopAll: readonly FsmAction[] = TIMER_NAMES.map((name) => ({ type: 'stopTimer', name }) as const);

/** Every NOTIFICATION the FSM sends is built here; its data is cut to what fits 4096 bytes (RFC 4271 §4.1). */
function notification(code: number, subcode: number, reason: string, data: Uint8Array = new Uint8Array(0)): FsmAction {
  return { type: 'sendNotification', code, subcode, data: fitNotificationData(data), reason };
}

function fromError(error: BgpError): FsmAction {
  return notification(error.code, error.subcode, error.detail, error.data);
}

/**
 * Drop the connection and everything with it, then wait for the backoff (AutomaticStart). A session that
 * ends in an error (a NOTIFICATION either way, `error`) waits at least the error wait, holding down.
 */
function dropAndRetry(
  state: FsmState,
  config: FsmConfig,
  reason: string,
  before: readonly FsmAction[] = [],
  hadSession = true,
  options: { error?: 'notification' | 'unstable'; minWaitMs?: number } = {},
): Transition {
  const notified = options.error === 'notification' || before.some((a) => a.type === 'sendNotification');
  const error = notified || options.error === 'unstable';
  const damp = error ? errorWaitMs(state.errors, config) : 0;
  const ms = Math.max(backoffMs(state.attempts, config), damp, options.minWaitMs ?? 0);
  const holdingDown = (notified && damp > 0) || (options.minWaitMs ?? 0) > 0;
  return {
    next: {
      ...state,
      name: 'Idle',
      attempts: state.attempts + 1,
      holdTime: 0,
      keepaliveTime: 0,
      errors: error ? state.errors + 1 : state.errors,
      holdingDown,
      stable: false,
    },
    actions: [
      ...before,
      ...stopAll,
      { type: 'close' },
      ...(hadSession ? [{ type: 'down', reason } as const] : []),
      { type: 'startTimer', name: 'IdleHold', ms },
    ],
    reason,
  };
}

/** Drop the connection and stay in Idle without a restart (ManualStop, collision dump). */
function dropAndStay(
  state: FsmState,
  reason: string,
  before: readonly FsmAction[],
  hadSession: boolean,
  resetAttempts: boolean,
): Transition {
  return {
    next: {
      ...state,
      name: 'Idle',
      attempts: resetAttempts ? 0 : state.attempts + 1,
      holdTime: 0,
      keepaliveTime: 0,
      holdingDown: false,
      stable: false,
    },
    actions: [...before, ...stopAll, { type: 'close' }, ...(hadSession ? [{ type: 'down', reason } as const] : [])],
    reason,
  };
}

function stay(state: FsmState, reason: string, actions: readonly FsmAction[] = []): Transition {
  return { next: state, actions, reason };
}

/**
 * A NOTIFICATION received that ends the session on purpose, not because something went wrong (RFC 4486:
 * Administrative Shutdown / Reset, Peer De-configured, Other Configuration Change, Connection Collision
 * Resolution): a peer restarting or reconfigured is not oscillating, so no error wait.
 */
const DELIBERATE_CEASES: ReadonlySet<number> = new Set([
  CeaseSubcode.ADMINISTRATIVE_SHUTDOWN,
  CeaseSubcode.PEER_DECONFIGURED,
  CeaseSubcode.ADMINISTRATIVE_RESET,
  CeaseSubcode.OTHER_CONFIGURATION_CHANGE,
  CeaseSubcode.CONNECTION_COLLISION_RESOLUTION,
]);

function notificationReceived(
  state: FsmState,
  event: Extract<FsmEvent, { type: 'NotifMsg' }>,
  config: FsmConfig,
): Transition {
  const deliberate =
    event.code === ErrorCode.CEASE && event.subcode !== undefined && DELIBERATE_CEASES.has(event.subcode);
  // A deliberate Cease is no error even on a young session: reconfiguration (Cease 6/6 from a peer whose
  // settings changed) must be followed by a quick reconnect, not a 5 s wait.
  return dropAndRetry(
    state,
    config,
    event.reason ?? 'NOTIFICATION received',
    [],
    true,
    deliberate ? {} : { error: 'notification' },
  );
}

/** RFC 4486: a resource limit passed — Cease with its subcode and data, then at least `restartMs` down. */
function limitExceeded(
  state: FsmState,
  event: Extract<FsmEvent, { type: 'LimitExceeded' }>,
  config: FsmConfig,
): Transition {
  return dropAndRetry(
    state,
    config,
    event.reason,
    [notification(ErrorCode.CEASE, event.subcode, event.reason, event.data)],
    true,
    {
      error: 'notification',
      ...(event.restartMs !== undefined ? { minWaitMs: event.restartMs } : {}),
    },
  );
}

/** RFC 6608: the FSM Error subcode names the state the unexpected message arrived in. */
const UNEXPECTED_SUBCODE: Partial<Record<BgpState, number>> = {
  OpenSent: FsmSubcode.UNEXPECTED_IN_OPENSENT,
  OpenConfirm: FsmSubcode.UNEXPECTED_IN_OPENCONFIRM,
  Established: FsmSubcode.UNEXPECTED_IN_ESTABLISHED,
};

const MESSAGE_EVENTS: ReadonlySet<FsmEvent['type']> = new Set([
  'BGPOpen',
  'KeepAliveMsg',
  'UpdateMsg',
  'UpdateMsgErr',
  'RouteRefreshMsg',
  'RouteRefreshMsgErr',
]);

/** "In response to any other event" (§8.2.2, OpenSent/OpenConfirm/Established): FSM Error, Idle. */
function fsmError(state: FsmState, event: FsmEvent, config: FsmConfig): Transition {
  const subcode = MESSAGE_EVENTS.has(event.type)
    ? (UNEXPECTED_SUBCODE[state.name] ?? FsmSubcode.UNSPECIFIED)
    : FsmSubcode.UNSPECIFIED;
  const reason = `FSM error: ${event.type} in ${state.name}`;
  return dropAndRetry(state, config, reason, [notification(ErrorCode.FSM, subcode, reason)]);
}

function openSentTimers(config: FsmConfig): FsmAction[] {
  // RFC 4271 §8.2.2 (Connect/Active, Event 16/17): stop ConnectRetry, send OPEN, set a large hold timer.
  return [
    { type: 'stopTimer', name: 'ConnectRetry' },
    { type: 'sendOpen' },
    { type: 'startTimer', name: 'Hold', ms: config.openHoldMs ?? DEFAULT_OPEN_HOLD_MS },
  ];
}

function restartHold(state: FsmState): FsmAction[] {
  // RFC 4271 §8.2.2: "restarts its HoldTimer, if the negotiated HoldTime value is non-zero".
  return state.holdTime > 0 ? [{ type: 'startTimer', name: 'Hold', ms: state.holdTime * 1000 }] : [];
}

function keepalive(state: FsmState): FsmAction[] {
  if (state.keepaliveTime <= 0) return []; // hold time 0: no keepalives (RFC 4271 §4.4)
  return [{ type: 'sendKeepalive' }, { type: 'startTimer', name: 'Keepalive', ms: state.keepaliveTime * 1000 }];
}

// ---- one function per state ----------------------------------------------------------------------------

function idle(state: FsmState, event: FsmEvent, config: FsmConfig): Transition {
  switch (event.type) {
    case 'ManualStart':
    case 'ManualStart_with_PassiveTcpEstablishment':
    case 'AutomaticStart': {
      const passive =
        event.type === 'AutomaticStart' ? state.passive : event.type === 'ManualStart_with_PassiveTcpEstablishment';
      const attempts = event.type === 'AutomaticStart' ? state.attempts : 0;
      // A ManualStart (the owner re-enabled the peer) forgets earlier errors; the backoff's expiry keeps them.
      const errors = event.type === 'AutomaticStart' ? state.errors : 0;
      if (passive) {
        // RFC 4271 §8.2.2 Idle, Event 4: listen for the peer in Active. We start no ConnectRetryTimer:
        // a passive peer never connects, so there is nothing for it to retry.
        return {
          next: { ...state, name: 'Active', passive, attempts, errors, holdingDown: false },
          actions: [{ type: 'stopTimer', name: 'IdleHold' }],
          reason: `${event.type}: passive, waiting for the peer to connect`,
        };
      }
      // RFC 4271 §8.2.2 Idle, Event 1/3: start the ConnectRetryTimer, initiate a TCP connection, Connect.
      return {
        next: { ...state, name: 'Connect', passive, attempts, errors, holdingDown: false },
        actions: [
          { type: 'stopTimer', name: 'IdleHold' },
          { type: 'startTimer', name: 'ConnectRetry', ms: config.connectRetryMs },
          { type: 'connect' },
        ],
        reason: `${event.type}: connecting`,
      };
    }
    case 'ManualStop':
      return {
        next: { ...state, attempts: 0, errors: 0, holdingDown: false },
        actions: stopAll,
        reason: event.reason ?? 'ManualStop',
      };
    case 'TcpConnectionConfirmed':
      // RFC 4271 §8.2.2 Idle: connections are refused while Idle.
      return stay(state, 'connection refused in Idle', [{ type: 'close' }]);
    default:
      // RFC 4271 §8.2.2 Idle: "Any other event ... does not cause change in the state".
      return stay(state, `${event.type} ignored in Idle`);
  }
}

/** Connect (actively connecting) and Active (listening): the same events, different retry behaviour. */
function connecting(state: FsmState, event: FsmEvent, config: FsmConfig): Transition {
  switch (event.type) {
    case 'ManualStart':
    case 'ManualStart_with_PassiveTcpEstablishment':
    case 'AutomaticStart':
    case 'LimitExceeded': // nothing is connected yet
      return stay(state, `${event.type} ignored in ${state.name}`); // §8.2.2: "events 1, 3-7 are ignored"
    case 'ManualStop':
      return dropAndStay(state, event.reason ?? 'ManualStop', [], false, true);
    case 'ConnectRetryTimer_Expires':
      if (state.passive) return stay(state, 'passive: never connects');
      // §8.2.2 Connect, Event 9: drop the attempt, restart the timer, connect again.
      // §8.2.2 Active, Event 9: restart the timer, connect, go to Connect.
      return {
        next: { ...state, name: 'Connect' },
        actions: [{ type: 'startTimer', name: 'ConnectRetry', ms: config.connectRetryMs }, { type: 'connect' }],
        reason: 'ConnectRetry timer expired: connecting again',
      };
    case 'TcpConnectionConfirmed':
      return {
        next: { ...state, name: 'OpenSent' },
        actions: openSentTimers(config),
        reason: 'TCP connection established, OPEN sent',
      };
    case 'InternalError':
      return stay(state, `internal error in ${state.name} (no BGP connection to reset): ${event.error.detail}`);
    case 'TcpConnectionFails':
      // §8.2.2 Connect, Event 18 (no DelayOpen): Idle. We retry after the backoff.
      return dropAndRetry(state, config, event.reason ?? 'TCP connection failed', [], false);
    default:
      // §8.2.2 Connect/Active: "any other event": drop, ConnectRetryCounter + 1, Idle.
      return dropAndRetry(state, config, `${event.type} unexpected in ${state.name}`, [], false);
  }
}

/** HoldTimer_Expires (§8.2.2, Event 10) in the states with a connection: the reason, the NOTIFICATION's text. */
const HOLD_EXPIRED: Partial<Record<BgpState, readonly [reason: string, detail: string]>> = {
  OpenSent: ['hold timer expired in OpenSent', 'no OPEN before the hold timer expired'],
  OpenConfirm: ['hold timer expired in OpenConfirm', 'no KEEPALIVE before the hold timer expired'],
  Established: ['hold timer expired', 'no KEEPALIVE or UPDATE within the hold time'],
};

/**
 * The rows OpenSent, OpenConfirm and Established share (§8.2.2 repeats them in each of the three). A state's
 * own rows come first, in its function, which hands every other event here.
 */
function connected(state: FsmState, event: FsmEvent, config: FsmConfig): Transition {
  switch (event.type) {
    case 'ManualStart':
    case 'ManualStart_with_PassiveTcpEstablishment':
    case 'AutomaticStart':
    case 'TcpConnectionConfirmed': // a second connection: collisions are the speaker's (§6.8)
      return stay(state, `${event.type} ignored in ${state.name}`);
    case 'ManualStop':
      return dropAndStay(
        state,
        event.reason ?? 'ManualStop',
        [
          notification(
            ErrorCode.CEASE,
            event.subcode ?? CeaseSubcode.ADMINISTRATIVE_SHUTDOWN,
            event.reason ?? 'administrative shutdown',
          ),
        ],
        true,
        true,
      );
    case 'HoldTimer_Expires': {
      const [reason, detail] = HOLD_EXPIRED[state.name]!;
      return dropAndRetry(state, config, reason, [notification(ErrorCode.HOLD_TIMER_EXPIRED, 0, detail)]);
    }
    case 'TcpConnectionFails':
      return dropAndRetry(state, config, event.reason ?? `TCP connection closed in ${state.name}`);
    case 'NotifMsg':
      // §8.2.2 (Established: Events 24/25): release resources, Idle.
      return notificationReceived(state, event, config);
    case 'InternalError':
    case 'BGPHeaderErr':
    case 'BGPOpenMsgErr':
      // §8.2.2, Events 21/22: NOTIFICATION with the error code, Idle.
      return dropAndRetry(state, config, event.error.message, [fromError(event.error)]);
    case 'OpenCollisionDump':
      return dropAndStay(
        state,
        'connection collision',
        [
          notification(
            ErrorCode.CEASE,
            CeaseSubcode.CONNECTION_COLLISION_RESOLUTION,
            'connection collision resolution',
          ),
        ],
        true,
        false,
      );
    case 'LimitExceeded':
      return limitExceeded(state, event, config);
    default:
      return fsmError(state, event, config);
  }
}

function openSent(state: FsmState, event: FsmEvent, config: FsmConfig): Transition {
  switch (event.type) {
    case 'BGPOpen': {
      // RFC 4271 §4.2: a hold time of 1 or 2 seconds is refused; §6.2: an implementation MAY refuse others.
      const refused = refuseHoldTime(event.peerHoldTime, config);
      if (refused !== undefined) {
        return dropAndRetry(state, config, refused, [
          notification(ErrorCode.OPEN_MESSAGE, OpenSubcode.UNACCEPTABLE_HOLD_TIME, refused),
        ]);
      }
      const { holdTime, keepaliveTime } = negotiateHoldTime(config.holdTime, event.peerHoldTime, config.keepaliveTime);
      // §8.2.2 OpenSent, Event 19: stop ConnectRetry, send KEEPALIVE, set hold + keepalive timers (not if 0).
      const timers: FsmAction[] =
        holdTime > 0
          ? [
              { type: 'startTimer', name: 'Hold', ms: holdTime * 1000 },
              { type: 'startTimer', name: 'Keepalive', ms: keepaliveTime * 1000 },
            ]
          : [{ type: 'stopTimer', name: 'Hold' }];
      return {
        next: { ...state, name: 'OpenConfirm', holdTime, keepaliveTime },
        actions: [
          { type: 'stopTimer', name: 'ConnectRetry' },
          { type: 'negotiated', holdTime, keepaliveTime },
          { type: 'sendKeepalive' },
          ...timers,
        ],
        reason: `OPEN received, hold time ${holdTime} s`,
      };
    }
    default:
      return connected(state, event, config);
  }
}

function openConfirm(state: FsmState, event: FsmEvent, config: FsmConfig): Transition {
  switch (event.type) {
    case 'KeepaliveTimer_Expires':
      // §8.2.2 OpenConfirm, Event 11: send KEEPALIVE, restart the KeepaliveTimer.
      return stay(state, 'keepalive timer', keepalive(state));
    case 'KeepAliveMsg':
      // §8.2.2 OpenConfirm, Event 26: restart the HoldTimer, Established.
      return {
        next: { ...state, name: 'Established', stable: false },
        actions: [
          ...restartHold(state),
          { type: 'startTimer', name: 'Stable', ms: config.stableMs ?? DEFAULT_STABLE_MS },
          { type: 'established' },
        ],
        reason: 'KEEPALIVE received: established',
      };
    default:
      return connected(state, event, config);
  }
}

function established(state: FsmState, event: FsmEvent, config: FsmConfig): Transition {
  switch (event.type) {
    case 'KeepaliveTimer_Expires':
      return stay(state, 'keepalive timer', keepalive(state)); // §8.2.2 Established, Event 11
    case 'StableTimer_Expires':
      return stay({ ...state, attempts: 0, errors: 0, stable: true }, 'session stable: backoff reset');
    case 'TcpConnectionFails':
      // Lost before the session was stable: part of an oscillation (DampPeerOscillations).
      return dropAndRetry(
        state,
        config,
        event.reason ?? 'TCP connection closed',
        [],
        true,
        state.stable ? {} : { error: 'unstable' },
      );
    case 'KeepAliveMsg':
      return stay(state, 'KEEPALIVE received', restartHold(state));
    case 'UpdateMsg':
      // §8.2.2 Established, Event 27: process the UPDATE, restart the HoldTimer.
      return stay(state, 'UPDATE received', [...restartHold(state), { type: 'processUpdate' }]);
    case 'RouteRefreshMsg':
      return stay(state, 'ROUTE-REFRESH received', [{ type: 'processRouteRefresh' }]);
    case 'UpdateMsgErr':
    case 'RouteRefreshMsgErr':
      // §8.2.2 Established, Event 28: NOTIFICATION with the error, release, Idle (21/22 as the other states).
      return dropAndRetry(state, config, event.error.message, [fromError(event.error)]);
    default:
      return connected(state, event, config);
  }
}

const STATE_HANDLERS: Readonly<Record<BgpState, (s: FsmState, e: FsmEvent, c: FsmConfig) => Transition>> = {
  Idle: idle,
  Connect: connecting,
  Active: connecting,
  OpenSent: openSent,
  OpenConfirm: openConfirm,
  Established: established,
};

/** RFC 4271 §8: the one place that decides what an event means in a state. Pure. */
export function transition(state: FsmState, event: FsmEvent, config: FsmConfig): Transition {
  if (event.type === 'StableTimer_Expires' && state.name !== 'Established')
    return stay(state, 'stale Stable timer ignored');
  return STATE_HANDLERS[state.name](state, event, config);
}
