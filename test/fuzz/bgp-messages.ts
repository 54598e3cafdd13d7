// Structure-aware mutation of BGP messages for the session fuzzer (./bgp-fuzz.ts).
//
// Seeds are real messages: the golden captures from BIRD 1.6, BIRD 2, FRR and GoBGP
// (test/fixtures/captures), plus generated ones so that every path attribute type code (0..255) and every
// capability code (0..255) appears with a plausible value. A message is parsed into its fields (UPDATE:
// withdrawn routes, each attribute's flags/type/length/value, NLRI; OPEN: fixed fields, optional
// parameters, each capability), one or more fields are changed — lengths at and around every boundary up
// to 4096, flags, type codes, values, counts, order — and it is written back with consistent lengths unless
// the mutation is a length lie. Byte-level and header mutations complement it. The bytes here are built by
// hand, never with the production encoder, so an encoder bug cannot hide a decoder bug.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Rng } from './random.js';

export const HEADER = 19;
export const MAX = 4096;

export type Kind = 'open' | 'update' | 'notification' | 'keepalive' | 'route-refresh';

export interface Seed {
  readonly name: string;
  readonly kind: Kind;
  readonly bytes: Uint8Array;
  /** The UPDATE's AS_PATH holds 4-octet ASNs (the session must negotiate RFC 6793). */
  readonly fourOctetAs: boolean;
}

/** Lengths at and around the boundaries a BGP parser has (one byte, two bytes, a prefix, 4096). */
export const BOUNDARY_LENGTHS = [
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 16, 17, 18, 19, 20, 24, 31, 32, 33, 63, 64, 65, 127, 128, 129, 253,
  254, 255, 256, 257, 511, 512, 1023, 1024, 2047, 2048, 4000, 4050, 4073, 4074, 4075, 4076, 4077,
];
/** Total message lengths worth hitting exactly. */
export const TOTAL_LENGTHS = [19, 20, 21, 22, 23, 24, 28, 29, 30, 31, 32, 33, 4093, 4094, 4095, 4096];

