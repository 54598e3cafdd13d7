// The node's VXLAN tunnel endpoint in the datastore (src/agent/vxlan-tunnel.ts): the address from IPAM
// (handle vxlan-tunnel-addr-<node>, type vxlanTunnelAddress), the MAC kept or derived, both released when
// no VXLAN pool selects the node — on the in-memory datastore and on the kubernetes one (fake API server:
// the Node annotations projectcalico.org/IPv4VXLANTunnelAddr and VXLANTunnelMACAddr).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  isUnicastMac,
  reconcileVxlanTunnel,
  vxlanDataplaneInput,
  vxlanMacFor,
  vxlanPoolsFor,
  vxlanTunnelNeedsWork,
} from '../../../src/agent/vxlan-tunnel.js';
import { allocate, newBlock } from '../../../src/ipam/block.js';
import { openKubernetes } from '../../../src/datastore/kubernetes.js';
import { MemoryDatastore } from '../../../src/datastore/memory.js';
import type { Datastore } from '../../../src/datastore/types.js';
import { Ipam } from '../../../src/ipam/index.js';
import { API_VERSION, type Resource } from '../../../src/resources/types.js';
import { startFakeApiServer, type FakeApiServer } from '../../harness/fake-apiserver.js';
import { pool } from '../ipam/fixtures.js';

const log = { info: (): void => undefined };

describe('vxlanPoolsFor / vxlanTunnelNeedsWork / vxlanMacFor (pure)', () => {
  const pools = [
    pool('ipip', '10.1.0.0/16', { ipipMode: 'Always' }),
    pool('vx', '10.2.0.0/16', { vxlanMode: 'Always', nodeSelector: "rack == 'r1'" }),
    pool('vx-off', '10.3.0.0/16', { vxlanMode: 'CrossSubnet', disabled: true }),
    pool('vx-pods', '10.4.0.0/16', { vxlanMode: 'CrossSubnet', allowedUses: ['Workload'] }),
  ];
  it('takes enabled VXLAN pools selecting the node that allow tunnel addresses', () => {
    expect(vxlanPoolsFor(pools, { rack: 'r1' }).map((p) => p.metadata.name)).toEqual(['vx']);
    expect(vxlanPoolsFor(pools, { rack: 'r2' })).toEqual([]);
  });
  it('needs work when the fields disagree with the pools, not otherwise', () => {
    const mac = vxlanMacFor('a');
    const cases: Array<[Resource<'Node'>['spec'], Record<string, string>, boolean]> = [
      [{}, { rack: 'r1' }, true],
      [{ ipv4VXLANTunnelAddr: '10.2.0.1', vxlanTunnelMACAddr: mac }, { rack: 'r1' }, false],
      [{ ipv4VXLANTunnelAddr: '10.1.0.1', vxlanTunnelMACAddr: mac }, { rack: 'r1' }, true],
      [{ ipv4VXLANTunnelAddr: '10.2.0.1' }, { rack: 'r1' }, true],
      [{ ipv4VXLANTunnelAddr: '10.2.0.1', vxlanTunnelMACAddr: mac }, { rack: 'r2' }, true],
      [{}, { rack: 'r2' }, false],
    ];
    expect(cases.length).toBeGreaterThan(0);
    for (const [spec, labels, want] of cases)
      expect(vxlanTunnelNeedsWork(spec, pools, labels), JSON.stringify([spec, labels])).toBe(want);
  });
  it('derives a stable, locally administered unicast MAC per node', () => {
    expect(vxlanMacFor('node-a')).toBe(vxlanMacFor('node-a'));
    expect(vxlanMacFor('node-a')).not.toBe(vxlanMacFor('node-b'));
    for (const name of ['a', 'b', 'node-1', 'x'.repeat(63)]) {
      const mac = vxlanMacFor(name);
      expect(isUnicastMac(mac)).toBe(true);
      expect(parseInt(mac.slice(0, 2), 16) & 0x02).toBe(2);
    }
    expect(isUnicastMac('01:00:5e:00:00:01')).toBe(false);
    expect(isUnicastMac('66:XX:00:00:00:01')).toBe(false);
  });
});

