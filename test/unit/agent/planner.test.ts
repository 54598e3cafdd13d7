// The peering planner (src/agent/planner.ts) against Calico's documented topologies: full mesh, mesh off
// with reflectors chosen by label, two reflectors sharing a cluster id, an office router as a global eBGP
// peer, a node-specific top-of-rack peer; plus the drop rules, AS precedence and per-peer options.

import { describe, expect, it } from 'vitest';
import { durationSeconds, planPeers } from '../../../src/agent/planner.js';
import type { DesiredPeer, PeeringPlan, PlannerInput } from '../../../src/agent/types.js';
import type { BGPConfigurationSpec, BGPPeerSpec, NodeSpec, Resource } from '../../../src/resources/index.js';

const API = 'projectcalico.org/v3' as const;

function node(
  name: string,
  ip: string | null,
  opts: { labels?: Record<string, string>; as?: number; rr?: string } = {},
): Resource<'Node'> {
  const bgp: NonNullable<NodeSpec['bgp']> = {};
  if (ip !== null) bgp.ipv4Address = ip.includes('/') ? ip : `${ip}/24`;
  if (opts.as !== undefined) bgp.asNumber = opts.as;
  if (opts.rr !== undefined) bgp.routeReflectorClusterID = opts.rr;
  const spec: NodeSpec = Object.keys(bgp).length > 0 ? { bgp } : {};
  return { apiVersion: API, kind: 'Node', metadata: { name, ...(opts.labels ? { labels: opts.labels } : {}) }, spec };
}

function config(name: string, spec: BGPConfigurationSpec): Resource<'BGPConfiguration'> {
  return { apiVersion: API, kind: 'BGPConfiguration', metadata: { name }, spec };
}

function bgpPeer(name: string, spec: BGPPeerSpec): Resource<'BGPPeer'> {
  return { apiVersion: API, kind: 'BGPPeer', metadata: { name }, spec };
}

const MESH_OFF = config('default', { nodeToNodeMeshEnabled: false, asNumber: 64512 });
const RR_PEERING = bgpPeer('peer-with-route-reflectors', {
  nodeSelector: 'all()',
  peerSelector: "route-reflector == 'true'",
});

function plan(
  nodeName: string,
  nodes: Resource<'Node'>[],
  bgpPeers: Resource<'BGPPeer'>[] = [],
  bgpConfigurations: Resource<'BGPConfiguration'>[] = [],
): PeeringPlan {
  const input: PlannerInput = { nodeName, nodes, bgpPeers, bgpConfigurations };
  return planPeers(input);
}

/** The fields that say who a peer is, for compact expectations. */
function brief(p: DesiredPeer): string {
  const flags = [p.passive ? 'passive' : '', p.rrClient ? 'rr-client' : ''].filter(Boolean).join(',');
  return `${p.name} ${p.type} ${p.address}:${p.port} AS${p.asNumber}${flags ? ` ${flags}` : ''}`;
}

function briefs(
  nodeName: string,
  nodes: Resource<'Node'>[],
  peers: Resource<'BGPPeer'>[] = [],
  configs: Resource<'BGPConfiguration'>[] = [],
): string[] {
  return plan(nodeName, nodes, peers, configs).peers.map(brief);
}

