// No pod speaks BGP as its node: the desired content of tortie's own nftables table `table ip
// tortie-bgp-guard`, a pure function of the IPPools and the nodes' addresses (kept in the kernel by
// nft-table.ts's keeper, like natOutgoing's table).
//
//   table ip tortie-bgp-guard {
//     set workloads { type ipv4_addr; flags interval; elements = { <every IPv4 pool> } }
//     set nodes     { type ipv4_addr; flags interval; elements = { <every node's BGP address>/32 } }
//     chain forward { type filter hook forward priority -10; policy accept;
//       ip saddr @workloads ip daddr @nodes tcp dport 179 drop comment "tortie: no pod speaks BGP as its node" }
//     chain input   { type filter hook input priority -10; policy accept;
//       ip saddr @workloads ip daddr @nodes tcp dport 179 drop comment "..." }
//   }
//
// A pod that is one of this node's local BGP peers (BGPPeer localWorkloadSelector: a passive
// Local_Workload_<ip> session waits for it) may reach its own node's port 179: the input chain accepts
//   ip saddr @localpeers ip daddr @nodes tcp dport 179 accept   (before the drop; set localpeers of /32s)
// and only while the agent plans that session. Other nodes' port 179 stays closed to it (forward chain).
//
// Why: the default pool has natOutgoing, so a pod on node A that connects to node B's port 179 leaves A
// masqueraded as A — and B, while its session with A is down, would take that connection for A and accept
// routes from the pod. The forward chain drops such a packet on A before postrouting, so it is never
// masqueraded; the input chain covers a pod's packet that reaches a node's address unmasqueraded (its own
// node, or a pool without natOutgoing, or through an IPIP tunnel, decapsulated). Node-to-node sessions are
// never forwarded and come from node addresses: untouched. Priority -10: before filter-priority tables
// (a policy table that accepts must not let it through first; drop in any table is final).
//
// Opt-out: TORTIE_BGP_PORT_GUARD=false in the agent's environment (no table; one we made is removed).

import { formatPrefix, parseIpv4, parsePrefix, prefixContains } from '../bgp/ip.js';
import type { Prefix } from '../bgp/types.js';
import type { NftRuleSpec, NftTableSpec } from './nft-table.js';

export const BGP_GUARD_TABLE = { family: 'ip', name: 'tortie-bgp-guard' } as const;
export const GUARD_WORKLOADS_SET = 'workloads';
export const GUARD_NODES_SET = 'nodes';
export const GUARD_RULE_COMMENT = 'tortie: no pod speaks BGP as its node';
export const GUARD_LOCAL_PEERS_SET = 'localpeers';
export const LOCAL_PEER_RULE_COMMENT = 'tortie: a local workload BGP peer of this node';
export const GUARD_PRIORITY = -10;
const BGP_PORT = 179;

/** The one drop rule, as a script line and as `nft -j` prints it. */
export const GUARD_RULE: NftRuleSpec = {
  text: `ip saddr @${GUARD_WORKLOADS_SET} ip daddr @${GUARD_NODES_SET} tcp dport ${BGP_PORT} drop comment "${GUARD_RULE_COMMENT}"`,
  expr: [
    { match: { op: '==', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: `@${GUARD_WORKLOADS_SET}` } },
    { match: { op: '==', left: { payload: { protocol: 'ip', field: 'daddr' } }, right: `@${GUARD_NODES_SET}` } },
    { match: { op: '==', left: { payload: { protocol: 'tcp', field: 'dport' } }, right: BGP_PORT } },
    { drop: null },
  ],
  comment: GUARD_RULE_COMMENT,
};

/** The exception for this node's local workload peers (input chain only, before GUARD_RULE). */
export const LOCAL_PEER_RULE: NftRuleSpec = {
  text: `ip saddr @${GUARD_LOCAL_PEERS_SET} ip daddr @${GUARD_NODES_SET} tcp dport ${BGP_PORT} accept comment "${LOCAL_PEER_RULE_COMMENT}"`,
  expr: [
    {
      match: { op: '==', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: `@${GUARD_LOCAL_PEERS_SET}` },
    },
    { match: { op: '==', left: { payload: { protocol: 'ip', field: 'daddr' } }, right: `@${GUARD_NODES_SET}` } },
    { match: { op: '==', left: { payload: { protocol: 'tcp', field: 'dport' } }, right: BGP_PORT } },
    { accept: null },
  ],
  comment: LOCAL_PEER_RULE_COMMENT,
};

export interface GuardInput {
  /** Every pool's CIDR (IPv6 ones are skipped: this is `table ip`). */
  pools: ReadonlyArray<{ cidr: string }>;
  /** Every node's BGP address (with or without prefix length). */
  nodeAddresses: readonly string[];
  /** This node's local workload BGP peers (BGPPeer localWorkloadSelector): their addresses may reach its port 179. */
  localPeers?: readonly string[];
}

export interface GuardResult {
  /** The table's desired content, or null (no pool or no node address: nothing to guard). */
  table: NftTableSpec | null;
  warnings: string[];
}

function covering(prefixes: Prefix[]): Prefix[] {
  const sorted = [...prefixes].sort((a, b) => a.addr - b.addr || a.len - b.len);
  const out: Prefix[] = [];
  for (const p of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && last.len <= p.len && prefixContains(last, p.addr)) continue;
    out.push(p);
  }
  return out;
}

export function bgpGuardTableFor(input: GuardInput): GuardResult {
  const warnings: string[] = [];
  const pools: Prefix[] = [];
  for (const pool of input.pools) {
    if (pool.cidr.includes(':')) continue;
    try {
      pools.push(parsePrefix(pool.cidr, { what: 'IPPool cidr' }));
    } catch (error) {
      warnings.push(`${(error as Error).message}: left out of the BGP port guard`);
    }
  }
  const nodes = new Set<string>();
  for (const address of input.nodeAddresses) {
    const ip = address.split('/')[0]!;
    try {
      parseIpv4(ip);
      nodes.add(`${ip}/32`);
    } catch {
      warnings.push(`node address ${JSON.stringify(address)} is not IPv4: left out of the BGP port guard`);
    }
  }
  const workloads = covering(pools).map(formatPrefix);
  if (workloads.length === 0 || nodes.size === 0) return { table: null, warnings };
  const localPeers = [
    ...new Set((input.localPeers ?? []).flatMap((a) => (/^\d+\.\d+\.\d+\.\d+$/.test(a) ? [`${a}/32`] : []))),
  ].sort();
  const chain = (hook: 'forward' | 'input') => ({
    name: hook,
    type: 'filter' as const,
    hook,
    priority: GUARD_PRIORITY,
    policy: 'accept' as const,
    rules: hook === 'input' && localPeers.length > 0 ? [LOCAL_PEER_RULE, GUARD_RULE] : [GUARD_RULE],
  });
  return {
    table: {
      family: BGP_GUARD_TABLE.family,
      name: BGP_GUARD_TABLE.name,
      comment: "tortie felix: no pod reaches a node's BGP port (only tortie writes this table)",
      sets: [
        { name: GUARD_WORKLOADS_SET, type: 'ipv4_addr', flags: ['interval'], elements: workloads },
        { name: GUARD_NODES_SET, type: 'ipv4_addr', flags: ['interval'], elements: [...nodes].sort() },
        ...(localPeers.length > 0
          ? [
              {
                name: GUARD_LOCAL_PEERS_SET,
                type: 'ipv4_addr' as const,
                flags: ['interval' as const],
                elements: localPeers,
              },
            ]
          : []),
      ],
      chains: [chain('forward'), chain('input')],
    },
    warnings,
  };
}
