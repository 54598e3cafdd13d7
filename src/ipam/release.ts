// Freeing addresses (by address, by handle, by exact allocation) and giving blocks up:
// - Giving a block up (releaseAffinity, Calico's releaseBlockAffinity) runs the claim backwards: affinity
//   `pendingDeletion` → the block deleted when empty, or written without affinity when addresses remain,
//   each with the revision read (an address taken meanwhile makes it a ConflictError: read again and
//   decide again) → the affinity deleted. A `pendingDeletion` affinity is never confirmed by a claim
//   (the claim moves on to another block), so a block being given up cannot be re-claimed half-way; and
//   when the caller wanted an empty block but an address arrived first, the affinity goes back to
//   `confirmed`, so the node keeps advertising the block its new pod lives in.
// - A release killed half-way leaves the affinity `pendingDeletion` on a block still the node's, which is
//   then no longer advertised. Claims never touch it (claim.ts); the node's agent settles its own at startup
//   (settlePendingDeletion): an empty block's release is finished, a block holding addresses is confirmed
//   back as Calico's claim does with an affinity that is not confirmed (the block is rewritten first, so a
//   release still running fails its compare-and-swap, reads again and wins).

import { parseAddress } from '../resources/cidr.js';
import { NotFoundError } from '../datastore/types.js';
import { affinityName, blockName } from '../resources/ipam-names.js';
import type { IPAMBlockSpec } from '../resources/types.js';
import { allocationNode } from './attributes.js';
import * as blocks from './block.js';
import { blockResource, type IpamStore } from './store.js';
import {
  BlockInUseError,
  type AffinityRelease,
  type AllocationRef,
  type Block,
  type FreedAddress,
  type PendingDeletionSettlement,
} from './types.js';

/** The ordinals of `refs` that the same handle (and, when the ref names one, the same node) still holds in `block`. */
function stillHeld(block: IPAMBlockSpec, refs: readonly AllocationRef[]): number[] {
  return refs
    .filter((r) => blocks.handleAt(block, r.ordinal) !== undefined && blocks.handleAt(block, r.ordinal) === r.handle)
    .filter((r) => r.node === undefined || allocationNode(block, r.ordinal) === r.node)
    .map((r) => r.ordinal);
}

/**
 * Settles `node`'s releases that stopped half-way (affinity `pendingDeletion`, see the header); only the
 * node's agent calls it, at startup. Per affinity: block gone or not the node's → the affinity is deleted
 * (the release got that far); block empty → the release is finished (releaseAffinity with requireEmpty,
 * so an address taken meanwhile confirms it back instead); block holding addresses → confirmed back, as
 * its pods (or tunnel) use it and would be unreachable unadvertised.
 */
export async function settlePendingDeletion(store: IpamStore, node: string): Promise<PendingDeletionSettlement[]> {
  const stuck = (await store.ds.list('BlockAffinity')).items.filter(
    (a) => a.spec.node === node && a.spec.state === 'pendingDeletion',
  );
  const out: PendingDeletionSettlement[] = [];
  for (const affinity of stuck) out.push(await settleOnePendingDeletion(store, node, affinity.spec.cidr));
  return out;
}

