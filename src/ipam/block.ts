// One allocation block (Calico's model.AllocationBlock) as pure functions: a new empty block, taking
// addresses for a handle, giving them back, and reading who holds what. No I/O: claim.ts, assign.ts, release.ts each
// read a block, apply one of these, and write it back with compare-and-swap.
//
// The shape is Calico's (so etcd holds what calicoctl expects):
//   allocations[ordinal] = index into attributes, or null when the address is free;
//   unallocated          = the free ordinals, in the order they will be handed out;
//   attributes[i]        = { handle_id, secondary }, shared by every ordinal of the same handle.

import { addressAt, blockAddressCount, blocksOf, ordinalIn, parseNet } from './prefix.js';
import type { IPAMBlockSpec } from '../resources/types.js';

/** A new block with every address free, affine to `node` (or to no node when null). */
export function newBlock(cidr: string, node: string | null): IPAMBlockSpec {
  const size = blockAddressCount(parseNet(cidr, 'block CIDR', true));
  return {
    cidr,
    affinity: node === null ? null : `host:${node}`,
    allocations: Array.from({ length: size }, () => null),
    unallocated: Array.from({ length: size }, (_, i) => i),
    attributes: [],
    deleted: false,
    sequenceNumber: 0,
  };
}

/** "host:node-a" → "node-a"; anything else (no affinity, a virtual one) → null. */
export function affineNode(block: IPAMBlockSpec): string | null {
  return block.affinity?.startsWith('host:') ? block.affinity.slice(5) : null;
}

export function blockSize(block: IPAMBlockSpec): number {
  return block.allocations.length;
}

export function allocatedCount(block: IPAMBlockSpec): number {
  return block.allocations.filter((a) => a !== null).length;
}

export function freeCount(block: IPAMBlockSpec): number {
  return block.unallocated.length;
}

export function addressOf(block: IPAMBlockSpec, ordinal: number): string {
  return addressAt(parseNet(block.cidr, 'block CIDR'), ordinal);
}

/** The ordinal of `ip` in the block, or null when it lies outside. */
export function ordinalOf(block: IPAMBlockSpec, ip: string): number | null {
  return ordinalIn(parseNet(block.cidr, 'block CIDR'), ip);
}

/** The handle holding `ordinal`; undefined when the address is free (null: allocated with no handle). */
export function handleAt(block: IPAMBlockSpec, ordinal: number): string | null | undefined {
  const attr = block.allocations[ordinal];
  if (attr === null || attr === undefined) return undefined;
  return block.attributes[attr]?.handle_id ?? null;
}

/** Ordinals currently held by `handleId`, ascending. */
export function ordinalsOfHandle(block: IPAMBlockSpec, handleId: string): number[] {
  const out: number[] = [];
  block.allocations.forEach((attr, ordinal) => {
    if (attr !== null && block.attributes[attr]?.handle_id === handleId) out.push(ordinal);
  });
  return out;
}

/**
 * Takes up to `count` free addresses for `handleId`, in `unallocated` order. Returns the new block (the
 * input is not changed) and the ordinals taken (fewer than `count` when the block runs out).
 */
export function allocate(
  block: IPAMBlockSpec,
  count: number,
  handleId: string,
  secondary: Record<string, string> | null = null,
): { block: IPAMBlockSpec; ordinals: number[] } {
  const next = structuredClone(block);
  const ordinals = next.unallocated.splice(0, Math.max(0, count));
  if (ordinals.length === 0) return { block: next, ordinals };
  const same = next.attributes.findIndex(
    (a) => a.handle_id === handleId && JSON.stringify(a.secondary ?? null) === JSON.stringify(secondary),
  );
  const attrIndex = same >= 0 ? same : next.attributes.push({ handle_id: handleId, secondary }) - 1;
  for (const ordinal of ordinals) next.allocations[ordinal] = attrIndex;
  next.sequenceNumber = (next.sequenceNumber ?? 0) + 1;
  return { block: next, ordinals };
}

/**
 * Frees `ordinals` (those already free are ignored). Attributes no allocation points at any more are
 * dropped and the rest renumbered, as Calico does, so a block does not grow forever. Returns the new
 * block and, per handle, how many addresses were freed.
 */
export function release(
  block: IPAMBlockSpec,
  ordinals: readonly number[],
): { block: IPAMBlockSpec; freed: number[]; byHandle: Map<string, number> } {
  const next = structuredClone(block);
  const freed: number[] = [];
  const byHandle = new Map<string, number>();
  for (const ordinal of ordinals) {
    const attr = next.allocations[ordinal];
    if (attr === null || attr === undefined) continue;
    const handle = next.attributes[attr]?.handle_id;
    if (handle) byHandle.set(handle, (byHandle.get(handle) ?? 0) + 1);
    next.allocations[ordinal] = null;
    next.unallocated.push(ordinal);
    freed.push(ordinal);
  }
  if (freed.length === 0) return { block: next, freed, byHandle };
  // Renumber attributes still in use.
  const remap = new Map<number, number>();
  const kept: IPAMBlockSpec['attributes'] = [];
  next.allocations = next.allocations.map((attr) => {
    if (attr === null) return null;
    let to = remap.get(attr);
    if (to === undefined) {
      to = kept.push(next.attributes[attr] ?? { handle_id: null, secondary: null }) - 1;
      remap.set(attr, to);
    }
    return to;
  });
  next.attributes = kept;
  next.sequenceNumber = (next.sequenceNumber ?? 0) + 1;
  return { block: next, freed, byHandle };
}

/** Every aligned block of `blockSize` inside `poolCidr`, lowest first (a generator: a /8 has many, an IPv6 pool more). */
export function blocksOfPool(poolCidr: string, blockSizeBits: number): Generator<string> {
  return blocksOf(poolCidr, blockSizeBits);
}
