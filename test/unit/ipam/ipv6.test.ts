// IPv6 in the IPAM: Calico's names and etcd keys for IPv6 blocks, /122 blocks by default, claiming,
// assigning (a dual-stack handle holds one address of each family), releasing, borrowing, `ipam show`
// sizes and `ipam check` on IPv6 workloads. On the in-memory datastore; names and keys are pure.

import { describe, expect, it } from 'vitest';
import { MemoryDatastore } from '../../../src/datastore/memory.js';
import { etcdKeyOf, layoutOf } from '../../../src/datastore/etcd-keys.js';
import { checkIpam, readCheckSnapshot } from '../../../src/ipam/check.js';
import { affinityName, blockName, cidrOfBlockName, Ipam, parseAffinityName } from '../../../src/ipam/index.js';
import { blocksOf, ordinalIn, parseNet } from '../../../src/ipam/prefix.js';
import { applyDefaults } from '../../../src/resources/defaults.js';
import { API_VERSION, type Resource } from '../../../src/resources/types.js';
import { formatIpamUsage } from '../../../src/cli/ipam-command.js';

function pool6(name: string, cidr: string, extra: Partial<Resource<'IPPool'>['spec']> = {}): Resource<'IPPool'> {
  // Defaults as `tortie apply` applies them: blockSize 122 for an IPv6 cidr.
  return applyDefaults({ apiVersion: API_VERSION, kind: 'IPPool', metadata: { name }, spec: { cidr, ...extra } });
}

async function setup(...pools: Array<Resource<'IPPool'>>): Promise<{ ds: MemoryDatastore; ipam: Ipam }> {
  const ds = new MemoryDatastore();
  for (const p of pools) await ds.create(p);
  return { ds, ipam: new Ipam(ds) };
}

describe('IPv6 block names and keys (libcalico-go names.CIDRToName, model.BlockKey)', () => {
  it('names a block with ".", ":" and "/" as "-", and reads the name, the key part and the CIDR back', () => {
    expect(blockName('fd00:10:244::40/122')).toBe('fd00-10-244--40-122');
    expect(blockName('fd00:10:244:0:0:0:0:40/122')).toBe('fd00-10-244--40-122');
    expect(blockName('2001:db8:0:1::/122')).toBe('2001-db8-0-1---122');
    expect(cidrOfBlockName('fd00-10-244--40-122')).toBe('fd00:10:244::40/122');
    expect(cidrOfBlockName('2001-db8--40-122')).toBe('2001:db8::40/122');
    expect(cidrOfBlockName('fd00:10:244::40-122')).toBe('fd00:10:244::40/122');
    expect(cidrOfBlockName('fd00:10:244::40/122')).toBe('fd00:10:244::40/122');
    expect(cidrOfBlockName('10-244-1-0-26')).toBe('10.244.1.0/26');
    expect(() => blockName('fd00:10:244::41/122')).toThrow(/not an IPv6 network CIDR/);
    expect(() => cidrOfBlockName('fd00-10-244--41-122')).toThrow(/is not a block like/);
  });

  it('etcd keys as Calico writes them: ipv6 in the path, the CIDR with "/" as "-"', () => {
    expect(etcdKeyOf('IPAMBlock', 'fd00-10-244--40-122')).toBe(
      '/calico/ipam/v2/assignment/ipv6/block/fd00:10:244::40-122',
    );
    expect(etcdKeyOf('IPAMBlock', '10-244-1-0-26')).toBe('/calico/ipam/v2/assignment/ipv4/block/10.244.1.0-26');
    const name = affinityName('node-a', 'fd00:10:244::40/122');
    expect(name).toBe('node-a-fd00-10-244--40-122');
    expect(etcdKeyOf('BlockAffinity', name)).toBe('/calico/ipam/v2/host/node-a/ipv6/block/fd00:10:244::40-122');
    expect(layoutOf('IPAMBlock').locate('/calico/ipam/v2/assignment/ipv6/block/fd00:10:244::40-122')).toEqual({
      name: 'fd00-10-244--40-122',
    });
    expect(layoutOf('BlockAffinity').locate('/calico/ipam/v2/host/worker-1/ipv6/block/fd00:10:244::80-122')).toEqual({
      name: 'worker-1-fd00-10-244--80-122',
    });
    expect(layoutOf('IPAMBlock').locate('/calico/ipam/v2/assignment/ipv5/block/x')).toBeNull();
  });

  it('an IPv6 affinity name is split where its block begins, also for a name never made here', () => {
    expect(parseAffinityName(affinityName('a-b', 'fd00:10:244::/122'))).toEqual({
      node: 'a-b',
      cidr: 'fd00:10:244::/122',
    });
    // Not made in this process: "a" could start the CIDR (a:fd00:…); a four-digit first group is preferred.
    expect(parseAffinityName('node-a-fd00-20-244--40-122')).toEqual({ node: 'node-a', cidr: 'fd00:20:244::40/122' });
    expect(parseAffinityName('n1-10-244-1-0-26')).toEqual({ node: 'n1', cidr: '10.244.1.0/26' });
    expect(() => parseAffinityName('node-a-fd00-10-244')).toThrow(/not <node>-<block>/);
  });

  it('block math: /122 holds 64 addresses, ordinals both ways, pools enumerate lazily', () => {
    const block = parseNet('fd00:10:244::40/122');
    expect(ordinalIn(block, 'fd00:10:244::41')).toBe(1);
    expect(ordinalIn(block, 'fd00:10:244::80')).toBeNull();
    expect(ordinalIn(block, '10.0.0.1')).toBeNull();
    const gen = blocksOf('fd00:10:244::/48', 122);
    expect([gen.next().value, gen.next().value]).toEqual(['fd00:10:244::/122', 'fd00:10:244::40/122']);
  });
});

