// What a settled IPAM state must look like, as one pure check over everything stored, for tests that end
// a race or a teardown and want to know nothing was lost, leaked or left half-done. (tortie has no
// `ipam check` command; this is the test-side equivalent of calicoctl's.)
//
// A state is consistent when:
// - every block is well-formed: `allocations` has one slot per address, `unallocated` lists exactly the
//   free ordinals once each, every allocation points at an attribute that names a handle;
// - a block affine to node N has a confirmed BlockAffinity N-<cidr>, and every BlockAffinity has its
//   block, affine to its node (a block without its affinity is used for pods but never advertised; an
//   affinity without its block is a leak);
// - each IPAMHandle counts exactly the addresses the blocks give it, and no handle object is empty or
//   missing (leaked handles / allocations).

import type { Datastore } from '../../../src/datastore/types.js';
import type { Kind, Resource } from '../../../src/resources/types.js';

export interface IpamState {
  blocks: Array<Resource<'IPAMBlock'>>;
  affinities: Array<Resource<'BlockAffinity'>>;
  handles: Array<Resource<'IPAMHandle'>>;
}

export async function readIpamState(ds: Datastore): Promise<IpamState> {
  const [blocks, affinities, handles] = await Promise.all([ds.list('IPAMBlock'), ds.list('BlockAffinity'), ds.list('IPAMHandle')]);
  return { blocks: blocks.items, affinities: affinities.items, handles: handles.items };
}

/** Every way `state` is inconsistent, one sentence each; [] when it is consistent. */
export function ipamProblems(state: IpamState): string[] {
  const problems: string[] = [];
  const counted = new Map<string, Map<string, number>>();
  for (const block of state.blocks) {
    const { cidr, allocations, unallocated, attributes } = block.spec;
    const size = 2 ** (32 - Number(cidr.split('/')[1]));
    if (allocations.length !== size) problems.push(`block ${cidr}: ${allocations.length} allocation slots, expected ${size}`);
    const free = allocations.flatMap((a, i) => (a === null ? [i] : []));
    if (JSON.stringify([...unallocated].sort((a, b) => a - b)) !== JSON.stringify(free)) {
      problems.push(`block ${cidr}: unallocated [${unallocated.join(',')}] does not list exactly the free ordinals [${free.join(',')}]`);
    }
    allocations.forEach((attr, ordinal) => {
      if (attr === null) return;
      const handle = attributes[attr]?.handle_id;
      if (!handle) {
        problems.push(`block ${cidr}: ordinal ${ordinal} points at attribute ${attr}, which names no handle`);
        return;
      }
      const perBlock = counted.get(handle) ?? new Map<string, number>();
      perBlock.set(cidr, (perBlock.get(cidr) ?? 0) + 1);
      counted.set(handle, perBlock);
    });
    const node = block.spec.affinity?.startsWith('host:') ? block.spec.affinity.slice(5) : null;
    if (node !== null) {
      const affinity = state.affinities.find((a) => a.spec.node === node && a.spec.cidr === cidr);
      if (!affinity) problems.push(`block ${cidr} is affine to ${node} but has no BlockAffinity (never advertised)`);
      else if (affinity.spec.state !== 'confirmed') problems.push(`block ${cidr} is affine to ${node} but its BlockAffinity is ${affinity.spec.state} (not advertised)`);
    }
  }
  for (const affinity of state.affinities) {
    const block = state.blocks.find((b) => b.spec.cidr === affinity.spec.cidr);
    if (!block) problems.push(`BlockAffinity ${affinity.metadata.name} (${affinity.spec.state}) has no block ${affinity.spec.cidr}`);
    else if (block.spec.affinity !== `host:${affinity.spec.node}`) {
      problems.push(`BlockAffinity ${affinity.metadata.name} (${affinity.spec.state}) names ${affinity.spec.node}, but block ${affinity.spec.cidr} is affine to ${block.spec.affinity ?? 'no node'}`);
    }
  }
  const stored = new Map(state.handles.map((h) => [h.metadata.name, h]));
  for (const [handle, perBlock] of counted) {
    const record = stored.get(handle) ?? state.handles.find((h) => h.spec.handleID === handle);
    if (!record) {
      problems.push(`handle ${handle} holds ${[...perBlock.values()].reduce((a, b) => a + b, 0)} address(es) but has no IPAMHandle`);
      continue;
    }
    const want = Object.fromEntries([...perBlock].sort());
    const have = Object.fromEntries(Object.entries(record.spec.block).sort());
    if (JSON.stringify(want) !== JSON.stringify(have)) problems.push(`IPAMHandle ${handle} counts ${JSON.stringify(have)}, the blocks hold ${JSON.stringify(want)}`);
  }
  for (const record of state.handles) {
    if (!counted.has(record.spec.handleID) && !counted.has(record.metadata.name)) {
      problems.push(`IPAMHandle ${record.metadata.name} is leaked: no block holds an address for it (counts ${JSON.stringify(record.spec.block)})`);
    }
  }
  return problems;
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
