// UPDATE messages (RFC 4271 §4.3): decode with RFC 7606 error handling, encode, and pack many prefixes
// sharing one attribute set into as few 4096-byte messages as possible.
//
// Why this is hard: the three variable fields (withdrawn routes, path attributes, NLRI) are located only
// through two length fields, and RFC 7606 distinguishes "cannot locate the NLRI" (session reset) from
// "an attribute is broken but the NLRI can still be found" (treat-as-withdraw). So framing errors are
// checked first and precisely; attribute errors are collected, not thrown; rfc7606.ts decides.

import { BgpError, ErrorCode, UpdateSubcode } from '../errors.js';
import {
  Afi,
  AttrFlag,
  HEADER_LENGTH,
  MAX_MESSAGE_LENGTH,
  Safi,
  type CodecContext,
  type MpReach,
  type PathAttributes,
  type Prefix,
  type UnknownAttribute,
  type UpdateMessage,
} from '../types.js';
import {
  AttributeMalformed,
  attributeSpec,
  encodeAttributes,
  expectedFlags,
  mergeAs4,
  type AttrDecodeState,
} from './attributes.js';
import { decodePrefixesInto, encodePrefixes, prefixWireLength } from './nlri.js';
import { Reader } from './reader.js';
import { checkSemantics, resolveUpdate, type DecodeResult, type ParsedUpdate, type Problem } from './rfc7606.js';
import { Writer } from './writer.js';

const MP_REACH = 14;
const MP_UNREACH = 15;

function malformedAttributeList(detail: string): BgpError {
  // RFC 4271 §6.3: Withdrawn Routes Length or Total Attribute Length too large → Malformed Attribute List.
  return new BgpError(ErrorCode.UPDATE_MESSAGE, UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, detail);
}

function invalidNetworkField(field: string, reason: string): BgpError {
  // RFC 7606 §5.3 (and §3 (i): Withdrawn Routes are checked like NLRI): a syntactically incorrect field
  // cannot be withdrawn prefix by prefix, so it is a session reset; RFC 4271 §6.3 names the subcode
  // Invalid Network Field.
  return new BgpError(ErrorCode.UPDATE_MESSAGE, UpdateSubcode.INVALID_NETWORK_FIELD, `${field}: ${reason}`);
}

const attributeOverrun = (need: number, have: number): Error =>
  new AttributeMalformed(
    `value too short: needed ${need} more byte(s), ${have} left`,
    UpdateSubcode.ATTRIBUTE_LENGTH_ERROR,
  );

/**
 * Attribute types seen in the UPDATE being decoded: one scratch table for every call (decoding is
 * synchronous and never re-entered), cleared entry by entry, instead of a new 256-byte array per message
 * (at one route per UPDATE that allocation was per route).
 */
const seenScratch = new Uint8Array(256);
const seenTypes: number[] = [];

function clearSeen(): Uint8Array {
  for (const type of seenTypes) seenScratch[type] = 0;
  seenTypes.length = 0;
  return seenScratch;
}

