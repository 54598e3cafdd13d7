// One BGP peer: drives the pure FSM (./fsm.ts) with an injected Clock and Transport, checks and negotiates
// the OPEN (./negotiation.ts), frames and decodes messages, and tells its owner what happened. It keeps no
// routes: an owner that needs an Adj-RIB-In feeds one (./rib/adj-rib-in.ts) from the 'update' events.
//
// API for the speaker (bgp/speaker.ts):
//   const s = new Session({ localAs, peerAs, routerId, peerAddress, transport, clock?, logger?, ... });
//   s.on('state' | 'open' | 'update' | 'endOfRib' | 'down' | 'notification' | 'routeRefresh', fn)
//   s.start()                 ManualStart (or the passive variant when config.passive): connect / listen.
//   s.stop(reason?|subcode?)  ManualStop: Cease/Administrative Shutdown (or the given Cease subcode) when a
//                             connection is up, then Idle with no restart. start() again to bring it back.
//   s.acceptConnection(conn)  an inbound connection for this peer. Returns false (and leaves `conn` to the
//                             caller) when the session is stopped or already has a connection; the speaker
//                             resolves collisions (RFC 4271 §6.8, `collisionWinner` in ./negotiation.ts) with
//                             `state`, `peerBgpId`, `connectionDirection` and the 'open' event, and calls
//                             `collisionDump()` (Cease / Connection Collision Resolution) on the loser. A session
//                             holds one connection, so the speaker runs the inbound one in a second (passive)
//                             Session until the OPENs decide. A dumped session goes to Idle, no restart by itself.
//   s.sendUpdates(bytes[])    already-encoded UPDATEs (codec's encodeUpdates/encodeWithdrawals/EndOfRib),
//                             only when Established (returns false otherwise); batched into few writes.
//   s.send(msg) / s.sendRouteRefresh()
//   s.limitExceeded(subcode, data, reason, restartMs?)  a resource limit passed (RFC 4486 Cease, e.g. the
//                             speaker's prefix limit): Cease, Idle, no reconnect nor inbound for restartMs.
//   s.holdingDown             waiting after an error (DampPeerOscillations) or a limit: inbound is refused.
//   s.queuedBytes             bytes the peer has not taken yet; past maxSendQueueBytes: Cease / Out of Resources.
//   s.abort(reason)           the owner's work for this peer failed: Cease / Unspecific, reconnect after backoff.
//   s.noteError(reason)       the owner's own reason this peer is not up (e.g. its inbound connections refused).
//   s.state, s.established, s.peerBgpId, s.negotiated (hold, keepalive, capabilities, codec ctx),
//   s.codecContext, s.localAddress (of the current connection, for next-hop-self),
//   s.stats (counters, lastReason — a SessionDownReason, ./down-reason.ts — lastError, establishedSince).
// Events are a typed node EventEmitter (SessionEvents below). Within one transition, action events
// ('notification', 'down', 'update') come first and 'state' last. Handlers may call back into the session
// (stop(), collisionDump(), sendUpdates()): FSM events raised while one is being handled are queued and
// run after it, so a transition's actions are never interleaved with another's.
//
// Why this is hard:
// - Stale callbacks. A connect attempt, a socket and each timer can report after the session has moved
//   on; every callback carries the generation it belongs to and is dropped when that is over.
// - Ordering. A NOTIFICATION must reach the wire before the close; UPDATEs queued while the socket is
//   back-pressured keep their order (./send-queue.ts), and keepalive timers keep running meanwhile.
// - Containment. Nothing may escape a session: one peer's bytes must not take the process (and every other
//   peer) down. Every way into the session — received bytes, a timer, a write, the connect attempt, the
//   owner's calls, the owner's event handlers — runs inside `guard()`. An unexpected exception there (a
//   bug, never the peer's protocol error: those are BgpErrors with their own NOTIFICATION) is logged with
//   the peer and the reason and resets this session with a NOTIFICATION — Cease / Unspecific, or, when a
//   decoder failed on a message, that message's error code with subcode 0 (RFC 4271 §4.5) — through the
//   FSM's InternalError event; if even that fails, the connection is dropped without the FSM (`hardReset`).
//
// The code is in two layers: ./session-connection.ts (state, connect, attach/detach, writing, reading) and
// this file (the public API, containment, the FSM driver, what the owner hears).

