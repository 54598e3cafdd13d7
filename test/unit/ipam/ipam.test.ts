// Ipam on the in-memory datastore: claims (selectors, pools, crash recovery), assign/release, handles,
// borrowing and strictAffinity, releaseBlock, usage. Races against real etcd: test/integration/ipam-race.test.ts.

import { describe, expect, it } from 'vitest';
import { MemoryDatastore } from '../../../src/datastore/memory.js';
import { Ipam, IpamExhaustedError } from '../../../src/ipam/index.js';
import { API_VERSION, type Resource } from '../../../src/resources/types.js';
import { pool } from './fixtures.js';

function node(name: string, labels: Record<string, string>): Resource<'Node'> {
  return { apiVersion: API_VERSION, kind: 'Node', metadata: { name, labels }, spec: {} };
}

async function setup(...pools: Array<Resource<'IPPool'>>): Promise<{ ds: MemoryDatastore; ipam: Ipam }> {
  const ds = new MemoryDatastore();
  for (const p of pools) await ds.create(p);
  return { ds, ipam: new Ipam(ds) };
}

describe('Ipam.claimBlock', () => {
  it('claims the first free aligned block and records a confirmed affinity', async () => {
    const { ds, ipam } = await setup(pool('p', '10.244.0.0/24'));
    expect(await ipam.claimBlock('node-a')).toBe('10.244.0.0/26');
    expect(await ipam.claimBlock('node-b')).toBe('10.244.0.64/26');
    expect(await ipam.claimBlock('node-a')).toBe('10.244.0.128/26');
    expect(await ipam.blocksOf('node-a')).toEqual(['10.244.0.0/26', '10.244.0.128/26']);
    const affinities = (await ds.list('BlockAffinity')).items.map((a) => `${a.metadata.name} ${a.spec.state}`);
    expect(affinities.sort()).toEqual([
      'node-a-10-244-0-0-26 confirmed',
      'node-a-10-244-0-128-26 confirmed',
      'node-b-10-244-0-64-26 confirmed',
    ]);
    expect((await ds.get('IPAMBlock', '10-244-0-64-26'))?.spec.affinity).toBe('host:node-b');
    await ipam.claimBlock('node-c');
    await expect(ipam.claimBlock('node-c')).rejects.toThrow(
      /node "node-c": no free block left in pool\(s\) p \(10.244.0.0\/24\)/,
    );
  });

  it('an affinity deleted between the confirmation read and its write (a release cleaning up) is read again, not an error', async () => {
    const memory = new MemoryDatastore();
    await memory.create(pool('p', '10.244.0.0/24'));
    let struck = false;
    // The first confirmation write finds its pending affinity gone: deleted just before it.
    const ds = Object.create(memory) as MemoryDatastore;
    ds.update = async (resource) => {
      if (
        !struck &&
        resource.kind === 'BlockAffinity' &&
        (resource as Resource<'BlockAffinity'>).spec.state === 'confirmed'
      ) {
        struck = true;
        await memory.delete('BlockAffinity', resource.metadata.name);
      }
      return memory.update(resource);
    };
    const ipam = new Ipam(ds);
    expect(await ipam.claimBlock('node-a')).toBe('10.244.0.0/26');
    expect(struck).toBe(true);
    const affinities = (await memory.list('BlockAffinity')).items.map((a) => `${a.metadata.name} ${a.spec.state}`);
    expect(affinities).toEqual(['node-a-10-244-0-0-26 confirmed']);
  });

  it('never claims a block that overlaps an existing one of another size (a pool re-created with another blockSize)', async () => {
    const { ds, ipam } = await setup(pool('p', '10.244.0.0/24'));
    expect(await ipam.claimBlock('n1')).toBe('10.244.0.0/26');
    await ds.delete('IPPool', 'p');
    await ds.create(pool('p', '10.244.0.0/24', { blockSize: 25 }));
    // 10.244.0.0/25 would contain n1's /26 and hand out its addresses again.
    expect(await ipam.claimBlock('n2')).toBe('10.244.0.128/25');
    const [ip1] = await ipam.assign('n1', 'h1');
    const [ip2] = await ipam.assign('n2', 'h2');
    expect(ip1).not.toBe(ip2);
  });

  it('honours allowedUses: a Tunnel-only pool gives tunnel addresses and never pod addresses', async () => {
    const { ipam } = await setup(pool('tunnels', '10.5.0.0/24', { allowedUses: ['Tunnel'] }));
    const [tunnel] = await ipam.assign('n1', 'ipip-tunnel-addr-n1', { use: 'Tunnel' });
    expect(tunnel).toMatch(/^10\.5\.0\.\d+$/);
    await expect(ipam.assign('n1', 'pod-1')).rejects.toThrow(
      /no enabled IPPool selects node "n1" for Workload addresses \(check the pools' nodeSelector, disabled and allowedUses fields\)/,
    );
  });

  it('uses only enabled pools whose nodeSelector matches the Node labels', async () => {
    const { ds, ipam } = await setup(
      pool('off', '10.1.0.0/24', { disabled: true }),
      pool('rack1', '10.2.0.0/24', { nodeSelector: "rack == 'r1'" }),
      pool('rest', '10.3.0.0/24', { nodeSelector: "rack != 'r1'" }),
    );
    await ds.create(node('a', { rack: 'r1' }));
    await ds.create(node('b', { rack: 'r2' }));
    expect(await ipam.claimBlock('a')).toBe('10.2.0.0/26');
    expect(await ipam.claimBlock('b')).toBe('10.3.0.0/26');
    await expect(ipam.claimBlock('a', { pool: 'rest' })).rejects.toThrow(/no enabled IPPool "rest" selects node "a"/);
    await expect(ipam.claimBlock('a', { pool: 'nope' })).rejects.toThrow(
      /pool "nope" does not exist \(pools: off, rack1, rest\)/,
    );
  });

  it('assignmentMode Manual: a pool only a request naming it uses (LoadBalancer-only pools give pods nothing either)', async () => {
    const { ds, ipam } = await setup(
      pool('manual', '10.1.0.0/24', { assignmentMode: 'Manual' }),
      pool('lb', '10.2.0.0/24', { allowedUses: ['LoadBalancer'] }),
      pool('auto', '10.3.0.0/24'),
    );
    await ds.create(node('a', {}));
    expect(await ipam.claimBlock('a')).toBe('10.3.0.0/26');
    expect(await ipam.claimBlock('a', { pool: 'manual' })).toBe('10.1.0.0/26');
    expect(await ipam.claimBlock('a')).toBe('10.3.0.64/26');
  });

  it('finishes a claim that stopped after the block was written, and drops one that stopped before', async () => {
    const { ds, ipam } = await setup(pool('p', '10.244.0.0/24'));
    // node-a crashed after writing its pending affinity and the block.
    await ds.create({
      apiVersion: API_VERSION,
      kind: 'BlockAffinity',
      metadata: { name: 'node-a-10-244-0-0-26' },
      spec: { state: 'pending', node: 'node-a', cidr: '10.244.0.0/26' },
    });
    await ds.create({
      apiVersion: API_VERSION,
      kind: 'IPAMBlock',
      metadata: { name: '10-244-0-0-26' },
      spec: {
        cidr: '10.244.0.0/26',
        affinity: 'host:node-a',
        allocations: Array<null>(64).fill(null),
        unallocated: Array.from({ length: 64 }, (_, i) => i),
        attributes: [],
      },
    });
    // node-a also crashed right after a pending affinity for 10.244.0.128/26 (no block).
    await ds.create({
      apiVersion: API_VERSION,
      kind: 'BlockAffinity',
      metadata: { name: 'node-a-10-244-0-128-26' },
      spec: { state: 'pending', node: 'node-a', cidr: '10.244.0.128/26' },
    });
    // node-b's claim does not care about node-a's pending affinity: the block decides.
    expect(await ipam.claimBlock('node-b')).toBe('10.244.0.64/26');
    expect(await ipam.claimBlock('node-b')).toBe('10.244.0.128/26');
    // node-a comes back: the first is confirmed, the second removed (node-b owns that block).
    expect(await ipam.claimBlock('node-a')).toBe('10.244.0.192/26');
    const states = Object.fromEntries(
      (await ds.list('BlockAffinity')).items.map((a) => [a.metadata.name, a.spec.state]),
    );
    expect(states).toEqual({
      'node-a-10-244-0-0-26': 'confirmed',
      'node-a-10-244-0-192-26': 'confirmed',
      'node-b-10-244-0-64-26': 'confirmed',
      'node-b-10-244-0-128-26': 'confirmed',
    });
    expect(await ipam.blocksOf('node-a')).toEqual(['10.244.0.0/26', '10.244.0.192/26']);
  });
});

describe('Ipam.assign and release', () => {
  it('namespaceSelector: a pool serves only pods whose Namespace labels match; a named pool whatever its selector', async () => {
    const { ds, ipam } = await setup(
      pool('prod', '10.1.0.0/24', { namespaceSelector: "env == 'prod'" }),
      pool('rest', '10.2.0.0/24', { namespaceSelector: "env != 'prod'" }),
    );
    await ds.create(node('a', {}));
    await ds.create({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'shop', labels: { env: 'prod' } },
      spec: {},
    });
    await ds.create({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'dev', labels: { env: 'test' } },
      spec: {},
    });
    expect(await ipam.assign('a', 'h-shop', { namespace: 'shop' })).toEqual(['10.1.0.0']);
    expect(await ipam.assign('a', 'h-dev', { namespace: 'dev' })).toEqual(['10.2.0.0']);
    // No Namespace resource of that name: matched against no labels (env != 'prod' holds for them).
    expect(await ipam.assign('a', 'h-gone', { namespace: 'gone' })).toEqual(['10.2.0.1']);
    // A request naming a pool uses it whatever its selector (Calico's requested pools).
    expect(await ipam.assign('a', 'h-named', { namespace: 'dev', pool: 'prod' })).toEqual(['10.1.0.1']);
    // A label change moves the next pod.
    await ds.update({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'dev', labels: { env: 'prod' } },
      spec: {},
    });
    expect(await ipam.assign('a', 'h-dev-2', { namespace: 'dev' })).toEqual(['10.1.0.2']);
    const onlyProd = await setup(pool('prod', '10.1.0.0/24', { namespaceSelector: "env == 'prod'" }));
    await onlyProd.ds.create(node('a', {}));
    await expect(onlyProd.ipam.assign('a', 'h', { namespace: 'dev' })).rejects.toThrow(
      /no enabled IPPool selects node "a" and namespace "dev" for Workload addresses \(pools prod: check their namespaceSelector\)/,
    );
  });

  it("assigns from the node's block, claiming one when needed; a retried handle gets the same address", async () => {
    const { ds, ipam } = await setup(pool('p', '10.244.0.0/24'));
    const [ip] = await ipam.assign('node-a', 'pod-1');
    expect(ip).toBe('10.244.0.0');
    expect(await ipam.assign('node-a', 'pod-1')).toEqual(['10.244.0.0']);
    expect(await ipam.assign('node-a', 'pod-2', { count: 2 })).toEqual(['10.244.0.1', '10.244.0.2']);
    const handle = await ds.get('IPAMHandle', 'pod-2');
    expect(handle?.spec.block).toEqual({ '10.244.0.0/26': 2 });
    const block = await ds.get('IPAMBlock', '10-244-0-0-26');
    expect(block?.spec.attributes.map((a) => a.handle_id)).toEqual(['pod-1', 'pod-2']);
  });

  it('fills a block, then claims the next; releasing the last address keeps the block', async () => {
    const { ds, ipam } = await setup(pool('p', '10.244.0.0/24', { blockSize: 30 }));
    const ips = await ipam.assign('node-a', 'many', { count: 6 });
    expect(ips).toEqual(['10.244.0.0', '10.244.0.1', '10.244.0.2', '10.244.0.3', '10.244.0.4', '10.244.0.5']);
    expect(await ipam.blocksOf('node-a')).toEqual(['10.244.0.0/30', '10.244.0.4/30']);
    expect(await ipam.releaseByHandle('many')).toEqual(ips);
    expect(await ds.get('IPAMHandle', 'many')).toBeNull();
    expect(await ipam.blocksOf('node-a')).toEqual(['10.244.0.0/30', '10.244.0.4/30']);
    expect((await ipam.usage()).blocks.map((b) => b.allocated)).toEqual([0, 0]);
  });

  it('release(ips) frees those addresses and lowers the handle counts', async () => {
    const { ds, ipam } = await setup(pool('p', '10.244.0.0/24'));
    await ipam.assign('node-a', 'h', { count: 3 });
    await ipam.release(['10.244.0.1', '10.9.9.9']);
    expect((await ds.get('IPAMHandle', 'h'))?.spec.block).toEqual({ '10.244.0.0/26': 2 });
    expect(await ipam.assign('node-a', 'other')).toEqual(['10.244.0.3']);
    await expect(ipam.release(['not-an-ip'])).rejects.toThrow(/address to release "not-an-ip"/);
  });

  it("borrows from another node's block when the pool is exhausted, unless strictAffinity", async () => {
    const { ds, ipam } = await setup(pool('p', '10.244.0.0/29', { blockSize: 30 }));
    await ipam.assign('node-a', 'a1');
    await ipam.assign('node-b', 'b1');
    // Both /30s are claimed; node-c has none.
    await expect(new Ipam(ds, { strictAffinity: true }).assign('node-c', 'c1')).rejects.toThrow(
      /strictAffinity forbids borrowing/,
    );
    const [borrowed] = await ipam.assign('node-c', 'c1');
    expect(['10.244.0.1', '10.244.0.5']).toContain(borrowed);
    await ipam.assign('node-c', 'c2', { count: 5 });
    await expect(ipam.assign('node-c', 'c3')).rejects.toBeInstanceOf(IpamExhaustedError);
  });

  it('releaseBlock removes an empty block and its affinity, and refuses one in use', async () => {
    const { ds, ipam } = await setup(pool('p', '10.244.0.0/24'));
    await ipam.assign('node-a', 'h');
    await expect(ipam.releaseBlock('10.244.0.0/26')).rejects.toThrow(
      /block 10.244.0.0\/26 still has 1 address\(es\) allocated/,
    );
    await ipam.releaseByHandle('h');
    await ipam.releaseBlock('10.244.0.0/26');
    expect(await ds.get('IPAMBlock', '10-244-0-0-26')).toBeNull();
    expect((await ds.list('BlockAffinity')).items).toHaveLength(0);
    expect(await ipam.blocksOf('node-a')).toEqual([]);
  });

  it('usage counts pools and blocks', async () => {
    const { ipam } = await setup(pool('p', '10.244.0.0/24'), pool('q', '10.245.0.0/16'));
    await ipam.assign('node-a', 'h1', { count: 3 });
    await ipam.assign('node-b', 'h2', { pool: 'q' });
    const usage = await ipam.usage();
    expect(usage.pools).toEqual([
      { name: 'p', cidr: '10.244.0.0/24', size: 256, allocated: 3, blocks: 1 },
      { name: 'q', cidr: '10.245.0.0/16', size: 65536, allocated: 1, blocks: 1 },
    ]);
    expect(usage.blocks).toEqual([
      { cidr: '10.244.0.0/26', node: 'node-a', size: 64, allocated: 3, pool: 'p' },
      { cidr: '10.245.0.0/26', node: 'node-b', size: 64, allocated: 1, pool: 'q' },
    ]);
  });
});
