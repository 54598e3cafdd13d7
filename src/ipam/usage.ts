// What is where: a node's blocks, and pools and blocks with their sizes and allocation counts (`tortie ipam show`).

import { familyBits } from '../resources/cidr.js';
import * as blocks from './block.js';
import { compareNetText, familyOf } from './prefix.js';
import { blockInPool, type IpamStore } from './store.js';
import type { IpamUsage, Pool } from './types.js';

/** CIDRs of the blocks affine to `node`, lowest address first. */
export async function blocksOf(store: IpamStore, node: string): Promise<string[]> {
  return (await store.allBlocks())
    .filter((b) => blocks.affineNode(b.spec) === node)
    .map((b) => b.spec.cidr)
    .sort(compareNetText);
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
    .sort((a, b) => compareNetText(a.cidr, b.cidr));
  return {
    pools: pools.items.map((p) => {
      const mine = blockRows.filter((b) => b.pool === p.metadata.name);
      return {
        name: p.metadata.name,
        cidr: p.spec.cidr,
        // An IPv6 pool's size is past 2^53: a float, as calicoctl prints it (1.2089e+24).
        size: 2 ** (familyBits(familyOf(p.spec.cidr)) - Number(p.spec.cidr.split('/')[1])),
        allocated: mine.reduce((sum, b) => sum + b.allocated, 0),
        blocks: mine.length,
      };
    }),
    blocks: blockRows,
  };
}
