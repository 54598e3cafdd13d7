// Path attributes — ONE table (code, name, expected flags, RFC 7606 action when malformed, decode,
// encode, format), in the spirit of a protocol attribute table: adding an attribute is one entry.
//
// Decoding here is syntax only. A decoder that finds the value malformed throws `AttributeMalformed`;
// the UPDATE decoder turns that into a `Problem` carrying the entry's RFC 7606 action, and rfc7606.ts
// decides what the UPDATE becomes (session reset > treat-as-withdraw > attribute-discard, RFC 7606 §3).
//
// Why this is hard:
// - AS numbers: on a session without the 4-octet AS capability, AS_PATH and AGGREGATOR carry 2-octet ASNs
//   and the real ones travel in AS4_PATH / AS4_AGGREGATOR (RFC 6793 §4.2). Decoding merges them
//   (`mergeAs4`) so PathAttributes always holds real 4-octet ASNs and never shows AS4_*; encoding splits
//   them again, adding AS4_* only when some ASN is > 65535.
// - Unknown attributes (decision): every unknown *optional* attribute is kept in `attributes.unknown`
//   in arrival order, transitive or not, with its flags minus the Extended Length bit (that bit is framing,
//   recomputed on encode). Re-encoding an optional transitive one sets the Partial bit (RFC 4271 §5).
//   Optional non-transitive ones are kept so they can be shown; the speaker must drop them on export
//   (RFC 4271 §5: "quietly ignored ... not passed along"). An unknown well-known attribute is a session
//   reset with Unrecognized Well-known Attribute (RFC 4271 §6.3).
// - Encode order: MP_REACH_NLRI / MP_UNREACH_NLRI first (RFC 7606 §5.1), then by type code, then the
//   unknown ones in arrival order.
//
// The value decoders and encoders the entries use are ./attribute-values.ts; this file is the table and
// what walks it (lookup by code, the expected flags, encoding and formatting every attribute present).

import { UpdateSubcode } from '../errors.js';
import { formatIpv4 } from '../ip.js';
import { AS_TRANS, AttrFlag, AttrType, type CodecContext, type Origin, type PathAttributes } from '../types.js';
import {
  AttributeMalformed,
  decodeAggregator,
  decodeAsPath,
  decodeMpReach,
  decodeMpUnreach,
  encodeAsPath,
  exactLength,
  formatAsPath,
  formatLargeCommunities,
  hasBigAsn,
  hex,
  isConfed,
  multipleOf4,
  ORIGIN_NAMES,
  u32List,
  uniqueLargeCommunities,
  type AttrDecodeState,
  type Rfc7606Action,
} from './attribute-values.js';
import { encodePrefixes6 } from './mp-ipv6.js';
import { encodePrefixes } from './nlri.js';
import type { Reader } from './reader.js';
import { Writer } from './writer.js';

export {
  AttributeMalformed,
  decodeAsPath,
  encodeAsPath,
  formatAsPath,
  formatLargeCommunities,
  mergeAs4,
  reconstructAsPath,
  type AttrDecodeState,
  type MutableAttributes,
  type Rfc7606Action,
} from './attribute-values.js';

export interface AttributeSpec {
  readonly code: number;
  readonly name: string;
  readonly optional: boolean;
  readonly transitive: boolean;
  /** RFC 7606 handling when this attribute is malformed (including a flags conflict, RFC 7606 §3 (c)). */
  readonly onMalformed: Rfc7606Action;
  /** The rule applied, for logs: "RFC 7606 §7.1". */
  readonly rule: string;
  decode(r: Reader, st: AttrDecodeState): void;
  /** Writes the value and returns true, or returns false when the attribute is absent for this ctx. */
  encode(attrs: PathAttributes, ctx: CodecContext, w: Writer): boolean;
  format(attrs: PathAttributes): string | null;
}

