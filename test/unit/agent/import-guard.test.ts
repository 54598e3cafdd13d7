// Import protection (src/agent/import-guard.ts): one table of routes per rule, each refused and accepted
// case with the peer kind it arrives from; then which routes a change of the cluster makes judge again.

import { describe, expect, it } from 'vitest';
import { formatPrefix, parseIpv4, parsePrefix } from '../../../bgp/ip.js';
import {
  IMPORT_REFUSAL_REASONS,
  buildImportContext,
  formatImportRefusal,
  importContextChanges,
  judgeImport,
  peerKindOf,
  type ImportContextInput,
  type ImportRefusal,
  type PeerKind,
} from '../../../src/agent/import-guard.js';
import { allocate, newBlock } from '../../../src/ipam/block.js';
import { API_VERSION, type Resource } from '../../../src/resources/types.js';

// This node: "me" on 198.19.1.11/24, owning 10.244.1.0/26. node-b (198.19.1.12) owns 10.244.2.0/26, in which
// node-c (198.19.1.13) borrowed 10.244.2.5 and node-b holds 10.244.2.6 itself; node-c owns 10.244.3.0/26
// by a confirmed BlockAffinity only (its block document not seen yet); 10.244.4.0/26 belongs to nobody.
// A second pool 10.250.0.0/16 has /28 blocks. etcd is at 203.0.113.10; services 10.96.0.0/12.

function resource<K extends 'IPPool' | 'Node' | 'IPAMBlock' | 'BlockAffinity' | 'BGPConfiguration'>(
  kind: K,
  name: string,
  spec: Resource<K>['spec'],
): Resource<K> {
  return { apiVersion: API_VERSION, kind, metadata: { name }, spec } as Resource<K>;
}

function block(
  cidr: string,
  owner: string | null,
  allocations: Array<[count: number, node: string]> = [],
): Resource<'IPAMBlock'> {
  let spec = newBlock(cidr, owner);
  for (const [count, node] of allocations)
    spec = allocate(spec, count, `k8s-pod-network.${node}-${count}`, { node }).block;
  return resource('IPAMBlock', cidr.replace(/[./]/g, '-'), spec);
}

function input(overrides: Partial<ImportContextInput> = {}): ImportContextInput {
  return {
    nodeName: 'me',
    subnet: '198.19.1.11/24',
    ownBlocks: [parsePrefix('10.244.1.0/26')],
    pools: [
      resource('IPPool', 'default', { cidr: '10.244.0.0/16', blockSize: 26 }),
      resource('IPPool', 'small', { cidr: '10.250.0.0/16', blockSize: 28 }),
    ],
    blocks: [
      block('10.244.1.0/26', 'me', [[3, 'me']]),
      // ordinals 0..4 node-b, 5 node-c (borrowed), 6 node-b
      block('10.244.2.0/26', 'node-b', [
        [5, 'node-b'],
        [1, 'node-c'],
        [1, 'node-b'],
      ]),
      block('10.244.4.0/26', null, [[1, 'node-b']]),
      block('10.250.0.16/28', 'node-b'),
    ],
    affinities: [
      resource('BlockAffinity', 'node-c-10-244-3-0-26', { state: 'confirmed', node: 'node-c', cidr: '10.244.3.0/26' }),
    ],
    nodes: [
      resource('Node', 'me', { bgp: { ipv4Address: '198.19.1.11/24' } }),
      resource('Node', 'node-b', { bgp: { ipv4Address: '198.19.1.12/24' } }),
      resource('Node', 'node-c', { bgp: { ipv4Address: '198.19.1.13' } }),
      resource('Node', 'rr', { bgp: { ipv4Address: '198.19.1.2/24', routeReflectorClusterID: '244.0.0.1' } }),
    ],
    bgpConfigurations: [
      resource('BGPConfiguration', 'default', {
        serviceClusterIPs: [{ cidr: '10.96.0.0/12' }],
        serviceExternalIPs: [{ cidr: '192.0.2.0/26' }],
      }),
    ],
    controlPlane: ['203.0.113.10', 'etcd.example'],
    ...overrides,
  };
}

const NODE_B = '198.19.1.12';
const NODE_C = '198.19.1.13';
const ROUTER = '198.19.1.1';

type Case = [prefix: string, nextHop: string, kind: PeerKind, expected: ImportRefusal | null, why: string];

