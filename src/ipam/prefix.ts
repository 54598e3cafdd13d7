// Block and pool CIDRs of both families, for the IPAM: parsing (strict: no host bits), containment,
// overlap, the address at an ordinal and the ordinal of an address, and the aligned blocks of a pool.
// Addresses are bigints with their family (../resources/cidr.ts, which reads IPv6 with ip-num), so one
// code path serves a /26 of IPv4 and a /122 of IPv6 (Calico's default block sizes, ../resources/defaults.ts).
//
// Why this is hard: an IPv6 pool has more blocks than a number can count (a /48 of /122s is 2^74), so
// enumeration is a generator over bigints, and a block's size must stay small enough to be an array of
// allocations (Calico allows /116../128 for IPv6: at most 4096 addresses).

import {
  cidrsOverlap,
  familyBits,
  formatAddress,
  parseAddress,
  parseCidr,
  type Cidr,
  type Family,
} from '../resources/cidr.js';
import { DEFAULT_BLOCK_SIZE } from '../resources/defaults.js';

export type { Family };

/** Parses a block or pool CIDR of either family; throws naming `what` and the value. `strict`: no host bits. */
export function parseNet(text: string, what = 'CIDR', strict = false): Cidr {
  const cidr = parseCidr(text);
  if (cidr === null) {
    throw new Error(`${what} "${text}" is not an IPv4 or IPv6 CIDR (like 10.244.0.0/16 or fd00:10:244::/48)`);
  }
  if (strict && cidr.addr !== cidr.network) {
    throw new Error(`${what} "${text}" has host bits set (the network is ${formatNet(cidr)})`);
  }
  return cidr;
}

/** The canonical text of a network: "10.244.1.0/26", "fd00:10:244::40/122" (RFC 5952 compression). */
export function formatNet(cidr: Cidr): string {
  return `${formatAddress(cidr.family, cidr.network)}/${cidr.len}`;
}

/** The family of a CIDR or address text (4 when it is neither: callers validate elsewhere). */
export function familyOf(text: string): Family {
  return text.includes(':') ? 6 : 4;
}

/** Calico's block size when a pool does not say: 26 for IPv4, 122 for IPv6. */
export function defaultBlockSize(poolCidr: string): number {
  return DEFAULT_BLOCK_SIZE[familyOf(poolCidr)];
}

/** True when `inner` lies wholly inside `outer` (same family). */
export function netContains(outer: Cidr, inner: Cidr): boolean {
  return outer.family === inner.family && inner.len >= outer.len && cidrsOverlap(outer, inner);
}

export function netsOverlap(a: Cidr, b: Cidr): boolean {
  return cidrsOverlap(a, b);
}

/** Number of addresses in a block of this family and length (throws past 2^16: not a block). */
export function blockAddressCount(cidr: Cidr): number {
  const hostBits = familyBits(cidr.family) - cidr.len;
  if (hostBits > 16) {
    throw new Error(`block ${formatNet(cidr)} holds 2^${hostBits} addresses: too large for one IPAM block`);
  }
  return 2 ** hostBits;
}

/** The address at `ordinal` of the block. */
export function addressAt(cidr: Cidr, ordinal: number): string {
  return formatAddress(cidr.family, cidr.network + BigInt(ordinal));
}

/** The ordinal of `ip` in the block, or null when it is not an address of the block's family inside it. */
export function ordinalIn(cidr: Cidr, ip: string): number | null {
  const parsed = parseAddress(ip);
  if (parsed === null || parsed.family !== cidr.family) return null;
  const offset = parsed.addr - cidr.network;
  const size = 1n << BigInt(familyBits(cidr.family) - cidr.len);
  return offset >= 0n && offset < size ? Number(offset) : null;
}

/** Sort key of an address or CIDR text: IPv4 before IPv6, then by address, then by length. */
export function compareNetText(a: string, b: string): number {
  const pa = parseCidr(a.includes('/') ? a : `${a}/${a.includes(':') ? 128 : 32}`);
  const pb = parseCidr(b.includes('/') ? b : `${b}/${b.includes(':') ? 128 : 32}`);
  if (pa === null || pb === null) return a < b ? -1 : a > b ? 1 : 0;
  if (pa.family !== pb.family) return pa.family - pb.family;
  if (pa.network !== pb.network) return pa.network < pb.network ? -1 : 1;
  return pa.len - pb.len;
}

/** Every aligned block of `blockSizeBits` inside `poolCidr`, lowest first (a generator: an IPv6 pool has very many). */
export function* blocksOf(poolCidr: string, blockSizeBits: number): Generator<string> {
  const pool = parseNet(poolCidr, 'pool CIDR');
  const bits = familyBits(pool.family);
  if (blockSizeBits < pool.len || blockSizeBits > bits) {
    throw new Error(`blockSize ${blockSizeBits} does not fit pool ${poolCidr} (expected ${pool.len}..${bits})`);
  }
  const step = 1n << BigInt(bits - blockSizeBits);
  const count = 1n << BigInt(blockSizeBits - pool.len);
  for (let i = 0n; i < count; i++) {
    yield `${formatAddress(pool.family, pool.network + i * step)}/${blockSizeBits}`;
  }
}
