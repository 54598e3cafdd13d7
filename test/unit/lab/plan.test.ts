// The lab plan without a kernel: names fit Linux's 15 bytes, addresses and subnets, the BGP design per
// mode (mesh, reflectors, two subnets through the office router), refusals naming the option.

import { describe, expect, it } from 'vitest';
import { parseLabOptions } from '../../../src/cli/lab-command.js';
import { LAB_DEFAULTS, LabOptionError, planLab } from '../../../src/lab/plan.js';
import { formatEndpoint, parseEndpoint } from '../../../src/lab/relay.js';

describe('planLab', () => {
  it('mesh, one subnet: node addresses, workloads, the mesh on, every name at most 15 bytes', () => {
    const plan = planLab({ ...LAB_DEFAULTS, nodes: 4, workloadsPerNode: 2 });
    expect(plan.nodes.map((n) => [n.name, n.ns, n.ip, n.subnet])).toEqual([
      ['node-1', 'tlab-n1', '198.19.1.11', 1],
      ['node-2', 'tlab-n2', '198.19.1.12', 1],
      ['node-3', 'tlab-n3', '198.19.1.13', 1],
      ['node-4', 'tlab-n4', '198.19.1.14', 1],
    ]);
    expect(plan.workloads).toHaveLength(8);
    expect(plan.workloads[1]).toMatchObject({ node: 'node-1', ns: 'tlab-w1b', pod: 'pod-1b', namespace: 'lab' });
    expect(plan.resources.find((r) => r.kind === 'BGPConfiguration')?.spec).toMatchObject({
      nodeToNodeMeshEnabled: true,
      asNumber: 64512,
    });
    expect(plan.resources.filter((r) => r.kind === 'BGPPeer')).toEqual([]);
    const names = [...plan.namespaces, ...plan.nodes.map((n) => n.lanPort)];
    expect(names.length).toBeGreaterThan(10);
    for (const name of names) expect(Buffer.byteLength(name), name).toBeLessThanOrEqual(15);
    expect(new Set(plan.namespaces).size).toBe(plan.namespaces.length);
  });

  it('rr: mesh off, two reflectors with a cluster id, one BGPPeer selecting them', () => {
    const plan = planLab({ ...LAB_DEFAULTS, nodes: 4, mode: 'rr' });
    expect(plan.nodes.filter((n) => n.routeReflector).map((n) => n.name)).toEqual(['node-1', 'node-2']);
    expect(plan.resources.find((r) => r.kind === 'BGPConfiguration')?.spec).toMatchObject({
      nodeToNodeMeshEnabled: false,
    });
    expect(plan.resources.find((r) => r.metadata.name === 'node-1')).toMatchObject({
      metadata: { labels: { 'route-reflector': 'true' } },
      spec: { bgp: { routeReflectorClusterID: '244.0.0.1' } },
    });
    expect(plan.resources.filter((r) => r.kind === 'BGPPeer').map((r) => r.spec)).toEqual([
      { nodeSelector: 'all()', peerSelector: "route-reflector == 'true'" },
    ]);
  });

  it('two subnets: nodes split over two bridges, the router on .1 of each, one peer per subnet allowing our AS once', () => {
    const plan = planLab({ ...LAB_DEFAULTS, nodes: 4, subnets: 2, officeRouter: 'bird' });
    expect(plan.nodes.map((n) => n.ip)).toEqual(['198.19.1.11', '198.19.1.12', '198.19.2.13', '198.19.2.14']);
    expect(plan.router).toMatchObject({
      kind: 'bird',
      asNumber: 65001,
      forwards: true,
      legs: [{ ip: '198.19.1.1' }, { ip: '198.19.2.1' }],
    });
    expect(plan.resources.find((r) => r.kind === 'BGPConfiguration')?.spec).toMatchObject({
      nodeToNodeMeshEnabled: false,
    });
    expect(plan.resources.filter((r) => r.kind === 'BGPPeer').map((r) => r.spec)).toEqual([
      { nodeSelector: "lab-subnet == '1'", numAllowedLocalASNumbers: 1, peerIP: '198.19.1.1', asNumber: 65001 },
      { nodeSelector: "lab-subnet == '2'", numAllowedLocalASNumbers: 1, peerIP: '198.19.2.1', asNumber: 65001 },
    ]);
  });

  it('two subnets without an office router: a plain router, static routes to the other subnet, the mesh on (IPIP carries it)', () => {
    const plan = planLab({ ...LAB_DEFAULTS, nodes: 4, subnets: 2, ipipMode: 'CrossSubnet' });
    expect(plan.router).toMatchObject({ kind: 'plain', forwards: true });
    expect(plan.nodes.map((n) => n.staticRoutes)).toEqual([
      ['198.19.2.0/24 via 198.19.1.1'],
      ['198.19.2.0/24 via 198.19.1.1'],
      ['198.19.1.0/24 via 198.19.2.1'],
      ['198.19.1.0/24 via 198.19.2.1'],
    ]);
    expect(plan.resources.find((r) => r.kind === 'BGPConfiguration')?.spec).toMatchObject({
      nodeToNodeMeshEnabled: true,
    });
    expect(plan.resources.filter((r) => r.kind === 'BGPPeer')).toEqual([]);
    expect(plan.resources.find((r) => r.kind === 'IPPool')?.spec).toMatchObject({ ipipMode: 'CrossSubnet' });
  });

  it('--vxlan: two subnets behind a plain router with a VXLAN pool (no IPIP), mesh on', () => {
    const plan = planLab({ ...LAB_DEFAULTS, nodes: 4, subnets: 2, officeRouter: 'none', vxlanMode: 'Always' });
    expect(plan.resources.find((r) => r.kind === 'IPPool')?.spec).toMatchObject({
      ipipMode: 'Never',
      vxlanMode: 'Always',
    });
    expect(plan.router?.kind).toBe('plain');
    expect(plan.resources.find((r) => r.kind === 'BGPConfiguration')?.spec).toMatchObject({
      nodeToNodeMeshEnabled: true,
    });
    expect(parseLabOptions(['--vxlan', 'crosssubnet'])).toMatchObject({
      vxlanMode: 'CrossSubnet',
      ipipMode: 'Never',
      backend: 'bird',
    });
    expect(parseLabOptions(['--vxlan', 'Always', '--backend', 'vxlan'])).toMatchObject({
      vxlanMode: 'Always',
      backend: 'vxlan',
    });
  });

  it('refuses what cannot work, naming the option and the reason', () => {
    const cases: Array<[Partial<typeof LAB_DEFAULTS>, RegExp]> = [
      [{ nodes: 1 }, /--nodes 1: a lab has 2 to 20 nodes/],
      [
        { subnets: 2, officeRouter: 'none', nodes: 4 },
        /--subnets 2 with --office-router none needs --ipip or --vxlan Always or CrossSubnet/,
      ],
      [
        { backend: 'vxlan' },
        /--backend vxlan \(no BGP at all\) needs --vxlan Always or CrossSubnet and --office-router none \(got --vxlan Never, --office-router none\)/,
      ],
      [
        { ipipMode: 'Always', vxlanMode: 'CrossSubnet' },
        /--ipip Always with --vxlan CrossSubnet: a pool uses one encapsulation \(Calico refuses ipipMode and vxlanMode both on\)/,
      ],
      [
        { subnets: 2, officeRouter: 'bird', mode: 'rr', nodes: 4 },
        /--subnets 2 with an office router and --mode rr: a reflector would give nodes next hops on the other subnet/,
      ],
      [{ subnets: 2, officeRouter: 'bird', nodes: 3 }, /at least 4 nodes/],
      [{ name: 'Lab_1' }, /--name "Lab_1"/],
      [{ workloadsPerNode: 9 }, /--workloads 9/],
    ];
    expect(cases.length).toBeGreaterThan(0);
    for (const [options, pattern] of cases)
      expect(() => planLab({ ...LAB_DEFAULTS, ...options }), JSON.stringify(options)).toThrow(pattern);
  });
});

