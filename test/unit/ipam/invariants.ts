// What a settled IPAM state must look like, for tests that end a race or a teardown and want to know
// nothing was lost, leaked or left half-done: the `structure` part of `tortie ipam check`
// (src/ipam/check.ts, structureFindings), so the tests and the command share one checker.
//
// A state is consistent when:
// - every block is well-formed: `allocations` has one slot per address, `unallocated` lists exactly the
//   free ordinals once each, every allocation points at an attribute that names a handle;
// - a block affine to node N has a confirmed BlockAffinity N-<cidr>, and every BlockAffinity has its
//   block, affine to its node (a block without its affinity is used for pods but never advertised; an
//   affinity without its block is a leak);
// - each IPAMHandle counts exactly the addresses the blocks give it, and no handle object is empty or
//   missing (leaked handles / allocations).
// (Addresses against workloads and nodes — the command's `cluster` findings — are not checked here: these
// tests assign addresses without creating endpoints.)

import type { Datastore } from '../../../src/datastore/types.js';
import type { Kind } from '../../../src/resources/types.js';
import { findingSentence } from '../../../src/ipam/check-findings.js';
import { readIpamObjects, structureFindings, type IpamObjects } from '../../../src/ipam/check-structure.js';

export type IpamState = IpamObjects;

export async function readIpamState(ds: Datastore): Promise<IpamState> {
  return readIpamObjects(ds);
}

/** Every way `state` is inconsistent, one sentence each; [] when it is consistent. */
export function ipamProblems(state: IpamState): string[] {
  return structureFindings(state).map(findingSentence);
}

/** Every allocated address → its handle (for "nothing lost / nothing held twice" checks). */
export function allocatedAddresses(state: IpamState): Map<string, string> {
  const out = new Map<string, string>();
  for (const block of state.blocks) {
    const base = block.spec.cidr.split('/')[0] ?? '';
    const start = base.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
    block.spec.allocations.forEach((attr, ordinal) => {
      if (attr === null) return;
      const n = start + ordinal;
      const ip = [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
      out.set(ip, block.spec.attributes[attr]?.handle_id ?? '');
    });
  }
  return out;
}

export type Write = 'create' | 'update' | 'delete';

/** `ds` as seen by a process killed at the first write matching `at`: that write and every later one fail. */
export function killedAt(ds: Datastore, at: (op: Write, kind: Kind) => boolean): Datastore {
  let dead = false;
  const guard = (op: Write, kind: Kind): void => {
    if (!dead && at(op, kind)) dead = true;
    if (dead) throw new Error(`killed before ${op} ${kind}`);
  };
  return {
    type: ds.type,
    get: (kind, name, namespace) => ds.get(kind, name, namespace),
    list: (kind, options) => ds.list(kind, options),
    create: async (r) => (guard('create', r.kind), ds.create(r)),
    update: async (r) => (guard('update', r.kind), ds.update(r)),
    delete: async (kind, name, options) => (guard('delete', kind), ds.delete(kind, name, options)),
    watch: (kind, from, onEvent) => ds.watch(kind, from, onEvent),
    close: () => ds.close(),
  };
}
