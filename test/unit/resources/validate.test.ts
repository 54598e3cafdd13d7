// validateResource and validateAgainst, one case per rule: each bad value gives exactly the problem
// expected (path and message), and each good variant gives none.

import { describe, expect, it } from 'vitest';
import {
  applyDefaults,
  formatProblem,
  ResourceError,
  validateAgainst,
  validateResource,
  type AnyResource,
  type Problem,
  type Resource,
  type ResourceSpecs,
} from '../../../src/resources/index.js';

function res<K extends keyof ResourceSpecs>(
  kind: K,
  name: string,
  spec: ResourceSpecs[K],
  namespace?: string,
): Resource<K> {
  return {
    apiVersion: 'projectcalico.org/v3',
    kind,
    metadata: namespace === undefined ? { name } : { name, namespace },
    spec,
  };
}
const pool = (spec: Partial<ResourceSpecs['IPPool']>, name = 'p1') =>
  res('IPPool', name, { cidr: '10.244.0.0/16', ...spec });
const peer = (spec: Partial<ResourceSpecs['BGPPeer']>, name = 'peer1') =>
  res('BGPPeer', name, { peerIP: '198.18.0.1', asNumber: 64513, ...spec });
const config = (spec: Partial<ResourceSpecs['BGPConfiguration']>, name = 'default') =>
  res('BGPConfiguration', name, spec);
const node = (bgp: NonNullable<ResourceSpecs['Node']['bgp']>, name = 'node-1') => res('Node', name, { bgp });
const wep = (spec: Partial<ResourceSpecs['WorkloadEndpoint']>, namespace = 'default') =>
  res(
    'WorkloadEndpoint',
    'node--1-k8s-web-eth0',
    { node: 'node-1', interfaceName: 'cali0123456789a', ipNetworks: ['10.244.1.5/32'], ...spec },
    namespace,
  );

