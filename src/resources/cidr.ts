// CIDRs and addresses of both families for resource validation (IPPool overlap, WorkloadEndpoint
// ipNetworks, BGPPeer peerIP). bgp/ip.ts is IPv4-only and number-based for the hot path; resources may
// carry IPv6 too, so here an address is a bigint with its family, which makes overlap one comparison.

import { isIPv6 } from 'node:net';
import { IPv6 } from 'ip-num';
import { tryParseIpv4 } from '../../bgp/index.js';

export type Family = 4 | 6;

export interface Cidr {
  family: Family;
  /** The address as written (host bits included). */
  addr: bigint;
  len: number;
  /** The address with host bits cleared. */
  network: bigint;
}

const BITS: Record<Family, number> = { 4: 32, 6: 128 };

/** Parses one IPv4 or IPv6 address (no zone, no brackets). Null when it is neither. */
export function parseAddress(text: string): { family: Family; addr: bigint } | null {
  const v4 = tryParseIpv4(text);
  if (v4 !== null) return { family: 4, addr: BigInt(v4) };
  if (!isIPv6(text) || text.includes('%')) return null;
  return { family: 6, addr: ipv6ToBigint(text) };
}

function ipv6ToBigint(text: string): bigint {
  // Embedded IPv4 tail ("::ffff:1.2.3.4") becomes two hextets first; ip-num reads the hextet form.
  let body = text;
  const lastColon = body.lastIndexOf(':');
  const tail = body.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = tryParseIpv4(tail) ?? 0;
    body = `${body.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  return IPv6.fromString(body).getValue();
}

function maskOf(family: Family, len: number): bigint {
  const bits = BigInt(BITS[family]);
  return ((1n << bits) - 1n) ^ ((1n << (bits - BigInt(len))) - 1n);
}

/** Parses "addr/len" of either family. Null when it is not one. */
export function parseCidr(text: string): Cidr | null {
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const address = parseAddress(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  if (address === null || !/^(0|[1-9][0-9]{0,2})$/.test(lenText)) return null;
  const len = Number(lenText);
  if (len > BITS[address.family]) return null;
  return { ...address, len, network: address.addr & maskOf(address.family, len) };
}

export function formatAddress(family: Family, addr: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((addr >> s) & 255n)).join('.');
  const hextets: string[] = [];
  for (let i = 7; i >= 0; i--) hextets.push(((addr >> BigInt(i * 16)) & 0xffffn).toString(16));
  // Compress the longest run of zero hextets (RFC 5952 §4.2).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && hextets[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  if (best < 0) return hextets.join(':');
  return `${hextets.slice(0, best).join(':')}::${hextets.slice(best + bestLen).join(':')}`;
}

export function formatCidrNetwork(cidr: Cidr): string {
  return `${formatAddress(cidr.family, cidr.network)}/${cidr.len}`;
}

/** True when the two networks share at least one address (one contains the other). */
export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  const len = Math.min(a.len, b.len);
  const mask = maskOf(a.family, len);
  return (a.network & mask) === (b.network & mask);
}

export function familyBits(family: Family): number {
  return BITS[family];
}
