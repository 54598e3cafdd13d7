// `tortie delete node|ippool` with IPAM state, against MemoryDatastore: what the command prints (address by
// address, block by block), that `delete KIND NAME` and `delete -f` refuse the same things before writing
// anything (a Kubernetes Node that still exists, a pool whose addresses workloads hold), and that a node
// already gone (kubectl delete node) is accepted when it left IPAM state, with no "deleted" summary. A node's
// own BGP configuration (BGPPeers with spec.node, BGPConfiguration node.<name>) goes with it, and a delete
// failing half-way says what was done and what was not, and finishes when run again.

import { describe, expect, it } from 'vitest';
import { parseResourceArgs, runResourceCommand, type CommandContext } from '../../../src/cli/resources-command.js';
import { MemoryDatastore } from '../../../src/datastore/memory.js';
import type { Datastore } from '../../../src/datastore/types.js';
import { Ipam } from '../../../src/ipam/index.js';
import { API_VERSION, type Kind, type Resource } from '../../../src/resources/types.js';
import { ipamProblems, readIpamState } from '../ipam/invariants.js';
import { wep } from '../ipam/fixtures.js';

const NODE_1 = 'apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: node-1\nspec: {}\n';

/** The datastore as a backend of another type would show it (the CLI asks `type` for Kubernetes rules). */
function typed(ds: MemoryDatastore, type: string): Datastore {
  return {
    type,
    get: ds.get.bind(ds),
    list: ds.list.bind(ds),
    create: ds.create.bind(ds),
    update: ds.update.bind(ds),
    delete: ds.delete.bind(ds),
    watch: ds.watch.bind(ds),
    close: async () => undefined,
  };
}

async function run(ds: Datastore, files: Record<string, string>, ...argv: string[]): Promise<string> {
  let out = '';
  const ctx: CommandContext = {
    out: (t) => (out += t),
    readInput: async (file) => files[file] ?? '',
    openDatastore: async () => ds,
    teardown: { sleep: async () => undefined },
  };
  await runResourceCommand(parseResourceArgs(argv[0] as 'delete', argv.slice(1)), ctx);
  return out;
}

async function everything(ds: Datastore): Promise<string> {
  const kinds: Kind[] = ['IPPool', 'Node', 'WorkloadEndpoint', 'IPAMBlock', 'BlockAffinity', 'IPAMHandle'];
  return JSON.stringify(await Promise.all(kinds.map(async (k) => (await ds.list(k)).items)));
}

/** node-1 with a tunnel address, a running pod and a leaked address in one block, an empty second block; node-2 borrowed from the first. */
async function cluster(): Promise<MemoryDatastore> {
  const ds = new MemoryDatastore();
  await ds.create({
    apiVersion: API_VERSION,
    kind: 'IPPool',
    metadata: { name: 'pool-a' },
    spec: { cidr: '10.244.0.0/25', blockSize: 26, nodeSelector: 'all()' },
  });
  for (const name of ['node-1', 'node-2'])
    await ds.create({ apiVersion: API_VERSION, kind: 'Node', metadata: { name }, spec: {} });
  const ipam = new Ipam(ds);
  await ipam.assign('node-1', 'ipip-tunnel-addr-node-1', { use: 'Tunnel' });
  await ipam.assign('node-1', 'net.web');
  await ipam.assign('node-1', 'net.gone');
  await ipam.claimBlock('node-1');
  await ipam.assign('node-2', 'net.api');
  await ds.create(wep('node-1', 'web', '10.244.0.1'));
  await ds.create(wep('node-2', 'api', '10.244.0.3'));
  return ds;
}

