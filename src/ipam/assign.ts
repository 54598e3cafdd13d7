// Handing out addresses from a node's blocks (claiming another block when they are full, borrowing from
// another node's block when the pools are exhausted, unless strictAffinity):
// - Addresses are taken by rewriting the block with its revision; a concurrent writer makes that a
//   ConflictError, and we re-read and try again (bounded, with a little jitter so losers spread out).
// - The block is the truth about who holds an address: its attributes carry the handle id and, as
//   Calico's do, who the address is for (./attributes.ts: `node` on every assignment, a pod's namespace,
//   name and time when the CNI plugin passes them) — a block affine to one node holds other nodes' pods
//   when they borrow, so only the `node` attribute says whose an address is. IPAMHandle objects are kept
//   as Calico keeps them (block → count) for tools, and updated after the block.

import { ConflictError, NotFoundError } from '../datastore/types.js';
import { assignmentAttributes } from './attributes.js';
import * as blocks from './block.js';
import { claimShared } from './claim.js';
import { familyOf } from './prefix.js';
import { blockInPool, blockResource, MAX_ATTEMPTS, type IpamStore } from './store.js';
import { IpamExhaustedError, type AssignOptions, type Block } from './types.js';

/** Addresses already held by `handleId`, in block then ordinal order. */
function heldBy(all: Block[], handleId: string): string[] {
  const out: string[] = [];
  for (const block of all)
    for (const ordinal of blocks.ordinalsOfHandle(block.spec, handleId))
      out.push(blocks.addressOf(block.spec, ordinal));
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
export async function assign(
  store: IpamStore,
  node: string,
  handleId: string,
  options: AssignOptions = {},
): Promise<string[]> {
  const use = options.use ?? 'Workload';
  const count = options.count ?? 1;
  if (!Number.isInteger(count) || count < 1) throw new Error(`assign count ${count} is not a positive integer`);
  const family = options.family ?? (options.pool === undefined ? 4 : undefined);
  let listed: Block[] | undefined = await store.allBlocks();
  // A dual-stack pod holds one address of each family under one handle: count only this family's.
  const held = heldBy(
    listed.filter((b) => family === undefined || familyOf(b.spec.cidr) === family),
    handleId,
  );
  if (held.length >= count) return held.slice(0, count);
  const got = [...held];
  const forNode = await store.poolsFor(node, options.pool, use, options.pools, family);
  if (forNode.length === 0) {
    throw new IpamExhaustedError(
      `no enabled IPPool${options.pool ? ` "${options.pool}"` : ''} selects node "${node}" for ${family === 6 ? 'IPv6 ' : ''}${use} addresses (check the pools' nodeSelector, disabled and allowedUses fields)`,
    );
  }
  const pools = await store.forNamespace(forNode, options.pool, options.namespace);
  if (pools.length === 0) {
    throw new IpamExhaustedError(
      `no enabled IPPool selects node "${node}" and namespace "${options.namespace ?? ''}" for ${use} addresses (pools ${forNode.map((p) => p.metadata.name).join(', ')}: check their namespaceSelector)`,
    );
  }
  const inPools = (b: Block): boolean => pools.some((p) => blockInPool(b.spec.cidr, p));
  const secondary = assignmentAttributes(node, handleId, options.attributes);

  let claims = 0;
  let borrowing = false;
  for (let round = 0; round < MAX_ATTEMPTS && got.length < count; round++) {
    const all: Block[] = listed ?? (await store.allBlocks());
    listed = undefined;
    const own = all.filter((b) => inPools(b) && blocks.affineNode(b.spec) === node && blocks.freeCount(b.spec) > 0);
    const others = borrowing
      ? all.filter((b) => inPools(b) && blocks.affineNode(b.spec) !== node && blocks.freeCount(b.spec) > 0)
      : [];
    const candidate = own[0] ?? others[0];
    if (!candidate) {
      if (!borrowing) {
        try {
          await claimShared(store, node, options.pool, use, family);
          claims++;
          continue;
        } catch (err) {
          if (!(err instanceof IpamExhaustedError)) throw err;
          if (store.strictAffinity)
            throw new IpamExhaustedError(
              `node "${node}": ${err.message}; strictAffinity forbids borrowing from other nodes' blocks`,
            );
          borrowing = true;
          listed = all; // the claim wrote no block: the same list serves the borrowing round (a stale one only fails its CAS)
          continue;
        }
      }
      throw new IpamExhaustedError(
        `node "${node}": no free address in pool(s) ${pools.map((p) => `${p.metadata.name} (${p.spec.cidr})`).join(', ')} (${got.length} of ${count} assigned)`,
      );
    }
    const taken = await takeFrom(store, candidate, count - got.length, handleId, secondary, got.length === 0);
    got.push(...taken);
    if (taken.length === 0) await store.sleep(Math.floor(store.random() * Math.min(50, 2 + round * 2)));
  }
  if (got.length < count)
    throw new Error(
      `node "${node}": assign for handle "${handleId}" did not finish after ${MAX_ATTEMPTS} rounds (${claims} blocks claimed)`,
    );
  return got;
}

/**
 * One compare-and-swap on one block, as read; [] when someone else wrote it first (the caller re-reads).
 * `handleIsNew`: the handle held nothing when the blocks were read, so its IPAMHandle is created without
 * a read first (an IPAMHandle left over from before makes that creation fail, and then it is read).
 */
async function takeFrom(
  store: IpamStore,
  block: Block,
  count: number,
  handleId: string,
  secondary: Record<string, string>,
  handleIsNew: boolean,
): Promise<string[]> {
  const { block: next, ordinals } = blocks.allocate(block.spec, count, handleId, secondary);
  if (ordinals.length === 0) return [];
  try {
    await store.ds.update(blockResource(next, block.metadata.resourceVersion));
  } catch (err) {
    if (err instanceof ConflictError || err instanceof NotFoundError) return [];
    throw err;
  }
  await store.adjustHandle(handleId, block.spec.cidr, ordinals.length, { createFirst: handleIsNew });
  return ordinals.map((o) => blocks.addressOf(block.spec, o));
}
