// IPv6 unicast on the wire (AFI 2, SAFI 1), decoding side: prefixes inside MP_REACH_NLRI / MP_UNREACH_NLRI
// (RFC 4760 §3, §4, §5), the next hop of 16 bytes (global) or 32 bytes (global, then link-local; RFC 2545
// §3), and the routes an UPDATE carries for the family. Packing and End-of-RIB are in ./update6.ts.
//
// Why this is hard: the next hop length decides where the NLRI starts,
// so a wrong length cannot be treated as withdraw (the prefixes cannot be located) and is a session reset
// (RFC 7606 §7.11), as is NLRI that does not parse (RFC 7606 §5.3); a next hop that parses but cannot be
// used (::, multicast) leaves the prefixes locatable, so the UPDATE is treated as withdraw.
// Prefixes are decoded straight into their 17-character keys (../ip6.ts): one string per prefix.

import { formatIpv6, ipv6FromBytes, prefix6Len, type Ipv6, type Prefix6 } from '../ip6.js';
import { Afi, Safi, type MpReach, type MpUnreach, type PathAttributes } from '../types.js';
import type { PrefixError } from './nlri.js';
import type { Reader } from './reader.js';
import type { Writer } from './writer.js';

export const isIpv6Unicast = (f: { afi: number; safi: number }): boolean =>
  f.afi === Afi.IPV6 && f.safi === Safi.UNICAST;

/**
 * Decodes IPv6 prefixes from `buf[start, end)` into keys. Returns null, or why the field is syntactically
 * incorrect: a length over 128 or a prefix that overruns the field (RFC 7606 §5.3).
 */
export function decodePrefixes6Into(buf: Uint8Array, start: number, end: number, out: Prefix6[]): PrefixError | null {
  let p = start;
  while (p < end) {
    const len = buf[p]!;
    if (len > 128) return { reason: `IPv6 prefix length ${len} at byte ${p - start} is over 128` };
    const n = (len + 7) >> 3;
    if (p + 1 + n > end)
      return { reason: `prefix /${len} at byte ${p - start} needs ${n} address byte(s), ${end - p - 1} left` };
    let key = '';
    for (let i = 0; i < 16; i++) {
      if (i >= n) key += '\0';
      else {
        const bits = len - i * 8;
        const byte = buf[p + 1 + i]!;
        key += String.fromCharCode(bits >= 8 ? byte : byte & ((0xff << (8 - bits)) & 0xff));
      }
    }
    out.push(key + String.fromCharCode(len));
    p += 1 + n;
  }
  return null;
}

export function prefix6WireLength(key: Prefix6): number {
  return 1 + ((prefix6Len(key) + 7) >> 3);
}

export function encodePrefixes6(w: Writer, keys: readonly Prefix6[]): void {
  for (const key of keys) {
    const len = prefix6Len(key);
    w.u8(len);
    const n = (len + 7) >> 3;
    for (let i = 0; i < n; i++) w.u8(key.charCodeAt(i));
  }
}

/**
 * MP_REACH_NLRI for AFI 2 / SAFI 1, after AFI, SAFI and the next hop length (`nhLen`) were read. Returns the
 * attribute, or why it is malformed (the caller throws; the attribute table's action is a session reset).
 */
export function decodeMpReach6(r: Reader, afi: number, safi: number, nhLen: number): MpReach | string {
  // RFC 2545 §3: 16 bytes (global) or 32 (global + link-local). Anything else cannot be right, and the NLRI
  // cannot be located after it: RFC 7606 §7.11, session reset.
  if (nhLen !== 16 && nhLen !== 32) return `MP_REACH_NLRI next hop length ${nhLen} for IPv6 unicast, expected 16 or 32`;
  const nextHop = r.bytes(nhLen);
  r.u8(); // RFC 4760 §3: Reserved, ignored.
  const nlri6: Prefix6[] = [];
  const err = decodePrefixes6Into(r.buf, r.offset, r.limit, nlri6);
  // RFC 7606 §5.3: NLRI that cannot be parsed → session reset.
  if (err) return `MP_REACH_NLRI: ${err.reason}`;
  return { afi, safi, nextHop, nlri: [], nlri6 };
}

