// The advertising rules (src/agent/advertise.ts): which blocks and /32s a node originates, and Calico's
// export filter on what may go to peers.

import { describe, expect, it } from 'vitest';
import { parsePrefix } from '../../../bgp/ip.js';
import {
  calicoExportFilter,
  originatedPrefixes,
  prefixCommunities,
  type AdvertiseInput,
} from '../../../src/agent/advertise.js';
import type { BlockAffinitySpec, IPPoolSpec, Resource } from '../../../src/resources/index.js';

const API = 'projectcalico.org/v3' as const;

function pool(name: string, cidr: string, extra: Partial<IPPoolSpec> = {}): Resource<'IPPool'> {
  return { apiVersion: API, kind: 'IPPool', metadata: { name }, spec: { cidr, blockSize: 26, ...extra } };
}

function block(cidr: string, affinity: string | null, deleted = false): Resource<'IPAMBlock'> {
  return {
    apiVersion: API,
    kind: 'IPAMBlock',
    metadata: { name: cidr.replace(/[./]/g, '-') },
    spec: { cidr, affinity, allocations: [], unallocated: [], attributes: [], ...(deleted ? { deleted } : {}) },
  };
}

function affinity(
  node: string,
  cidr: string,
  state: BlockAffinitySpec['state'] = 'confirmed',
  deleted = false,
): Resource<'BlockAffinity'> {
  return {
    apiVersion: API,
    kind: 'BlockAffinity',
    metadata: { name: `${node}-${cidr.replace(/[./]/g, '-')}` },
    spec: { node, cidr, state, ...(deleted ? { deleted } : {}) },
  };
}

function workload(name: string, node: string, ipNetworks: string[]): Resource<'WorkloadEndpoint'> {
  return {
    apiVersion: API,
    kind: 'WorkloadEndpoint',
    metadata: { name, namespace: 'default' },
    spec: { node, interfaceName: `cali${name}`, ipNetworks },
  };
}

const POOLS = [
  pool('default', '10.244.0.0/16'),
  pool('quiet', '10.245.0.0/16', { disableBGPExport: true }),
  pool('off', '10.246.0.0/16', { disabled: true }),
  pool('v6', 'fd00:10:244::/48', { blockSize: 122 }),
];

function input(parts: Partial<AdvertiseInput>): AdvertiseInput {
  return { nodeName: 'node-a', pools: POOLS, blocks: [], affinities: [], workloads: [], ...parts };
}

describe('originatedPrefixes: blocks', () => {
  const cases: Array<[string, Partial<AdvertiseInput>, string[]]> = [
    [
      'a confirmed block affine to us, in an enabled pool',
      { blocks: [block('10.244.1.0/26', 'host:node-a')], affinities: [affinity('node-a', '10.244.1.0/26')] },
      ['10.244.1.0/26'],
    ],
    [
      'a pending affinity is not yet ours',
      { blocks: [block('10.244.1.0/26', 'host:node-a')], affinities: [affinity('node-a', '10.244.1.0/26', 'pending')] },
      [],
    ],
    [
      'an affinity being deleted is no longer ours',
      {
        blocks: [block('10.244.1.0/26', 'host:node-a')],
        affinities: [affinity('node-a', '10.244.1.0/26', 'pendingDeletion')],
      },
      [],
    ],
    [
      'a deleted affinity',
      {
        blocks: [block('10.244.1.0/26', 'host:node-a')],
        affinities: [affinity('node-a', '10.244.1.0/26', 'confirmed', true)],
      },
      [],
    ],
    ['no affinity document at all', { blocks: [block('10.244.1.0/26', 'host:node-a')] }, []],
    [
      'the block says another host',
      { blocks: [block('10.244.1.0/26', 'host:node-b')], affinities: [affinity('node-a', '10.244.1.0/26')] },
      [],
    ],
    [
      'the block has no affinity',
      { blocks: [block('10.244.1.0/26', null)], affinities: [affinity('node-a', '10.244.1.0/26')] },
      [],
    ],
    [
      "the affinity is another node's",
      { blocks: [block('10.244.1.0/26', 'host:node-a')], affinities: [affinity('node-b', '10.244.1.0/26')] },
      [],
    ],
    [
      'a deleted block',
      { blocks: [block('10.244.1.0/26', 'host:node-a', true)], affinities: [affinity('node-a', '10.244.1.0/26')] },
      [],
    ],
    [
      'a block of a disableBGPExport pool',
      { blocks: [block('10.245.1.0/26', 'host:node-a')], affinities: [affinity('node-a', '10.245.1.0/26')] },
      [],
    ],
    [
      'a block of a disabled pool',
      { blocks: [block('10.246.1.0/26', 'host:node-a')], affinities: [affinity('node-a', '10.246.1.0/26')] },
      [],
    ],
    [
      'a block of no pool (pool deleted)',
      { blocks: [block('10.99.1.0/26', 'host:node-a')], affinities: [affinity('node-a', '10.99.1.0/26')] },
      [],
    ],
    [
      'an IPv6 block is not advertised over IPv4 BGP',
      { blocks: [block('fd00:10:244::/122', 'host:node-a')], affinities: [affinity('node-a', 'fd00:10:244::/122')] },
      [],
    ],
  ];

  it.each(cases)('%s', (_what, parts, expected) => {
    expect(originatedPrefixes(input(parts))).toEqual(expected);
  });

  it('has cases that originate and cases that do not', () => {
    expect(cases.filter((c) => c[2].length > 0).length).toBeGreaterThan(0);
    expect(cases.filter((c) => c[2].length === 0).length).toBeGreaterThan(5);
  });

  it('several blocks come out sorted by address (as numbers) and once each', () => {
    const cidrs = ['10.244.10.0/26', '10.244.9.192/26', '10.244.1.0/26'];
    const out = originatedPrefixes(
      input({
        blocks: [...cidrs, '10.244.1.0/26'].map((c) => block(c, 'host:node-a')),
        affinities: cidrs.map((c) => affinity('node-a', c)),
      }),
    );
    expect(out).toEqual(['10.244.1.0/26', '10.244.9.192/26', '10.244.10.0/26']);
  });
});