async function settleOnePendingDeletion(
  store: IpamStore,
  node: string,
  cidr: string,
): Promise<PendingDeletionSettlement> {
  const name = affinityName(node, cidr);
  const decided = await store.retrying(`settle BlockAffinity ${name} (pendingDeletion)`, async () => {
    const [affinity, block] = await Promise.all([
      store.ds.get('BlockAffinity', name),
      store.ds.get('IPAMBlock', blockName(cidr)),
    ]);
    if (!affinity || affinity.spec.state !== 'pendingDeletion') return { outcome: 'settled-elsewhere', cidr } as const;
    const owner = block ? blocks.affineNode(block.spec) : null;
    try {
      if (!block || owner !== node) {
        await store.ds.delete('BlockAffinity', name, { revision: affinity.metadata.resourceVersion ?? '' });
        return { outcome: 'affinity-deleted', cidr, owner } as const;
      }
      const allocated = blocks.allocatedCount(block.spec);
      if (allocated === 0) return { outcome: 'empty', cidr } as const;
      // Calico's confirmation of an affinity that is not confirmed: a new revision of the block first, so a
      // release that read it before fails its compare-and-swap and decides again; then the affinity.
      await store.ds.update(
        blockResource(
          { ...block.spec, sequenceNumber: (block.spec.sequenceNumber ?? 0) + 1 },
          block.metadata.resourceVersion,
        ),
      );
      const confirmed = await store.ds.update({ ...affinity, spec: { ...affinity.spec, state: 'confirmed' } });
      const after = await store.ds.get('IPAMBlock', blockName(cidr));
      if (after && blocks.affineNode(after.spec) === node) return { outcome: 'confirmed', cidr, allocated } as const;
      // A running release got the block between our two writes: our confirmation must not outlive it.
      await store.deleteIfUnchanged(confirmed);
      return { outcome: 'settled-elsewhere', cidr } as const;
    } catch (err) {
      if (err instanceof NotFoundError) return undefined; // deleted meanwhile: read again
      throw err;
    }
  });
  if (decided.outcome !== 'empty') return decided;
  try {
    const release = await releaseAffinity(store, node, cidr, { requireEmpty: true });
    if (release.outcome === 'deleted') return { outcome: 'released', cidr };
    if (release.outcome === 'not-affine') return { outcome: 'affinity-deleted', cidr, owner: release.owner };
    return { outcome: 'affinity-deleted', cidr, owner: null };
  } catch (err) {
    if (!(err instanceof BlockInUseError)) throw err;
    // An address arrived first: releaseAffinity confirmed the affinity back.
    const block = await store.ds.get('IPAMBlock', blockName(cidr));
    return { outcome: 'confirmed', cidr, allocated: block ? blocks.allocatedCount(block.spec) : 0 };
  }
}

/**
 * Frees ordinals chosen by `pick` in every block where it picks some; returns the addresses freed. The
 * blocks are listed once, and each block's first compare-and-swap is on the revision listed.
 */
async function releaseWhere(
  store: IpamStore,
  pick: (block: IPAMBlockSpec) => number[],
  options: { adjustHandles?: boolean } = {},
): Promise<string[]> {
  const freed: string[] = [];
  for (const start of await store.allBlocks()) {
    if (pick(start.spec).length === 0) continue;
    for (const address of await releaseInBlock(store, start.spec.cidr, pick, { read: start, ...options }))
      freed.push(address.ip);
  }
  return freed;
}

/**
 * Frees the ordinals `pick` chooses in one block, in one compare-and-swap (re-read and re-picked after a
 * conflict), then adjusts the handles (unless `adjustHandles` is false: the caller removes them). The
 * block stays, even when empty (as Calico). [] when it is gone. `read`: the block as the caller read
 * it, for the first attempt when `pick` chooses something in it (else, and after a conflict, it is read).
 */
async function releaseInBlock(
  store: IpamStore,
  cidr: string,
  pick: (block: IPAMBlockSpec) => number[],
  options: { read?: Block; adjustHandles?: boolean } = {},
): Promise<FreedAddress[]> {
  let known =
    options.read !== undefined && options.read.spec.cidr === cidr && pick(options.read.spec).length > 0
      ? options.read
      : undefined;
  const written = await store.retrying(`release in block ${cidr}`, async () => {
    const block = known ?? (await store.ds.get('IPAMBlock', blockName(cidr)));
    known = undefined;
    if (!block) return { freed: [] as FreedAddress[], byHandle: new Map<string, number>() };
    const result = blocks.release(block.spec, pick(block.spec));
    if (result.freed.length > 0) {
      try {
        await store.ds.update(blockResource(result.block, block.metadata.resourceVersion));
      } catch (err) {
        if (err instanceof NotFoundError) return undefined; // deleted meanwhile: read again
        throw err;
      }
    }
    const freed = result.freed.map((ordinal) => ({
      ip: blocks.addressOf(block.spec, ordinal),
      handle: blocks.handleAt(block.spec, ordinal) ?? null,
    }));
    return { freed, byHandle: result.byHandle };
  });
  if (options.adjustHandles !== false)
    for (const [handle, n] of written.byHandle) await store.adjustHandle(handle, cidr, -n);
  return written.freed;
}

