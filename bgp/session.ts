// One BGP peer: drives the pure FSM (./fsm.ts) with an injected Clock and Transport, checks and negotiates
// the OPEN, frames and decodes messages, keeps the Adj-RIB-In, and tells its owner what happened.
//
// API for the speaker (bgp/speaker.ts):
//   const s = new Session({ localAs, peerAs, routerId, peerAddress, transport, clock?, logger?, ... });
//   s.on('state' | 'open' | 'update' | 'endOfRib' | 'down' | 'notification' | 'routeRefresh', fn)
//   s.start()                 ManualStart (or the passive variant when config.passive): connect / listen.
//   s.stop(reason?|subcode?)  ManualStop: Cease/Administrative Shutdown (or the given Cease subcode) when a
//                             connection is up, then Idle with no restart. start() again to bring it back.
//   s.acceptConnection(conn)  an inbound connection for this peer. Returns false (and leaves `conn` to the
//                             caller) when the session is stopped or already has a connection; the speaker
//                             resolves collisions (RFC 4271 §6.8) with `state`, `peerBgpId` and the 'open'
//                             event, and calls `collisionDump()` (Cease / Connection Collision Resolution)
//                             on the loser (`collisionSurvivor(ourId, peerId)` says which direction wins;
//                             `connectionDirection` says which one a session holds). A session holds one
//                             connection, so the speaker runs the inbound one in a second (passive) Session
//                             until the OPENs decide. A dumped session goes to Idle, no restart by itself.
//   s.sendUpdates(bytes[])    already-encoded UPDATEs (codec's encodeUpdates/encodeWithdrawals/EndOfRib),
//                             only when Established (returns false otherwise); batched into few writes.
//   s.send(msg) / s.sendRouteRefresh()
//   s.limitExceeded(subcode, data, reason, restartMs?)  a resource limit passed (RFC 4486 Cease, e.g. the
//                             speaker's prefix limit): Cease, Idle, no reconnect nor inbound for restartMs.
//   s.holdingDown             waiting after an error (DampPeerOscillations) or a limit: inbound is refused.
//   s.queuedBytes             bytes the peer has not taken yet; past maxSendQueueBytes: Cease / Out of Resources.
//   s.abort(reason)           the owner's work for this peer failed: Cease / Unspecific, reconnect after backoff.
//   s.state, s.established, s.peerBgpId, s.negotiated (hold, keepalive, capabilities, codec ctx),
//   s.codecContext, s.localAddress (of the current connection, for next-hop-self),
//   s.adjRibIn (Map keyed by prefixKey), s.stats (counters, lastError, establishedSince).
// Events are a typed node EventEmitter (SessionEvents below). Within one transition, action events
// ('notification', 'down', 'update') come first and 'state' last. Handlers may call back into the session
// (stop(), collisionDump(), sendUpdates()): FSM events raised while one is being handled are queued and
// run after it, so a transition's actions are never interleaved with another's.
//
// Why this is hard:
// - Stale callbacks. A connect attempt, a socket and each timer can report after the session has moved
//   on; every callback carries the generation it belongs to and is dropped when that is over.
// - Ordering. A NOTIFICATION must reach the wire before the close; UPDATEs queued while the socket is
//   back-pressured keep their order, and keepalive timers keep running meanwhile.
// - Containment. Nothing may escape a session: one peer's bytes must not take the process (and every other
//   peer) down. Every way into the session — received bytes, a timer, a write, the connect attempt, the
//   owner's calls, the owner's event handlers — runs inside `guard()`. An unexpected exception there (a
//   bug, never the peer's protocol error: those are BgpErrors with their own NOTIFICATION) is logged with
//   the peer and the reason and resets this session with a NOTIFICATION — Cease / Unspecific, or, when a
//   decoder failed on a message, that message's error code with subcode 0 (RFC 4271 §4.5) — through the
//   FSM's InternalError event; if even that fails, the connection is dropped without the FSM (`hardReset`).
// - The OPEN check mixes RFC 4271 §6.2 with RFC 6793 (the peer's real AS is in the 4-octet AS
//   capability; the 2-octet field may be AS_TRANS) and RFC 6286 (BGP id only has to differ on iBGP).

import { EventEmitter } from 'node:events';
import { systemClock, type Clock, type TimerHandle } from './clock.js';
import { decodeMessage, encodeMessage, isEndOfRib, KEEPALIVE, MessageFramer, type DecodeResult } from './codec/index.js';
import { BgpError, CeaseSubcode, describeNotification, ErrorCode, isBgpError, notificationReason, OpenSubcode } from './errors.js';
import { backoffMs, INITIAL_STATE, TIMER_EVENTS, TIMER_NAMES, transition, type BgpState, type FsmAction, type FsmConfig, type FsmEvent, type FsmState, type TimerName } from './fsm.js';
import { formatIpv4, parseIpv4, prefixKey } from './ip.js';
import type { Connection, Transport } from './transport.js';
import { TransportError, describeErrno } from './transport.js';
import {
  Afi,
  AS_TRANS,
  BGP_PORT,
  BGP_VERSION,
  Safi,
  type BgpMessage,
  type Capability,
  type CodecContext,
  type OpenMessage,
  type PathAttributes,
  type Prefix,
  type UpdateMessage,
} from './types.js';

import { silentLogger, type Logger } from './log.js';
export type { Logger } from './log.js';

export interface GracefulRestartConfig {
  /** Restart time advertised, seconds 0..4095 (RFC 4724 §3). */
  readonly restartTime: number;
  /** F bit for IPv4 unicast: forwarding state preserved across a restart. */
  readonly forwardingState?: boolean;
  /** R bit: we are restarting. */
  readonly restarting?: boolean;
  /** Helper only (RFC 4724 §3): the capability with no address family — we keep a restarting peer's
   *  routes, but promise nothing about our own forwarding state. */
  readonly helperOnly?: boolean;
}

export type GracefulRestartCapability = Extract<Capability, { code: 64 }>;

export interface DownInfo {
  readonly reason: string;
  /** The peer's graceful restart capability from the last OPEN, if it sent one. */
  readonly peerGracefulRestart?: GracefulRestartCapability;
}