describe('full node-to-node mesh (Calico default)', () => {
  const nodes = [node('node-a', '198.18.0.11'), node('node-b', '198.18.0.12'), node('node-c', '198.18.0.13')];

  it.each([
    [
      'node-a',
      [
        'Mesh_198_18_0_12 Mesh 198.18.0.12:179 AS64512 passive',
        'Mesh_198_18_0_13 Mesh 198.18.0.13:179 AS64512 passive',
      ],
    ],
    [
      'node-b',
      ['Mesh_198_18_0_11 Mesh 198.18.0.11:179 AS64512', 'Mesh_198_18_0_13 Mesh 198.18.0.13:179 AS64512 passive'],
    ],
    ['node-c', ['Mesh_198_18_0_11 Mesh 198.18.0.11:179 AS64512', 'Mesh_198_18_0_12 Mesh 198.18.0.12:179 AS64512']],
  ])('%s peers with the two others; the node with the higher IP is passive', (name, expected) => {
    expect(expected.length).toBeGreaterThan(0);
    expect(briefs(name, nodes)).toEqual(expected);
  });

  it('every mesh pair has exactly one passive end, and both ends agree', () => {
    const plans = new Map(nodes.map((n) => [n.spec.bgp!.ipv4Address!.split('/')[0]!, plan(n.metadata.name, nodes)]));
    let pairs = 0;
    for (const [ip, p] of plans) {
      for (const peer of p.peers) {
        const back = plans.get(peer.address)!.peers.find((q) => q.address === ip);
        expect(back, `${peer.address} has no peer back to ${ip}`).toBeDefined();
        expect(peer.passive).not.toBe(back!.passive);
        pairs++;
      }
    }
    expect(pairs).toBe(6);
  });

  it('carries the mesh settings: source address, local AS, no next-hop change, nodeMeshMaxRestartTime', () => {
    const p = plan('node-a', nodes, [], [config('default', { nodeMeshMaxRestartTime: '2m' })]);
    expect(p.routerId).toBe('198.18.0.11');
    expect(p.localAsNumber).toBe(64512);
    expect(p.listenPort).toBe(179);
    expect(p.clusterId).toBeUndefined();
    expect(p.bindAddress).toBeUndefined();
    expect(p.warnings).toEqual([]);
    expect(p.peers[0]).toEqual({
      name: 'Mesh_198_18_0_12',
      address: '198.18.0.12',
      port: 179,
      asNumber: 64512,
      type: 'Mesh',
      localAsNumber: 64512,
      rrClient: false,
      passive: true,
      nextHopMode: 'Auto',
      allowOwnAs: 0,
      sourceAddress: '198.18.0.11',
      restartTime: 120,
    });
  });

  it('compares addresses as Calico does (as strings), so both ends of 10.0.0.9 / 10.0.0.10 agree', () => {
    const pair = [node('nine', '10.0.0.9'), node('ten', '10.0.0.10')];
    const nine = plan('nine', pair).peers[0]!;
    const ten = plan('ten', pair).peers[0]!;
    expect(nine.passive).toBe(false); // "10.0.0.10" < "10.0.0.9" as strings
    expect(ten.passive).toBe(true);
  });

  it('leaves out a node without an IPv4 address, and says so', () => {
    const p = plan('node-a', [...nodes, node('node-x', null)]);
    expect(p.peers.map((x) => x.address)).toEqual(['198.18.0.12', '198.18.0.13']);
    expect(p.warnings).toEqual(['Node node-x has no spec.bgp.ipv4Address; it is left out of the node-to-node mesh']);
  });

  it("uses each peer node's own AS and listen port (node.<name> BGPConfiguration)", () => {
    const p = plan(
      'node-a',
      [nodes[0]!, node('node-b', '198.18.0.12', { as: 64600 })],
      [],
      [config('node.node-b', { listenPort: 1179 })],
    );
    expect(p.peers.map(brief)).toEqual(['Mesh_198_18_0_12 Mesh 198.18.0.12:1179 AS64600 passive']);
  });

  it('has no mesh when nodeToNodeMeshEnabled is false', () => {
    expect(briefs('node-a', nodes, [], [MESH_OFF])).toEqual([]);
  });
});

