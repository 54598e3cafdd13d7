// The IPAM as callers use it: one object per datastore (and per process), whose methods are the operations
// of claim.ts, assign.ts, release.ts and usage.ts over one shared IpamStore — so concurrent assigns in this
// process share the claims in flight. Each operation's contract is documented where it is written.

import type { Datastore } from '../datastore/types.js';
import { assign } from './assign.js';
import { claimBlock, settlePending } from './claim.js';
import {
  release,
  releaseAffinity,
  releaseAllocations,
  releaseBlock,
  releaseByHandle,
  releaseStrayAffinity,
  settlePendingDeletion,
} from './release.js';
import { IpamStore } from './store.js';
import type {
  AffinityRelease,
  AllocationRef,
  AssignOptions,
  Block,
  FreedAddress,
  IpamOptions,
  IpamUsage,
  IpUse,
  PendingDeletionSettlement,
} from './types.js';
import { blocksOf, usage } from './usage.js';

export class Ipam {
  private readonly store: IpamStore;

  constructor(ds: Datastore, options: IpamOptions = {}) {
    this.store = new IpamStore(ds, options);
  }

  /** Finishes or removes `node`'s pending affinities (claim.ts). */
  settlePending(node: string): Promise<void> {
    return settlePending(this.store, node);
  }

  /** Settles `node`'s releases that stopped half-way, at its agent's startup (release.ts). */
  settlePendingDeletion(node: string): Promise<PendingDeletionSettlement[]> {
    return settlePendingDeletion(this.store, node);
  }

  /**
   * Claims a free block for `node` and returns its CIDR, or IpamExhaustedError (claim.ts). `family`: only
   * pools of that family; absent: IPv4, unless `pool` names one (then its family).
   */
  claimBlock(node: string, options: { pool?: string; use?: IpUse; family?: 4 | 6 } = {}): Promise<string> {
    const family = options.family ?? (options.pool === undefined ? 4 : undefined);
    return claimBlock(this.store, node, { ...options, ...(family !== undefined ? { family } : {}) });
  }

  /** CIDRs of the blocks affine to `node`, lowest address first (usage.ts). */
  blocksOf(node: string): Promise<string[]> {
    return blocksOf(this.store, node);
  }

  /** `count` addresses for `handleId` on `node`, claiming or borrowing as needed (assign.ts). */
  assign(node: string, handleId: string, options: AssignOptions = {}): Promise<string[]> {
    return assign(this.store, node, handleId, options);
  }

  /** Frees exactly these addresses of one block while the same handle still holds them (release.ts). */
  releaseAllocations(cidr: string, refs: readonly AllocationRef[], read?: Block): Promise<FreedAddress[]> {
    return releaseAllocations(this.store, cidr, refs, read);
  }

  /** Frees every address `handleId` holds and removes its IPAMHandle (release.ts). */
  releaseByHandle(handleId: string): Promise<string[]> {
    return releaseByHandle(this.store, handleId);
  }

  /** Frees these addresses; the block stays (release.ts). */
  release(ips: string[]): Promise<void> {
    return release(this.store, ips);
  }

  /** Removes an empty block and its affinity, or BlockInUseError (release.ts). */
  releaseBlock(cidr: string): Promise<void> {
    return releaseBlock(this.store, cidr);
  }

  /** Gives up `node`'s affinity to block `cidr` (Calico's releaseBlockAffinity; release.ts). */
  releaseAffinity(
    node: string,
    cidr: string,
    options: { requireEmpty?: boolean; free?: readonly AllocationRef[] } = {},
  ): Promise<AffinityRelease> {
    return releaseAffinity(this.store, node, cidr, options);
  }

  /** Deletes `node`'s affinity to `cidr` when the block is not the node's (release.ts). */
  releaseStrayAffinity(node: string, cidr: string): Promise<AffinityRelease | null> {
    return releaseStrayAffinity(this.store, node, cidr);
  }

  /** Pools and blocks with sizes and allocation counts, for `tortie ipam show` (usage.ts). */
  usage(): Promise<IpamUsage> {
    return usage(this.store);
  }
}
