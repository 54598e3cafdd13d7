// NetworkPolicy → tortie's nftables filter (pure): the compiled rules of this node's pods
// (semantics.ts compileEndpoints) become named sets and chains of `table inet tortie-filter`, which
// felix/policy-dataplane.ts writes incrementally.
//
//   chain forward (hook forward)   ct state established,related accept      ← replies always pass
//                                  iifname "cali*" jump from-wl             ← a pod sends: its egress
//                                  oifname "cali*" jump to-wl               ← a pod receives: its ingress
//   chain from-wl / to-wl          one verdict map: interface → jump egr-<if> / ing-<if>, only for pods
//                                  isolated in that direction (the others fall through: allowed)
//   chain ing-<hash> / egr-<hash>  one line per rule and protocol: peers set + ports → return; then drop;
//                                  named by its content, so pods with the same rules share one chain
//   set h<hash>                    a rule's peers when they are all pod selectors: pod addresses (hash set:
//                                  nft writes these about twice as fast as intervals); shared by every pod
//                                  the policy selects
//   set r<hash>                    a rule's peers with ipBlocks: addresses and ipBlocks minus excepts
//                                  (interval set)
//   set n<hash>                    an egress rule's named ports: (address . protocol . port) per peer pod
//
// The node's own traffic to its pods leaves through the output hook, never forward, so it is never
// filtered ([node] in semantics.ts); traffic between two pods of the node crosses both chains. `return`
// (not accept) after egress lets the ingress side still be checked.
//
// Why this is hard: sets are shared and named by the rule's identity, so a pod's label change rewrites
// just the sets whose members change and the dispatch entry of the pod (to another shared chain).

import { createHash } from 'node:crypto';
import type { DesiredFilter, FilterChain, FilterSet } from '../../felix/index.js';
import type { Range } from './ranges.js';
import type { CompiledEndpoint, CompiledPort, CompiledRule, Direction } from './semantics.js';

const PROTOCOL_NUMBER = { TCP: 6, UDP: 17, SCTP: 132 } as const;

function hashed(prefix: string, id: string): string {
  return `${prefix}${createHash('sha1').update(id).digest('hex').slice(0, 16)}`;
}

/** A rule's peer set: `h…` (hash set of pod addresses) or `r…` (interval set, with ipBlocks): a rule that changes kind changes name. */
export function peerSetName(rule: CompiledRule): string {
  return hashed(rule.hostsOnly === true ? 'h' : 'r', rule.id);
}

/** Pod addresses merged into ranges, one by one again (bounded by the pods: every range is of /32s). */
function hosts(ranges: readonly Range[]): number[] {
  const out: number[] = [];
  for (const [a, b] of ranges) for (let v = a; v <= b; v++) out.push(v);
  return out;
}

export function namedSetName(rule: CompiledRule): string {
  return hashed('n', rule.id);
}

/** `meta l4proto tcp tcp dport { 80, 8000-8100 }` per protocol; `meta l4proto udp` for a whole protocol. */
function portMatches(ports: CompiledPort[]): string[] {
  const out: string[] = [];
  for (const protocol of ['TCP', 'UDP', 'SCTP'] as const) {
    const mine = ports.filter((p) => p.protocol === protocol);
    if (mine.length === 0) continue;
    const proto = protocol.toLowerCase();
    if (mine.some((p) => p.first === undefined)) {
      out.push(`meta l4proto ${proto}`);
      continue;
    }
    const items = [...new Set(mine.map((p) => (p.first === p.last ? `${p.first}` : `${p.first}-${p.last}`)))];
    out.push(`meta l4proto ${proto} ${proto} dport ${items.length === 1 ? items[0] : `{ ${items.join(', ')} }`}`);
  }
  return out;
}