describe('mesh off, route reflectors chosen by label', () => {
  const nodes = [
    node('node-a', '198.18.0.11'),
    node('node-b', '198.18.0.12'),
    node('rr-1', '198.18.0.21', { labels: { 'route-reflector': 'true' }, rr: '244.0.0.1' }),
  ];

  it.each([
    ['node-a', ['Node_198_18_0_21 Node 198.18.0.21:179 AS64512']],
    ['node-b', ['Node_198_18_0_21 Node 198.18.0.21:179 AS64512']],
    // The reflector peers back with every node the BGPPeer's nodeSelector picks (Calico's reverse peering).
    [
      'rr-1',
      [
        'Node_198_18_0_11 Node 198.18.0.11:179 AS64512 rr-client',
        'Node_198_18_0_12 Node 198.18.0.12:179 AS64512 rr-client',
      ],
    ],
  ])('%s', (name, expected) => {
    expect(expected.length).toBeGreaterThan(0);
    expect(briefs(name, nodes, [RR_PEERING], [MESH_OFF])).toEqual(expected);
  });

  it('reversePeering: Manual — the reflector does not peer back by itself; its own BGPPeer gives it the clients', () => {
    const manual = { ...RR_PEERING, spec: { ...RR_PEERING.spec, reversePeering: 'Manual' as const } };
    expect(briefs('rr-1', nodes, [manual], [MESH_OFF])).toEqual([]);
    expect(briefs('node-a', nodes, [manual], [MESH_OFF])).toEqual(['Node_198_18_0_21 Node 198.18.0.21:179 AS64512']);
    const back = bgpPeer('rr-to-clients', {
      nodeSelector: "route-reflector == 'true'",
      peerSelector: '!has(route-reflector)',
    });
    expect(briefs('rr-1', nodes, [manual, back], [MESH_OFF])).toEqual([
      'Node_198_18_0_11 Node 198.18.0.11:179 AS64512 rr-client',
      'Node_198_18_0_12 Node 198.18.0.12:179 AS64512 rr-client',
    ]);
  });

  it('the reflector plan carries its cluster id and the BGPPeer it came from', () => {
    const p = plan('rr-1', nodes, [RR_PEERING], [MESH_OFF]);
    expect(p.clusterId).toBe('244.0.0.1');
    expect(
      p.peers.every((x) => x.fromResource === 'peer-with-route-reflectors' && x.sourceAddress === '198.18.0.21'),
    ).toBe(true);
    expect(p.warnings).toEqual([]);
  });

  it('with the mesh still on (migration), clients keep meshing with each other but nobody meshes with the reflector', () => {
    expect(briefs('node-a', nodes, [RR_PEERING])).toEqual([
      'Mesh_198_18_0_12 Mesh 198.18.0.12:179 AS64512 passive',
      'Node_198_18_0_21 Node 198.18.0.21:179 AS64512',
    ]);
    expect(briefs('rr-1', nodes, [RR_PEERING])).toEqual([
      'Node_198_18_0_11 Node 198.18.0.11:179 AS64512 rr-client',
      'Node_198_18_0_12 Node 198.18.0.12:179 AS64512 rr-client',
    ]);
  });
});

describe('two route reflectors sharing a cluster id', () => {
  const labels = { 'route-reflector': 'true' };
  const nodes = [
    node('node-a', '198.18.0.11'),
    node('node-b', '198.18.0.12'),
    node('rr-1', '198.18.0.21', { labels, rr: '244.0.0.1' }),
    node('rr-2', '198.18.0.22', { labels, rr: '244.0.0.1' }),
  ];

  it.each([
    ['node-a', ['Node_198_18_0_21 Node 198.18.0.21:179 AS64512', 'Node_198_18_0_22 Node 198.18.0.22:179 AS64512']],
    [
      'rr-1',
      [
        'Node_198_18_0_11 Node 198.18.0.11:179 AS64512 rr-client',
        'Node_198_18_0_12 Node 198.18.0.12:179 AS64512 rr-client',
        'Node_198_18_0_22 Node 198.18.0.22:179 AS64512',
      ],
    ],
    [
      'rr-2',
      [
        'Node_198_18_0_11 Node 198.18.0.11:179 AS64512 rr-client',
        'Node_198_18_0_12 Node 198.18.0.12:179 AS64512 rr-client',
        'Node_198_18_0_21 Node 198.18.0.21:179 AS64512',
      ],
    ],
  ])('%s: clients of both, plain iBGP between the reflectors', (name, expected) => {
    expect(expected.length).toBeGreaterThan(0);
    expect(briefs(name, nodes, [RR_PEERING], [MESH_OFF])).toEqual(expected);
  });

  it('a reflector in another cluster is a client of ours (RFC 4456: outside our cluster)', () => {
    const mixed = [...nodes.slice(0, 3), node('rr-2', '198.18.0.22', { labels, rr: '244.0.0.2' })];
    const rr1 = plan('rr-1', mixed, [RR_PEERING], [MESH_OFF]);
    expect(rr1.peers.find((p) => p.address === '198.18.0.22')?.rrClient).toBe(true);
  });

  it('a peerIP to a same-cluster reflector is plain iBGP too', () => {
    const direct = bgpPeer('rr-to-rr', { node: 'rr-1', peerIP: '198.18.0.22', asNumber: 64512 });
    const p = plan('rr-1', nodes, [direct], [MESH_OFF]);
    expect(p.peers.map(brief)).toEqual(['Node_198_18_0_22 Node 198.18.0.22:179 AS64512']);
    // rr-2 is that BGPPeer's remote end, so it peers back with rr-1.
    expect(briefs('rr-2', nodes, [direct], [MESH_OFF])).toEqual(['Node_198_18_0_21 Node 198.18.0.21:179 AS64512']);
  });
});

