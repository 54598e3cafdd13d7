// Calico's block IPAM over any Datastore: nodes claim blockSize-aligned blocks of IPPools (affinity), and
// hand out addresses from their own blocks; a full pool lets a node borrow from another node's block
// unless strictAffinity is set.
//
// Why this is hard: many nodes run this at once against one datastore, with no lock. Every write is a
// compare-and-swap and the datastore decides who won:
// - A block exists at most once (create fails with AlreadyExists for the loser), and its `affinity`
//   field is the truth about who owns it. Claiming goes: affinity written `pending` → block created →
//   affinity `confirmed`. A crash after the first step leaves a pending affinity and no block (nothing
//   owned); after the second, a block owned by the node with a pending affinity. claimBlock finishes or
//   removes pending affinities of its node before claiming anything new.
// - Addresses are taken by rewriting the block with its revision; a concurrent writer makes that a
//   ConflictError, and we re-read and try again (bounded, with a little jitter so losers spread out).
// - The block is the truth about who holds an address: its attributes carry the handle id and, as
//   Calico's do, who the address is for (./attributes.ts: `node` on every assignment, a pod's namespace,
//   name and time when the CNI plugin passes them) — a block affine to one node holds other nodes' pods
//   when they borrow, so only the `node` attribute says whose an address is. IPAMHandle objects are kept
//   as Calico keeps them (block → count) for tools, and updated after the block.
// - Giving a block up (releaseAffinity, Calico's releaseBlockAffinity) runs the claim backwards: affinity
//   `pendingDeletion` → the block deleted when empty, or written without affinity when addresses remain,
//   each with the revision read (an address taken meanwhile makes it a ConflictError: read again and
//   decide again) → the affinity deleted. A `pendingDeletion` affinity is never confirmed by a claim
//   (the claim moves on to another block), so a block being given up cannot be re-claimed half-way; and
//   when the caller wanted an empty block but an address arrived first, the affinity goes back to
//   `confirmed`, so the node keeps advertising the block its new pod lives in.
// - A release killed half-way leaves the affinity `pendingDeletion` on a block still the node's, which is
//   then no longer advertised. Claims never touch it (above); the node's agent settles its own at startup
//   (settlePendingDeletion): an empty block's release is finished, a block holding addresses is confirmed
//   back as Calico's claim does with an affinity that is not confirmed (the block is rewritten first, so a
//   release still running fails its compare-and-swap, reads again and wins).

import { systemClock, type Clock } from '../../bgp/clock.js';
import { parseIpv4, parsePrefix, prefixContains } from '../../bgp/ip.js';
import { AlreadyExistsError, ConflictError, NotFoundError, type Datastore } from '../datastore/types.js';
// selector.js itself, not the resources index: the index pulls in `yaml`, which the CNI plugin's ADD
// (this module, in a fresh process per pod) does not need.
import { parseSelector } from '../resources/selector.js';
import { API_VERSION, type IPAMBlockSpec, type Resource } from '../resources/types.js';
import { assignmentAttributes, allocationNode } from './attributes.js';
import * as blocks from './block.js';
import { affinityName, blockName } from '../resources/ipam-names.js';

export { affinityName, blockName, cidrOfBlockName, ipipTunnelHandle, parseAffinityName, tunnelHandleNode, TUNNEL_HANDLE_PREFIXES, vxlanTunnelHandle } from '../resources/ipam-names.js';

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

/** No pool can give `node` another block (or address). The message names the node and the pools looked at. */
/** What an address is for (IPPool.spec.allowedUses): a pod's, or the node's IPIP tunnel address. */
export type IpUse = 'Workload' | 'Tunnel';

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

type BlockAffinityState = Resource<'BlockAffinity'>['spec']['state'];

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

/** Attempts of one compare-and-swap loop before giving up; enough for a few hundred concurrent writers. */
const MAX_ATTEMPTS = 400;
const DEFAULT_BLOCK_SIZE = 26;

type Block = Resource<'IPAMBlock'>;
type Pool = Resource<'IPPool'>;
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
   * Attributes recorded with the allocation (./attributes.ts), e.g. a pod's namespace, pod and timestamp.
   * `node` is always the node assigned for, and a tunnel handle's `type` is added; neither is taken from here.
   */
  attributes?: Readonly<Record<string, string>>;
  /** The IPPools as the caller listed them (saves a read; see poolsFor). */
  pools?: PoolList;
}

