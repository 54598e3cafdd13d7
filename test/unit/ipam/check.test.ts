// The IPAM consistency check (src/ipam/check.ts) per finding: a clean cluster built with the real Ipam on
// MemoryDatastore reports nothing; then each case breaks one thing the way a crash, a lost write or a
// deleted node would, and the check must report exactly that — kind, object, address or handle, and the
// advice naming the node and the command. The last test asserts every kind in FINDINGS was produced here.

import { afterAll, describe, expect, it } from 'vitest';
import { MemoryDatastore } from '../../../src/datastore/memory.js';
import { checkIpam, readCheckSnapshot } from '../../../src/ipam/check.js';
import { FINDING_KINDS, type Finding, type FindingKind } from '../../../src/ipam/check-findings.js';
import { structureFindings } from '../../../src/ipam/check-structure.js';
import { allocate, newBlock } from '../../../src/ipam/block.js';
import { Ipam, ipipTunnelHandle, vxlanTunnelHandle } from '../../../src/ipam/index.js';
import { API_VERSION } from '../../../src/resources/types.js';
import { ipamProblems, readIpamState } from './invariants.js';
import { node, wep } from './fixtures.js';

const seen = new Set<FindingKind>();

/** Two nodes, each with a tunnel address (recorded on its Node) and one pod with its endpoint; all through Ipam. */
async function cleanCluster(): Promise<{ ds: MemoryDatastore; ipam: Ipam; pods: Record<string, string> }> {
  const ds = new MemoryDatastore();
  await ds.create({
    apiVersion: API_VERSION,
    kind: 'IPPool',
    metadata: { name: 'pool-a' },
    spec: { cidr: '10.244.0.0/24', blockSize: 26, nodeSelector: 'all()' },
  });
  const ipam = new Ipam(ds);
  const pods: Record<string, string> = {};
  for (const name of ['node-1', 'node-2']) {
    const [tunnel] = await ipam.assign(name, ipipTunnelHandle(name), { use: 'Tunnel' });
    await ds.create(node(name, tunnel));
    const pod = `web-${name.slice(-1)}`;
    const [ip] = await ipam.assign(name, `k8s-pod-network.${pod}`, { attributes: { namespace: 'default', pod } });
    await ds.create(wep(name, pod, ip!));
    pods[pod] = ip!;
  }
  return { ds, ipam, pods };
}

async function findings(ds: MemoryDatastore): Promise<Finding[]> {
  const report = checkIpam(await readCheckSnapshot(ds));
  for (const f of report.findings) seen.add(f.kind);
  return report.findings;
}