describe('office router as a global eBGP peer', () => {
  const nodes = [
    node('node-a', '198.18.0.11'),
    node('node-b', '198.18.0.12'),
    node('rr-1', '198.18.0.21', { rr: '244.0.0.1' }),
  ];
  const office = bgpPeer('office-router', { peerIP: '198.18.0.50', asNumber: 65001 });

  it.each(['node-a', 'node-b', 'rr-1'])('%s peers with it as Global, active, never an RR client', (name) => {
    const p = plan(name, nodes, [office], [MESH_OFF]);
    expect(p.peers).toHaveLength(1);
    expect(p.peers[0]).toMatchObject({
      name: 'Global_198_18_0_50',
      type: 'Global',
      address: '198.18.0.50',
      port: 179,
      asNumber: 65001,
      localAsNumber: 64512,
      passive: false,
      rrClient: false,
      fromResource: 'office-router',
    });
  });

  it('an explicit port is kept and named as Calico names it', () => {
    const p = plan(
      'node-a',
      nodes,
      [bgpPeer('office-router', { peerIP: '198.18.0.50:1179', asNumber: 65001 })],
      [MESH_OFF],
    );
    expect(p.peers.map(brief)).toEqual(['Global_198_18_0_50_port_1179 Global 198.18.0.50:1179 AS65001']);
  });

  it('a global peerIP that is another node follows the passive rule, and that node peers back with everyone', () => {
    const toNodeB = bgpPeer('everyone-to-b', { peerIP: '198.18.0.12', asNumber: 64512 });
    expect(briefs('node-a', nodes, [toNodeB], [MESH_OFF])).toEqual([
      'Global_198_18_0_12 Global 198.18.0.12:179 AS64512 passive',
    ]);
    expect(briefs('node-b', nodes, [toNodeB], [MESH_OFF])).toEqual([
      'Node_198_18_0_11 Node 198.18.0.11:179 AS64512',
      'Node_198_18_0_21 Node 198.18.0.21:179 AS64512',
    ]);
    // On the reflector, node-b (same AS, no cluster id) is a client.
    expect(briefs('rr-1', nodes, [toNodeB], [MESH_OFF])).toEqual([
      'Global_198_18_0_12 Global 198.18.0.12:179 AS64512 rr-client',
    ]);
  });
});

describe('node-specific top-of-rack peer', () => {
  const nodes = [
    node('node-a', '198.18.0.11', { labels: { rack: 'a' } }),
    node('node-b', '198.18.0.12', { labels: { rack: 'b' } }),
  ];

  it.each([
    ['nodeSelector', bgpPeer('rack-a-tor', { nodeSelector: "rack == 'a'", peerIP: '198.18.1.1', asNumber: 65010 })],
    ['node', bgpPeer('rack-a-tor', { node: 'node-a', peerIP: '198.18.1.1', asNumber: 65010 })],
  ])('selected by %s: only node-a peers with the ToR', (_how, tor) => {
    expect(briefs('node-a', nodes, [tor], [MESH_OFF])).toEqual(['Node_198_18_1_1 Node 198.18.1.1:179 AS65010']);
    expect(briefs('node-b', nodes, [tor], [MESH_OFF])).toEqual([]);
  });

  it('the ToR session sits beside the mesh', () => {
    const tor = bgpPeer('rack-a-tor', { nodeSelector: "rack == 'a'", peerIP: '198.18.1.1', asNumber: 65010 });
    expect(briefs('node-a', nodes, [tor])).toEqual([
      'Mesh_198_18_0_12 Mesh 198.18.0.12:179 AS64512 passive',
      'Node_198_18_1_1 Node 198.18.1.1:179 AS65010',
    ]);
  });
});