const RULES: ReadonlyArray<[rule: string, cases: Case[]]> = [
  [
    'default-route: 0/0 and its halves, from anyone',
    [
      ['0.0.0.0/0', ROUTER, 'external', 'default-route', 'the default route'],
      ['0.0.0.0/1', NODE_B, 'node', 'default-route', 'the lower half'],
      ['128.0.0.0/1', ROUTER, 'external', 'default-route', 'the upper half'],
      ['0.0.0.0/2', ROUTER, 'external', null, 'a quarter is an ordinary route'],
    ],
  ],
  [
    'control-plane: any prefix holding the etcd or API server address',
    [
      ['203.0.113.10/32', ROUTER, 'external', 'control-plane', "etcd's /32"],
      ['203.0.113.0/24', ROUTER, 'external', 'control-plane', 'a covering route'],
      ['203.0.113.128/25', ROUTER, 'external', null, 'next to it'],
    ],
  ],
  [
    "node-subnet: this node's subnet and its more-specifics",
    [
      ['198.19.1.0/24', ROUTER, 'external', 'node-subnet', 'the subnet itself'],
      ['198.19.1.128/25', NODE_B, 'node', 'node-subnet', 'a more-specific'],
      ['198.19.1.12/32', ROUTER, 'external', 'node-subnet', "another node's address"],
      ['198.19.0.0/16', ROUTER, 'external', null, 'a covering route'],
    ],
  ],
  [
    'loopback, link-local, multicast',
    [
      ['127.0.0.0/8', ROUTER, 'external', 'loopback', '127/8'],
      ['127.0.0.1/32', NODE_B, 'node', 'loopback', 'localhost'],
      ['169.254.169.254/32', ROUTER, 'external', 'link-local', 'cloud metadata'],
      ['169.254.0.0/16', NODE_B, 'node', 'link-local', 'the whole range'],
      ['224.0.0.0/4', ROUTER, 'external', 'multicast', 'multicast'],
      ['239.1.2.0/24', ROUTER, 'external', 'multicast', 'inside multicast'],
      ['169.253.0.0/16', ROUTER, 'external', null, 'beside link-local'],
    ],
  ],
  [
    'service-range: inside a configured service CIDR',
    [
      ['10.96.0.10/32', ROUTER, 'external', 'service-range', 'a cluster IP'],
      ['10.96.0.0/12', NODE_B, 'node', 'service-range', 'the range itself'],
      ['192.0.2.0/28', ROUTER, 'external', 'service-range', 'inside the external IPs'],
      ['10.0.0.0/8', ROUTER, 'external', null, 'a covering route (kube-proxy answers service IPs first)'],
    ],
  ],
  [
    "own-block: this node's blocks, from anyone",
    [
      ['10.244.1.0/26', NODE_B, 'node', 'own-block', 'from a mesh peer'],
      ['10.244.1.0/26', ROUTER, 'external', 'own-block', 'from the office router'],
    ],
  ],
  [
    'longer-than-block: inside a pool and longer than its blockSize, except a borrowed /32 of its announcer',
    [
      ['10.244.2.32/27', NODE_B, 'node', 'longer-than-block', "a /27 in node-b's block, even with node-b's next hop"],
      [
        '10.244.2.6/32',
        NODE_B,
        'node',
        'longer-than-block',
        "node-b's own address in node-b's block: the block covers it",
      ],
      ['10.244.2.9/32', NODE_B, 'node', 'longer-than-block', 'a free address'],
      [
        '10.244.2.5/32',
        NODE_C,
        'node',
        null,
        'borrowed by node-c, announced with node-c as next hop (mesh or reflected)',
      ],
      ['10.244.2.5/32', NODE_B, 'node', 'longer-than-block', "borrowed by node-c, but node-b's next hop"],
      ['10.244.2.5/32', ROUTER, 'external', null, 'borrowed by node-c, from an external router (its own next hop)'],
      ['10.244.1.1/32', NODE_B, 'node', 'longer-than-block', 'an address of our own block, ours'],
      ['10.244.1.8/29', ROUTER, 'external', 'longer-than-block', 'a piece of our block from the router'],
      [
        '10.244.4.0/32',
        NODE_B,
        'node',
        null,
        "node-b's pod in a block without affinity (every address there is borrowed)",
      ],
      ['10.244.4.0/32', NODE_C, 'node', 'longer-than-block', 'the same address with the wrong next hop'],
      ['10.250.0.16/28', NODE_B, 'node', null, 'a /28 block of the small pool, owner next hop'],
      ['10.250.0.16/29', NODE_B, 'node', 'longer-than-block', "longer than that pool's blockSize"],
      ['10.244.0.0/16', ROUTER, 'external', null, 'the pool itself (shorter than a block)'],
      ['10.244.0.0/24', NODE_B, 'node', null, 'an aggregate shorter than a block'],
    ],
  ],
  [
    'unowned-block and next-hop-not-owner: from node peers only',
    [
      ['10.244.2.0/26', NODE_B, 'node', null, "node-b's block with node-b's next hop (mesh)"],
      ['10.244.2.0/26', NODE_B, 'node', null, "the same through a reflector: the owner's next hop unchanged"],
      ['10.244.2.0/26', NODE_C, 'node', 'next-hop-not-owner', "node-b's block with node-c's next hop"],
      ['10.244.2.0/26', ROUTER, 'external', null, "node-b's block from a top-of-rack router with its own next hop"],
      ['10.244.3.0/26', NODE_C, 'node', null, "node-c's block known from its BlockAffinity only"],
      ['10.244.4.0/26', NODE_B, 'node', 'unowned-block', 'a block without affinity'],
      ['10.244.5.0/26', NODE_B, 'node', 'unowned-block', 'a block no IPAM record knows'],
      ['10.244.5.0/26', ROUTER, 'external', null, 'the same from an external router'],
    ],
  ],
  [
    'outside everything: accepted',
    [
      ['172.16.0.0/12', ROUTER, 'external', null, 'an office network'],
      ['203.0.113.128/25', NODE_B, 'node', null, 'from a node'],
    ],
  ],
];