export interface SessionConfig {
  readonly localAs: number;
  readonly peerAs: number;
  /** Our BGP identifier as uint32 (RFC 6286: non-zero). */
  readonly routerId: number;
  /** Dotted quad. */
  readonly peerAddress: string;
  /** Default 179. */
  readonly port?: number;
  /** Bind outbound connections to this local address. */
  readonly localAddress?: string;
  /** TCP-MD5 key (RFC 2385) and GTSM hops (RFC 5082) for outbound connections (see transport.ts). */
  readonly md5Key?: Uint8Array;
  readonly ttlSecurity?: number;
  /** Never connect; wait for the peer (ManualStart_with_PassiveTcpEstablishment). */
  readonly passive?: boolean;
  /** Seconds, 0 or 3..65535. Default 90. */
  readonly holdTime?: number;
  /** Seconds; default holdTime/3 after negotiation. */
  readonly keepaliveTime?: number;
  /** ConnectRetryTimer, ms. Default 5000: a TCP connect to a cluster neighbour either works quickly or not
   *  at all; it also caps the reconnect backoff (1, 2, 4, 5, 5 … s). RFC 4271 §10 suggests 120 s. */
  readonly connectRetryMs?: number;
  /** Seconds to wait for the OPEN after connecting (RFC 4271 §8.2.2 suggests 240). Default 240. */
  readonly openHoldTime?: number;
  /** First backoff step, ms (default 1000). */
  readonly backoffInitialMs?: number;
  /** Jitter fraction taken off each backoff (default 0.25; 0 in tests). */
  readonly jitter?: number;
  /** Random source for the jitter (default Math.random). */
  readonly random?: () => number;
  /** Established this long (ms) counts as stable and resets the backoff and the error wait (default 30 000). */
  readonly stableMs?: number;
  /** DampPeerOscillations (RFC 4271 §8.1.1), BIRD's `error wait time` (Calico: 5,30): after a session ends in
   *  an error (a NOTIFICATION either way, except a deliberate Cease received; or a TCP loss before it was
   *  stable) wait this long, doubling per error in a row up to `errorWaitMaxMs`; after a NOTIFICATION the
   *  peer's own connections are refused meanwhile too. Default 5000; 0 = off. */
  readonly errorWaitInitialMs?: number;
  /** Default 30 000. */
  readonly errorWaitMaxMs?: number;
  /** The smallest non-zero hold time accepted from the peer, seconds (default 3). Hold time 0 from the peer
   *  is refused unless ours is 0 too (OPEN error 2/6 Unacceptable Hold Time, RFC 4271 §6.2). */
  readonly minHoldTime?: number;
  /** Bytes the peer may leave unread (our queue plus the socket's): past this the session is reset with
   *  Cease / Out of Resources (RFC 4486 subcode 8) instead of buffering more. Default 32 MiB. */
  readonly maxSendQueueBytes?: number;
  /** Offer the graceful restart capability (RFC 4724). */
  readonly gracefulRestart?: GracefulRestartConfig;
  readonly clock?: Clock;
  readonly transport: Transport;
  readonly logger?: Logger;
  /** Asked when the session leaves OpenSent/OpenConfirm/Established. `graceful: true` keeps the
   *  Adj-RIB-In as stale routes (swept at the next End-of-RIB); otherwise it is cleared. Default: cleared. */
  readonly onDown?: (info: DownInfo) => { graceful: boolean } | void;
  /** Keep `adjRibIn` here (default true). The speaker keeps its own interned Adj-RIB-In and turns this off,
   *  so each route is held once: 'update' events then carry what the message said, and `message`. */
  readonly trackAdjRibIn?: boolean;
}

export interface NegotiatedSession {
  /** Seconds; 0 means no hold timer and no keepalives. */
  readonly holdTime: number;
  readonly keepaliveTime: number;
  /** Both sides sent the 4-octet AS capability (RFC 6793). */
  readonly fourOctetAs: boolean;
  /** The peer accepts ROUTE-REFRESH (RFC 2918) — we always offer it. */
  readonly routeRefresh: boolean;
  readonly enhancedRouteRefresh: boolean;
  /** The peer's graceful restart capability, if sent. */
  readonly gracefulRestart?: GracefulRestartCapability;
  /** Families both sides support (RFC 4760; no MP capability from the peer means IPv4 unicast). */
  readonly families: ReadonlyArray<{ afi: number; safi: number }>;
  readonly peerAs: number;
  readonly peerBgpId: number;
  readonly ebgp: boolean;
  readonly peerCapabilities: readonly Capability[];
  readonly codec: CodecContext;
}

export interface AdjRibInEntry {
  readonly prefix: Prefix;
  readonly attrs: PathAttributes;
  /** Kept across a graceful restart, not yet refreshed by the peer. */
  stale?: boolean;
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
  /** Last failure for people: "connect to 127.0.0.2:179: Connection refused (ECONNREFUSED)", a NOTIFICATION, ... */
  lastError?: string;
  /** errno of the last transport failure (ECONNREFUSED, ...) for the status table. */
  lastErrorCode?: string;
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
  /** After applying to the Adj-RIB-In. `withdrawn` lists only prefixes that were there. */
  update: [{ announced: AdjRibInEntry[]; withdrawn: Prefix[]; message: UpdateMessage }];
  endOfRib: [{ afi: number; safi: number }];
  /** The session left OpenSent/OpenConfirm/Established. `withdrawn`: what was cleared (empty when graceful). */
  down: [{ reason: string; graceful: boolean; withdrawn: Prefix[] }];
  notification: [NotificationEvent];
  routeRefresh: [{ afi: number; safi: number; subtype: number }];
}

const DEFAULT_HOLD_TIME = 90;
const DEFAULT_CONNECT_RETRY_MS = 5000;
const MAX_WRITE = 64 * 1024;
/** BIRD's `error wait time 5,30` as Calico configures it. */
export const DEFAULT_ERROR_WAIT_INITIAL_MS = 5000;
export const DEFAULT_ERROR_WAIT_MAX_MS = 30_000;
export const DEFAULT_MAX_SEND_QUEUE_BYTES = 32 * 1024 * 1024;

/** Message type → the error code a decoder failure on it is answered with (0: none fits, Cease). */
const DECODE_FAILURE_CODES: Readonly<Record<number, number>> = {
  1: ErrorCode.OPEN_MESSAGE,
  2: ErrorCode.UPDATE_MESSAGE,
  3: 0, // no NOTIFICATION error code is about NOTIFICATIONs: Cease / Unspecific
  4: ErrorCode.MESSAGE_HEADER,
  5: ErrorCode.ROUTE_REFRESH,
};

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A decode error's NOTIFICATION code → the FSM event it is (RFC 4271 §8.1.5, RFC 7313 §5). */
const ERROR_EVENTS: Readonly<Record<number, 'BGPHeaderErr' | 'BGPOpenMsgErr' | 'UpdateMsgErr' | 'RouteRefreshMsgErr'>> = {
  [ErrorCode.MESSAGE_HEADER]: 'BGPHeaderErr',
  [ErrorCode.OPEN_MESSAGE]: 'BGPOpenMsgErr',
  [ErrorCode.UPDATE_MESSAGE]: 'UpdateMsgErr',
  [ErrorCode.ROUTE_REFRESH]: 'RouteRefreshMsgErr',
};

function isUint(value: number, max: number): boolean {
  return Number.isInteger(value) && value >= 0 && value <= max;
}