describe('originatedPrefixes: workload /32s', () => {
  const ours = {
    blocks: [block('10.244.1.0/26', 'host:node-a'), block('10.244.2.0/26', 'host:node-b')],
    affinities: [affinity('node-a', '10.244.1.0/26'), affinity('node-b', '10.244.2.0/26')],
  };

  const cases: Array<[string, AdvertiseInput['workloads'], string[]]> = [
    [
      'inside our own block: suppressed (the block covers it)',
      [workload('w1', 'node-a', ['10.244.1.5/32'])],
      ['10.244.1.0/26'],
    ],
    [
      "borrowed from another node's block: advertised",
      [workload('w1', 'node-a', ['10.244.2.7/32'])],
      ['10.244.1.0/26', '10.244.2.7/32'],
    ],
    [
      'in an exported pool with no block of ours: advertised',
      [workload('w1', 'node-a', ['10.244.200.1/32'])],
      ['10.244.1.0/26', '10.244.200.1/32'],
    ],
    [
      'written without a prefix length: still a /32',
      [workload('w1', 'node-a', ['10.244.2.8'])],
      ['10.244.1.0/26', '10.244.2.8/32'],
    ],
    [
      "another node's workload: not ours to advertise",
      [workload('w1', 'node-b', ['10.244.2.7/32'])],
      ['10.244.1.0/26'],
    ],
    ['in a disableBGPExport pool: not advertised', [workload('w1', 'node-a', ['10.245.3.3/32'])], ['10.244.1.0/26']],
    ['in a disabled pool: not advertised', [workload('w1', 'node-a', ['10.246.3.3/32'])], ['10.244.1.0/26']],
    ['outside every pool: not advertised', [workload('w1', 'node-a', ['192.0.2.9/32'])], ['10.244.1.0/26']],
    [
      'IPv6 addresses are left out',
      [workload('w1', 'node-a', ['fd00:10:244::5/128', '10.244.2.9/32'])],
      ['10.244.1.0/26', '10.244.2.9/32'],
    ],
    [
      'two workloads with the same address: once',
      [workload('w1', 'node-a', ['10.244.2.7/32']), workload('w2', 'node-a', ['10.244.2.7/32'])],
      ['10.244.1.0/26', '10.244.2.7/32'],
    ],
  ];

  it.each(cases)('%s', (_what, workloads, expected) => {
    expect(originatedPrefixes(input({ ...ours, workloads }))).toEqual(expected);
  });

  it('has cases that add a /32 and cases that do not', () => {
    expect(cases.filter((c) => c[2].some((p) => p.endsWith('/32'))).length).toBeGreaterThan(2);
    expect(cases.filter((c) => !c[2].some((p) => p.endsWith('/32'))).length).toBeGreaterThan(2);
  });

  it('a /32 inside a block of ours that is not yet confirmed is advertised (nothing covers it yet)', () => {
    const out = originatedPrefixes(
      input({
        blocks: [block('10.244.1.0/26', 'host:node-a')],
        affinities: [affinity('node-a', '10.244.1.0/26', 'pending')],
        workloads: [workload('w1', 'node-a', ['10.244.1.5/32'])],
      }),
    );
    expect(out).toEqual(['10.244.1.5/32']);
  });
});