describe('drop rules', () => {
  const nodes = [node('node-a', '198.18.0.11', { labels: { rack: 'a' } }), node('node-b', '198.18.0.12')];

  it('a node-specific peer is dropped when a global one to the same IP exists', () => {
    const global = bgpPeer('office', { peerIP: '198.18.1.1', asNumber: 65001 });
    const specific = bgpPeer('rack-a', { nodeSelector: "rack == 'a'", peerIP: '198.18.1.1', asNumber: 65010 });
    const p = plan('node-a', nodes, [specific, global], [MESH_OFF]);
    expect(p.peers.map(brief)).toEqual(['Global_198_18_1_1 Global 198.18.1.1:179 AS65001']);
    expect(p.warnings).toEqual([
      'BGPPeer rack-a: the node-specific peering to 198.18.1.1:179 is dropped; global BGPPeer office already peers with it',
    ]);
  });

  it('a peer with our own IP is skipped', () => {
    const self = bgpPeer('to-a', { peerIP: '198.18.0.11', asNumber: 65001 });
    expect(briefs('node-a', nodes, [self], [MESH_OFF])).toEqual([]);
    const everyone = bgpPeer('all-nodes', { peerSelector: 'all()' });
    expect(briefs('node-a', nodes, [everyone], [MESH_OFF])).toEqual([
      'Global_198_18_0_12 Global 198.18.0.12:179 AS64512',
    ]);
  });

  it('one session per address and port: an explicit peer to a mesh neighbour replaces the mesh peer, with a warning', () => {
    const everyone = bgpPeer('all-nodes', { peerSelector: 'all()' });
    const p = plan('node-a', nodes, [everyone]);
    expect(p.peers.map(brief)).toEqual(['Global_198_18_0_12 Global 198.18.0.12:179 AS64512']);
    expect(p.warnings).toEqual([
      'Mesh_198_18_0_12 is dropped: Global_198_18_0_12 (BGPPeer all-nodes) already peers with 198.18.0.12:179, and a node has one session per address and port',
    ]);
  });

  it('reachableBy: every peering the BGPPeer makes carries the gateway (felix routes the peer through it)', () => {
    const peers = [
      bgpPeer('rr-a', { peerIP: '10.225.0.4', asNumber: 65515, reachableBy: '10.224.0.1' }),
      bgpPeer('bad', { peerIP: '10.225.0.6', asNumber: 65515, reachableBy: 'ffee::1' }),
    ];
    const p = plan('node-a', nodes, peers, [MESH_OFF]);
    expect(p.peers.map((x) => `${x.address} ${x.reachableBy ?? '-'}`)).toEqual([
      '10.225.0.4 10.224.0.1',
      '10.225.0.6 -',
    ]);
    expect(p.warnings).toEqual([
      'BGPPeer bad: spec.reachableBy "ffee::1" is not an IPv4 address (tortie peers over IPv4 only); no static route to the peer',
    ]);
  });

  it('two BGPPeers to one address on different ports are two sessions, named with their ports', () => {
    const peers = [
      bgpPeer('router-a', { peerIP: '198.18.0.50:1790', asNumber: 65001 }),
      bgpPeer('router-b', { peerIP: '198.18.0.50:1791', asNumber: 65002 }),
      bgpPeer('router-c', { peerIP: '198.18.0.50', asNumber: 65003 }),
    ];
    const p = plan('node-a', nodes, peers, [MESH_OFF]);
    expect(p.peers.map(brief)).toEqual([
      'Global_198_18_0_50 Global 198.18.0.50:179 AS65003',
      'Global_198_18_0_50_port_1790 Global 198.18.0.50:1790 AS65001',
      'Global_198_18_0_50_port_1791 Global 198.18.0.50:1791 AS65002',
    ]);
    expect(p.warnings).toEqual([]);
    // A mesh neighbour on its listen port and a BGPPeer to another port on the same node: both.
    const second = plan('node-a', nodes, [bgpPeer('second-speaker', { peerIP: '198.18.0.12:1179', asNumber: 65010 })]);
    expect(second.peers.map(brief)).toContain('Global_198_18_0_12_port_1179 Global 198.18.0.12:1179 AS65010 passive');
    expect(second.peers.map(brief).filter((b) => b.startsWith('Mesh_198_18_0_12 '))).toHaveLength(1);
  });
});

