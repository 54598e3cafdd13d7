// Ipam.settlePendingDeletion on the in-memory datastore: what a node's agent does at startup with its own
// BlockAffinities left `pendingDeletion` by a release that was killed half-way. The half-done states are
// made by the real release code killed at each of its writes (a datastore that fails that write and every
// later one, as a dead process would), not written by hand; a release still running (not killed) is
// raced through a gate. After each: nothing lost, the state consistent (ipamProblems), and the node
// advertises exactly the blocks it should (affineBlocks). On real etcd: test/integration/ipam-integrity.test.ts.

import { describe, expect, it } from 'vitest';
import { affineBlocks } from '../../../src/agent/advertise.js';
import { MemoryDatastore } from '../../../src/datastore/memory.js';
import type { Datastore } from '../../../src/datastore/types.js';
import { allocate } from '../../../src/ipam/block.js';
import { Ipam } from '../../../src/ipam/index.js';
import { API_VERSION, type Kind } from '../../../src/resources/types.js';
import { allocatedAddresses, ipamProblems, killedAt, readIpamState, type Write } from './invariants.js';

/** `ds` with the first write matching `at` held until release(); `reached` resolves when it arrives. */
function gated(
  ds: Datastore,
  at: (op: Write, kind: Kind) => boolean,
): { ds: Datastore; reached: Promise<void>; release(): void } {
  let arrive!: () => void;
  let go!: () => void;
  const reached = new Promise<void>((resolve) => (arrive = resolve));
  const gate = new Promise<void>((resolve) => (go = resolve));
  let used = false;
  const hold = async (op: Write, kind: Kind): Promise<void> => {
    if (used || !at(op, kind)) return;
    used = true;
    arrive();
    await gate;
  };
  return {
    ds: {
      type: ds.type,
      get: (kind, name, namespace) => ds.get(kind, name, namespace),
      list: (kind, options) => ds.list(kind, options),
      create: async (r) => (await hold('create', r.kind), ds.create(r)),
      update: async (r) => (await hold('update', r.kind), ds.update(r)),
      delete: async (kind, name, options) => (await hold('delete', kind), ds.delete(kind, name, options)),
      watch: (kind, from, onEvent) => ds.watch(kind, from, onEvent),
      close: () => ds.close(),
    },
    reached,
    release: () => go(),
  };
}

const blockWrite = (op: Write, kind: Kind): boolean => kind === 'IPAMBlock' && op !== 'create';

async function advertised(ds: Datastore, node: string): Promise<string[]> {
  const state = await readIpamState(ds);
  return affineBlocks({ nodeName: node, blocks: state.blocks, affinities: state.affinities }).map(
    (p) => `${[24, 16, 8, 0].map((s) => (p.addr >>> s) & 255).join('.')}/${p.len}`,
  );
}

async function affinityStates(ds: Datastore): Promise<string[]> {
  return (await ds.list('BlockAffinity')).items.map((a) => `${a.spec.node} ${a.spec.cidr} ${a.spec.state}`).sort();
}

/** A pool of four /26s; node-a owns 10.244.0.0/26 holding its tunnel address and one pod, and an empty 10.244.0.64/26. */
async function twoBlocks(): Promise<MemoryDatastore> {
  const ds = new MemoryDatastore();
  await ds.create({
    apiVersion: API_VERSION,
    kind: 'IPPool',
    metadata: { name: 'p' },
    spec: { cidr: '10.244.0.0/24', blockSize: 26, nodeSelector: 'all()' },
  });
  const ipam = new Ipam(ds);
  await ipam.assign('node-a', 'ipip-tunnel-addr-node-a', { use: 'Tunnel' });
  await ipam.assign('node-a', 'k8s-pod-network.web');
  expect(await ipam.claimBlock('node-a')).toBe('10.244.0.64/26');
  return ds;
}