import { encodeMessage, KEEPALIVE } from './codec/index.js';
import { describeDownReason, type SessionDownReason } from './down-reason.js';
import { BgpError, ErrorCode, notificationReason } from './errors.js';
import { backoffMs, TIMER_NAMES, transition, type BgpState, type FsmAction, type FsmEvent } from './fsm.js';
import { negotiateCapabilities, withRestartingBit, type NegotiatedSession } from './negotiation.js';
import { errorText, readUpdate } from './session-receive.js';
import type { SessionEvents } from './session-events.js';
import { SessionConnection } from './session-connection.js';
import type { Connection } from './transport.js';
import {
  Afi,
  MessageType,
  RouteRefreshSubtype,
  Safi,
  type BgpMessage,
  type Capability,
  type CodecContext,
} from './types.js';

export type { GracefulRestartConfig, GracefulRestartCapability, NegotiatedSession } from './negotiation.js';
export {
  DEFAULT_ERROR_WAIT_INITIAL_MS,
  DEFAULT_ERROR_WAIT_MAX_MS,
  DEFAULT_MAX_SEND_QUEUE_BYTES,
  validateSessionConfig,
} from './session-config.js';
export type { Logger, SessionConfig } from './session-config.js';
export type { SessionDownReason } from './down-reason.js';
export type {
  NotificationEvent,
  ReceivedRoute,
  SessionEvents,
  SessionState,
  SessionStats,
  StateChange,
} from './session-events.js';