function blockResource(spec: IPAMBlockSpec, revision?: string): Block {
  return { apiVersion: API_VERSION, kind: 'IPAMBlock', metadata: { name: blockName(spec.cidr), ...(revision ? { resourceVersion: revision } : {}) }, spec };
}

function poolBlockSize(pool: Pool): number {
  return pool.spec.blockSize ?? DEFAULT_BLOCK_SIZE;
}

/** True when block `cidr` lies inside the pool's range. */
export function blockInPool(cidr: string, pool: Pool): boolean {
  const block = parsePrefix(cidr);
  const range = parsePrefix(pool.spec.cidr);
  return block.len >= range.len && prefixContains(range, block.addr);
}

/** The ordinals of `refs` that the same handle (and, when the ref names one, the same node) still holds in `block`. */
function stillHeld(block: IPAMBlockSpec, refs: readonly AllocationRef[]): number[] {
  return refs
    .filter((r) => blocks.handleAt(block, r.ordinal) !== undefined && blocks.handleAt(block, r.ordinal) === r.handle)
    .filter((r) => r.node === undefined || allocationNode(block, r.ordinal) === r.node)
    .map((r) => r.ordinal);
}

export class Ipam {
  private readonly clock: Clock;
  private readonly strictAffinity: boolean;
  private readonly random: () => number;
  /** Claims in flight per node in this process: concurrent assigns on one node share one claim. */
  private readonly claiming = new Map<string, Promise<string>>();

