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

import { createHash } from 'node:crypto';
import { formatIpv4, formatPrefix, parsePrefix, prefixContains, prefixKey, tryParseIpv4 } from '../bgp/ip.js';
import type { Prefix } from '../bgp/types.js';
import {
  IPIP_DEVICE,
  IPIP_MODES,
  isIpipMode,
  subnetOf,
  subnetRelation,
  type IpipMode,
  type NodeSubnet,
} from '../ipip/encap.js';
import { describeRoute, FELIX_ROUTE_PROTOCOL, resolveByClass, ROUTE_CLASSES, type DesiredRoute } from './routes.js';
import { VXLAN_DEVICE } from './vxlan.js';

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

/** Calico's host-side veth name: `cali` + the first 11 hex characters of sha1("<namespace>.<pod>"). */
export function workloadInterfaceName(namespace: string, pod: string): string {
  return `cali${createHash('sha1').update(`${namespace}.${pod}`).digest('hex').slice(0, 11)}`;
}

/** Linux accepts 1..15 bytes, not "." or "..", no "/", ":" or white space (the kernel's dev_valid_name). */
export function interfaceNameProblem(name: string): string | null {
  if (name.length === 0) return 'is empty';
  if (Buffer.byteLength(name) > 15) return `is ${Buffer.byteLength(name)} bytes long (Linux allows at most 15)`;
  if (name === '.' || name === '..') return 'is "." or ".."';
  if (/[/:\s]/.test(name)) return 'contains "/", ":" or white space';
  return null;
}

/** How a pool's remote routes are handled. */
type PoolHandling = { kind: 'ipip'; mode: IpipMode } | { kind: 'vxlan'; mode: IpipMode } | { kind: 'leave-alone' };

interface ParsedPool {
  cidr: string;
  prefix: Prefix;
  handling: PoolHandling;
}

/**
 * Whether a local block gets a blackhole route: every block but a /32, as Calico renders its blocks (a /32
 * block is one address — a workload's own route, or nothing to catch; confd's static protocol skips it).
 */
export function needsBlackhole(block: Prefix): boolean {
  return block.len < 32;
}

/** Routes listed in one warning before "(and N more)". */
const LISTED_IN_WARNING = 5;

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

