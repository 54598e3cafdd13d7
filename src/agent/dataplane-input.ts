// What felix is told (felix/dataplane.ts `DataplaneInput`): this node, the IPv4 pools, the blocks affine to
// us, our workloads, the BGP best routes learned from peers (not those inside a service CIDR), the BGP port
// guard's node addresses, tunl0's address and MTU, and VXLAN's VTEPs and remote blocks (./vxlan-tunnel.ts
// vxlanDataplaneInput) — a pure function of the cache, the node's address and the routes.
//
// The one thing that is not in the cache, the host interface's MTU (tunl0's auto MTU is that − 20), is read
// through an injected `interfaceMtu` reader; `sysfsInterfaceMtu` below is the agent's default.

import { readFileSync } from 'node:fs';
import { formatPrefix, prefixContains, tryParseIpv4Prefix } from '../../bgp/index.js';
import type { DataplaneInput } from '../../felix/index.js';
import { affineBlocks } from './advertise.js';
import type { ResourceCache } from './cache.js';
import { serviceKernelRejects } from './service-routes.js';
import type { RouteRow } from './types.js';
import { vxlanDataplaneInput } from './vxlan-tunnel.js';

/** The part of the cache the agent's pure functions read (tests pass a record of lists). */
export type CacheView = Pick<ResourceCache, 'list'>;

export interface DataplaneSources {
  nodeName: string;
  /** The node's address with its prefix length, and the interface holding it (null: none found). */
  node: { address: string; prefixLength: number; hostInterface: string | null };
  cache: CacheView;
  /** The BGP routes (Loc-RIB rows); only routes learned from a peer, with a next hop, are used. */
  bgpRoutes: ReadonlyArray<Pick<RouteRow, 'prefix' | 'nextHop' | 'from'>>;
  /** The planned peers: those with reachableBy get a static route to their address (Calico). */
  peers?: ReadonlyArray<{ address: string; reachableBy?: string; type?: string }>;
  /** TORTIE_BGP_PORT_GUARD (false: no guard table). */
  bgpPortGuard: boolean;
  /** FELIX_IPINIPMTU. */
  ipipMtu?: number;
  /** FELIX_VXLANMTU. */
  vxlanMtu?: number;
  /** MTU of an interface, undefined when unknown. */
  interfaceMtu: (name: string) => number | undefined;
}

/** The node's view for felix: this node, pools, our blocks, our workloads, the BGP best routes. */
export function dataplaneInput(sources: DataplaneSources): DataplaneInput {
  const { nodeName: name, node, cache } = sources;
  const pools = cache
    .list('IPPool')
    .filter((p) => !p.spec.cidr.includes(':'))
    .map((p) => ({
      cidr: p.spec.cidr,
      ipipMode: p.spec.ipipMode ?? 'Never',
      vxlanMode: p.spec.vxlanMode ?? 'Never',
      disabled: p.spec.disabled ?? false,
      natOutgoing: p.spec.natOutgoing ?? false,
    }));
  const workloads: DataplaneInput['workloads'] = [];
  for (const wep of cache.list('WorkloadEndpoint')) {
    if (wep.spec.node !== name) continue;
    for (const network of wep.spec.ipNetworks) {
      if (network.includes(':')) continue;
      workloads.push({
        ip: network,
        ...(wep.spec.interfaceName ? { interfaceName: wep.spec.interfaceName } : {}),
        namespace: wep.metadata.namespace ?? 'default',
        pod: wep.spec.pod ?? wep.spec.workload ?? wep.metadata.name,
      });
    }
  }
  const bgpRoutes: DataplaneInput['bgpRoutes'] = [];
  // Service routes are never programmed (Calico's calico_kernel_programming): kube-proxy answers for them here.
  const services = serviceKernelRejects(cache.list('BGPConfiguration'));
  const isService = (text: string): boolean => {
    const prefix = tryParseIpv4Prefix(text);
    return prefix !== null && services.some((range) => prefix.len >= range.len && prefixContains(range, prefix.addr));
  };
  for (const row of sources.bgpRoutes)
    if (row.from !== 'local' && row.nextHop !== null && !isService(row.prefix))
      bgpRoutes.push({ prefix: row.prefix, nextHop: row.nextHop });
  const tunnelAddress = cache.list('Node').find((n) => n.metadata.name === name)?.spec.bgp?.ipv4IPIPTunnelAddr;
  const hostMtu = node.hostInterface !== null ? sources.interfaceMtu(node.hostInterface) : undefined;
  return {
    node: { ip: `${node.address}/${node.prefixLength}`, hostInterface: node.hostInterface ?? '' },
    pools,
    localBlocks: affineBlocks({
      nodeName: name,
      blocks: cache.list('IPAMBlock'),
      affinities: cache.list('BlockAffinity'),
    }).map(formatPrefix),
    workloads,
    bgpRoutes,
    ...peerRoutesOf(sources.peers ?? []),
    // No pod speaks BGP as its node (felix/bgp-guard.ts); TORTIE_BGP_PORT_GUARD=false turns it off.
    bgpGuard: sources.bgpPortGuard
      ? {
          nodeAddresses: cache
            .list('Node')
            .flatMap((n) => (n.spec.bgp?.ipv4Address !== undefined ? [n.spec.bgp.ipv4Address] : [])),
          // Local workload peers (BGPPeer localWorkloadSelector) may reach this node's port 179.
          ...localPeersOf(sources.peers ?? []),
        }
      : null,
    tunnel: {
      ...(tunnelAddress !== undefined ? { address: tunnelAddress } : {}),
      ...(sources.ipipMtu !== undefined ? { mtu: sources.ipipMtu } : {}),
      ...(hostMtu !== undefined ? { hostMtu } : {}),
    },
    vxlan: vxlanDataplaneInput(name, cache.list('Node'), cache.list('IPAMBlock'), sources.vxlanMtu),
  };
}

/** BGPPeer reachableBy → felix's static routes to peers; nothing when no peer has one. */
function peerRoutesOf(
  peers: ReadonlyArray<{ address: string; reachableBy?: string }>,
): Pick<DataplaneInput, 'peerRoutes'> {
  const peerRoutes = peers.flatMap((p) =>
    p.reachableBy !== undefined ? [{ address: p.address, gateway: p.reachableBy }] : [],
  );
  return peerRoutes.length > 0 ? { peerRoutes } : {};
}

/** An interface's MTU from sysfs (`ip netns exec` mounts the namespace's own /sys); undefined when unreadable. */
export function sysfsInterfaceMtu(name: string): number | undefined {
  try {
    const mtu = Number(readFileSync(`/sys/class/net/${name}/mtu`, 'utf8').trim());
    return Number.isInteger(mtu) && mtu > 0 ? mtu : undefined;
  } catch {
    return undefined;
  }
}

/** The addresses of this node's local workload BGP peers, for the BGP port guard's exception; nothing when none. */
function localPeersOf(peers: ReadonlyArray<{ address: string; type?: string }>): { localPeers?: string[] } {
  const localPeers = peers.flatMap((p) => (p.type === 'LocalWorkload' ? [p.address] : []));
  return localPeers.length > 0 ? { localPeers } : {};
}
