// The message dispatcher: one table of message types (RFC 4271 §4, RFC 2918 §3) with the minimum length
// of each (RFC 4271 §6.1), its decoder and its encoder. `decodeMessage` checks the header again (a caller
// may skip the framer) and hands the body to the decoder.

import { BgpError, ErrorCode, HeaderSubcode, RouteRefreshSubcode } from '../errors.js';
import {
  HEADER_LENGTH,
  MessageType,
  RouteRefreshSubtype,
  type BgpMessage,
  type CodecContext,
  type OpenMessage,
  type NotificationMessage,
  type RouteRefreshMessage,
  type UpdateMessage,
} from '../types.js';
import { checkHeader } from './framer.js';
import { decodeNotification, encodeNotification } from './notification.js';
import { decodeOpen, encodeOpen } from './open.js';
import type { DecodeResult } from './rfc7606.js';
import { decodeUpdate, encodeUpdate } from './update.js';
import { Writer } from './writer.js';

interface MessageSpec {
  readonly type: number;
  readonly name: string;
  /** RFC 4271 §6.1: shortest valid total length. */
  readonly minLength: number;
  /** When set, the only valid total length. */
  readonly exactLength?: number;
  decode(buf: Uint8Array, start: number, end: number, ctx: CodecContext): DecodeResult;
  encode(msg: BgpMessage, ctx: CodecContext, w: Writer): void;
}

const MESSAGE_TABLE: readonly MessageSpec[] = [
  {
    type: MessageType.OPEN,
    name: 'OPEN',
    minLength: 29,
    decode: (buf, start, end) => ({ message: decodeOpen(buf, start, end) }),
    encode: (msg, _ctx, w) => encodeOpen(msg as OpenMessage, w),
  },
  {
    type: MessageType.UPDATE,
    name: 'UPDATE',
    minLength: 23,
    decode: (buf, start, end, ctx) => decodeUpdate(buf, start, end, ctx),
    encode: (msg, ctx, w) => encodeUpdate(msg as UpdateMessage, ctx, w),
  },
  {
    type: MessageType.NOTIFICATION,
    name: 'NOTIFICATION',
    minLength: 21,
    decode: (buf, start, end) => ({ message: decodeNotification(buf, start, end) }),
    encode: (msg, _ctx, w) => encodeNotification(msg as NotificationMessage, w),
  },
  {
    type: MessageType.KEEPALIVE,
    name: 'KEEPALIVE',
    minLength: 19,
    exactLength: 19,
    decode: () => ({ message: { type: MessageType.KEEPALIVE } }),
    encode: () => {},
  },
  {
    // RFC 2918 §3: AFI (2), reserved / RFC 7313 subtype (1), SAFI (1).
    type: MessageType.ROUTE_REFRESH,
    name: 'ROUTE-REFRESH',
    minLength: 19,
    decode(buf, start, end) {
      if (end - start !== 4) {
        // RFC 7313 §5: a BoRR/EoRR (subtype 1 or 2) whose body is not 4 bytes → ROUTE-REFRESH Message Error /
        // Invalid Message Length, with the complete message as data (cut to what a NOTIFICATION holds: a
        // 4096-byte message does not fit in one). Any other ROUTE-REFRESH of the wrong length is a message
        // whose length is wrong for its type: RFC 4271 §6.1 Bad Message Length, data the Length field.
        const subtype = end - start >= 3 ? buf[start + 2]! : -1;
        const detail = `ROUTE-REFRESH body is ${end - start} bytes, expected 4`;
        if (subtype === RouteRefreshSubtype.BORR || subtype === RouteRefreshSubtype.EORR) {
          throw new BgpError(
            ErrorCode.ROUTE_REFRESH,
            RouteRefreshSubcode.INVALID_MESSAGE_LENGTH,
            detail,
            buf.subarray(start - HEADER_LENGTH, end),
          );
        }
        throw badLength(end - start + HEADER_LENGTH, detail);
      }
      const message: RouteRefreshMessage = {
        type: MessageType.ROUTE_REFRESH,
        afi: (buf[start]! << 8) | buf[start + 1]!,
        subtype: buf[start + 2]!,
        safi: buf[start + 3]!,
      };
      return { message };
    },
    encode(msg, _ctx, w) {
      const m = msg as RouteRefreshMessage;
      w.u16(m.afi).u8(m.subtype).u8(m.safi);
    },
  },
];

const SPEC_BY_TYPE = new Map<number, MessageSpec>(MESSAGE_TABLE.map((s) => [s.type, s]));

function badLength(length: number, detail: string): BgpError {
  // RFC 4271 §6.1: Bad Message Length, data is the erroneous Length field.
  return new BgpError(
    ErrorCode.MESSAGE_HEADER,
    HeaderSubcode.BAD_MESSAGE_LENGTH,
    detail,
    new Uint8Array([length >>> 8, length & 0xff]),
  );
}

/** Decodes one whole message (header included). Throws only BgpError. */
export function decodeMessage(bytes: Uint8Array, ctx: CodecContext): DecodeResult {
  if (bytes.length < HEADER_LENGTH)
    throw badLength(bytes.length, `message is ${bytes.length} bytes, shorter than the ${HEADER_LENGTH}-byte header`);
  const length = checkHeader(bytes, 0);
  if (length !== bytes.length)
    throw badLength(length, `Length field says ${length} but the message is ${bytes.length} bytes`);
  const type = bytes[18]!;
  const spec = SPEC_BY_TYPE.get(type);
  if (!spec) {
    // RFC 4271 §6.1: Bad Message Type, data is the type byte.
    throw new BgpError(
      ErrorCode.MESSAGE_HEADER,
      HeaderSubcode.BAD_MESSAGE_TYPE,
      `message type ${type}, expected 1..5`,
      new Uint8Array([type]),
    );
  }
  if (length < spec.minLength || (spec.exactLength !== undefined && length !== spec.exactLength)) {
    const want = spec.exactLength !== undefined ? `exactly ${spec.exactLength}` : `at least ${spec.minLength}`;
    throw badLength(length, `${spec.name} of ${length} bytes, expected ${want}`);
  }
  return spec.decode(bytes, HEADER_LENGTH, length, ctx);
}

/** Encodes one message with its header. Throws a plain Error if it would exceed 4096 bytes. */
export function encodeMessage(msg: BgpMessage, ctx: CodecContext): Uint8Array {
  const spec = SPEC_BY_TYPE.get(msg.type);
  if (!spec) throw new Error(`message type ${String((msg as { type: unknown }).type)} is not one of 1..5`);
  const w = new Writer(256);
  const at = w.beginMessage(msg.type);
  spec.encode(msg, ctx, w);
  return w.endMessage(at);
}

/** The name of a message type, for logs. */
export function messageTypeName(type: number): string {
  return SPEC_BY_TYPE.get(type)?.name ?? `type ${type}`;
}
