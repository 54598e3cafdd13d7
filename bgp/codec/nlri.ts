// IPv4 prefixes as they sit in the Withdrawn Routes and NLRI fields (RFC 4271 §4.3) and inside
// MP_REACH/MP_UNREACH for AFI 1 (RFC 4760 §5): one length byte, then ceil(len/8) address bytes.
//
// Why this is hard: this is the hot path (a full table is millions of prefixes), so decoding is one tight
// loop producing {addr, len} numbers, with no strings, closures or per-prefix allocations beyond the
// object. Host bits beyond `len` are cleared so prefixes compare and key correctly.

import { maskOf } from '../ip.js';
import type { Prefix } from '../types.js';
import type { Writer } from './writer.js';

/** Why a prefix list could not be decoded (RFC 7606 §5.3 "syntactically incorrect"), or null if fine. */
export interface PrefixError {
  reason: string;
}

/**
 * Decodes prefixes from `buf[start, end)` into `out`. Returns null on success, or the reason the field is
 * syntactically incorrect: a length > 32 or a prefix that overruns the field (RFC 7606 §5.3).
 */
export function decodePrefixesInto(buf: Uint8Array, start: number, end: number, out: Prefix[]): PrefixError | null {
  let p = start;
  while (p < end) {
    const len = buf[p]!;
    if (len > 32) return { reason: `prefix length ${len} at byte ${p - start} is over 32` };
    const n = (len + 7) >> 3;
    if (p + 1 + n > end)
      return { reason: `prefix /${len} at byte ${p - start} needs ${n} address byte(s), ${end - p - 1} left` };
    let addr = 0;
    switch (n) {
      case 4:
        addr = (buf[p + 1]! << 24) | (buf[p + 2]! << 16) | (buf[p + 3]! << 8) | buf[p + 4]!;
        break;
      case 3:
        addr = (buf[p + 1]! << 24) | (buf[p + 2]! << 16) | (buf[p + 3]! << 8);
        break;
      case 2:
        addr = (buf[p + 1]! << 24) | (buf[p + 2]! << 16);
        break;
      case 1:
        addr = buf[p + 1]! << 24;
        break;
    }
    out.push({ addr: (addr & maskOf(len)) >>> 0, len });
    p += 1 + n;
  }
  return null;
}

/** Wire size of one prefix. */
export function prefixWireLength(len: number): number {
  return 1 + ((len + 7) >> 3);
}

export function encodePrefix(w: Writer, prefix: Prefix): void {
  const n = (prefix.len + 7) >> 3;
  w.u8(prefix.len);
  const a = prefix.addr;
  if (n > 0) w.u8(a >>> 24);
  if (n > 1) w.u8(a >>> 16);
  if (n > 2) w.u8(a >>> 8);
  if (n > 3) w.u8(a);
}

export function encodePrefixes(w: Writer, prefixes: readonly Prefix[]): void {
  for (const p of prefixes) encodePrefix(w, p);
}