describe('AS number precedence', () => {
  it.each([
    [
      'Node.spec.bgp.asNumber wins',
      { as: 65100 },
      [config('default', { asNumber: 65300 }), config('node.node-a', { asNumber: 65200 })],
      65100,
    ],
    [
      'then BGPConfiguration node.<name>',
      {},
      [config('default', { asNumber: 65300 }), config('node.node-a', { asNumber: 65200 })],
      65200,
    ],
    ['then BGPConfiguration default', {}, [config('default', { asNumber: 65300 })], 65300],
    ['then 64512', {}, [], 64512],
  ] as const)('%s', (_what, opts, configs, expected) => {
    const nodes = [node('node-a', '198.18.0.11', opts), node('node-b', '198.18.0.12')];
    const p = plan('node-a', nodes, [], [...configs]);
    expect(p.localAsNumber).toBe(expected);
    expect(p.peers[0]?.localAsNumber).toBe(expected);
    // node-b has no AS of its own: it takes the global one.
    expect(p.peers[0]?.asNumber).toBe(configs.find((c) => c.metadata.name === 'default')?.spec.asNumber ?? 64512);
  });
});

describe('BGPPeer options', () => {
  const nodes = [node('node-a', '198.18.0.11'), node('rr-1', '198.18.0.21', { rr: '244.0.0.1' })];
  const peerOf = (spec: BGPPeerSpec, name = 'node-a'): DesiredPeer => {
    const p = plan(name, nodes, [bgpPeer('x', { peerIP: '198.18.1.1', asNumber: 65001, ...spec })], [MESH_OFF]);
    expect(p.peers).toHaveLength(1);
    return p.peers[0]!;
  };

  it.each([
    [{}, 'Auto'],
    [{ nextHopMode: 'Self' }, 'Self'],
    [{ nextHopMode: 'Keep' }, 'Keep'],
    [{ keepOriginalNextHop: true }, 'Keep'],
    [{ keepOriginalNextHop: true, asNumber: 64512 }, 'Auto'], // Calico: keepOriginalNextHop counts toward eBGP peers only
  ] as const)('next hop %j → %s', (spec, mode) => {
    expect(peerOf(spec).nextHopMode).toBe(mode);
  });

  it('durations become seconds; numAllowedLocalASNumbers and localASNumber are carried', () => {
    const p = peerOf({
      keepaliveTime: '20s',
      maxRestartTime: '1m30s',
      numAllowedLocalASNumbers: 2,
      localASNumber: 65050,
    });
    expect(p).toMatchObject({ keepaliveTime: 20, restartTime: 90, allowOwnAs: 2, localAsNumber: 65050 });
  });

  it("the annotation tortie.dev/max-prefixes is the peer's prefix limit; a bad value is a warning", () => {
    const annotated = (value: string) => {
      const peer = bgpPeer('x', { peerIP: '198.18.1.1', asNumber: 65001 });
      peer.metadata.annotations = { 'tortie.dev/max-prefixes': value };
      return plan('node-a', nodes, [peer], [MESH_OFF]);
    };
    expect(annotated('1000').peers[0]?.maxPrefixes).toBe(1000);
    expect(peerOf({}).maxPrefixes).toBeUndefined();
    const bad = annotated('lots');
    expect(bad.peers[0]?.maxPrefixes).toBeUndefined();
    expect(bad.warnings).toEqual([
      'BGPPeer x: annotation tortie.dev/max-prefixes="lots" is not a whole number 1..4294967295; the default limit applies',
    ]);
  });

  it('localASNumber decides iBGP/eBGP for the RR-client rule', () => {
    expect(peerOf({ asNumber: 64512 }, 'rr-1').rrClient).toBe(true);
    expect(peerOf({ asNumber: 64512, localASNumber: 65050 }, 'rr-1').rrClient).toBe(false);
    expect(peerOf({ asNumber: 65050, localASNumber: 65050 }, 'rr-1').rrClient).toBe(true);
  });

  it('sourceAddress UseNodeIP (default) is our IP; None leaves it to the kernel', () => {
    expect(peerOf({}).sourceAddress).toBe('198.18.0.11');
    expect(peerOf({ sourceAddress: 'None' }).sourceAddress).toBeUndefined();
  });

  it('bindMode NodeIP binds to the node IP; listenPort comes from node.<name>, then default', () => {
    const configs = [
      config('default', { bindMode: 'NodeIP', listenPort: 1790 }),
      config('node.node-a', { listenPort: 1179 }),
    ];
    const a = plan('node-a', nodes, [], configs);
    expect(a.bindAddress).toBe('198.18.0.11');
    expect(a.listenPort).toBe(1179);
    expect(plan('rr-1', nodes, [], configs).listenPort).toBe(1790);
  });

  it("a peerIP without a port to one of our nodes uses that node's listen port", () => {
    const p = plan(
      'node-a',
      nodes,
      [bgpPeer('to-rr', { peerIP: '198.18.0.21', asNumber: 64512 })],
      [MESH_OFF, config('node.rr-1', { listenPort: 1179 })],
    );
    expect(p.peers.map(brief)).toEqual(['Global_198_18_0_21_port_1179 Global 198.18.0.21:1179 AS64512 passive']);
  });
});