describe('Ipam.settlePendingDeletion: releases killed half-way', () => {
  it('killed after marking pendingDeletion: a block with addresses is confirmed back, an empty one is released', async () => {
    const ds = await twoBlocks();
    // Both releases die at their block write: the affinity stays pendingDeletion, the block still node-a's.
    for (const cidr of ['10.244.0.0/26', '10.244.0.64/26']) {
      await expect(new Ipam(killedAt(ds, blockWrite)).releaseAffinity('node-a', cidr)).rejects.toThrow(/killed before/);
    }
    expect(await affinityStates(ds)).toEqual([
      'node-a 10.244.0.0/26 pendingDeletion',
      'node-a 10.244.0.64/26 pendingDeletion',
    ]);
    expect(await advertised(ds, 'node-a')).toEqual([]); // what the crash costs: the pod's block is not advertised
    const held = allocatedAddresses(await readIpamState(ds));
    const sequence = (await ds.get('IPAMBlock', '10-244-0-0-26'))?.spec.sequenceNumber ?? 0;

    const settled = await new Ipam(ds).settlePendingDeletion('node-a');

    expect(settled).toEqual([
      { outcome: 'confirmed', cidr: '10.244.0.0/26', allocated: 2 },
      { outcome: 'released', cidr: '10.244.0.64/26' },
    ]);
    expect(await affinityStates(ds)).toEqual(['node-a 10.244.0.0/26 confirmed']);
    expect(await advertised(ds, 'node-a')).toEqual(['10.244.0.0/26']);
    expect(allocatedAddresses(await readIpamState(ds))).toEqual(held);
    // The block was rewritten before the affinity was confirmed (a running release's read is now stale).
    expect((await ds.get('IPAMBlock', '10-244-0-0-26'))?.spec.sequenceNumber).toBe(sequence + 1);
    expect(ipamProblems(await readIpamState(ds))).toEqual([]);
    // Nothing left to settle.
    expect(await new Ipam(ds).settlePendingDeletion('node-a')).toEqual([]);
  });

  it('killed after the block was deleted or unaffined: only the affinity is left, and it is deleted', async () => {
    const ds = await twoBlocks();
    const affinityDelete = (op: Write, kind: Kind): boolean => op === 'delete' && kind === 'BlockAffinity';
    // The full block is unaffined (kept for its addresses), the empty one deleted; both die before the affinity delete.
    for (const cidr of ['10.244.0.0/26', '10.244.0.64/26']) {
      await expect(new Ipam(killedAt(ds, affinityDelete)).releaseAffinity('node-a', cidr)).rejects.toThrow(
        /killed before delete BlockAffinity/,
      );
    }
    expect(await affinityStates(ds)).toEqual([
      'node-a 10.244.0.0/26 pendingDeletion',
      'node-a 10.244.0.64/26 pendingDeletion',
    ]);
    const held = allocatedAddresses(await readIpamState(ds));

    expect(await new Ipam(ds).settlePendingDeletion('node-a')).toEqual([
      { outcome: 'affinity-deleted', cidr: '10.244.0.0/26', owner: null },
      { outcome: 'affinity-deleted', cidr: '10.244.0.64/26', owner: null },
    ]);
    expect(await affinityStates(ds)).toEqual([]);
    // The release got past the block: it is not taken back (the addresses stay, in a block without affinity).
    expect((await ds.list('IPAMBlock')).items.map((b) => `${b.spec.cidr} ${b.spec.affinity}`)).toEqual([
      '10.244.0.0/26 null',
    ]);
    expect(allocatedAddresses(await readIpamState(ds))).toEqual(held);
    expect(ipamProblems(await readIpamState(ds))).toEqual([]);
  });

  it('touches only the node\u2019s own pendingDeletion affinities; a block another node owns now keeps its owner', async () => {
    const ds = await twoBlocks();
    const ipam = new Ipam(ds);
    const other = await ipam.claimBlock('node-b');
    await expect(new Ipam(killedAt(ds, blockWrite)).releaseAffinity('node-b', other)).rejects.toThrow(/killed before/);
    // node-a's stale pendingDeletion affinity to node-b's block (a release of node-a's that died after node-b won it).
    await ds.create({
      apiVersion: API_VERSION,
      kind: 'BlockAffinity',
      metadata: { name: `node-a-${other.replace(/[./]/g, '-')}` },
      spec: { state: 'pendingDeletion', node: 'node-a', cidr: other },
    });
    const before = await affinityStates(ds);

    expect(await ipam.settlePendingDeletion('node-a')).toEqual([
      { outcome: 'affinity-deleted', cidr: other, owner: 'node-b' },
    ]);
    expect(await affinityStates(ds)).toEqual(before.filter((a) => !a.startsWith(`node-a ${other} `)));
    expect(await affinityStates(ds)).toContain(`node-b ${other} pendingDeletion`);
    expect((await ds.get('IPAMBlock', other.replace(/[./]/g, '-')))?.spec.affinity).toBe('host:node-b');
  });
});