/** Refuses a config that cannot work, naming the field, the value and what is accepted. */
export function validateSessionConfig(config: SessionConfig): void {
  const problems: string[] = [];
  if (!isUint(config.localAs, 0xffffffff) || config.localAs === 0) problems.push(`localAs ${config.localAs} is not an AS number (1..4294967295)`);
  if (!isUint(config.peerAs, 0xffffffff) || config.peerAs === 0) problems.push(`peerAs ${config.peerAs} is not an AS number (1..4294967295)`);
  if (!isUint(config.routerId, 0xffffffff) || config.routerId === 0) problems.push(`routerId ${config.routerId} is not a non-zero uint32 (RFC 6286)`);
  const hold = config.holdTime ?? DEFAULT_HOLD_TIME;
  if (!isUint(hold, 65535) || hold === 1 || hold === 2) problems.push(`holdTime ${hold} is not 0 or 3..65535 seconds (RFC 4271 §4.2)`);
  if (config.keepaliveTime !== undefined && (!isUint(config.keepaliveTime, 21845) || config.keepaliveTime === 0)) {
    problems.push(`keepaliveTime ${config.keepaliveTime} is not 1..21845 seconds`);
  }
  if (config.connectRetryMs !== undefined && !(config.connectRetryMs > 0)) problems.push(`connectRetryMs ${config.connectRetryMs} is not a positive number of milliseconds`);
  if (config.port !== undefined && (!isUint(config.port, 65535) || config.port === 0)) problems.push(`port ${config.port} is not 1..65535`);
  if (config.minHoldTime !== undefined && (!isUint(config.minHoldTime, 65535) || config.minHoldTime < 3)) problems.push(`minHoldTime ${config.minHoldTime} is not 3..65535 seconds`);
  if (config.maxSendQueueBytes !== undefined && !(config.maxSendQueueBytes >= 64 * 1024)) problems.push(`maxSendQueueBytes ${config.maxSendQueueBytes} is below 65536 (one full write)`);
  for (const field of ['errorWaitInitialMs', 'errorWaitMaxMs'] as const) {
    const value = config[field];
    if (value !== undefined && !(value >= 0)) problems.push(`${field} ${value} is not a number of milliseconds ≥ 0`);
  }
  const gr = config.gracefulRestart;
  if (gr && !isUint(gr.restartTime, 4095)) problems.push(`gracefulRestart.restartTime ${gr.restartTime} is not 0..4095 seconds (RFC 4724 §3)`);
  if (problems.length > 0) throw new Error(`BGP session to ${config.peerAddress}: ${problems.join('; ')}`);
}

function capabilityWith<C extends number>(caps: readonly Capability[], code: C): Extract<Capability, { code: C }> | undefined {
  return caps.find((c) => c.code === code && !('unknown' in c)) as Extract<Capability, { code: C }> | undefined;
}

/**
 * RFC 4271 §6.2 semantic checks of a received OPEN (syntax is the codec's): the peer's AS (RFC 6793 §4.1:
 * the 4-octet AS capability when present) must be the configured one; the BGP identifier must differ from
 * ours on iBGP (RFC 6286 §2.2); the hold time must be 0 or ≥ 3. Returns the error to send, or undefined.
 */
export function checkOpen(open: OpenMessage, local: { localAs: number; peerAs: number; routerId: number }): BgpError | undefined {
  if (open.version !== BGP_VERSION) {
    return new BgpError(ErrorCode.OPEN_MESSAGE, OpenSubcode.UNSUPPORTED_VERSION, `version ${open.version}, only ${BGP_VERSION} is supported`, Uint8Array.of(0, BGP_VERSION));
  }
  const four = capabilityWith(open.capabilities, 65);
  const peerAs = four ? four.asn : open.myAs;
  if (peerAs !== local.peerAs) {
    // RFC 4271 §6.2: the data is the 2-octet My Autonomous System field as received.
    return new BgpError(
      ErrorCode.OPEN_MESSAGE,
      OpenSubcode.BAD_PEER_AS,
      `peer AS ${peerAs}${four ? ` (4-octet AS capability; My AS field ${open.myAs})` : ''} is not the configured peer AS ${local.peerAs}`,
      Uint8Array.of((open.myAs >>> 8) & 0xff, open.myAs & 0xff),
    );
  }
  if (open.bgpId === 0 || (local.localAs === local.peerAs && open.bgpId === local.routerId)) {
    return new BgpError(
      ErrorCode.OPEN_MESSAGE,
      OpenSubcode.BAD_BGP_IDENTIFIER,
      open.bgpId === 0 ? 'BGP identifier 0.0.0.0 is not valid (RFC 6286)' : `peer BGP identifier ${formatIpv4(open.bgpId)} equals ours on an iBGP session (RFC 6286 §2.2)`,
    );
  }
  if (open.holdTime === 1 || open.holdTime === 2) {
    return new BgpError(ErrorCode.OPEN_MESSAGE, OpenSubcode.UNACCEPTABLE_HOLD_TIME, `hold time ${open.holdTime} s is not 0 or 3..65535 (RFC 4271 §4.2)`);
  }
  return undefined;
}

/**
 * RFC 4271 §6.8 connection collision: of two connections between the same pair of speakers, the one opened
 * by the speaker with the higher BGP identifier survives. Returns which of *our* connections to keep: the
 * one we opened ('outbound') or the one the peer opened ('inbound'); call `collisionDump()` on the other.
 */
export function collisionSurvivor(localBgpId: number, remoteBgpId: number): 'outbound' | 'inbound' {
  // "If the value of the local BGP Identifier is less than the remote one, the local system closes the
  // BGP connection that already exists ... and accepts the BGP connection initiated by the remote system."
  return localBgpId >>> 0 > remoteBgpId >>> 0 ? 'outbound' : 'inbound';
}

/** What the two OPENs agree on (capabilities side; hold time comes from the FSM). */
export function negotiateCapabilities(
  ours: readonly Capability[],
  open: OpenMessage,
  local: { localAs: number; peerAs: number },
  hold: { holdTime: number; keepaliveTime: number },
): NegotiatedSession {
  const theirs = open.capabilities;
  const has = (caps: readonly Capability[], code: number): boolean => caps.some((c) => c.code === code);
  const mp = (caps: readonly Capability[]): Array<{ afi: number; safi: number }> => {
    const list = caps.filter((c): c is Extract<Capability, { code: 1 }> => c.code === 1 && 'afi' in c).map((c) => ({ afi: c.afi, safi: c.safi }));
    // RFC 4760 §8 / RFC 5492: a speaker that sends no multiprotocol capability speaks IPv4 unicast only.
    return list.length > 0 ? list : [{ afi: Afi.IPV4, safi: Safi.UNICAST }];
  };
  const theirFamilies = mp(theirs);
  const families = mp(ours).filter((f) => theirFamilies.some((t) => t.afi === f.afi && t.safi === f.safi));
  const fourOctetAs = has(ours, 65) && has(theirs, 65);
  const ebgp = local.localAs !== local.peerAs;
  const gracefulRestart = capabilityWith(theirs, 64);
  return {
    holdTime: hold.holdTime,
    keepaliveTime: hold.keepaliveTime,
    fourOctetAs,
    routeRefresh: has(theirs, 2) || has(theirs, 70),
    enhancedRouteRefresh: has(ours, 70) && has(theirs, 70),
    ...(gracefulRestart ? { gracefulRestart } : {}),
    families,
    peerAs: local.peerAs,
    peerBgpId: open.bgpId,
    ebgp,
    peerCapabilities: theirs,
    codec: { fourOctetAs, ebgp },
  };
}

