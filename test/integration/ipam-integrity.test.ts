// IPAM integrity against a real etcd and the fake Kubernetes API server (the same tests on both):
// - `tortie delete node X` releases X's IPAM state: its tunnel address, the addresses of its workloads and
//   the leaked ones in its blocks, its affinities; empty blocks are deleted, blocks still holding other
//   nodes' addresses are kept without affinity. On Kubernetes the Node must be gone first (kubectl).
//   What X borrowed in another node's block (its allocation's node attribute) and no workload holds is
//   released too, after the same grace period, and listed.
// - `tortie delete ippool P` refuses while workloads hold addresses in P (naming them, nothing written);
//   otherwise it disables P, releases tunnel and leaked addresses and P's blocks and affinities, deletes P.
// - Releasing an empty block while another client assigns into it or claims it (forced interleavings, then
//   a bounded stress loop): the new address and its block's affinity survive, nothing is left half-done.
// - Releases killed half-way (the real release code, its datastore failing from one write on) leave
//   affinities pendingDeletion; the node's agent, started on the same datastore, settles them: the block in
//   use is taken back and advertised, the empty one released, one already unaffined loses its affinity.
// - `tortie delete node X` also deletes X's own BGPPeers (spec.node) and BGPConfiguration node.X, as
//   calicoctl; a run that fails half-way (one write refused) says what was done, and running it again
//   finishes.
// After each, the whole stored state is checked with ipamProblems (test/unit/ipam/invariants.ts).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { affineBlocks } from '../../src/agent/advertise.js';
import { Agent, type SpeakerLike } from '../../src/agent/agent.js';
import { parseAgentConfig } from '../../src/agent/config.js';
import { parseResourceArgs, runResourceCommand } from '../../src/cli/resources-command.js';
import { openEtcd } from '../../src/datastore/etcd.js';
import { openKubernetes } from '../../src/datastore/kubernetes.js';
import type { Datastore } from '../../src/datastore/types.js';
import { Ipam } from '../../src/ipam/index.js';
import { releaseHost } from '../../src/ipam/teardown.js';
import { API_VERSION, type Kind, type Resource } from '../../src/resources/types.js';
import { requireEtcd, startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { startFakeApiServer, type FakeApiServer } from '../harness/fake-apiserver.js';
import { allocatedAddresses, ipamProblems, killedAt, readIpamState } from '../unit/ipam/invariants.js';
import { INTERFACES } from '../unit/helpers/agent-fixtures.js';
import { FakeSpeaker } from '../unit/helpers/fake-speaker.js';

const haveEtcd = requireEtcd();

/** One datastore under test, and the few things its users do outside tortie (kubectl, the kubelet). */
interface Backend {
  readonly type: 'etcdv3' | 'kubernetes';
  open(): Promise<Datastore>;
  /** A Node as it comes to exist there: created (etcd) or registered by its kubelet (kubernetes). */
  addNode(ds: Datastore, name: string): Promise<void>;
  /** `kubectl delete node` (kubernetes only). */
  removeKubeNode(name: string): void;
  /** A running pod with this address on `node`: a WorkloadEndpoint (etcd) or a Pod (kubernetes). */
  addWorkload(ds: Datastore, w: { namespace: string; pod: string; node: string; ip: string }): Promise<void>;
  /** Removes every object the tests wrote. */
  reset(ds: Datastore): Promise<void>;
}

const wepName = (node: string, pod: string): string =>
  [node, 'k8s', pod, 'eth0'].map((p) => p.replace(/-/g, '--')).join('-');

function etcdBackend(etcd: () => EtcdInstance): Backend {
  return {
    type: 'etcdv3',
    open: () => openEtcd({ endpoints: [etcd().endpoint], timeoutMs: 30_000 }),
    addNode: async (ds, name) => {
      await ds.create({
        apiVersion: API_VERSION,
        kind: 'Node',
        metadata: { name },
        spec: { bgp: { ipv4Address: '198.18.0.1/24' } },
      });
    },
    removeKubeNode: () => {
      throw new Error('etcd has no kubelet-registered Nodes');
    },
    addWorkload: async (ds, w) => {
      await ds.create({
        apiVersion: API_VERSION,
        kind: 'WorkloadEndpoint',
        metadata: { name: wepName(w.node, w.pod), namespace: w.namespace },
        spec: {
          node: w.node,
          orchestrator: 'k8s',
          pod: w.pod,
          endpoint: 'eth0',
          interfaceName: 'cali0123456789a',
          ipNetworks: [`${w.ip}/32`],
        },
      });
    },
    reset: async (ds) => {
      for (const kind of [
        'IPAMBlock',
        'BlockAffinity',
        'IPAMHandle',
        'IPPool',
        'WorkloadEndpoint',
        'Node',
        'BGPPeer',
        'BGPConfiguration',
      ] as Kind[]) {
        for (const r of (await ds.list(kind)).items)
          await ds
            .delete(
              kind,
              r.metadata.name,
              r.metadata.namespace !== undefined ? { namespace: r.metadata.namespace } : {},
            )
            .catch(() => undefined);
      }
    },
  };
}

function kubernetesBackend(api: () => FakeApiServer): Backend {
  const nodes = new Set<string>();
  const pods = new Set<string>();
  return {
    type: 'kubernetes',
    open: () => openKubernetes({ kubeconfig: api().kubeconfigPath, timeoutMs: 10_000 }),
    addNode: async (_ds, name) => {
      api().put({ core: 'nodes' }, { metadata: { name, labels: { 'kubernetes.io/hostname': name } } });
      nodes.add(name);
    },
    removeKubeNode: (name) => {
      api().remove({ core: 'nodes' }, name);
      nodes.delete(name);
    },
    addWorkload: async (_ds, w) => {
      api().put(
        { core: 'pods' },
        {
          metadata: { name: w.pod, namespace: w.namespace },
          spec: { nodeName: w.node, containers: [{}] },
          status: { phase: 'Running', podIP: w.ip },
        },
      );
      pods.add(`${w.namespace}/${w.pod}`);
    },
    reset: async (ds) => {
      for (const kind of [
        'IPAMBlock',
        'BlockAffinity',
        'IPAMHandle',
        'IPPool',
        'BGPPeer',
        'BGPConfiguration',
      ] as Kind[]) {
        for (const r of (await ds.list(kind)).items) await ds.delete(kind, r.metadata.name).catch(() => undefined);
      }
      for (const name of nodes) api().remove({ core: 'nodes' }, name);
      nodes.clear();
      for (const key of pods) {
        const [namespace, name] = key.split('/') as [string, string];
        api().remove({ core: 'pods' }, name, namespace);
      }
      pods.clear();
    },
  };
}

/** `tortie <verb> ...` in this process, on a fresh client of the backend (the command closes it), optionally wrapped. */
async function tortie(
  backend: Backend,
  verb: 'delete' | 'apply',
  ...argv: string[]
): Promise<{ code: number; out: string; err: string }> {
  return tortieOn(async () => backend.open(), verb, ...argv);
}

async function tortieOn(
  open: () => Promise<Datastore>,
  verb: 'delete' | 'apply',
  ...argv: string[]
): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  try {
    const code = await runResourceCommand(parseResourceArgs(verb, argv), {
      out: (t) => (out += t),
      readInput: async () => '',
      openDatastore: open,
    });
    return { code, out, err: '' };
  } catch (error) {
    return { code: 1, out, err: error instanceof Error ? error.message : String(error) };
  }
}