/** Decodes the body of an UPDATE, `buf[start, end)` (after the 19-byte header). */
export function decodeUpdate(buf: Uint8Array, start: number, end: number, ctx: CodecContext): DecodeResult {
  const bodyLen = end - start;
  // RFC 4271 §6.3: Withdrawn Routes Length + Total Attribute Length + 23 must not exceed the message length.
  // (The 23-byte minimum itself was checked by the message dispatcher, RFC 4271 §6.1.)
  const withdrawnLen = (buf[start]! << 8) | buf[start + 1]!;
  if (2 + withdrawnLen + 2 > bodyLen) {
    throw malformedAttributeList(
      `Withdrawn Routes Length ${withdrawnLen} leaves no room for Total Attribute Length in a ${bodyLen}-byte body`,
    );
  }
  const wEnd = start + 2 + withdrawnLen;
  const attrLen = (buf[wEnd]! << 8) | buf[wEnd + 1]!;
  const aStart = wEnd + 2;
  const aEnd = aStart + attrLen;
  if (aEnd > end) {
    throw malformedAttributeList(
      `Total Attribute Length ${attrLen} overruns the message (${end - aStart} bytes left after withdrawn routes)`,
    );
  }

  const withdrawn: Prefix[] = [];
  const wErr = decodePrefixesInto(buf, start + 2, wEnd, withdrawn);
  if (wErr) throw invalidNetworkField('Withdrawn Routes', wErr.reason);

  const st: AttrDecodeState = { ctx, attrs: {}, notes: [] };
  const problems: Problem[] = [];
  let unknown: UnknownAttribute[] | undefined;
  const seen = clearSeen();
  let p = aStart;
  while (p < aEnd) {
    const left = aEnd - p;
    const flags = buf[p]!;
    const ext = (flags & AttrFlag.EXTENDED_LENGTH) !== 0;
    const headerLen = ext ? 4 : 3;
    if (left < headerLen) {
      // RFC 7606 §4: too few bytes for an attribute header → treat-as-withdraw; the Total Attribute Length
      // still locates the NLRI.
      problems.push({
        action: 'withdraw',
        what: 'attribute list',
        reason: `${left} byte(s) left, an attribute header needs ${headerLen}`,
        rule: 'RFC 7606 §4',
      });
      break;
    }
    const type = buf[p + 1]!;
    const len = ext ? (buf[p + 2]! << 8) | buf[p + 3]! : buf[p + 2]!;
    const vStart = p + headerLen;
    const vEnd = vStart + len;
    if (vEnd > aEnd) {
      // RFC 7606 §4: an attribute whose length overruns the Total Attribute Length → treat-as-withdraw.
      problems.push({
        action: 'withdraw',
        what: attributeSpec(type)?.name ?? `attribute ${type}`,
        reason: `length ${len} overruns the attribute field by ${vEnd - aEnd} byte(s)`,
        rule: 'RFC 7606 §4',
      });
      break;
    }
    const attrStart = p;
    p = vEnd;
    const spec = attributeSpec(type);
    const name = spec?.name ?? `attribute ${type}`;
    if (seen[type]) {
      // RFC 7606 §3 (g): MP_REACH/MP_UNREACH twice → Malformed Attribute List; others: keep the first.
      if (type === MP_REACH || type === MP_UNREACH) {
        problems.push({
          action: 'reset',
          what: name,
          reason: 'appears more than once',
          rule: 'RFC 7606 §3 (g)',
          subcode: UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
        });
      } else {
        problems.push({
          action: 'discard',
          what: name,
          reason: 'repeated occurrence discarded, the first is kept',
          rule: 'RFC 7606 §3 (g)',
        });
      }
      continue;
    }
    seen[type] = 1;
    seenTypes.push(type);
    if (!spec) {
      if ((flags & AttrFlag.OPTIONAL) === 0) {
        // RFC 4271 §6.3: unrecognized well-known attribute; data is the whole attribute.
        problems.push({
          action: 'reset',
          what: name,
          reason: `well-known (flags 0x${flags.toString(16)}) but not recognized`,
          rule: 'RFC 4271 §6.3',
          subcode: UpdateSubcode.UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
          data: buf.subarray(attrStart, vEnd),
        });
      } else {
        (unknown ??= []).push({ flags: flags & ~AttrFlag.EXTENDED_LENGTH, type, value: buf.slice(vStart, vEnd) });
      }
      continue;
    }
    const want = expectedFlags(spec);
    if ((flags & (AttrFlag.OPTIONAL | AttrFlag.TRANSITIVE)) !== want) {
      // RFC 7606 §3 (c): Optional/Transitive bits in conflict → the attribute is malformed, handled by
      // its own rule (treat-as-withdraw unless that rule says otherwise). Data per RFC 4271 §6.3.
      problems.push({
        action: spec.onMalformed,
        what: name,
        reason: `flags 0x${flags.toString(16)}, expected optional/transitive bits 0x${want.toString(16)}`,
        rule: `RFC 7606 §3 (c), ${spec.rule}`,
        subcode: UpdateSubcode.ATTRIBUTE_FLAGS_ERROR,
        data: buf.subarray(attrStart, vEnd),
      });
      continue;
    }
    try {
      spec.decode(new Reader(buf, vStart, vEnd, attributeOverrun), st);
    } catch (e) {
      if (!(e instanceof AttributeMalformed)) throw e;
      problems.push({
        action: spec.onMalformed,
        what: name,
        reason: e.reason,
        rule: spec.rule,
        subcode: e.subcode,
        data: buf.subarray(attrStart, vEnd),
      });
    }
  }
  if (unknown !== undefined) st.attrs.unknown = unknown;
  mergeAs4(st);

  const nlri: Prefix[] = [];
  const nErr = decodePrefixesInto(buf, aEnd, end, nlri);
  if (nErr) throw invalidNetworkField('NLRI', nErr.reason);

  const parsed: ParsedUpdate = { withdrawn, attrs: st.attrs, nlri };
  checkSemantics(parsed, ctx, problems);
  return resolveUpdate(parsed, problems, st.notes);
}