describe('vxlanDataplaneInput (pure)', () => {
  const nodeRes = (name: string, ip: string, vtep?: string): Resource<'Node'> => ({
    apiVersion: API_VERSION,
    kind: 'Node',
    metadata: { name },
    spec: {
      bgp: { ipv4Address: ip },
      ...(vtep ? { ipv4VXLANTunnelAddr: vtep, vxlanTunnelMACAddr: vxlanMacFor(name) } : {}),
    },
  });
  const blockRes = (spec: ReturnType<typeof newBlock>): Resource<'IPAMBlock'> => ({
    apiVersion: API_VERSION,
    kind: 'IPAMBlock',
    metadata: { name: spec.cidr.replace(/[./]/g, '-') },
    spec,
  });

  it('our VTEP, the other nodes, their blocks, and addresses borrowed by another node as /32s toward it', () => {
    // node-2's block: its own pod (.1), node-3's borrowed pod (.2), node-3's tunnel address (.3, not routed).
    let b2 = newBlock('10.244.1.0/26', 'node-2');
    b2 = allocate(b2, 1, 'k8s-pod-network.a', { node: 'node-2' }).block;
    b2 = allocate(b2, 1, 'k8s-pod-network.b', { node: 'node-3' }).block;
    b2 = allocate(b2, 1, 'vxlan-tunnel-addr-node-3', { node: 'node-3', type: 'vxlanTunnelAddress' }).block;
    // Our block: a pod node-2 borrowed (.0) and one of ours (.1).
    let b1 = newBlock('10.244.0.0/26', 'node-1');
    b1 = allocate(b1, 1, 'k8s-pod-network.c', { node: 'node-2' }).block;
    b1 = allocate(b1, 1, 'k8s-pod-network.d', { node: 'node-1' }).block;
    const got = vxlanDataplaneInput(
      'node-1',
      [
        nodeRes('node-1', '198.18.0.1/24', '10.244.0.5'),
        nodeRes('node-2', '198.18.0.2/24', '10.244.1.5'),
        nodeRes('node-3', '198.18.1.3/24'),
      ],
      [blockRes(b1), blockRes(b2)],
      1400,
    );
    expect(got).toEqual({
      local: { tunnelAddress: '10.244.0.5', mac: vxlanMacFor('node-1') },
      nodes: [
        { name: 'node-2', ip: '198.18.0.2/24', tunnelAddress: '10.244.1.5', mac: vxlanMacFor('node-2') },
        { name: 'node-3', ip: '198.18.1.3/24' },
      ],
      remoteBlocks: [
        { cidr: '10.244.0.0/32', node: 'node-2' },
        { cidr: '10.244.1.0/26', node: 'node-2' },
        { cidr: '10.244.1.1/32', node: 'node-3' },
      ],
      mtu: 1400,
    });
  });
});

/** Both datastores, the same test body. */
const BACKENDS: Array<{ name: string; open: () => Promise<{ ds: Datastore; close: () => Promise<void> }> }> = [];
let api: FakeApiServer;

beforeAll(async () => {
  api = await startFakeApiServer();
});
afterAll(async () => {
  await api.stop();
});

BACKENDS.push({
  name: 'memory',
  open: async () => {
    const ds = new MemoryDatastore();
    await ds.create({
      apiVersion: API_VERSION,
      kind: 'Node',
      metadata: { name: 'node-a', labels: { rack: 'r1' } },
      spec: { bgp: { ipv4Address: '198.18.0.1/24' } },
    });
    return { ds, close: () => ds.close() };
  },
});
BACKENDS.push({
  name: 'kubernetes',
  open: async () => {
    api.put(
      { core: 'nodes' },
      {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: {
          name: 'node-a',
          labels: { rack: 'r1' },
          annotations: { 'projectcalico.org/IPv4Address': '198.18.0.1/24' },
        },
      },
    );
    const ds = await openKubernetes({ kubeconfig: api.kubeconfigPath, timeoutMs: 2000 });
    return { ds, close: () => ds.close() };
  },
});