describe('checkIpam', () => {
  it('reports nothing on a clean cluster, and counts what it read', async () => {
    const { ds } = await cleanCluster();
    const report = checkIpam(await readCheckSnapshot(ds));
    expect(report.findings).toEqual([]);
    expect(report.counts).toEqual({
      pools: 1,
      activePools: 1,
      blocks: 2,
      allocations: 4,
      nodes: 2,
      nodeTunnelIps: 2,
      workloadIps: 2,
      inUseIps: 4,
      handles: 4,
    });
    expect(report.addresses.map((a) => [a.ip, a.owners])).toEqual([
      ['10.244.0.0', ['Node(node-1)']],
      ['10.244.0.1', ['Workload(default/node-1-k8s-web-1-eth0)']],
      ['10.244.0.64', ['Node(node-2)']],
      ['10.244.0.65', ['Workload(default/node-2-k8s-web-2-eth0)']],
    ]);
    expect(report.addresses[1]).toMatchObject({
      block: '10.244.0.0/26',
      handle: 'k8s-pod-network.web-1',
      node: 'node-1',
      namespace: 'default',
      pod: 'web-1',
      borrowed: false,
      inUse: true,
    });
  });

  it('a pod whose endpoint is gone leaves a leaked address: its attributes say whose, run again / CNI GC', async () => {
    const { ds, pods } = await cleanCluster();
    await ds.delete('WorkloadEndpoint', 'node-1-k8s-web-1-eth0', { namespace: 'default' });
    const [f, ...rest] = await findings(ds);
    expect(rest).toEqual([]);
    expect(f).toMatchObject({
      kind: 'leaked-address',
      object: 'IPAMBlock 10.244.0.0/26',
      address: pods['web-1'],
      handle: 'k8s-pod-network.web-1',
    });
    expect(f!.detail).toMatch(/^assigned on node node-1 for pod default\/web-1; no workload endpoint holds it$/);
    expect(f!.action).toMatch(/a pod being created has its address before its endpoint: run again/);
    expect(f!.action).toMatch(/CNI GC on node-1/);
  });

  it('a deleted node leaves its block, affinity, tunnel and pod addresses: each says `tortie delete node`', async () => {
    const { ds } = await cleanCluster();
    await ds.delete('Node', 'node-2');
    await ds.delete('WorkloadEndpoint', 'node-2-k8s-web-2-eth0', { namespace: 'default' });
    const got = await findings(ds);
    expect(got.map((f) => [f.kind, f.object, f.address ?? ''])).toEqual([
      ['leaked-address', 'IPAMBlock 10.244.0.64/26', '10.244.0.64'],
      ['leaked-address', 'IPAMBlock 10.244.0.64/26', '10.244.0.65'],
      ['node-gone', 'IPAMBlock 10.244.0.64/26', ''],
    ]);
    expect(got[0]!.detail).toBe('tunnel address of node node-2, which no longer exists');
    expect(got[1]!.detail).toMatch(/^assigned on node node-2 for pod default\/web-2; node node-2 no longer exists$/);
    for (const f of got) expect(f.action).toContain('`tortie delete node node-2`');
  });

  it('a tunnel address the agent has not recorded on its Node yet is leaked, with run-again advice', async () => {
    const { ds } = await cleanCluster();
    const n = (await ds.get('Node', 'node-1'))!;
    await ds.update({ ...n, spec: { bgp: { ipv4Address: '198.18.0.1/24' } } });
    const [f, ...rest] = await findings(ds);
    expect(rest).toEqual([]);
    expect(f).toMatchObject({
      kind: 'leaked-address',
      address: '10.244.0.0',
      handle: 'ipip-tunnel-addr-node-1',
      detail: 'tunnel address of node node-1, whose Node records no tunnel address',
    });
    expect(f!.action).toMatch(/run again; if it stays, restart the agent on node-1/);
  });

  it('a VXLAN tunnel address recorded on its Node is in use by it; unrecorded it is leaked', async () => {
    const { ds, ipam } = await cleanCluster();
    const [vtep] = await ipam.assign('node-1', vxlanTunnelHandle('node-1'), { use: 'Tunnel' });
    const n = (await ds.get('Node', 'node-1'))!;
    const withVtep = await ds.update({
      ...n,
      spec: { ...n.spec, ipv4VXLANTunnelAddr: vtep, vxlanTunnelMACAddr: '66:00:00:00:00:01' },
    });
    const report = checkIpam(await readCheckSnapshot(ds));
    expect(report.findings).toEqual([]);
    expect(report.addresses.find((a) => a.ip === vtep)?.owners).toEqual(['Node(node-1)']);
    await ds.update({ ...withVtep, spec: { bgp: withVtep.spec.bgp } });
    const [f, ...rest] = await findings(ds);
    expect(rest).toEqual([]);
    expect(f).toMatchObject({ kind: 'leaked-address', address: vtep, handle: 'vxlan-tunnel-addr-node-1' });
  });

  it('a workload address in an active pool that IPAM never allocated, and one in no pool', async () => {
    const { ds } = await cleanCluster();
    await ds.create(wep('node-1', 'rogue', '10.244.0.200'));
    await ds.create(wep('node-1', 'outsider', '192.168.7.7'));
    const got = await findings(ds);
    expect(got.map((f) => [f.kind, f.object, f.address])).toEqual([
      ['outside-pools', 'Workload(default/node-1-k8s-outsider-eth0)', '192.168.7.7'],
      ['not-allocated', 'Workload(default/node-1-k8s-rogue-eth0)', '10.244.0.200'],
    ]);
    expect(got[0]!.detail).toMatch(/no IP pool/);
    expect(got[0]!.action).toMatch(/re-create the pod .*or create an IPPool that covers it/);
    expect(got[1]!.action).toBe('re-create the pod so it gets an address from IPAM');
  });

  it('an address in a disabled pool with no allocation counts as outside every active pool', async () => {
    const { ds } = await cleanCluster();
    await ds.create({
      apiVersion: API_VERSION,
      kind: 'IPPool',
      metadata: { name: 'old' },
      spec: { cidr: '10.99.0.0/24', disabled: true },
    });
    await ds.create(wep('node-2', 'legacy', '10.99.0.4'));
    const [f, ...rest] = await findings(ds);
    expect(rest).toEqual([]);
    expect(f).toMatchObject({ kind: 'outside-pools', address: '10.99.0.4' });
    expect(f!.detail).toMatch(/a disabled IP pool/);
  });

  it('two endpoints with one address', async () => {
    const { ds, pods } = await cleanCluster();
    await ds.create(wep('node-2', 'twin', pods['web-1']!));
    const [f, ...rest] = await findings(ds);
    expect(rest).toEqual([]);
    expect(f).toMatchObject({
      kind: 'multiple-owners',
      address: pods['web-1'],
      object: 'Workload(default/node-1-k8s-web-1-eth0), Workload(default/node-2-k8s-twin-eth0)',
    });
  });

  it('an orphan affinity of a node that no longer exists, and one of an existing node', async () => {
    const { ds } = await cleanCluster();
    const orphan = (name: string, n: string, state: 'pending' | 'confirmed' | 'pendingDeletion') =>
      ds.create({
        apiVersion: API_VERSION,
        kind: 'BlockAffinity',
        metadata: { name },
        spec: { state, node: n, cidr: '10.244.0.128/26' },
      });
    await orphan('ghost-10-244-0-128-26', 'ghost', 'confirmed');
    await orphan('node-1-10-244-0-128-26', 'node-1', 'pending');
    const got = await findings(ds);
    expect(got.map((f) => [f.kind, f.object])).toEqual([
      ['affinity-without-block', 'BlockAffinity ghost-10-244-0-128-26'],
      ['affinity-without-block', 'BlockAffinity node-1-10-244-0-128-26'],
    ]);
    expect(got[0]!.action).toContain('`tortie delete node ghost`');
    expect(got[1]!.action).toMatch(/a claim by node-1 is running or stopped before creating the block: run again/);
  });

  it('a block whose affinity is pendingDeletion, missing, or names another node', async () => {
    const { ds } = await cleanCluster();
    const a1 = (await ds.get('BlockAffinity', 'node-1-10-244-0-0-26'))!;
    await ds.update({ ...a1, spec: { ...a1.spec, state: 'pendingDeletion' } });
    const a2 = (await ds.get('BlockAffinity', 'node-2-10-244-0-64-26'))!;
    await ds.delete('BlockAffinity', a2.metadata.name);
    await ds.create({ ...a2, metadata: { name: 'node-1-10-244-0-64-26' }, spec: { ...a2.spec, node: 'node-1' } });
    const got = await findings(ds);
    expect(got.map((f) => [f.kind, f.object])).toEqual([
      ['affinity-missing', 'IPAMBlock 10.244.0.64/26'],
      ['affinity-not-confirmed', 'IPAMBlock 10.244.0.0/26'],
      ['affinity-mismatch', 'BlockAffinity node-1-10-244-0-64-26'],
    ]);
    expect(got[1]!.detail).toMatch(/is pendingDeletion: not advertised/);
    expect(got[1]!.action).toMatch(/node-1's agent settles it at startup/);
    expect(got[2]!.detail).toBe('(confirmed) names node node-1, but block 10.244.0.64/26 is affine to node-2');
  });

  it('handles: missing, miscounted, and leaked (a gone node’s tunnel handle says delete node)', async () => {
    const { ds } = await cleanCluster();
    await ds.delete('IPAMHandle', 'k8s-pod-network.web-1');
    const h2 = (await ds.get('IPAMHandle', 'k8s-pod-network.web-2'))!;
    await ds.update({ ...h2, spec: { ...h2.spec, block: { '10.244.0.64/26': 3 } } });
    await ds.create({
      apiVersion: API_VERSION,
      kind: 'IPAMHandle',
      metadata: { name: 'ipip-tunnel-addr-ghost' },
      spec: { handleID: 'ipip-tunnel-addr-ghost', block: { '10.244.0.0/26': 1 } },
    });
    const got = await findings(ds);
    expect(got.map((f) => [f.kind, f.handle])).toEqual([
      ['handle-missing', 'k8s-pod-network.web-1'],
      ['handle-count', 'k8s-pod-network.web-2'],
      ['handle-leaked', 'ipip-tunnel-addr-ghost'],
    ]);
    expect(got[1]!.detail).toBe('counts {"10.244.0.64/26":3}, the blocks hold {"10.244.0.64/26":1}');
    expect(got[2]!.action).toContain('`tortie delete node ghost`');
  });

  it('a block that is not well-formed: each defect named', async () => {
    const { ds } = await cleanCluster();
    const b = (await ds.get('IPAMBlock', '10-244-0-0-26'))!;
    const spec = structuredClone(b.spec);
    spec.unallocated = spec.unallocated.filter((o) => o !== 5); // 5 free but never handed out again
    spec.unallocated.push(0); // 0 is the tunnel's
    spec.attributes.push({ handle_id: 'nobody', secondary: null });
    await ds.update({ ...b, spec });
    const got = (await findings(ds)).filter((f) => f.kind === 'invalid-block');
    expect(got.map((f) => f.detail)).toEqual([
      'attribute 2 is not pointed at by any allocation',
      'ordinal 0 is allocated but listed in unallocated',
      'free ordinal(s) 5 missing from unallocated (never handed out again)',
    ]);
    expect(got.every((f) => f.object === 'IPAMBlock 10.244.0.0/26')).toBe(true);
  });

  it('a block in no pool (its pool deleted under it)', async () => {
    const { ds } = await cleanCluster();
    await ds.delete('IPPool', 'pool-a');
    const got = await findings(ds);
    expect(got.filter((f) => f.kind === 'block-outside-pools').map((f) => f.object)).toEqual([
      'IPAMBlock 10.244.0.0/26',
      'IPAMBlock 10.244.0.64/26',
    ]);
    expect(got.filter((f) => f.kind !== 'block-outside-pools')).toEqual([]);
  });

  it('an address allocated without attributes in a gone node’s block', async () => {
    const ds = new MemoryDatastore();
    await ds.create({
      apiVersion: API_VERSION,
      kind: 'IPPool',
      metadata: { name: 'p' },
      spec: { cidr: '10.1.0.0/24' },
    });
    const spec = allocate(newBlock('10.1.0.0/26', 'old-node'), 1, 'legacy-handle').block;
    await ds.create({ apiVersion: API_VERSION, kind: 'IPAMBlock', metadata: { name: '10-1-0-0-26' }, spec });
    await ds.create({
      apiVersion: API_VERSION,
      kind: 'BlockAffinity',
      metadata: { name: 'old-node-10-1-0-0-26' },
      spec: { state: 'confirmed', node: 'old-node', cidr: '10.1.0.0/26' },
    });
    await ds.create({
      apiVersion: API_VERSION,
      kind: 'IPAMHandle',
      metadata: { name: 'legacy-handle' },
      spec: { handleID: 'legacy-handle', block: { '10.1.0.0/26': 1 } },
    });
    const got = await findings(ds);
    expect(got.map((f) => f.kind)).toEqual(['leaked-address', 'node-gone']);
    expect(got[0]!.detail).toMatch(/no attributes say whose it is; its block is affine to node old-node/);
  });

  it('structureFindings is what the tests’ ipamProblems reports (one checker)', async () => {
    const { ds } = await cleanCluster();
    expect(ipamProblems(await readIpamState(ds))).toEqual([]);
    await ds.delete('IPAMHandle', 'k8s-pod-network.web-1');
    const problems = ipamProblems(await readIpamState(ds));
    expect(problems).toEqual(structureFindings(await readIpamState(ds)).map((f) => `${f.object}: ${f.detail}`));
    expect(problems).toEqual([
      'handle k8s-pod-network.web-1: holds 1 address (10.244.0.0/26) but there is no IPAMHandle',
    ]);
  });
});

afterAll(() => {
  // Every kind of finding was produced by some case above (a kind no case reaches is a check nobody tests).
  expect(FINDING_KINDS.filter((k) => !seen.has(k))).toEqual([]);
});
