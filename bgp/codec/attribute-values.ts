// Path attribute values, decoded and encoded: the parts the attribute table's entries (./attributes.ts) are
// built from. Length checks, community lists (RFC 8092 duplicates removed), AS paths with 2- or 4-octet ASNs
// and their AS4_PATH / AS4_AGGREGATOR merge (RFC 6793), AGGREGATOR, MP_REACH_NLRI / MP_UNREACH_NLRI
// (RFC 4760), and the formats for logs. A malformed value throws `AttributeMalformed`, with the UPDATE
// Message Error subcode a session reset would use; what the UPDATE becomes is ./rfc7606.ts's decision.

import { UpdateSubcode } from '../errors.js';
import {
  AS_TRANS,
  Afi,
  Safi,
  type Aggregator,
  type AsPathSegment,
  AsPathSegmentType,
  type CodecContext,
  type MpReach,
  type MpUnreach,
  type PathAttributes,
  type Prefix,
} from '../types.js';
import { decodeMpReach6, decodeMpUnreach6, isIpv6Unicast } from './mp-ipv6.js';
import { decodePrefixesInto } from './nlri.js';
import type { Reader } from './reader.js';
import type { Writer } from './writer.js';

/** What RFC 7606 says to do with an UPDATE carrying a malformed attribute (RFC 7606 §2). */
export type Rfc7606Action = 'reset' | 'withdraw' | 'discard';

/** Thrown by attribute decoders; never escapes the codec. */
export class AttributeMalformed extends Error {
  constructor(
    readonly reason: string,
    /** UPDATE Message Error subcode to use if this ends in a session reset. */
    readonly subcode: number = UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR,
  ) {
    super(reason);
  }
}

/** The scratch state of one UPDATE's attribute decode. */
export interface AttrDecodeState {
  readonly ctx: CodecContext;
  attrs: MutableAttributes;
  as4Path?: AsPathSegment[];
  as4Aggregator?: Aggregator;
  /** Notes for the `discarded` list (AS4_* ignored, merges skipped). */
  notes: string[];
}

export type MutableAttributes = { -readonly [K in keyof PathAttributes]: PathAttributes[K] };

export function exactLength(name: string, r: Reader, lengths: readonly number[]): void {
  if (!lengths.includes(r.remaining)) {
    throw new AttributeMalformed(
      `${name} length is ${r.remaining}, expected ${lengths.join(' or ')}`,
      UpdateSubcode.ATTRIBUTE_LENGTH_ERROR,
    );
  }
}

export function multipleOf4(name: string, r: Reader): void {
  if (r.remaining === 0 || r.remaining % 4 !== 0) {
    throw new AttributeMalformed(
      `${name} length is ${r.remaining}, expected a non-zero multiple of 4`,
      UpdateSubcode.ATTRIBUTE_LENGTH_ERROR,
    );
  }
}

export function u32List(r: Reader): number[] {
  const out: number[] = [];
  while (r.remaining > 0) out.push(r.u32());
  return out;
}

