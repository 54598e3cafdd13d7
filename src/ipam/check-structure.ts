// The structure half of the IPAM check: IPAM's own objects (IPAMBlocks, BlockAffinities, IPAMHandles)
// against each other, as ./check.ts's header lists them. The tests' invariant (test/unit/ipam/invariants.ts,
// ipamProblems) is this function, so there is one checker.

import type { Datastore } from '../datastore/types.js';
import type { IPAMBlockSpec, Resource } from '../resources/types.js';
import { affineNode } from './block.js';
import { affinityName, tunnelHandleNode } from '../resources/ipam-names.js';
import { plural, tryPrefix, type Finding } from './check-findings.js';

type Block = Resource<'IPAMBlock'>;
type Affinity = Resource<'BlockAffinity'>;
type Handle = Resource<'IPAMHandle'>;

/** IPAM's own objects: what the structure checks read (and what the tests' readIpamState gives). */
export interface IpamObjects {
  blocks: Block[];
  affinities: Affinity[];
  handles: Handle[];
}

export async function readIpamObjects(ds: Datastore): Promise<IpamObjects> {
  const [blocks, affinities, handles] = await Promise.all([
    ds.list('IPAMBlock'),
    ds.list('BlockAffinity'),
    ds.list('IPAMHandle'),
  ]);
  return { blocks: blocks.items, affinities: affinities.items, handles: handles.items };
}

/** Why a block is not well-formed (Calico's validateBlock facts), one sentence each. */
function blockDefects(spec: IPAMBlockSpec): string[] {
  const out: string[] = [];
  const prefix = tryPrefix(spec.cidr);
  if (prefix === null) return [`cidr "${spec.cidr}" is not an IPv4 prefix like 10.244.1.0/26`];
  const size = 2 ** (32 - prefix.len);
  if (spec.allocations.length !== size) out.push(`${spec.allocations.length} allocation slots, expected ${size}`);
  const used = new Set<number>();
  spec.allocations.forEach((attr, ordinal) => {
    if (attr === null) return;
    used.add(attr);
    const attribute = spec.attributes[attr];
    if (attribute === undefined)
      out.push(
        `ordinal ${ordinal} points at attribute ${attr}, which does not exist (${spec.attributes.length} attributes)`,
      );
    else if (!attribute.handle_id) out.push(`ordinal ${ordinal} points at attribute ${attr}, which names no handle`);
  });
  spec.attributes.forEach((_, i) => {
    if (!used.has(i)) out.push(`attribute ${i} is not pointed at by any allocation`);
  });
  const seen = new Set<number>();
  for (const ordinal of spec.unallocated) {
    if (!Number.isInteger(ordinal) || ordinal < 0 || ordinal >= size)
      out.push(`ordinal ${ordinal} in unallocated is outside the block (0..${size - 1})`);
    else if (seen.has(ordinal)) out.push(`ordinal ${ordinal} appears more than once in unallocated`);
    else if (spec.allocations[ordinal] !== null && spec.allocations[ordinal] !== undefined)
      out.push(`ordinal ${ordinal} is allocated but listed in unallocated`);
    seen.add(ordinal);
  }
  const free = spec.allocations.flatMap((a, i) => (a === null && !seen.has(i) ? [i] : []));
  if (free.length > 0) out.push(`free ordinal(s) ${free.join(',')} missing from unallocated (never handed out again)`);
  return out;
}

