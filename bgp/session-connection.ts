// One session's connection (the lower layer of ./session.ts, whose header describes the whole): its state
// (the FSM's, the connection's, what was negotiated), the connect attempt, a connection attached and
// detached (each with its generation, so stale callbacks are dropped), the writing side (the bounded send
// queue, ./send-queue.ts; Cease / Out of Resources past its bound), and the reading side (framing, decoding,
// each message turned into its FSM event). The FSM driver, containment and the public API are ./session.ts.

import { EventEmitter } from 'node:events';
import { systemClock, type Clock } from './clock.js';
import { DeadlineTimers } from './deadline-timers.js';
import { decodeMessage, encodeMessage, MessageFramer, type DecodeResult } from './codec/index.js';
import { describeDownReason, type SessionDownReason } from './down-reason.js';
import { BgpError, CeaseSubcode, ErrorCode, isBgpError } from './errors.js';
import {
  INITIAL_STATE,
  TIMER_EVENTS,
  type BgpState,
  type FsmConfig,
  type FsmEvent,
  type FsmState,
  type TimerName,
} from './fsm.js';
import { parseIpv4 } from './ip.js';
import { buildOpen, checkOpen, ourCapabilities, type NegotiatedSession } from './negotiation.js';
import { SendQueue } from './send-queue.js';
import { DECODE_FAILURE_CODES, ERROR_EVENTS, errorText } from './session-receive.js';
import type { SessionEvents, SessionStats } from './session-events.js';
import {
  DEFAULT_MAX_SEND_QUEUE_BYTES,
  fsmConfigOf,
  silentLogger,
  validateSessionConfig,
  type Logger,
  type SessionConfig,
} from './session-config.js';
import type { Connection } from './transport.js';
import { TransportError } from './transport.js';
import { BGP_PORT, MessageType, type Capability, type OpenMessage } from './types.js';

export abstract class SessionConnection extends EventEmitter<SessionEvents> {
  readonly config: SessionConfig;
  /** The peer address as uint32. */
  readonly peerAddressNum: number;
  readonly stats: SessionStats;

  protected readonly clock: Clock;
  protected readonly log: Logger;
  protected readonly fsmConfig: FsmConfig;
  protected ourCapabilities: Capability[];
  protected fsm: FsmState = INITIAL_STATE;
  protected adminUp = false;
  protected readonly queue: FsmEvent[] = [];
  protected dispatching = false;
  /** The FSM's timers; one firing is its FSM event, run in `guard()`. */
  protected readonly timers: DeadlineTimers<TimerName>;

  protected conn: Connection | undefined;
  protected direction: 'inbound' | 'outbound' | undefined;
  /** Bumped whenever the connection or the connect attempt changes; stale callbacks compare it. */
  protected generation = 0;
  protected connectAbort: AbortController | undefined;
  protected framer = new MessageFramer();
  /** Messages toward the current connection. */
  protected sendQueue: SendQueue | undefined;

  protected peerOpen: OpenMessage | undefined;
  protected negotiatedSession: NegotiatedSession | undefined;
  /** In OpenSent/OpenConfirm/Established and its 'down' not yet performed (hardReset owes it then). */
  protected downOwed = false;
  /** The state the owner last heard of in a 'state' event. */
  protected reportedState: BgpState = 'Idle';
  /** The message the current FSM event came from (processUpdate / processRouteRefresh read it). */
  protected current: DecodeResult | undefined;

  constructor(config: SessionConfig) {
    super();
    validateSessionConfig(config);
    this.config = config;
    this.peerAddressNum = parseIpv4(config.peerAddress, 'peerAddress');
    this.clock = config.clock ?? systemClock;
    this.log = config.logger ?? silentLogger;
    this.fsmConfig = fsmConfigOf(config);
    this.timers = new DeadlineTimers(this.clock, (name) =>
      this.guard(`the ${name} timer`, () => this.dispatch({ type: TIMER_EVENTS[name] } as FsmEvent)),
    );
    this.ourCapabilities = ourCapabilities(config.localAs, config.gracefulRestart, config.families);
    this.stats = {
      messagesIn: 0,
      messagesOut: 0,
      updatesIn: 0,
      updatesOut: 0,
      notificationsIn: 0,
      notificationsOut: 0,
      establishedCount: 0,
      stateSince: this.clock.now(),
    };
  }

  // ---- connection ------------------------------------------------------------------------------------------