describe('tortie delete node', () => {
  it('says what it released, address by address and block by block, then deletes the Node and its endpoints', async () => {
    const ds = await cluster();
    expect(await run(ds, {}, 'delete', 'node', 'node-1')).toBe(
      [
        'Node "node-1": released its IPAM state',
        '  released 10.244.0.0 (ipip-tunnel-addr-node-1): tunnel address of node node-1',
        '  released 10.244.0.1 (net.web): workload default/web on node node-1',
        '  released 10.244.0.2 (net.gone): leaked: no workload holds it',
        '  block 10.244.0.0/26: affinity released; the block stays for 1 address(es) still in use: 10.244.0.3 (workload default/api on node node-2)',
        '  block 10.244.0.64/26: empty, deleted with its affinity',
        '  WorkloadEndpoint default/node-1-k8s-web-eth0: deleted',
        "Successfully deleted 1 'Node' resource(s)",
        '',
      ].join('\n'),
    );
    expect(ipamProblems(await readIpamState(ds))).toEqual([]);
    expect((await ds.list('Node')).items.map((n) => n.metadata.name)).toEqual(['node-2']);
    expect((await ds.list('WorkloadEndpoint')).items.map((w) => w.metadata.name)).toEqual(['node-2-k8s-api-eth0']);
    // Run again: nothing left, so the node does not exist for delete.
    await expect(run(ds, {}, 'delete', 'node', 'node-1')).rejects.toThrow(
      /^resource does not exist: Node\(node-1\); nothing was deleted$/,
    );
  });

  it('releases what the node borrowed in another node\u2019s block that no workload holds, and says so; also when the node is gone already', async () => {
    const ds = await cluster();
    await ds.delete('WorkloadEndpoint', 'node-2-k8s-api-eth0', { namespace: 'default' }); // its pod is gone; node-2 has no block of its own
    const expected = [
      "  released 10.244.0.3 (net.api): leaked: node node-2 borrowed it from node node-1's block; no workload holds it",
      '',
    ].join('\n');
    expect(await run(ds, {}, 'delete', 'node', 'node-2')).toBe(
      `Node "node-2": released its IPAM state\n${expected}Successfully deleted 1 'Node' resource(s)\n`,
    );
    expect(await ds.get('IPAMHandle', 'net.api')).toBeNull();
    expect(ipamProblems(await readIpamState(ds))).toEqual([]);
    // kubectl delete node first (kubernetes): the node left only that address, and it is released the same way.
    const gone = await cluster();
    await gone.delete('WorkloadEndpoint', 'node-2-k8s-api-eth0', { namespace: 'default' });
    await gone.delete('Node', 'node-2');
    expect(await run(typed(gone, 'kubernetes'), {}, 'delete', 'node', 'node-2')).toBe(
      `Node "node-2" was already gone; released its IPAM state\n${expected}`,
    );
    expect(ipamProblems(await readIpamState(gone))).toEqual([]);
  });

  it('on kubernetes: refused while the Kubernetes Node exists (nothing written); once it is gone, releases the IPAM state', async () => {
    const memory = await cluster();
    const ds = typed(memory, 'kubernetes');
    const before = await everything(ds);
    await expect(run(ds, {}, 'delete', 'node', 'node-1')).rejects.toThrow(
      /^Node "node-1" is the Kubernetes Node .*"kubectl delete node node-1", then run "tortie delete node node-1" again .*; nothing was deleted$/,
    );
    await expect(run(ds, { 'n.yaml': NODE_1 }, 'delete', '-f', 'n.yaml')).rejects.toThrow(
      /document 1 \(Node "node-1"\): metadata\.name: Node "node-1" is the Kubernetes Node/,
    );
    expect(await everything(ds)).toBe(before);
    await memory.delete('Node', 'node-1'); // kubectl delete node node-1
    const out = await run(ds, {}, 'delete', 'node', 'node-1');
    expect(out).toMatch(/^Node "node-1" was already gone; released its IPAM state\n/);
    expect(out).not.toMatch(/Successfully deleted/);
    // Endpoints are Pods there: not deleted by tortie.
    expect(out).not.toMatch(/WorkloadEndpoint/);
    expect(ipamProblems(await readIpamState(ds))).toEqual([]);
  });

  it('delete -f: a Node already gone is accepted when it left IPAM state, refused when it left nothing', async () => {
    const ds = await cluster();
    await ds.delete('Node', 'node-1');
    const out = await run(ds, { 'n.yaml': NODE_1 }, 'delete', '-f', 'n.yaml');
    expect(out).toMatch(/^Node "node-1" was already gone; released its IPAM state\n( {2}.*\n)+$/);
    await expect(run(ds, { 'n.yaml': NODE_1 }, 'delete', '-f', 'n.yaml')).rejects.toThrow(
      /resource does not exist: Node\(node-1\)\nnothing was written$/,
    );
  });
});

function peer(name: string, spec: Resource<'BGPPeer'>['spec']): Resource<'BGPPeer'> {
  return { apiVersion: API_VERSION, kind: 'BGPPeer', metadata: { name }, spec };
}

