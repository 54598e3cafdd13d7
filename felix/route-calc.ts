// Felix's route calculation: this node, its IPPools, its affine blocks, its workloads and the Loc-RIB's
// best routes in; the routes the kernel's main table should hold out, plus warnings for people. A pure
// function — no clock, no I/O, no logging: the caller logs the warnings (they are stable strings, so the
// caller can log each once) and hands the routes to the route table reconciler (route-table.ts).
//
// What it produces (proto 80 on every route, see routes.ts for classes and precedence):
//   blackhole <local block>                               each block affine to this node
//   <pod ip> dev cali<11 hex> scope link                  each local workload
//   <remote block> via <node> dev tunl0 onlink            pool ipipMode Always, or CrossSubnet to another subnet
//   <remote block> via <node> dev <host-if> onlink        pool ipipMode Never, or CrossSubnet within the subnet
//   <prefix> via <next hop> dev <host-if> onlink          a BGP route outside every pool (office router, ToR)
//   <remote block> via <its VTEP> dev vxlan.calico onlink pool vxlanMode Always, or CrossSubnet to another subnet
//   <remote block> via <node> dev <host-if> onlink        pool vxlanMode CrossSubnet within the subnet
// VXLAN routes come from IPAM block affinities and the Nodes' VTEPs (input.vxlan), as Calico's felix
// computes them, not from BGP: they work with BGP off (CALICO_NETWORKING_BACKEND=vxlan). A BGP route
// inside a VXLAN pool is only a stand-in: `via <next hop> dev <host-if> onlink` while the block has no
// VXLAN route yet (its node's VTEP not allocated, vxlan.calico not up) — so a pool switched live from
// Never to VXLAN keeps its traffic flowing until the tunnel is ready; toward another subnet the stand-in
// goes through tunl0 when tunl0 is usable (a pool switched live from IPIP: tunl0 stays and carries IPIP).
//
// Why this is hard:
// - CrossSubnet depends on the node address's prefix length. A /32 node address places no other node in
//   "my subnet", so every remote block would silently go through tunl0 (a known Calico trap). We still
//   tunnel (the safe choice, see ipip/encap.ts) but say so, with the address and the fix.
// - The Loc-RIB holds our own originated blocks too (next hop = this node, or 0.0.0.0): those are not
//   remote and must not become a route via ourselves.
// - A BGP route can collide with the host's own routes: `ip route replace` of 0.0.0.0/0 would replace the
//   host's default route, and a route for exactly the node's subnet would replace the connected route
//   (the node would lose its LAN). Both are refused with a warning.
// - Two sources may want one prefix (a block both local and advertised by another node while it moves;
//   two workloads claiming one IP). The route class table settles it; every such conflict is reported.
// - A pool with both ipipMode and vxlanMode on (refused by validation, but a datastore can hold one) is
//   left alone with a warning naming both fields. Blackholes and workload routes do not depend on the
//   encapsulation, so they are still produced there.
// - A remote node without a VTEP yet (its agent has not allocated one) cannot be reached through
//   vxlan.calico: its blocks get no route (warned, listing some) until it has one.
// - Disabled pools still route: `disabled` stops IPAM from assigning new addresses (Calico's meaning),
//   the workloads already in them must stay reachable.
//
// The parts: ./calc-types.ts (input, result, what the parts share), ./remote-routes.ts (BGP-learned remote
// blocks), ./vxlan-routes.ts (VXLAN routes from affinities); interface names: ./interface-names.ts.

import { formatIpv4, formatPrefix, parsePrefix, prefixKey, tryParseIpv4 } from '../bgp/ip.js';
import type { Prefix } from '../bgp/types.js';
import { IPIP_MODES, isIpipMode, subnetOf, type NodeSubnet } from '../ipip/encap.js';
import {
  compareText,
  Warnings,
  type CalcInput,
  type CalcPool,
  type CalcResult,
  type CalcWorkload,
  type ParsedPool,
} from './calc-types.js';
import { interfaceNameProblem, workloadInterfaceName } from './interface-names.js';
import { remoteRoutes } from './remote-routes.js';
import { describeRoute, FELIX_ROUTE_PROTOCOL, resolveByClass, ROUTE_CLASSES, type DesiredRoute } from './routes.js';
import { vxlanRoutes } from './vxlan-routes.js';

/**
 * Whether a local block gets a blackhole route: every block but a /32, as Calico renders its blocks (a /32
 * block is one address — a workload's own route, or nothing to catch; confd's static protocol skips it).
 */
export function needsBlackhole(block: Prefix): boolean {
  return block.len < 32;
}

