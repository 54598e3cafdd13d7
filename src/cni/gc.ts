// What CNI GC (spec 1.1) may release: the plan, pure — the IPAM blocks and (etcd) the WorkloadEndpoints as
// listed in; which allocations to free (per block, as exact (ordinal, handle[, node]) references for
// Ipam.releaseAllocations), which endpoints to delete after them, and which allocations were left alone and
// why, out. ./plugin.ts carries the plan out and logs what was kept.
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
//   - attributed to this node → released (the reference carries the node, so the compare-and-swap re-checks it);
//   - no `node` attribute (written before tortie recorded attributes) → released only with proof that it
//     was assigned here: a WorkloadEndpoint of THIS node, of the same container (its containerID is the
//     handle's), naming the same address. The plugin on this node wrote that endpoint with that address
//     (an endpoint of a new sandbox of the same pod names the new container, not the old one). GC deletes
//     that endpoint, so keeping the address would leave it allocated with nothing pointing at it until the
//     node is deleted. The reference carries no node (there is none to re-check); the handle is re-checked.
//   - no `node` attribute and no such proof → unknown: kept, and reported, since an address nobody can
//     attribute must never be released on a guess.
// The endpoints deleted are this node's of containers the runtime no longer knows; the plugin deletes
// them after releasing the addresses, so a GC that fails between the two finds the proof again next time.
// On the kubernetes datastore endpoints are Pods, which GC does not delete: the plugin passes none, and
// unattributed addresses are all kept there.

import type { Resource } from '../resources/types.js';
import { allocationNode } from '../ipam/attributes.js';
import { addressOf, handleAt } from '../ipam/block.js';
import { tunnelHandleNode } from '../resources/ipam-names.js';

type Block = Resource<'IPAMBlock'>;
type Workload = Resource<'WorkloadEndpoint'>;

/** One allocation GC left alone, for the log. */
export interface KeptAllocation {
  handle: string;
  ip: string;
  cidr: string;
}

/** An allocation without a `node` attribute released because this node's endpoint of its container names it. */
export interface ProvenAllocation extends KeptAllocation {
  /** The endpoint that proved it, "namespace/name". */
  endpoint: string;
}

export interface GcPlan {
  /**
   * Per block (as read: the first compare-and-swap uses its revision), the allocations to free: each
   * while the same handle still holds it, and — when the ref names one — its `node` attribute still says
   * that node (unattributed ones proven by an endpoint name none).
   */
  release: Array<{ block: Block; refs: Array<{ ordinal: number; handle: string; node?: string }>; ips: string[] }>;
  /** Among `release`: allocations with no `node` attribute, proven this node's by an endpoint. */
  proven: ProvenAllocation[];
  /** Stale-looking allocations of this network with no `node` attribute and no proof: kept. */
  unattributed: KeptAllocation[];
  /** Stale-looking (to this node's runtime) allocations of this network assigned on other nodes: theirs. */
  otherNodes: KeptAllocation[];
  /** This node's WorkloadEndpoints of containers the runtime no longer knows: deleted after the release. */
  endpoints: Workload[];
}

/** "<container id> <address>" of each address an endpoint names: what proves an unattributed allocation. */
function proofKey(containerId: string, ip: string): string {
  return `${containerId} ${ip}`;
}

/**
 * The plan for GC on `node` of network `network`, the runtime knowing the containers `valid`; `endpoints`:
 * the WorkloadEndpoints as listed (any node's; none on the kubernetes datastore, see the header). Blocks
 * marked deleted are skipped.
 */
export function planGc(
  blocks: readonly Block[],
  node: string,
  network: string,
  valid: ReadonlySet<string>,
  endpoints: readonly Workload[] = [],
): GcPlan {
  const prefix = `${network}.`;
  const stale = endpoints.filter((w) => w.spec.node === node && !!w.spec.containerID && !valid.has(w.spec.containerID));
  const proofs = new Map<string, Workload>();
  for (const w of stale)
    for (const n of w.spec.ipNetworks ?? []) proofs.set(proofKey(w.spec.containerID!, n.split('/')[0] ?? ''), w);
  const plan: GcPlan = { release: [], proven: [], unattributed: [], otherNodes: [], endpoints: stale };
  for (const block of blocks) {
    if (block.spec.deleted === true) continue;
    const refs: GcPlan['release'][number]['refs'] = [];
    const ips: string[] = [];
    block.spec.allocations.forEach((attr, ordinal) => {
      if (attr === null) return;
      const handle = handleAt(block.spec, ordinal);
      if (!handle?.startsWith(prefix) || tunnelHandleNode(handle) !== null) return;
      const containerId = handle.slice(prefix.length);
      if (valid.has(containerId)) return;
      const owner = allocationNode(block.spec, ordinal);
      const ip = addressOf(block.spec, ordinal);
      const proof = owner === null ? proofs.get(proofKey(containerId, ip)) : undefined;
      if (owner === null && proof === undefined) plan.unattributed.push({ handle, ip, cidr: block.spec.cidr });
      else if (owner !== null && owner !== node) plan.otherNodes.push({ handle, ip, cidr: block.spec.cidr });
      else {
        refs.push(owner === null ? { ordinal, handle } : { ordinal, handle, node });
        ips.push(ip);
        if (proof)
          plan.proven.push({
            handle,
            ip,
            cidr: block.spec.cidr,
            endpoint: `${proof.metadata.namespace ?? 'default'}/${proof.metadata.name}`,
          });
      }
    });
    if (refs.length > 0) plan.release.push({ block, refs, ips });
  }
  return plan;
}