describe('judgeImport: one table per rule', () => {
  const ctx = buildImportContext(input());
  it('every reason has a rule table with a refused case, and every table an accepted case or a refused one', () => {
    const covered = new Set(RULES.flatMap(([, cases]) => cases.map((c) => c[3])));
    for (const reason of IMPORT_REFUSAL_REASONS) expect(covered.has(reason), reason).toBe(true);
    for (const [rule, cases] of RULES) expect(cases.length, rule).toBeGreaterThan(0);
  });
  for (const [rule, cases] of RULES) {
    it(rule, () => {
      for (const [prefix, nextHop, kind, expected, why] of cases) {
        const verdict = judgeImport({ prefix: parsePrefix(prefix), nextHop: parseIpv4(nextHop) }, kind, ctx);
        expect(verdict, `${prefix} via ${nextHop} from a ${kind} peer (${why})`).toBe(expected);
      }
    });
  }

  it("a route without a next hop is never its owner's block", () => {
    expect(judgeImport({ prefix: parsePrefix('10.244.2.0/26'), nextHop: undefined }, 'node', ctx)).toBe(
      'next-hop-not-owner',
    );
  });

  it('peers at a node address are node peers (mesh, reflectors); any other address is an external router', () => {
    expect(peerKindOf(parseIpv4('198.19.1.2'), ctx)).toBe('node');
    expect(peerKindOf(parseIpv4(NODE_B), ctx)).toBe('node');
    expect(peerKindOf(parseIpv4(ROUTER), ctx)).toBe('external');
  });

  it('host names and IPv6 among the control-plane addresses are left out; no service ranges without a BGPConfiguration', () => {
    const bare = buildImportContext(input({ bgpConfigurations: [], controlPlane: ['etcd', '::1', '203.0.113.10'] }));
    expect(bare.controlPlane).toEqual([parseIpv4('203.0.113.10')]);
    expect(
      judgeImport({ prefix: parsePrefix('10.96.0.10/32'), nextHop: parseIpv4(ROUTER) }, 'external', bare),
    ).toBeNull();
  });

  it('formats a reason with what it means', () => {
    expect(formatImportRefusal('own-block')).toBe("own-block: one of this node's own IPAM blocks");
  });
});

