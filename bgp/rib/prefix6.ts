// RIB keys of both families: an IPv4 prefix is its `prefixKey` number (../ip.ts: addr * 64 + len), an IPv6
// prefix its 17-character `Prefix6` string (../ip6.ts). Every RIB (Adj-RIB-In, Loc-RIB, Adj-RIB-Out, update
// groups) keys its Maps on `RibKey`; `typeof key === 'string'` is the family test, so the IPv4 hot path
// keeps its numbers (no boxing, no strings) and IPv6 pays one short string per prefix, made once at decode.
//
// Why not one representation for both: an IPv4 key as a string would cost every IPv4 route a heap string
// (today they are mostly HeapNumbers shared between the RIBs), and an IPv6 prefix does not fit a double.

import { formatPrefix, prefixFromKey, prefixKey } from '../ip.js';
import { formatPrefix6, isPrefix6, type Prefix6, type RibKey } from '../ip6.js';
import type { Prefix } from '../types.js';

export type { RibKey };

/** A prefix of either family as the RIB hands it out: `{addr, len}` for IPv4, the key string for IPv6. */
export type RibPrefix = Prefix | Prefix6;

export function ribPrefix(key: RibKey): RibPrefix {
  return isPrefix6(key) ? key : prefixFromKey(key);
}

export function ribKeyOf(prefix: RibPrefix): RibKey {
  return typeof prefix === 'string' ? prefix : prefixKey(prefix);
}

/** IPv4 first (by number), then IPv6 (by address, then length): the order prefixes are sent in. */
export function compareRibKeys(a: RibKey, b: RibKey): number {
  if (typeof a === 'number') return typeof b === 'number' ? a - b : -1;
  if (typeof b === 'number') return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Splits prefixes by family (each keeps its order). */
export function byFamily(prefixes: readonly RibPrefix[]): { v4: Prefix[]; v6: Prefix6[] } {
  const v4: Prefix[] = [];
  const v6: Prefix6[] = [];
  for (const p of prefixes) {
    if (typeof p === 'string') v6.push(p);
    else v4.push(p);
  }
  return { v4, v6 };
}

/** Text for a prefix of either family: "10.244.1.0/26", "fd00:10:244::/122". */
export function formatRibPrefix(prefix: RibPrefix): string {
  return typeof prefix === 'string' ? formatPrefix6(prefix) : formatPrefix(prefix);
}
