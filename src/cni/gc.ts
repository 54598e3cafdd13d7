// What CNI GC (spec 1.1) may release: the plan, pure — the IPAM blocks as listed in, which allocations to
// free (per block, as exact (ordinal, handle, node) references for Ipam.releaseAllocations) and which were
// left alone and why, out. ./plugin.ts carries the plan out and logs what was kept.
//
// Why this is hard: the runtime's `cni.dev/valid-attachments` lists only the attachments of ITS node, so
// "a handle of this network that is not a valid attachment" is stale only if the address was assigned on
// this node. Blocks do not say that: a node borrows addresses from another node's block when its pools
// have no free block left, and after `tortie delete node` blocks stay, without affinity, while other
// nodes' pods use them. Releasing by block affinity freed other nodes' running pods' addresses, which IPAM
// then handed out a second time. So each allocation is judged by its own `node` attribute
// (src/ipam/attributes.ts), in every block:
//   - not this network's handle ("<network>.<container id>"), or a tunnel address handle → not GC's business;
//   - the container is a valid attachment → in use;
//   - attributed to another node → that node's (its runtime's GC decides);
//   - no `node` attribute (written before tortie recorded attributes) → unknown: kept, and reported, since
//     an address nobody can attribute must never be released on a guess;
//   - attributed to this node → released (the reference carries the node, so the compare-and-swap re-checks it).

import type { Resource } from '../resources/types.js';
import { allocationNode } from '../ipam/attributes.js';
import { addressOf, handleAt } from '../ipam/block.js';
import { tunnelHandleNode } from '../ipam/names.js';

type Block = Resource<'IPAMBlock'>;

/** One allocation GC left alone, for the log. */
export interface KeptAllocation {
  handle: string;
  ip: string;
  cidr: string;
}

export interface GcPlan {
  /** Per block (as read: the first compare-and-swap uses its revision), the allocations to free. */
  release: Array<{ block: Block; refs: Array<{ ordinal: number; handle: string; node: string }>; ips: string[] }>;
  /** Stale-looking allocations of this network with no `node` attribute: kept. */
  unattributed: KeptAllocation[];
  /** Stale-looking (to this node's runtime) allocations of this network assigned on other nodes: theirs. */
  otherNodes: KeptAllocation[];
}

/**
 * The plan for GC on `node` of network `network`, the runtime knowing the containers `valid`. Blocks
 * marked deleted are skipped.
 */
export function planGc(blocks: readonly Block[], node: string, network: string, valid: ReadonlySet<string>): GcPlan {
  const prefix = `${network}.`;
  const plan: GcPlan = { release: [], unattributed: [], otherNodes: [] };
  for (const block of blocks) {
    if (block.spec.deleted === true) continue;
    const refs: GcPlan['release'][number]['refs'] = [];
    const ips: string[] = [];
    block.spec.allocations.forEach((attr, ordinal) => {
      if (attr === null) return;
      const handle = handleAt(block.spec, ordinal);
      if (!handle?.startsWith(prefix) || tunnelHandleNode(handle) !== null) return;
      if (valid.has(handle.slice(prefix.length))) return;
      const owner = allocationNode(block.spec, ordinal);
      const ip = addressOf(block.spec, ordinal);
      if (owner === null) plan.unattributed.push({ handle, ip, cidr: block.spec.cidr });
      else if (owner !== node) plan.otherNodes.push({ handle, ip, cidr: block.spec.cidr });
      else {
        refs.push({ ordinal, handle, node });
        ips.push(ip);
      }
    });
    if (refs.length > 0) plan.release.push({ block, refs, ips });
  }
  return plan;
}