function pool(name: string, cidr: string, extra: Partial<Resource<'IPPool'>['spec']> = {}): Resource<'IPPool'> {
  return {
    apiVersion: API_VERSION,
    kind: 'IPPool',
    metadata: { name },
    spec: { cidr, blockSize: 26, ipipMode: 'Always', natOutgoing: true, nodeSelector: 'all()', ...extra },
  };
}

/** The stored IPAM state in a form easy to compare: blocks with affinity and holders, affinities, handles. */
async function summary(ds: Datastore): Promise<{ blocks: string[]; affinities: string[]; handles: string[] }> {
  const state = await readIpamState(ds);
  const addresses = allocatedAddresses(state);
  return {
    blocks: state.blocks
      .map((b) => {
        const held = [...addresses].filter(([ip]) => inCidr(ip, b.spec.cidr)).map(([ip, h]) => `${ip}=${h}`);
        return `${b.spec.cidr} ${b.spec.affinity ?? 'no-affinity'} [${held.join(' ')}]`;
      })
      .sort(),
    affinities: state.affinities.map((a) => `${a.spec.node} ${a.spec.cidr} ${a.spec.state}`).sort(),
    handles: state.handles.map((h) => `${h.metadata.name} ${JSON.stringify(h.spec.block)}`).sort(),
  };
}

function ipNumber(ip: string): number {
  return ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}

function inCidr(ip: string, cidr: string): boolean {
  const [base, len] = cidr.split('/') as [string, string];
  const size = 2 ** (32 - Number(len));
  const start = ipNumber(base);
  return ipNumber(ip) >= start && ipNumber(ip) < start + size;
}

/**
 * The same datastore with the first call matching `match` held until release() (so a test can force one
 * interleaving of two clients against the real server). `reached` resolves when that call arrives.
 */
function pauseBefore(
  ds: Datastore,
  match: (op: 'update' | 'delete' | 'create', kind: Kind) => boolean,
): { ds: Datastore; reached: Promise<void>; release(): void } {
  let arrive!: () => void;
  let go!: () => void;
  const reached = new Promise<void>((resolve) => (arrive = resolve));
  const gate = new Promise<void>((resolve) => (go = resolve));
  let used = false;
  const hold = async (op: 'update' | 'delete' | 'create', kind: Kind): Promise<void> => {
    if (used || !match(op, kind)) return;
    used = true;
    arrive();
    await gate;
  };
  const wrapped: Datastore = {
    type: ds.type,
    get: (kind, name, namespace) => ds.get(kind, name, namespace),
    list: (kind, options) => ds.list(kind, options),
    create: async (resource) => {
      await hold('create', resource.kind);
      return ds.create(resource);
    },
    update: async (resource) => {
      await hold('update', resource.kind);
      return ds.update(resource);
    },
    delete: async (kind, name, options) => {
      await hold('delete', kind);
      return ds.delete(kind, name, options);
    },
    watch: (kind, from, onEvent) => ds.watch(kind, from, onEvent),
    close: () => ds.close(),
  };
  return { ds: wrapped, reached, release: () => go() };
}

