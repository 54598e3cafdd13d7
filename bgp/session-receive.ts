// The Session's (./session.ts) reading side, as pure parts: which NOTIFICATION and FSM event a decode failure
// is, and what one decoded UPDATE means to the owner — End-of-RIB, or the IPv4 unicast routes it announces
// and withdraws — with its RFC 7606 outcomes logged.

import { ipv4UnicastRoutes, ipv6UnicastRoutes, isEndOfRib, type DecodeResult } from './codec/index.js';
import type { Prefix6 } from './ip6.js';
import { ErrorCode } from './errors.js';
import type { Logger } from './log.js';
import type { ReceivedRoute } from './session-events.js';
import { Afi, MessageType, Safi, type Prefix, type UpdateMessage } from './types.js';

/** Message type → the error code a decoder failure on it is answered with (0: none fits, Cease). */
export const DECODE_FAILURE_CODES: Readonly<Record<number, number>> = {
  [MessageType.OPEN]: ErrorCode.OPEN_MESSAGE,
  [MessageType.UPDATE]: ErrorCode.UPDATE_MESSAGE,
  [MessageType.NOTIFICATION]: 0, // no NOTIFICATION error code is about NOTIFICATIONs: Cease / Unspecific
  [MessageType.KEEPALIVE]: ErrorCode.MESSAGE_HEADER,
  [MessageType.ROUTE_REFRESH]: ErrorCode.ROUTE_REFRESH,
};

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A decode error's NOTIFICATION code → the FSM event it is (RFC 4271 §8.1.5, RFC 7313 §5). */
export const ERROR_EVENTS: Readonly<
  Record<number, 'BGPHeaderErr' | 'BGPOpenMsgErr' | 'UpdateMsgErr' | 'RouteRefreshMsgErr'>
> = {
  [ErrorCode.MESSAGE_HEADER]: 'BGPHeaderErr',
  [ErrorCode.OPEN_MESSAGE]: 'BGPOpenMsgErr',
  [ErrorCode.UPDATE_MESSAGE]: 'UpdateMsgErr',
  [ErrorCode.ROUTE_REFRESH]: 'RouteRefreshMsgErr',
};

/** What one UPDATE means to the session's owner. */
export type ReadUpdate =
  | { kind: 'endOfRib'; afi: number; safi: number }
  | {
      kind: 'routes';
      announced: ReceivedRoute[];
      withdrawn: Prefix[];
      /** IPv6 unicast prefixes the UPDATE announces or withdraws (RFC 2545), read again by the Adj-RIB-In. */
      ipv6: Prefix6[];
      message: UpdateMessage;
    };

/** One decoded UPDATE: RFC 7606 outcomes logged, End-of-RIB told apart, the IPv4 unicast routes (read by the codec). */
export function readUpdate(result: DecodeResult, update: UpdateMessage, log: Logger, peer: string): ReadUpdate {
  if (result.treatAsWithdraw) {
    // RFC 7606 §2: treat-as-withdraw keeps the session up; say why.
    log.warn(
      { peer, reason: result.treatAsWithdraw, prefixes: update.withdrawn.length },
      'BGP UPDATE treated as withdraw (RFC 7606)',
    );
  }
  if (result.discarded && result.discarded.length > 0) {
    log.warn({ peer, discarded: result.discarded }, 'BGP attributes discarded (RFC 7606)');
  }
  if (!result.treatAsWithdraw && isEndOfRib(update)) {
    const mp = update.attributes.mpUnreach;
    return { kind: 'endOfRib', afi: mp?.afi ?? Afi.IPV4, safi: mp?.safi ?? Safi.UNICAST };
  }
  const routes = ipv4UnicastRoutes(update);
  const announced: ReceivedRoute[] = [];
  for (const group of routes.announced)
    for (const prefix of group.nlri) announced.push({ prefix, attrs: group.attributes });
  const mp = update.attributes;
  const ipv6: Prefix6[] = [];
  if (mp.mpReach !== undefined || mp.mpUnreach !== undefined) {
    const v6 = ipv6UnicastRoutes(update);
    ipv6.push(...v6.withdrawn);
    for (const group of v6.announced) ipv6.push(...group.nlri);
  }
  return { kind: 'routes', announced, withdrawn: routes.withdrawn, ipv6, message: update };
}