function ruleLines(rule: CompiledRule, direction: Direction): string[] {
  const addr = direction === 'ingress' ? 'saddr' : 'daddr';
  const peer = rule.peers === null ? '' : `ip ${addr} @${peerSetName(rule)} `;
  const lines: string[] = [];
  if (rule.ports === null) lines.push(`${peer}return`);
  else for (const match of portMatches(rule.ports)) lines.push(`${peer}${match} return`);
  if (rule.namedTargets.length > 0) lines.push(`ip daddr . meta l4proto . th dport @${namedSetName(rule)} return`);
  return lines;
}

/** The rules of one isolated pod's chain for one direction: each rule's lines, then drop. */
export function chainRules(rules: readonly CompiledRule[], direction: Direction): string[] {
  const lines: string[] = [];
  for (const rule of rules) lines.push(...ruleLines(rule, direction));
  lines.push('drop');
  return lines;
}

/**
 * An isolated pod's chain is named by its content: pods with the same rules (the pods of one deployment)
 * share one chain, so the table grows with the distinct rule lists, not with the pods.
 */
export function chainName(direction: Direction, rules: readonly string[]): string {
  return hashed(direction === 'ingress' ? 'ing-' : 'egr-', rules.join('\n'));
}

/** The sets one rule names (its peers; an egress rule's named ports), by set name. */
export function ruleSets(rule: CompiledRule): Array<[string, FilterSet]> {
  const out: Array<[string, FilterSet]> = [];
  if (rule.peers !== null && rule.hostsOnly === true)
    out.push([peerSetName(rule), { kind: 'hosts', addresses: hosts(rule.peers) }]);
  else if (rule.peers !== null) out.push([peerSetName(rule), { kind: 'addresses', ranges: rule.peers }]);
  if (rule.namedTargets.length > 0) {
    out.push([
      namedSetName(rule),
      {
        kind: 'addressPorts',
        entries: rule.namedTargets.map((t) => ({ ip: t.ip, protocol: PROTOCOL_NUMBER[t.protocol], port: t.port })),
      },
    ]);
  }
  return out;
}

export const FORWARD_CHAIN: FilterChain = {
  hook: 'forward',
  rules: ['ct state established,related accept', 'iifname "cali*" jump from-wl', 'oifname "cali*" jump to-wl'],
};

/** from-wl and to-wl: interface → its chain, for the (sorted) interfaces isolated in each direction. */
export function dispatchChains(
  isolated: Record<Direction, ReadonlyArray<readonly [string, string]>>,
): Array<[string, FilterChain]> {
  const vmap = (key: string, direction: Direction): string[] =>
    isolated[direction].length === 0
      ? []
      : [`${key} vmap { ${isolated[direction].map(([ifname, chain]) => `"${ifname}" : jump ${chain}`).join(', ')} }`];
  return [
    ['from-wl', { rules: vmap('iifname', 'egress') }],
    ['to-wl', { rules: vmap('oifname', 'ingress') }],
  ];
}

/** The whole desired filter for these (local) pods. */
export function renderFilter(endpoints: CompiledEndpoint[]): DesiredFilter {
  const sets = new Map<string, FilterSet>();
  const chains = new Map<string, FilterChain>();
  const isolated: Record<Direction, Array<[string, string]>> = { ingress: [], egress: [] };
  const sorted = [...endpoints].sort((a, b) => a.endpoint.interfaceName.localeCompare(b.endpoint.interfaceName));
  for (const c of sorted) {
    const ifname = c.endpoint.interfaceName;
    for (const direction of ['ingress', 'egress'] as const) {
      const rules = c[direction];
      if (rules === null) continue;
      for (const rule of rules) for (const [name, set] of ruleSets(rule)) sets.set(name, set);
      const lines = chainRules(rules, direction);
      const name = chainName(direction, lines);
      if (!chains.has(name)) chains.set(name, { rules: lines });
      isolated[direction].push([ifname, name]);
    }
  }
  chains.set('forward', FORWARD_CHAIN);
  for (const [name, chain] of dispatchChains(isolated)) chains.set(name, chain);
  return { sets, chains };
}