/** BGP configuration of node-1 (two peers, node.node-1) and of others (node-2's peer, a global one, one by label). */
async function createBgp(ds: Datastore): Promise<void> {
  const peers: Array<[string, Resource<'BGPPeer'>['spec']]> = [
    ['rack-1-tor', { node: 'node-1', peerIP: '198.18.0.50', asNumber: 65001 }],
    ['rack-1-rr', { node: 'node-1', peerSelector: "route-reflector == 'true'" }],
    ['rack-2-tor', { node: 'node-2', peerIP: '198.18.0.51', asNumber: 65001 }],
    ['office', { peerIP: '198.18.0.60', asNumber: 65002 }],
    ['by-label', { nodeSelector: "kubernetes.io/hostname == 'node-1'", peerIP: '198.18.0.61', asNumber: 65002 }],
  ];
  for (const [name, spec] of peers)
    await ds.create({ apiVersion: API_VERSION, kind: 'BGPPeer', metadata: { name }, spec });
  for (const name of ['default', 'node.node-1', 'node.node-2'])
    await ds.create({
      apiVersion: API_VERSION,
      kind: 'BGPConfiguration',
      metadata: { name },
      spec: { asNumber: 64512 },
    });
}

async function bgpNames(ds: Datastore): Promise<string[]> {
  const [peers, configs] = await Promise.all([ds.list('BGPPeer'), ds.list('BGPConfiguration')]);
  return [
    ...peers.items.map((p) => `BGPPeer ${p.metadata.name}`),
    ...configs.items.map((c) => `BGPConfiguration ${c.metadata.name}`),
  ].sort();
}

/** Every call of `ds` passed on unchanged (a base for wrappers that change one). */
function forward(ds: Datastore): Datastore {
  return {
    type: ds.type,
    get: (kind, name, namespace) => ds.get(kind, name, namespace),
    list: (kind, options) => ds.list(kind, options),
    create: (resource) => ds.create(resource),
    update: (resource) => ds.update(resource),
    delete: (kind, name, options) => ds.delete(kind, name, options),
    watch: (kind, from, onEvent) => ds.watch(kind, from, onEvent),
    close: () => ds.close(),
  };
}

/** Blocks the agent of `node` would advertise (a confirmed affinity and the block's affinity agree). */
async function advertised(ds: Datastore, node: string): Promise<string[]> {
  const state = await readIpamState(ds);
  return affineBlocks({ nodeName: node, blocks: state.blocks, affinities: state.affinities }).map(
    (p) => `${[24, 16, 8, 0].map((s) => (p.addr >>> s) & 255).join('.')}/${p.len}`,
  );
}