/** [what, resource, the one problem expected as "path: message"] */
const BAD: Array<[string, AnyResource, string]> = [
  ['cidr not a CIDR', pool({ cidr: '10.244.0.0/33' }), 'spec.cidr: "10.244.0.0/33" is not a CIDR (like 10.244.0.0/16)'],
  ['cidr missing', pool({ cidr: '' }), 'spec.cidr is required (like 10.244.0.0/16)'],
  [
    'cidr with host bits',
    pool({ cidr: '10.244.1.1/16' }),
    'spec.cidr: "10.244.1.1/16" has host bits set (did you mean 10.244.0.0/16?)',
  ],
  ['blockSize too small', pool({ blockSize: 19 }), 'spec.blockSize: 19 is not in 20..32 (IPv4)'],
  ['blockSize too large', pool({ blockSize: 33 }), 'spec.blockSize: 33 is not in 20..32 (IPv4)'],
  ['IPv6 blockSize', pool({ cidr: 'fd00:10:244::/48', blockSize: 26 }), 'spec.blockSize: 26 is not in 116..128 (IPv6)'],
  [
    'pool smaller than a block',
    pool({ cidr: '10.244.0.0/27', blockSize: 26 }),
    'spec.cidr: 10.244.0.0/27 is smaller than one block (blockSize 26): the prefix length must be at most 26, or the pool disabled',
  ],
  [
    'ipip and vxlan both',
    pool({ ipipMode: 'Always', vxlanMode: 'CrossSubnet' }),
    'spec.ipipMode and spec.vxlanMode cannot both be enabled (ipipMode Always, vxlanMode CrossSubnet); set one of them to Never',
  ],
  [
    'IPIP on IPv6',
    pool({ cidr: 'fd00:10:244::/48', ipipMode: 'Always' }),
    'spec.ipipMode: Always: IPIP is not supported on IPv6 pools (use Never)',
  ],
  [
    'link-local pool',
    pool({ cidr: '169.254.0.0/20' }),
    'spec.cidr: 169.254.0.0/20 overlaps the link-local range 169.254.0.0/16, which cannot be a pool',
  ],
  [
    'bad nodeSelector',
    pool({ nodeSelector: "zone == 'a" }),
    "spec.nodeSelector: \"zone == 'a\" is not a valid selector: unterminated string (no closing ') at position 8\n  zone == 'a\n          ^",
  ],
  [
    'global() in a pool',
    pool({ nodeSelector: 'global()' }),
    'spec.nodeSelector: "global()": global() is not valid in an IPPool nodeSelector (use all() or label expressions)',
  ],
  [
    'bad pool name',
    pool({}, 'Pool_1'),
    'metadata.name: "Pool_1" is not a valid name (lowercase letters, digits, "-" and ".", starting and ending with a letter or digit, at most 253 characters)',
  ],
  ['wrong type', pool({ blockSize: '26' as unknown as number }), 'spec.blockSize: "26" is not an integer'],
  [
    'peer node and nodeSelector',
    peer({ node: 'node-1', nodeSelector: 'all()' }),
    'spec.node and spec.nodeSelector cannot both be set (node "node-1", nodeSelector "all()"); keep one',
  ],
  [
    'peer peerIP and peerSelector',
    peer({ peerSelector: "rr == 'true'", asNumber: undefined }),
    'spec.peerIP and spec.peerSelector cannot both be set (peerIP "198.18.0.1", peerSelector "rr == \'true\'"); keep one',
  ],
  [
    'peer neither peerIP nor peerSelector',
    peer({ peerIP: undefined, asNumber: undefined }),
    "spec.peerIP or spec.peerSelector is required (like peerIP: 198.18.0.1 or peerSelector: route-reflector == 'true')",
  ],
  [
    'peer asNumber with peerSelector',
    peer({ peerIP: undefined, peerSelector: 'all()', asNumber: 64513 }),
    "spec.asNumber must be empty when spec.peerSelector is set (the selected nodes' own AS numbers are used)",
  ],
  [
    'peerIP not an IP',
    peer({ peerIP: '198.18.0' }),
    'spec.peerIP: "198.18.0" is not an IP address or ip:port (like 198.18.0.1, 198.18.0.1:1179 or [2001:db8::1]:179)',
  ],
  [
    'peerIP bad port',
    peer({ peerIP: '198.18.0.1:70000' }),
    'spec.peerIP: "198.18.0.1:70000" is not an IP address or ip:port (like 198.18.0.1, 198.18.0.1:1179 or [2001:db8::1]:179)',
  ],
  [
    'peer asNumber 0',
    peer({ asNumber: 0 }),
    'spec.asNumber: 0 is not an AS number in 1..4294967295 (asdot like "1.10" is accepted too)',
  ],
  [
    'peer asNumber too big',
    peer({ asNumber: 4294967296 }),
    'spec.asNumber: 4294967296 is not an AS number in 1..4294967295 (asdot like "1.10" is accepted too)',
  ],
  [
    'peer localASNumber',
    peer({ localASNumber: -1 }),
    'spec.localASNumber: -1 is not an AS number in 1..4294967295 (asdot like "1.10" is accepted too)',
  ],
  [
    'peer nextHopMode',
    peer({ nextHopMode: 'self' as 'Self' }),
    'spec.nextHopMode: "self" is not one of Auto, Self, Keep',
  ],
  [
    'keepOriginalNextHop with nextHopMode',
    peer({ keepOriginalNextHop: true, nextHopMode: 'Keep' }),
    'spec.keepOriginalNextHop and spec.nextHopMode cannot both be set; keepOriginalNextHop is deprecated, use nextHopMode: Keep',
  ],
  [
    'peer duration',
    peer({ maxRestartTime: '120' }),
    'spec.maxRestartTime: "120" is not a duration (like "120s", "1m30s" or "500ms")',
  ],
  [
    'peer keepalive duration',
    peer({ keepaliveTime: '1m30' }),
    'spec.keepaliveTime: "1m30" is not a duration (like "120s", "1m30s" or "500ms")',
  ],
  [
    'peer bad peerSelector',
    peer({ peerIP: undefined, asNumber: undefined, peerSelector: 'rr = "x"' }),
    'spec.peerSelector: "rr = \\"x\\"" is not a valid selector: expected == at position 3\n  rr = "x"\n     ^',
  ],
  [
    'config name',
    config({}, 'global'),
    'metadata.name: "global" is not a BGPConfiguration name (accepted: default, or node.<node name>)',
  ],
  [
    'config node name',
    config({}, 'node.Bad_Name'),
    'metadata.name: "node.Bad_Name" is not a BGPConfiguration name (accepted: default, or node.<node name>)',
  ],
  [
    'config asNumber',
    config({ asNumber: 0 }),
    'spec.asNumber: 0 is not an AS number in 1..4294967295 (asdot like "1.10" is accepted too)',
  ],
  ['config listenPort', config({ listenPort: 70000 }), 'spec.listenPort: 70000 is not a port in 1..65535'],
  [
    'config logSeverityScreen',
    config({ logSeverityScreen: 'Verbose' }),
    'spec.logSeverityScreen: "Verbose" is not a log severity (accepted: Trace, Debug, Info, Warning, Error, Fatal)',
  ],
  ['config bindMode', config({ bindMode: 'All' as 'None' }), 'spec.bindMode: "All" is not one of None, NodeIP'],
  [
    'config mesh restart time',
    config({ nodeMeshMaxRestartTime: 'soon' }),
    'spec.nodeMeshMaxRestartTime: "soon" is not a duration (like "120s", "1m30s" or "500ms")',
  ],
  [
    'mesh restart time with mesh off',
    config({ nodeToNodeMeshEnabled: false, nodeMeshMaxRestartTime: '120s' }),
    'spec.nodeMeshMaxRestartTime cannot be set when spec.nodeToNodeMeshEnabled is false',
  ],
  [
    'mesh password on a node config',
    config({ nodeMeshPassword: { secretKeyRef: { name: 's', key: 'k' } } }, 'node.node-1'),
    'spec.nodeMeshPassword can only be set in the BGPConfiguration named default',
  ],
  [
    'service cluster IPs',
    config({ serviceClusterIPs: [{ cidr: '10.96.0.0' }] }),
    'spec.serviceClusterIPs[0].cidr: "10.96.0.0" is not a CIDR (like 10.244.0.0/16)',
  ],
  [
    'community value',
    config({
      communities: [{ name: 'c1', value: '64512' }],
      prefixAdvertisements: [{ cidr: '10.244.0.0/16', communities: ['c1'] }],
    }),
    'spec.communities[0].value: "64512" is not a community (like "64512:100" with both parts 0..65535, or large "64512:100:200" with each part 0..4294967295)',
  ],
  [
    'node address without prefix',
    node({ ipv4Address: '198.18.0.11' }),
    'spec.bgp.ipv4Address: "198.18.0.11" has no prefix length: write it with the node\'s subnet, like 198.18.0.11/24 (CrossSubnet needs it to tell which nodes share a subnet)',
  ],
  [
    'node address junk',
    node({ ipv4Address: '198.18.0.300/24' }),
    'spec.bgp.ipv4Address: "198.18.0.300/24" is not an IPv4 address with prefix length (like 198.18.0.11/24)',
  ],
  [
    'node cluster ID',
    node({ ipv4Address: '198.18.0.11/24', routeReflectorClusterID: '244.0.0' }),
    'spec.bgp.routeReflectorClusterID: "244.0.0" is not a cluster ID in IPv4 form (like 244.0.0.1)',
  ],
  [
    'node tunnel address',
    node({ ipv4IPIPTunnelAddr: '10.244.1.0/32' }),
    'spec.bgp.ipv4IPIPTunnelAddr: "10.244.1.0/32" is not an IPv4 address (like 10.244.1.0)',
  ],
  [
    'node asNumber',
    node({ asNumber: 4294967296 }),
    'spec.bgp.asNumber: 4294967296 is not an AS number in 1..4294967295 (asdot like "1.10" is accepted too)',
  ],
  ['node empty bgp', node({}), 'spec.bgp should not be empty (remove it, or set ipv4Address)'],
  ['wep without node', wep({ node: '' }), 'spec.node is required (the node the workload runs on)'],
  [
    'wep interface name',
    wep({ interfaceName: 'cali0123456789abcdef' }),
    'spec.interfaceName: "cali0123456789abcdef" is not a Linux interface name (1..15 characters, no spaces, "/" or ":")',
  ],
  [
    'wep ipNetworks',
    wep({ ipNetworks: ['10.244.1.5/32', '10.244.1.6'] }),
    'spec.ipNetworks[1]: "10.244.1.6" is not a CIDR (like 10.244.0.0/16)',
  ],
  [
    'wep without ipNetworks',
    wep({ ipNetworks: [] }),
    'spec.ipNetworks is required: the workload\'s addresses as CIDRs (like ["10.244.1.5/32"])',
  ],
  [
    'wep namespace',
    wep({}, 'Kube_System'),
    'metadata.namespace: "Kube_System" is not a namespace name (lowercase letters, digits and "-", at most 63 characters)',
  ],
  [
    'namespace on a cluster kind',
    { ...pool({}), metadata: { name: 'p1', namespace: 'default' } },
    'metadata.namespace: IPPool is not namespaced: remove metadata.namespace ("default")',
  ],
  [
    'block size mismatch',
    res('IPAMBlock', '10-244-1-0-30', {
      cidr: '10.244.1.0/30',
      allocations: [null, null],
      unallocated: [0, 1],
      attributes: [],
    }),
    'spec.allocations: has 2 entries; a /30 block needs exactly 4',
  ],
  [
    'block affinity',
    res('IPAMBlock', '10-244-1-0-30', {
      cidr: '10.244.1.0/30',
      affinity: 'node-1',
      allocations: [null, null, null, null],
      unallocated: [0, 1, 2, 3],
      attributes: [],
    }),
    'spec.affinity: "node-1" is not an affinity (like "host:node-1", or null)',
  ],
  [
    'block allocation index',
    res('IPAMBlock', '10-244-1-0-30', {
      cidr: '10.244.1.0/30',
      allocations: [1, null, null, null],
      unallocated: [1, 2, 3],
      attributes: [{ handle_id: 'h' }],
    }),
    'spec.allocations[0]: 1 does not index spec.attributes (0..0)',
  ],
  [
    'affinity without node',
    res('BlockAffinity', 'x', { state: 'confirmed', node: '', cidr: '10.244.1.0/26' }),
    'spec.node is required (the node the block is affine to)',
  ],
  [
    'handle block cidr',
    res('IPAMHandle', 'h', { handleID: 'h', block: { '10.244.1.0-26': 1 } }),
    'spec.block.10.244.1.0-26: "10.244.1.0-26" is not a block CIDR (like 10.244.1.0/26)',
  ],
];