describe('calicoExportFilter', () => {
  const exportable = calicoExportFilter(POOLS);
  const cases: Array<[string, boolean]> = [
    ['10.244.1.0/26', true], // a block of an enabled pool
    ['10.244.2.7/32', true], // a workload address in it
    ['10.244.0.0/16', true], // the pool itself (BIRD's net ~ pool includes it)
    ['10.0.0.0/8', false], // wider than the pool
    ['0.0.0.0/0', false], // an office router's default route is not re-advertised
    ['10.245.1.0/26', false], // disableBGPExport pool
    ['10.246.1.0/26', false], // disabled pool
    ['198.18.0.0/24', false], // outside every pool
  ];

  it.each(cases)('%s → %s', (cidr, expected) => {
    expect(exportable(parsePrefix(cidr))).toBe(expected);
  });

  it('has cases on both sides', () => {
    expect(cases.filter((c) => c[1]).length).toBeGreaterThan(0);
    expect(cases.filter((c) => !c[1]).length).toBeGreaterThan(0);
  });

  it('a disableBGPExport pool refuses even what an overlapping enabled pool would accept (reject rules come first)', () => {
    const filter = calicoExportFilter([
      pool('wide', '10.0.0.0/8'),
      pool('quiet', '10.245.0.0/16', { disableBGPExport: true }),
    ]);
    expect(filter(parsePrefix('10.245.1.0/26'))).toBe(false);
    expect(filter(parsePrefix('10.1.0.0/26'))).toBe(true);
  });

  it('no pools: nothing is exported', () => {
    expect(calicoExportFilter([])(parsePrefix('10.244.1.0/26'))).toBe(false);
  });
});

describe('prefixCommunities (BGPConfiguration prefixAdvertisements, Calico’s apply_communities)', () => {
  // The BGPConfiguration of Calico's confd case mesh/communities (confd/tests/mock_data/calicoctl/mesh/
  // communities/input.yaml), whose bird.cfg adds, for net ~ 192.168.0.0/16: large (100, 555, 107),
  // standard (100, 6532) and (5663, 12).
  const calicoCase = (): Resource<'BGPConfiguration'> => ({
    apiVersion: 'projectcalico.org/v3',
    kind: 'BGPConfiguration',
    metadata: { name: 'default' },
    spec: {
      communities: [
        { name: 'bgp-comm-standard', value: '100:6532' },
        { name: 'bgp-comm-large', value: '100:555:107' },
      ],
      prefixAdvertisements: [
        { cidr: '192.168.0.0/16', communities: ['bgp-comm-standard', '5663:12', 'bgp-comm-large'] },
        { cidr: 'fd00:96::/112', communities: ['bgp-comm-large', 'bgp-comm-large'] },
      ],
    },
  });

  it('a block inside the cidr gets every named and inline community, as Calico’s bird.cfg for that case', () => {
    expect(prefixCommunities(parsePrefix('192.168.221.64/26'), [calicoCase()])).toEqual({
      communities: [100 * 65536 + 6532, 5663 * 65536 + 12],
      largeCommunities: [100, 555, 107],
    });
  });

  it('the cidr itself matches (net ~ cidr is equal or more specific); a prefix outside gets none', () => {
    expect(prefixCommunities(parsePrefix('192.168.0.0/16'), [calicoCase()]).communities).toHaveLength(2);
    expect(prefixCommunities(parsePrefix('10.0.0.0/26'), [calicoCase()])).toEqual({});
    expect(prefixCommunities(parsePrefix('192.0.0.0/8'), [calicoCase()])).toEqual({});
  });

  it('several matching advertisements add in order, each value once; only the default BGPConfiguration counts', () => {
    const config = calicoCase();
    const twice: Resource<'BGPConfiguration'> = {
      ...config,
      spec: {
        ...config.spec,
        prefixAdvertisements: [
          ...config.spec.prefixAdvertisements!,
          { cidr: '192.168.221.0/24', communities: ['100:6532', '1:2'] },
        ],
      },
    };
    expect(prefixCommunities(parsePrefix('192.168.221.64/26'), [twice]).communities).toEqual([
      100 * 65536 + 6532,
      5663 * 65536 + 12,
      65538,
    ]);
    expect(
      prefixCommunities(parsePrefix('192.168.221.64/26'), [{ ...config, metadata: { name: 'node.kube-master' } }]),
    ).toEqual({});
  });
});