describe('warnings and determinism', () => {
  const nodes = [
    node('node-a', '198.18.0.11', { labels: { rack: 'a' } }),
    node('node-b', '198.18.0.12'),
    node('node-c', null, { labels: { rr: 'x' } }),
  ];

  it.each([
    [bgpPeer('p', { peerSelector: "rack == 'z'" }), 'BGPPeer p: spec.peerSelector "rack == \'z\'" matches no node'],
    [
      bgpPeer('p', { peerSelector: "rr == 'x'" }),
      'Node node-c has no spec.bgp.ipv4Address; BGPPeer p cannot peer with it',
    ],
    [
      bgpPeer('p', { node: 'node-b', nodeSelector: "rack == 'a'", peerIP: '198.18.1.1', asNumber: 65001 }),
      'BGPPeer p: both spec.node "node-b" and spec.nodeSelector are set; the nodeSelector is used (set one of them)',
    ],
    [bgpPeer('p', { peerSelector: 'rack ==' }), 'BGPPeer p: spec.peerSelector "rack ==" does not parse'],
    [
      bgpPeer('p', { peerIP: '198.18.1.1', asNumber: 65001, keepaliveTime: 'soon' }),
      'BGPPeer p: spec.keepaliveTime "soon" is not a duration (like 120s, 1m30s or 2h); ignored',
    ],
    [
      bgpPeer('p', { peerIP: '198.18.1.1' }),
      "BGPPeer p: spec.asNumber is not set and 198.18.1.1 is not a node's address",
    ],
    [bgpPeer('p', { peerIP: '2001:db8::1', asNumber: 65001 }), 'BGPPeer p: spec.peerIP "2001:db8::1" is IPv6'],
  ])('%#: warns', (peer, message) => {
    const warnings = plan('node-a', nodes, [peer], [MESH_OFF]).warnings;
    expect(warnings.length).toBeGreaterThan(0);
    expect(warnings.some((w) => w.startsWith(message))).toBe(true);
  });

  it('the output does not depend on input order, and is sorted by address as numbers', () => {
    const many = [node('n9', '10.0.0.9'), node('n10', '10.0.0.10'), node('n2', '10.0.0.2'), node('self', '10.0.0.1')];
    const peers = [
      bgpPeer('b', { peerIP: '10.0.1.1', asNumber: 65001 }),
      bgpPeer('a', { peerIP: '10.0.0.200', asNumber: 65002 }),
    ];
    const forward = plan('self', many, peers);
    const reversed = plan('self', [...many].reverse(), [...peers].reverse());
    expect(reversed).toEqual(forward);
    expect(forward.peers.map((p) => p.address)).toEqual([
      '10.0.0.2',
      '10.0.0.9',
      '10.0.0.10',
      '10.0.0.200',
      '10.0.1.1',
    ]);
  });

  it('refuses to plan for a missing node; a node without an IPv4 address gets no sessions (IPv4 disabled)', () => {
    expect(() => plan('ghost', nodes)).toThrow(/nodeName "ghost" is not among the 3 Node resources/);
    const noIpv4 = plan('node-c', nodes);
    expect(noIpv4.routerId).toBeNull();
    expect(noIpv4.peers).toEqual([]);
    expect(noIpv4.warnings).toContainEqual(
      expect.stringMatching(/^Node node-c has no usable spec\.bgp\.ipv4Address: IPv4 is disabled on this node/),
    );
  });
});

