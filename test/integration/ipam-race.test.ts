// Race-free block IPAM against a real etcd: many nodes (each its own Ipam and etcd client, like separate
// processes) claim blocks and assign addresses at the same time. Nothing may be handed out twice, and no
// update may be lost: the blocks' allocation counts must equal the addresses handed out. Each test starts
// from the pool alone (no IPAM state) and sets up what it needs, so it runs alone or in any order; each
// asserts what must hold whoever wins a race (every address once, every block claimed once, the whole
// stored state consistent: ipamProblems), never which racer won.

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openEtcd } from '../../src/datastore/etcd.js';
import type { Datastore } from '../../src/datastore/types.js';
import { Ipam } from '../../src/ipam/index.js';
import { API_VERSION } from '../../src/resources/types.js';
import { requireEtcd, startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { ipamProblems, readIpamState } from '../unit/ipam/invariants.js';

const NODES = 20;

describe.skipIf(!requireEtcd())('IPAM races on real etcd', () => {
  let etcd: EtcdInstance;
  const clients: Datastore[] = [];

  beforeAll(async () => {
    etcd = await startEtcd();
    // A generous per-call deadline: this test is about correctness under contention, and on a loaded
    // machine 200 concurrent transactions can queue for more than the default 5 s.
    for (let i = 0; i < NODES; i++) clients.push(await openEtcd({ endpoints: [etcd.endpoint], timeoutMs: 30_000 }));
    await clients[0]?.create({
      apiVersion: API_VERSION,
      kind: 'IPPool',
      metadata: { name: 'pool' },
      spec: { cidr: '10.244.0.0/16', blockSize: 26, nodeSelector: 'all()' },
    });
  });
  afterAll(async () => {
    for (const ds of clients) await ds.close();
    await etcd?.stop();
  });

  beforeEach(async () => {
    const ds = clients[0] as Datastore;
    for (const kind of ['IPAMHandle', 'BlockAffinity', 'IPAMBlock'] as const) {
      for (const r of (await ds.list(kind)).items) await ds.delete(kind, r.metadata.name);
    }
  });

  const nodeName = (i: number): string => `node-${String(i).padStart(2, '0')}`;
  const ipamOf = (i: number): Ipam => new Ipam(clients[i] as Datastore);
  const consistent = async (): Promise<void> =>
    expect(ipamProblems(await readIpamState(clients[0] as Datastore))).toEqual([]);

  it(`${NODES} nodes claiming at once get ${NODES} distinct blocks, each with one confirmed affinity`, async () => {
    expect(clients).toHaveLength(NODES);
    const claimed = await Promise.all(Array.from({ length: NODES }, (_, i) => ipamOf(i).claimBlock(nodeName(i))));
    expect(new Set(claimed).size).toBe(NODES);
    const ds = clients[0] as Datastore;
    const stored = (await ds.list('IPAMBlock')).items;
    expect(stored).toHaveLength(NODES);
    const owners = new Map(stored.map((b) => [b.spec.cidr, b.spec.affinity]));
    claimed.forEach((cidr, i) => expect(owners.get(cidr)).toBe(`host:${nodeName(i)}`));
    const affinities = (await ds.list('BlockAffinity')).items;
    expect(affinities.map((a) => a.spec.state)).toEqual(Array<string>(NODES).fill('confirmed'));
    expect(new Set(affinities.map((a) => a.spec.cidr))).toEqual(new Set(claimed));
    await consistent();
  }, 60_000);

  it('200 addresses assigned at once (across nodes and 60 within one node): no duplicates, no lost updates', async () => {
    const jobs: Array<Promise<string[]>> = [];
    // 60 on node-00 through 60 separate clients (processes on one node racing on one block),
    // 140 spread over the other nodes, each through its node's own client.
    for (let k = 0; k < 60; k++)
      jobs.push(new Ipam(clients[k % NODES] as Datastore).assign(nodeName(0), `pod-00-${k}`));
    for (let k = 0; k < 140; k++) {
      const i = 1 + (k % (NODES - 1));
      jobs.push(ipamOf(i).assign(nodeName(i), `pod-${i}-${k}`));
    }
    const results = await Promise.all(jobs);
    const ips = results.flat();
    expect(ips).toHaveLength(200);
    expect(new Set(ips).size).toBe(200);

    const ds = clients[0] as Datastore;
    const stored = (await ds.list('IPAMBlock')).items;
    const allocated = stored.reduce((sum, b) => sum + b.spec.allocations.filter((a) => a !== null).length, 0);
    expect(allocated).toBe(200);
    for (const b of stored)
      expect(b.spec.allocations.filter((a) => a !== null).length + b.spec.unallocated.length).toBe(
        b.spec.allocations.length,
      );
    const handles = (await ds.list('IPAMHandle')).items;
    expect(handles).toHaveLength(200);
    expect(handles.reduce((sum, h) => sum + Object.values(h.spec.block).reduce((a, b) => a + b, 0), 0)).toBe(200);
    // node-00's 60 came from its own block(s): no other node's block was needed.
    const usage = await ipamOf(0).usage();
    expect(usage.pools[0]?.allocated).toBe(200);
    expect(usage.blocks.filter((b) => b.node === nodeName(0)).reduce((s, b) => s + b.allocated, 0)).toBe(60);
    await consistent();
  }, 120_000);

  it('releasing everything at once frees every address exactly once', async () => {
    const ds = clients[0] as Datastore;
    // 200 addresses, 10 per node (one node after another on each node's client, the nodes in parallel).
    await Promise.all(
      Array.from({ length: NODES }, async (_, i) => {
        for (let k = 0; k < 10; k++) await ipamOf(i).assign(nodeName(i), `pod-${i}-${k}`);
      }),
    );
    const handles = (await ds.list('IPAMHandle')).items.map((h) => h.metadata.name);
    expect(handles).toHaveLength(200);
    const freed = await Promise.all(
      handles.map((h, k) => new Ipam(clients[k % NODES] as Datastore).releaseByHandle(h)),
    );
    expect(freed.flat()).toHaveLength(200);
    expect(new Set(freed.flat()).size).toBe(200);
    const stored = (await ds.list('IPAMBlock')).items;
    expect(stored.reduce((sum, b) => sum + b.spec.allocations.filter((a) => a !== null).length, 0)).toBe(0);
    expect((await ds.list('IPAMHandle')).items).toHaveLength(0);
    await consistent();
  }, 120_000);

  it('150 addresses at once on one new node (20 clients) overflow into new blocks: each block claimed once, affinities confirmed', async () => {
    const node = 'node-busy';
    // Five other nodes already hold a block each: none of them may be taken or disturbed.
    const theirs = await Promise.all(Array.from({ length: 5 }, (_, i) => ipamOf(i).claimBlock(nodeName(i))));
    const ips = (
      await Promise.all(
        Array.from({ length: 150 }, (_, k) => new Ipam(clients[k % NODES] as Datastore).assign(node, `busy-${k}`)),
      )
    ).flat();
    expect(new Set(ips).size).toBe(150);
    const ds = clients[0] as Datastore;
    const mine = (await ds.list('IPAMBlock')).items.filter((b) => b.spec.affinity === `host:${node}`);
    expect(mine.length).toBeGreaterThanOrEqual(3); // 150 addresses need at least three /26s
    expect(mine.reduce((sum, b) => sum + b.spec.allocations.filter((a) => a !== null).length, 0)).toBe(150);
    const affinities = (await ds.list('BlockAffinity')).items.filter((a) => a.spec.node === node);
    expect(affinities.map((a) => a.spec.cidr).sort()).toEqual(mine.map((b) => b.spec.cidr).sort());
    expect(affinities.every((a) => a.spec.state === 'confirmed')).toBe(true);
    // No other node's block was touched by node-busy's claims (every other block still has its owner's affinity).
    const others = (await ds.list('BlockAffinity')).items.filter((a) => a.spec.node !== node);
    expect(others.map((a) => `${a.spec.node} ${a.spec.cidr} ${a.spec.state}`).sort()).toEqual(
      theirs.map((cidr, i) => `${nodeName(i)} ${cidr} confirmed`).sort(),
    );
    const owners = new Map((await ds.list('IPAMBlock')).items.map((b) => [b.spec.cidr, b.spec.affinity]));
    theirs.forEach((cidr, i) => expect(owners.get(cidr)).toBe(`host:${nodeName(i)}`));
    await consistent();
  }, 120_000);
});