/** Writes the body of an UPDATE with pre-encoded attribute bytes. */
function writeUpdate(w: Writer, withdrawn: readonly Prefix[], attrBytes: Uint8Array, nlri: readonly Prefix[]): void {
  const wAt = w.reserveU16();
  encodePrefixes(w, withdrawn);
  w.fillU16(wAt);
  w.u16(attrBytes.length).bytes(attrBytes);
  encodePrefixes(w, nlri);
}

export function encodeUpdate(msg: UpdateMessage, ctx: CodecContext, w: Writer): void {
  writeUpdate(w, msg.withdrawn, encodeAttributes(msg.attributes, ctx), msg.nlri);
}

/** Room for prefixes in an UPDATE once header, the two length fields and the attributes are counted. */
const EMPTY_UPDATE = HEADER_LENGTH + 4;

/** Splits `prefixes` into runs whose wire size fits `budget` bytes each. */
function packPrefixes(prefixes: readonly Prefix[], budget: number): Prefix[][] {
  const runs: Prefix[][] = [];
  let run: Prefix[] = [];
  let used = 0;
  for (const prefix of prefixes) {
    const size = prefixWireLength(prefix.len);
    if (used + size > budget) {
      runs.push(run);
      run = [];
      used = 0;
    }
    run.push(prefix);
    used += size;
  }
  if (run.length > 0) runs.push(run);
  return runs;
}

const NO_ATTRS = new Uint8Array(0);

/** Prefixes sharing one attribute set, packed into as few UPDATEs as fit (attributes encoded once). */
export function encodeUpdates(attrs: PathAttributes, nlri: readonly Prefix[], ctx: CodecContext): Uint8Array[] {
  if (nlri.length === 0) return [];
  const attrBytes = encodeAttributes(attrs, ctx);
  const budget = MAX_MESSAGE_LENGTH - EMPTY_UPDATE - attrBytes.length;
  if (budget < 5)
    throw new Error(
      `path attributes take ${attrBytes.length} bytes; no room left for a prefix in a ${MAX_MESSAGE_LENGTH}-byte UPDATE`,
    );
  const w = new Writer(MAX_MESSAGE_LENGTH);
  return packPrefixes(nlri, budget).map((run) => {
    w.reset();
    const at = w.beginMessage(2);
    writeUpdate(w, [], attrBytes, run);
    return w.endMessage(at);
  });
}

/** Withdrawals packed into as few UPDATEs as fit. */
export function encodeWithdrawals(withdrawn: readonly Prefix[], _ctx: CodecContext): Uint8Array[] {
  const w = new Writer(MAX_MESSAGE_LENGTH);
  return packPrefixes(withdrawn, MAX_MESSAGE_LENGTH - EMPTY_UPDATE).map((run) => {
    w.reset();
    const at = w.beginMessage(2);
    writeUpdate(w, run, NO_ATTRS, []);
    return w.endMessage(at);
  });
}

