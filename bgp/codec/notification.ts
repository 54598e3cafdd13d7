// NOTIFICATION messages (RFC 4271 §4.5): error code, subcode, data. The codes and their names live in
// ../errors.ts (one table); this file only moves them on and off the wire.

import { MessageType, type NotificationMessage } from '../types.js';
import { fitNotificationData, type BgpError } from '../errors.js';
import type { Writer } from './writer.js';

/** Decodes the body `buf[start, end)`; the dispatcher has checked the 21-byte minimum (RFC 4271 §6.1). */
export function decodeNotification(buf: Uint8Array, start: number, end: number): NotificationMessage {
  return {
    type: MessageType.NOTIFICATION,
    code: buf[start]!,
    subcode: buf[start + 1]!,
    data: buf.slice(start + 2, end),
  };
}

/** Data longer than a NOTIFICATION can hold is cut (MAX_NOTIFICATION_DATA), so encoding never fails. */
export function encodeNotification(msg: NotificationMessage, w: Writer): void {
  w.u8(msg.code).u8(msg.subcode).bytes(fitNotificationData(msg.data));
}

/** The NOTIFICATION a BgpError asks for. */
export function notificationFor(err: BgpError): NotificationMessage {
  return { type: MessageType.NOTIFICATION, code: err.code, subcode: err.subcode, data: err.data };
}
