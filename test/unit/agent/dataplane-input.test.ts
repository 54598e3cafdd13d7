// dataplaneInput (src/agent/dataplane-input.ts): the cache, the node's address and the BGP routes → felix's
// input, a pure function; the host interface's MTU comes only from the injected reader.

import { describe, expect, it } from 'vitest';
import { dataplaneInput, type CacheView, type DataplaneSources } from '../../../src/agent/dataplane-input.js';
import type { CachedKind } from '../../../src/agent/cache.js';
import type { IPPoolSpec, Resource } from '../../../src/resources/index.js';

const API = 'projectcalico.org/v3' as const;

function pool(name: string, cidr: string, extra: Partial<IPPoolSpec> = {}): Resource<'IPPool'> {
  return { apiVersion: API, kind: 'IPPool', metadata: { name }, spec: { cidr, blockSize: 26, ...extra } };
}

function node(name: string, bgp: { ipv4Address?: string; ipv4IPIPTunnelAddr?: string }): Resource<'Node'> {
  return { apiVersion: API, kind: 'Node', metadata: { name }, spec: { bgp } } as Resource<'Node'>;
}

function block(cidr: string, nodeName: string): Resource<'IPAMBlock'> {
  return {
    apiVersion: API,
    kind: 'IPAMBlock',
    metadata: { name: cidr.replace(/[./]/g, '-') },
    spec: { cidr, affinity: `host:${nodeName}`, allocations: [], unallocated: [], attributes: [] },
  };
}

function affinity(nodeName: string, cidr: string): Resource<'BlockAffinity'> {
  return {
    apiVersion: API,
    kind: 'BlockAffinity',
    metadata: { name: `${nodeName}-${cidr.replace(/[./]/g, '-')}` },
    spec: { node: nodeName, cidr, state: 'confirmed' },
  };
}

function wep(
  name: string,
  spec: Partial<Resource<'WorkloadEndpoint'>['spec']> & { node: string; ipNetworks: string[] },
  namespace?: string,
): Resource<'WorkloadEndpoint'> {
  return {
    apiVersion: API,
    kind: 'WorkloadEndpoint',
    metadata: { name, ...(namespace !== undefined ? { namespace } : {}) },
    spec,
  } as Resource<'WorkloadEndpoint'>;
}

/** A cache view over fixed lists (an absent kind is empty). */
function view(lists: Partial<{ [K in CachedKind]: Array<Resource<K>> }>): CacheView {
  return { list: ((kind: CachedKind) => lists[kind] ?? []) as CacheView['list'] };
}

const CLUSTER = view({
  IPPool: [
    pool('ipip', '10.244.0.0/16', { ipipMode: 'CrossSubnet', natOutgoing: true }),
    pool('v6', 'fd00:10:244::/48', { blockSize: 122 }),
    pool('off', '10.246.0.0/16', { disabled: true, vxlanMode: 'Always' }),
  ],
  Node: [
    node('node-1', { ipv4Address: '198.18.0.11/24', ipv4IPIPTunnelAddr: '10.244.0.1' }),
    node('node-2', { ipv4Address: '198.18.0.12/24' }),
    node('node-3', {}),
  ],
  IPAMBlock: [block('10.244.0.0/26', 'node-1'), block('10.244.0.64/26', 'node-2')],
  BlockAffinity: [affinity('node-1', '10.244.0.0/26'), affinity('node-2', '10.244.0.64/26')],
  WorkloadEndpoint: [
    wep(
      'web',
      {
        node: 'node-1',
        pod: 'web-1',
        interfaceName: 'cali1234567890a',
        ipNetworks: ['10.244.0.5/32', 'fd00:10:244::5/128'],
      },
      'shop',
    ),
    wep('bare', { node: 'node-1', workload: 'job', ipNetworks: ['10.244.0.6/32'] }),
    wep('elsewhere', { node: 'node-2', pod: 'db', ipNetworks: ['10.244.0.70/32'] }, 'shop'),
  ],
});

function sources(parts: Partial<DataplaneSources> = {}): DataplaneSources {
  return {
    nodeName: 'node-1',
    node: { address: '198.18.0.11', prefixLength: 24, hostInterface: 'eth0' },
    cache: CLUSTER,
    bgpRoutes: [
      { prefix: '10.244.0.64/26', nextHop: '198.18.0.12', from: '198.18.0.12' },
      { prefix: '10.244.0.0/26', nextHop: '198.18.0.11', from: 'local' },
      { prefix: '10.50.0.0/24', nextHop: null, from: '198.18.0.1' },
    ],
    bgpPortGuard: true,
    interfaceMtu: (name) => (name === 'eth0' ? 1450 : undefined),
    ...parts,
  };
}