/**
 * Frees exactly these addresses of one block: each only while the same handle (and the node, when a ref
 * names one) still holds it — an address freed and taken again by someone else meanwhile is left alone.
 * One compare-and-swap; `read`: the block as the caller read it (the first attempt's revision).
 */
export async function releaseAllocations(
  store: IpamStore,
  cidr: string,
  refs: readonly AllocationRef[],
  read?: Block,
): Promise<FreedAddress[]> {
  if (refs.length === 0) return [];
  return releaseInBlock(store, cidr, (block) => stillHeld(block, refs), read !== undefined ? { read } : {});
}

/**
 * Frees every address `handleId` holds and removes its IPAMHandle; returns the addresses freed. Round
 * trips: the blocks are listed once (each block's compare-and-swap on the revision listed), then the
 * handle is read and deleted with the revision read.
 */
export async function releaseByHandle(store: IpamStore, handleId: string): Promise<string[]> {
  const freed = await releaseWhere(store, (b) => blocks.ordinalsOfHandle(b, handleId), { adjustHandles: false });
  await store.retrying(`delete IPAMHandle ${handleId}`, async () => {
    const handle = await store.ds.get('IPAMHandle', handleId);
    if (handle) await store.deleteIfUnchanged(handle);
    return true;
  });
  return freed;
}

/** Frees these addresses (those not allocated are ignored). The block stays, even when empty (as Calico). */
export async function release(store: IpamStore, ips: string[]): Promise<void> {
  for (const ip of ips) {
    if (parseAddress(ip) === null) throw new Error(`address to release "${ip}" is not an IPv4 or IPv6 address`);
  }
  await releaseWhere(store, (b) =>
    ips.map((ip) => blocks.ordinalOf(b, ip)).filter((o): o is number => o !== null && b.allocations[o] !== null),
  );
}

/**
 * Removes an empty block and its affinity (releaseAffinity with requireEmpty). A block in use is
 * refused with BlockInUseError — also when an address was taken while we were removing it: then the
 * block stays, with its affinity confirmed again. A block affine to no node is deleted when empty.
 */