function suite(
  name: string,
  makeBackend: () => Backend,
  start: () => Promise<void>,
  stop: () => Promise<void>,
  skip: boolean,
): void {
  describe.skipIf(skip)(`IPAM integrity on ${name}`, () => {
    let backend: Backend;
    let ds: Datastore;
    const clients: Datastore[] = [];

    beforeAll(async () => {
      await start();
      backend = makeBackend();
      ds = await backend.open();
      for (let i = 0; i < 3; i++) clients.push(await backend.open());
    });
    afterAll(async () => {
      for (const c of clients) await c.close();
      await ds?.close();
      await stop();
    });
    beforeEach(async () => {
      await backend.reset(ds);
    });

    it('delete node releases its tunnel address, its workloads\u2019 and leaked addresses, its affinities; keeps what other nodes hold', async () => {
      await ds.create(pool('pool-a', '10.244.0.0/25'));
      await backend.addNode(ds, 'node-1');
      await backend.addNode(ds, 'node-2');
      const ipam = new Ipam(ds);
      const [tunnel] = await ipam.assign('node-1', 'ipip-tunnel-addr-node-1', { use: 'Tunnel' });
      const node1 = (await ds.get('Node', 'node-1'))!;
      await ds.update({
        ...node1,
        spec: { ...node1.spec, bgp: { ...(node1.spec.bgp ?? {}), ipv4IPIPTunnelAddr: tunnel! } },
      });
      const [web] = await ipam.assign('node-1', 'k8s-pod-network.c-web');
      const [leaked] = await ipam.assign('node-1', 'k8s-pod-network.c-gone');
      const emptyBlock = await ipam.claimBlock('node-1');
      // The pool has two /26s, both node-1's: node-2 borrows from node-1's first block.
      const [borrowed] = await ipam.assign('node-2', 'k8s-pod-network.c-api');
      expect(emptyBlock).toBe('10.244.0.64/26');
      expect([tunnel, web, leaked, borrowed].every((ip) => ip !== undefined && inCidr(ip, '10.244.0.0/26'))).toBe(true);
      // A claim that stopped half-way long ago: a pending affinity with no block.
      await ds.create({
        apiVersion: API_VERSION,
        kind: 'BlockAffinity',
        metadata: { name: 'node-1-10-244-0-128-26' },
        spec: { state: 'pending', node: 'node-1', cidr: '10.244.0.128/26' },
      });
      await backend.addWorkload(ds, { namespace: 'default', pod: 'web', node: 'node-1', ip: web! });
      await backend.addWorkload(ds, { namespace: 'default', pod: 'api', node: 'node-2', ip: borrowed! });

      if (backend.type === 'kubernetes') {
        // The Node is the Kubernetes Node: refused while it exists, and nothing is released.
        const before = await summary(ds);
        const refused = await tortie(backend, 'delete', 'node', 'node-1');
        expect(refused.code).toBe(1);
        expect(refused.err).toMatch(/kubectl delete node node-1/);
        expect(await summary(ds)).toEqual(before);
        backend.removeKubeNode('node-1');
      }
      const run = await tortie(backend, 'delete', 'node', 'node-1');
      expect(run.err).toBe('');
      expect(run.code).toBe(0);

      expect(await summary(ds)).toEqual({
        blocks: [`10.244.0.0/26 no-affinity [${borrowed}=k8s-pod-network.c-api]`],
        affinities: [],
        handles: ['k8s-pod-network.c-api {"10.244.0.0/26":1}'],
      });
      expect(ipamProblems(await readIpamState(ds))).toEqual([]);
      expect(await ds.get('Node', 'node-1')).toBeNull();
      if (backend.type === 'etcdv3') {
        expect(
          (await ds.list('WorkloadEndpoint')).items.map((w) => `${w.metadata.namespace}/${w.metadata.name}`),
        ).toEqual([`default/${wepName('node-2', 'api')}`]);
      }
      // What was released is said, address by address and block by block.
      for (const text of [tunnel!, web!, leaked!, '10.244.0.64/26', '10.244.0.0/26', '10.244.0.128/26'])
        expect(run.out).toContain(text);
      // The freed block is claimable again, and node-2's pod keeps its address.
      expect(await new Ipam(ds).claimBlock('node-3')).toBe('10.244.0.64/26');
      expect((await summary(ds)).blocks).toContain(`10.244.0.0/26 no-affinity [${borrowed}=k8s-pod-network.c-api]`);
    }, 60_000);

    it('delete node releases what it borrowed in another node\u2019s block once no workload holds it (after the grace period), and lists it', async () => {
      await ds.create(pool('pool-a', '10.244.0.0/26')); // one block: node-1 claims it, node-2 borrows there
      await backend.addNode(ds, 'node-1');
      await backend.addNode(ds, 'node-2');
      const ipam = new Ipam(ds);
      const [own] = await ipam.assign('node-1', 'k8s-pod-network.c-own');
      const [gone] = await ipam.assign('node-2', 'k8s-pod-network.c-gone');
      const [api] = await ipam.assign('node-2', 'k8s-pod-network.c-api');
      expect(await ipam.blocksOf('node-2')).toEqual([]);
      await backend.addWorkload(ds, { namespace: 'default', pod: 'own', node: 'node-1', ip: own! });
      await backend.addWorkload(ds, { namespace: 'default', pod: 'api', node: 'node-2', ip: api! });
      if (backend.type === 'kubernetes') backend.removeKubeNode('node-2');
      const run = await tortie(backend, 'delete', 'node', 'node-2');
      expect(run.err).toBe('');
      expect(run.code).toBe(0);
      expect(run.out).toContain(
        `  released ${gone} (k8s-pod-network.c-gone): leaked: node node-2 borrowed it from node node-1's block; no workload holds it\n`,
      );
      expect(run.out).toContain(`  released ${api} (k8s-pod-network.c-api): workload default/api on node node-2\n`);
      expect(await summary(ds)).toEqual({
        blocks: [`10.244.0.0/26 host:node-1 [${own}=k8s-pod-network.c-own]`],
        affinities: ['node-1 10.244.0.0/26 confirmed'],
        handles: ['k8s-pod-network.c-own {"10.244.0.0/26":1}'],
      });
      expect(ipamProblems(await readIpamState(ds))).toEqual([]);
    }, 60_000);

    it('delete node also deletes its own BGPPeers (spec.node) and BGPConfiguration node.<name>, and lists them; other BGP configuration stays', async () => {
      await ds.create(pool('pool-a', '10.244.0.0/24'));
      await backend.addNode(ds, 'node-1');
      await backend.addNode(ds, 'node-2');
      const [web] = await new Ipam(ds).assign('node-1', 'k8s-pod-network.c-web');
      await backend.addWorkload(ds, { namespace: 'default', pod: 'web', node: 'node-1', ip: web! });
      await createBgp(ds);
      const before = await bgpNames(ds);
      if (backend.type === 'kubernetes') {
        // Refused while the Kubernetes Node exists: its BGP configuration is not touched either.
        expect((await tortie(backend, 'delete', 'node', 'node-1')).err).toMatch(
          /kubectl delete node node-1.*delete its own BGPPeers and BGPConfiguration; nothing was deleted$/,
        );
        expect(await bgpNames(ds)).toEqual(before);
        backend.removeKubeNode('node-1');
      }
      const run = await tortie(backend, 'delete', 'node', 'node-1');
      expect(run.err).toBe('');
      const head = backend.type === 'kubernetes' ? 'Node "node-1" was already gone; ' : 'Node "node-1": ';
      expect(run.out.split('\n')[0]).toBe(`${head}released its IPAM state and deleted its own BGP configuration`);
      expect(run.out).toContain(
        [
          "  BGPPeer rack-1-rr (peers route-reflector == 'true', this node's only): deleted",
          "  BGPPeer rack-1-tor (peer 198.18.0.50 AS 65001, this node's only): deleted",
          "  BGPConfiguration node.node-1 (this node's own BGP settings): deleted",
        ].join('\n'),
      );
      expect(await bgpNames(ds)).toEqual([
        'BGPConfiguration default',
        'BGPConfiguration node.node-2',
        'BGPPeer by-label',
        'BGPPeer office',
        'BGPPeer rack-2-tor',
      ]);
      expect(ipamProblems(await readIpamState(ds))).toEqual([]);
      // Nothing of node-1 is left: deleting it again is "does not exist".
      expect((await tortie(backend, 'delete', 'node', 'node-1')).err).toMatch(
        /^resource does not exist: Node\(node-1\); nothing was deleted$/,
      );
    }, 60_000);

    it('delete node failing half-way (the datastore refuses one write) says what was done and what not; the same command again finishes', async () => {
      await ds.create(pool('pool-a', '10.244.0.0/24'));
      await backend.addNode(ds, 'node-1');
      await backend.addNode(ds, 'node-2');
      await new Ipam(ds).assign('node-1', 'ipip-tunnel-addr-node-1', { use: 'Tunnel' });
      await createBgp(ds);
      if (backend.type === 'kubernetes') backend.removeKubeNode('node-1');
      // The second of node-1's peers cannot be deleted this time (as when etcd goes away half-way).
      const broken = async (): Promise<Datastore> => {
        const inner = await backend.open();
        return {
          ...forward(inner),
          delete: async (kind, name, options) => {
            if (kind === 'BGPPeer' && name === 'rack-1-tor') throw new Error('datastore unreachable (test)');
            return inner.delete(kind, name, options);
          },
        };
      };
      const first = await tortieOn(broken, 'delete', 'node', 'node-1');
      expect(first.code).toBe(1);
      expect(first.err).toContain(
        'Node "node-1": deleting BGPPeer rack-1-tor failed: datastore unreachable (test). Done before it: released its IPAM state (listed above), deleted BGPPeer rack-1-rr. ',
      );
      expect(first.err).toContain(
        `Not done: BGPPeer rack-1-tor, BGPConfiguration node.node-1${backend.type === 'kubernetes' ? '' : ', the Node itself'}. Run "tortie delete node node-1" again to do the rest`,
      );
      expect(first.out).toMatch(/released 10\.244\.0\.\d+ \(ipip-tunnel-addr-node-1\): tunnel address of node node-1/);
      expect(first.out).toContain("  BGPPeer rack-1-rr (peers route-reflector == 'true', this node's only): deleted\n");
      expect(await bgpNames(ds)).toEqual(
        expect.arrayContaining(['BGPPeer rack-1-tor', 'BGPConfiguration node.node-1']),
      );
      expect(await bgpNames(ds)).not.toContain('BGPPeer rack-1-rr');
      expect((await summary(ds)).blocks).toEqual([]);
      // Again, with the datastore working: only what was left is done.
      const second = await tortie(backend, 'delete', 'node', 'node-1');
      expect(second.err).toBe('');
      expect(second.out).not.toMatch(/released|rack-1-rr/);
      expect(second.out).toContain(
        "  BGPPeer rack-1-tor (peer 198.18.0.50 AS 65001, this node's only): deleted\n  BGPConfiguration node.node-1 (this node's own BGP settings): deleted\n",
      );
      expect(await bgpNames(ds)).toEqual([
        'BGPConfiguration default',
        'BGPConfiguration node.node-2',
        'BGPPeer by-label',
        'BGPPeer office',
        'BGPPeer rack-2-tor',
      ]);
      expect(await ds.get('Node', 'node-1')).toBeNull();
      expect(ipamProblems(await readIpamState(ds))).toEqual([]);
    }, 60_000);

    it('delete ippool refuses while pods hold addresses in it, naming them; nothing is written', async () => {
      await ds.create(pool('pool-a', '10.244.0.0/24'));
      await backend.addNode(ds, 'node-1');
      const ipam = new Ipam(ds);
      const [web] = await ipam.assign('node-1', 'k8s-pod-network.c-web');
      await backend.addWorkload(ds, { namespace: 'default', pod: 'web', node: 'node-1', ip: web! });
      const before = await summary(ds);
      const run = await tortie(backend, 'delete', 'ippool', 'pool-a');
      expect(run.code).toBe(1);
      expect(run.err).toMatch(/IPPool "pool-a" \(10\.244\.0\.0\/24\) still has 1 address\(es\) of workloads/);
      expect(run.err).toContain('default/web');
      expect(run.err).toMatch(/disabled: true/);
      expect(run.err).toMatch(/nothing was deleted$/);
      const stored = await ds.get('IPPool', 'pool-a');
      expect(stored?.spec.disabled ?? false).toBe(false);
      expect(await summary(ds)).toEqual(before);
    }, 60_000);

    it('delete ippool without workloads: disabled, tunnel and leaked addresses released, blocks and affinities gone, then deleted', async () => {
      await ds.create(pool('pool-b', '10.250.0.0/24'));
      await backend.addNode(ds, 'node-1');
      await backend.addNode(ds, 'node-2');
      const ipam = new Ipam(ds);
      await ipam.claimBlock('node-1');
      const [tunnel] = await ipam.assign('node-2', 'ipip-tunnel-addr-node-2', { use: 'Tunnel' });
      const node2 = (await ds.get('Node', 'node-2'))!;
      await ds.update({
        ...node2,
        spec: { ...node2.spec, bgp: { ...(node2.spec.bgp ?? {}), ipv4IPIPTunnelAddr: tunnel! } },
      });
      const [leaked] = await ipam.assign('node-2', 'k8s-pod-network.c-gone');
      expect((await summary(ds)).blocks).toHaveLength(2);

      const run = await tortie(backend, 'delete', 'ippool', 'pool-b');
      expect(run.err).toBe('');
      expect(run.out).toMatch(/Successfully deleted 1 'IPPool' resource\(s\)\n$/);
      expect(await ds.get('IPPool', 'pool-b')).toBeNull();
      expect(await summary(ds)).toEqual({ blocks: [], affinities: [], handles: [] });
      // The node's tunnel address is cleared with it, so its agent takes one from another IPIP pool.
      expect((await ds.get('Node', 'node-2'))?.spec.bgp?.ipv4IPIPTunnelAddr).toBeUndefined();
      for (const text of [tunnel!, leaked!]) expect(run.out).toContain(text);
    }, 60_000);

    it('delete node while its CNI keeps assigning (its agent still runs): no address lost or held twice, state consistent', async () => {
      await ds.create(pool('pool-l', '10.244.0.0/22'));
      await backend.addNode(ds, 'live');
      const ipam = new Ipam(ds);
      await ipam.assign('live', 'ipip-tunnel-addr-live', { use: 'Tunnel' });
      for (let k = 0; k < 3; k++) {
        const [ip] = await ipam.assign('live', `k8s-pod-network.running-${k}`);
        await backend.addWorkload(ds, { namespace: 'default', pod: `running-${k}`, node: 'live', ip: ip! });
      }
      // A leaked address (its pod is gone): the release waits the grace period, while the CNI keeps going.
      await ipam.assign('live', 'k8s-pod-network.gone');
      if (backend.type === 'kubernetes') backend.removeKubeNode('live');
      // The node's CNI plugin keeps assigning while the release runs (bounded: 200 pods), and once after.
      let finished = false;
      const assigned: Array<{ ip: string; handle: string }> = [];
      const assignOne = async (handle: string): Promise<void> => {
        const [ip] = await new Ipam(clients[1]!).assign('live', handle);
        assigned.push({ ip: ip!, handle });
      };
      const cni = (async () => {
        for (let k = 0; k < 200 && !finished; k++) await assignOne(`k8s-pod-network.late-${k}`);
      })();
      const report = await releaseHost(clients[0]!, 'live', { leakGraceMs: 300 });
      finished = true;
      await cni;
      const during = assigned.length;
      await assignOne('k8s-pod-network.after');
      const state = await readIpamState(ds);
      expect(ipamProblems(state)).toEqual([]);
      const held = allocatedAddresses(state);
      const released = new Set(report.released.map((r) => `${r.ip}=${r.handle}`));
      // Every address the CNI got is still its pod's, or the report says it was released (it looked leaked).
      const lost = assigned.filter(({ ip, handle }) => held.get(ip) !== handle && !released.has(`${ip}=${handle}`));
      expect(lost, "addresses the CNI got that are neither its pod's nor reported released").toEqual([]);
      expect(during).toBeGreaterThan(0);
      // The running pods' and the tunnel's addresses were released with the node.
      expect(report.released.filter((r) => r.reason.why === 'workload')).toHaveLength(3);
      expect(report.released.filter((r) => r.reason.why === 'tunnel')).toHaveLength(1);
      expect(report.released.filter((r) => r.reason.why === 'leaked').map((r) => r.handle)).toContain(
        'k8s-pod-network.gone',
      );
      // Those assigned during the grace period looked leaked only once: kept, and their block with them.
      const unaffined = new Set(state.blocks.filter((b) => b.spec.affinity === null).map((b) => b.spec.cidr));
      const keptByReport = new Set(report.kept.map((k) => `${k.ip}=${k.handle}`));
      const keptUnreported = assigned.filter(({ ip, handle }) => {
        const block = state.blocks.find((b) => inCidr(ip, b.spec.cidr));
        return (
          held.get(ip) === handle &&
          block !== undefined &&
          unaffined.has(block.spec.cidr) &&
          !keptByReport.has(`${ip}=${handle}`)
        );
      });
      expect(
        keptUnreported,
        'addresses kept in a block without affinity that the report does not list as kept',
      ).toEqual([]);
      for (const k of report.kept) expect(held.get(k.ip)).toBe(k.handle);
      // A pod assigned after the release finished gets a block the node claims again, and it is advertised.
      const late = assigned.at(-1)!;
      expect(late.handle).toBe('k8s-pod-network.after');
      const lateBlock = state.blocks.find((b) => inCidr(late.ip, b.spec.cidr))!;
      expect(lateBlock.spec.affinity).toBe('host:live');
      expect(await advertised(ds, 'live')).toContain(lateBlock.spec.cidr);
    }, 60_000);

    it('release of an empty block racing an assign into it: the assign wins, the block stays advertised', async () => {
      await ds.create(pool('pool-r', '10.244.0.0/24'));
      const cidr = await new Ipam(ds).claimBlock('race-1');
      // Client 0 releases the empty block; it is held just before it deletes the block.
      const gate = pauseBefore(clients[0]!, (op, kind) => op === 'delete' && kind === 'IPAMBlock');
      const releasing = new Ipam(gate.ds).releaseBlock(cidr).then(
        () => null,
        (e: unknown) => e as Error,
      );
      await gate.reached;
      // Meanwhile client 1 (the node's CNI) takes an address from that block.
      const [ip] = await new Ipam(clients[1]!).assign('race-1', 'late-pod');
      gate.release();
      const outcome = await releasing;
      expect(ip && inCidr(ip, cidr)).toBe(true);
      expect(outcome?.message).toMatch(/still has 1 address\(es\) allocated/);
      expect(ipamProblems(await readIpamState(ds))).toEqual([]);
      expect(await advertised(ds, 'race-1')).toEqual([cidr]);
      expect(allocatedAddresses(await readIpamState(ds)).get(ip!)).toBe('late-pod');
    }, 60_000);

    it('release of an empty block racing a claim of the same node: no block is left without its affinity', async () => {
      await ds.create(pool('pool-r', '10.244.0.0/24'));
      const cidr = await new Ipam(ds).claimBlock('race-2');
      // Client 0 is held after deleting the block, just before it deletes the affinity.
      const gate = pauseBefore(clients[0]!, (op, kind) => op === 'delete' && kind === 'BlockAffinity');
      const releasing = new Ipam(gate.ds).releaseBlock(cidr);
      await gate.reached;
      const claimed = await new Ipam(clients[1]!).claimBlock('race-2');
      gate.release();
      await releasing;
      expect(ipamProblems(await readIpamState(ds))).toEqual([]);
      expect(await advertised(ds, 'race-2')).toEqual([claimed]);
      const [ip] = await new Ipam(clients[2]!).assign('race-2', 'pod-after');
      expect(ip && inCidr(ip, claimed)).toBe(true);
    }, 60_000);

    it('stress: releases of an empty block racing assigns and claims on the same node (bounded rounds and time)', async () => {
      await ds.create(pool('pool-s', '10.244.0.0/22'));
      const node = 'stress';
      const deadline = Date.now() + 20_000;
      const outcomes = { released: 0, refused: 0 };
      let rounds = 0;
      const jitter = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 4)));
      for (let round = 0; round < 30 && Date.now() < deadline; round++) {
        rounds++;
        const own = await new Ipam(ds).blocksOf(node);
        const cidr = own[0] ?? (await new Ipam(ds).claimBlock(node));
        const [releaseResult, assigned, claimed] = await Promise.all([
          jitter().then(() =>
            new Ipam(clients[0]!).releaseBlock(cidr).then(
              () => 'released' as const,
              (e: unknown) => e as Error,
            ),
          ),
          jitter().then(() => new Ipam(clients[1]!).assign(node, `pod-${round}`)),
          jitter().then(() => new Ipam(clients[2]!).claimBlock(node)),
        ]);
        if (releaseResult === 'released') outcomes.released++;
        else {
          expect(releaseResult.message).toMatch(/still has \d+ address\(es\) allocated|does not exist/);
          outcomes.refused++;
        }
        const state = await readIpamState(ds);
        expect(ipamProblems(state), `round ${round}`).toEqual([]);
        expect(allocatedAddresses(state).get(assigned[0]!), `round ${round}: pod-${round}'s address`).toBe(
          `pod-${round}`,
        );
        expect(await advertised(ds, node)).toContain(claimed);
        // Back to one empty block for the next round.
        await new Ipam(ds).releaseByHandle(`pod-${round}`);
        for (const extra of (await new Ipam(ds).blocksOf(node)).slice(1)) await new Ipam(ds).releaseBlock(extra);
      }
      expect(rounds).toBeGreaterThan(0);
      expect(outcomes.released + outcomes.refused).toBe(rounds);
    }, 60_000);

    it('releases killed half-way (affinity pendingDeletion) are settled by the node\u2019s agent at startup: the block in use taken back and advertised, the empty one released', async () => {
      await ds.create(pool('pool-k', '10.244.0.0/24', { ipipMode: 'Never' }));
      await ds.create(pool('pool-k2', '10.245.0.0/24', { ipipMode: 'Never' }));
      await backend.addNode(ds, 'crashed');
      const ipam = new Ipam(ds);
      const [web] = await ipam.assign('crashed', 'k8s-pod-network.c-web', { pool: 'pool-k' });
      const empty = await ipam.claimBlock('crashed', { pool: 'pool-k' });
      const [api] = await ipam.assign('crashed', 'k8s-pod-network.c-api', { pool: 'pool-k2' });
      const [inUse, unaffined] = ['10.244.0.0/26', '10.245.0.0/26'];
      expect([inCidr(web!, inUse), empty, inCidr(api!, unaffined)]).toEqual([true, '10.244.0.64/26', true]);
      // Three releases (delete ippool / delete node), each the real code killed at one write, on its own client.
      const die = async (
        cidr: string,
        at: (op: 'create' | 'update' | 'delete', kind: Kind) => boolean,
      ): Promise<void> => {
        await expect(new Ipam(killedAt(clients[1]!, at)).releaseAffinity('crashed', cidr)).rejects.toThrow(
          /killed before/,
        );
      };
      const blockWrite = (op: string, kind: Kind): boolean => kind === 'IPAMBlock' && op !== 'create';
      await die(inUse, blockWrite); // affinity pendingDeletion, block still the node's, with the pod's address
      await die(empty, blockWrite); // the same with an empty block
      await die(unaffined, (op, kind) => op === 'delete' && kind === 'BlockAffinity'); // got past the block (kept, no affinity)
      expect((await summary(ds)).affinities).toEqual([
        `crashed ${inUse} pendingDeletion`,
        `crashed ${empty} pendingDeletion`,
        `crashed ${unaffined} pendingDeletion`,
      ]);
      expect(await advertised(ds, 'crashed')).toEqual([]); // the pod's block went dark with the crash
      const held = allocatedAddresses(await readIpamState(ds));

      // The node's agent starts (its own datastore client), with a stand-in Speaker and no dataplane.
      const dir = mkdtempSync(join(tmpdir(), 'tortie-ipam-followup-'));
      const speakers: FakeSpeaker[] = [];
      const agentDs = await backend.open();
      const env = {
        NODENAME: 'crashed',
        IP: '198.18.0.11/24',
        TORTIE_DATAPLANE: 'none',
        TORTIE_HEALTH_PORT: '0',
        TORTIE_CTL_SOCKET: join(dir, 'ctl.sock'),
        NO_DEFAULT_POOLS: 'true',
      };
      const agent = new Agent(parseAgentConfig(env, 'unused'), {
        datastore: agentDs,
        logger: pino({ level: 'silent' }),
        createSpeaker: (config) => {
          const speaker = new FakeSpeaker(config);
          speakers.push(speaker);
          return speaker as unknown as SpeakerLike;
        },
        interfaces: () => INTERFACES,
        serveControl: null,
        startHealth: null,
        coalesceMs: 1,
      });
      try {
        await agent.start();
        const originated = (speakers.at(-1)?.originated ?? []).map(
          (r) => `${[24, 16, 8, 0].map((b) => (r.prefix.addr >>> b) & 255).join('.')}/${r.prefix.len}`,
        );
        expect(originated).toEqual([inUse]);
        expect(agent.status().warnings).toEqual([]);
      } finally {
        await agent.stop();
        await agentDs.close();
        rmSync(dir, { recursive: true, force: true });
      }
      expect(await summary(ds)).toEqual({
        blocks: [
          `${inUse} host:crashed [${web}=k8s-pod-network.c-web]`,
          `${unaffined} no-affinity [${api}=k8s-pod-network.c-api]`,
        ],
        affinities: [`crashed ${inUse} confirmed`],
        handles: [`k8s-pod-network.c-api {"${unaffined}":1}`, `k8s-pod-network.c-web {"${inUse}":1}`],
      });
      expect(allocatedAddresses(await readIpamState(ds))).toEqual(held);
      expect(ipamProblems(await readIpamState(ds))).toEqual([]);
      expect(await advertised(ds, 'crashed')).toEqual([inUse]);
    }, 60_000);
  });
}

let etcd: EtcdInstance | undefined;
suite(
  'a real etcd',
  () => etcdBackend(() => etcd!),
  async () => {
    etcd = await startEtcd();
  },
  async () => {
    await etcd?.stop();
  },
  !haveEtcd,
);

let api: FakeApiServer | undefined;
suite(
  'the fake Kubernetes API server',
  () => kubernetesBackend(() => api!),
  async () => {
    api = await startFakeApiServer();
  },
  async () => {
    await api?.stop();
  },
  false,
);
