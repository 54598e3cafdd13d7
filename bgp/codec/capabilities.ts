// Capabilities (RFC 5492) — one table drives decode, encode and format of every capability tortie knows.
// Unknown capabilities are kept as bytes so they can be shown and compared.
//
// Why this is hard: a capability's value is only meaningful with its length, and peers differ in how they
// pack them (BIRD: all capabilities in one optional parameter; FRR/GoBGP: one per parameter). Both shapes
// decode to the same list here; we encode all of them in one parameter. A malformed value is an OPEN
// Message Error with subcode 0 (Unspecific), RFC 4271 §6.2: "a recognized optional parameter ... malformed".

import { BgpError, ErrorCode } from '../errors.js';
import { CapabilityCode, type Capability, type GracefulRestartFamily } from '../types.js';
import type { Reader } from './reader.js';
import { Writer } from './writer.js';

interface CapabilitySpec {
  readonly code: number;
  readonly name: string;
  /** Decodes the value bytes (a reader bounded to the value). */
  decode(r: Reader): Capability;
  encode(cap: Capability, w: Writer): void;
  format(cap: Capability): string;
}

function malformed(name: string, detail: string): BgpError {
  // RFC 4271 §6.2: recognized but malformed optional parameter → OPEN Message Error, subcode 0.
  return new BgpError(ErrorCode.OPEN_MESSAGE, 0, `capability ${name}: ${detail}`);
}

function expectLength(name: string, r: Reader, lengths: readonly number[]): void {
  if (!lengths.includes(r.remaining)) {
    throw malformed(name, `value is ${r.remaining} byte(s), expected ${lengths.join(' or ')}`);
  }
}

type GracefulRestart = Extract<Capability, { code: typeof CapabilityCode.GRACEFUL_RESTART }>;

const CAPABILITY_TABLE: readonly CapabilitySpec[] = [
  {
    // RFC 4760 §8: AFI (2), reserved (1), SAFI (1).
    code: CapabilityCode.MULTIPROTOCOL,
    name: 'multiprotocol',
    decode(r) {
      expectLength('multiprotocol', r, [4]);
      const afi = r.u16();
      r.u8();
      return { code: CapabilityCode.MULTIPROTOCOL, afi, safi: r.u8() };
    },
    encode(cap, w) {
      const c = cap as Extract<Capability, { code: typeof CapabilityCode.MULTIPROTOCOL }>;
      w.u16(c.afi).u8(0).u8(c.safi);
    },
    format(cap) {
      const c = cap as Extract<Capability, { code: typeof CapabilityCode.MULTIPROTOCOL }>;
      return `multiprotocol afi=${c.afi} safi=${c.safi}`;
    },
  },
  {
    // RFC 2918 §2: no value.
    code: CapabilityCode.ROUTE_REFRESH,
    name: 'route-refresh',
    decode(r) {
      expectLength('route-refresh', r, [0]);
      return { code: CapabilityCode.ROUTE_REFRESH };
    },
    encode() {},
    format: () => 'route-refresh',
  },
  {
    // RFC 4724 §3: flags (4 bits: R, N of RFC 8538) + restart time (12 bits), then per family
    // AFI (2), SAFI (1), flags (1: F bit is 0x80).
    code: CapabilityCode.GRACEFUL_RESTART,
    name: 'graceful-restart',
    decode(r) {
      if (r.remaining < 2 || (r.remaining - 2) % 4 !== 0) {
        throw malformed('graceful-restart', `value is ${r.remaining} byte(s), expected 2 + 4 per family`);
      }
      const head = r.u16();
      const families: GracefulRestartFamily[] = [];
      while (r.remaining > 0) {
        const afi = r.u16();
        const safi = r.u8();
        families.push({ afi, safi, forwardingState: (r.u8() & 0x80) !== 0 });
      }
      const cap: GracefulRestart = {
        code: CapabilityCode.GRACEFUL_RESTART,
        restarting: (head & 0x8000) !== 0,
        restartTime: head & 0x0fff,
        families,
        ...((head & 0x4000) !== 0 ? { notification: true } : {}),
      };
      return cap;
    },
    encode(cap, w) {
      const c = cap as GracefulRestart;
      w.u16((c.restarting ? 0x8000 : 0) | (c.notification ? 0x4000 : 0) | (c.restartTime & 0x0fff));
      for (const f of c.families)
        w.u16(f.afi)
          .u8(f.safi)
          .u8(f.forwardingState ? 0x80 : 0);
    },
    format(cap) {
      const c = cap as GracefulRestart;
      const fams = c.families.map((f) => `${f.afi}/${f.safi}${f.forwardingState ? '+F' : ''}`).join(',');
      return `graceful-restart time=${c.restartTime}${c.restarting ? ' R' : ''}${c.notification ? ' N' : ''} [${fams}]`;
    },
  },
  {
    // RFC 6793 §3: the 4-octet AS number.
    code: CapabilityCode.FOUR_OCTET_AS,
    name: '4-octet-as',
    decode(r) {
      expectLength('4-octet-as', r, [4]);
      return { code: CapabilityCode.FOUR_OCTET_AS, asn: r.u32() };
    },
    encode(cap, w) {
      w.u32((cap as Extract<Capability, { code: typeof CapabilityCode.FOUR_OCTET_AS }>).asn);
    },
    format: (cap) => `4-octet-as ${(cap as Extract<Capability, { code: typeof CapabilityCode.FOUR_OCTET_AS }>).asn}`,
  },
  {
    // RFC 7313 §3: no value.
    code: CapabilityCode.ENHANCED_ROUTE_REFRESH,
    name: 'enhanced-route-refresh',
    decode(r) {
      expectLength('enhanced-route-refresh', r, [0]);
      return { code: CapabilityCode.ENHANCED_ROUTE_REFRESH };
    },
    encode() {},
    format: () => 'enhanced-route-refresh',
  },
];