/** RFC 8092 §2: a receiver silently removes repeated large communities (flat triples, first kept). */
export function uniqueLargeCommunities(flat: number[]): number[] {
  const seen = new Set<string>();
  const out: number[] = [];
  for (let i = 0; i + 2 < flat.length; i += 3) {
    const key = `${flat[i]}:${flat[i + 1]}:${flat[i + 2]}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(flat[i]!, flat[i + 1]!, flat[i + 2]!);
  }
  return out;
}

/** Flat large-community triples as `65001:100:200` words. */
export function formatLargeCommunities(flat: readonly number[]): string[] {
  const out: string[] = [];
  for (let i = 0; i + 2 < flat.length; i += 3) out.push(`${flat[i]}:${flat[i + 1]}:${flat[i + 2]}`);
  return out;
}

// --- AS paths (RFC 4271 §4.3 b, RFC 6793) ---

/** Decodes AS path segments with `asSize`-octet ASNs; malformed per RFC 7606 §7.2. */
export function decodeAsPath(r: Reader, asSize: 2 | 4, name: string): AsPathSegment[] {
  const segments: AsPathSegment[] = [];
  while (r.remaining > 0) {
    if (r.remaining < 2)
      throw new AttributeMalformed(
        `${name}: 1 byte left after the last segment, a segment header needs 2`,
        UpdateSubcode.MALFORMED_AS_PATH,
      );
    const type = r.u8();
    const count = r.u8();
    if (type < 1 || type > 4)
      throw new AttributeMalformed(
        `${name}: segment type ${type}, expected 1..4 (AS_SET, AS_SEQUENCE, confed)`,
        UpdateSubcode.MALFORMED_AS_PATH,
      );
    if (count === 0)
      throw new AttributeMalformed(`${name}: segment of type ${type} with length 0`, UpdateSubcode.MALFORMED_AS_PATH);
    if (r.remaining < count * asSize) {
      throw new AttributeMalformed(
        `${name}: segment of ${count} ASNs needs ${count * asSize} bytes, ${r.remaining} left`,
        UpdateSubcode.MALFORMED_AS_PATH,
      );
    }
    const asns: number[] = new Array<number>(count);
    for (let i = 0; i < count; i++) {
      const asn = asSize === 4 ? r.u32() : r.u16();
      // RFC 7607 §2: AS 0 in AS_PATH / AS4_PATH makes the attribute malformed.
      if (asn === 0) throw new AttributeMalformed(`${name}: contains AS 0 (RFC 7607)`, UpdateSubcode.MALFORMED_AS_PATH);
      asns[i] = asn;
    }
    segments.push({ type: type as AsPathSegmentType, asns });
  }
  return segments;
}

/** Encodes segments; ASNs > 65535 become AS_TRANS when `asSize` is 2; segments over 255 ASNs are split. */
export function encodeAsPath(segments: readonly AsPathSegment[], asSize: 2 | 4, w: Writer): void {
  for (const seg of segments) {
    for (let i = 0; i < seg.asns.length; i += 255) {
      const chunk = seg.asns.slice(i, i + 255);
      w.u8(seg.type).u8(chunk.length);
      for (const asn of chunk) {
        if (asSize === 4) w.u32(asn);
        else w.u16(asn > 0xffff ? AS_TRANS : asn);
      }
    }
  }
}

export function hasBigAsn(segments: readonly AsPathSegment[] | undefined): boolean {
  return segments !== undefined && segments.some((s) => s.asns.some((a) => a > 0xffff));
}

export const isConfed = (s: AsPathSegment): boolean =>
  s.type === AsPathSegmentType.AS_CONFED_SEQUENCE || s.type === AsPathSegmentType.AS_CONFED_SET;

/** RFC 6793 §4.2.3 path length: an AS_SET counts 1, confederation segments count 0. */
function countAsns(segments: readonly AsPathSegment[]): number {
  let n = 0;
  for (const s of segments)
    n += s.type === AsPathSegmentType.AS_SEQUENCE ? s.asns.length : s.type === AsPathSegmentType.AS_SET ? 1 : 0;
  return n;
}

/**
 * RFC 6793 §4.2.3: rebuilds the real path on a 2-octet session. Takes the leading (count(AS_PATH) −
 * count(AS4_PATH)) ASNs of AS_PATH (with any confederation segments met on the way) and appends AS4_PATH.
 * If AS4_PATH is longer than AS_PATH, AS4_PATH is ignored.
 */
export function reconstructAsPath(
  asPath: readonly AsPathSegment[],
  as4Path: readonly AsPathSegment[],
): AsPathSegment[] | null {
  const n2 = countAsns(asPath);
  const n4 = countAsns(as4Path);
  if (n4 > n2) return null;
  let need = n2 - n4;
  const head: AsPathSegment[] = [];
  for (const seg of asPath) {
    if (isConfed(seg)) {
      head.push(seg);
      continue;
    }
    if (need === 0) break;
    if (seg.type === AsPathSegmentType.AS_SET) {
      head.push(seg);
      need -= 1;
    } else {
      const take = Math.min(need, seg.asns.length);
      head.push(take === seg.asns.length ? seg : { type: seg.type, asns: seg.asns.slice(0, take) });
      need -= take;
    }
  }
  // Merge a split AS_SEQUENCE back with a leading AS_SEQUENCE of AS4_PATH so the path reads as sent.
  const tail = [...as4Path];
  const last = head[head.length - 1];
  const first = tail[0];
  const sequence = AsPathSegmentType.AS_SEQUENCE;
  if (
    last &&
    first &&
    last.type === sequence &&
    first.type === sequence &&
    last.asns.length + first.asns.length <= 255
  ) {
    head[head.length - 1] = { type: sequence, asns: [...last.asns, ...first.asns] };
    tail.shift();
  }
  return [...head, ...tail];
}

/** After all attributes are decoded: fold AS4_PATH / AS4_AGGREGATOR into AS_PATH / AGGREGATOR (RFC 6793). */
export function mergeAs4(st: AttrDecodeState): void {
  const { attrs, as4Path, as4Aggregator } = st;
  if (st.ctx.fourOctetAs) return;
  // RFC 6793 §4.2.3: if AGGREGATOR's AS is not AS_TRANS, AS4_AGGREGATOR and AS4_PATH are ignored.
  if (attrs.aggregator && attrs.aggregator.asn !== AS_TRANS) {
    if (as4Aggregator || as4Path)
      st.notes.push('AS4_PATH/AS4_AGGREGATOR: ignored, AGGREGATOR AS is not AS_TRANS (RFC 6793 §4.2.3)');
    return;
  }
  if (attrs.aggregator && as4Aggregator) attrs.aggregator = as4Aggregator;
  if (as4Path && attrs.asPath) {
    const merged = reconstructAsPath(attrs.asPath, as4Path);
    if (merged) attrs.asPath = merged;
    else st.notes.push('AS4_PATH: ignored, it is longer than AS_PATH (RFC 6793 §4.2.3)');
  }
}

export function decodeAggregator(r: Reader, asSize: 2 | 4, name: string): Aggregator {
  exactLength(name, r, [asSize + 4]);
  const asn = asSize === 4 ? r.u32() : r.u16();
  const address = r.u32();
  // RFC 7607 §2: AS 0 in AGGREGATOR / AS4_AGGREGATOR → attribute-discard.
  if (asn === 0) throw new AttributeMalformed(`${name}: AS 0 (RFC 7607)`);
  return { asn, address };
}

// --- MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 4760 §3, §4) ---

const isIpv4Unicast = (afi: number, safi: number): boolean => afi === Afi.IPV4 && safi === Safi.UNICAST;

/** IPv6 unicast (./mp-ipv6.ts) says why an MP attribute is malformed as a string. */
function orMalformed<T>(result: T | string): T {
  if (typeof result === 'string') throw new AttributeMalformed(result);
  return result;
}

export function decodeMpReach(r: Reader): MpReach {
  if (r.remaining < 5)
    throw new AttributeMalformed(
      `MP_REACH_NLRI length is ${r.remaining}, at least 5 expected`,
      UpdateSubcode.ATTRIBUTE_LENGTH_ERROR,
    );
  const afi = r.u16();
  const safi = r.u8();
  const nhLen = r.u8();
  if (r.remaining < nhLen + 1)
    throw new AttributeMalformed(
      `MP_REACH_NLRI next hop length ${nhLen} overruns the attribute (${r.remaining} bytes left)`,
    );
  // RFC 7606 §7.11: a next hop length inconsistent with the AFI is malformed. tortie does not negotiate
  // RFC 8950 extended next hop, so IPv4 unicast needs a 4-byte next hop.
  if (isIpv4Unicast(afi, safi) && nhLen !== 4)
    throw new AttributeMalformed(`MP_REACH_NLRI next hop length ${nhLen} for IPv4 unicast, expected 4`);
  if (isIpv6Unicast({ afi, safi })) return orMalformed(decodeMpReach6(r, afi, safi, nhLen));
  const nextHop = r.bytes(nhLen);
  r.u8(); // RFC 4760 §3: Reserved (formerly SNPA count), ignored.
  if (!isIpv4Unicast(afi, safi)) return { afi, safi, nextHop, nlri: [], raw: r.bytes(r.remaining) };
  const nlri: Prefix[] = [];
  const err = decodePrefixesInto(r.buf, r.offset, r.limit, nlri);
  if (err) throw new AttributeMalformed(`MP_REACH_NLRI: ${err.reason}`);
  return { afi, safi, nextHop, nlri };
}

export function decodeMpUnreach(r: Reader): MpUnreach {
  if (r.remaining < 3)
    throw new AttributeMalformed(
      `MP_UNREACH_NLRI length is ${r.remaining}, at least 3 expected`,
      UpdateSubcode.ATTRIBUTE_LENGTH_ERROR,
    );
  const afi = r.u16();
  const safi = r.u8();
  if (isIpv6Unicast({ afi, safi })) return orMalformed(decodeMpUnreach6(r, afi, safi));
  if (!isIpv4Unicast(afi, safi)) return { afi, safi, withdrawn: [], raw: r.bytes(r.remaining) };
  const withdrawn: Prefix[] = [];
  const err = decodePrefixesInto(r.buf, r.offset, r.limit, withdrawn);
  if (err) throw new AttributeMalformed(`MP_UNREACH_NLRI: ${err.reason}`);
  return { afi, safi, withdrawn };
}

export const ORIGIN_NAMES = ['IGP', 'EGP', 'INCOMPLETE'];
const SEGMENT_FORMAT: Record<number, [string, string]> = {
  1: ['{', '}'],
  2: ['', ''],
  3: ['(', ')'],
  4: ['[', ']'],
};

export function formatAsPath(segments: readonly AsPathSegment[]): string {
  return segments
    .map((s) => {
      const [open, close] = SEGMENT_FORMAT[s.type] ?? ['?', '?'];
      return `${open}${s.asns.join(' ')}${close}`;
    })
    .join(' ');
}

export const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
