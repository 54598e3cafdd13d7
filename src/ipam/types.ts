// The IPAM's vocabulary: options, errors, what a release or a settlement did. No logic.

import type { Clock } from '../../bgp/index.js';
import type { Resource } from '../resources/types.js';

export interface IpamUsage {
  pools: Array<{ name: string; cidr: string; size: number; allocated: number; blocks: number }>;
  blocks: Array<{ cidr: string; node: string | null; size: number; allocated: number; pool: string }>;
}

export interface IpamOptions {
  /** Time for retry backoff (default: the system clock). */
  clock?: Clock;
  /** When true, a node never takes addresses from blocks affine to another node (Calico's StrictAffinity). */
  strictAffinity?: boolean;
  /** Random numbers for jitter (default Math.random), injectable for tests. */
  random?: () => number;
}

/** What an address is for (IPPool.spec.allowedUses): a pod's, or the node's IPIP tunnel address. */
export type IpUse = 'Workload' | 'Tunnel';

/** No pool can give `node` another block (or address). The message names the node and the pools looked at. */
export class IpamExhaustedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IpamExhaustedError';
  }
}

/** A block was to be given up only when empty, and it holds addresses (the message says how many). */
export class BlockInUseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BlockInUseError';
  }
}

/** An address to free in a block: its ordinal and the handle that must still hold it (else it is left alone). */
export interface AllocationRef {
  ordinal: number;
  handle: string | null;
  /** When set, the allocation's `node` attribute (./attributes.ts) must still name this node, too. */
  node?: string;
}

/** An address freed, and the handle that held it. */
export interface FreedAddress {
  ip: string;
  handle: string | null;
}

/** What releaseAffinity did with one block of one node. */
export type AffinityRelease =
  /** Empty (after freeing what was asked): the block was deleted, then its affinity. */
  | { outcome: 'deleted'; cidr: string; freed: FreedAddress[] }
  /** Still holds `remaining` addresses: kept, written without affinity, and the affinity deleted. */
  | { outcome: 'unaffined'; cidr: string; freed: FreedAddress[]; remaining: number }
  /** There is no such block: the node's affinity for it (a stray one), if any, was deleted. */
  | { outcome: 'no-block'; cidr: string; affinity: BlockAffinityState | null }
  /** The block is not the node's (another node's, or none's): the node's stale affinity, if any, was deleted. */
  | { outcome: 'not-affine'; cidr: string; affinity: BlockAffinityState | null; owner: string | null };

export type BlockAffinityState = Resource<'BlockAffinity'>['spec']['state'];

/** What settlePendingDeletion did with one of the node's `pendingDeletion` affinities (a release that stopped half-way). */
export type PendingDeletionSettlement =
  /** The block was empty: the release was finished (block, then affinity, deleted). */
  | { outcome: 'released'; cidr: string }
  /** The block holds `allocated` addresses: the affinity is confirmed again, so the node advertises it again. */
  | { outcome: 'confirmed'; cidr: string; allocated: number }
  /** The release had got past the block (gone, or not the node's): its affinity was deleted. */
  | { outcome: 'affinity-deleted'; cidr: string; owner: string | null }
  /** Someone else finished the release, or undid it, meanwhile: nothing was written. */
  | { outcome: 'settled-elsewhere'; cidr: string };

export type Block = Resource<'IPAMBlock'>;
export type Pool = Resource<'IPPool'>;
/** IPPools a caller already listed (or is listing). */
export type PoolList = readonly Pool[] | Promise<readonly Pool[]>;

/** What assign takes besides the node and the handle. */
export interface AssignOptions {
  /** How many addresses (default 1). */
  count?: number;
  /** Only from this IPPool (its name). */
  pool?: string;
  use?: IpUse;
  /**
   * The address family: 4 or 6. Absent: IPv4 (Calico's default), or, when `pool` names one, that pool's
   * family. Only pools (and so blocks) of this family are used.
   */
  family?: 4 | 6;
  /**
   * Attributes recorded with the allocation (./attributes.ts), e.g. a pod's namespace, pod and timestamp.
   * `node` is always the node assigned for, and a tunnel handle's `type` is added; neither is taken from here.
   */
  attributes?: Readonly<Record<string, string>>;
  /** The IPPools as the caller listed them (saves a read; see poolsFor). */
  pools?: PoolList;
  /**
   * The pod's namespace (its name), for IPPool namespaceSelector: a pool with one is used only when the
   * Namespace's labels match. Without it (tunnel addresses) a selector is matched against no labels (Calico).
   */
  namespace?: string;
}
