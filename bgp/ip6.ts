// IPv6 addresses and prefixes as compact strings (RFC 4291 text forms at the edges only).
//
// Representation (a decision, see bgp/README.md "IPv6"): an IPv6 address is a 16-character string whose
// char codes are its 16 bytes (0..255, so V8 keeps it a one-byte string: 16 bytes of payload); a prefix is
// the address with host bits cleared followed by one more character, the length (0..128): 17 characters.
// Why a string and not two numbers or a Uint8Array: a string is a Map key by value (two numbers would need
// nested Maps or a composite key made per lookup, a Uint8Array is keyed by identity); V8 caches a string's
// hash, so a key made once at decode is hashed once; it compares and sorts in address order; it is
// immutable, so the RIB can share it. IPv4 stays on `prefixKey` numbers (ip.ts): RIB keys are
// `number | string`, and `typeof key === 'string'` is the family test.

import { formatPrefix, prefixFromKey } from './ip.js';

/** An IPv6 address: 16 characters, one per byte. */
export type Ipv6 = string;
/** An IPv6 prefix key: 16 address characters (host bits zero), then the length as one character. */
export type Prefix6 = string;

/** The key of any prefix in a RIB: an IPv4 `prefixKey` number or an IPv6 `Prefix6` string. */
export type RibKey = number | Prefix6;

export const isPrefix6 = (key: RibKey): key is Prefix6 => typeof key === 'string';

/** Bytes (at least 16 from `at`) to an address string. */
export function ipv6FromBytes(bytes: Uint8Array, at = 0): Ipv6 {
  return String.fromCharCode(
    bytes[at]!,
    bytes[at + 1]!,
    bytes[at + 2]!,
    bytes[at + 3]!,
    bytes[at + 4]!,
    bytes[at + 5]!,
    bytes[at + 6]!,
    bytes[at + 7]!,
    bytes[at + 8]!,
    bytes[at + 9]!,
    bytes[at + 10]!,
    bytes[at + 11]!,
    bytes[at + 12]!,
    bytes[at + 13]!,
    bytes[at + 14]!,
    bytes[at + 15]!,
  );
}

export function ipv6ToBytes(addr: Ipv6): Uint8Array {
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = addr.charCodeAt(i);
  return out;
}

/** Parses RFC 4291 §2.2 text (with `::` and an embedded dotted quad). Returns null for anything else. */
export function tryParseIpv6(text: string): Ipv6 | null {
  if (text.length < 2 || text.length > 45) return null;
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const groups = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    const fields = part.split(':');
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i]!;
      if (i === fields.length - 1 && f.includes('.')) {
        const quad = f.split('.');
        if (quad.length !== 4 || quad.some((q) => !/^(0|[1-9][0-9]{0,2})$/.test(q) || Number(q) > 255)) return null;
        out.push(Number(quad[0]) * 256 + Number(quad[1]), Number(quad[2]) * 256 + Number(quad[3]));
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(f)) return null;
        out.push(parseInt(f, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (head === null || tail === null) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const all = [...head, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...tail];
  let out = '';
  for (const g of all) out += String.fromCharCode(g >>> 8, g & 255);
  return out;
}

export function parseIpv6(text: string, what = 'IPv6 address'): Ipv6 {
  const addr = tryParseIpv6(text);
  if (addr === null) throw new Error(`${what} "${text}" is not an IPv6 address (like fd00:51::1)`);
  return addr;
}

/** RFC 5952 text: lower case, no leading zeros, the longest run of two or more zero groups as `::`. */
export function formatIpv6(addr: Ipv6): string {
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push(addr.charCodeAt(i) * 256 + addr.charCodeAt(i + 1));
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (list: number[]): string => list.map((x) => x.toString(16)).join(':');
  if (bestAt < 0) return hex(g);
  return `${hex(g.slice(0, bestAt))}::${hex(g.slice(bestAt + bestLen))}`;
}

/** The prefix key of `addr`/`len`, host bits cleared. */
export function prefix6(addr: Ipv6, len: number): Prefix6 {
  let out = '';
  for (let i = 0; i < 16; i++) {
    const bits = len - i * 8;
    const byte = addr.charCodeAt(i);
    out += String.fromCharCode(bits >= 8 ? byte : bits <= 0 ? 0 : byte & ((0xff << (8 - bits)) & 0xff));
  }
  return out + String.fromCharCode(len);
}

export const prefix6Len = (key: Prefix6): number => key.charCodeAt(16);
export const prefix6Addr = (key: Prefix6): Ipv6 => key.slice(0, 16);

export function formatPrefix6(key: Prefix6): string {
  return `${formatIpv6(prefix6Addr(key))}/${prefix6Len(key)}`;
}

/** Parses "addr/len". With `strict`, host bits must be zero; otherwise they are cleared. */
export function parsePrefix6(text: string, options: { strict?: boolean; what?: string } = {}): Prefix6 {
  const what = options.what ?? 'IPv6 prefix';
  const slash = text.indexOf('/');
  if (slash < 0) throw new Error(`${what} "${text}" has no prefix length (expected addr/len, like fd00:51::/64)`);
  const addr = tryParseIpv6(text.slice(0, slash));
  if (addr === null) throw new Error(`${what} "${text}": "${text.slice(0, slash)}" is not an IPv6 address`);
  const lenText = text.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(lenText) || Number(lenText) > 128)
    throw new Error(`${what} "${text}": prefix length "${lenText}" is not 0..128`);
  const key = prefix6(addr, Number(lenText));
  if (options.strict && prefix6Addr(key) !== addr)
    throw new Error(`${what} "${text}" has host bits set (did you mean ${formatPrefix6(key)}?)`);
  return key;
}

/** True when `addr` lies inside the prefix `key`. */
export function prefix6Contains(key: Prefix6, addr: Ipv6): boolean {
  return prefix6(addr, prefix6Len(key)) === key;
}

/** fe80::/10 (RFC 4291 §2.5.6). */
export const isLinkLocal6 = (addr: Ipv6): boolean =>
  addr.charCodeAt(0) === 0xfe && (addr.charCodeAt(1) & 0xc0) === 0x80;

/** Text for any RIB key, either family. */
export function formatRibKey(key: RibKey): string {
  return isPrefix6(key) ? formatPrefix6(key) : formatPrefix(prefixFromKey(key));
}
