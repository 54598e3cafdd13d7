// natOutgoing: which traffic felix masquerades, as a pure function of the IPPools — the desired content of
// tortie's own nftables table `table ip tortie-nat` (kept in the kernel by nft-table.ts's keeper).
//
//   table ip tortie-nat {
//     set nat-pools { type ipv4_addr; flags interval; elements = { <enabled natOutgoing pools> } }
//     set all-pools { type ipv4_addr; flags interval; elements = { <every pool, disabled ones too> } }
//     chain postrouting {
//       type nat hook postrouting priority srcnat; policy accept;
//       ip saddr @nat-pools ip daddr != @all-pools masquerade comment "tortie natOutgoing"
//     }
//   }
//
// So a packet from a pod in a natOutgoing pool to anything outside every pool leaves the node with the
// node's address as its source (masquerade: the address of the interface it leaves by, chosen per
// connection); pod-to-pod traffic, to any pool, keeps the pod's address. Calico's felix does the same with
// two ipsets (cali40masq-ipam-pools, cali40all-ipam-pools) and one MASQUERADE rule.
//
// Decisions:
// - A disabled pool is never masqueraded from (Calico: masquerade needs natOutgoing and not disabled) but
//   is still a pod destination (all-pools): its existing workloads are still pods.
// - No pool wants NAT → no table at all (nothing is hooked into the kernel for nothing); a table we made
//   earlier is removed.
// - Set elements must not overlap (nft refuses overlapping intervals without auto-merge): a pool inside
//   another (which validation should already refuse) is dropped from the set, since the outer one covers it.
// - IPv6 pools have no place in `table ip`: skipped (a natOutgoing IPv6 pool is reported).

import { formatPrefix, parsePrefix, prefixContains } from '../bgp/ip.js';
import type { Prefix } from '../bgp/types.js';
import type { NftRuleSpec, NftTableSpec } from './nft-table.js';

export const NAT_TABLE = { family: 'ip', name: 'tortie-nat' } as const;
export const NAT_SET = 'nat-pools';
export const ALL_POOLS_SET = 'all-pools';
export const NAT_CHAIN = 'postrouting';
export const NAT_RULE_COMMENT = 'tortie natOutgoing';
/** `priority srcnat` (nft's name for NF_IP_PRI_NAT_SRC). */
export const SRCNAT_PRIORITY = 100;

export interface NatPool {
  cidr: string;
  natOutgoing?: boolean;
  disabled?: boolean;
}

export interface NatResult {
  /** The table's desired content, or null when no pool wants NAT (the table should not exist). */
  table: NftTableSpec | null;
  /** The CIDRs masqueraded from (set nat-pools), sorted. */
  natPools: string[];
  /** Every pool (set all-pools), sorted. */
  allPools: string[];
  /** For people: each names the pool, what was done and why. */
  warnings: string[];
}

/** The one masquerade rule, as a script line and as `nft -j` prints it. */
export const MASQUERADE_RULE: NftRuleSpec = {
  text: `ip saddr @${NAT_SET} ip daddr != @${ALL_POOLS_SET} masquerade comment "${NAT_RULE_COMMENT}"`,
  expr: [
    { match: { op: '==', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: `@${NAT_SET}` } },
    { match: { op: '!=', left: { payload: { protocol: 'ip', field: 'daddr' } }, right: `@${ALL_POOLS_SET}` } },
    { masquerade: null },
  ],
  comment: NAT_RULE_COMMENT,
};

/** Prefixes sorted by address then length, those inside another one dropped. */
function covering(prefixes: Prefix[]): Prefix[] {
  const sorted = [...prefixes].sort((a, b) => a.addr - b.addr || a.len - b.len);
  const out: Prefix[] = [];
  for (const p of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && last.len <= p.len && prefixContains(last, p.addr)) continue; // inside (or equal to) the previous one
    out.push(p);
  }
  return out;
}

export function natTableFor(pools: readonly NatPool[]): NatResult {
  const warnings: string[] = [];
  const nat: Prefix[] = [];
  const all: Prefix[] = [];
  for (const pool of pools) {
    if (pool.cidr.includes(':')) {
      if (pool.natOutgoing === true && pool.disabled !== true) {
        warnings.push(
          `IPPool ${pool.cidr}: natOutgoing is not done for IPv6 pools (tortie programs IPv4 only); its pods' traffic leaves with their own addresses`,
        );
      }
      continue;
    }
    let prefix: Prefix;
    try {
      prefix = parsePrefix(pool.cidr, { what: 'IPPool cidr' });
    } catch (error) {
      warnings.push(
        `${(error as Error).message}: the pool is left out of natOutgoing (neither masqueraded from nor treated as a pod destination)`,
      );
      continue;
    }
    all.push(prefix);
    if (pool.natOutgoing === true && pool.disabled !== true) nat.push(prefix);
  }
  const natPools = covering(nat).map(formatPrefix);
  const allPools = covering(all).map(formatPrefix);
  if (natPools.length === 0) return { table: null, natPools, allPools, warnings };
  const table: NftTableSpec = {
    family: NAT_TABLE.family,
    name: NAT_TABLE.name,
    comment: 'tortie felix: natOutgoing (only tortie writes this table)',
    sets: [
      { name: NAT_SET, type: 'ipv4_addr', flags: ['interval'], elements: natPools },
      { name: ALL_POOLS_SET, type: 'ipv4_addr', flags: ['interval'], elements: allPools },
    ],
    chains: [
      {
        name: NAT_CHAIN,
        type: 'nat',
        hook: 'postrouting',
        priority: SRCNAT_PRIORITY,
        policy: 'accept',
        rules: [MASQUERADE_RULE],
      },
    ],
  };
  return { table, natPools, allPools, warnings };
}