export function calculateRoutes(input: CalcInput): CalcResult {
  const warnings = new Warnings();
  const candidates: DesiredRoute[] = [];

  const node = parseNode(input.node.ip, warnings);
  const hostInterface = checkHostInterface(input.node.hostInterface, warnings);
  const pools = parsePools(input.pools, warnings);

  for (const block of sortedPrefixes(input.localBlocks, 'local block', warnings)) {
    if (!needsBlackhole(block)) continue;
    candidates.push({ dst: formatPrefix(block), type: 'blackhole', proto: FELIX_ROUTE_PROTOCOL, class: 'blackhole' });
  }

  for (const route of workloadRoutes(input.workloads, warnings)) candidates.push(route);

  const standIns: DesiredRoute[] = [];
  const remote = remoteRoutes(input, node, hostInterface, pools, warnings, standIns);
  for (const route of remote) candidates.push(route);
  const fromAffinities =
    input.vxlan !== undefined && node !== null ? vxlanRoutes(input.vxlan, node, hostInterface, pools, warnings) : [];
  for (const route of fromAffinities) candidates.push(route);
  const covered = new Set(fromAffinities.map((r) => r.dst));
  for (const route of standIns) if (!covered.has(route.dst)) candidates.push(route);

  for (const route of peerRoutes(input.peerRoutes ?? [], hostInterface, warnings)) candidates.push(route);

  const { routes, conflicts } = resolveByClass(candidates);
  for (const c of conflicts) {
    const lost = c.losers.map((r) => `${r.class} "${describeRoute(r)}"`).join(', ');
    warnings.add(
      `${c.dst} is wanted by more than one source: kept ${c.winner.class} "${describeRoute(c.winner)}", ` +
        `dropped ${lost} (route class precedence: ${classOrder()})`,
    );
  }
  routes.sort(compareDst);
  return { routes, warnings: warnings.list() };
}

function classOrder(): string {
  return Object.entries(ROUTE_CLASSES)
    .sort((a, b) => a[1].rank - b[1].rank)
    .map(([name]) => name)
    .join(' < ');
}

function parseNode(ip: string, warnings: Warnings): NodeSubnet | null {
  let node: NodeSubnet;
  try {
    node = subnetOf(ip, 'node.ip');
  } catch (err) {
    warnings.add(`${(err as Error).message}: no routes to remote nodes are programmed until it is fixed`);
    return null;
  }
  if (!ip.includes('/')) {
    warnings.add(
      `node.ip "${ip}" has no prefix length; taken as /32 (set IP to the address with its length, like ${ip}/24)`,
    );
  }
  return node;
}

function checkHostInterface(name: string, warnings: Warnings): string | null {
  const problem = interfaceNameProblem(name);
  if (problem === null) return name;
  warnings.add(
    `node.hostInterface "${name}" ${problem}: direct and BGP routes are not programmed until it names the interface holding the node address`,
  );
  return null;
}

function parsePools(pools: readonly CalcPool[], warnings: Warnings): ParsedPool[] {
  const parsed: ParsedPool[] = [];
  // Sorted by cidr text, so that the warnings' order does not depend on the caller's order.
  for (const pool of [...pools].sort((a, b) => compareText(a.cidr, b.cidr))) {
    let prefix: Prefix;
    try {
      prefix = parsePrefix(pool.cidr, { strict: true, what: 'IPPool cidr' });
    } catch (err) {
      warnings.add(`${(err as Error).message}: pool ignored, blocks in it are treated as outside every pool`);
      continue;
    }
    const vxlan = pool.vxlanMode ?? 'Never';
    if (vxlan !== 'Never') {
      if (pool.ipipMode !== 'Never') {
        warnings.add(
          `IPPool ${pool.cidr} has both ipipMode ${String(pool.ipipMode)} and vxlanMode ${vxlan}: only one may be enabled ` +
            `(set spec.ipipMode or spec.vxlanMode to Never); remote blocks in it are left alone`,
        );
        parsed.push({ cidr: pool.cidr, prefix, handling: { kind: 'leave-alone' } });
        continue;
      }
      if (!isIpipMode(vxlan)) {
        warnings.add(
          `IPPool ${pool.cidr} has vxlanMode "${String(vxlan)}", not one of ${Object.keys(IPIP_MODES).join(', ')}: remote blocks in it are left alone`,
        );
        parsed.push({ cidr: pool.cidr, prefix, handling: { kind: 'leave-alone' } });
        continue;
      }
      parsed.push({ cidr: pool.cidr, prefix, handling: { kind: 'vxlan', mode: vxlan } });
      continue;
    }
    if (!isIpipMode(pool.ipipMode)) {
      warnings.add(
        `IPPool ${pool.cidr} has ipipMode "${String(pool.ipipMode)}", not one of ${Object.keys(IPIP_MODES).join(', ')}: ` +
          `remote blocks in it are left alone`,
      );
      parsed.push({ cidr: pool.cidr, prefix, handling: { kind: 'leave-alone' } });
      continue;
    }
    parsed.push({ cidr: pool.cidr, prefix, handling: { kind: 'ipip', mode: pool.ipipMode } });
  }
  return parsed;
}