/** The most specific pool holding all of `prefix` (pools should not overlap; if they do, the longer wins). */
function poolFor(pools: readonly ParsedPool[], prefix: Prefix): ParsedPool | undefined {
  let best: ParsedPool | undefined;
  for (const pool of pools) {
    if (pool.prefix.len > prefix.len || !prefixContains(pool.prefix, prefix.addr)) continue;
    if (best === undefined || pool.prefix.len > best.prefix.len) best = pool;
  }
  return best;
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

function remoteRoutes(
  input: CalcInput,
  node: NodeSubnet | null,
  hostInterface: string | null,
  pools: readonly ParsedPool[],
  warnings: Warnings,
  standIns: DesiredRoute[],
): DesiredRoute[] {
  const parsed = parseBgpRoutes(input.bgpRoutes, warnings);
  if (node === null) return [];
  // The trap: a /32 (or /0) node address and a CrossSubnet pool.
  const crossSubnetPools = pools.filter((p) => p.handling.kind === 'ipip' && p.handling.mode === 'CrossSubnet');
  let tunnelledForUnknownSubnet = 0;

  const routes: DesiredRoute[] = [];
  const skippedForTunnel: string[] = [];
  const skippedForHostInterface: string[] = [];
  const offLinkNextHops = new Map<number, number>();

  for (const { prefix, nextHop } of parsed) {
    const dst = formatPrefix(prefix);
    const via = formatIpv4(nextHop);
    // Our own originated routes come back from the Loc-RIB with our address (or no address) as next hop.
    if (nextHop === node.addr || nextHop === 0) continue;
    if (prefixContains({ addr: 0x7f000000, len: 8 }, nextHop)) {
      warnings.add(
        `BGP route ${dst}: next hop ${via} is a loopback address (127.0.0.0/8), the kernel cannot route via it: not programmed`,
      );
      continue;
    }
    const pool = poolFor(pools, prefix);
    if (pool === undefined) {
      if (prefix.len === 0) {
        warnings.add(
          `BGP route 0.0.0.0/0 via ${via} is not programmed: it would replace this host's own default route`,
        );
        continue;
      }
      if (node.useful && prefix.len === node.subnet.len && prefix.addr === node.subnet.addr) {
        warnings.add(
          `BGP route ${dst} via ${via} is not programmed: it is this node's own subnet (node.ip ${input.node.ip}), ` +
            `replacing the connected route would cut the node off its LAN`,
        );
        continue;
      }
      if (hostInterface === null) {
        skippedForHostInterface.push(`${dst} via ${via}`);
        continue;
      }
      if (subnetRelation(node, nextHop) === 'other')
        offLinkNextHops.set(nextHop, (offLinkNextHops.get(nextHop) ?? 0) + 1);
      routes.push({
        dst,
        type: 'unicast',
        via,
        dev: hostInterface,
        onlink: true,
        proto: FELIX_ROUTE_PROTOCOL,
        class: 'bgp',
      });
      continue;
    }
    // VXLAN pools' routes come from block affinities (vxlanRoutes); BGP's only stands in until they exist:
    // through tunl0 toward another subnet while tunl0 still carries IPIP (a pool switched live from IPIP
    // keeps flowing until the VTEPs are ready), else direct.
    if (pool.handling.kind === 'vxlan') {
      if (input.tunnelUsable && subnetRelation(node, nextHop) === 'other')
        standIns.push({
          dst,
          type: 'unicast',
          via,
          dev: IPIP_DEVICE,
          onlink: true,
          proto: FELIX_ROUTE_PROTOCOL,
          class: 'tunnel',
        });
      else if (hostInterface !== null)
        standIns.push({
          dst,
          type: 'unicast',
          via,
          dev: hostInterface,
          onlink: true,
          proto: FELIX_ROUTE_PROTOCOL,
          class: 'direct',
        });
      continue;
    }
    if (pool.handling.kind !== 'ipip') continue;
    const relation = subnetRelation(node, nextHop);
    const encap = IPIP_MODES[pool.handling.mode].decide(relation);
    if (encap === 'tunnel') {
      if (pool.handling.mode === 'CrossSubnet' && relation === 'unknown') tunnelledForUnknownSubnet += 1;
      if (!input.tunnelUsable) {
        skippedForTunnel.push(`${dst} via ${via}`);
        continue;
      }
      routes.push({
        dst,
        type: 'unicast',
        via,
        dev: IPIP_DEVICE,
        onlink: true,
        proto: FELIX_ROUTE_PROTOCOL,
        class: 'tunnel',
      });
    } else {
      if (hostInterface === null) {
        skippedForHostInterface.push(`${dst} via ${via}`);
        continue;
      }
      routes.push({
        dst,
        type: 'unicast',
        via,
        dev: hostInterface,
        onlink: true,
        proto: FELIX_ROUTE_PROTOCOL,
        class: 'direct',
      });
    }
  }

  if (!node.useful && crossSubnetPools.length > 0) {
    const which = crossSubnetPools.map((p) => p.cidr).join(', ');
    warnings.add(
      `node.ip "${input.node.ip}" has no useful prefix length (/${node.subnet.len}): CrossSubnet pool ${which} cannot tell ` +
        `which nodes share this node's subnet, so all ${tunnelledForUnknownSubnet} remote route(s) in it go through ${IPIP_DEVICE}; ` +
        `give the node address its real prefix length (IP=addr/len, like 192.168.31.201/24) to route same-subnet nodes directly`,
    );
  }
  for (const [nextHop, count] of [...offLinkNextHops].sort((a, b) => a[0] - b[0])) {
    warnings.add(
      `BGP next hop ${formatIpv4(nextHop)} (${count} route(s) outside every pool) is outside this node's subnet ` +
        `${formatPrefix(node.subnet)}: programmed onlink on ${hostInterface ?? '?'}, so it must be reachable on that link`,
    );
  }
  if (skippedForTunnel.length > 0) {
    warnings.add(
      `${IPIP_DEVICE} is not usable (no IPIP in this kernel, or the device is not set up): ` +
        `${skippedForTunnel.length} route(s) that need it are not programmed: ${listSome(skippedForTunnel)}`,
    );
  }
  if (skippedForHostInterface.length > 0) {
    warnings.add(
      `${skippedForHostInterface.length} route(s) via the host interface are not programmed because node.hostInterface ` +
        `is unusable: ${listSome(skippedForHostInterface)}`,
    );
  }
  return routes;
}

/**
 * Remote blocks of VXLAN pools, from IPAM block affinities: `via <its VTEP> dev vxlan.calico onlink`, or
 * for CrossSubnet within our subnet `via <node> dev <host-if> onlink` (Calico felix's VXLAN route classes).
 */
function vxlanRoutes(
  vxlan: CalcVxlan,
  node: NodeSubnet,
  hostInterface: string | null,
  pools: readonly ParsedPool[],
  warnings: Warnings,
): DesiredRoute[] {
  const routes: DesiredRoute[] = [];
  const nodes = new Map(vxlan.nodes.map((n) => [n.name, n]));
  const noVtep: string[] = [];
  const notUsable: string[] = [];
  const noAddress: string[] = [];
  const skippedForHostInterface: string[] = [];
  const blocks: Array<{ prefix: Prefix; node: string }> = [];
  for (const b of vxlan.remoteBlocks) {
    try {
      blocks.push({ prefix: parsePrefix(b.cidr, { strict: true, what: 'block CIDR' }), node: b.node });
    } catch (err) {
      warnings.add(`${(err as Error).message} (block of node ${b.node}): no VXLAN route for it`);
    }
  }
  blocks.sort((a, b) => prefixKey(a.prefix) - prefixKey(b.prefix) || compareText(a.node, b.node));
  for (const { prefix, node: owner } of blocks) {
    const pool = poolFor(pools, prefix);
    if (pool === undefined || pool.handling.kind !== 'vxlan') continue;
    const dst = formatPrefix(prefix);
    const remote = nodes.get(owner);
    const nodeIp = tryParseIpv4((remote?.ip ?? '').split('/')[0] ?? '');
    if (remote === undefined || nodeIp === null) {
      noAddress.push(`${dst} (node ${owner})`);
      continue;
    }
    if (nodeIp === node.addr) continue;
    const encap = IPIP_MODES[pool.handling.mode].decide(subnetRelation(node, nodeIp));
    if (encap === 'direct') {
      if (hostInterface === null) {
        skippedForHostInterface.push(`${dst} via ${formatIpv4(nodeIp)}`);
        continue;
      }
      routes.push({
        dst,
        type: 'unicast',
        via: formatIpv4(nodeIp),
        dev: hostInterface,
        onlink: true,
        proto: FELIX_ROUTE_PROTOCOL,
        class: 'direct',
      });
      continue;
    }
    const vtep = tryParseIpv4((remote.tunnelAddress ?? '').split('/')[0] ?? '');
    if (vtep === null || remote.mac === undefined) {
      noVtep.push(`${dst} (node ${owner})`);
      continue;
    }
    if (!vxlan.usable || (vxlan.programmed !== undefined && !vxlan.programmed.has(formatIpv4(vtep)))) {
      notUsable.push(`${dst} via ${formatIpv4(vtep)}`);
      continue;
    }
    routes.push({
      dst,
      type: 'unicast',
      via: formatIpv4(vtep),
      dev: VXLAN_DEVICE,
      onlink: true,
      proto: FELIX_ROUTE_PROTOCOL,
      class: 'vxlan',
    });
  }
  if (noAddress.length > 0)
    warnings.add(
      `${noAddress.length} VXLAN block(s) belong to nodes without a known IPv4 address: not programmed: ${listSome(noAddress)}`,
    );
  if (noVtep.length > 0) {
    warnings.add(
      `${noVtep.length} VXLAN block(s) belong to nodes without a VTEP yet (Node.spec.ipv4VXLANTunnelAddr / vxlanTunnelMACAddr): not programmed: ${listSome(noVtep)}`,
    );
  }
  if (notUsable.length > 0)
    warnings.add(
      `${VXLAN_DEVICE} is not usable yet: ${notUsable.length} route(s) that need it are not programmed: ${listSome(notUsable)}`,
    );
  if (skippedForHostInterface.length > 0) {
    warnings.add(
      `${skippedForHostInterface.length} VXLAN CrossSubnet route(s) via the host interface are not programmed because node.hostInterface is unusable: ${listSome(skippedForHostInterface)}`,
    );
  }
  return routes;
}

function parseBgpRoutes(
  routes: readonly CalcBgpRoute[],
  warnings: Warnings,
): Array<{ prefix: Prefix; nextHop: number }> {
  const out: Array<{ prefix: Prefix; nextHop: number }> = [];
  for (const r of routes) {
    let prefix: Prefix;
    try {
      prefix = parsePrefix(r.prefix, { what: 'BGP route prefix' });
    } catch (err) {
      warnings.add(`${(err as Error).message}: not programmed`);
      continue;
    }
    const nextHop = tryParseIpv4(r.nextHop);
    if (nextHop === null) {
      warnings.add(
        `BGP route ${r.prefix}: next hop "${r.nextHop}" is not a dotted-quad IPv4 address (like 192.168.31.202): not programmed`,
      );
      continue;
    }
    out.push({ prefix, nextHop });
  }
  // Sorted, so that which duplicate wins (and every message) does not depend on the caller's order.
  return out.sort((a, b) => prefixKey(a.prefix) - prefixKey(b.prefix) || a.nextHop - b.nextHop);
}

function listSome(items: readonly string[]): string {
  const shown = items.slice(0, LISTED_IN_WARNING).join(', ');
  return items.length > LISTED_IN_WARNING ? `${shown} (and ${items.length - LISTED_IN_WARNING} more)` : shown;
}

function compareDst(a: DesiredRoute, b: DesiredRoute): number {
  const pa = parsePrefix(a.dst);
  const pb = parsePrefix(b.dst);
  return pa.addr - pb.addr || pa.len - pb.len;
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Warnings in first-seen order, each once. */
class Warnings {
  private readonly seen = new Set<string>();
  add(text: string): void {
    this.seen.add(text);
  }
  list(): string[] {
    return [...this.seen];
  }
}
