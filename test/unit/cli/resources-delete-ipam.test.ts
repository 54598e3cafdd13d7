// `tortie delete node|ippool` with IPAM state, against MemoryDatastore: what the command prints (address by
// address, block by block), that `delete KIND NAME` and `delete -f` refuse the same things before writing
// anything (a Kubernetes Node that still exists, a pool whose addresses workloads hold), and that a node
// already gone (kubectl delete node) is accepted when it left IPAM state, with no "deleted" summary.

import { describe, expect, it } from 'vitest';
import { parseResourceArgs, runResourceCommand, type CommandContext } from '../../../src/cli/resources-command.js';
import { MemoryDatastore } from '../../../src/datastore/memory.js';
import type { Datastore } from '../../../src/datastore/types.js';
import { Ipam } from '../../../src/ipam/index.js';
import { API_VERSION, type Kind, type Resource } from '../../../src/resources/types.js';
import { ipamProblems, readIpamState } from '../ipam/invariants.js';

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

function wep(node: string, pod: string, ip: string): Resource<'WorkloadEndpoint'> {
  return { apiVersion: API_VERSION, kind: 'WorkloadEndpoint', metadata: { name: `${node}-k8s-${pod}-eth0`, namespace: 'default' }, spec: { node, pod, interfaceName: 'cali0', ipNetworks: [`${ip}/32`] } };
}

/** node-1 with a tunnel address, a running pod and a leaked address in one block, an empty second block; node-2 borrowed from the first. */
async function cluster(): Promise<MemoryDatastore> {
  const ds = new MemoryDatastore();
  await ds.create({ apiVersion: API_VERSION, kind: 'IPPool', metadata: { name: 'pool-a' }, spec: { cidr: '10.244.0.0/25', blockSize: 26, nodeSelector: 'all()' } });
  for (const name of ['node-1', 'node-2']) await ds.create({ apiVersion: API_VERSION, kind: 'Node', metadata: { name }, spec: {} });
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
    await expect(run(ds, {}, 'delete', 'node', 'node-1')).rejects.toThrow(/^resource does not exist: Node\(node-1\); nothing was deleted$/);
  });

  it('on kubernetes: refused while the Kubernetes Node exists (nothing written); once it is gone, releases the IPAM state', async () => {
    const memory = await cluster();
    const ds = typed(memory, 'kubernetes');
    const before = await everything(ds);
    await expect(run(ds, {}, 'delete', 'node', 'node-1')).rejects.toThrow(/^Node "node-1" is the Kubernetes Node .*"kubectl delete node node-1", then run "tortie delete node node-1" again .*; nothing was deleted$/);
    await expect(run(ds, { 'n.yaml': NODE_1 }, 'delete', '-f', 'n.yaml')).rejects.toThrow(/document 1 \(Node "node-1"\): metadata\.name: Node "node-1" is the Kubernetes Node/);
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
    await expect(run(ds, { 'n.yaml': NODE_1 }, 'delete', '-f', 'n.yaml')).rejects.toThrow(/resource does not exist: Node\(node-1\)\nnothing was written$/);
  });
});

describe('tortie delete ippool', () => {
  it('refuses every pool first when one is in use, so nothing is deleted; a free pool then goes with its blocks', async () => {
    const ds = await cluster();
    await ds.create({ apiVersion: API_VERSION, kind: 'IPPool', metadata: { name: 'pool-b' }, spec: { cidr: '10.250.0.0/24', blockSize: 26, nodeSelector: 'all()' } });
    await new Ipam(ds).claimBlock('node-2', { pool: 'pool-b' });
    const before = await everything(ds);
    await expect(run(ds, {}, 'delete', 'ippool', 'pool-b', 'pool-a')).rejects.toThrow(/^IPPool "pool-a" \(10\.244\.0\.0\/25\) still has 2 address\(es\) of workloads: .*; nothing was deleted$/);
    expect(await everything(ds)).toBe(before);
    expect(await run(ds, {}, 'delete', 'ippool', 'pool-b')).toBe(
      ['IPPool "pool-b" (10.250.0.0/24): disabled, then its IPAM state released', '  block 10.250.0.0/26 (node node-2): empty, deleted with its affinity', "Successfully deleted 1 'IPPool' resource(s)", ''].join('\n'),
    );
    expect(ipamProblems(await readIpamState(ds))).toEqual([]);
  });

  it('a pool with no IPAM state is deleted as before: only the summary', async () => {
    const ds = new MemoryDatastore();
    await ds.create({ apiVersion: API_VERSION, kind: 'IPPool', metadata: { name: 'p' }, spec: { cidr: '10.9.0.0/24' } });
    expect(await run(ds, {}, 'delete', 'ippool', 'p')).toBe("Successfully deleted 1 'IPPool' resource(s)\n");
  });
});
