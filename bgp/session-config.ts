// What a Session is configured with: the SessionConfig fields with their defaults, their check
// (`validateSessionConfig`, naming the field, the value and what is accepted), and the FSM's config made
// from them. Pure; ./session.ts uses it.

import type { Clock } from './clock.js';
import type { FsmConfig } from './fsm.js';
import type { Family, GracefulRestartConfig } from './negotiation.js';
import type { Transport } from './transport.js';

import { silentLogger, type Logger } from './log.js';
export { silentLogger, type Logger };

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
  /** The families offered in OPEN (RFC 4760 §8), one Multiprotocol capability each. Default IPv4 unicast. */
  readonly families?: readonly Family[];
  readonly clock?: Clock;
  readonly transport: Transport;
  readonly logger?: Logger;
}

export const DEFAULT_HOLD_TIME = 90;
export const DEFAULT_CONNECT_RETRY_MS = 5000;
/** BIRD's `error wait time 5,30` as Calico configures it. */
export const DEFAULT_ERROR_WAIT_INITIAL_MS = 5000;
export const DEFAULT_ERROR_WAIT_MAX_MS = 30_000;
export const DEFAULT_MAX_SEND_QUEUE_BYTES = 32 * 1024 * 1024;

function isUint(value: number, max: number): boolean {
  return Number.isInteger(value) && value >= 0 && value <= max;
}

/** Refuses a config that cannot work, naming the field, the value and what is accepted. */
export function validateSessionConfig(config: SessionConfig): void {
  const problems: string[] = [];
  if (!isUint(config.localAs, 0xffffffff) || config.localAs === 0)
    problems.push(`localAs ${config.localAs} is not an AS number (1..4294967295)`);
  if (!isUint(config.peerAs, 0xffffffff) || config.peerAs === 0)
    problems.push(`peerAs ${config.peerAs} is not an AS number (1..4294967295)`);
  if (!isUint(config.routerId, 0xffffffff) || config.routerId === 0)
    problems.push(`routerId ${config.routerId} is not a non-zero uint32 (RFC 6286)`);
  const hold = config.holdTime ?? DEFAULT_HOLD_TIME;
  if (!isUint(hold, 65535) || hold === 1 || hold === 2)
    problems.push(`holdTime ${hold} is not 0 or 3..65535 seconds (RFC 4271 §4.2)`);
  if (config.keepaliveTime !== undefined && (!isUint(config.keepaliveTime, 21845) || config.keepaliveTime === 0)) {
    problems.push(`keepaliveTime ${config.keepaliveTime} is not 1..21845 seconds`);
  }
  if (config.connectRetryMs !== undefined && !(config.connectRetryMs > 0))
    problems.push(`connectRetryMs ${config.connectRetryMs} is not a positive number of milliseconds`);
  if (config.port !== undefined && (!isUint(config.port, 65535) || config.port === 0))
    problems.push(`port ${config.port} is not 1..65535`);
  if (config.minHoldTime !== undefined && (!isUint(config.minHoldTime, 65535) || config.minHoldTime < 3))
    problems.push(`minHoldTime ${config.minHoldTime} is not 3..65535 seconds`);
  if (config.maxSendQueueBytes !== undefined && !(config.maxSendQueueBytes >= 64 * 1024))
    problems.push(`maxSendQueueBytes ${config.maxSendQueueBytes} is below 65536 (one full write)`);
  for (const field of ['errorWaitInitialMs', 'errorWaitMaxMs'] as const) {
    const value = config[field];
    if (value !== undefined && !(value >= 0)) problems.push(`${field} ${value} is not a number of milliseconds ≥ 0`);
  }
  const gr = config.gracefulRestart;
  if (gr && !isUint(gr.restartTime, 4095))
    problems.push(`gracefulRestart.restartTime ${gr.restartTime} is not 0..4095 seconds (RFC 4724 §3)`);
  if (problems.length > 0) throw new Error(`BGP session to ${config.peerAddress}: ${problems.join('; ')}`);
}

/** The FSM's configuration (./fsm.ts) for a session configured with `config`. */
export function fsmConfigOf(config: SessionConfig): FsmConfig {
  return {
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
}