export class Session extends EventEmitter<SessionEvents> {
  readonly config: SessionConfig;
  /** The peer address as uint32. */
  readonly peerAddressNum: number;
  readonly stats: SessionStats;
  /** Adj-RIB-In after RFC 7606 handling, keyed by prefixKey(). */
  readonly adjRibIn = new Map<number, AdjRibInEntry>();

  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly fsmConfig: FsmConfig;
  private readonly ourCapabilities: Capability[];
  private fsm: FsmState = INITIAL_STATE;
  private adminUp = false;
  private readonly queue: FsmEvent[] = [];
  private dispatching = false;
  private readonly timers = new Map<TimerName, { due: number; firesAt: number; handle: TimerHandle }>();

  private conn: Connection | undefined;
  private direction: 'inbound' | 'outbound' | undefined;
  /** Bumped whenever the connection or the connect attempt changes; stale callbacks compare it. */
  private generation = 0;
  private connectAbort: AbortController | undefined;
  private framer = new MessageFramer();
  private outQueue: Uint8Array[] = [];
  /** Bytes in `outQueue`. */
  private outBytes = 0;
  /** The send queue passed its bound on this connection: nothing more is queued, the reset is under way. */
  private overflowed = false;
  private flushScheduled = false;
  private blocked = false;

  private peerOpen: OpenMessage | undefined;
  private negotiatedSession: NegotiatedSession | undefined;
  private pendingHold: { holdTime: number; keepaliveTime: number } | undefined;
  /** In OpenSent/OpenConfirm/Established and its 'down' not yet performed (hardReset owes it then). */
  private downOwed = false;
  /** The state the owner last heard of in a 'state' event. */
  private reportedState: BgpState = 'Idle';
  /** The message the current FSM event came from (processUpdate / processRouteRefresh read it). */
  private current: DecodeResult | undefined;

  constructor(config: SessionConfig) {
    super();
    validateSessionConfig(config);
    this.config = config;
    this.peerAddressNum = parseIpv4(config.peerAddress, 'peerAddress');
    this.clock = config.clock ?? systemClock;
    this.log = config.logger ?? silentLogger;
    this.fsmConfig = {
      holdTime: config.holdTime ?? DEFAULT_HOLD_TIME,
      ...(config.keepaliveTime !== undefined ? { keepaliveTime: config.keepaliveTime } : {}),
      connectRetryMs: config.connectRetryMs ?? DEFAULT_CONNECT_RETRY_MS,
      ...(config.openHoldTime !== undefined ? { openHoldMs: config.openHoldTime * 1000 } : {}),
      ...(config.backoffInitialMs !== undefined ? { backoffInitialMs: config.backoffInitialMs } : {}),
      ...(config.stableMs !== undefined ? { stableMs: config.stableMs } : {}),
      errorWaitInitialMs: config.errorWaitInitialMs ?? DEFAULT_ERROR_WAIT_INITIAL_MS,
      errorWaitMaxMs: config.errorWaitMaxMs ?? DEFAULT_ERROR_WAIT_MAX_MS,
      ...(config.minHoldTime !== undefined ? { minHoldTime: config.minHoldTime } : {}),
      jitter: config.jitter ?? 0.25,
      random: config.random ?? Math.random,
    };
    this.ourCapabilities = [
      { code: 1, afi: Afi.IPV4, safi: Safi.UNICAST }, // RFC 4760
      { code: 2 }, // RFC 2918
      { code: 65, asn: config.localAs }, // RFC 6793
    ];
    const gr = config.gracefulRestart;
    if (gr) {
      this.ourCapabilities.push({
        code: 64,
        restarting: gr.restarting ?? false,
        restartTime: gr.restartTime,
        families: gr.helperOnly ? [] : [{ afi: Afi.IPV4, safi: Safi.UNICAST, forwardingState: gr.forwardingState ?? false }],
      });
    }
    this.stats = { messagesIn: 0, messagesOut: 0, updatesIn: 0, updatesOut: 0, notificationsIn: 0, notificationsOut: 0, establishedCount: 0, stateSince: this.clock.now() };
  }

  // ---- public API ---------------------------------------------------------------------------------------

  get state(): BgpState {
    return this.fsm.name;
  }

  get established(): boolean {
    return this.fsm.name === 'Established';
  }

  /** The peer's BGP identifier once its OPEN was accepted (for collision detection, RFC 4271 §6.8). */
  get peerBgpId(): number | undefined {
    return this.peerOpen?.bgpId;
  }

  get negotiated(): NegotiatedSession | undefined {
    return this.negotiatedSession;
  }

  /** The local address of the current connection (our next hop toward this peer), if connected. */
  get localAddress(): string | undefined {
    return this.conn?.localAddress;
  }

  /** The codec context to encode UPDATEs for this peer (negotiated once the OPENs are exchanged). */
  get codecContext(): CodecContext {
    return this.negotiatedSession?.codec ?? { fourOctetAs: false, ebgp: this.config.localAs !== this.config.peerAs };
  }

  /** Who opened the current connection: we ('outbound') or the peer ('inbound'). For RFC 4271 §6.8. */
  get connectionDirection(): 'inbound' | 'outbound' | undefined {
    return this.conn ? this.direction : undefined;
  }

  /** Waiting after an error or a resource limit (DampPeerOscillations): the peer's connections are refused. */
  get holdingDown(): boolean {
    return this.fsm.name === 'Idle' && this.fsm.holdingDown;
  }

  /** Bytes queued toward the peer and not yet taken by it (ours plus the socket's). */
  get queuedBytes(): number {
    return this.outBytes + (this.conn?.bufferedBytes ?? 0);
  }

  /** Whether the owner wants this session up (start() called, stop() not). */
  get enabled(): boolean {
    return this.adminUp;
  }

  /** The capabilities we send in our OPEN. */
  get capabilities(): readonly Capability[] {
    return this.ourCapabilities;
  }

  /**
   * RFC 4724 §3: the R bit says "I have restarted" and belongs only to the OPENs sent while the restart is
   * under way; the owner clears it once route selection is no longer deferred. Affects the next OPEN.
   */
  setRestarting(restarting: boolean): void {
    const index = this.ourCapabilities.findIndex((c) => c.code === 64);
    const current = this.ourCapabilities[index];
    if (index < 0 || current === undefined || !('restartTime' in current)) return;
    this.ourCapabilities[index] = { ...current, restarting };
  }