const GOOD: Array<[string, AnyResource]> = [
  ['pool at its smallest', pool({ cidr: '10.244.0.0/26', blockSize: 26 })],
  ['peerIP without asNumber (the AS of the node at that address, as Calico)', peer({ asNumber: undefined })],
  ['small disabled pool', pool({ cidr: '10.244.0.0/28', blockSize: 26, disabled: true })],
  ['pool blockSize 20 and 32', pool({ blockSize: 20 })],
  ['pool /32 blocks', pool({ blockSize: 32 })],
  ['IPv6 pool', pool({ cidr: 'fd00:10:244::/48', blockSize: 122, vxlanMode: 'Always' })],
  ['vxlan only', pool({ ipipMode: 'Never', vxlanMode: 'CrossSubnet' })],
  ['pool selector', pool({ nodeSelector: "zone in {'a', 'b'} && !has(edge)" })],
  ['peer ip:port', peer({ peerIP: '198.18.0.1:1179' })],
  ['peer IPv6 with port', peer({ peerIP: '[2001:db8::1]:179' })],
  ['peer IPv6', peer({ peerIP: '2001:db8::1' })],
  [
    'node-scoped peer',
    peer({
      node: 'node-1',
      nextHopMode: 'Self',
      maxRestartTime: '1m30s',
      keepaliveTime: '500ms',
      localASNumber: 65000,
    }),
  ],
  [
    'peer by selector',
    peer({ peerIP: undefined, asNumber: undefined, nodeSelector: 'all()', peerSelector: "route-reflector == 'true'" }),
  ],
  ['peer asNumber max', peer({ asNumber: 4294967295 })],
  ['node config', config({ logSeverityScreen: 'debug', listenPort: 1179 }, 'node.node-1')],
  [
    'default config',
    config({
      nodeToNodeMeshEnabled: true,
      asNumber: 64512,
      bindMode: 'NodeIP',
      nodeMeshMaxRestartTime: '120s',
      serviceClusterIPs: [{ cidr: '10.96.0.0/12' }],
      communities: [{ name: 'c1', value: '64512:100' }],
      prefixAdvertisements: [{ cidr: '10.244.0.0/16', communities: ['c1', '64512:200:300'] }],
    }),
  ],
  [
    'node',
    node({
      ipv4Address: '198.18.0.11/24',
      asNumber: 64512,
      ipv4IPIPTunnelAddr: '10.244.1.0',
      routeReflectorClusterID: '244.0.0.1',
    }),
  ],
  ['node without bgp', res('Node', 'node-2', {})],
  ['wep', wep({ mac: 'ee:ee:ee:ee:ee:ee', ipNetworks: ['10.244.1.5/32', 'fd00::5/128'] })],
  [
    'block',
    res('IPAMBlock', '10-244-1-0-30', {
      cidr: '10.244.1.0/30',
      affinity: 'host:node-1',
      allocations: [0, null, null, null],
      unallocated: [1, 2, 3],
      attributes: [{ handle_id: 'h', secondary: null }],
    }),
  ],
  [
    'affinity',
    res('BlockAffinity', 'node-1-10-244-1-0-26', { state: 'pending', node: 'node-1', cidr: '10.244.1.0/26' }),
  ],
  [
    'handle',
    res('IPAMHandle', 'k8s-pod-network.abc', { handleID: 'k8s-pod-network.abc', block: { '10.244.1.0/26': 2 } }),
  ],
];