/** The attribute table. Flags are RFC 4271 §5 / RFC 4760 / RFC 6793 categories. */
export const ATTRIBUTE_TABLE: readonly AttributeSpec[] = [
  {
    code: AttrType.MP_REACH_NLRI,
    name: 'MP_REACH_NLRI',
    optional: true,
    transitive: false,
    onMalformed: 'reset',
    rule: 'RFC 7606 §7.11',
    decode(r, st) {
      st.attrs.mpReach = decodeMpReach(r);
    },
    encode(a, _ctx, w) {
      const m = a.mpReach;
      if (!m) return false;
      w.u16(m.afi).u8(m.safi).u8(m.nextHop.length).bytes(m.nextHop).u8(0);
      if (m.raw) w.bytes(m.raw);
      else if (m.nlri6) encodePrefixes6(w, m.nlri6);
      else encodePrefixes(w, m.nlri);
      return true;
    },
    format: (a) =>
      a.mpReach
        ? `mp-reach ${a.mpReach.afi}/${a.mpReach.safi} nh=${hex(a.mpReach.nextHop)} (${a.mpReach.nlri6?.length ?? a.mpReach.nlri.length} prefixes)`
        : null,
  },
  {
    code: AttrType.MP_UNREACH_NLRI,
    name: 'MP_UNREACH_NLRI',
    optional: true,
    transitive: false,
    onMalformed: 'reset',
    rule: 'RFC 7606 §7.11',
    decode(r, st) {
      st.attrs.mpUnreach = decodeMpUnreach(r);
    },
    encode(a, _ctx, w) {
      const m = a.mpUnreach;
      if (!m) return false;
      w.u16(m.afi).u8(m.safi);
      if (m.raw) w.bytes(m.raw);
      else if (m.withdrawn6) encodePrefixes6(w, m.withdrawn6);
      else encodePrefixes(w, m.withdrawn);
      return true;
    },
    format: (a) =>
      a.mpUnreach
        ? `mp-unreach ${a.mpUnreach.afi}/${a.mpUnreach.safi} (${a.mpUnreach.withdrawn6?.length ?? a.mpUnreach.withdrawn.length} prefixes)`
        : null,
  },
  {
    code: AttrType.ORIGIN,
    name: 'ORIGIN',
    optional: false,
    transitive: true,
    onMalformed: 'withdraw',
    rule: 'RFC 7606 §7.1',
    decode(r, st) {
      exactLength('ORIGIN', r, [1]);
      const v = r.u8();
      if (v > 2)
        throw new AttributeMalformed(
          `ORIGIN value ${v}, expected 0 (IGP), 1 (EGP) or 2 (INCOMPLETE)`,
          UpdateSubcode.INVALID_ORIGIN,
        );
      st.attrs.origin = v as Origin;
    },
    encode(a, _ctx, w) {
      if (a.origin === undefined) return false;
      w.u8(a.origin);
      return true;
    },
    format: (a) => (a.origin === undefined ? null : `origin ${ORIGIN_NAMES[a.origin] ?? a.origin}`),
  },
  {
    code: AttrType.AS_PATH,
    name: 'AS_PATH',
    optional: false,
    transitive: true,
    onMalformed: 'withdraw',
    rule: 'RFC 7606 §7.2',
    decode(r, st) {
      st.attrs.asPath = decodeAsPath(r, st.ctx.fourOctetAs ? 4 : 2, 'AS_PATH');
    },
    encode(a, ctx, w) {
      if (!a.asPath) return false;
      encodeAsPath(a.asPath, ctx.fourOctetAs ? 4 : 2, w);
      return true;
    },
    format: (a) => (a.asPath ? `as-path ${formatAsPath(a.asPath)}` : null),
  },
  {
    code: AttrType.NEXT_HOP,
    name: 'NEXT_HOP',
    optional: false,
    transitive: true,
    onMalformed: 'withdraw',
    rule: 'RFC 7606 §7.3',
    decode(r, st) {
      exactLength('NEXT_HOP', r, [4]);
      st.attrs.nextHop = r.u32();
    },
    encode(a, _ctx, w) {
      if (a.nextHop === undefined) return false;
      w.u32(a.nextHop);
      return true;
    },
    format: (a) => (a.nextHop === undefined ? null : `next-hop ${formatIpv4(a.nextHop)}`),
  },
  {
    code: AttrType.MULTI_EXIT_DISC,
    name: 'MULTI_EXIT_DISC',
    optional: true,
    transitive: false,
    onMalformed: 'withdraw',
    rule: 'RFC 7606 §7.4',
    decode(r, st) {
      exactLength('MULTI_EXIT_DISC', r, [4]);
      st.attrs.med = r.u32();
    },
    encode(a, _ctx, w) {
      if (a.med === undefined) return false;
      w.u32(a.med);
      return true;
    },
    format: (a) => (a.med === undefined ? null : `med ${a.med}`),
  },
  {
    code: AttrType.LOCAL_PREF,
    name: 'LOCAL_PREF',
    optional: false,
    transitive: true,
    onMalformed: 'withdraw',
    rule: 'RFC 7606 §7.5',
    decode(r, st) {
      exactLength('LOCAL_PREF', r, [4]);
      st.attrs.localPref = r.u32();
    },
    encode(a, _ctx, w) {
      if (a.localPref === undefined) return false;
      w.u32(a.localPref);
      return true;
    },
    format: (a) => (a.localPref === undefined ? null : `local-pref ${a.localPref}`),
  },
  {
    code: AttrType.ATOMIC_AGGREGATE,
    name: 'ATOMIC_AGGREGATE',
    optional: false,
    transitive: true,
    onMalformed: 'discard',
    rule: 'RFC 7606 §7.6',
    decode(r, st) {
      exactLength('ATOMIC_AGGREGATE', r, [0]);
      st.attrs.atomicAggregate = true;
    },
    encode(a) {
      return a.atomicAggregate === true;
    },
    format: (a) => (a.atomicAggregate ? 'atomic-aggregate' : null),
  },
  {
    code: AttrType.AGGREGATOR,
    name: 'AGGREGATOR',
    optional: true,
    transitive: true,
    onMalformed: 'discard',
    rule: 'RFC 7606 §7.7',
    decode(r, st) {
      st.attrs.aggregator = decodeAggregator(r, st.ctx.fourOctetAs ? 4 : 2, 'AGGREGATOR');
    },
    encode(a, ctx, w) {
      if (!a.aggregator) return false;
      if (ctx.fourOctetAs) w.u32(a.aggregator.asn);
      else w.u16(a.aggregator.asn > 0xffff ? AS_TRANS : a.aggregator.asn);
      w.u32(a.aggregator.address);
      return true;
    },
    format: (a) => (a.aggregator ? `aggregator ${a.aggregator.asn} ${formatIpv4(a.aggregator.address)}` : null),
  },
  {
    code: AttrType.COMMUNITIES,
    name: 'COMMUNITIES',
    optional: true,
    transitive: true,
    onMalformed: 'withdraw',
    rule: 'RFC 7606 §7.8',
    decode(r, st) {
      multipleOf4('COMMUNITIES', r);
      st.attrs.communities = u32List(r);
    },
    encode(a, _ctx, w) {
      if (!a.communities || a.communities.length === 0) return false;
      for (const c of a.communities) w.u32(c);
      return true;
    },
    format: (a) =>
      a.communities ? `communities ${a.communities.map((c) => `${c >>> 16}:${c & 0xffff}`).join(' ')}` : null,
  },
  {
    code: AttrType.LARGE_COMMUNITY,
    name: 'LARGE_COMMUNITY',
    optional: true,
    transitive: true,
    // RFC 8092 §5: a length that is not a non-zero multiple of 12 is treat-as-withdraw (RFC 7606).
    onMalformed: 'withdraw',
    rule: 'RFC 8092 §5',
    decode(r, st) {
      if (r.remaining === 0 || r.remaining % 12 !== 0) {
        throw new AttributeMalformed(
          `LARGE_COMMUNITY length is ${r.remaining}, expected a non-zero multiple of 12`,
          UpdateSubcode.ATTRIBUTE_LENGTH_ERROR,
        );
      }
      st.attrs.largeCommunities = uniqueLargeCommunities(u32List(r));
    },
    encode(a, _ctx, w) {
      if (!a.largeCommunities || a.largeCommunities.length === 0) return false;
      for (const c of a.largeCommunities) w.u32(c);
      return true;
    },
    format: (a) =>
      a.largeCommunities ? `large-communities ${formatLargeCommunities(a.largeCommunities).join(' ')}` : null,
  },
  {
    code: AttrType.ORIGINATOR_ID,
    name: 'ORIGINATOR_ID',
    optional: true,
    transitive: false,
    onMalformed: 'withdraw',
    rule: 'RFC 7606 §7.9',
    decode(r, st) {
      exactLength('ORIGINATOR_ID', r, [4]);
      st.attrs.originatorId = r.u32();
    },
    encode(a, _ctx, w) {
      if (a.originatorId === undefined) return false;
      w.u32(a.originatorId);
      return true;
    },
    format: (a) => (a.originatorId === undefined ? null : `originator-id ${formatIpv4(a.originatorId)}`),
  },
  {
    code: AttrType.CLUSTER_LIST,
    name: 'CLUSTER_LIST',
    optional: true,
    transitive: false,
    onMalformed: 'withdraw',
    rule: 'RFC 7606 §7.10',
    decode(r, st) {
      multipleOf4('CLUSTER_LIST', r);
      st.attrs.clusterList = u32List(r);
    },
    encode(a, _ctx, w) {
      if (!a.clusterList || a.clusterList.length === 0) return false;
      for (const c of a.clusterList) w.u32(c);
      return true;
    },
    format: (a) => (a.clusterList ? `cluster-list ${a.clusterList.map(formatIpv4).join(' ')}` : null),
  },
  {
    // RFC 6793 §6: AS4_PATH / AS4_AGGREGATOR from a NEW (4-octet) speaker are discarded; a malformed
    // AS4_PATH is discarded ("attribute-discard"); confederation segments in it are dropped.
    code: AttrType.AS4_PATH,
    name: 'AS4_PATH',
    optional: true,
    transitive: true,
    onMalformed: 'discard',
    rule: 'RFC 6793 §6',
    decode(r, st) {
      const path = decodeAsPath(r, 4, 'AS4_PATH');
      if (st.ctx.fourOctetAs) {
        st.notes.push('AS4_PATH: discarded on a 4-octet AS session (RFC 6793 §6)');
        return;
      }
      const kept = path.filter((s) => !isConfed(s));
      if (kept.length !== path.length) st.notes.push('AS4_PATH: confederation segments dropped (RFC 6793 §6)');
      st.as4Path = kept;
    },
    encode(a, ctx, w) {
      if (ctx.fourOctetAs || !a.asPath || !hasBigAsn(a.asPath)) return false;
      // RFC 6793 §4.2.2: AS4_PATH carries the path without confederation segments.
      encodeAsPath(
        a.asPath.filter((s) => !isConfed(s)),
        4,
        w,
      );
      return true;
    },
    format: () => null,
  },
  {
    code: AttrType.AS4_AGGREGATOR,
    name: 'AS4_AGGREGATOR',
    optional: true,
    transitive: true,
    onMalformed: 'discard',
    rule: 'RFC 6793 §6',
    decode(r, st) {
      const agg = decodeAggregator(r, 4, 'AS4_AGGREGATOR');
      if (st.ctx.fourOctetAs) {
        st.notes.push('AS4_AGGREGATOR: discarded on a 4-octet AS session (RFC 6793 §6)');
        return;
      }
      st.as4Aggregator = agg;
    },
    encode(a, ctx, w) {
      if (ctx.fourOctetAs || !a.aggregator || a.aggregator.asn <= 0xffff) return false;
      w.u32(a.aggregator.asn).u32(a.aggregator.address);
      return true;
    },
    format: () => null,
  },
];

