// Remote blocks learned by BGP (the Loc-RIB's best routes inside a pool): `via <node> dev tunl0 onlink`
// (ipipMode Always, or CrossSubnet to another subnet) or `via <node> dev <host-if> onlink` (Never, or
// CrossSubnet within the subnet); inside a VXLAN pool only a stand-in until the VXLAN route exists. Part
// of the route calculation: ./route-calc.ts's header says what is hard here (the /32 CrossSubnet trap,
// our own originated blocks, collisions with the host's routes).

import { formatIpv4, formatPrefix, parsePrefix, prefixContains, prefixKey, tryParseIpv4 } from '../bgp/ip.js';
import type { Prefix } from '../bgp/types.js';
import { IPIP_DEVICE, IPIP_MODES, subnetRelation, type NodeSubnet } from '../ipip/encap.js';
import { listSome, poolFor, Warnings, type CalcBgpRoute, type CalcInput, type ParsedPool } from './calc-types.js';
import { FELIX_ROUTE_PROTOCOL, type DesiredRoute } from './routes.js';

export function remoteRoutes(
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
