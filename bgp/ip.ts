// IPv4 addresses and prefixes as numbers. A uint32 in a JS number: no strings on the hot path.

import type { Prefix } from './types.js';

/** Parses dotted-quad IPv4. Returns null for anything else (leading zeros, out-of-range octets, junk). */
export function tryParseIpv4(text: string): number | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  let value = 0;
  for (const part of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return null;
    const octet = Number(part);
    if (octet > 255) return null;
    value = value * 256 + octet;
  }
  return value;
}

/** Parses dotted-quad IPv4 or throws an error that names the value. */
export function parseIpv4(text: string, what = 'IPv4 address'): number {
  const value = tryParseIpv4(text);
  if (value === null) throw new Error(`${what} "${text}" is not a dotted-quad IPv4 address (like 198.18.0.1)`);
  return value;
}

export function formatIpv4(value: number): string {
  return `${(value >>> 24) & 255}.${(value >>> 16) & 255}.${(value >>> 8) & 255}.${value & 255}`;
}

/** The netmask of a prefix length as uint32 (len 0 → 0). */
export function maskOf(len: number): number {
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

/** Parses "a.b.c.d/len". With `strict`, host bits must be zero; otherwise they are cleared. */
export function parsePrefix(text: string, options: { strict?: boolean; what?: string } = {}): Prefix {
  const what = options.what ?? 'prefix';
  const slash = text.indexOf('/');
  if (slash < 0) throw new Error(`${what} "${text}" has no prefix length (expected a.b.c.d/len, like 10.244.1.0/26)`);
  const addr = tryParseIpv4(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  if (addr === null) throw new Error(`${what} "${text}": "${text.slice(0, slash)}" is not a dotted-quad IPv4 address`);
  if (!/^(0|[1-9][0-9]?)$/.test(lenText) || Number(lenText) > 32) {
    throw new Error(`${what} "${text}": prefix length "${lenText}" is not 0..32`);
  }
  const len = Number(lenText);
  const network = (addr & maskOf(len)) >>> 0;
  if (options.strict && network !== addr) {
    throw new Error(`${what} "${text}" has host bits set (did you mean ${formatIpv4(network)}/${len}?)`);
  }
  return { addr: network, len };
}

/** An IPv4 CIDR, or null for an IPv6 one, an absent one or anything unreadable (resources hold both families). */
export function tryParseIpv4Prefix(text: string | undefined): Prefix | null {
  if (text === undefined || !text.includes('.')) return null;
  try {
    return parsePrefix(text);
  } catch {
    return null;
  }
}

export function formatPrefix(prefix: Prefix): string {
  return `${formatIpv4(prefix.addr)}/${prefix.len}`;
}

/** One number per prefix for map keys: addr * 64 + len (fits in 2^38, exact in a double). */
export function prefixKey(prefix: Prefix): number {
  return prefix.addr * 64 + prefix.len;
}

export function prefixFromKey(key: number): Prefix {
  const len = key % 64;
  return { addr: (key - len) / 64, len };
}

/** True when `addr` lies inside `prefix`. */
export function prefixContains(prefix: Prefix, addr: number): boolean {
  return (addr & maskOf(prefix.len)) >>> 0 === prefix.addr;
}