export class Session extends SessionConnection {
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
    return this.sendQueue?.queuedBytes ?? 0;
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
    this.ourCapabilities = withRestartingBit(this.ourCapabilities, restarting);
  }

  /** Records why this peer is not up, for the status (`stats.lastReason`, `stats.lastError`). */
  noteError(reason: SessionDownReason): void {
    this.stats.lastReason = reason;
    this.stats.lastError = describeDownReason(reason);
  }

  start(): void {
    this.adminUp = true;
    this.guard('start', () =>
      this.dispatch({ type: this.config.passive ? 'ManualStart_with_PassiveTcpEstablishment' : 'ManualStart' }),
    );
  }

  /** ManualStop. A number is a Cease subcode (RFC 4486: 2 Administrative Shutdown, 3 Peer De-configured…). */
  stop(reason: string | number = 'administrative shutdown'): void {
    this.adminUp = false;
    this.guard('stop', () => {
      if (typeof reason === 'number')
        this.dispatch({ type: 'ManualStop', reason: notificationReason(ErrorCode.CEASE, reason), subcode: reason });
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
    this.log.info(
      { peer: this.config.peerAddress, remote: `${conn.remoteAddress}:${conn.remotePort}` },
      'BGP inbound connection accepted',
    );
    this.guard('accept', () => this.dispatch({ type: 'TcpConnectionConfirmed' }));
    return true;
  }

  /** Queues already-encoded UPDATE messages; false when not Established (nothing queued). */
  sendUpdates(messages: readonly Uint8Array[], updates: number = messages.length): boolean {
    if (!this.established) return false;
    for (const m of messages) this.enqueue(m);
    // `updates`: UPDATE messages in `messages` when some hold several back to back (a shared buffer).
    this.stats.updatesOut += updates;
    this.stats.messagesOut += updates - messages.length;
    return true;
  }

  /** Encodes and queues one message with the negotiated codec context; false when not Established. */
  send(message: BgpMessage): boolean {
    if (!this.established || !this.negotiatedSession) return false;
    this.enqueue(encodeMessage(message, this.negotiatedSession.codec));
    if (message.type === MessageType.UPDATE) this.stats.updatesOut++;
    return true;
  }

  /** Asks the peer to resend its routes (RFC 2918); false when not Established or not supported. */
  sendRouteRefresh(afi: number = Afi.IPV4, safi: number = Safi.UNICAST): boolean {
    if (!this.negotiatedSession?.routeRefresh) return false;
    return this.send({ type: MessageType.ROUTE_REFRESH, afi, safi, subtype: RouteRefreshSubtype.REQUEST });
  }

  /**
   * A resource limit passed (RFC 4486): Cease with `subcode` and `data` (for subcode 1, Maximum Number of
   * Prefixes Reached: AFI, SAFI, the limit), then Idle, no reconnect nor inbound for at least `restartMs`.
   */
  limitExceeded(subcode: number, data: Uint8Array, reason: string, restartMs?: number): void {
    this.guard('limit', () =>
      this.dispatch({
        type: 'LimitExceeded',
        subcode,
        data,
        reason,
        ...(restartMs !== undefined ? { restartMs } : {}),
      }),
    );
  }

  /**
   * Emits to the owner; a throwing handler is logged, never allowed to cut a transition's actions short.
   * What the owner did with the event (import, RIB, export) may now be half done, so the session is reset
   * (queued behind the current transition; ignored once the session is down anyway) and the routes are
   * learned again from scratch.
   */
  protected notify<K extends keyof SessionEvents>(event: K, ...args: SessionEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: SessionEvents[K]) => boolean)(event, ...args);
    } catch (error) {
      const message = errorText(error);
      this.log.error(
        {
          peer: this.config.peerAddress,
          event,
          error: message,
          stack: error instanceof Error ? error.stack : undefined,
        },
        'BGP session event handler threw',
      );
      this.internalError(`the '${event}' handler threw: ${message}`);
    }
  }

  // ---- containment -------------------------------------------------------------------------------------

  /** Runs one way into the session (I/O, timer, owner call); nothing it throws leaves the session. */
  protected guard(where: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.contain(where, error);
    }
  }

  /** An unexpected exception: log it with the peer and reset this session (see the header). */
  protected contain(where: string, error: unknown, notification?: BgpError): void {
    const message = errorText(error);
    try {
      this.log.error(
        {
          peer: this.config.peerAddress,
          state: this.fsm.name,
          where,
          error: message,
          stack: error instanceof Error ? error.stack : undefined,
        },
        'BGP session internal error: resetting the session',
      );
      // The dispatch loop that threw is gone: what it had queued belonged to the broken run.
      if (!this.dispatching) this.queue.length = 0;
      this.internalError(`internal error while handling ${where}: ${message}`, notification);
      // A transition that threw halfway may already be in Idle with its close, 'down' or backoff timer not
      // done; the InternalError above is then ignored (no connection in the FSM's view): finish the reset.
      const idleLike = this.fsm.name === 'Idle' || this.fsm.name === 'Connect' || this.fsm.name === 'Active';
      if (!this.dispatching && idleLike && (this.conn !== undefined || this.downOwed))
        this.hardReset(`internal error while handling ${where}: ${message}`);
    } catch (second) {
      this.hardReset(`internal error while handling ${where}: ${message}; resetting failed too: ${errorText(second)}`);
    }
  }

  private internalError(reason: string, notification?: BgpError): void {
    const error = notification ?? new BgpError(ErrorCode.CEASE, 0, reason);
    this.noteError({ kind: 'internalError', detail: reason });
    this.dispatch({ type: 'InternalError', error });
  }

  /** The last resort when even the FSM failed: drop the connection and timers, Idle, retry after the backoff. */
  private hardReset(reason: string): void {
    try {
      this.log.error(
        { peer: this.config.peerAddress, state: this.fsm.name, reason },
        'BGP session reset without a NOTIFICATION',
      );
      this.queue.length = 0;
      for (const name of TIMER_NAMES) this.timers.stop(name);
      this.abortConnect();
      this.sendQueue?.clear();
      const conn = this.detach();
      if (conn) {
        try {
          // Cease / Unspecific, if the connection still takes it, so the peer hears why.
          conn.write(
            encodeMessage(
              { type: MessageType.NOTIFICATION, code: ErrorCode.CEASE, subcode: 0, data: new Uint8Array(0) },
              { fourOctetAs: false },
            ),
          );
          conn.close();
        } catch {
          conn.destroy();
        }
      }
      const from = this.reportedState;
      const hadSession = this.downOwed;
      this.downOwed = false;
      this.fsm = { ...this.fsm, name: 'Idle', attempts: this.fsm.attempts + 1, holdTime: 0, keepaliveTime: 0 };
      this.noteError({ kind: 'internalError', detail: reason });
      this.stats.stateSince = this.clock.now();
      if (this.adminUp) this.timers.arm('IdleHold', this.clock.now() + backoffMs(this.fsm.attempts, this.fsmConfig));
      if (hadSession) this.sessionDown(reason);
      if (from !== 'Idle') {
        this.reportedState = 'Idle';
        this.notify('state', { from, to: 'Idle', reason });
      }
    } catch (error) {
      this.log.error(
        { peer: this.config.peerAddress, reason, error: errorText(error) },
        'BGP session could not be reset',
      );
    }
  }

  // ---- the FSM driver ------------------------------------------------------------------------------------

  protected dispatch(event: FsmEvent): void {
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
    if (t.next.name === 'OpenSent' || t.next.name === 'OpenConfirm' || t.next.name === 'Established')
      this.downOwed = true;
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
        this.enqueue(
          encodeMessage(
            { type: MessageType.NOTIFICATION, code: action.code, subcode: action.subcode, data: action.data },
            { fourOctetAs: false },
          ),
          true,
        );
        this.stats.notificationsOut++;
        this.noteError({ kind: 'notificationSent', code: action.code, subcode: action.subcode, detail: action.reason });
        this.log.warn(
          { peer: this.config.peerAddress, code: action.code, subcode: action.subcode, reason: action.reason },
          'BGP NOTIFICATION sent',
        );
        this.notify('notification', {
          direction: 'sent',
          code: action.code,
          subcode: action.subcode,
          data: action.data,
          reason: action.reason,
        });
        return;
      }
      case 'startTimer':
        this.timers.start(action.name, action.ms);
        return;
      case 'stopTimer':
        this.timers.stop(action.name);
        return;
      case 'negotiated':
        if (this.peerOpen) {
          this.negotiatedSession = negotiateCapabilities(this.ourCapabilities, this.peerOpen, this.config, {
            holdTime: action.holdTime,
            keepaliveTime: action.keepaliveTime,
          });
        }
        return;
      case 'established':
        this.stats.establishedCount++;
        this.stats.establishedSince = this.clock.now();
        return;
      case 'down':
        this.downOwed = false;
        this.sessionDown(action.reason);
        return;
      case 'processUpdate':
        this.processUpdate();
        return;
      case 'processRouteRefresh': {
        const m = this.current?.message;
        if (m?.type !== MessageType.ROUTE_REFRESH) return;
        // RFC 7313 §5: an unknown subtype is ignored (and logged). BoRR/EoRR (1, 2) mark the peer's own
        // re-advertisement under Enhanced Route Refresh, which we do not offer: they ask us for nothing.
        if (m.subtype !== RouteRefreshSubtype.REQUEST) {
          this.log.info(
            { peer: this.config.peerAddress, subtype: m.subtype },
            'BGP ROUTE-REFRESH with a subtype other than 0 (request): ignored',
          );
          return;
        }
        // RFC 2918 §4: a ROUTE-REFRESH for a family we did not advertise is ignored.
        if (!this.negotiatedSession?.families.some((f) => f.afi === m.afi && f.safi === m.safi)) {
          this.log.info(
            { peer: this.config.peerAddress, afi: m.afi, safi: m.safi },
            'BGP ROUTE-REFRESH for a family not negotiated: ignored',
          );
          return;
        }
        this.notify('routeRefresh', { afi: m.afi, safi: m.safi, subtype: m.subtype });
        return;
      }
    }
  }

  // ---- what the owner hears ----------------------------------------------------------------------------------

  /** An UPDATE: RFC 7606 outcomes logged, End-of-RIB told apart, the IPv4 unicast routes (read by the codec) passed up. */
  private processUpdate(): void {
    const result = this.current;
    if (result?.message.type !== MessageType.UPDATE) return;
    const received = readUpdate(result, result.message, this.log, this.config.peerAddress);
    if (received.kind === 'endOfRib') this.notify('endOfRib', { afi: received.afi, safi: received.safi });
    else if (received.announced.length > 0 || received.withdrawn.length > 0 || received.ipv6.length > 0)
      this.notify('update', {
        announced: received.announced,
        withdrawn: received.withdrawn,
        message: received.message,
      });
  }

  private sessionDown(reason: string): void {
    const peerGracefulRestart = this.negotiatedSession?.gracefulRestart;
    this.stats.establishedSince = undefined;
    this.notify('down', { reason, ...(peerGracefulRestart ? { peerGracefulRestart } : {}) });
  }
}