describe('durationSeconds (Go duration syntax)', () => {
  it.each([
    ['120s', 120],
    ['1m30s', 90],
    ['2h', 7200],
    ['1.5h', 5400],
    ['1500ms', 2],
    ['0', 0],
    ['abc', null],
    ['10', null],
    ['', null],
    ['5s junk', null],
  ] as const)('%j → %j', (text, seconds) => {
    expect(durationSeconds(text)).toBe(seconds);
  });
});

describe('both ends agree, in every topology above', () => {
  const rrLabels = { 'route-reflector': 'true' };
  const topologies: Array<[string, Resource<'Node'>[], Resource<'BGPPeer'>[], Resource<'BGPConfiguration'>[]]> = [
    ['full mesh', [node('a', '198.18.0.11'), node('b', '198.18.0.12'), node('c', '198.18.0.13')], [], []],
    [
      'one reflector',
      [
        node('a', '198.18.0.11'),
        node('b', '198.18.0.12'),
        node('rr', '198.18.0.21', { labels: rrLabels, rr: '244.0.0.1' }),
      ],
      [RR_PEERING],
      [MESH_OFF],
    ],
    [
      'migration: reflector added, mesh still on',
      [
        node('a', '198.18.0.11'),
        node('b', '198.18.0.12'),
        node('rr', '198.18.0.21', { labels: rrLabels, rr: '244.0.0.1' }),
      ],
      [RR_PEERING],
      [],
    ],
    [
      'migration: labelled, no cluster id yet',
      [node('a', '198.18.0.11'), node('b', '198.18.0.12'), node('rr', '198.18.0.21', { labels: rrLabels })],
      [RR_PEERING],
      [],
    ],
    [
      'two reflectors, one cluster',
      [
        node('a', '198.18.0.11'),
        node('b', '198.18.0.12'),
        node('rr1', '198.18.0.21', { labels: rrLabels, rr: '244.0.0.1' }),
        node('rr2', '198.18.0.22', { labels: rrLabels, rr: '244.0.0.1' }),
      ],
      [RR_PEERING],
      [MESH_OFF],
    ],
    [
      'mixed AS mesh',
      [node('a', '198.18.0.11', { as: 65001 }), node('b', '198.18.0.12', { as: 65002 }), node('c', '198.18.0.13')],
      [],
      [],
    ],
  ];

  it.each(topologies)('%s', (_name, nodes, peers, configs) => {
    const plans = new Map(
      nodes.map((n) => [n.spec.bgp!.ipv4Address!.split('/')[0]!, plan(n.metadata.name, nodes, peers, configs)]),
    );
    let sessions = 0;
    for (const [ip, p] of plans) {
      for (const peer of p.peers) {
        const other = plans.get(peer.address);
        if (other === undefined) continue;
        const back = other.peers.find((q) => q.address === ip);
        expect(back, `${ip} → ${peer.address} has no way back`).toBeDefined();
        expect(back!.type).toBe(peer.type);
        expect(peer.passive && back!.passive).toBe(false);
        expect(peer.asNumber).toBe(other.localAsNumber);
        expect(back!.asNumber).toBe(p.localAsNumber);
        // A client on one side means a reflector on this side and not a client on the other.
        if (peer.rrClient) {
          expect(p.clusterId).toBeDefined();
          expect(back!.rrClient).toBe(false);
        }
        sessions++;
      }
    }
    expect(sessions).toBeGreaterThan(0);
  });
});
