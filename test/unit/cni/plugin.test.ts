// The plugin's commands (src/cni/plugin.ts) on the in-memory datastore and a fake network: what ADD
// assigns and records, that every failure path leaves nothing allocated, that retries converge, DEL's
// tolerance of things already gone, CHECK, STATUS, GC, the node name and MTU rules, and the Kubernetes
// recorder's Pod annotations. The real veth work is tested in test/integration/cni.test.ts.

import { describe, expect, it } from 'vitest';
import { MemoryDatastore } from '../../../src/datastore/memory.js';
import { DatastoreUnavailableError, NotFoundError, type Datastore } from '../../../src/datastore/types.js';
import { Ipam } from '../../../src/ipam/index.js';
import { API_VERSION, type Resource } from '../../../src/resources/types.js';
import { CniError } from '../../../src/cni/spec.js';
import type { VethPlan } from '../../../src/cni/dataplane.js';
import {
  PodAnnotationRecorder,
  WorkloadEndpointRecorder,
  podAnnotationsPatch,
  workloadEndpointFor,
  type EndpointRecorder,
  type PodApi,
} from '../../../src/cni/endpoint.js';
import { runPlugin, type Network, type PluginIo } from '../../../src/cni/plugin.js';
import { workloadInterfaceName } from '../../../felix/interface-names.js';

const NODE = 'node-1';
const NETNS = '/var/run/netns/pod-a';
const POD = { namespace: 'default', name: 'web-0' };
const HOST_IF = workloadInterfaceName('default', 'web-0');

function pool(name: string, cidr: string, extra: Partial<Resource<'IPPool'>['spec']> = {}): Resource<'IPPool'> {
  return {
    apiVersion: API_VERSION,
    kind: 'IPPool',
    metadata: { name },
    spec: { cidr, blockSize: 26, nodeSelector: 'all()', ipipMode: 'Always', ...extra },
  };
}

/** The memory datastore, with close() a no-op (each command closes its datastore). */
function shared(ds: MemoryDatastore, options: { unavailable?: () => boolean } = {}): Datastore {
  const guard = <T>(fn: () => Promise<T>): Promise<T> =>
    options.unavailable?.()
      ? Promise.reject(new DatastoreUnavailableError('etcd at http://127.0.0.1:1: unreachable'))
      : fn();
  return {
    type: 'etcdv3',
    get: (k, n, ns) => guard(() => ds.get(k, n, ns)),
    list: (k, o) => guard(() => ds.list(k, o)),
    create: (r) => guard(() => ds.create(r)),
    update: (r) => guard(() => ds.update(r)),
    delete: (k, n, o) => guard(() => ds.delete(k, n, o)),
    watch: (k, r, f) => ds.watch(k, r, f),
    close: async () => undefined,
  };
}

class FakeNetwork implements Network {
  readonly setups: VethPlan[] = [];
  readonly removedHost: string[] = [];
  readonly removedPod: Array<{ netns: string; ifname: string }> = [];
  failSetup: Error | undefined;
  checkProblems: string[] = [];
  hostMtu: { dev: string; mtu: number } | null = { dev: 'eth0', mtu: 1500 };

  async setup(plan: VethPlan): Promise<void> {
    if (this.failSetup) throw this.failSetup;
    this.setups.push({ ...plan });
  }
  async removeHostVeth(hostIf: string): Promise<void> {
    this.removedHost.push(hostIf);
  }
  async removePodInterface(netns: string, ifname: string): Promise<boolean> {
    this.removedPod.push({ netns, ifname });
    return true;
  }
  async check(): Promise<string[]> {
    return this.checkProblems;
  }
  async defaultRouteMtu(): Promise<{ dev: string; mtu: number } | null> {
    return this.hostMtu;
  }
}

interface Harness {
  mem: MemoryDatastore;
  network: FakeNetwork;
  /** Runs one command; `env` adds to / overrides the CNI_* variables. */
  run(
    command: string,
    config?: Record<string, unknown>,
    env?: Record<string, string | undefined>,
  ): Promise<{ exitCode: number; json: Record<string, unknown> | undefined }>;
  usage(): Promise<number>;
  weps(): Promise<Array<Resource<'WorkloadEndpoint'>>>;
  unavailable: boolean;
  recorder?: EndpointRecorder;
  files: Record<string, string>;
  /** What the plugin logged, every call: "level message". */
  logs: string[];
  existing: Set<string>;
}