function bgpConfig(name: string): Resource<'BGPConfiguration'> {
  return { apiVersion: API_VERSION, kind: 'BGPConfiguration', metadata: { name }, spec: { asNumber: 64512 } };
}

/** cluster() plus BGP configuration: node-1's own (two peers, node.node-1) and others' that must stay. */
async function clusterWithBgp(): Promise<MemoryDatastore> {
  const ds = await cluster();
  await ds.create(peer('rack-1-tor', { node: 'node-1', peerIP: '198.18.0.50', asNumber: 65001 }));
  await ds.create(peer('rack-1-rr', { node: 'node-1', peerSelector: "route-reflector == 'true'" }));
  await ds.create(peer('rack-2-tor', { node: 'node-2', peerIP: '198.18.0.51', asNumber: 65001 }));
  await ds.create(peer('office', { peerIP: '198.18.0.60', asNumber: 65002 }));
  await ds.create(
    peer('by-label', { nodeSelector: "kubernetes.io/hostname == 'node-1'", peerIP: '198.18.0.61', asNumber: 65002 }),
  );
  for (const name of ['default', 'node.node-1', 'node.node-2']) await ds.create(bgpConfig(name));
  return ds;
}

async function bgpNames(ds: Datastore): Promise<string[]> {
  const [peers, configs] = await Promise.all([ds.list('BGPPeer'), ds.list('BGPConfiguration')]);
  return [
    ...peers.items.map((p) => `BGPPeer ${p.metadata.name}`),
    ...configs.items.map((c) => `BGPConfiguration ${c.metadata.name}`),
  ].sort();
}

/** `ds` whose delete of (kind, name) fails as an unreachable datastore would, the first `times` times. */
function failingDelete(ds: MemoryDatastore, kind: Kind, name: string, times = 1): Datastore {
  const base = typed(ds, 'etcdv3');
  let left = times;
  return {
    ...base,
    delete: async (k, n, options) => {
      if (k === kind && n === name && left-- > 0) throw new Error('etcd 127.0.0.1:2379: connection refused');
      return ds.delete(k, n, options);
    },
  };
}