function rendered(problems: Problem[]): string[] {
  return problems.map(formatProblem);
}

describe('validateResource', () => {
  it('has cases for every kind', () => {
    expect(new Set(BAD.map(([, r]) => r.kind)).size).toBe(8);
    expect(new Set(GOOD.map(([, r]) => r.kind)).size).toBe(8);
  });

  it.each(BAD)('refuses: %s', (_what, r, expected) => {
    expect(rendered(validateResource(r))).toEqual([expected]);
  });

  it.each(GOOD)('accepts: %s', (_what, r) => {
    expect(rendered(validateResource(r))).toEqual([]);
    expect(rendered(validateResource(applyDefaults(r)))).toEqual([]);
  });

  it('carries the bad value in the problem', () => {
    expect(validateResource(pool({ blockSize: 19 }))).toEqual([
      { path: 'spec.blockSize', value: 19, message: '19 is not in 20..32 (IPv4)' },
    ]);
  });

  it('reports every problem of a resource, not only the first', () => {
    const problems = validateResource(peer({ node: 'n', nodeSelector: 'all()', asNumber: 0, maxRestartTime: 'x' }));
    expect(problems.map((p) => p.path)).toEqual(['spec.nodeSelector', 'spec.asNumber', 'spec.maxRestartTime']);
  });

  it('a ResourceError reads as the brief says', () => {
    const e = new ResourceError('IPPool/p1', validateResource(pool({ cidr: '10.244.0.0/33' })));
    expect(e.message).toBe('IPPool "p1": spec.cidr: "10.244.0.0/33" is not a CIDR (like 10.244.0.0/16)');
    const wep1 = new ResourceError('WorkloadEndpoint/ns/w', [{ path: 'spec.node', value: '', message: 'x' }], 4);
    expect(wep1.message).toBe('document 4 (WorkloadEndpoint "ns/w"): spec.node: x');
  });
});

