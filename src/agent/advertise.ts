// What this node advertises over BGP, and what it lets go to peers: Calico's advertising rules as two
// pure functions of the IPAM state and the pools.
//
//   originatedPrefixes: the blocks affine to this node (block affinity "host:<node>" *and* a confirmed,
//     not deleted BlockAffinity) whose pool is enabled and exported, plus a /32 for each of this node's
//     workload addresses that lies in an exported pool but outside those blocks (an address borrowed
//     from another node's block). Workload /32s inside our own blocks are suppressed: the block covers
//     them (Calico's aggregation filter rejects them).
//   calicoExportFilter: a prefix may go to a peer only when it lies inside an enabled pool whose
//     disableBGPExport is not set (Calico's export filter: reject disableBGPExport pools, accept the
//     other pools, reject everything else — so an office router's default route is not re-advertised).
//
// Why this is hard: the block document, the affinity document and the pool change separately and in any
// order. A block is ours only when both IPAM records say so — an unconfirmed claim may still lose a race
// to another node, and advertising it would pull that node's traffic here.

import {
  formatCommunity,
  parseCommunity,
  formatPrefix,
  prefixContains,
  prefixKey,
  tryParseIpv4Prefix,
  type Prefix,
} from '../../bgp/index.js';
import type { Resource } from '../resources/index.js';

export interface AdvertiseInput {
  nodeName: string;
  pools: Resource<'IPPool'>[];
  blocks: Resource<'IPAMBlock'>[];
  affinities: Resource<'BlockAffinity'>[];
  workloads: Resource<'WorkloadEndpoint'>[];
}

/** `inner` lies inside `outer` (BIRD's `net ~ outer`): equal or more specific. */
function within(inner: Prefix, outer: Prefix): boolean {
  return inner.len >= outer.len && prefixContains(outer, inner.addr);
}

interface PoolView {
  prefix: Prefix;
  /** Enabled and not disableBGPExport: its routes may be advertised. */
  exported: boolean;
}

function poolViews(pools: readonly Resource<'IPPool'>[]): PoolView[] {
  const views: PoolView[] = [];
  for (const pool of pools) {
    const prefix = tryParseIpv4Prefix(pool.spec.cidr);
    if (prefix === null) continue;
    views.push({ prefix, exported: pool.spec.disabled !== true && pool.spec.disableBGPExport !== true });
  }
  return views;
}

/**
 * Calico's export filter, as a predicate on a prefix. Reject statements for disableBGPExport pools come
 * first, so a prefix inside such a pool is refused even if another (overlapping) pool would accept it.
 * Then what this node originates itself (`originated`: its blocks and service routes, Calico's static
 * routes) and routes inside `serviceRanges` (a route reflector's service ranges, ./service-routes.ts) pass.
 */
export function calicoExportFilter(
  pools: Resource<'IPPool'>[],
  serviceRanges: readonly string[] = [],
): (prefix: { addr: number; len: number }, originated?: boolean) => boolean {
  const views = poolViews(pools);
  const refused = views.filter((p) => !p.exported).map((p) => p.prefix);
  const accepted = views.filter((p) => p.exported).map((p) => p.prefix);
  for (const text of serviceRanges) {
    const range = tryParseIpv4Prefix(text);
    if (range !== null) accepted.push(range);
  }
  return (prefix, originated = false) =>
    !refused.some((pool) => within(prefix, pool)) && (originated || accepted.some((pool) => within(prefix, pool)));
}

/** The blocks affine to this node: block affinity "host:<node>" and a confirmed, not deleted BlockAffinity. */
export function affineBlocks(input: Pick<AdvertiseInput, 'nodeName' | 'blocks' | 'affinities'>): Prefix[] {
  const host = `host:${input.nodeName}`;
  const confirmed = new Set<number>();
  for (const a of input.affinities) {
    if (a.spec.node !== input.nodeName || a.spec.state !== 'confirmed' || a.spec.deleted === true) continue;
    const prefix = tryParseIpv4Prefix(a.spec.cidr);
    if (prefix !== null) confirmed.add(prefixKey(prefix));
  }
  const out: Prefix[] = [];
  for (const block of input.blocks) {
    if (block.spec.affinity !== host || block.spec.deleted === true) continue;
    const prefix = tryParseIpv4Prefix(block.spec.cidr);
    if (prefix !== null && confirmed.has(prefixKey(prefix))) out.push(prefix);
  }
  return out;
}

/** The CIDRs this node originates, sorted by address then length, each once. */
export function originatedPrefixes(input: AdvertiseInput): string[] {
  const exportable = calicoExportFilter(input.pools);
  const out = new Map<number, Prefix>();
  const ourBlocks: Prefix[] = [];
  for (const prefix of affineBlocks(input)) {
    if (!exportable(prefix)) continue;
    ourBlocks.push(prefix);
    out.set(prefixKey(prefix), prefix);
  }

  for (const wep of input.workloads) {
    if (wep.spec.node !== input.nodeName) continue;
    for (const network of wep.spec.ipNetworks ?? []) {
      // A workload address is advertised as a host route, whatever length its ipNetworks entry has.
      const addr = tryParseIpv4Prefix(`${network.split('/')[0] ?? ''}/32`);
      if (addr === null) continue;
      if (ourBlocks.some((b) => within(addr, b))) continue; // covered by our block: suppressed
      if (!exportable(addr)) continue;
      out.set(prefixKey(addr), addr);
    }
  }
  return [...out.values()].sort((a, b) => a.addr - b.addr || a.len - b.len).map(formatPrefix);
}

/** The communities Calico's `apply_communities()` adds to one exported prefix. Absent when none. */
export interface PrefixCommunities {
  communities?: number[];
  largeCommunities?: number[];
}

/**
 * BGPConfiguration `prefixAdvertisements` → the communities for `prefix`, as Calico's BIRD filter does it:
 * for each advertisement whose cidr covers the prefix (`net ~ cidr`: equal or more specific), in order,
 * each named (`spec.communities`) or inline value is added, once. Only the BGPConfiguration named
 * `default` counts (validation refuses the fields elsewhere). IPv6 cidrs are skipped (IPv4 sessions only).
 */
export function prefixCommunities(
  prefix: Prefix,
  bgpConfigurations: readonly Resource<'BGPConfiguration'>[],
): PrefixCommunities {
  const config = bgpConfigurations.find((c) => c.metadata.name === 'default');
  const advertisements = config?.spec.prefixAdvertisements ?? [];
  if (advertisements.length === 0) return {};
  const named = new Map((config?.spec.communities ?? []).map((c) => [c.name, c.value]));
  const standard: number[] = [];
  const large: number[] = [];
  const seen = new Set<string>();
  for (const advertisement of advertisements) {
    const cidr = tryParseIpv4Prefix(advertisement.cidr);
    if (cidr === null || !within(prefix, cidr)) continue;
    for (const word of advertisement.communities ?? []) {
      const community = parseCommunity(named.get(word) ?? word);
      if (community === null) continue; // refused at apply; a value written around validation adds nothing
      const key = formatCommunity(community);
      if (seen.has(key)) continue;
      seen.add(key);
      if (community.kind === 'standard') standard.push(community.value);
      else large.push(...community.value);
    }
  }
  const out: PrefixCommunities = {};
  if (standard.length > 0) out.communities = standard;
  if (large.length > 0) out.largeCommunities = large;
  return out;
}