describe('tortie delete node: its own BGP configuration', () => {
  it('deletes the BGPPeers whose spec.node is the node and BGPConfiguration node.<name>, and lists them; others stay', async () => {
    const ds = await clusterWithBgp();
    const out = await run(ds, {}, 'delete', 'node', 'node-1');
    expect(out).toMatch(/^Node "node-1": released its IPAM state and deleted its own BGP configuration\n/);
    expect(out).toContain(
      [
        '  WorkloadEndpoint default/node-1-k8s-web-eth0: deleted',
        "  BGPPeer rack-1-rr (peers route-reflector == 'true', this node's only): deleted",
        "  BGPPeer rack-1-tor (peer 198.18.0.50 AS 65001, this node's only): deleted",
        "  BGPConfiguration node.node-1 (this node's own BGP settings): deleted",
        "Successfully deleted 1 'Node' resource(s)",
        '',
      ].join('\n'),
    );
    // Peers that select the node by label, global peers, other nodes' peers and configurations stay.
    expect(await bgpNames(ds)).toEqual([
      'BGPConfiguration default',
      'BGPConfiguration node.node-2',
      'BGPPeer by-label',
      'BGPPeer office',
      'BGPPeer rack-2-tor',
    ]);
    expect(ipamProblems(await readIpamState(ds))).toEqual([]);
  });

  it('a node with no IPAM state says only what it deleted; one gone that left only BGP configuration is accepted (delete -f too)', async () => {
    const ds = new MemoryDatastore();
    await ds.create({ apiVersion: API_VERSION, kind: 'Node', metadata: { name: 'node-1' }, spec: {} });
    await ds.create(bgpConfig('node.node-1'));
    expect(await run(ds, {}, 'delete', 'node', 'node-1')).toBe(
      [
        'Node "node-1": deleted its own BGP configuration',
        "  BGPConfiguration node.node-1 (this node's own BGP settings): deleted",
        "Successfully deleted 1 'Node' resource(s)",
        '',
      ].join('\n'),
    );
    // Gone already (kubectl delete node, or a run that failed half-way): its peer is still deleted.
    await ds.create(peer('rack-1-tor', { node: 'node-1', peerIP: '198.18.0.50', asNumber: 65001 }));
    expect(await run(ds, { 'n.yaml': NODE_1 }, 'delete', '-f', 'n.yaml')).toBe(
      [
        'Node "node-1" was already gone; deleted its own BGP configuration',
        "  BGPPeer rack-1-tor (peer 198.18.0.50 AS 65001, this node's only): deleted",
        '',
      ].join('\n'),
    );
    expect(await bgpNames(ds)).toEqual([]);
    await expect(run(ds, {}, 'delete', 'node', 'node-1')).rejects.toThrow(
      /^resource does not exist: Node\(node-1\); nothing was deleted$/,
    );
  });

  it('a delete failing half-way says what was done and what was not; running it again does the rest', async () => {
    const memory = await clusterWithBgp();
    const broken = failingDelete(memory, 'BGPPeer', 'rack-1-tor');
    let out = '';
    const ctx: CommandContext = {
      out: (t) => (out += t),
      readInput: async () => '',
      openDatastore: async () => broken,
      teardown: { sleep: async () => undefined },
    };
    const failure = await runResourceCommand(parseResourceArgs('delete', ['node', 'node-1']), ctx).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(failure?.message).toBe(
      'Node "node-1": deleting BGPPeer rack-1-tor failed: etcd 127.0.0.1:2379: connection refused. ' +
        'Done before it: released its IPAM state (listed above), deleted WorkloadEndpoint default/node-1-k8s-web-eth0, deleted BGPPeer rack-1-rr. ' +
        'Not done: BGPPeer rack-1-tor, BGPConfiguration node.node-1, the Node itself. Run "tortie delete node node-1" again to do the rest; ' +
        '0 of 1 resource(s) were deleted before it',
    );
    // What was done is printed as a successful run prints it (addresses, blocks, endpoint, the first peer).
    expect(out).toMatch(/^Node "node-1": released its IPAM state and deleted its own BGP configuration\n/);
    expect(out).toContain('  released 10.244.0.1 (net.web): workload default/web on node node-1\n');
    expect(out).toContain("  BGPPeer rack-1-rr (peers route-reflector == 'true', this node's only): deleted\n");
    expect(out).not.toMatch(/rack-1-tor|Successfully/);
    expect(await memory.get('Node', 'node-1')).not.toBeNull();
    expect(await bgpNames(memory)).toContain('BGPPeer rack-1-tor');
    expect(ipamProblems(await readIpamState(memory))).toEqual([]);
    // Again (the datastore is back): only what was left, then the Node.
    expect(await run(broken, {}, 'delete', 'node', 'node-1')).toBe(
      [
        'Node "node-1": deleted its own BGP configuration',
        "  BGPPeer rack-1-tor (peer 198.18.0.50 AS 65001, this node's only): deleted",
        "  BGPConfiguration node.node-1 (this node's own BGP settings): deleted",
        "Successfully deleted 1 'Node' resource(s)",
        '',
      ].join('\n'),
    );
    expect(await bgpNames(memory)).toEqual([
      'BGPConfiguration default',
      'BGPConfiguration node.node-2',
      'BGPPeer by-label',
      'BGPPeer office',
      'BGPPeer rack-2-tor',
    ]);
  });

  it('a peer moved to another node while the delete runs is not deleted (compare-and-swap on the revision read)', async () => {
    const memory = await clusterWithBgp();
    const base = typed(memory, 'etcdv3');
    let moved = false;
    const racing: Datastore = {
      ...base,
      delete: async (kind, name, options) => {
        if (kind === 'BGPPeer' && name === 'rack-1-tor' && !moved) {
          moved = true; // someone re-points the peer at node-2 just before our delete
          const current = (await memory.get('BGPPeer', name))!;
          await memory.update({ ...current, spec: { ...current.spec, node: 'node-2' } });
        }
        return memory.delete(kind, name, options);
      },
    };
    const out = await run(racing, {}, 'delete', 'node', 'node-1');
    expect(moved).toBe(true);
    expect(out).not.toContain('rack-1-tor');
    expect(out).toContain("  BGPPeer rack-1-rr (peers route-reflector == 'true', this node's only): deleted\n");
    expect((await memory.get('BGPPeer', 'rack-1-tor'))?.spec.node).toBe('node-2');
  });

  it('delete -f failing half-way on the Node itself does not claim "nothing was written"', async () => {
    const memory = await clusterWithBgp();
    const broken = failingDelete(memory, 'Node', 'node-1');
    const failure = await run(broken, { 'n.yaml': NODE_1 }, 'delete', '-f', 'n.yaml').then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(failure?.message).toMatch(
      /^document 1 \(Node "node-1"\): Node "node-1": deleting the Node itself failed: etcd 127\.0\.0\.1:2379: connection refused\. Done before it: released its IPAM state \(listed above\), deleted WorkloadEndpoint default\/node-1-k8s-web-eth0, deleted BGPPeer rack-1-rr, deleted BGPPeer rack-1-tor, deleted BGPConfiguration node\.node-1\. Not done: the Node itself\. Run "tortie delete node node-1" again to do the rest; 0 of 1 resource\(s\) were deleted before it$/,
    );
    expect(failure?.message).not.toMatch(/nothing was written/);
    // Again: the Node is all that is left.
    expect(await run(broken, { 'n.yaml': NODE_1 }, 'delete', '-f', 'n.yaml')).toBe(
      "Successfully deleted 1 'Node' resource(s)\n",
    );
  });
});