describe('validateAgainst', () => {
  const other = pool({ cidr: '10.244.128.0/17' }, 'other');

  it('refuses a pool overlapping another, naming it', () => {
    expect(rendered(validateAgainst(pool({ cidr: '10.244.0.0/16' }), { ipPools: [other] }))).toEqual([
      'spec.cidr: 10.244.0.0/16 overlaps IPPool "other" (10.244.128.0/17)',
    ]);
    expect(rendered(validateAgainst(pool({ cidr: '10.244.200.0/24' }), { ipPools: [other] }))).toEqual([
      'spec.cidr: 10.244.200.0/24 overlaps IPPool "other" (10.244.128.0/17)',
    ]);
  });

  it('accepts neighbours and the pool itself (an update)', () => {
    expect(
      validateAgainst(pool({ cidr: '10.244.0.0/17' }), { ipPools: [other, pool({ cidr: '10.244.0.0/17' })] }),
    ).toEqual([]);
    expect(validateAgainst(pool({ cidr: 'fd00::/48' }), { ipPools: [pool({ cidr: '0.0.0.0/0' }, 'all-v4')] })).toEqual(
      [],
    );
  });

  it('refuses changing the cidr or blockSize of an existing pool', () => {
    const existing = pool({ cidr: '10.244.0.0/16', blockSize: 26 });
    expect(rendered(validateAgainst(pool({ cidr: '10.245.0.0/16', blockSize: 26 }), { ipPools: [existing] }))).toEqual([
      'spec.cidr: 10.245.0.0/16: the cidr of IPPool "p1" cannot be changed (it is 10.244.0.0/16); create a new pool and migrate',
    ]);
    expect(rendered(validateAgainst(pool({ cidr: '10.244.0.0/16', blockSize: 27 }), { ipPools: [existing] }))).toEqual([
      'spec.blockSize: 27: the blockSize of IPPool "p1" cannot be changed (it is 26)',
    ]);
  });

  it('has nothing to say about other kinds', () => {
    expect(validateAgainst(peer({}), { ipPools: [other] })).toEqual([]);
  });
});