const BY_CODE = new Map<number, CapabilitySpec>(CAPABILITY_TABLE.map((s) => [s.code, s]));

function isUnknown(cap: Capability): cap is Extract<Capability, { unknown: true }> {
  return 'unknown' in cap && cap.unknown === true;
}

/**
 * Decodes the capabilities of one Capabilities optional parameter (RFC 5492 §4): a list of
 * (code, length, value). Several capabilities in one parameter and one per parameter both end up in `out`.
 */
export function decodeCapabilities(r: Reader, out: Capability[]): void {
  const overrun = (need: number, have: number) =>
    new BgpError(
      ErrorCode.OPEN_MESSAGE,
      0,
      `capability list overruns its optional parameter (needed ${need}, ${have} left)`,
    );
  const list = r.sub(r.remaining, overrun);
  while (list.remaining > 0) {
    const code = list.u8();
    const len = list.u8();
    const value = list.sub(len, overrun);
    const spec = BY_CODE.get(code);
    if (spec) out.push(spec.decode(value));
    else out.push({ code, value: value.bytes(len), unknown: true });
  }
}

/** Encodes one capability as code, length, value (RFC 5492 §4). */
export function encodeCapability(cap: Capability, w: Writer): void {
  if (isUnknown(cap)) {
    if (cap.value.length > 255)
      throw new Error(`capability ${cap.code}: value is ${cap.value.length} bytes, at most 255 fit`);
    w.u8(cap.code).u8(cap.value.length).bytes(cap.value);
    return;
  }
  const spec = BY_CODE.get(cap.code);
  if (!spec) throw new Error(`capability code ${cap.code} is not in the table and not marked unknown`);
  const inner = new Writer(32);
  spec.encode(cap, inner);
  const value = inner.toBytes();
  if (value.length > 255) throw new Error(`capability ${spec.name}: value is ${value.length} bytes, at most 255 fit`);
  w.u8(cap.code).u8(value.length).bytes(value);
}

/** One line per capability for logs and `tortie node status`. */
export function formatCapability(cap: Capability): string {
  if (isUnknown(cap)) return `unknown capability ${cap.code} (${cap.value.length} bytes)`;
  return BY_CODE.get(cap.code)?.format(cap) ?? `capability ${cap.code}`;
}