function sortedPrefixes(texts: readonly string[], what: string, warnings: Warnings): Prefix[] {
  const out: Prefix[] = [];
  for (const text of texts) {
    try {
      out.push(parsePrefix(text, { strict: true, what }));
    } catch (err) {
      warnings.add(`${(err as Error).message}: no blackhole route for it`);
    }
  }
  return out.sort((a, b) => prefixKey(a) - prefixKey(b));
}

function workloadRoutes(workloads: readonly CalcWorkload[], warnings: Warnings): DesiredRoute[] {
  const sorted = [...workloads].sort(
    (a, b) => compareText(a.namespace, b.namespace) || compareText(a.pod, b.pod) || compareText(a.ip, b.ip),
  );
  const routes: DesiredRoute[] = [];
  for (const w of sorted) {
    const who = `workload ${w.namespace}/${w.pod}`;
    const addr = parseWorkloadIp(w.ip);
    if (addr === null) {
      warnings.add(`${who}: ip "${w.ip}" is not an IPv4 address or a /32 (like 10.244.196.129): no route for it`);
      continue;
    }
    const dev = w.interfaceName ?? workloadInterfaceName(w.namespace, w.pod);
    const problem = interfaceNameProblem(dev);
    if (problem !== null) {
      warnings.add(`${who}: interfaceName "${dev}" ${problem}: no route for ${w.ip}`);
      continue;
    }
    routes.push({
      dst: `${formatIpv4(addr)}/32`,
      type: 'unicast',
      dev,
      scope: 'link',
      proto: FELIX_ROUTE_PROTOCOL,
      class: 'workload',
    });
  }
  return routes;
}

/**
 * BGPPeer reachableBy: `<peer>/32 via <gateway> dev <host interface> onlink`, class 'peer' (it beats a route
 * to the peer learned over BGP, as Calico's static route beats BIRD's BGP routes). One per peer address;
 * two peerings on one address (different ports) naming different gateways: the lower gateway, with a warning.
 */
function peerRoutes(
  peers: ReadonlyArray<{ address: string; gateway: string }>,
  hostInterface: string | null,
  warnings: Warnings,
): DesiredRoute[] {
  const byAddress = new Map<number, number>();
  for (const { address, gateway } of peers) {
    const addr = tryParseIpv4(address);
    const via = tryParseIpv4(gateway);
    if (addr === null || via === null) {
      warnings.add(
        `BGP peer ${address}: reachableBy "${gateway}" (or the peer address) is not an IPv4 address: no static route to the peer`,
      );
      continue;
    }
    const had = byAddress.get(addr);
    if (had !== undefined && had !== via) {
      warnings.add(
        `BGP peer ${address}: reachableBy ${formatIpv4(had)} and ${gateway} both asked for; ${formatIpv4(Math.min(had, via))} is used`,
      );
    }
    byAddress.set(addr, had === undefined ? via : Math.min(had, via));
  }
  if (byAddress.size === 0) return [];
  if (hostInterface === null) {
    warnings.add(`no host interface: the static routes to BGP peers (reachableBy) are not programmed`);
    return [];
  }
  return [...byAddress]
    .sort((a, b) => a[0] - b[0])
    .map(([addr, via]) => ({
      dst: `${formatIpv4(addr)}/32`,
      type: 'unicast' as const,
      via: formatIpv4(via),
      dev: hostInterface,
      onlink: true,
      proto: FELIX_ROUTE_PROTOCOL,
      class: 'peer' as const,
    }));
}

function parseWorkloadIp(text: string): number | null {
  const slash = text.indexOf('/');
  if (slash >= 0 && text.slice(slash + 1) !== '32') return null;
  return tryParseIpv4(slash >= 0 ? text.slice(0, slash) : text);
}

function compareDst(a: DesiredRoute, b: DesiredRoute): number {
  const pa = parsePrefix(a.dst);
  const pb = parsePrefix(b.dst);
  return pa.addr - pb.addr || pa.len - pb.len;
}