/** The structure findings: IPAM's own objects against each other (what the tests' ipamProblems checks). */
export function structureFindings(state: IpamObjects, existingNodes?: ReadonlySet<string>): Finding[] {
  const findings: Finding[] = [];
  const gone = (node: string): boolean => existingNodes !== undefined && !existingNodes.has(node);
  const deleteNode = (node: string): string =>
    `node ${node} no longer exists: \`tortie delete node ${node}\` releases what it left`;
  const counted = new Map<string, Map<string, number>>();
  for (const block of state.blocks) {
    if (block.spec.deleted === true) continue;
    const { cidr } = block.spec;
    const object = `IPAMBlock ${cidr}`;
    for (const defect of blockDefects(block.spec)) {
      findings.push({
        kind: 'invalid-block',
        object,
        detail: defect,
        action:
          'the block was written by hand or by a broken writer; IPAM may hand out its addresses twice or never: fix or re-create it while no node assigns from it',
      });
    }
    block.spec.allocations.forEach((attr) => {
      const handle = attr === null ? undefined : block.spec.attributes[attr]?.handle_id;
      if (!handle) return;
      const perBlock = counted.get(handle) ?? new Map<string, number>();
      perBlock.set(cidr, (perBlock.get(cidr) ?? 0) + 1);
      counted.set(handle, perBlock);
    });
    const node = affineNode(block.spec);
    if (node === null) continue;
    const affinity = state.affinities.find((a) => a.spec.node === node && a.spec.cidr === cidr);
    if (!affinity) {
      findings.push({
        kind: 'affinity-missing',
        object,
        detail: `affine to ${node} but there is no BlockAffinity ${affinityName(node, cidr)}: the block is used but never advertised`,
        action: gone(node)
          ? deleteNode(node)
          : `a claim or release of ${node} stopped half-way; \`tortie delete node ${node}\` gives the block up when the node is retired, else restart its agent and run again`,
      });
    } else if (affinity.spec.state !== 'confirmed') {
      const pending = affinity.spec.state === 'pending';
      findings.push({
        kind: 'affinity-not-confirmed',
        object,
        detail: `affine to ${node} but its BlockAffinity ${affinity.metadata.name} is ${affinity.spec.state}: not advertised`,
        action: gone(node)
          ? deleteNode(node)
          : pending
            ? `a claim by ${node} is running or stopped half-way: run again; ${node}'s agent settles it at startup (restart it if it stays)`
            : `a release of the block stopped half-way: ${node}'s agent settles it at startup (restart it), or run the interrupted \`tortie delete\` again`,
      });
    }
  }
  for (const affinity of state.affinities) {
    if (affinity.spec.deleted === true) continue;
    const { node, cidr, state: st } = affinity.spec;
    const object = `BlockAffinity ${affinity.metadata.name}`;
    const block = state.blocks.find((b) => b.spec.cidr === cidr && b.spec.deleted !== true);
    if (!block) {
      findings.push({
        kind: 'affinity-without-block',
        object,
        detail: `(${st}) names node ${node} and block ${cidr}, which does not exist`,
        action: gone(node)
          ? deleteNode(node)
          : st === 'pending'
            ? `a claim by ${node} is running or stopped before creating the block: run again; ${node}'s agent removes it at startup`
            : `a release stopped after deleting the block: ${node}'s agent removes it at startup (restart it), \`tortie delete node ${node}\` when the node is retired`,
      });
    } else if (block.spec.affinity !== `host:${node}`) {
      const owner = affineNode(block.spec);
      findings.push({
        kind: 'affinity-mismatch',
        object,
        detail: `(${st}) names node ${node}, but block ${cidr} is affine to ${owner ?? 'no node'}`,
        action: gone(node)
          ? deleteNode(node)
          : `a release by ${node} stopped half-way: ${node}'s agent removes it at startup (restart it); the block belongs to ${owner ?? 'no node'}`,
      });
    }
  }
  const stored = new Map<string, Handle>();
  for (const h of state.handles) {
    stored.set(h.spec.handleID, h);
    if (!stored.has(h.metadata.name)) stored.set(h.metadata.name, h);
  }
  for (const [handle, perBlock] of counted) {
    const record = stored.get(handle);
    const total = [...perBlock.values()].reduce((a, b) => a + b, 0);
    if (!record) {
      findings.push({
        kind: 'handle-missing',
        object: `handle ${handle}`,
        handle,
        detail: `holds ${plural(total, 'address', 'addresses')} (${[...perBlock.keys()].join(', ')}) but there is no IPAMHandle`,
        action:
          'a write stopped between the block and the handle; the blocks decide what is free, so nothing is handed out twice: releasing the handle frees its addresses',
      });
      continue;
    }
    const want = Object.fromEntries([...perBlock].sort());
    const have = Object.fromEntries(Object.entries(record.spec.block).sort());
    if (JSON.stringify(want) !== JSON.stringify(have)) {
      findings.push({
        kind: 'handle-count',
        object: `IPAMHandle ${record.metadata.name}`,
        handle,
        detail: `counts ${JSON.stringify(have)}, the blocks hold ${JSON.stringify(want)}`,
        action:
          'a write stopped between the block and the handle; the blocks decide what is free, so releasing the handle still frees what they hold',
      });
    }
  }
  for (const record of state.handles) {
    if (record.spec.deleted === true || counted.has(record.spec.handleID) || counted.has(record.metadata.name))
      continue;
    const tunnelOf = tunnelHandleNode(record.spec.handleID);
    findings.push({
      kind: 'handle-leaked',
      object: `IPAMHandle ${record.metadata.name}`,
      handle: record.spec.handleID,
      detail: `no block holds an address for it (it counts ${JSON.stringify(record.spec.block)})`,
      action:
        tunnelOf !== null && gone(tunnelOf)
          ? deleteNode(tunnelOf)
          : 'left by a release that stopped before deleting it; harmless for assignment (the blocks decide what is free), and the next release or assignment with this handle rewrites it',
    });
  }
  return findings;
}