describe('lab command line and relay endpoints', () => {
  it('parses the options and refuses unknown ones and bad values', () => {
    expect(
      parseLabOptions(['--nodes', '4', '--mode', 'rr', '--ipip', 'crosssubnet', '--office-router', 'FRR']),
    ).toMatchObject({ nodes: 4, mode: 'rr', ipipMode: 'CrossSubnet', officeRouter: 'frr' });
    expect(() => parseLabOptions(['--nodes', 'four'])).toThrow(/--nodes "four" is not a whole number/);
    expect(() => parseLabOptions(['--mode', 'star'])).toThrow(/--mode "star" is not one of mesh, rr/);
    expect(() => parseLabOptions(['--subnets', '3'])).toThrow(/--subnets 3: 1 or 2/);
    expect(() => parseLabOptions(['--colour', 'red'])).toThrow(LabOptionError);
  });

  it('reads tcp and unix endpoints and refuses others', () => {
    expect(parseEndpoint('tcp:127.0.0.1:2379')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 2379 });
    expect(formatEndpoint(parseEndpoint('unix:/run/x.sock'))).toBe('unix:/run/x.sock');
    expect(() => parseEndpoint('unix:relative')).toThrow(/absolute path/);
    expect(() => parseEndpoint('tcp:127.0.0.1:70000')).toThrow(/neither tcp/);
  });
});