  protected connect(): void {
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
          const message = errorText(error);
          this.noteError({
            kind: 'transport',
            message,
            ...(error instanceof TransportError ? { errno: error.code } : {}),
          });
          this.log.info({ peer: this.config.peerAddress, error: message }, 'BGP connect failed');
          this.dispatch({ type: 'TcpConnectionFails', reason: message });
        }),
    );
  }

  protected abortConnect(): void {
    if (this.connectAbort) {
      this.connectAbort.abort();
      this.connectAbort = undefined;
    }
  }

  protected attach(conn: Connection, direction: 'inbound' | 'outbound'): void {
    const generation = ++this.generation;
    this.conn = conn;
    this.direction = direction;
    this.framer = new MessageFramer();
    this.sendQueue = new SendQueue(conn, this.config.maxSendQueueBytes ?? DEFAULT_MAX_SEND_QUEUE_BYTES, {
      schedule: (flush) => queueMicrotask(() => this.guard('a write', flush)),
      overflow: (queued, max) => this.overflow(queued, max),
    });
    const queue = this.sendQueue;
    this.peerOpen = undefined;
    this.negotiatedSession = undefined;
    let lastError: Error | undefined;
    conn.on('data', (chunk) => {
      if (generation === this.generation) this.guard('received bytes', () => this.onData(chunk, generation));
    });
    conn.on('drain', () => {
      if (generation !== this.generation) return;
      this.guard('a write', () => queue.drained());
    });
    conn.on('error', (error) => {
      lastError = error;
    });
    conn.on('close', () => {
      if (generation !== this.generation) return;
      this.detach();
      const down: SessionDownReason = lastError
        ? {
            kind: 'transport',
            message: lastError.message,
            ...(lastError instanceof TransportError ? { errno: lastError.code } : {}),
          }
        : { kind: 'peerClosed' };
      this.noteError(down);
      const reason = describeDownReason(down);
      this.guard('the connection closing', () => this.dispatch({ type: 'TcpConnectionFails', reason }));
    });
  }

  protected detach(): Connection | undefined {
    const conn = this.conn;
    this.sendQueue?.clear();
    this.sendQueue = undefined;
    this.generation++;
    this.conn = undefined;
    return conn;
  }

  protected closeConnection(): void {
    this.abortConnect();
    if (!this.conn) return;
    this.sendQueue?.flush(true);
    this.sendQueue?.clear();
    const conn = this.detach();
    conn?.close();
  }

  // ---- writing ---------------------------------------------------------------------------------------------

  /** Queues one message. `notification`: queued even past the bound (the reset's own NOTIFICATION). */
  protected enqueue(bytes: Uint8Array, notification = false): void {
    if (this.conn && this.sendQueue?.push(bytes, notification)) this.stats.messagesOut++;
  }

  /**
   * The peer stopped reading (or reads slower than we must send): the queue dropped what it held; reset with
   * Cease / Out of Resources (RFC 4486 subcode 8). The NOTIFICATION goes out if the socket still takes it;
   * the close is bounded by the transport either way.
   */
  protected overflow(queued: number, max: number): void {
    const reason = `send queue over ${max} bytes (${queued} queued): the peer does not read`;
    this.log.warn(
      { peer: this.config.peerAddress, queuedBytes: queued, maxSendQueueBytes: max },
      'BGP send queue full: resetting the session',
    );
    this.dispatch({ type: 'LimitExceeded', subcode: CeaseSubcode.OUT_OF_RESOURCES, data: new Uint8Array(0), reason });
  }

  protected sendOpen(): void {
    this.enqueue(
      encodeMessage(buildOpen(this.config, this.fsmConfig.holdTime, this.ourCapabilities), { fourOctetAs: false }),
    );
  }

  // ---- reading ---------------------------------------------------------------------------------------------

  protected onData(chunk: Uint8Array, generation: number): void {
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
          this.log.error(
            { peer: this.config.peerAddress, hex: Buffer.from(frame).toString('hex') },
            'BGP message the decoder failed on',
          );
          this.contain(
            'a received message',
            error,
            code === 0 ? undefined : new BgpError(code, 0, `decoding failed: ${errorText(error)}`),
          );
          return;
        }
        this.log.warn(
          { peer: this.config.peerAddress, code: error.code, subcode: error.subcode, detail: error.detail },
          'BGP message refused',
        );
        this.dispatch({ type: ERROR_EVENTS[error.code] ?? 'BGPHeaderErr', error });
        continue;
      }
      this.onMessage(result);
    }
  }

  protected onMessage(result: DecodeResult): void {
    const message = result.message;
    this.current = result;
    try {
      switch (message.type) {
        case MessageType.OPEN: {
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
        case MessageType.UPDATE:
          this.stats.updatesIn++;
          this.dispatch({ type: 'UpdateMsg' });
          return;
        case MessageType.NOTIFICATION: {
          this.stats.notificationsIn++;
          this.noteError({ kind: 'notificationReceived', code: message.code, subcode: message.subcode });
          const reason = this.stats.lastError!;
          this.log.warn(
            { peer: this.config.peerAddress, code: message.code, subcode: message.subcode },
            'BGP NOTIFICATION received',
          );
          this.notify('notification', {
            direction: 'received',
            code: message.code,
            subcode: message.subcode,
            data: message.data,
            reason,
          });
          this.dispatch({ type: 'NotifMsg', reason, code: message.code, subcode: message.subcode });
          return;
        }
        case MessageType.KEEPALIVE:
          this.dispatch({ type: 'KeepAliveMsg' });
          return;
        case MessageType.ROUTE_REFRESH:
          this.dispatch({ type: 'RouteRefreshMsg' });
          return;
      }
    } finally {
      this.current = undefined;
    }
  }

  // ---- what the session driver provides (./session.ts) --------------------------------------------------

  /** Runs one way into the session (I/O, timer, owner call); nothing it throws leaves the session. */
  protected abstract guard(where: string, fn: () => void): void;
  /** An unexpected exception: log it with the peer and reset this session. */
  protected abstract contain(where: string, error: unknown, notification?: BgpError): void;
  protected abstract dispatch(event: FsmEvent): void;
  protected abstract notify<K extends keyof SessionEvents>(event: K, ...args: SessionEvents[K]): void;
  abstract noteError(reason: SessionDownReason): void;
}