/** The IPv4 unicast End-of-RIB marker (RFC 4724 §2): an UPDATE with no withdrawn routes, attributes or NLRI. */
export function encodeEndOfRib(): Uint8Array {
  const w = new Writer(EMPTY_UPDATE);
  const at = w.beginMessage(2);
  w.u16(0).u16(0);
  return w.endMessage(at);
}

function definedKeys(attrs: PathAttributes): string[] {
  return Object.keys(attrs).filter((k) => attrs[k as keyof PathAttributes] !== undefined);
}

/** RFC 4724 §2: IPv4 End-of-RIB (empty UPDATE) or an UPDATE holding only an empty MP_UNREACH_NLRI. */
export function isEndOfRib(update: UpdateMessage): boolean {
  if (update.withdrawn.length > 0 || update.nlri.length > 0) return false;
  const keys = definedKeys(update.attributes);
  if (keys.length === 0) return true;
  const un = update.attributes.mpUnreach;
  return (
    keys.length === 1 &&
    un !== undefined &&
    un.withdrawn.length === 0 &&
    (un.withdrawn6?.length ?? 0) === 0 &&
    (un.raw?.length ?? 0) === 0
  );
}

/** The parts of an UPDATE that carry routes (an `UpdateMessage` fits). */
export interface UpdateRoutesInput {
  readonly withdrawn: readonly Prefix[];
  readonly attributes: PathAttributes;
  readonly nlri: readonly Prefix[];
}

/** One group of announced prefixes and the attributes they share (never mpReach / mpUnreach). */
export interface AnnouncedGroup {
  readonly nlri: readonly Prefix[];
  /** A fresh object of this call: a caller may keep or adopt it. */
  readonly attributes: PathAttributes;
}

/** The IPv4 unicast routes of one UPDATE: what it withdraws, and what it announces in groups. */
export interface Ipv4UnicastRoutes {
  readonly withdrawn: Prefix[];
  readonly announced: AnnouncedGroup[];
}

const isIpv4UnicastFamily = (f: { afi: number; safi: number }): boolean =>
  f.afi === Afi.IPV4 && f.safi === Safi.UNICAST;

/** RFC 4760 §3: the next hop of an IPv4 unicast MP_REACH_NLRI as uint32, or undefined when it is not 4 bytes. */
export function mpReachNextHop(mp: MpReach): number | undefined {
  const nh = mp.nextHop;
  if (!isIpv4UnicastFamily(mp) || nh.length !== 4) return undefined;
  return (((nh[0] as number) << 24) | ((nh[1] as number) << 16) | ((nh[2] as number) << 8) | (nh[3] as number)) >>> 0;
}

/**
 * The IPv4 unicast routes an UPDATE carries, in the classic fields or in MP_REACH/MP_UNREACH (other
 * families are left out): withdrawn prefixes (Withdrawn Routes, then MP_UNREACH_NLRI, RFC 4760 §4), and
 * announced groups — the NLRI field with the UPDATE's attributes, then MP_REACH_NLRI's NLRI with its own
 * next hop (RFC 4760 §3).
 */
export function ipv4UnicastRoutes(update: UpdateRoutesInput): Ipv4UnicastRoutes {
  const { mpReach, mpUnreach, ...rest } = update.attributes;
  const withdrawn = [...update.withdrawn];
  if (mpUnreach !== undefined && isIpv4UnicastFamily(mpUnreach)) withdrawn.push(...mpUnreach.withdrawn);
  const announced: AnnouncedGroup[] = [];
  if (update.nlri.length > 0) announced.push({ nlri: update.nlri, attributes: rest });
  if (mpReach !== undefined && isIpv4UnicastFamily(mpReach) && mpReach.nlri.length > 0) {
    const nextHop = mpReachNextHop(mpReach);
    announced.push({ nlri: mpReach.nlri, attributes: nextHop === undefined ? rest : { ...rest, nextHop } });
  }
  return { withdrawn, announced };
}