describe('Ipam.settlePendingDeletion racing a release that is still running', () => {
  it('the running release reads before the settle confirms back: its compare-and-swap fails, it reads again and wins', async () => {
    const ds = await twoBlocks();
    const held = allocatedAddresses(await readIpamState(ds));
    // A release (delete node, delete ippool) marks pendingDeletion, then is held before its block write.
    const gate = gated(ds, blockWrite);
    const releasing = new Ipam(gate.ds).releaseAffinity('node-a', '10.244.0.0/26');
    await gate.reached;
    expect(await new Ipam(ds).settlePendingDeletion('node-a')).toEqual([
      { outcome: 'confirmed', cidr: '10.244.0.0/26', allocated: 2 },
    ]);
    gate.release();
    const outcome = await releasing;
    // The release is someone's explicit decision: it still happens, nothing half-done remains.
    expect(outcome).toMatchObject({ outcome: 'unaffined', cidr: '10.244.0.0/26', remaining: 2 });
    expect(await affinityStates(ds)).toEqual(['node-a 10.244.0.64/26 confirmed']);
    expect(allocatedAddresses(await readIpamState(ds))).toEqual(held);
    expect(ipamProblems(await readIpamState(ds))).toEqual([]);
  });

  it('an empty block that gets an address while its release is being finished is confirmed back, not deleted', async () => {
    const ds = await twoBlocks();
    await expect(new Ipam(killedAt(ds, blockWrite)).releaseAffinity('node-a', '10.244.0.64/26')).rejects.toThrow(
      /killed before/,
    );
    // The settle decides "empty: finish the release" and is held just before it deletes the block.
    const gate = gated(ds, (op, kind) => op === 'delete' && kind === 'IPAMBlock');
    const settling = new Ipam(gate.ds).settlePendingDeletion('node-a');
    await gate.reached;
    // Meanwhile an address is taken in that block (the write an assign makes: one compare-and-swap on it).
    const current = (await ds.get('IPAMBlock', '10-244-0-64-26'))!;
    await ds.update({ ...current, spec: allocate(current.spec, 1, 'k8s-pod-network.late').block });
    await ds.create({
      apiVersion: API_VERSION,
      kind: 'IPAMHandle',
      metadata: { name: 'k8s-pod-network.late' },
      spec: { handleID: 'k8s-pod-network.late', block: { '10.244.0.64/26': 1 } },
    });
    gate.release();
    expect(await settling).toEqual([{ outcome: 'confirmed', cidr: '10.244.0.64/26', allocated: 1 }]);
    expect(allocatedAddresses(await readIpamState(ds)).get('10.244.0.64')).toBe('k8s-pod-network.late');
    expect(await advertised(ds, 'node-a')).toEqual(['10.244.0.0/26', '10.244.0.64/26']);
    expect(ipamProblems(await readIpamState(ds))).toEqual([]);
  });
});
