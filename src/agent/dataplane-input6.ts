// What felix's IPv6 side is told (felix/route-calc6.ts `CalcInput6`), a pure function of the cache: the
// IPv6 pools, the IPv6 blocks affine to this node (confirmed affinity, as for IPv4), this node's
// workloads' IPv6 addresses, the IPv6 blocks affine to other nodes and those nodes' ipv6Address. Remote
// blocks come from the datastore (block affinities), not from BGP: IPv6 routing between nodes works with
// static input while IPv6 BGP is being built, the way felix's VXLAN routes do.

import type { CalcInput6 } from '../../felix/index.js';
import { affineNode } from '../ipam/block.js';
import type { CacheView } from './dataplane-input.js';

/** felix's IPv6 input; null when there is no IPv6 pool (felix's IPv6 side then has nothing to do). */
export function dataplaneInput6(nodeName: string, hostInterface: string | null, cache: CacheView): CalcInput6 | null {
  const pools = cache
    .list('IPPool')
    .filter((p) => p.spec.cidr.includes(':'))
    .map((p) => ({
      cidr: p.spec.cidr,
      disabled: p.spec.disabled ?? false,
      natOutgoing: p.spec.natOutgoing ?? false,
      vxlanMode: p.spec.vxlanMode ?? 'Never',
    }));
  const blocks = cache.list('IPAMBlock').filter((b) => b.spec.cidr.includes(':') && b.spec.deleted !== true);
  if (pools.length === 0 && blocks.length === 0) return null;
  const confirmed = new Set(
    cache
      .list('BlockAffinity')
      .filter((a) => a.spec.node === nodeName && a.spec.state === 'confirmed' && a.spec.deleted !== true)
      .map((a) => a.spec.cidr),
  );
  const localBlocks: string[] = [];
  const remoteBlocks: Array<{ cidr: string; node: string }> = [];
  for (const b of blocks) {
    const owner = affineNode(b.spec);
    if (owner === nodeName && confirmed.has(b.spec.cidr)) localBlocks.push(b.spec.cidr);
    else if (owner !== null && owner !== nodeName) remoteBlocks.push({ cidr: b.spec.cidr, node: owner });
  }
  const workloads: CalcInput6['workloads'] extends ReadonlyArray<infer W> ? W[] : never = [];
  for (const wep of cache.list('WorkloadEndpoint')) {
    if (wep.spec.node !== nodeName) continue;
    for (const network of wep.spec.ipNetworks) {
      if (!network.includes(':')) continue;
      workloads.push({
        ip: network,
        ...(wep.spec.interfaceName ? { interfaceName: wep.spec.interfaceName } : {}),
        namespace: wep.metadata.namespace ?? 'default',
        pod: wep.spec.pod ?? wep.spec.workload ?? wep.metadata.name,
      });
    }
  }
  const nodes = cache
    .list('Node')
    .filter((n) => n.metadata.name !== nodeName)
    .map((n) => ({
      name: n.metadata.name,
      ...(n.spec.bgp?.ipv6Address !== undefined ? { ipv6Address: n.spec.bgp.ipv6Address } : {}),
    }));
  return { hostInterface, pools, localBlocks, workloads, remoteBlocks, nodes };
}
