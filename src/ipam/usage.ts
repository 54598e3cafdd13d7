// What is where: a node's blocks, and pools and blocks with their sizes and allocation counts (`tortie ipam show`).

import { parseIpv4 } from '../../bgp/index.js';
import * as blocks from './block.js';
import { blockInPool, type IpamStore } from './store.js';
import type { IpamUsage, Pool } from './types.js';

/** CIDRs of the blocks affine to `node`, lowest address first. */
export async function blocksOf(store: IpamStore, node: string): Promise<string[]> {
  return (await store.allBlocks())
    .filter((b) => blocks.affineNode(b.spec) === node)
    .map((b) => b.spec.cidr)
    .sort((a, b) => parseIpv4(a.split('/')[0] ?? '') - parseIpv4(b.split('/')[0] ?? ''));
}

/** Pools and blocks with sizes and allocation counts (for `tortie ipam show`). */
export async function usage(store: IpamStore): Promise<IpamUsage> {
  const [pools, all] = await Promise.all([store.ds.list('IPPool'), store.allBlocks()]);
  const poolOf = (cidr: string): Pool | undefined => pools.items.find((p) => blockInPool(cidr, p));
  const blockRows = all
    .map((b) => ({
      cidr: b.spec.cidr,
      node: blocks.affineNode(b.spec),
      size: blocks.blockSize(b.spec),
      allocated: blocks.allocatedCount(b.spec),
      pool: poolOf(b.spec.cidr)?.metadata.name ?? '',
    }))
    .sort((a, b) => parseIpv4(a.cidr.split('/')[0] ?? '') - parseIpv4(b.cidr.split('/')[0] ?? ''));
  return {
    pools: pools.items.map((p) => {
      const mine = blockRows.filter((b) => b.pool === p.metadata.name);
      return {
        name: p.metadata.name,
        cidr: p.spec.cidr,
        size: 2 ** (32 - Number(p.spec.cidr.split('/')[1])),
        allocated: mine.reduce((sum, b) => sum + b.allocated, 0),
        blocks: mine.length,
      };
    }),
    blocks: blockRows,
  };
}