export async function releaseBlock(store: IpamStore, cidr: string): Promise<void> {
  const name = blockName(cidr);
  const block = await store.ds.get('IPAMBlock', name);
  if (!block) throw new NotFoundError(`IPAMBlock ${cidr} does not exist`);
  const node = blocks.affineNode(block.spec);
  if (node !== null) {
    await releaseAffinity(store, node, cidr, { requireEmpty: true });
    return;
  }
  await store.retrying(`release block ${cidr}`, async () => {
    const current = await store.ds.get('IPAMBlock', name);
    if (!current) return true;
    const inUse = blocks.allocatedCount(current.spec);
    if (inUse > 0)
      throw new BlockInUseError(
        `block ${cidr} still has ${inUse} address(es) allocated; release them first (releaseByHandle / release)`,
      );
    try {
      await store.ds.delete('IPAMBlock', name, { revision: current.metadata.resourceVersion ?? '' });
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
export async function releaseAffinity(
  store: IpamStore,
  node: string,
  cidr: string,
  options: { requireEmpty?: boolean; free?: readonly AllocationRef[] } = {},
): Promise<AffinityRelease> {
  const name = blockName(cidr);
  const affinityKey = affinityName(node, cidr);
  const step = await store.retrying(`release the affinity of node "${node}" to block ${cidr}`, async () => {
    const [block, affinity] = await Promise.all([
      store.ds.get('IPAMBlock', name),
      store.ds.get('BlockAffinity', affinityKey),
    ]);
    if (!block || blocks.affineNode(block.spec) !== node) {
      if (affinity) await store.deleteIfUnchanged(affinity);
      const state = affinity?.spec.state ?? null;
      return block
        ? ({ outcome: 'not-affine', cidr, affinity: state, owner: blocks.affineNode(block.spec) } as const)
        : ({ outcome: 'no-block', cidr, affinity: state } as const);
    }
    const result = blocks.release(block.spec, stillHeld(block.spec, options.free ?? []));
    const remaining = blocks.allocatedCount(result.block);
    if (options.requireEmpty === true && remaining > 0) {
      // An address arrived first (or was there): the node keeps the block, and keeps advertising it.
      if (affinity?.spec.state === 'pendingDeletion')
        await store.ds.update({ ...affinity, spec: { ...affinity.spec, state: 'confirmed' } });
      throw new BlockInUseError(
        `block ${cidr} still has ${remaining} address(es) allocated; release them first (releaseByHandle / release)`,
      );
    }
    if (affinity && affinity.spec.state !== 'pendingDeletion') {
      await store.ds.update({ ...affinity, spec: { ...affinity.spec, state: 'pendingDeletion' } });
    }
    try {
      if (remaining === 0) {
        await store.ds.delete('IPAMBlock', name, { revision: block.metadata.resourceVersion ?? '' });
      } else {
        const unaffined = { ...result.block, affinity: null, sequenceNumber: (result.block.sequenceNumber ?? 0) + 1 };
        await store.ds.update(blockResource(unaffined, block.metadata.resourceVersion));
      }
    } catch (err) {
      if (err instanceof NotFoundError) return undefined; // deleted meanwhile: read again
      throw err;
    }
    const freed = result.freed.map((ordinal) => ({
      ip: blocks.addressOf(block.spec, ordinal),
      handle: blocks.handleAt(block.spec, ordinal) ?? null,
    }));
    return { outcome: remaining === 0 ? 'deleted' : 'unaffined', freed, byHandle: result.byHandle, remaining } as const;
  });
  if (step.outcome === 'no-block' || step.outcome === 'not-affine') return step;
  for (const [handle, n] of step.byHandle) await store.adjustHandle(handle, cidr, -n);
  await dropAffinity(store, node, cidr);
  return step.outcome === 'deleted'
    ? { outcome: 'deleted', cidr, freed: step.freed }
    : { outcome: 'unaffined', cidr, freed: step.freed, remaining: step.remaining };
}

/**
 * Deletes `node`'s affinity to `cidr` when there is no such block, or the block is not the node's (a
 * claim that stopped half-way, or lost). Null, touching nothing, when the block is the node's after all
 * (a claim finished meanwhile: that is not a stray any more).
 */
export async function releaseStrayAffinity(
  store: IpamStore,
  node: string,
  cidr: string,
): Promise<AffinityRelease | null> {
  const name = affinityName(node, cidr);
  return store.retrying(`delete BlockAffinity ${name}`, async () => {
    const [affinity, block] = await Promise.all([
      store.ds.get('BlockAffinity', name),
      store.ds.get('IPAMBlock', blockName(cidr)),
    ]);
    const owner = block ? blocks.affineNode(block.spec) : null;
    if (block && owner === node) return null;
    if (affinity) await store.deleteIfUnchanged(affinity);
    const state = affinity?.spec.state ?? null;
    return block
      ? ({ outcome: 'not-affine', cidr, affinity: state, owner } as const)
      : ({ outcome: 'no-block', cidr, affinity: state } as const);
  });
}

/**
 * Deletes `node`'s affinity to `cidr` after its block was deleted or unaffined — unless the block is
 * there and the node's again (a claim that started after ours finished won it fairly; a claim in
 * progress repairs its own affinity when it confirms, so deleting a pending one is safe).
 */
async function dropAffinity(store: IpamStore, node: string, cidr: string): Promise<void> {
  const name = affinityName(node, cidr);
  await store.retrying(`delete BlockAffinity ${name}`, async () => {
    const [affinity, block] = await Promise.all([
      store.ds.get('BlockAffinity', name),
      store.ds.get('IPAMBlock', blockName(cidr)),
    ]);
    if (!affinity) return true;
    if (block && blocks.affineNode(block.spec) === node && affinity.spec.state !== 'pendingDeletion') return true;
    await store.deleteIfUnchanged(affinity);
    return true;
  });
}
