// The codec's public API (the contract between the codec and the session): framing, decode/encode of
// every BGP-4 message, UPDATE packing and End-of-RIB. Everything else in bgp/codec/ is internal.

import { MessageType } from '../types.js';
import { encodeMessage } from './message.js';

export { MessageFramer } from './framer.js';
export type { DecodeResult } from './rfc7606.js';
export { decodeMessage, encodeMessage, messageTypeName } from './message.js';
export {
  encodeUpdates,
  encodeWithdrawals,
  encodeEndOfRib,
  ipv4UnicastRoutes,
  isEndOfRib,
  mpReachNextHop,
} from './update.js';
export type { AnnouncedGroup, Ipv4UnicastRoutes, UpdateRoutesInput } from './update.js';
export { ipv6UnicastRoutes, nextHop6Of, isIpv6Unicast } from './mp-ipv6.js';
export type { AnnouncedGroup6, Ipv6UnicastRoutes, NextHop6 } from './mp-ipv6.js';
export { encodeUpdates6, encodeWithdrawals6, encodeEndOfRib6 } from './update6.js';
export { formatCapability } from './capabilities.js';
export { formatAttributes, formatAsPath } from './attributes.js';
export { notificationFor } from './notification.js';

/** The 19-byte KEEPALIVE (RFC 4271 §4.4). */
export const KEEPALIVE: Uint8Array = encodeMessage({ type: MessageType.KEEPALIVE }, { fourOctetAs: true });