describe.each(BACKENDS)('reconcileVxlanTunnel on the $name datastore', ({ name: backend, open }) => {
  it('publishes a new MAC only once the device is up (deviceReady): before, the address alone', async () => {
    const { ds, close } = await open();
    try {
      const ipam = new Ipam(ds);
      await ds.create(pool(`vy-${backend}`, '10.3.0.0/16', { vxlanMode: 'CrossSubnet' }));
      let ready = false;
      const deps = { ds, ipam, nodeName: 'node-a', log, deviceReady: () => ready };
      const before = await reconcileVxlanTunnel(deps);
      expect(before).toMatchObject({ kind: 'vtep', published: false, mac: vxlanMacFor('node-a') });
      const node = await ds.get('Node', 'node-a');
      expect(node?.spec.ipv4VXLANTunnelAddr).toMatch(/^10\.3\./);
      expect(node?.spec.vxlanTunnelMACAddr).toBeUndefined();
      ready = true;
      expect(await reconcileVxlanTunnel(deps)).toMatchObject({ kind: 'vtep', published: true });
      expect((await ds.get('Node', 'node-a'))?.spec.vxlanTunnelMACAddr).toBe(vxlanMacFor('node-a'));
      // Once published it stays, whatever the device does (a restart finds it recorded).
      ready = false;
      expect(await reconcileVxlanTunnel(deps)).toMatchObject({ kind: 'vtep', published: true });
      // Leave the (shared) API server as found: no pool, nothing held.
      await ds.delete('IPPool', `vy-${backend}`);
      expect(await reconcileVxlanTunnel(deps)).toMatchObject({ kind: 'none' });
    } finally {
      await close();
    }
  });

  it('assigns the address with Calico handle and type, keeps it and the MAC across runs, releases both when no VXLAN pool selects the node', async () => {
    const { ds, close } = await open();
    try {
      const ipam = new Ipam(ds);
      const deps = { ds, ipam, nodeName: 'node-a', log };
      expect(await reconcileVxlanTunnel(deps)).toEqual({ kind: 'none', released: [] });
      await ds.create(pool(`vx-${backend}`, '10.2.0.0/16', { vxlanMode: 'Always' }));
      const first = await reconcileVxlanTunnel(deps);
      expect(first).toEqual({
        kind: 'vtep',
        address: expect.stringMatching(/^10\.2\.\d+\.\d+$/),
        mac: vxlanMacFor('node-a'),
        published: true,
      });
      const node = await ds.get('Node', 'node-a');
      expect(node?.spec.ipv4VXLANTunnelAddr).toBe(first.kind === 'vtep' ? first.address : '');
      expect(node?.spec.vxlanTunnelMACAddr).toBe(vxlanMacFor('node-a'));
      expect(node?.spec.bgp?.ipv4Address).toBe('198.18.0.1/24');
      if (backend === 'kubernetes') {
        // Stored the way Calico stores it: annotations on the Kubernetes Node.
        const annotations =
          (api.object({ core: 'nodes' }, 'node-a')?.metadata as { annotations?: Record<string, string> }).annotations ??
          {};
        expect(annotations['projectcalico.org/IPv4VXLANTunnelAddr']).toBe(node?.spec.ipv4VXLANTunnelAddr);
        expect(annotations['projectcalico.org/VXLANTunnelMACAddr']).toBe(vxlanMacFor('node-a'));
      }
      // The allocation carries Calico's attributes.
      const blocks = (await ds.list('IPAMBlock')).items;
      const attrs = blocks.flatMap((b) => b.spec.attributes);
      expect(attrs).toContainEqual(
        expect.objectContaining({
          handle_id: 'vxlan-tunnel-addr-node-a',
          secondary: expect.objectContaining({ node: 'node-a', type: 'vxlanTunnelAddress' }),
        }),
      );
      // A second run (a restart) changes nothing; a MAC someone chose is kept.
      expect(await reconcileVxlanTunnel(deps)).toEqual(first);
      const current = (await ds.get('Node', 'node-a'))!;
      await ds.update({ ...current, spec: { ...current.spec, vxlanTunnelMACAddr: '66:00:00:00:00:01' } });
      expect(await reconcileVxlanTunnel(deps)).toMatchObject({ kind: 'vtep', mac: '66:00:00:00:00:01' });
      // The pool stops being VXLAN: address released, both fields gone.
      const p = (await ds.get('IPPool', `vx-${backend}`))!;
      await ds.update({ ...p, spec: { ...p.spec, vxlanMode: 'Never' } });
      const gone = await reconcileVxlanTunnel(deps);
      expect(gone).toEqual({ kind: 'none', released: [first.kind === 'vtep' ? first.address : ''] });
      const after = await ds.get('Node', 'node-a');
      expect(after?.spec.ipv4VXLANTunnelAddr).toBeUndefined();
      expect(after?.spec.vxlanTunnelMACAddr).toBeUndefined();
      expect(await ds.get('IPAMHandle', 'vxlan-tunnel-addr-node-a')).toBeNull();
    } finally {
      await close();
    }
  });
});