  start(): void {
    this.adminUp = true;
    this.guard('start', () => this.dispatch({ type: this.config.passive ? 'ManualStart_with_PassiveTcpEstablishment' : 'ManualStart' }));
  }

  /** ManualStop. A number is a Cease subcode (RFC 4486: 2 Administrative Shutdown, 3 Peer De-configured…). */
  stop(reason: string | number = 'administrative shutdown'): void {
    this.adminUp = false;
    this.guard('stop', () => {
      if (typeof reason === 'number') this.dispatch({ type: 'ManualStop', reason: notificationReason(ErrorCode.CEASE, reason), subcode: reason });
      else this.dispatch({ type: 'ManualStop', reason });
    });
  }

  /** The owner's work for this peer failed unexpectedly: Cease / Unspecific, Idle, retry after the backoff. */
  abort(reason: string): void {
    this.guard('abort', () => this.internalError(reason));
  }

  /** RFC 4271 §6.8: this session's connection lost the collision; Cease/7, Idle, no automatic restart. */
  collisionDump(): void {
    this.guard('collision dump', () => this.dispatch({ type: 'OpenCollisionDump' }));
  }

  /** Takes an inbound connection for this peer; false (conn untouched) when stopped or already connected. */
  acceptConnection(conn: Connection): boolean {
    if (!this.adminUp || this.conn) return false;
    if (this.holdingDown) return false; // the error wait / restart delay covers the peer's connections too
    if (this.fsm.name === 'Idle') this.guard('accept', () => this.dispatch({ type: 'AutomaticStart' })); // waiting out the backoff: go now
    if (this.fsm.name !== 'Connect' && this.fsm.name !== 'Active') return false;
    this.abortConnect();
    this.attach(conn, 'inbound');
    this.log.info({ peer: this.config.peerAddress, remote: `${conn.remoteAddress}:${conn.remotePort}` }, 'BGP inbound connection accepted');
    this.guard('accept', () => this.dispatch({ type: 'TcpConnectionConfirmed' }));
    return true;
  }

  /** Queues already-encoded UPDATE messages; false when not Established (nothing queued). */
  sendUpdates(messages: readonly Uint8Array[]): boolean {
    if (!this.established) return false;
    for (const m of messages) this.enqueue(m);
    this.stats.updatesOut += messages.length;
    return true;
  }

  /** Encodes and queues one message with the negotiated codec context; false when not Established. */
  send(message: BgpMessage): boolean {
    if (!this.established || !this.negotiatedSession) return false;
    this.enqueue(encodeMessage(message, this.negotiatedSession.codec));
    if (message.type === 2) this.stats.updatesOut++;
    return true;
  }

  /** Asks the peer to resend its routes (RFC 2918); false when not Established or not supported. */
  sendRouteRefresh(afi: number = Afi.IPV4, safi: number = Safi.UNICAST): boolean {
    if (!this.negotiatedSession?.routeRefresh) return false;
    return this.send({ type: 5, afi, safi, subtype: 0 });
  }

  /**
   * A resource limit passed (RFC 4486): Cease with `subcode` and `data` (for subcode 1, Maximum Number of
   * Prefixes Reached: AFI, SAFI, the limit), then Idle, no reconnect nor inbound for at least `restartMs`.
   */
  limitExceeded(subcode: number, data: Uint8Array, reason: string, restartMs?: number): void {
    this.guard('limit', () => this.dispatch({ type: 'LimitExceeded', subcode, data, reason, ...(restartMs !== undefined ? { restartMs } : {}) }));
  }

