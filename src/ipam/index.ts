// Calico's block IPAM over any Datastore: nodes claim blockSize-aligned blocks of IPPools (affinity), and
// hand out addresses from their own blocks; a full pool lets a node borrow from another node's block
// unless strictAffinity is set.
//
// Why this is hard: many nodes run this at once against one datastore, with no lock. Every write is a
// compare-and-swap and the datastore decides who won; no step may leave an address owned twice, or owned
// but not advertised.
//
// The parts (each opens with what makes it hard):
//   claim.ts    a node claims a block: pending affinity → block → confirmed, the race between nodes
//   assign.ts   addresses from the node's blocks, claiming or borrowing when they are full
//   release.ts  freeing addresses, giving a block up (pendingDeletion), settling a release killed half-way
//   usage.ts    what is where (`tortie ipam show`)
//   store.ts    what they share: datastore, clock, the compare-and-swap retry loop, pools, IPAMHandles
//   ipam.ts     the Ipam class callers use; types.ts its options, errors and results
//   block.ts    one block's allocations (pure); attributes.ts who an address is for; check.ts, teardown.ts
//   check.ts    `tortie ipam check`: its FINDINGS and report in check-findings.ts, the structure half in
//               check-structure.ts
// This file is the public API only.

export { Ipam } from './ipam.js';
export { blockInPool } from './store.js';
export {
  BlockInUseError,
  IpamExhaustedError,
  type AffinityRelease,
  type AllocationRef,
  type AssignOptions,
  type FreedAddress,
  type IpamOptions,
  type IpamUsage,
  type IpUse,
  type PendingDeletionSettlement,
  type PoolList,
} from './types.js';
export {
  affinityName,
  blockName,
  cidrOfBlockName,
  ipipTunnelHandle,
  parseAffinityName,
  tunnelHandleNode,
  TUNNEL_HANDLE_PREFIXES,
  vxlanTunnelHandle,
} from '../resources/ipam-names.js';