describe('Ipam with IPv6 pools', () => {
  it('claims /122 blocks (Calico’s IPv6 default) only when asked for IPv6, with confirmed affinities', async () => {
    const { ds, ipam } = await setup(pool6('v4', '10.244.0.0/24'), pool6('v6', 'fd00:10:244::/120'));
    expect(await ipam.claimBlock('node-a')).toBe('10.244.0.0/26');
    expect(await ipam.claimBlock('node-a', { family: 6 })).toBe('fd00:10:244::/122');
    expect(await ipam.claimBlock('node-b', { family: 6 })).toBe('fd00:10:244::40/122');
    const block = await ds.get('IPAMBlock', 'fd00-10-244--40-122');
    expect(block?.spec.allocations).toHaveLength(64);
    expect(block?.spec.affinity).toBe('host:node-b');
    expect((await ds.get('BlockAffinity', 'node-b-fd00-10-244--40-122'))?.spec).toMatchObject({
      state: 'confirmed',
      node: 'node-b',
      cidr: 'fd00:10:244::40/122',
    });
    expect(await ipam.blocksOf('node-a')).toEqual(['10.244.0.0/26', 'fd00:10:244::/122']);
  });

  it('a dual-stack handle holds one address of each family; a retry returns the same; release frees both', async () => {
    const { ds, ipam } = await setup(pool6('v4', '10.244.0.0/24'), pool6('v6', 'fd00:10:244::/120'));
    const [v4] = await ipam.assign('node-a', 'pod-1');
    const [v6] = await ipam.assign('node-a', 'pod-1', { family: 6 });
    expect(v4).toBe('10.244.0.0');
    expect(v6).toBe('fd00:10:244::');
    expect(await ipam.assign('node-a', 'pod-1', { family: 6 })).toEqual([v6]);
    expect(await ipam.assign('node-a', 'pod-1')).toEqual([v4]);
    const [second] = await ipam.assign('node-a', 'pod-2', { family: 6 });
    expect(second).toBe('fd00:10:244::1');
    expect((await ds.get('IPAMHandle', 'pod-1'))?.spec.block).toEqual({
      '10.244.0.0/26': 1,
      'fd00:10:244::/122': 1,
    });
    expect((await ipam.releaseByHandle('pod-1')).sort()).toEqual(['10.244.0.0', 'fd00:10:244::']);
    await ipam.release(['fd00:10:244::1']);
    const usage = await ipam.usage();
    expect(usage.blocks.map((b) => `${b.cidr} ${b.allocated}/${b.size}`)).toEqual([
      '10.244.0.0/26 0/64',
      'fd00:10:244::/122 0/64',
    ]);
  });

  it('claims the next block when one is full, then borrows from another node’s, unless strictAffinity', async () => {
    const { ds, ipam } = await setup(pool6('v6', 'fd00:10:244::/121'));
    await ipam.assign('node-b', 'b-1', { family: 6 });
    await ipam.assign('node-a', 'a-1', { family: 6, count: 64 });
    // Both /122s of the /121 are claimed: node-a borrows from node-b's block.
    const [borrowed] = await ipam.assign('node-a', 'a-2', { family: 6 });
    expect(borrowed).toBe('fd00:10:244::1');
    const strict = new Ipam(ds, { strictAffinity: true });
    await expect(strict.assign('node-a', 'a-3', { family: 6 })).rejects.toThrow(/strictAffinity forbids borrowing/);
  });

  it('an IPv6 request with no IPv6 pool says so, and never takes an IPv4 address', async () => {
    const { ipam } = await setup(pool6('v4', '10.244.0.0/24'));
    await expect(ipam.assign('node-a', 'pod-1', { family: 6 })).rejects.toThrow(
      /no enabled IPPool selects node "node-a" for IPv6 Workload addresses/,
    );
  });

  it('ipam show sizes an IPv6 pool as calicoctl does, ipam check finds an IPv6 workload without allocation', async () => {
    const { ds, ipam } = await setup(pool6('v6', 'fd00:10:244::/48'));
    const [ip] = await ipam.assign('node-a', 'pod-1', { family: 6 });
    const table = formatIpamUsage(await ipam.usage(), true);
    expect(table).toContain('fd00:10:244::/48');
    expect(table).toContain('1.2089e+24');
    expect(table).toMatch(/fd00:10:244::\/122 +\| node-a +\| +64 \| 1 \(2%\) +\| 63 \(98%\)/);
    await ds.create({
      apiVersion: API_VERSION,
      kind: 'Node',
      metadata: { name: 'node-a' },
      spec: { bgp: { ipv4Address: '198.18.0.1/24' } },
    });
    for (const [pod, addr] of [
      ['pod-1', ip],
      ['pod-x', 'fd00:10:244::99'],
    ] as const) {
      await ds.create({
        apiVersion: API_VERSION,
        kind: 'WorkloadEndpoint',
        metadata: { name: `node-a-k8s-${pod}-eth0`, namespace: 'default' },
        spec: { node: 'node-a', pod, interfaceName: 'cali0', ipNetworks: [`${addr}/128`] },
      });
    }
    const report = checkIpam(await readCheckSnapshot(ds));
    expect(report.findings.map((f) => `${f.kind} ${f.address ?? ''}`)).toEqual(['not-allocated fd00:10:244::99']);
  });
});