  constructor(
    private readonly ds: Datastore,
    options: IpamOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.strictAffinity = options.strictAffinity ?? false;
    this.random = options.random ?? Math.random;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.clock.setTimeout(resolve, ms));
  }

  /** Runs `attempt` until it returns a value; ConflictError/AlreadyExists mean "someone else wrote, read again". */
  private async retrying<T>(what: string, attempt: () => Promise<T | undefined>): Promise<T> {
    for (let i = 0; i < MAX_ATTEMPTS; i++) {
      try {
        const result = await attempt();
        if (result !== undefined) return result;
      } catch (err) {
        if (!(err instanceof ConflictError) && !(err instanceof AlreadyExistsError)) throw err;
      }
      await this.sleep(Math.floor(this.random() * Math.min(50, 2 + i * 2)));
    }
    throw new Error(`${what}: gave up after ${MAX_ATTEMPTS} attempts, every one lost a compare-and-swap race`);
  }

  /**
   * Enabled pools selecting `node` (its Node labels) whose allowedUses include `use` (Calico's default: both
   * uses), optionally only the one named. `listed`: the IPPools as the caller already listed them (pools
   * are only read here, never written, so a list read a moment ago serves as well as a new one).
   */
  private async poolsFor(node: string, poolName: string | undefined, use: IpUse = 'Workload', listed?: PoolList): Promise<Pool[]> {
    const [all, nodeResource] = await Promise.all([listed ?? this.ds.list('IPPool').then((l) => l.items), this.ds.get('Node', node)]);
    const labels = nodeResource?.metadata.labels ?? {};
    if (poolName !== undefined && !all.some((p) => p.metadata.name === poolName)) {
      throw new Error(`pool "${poolName}" does not exist (pools: ${all.map((p) => p.metadata.name).join(', ') || 'none'})`);
    }
    return all.filter(
      (p) =>
        (poolName === undefined || p.metadata.name === poolName) &&
        // assignmentMode Manual: only a request that names the pool gets addresses from it (Calico).
        (poolName !== undefined || p.spec.assignmentMode !== 'Manual') &&
        !p.spec.disabled &&
        (p.spec.allowedUses === undefined || p.spec.allowedUses.includes(use)) &&
        parseSelector(p.spec.nodeSelector ?? 'all()').matches(labels),
    );
  }

  private async allBlocks(): Promise<Block[]> {
    return (await this.ds.list('IPAMBlock')).items.filter((b) => !b.spec.deleted);
  }

  /**
   * Finishes or removes this node's pending affinities (left by a claim that stopped half-way): confirmed
   * when the block exists and is ours, deleted when it does not exist or belongs to another node. The
   * agent calls it at startup (a block whose affinity stayed pending is used but never advertised);
   * claimBlock calls it too.
   */
  async settlePending(node: string): Promise<void> {
    const affinities = (await this.ds.list('BlockAffinity')).items.filter((a) => a.spec.node === node && a.spec.state === 'pending');
    for (const affinity of affinities) {
      const block = await this.ds.get('IPAMBlock', blockName(affinity.spec.cidr));
      try {
        if (block && blocks.affineNode(block.spec) === node) {
          await this.ds.update({ ...affinity, spec: { ...affinity.spec, state: 'confirmed' } });
        } else {
          await this.ds.delete('BlockAffinity', affinity.metadata.name, { revision: affinity.metadata.resourceVersion ?? '' });
        }
      } catch (err) {
        if (!(err instanceof ConflictError) && !(err instanceof NotFoundError)) throw err;
      }
    }
  }

  /**
   * Settles `node`'s releases that stopped half-way (affinity `pendingDeletion`, see the header); only the
   * node's agent calls it, at startup. Per affinity: block gone or not the node's → the affinity is deleted
   * (the release got that far); block empty → the release is finished (releaseAffinity with requireEmpty,
   * so an address taken meanwhile confirms it back instead); block holding addresses → confirmed back, as
   * its pods (or tunnel) use it and would be unreachable unadvertised.
   */
  async settlePendingDeletion(node: string): Promise<PendingDeletionSettlement[]> {
    const stuck = (await this.ds.list('BlockAffinity')).items.filter((a) => a.spec.node === node && a.spec.state === 'pendingDeletion');
    const out: PendingDeletionSettlement[] = [];
    for (const affinity of stuck) out.push(await this.settleOnePendingDeletion(node, affinity.spec.cidr));
    return out;
  }

  private async settleOnePendingDeletion(node: string, cidr: string): Promise<PendingDeletionSettlement> {
    const name = affinityName(node, cidr);
    const decided = await this.retrying(`settle BlockAffinity ${name} (pendingDeletion)`, async () => {
      const [affinity, block] = await Promise.all([this.ds.get('BlockAffinity', name), this.ds.get('IPAMBlock', blockName(cidr))]);
      if (!affinity || affinity.spec.state !== 'pendingDeletion') return { outcome: 'settled-elsewhere', cidr } as const;
      const owner = block ? blocks.affineNode(block.spec) : null;
      try {
        if (!block || owner !== node) {
          await this.ds.delete('BlockAffinity', name, { revision: affinity.metadata.resourceVersion ?? '' });
          return { outcome: 'affinity-deleted', cidr, owner } as const;
        }
        const allocated = blocks.allocatedCount(block.spec);
        if (allocated === 0) return { outcome: 'empty', cidr } as const;
        // Calico's confirmation of an affinity that is not confirmed: a new revision of the block first, so a
        // release that read it before fails its compare-and-swap and decides again; then the affinity.
        await this.ds.update(blockResource({ ...block.spec, sequenceNumber: (block.spec.sequenceNumber ?? 0) + 1 }, block.metadata.resourceVersion));
        const confirmed = await this.ds.update({ ...affinity, spec: { ...affinity.spec, state: 'confirmed' } });
        const after = await this.ds.get('IPAMBlock', blockName(cidr));
        if (after && blocks.affineNode(after.spec) === node) return { outcome: 'confirmed', cidr, allocated } as const;
        // A running release got the block between our two writes: our confirmation must not outlive it.
        await this.deleteIfUnchanged(confirmed);
        return { outcome: 'settled-elsewhere', cidr } as const;
      } catch (err) {
        if (err instanceof NotFoundError) return undefined; // deleted meanwhile: read again
        throw err;
      }
    });
    if (decided.outcome !== 'empty') return decided;
    try {
      const release = await this.releaseAffinity(node, cidr, { requireEmpty: true });
      if (release.outcome === 'deleted') return { outcome: 'released', cidr };
      if (release.outcome === 'not-affine') return { outcome: 'affinity-deleted', cidr, owner: release.owner };
      return { outcome: 'affinity-deleted', cidr, owner: null };
    } catch (err) {
      if (!(err instanceof BlockInUseError)) throw err;
      // An address arrived first: releaseAffinity confirmed the affinity back.
      const block = await this.ds.get('IPAMBlock', blockName(cidr));
      return { outcome: 'confirmed', cidr, allocated: block ? blocks.allocatedCount(block.spec) : 0 };
    }
  }

  /**
   * Claims the first free block of the first enabled pool whose nodeSelector matches `node`, and returns
   * its CIDR. Rejects with IpamExhaustedError when every candidate block is taken.
   */
  async claimBlock(node: string, options: { pool?: string; use?: IpUse } = {}): Promise<string> {
    await this.settlePending(node);
    const use = options.use ?? 'Workload';
    const pools = await this.poolsFor(node, options.pool, use);
    if (pools.length === 0) {
      throw new IpamExhaustedError(
        `no enabled IPPool${options.pool ? ` "${options.pool}"` : ''} selects node "${node}" for ${use} addresses (check the pools' nodeSelector, disabled and allowedUses fields)`,
      );
    }
    const existing = await this.allBlocks();
    const taken = new Set(existing.map((b) => b.spec.cidr));
    // A block of another size (the pool was re-created with another blockSize) still owns its addresses:
    // a candidate that overlaps any existing block is taken, or two nodes would hand out the same IPs.
    const owned = existing.map((b) => parsePrefix(b.spec.cidr));
    const overlapsExisting = (cidr: string): boolean => {
      const candidate = parsePrefix(cidr);
      return owned.some((o) => prefixContains(o, candidate.addr) || prefixContains(candidate, o.addr));
    };
    for (const pool of pools) {
      for (const cidr of blocks.blocksOfPool(pool.spec.cidr, poolBlockSize(pool))) {
        if (taken.has(cidr) || overlapsExisting(cidr)) continue;
        if (await this.tryClaim(node, cidr)) return cidr;
        taken.add(cidr);
      }
    }
    throw new IpamExhaustedError(`node "${node}": no free block left in pool(s) ${pools.map((p) => `${p.metadata.name} (${p.spec.cidr})`).join(', ')}`);
  }

  /** claimBlock, but concurrent callers for the same node and pool wait for the one claim in flight. */
  private claimShared(node: string, pool: string | undefined, use: IpUse): Promise<string> {
    const key = `${node}\u0000${pool ?? ''}\u0000${use}`;
    const running = this.claiming.get(key);
    if (running) return running;
    const claim = this.claimBlock(node, { ...(pool !== undefined ? { pool } : {}), use }).finally(() => this.claiming.delete(key));
    this.claiming.set(key, claim);
    return claim;
  }

  /**
   * One claim attempt of one block: pending affinity → block → confirmed. False when another node has it,
   * or when the node's affinity for it is `pendingDeletion` (someone is giving the block up: claiming it
   * now would race that release; the caller tries the next block). The confirmation re-reads both the
   * affinity and the block, so an affinity deleted or a block lost meanwhile is noticed, not overwritten.
   */
  private async tryClaim(node: string, cidr: string): Promise<boolean> {
    const name = affinityName(node, cidr);
    try {
      await this.ds.create({ apiVersion: API_VERSION, kind: 'BlockAffinity', metadata: { name }, spec: { state: 'pending', node, cidr } });
    } catch (err) {
      if (!(err instanceof AlreadyExistsError)) throw err;
      const existing = await this.ds.get('BlockAffinity', name);
      if (!existing || existing.spec.state === 'pendingDeletion') return false;
    }
    try {
      await this.ds.create(blockResource(blocks.newBlock(cidr, node)));
    } catch (err) {
      if (!(err instanceof AlreadyExistsError)) throw err;
      // Someone else created it: whose it is, is decided below.
    }
    return this.retrying(`confirm affinity ${name}`, async () => {
      const [current, block] = await Promise.all([this.ds.get('BlockAffinity', name), this.ds.get('IPAMBlock', blockName(cidr))]);
      if (!block || blocks.affineNode(block.spec) !== node) {
        // Another node won the block (or it is gone): our affinity must go (never leave it to look like ours).
        // A pendingDeletion one belongs to whoever is releasing; they delete it.
        if (current && current.spec.state !== 'pendingDeletion') await this.deleteIfUnchanged(current);
        return false;
      }
      if (current?.spec.state === 'pendingDeletion') return false;
      if (!current) {
        await this.ds.create({ apiVersion: API_VERSION, kind: 'BlockAffinity', metadata: { name }, spec: { state: 'confirmed', node, cidr } });
      } else if (current.spec.state !== 'confirmed') {
        try {
          await this.ds.update({ ...current, spec: { ...current.spec, state: 'confirmed' } });
        } catch (err) {
          // Deleted between our read and our write (a release or another claim cleaned it up): read again.
          if (err instanceof NotFoundError) return undefined;
          throw err;
        }
      }
      return true;
    });
  }

  /** Deletes `resource` if it is unchanged since read (compare-and-swap); gone already is fine. */
  private async deleteIfUnchanged(resource: Resource<'BlockAffinity'> | Resource<'IPAMHandle'>): Promise<void> {
    try {
      await this.ds.delete(resource.kind, resource.metadata.name, { revision: resource.metadata.resourceVersion ?? '' });
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  }

  /** CIDRs of the blocks affine to `node`, lowest address first. */
  async blocksOf(node: string): Promise<string[]> {
    return (await this.allBlocks())
      .filter((b) => blocks.affineNode(b.spec) === node)
      .map((b) => b.spec.cidr)
      .sort((a, b) => parseIpv4(a.split('/')[0] ?? '') - parseIpv4(b.split('/')[0] ?? ''));
  }

  /** Addresses already held by `handleId`, in block then ordinal order. */
  private heldBy(all: Block[], handleId: string): string[] {
    const out: string[] = [];
    for (const block of all) for (const ordinal of blocks.ordinalsOfHandle(block.spec, handleId)) out.push(blocks.addressOf(block.spec, ordinal));
    return out;
  }

  /**
   * `count` (default 1) addresses for `handleId` from `node`'s blocks, claiming another block when they
   * are full, and borrowing from another node's block when the pools are exhausted (unless strictAffinity).
   * Assigning again with a handle that already holds addresses returns those (a retried CNI ADD). Each
   * allocation records who it is for (AssignOptions.attributes; `node` always).
   *
   * Round trips: the blocks are listed once for the handle's own addresses and the first attempt (its
   * compare-and-swap is on the revision listed); only a lost race or a claim lists them again. A handle
   * that held nothing is created without reading it first (creating is itself the check).
   */
  async assign(node: string, handleId: string, options: AssignOptions = {}): Promise<string[]> {
    const use = options.use ?? 'Workload';
    const count = options.count ?? 1;
    if (!Number.isInteger(count) || count < 1) throw new Error(`assign count ${count} is not a positive integer`);
    let listed: Block[] | undefined = await this.allBlocks();
    const held = this.heldBy(listed, handleId);
    if (held.length >= count) return held.slice(0, count);
    const got = [...held];
    const pools = await this.poolsFor(node, options.pool, use, options.pools);
    if (pools.length === 0) {
      throw new IpamExhaustedError(
        `no enabled IPPool${options.pool ? ` "${options.pool}"` : ''} selects node "${node}" for ${use} addresses (check the pools' nodeSelector, disabled and allowedUses fields)`,
      );
    }
    const inPools = (b: Block): boolean => pools.some((p) => blockInPool(b.spec.cidr, p));
    const secondary = assignmentAttributes(node, handleId, options.attributes);

    let claims = 0;
    let borrowing = false;
    for (let round = 0; round < MAX_ATTEMPTS && got.length < count; round++) {
      const all: Block[] = listed ?? (await this.allBlocks());
      listed = undefined;
      const own = all.filter((b) => inPools(b) && blocks.affineNode(b.spec) === node && blocks.freeCount(b.spec) > 0);
      const others = borrowing ? all.filter((b) => inPools(b) && blocks.affineNode(b.spec) !== node && blocks.freeCount(b.spec) > 0) : [];
      const candidate = own[0] ?? others[0];
      if (!candidate) {
        if (!borrowing) {
          try {
            await this.claimShared(node, options.pool, use);
            claims++;
            continue;
          } catch (err) {
            if (!(err instanceof IpamExhaustedError)) throw err;
            if (this.strictAffinity) throw new IpamExhaustedError(`node "${node}": ${err.message}; strictAffinity forbids borrowing from other nodes' blocks`);
            borrowing = true;
            listed = all; // the claim wrote no block: the same list serves the borrowing round (a stale one only fails its CAS)
            continue;
          }
        }
        throw new IpamExhaustedError(`node "${node}": no free address in pool(s) ${pools.map((p) => `${p.metadata.name} (${p.spec.cidr})`).join(', ')} (${got.length} of ${count} assigned)`);
      }
      const taken = await this.takeFrom(candidate, count - got.length, handleId, secondary, got.length === 0);
      got.push(...taken);
      if (taken.length === 0) await this.sleep(Math.floor(this.random() * Math.min(50, 2 + round * 2)));
    }
    if (got.length < count) throw new Error(`node "${node}": assign for handle "${handleId}" did not finish after ${MAX_ATTEMPTS} rounds (${claims} blocks claimed)`);
    return got;
  }

  /**
   * One compare-and-swap on one block, as read; [] when someone else wrote it first (the caller re-reads).
   * `handleIsNew`: the handle held nothing when the blocks were read, so its IPAMHandle is created without
   * a read first (an IPAMHandle left over from before makes that creation fail, and then it is read).
   */
  private async takeFrom(block: Block, count: number, handleId: string, secondary: Record<string, string>, handleIsNew: boolean): Promise<string[]> {
    const { block: next, ordinals } = blocks.allocate(block.spec, count, handleId, secondary);
    if (ordinals.length === 0) return [];
    try {
      await this.ds.update(blockResource(next, block.metadata.resourceVersion));
    } catch (err) {
      if (err instanceof ConflictError || err instanceof NotFoundError) return [];
      throw err;
    }
    await this.adjustHandle(handleId, block.spec.cidr, ordinals.length, { createFirst: handleIsNew });
    return ordinals.map((o) => blocks.addressOf(block.spec, o));
  }

  /**
   * Adds `delta` to the handle's count for `cidr`; deletes the handle when nothing is left. `createFirst`
   * (delta > 0, the handle is probably new): try creating it before reading; AlreadyExists means read it.
   */
  private async adjustHandle(handleId: string, cidr: string, delta: number, options: { createFirst?: boolean } = {}): Promise<void> {
    if (options.createFirst === true && delta > 0) {
      try {
        await this.ds.create({ apiVersion: API_VERSION, kind: 'IPAMHandle', metadata: { name: handleId }, spec: { handleID: handleId, block: { [cidr]: delta } } });
        return;
      } catch (err) {
        if (!(err instanceof AlreadyExistsError)) throw err;
      }
    }
    await this.retrying(`update IPAMHandle ${handleId}`, async () => {
      const current = await this.ds.get('IPAMHandle', handleId);
      if (!current) {
        if (delta <= 0) return true;
        await this.ds.create({ apiVersion: API_VERSION, kind: 'IPAMHandle', metadata: { name: handleId }, spec: { handleID: handleId, block: { [cidr]: delta } } });
        return true;
      }
      const counts = { ...current.spec.block };
      const n = (counts[cidr] ?? 0) + delta;
      if (n > 0) counts[cidr] = n;
      else delete counts[cidr];
      if (Object.keys(counts).length === 0) {
        await this.ds.delete('IPAMHandle', handleId, { revision: current.metadata.resourceVersion ?? '' });
      } else {
        await this.ds.update({ ...current, spec: { ...current.spec, block: counts } });
      }
      return true;
    });
  }

  /**
   * Frees ordinals chosen by `pick` in every block where it picks some; returns the addresses freed. The
   * blocks are listed once, and each block's first compare-and-swap is on the revision listed.
   */
  private async releaseWhere(pick: (block: IPAMBlockSpec) => number[], options: { adjustHandles?: boolean } = {}): Promise<string[]> {
    const freed: string[] = [];
    for (const start of await this.allBlocks()) {
      if (pick(start.spec).length === 0) continue;
      for (const address of await this.releaseInBlock(start.spec.cidr, pick, { read: start, ...options })) freed.push(address.ip);
    }
    return freed;
  }

  /**
   * Frees the ordinals `pick` chooses in one block, in one compare-and-swap (re-read and re-picked after a
   * conflict), then adjusts the handles (unless `adjustHandles` is false: the caller removes them). The
   * block stays, even when empty (as Calico). [] when it is gone. `read`: the block as the caller read
   * it, for the first attempt when `pick` chooses something in it (else, and after a conflict, it is read).
   */
  private async releaseInBlock(cidr: string, pick: (block: IPAMBlockSpec) => number[], options: { read?: Block; adjustHandles?: boolean } = {}): Promise<FreedAddress[]> {
    let known = options.read !== undefined && options.read.spec.cidr === cidr && pick(options.read.spec).length > 0 ? options.read : undefined;
    const written = await this.retrying(`release in block ${cidr}`, async () => {
      const block = known ?? (await this.ds.get('IPAMBlock', blockName(cidr)));
      known = undefined;
      if (!block) return { freed: [] as FreedAddress[], byHandle: new Map<string, number>() };
      const result = blocks.release(block.spec, pick(block.spec));
      if (result.freed.length > 0) {
        try {
          await this.ds.update(blockResource(result.block, block.metadata.resourceVersion));
        } catch (err) {
          if (err instanceof NotFoundError) return undefined; // deleted meanwhile: read again
          throw err;
        }
      }
      const freed = result.freed.map((ordinal) => ({ ip: blocks.addressOf(block.spec, ordinal), handle: blocks.handleAt(block.spec, ordinal) ?? null }));
      return { freed, byHandle: result.byHandle };
    });
    if (options.adjustHandles !== false) for (const [handle, n] of written.byHandle) await this.adjustHandle(handle, cidr, -n);
    return written.freed;
  }

  /**
   * Frees exactly these addresses of one block: each only while the same handle (and the node, when a ref
   * names one) still holds it — an address freed and taken again by someone else meanwhile is left alone.
   * One compare-and-swap; `read`: the block as the caller read it (the first attempt's revision).
   */
  async releaseAllocations(cidr: string, refs: readonly AllocationRef[], read?: Block): Promise<FreedAddress[]> {
    if (refs.length === 0) return [];
    return this.releaseInBlock(cidr, (block) => stillHeld(block, refs), read !== undefined ? { read } : {});
  }

  /**
   * Frees every address `handleId` holds and removes its IPAMHandle; returns the addresses freed. Round
   * trips: the blocks are listed once (each block's compare-and-swap on the revision listed), then the
   * handle is read and deleted with the revision read.
   */
  async releaseByHandle(handleId: string): Promise<string[]> {
    const freed = await this.releaseWhere((b) => blocks.ordinalsOfHandle(b, handleId), { adjustHandles: false });
    await this.retrying(`delete IPAMHandle ${handleId}`, async () => {
      const handle = await this.ds.get('IPAMHandle', handleId);
      if (handle) await this.deleteIfUnchanged(handle);
      return true;
    });
    return freed;
  }

  /** Frees these addresses (those not allocated are ignored). The block stays, even when empty (as Calico). */
  async release(ips: string[]): Promise<void> {
    for (const ip of ips) parseIpv4(ip, 'address to release');
    await this.releaseWhere((b) => ips.map((ip) => blocks.ordinalOf(b, ip)).filter((o): o is number => o !== null && b.allocations[o] !== null));
  }

  /**
   * Removes an empty block and its affinity (releaseAffinity with requireEmpty). A block in use is
   * refused with BlockInUseError — also when an address was taken while we were removing it: then the
   * block stays, with its affinity confirmed again. A block affine to no node is deleted when empty.
   */
  async releaseBlock(cidr: string): Promise<void> {
    const name = blockName(cidr);
    const block = await this.ds.get('IPAMBlock', name);
    if (!block) throw new NotFoundError(`IPAMBlock ${cidr} does not exist`);
    const node = blocks.affineNode(block.spec);
    if (node !== null) {
      await this.releaseAffinity(node, cidr, { requireEmpty: true });
      return;
    }
    await this.retrying(`release block ${cidr}`, async () => {
      const current = await this.ds.get('IPAMBlock', name);
      if (!current) return true;
      const inUse = blocks.allocatedCount(current.spec);
      if (inUse > 0) throw new BlockInUseError(`block ${cidr} still has ${inUse} address(es) allocated; release them first (releaseByHandle / release)`);
      try {
        await this.ds.delete('IPAMBlock', name, { revision: current.metadata.resourceVersion ?? '' });
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
      }
      return true;
    });
  }

  /**
   * Gives up `node`'s affinity to block `cidr` (Calico's releaseBlockAffinity), freeing `free` first:
   * the affinity is marked pendingDeletion, then — in one compare-and-swap on the block — the block is
   * deleted if nothing else is allocated in it, or else written without affinity (the addresses stay
   * allocated, the block stays reserved, no node hands out more from it as its own); then the affinity is
   * deleted. With requireEmpty, a block that holds anything else is refused (BlockInUseError) and keeps its
   * affinity, confirmed. A conflict (someone wrote the block meanwhile) means: read again, decide again.
   */
  async releaseAffinity(node: string, cidr: string, options: { requireEmpty?: boolean; free?: readonly AllocationRef[] } = {}): Promise<AffinityRelease> {
    const name = blockName(cidr);
    const affinityKey = affinityName(node, cidr);
    const step = await this.retrying(`release the affinity of node "${node}" to block ${cidr}`, async () => {
      const [block, affinity] = await Promise.all([this.ds.get('IPAMBlock', name), this.ds.get('BlockAffinity', affinityKey)]);
      if (!block || blocks.affineNode(block.spec) !== node) {
        if (affinity) await this.deleteIfUnchanged(affinity);
        const state = affinity?.spec.state ?? null;
        return block
          ? ({ outcome: 'not-affine', cidr, affinity: state, owner: blocks.affineNode(block.spec) } as const)
          : ({ outcome: 'no-block', cidr, affinity: state } as const);
      }
      const result = blocks.release(block.spec, stillHeld(block.spec, options.free ?? []));
      const remaining = blocks.allocatedCount(result.block);
      if (options.requireEmpty === true && remaining > 0) {
        // An address arrived first (or was there): the node keeps the block, and keeps advertising it.
        if (affinity?.spec.state === 'pendingDeletion') await this.ds.update({ ...affinity, spec: { ...affinity.spec, state: 'confirmed' } });
        throw new BlockInUseError(`block ${cidr} still has ${remaining} address(es) allocated; release them first (releaseByHandle / release)`);
      }
      if (affinity && affinity.spec.state !== 'pendingDeletion') {
        await this.ds.update({ ...affinity, spec: { ...affinity.spec, state: 'pendingDeletion' } });
      }
      try {
        if (remaining === 0) {
          await this.ds.delete('IPAMBlock', name, { revision: block.metadata.resourceVersion ?? '' });
        } else {
          const unaffined = { ...result.block, affinity: null, sequenceNumber: (result.block.sequenceNumber ?? 0) + 1 };
          await this.ds.update(blockResource(unaffined, block.metadata.resourceVersion));
        }
      } catch (err) {
        if (err instanceof NotFoundError) return undefined; // deleted meanwhile: read again
        throw err;
      }
      const freed = result.freed.map((ordinal) => ({ ip: blocks.addressOf(block.spec, ordinal), handle: blocks.handleAt(block.spec, ordinal) ?? null }));
      return { outcome: remaining === 0 ? 'deleted' : 'unaffined', freed, byHandle: result.byHandle, remaining } as const;
    });
    if (step.outcome === 'no-block' || step.outcome === 'not-affine') return step;
    for (const [handle, n] of step.byHandle) await this.adjustHandle(handle, cidr, -n);
    await this.dropAffinity(node, cidr);
    return step.outcome === 'deleted'
      ? { outcome: 'deleted', cidr, freed: step.freed }
      : { outcome: 'unaffined', cidr, freed: step.freed, remaining: step.remaining };
  }

  /**
   * Deletes `node`'s affinity to `cidr` when there is no such block, or the block is not the node's (a
   * claim that stopped half-way, or lost). Null, touching nothing, when the block is the node's after all
   * (a claim finished meanwhile: that is not a stray any more).
   */
  async releaseStrayAffinity(node: string, cidr: string): Promise<AffinityRelease | null> {
    const name = affinityName(node, cidr);
    return this.retrying(`delete BlockAffinity ${name}`, async () => {
      const [affinity, block] = await Promise.all([this.ds.get('BlockAffinity', name), this.ds.get('IPAMBlock', blockName(cidr))]);
      const owner = block ? blocks.affineNode(block.spec) : null;
      if (block && owner === node) return null;
      if (affinity) await this.deleteIfUnchanged(affinity);
      const state = affinity?.spec.state ?? null;
      return block ? ({ outcome: 'not-affine', cidr, affinity: state, owner } as const) : ({ outcome: 'no-block', cidr, affinity: state } as const);
    });
  }

  /**
   * Deletes `node`'s affinity to `cidr` after its block was deleted or unaffined — unless the block is
   * there and the node's again (a claim that started after ours finished won it fairly; a claim in
   * progress repairs its own affinity when it confirms, so deleting a pending one is safe).
   */
  private async dropAffinity(node: string, cidr: string): Promise<void> {
    const name = affinityName(node, cidr);
    await this.retrying(`delete BlockAffinity ${name}`, async () => {
      const [affinity, block] = await Promise.all([this.ds.get('BlockAffinity', name), this.ds.get('IPAMBlock', blockName(cidr))]);
      if (!affinity) return true;
      if (block && blocks.affineNode(block.spec) === node && affinity.spec.state !== 'pendingDeletion') return true;
      await this.deleteIfUnchanged(affinity);
      return true;
    });
  }

  /** Pools and blocks with sizes and allocation counts (for `tortie ipam show`). */
  async usage(): Promise<IpamUsage> {
    const [pools, all] = await Promise.all([this.ds.list('IPPool'), this.allBlocks()]);
    const poolOf = (cidr: string): Pool | undefined => pools.items.find((p) => blockInPool(cidr, p));
    const blockRows = all
      .map((b) => ({ cidr: b.spec.cidr, node: blocks.affineNode(b.spec), size: blocks.blockSize(b.spec), allocated: blocks.allocatedCount(b.spec), pool: poolOf(b.spec.cidr)?.metadata.name ?? '' }))
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
}