const SPEC_BY_CODE: (AttributeSpec | undefined)[] = new Array<AttributeSpec | undefined>(256);
for (const spec of ATTRIBUTE_TABLE) SPEC_BY_CODE[spec.code] = spec;

export function attributeSpec(code: number): AttributeSpec | undefined {
  return SPEC_BY_CODE[code];
}

/** The flag byte this attribute must carry (without Partial / Extended Length). */
export function expectedFlags(spec: AttributeSpec): number {
  return (spec.optional ? AttrFlag.OPTIONAL : 0) | (spec.transitive ? AttrFlag.TRANSITIVE : 0);
}

function writeAttribute(w: Writer, flags: number, type: number, value: Uint8Array): void {
  if (value.length > 0xffff) throw new Error(`attribute ${type} value is ${value.length} bytes, at most 65535 fit`);
  // RFC 4271 §4.3: Extended Length when the value does not fit one length byte.
  if (value.length > 255)
    w.u8((flags | AttrFlag.EXTENDED_LENGTH) & 0xff)
      .u8(type)
      .u16(value.length);
  else
    w.u8(flags & ~AttrFlag.EXTENDED_LENGTH & 0xff)
      .u8(type)
      .u8(value.length);
  w.bytes(value);
}

/** Encodes every present attribute (table order, then unknown ones) into the bytes of the attribute field. */
export function encodeAttributes(attrs: PathAttributes, ctx: CodecContext): Uint8Array {
  const out = new Writer(128);
  for (const spec of ATTRIBUTE_TABLE) {
    const value = new Writer(64);
    if (!spec.encode(attrs, ctx, value)) continue;
    writeAttribute(out, expectedFlags(spec), spec.code, value.toBytes());
  }
  for (const u of attrs.unknown ?? []) {
    // RFC 4271 §5: an unrecognized optional transitive attribute is passed on with Partial set.
    const transitive = (u.flags & AttrFlag.OPTIONAL) !== 0 && (u.flags & AttrFlag.TRANSITIVE) !== 0;
    writeAttribute(out, transitive ? u.flags | AttrFlag.PARTIAL : u.flags, u.type, u.value);
  }
  return out.toBytes();
}

/** One line per attribute, for logs and `tortie node routes`. */
export function formatAttributes(attrs: PathAttributes): string[] {
  const lines: string[] = [];
  for (const spec of ATTRIBUTE_TABLE) {
    const line = spec.format(attrs);
    if (line !== null) lines.push(line);
  }
  for (const u of attrs.unknown ?? [])
    lines.push(`attribute ${u.type} flags 0x${u.flags.toString(16)} (${u.value.length} bytes)`);
  return lines;
}