describe('tortie delete ippool', () => {
  it('refuses every pool first when one is in use, so nothing is deleted; a free pool then goes with its blocks', async () => {
    const ds = await cluster();
    await ds.create({
      apiVersion: API_VERSION,
      kind: 'IPPool',
      metadata: { name: 'pool-b' },
      spec: { cidr: '10.250.0.0/24', blockSize: 26, nodeSelector: 'all()' },
    });
    await new Ipam(ds).claimBlock('node-2', { pool: 'pool-b' });
    const before = await everything(ds);
    await expect(run(ds, {}, 'delete', 'ippool', 'pool-b', 'pool-a')).rejects.toThrow(
      /^IPPool "pool-a" \(10\.244\.0\.0\/25\) still has 2 address\(es\) of workloads: .*; nothing was deleted$/,
    );
    expect(await everything(ds)).toBe(before);
    expect(await run(ds, {}, 'delete', 'ippool', 'pool-b')).toBe(
      [
        'IPPool "pool-b" (10.250.0.0/24): disabled, then its IPAM state released',
        '  block 10.250.0.0/26 (node node-2): empty, deleted with its affinity',
        "Successfully deleted 1 'IPPool' resource(s)",
        '',
      ].join('\n'),
    );
    expect(ipamProblems(await readIpamState(ds))).toEqual([]);
  });

  it('a pool delete failing after the pool was disabled says so and how to finish, by name and by file; running it again finishes', async () => {
    const POOL_B =
      'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: pool-b\nspec:\n  cidr: 10.250.0.0/24\n';
    for (const argv of [
      ['delete', 'ippool', 'pool-b'],
      ['delete', '-f', 'p.yaml'],
    ]) {
      const ds = await cluster();
      await ds.create({
        apiVersion: API_VERSION,
        kind: 'IPPool',
        metadata: { name: 'pool-b' },
        spec: { cidr: '10.250.0.0/24', blockSize: 26, nodeSelector: 'all()' },
      });
      await new Ipam(ds).claimBlock('node-2', { pool: 'pool-b' });
      const broken = failingDelete(ds, 'IPPool', 'pool-b');
      const failure = await run(broken, { 'p.yaml': POOL_B }, ...argv).then(
        () => null,
        (e: unknown) => e as Error,
      );
      expect(failure?.message).toContain('etcd 127.0.0.1:2379: connection refused');
      expect(failure?.message).toMatch(
        /Deleting IPPool pool-b first disables it and releases its IPAM state, so it may be disabled and partly released now: run "tortie delete ippool pool-b" again to finish/,
      );
      expect(failure?.message).not.toMatch(/nothing was written/);
      expect((await ds.get('IPPool', 'pool-b'))?.spec.disabled).toBe(true);
      expect(await run(broken, { 'p.yaml': POOL_B }, ...argv)).toContain("Successfully deleted 1 'IPPool' resource(s)");
      expect(await ds.get('IPPool', 'pool-b')).toBeNull();
      expect(ipamProblems(await readIpamState(ds))).toEqual([]);
    }
  });

  it('a pool with no IPAM state is deleted as before: only the summary', async () => {
    const ds = new MemoryDatastore();
    await ds.create({
      apiVersion: API_VERSION,
      kind: 'IPPool',
      metadata: { name: 'p' },
      spec: { cidr: '10.9.0.0/24' },
    });
    expect(await run(ds, {}, 'delete', 'ippool', 'p')).toBe("Successfully deleted 1 'IPPool' resource(s)\n");
  });
});
