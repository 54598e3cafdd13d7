// Remote blocks of VXLAN pools, from IPAM block affinities and the other nodes' VTEPs (not from BGP), as
// Calico's felix computes them. Part of the route calculation (./route-calc.ts).

import { formatIpv4, formatPrefix, parsePrefix, prefixKey, tryParseIpv4 } from '../bgp/ip.js';
import type { Prefix } from '../bgp/types.js';
import { IPIP_MODES, subnetRelation, type NodeSubnet } from '../ipip/encap.js';
import { compareText, listSome, poolFor, Warnings, type CalcVxlan, type ParsedPool } from './calc-types.js';
import { FELIX_ROUTE_PROTOCOL, type DesiredRoute } from './routes.js';
import { VXLAN_DEVICE } from './vxlan.js';

/**
 * Remote blocks of VXLAN pools, from IPAM block affinities: `via <its VTEP> dev vxlan.calico onlink`, or
 * for CrossSubnet within our subnet `via <node> dev <host-if> onlink` (Calico felix's VXLAN route classes).
 */
export function vxlanRoutes(
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
