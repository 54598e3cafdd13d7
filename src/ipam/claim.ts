// Claiming a block for a node: many nodes run this at once against one datastore, with no lock. Every
// write is a compare-and-swap and the datastore decides who won:
// - A block exists at most once (create fails with AlreadyExists for the loser), and its `affinity`
//   field is the truth about who owns it. Claiming goes: affinity written `pending` → block created →
//   affinity `confirmed`. A crash after the first step leaves a pending affinity and no block (nothing
//   owned); after the second, a block owned by the node with a pending affinity. claimBlock finishes or
//   removes pending affinities of its node before claiming anything new.
//
// Claims in flight on one node in one process are shared (claimShared): concurrent assigns wait for the
// one claim rather than each claiming a block.

import { AlreadyExistsError, ConflictError, NotFoundError } from '../datastore/types.js';
import { affinityName, blockName } from '../resources/ipam-names.js';
import { API_VERSION } from '../resources/types.js';
import * as blocks from './block.js';
import { netsOverlap, parseNet, type Family } from './prefix.js';
import { blockResource, poolBlockSize, type IpamStore } from './store.js';
import { IpamExhaustedError, type IpUse } from './types.js';

/**
 * Finishes or removes this node's pending affinities (left by a claim that stopped half-way): confirmed
 * when the block exists and is ours, deleted when it does not exist or belongs to another node. The
 * agent calls it at startup (a block whose affinity stayed pending is used but never advertised);
 * claimBlock calls it too.
 */
export async function settlePending(store: IpamStore, node: string): Promise<void> {
  const affinities = (await store.ds.list('BlockAffinity')).items.filter(
    (a) => a.spec.node === node && a.spec.state === 'pending',
  );
  for (const affinity of affinities) {
    const block = await store.ds.get('IPAMBlock', blockName(affinity.spec.cidr));
    try {
      if (block && blocks.affineNode(block.spec) === node) {
        await store.ds.update({ ...affinity, spec: { ...affinity.spec, state: 'confirmed' } });
      } else {
        await store.ds.delete('BlockAffinity', affinity.metadata.name, {
          revision: affinity.metadata.resourceVersion ?? '',
        });
      }
    } catch (err) {
      if (!(err instanceof ConflictError) && !(err instanceof NotFoundError)) throw err;
    }
  }
}

/**
 * Claims the first free block of the first enabled pool whose nodeSelector matches `node`, and returns
 * its CIDR. Rejects with IpamExhaustedError when every candidate block is taken.
 */
export async function claimBlock(
  store: IpamStore,
  node: string,
  options: { pool?: string; use?: IpUse; family?: Family } = {},
): Promise<string> {
  await settlePending(store, node);
  const use = options.use ?? 'Workload';
  const pools = await store.poolsFor(node, options.pool, use, undefined, options.family);
  if (pools.length === 0) {
    throw new IpamExhaustedError(
      `no enabled IPPool${options.pool ? ` "${options.pool}"` : ''} selects node "${node}" for ${use} addresses (check the pools' nodeSelector, disabled and allowedUses fields)`,
    );
  }
  const existing = await store.allBlocks();
  const taken = new Set(existing.map((b) => b.spec.cidr));
  // A block of another size (the pool was re-created with another blockSize) still owns its addresses:
  // a candidate that overlaps any existing block is taken, or two nodes would hand out the same IPs.
  const owned = existing.map((b) => parseNet(b.spec.cidr, 'block CIDR'));
  const overlapsExisting = (cidr: string): boolean => {
    const candidate = parseNet(cidr, 'block CIDR');
    return owned.some((o) => netsOverlap(o, candidate));
  };
  for (const pool of pools) {
    for (const cidr of blocks.blocksOfPool(pool.spec.cidr, poolBlockSize(pool))) {
      if (taken.has(cidr) || overlapsExisting(cidr)) continue;
      if (await tryClaim(store, node, cidr)) return cidr;
      taken.add(cidr);
    }
  }
  throw new IpamExhaustedError(
    `node "${node}": no free block left in pool(s) ${pools.map((p) => `${p.metadata.name} (${p.spec.cidr})`).join(', ')}`,
  );
}

/** claimBlock, but concurrent callers for the same node and pool wait for the one claim in flight. */
export function claimShared(
  store: IpamStore,
  node: string,
  pool: string | undefined,
  use: IpUse,
  family?: Family,
): Promise<string> {
  const key = `${node}\u0000${pool ?? ''}\u0000${use}\u0000${family ?? ''}`;
  const running = store.claiming.get(key);
  if (running) return running;
  const claim = claimBlock(store, node, {
    ...(pool !== undefined ? { pool } : {}),
    use,
    ...(family !== undefined ? { family } : {}),
  }).finally(() => store.claiming.delete(key));
  store.claiming.set(key, claim);
  return claim;
}

/**
 * One claim attempt of one block: pending affinity → block → confirmed. False when another node has it,
 * or when the node's affinity for it is `pendingDeletion` (someone is giving the block up: claiming it
 * now would race that release; the caller tries the next block). The confirmation re-reads both the
 * affinity and the block, so an affinity deleted or a block lost meanwhile is noticed, not overwritten.
 */
async function tryClaim(store: IpamStore, node: string, cidr: string): Promise<boolean> {
  const name = affinityName(node, cidr);
  try {
    await store.ds.create({
      apiVersion: API_VERSION,
      kind: 'BlockAffinity',
      metadata: { name },
      spec: { state: 'pending', node, cidr },
    });
  } catch (err) {
    if (!(err instanceof AlreadyExistsError)) throw err;
    const existing = await store.ds.get('BlockAffinity', name);
    if (!existing || existing.spec.state === 'pendingDeletion') return false;
  }
  try {
    await store.ds.create(blockResource(blocks.newBlock(cidr, node)));
  } catch (err) {
    if (!(err instanceof AlreadyExistsError)) throw err;
    // Someone else created it: whose it is, is decided below.
  }
  return store.retrying(`confirm affinity ${name}`, async () => {
    const [current, block] = await Promise.all([
      store.ds.get('BlockAffinity', name),
      store.ds.get('IPAMBlock', blockName(cidr)),
    ]);
    if (!block || blocks.affineNode(block.spec) !== node) {
      // Another node won the block (or it is gone): our affinity must go (never leave it to look like ours).
      // A pendingDeletion one belongs to whoever is releasing; they delete it.
      if (current && current.spec.state !== 'pendingDeletion') await store.deleteIfUnchanged(current);
      return false;
    }
    if (current?.spec.state === 'pendingDeletion') return false;
    if (!current) {
      await store.ds.create({
        apiVersion: API_VERSION,
        kind: 'BlockAffinity',
        metadata: { name },
        spec: { state: 'confirmed', node, cidr },
      });
    } else if (current.spec.state !== 'confirmed') {
      try {
        await store.ds.update({ ...current, spec: { ...current.spec, state: 'confirmed' } });
      } catch (err) {
        // Deleted between our read and our write (a release or another claim cleaned it up): read again.
        if (err instanceof NotFoundError) return undefined;
        throw err;
      }
    }
    return true;
  });
}