async function harness(pools: Array<Resource<'IPPool'>> = [pool('p1', '10.244.0.0/24')]): Promise<Harness> {
  const mem = new MemoryDatastore();
  for (const p of pools) await mem.create(p);
  const network = new FakeNetwork();
  const h: Harness = {
    mem,
    network,
    unavailable: false,
    files: {},
    logs: [],
    existing: new Set([NETNS]),
    async run(command, config = {}, env = {}) {
      const ds = shared(mem, { unavailable: () => h.unavailable });
      let n = 0;
      const io: PluginIo = {
        env: Object.fromEntries(
          Object.entries({
            CNI_COMMAND: command,
            CNI_CONTAINERID: 'c0ffee',
            CNI_NETNS: NETNS,
            CNI_IFNAME: 'eth0',
            CNI_ARGS: `K8S_POD_NAMESPACE=${POD.namespace};K8S_POD_NAME=${POD.name}`,
            ...env,
          }).filter((e): e is [string, string] => e[1] !== undefined),
        ),
        openDatastore: async () => {
          if (h.unavailable)
            throw new DatastoreUnavailableError('etcd at http://127.0.0.1:1: connection check failed within 5000 ms');
          return ds;
        },
        openRecorder: async (_conf, store) => h.recorder ?? new WorkloadEndpointRecorder(store),
        network: () => network,
        readFile: async (path) => {
          const text = h.files[path];
          if (text === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
          return text;
        },
        pathExists: async (path) => h.existing.has(path),
        hostname: () => 'the-hostname',
        randomBytes: () => Uint8Array.from([0, 0x11, 0x22, 0x33, 0x44, n++]),
        now: () => 0,
        wallClock: () => new Date(Date.UTC(2026, 10, 22, 10, 4, 5, 120)),
        logFor: () => {
          const said = (level: string) => (_fields: object, message?: string) =>
            void h.logs.push(`${level} ${message}`);
          return { debug: said('debug'), info: said('info'), warn: said('warning'), error: said('error') };
        },
      };
      const stdin = JSON.stringify({
        cniVersion: '1.0.0',
        name: 'k8s-pod-network',
        type: 'tortie',
        nodename: NODE,
        ipam: { type: 'tortie-ipam' },
        ...config,
      });
      const out = await runPlugin(stdin, io);
      return {
        exitCode: out.exitCode,
        json: out.stdout === '' ? undefined : (JSON.parse(out.stdout) as Record<string, unknown>),
      };
    },
    usage: async () => (await new Ipam(mem).usage()).blocks.reduce((n, b) => n + b.allocated, 0),
    weps: async () => (await mem.list('WorkloadEndpoint')).items,
  };
  return h;
}

describe('ADD', () => {
  it("assigns from the node's block, plumbs the veth and records the WorkloadEndpoint", async () => {
    const h = await harness();
    const { exitCode, json } = await h.run('ADD');
    expect(exitCode).toBe(0);
    expect(json).toEqual({
      cniVersion: '1.0.0',
      interfaces: [
        { name: HOST_IF, mac: 'ee:ee:ee:ee:ee:ee' },
        { name: 'eth0', mac: '02:11:22:33:44:00', sandbox: NETNS },
      ],
      ips: [{ address: '10.244.0.0/32', interface: 1 }],
      routes: [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }],
      dns: {},
    });
    expect(await new Ipam(h.mem).blocksOf(NODE)).toEqual(['10.244.0.0/26']);
    // The IPIP pool makes the MTU 1500 − 20 (Calico's auto MTU rule).
    expect(h.network.setups).toEqual([
      { hostIf: HOST_IF, podIf: 'eth0', netns: NETNS, address: '10.244.0.0', mtu: 1480, podMac: '02:11:22:33:44:00' },
    ]);
    const [wep] = await h.weps();
    expect(wep?.metadata).toMatchObject({
      name: 'node--1-k8s-web--0-eth0',
      namespace: 'default',
      labels: { 'projectcalico.org/orchestrator': 'k8s', 'projectcalico.org/namespace': 'default' },
    });
    expect(wep?.spec).toEqual({
      orchestrator: 'k8s',
      node: NODE,
      pod: 'web-0',
      endpoint: 'eth0',
      containerID: 'c0ffee',
      interfaceName: HOST_IF,
      mac: '02:11:22:33:44:00',
      ipNetworks: ['10.244.0.0/32'],
      profiles: ['kns.default'],
    });
    expect((await h.mem.get('IPAMHandle', 'k8s-pod-network.c0ffee'))?.spec.block).toEqual({ '10.244.0.0/26': 1 });
    // Who the address is for, in the block, as Calico's plugin records it.
    const block = await h.mem.get('IPAMBlock', '10-244-0-0-26');
    expect(block?.spec.allocations[0]).toBe(0);
    expect(block?.spec.attributes).toEqual([
      {
        handle_id: 'k8s-pod-network.c0ffee',
        secondary: { namespace: 'default', pod: 'web-0', timestamp: '2026-11-22 10:04:05.12 +0000 UTC', node: NODE },
      },
    ]);
  });

  it('records only node and timestamp for a bare container (no pod to name)', async () => {
    const h = await harness();
    await h.run('ADD', {}, { CNI_ARGS: undefined, CNI_CONTAINERID: 'bare01' });
    const block = await h.mem.get('IPAMBlock', '10-244-0-0-26');
    expect(block?.spec.attributes).toEqual([
      { handle_id: 'k8s-pod-network.bare01', secondary: { timestamp: '2026-11-22 10:04:05.12 +0000 UTC', node: NODE } },
    ]);
  });

  it('returns the same address to a retried ADD of the same container, and another to the next container', async () => {
    const h = await harness();
    const first = await h.run('ADD');
    const again = await h.run('ADD');
    expect((again.json?.ips as Array<{ address: string }>)[0]?.address).toBe(
      (first.json?.ips as Array<{ address: string }>)[0]?.address,
    );
    expect(await h.usage()).toBe(1);
    expect(await h.weps()).toHaveLength(1);
    const other = await h.run(
      'ADD',
      {},
      { CNI_CONTAINERID: 'beef02', CNI_ARGS: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-1' },
    );
    expect((other.json?.ips as Array<{ address: string }>)[0]?.address).toBe('10.244.0.1/32');
    expect(await h.usage()).toBe(2);
  });

  it('claims another block for the node when its blocks are full', async () => {
    const h = await harness([pool('small', '10.244.0.0/24', { blockSize: 30 })]);
    const addresses: string[] = [];
    for (let i = 0; i < 5; i++) {
      const { json } = await h.run(
        'ADD',
        {},
        { CNI_CONTAINERID: `c${i}`, CNI_ARGS: `K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-${i}` },
      );
      addresses.push((json?.ips as Array<{ address: string }>)[0]!.address);
    }
    expect(addresses).toEqual(['10.244.0.0/32', '10.244.0.1/32', '10.244.0.2/32', '10.244.0.3/32', '10.244.0.4/32']);
    expect(await new Ipam(h.mem).blocksOf(NODE)).toEqual(['10.244.0.0/30', '10.244.0.4/30']);
  });

  it('names a bare container (no K8S_POD_*) by its id, orchestrator cni', async () => {
    const h = await harness();
    const { exitCode } = await h.run('ADD', {}, { CNI_ARGS: undefined, CNI_CONTAINERID: '3f6940ab5ab43bc5' });
    expect(exitCode).toBe(0);
    expect(h.network.setups[0]?.hostIf).toBe('cali3f6940ab5ab');
    const [wep] = await h.weps();
    expect(wep?.metadata.name).toBe('node--1-cni-3f6940ab5ab43bc5-eth0');
    expect(wep?.spec).toMatchObject({
      orchestrator: 'cni',
      workload: '3f6940ab5ab43bc5',
      profiles: ['k8s-pod-network'],
    });
  });

  it('appends to prevResult when chained (after the loopback plugin)', async () => {
    const h = await harness();
    const prevResult = {
      cniVersion: '1.0.0',
      interfaces: [{ name: 'lo', mac: '00:00:00:00:00:00', sandbox: NETNS }],
      ips: [{ interface: 0, address: '127.0.0.1/8' }],
      dns: {},
    };
    const { json } = await h.run('ADD', { prevResult });
    expect((json?.interfaces as Array<{ name: string }>).map((i) => i.name)).toEqual(['lo', HOST_IF, 'eth0']);
    expect(json?.ips).toEqual([
      { interface: 0, address: '127.0.0.1/8' },
      { address: '10.244.0.0/32', interface: 2 },
    ]);
  });

  // Each failure: what breaks, the code, the message, and the proof that nothing is left allocated.
  const FAILURES: Array<{
    name: string;
    arrange(h: Harness): void;
    code: number;
    says: RegExp;
    vethRemoved?: boolean;
  }> = [
    {
      name: 'the veth cannot be made',
      arrange: (h) =>
        (h.network.failSetup = new CniError('dataplane', 'creating cali… failed: RTNETLINK answers: File exists')),
      code: 101,
      says: /File exists/,
    },
    {
      name: 'the WorkloadEndpoint cannot be written',
      arrange: (h) =>
        (h.recorder = {
          record: () => Promise.reject(new DatastoreUnavailableError('etcd at http://127.0.0.1:1: put failed')),
          remove: () => Promise.resolve(),
          find: () => Promise.resolve(null),
        }),
      code: 11,
      says: /recording the workload default\/web-0: etcd at .* put failed/,
      vethRemoved: true,
    },
    {
      name: 'the netns does not exist',
      arrange: (h) => h.existing.clear(),
      code: 3,
      says: /CNI_NETNS: the network namespace \/var\/run\/netns\/pod-a does not exist/,
    },
    {
      name: 'the datastore is unreachable',
      arrange: (h) => (h.unavailable = true),
      code: 11,
      says: /opening the etcdv3 datastore: etcd at http:\/\/127\.0\.0\.1:1/,
    },
  ];
  it('has failure rows', () => expect(FAILURES.length).toBeGreaterThan(3));
  for (const row of FAILURES) {
    it(`leaves nothing allocated when ${row.name} (code ${row.code})`, async () => {
      const h = await harness();
      row.arrange(h);
      const { exitCode, json } = await h.run('ADD');
      expect(exitCode).toBe(1);
      expect(json?.code).toBe(row.code);
      expect(String(json?.msg)).toMatch(row.says);
      h.unavailable = false;
      expect(await h.usage()).toBe(0);
      expect(await h.mem.get('IPAMHandle', 'k8s-pod-network.c0ffee')).toBeNull();
      expect(await h.weps()).toEqual([]);
      expect(h.network.removedHost).toEqual(row.vethRemoved ? [HOST_IF] : []);
    });
  }

  it('says no address (100) when no pool selects the node, naming the node', async () => {
    const h = await harness([]);
    const { json } = await h.run('ADD');
    expect(json?.code).toBe(100);
    expect(String(json?.msg)).toMatch(
      /no address for k8s-pod-network\.c0ffee on node "node-1": no enabled IPPool selects node "node-1"/,
    );
    expect(h.network.setups).toEqual([]);
  });

  it('takes ipam.ipv4_pools in order (names or CIDRs), moving on when one is full', async () => {
    const h = await harness([pool('tiny', '10.1.0.0/32', { blockSize: 32 }), pool('big', '10.2.0.0/24')]);
    const a = await h.run('ADD', { ipam: { type: 'tortie-ipam', ipv4_pools: ['10.1.0.0/32', 'big'] } });
    expect(a.json?.ips).toEqual([{ address: '10.1.0.0/32', interface: 1 }]);
    const b = await h.run(
      'ADD',
      { ipam: { type: 'tortie-ipam', ipv4_pools: ['tiny', 'big'] } },
      { CNI_CONTAINERID: 'c2', CNI_ARGS: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-2' },
    );
    expect(b.json?.ips).toEqual([{ address: '10.2.0.0/32', interface: 1 }]);
    const c = await h.run('ADD', { ipam: { ipv4_pools: ['nope'] } }, { CNI_CONTAINERID: 'c3' });
    expect(c.json?.code).toBe(7);
    expect(String(c.json?.msg)).toMatch(
      /ipam\.ipv4_pools\[0\]: no IPPool is named or has the CIDR "nope" \(pools: big 10\.2\.0\.0\/24, tiny 10\.1\.0\.0\/32\)/,
    );
  });

  it('IPPool namespaceSelector: a pod gets an address from a pool whose selector its Namespace labels match', async () => {
    const h = await harness([
      pool('prod', '10.1.0.0/24', { namespaceSelector: "env == 'prod'" }),
      pool('other', '10.2.0.0/24', { namespaceSelector: "env != 'prod'" }),
    ]);
    await h.mem.create({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'shop', labels: { env: 'prod' } },
      spec: {},
    });
    const shop = await h.run(
      'ADD',
      {},
      { CNI_CONTAINERID: 'c1', CNI_ARGS: 'K8S_POD_NAMESPACE=shop;K8S_POD_NAME=cart-0' },
    );
    expect(shop.json?.ips).toEqual([{ address: '10.1.0.0/32', interface: 1 }]);
    const plain = await h.run(
      'ADD',
      {},
      { CNI_CONTAINERID: 'c2', CNI_ARGS: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0' },
    );
    expect(plain.json?.ips).toEqual([{ address: '10.2.0.0/32', interface: 1 }]);
  });

  it('IPPool assignmentMode Manual: only a network configuration that names the pool (ipam.ipv4_pools) gets addresses from it', async () => {
    const h = await harness([pool('manual', '10.1.0.0/24', { assignmentMode: 'Manual' }), pool('auto', '10.2.0.0/24')]);
    const plain = await h.run('ADD', {}, { CNI_CONTAINERID: 'c1' });
    expect(plain.json?.ips).toEqual([{ address: '10.2.0.0/32', interface: 1 }]);
    const named = await h.run(
      'ADD',
      { ipam: { type: 'tortie-ipam', ipv4_pools: ['manual'] } },
      { CNI_CONTAINERID: 'c2', CNI_ARGS: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-2' },
    );
    expect(named.json?.ips).toEqual([{ address: '10.1.0.0/32', interface: 1 }]);
  });

  it('chooses the MTU: config first, else host default-route MTU minus the encapsulation of enabled pools', async () => {
    const cases: Array<{
      pools: Array<Resource<'IPPool'>>;
      host: { dev: string; mtu: number } | null;
      config?: number;
      mtu: number;
    }> = [
      { pools: [pool('p', '10.244.0.0/24', { ipipMode: 'Never' })], host: { dev: 'eth0', mtu: 9000 }, mtu: 9000 },
      { pools: [pool('p', '10.244.0.0/24', { ipipMode: 'CrossSubnet' })], host: { dev: 'eth0', mtu: 9000 }, mtu: 8980 },
      {
        pools: [pool('p', '10.244.0.0/24', { ipipMode: 'Never', vxlanMode: 'Always' })],
        host: { dev: 'eth0', mtu: 1500 },
        mtu: 1450,
      },
      {
        pools: [pool('p', '10.244.0.0/24', { ipipMode: 'Never' }), pool('off', '10.9.0.0/24', { disabled: true })],
        host: null,
        mtu: 1500,
      },
      { pools: [pool('p', '10.244.0.0/24')], host: { dev: 'eth0', mtu: 1500 }, config: 1300, mtu: 1300 },
    ];
    for (const c of cases) {
      const h = await harness(c.pools);
      h.network.hostMtu = c.host;
      await h.run('ADD', c.config !== undefined ? { mtu: c.config } : {});
      expect(h.network.setups[0]?.mtu).toBe(c.mtu);
    }
  });

  it("takes the node name from nodename, else NODENAME, else the agent's file, else the hostname", async () => {
    const nodeOf = async (
      config: Record<string, unknown>,
      env: Record<string, string>,
      files: Record<string, string>,
    ): Promise<string | undefined> => {
      const h = await harness();
      Object.assign(h.files, files);
      await h.run('ADD', config, env);
      return (await h.weps())[0]?.spec.node;
    };
    expect(
      await nodeOf(
        { nodename: 'from-config' },
        { NODENAME: 'from-env' },
        { '/var/run/tortie/nodename': 'from-file\n' },
      ),
    ).toBe('from-config');
    expect(
      await nodeOf({ nodename: undefined }, { NODENAME: 'from-env' }, { '/var/run/tortie/nodename': 'from-file\n' }),
    ).toBe('from-env');
    expect(await nodeOf({ nodename: undefined }, {}, { '/var/run/tortie/nodename': 'from-file\n' })).toBe('from-file');
    expect(await nodeOf({ nodename: undefined, nodename_file: '/etc/n' }, {}, { '/etc/n': 'custom-file' })).toBe(
      'custom-file',
    );
    expect(await nodeOf({ nodename: undefined }, {}, {})).toBe('the-hostname');
  });
});

describe('DEL', () => {
  it('removes the pod interface, the WorkloadEndpoint and the address; a second DEL succeeds', async () => {
    const h = await harness();
    await h.run('ADD');
    expect(await h.usage()).toBe(1);
    const first = await h.run('DEL');
    expect(first).toEqual({ exitCode: 0, json: undefined });
    expect(h.network.removedPod).toEqual([{ netns: NETNS, ifname: 'eth0' }]);
    expect(await h.usage()).toBe(0);
    expect(await h.weps()).toEqual([]);
    expect(await h.mem.get('IPAMHandle', 'k8s-pod-network.c0ffee')).toBeNull();
    expect((await h.run('DEL')).exitCode).toBe(0);
    expect((await h.run('DEL', {}, { CNI_NETNS: '' })).exitCode).toBe(0);
  });

  it('leaves the WorkloadEndpoint of a newer sandbox of the same pod alone', async () => {
    const h = await harness();
    await h.run('ADD', {}, { CNI_CONTAINERID: 'old' });
    await h.run('ADD', {}, { CNI_CONTAINERID: 'new' });
    expect((await h.run('DEL', {}, { CNI_CONTAINERID: 'old', CNI_NETNS: '' })).exitCode).toBe(0);
    const weps = await h.weps();
    expect(weps.map((w) => w.spec.containerID)).toEqual(['new']);
    expect(await h.usage()).toBe(1);
  });

  it('asks the runtime to try again later (11) when the datastore is unreachable, after removing the veth', async () => {
    const h = await harness();
    await h.run('ADD');
    h.unavailable = true;
    const { json } = await h.run('DEL');
    expect(json?.code).toBe(11);
    expect(h.network.removedPod).toHaveLength(1);
  });
});

describe('CHECK, STATUS, GC, VERSION', () => {
  async function added(): Promise<{ h: Harness; prevResult: Record<string, unknown> }> {
    const h = await harness();
    const { json } = await h.run('ADD');
    return { h, prevResult: json! };
  }

  it('CHECK passes after ADD and names what differs otherwise (103)', async () => {
    const { h, prevResult } = await added();
    expect(await h.run('CHECK', { prevResult })).toEqual({ exitCode: 0, json: undefined });
    h.network.checkProblems = ['no route 10.244.0.0/32 dev cali… scope link'];
    const broken = await h.run('CHECK', { prevResult });
    expect(broken.json?.code).toBe(103);
    expect(String(broken.json?.msg)).toMatch(/no route 10\.244\.0\.0\/32/);
    h.network.checkProblems = [];
    await h.mem.delete('WorkloadEndpoint', 'node--1-k8s-web--0-eth0', { namespace: 'default' });
    expect(String((await h.run('CHECK', { prevResult })).json?.msg)).toMatch(
      /the workload is not recorded in the datastore/,
    );
    const other = { ...prevResult, ips: [{ address: '10.9.9.9/32', interface: 1 }] };
    expect(String((await h.run('CHECK', { prevResult: other })).json?.msg)).toMatch(
      /prevResult does not list 10\.244\.0\.0\/32/,
    );
  });

  it('CHECK needs prevResult (7) and cniVersion 0.4.0+ (1)', async () => {
    const { h, prevResult } = await added();
    expect((await h.run('CHECK')).json?.code).toBe(7);
    const old = await h.run('CHECK', { cniVersion: '0.3.1', prevResult });
    expect(old.json).toMatchObject({ cniVersion: '0.3.1', code: 1 });
    expect(String(old.json?.msg)).toMatch(/CHECK is not part of CNI 0\.3\.1; it needs cniVersion 0\.4\.0 or later/);
    expect(String((await h.run('CHECK', { prevResult }, { CNI_CONTAINERID: 'unknown' })).json?.msg)).toMatch(
      /no address is assigned to k8s-pod-network\.unknown/,
    );
  });

  it('STATUS (1.1.0) is ready with an enabled pool, 50 without one or without the datastore', async () => {
    expect((await (await harness()).run('STATUS', { cniVersion: '1.1.0' })).exitCode).toBe(0);
    const none = await (
      await harness([pool('off', '10.0.0.0/24', { disabled: true })])
    ).run('STATUS', { cniVersion: '1.1.0' });
    expect(none.json?.code).toBe(50);
    expect(String(none.json?.msg)).toMatch(/no enabled IPPool for workloads/);
    const down = await harness();
    down.unavailable = true;
    expect((await down.run('STATUS', { cniVersion: '1.1.0' })).json?.code).toBe(50);
    expect((await (await harness()).run('STATUS')).json?.code).toBe(1);
  });

  const GC = { cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: 'keep', ifname: 'eth0' }] };
  const NO_CONTAINER = { CNI_CONTAINERID: undefined, CNI_NETNS: undefined, CNI_IFNAME: undefined };

  it("GC (1.1.0) releases this network's addresses and endpoints of containers the runtime no longer knows", async () => {
    const h = await harness();
    for (const [id, name] of [
      ['keep', 'web-0'],
      ['gone', 'web-1'],
    ])
      await h.run('ADD', {}, { CNI_CONTAINERID: id!, CNI_ARGS: `K8S_POD_NAMESPACE=default;K8S_POD_NAME=${name}` });
    const ipam = new Ipam(h.mem);
    await ipam.assign(NODE, 'ipip-tunnel-addr-node-1', { use: 'Tunnel' });
    expect(await h.usage()).toBe(3);
    const gc = await h.run('GC', GC, NO_CONTAINER);
    expect(gc).toEqual({ exitCode: 0, json: undefined });
    expect(await h.usage()).toBe(2); // keep's pod address and the tunnel address
    expect(await h.mem.get('IPAMHandle', 'k8s-pod-network.gone')).toBeNull();
    expect((await h.weps()).map((w) => w.spec.containerID)).toEqual(['keep']);
    expect(h.logs).toContain('info GC released 10.244.0.1 of k8s-pod-network.gone');
  });

  it("GC releases by each allocation's node: another node's pod in this node's block stays, this node's pod in another node's block goes", async () => {
    // Two /30 blocks: node-1 claims the first and fills it, node-2 claims the second; then each borrows
    // from the other's block (no block left to claim).
    const h = await harness([pool('tiny', '10.244.0.0/29', { blockSize: 30 })]);
    const ipam = new Ipam(h.mem);
    for (let i = 0; i < 4; i++) await ipam.assign(NODE, `k8s-pod-network.n1-${i}`);
    expect(await ipam.assign('node-2', 'k8s-pod-network.n2-0')).toEqual(['10.244.0.4']);
    expect(await ipam.blocksOf('node-2')).toEqual(['10.244.0.4/30']);
    expect(await ipam.assign(NODE, 'k8s-pod-network.n1-borrowed')).toEqual(['10.244.0.5']); // in node-2's block
    await ipam.releaseByHandle('k8s-pod-network.n1-3');
    for (const id of ['n2-1', 'n2-2']) await ipam.assign('node-2', `k8s-pod-network.${id}`);
    expect(await ipam.assign('node-2', 'k8s-pod-network.n2-3')).toEqual(['10.244.0.3']); // in node-1's block

    const gc = await h.run('GC', GC, NO_CONTAINER);
    expect(gc.exitCode).toBe(0);
    const holders = async (): Promise<string[]> =>
      (await h.mem.list('IPAMBlock')).items
        .flatMap((b) => b.spec.allocations.flatMap((a) => (a === null ? [] : [b.spec.attributes[a]!.handle_id!])))
        .sort();
    // node-1's stale ones (n1-0..2 in its block, n1-borrowed in node-2's) are gone; node-2's stay.
    expect(await holders()).toEqual([
      'k8s-pod-network.n2-0',
      'k8s-pod-network.n2-1',
      'k8s-pod-network.n2-2',
      'k8s-pod-network.n2-3',
    ]);
    expect(await h.mem.get('IPAMHandle', 'k8s-pod-network.n1-borrowed')).toBeNull();
    expect(await h.mem.get('IPAMHandle', 'k8s-pod-network.n2-3')).not.toBeNull();
  });

  it('GC keeps allocations written without attributes and says so once, naming them', async () => {
    const h = await harness();
    const ipam = new Ipam(h.mem);
    for (const id of ['old-1', 'old-2', 'new-1']) await ipam.assign(NODE, `k8s-pod-network.${id}`);
    // As tortie wrote blocks before it recorded attributes: secondary null.
    const block = (await h.mem.get('IPAMBlock', '10-244-0-0-26'))!;
    await h.mem.update({
      ...block,
      spec: {
        ...block.spec,
        attributes: block.spec.attributes.map((a) =>
          a.handle_id === 'k8s-pod-network.new-1' ? a : { handle_id: a.handle_id ?? null, secondary: null },
        ),
      },
    });
    expect((await h.run('GC', GC, NO_CONTAINER)).exitCode).toBe(0);
    expect(await h.usage()).toBe(2);
    expect(await h.mem.get('IPAMHandle', 'k8s-pod-network.new-1')).toBeNull();
    const said = h.logs.filter((l) => l.includes('no "node" attribute'));
    expect(said).toHaveLength(1);
    expect(said[0]).toMatch(
      /^warning GC kept 2 address\(es\) of network "k8s-pod-network" .*k8s-pod-network\.old-1 10\.244\.0\.0, k8s-pod-network\.old-2 10\.244\.0\.1/,
    );
  });

  it("GC releases an unattributed address with the stale endpoint that proves it this node's (same container, same address); without such proof it keeps it", async () => {
    const h = await harness();
    for (const [id, name] of [
      ['keep', 'web-0'],
      ['old-wep', 'web-1'],
      ['old-nowep', 'web-2'],
    ])
      await h.run('ADD', {}, { CNI_CONTAINERID: id!, CNI_ARGS: `K8S_POD_NAMESPACE=default;K8S_POD_NAME=${name}` });
    // As tortie wrote blocks before it recorded attributes: secondary null for both old containers.
    const block = (await h.mem.get('IPAMBlock', '10-244-0-0-26'))!;
    await h.mem.update({
      ...block,
      spec: {
        ...block.spec,
        attributes: block.spec.attributes.map((a) =>
          a.handle_id === 'k8s-pod-network.keep' ? a : { handle_id: a.handle_id ?? null, secondary: null },
        ),
      },
    });
    // old-nowep's record is gone already (a DEL that stopped after removing it): nothing proves its address this node's.
    await h.mem.delete('WorkloadEndpoint', 'node--1-k8s-web--2-eth0', { namespace: 'default' });
    expect(await h.usage()).toBe(3);

    expect((await h.run('GC', GC, NO_CONTAINER)).exitCode).toBe(0);
    // old-wep: its endpoint (this node, container old-wep, 10.244.0.1) proved the address its: released with it.
    expect(await h.mem.get('IPAMHandle', 'k8s-pod-network.old-wep')).toBeNull();
    expect((await h.weps()).map((w) => w.spec.containerID)).toEqual(['keep']);
    expect(h.logs).toContain(
      'info GC released 10.244.0.1 of k8s-pod-network.old-wep (no "node" attribute; WorkloadEndpoint default/node--1-k8s-web--1-eth0 of this node and the same container named it)',
    );
    // old-nowep: kept, and said once.
    expect(await h.usage()).toBe(2);
    expect(await h.mem.get('IPAMHandle', 'k8s-pod-network.old-nowep')).not.toBeNull();
    const said = h.logs.filter((l) => l.includes('no "node" attribute') && l.startsWith('warning'));
    expect(said).toHaveLength(1);
    expect(said[0]).toMatch(/^warning GC kept 1 address\(es\) .*k8s-pod-network\.old-nowep 10\.244\.0\.2/);
  });

  it('GC releases the proven address before it deletes the endpoint: a GC that fails between them finds the proof again', async () => {
    const h = await harness();
    await h.run('ADD', {}, { CNI_CONTAINERID: 'old-wep', CNI_ARGS: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-1' });
    const block = (await h.mem.get('IPAMBlock', '10-244-0-0-26'))!;
    await h.mem.update({
      ...block,
      spec: {
        ...block.spec,
        attributes: block.spec.attributes.map((a) => ({ handle_id: a.handle_id ?? null, secondary: null })),
      },
    });
    // The endpoint's deletion fails (the datastore goes away): the address must be released already.
    const failing: EndpointRecorder = {
      record: async () => undefined,
      find: async () => null,
      remove: async () => {
        throw new DatastoreUnavailableError('etcd at http://127.0.0.1:1: unreachable');
      },
    };
    h.recorder = failing;
    expect((await h.run('GC', GC, NO_CONTAINER)).json?.code).toBe(11);
    expect(await h.usage()).toBe(0);
    expect((await h.weps()).map((w) => w.spec.containerID)).toEqual(['old-wep']);
    delete h.recorder;
    expect((await h.run('GC', GC, NO_CONTAINER)).exitCode).toBe(0);
    expect(await h.weps()).toEqual([]);
  });

  it('VERSION needs no configuration', async () => {
    const h = await harness();
    const { json } = await h.run('VERSION', {}, { CNI_CONTAINERID: undefined });
    expect(json).toEqual({ cniVersion: '1.1.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  });
});

describe('Kubernetes: Pod annotations', () => {
  class FakePods implements PodApi {
    pods = new Map<string, Record<string, string>>([['default/web-0', { other: 'x' }]]);
    async annotations(namespace: string, name: string): Promise<Record<string, string> | null> {
      return this.pods.get(`${namespace}/${name}`) ?? null;
    }
    async patch(namespace: string, name: string, patch: unknown): Promise<void> {
      const current = this.pods.get(`${namespace}/${name}`);
      if (!current) throw new NotFoundError(`Pod ${namespace}/${name} not found`);
      for (const [k, v] of Object.entries(
        (patch as { metadata: { annotations: Record<string, string | null> } }).metadata.annotations,
      )) {
        if (v === null) delete current[k];
        else current[k] = v;
      }
    }
  }

  it('ADD writes containerID, podIP and podIPs; DEL removes the IPs only while containerID is ours', async () => {
    const h = await harness();
    const pods = new FakePods();
    h.recorder = new PodAnnotationRecorder(pods);
    expect((await h.run('ADD', { datastore_type: 'kubernetes' })).exitCode).toBe(0);
    expect(pods.pods.get('default/web-0')).toEqual({
      other: 'x',
      'cni.projectcalico.org/containerID': 'c0ffee',
      'cni.projectcalico.org/podIP': '10.244.0.0/32',
      'cni.projectcalico.org/podIPs': '10.244.0.0/32',
    });
    expect((await h.run('DEL', { datastore_type: 'kubernetes' }, { CNI_CONTAINERID: 'stale' })).exitCode).toBe(0);
    expect(pods.pods.get('default/web-0')?.['cni.projectcalico.org/podIP']).toBe('10.244.0.0/32');
    expect((await h.run('DEL', { datastore_type: 'kubernetes' })).exitCode).toBe(0);
    expect(pods.pods.get('default/web-0')).toEqual({ other: 'x', 'cni.projectcalico.org/containerID': 'c0ffee' });
    expect(await h.usage()).toBe(0);
  });

  it('ADD of a pod the API does not know fails (102) and leaves nothing', async () => {
    const h = await harness();
    h.recorder = new PodAnnotationRecorder(new FakePods());
    const { json } = await h.run(
      'ADD',
      { datastore_type: 'kubernetes' },
      { CNI_ARGS: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=ghost' },
    );
    expect(json?.code).toBe(102);
    expect(String(json?.msg)).toMatch(/Pod default\/ghost does not exist/);
    expect(await h.usage()).toBe(0);
    expect(h.network.removedHost).toEqual([workloadInterfaceName('default', 'ghost')]);
  });

  it('ADD without K8S_POD_* is refused (4) before anything is allocated', async () => {
    const h = await harness();
    const { json } = await h.run('ADD', { datastore_type: 'kubernetes' }, { CNI_ARGS: undefined });
    expect(json?.code).toBe(4);
    expect(await h.usage()).toBe(0);
    expect(h.network.setups).toEqual([]);
  });

  it('builds the patch and the endpoint shapes purely', () => {
    const attachment = {
      id: { node: 'n', containerId: 'c', ifname: 'eth0', pod: POD },
      hostIf: HOST_IF,
      mac: '02:00:00:00:00:01',
      ipNetworks: ['10.0.0.1/32'],
      network: 'k8s-pod-network',
    };
    expect(podAnnotationsPatch(attachment).metadata.annotations['cni.projectcalico.org/podIPs']).toBe('10.0.0.1/32');
    expect(workloadEndpointFor(attachment).spec.interfaceName).toBe(HOST_IF);
  });
});