describe('importContextChanges: which routes a change makes judge again', () => {
  const before = buildImportContext(input());
  const peers = [parseIpv4(NODE_B), parseIpv4(ROUTER)];
  const blocksOf = (changes: 'all' | Array<{ addr: number; len: number }>) =>
    changes === 'all' ? 'all' : changes.map(formatPrefix).sort();

  it('nothing changed: nothing', () => {
    expect(blocksOf(importContextChanges(before, buildImportContext(input()), peers))).toEqual([]);
  });

  it('an affinity that arrives: that block only', () => {
    const after = buildImportContext(
      input({
        affinities: [
          ...input().affinities,
          resource('BlockAffinity', 'node-b-10-244-5-0-26', {
            state: 'confirmed',
            node: 'node-b',
            cidr: '10.244.5.0/26',
          }),
        ],
      }),
    );
    expect(blocksOf(importContextChanges(before, after, peers))).toEqual(['10.244.5.0/26']);
    expect(judgeImport({ prefix: parsePrefix('10.244.5.0/26'), nextHop: parseIpv4(NODE_B) }, 'node', after)).toBeNull();
  });

  it('a node that moves: the blocks it owns and the ones it borrowed from', () => {
    const nodes = input().nodes.map((n) =>
      n.metadata.name === 'node-c' ? resource('Node', 'node-c', { bgp: { ipv4Address: '198.19.1.23/24' } }) : n,
    );
    expect(blocksOf(importContextChanges(before, buildImportContext(input({ nodes })), peers))).toEqual([
      '10.244.2.0/26',
      '10.244.3.0/26',
    ]);
  });

  it('the same block documents (the cache keeps unchanged objects): a moved node is still seen, one changed block alone', () => {
    const same = input();
    const first = buildImportContext(same);
    const nodes = same.nodes.map((n) =>
      n.metadata.name === 'node-b' ? resource('Node', 'node-b', { bgp: { ipv4Address: '198.19.1.22/24' } }) : n,
    );
    // (node-b is not among the peers here: were it, its routes would change kind and everything would go again.)
    expect(blocksOf(importContextChanges(first, buildImportContext({ ...same, nodes }), [parseIpv4(ROUTER)]))).toEqual([
      '10.244.2.0/26',
      '10.244.4.0/26',
      '10.250.0.16/28',
    ]);
    expect(importContextChanges(first, buildImportContext({ ...same, nodes }), peers)).toBe('all');
    const blocks = same.blocks.map((b) =>
      b.spec.cidr === '10.244.4.0/26' ? block('10.244.4.0/26', null, [[2, 'node-b']]) : b,
    );
    expect(blocksOf(importContextChanges(first, buildImportContext({ ...same, blocks }), peers))).toEqual([
      '10.244.4.0/26',
    ]);
    expect(blocksOf(importContextChanges(first, buildImportContext(same), peers))).toEqual([]);
  });

  it('a pool, the subnet, a service range, our blocks, the first context: everything', () => {
    expect(importContextChanges(null, before, peers)).toBe('all');
    expect(importContextChanges(before, buildImportContext(input({ pools: [input().pools[0]!] })), peers)).toBe('all');
    expect(importContextChanges(before, buildImportContext(input({ subnet: '198.19.1.11/23' })), peers)).toBe('all');
    expect(importContextChanges(before, buildImportContext(input({ bgpConfigurations: [] })), peers)).toBe('all');
    expect(importContextChanges(before, buildImportContext(input({ ownBlocks: [] })), peers)).toBe('all');
  });

  it("a peer whose address becomes a node's: everything (its routes change kind); a new node elsewhere: nothing", () => {
    const router = resource('Node', 'router-node', { bgp: { ipv4Address: `${ROUTER}/24` } });
    expect(importContextChanges(before, buildImportContext(input({ nodes: [...input().nodes, router] })), peers)).toBe(
      'all',
    );
    const other = resource('Node', 'node-d', { bgp: { ipv4Address: '198.19.1.14/24' } });
    expect(
      blocksOf(importContextChanges(before, buildImportContext(input({ nodes: [...input().nodes, other] })), peers)),
    ).toEqual([]);
  });

  it('a block that goes away: that block', () => {
    const blocks = input().blocks.filter((b) => b.spec.cidr !== '10.250.0.16/28');
    expect(blocksOf(importContextChanges(before, buildImportContext(input({ blocks })), peers))).toEqual([
      '10.250.0.16/28',
    ]);
  });
});