describe('dataplaneInput', () => {
  it("maps the cache to felix's input: IPv4 pools, our blocks and workloads, learned routes, guard, tunnel", () => {
    expect(dataplaneInput(sources())).toEqual({
      node: { ip: '198.18.0.11/24', hostInterface: 'eth0' },
      pools: [
        { cidr: '10.244.0.0/16', ipipMode: 'CrossSubnet', vxlanMode: 'Never', disabled: false, natOutgoing: true },
        { cidr: '10.246.0.0/16', ipipMode: 'Never', vxlanMode: 'Always', disabled: true, natOutgoing: false },
      ],
      localBlocks: ['10.244.0.0/26'],
      workloads: [
        { ip: '10.244.0.5/32', interfaceName: 'cali1234567890a', namespace: 'shop', pod: 'web-1' },
        { ip: '10.244.0.6/32', namespace: 'default', pod: 'job' },
      ],
      // Our own (local) route and a route without a next hop are not felix's to program.
      bgpRoutes: [{ prefix: '10.244.0.64/26', nextHop: '198.18.0.12' }],
      bgpGuard: { nodeAddresses: ['198.18.0.11/24', '198.18.0.12/24'] },
      tunnel: { address: '10.244.0.1', hostMtu: 1450 },
      // VXLAN: the other nodes with an address, the blocks affine to them (no VTEPs in this cluster).
      vxlan: {
        local: {},
        nodes: [{ name: 'node-2', ip: '198.18.0.12/24' }],
        remoteBlocks: [{ cidr: '10.244.0.64/26', node: 'node-2' }],
      },
    });
  });

  it('planned peers with reachableBy become static routes to their addresses; the others none', () => {
    const input = dataplaneInput({
      ...sources(),
      peers: [{ address: '10.225.0.4', reachableBy: '198.18.0.1' }, { address: '198.18.0.12' }],
    });
    expect(input.peerRoutes).toEqual([{ address: '10.225.0.4', gateway: '198.18.0.1' }]);
    expect(dataplaneInput({ ...sources(), peers: [{ address: '198.18.0.12' }] }).peerRoutes).toBeUndefined();
  });

  it('reads the host MTU only through the injected reader, for the host interface', () => {
    const asked: string[] = [];
    const input = dataplaneInput(sources({ interfaceMtu: (name) => (asked.push(name), 9000), ipipMtu: 1400 }));
    expect(asked).toEqual(['eth0']);
    expect(input.tunnel).toEqual({ address: '10.244.0.1', mtu: 1400, hostMtu: 9000 });
  });

  it('no host interface: none named, no MTU asked for', () => {
    const input = dataplaneInput(
      sources({
        node: { address: '203.0.113.5', prefixLength: 32, hostInterface: null },
        interfaceMtu: () => expect.unreachable('no interface to read'),
      }),
    );
    expect(input.node).toEqual({ ip: '203.0.113.5/32', hostInterface: '' });
    expect(input.tunnel).toEqual({ address: '10.244.0.1' });
  });

  it("the planned local workload peers (BGPPeer localWorkloadSelector) are the guard's exception; other peers are not", () => {
    const input = dataplaneInput(
      sources({
        peers: [
          { address: '10.244.0.5', type: 'LocalWorkload' },
          { address: '198.18.0.1', type: 'Global' },
        ],
      }),
    );
    expect(input.bgpGuard).toMatchObject({ localPeers: ['10.244.0.5'] });
  });

  it('TORTIE_BGP_PORT_GUARD=false: no guard table; a node without a tunnel address: none', () => {
    const input = dataplaneInput(
      sources({
        bgpPortGuard: false,
        nodeName: 'node-2',
        node: { address: '198.18.0.12', prefixLength: 24, hostInterface: 'eth0' },
      }),
    );
    expect(input.bgpGuard).toBeNull();
    expect(input.tunnel).toEqual({ hostMtu: 1450 });
    expect(input.localBlocks).toEqual(['10.244.0.64/26']);
    expect(input.workloads).toEqual([{ ip: '10.244.0.70/32', namespace: 'shop', pod: 'db' }]);
  });

  it('is pure: the same sources give the same input, and the sources are not changed', () => {
    const s = sources();
    const before = JSON.stringify(s.bgpRoutes);
    expect(dataplaneInput(s)).toEqual(dataplaneInput(s));
    expect(JSON.stringify(s.bgpRoutes)).toBe(before);
  });
});