  /**
   * Emits to the owner; a throwing handler is logged, never allowed to cut a transition's actions short.
   * What the owner did with the event (import, RIB, export) may now be half done, so the session is reset
   * (queued behind the current transition; ignored once the session is down anyway) and the routes are
   * learned again from scratch.
   */
  private notify<K extends keyof SessionEvents>(event: K, ...args: SessionEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: SessionEvents[K]) => boolean)(event, ...args);
    } catch (error) {
      const message = errorText(error);
      this.log.error({ peer: this.config.peerAddress, event, error: message, stack: error instanceof Error ? error.stack : undefined }, 'BGP session event handler threw');
      this.internalError(`the '${event}' handler threw: ${message}`);
    }
  }

  // ---- containment -------------------------------------------------------------------------------------

  /** Runs one way into the session (I/O, timer, owner call); nothing it throws leaves the session. */
  private guard(where: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.contain(where, error);
    }
  }

  /** An unexpected exception: log it with the peer and reset this session (see the header). */
  private contain(where: string, error: unknown, notification?: BgpError): void {
    const message = errorText(error);
    try {
      this.log.error(
        { peer: this.config.peerAddress, state: this.fsm.name, where, error: message, stack: error instanceof Error ? error.stack : undefined },
        'BGP session internal error: resetting the session',
      );
      // The dispatch loop that threw is gone: what it had queued belonged to the broken run.
      if (!this.dispatching) this.queue.length = 0;
      this.internalError(`internal error while handling ${where}: ${message}`, notification);
      // A transition that threw halfway may already be in Idle with its close, 'down' or backoff timer not
      // done; the InternalError above is then ignored (no connection in the FSM's view): finish the reset.
      const idleLike = this.fsm.name === 'Idle' || this.fsm.name === 'Connect' || this.fsm.name === 'Active';
      if (!this.dispatching && idleLike && (this.conn !== undefined || this.downOwed)) this.hardReset(`internal error while handling ${where}: ${message}`);
    } catch (second) {
      this.hardReset(`internal error while handling ${where}: ${message}; resetting failed too: ${errorText(second)}`);
    }
  }

  private internalError(reason: string, notification?: BgpError): void {
    const error = notification ?? new BgpError(ErrorCode.CEASE, 0, reason);
    this.stats.lastError = reason;
    this.stats.lastErrorCode = undefined;
    this.dispatch({ type: 'InternalError', error });
  }

  /** The last resort when even the FSM failed: drop the connection and timers, Idle, retry after the backoff. */
  private hardReset(reason: string): void {
    try {
      this.log.error({ peer: this.config.peerAddress, state: this.fsm.name, reason }, 'BGP session reset without a NOTIFICATION');
      this.queue.length = 0;
      for (const name of TIMER_NAMES) this.stopTimer(name);
      this.abortConnect();
      const conn = this.detach();
      this.outQueue = [];
      if (conn) {
        try {
          // Cease / Unspecific, if the connection still takes it, so the peer hears why.
          conn.write(encodeMessage({ type: 3, code: ErrorCode.CEASE, subcode: 0, data: new Uint8Array(0) }, { fourOctetAs: false }));
          conn.close();
        } catch {
          conn.destroy();
        }
      }
      const from = this.reportedState;
      const hadSession = this.downOwed;
      this.downOwed = false;
      this.fsm = { ...this.fsm, name: 'Idle', attempts: this.fsm.attempts + 1, holdTime: 0, keepaliveTime: 0 };
      this.stats.lastError = reason;
      this.stats.stateSince = this.clock.now();
      if (this.adminUp) this.arm('IdleHold', this.clock.now() + backoffMs(this.fsm.attempts, this.fsmConfig));
      if (hadSession) this.releaseRoutes(reason);
      if (from !== 'Idle') {
        this.reportedState = 'Idle';
        this.notify('state', { from, to: 'Idle', reason });
      }
    } catch (error) {
      this.log.error({ peer: this.config.peerAddress, reason, error: errorText(error) }, 'BGP session could not be reset');
    }
  }

  // ---- the FSM driver ------------------------------------------------------------------------------------

  private dispatch(event: FsmEvent): void {
    this.queue.push(event);
    if (this.dispatching) return;
    this.dispatching = true;
    try {
      // Bounded: each event handled can queue a few more only through handlers; 10 000 is a bug.
      for (let n = 0; this.queue.length > 0; n++) {
        if (n > 10_000) throw new Error(`BGP session ${this.config.peerAddress}: FSM event loop did not settle`);
        this.run(this.queue.shift()!);
      }
    } finally {
      this.dispatching = false;
    }
  }

  private run(event: FsmEvent): void {
    const from = this.fsm.name;
    const t = transition(this.fsm, event, this.fsmConfig);
    this.fsm = t.next;
    if (t.next.name === 'OpenSent' || t.next.name === 'OpenConfirm' || t.next.name === 'Established') this.downOwed = true;
    for (const action of t.actions) this.perform(action);
    if (t.next.name !== from) {
      this.stats.stateSince = this.clock.now();
      this.log.info({ peer: this.config.peerAddress, from, to: t.next.name, reason: t.reason }, 'BGP state change');
      this.reportedState = t.next.name;
      this.notify('state', { from, to: t.next.name, reason: t.reason });
    } else {
      this.log.debug({ peer: this.config.peerAddress, state: from, event: event.type, reason: t.reason }, 'BGP event');
    }
  }

  private perform(action: FsmAction): void {
    switch (action.type) {
      case 'connect':
        this.connect();
        return;
      case 'close':
        this.closeConnection();
        return;
      case 'sendOpen':
        this.sendOpen();
        return;
      case 'sendKeepalive':
        this.enqueue(KEEPALIVE);
        return;
      case 'sendNotification': {
        if (!this.conn) return;
        this.enqueue(encodeMessage({ type: 3, code: action.code, subcode: action.subcode, data: action.data }, { fourOctetAs: false }), true);
        this.stats.notificationsOut++;
        const reason = `sent NOTIFICATION ${describeNotification(action.code, action.subcode)}: ${action.reason}`;
        this.stats.lastError = reason;
        this.stats.lastErrorCode = undefined;
        this.log.warn({ peer: this.config.peerAddress, code: action.code, subcode: action.subcode, reason: action.reason }, 'BGP NOTIFICATION sent');
        this.notify('notification', { direction: 'sent', code: action.code, subcode: action.subcode, data: action.data, reason: action.reason });
        return;
      }
      case 'startTimer':
        this.startTimer(action.name, action.ms);
        return;
      case 'stopTimer':
        this.stopTimer(action.name);
        return;
      case 'negotiated':
        this.pendingHold = { holdTime: action.holdTime, keepaliveTime: action.keepaliveTime };
        if (this.peerOpen) {
          this.negotiatedSession = negotiateCapabilities(this.ourCapabilities, this.peerOpen, this.config, this.pendingHold);
        }
        return;
      case 'established':
        this.stats.establishedCount++;
        this.stats.establishedSince = this.clock.now();
        return;
      case 'down':
        this.downOwed = false;
        this.releaseRoutes(action.reason);
        return;
      case 'processUpdate':
        this.processUpdate();
        return;
      case 'processRouteRefresh': {
        const m = this.current?.message;
        if (m?.type !== 5) return;
        // RFC 7313 §5: an unknown subtype is ignored (and logged). BoRR/EoRR (1, 2) mark the peer's own
        // re-advertisement under Enhanced Route Refresh, which we do not offer: they ask us for nothing.
        if (m.subtype !== 0) {
          this.log.info({ peer: this.config.peerAddress, subtype: m.subtype }, 'BGP ROUTE-REFRESH with a subtype other than 0 (request): ignored');
          return;
        }
        // RFC 2918 §4: a ROUTE-REFRESH for a family we did not advertise is ignored.
        if (!this.negotiatedSession?.families.some((f) => f.afi === m.afi && f.safi === m.safi)) {
          this.log.info({ peer: this.config.peerAddress, afi: m.afi, safi: m.safi }, 'BGP ROUTE-REFRESH for a family not negotiated: ignored');
          return;
        }
        this.notify('routeRefresh', { afi: m.afi, safi: m.safi, subtype: m.subtype });
        return;
      }
    }
  }

  // ---- timers ------------------------------------------------------------------------------------------------

  /**
   * Arms `name` to fire `ms` from now. The Hold timer restarts on every message received, so restarting only
   * moves the deadline: the underlying timer stays and re-arms itself for the rest when it fires early. No
   * allocation per message, and the timer still fires exactly at the deadline.
   */
  private startTimer(name: TimerName, ms: number): void {
    const due = this.clock.now() + ms;
    const armed = this.timers.get(name);
    if (armed !== undefined && armed.firesAt <= due) {
      armed.due = due;
      return;
    }
    this.stopTimer(name);
    this.arm(name, due);
  }

  private arm(name: TimerName, due: number): void {
    const timer = { due, firesAt: due, handle: undefined as unknown as TimerHandle };
    timer.handle = this.clock.setTimeout(() => {
      if (this.timers.get(name) !== timer) return;
      const now = this.clock.now();
      if (now < timer.due) {
        this.timers.delete(name);
        this.arm(name, timer.due);
        return;
      }
      this.timers.delete(name);
      this.guard(`the ${name} timer`, () => this.dispatch({ type: TIMER_EVENTS[name] } as FsmEvent));
    }, due - this.clock.now());
    this.timers.set(name, timer);
  }

  private stopTimer(name: TimerName): void {
    const timer = this.timers.get(name);
    if (timer !== undefined) {
      this.clock.clearTimeout(timer.handle);
      this.timers.delete(name);
    }
  }

  // ---- connection ------------------------------------------------------------------------------------------

  private connect(): void {
    this.abortConnect();
    const abort = new AbortController();
    this.connectAbort = abort;
    const options = {
      remoteAddress: this.config.peerAddress,
      remotePort: this.config.port ?? BGP_PORT,
      ...(this.config.localAddress ? { localAddress: this.config.localAddress } : {}),
      ...(this.config.md5Key !== undefined ? { md5Key: this.config.md5Key } : {}),
      ...(this.config.ttlSecurity !== undefined ? { ttlSecurity: this.config.ttlSecurity } : {}),
      signal: abort.signal,
    };
    this.log.debug({ peer: this.config.peerAddress, port: options.remotePort }, 'BGP connecting');
    this.config.transport.connect(options).then(
      (conn) =>
        this.guard('the connection', () => {
          if (abort.signal.aborted || this.connectAbort !== abort || this.conn) {
            conn.destroy();
            return;
          }
          this.connectAbort = undefined;
          this.attach(conn, 'outbound');
          this.dispatch({ type: 'TcpConnectionConfirmed' });
        }),
      (error: unknown) =>
        this.guard('a failed connect', () => {
          if (abort.signal.aborted || this.connectAbort !== abort) return;
          this.connectAbort = undefined;
          const message = error instanceof Error ? error.message : String(error);
          this.stats.lastError = message;
          this.stats.lastErrorCode = error instanceof TransportError ? error.code : undefined;
          this.log.info({ peer: this.config.peerAddress, error: message }, 'BGP connect failed');
          this.dispatch({ type: 'TcpConnectionFails', reason: message });
        }),
    );
  }

  private abortConnect(): void {
    if (this.connectAbort) {
      this.connectAbort.abort();
      this.connectAbort = undefined;
    }
  }

  private attach(conn: Connection, direction: 'inbound' | 'outbound'): void {
    const generation = ++this.generation;
    this.conn = conn;
    this.direction = direction;
    this.framer = new MessageFramer();
    this.outQueue = [];
    this.outBytes = 0;
    this.overflowed = false;
    this.blocked = false;
    this.peerOpen = undefined;
    this.negotiatedSession = undefined;
    let lastError: Error | undefined;
    conn.on('data', (chunk) => {
      if (generation === this.generation) this.guard('received bytes', () => this.onData(chunk, generation));
    });
    conn.on('drain', () => {
      if (generation !== this.generation) return;
      this.blocked = false;
      this.guard('a write', () => this.flush(false));
    });
    conn.on('error', (error) => {
      lastError = error;
    });
    conn.on('close', () => {
      if (generation !== this.generation) return;
      this.detach();
      const code = lastError instanceof TransportError ? lastError.code : undefined;
      const reason = lastError ? lastError.message : 'connection closed by the peer';
      this.stats.lastError = reason;
      this.stats.lastErrorCode = code;
      this.guard('the connection closing', () => this.dispatch({ type: 'TcpConnectionFails', reason }));
    });
  }

  private detach(): Connection | undefined {
    const conn = this.conn;
    this.generation++;
    this.conn = undefined;
    return conn;
  }

  private closeConnection(): void {
    this.abortConnect();
    if (!this.conn) return;
    this.flush(true);
    const conn = this.detach();
    this.outQueue = [];
    this.outBytes = 0;
    conn?.close();
  }

  // ---- writing ---------------------------------------------------------------------------------------------

  /** Queues one message. `notification`: queued even past the bound (the reset's own NOTIFICATION). */
  private enqueue(bytes: Uint8Array, notification = false): void {
    if (!this.conn || (this.overflowed && !notification)) return;
    this.outQueue.push(bytes);
    this.outBytes += bytes.length;
    this.stats.messagesOut++;
    const max = this.config.maxSendQueueBytes ?? DEFAULT_MAX_SEND_QUEUE_BYTES;
    if (!notification && this.outBytes + (this.conn.bufferedBytes ?? 0) > max) {
      this.overflow(max);
      return;
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // Batch: everything queued in this turn goes out in as few writes as possible.
      queueMicrotask(() => {
        this.flushScheduled = false;
        this.guard('a write', () => this.flush(false));
      });
    }
  }

  /**
   * The peer stopped reading (or reads slower than we must send): rather than buffer without end, drop
   * what is queued and reset with Cease / Out of Resources (RFC 4486 subcode 8). The NOTIFICATION goes
   * out if the socket still takes it; the close is bounded by the transport either way.
   */
  private overflow(max: number): void {
    const queued = this.queuedBytes;
    this.overflowed = true;
    this.outQueue = [];
    this.outBytes = 0;
    const reason = `send queue over ${max} bytes (${queued} queued): the peer does not read`;
    this.log.warn({ peer: this.config.peerAddress, queuedBytes: queued, maxSendQueueBytes: max }, 'BGP send queue full: resetting the session');
    this.dispatch({ type: 'LimitExceeded', subcode: CeaseSubcode.OUT_OF_RESOURCES, data: new Uint8Array(0), reason });
  }

  /** Writes queued messages in order, concatenated up to 64 KiB per write. `force` ignores back-pressure. */
  private flush(force: boolean): void {
    const conn = this.conn;
    if (!conn) return;
    while (this.outQueue.length > 0 && (force || !this.blocked)) {
      let size = 0;
      let count = 0;
      while (count < this.outQueue.length && (count === 0 || size + this.outQueue[count]!.length <= MAX_WRITE)) {
        size += this.outQueue[count]!.length;
        count++;
      }
      const parts = this.outQueue.splice(0, count);
      this.outBytes -= size;
      let chunk: Uint8Array;
      if (parts.length === 1) chunk = parts[0]!;
      else {
        chunk = new Uint8Array(size);
        let at = 0;
        for (const p of parts) {
          chunk.set(p, at);
          at += p.length;
        }
      }
      if (!conn.write(chunk)) this.blocked = true;
    }
  }

  private sendOpen(): void {
    const open: OpenMessage = {
      type: 1,
      version: BGP_VERSION,
      myAs: this.config.localAs > 0xffff ? AS_TRANS : this.config.localAs, // RFC 6793 §4.1
      holdTime: this.fsmConfig.holdTime,
      bgpId: this.config.routerId,
      capabilities: this.ourCapabilities,
    };
    this.enqueue(encodeMessage(open, { fourOctetAs: false }));
  }

  // ---- reading ---------------------------------------------------------------------------------------------

  private onData(chunk: Uint8Array, generation: number): void {
    let frames: Uint8Array[];
    try {
      frames = this.framer.push(chunk);
    } catch (error) {
      if (!isBgpError(error)) throw error; // contained by the caller's guard
      this.dispatch({ type: 'BGPHeaderErr', error });
      return;
    }
    for (const frame of frames) {
      if (generation !== this.generation) return; // a previous message closed the connection
      this.stats.messagesIn++;
      let result: DecodeResult;
      try {
        result = decodeMessage(frame, this.negotiatedSession?.codec ?? { fourOctetAs: false });
      } catch (error) {
        if (!isBgpError(error)) {
          // A decoder bug, not a NOTIFICATION the codec chose: answer with the message's error code and
          // subcode 0 (Unspecific, RFC 4271 §4.5), and keep the bytes in the log for the bug report.
          const code = DECODE_FAILURE_CODES[frame[18]!] ?? ErrorCode.MESSAGE_HEADER;
          this.log.error({ peer: this.config.peerAddress, hex: Buffer.from(frame).toString('hex') }, 'BGP message the decoder failed on');
          this.contain('a received message', error, code === 0 ? undefined : new BgpError(code, 0, `decoding failed: ${errorText(error)}`));
          return;
        }
        this.log.warn({ peer: this.config.peerAddress, code: error.code, subcode: error.subcode, detail: error.detail }, 'BGP message refused');
        this.dispatch({ type: ERROR_EVENTS[error.code] ?? 'BGPHeaderErr', error });
        continue;
      }
      this.onMessage(result);
    }
  }

  private onMessage(result: DecodeResult): void {
    const message = result.message;
    this.current = result;
    try {
      switch (message.type) {
        case 1: {
          const error = checkOpen(message, this.config);
          if (error) {
            this.dispatch({ type: 'BGPOpenMsgErr', error });
            return;
          }
          this.peerOpen = message;
          this.dispatch({ type: 'BGPOpen', peerHoldTime: message.holdTime });
          if (this.fsm.name === 'OpenConfirm') this.notify('open', { bgpId: message.bgpId, open: message });
          return;
        }
        case 2:
          this.stats.updatesIn++;
          this.dispatch({ type: 'UpdateMsg' });
          return;
        case 3: {
          this.stats.notificationsIn++;
          const reason = `received NOTIFICATION ${describeNotification(message.code, message.subcode)}`;
          this.stats.lastError = reason;
          this.stats.lastErrorCode = undefined;
          this.log.warn({ peer: this.config.peerAddress, code: message.code, subcode: message.subcode }, 'BGP NOTIFICATION received');
          this.notify('notification', { direction: 'received', code: message.code, subcode: message.subcode, data: message.data, reason });
          this.dispatch({ type: 'NotifMsg', reason, code: message.code, subcode: message.subcode });
          return;
        }
        case 4:
          this.dispatch({ type: 'KeepAliveMsg' });
          return;
        case 5:
          this.dispatch({ type: 'RouteRefreshMsg' });
          return;
      }
    } finally {
      this.current = undefined;
    }
  }

  // ---- Adj-RIB-In ------------------------------------------------------------------------------------------

  private processUpdate(): void {
    const result = this.current;
    if (!result || result.message.type !== 2) return;
    const update: UpdateMessage = result.message;
    if (result.treatAsWithdraw) {
      // RFC 7606 §2: treat-as-withdraw keeps the session up; say why.
      this.log.warn({ peer: this.config.peerAddress, reason: result.treatAsWithdraw, prefixes: update.withdrawn.length }, 'BGP UPDATE treated as withdraw (RFC 7606)');
    }
    if (result.discarded && result.discarded.length > 0) {
      this.log.warn({ peer: this.config.peerAddress, discarded: result.discarded }, 'BGP attributes discarded (RFC 7606)');
    }
    if (!result.treatAsWithdraw && isEndOfRib(update)) {
      const mp = update.attributes.mpUnreach;
      this.sweepStale();
      this.notify('endOfRib', { afi: mp?.afi ?? Afi.IPV4, safi: mp?.safi ?? Safi.UNICAST });
      return;
    }
    const track = this.config.trackAdjRibIn ?? true;
    const withdrawn: Prefix[] = [];
    const withdraw = (prefixes: readonly Prefix[]): void => {
      if (!track) withdrawn.push(...prefixes);
      else for (const p of prefixes) if (this.adjRibIn.delete(prefixKey(p))) withdrawn.push(p);
    };
    withdraw(update.withdrawn);
    const attrs = update.attributes;
    if (attrs.mpUnreach && attrs.mpUnreach.afi === Afi.IPV4 && attrs.mpUnreach.safi === Safi.UNICAST) withdraw(attrs.mpUnreach.withdrawn);

    const announced: AdjRibInEntry[] = [];
    if (update.nlri.length > 0 || attrs.mpReach) {
      const base: PathAttributes = { ...attrs };
      delete base.mpReach;
      delete base.mpUnreach;
      const add = (prefixes: readonly Prefix[], a: PathAttributes): void => {
        for (const prefix of prefixes) {
          const entry: AdjRibInEntry = { prefix, attrs: a };
          if (track) this.adjRibIn.set(prefixKey(prefix), entry);
          announced.push(entry);
        }
      };
      add(update.nlri, base);
      const mp = attrs.mpReach;
      if (mp && mp.afi === Afi.IPV4 && mp.safi === Safi.UNICAST && mp.nlri.length > 0) {
        // RFC 4760 §3: for MP_REACH NLRI the next hop is the one inside MP_REACH_NLRI.
        const nh = mp.nextHop;
        const nextHop = nh.length === 4 ? ((nh[0]! << 24) | (nh[1]! << 16) | (nh[2]! << 8) | nh[3]!) >>> 0 : undefined;
        add(mp.nlri, nextHop !== undefined ? { ...base, nextHop } : base);
      }
    }
    if (announced.length > 0 || withdrawn.length > 0) this.notify('update', { announced, withdrawn, message: update });
  }

  /** RFC 4724 §4.2 (the seam for graceful restart): End-of-RIB removes routes the peer did not refresh. */
  private sweepStale(): void {
    const withdrawn: Prefix[] = [];
    for (const [key, entry] of this.adjRibIn) {
      if (entry.stale) {
        this.adjRibIn.delete(key);
        withdrawn.push(entry.prefix);
      }
    }
    if (withdrawn.length > 0) this.notify('update', { announced: [], withdrawn, message: { type: 2, withdrawn, attributes: {}, nlri: [] } });
  }

  private releaseRoutes(reason: string): void {
    const info: DownInfo = { reason, ...(this.negotiatedSession?.gracefulRestart ? { peerGracefulRestart: this.negotiatedSession.gracefulRestart } : {}) };
    const graceful = this.config.onDown?.(info)?.graceful ?? false;
    const withdrawn: Prefix[] = [];
    if (graceful) {
      for (const entry of this.adjRibIn.values()) entry.stale = true;
    } else {
      for (const entry of this.adjRibIn.values()) withdrawn.push(entry.prefix);
      this.adjRibIn.clear();
    }
    this.stats.establishedSince = undefined;
    this.pendingHold = undefined;
    this.notify('down', { reason, graceful, withdrawn });
  }
}

/** "Connection refused" etc. for a status table, from the session's last transport error. */
export function describeSessionError(stats: SessionStats): string | undefined {
  if (stats.lastErrorCode) return describeErrno(stats.lastErrorCode);
  return stats.lastError;
}