/** MP_UNREACH_NLRI for AFI 2 / SAFI 1, after AFI and SAFI were read; or why it is malformed. */
export function decodeMpUnreach6(r: Reader, afi: number, safi: number): MpUnreach | string {
  const withdrawn6: Prefix6[] = [];
  const err = decodePrefixes6Into(r.buf, r.offset, r.limit, withdrawn6);
  if (err) return `MP_UNREACH_NLRI: ${err.reason}`;
  return { afi, safi, withdrawn: [], withdrawn6 };
}

/** An UPDATE withdrawing `keys` (treat-as-withdraw too), as its MP_UNREACH_NLRI value. */
export function mpUnreach6(keys: readonly Prefix6[]): MpUnreach {
  return { afi: Afi.IPV6, safi: Safi.UNICAST, withdrawn: [], withdrawn6: keys };
}

/** The two halves of an IPv6 next hop (RFC 2545 §3). */
export interface NextHop6 {
  readonly global: Ipv6;
  readonly linkLocal?: Ipv6;
}

export function nextHop6Of(mp: MpReach): NextHop6 | undefined {
  const nh = mp.nextHop;
  if (!isIpv6Unicast(mp) || (nh.length !== 16 && nh.length !== 32)) return undefined;
  const global = ipv6FromBytes(nh, 0);
  if (nh.length === 16) return { global };
  const linkLocal = ipv6FromBytes(nh, 16);
  // A 32-byte next hop whose second half is :: carries no link-local address (seen from some speakers).
  return linkLocal === '\0'.repeat(16) ? { global } : { global, linkLocal };
}

export function nextHop6Bytes(global: Ipv6, linkLocal?: Ipv6): Uint8Array {
  const out = new Uint8Array(linkLocal === undefined ? 16 : 32);
  for (let i = 0; i < 16; i++) out[i] = global.charCodeAt(i);
  if (linkLocal !== undefined) for (let i = 0; i < 16; i++) out[16 + i] = linkLocal.charCodeAt(i);
  return out;
}

/**
 * Why an IPv6 next hop cannot be used, or null. The unspecified address and multicast (ff00::/8, RFC 4291
 * §2.7) are not host addresses: as RFC 7606 §7.3 for NEXT_HOP, the UPDATE is treated as withdraw (the
 * prefixes were located, so nothing stronger is needed). A link-local address in the global field is
 * accepted: speakers without a global address on the link send that (RFC 2545 §3 leaves it to them).
 */
export function badNextHop6(nh: NextHop6): string | null {
  if (nh.global === '\0'.repeat(16)) return 'is the unspecified address ::';
  if (nh.global.charCodeAt(0) === 0xff) return `${formatIpv6(nh.global)} is multicast (ff00::/8)`;
  return null;
}

/** The parts of an UPDATE that carry routes (an `UpdateMessage` fits). */
interface RoutesInput {
  readonly attributes: PathAttributes;
}

/** One group of announced IPv6 prefixes and the attributes they share (next hop in nextHop6). */
export interface AnnouncedGroup6 {
  readonly nlri: readonly Prefix6[];
  /** A fresh object of this call, without mpReach / mpUnreach / the IPv4 NEXT_HOP. */
  readonly attributes: PathAttributes;
}

export interface Ipv6UnicastRoutes {
  readonly withdrawn: Prefix6[];
  readonly announced: AnnouncedGroup6[];
}

/**
 * The IPv6 unicast routes of an UPDATE: MP_UNREACH_NLRI's prefixes withdrawn, MP_REACH_NLRI's announced with
 * its next hop (RFC 4760 §3: NEXT_HOP, if present, is for IPv4 NLRI and does not apply to these).
 */
export function ipv6UnicastRoutes(update: RoutesInput): Ipv6UnicastRoutes {
  const { mpReach, mpUnreach, nextHop: _ipv4NextHop, ...rest } = update.attributes;
  const withdrawn = mpUnreach !== undefined && isIpv6Unicast(mpUnreach) ? [...(mpUnreach.withdrawn6 ?? [])] : [];
  const announced: AnnouncedGroup6[] = [];
  if (mpReach !== undefined && isIpv6Unicast(mpReach) && (mpReach.nlri6?.length ?? 0) > 0) {
    const nh = nextHop6Of(mpReach);
    const attributes: PathAttributes = { ...rest };
    if (nh !== undefined) {
      attributes.nextHop6 = nh.global;
      if (nh.linkLocal !== undefined) attributes.nextHop6LinkLocal = nh.linkLocal;
    }
    announced.push({ nlri: mpReach.nlri6!, attributes });
  }
  return { withdrawn, announced };
}
