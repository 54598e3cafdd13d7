// IPv6 unicast on the wire (AFI 2, SAFI 1), encoding side: many prefixes sharing one attribute set packed
// into as few 4096-byte UPDATEs as fit (each one MP_REACH_NLRI, RFC 4760 §3, next hop per RFC 2545 §3),
// withdrawals in MP_UNREACH_NLRI (§4), and the family's End-of-RIB (RFC 4724 §2).
//
// Why this is hard: an IPv6 UPDATE has no NLRI field of its own, so the prefixes live inside one attribute
// and the packing budget is what that attribute may hold once the other attributes are counted.

import { type Prefix6 } from '../ip6.js';
import {
  Afi,
  AttrFlag,
  AttrType,
  HEADER_LENGTH,
  MAX_MESSAGE_LENGTH,
  Safi,
  type CodecContext,
  type PathAttributes,
} from '../types.js';
import { encodeAttributes } from './attributes.js';
import { encodePrefixes6, nextHop6Bytes, prefix6WireLength } from './mp-ipv6.js';
import { Writer } from './writer.js';

const EMPTY_UPDATE = HEADER_LENGTH + 4;
/** Extended-length attribute header (always used for MP_* here: their value may pass 255 bytes). */
const EXT_HEADER = 4;

/** Splits keys into runs whose wire size fits `budget` bytes each. */
function pack6(keys: readonly Prefix6[], budget: number): Prefix6[][] {
  const runs: Prefix6[][] = [];
  let run: Prefix6[] = [];
  let used = 0;
  for (const key of keys) {
    const size = prefix6WireLength(key);
    if (used + size > budget && run.length > 0) {
      runs.push(run);
      run = [];
      used = 0;
    }
    run.push(key);
    used += size;
  }
  if (run.length > 0) runs.push(run);
  return runs;
}

/**
 * IPv6 prefixes sharing one attribute set, packed into as few UPDATEs as fit: MP_REACH_NLRI first (RFC 7606
 * §5.1) with the next hop from `attrs.nextHop6` (and `nextHop6LinkLocal`, making it 32 bytes), then the
 * other attributes, encoded once. `attrs.nextHop` (IPv4) is not sent: it does not apply to MP NLRI.
 */
export function encodeUpdates6(attrs: PathAttributes, nlri: readonly Prefix6[], ctx: CodecContext): Uint8Array[] {
  if (nlri.length === 0) return [];
  if (attrs.nextHop6 === undefined)
    throw new Error('an IPv6 unicast route needs an IPv6 next hop (nextHop6) to be announced');
  const { nextHop: _v4, mpReach: _r, mpUnreach: _u, ...rest } = attrs;
  const restBytes = encodeAttributes(rest, ctx);
  const nh = nextHop6Bytes(attrs.nextHop6, attrs.nextHop6LinkLocal);
  const fixed = 2 + 1 + 1 + nh.length + 1; // AFI, SAFI, next hop length, next hop, reserved
  const budget = MAX_MESSAGE_LENGTH - EMPTY_UPDATE - restBytes.length - EXT_HEADER - fixed;
  if (budget < 17)
    throw new Error(
      `path attributes take ${restBytes.length} bytes; no room left for an IPv6 prefix in a ${MAX_MESSAGE_LENGTH}-byte UPDATE`,
    );
  const w = new Writer(MAX_MESSAGE_LENGTH);
  return pack6(nlri, budget).map((run) => {
    w.reset();
    const at = w.beginMessage(2);
    w.u16(0); // no IPv4 withdrawn routes
    const attrLen = w.reserveU16();
    w.u8(AttrFlag.OPTIONAL | AttrFlag.EXTENDED_LENGTH).u8(AttrType.MP_REACH_NLRI);
    const mpLen = w.reserveU16();
    w.u16(Afi.IPV6).u8(Safi.UNICAST).u8(nh.length).bytes(nh).u8(0);
    encodePrefixes6(w, run);
    w.fillU16(mpLen);
    w.bytes(restBytes);
    w.fillU16(attrLen);
    return w.endMessage(at);
  });
}

/** IPv6 withdrawals packed into as few UPDATEs (each one MP_UNREACH_NLRI) as fit. */
export function encodeWithdrawals6(withdrawn: readonly Prefix6[]): Uint8Array[] {
  const budget = MAX_MESSAGE_LENGTH - EMPTY_UPDATE - EXT_HEADER - 3;
  const w = new Writer(MAX_MESSAGE_LENGTH);
  return pack6(withdrawn, budget).map((run) => writeUnreach6(w, run));
}

function writeUnreach6(w: Writer, run: readonly Prefix6[]): Uint8Array {
  w.reset();
  const at = w.beginMessage(2);
  w.u16(0);
  const attrLen = w.reserveU16();
  w.u8(AttrFlag.OPTIONAL | AttrFlag.EXTENDED_LENGTH).u8(AttrType.MP_UNREACH_NLRI);
  const mpLen = w.reserveU16();
  w.u16(Afi.IPV6).u8(Safi.UNICAST);
  encodePrefixes6(w, run);
  w.fillU16(mpLen);
  w.fillU16(attrLen);
  return w.endMessage(at);
}

/** The IPv6 unicast End-of-RIB (RFC 4724 §2): an UPDATE with only an empty MP_UNREACH_NLRI for AFI 2 / SAFI 1. */
export function encodeEndOfRib6(): Uint8Array {
  return writeUnreach6(new Writer(32), []);
}
