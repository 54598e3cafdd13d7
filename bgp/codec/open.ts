// OPEN messages (RFC 4271 §4.2), syntax checks only (RFC 4271 §6.2). Checks that need configuration —
// the peer AS, a BGP identifier equal to ours on iBGP, capabilities we insist on — are the session's job.
//
// Optional parameters: only Capabilities (type 2, RFC 5492) is accepted. The RFC 9072 extended form
// (Optional Parameters Length 255 followed by a 255 type byte, then a 2-byte length, and 2-byte lengths
// in each parameter) is decoded, and used on encode only when the capabilities do not fit 255 bytes.

import { BgpError, ErrorCode, OpenSubcode } from '../errors.js';
import { BGP_VERSION, MessageType, type Capability, type OpenMessage } from '../types.js';
import { decodeCapabilities, encodeCapability } from './capabilities.js';
import { Reader } from './reader.js';
import { Writer } from './writer.js';

const CAPABILITIES_PARAMETER = 2;
const EXTENDED_MARKER = 255;

function unspecific(detail: string): BgpError {
  // RFC 4271 §6.2: a recognized optional parameter that is malformed → OPEN Message Error, subcode 0.
  return new BgpError(ErrorCode.OPEN_MESSAGE, 0, detail);
}

/** Decodes the body of an OPEN, `buf[start, end)`. The dispatcher has checked the 29-byte minimum. */
export function decodeOpen(buf: Uint8Array, start: number, end: number): OpenMessage {
  const r = new Reader(buf, start, end, (need, have) =>
    unspecific(`optional parameters overrun the message (needed ${need}, ${have} left)`),
  );
  const version = r.u8();
  if (version !== BGP_VERSION) {
    // RFC 4271 §6.2: data is the largest locally supported version, as 2 octets.
    throw new BgpError(
      ErrorCode.OPEN_MESSAGE,
      OpenSubcode.UNSUPPORTED_VERSION,
      `version ${version}, only ${BGP_VERSION} is supported`,
      new Uint8Array([0, BGP_VERSION]),
    );
  }
  const myAs = r.u16();
  const holdTime = r.u16();
  // RFC 4271 §6.2: hold time must be 0 or at least 3 seconds.
  if (holdTime === 1 || holdTime === 2) {
    throw new BgpError(
      ErrorCode.OPEN_MESSAGE,
      OpenSubcode.UNACCEPTABLE_HOLD_TIME,
      `hold time ${holdTime}s, expected 0 or 3..65535`,
    );
  }
  const bgpId = r.u32();
  // RFC 6286 §2.2 / RFC 4271 §6.2: a BGP identifier of 0 is not valid.
  if (bgpId === 0)
    throw new BgpError(
      ErrorCode.OPEN_MESSAGE,
      OpenSubcode.BAD_BGP_IDENTIFIER,
      'BGP identifier 0.0.0.0, expected a non-zero identifier',
    );

  let optLen = r.u8();
  let extended = false;
  if (optLen === EXTENDED_MARKER && r.remaining > 0 && buf[r.offset] === EXTENDED_MARKER) {
    // RFC 9072 §2: Non-Ext OP Len 255, Non-Ext OP Type 255, then Extended Opt. Parm. Length (2 bytes).
    r.u8();
    optLen = r.u16();
    extended = true;
  }
  if (optLen !== r.remaining)
    throw unspecific(`Optional Parameters Length ${optLen}, but ${r.remaining} byte(s) follow`);
  const capabilities: Capability[] = [];
  while (r.remaining > 0) {
    const type = r.u8();
    const len = extended ? r.u16() : r.u8();
    const value = r.sub(len);
    if (type !== CAPABILITIES_PARAMETER) {
      throw new BgpError(
        ErrorCode.OPEN_MESSAGE,
        OpenSubcode.UNSUPPORTED_OPTIONAL_PARAMETER,
        `optional parameter type ${type}, only 2 (Capabilities) is supported`,
      );
    }
    decodeCapabilities(value, capabilities);
  }
  return { type: MessageType.OPEN, version, myAs, holdTime, bgpId, capabilities };
}

export function encodeOpen(msg: OpenMessage, w: Writer): void {
  if (msg.myAs > 0xffff)
    throw new Error(`OPEN myAs ${msg.myAs} does not fit 2 octets; send AS_TRANS (23456) and the 4-octet AS capability`);
  w.u8(msg.version).u16(msg.myAs).u16(msg.holdTime).u32(msg.bgpId);
  if (msg.capabilities.length === 0) {
    w.u8(0);
    return;
  }
  const caps = new Writer(64);
  for (const cap of msg.capabilities) encodeCapability(cap, caps);
  const bytes = caps.toBytes();
  if (bytes.length + 2 <= 255) {
    // RFC 5492 §4: all capabilities in one Capabilities optional parameter.
    w.u8(bytes.length + 2)
      .u8(CAPABILITIES_PARAMETER)
      .u8(bytes.length)
      .bytes(bytes);
  } else {
    // RFC 9072 §2: extended optional parameters.
    w.u8(EXTENDED_MARKER)
      .u8(EXTENDED_MARKER)
      .u16(bytes.length + 3)
      .u8(CAPABILITIES_PARAMETER)
      .u16(bytes.length)
      .bytes(bytes);
  }
}
