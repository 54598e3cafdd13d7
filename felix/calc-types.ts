// The felix route calculation's input and result (./route-calc.ts), and what its parts share: pools as
// parsed, the pool holding a prefix, warnings kept once each in first-seen order, and how a warning lists
// some routes. The parts: ./route-calc.ts (blackholes, workloads, peers, the whole), ./remote-routes.ts
// (BGP-learned remote blocks over IPIP or the host interface), ./vxlan-routes.ts (VXLAN from affinities).

import { prefixContains } from '../bgp/ip.js';
import type { Prefix } from '../bgp/types.js';
import type { IpipMode } from '../ipip/encap.js';
import type { DesiredRoute } from './routes.js';

/** A pool's ipipMode or vxlanMode: the one encapsulation-mode type (ipip/encap.ts). */
export type EncapMode = IpipMode;

export interface CalcPool {
  cidr: string;
  ipipMode: EncapMode;
  vxlanMode?: EncapMode;
  disabled?: boolean;
  /** Masquerade traffic from this pool to outside every pool (felix/nat.ts); not used for routes. */
  natOutgoing?: boolean;
}

export interface CalcWorkload {
  /** "10.244.196.129" or "10.244.196.129/32". */
  ip: string;
  /** The host-side interface from the datastore; derived from namespace and pod when absent. */
  interfaceName?: string;
  namespace: string;
  pod: string;
}

export interface CalcBgpRoute {
  prefix: string;
  nextHop: string;
}

/** What VXLAN routes are made from: IPAM block affinities and the other nodes' VTEPs. */
export interface CalcVxlan {
  /** Blocks affine to other nodes: the CIDR and the node. */
  remoteBlocks: ReadonlyArray<{ cidr: string; node: string }>;
  /** Other nodes: their address (with or without length) and their VTEP when allocated. */
  nodes: ReadonlyArray<{ name: string; ip: string; tunnelAddress?: string; mac?: string }>;
  /** vxlan.calico is there and right: routes through it may be programmed. */
  usable: boolean;
  /** Remote tunnel addresses whose neighbour and FDB entries are in the kernel; absent: all count as there. */
  programmed?: ReadonlySet<string>;
}

export interface CalcInput {
  node: {
    /** This node's address with its prefix length: "192.168.31.201/24". */
    ip: string;
    /** The interface holding that address: direct and BGP routes leave through it. */
    hostInterface: string;
  };
  pools: CalcPool[];
  /** Blocks affine to this node, as CIDRs ("10.244.196.128/26"). */
  localBlocks: string[];
  workloads: CalcWorkload[];
  /** Best routes from the Loc-RIB. */
  bgpRoutes: CalcBgpRoute[];
  /** False when tunl0 cannot carry traffic (no IPIP in the kernel): tunnel routes are skipped. */
  tunnelUsable: boolean;
  /**
   * BGPPeer reachableBy (Calico: a static `<peer>/32 via <gateway>`, in BIRD and so the kernel): each peer
   * address with the gateway it is reached through. Absent: none.
   */
  peerRoutes?: ReadonlyArray<{ address: string; gateway: string }>;
  /** VXLAN pools' remote routes come from here; absent: none are programmed. */
  vxlan?: CalcVxlan;
}

export interface CalcResult {
  /** One route per destination, sorted by address then prefix length. */
  routes: DesiredRoute[];
  /** For people: each names the value, what was done and what would fix it. Deterministic order. */
  warnings: string[];
}

/** How a pool's remote routes are handled. */
export type PoolHandling =
  { kind: 'ipip'; mode: IpipMode } | { kind: 'vxlan'; mode: IpipMode } | { kind: 'leave-alone' };

export interface ParsedPool {
  cidr: string;
  prefix: Prefix;
  handling: PoolHandling;
}

/** The most specific pool holding all of `prefix` (pools should not overlap; if they do, the longer wins). */
export function poolFor(pools: readonly ParsedPool[], prefix: Prefix): ParsedPool | undefined {
  let best: ParsedPool | undefined;
  for (const pool of pools) {
    if (pool.prefix.len > prefix.len || !prefixContains(pool.prefix, prefix.addr)) continue;
    if (best === undefined || pool.prefix.len > best.prefix.len) best = pool;
  }
  return best;
}

/** Routes listed in one warning before "(and N more)". */
export const LISTED_IN_WARNING = 5;

export function listSome(items: readonly string[]): string {
  const shown = items.slice(0, LISTED_IN_WARNING).join(', ');
  return items.length > LISTED_IN_WARNING ? `${shown} (and ${items.length - LISTED_IN_WARNING} more)` : shown;
}

export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Warnings in first-seen order, each once. */
export class Warnings {
  private readonly seen = new Set<string>();
  add(text: string): void {
    this.seen.add(text);
  }
  list(): string[] {
    return [...this.seen];
  }
}