// ---- bytes ------------------------------------------------------------------------------------------------

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const u8 = (v: number): Uint8Array => Uint8Array.of(v & 0xff);
const u16 = (v: number): Uint8Array => Uint8Array.of((v >>> 8) & 0xff, v & 0xff);
const u32 = (v: number): Uint8Array => Uint8Array.of((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);

/** A whole message: marker, Length (the real one unless `length` is given), type, body. */
export function frame(type: number, body: Uint8Array, length?: number): Uint8Array {
  const out = new Uint8Array(HEADER + body.length);
  out.fill(0xff, 0, 16);
  const len = length ?? HEADER + body.length;
  out[16] = (len >>> 8) & 0xff;
  out[17] = len & 0xff;
  out[18] = type;
  out.set(body, HEADER);
  return out;
}

export function fromHex(hex: string): Uint8Array {
  return Uint8Array.from(Buffer.from(hex.trim(), 'hex'));
}

// ---- UPDATE model -------------------------------------------------------------------------------------------

export interface Attr {
  flags: number;
  type: number;
  value: Uint8Array;
  /** Added to the written Attribute Length (a length lie). */
  lenDelta?: number;
}

export interface UpdateModel {
  /** Raw Withdrawn Routes field. */
  withdrawn: Uint8Array;
  attrs: Attr[];
  /** Raw NLRI field. */
  nlri: Uint8Array;
  withdrawnLenDelta?: number;
  attrLenDelta?: number;
}

/** Splits an UPDATE body into fields; null when the lengths do not line up (then only bytes are mutated). */
export function parseUpdate(body: Uint8Array): UpdateModel | null {
  if (body.length < 4) return null;
  const wl = (body[0]! << 8) | body[1]!;
  if (2 + wl + 2 > body.length) return null;
  const withdrawn = body.slice(2, 2 + wl);
  let at = 2 + wl;
  const al = (body[at]! << 8) | body[at + 1]!;
  at += 2;
  if (at + al > body.length) return null;
  const end = at + al;
  const attrs: Attr[] = [];
  while (at < end) {
    if (at + 3 > end) return null;
    const flags = body[at]!;
    const type = body[at + 1]!;
    const ext = (flags & 0x10) !== 0;
    if (ext && at + 4 > end) return null;
    const len = ext ? (body[at + 2]! << 8) | body[at + 3]! : body[at + 2]!;
    const vs = at + (ext ? 4 : 3);
    if (vs + len > end) return null;
    attrs.push({ flags, type, value: body.slice(vs, vs + len) });
    at = vs + len;
  }
  return { withdrawn, attrs, nlri: body.slice(end) };
}

export function writeAttr(a: Attr): Uint8Array {
  const ext = (a.flags & 0x10) !== 0 || a.value.length > 255;
  const flags = ext ? a.flags | 0x10 : a.flags;
  const len = Math.max(0, a.value.length + (a.lenDelta ?? 0));
  return concat([u8(flags), u8(a.type), ext ? u16(len) : u8(len), a.value]);
}

export function writeUpdate(m: UpdateModel): Uint8Array {
  const attrs = concat(m.attrs.map(writeAttr));
  return concat([
    u16(Math.max(0, m.withdrawn.length + (m.withdrawnLenDelta ?? 0))),
    m.withdrawn,
    u16(Math.max(0, attrs.length + (m.attrLenDelta ?? 0))),
    attrs,
    m.nlri,
  ]);
}

// ---- OPEN model ----------------------------------------------------------------------------------------------

export interface Cap {
  code: number;
  value: Uint8Array;
  lenDelta?: number;
}

export interface Param {
  type: number;
  /** Capabilities (type 2) or, for any other type, the raw value. */
  caps: Cap[];
  raw?: Uint8Array;
  lenDelta?: number;
}

export interface OpenModel {
  version: number;
  myAs: number;
  hold: number;
  bgpId: number;
  params: Param[];
  /** RFC 9072 extended optional parameters. */
  extended: boolean;
  optLenDelta?: number;
}

export function parseOpen(body: Uint8Array): OpenModel | null {
  if (body.length < 10) return null;
  const version = body[0]!;
  const myAs = (body[1]! << 8) | body[2]!;
  const hold = (body[3]! << 8) | body[4]!;
  const bgpId = ((body[5]! << 24) | (body[6]! << 16) | (body[7]! << 8) | body[8]!) >>> 0;
  let at = 9;
  let optLen = body[at++]!;
  let extended = false;
  if (optLen === 255 && body[at] === 255) {
    if (at + 3 > body.length) return null;
    extended = true;
    optLen = (body[at + 1]! << 8) | body[at + 2]!;
    at += 3;
  }
  if (at + optLen !== body.length) return null;
  const params: Param[] = [];
  while (at < body.length) {
    const type = body[at]!;
    const plen = extended ? (body[at + 1]! << 8) | body[at + 2]! : body[at + 1]!;
    at += extended ? 3 : 2;
    if (at + plen > body.length) return null;
    const value = body.slice(at, at + plen);
    at += plen;
    if (type !== 2) {
      params.push({ type, caps: [], raw: value });
      continue;
    }
    const caps: Cap[] = [];
    for (let c = 0; c < value.length;) {
      if (c + 2 > value.length) return null;
      const code = value[c]!;
      const clen = value[c + 1]!;
      if (c + 2 + clen > value.length) return null;
      caps.push({ code, value: value.slice(c + 2, c + 2 + clen) });
      c += 2 + clen;
    }
    params.push({ type, caps });
  }
  return { version, myAs, hold, bgpId, params, extended };
}

export function writeOpen(m: OpenModel): Uint8Array {
  const params = m.params.map((p) => {
    const value =
      p.raw ??
      concat(p.caps.map((c) => concat([u8(c.code), u8(Math.max(0, c.value.length + (c.lenDelta ?? 0))), c.value])));
    const len = Math.max(0, value.length + (p.lenDelta ?? 0));
    return concat([u8(p.type), m.extended ? u16(len) : u8(len), value]);
  });
  const opt = concat(params);
  const optLen = Math.max(0, opt.length + (m.optLenDelta ?? 0));
  const lenField = m.extended ? concat([u8(255), u8(255), u16(optLen)]) : u8(optLen);
  return concat([u8(m.version), u16(m.myAs), u16(m.hold), u32(m.bgpId), lenField, opt]);
}

/** Sets the AS in an OPEN (My AS and the 4-octet AS capability), so a captured OPEN fits the fuzzed peer. */
export function openWithAs(bytes: Uint8Array, asn: number): Uint8Array {
  const m = parseOpen(bytes.subarray(HEADER));
  if (!m) return bytes;
  m.myAs = asn > 0xffff ? 23456 : asn;
  for (const p of m.params) for (const c of p.caps) if (c.code === 65 && c.value.length === 4) c.value = u32(asn);
  return frame(1, writeOpen(m));
}

// ---- seeds ------------------------------------------------------------------------------------------------------

const HERE = fileURLToPath(import.meta.url);
const ROOT = HERE.slice(0, HERE.lastIndexOf('/test/')).replace(/\/dist$/, '');
export const CAPTURES_DIR = `${ROOT}/test/fixtures/captures`;

interface CaptureIndexRow {
  file: string;
  type: Kind;
  fourOctetAs: boolean;
  description: string;
}

/** The golden captures: real messages from real daemons. */
export function loadCaptures(dir = CAPTURES_DIR): Seed[] {
  const index = JSON.parse(readFileSync(`${dir}/index.json`, 'utf8')) as CaptureIndexRow[];
  const seeds = index.map((row) => ({
    name: `capture ${row.file}`,
    kind: row.type,
    fourOctetAs: row.fourOctetAs,
    bytes: fromHex(readFileSync(`${dir}/${row.file}`, 'utf8')),
  }));
  if (seeds.length === 0) throw new Error(`no captures in ${dir}/index.json`);
  return seeds;
}

/** ExaBGP's encoding vectors (test/fixtures/exabgp-vectors/raw.txt): many attribute and family shapes. */
export function loadExabgpVectors(file = `${CAPTURES_DIR}/../exabgp-vectors/raw.txt`): Seed[] {
  const kinds: Record<number, Kind> = { 1: 'open', 2: 'update', 3: 'notification', 4: 'keepalive', 5: 'route-refresh' };
  const seeds: Seed[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const [name, hex] = line.trim().split(' ');
    if (!name || !hex) continue;
    const bytes = fromHex(hex);
    const kind = kinds[bytes[18] ?? 0];
    if (kind) seeds.push({ name: `ExaBGP ${name}`, kind, bytes, fourOctetAs: name !== 'conf-no-asn4' });
  }
  if (seeds.length === 0) throw new Error(`no vectors in ${file}`);
  return seeds;
}

const prefixBytes = (a: number, b: number, c: number, len: number): Uint8Array => {
  const octets = Math.ceil(len / 8);
  return concat([u8(len), Uint8Array.of(a, b, c, 0).subarray(0, octets)]);
};

/** fd00:51:<random>::/len as wire bytes (length byte, then ceil(len/8) address bytes). */
function prefix6Bytes(rng: Rng): Uint8Array {
  const len = rng.pick([48, 64, 122, 128, 0, 1, 127]);
  const addr = Uint8Array.of(0xfd, 0, 0, 0x51, rng.int(256), rng.int(256), 0, 0, 0, 0, 0, 0, 0, 0, 0, rng.int(256));
  return concat([u8(len), addr.subarray(0, Math.ceil(len / 8))]);
}

/** An IPv6 next hop field: its length byte and 16 (global) or 32 (global, then link-local fe80::) bytes. */
function ipv6NextHop(rng: Rng): Uint8Array[] {
  const global = Uint8Array.of(0xfd, 0, 0, 0x51, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 + rng.int(250));
  if (rng.int(2) === 0) return [u8(16), global];
  return [u8(32), global, Uint8Array.of(0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 + rng.int(250))];
}

/** A plausible value for path attribute `type` (the well-formed shape where one exists). */
function attrValue(type: number, four: boolean, rng: Rng): Uint8Array {
  const asn = (v: number): Uint8Array => (four ? u32(v) : u16(v));
  switch (type) {
    case 1:
      return u8(rng.int(3));
    case 2:
    case 17:
      return concat([u8(2), u8(2), type === 17 ? u32(64512) : asn(64512), type === 17 ? u32(4200000000) : asn(65000)]);
    case 3:
    case 9:
      return Uint8Array.of(198, 18, rng.int(256), 1 + rng.int(250));
    case 4:
    case 5:
      return u32(rng.u32());
    case 6:
      return new Uint8Array(0);
    case 7:
      return concat([asn(64512), u32(0xc6120001)]);
    case 18:
      return concat([u32(4200000000), u32(0xc6120001)]);
    case 8:
    case 10:
      return concat([u32(rng.u32()), u32(rng.u32())]);
    case 14:
      // IPv4 unicast, or IPv6 unicast (RFC 2545) with a global or a global + link-local next hop.
      if (rng.int(2) === 0)
        return concat([u16(2), u8(1), ...ipv6NextHop(rng), u8(0), prefix6Bytes(rng), prefix6Bytes(rng)]);
      return concat([u16(1), u8(1), u8(4), Uint8Array.of(198, 18, 0, 7), u8(0), prefixBytes(10, 77, rng.int(256), 24)]);
    case 15:
      if (rng.int(2) === 0) return concat([u16(2), u8(1), prefix6Bytes(rng)]);
      return concat([u16(1), u8(1), prefixBytes(10, 78, rng.int(256), 24)]);
    case 16:
      return rng.bytes(8 * (1 + rng.int(3)));
    case 32:
      return rng.bytes(12 * (1 + rng.int(2)));
    default:
      return rng.bytes(rng.pick([0, 1, 2, 4, 8, 16]));
  }
}

/** RFC 4271 §5 categories: well-known (transitive), optional transitive, optional non-transitive. */
function attrFlags(type: number, rng: Rng): number {
  if (type >= 1 && type <= 3) return 0x40;
  if (type === 5 || type === 6) return 0x40;
  if (type === 4 || type === 9 || type === 10 || type === 14 || type === 15) return 0x80;
  if (type === 7 || type === 8 || type === 16 || type === 17 || type === 18 || type === 32) return 0xc0;
  return rng.pick([0x80, 0xc0, 0xe0, 0x40, 0x00]);
}

export function baseAttrs(four: boolean, peerAs: number): Attr[] {
  return [
    { flags: 0x40, type: 1, value: u8(0) },
    { flags: 0x40, type: 2, value: concat([u8(2), u8(1), four ? u32(peerAs) : u16(peerAs)]) },
    { flags: 0x40, type: 3, value: Uint8Array.of(198, 18, 0, 2) },
  ];
}

/** One UPDATE per attribute type code 0..255, and one OPEN per capability code 0..255. */
export function generatedSeeds(rng: Rng, peerAs: number): Seed[] {
  const seeds: Seed[] = [];
  for (const four of [true, false]) {
    for (let type = 0; type < 256; type++) {
      const attrs = baseAttrs(four, peerAs).filter((a) => a.type !== type);
      attrs.push({ flags: attrFlags(type, rng), type, value: attrValue(type, four, rng) });
      const nlri = concat([prefixBytes(10, 66, type, 24), prefixBytes(10, 67, type, 26)]);
      seeds.push({
        name: `generated UPDATE with attribute ${type}${four ? '' : ' (2-octet AS)'}`,
        kind: 'update',
        fourOctetAs: four,
        bytes: frame(2, writeUpdate({ withdrawn: prefixBytes(10, 68, type, 24), attrs, nlri })),
      });
    }
  }
  for (let code = 0; code < 256; code++) {
    const caps = baseCaps(peerAs).filter((c) => c.code !== code);
    caps.push({ code, value: capValue(code, peerAs, rng) });
    seeds.push({
      name: `generated OPEN with capability ${code}`,
      kind: 'open',
      fourOctetAs: true,
      bytes: frame(
        1,
        writeOpen({
          version: 4,
          myAs: peerAs > 0xffff ? 23456 : peerAs,
          hold: 90,
          bgpId: 0x0a000000 + code + 2,
          params: [{ type: 2, caps }],
          extended: false,
        }),
      ),
    });
  }
  seeds.push({ name: 'KEEPALIVE', kind: 'keepalive', fourOctetAs: true, bytes: frame(4, new Uint8Array(0)) });
  seeds.push({
    name: 'ROUTE-REFRESH',
    kind: 'route-refresh',
    fourOctetAs: true,
    bytes: frame(5, Uint8Array.of(0, 1, 0, 1)),
  });
  seeds.push({
    name: 'NOTIFICATION Cease',
    kind: 'notification',
    fourOctetAs: true,
    bytes: frame(3, Uint8Array.of(6, 2)),
  });
  seeds.push({ name: 'End-of-RIB', kind: 'update', fourOctetAs: true, bytes: frame(2, Uint8Array.of(0, 0, 0, 0)) });
  // RFC 4724 §2: the IPv6 unicast End-of-RIB, an UPDATE holding one empty MP_UNREACH_NLRI for AFI 2 / SAFI 1.
  seeds.push({
    name: 'IPv6 End-of-RIB',
    kind: 'update',
    fourOctetAs: true,
    bytes: frame(2, Uint8Array.of(0, 0, 0, 7, 0x90, 15, 0, 3, 0, 2, 1)),
  });
  for (let i = 0; i < 4; i++) {
    const attrs = [
      { flags: 0x80, type: 14, value: concat([u16(2), u8(1), ...ipv6NextHop(rng), u8(0), prefix6Bytes(rng)]) },
      ...baseAttrs(true, peerAs).filter((a) => a.type !== 3),
    ];
    seeds.push({
      name: 'generated IPv6 unicast UPDATE',
      kind: 'update',
      fourOctetAs: true,
      bytes: frame(2, writeUpdate({ withdrawn: new Uint8Array(0), attrs, nlri: new Uint8Array(0) })),
    });
  }
  return seeds;
}

export function baseCaps(peerAs: number, four = true): Cap[] {
  const caps: Cap[] = [
    { code: 1, value: Uint8Array.of(0, 1, 0, 1) },
    { code: 1, value: Uint8Array.of(0, 2, 0, 1) }, // IPv6 unicast (RFC 4760 §8): AFI 2 UPDATEs reach the RIB
    { code: 2, value: new Uint8Array(0) },
  ];
  if (four) caps.push({ code: 65, value: u32(peerAs) });
  return caps;
}

function capValue(code: number, peerAs: number, rng: Rng): Uint8Array {
  switch (code) {
    case 1:
      return Uint8Array.of(0, rng.pick([1, 2, 25]), 0, rng.pick([1, 2, 128]));
    case 2:
    case 6:
    case 70:
    case 128:
      return new Uint8Array(0);
    case 5:
      return Uint8Array.of(0, 1, 0, 1, 0, 2);
    case 64:
      return concat([u16(rng.pick([0x8078, 0x0078, 0x4000])), Uint8Array.of(0, 1, 1, 0x80)]);
    case 65:
      return u32(peerAs);
    case 69:
      return Uint8Array.of(0, 1, 1, rng.int(4));
    case 71:
      return Uint8Array.of(0, 1, 1, 0x80, 0, 0, 60);
    case 73:
      return concat([u8(4), new TextEncoder().encode('node'), u8(0)]);
    default:
      return rng.bytes(rng.pick([0, 1, 2, 4, 8]));
  }
}

/** The OPEN a well-behaved peer sends (4-octet AS or not). */
export function baseOpen(peerAs: number, bgpId: number, four: boolean, hold = 90): Uint8Array {
  return frame(
    1,
    writeOpen({
      version: 4,
      myAs: peerAs > 0xffff ? 23456 : peerAs,
      hold,
      bgpId,
      params: [{ type: 2, caps: baseCaps(peerAs, four) }],
      extended: false,
    }),
  );
}

export const KEEPALIVE_BYTES = frame(4, new Uint8Array(0));

// ---- mutation ------------------------------------------------------------------------------------------------

function resize(rng: Rng, value: Uint8Array, len: number): Uint8Array {
  if (len <= value.length) return value.slice(0, len);
  return concat([value, rng.bytes(len - value.length)]);
}

function boundaryLength(rng: Rng, around: number): number {
  return rng.chance(0.5) ? Math.max(0, around + rng.range(-2, 2)) : rng.pick(BOUNDARY_LENGTHS);
}

/** Random prefix fields: valid lengths 0..32, invalid 33..255, and truncated prefixes. */
function prefixField(rng: Rng): Uint8Array {
  const parts: Uint8Array[] = [];
  const n = rng.pick([0, 1, 2, 3, 5, 20]);
  for (let i = 0; i < n; i++) {
    const len = rng.chance(0.9) ? rng.int(33) : rng.range(33, 255);
    const octets = Math.min(4, Math.ceil(len / 8));
    parts.push(concat([u8(len), rng.bytes(rng.chance(0.95) ? octets : rng.int(octets + 2))]));
  }
  return concat(parts);
}

function mutateAttr(rng: Rng, a: Attr): void {
  switch (rng.int(7)) {
    case 0:
      a.flags ^= 1 << rng.int(8);
      break;
    case 1:
      a.flags = rng.int(256);
      break;
    case 2:
      a.type = rng.chance(0.5)
        ? rng.pick([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 32, 255])
        : rng.int(256);
      break;
    case 3:
      a.value = resize(rng, a.value, boundaryLength(rng, a.value.length));
      break;
    case 4:
      if (a.value.length > 0) {
        a.value = a.value.slice();
        a.value[rng.int(a.value.length)] = rng.chance(0.5) ? rng.pick([0, 1, 2, 3, 4, 0x7f, 0x80, 0xff]) : rng.int(256);
      }
      break;
    case 5:
      a.lenDelta = rng.pick([-3, -2, -1, 1, 2, 3, 255, -255]);
      break;
    default:
      a.flags ^= 0x10; // extended length on or off
  }
}

function mutateUpdateModel(rng: Rng, m: UpdateModel, four: boolean): void {
  const ops = 1 + rng.int(3);
  for (let i = 0; i < ops; i++) {
    // 0..2 and 12..17: an attribute's fields; 11 (fill NLRI to 4096, heavy on the RIB) only now and then.
    const op = rng.int(18);
    switch (op >= 12 ? 0 : op === 11 && rng.chance(0.8) ? 0 : op) {
      case 0:
      case 1:
      case 2:
        if (m.attrs.length > 0) mutateAttr(rng, rng.pick(m.attrs));
        break;
      case 3: {
        const type = rng.int(256);
        m.attrs.splice(rng.int(m.attrs.length + 1), 0, {
          flags: attrFlags(type, rng),
          type,
          value: rng.chance(0.5) ? attrValue(type, four, rng) : rng.bytes(boundaryLength(rng, 4)),
        });
        break;
      }
      case 4:
        if (m.attrs.length > 0) m.attrs.splice(rng.int(m.attrs.length), 1);
        break;
      case 5:
        if (m.attrs.length > 0) m.attrs.push({ ...rng.pick(m.attrs) }); // duplicate
        break;
      case 6:
        if (m.attrs.length > 1) {
          const i1 = rng.int(m.attrs.length);
          const i2 = rng.int(m.attrs.length);
          [m.attrs[i1], m.attrs[i2]] = [m.attrs[i2]!, m.attrs[i1]!];
        }
        break;
      case 7:
        m.withdrawn = rng.chance(0.5) ? prefixField(rng) : concat([m.withdrawn, prefixField(rng)]);
        break;
      case 8:
        m.nlri = rng.chance(0.5) ? prefixField(rng) : concat([m.nlri, prefixField(rng)]);
        break;
      case 9:
        if (rng.chance(0.5)) m.withdrawnLenDelta = rng.pick([-2, -1, 1, 2, 4096]);
        else m.attrLenDelta = rng.pick([-3, -2, -1, 1, 2, 3, 4096]);
        break;
      case 10: {
        // Grow to an exact total length near 4096 (or one of the small boundaries) with one big attribute.
        const target = rng.pick(TOTAL_LENGTHS.filter((t) => t > 1000));
        const type = rng.chance(0.5) ? rng.int(256) : rng.pick([8, 10, 16, 32, 99]);
        const without = HEADER + writeUpdate(m).length + 4;
        if (target > without) m.attrs.push({ flags: 0xd0, type, value: rng.bytes(target - without) });
        break;
      }
      default: {
        // Fill NLRI with /32s up to about the limit.
        const room = MAX - HEADER - writeUpdate(m).length;
        const n = Math.max(0, Math.floor(room / 5) + rng.range(-1, 1));
        const parts: Uint8Array[] = [];
        for (let k = 0; k < n; k++) parts.push(Uint8Array.of(32, 10, 99, (k >> 8) & 0xff, k & 0xff));
        m.nlri = concat([m.nlri, ...parts]);
      }
    }
  }
}

function mutateOpenModel(rng: Rng, m: OpenModel): void {
  const ops = 1 + rng.int(2);
  for (let i = 0; i < ops; i++) {
    const caps = m.params.find((p) => p.type === 2)?.caps;
    switch (rng.int(11)) {
      case 0:
        m.version = rng.pick([0, 1, 2, 3, 5, 255]);
        break;
      case 1:
        m.hold = rng.pick([0, 1, 2, 3, 4, 9, 90, 65535]);
        break;
      case 2:
        m.bgpId = rng.pick([0, 0xffffffff, 0x0a000001, rng.u32()]);
        break;
      case 3:
        m.myAs = rng.pick([0, 23456, 65535, rng.int(65536)]);
        break;
      case 4:
        if (caps && caps.length > 0) {
          const c = rng.pick(caps);
          if (rng.chance(0.5)) c.code = rng.int(256);
          else c.value = resize(rng, c.value, boundaryLength(rng, c.value.length));
        }
        break;
      case 5:
        if (caps) caps.push({ code: rng.int(256), value: rng.bytes(boundaryLength(rng, 4) % 256) });
        break;
      case 6:
        if (caps && caps.length > 0) rng.pick(caps).lenDelta = rng.pick([-2, -1, 1, 2]);
        break;
      case 7:
        if (m.params.length > 0) rng.pick(m.params).lenDelta = rng.pick([-2, -1, 1, 2]);
        else m.optLenDelta = rng.pick([1, 2]);
        break;
      case 8:
        m.optLenDelta = rng.pick([-2, -1, 1, 2, 255]);
        break;
      case 9:
        if (rng.chance(0.5)) m.params.push({ type: rng.int(256), caps: [], raw: rng.bytes(rng.pick([0, 1, 4])) });
        else m.extended = !m.extended;
        break;
      default: {
        // RFC 9072: an OPEN up to 4096 bytes, capabilities spread over parameters.
        m.extended = true;
        const target = rng.pick([300, 1000, 4000, 4090, 4096]);
        while (HEADER + writeOpen(m).length + 260 < target)
          m.params.push({ type: 2, caps: [{ code: rng.pick([73, 200, 5, 69]), value: rng.bytes(250) }] });
      }
    }
  }
}

/** Byte-level mutation of the body, Length kept equal to the bytes. */
function mutateBody(rng: Rng, bytes: Uint8Array): Uint8Array {
  let body: Uint8Array = bytes.slice(HEADER);
  const type = bytes[18]!;
  switch (rng.int(5)) {
    case 0:
      for (let i = 0, n = 1 + rng.int(4); i < n && body.length > 0; i++) body[rng.int(body.length)] = rng.int(256);
      break;
    case 1:
      body = body.slice(0, rng.int(body.length + 1));
      break;
    case 2:
      body = concat([body, rng.bytes(rng.pick([1, 2, 3, 4, 7, 100]))]);
      break;
    case 3: {
      const at = rng.int(body.length + 1);
      body = concat([body.subarray(0, at), rng.bytes(1 + rng.int(4)), body.subarray(at)]);
      break;
    }
    default:
      body = rng.bytes(Math.min(MAX - HEADER, boundaryLength(rng, body.length)));
  }
  return frame(type, body.subarray(0, MAX - HEADER));
}

/** Header mutations: marker, Length outside 19..4096, type, a body of exactly a boundary length. */
function mutateHeader(rng: Rng, bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  switch (rng.int(4)) {
    case 0:
      out[rng.int(16)] = rng.int(255);
      return out;
    case 1: {
      const len = rng.pick([0, 1, 18, 4097, 4098, 0x8000, 0xffff]);
      out[16] = len >>> 8;
      out[17] = len & 0xff;
      return out;
    }
    case 2:
      out[18] = rng.chance(0.5) ? rng.pick([0, 6, 7, 128, 255]) : rng.int(256);
      return out;
    default: {
      const total = rng.pick(TOTAL_LENGTHS);
      return frame(out[18]!, resize(rng, out.subarray(HEADER), total - HEADER));
    }
  }
}

/** Special shapes for the small message types: NOTIFICATION data, ROUTE-REFRESH bodies, KEEPALIVE bodies. */
function mutateSmall(rng: Rng, seed: Seed): Uint8Array {
  const len = rng.chance(0.3) ? rng.pick(TOTAL_LENGTHS) - HEADER : boundaryLength(rng, 4) % (MAX - HEADER + 1);
  if (seed.kind === 'notification')
    return frame(3, concat([u8(rng.int(9)), u8(rng.int(12)), rng.bytes(Math.max(0, len - 2))]));
  if (seed.kind === 'route-refresh') {
    const body = resize(
      rng,
      Uint8Array.of(0, rng.pick([1, 2, 25]), rng.pick([0, 1, 2, 3, 255]), rng.pick([1, 2, 128])),
      rng.chance(0.5) ? 4 : len,
    );
    return frame(5, body);
  }
  return frame(4, rng.bytes(rng.chance(0.7) ? 0 : len));
}

/** One mutated message from `seed`. Always at least 19 bytes; its Length may lie only in the header case. */
export function mutate(rng: Rng, seed: Seed): Uint8Array {
  const roll = rng.int(100);
  if (roll < 5) return seed.bytes;
  if (roll < 12) return mutateHeader(rng, seed.bytes);
  if (roll < 27) return mutateBody(rng, seed.bytes);
  if (seed.kind === 'update') {
    const m = parseUpdate(seed.bytes.subarray(HEADER));
    if (!m) return mutateBody(rng, seed.bytes);
    mutateUpdateModel(rng, m, seed.fourOctetAs);
    return frame(2, writeUpdate(m).subarray(0, MAX - HEADER));
  }
  if (seed.kind === 'open') {
    const m = parseOpen(seed.bytes.subarray(HEADER));
    if (!m) return mutateBody(rng, seed.bytes);
    mutateOpenModel(rng, m);
    return frame(1, writeOpen(m).subarray(0, MAX - HEADER));
  }
  return mutateSmall(rng, seed);
}
