// The CNI plugin as a container runtime runs it: `tortie cni install` puts the wrapper and the conflist in
// temporary CNI_BIN_DIR / CNI_NET_DIR, and every call executes that installed wrapper with the CNI_*
// environment and the configuration on stdin, reading stdout's JSON (CNI spec). The "node" is a network
// namespace this file creates (eth0 with an underlay address and a default route); each "pod" is another
// one. The plugin runs inside the node's namespace (nsenter, as a runtime on that node would run it),
// and reaches the real etcd through a loopback relay (etcd listens in the test's own namespace).
//
// Covered (issue 8, "Done means"): ADD gives the pod an address from the node's block, a default route
// and a host cali* interface (and pods reach the host and each other); felix (route-calc + RouteTable +
// Iproute2Kernel in the node namespace, fed with the WorkloadEndpoints from etcd) installs the /32 route;
// a second ADD of the same container returns the same IP; DEL twice succeeds (also after the namespace
// is gone); malformed JSON, an unknown cniVersion and a missing CNI_NETNS get the spec's codes and leave
// nothing allocated; a conflist chain with Debian's `loopback` plugin; CHECK; a /proc/PID/ns/net path;
// and the lab's mode (TORTIE_CNI_HOST_NETNS, the plugin outside the node's namespace).

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type Server, connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { calculateRoutes } from '../../felix/route-calc.js';
import { workloadInterfaceName } from '../../felix/interface-names.js';
import { Iproute2Kernel } from '../../felix/iproute2.js';
import { RouteTable } from '../../felix/route-table.js';
import { runCniPlugin, type CniInvocation, type CniOutcome } from '../../src/cni/index.js';
import { openEtcd } from '../../src/datastore/etcd.js';
import { openKubernetes } from '../../src/datastore/kubernetes.js';
import type { Datastore } from '../../src/datastore/types.js';
import { Ipam } from '../../src/ipam/index.js';
import { API_VERSION } from '../../src/resources/types.js';
import { requireBinary } from '../harness/binaries.js';
import { requireEtcd, startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { grantsFromManifests, startFakeApiServer } from '../harness/fake-apiserver.js';
import { loadKubeDocuments, MANIFEST_DIR } from '../harness/manifests.js';
import { CniTokenRefresher, kubeTokenRequester } from '../../src/agent/cni-token.js';
import { CNI_API_CALLS } from '../../src/cni/api-calls.js';
import { createNetns, destroyAllNetns, netnsUnavailableReason, runCommand, type Netns } from '../harness/netns.js';
import { makeTempDir, removeTempDir, startProcess, stopAll, waitFor, type ManagedProcess } from '../harness/process.js';

const unavailable = netnsUnavailableReason();
if (unavailable && process.env.CI === 'true') throw new Error(`CNI plugin tests cannot run: ${unavailable}`);
const haveEtcd = unavailable === null && requireEtcd();
const MAIN_JS = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
const built = existsSync(MAIN_JS);
if (!built && process.env.CI === 'true') throw new Error(`${MAIN_JS} is missing: run npm run build first`);
const LOOPBACK = '/usr/lib/cni/loopback';
const haveLoopback =
  unavailable === null &&
  requireBinary(LOOPBACK, 'chaining with the loopback plugin (package containernetworking-plugins)');

const NODE = 'cni-node-1';
const NODE_IP = '198.19.208.11';
const POOL_CIDR = '10.70.0.0/16';
const NETWORK = 'k8s-pod-network';

describe.skipIf(unavailable !== null || !haveEtcd || !built)('tortie CNI plugin, called as a runtime calls it', () => {
  let etcd: EtcdInstance;
  let ds: Datastore;
  let dir: string;
  let host: Netns;
  let relayServer: Server;
  let relay: ManagedProcess;
  let wrapper: string;
  let conflist: { name: string; cniVersion: string; plugins: Array<Record<string, unknown>> };
  const pods: Netns[] = [];
  let podCounter = 0;

  beforeAll(async () => {
    etcd = await startEtcd();
    ds = await openEtcd({ endpoints: [etcd.endpoint] });
    await ds.create({
      apiVersion: API_VERSION,
      kind: 'IPPool',
      metadata: { name: 'pods' },
      spec: { cidr: POOL_CIDR, blockSize: 26, ipipMode: 'Always', nodeSelector: 'all()' },
    });
    dir = makeTempDir('cni');

    // The node: eth0 (MTU 1500) with an underlay address and a default route.
    host = await createNetns('cninode');
    await host.addVeth('eth0', 'eth0-peer');
    await host.ip('addr', 'add', `${NODE_IP}/24`, 'dev', 'eth0');
    await host.ip('route', 'add', 'default', 'via', '198.19.208.1', 'dev', 'eth0', 'onlink');

    // etcd, seen from inside the node at the same 127.0.0.1:<port>: a relay in the node namespace → a
    // unix socket (file system, shared by all namespaces) → this process → etcd.
    const port = Number(new URL(etcd.endpoint).port);
    const socket = join(dir, 'etcd.sock');
    relayServer = createServer((c) => {
      const e = connect(port, '127.0.0.1');
      c.pipe(e).pipe(c);
      c.on('error', () => e.destroy());
      e.on('error', () => c.destroy());
    });
    await new Promise<void>((resolve) => relayServer.listen(socket, resolve));
    const script = `const net=require('net');net.createServer(c=>{const u=net.connect(${JSON.stringify(socket)});c.pipe(u).pipe(c);c.on('error',()=>u.destroy());u.on('error',()=>c.destroy())}).listen(${port},'127.0.0.1',()=>console.log('relay ready'))`;
    relay = startProcess({
      name: 'etcd-relay',
      command: 'nsenter',
      args: [`--net=/var/run/netns/${host.name}`, process.execPath, '-e', script],
      dir,
    });
    await waitFor(() => relay.log().includes('relay ready'), {
      timeoutMs: 10_000,
      what: 'the etcd relay in the node namespace',
    });

    // Install as the DaemonSet's init container would.
    const env = {
      PATH: process.env.PATH ?? '',
      CNI_BIN_DIR: join(dir, 'bin'),
      CNI_NET_DIR: join(dir, 'net.d'),
      ETCD_ENDPOINTS: etcd.endpoint,
    };
    const installed = await runInstall(env);
    expect(installed.code, installed.stderr).toBe(0);
    wrapper = join(dir, 'bin', 'tortie');
    conflist = JSON.parse(readFileSync(join(dir, 'net.d', '10-tortie.conflist'), 'utf8')) as typeof conflist;
  }, 60_000);

  afterAll(async () => {
    await ds?.close();
    await relay?.stop();
    await new Promise<void>((resolve) => (relayServer ? relayServer.close(() => resolve()) : resolve()));
    await destroyAllNetns();
    await etcd?.stop();
    await stopAll();
    if (dir) removeTempDir(dir);
  });

  function runInstall(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [MAIN_JS, 'cni', 'install'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stderr });
      });
    });
  }

  /** The plugin entry a runtime would pass for this conflist (name and cniVersion copied in). */
  function config(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { ...conflist.plugins[0], name: conflist.name, cniVersion: conflist.cniVersion, nodename: NODE, ...extra };
  }

  /** Executes the installed plugin inside the node's namespace. */
  function call(invocation: Omit<CniInvocation, 'config'> & { config?: Record<string, unknown> }): Promise<CniOutcome> {
    return runCniPlugin({
      config: config(),
      ...invocation,
      executable: ['nsenter', `--net=/var/run/netns/${host.name}`, wrapper],
    });
  }

  async function newPod(): Promise<{
    ns: Netns;
    netns: string;
    containerId: string;
    pod: { namespace: string; name: string };
  }> {
    const n = ++podCounter; // taken before the await: pods are also made concurrently
    const ns = await createNetns(`cnipod${n}`);
    pods.push(ns);
    return {
      ns,
      netns: `/var/run/netns/${ns.name}`,
      containerId: `c0ffee${process.pid}x${n}`,
      pod: { namespace: 'default', name: `web-${n}` },
    };
  }

  async function allocated(): Promise<number> {
    return (await new Ipam(ds).usage()).blocks.reduce((n, b) => n + b.allocated, 0);
  }

  async function hostLinks(): Promise<Array<{ ifname: string; mtu: number; flags: string[]; address: string }>> {
    return JSON.parse(await host.ip('-json', 'link', 'show')) as Array<{
      ifname: string;
      mtu: number;
      flags: string[];
      address: string;
    }>;
  }

  function resultAddress(outcome: CniOutcome): string {
    const ips = outcome.json?.ips as Array<{ address: string }> | undefined;
    const address = ips?.at(-1)?.address;
    if (!address) throw new Error(`no address in ${outcome.stdout} (stderr ${outcome.stderr})`);
    return address.split('/')[0]!;
  }

  async function expectNothingFor(containerId: string, hostIf: string): Promise<void> {
    expect(await ds.get('IPAMHandle', `${NETWORK}.${containerId}`)).toBeNull();
    expect((await ds.list('WorkloadEndpoint')).items.filter((w) => w.spec.containerID === containerId)).toEqual([]);
    expect((await hostLinks()).map((l) => l.ifname)).not.toContain(hostIf);
  }

  it("ADD gives the pod an address from the node's block, a default route and a host cali* interface", async () => {
    const p = await newPod();
    const out = await call({ command: 'ADD', containerId: p.containerId, netns: p.netns, pod: p.pod });
    expect(out.exitCode, `${out.stdout} ${out.stderr}`).toBe(0);
    const address = resultAddress(out);
    const hostIf = workloadInterfaceName('default', p.pod.name);
    expect(out.json).toMatchObject({
      cniVersion: '1.0.0',
      interfaces: [
        { name: hostIf, mac: 'ee:ee:ee:ee:ee:ee' },
        { name: 'eth0', sandbox: p.netns },
      ],
      routes: [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }],
    });

    // From this node's block.
    const blocks = await new Ipam(ds).blocksOf(NODE);
    expect(blocks).toHaveLength(1);
    expect(address.startsWith('10.70.')).toBe(true);
    const [net, len] = blocks[0]!.split('/');
    const base = net!.split('.').map(Number);
    const ip = address.split('.').map(Number);
    expect(ip.slice(0, 3)).toEqual(base.slice(0, 3));
    expect(ip[3]! - base[3]!).toBeLessThan(2 ** (32 - Number(len)));

    // Pod side: eth0 with the /32, the gateway route and the default route.
    const addrs = JSON.parse(await p.ns.ip('-json', 'addr', 'show', 'dev', 'eth0')) as Array<{
      mtu: number;
      address: string;
      addr_info: Array<{ local: string; prefixlen: number }>;
    }>;
    expect(addrs[0]?.addr_info).toContainEqual(expect.objectContaining({ local: address, prefixlen: 32 }));
    expect(addrs[0]?.mtu).toBe(1480); // eth0 1500 − 20 (IPIP pool)
    const podRoutes = await p.ns.routes();
    expect(podRoutes).toContainEqual(expect.objectContaining({ dst: 'default', gateway: '169.254.1.1', dev: 'eth0' }));
    expect(podRoutes).toContainEqual(expect.objectContaining({ dst: '169.254.1.1', dev: 'eth0', scope: 'link' }));

    // Host side: cali* up with Calico's MAC, proxy ARP on, the /32 route.
    const link = (await hostLinks()).find((l) => l.ifname === hostIf);
    expect(link).toMatchObject({ mtu: 1480, address: 'ee:ee:ee:ee:ee:ee' });
    expect(link?.flags).toContain('UP');
    expect((await host.exec('cat', [`/proc/sys/net/ipv4/conf/${hostIf}/proxy_arp`])).trim()).toBe('1');
    expect((await host.exec('cat', [`/proc/sys/net/ipv4/neigh/${hostIf}/proxy_delay`])).trim()).toBe('0');
    expect(await host.routes()).toContainEqual(expect.objectContaining({ dst: address, dev: hostIf, scope: 'link' }));

    // The WorkloadEndpoint felix reads.
    const wep = await ds.get(
      'WorkloadEndpoint',
      `${NODE.replace(/-/g, '--')}-k8s-${p.pod.name.replace(/-/g, '--')}-eth0`,
      'default',
    );
    expect(wep?.spec).toMatchObject({
      node: NODE,
      pod: p.pod.name,
      containerID: p.containerId,
      interfaceName: hostIf,
      ipNetworks: [`${address}/32`],
    });

    // The pod reaches the node's address through 169.254.1.1.
    const ping = await p.ns.exec('ping', ['-c', '1', '-W', '3', NODE_IP]).catch((e: unknown) => String(e));
    expect(ping).toMatch(/1 received/);
  }, 60_000);

  it('felix, fed the WorkloadEndpoints from etcd, installs and keeps the /32 route on the cali* interface', async () => {
    const p = await newPod();
    const out = await call({ command: 'ADD', containerId: p.containerId, netns: p.netns, pod: p.pod });
    expect(out.exitCode, out.stdout).toBe(0);
    const address = resultAddress(out);
    const hostIf = workloadInterfaceName('default', p.pod.name);

    const desired = async (): Promise<ReturnType<typeof calculateRoutes>> => {
      const weps = (await ds.list('WorkloadEndpoint')).items.filter((w) => w.spec.node === NODE);
      return calculateRoutes({
        node: { ip: `${NODE_IP}/24`, hostInterface: 'eth0' },
        pools: [{ cidr: POOL_CIDR, ipipMode: 'Always' }],
        localBlocks: await new Ipam(ds).blocksOf(NODE),
        workloads: weps.map((w) => ({
          ip: w.spec.ipNetworks[0]!,
          interfaceName: w.spec.interfaceName,
          namespace: w.metadata.namespace ?? 'default',
          pod: w.spec.pod ?? '',
        })),
        bgpRoutes: [],
        tunnelUsable: false,
      });
    };
    const felixOnce = async (): Promise<void> => {
      const kernel = new Iproute2Kernel({ netns: host.name, timeoutMs: 10_000 });
      const table = new RouteTable(kernel);
      table.setDesired((await desired()).routes);
      await table.apply();
      await kernel.close();
    };
    const route = async (): Promise<Record<string, unknown> | undefined> =>
      (await host.routes()).find((r) => r.dst === address);

    // The plugin's own route (as Calico's plugin adds it) is there at once; felix takes it over (proto 80).
    expect(await route()).toMatchObject({ dev: hostIf, scope: 'link' });
    await felixOnce();
    expect(await route()).toMatchObject({ dev: hostIf, scope: 'link', protocol: '80' });
    // Gone (by hand): felix puts it back from the WorkloadEndpoint alone.
    await host.ip('route', 'del', `${address}/32`, 'dev', hostIf);
    expect(await route()).toBeUndefined();
    await felixOnce();
    expect(await route()).toMatchObject({ dev: hostIf, scope: 'link', protocol: '80' });
    expect((await host.routes()).some((r) => r.type === 'blackhole' && String(r.dst).startsWith('10.70.'))).toBe(true);
  }, 60_000);

  it('a second ADD of the same container returns the same IP, and two pods reach each other', async () => {
    const p = await newPod();
    const first = await call({ command: 'ADD', containerId: p.containerId, netns: p.netns, pod: p.pod });
    const before = await allocated();
    const second = await call({ command: 'ADD', containerId: p.containerId, netns: p.netns, pod: p.pod });
    expect(second.exitCode, second.stdout).toBe(0);
    expect(resultAddress(second)).toBe(resultAddress(first));
    expect(await allocated()).toBe(before);

    const q = await newPod();
    const other = await call({ command: 'ADD', containerId: q.containerId, netns: q.netns, pod: q.pod });
    expect(resultAddress(other)).not.toBe(resultAddress(first));
    const ping = await p.ns.exec('ping', ['-c', '1', '-W', '3', resultAddress(other)]).catch((e: unknown) => String(e));
    expect(ping).toMatch(/1 received/);
  }, 60_000);

  it('ADDs of 8 pods at once (a kubelet starting pods in parallel) get 8 distinct addresses, DELs at once free them', async () => {
    const group = await Promise.all(Array.from({ length: 8 }, () => newPod()));
    const before = await allocated();
    // As a kubelet does: an answer of code 11 ("try again later", e.g. etcd slow to accept 8 connections on
    // a loaded machine) is retried, at most 4 times; the failed try must have left nothing behind.
    type Invocation = Parameters<typeof call>[0];
    const retrying = async (invocation: Invocation): ReturnType<typeof call> => {
      let out = await call(invocation);
      for (let i = 0; i < 4 && out.exitCode !== 0 && /"code":11\b/.test(out.stdout); i++) out = await call(invocation);
      return out;
    };
    const adds = await Promise.all(
      group.map((p) => retrying({ command: 'ADD', containerId: p.containerId, netns: p.netns, pod: p.pod })),
    );
    for (const out of adds) expect(out.exitCode, `${out.stdout} ${out.stderr.slice(-300)}`).toBe(0);
    const addresses = adds.map(resultAddress);
    expect(new Set(addresses).size).toBe(8);
    expect(await allocated()).toBe(before + 8);
    expect(await new Ipam(ds).blocksOf(NODE)).toHaveLength(1);
    const dels = await Promise.all(
      group.map((p) => retrying({ command: 'DEL', containerId: p.containerId, netns: p.netns, pod: p.pod })),
    );
    for (const out of dels) expect(out.exitCode, out.stdout).toBe(0);
    expect(await allocated()).toBe(before);
  }, 240_000);

  it('DEL releases the address and removes the veth and the WorkloadEndpoint; DEL again succeeds, also once the namespace is gone', async () => {
    const p = await newPod();
    const hostIf = workloadInterfaceName('default', p.pod.name);
    const add = await call({ command: 'ADD', containerId: p.containerId, netns: p.netns, pod: p.pod });
    expect(add.exitCode).toBe(0);
    const before = await allocated();
    const del = await call({ command: 'DEL', containerId: p.containerId, netns: p.netns, pod: p.pod });
    expect(del.exitCode, del.stdout).toBe(0);
    expect(del.stdout).toBe('');
    expect(await allocated()).toBe(before - 1);
    await expectNothingFor(p.containerId, hostIf);
    expect(JSON.parse(await p.ns.ip('-json', 'link', 'show')).map((l: { ifname: string }) => l.ifname)).toEqual(['lo']);
    const again = await call({ command: 'DEL', containerId: p.containerId, netns: p.netns, pod: p.pod });
    expect(again.exitCode, again.stdout).toBe(0);
    await p.ns.destroy();
    const gone = await call({ command: 'DEL', containerId: p.containerId, netns: p.netns, pod: p.pod });
    expect(gone.exitCode, gone.stdout).toBe(0);
    const noNetns = await call({ command: 'DEL', containerId: p.containerId, pod: p.pod });
    expect(noNetns.exitCode, noNetns.stdout).toBe(0);
  }, 60_000);

  // Refusals: what is wrong, the spec's code, the message, and nothing allocated.
  const REFUSALS: Array<{
    name: string;
    stdin?: string;
    config?: Record<string, unknown>;
    dropNetns?: boolean;
    code: number;
    says: RegExp;
  }> = [
    {
      name: 'malformed configuration JSON',
      stdin: '{"cniVersion": "1.0.0", "name": ',
      code: 6,
      says: /the network configuration on stdin is not JSON/,
    },
    {
      name: 'an unknown cniVersion',
      config: { cniVersion: '0.9.9' },
      code: 1,
      says: /cniVersion "0\.9\.9" is not supported; tortie supports 0\.3\.0, 0\.3\.1, 0\.4\.0, 1\.0\.0, 1\.1\.0/,
    },
    {
      name: 'a missing CNI_NETNS',
      dropNetns: true,
      code: 4,
      says: /CNI_NETNS is not set: ADD needs the path of the container's network namespace/,
    },
    {
      name: 'a namespace that does not exist',
      config: {},
      code: 3,
      says: /the network namespace \/var\/run\/netns\/tortie-cni-nonexistent does not exist/,
    },
  ];
  for (const row of REFUSALS) {
    it(`ADD with ${row.name} gets code ${row.code} and a clear message, and allocates nothing`, async () => {
      const p = await newPod();
      const before = await allocated();
      const netns = row.code === 3 ? '/var/run/netns/tortie-cni-nonexistent' : p.netns;
      const out = await call({
        command: 'ADD',
        containerId: p.containerId,
        ...(row.dropNetns ? {} : { netns }),
        pod: p.pod,
        ...(row.stdin !== undefined ? { rawStdin: row.stdin } : {}),
        config: config(row.config ?? {}),
      });
      expect(out.exitCode).toBe(1);
      expect(out.json?.code).toBe(row.code);
      expect(String(out.json?.msg)).toMatch(row.says);
      expect(out.json?.cniVersion).toMatch(/^\d+\.\d+\.\d+$/);
      expect(await allocated()).toBe(before);
      await expectNothingFor(p.containerId, workloadInterfaceName('default', p.pod.name));
      expect(JSON.parse(await p.ns.ip('-json', 'link', 'show')).map((l: { ifname: string }) => l.ifname)).toEqual([
        'lo',
      ]);
    }, 60_000);
  }

  it.skipIf(!haveLoopback)(
    "chains after Debian's loopback plugin in a conflist, as a runtime runs the chain",
    async () => {
      const p = await newPod();
      const chain = {
        cniVersion: conflist.cniVersion,
        name: conflist.name,
        plugins: [{ type: 'loopback' }, conflist.plugins[0]!],
      };
      // ADD: each plugin in order, each given the previous one's result as prevResult.
      const lo = await runCniPlugin({
        command: 'ADD',
        containerId: p.containerId,
        netns: p.netns,
        pod: p.pod,
        config: { ...chain.plugins[0], name: chain.name, cniVersion: chain.cniVersion },
        executable: [LOOPBACK],
      });
      expect(lo.exitCode, lo.stdout).toBe(0);
      const ours = await call({
        command: 'ADD',
        containerId: p.containerId,
        netns: p.netns,
        pod: p.pod,
        config: config({ prevResult: lo.json }),
      });
      expect(ours.exitCode, ours.stdout).toBe(0);
      const result = ours.json as {
        interfaces: Array<{ name: string }>;
        ips: Array<{ address: string; interface: number }>;
      };
      expect(result.interfaces.map((i) => i.name)).toEqual([
        'lo',
        workloadInterfaceName('default', p.pod.name),
        'eth0',
      ]);
      expect(result.ips.find((ip) => ip.address.startsWith('127.0.0.1'))?.interface).toBe(0);
      expect(result.ips.find((ip) => ip.address.startsWith('10.70.'))?.interface).toBe(2);
      const links = JSON.parse(await p.ns.ip('-json', 'link', 'show')) as Array<{ ifname: string; flags: string[] }>;
      expect(links.find((l) => l.ifname === 'lo')?.flags).toContain('UP');
      // CHECK with the final result, then DEL in reverse order.
      const check = await call({
        command: 'CHECK',
        containerId: p.containerId,
        netns: p.netns,
        pod: p.pod,
        config: config({ prevResult: ours.json }),
      });
      expect(check.exitCode, check.stdout).toBe(0);
      const del = await call({
        command: 'DEL',
        containerId: p.containerId,
        netns: p.netns,
        pod: p.pod,
        config: config({ prevResult: ours.json }),
      });
      expect(del.exitCode, del.stdout).toBe(0);
      const loDel = await runCniPlugin({
        command: 'DEL',
        containerId: p.containerId,
        netns: p.netns,
        pod: p.pod,
        config: { ...chain.plugins[0], name: chain.name, cniVersion: chain.cniVersion, prevResult: lo.json },
        executable: [LOOPBACK],
      });
      expect(loDel.exitCode, loDel.stdout).toBe(0);
      await expectNothingFor(p.containerId, workloadInterfaceName('default', p.pod.name));
    },
    60_000,
  );

  it('CHECK passes after ADD and names the difference when the pod lost its default route', async () => {
    const p = await newPod();
    const add = await call({ command: 'ADD', containerId: p.containerId, netns: p.netns, pod: p.pod });
    expect(add.exitCode).toBe(0);
    const ok = await call({
      command: 'CHECK',
      containerId: p.containerId,
      netns: p.netns,
      pod: p.pod,
      config: config({ prevResult: add.json }),
    });
    expect(ok.exitCode, ok.stdout).toBe(0);
    await p.ns.ip('route', 'del', 'default');
    const broken = await call({
      command: 'CHECK',
      containerId: p.containerId,
      netns: p.netns,
      pod: p.pod,
      config: config({ prevResult: add.json }),
    });
    expect(broken.json?.code).toBe(103);
    expect(String(broken.json?.msg)).toMatch(
      new RegExp(`no default route via 169\\.254\\.1\\.1 dev eth0 in ${p.netns}`),
    );
  }, 60_000);

  it('takes CNI_NETNS as /proc/PID/ns/net', async () => {
    const p = await newPod();
    const sleeper = spawn('ip', ['netns', 'exec', p.ns.name, 'sleep', '60'], { stdio: 'ignore' });
    try {
      const pid = await waitFor(
        async () => {
          const found = await runCommand('ip', ['netns', 'pids', p.ns.name]);
          return found.stdout
            .trim()
            .split('\n')
            .filter((s) => s !== '')[0];
        },
        { timeoutMs: 5_000, what: 'the sleep inside the pod namespace' },
      );
      const netns = `/proc/${pid}/ns/net`;
      const add = await call({ command: 'ADD', containerId: p.containerId, netns, pod: p.pod });
      expect(add.exitCode, add.stdout).toBe(0);
      expect((add.json?.interfaces as Array<{ sandbox?: string }>)[1]?.sandbox).toBe(netns);
      const addrs = JSON.parse(await p.ns.ip('-json', 'addr', 'show', 'dev', 'eth0')) as Array<{
        addr_info: Array<{ local: string }>;
      }>;
      expect(addrs[0]?.addr_info.map((a) => a.local)).toContain(resultAddress(add));
      expect((await call({ command: 'DEL', containerId: p.containerId, netns, pod: p.pod })).exitCode).toBe(0);
    } finally {
      if (sleeper.pid !== undefined && sleeper.exitCode === null) sleeper.kill('SIGKILL');
    }
  }, 60_000);

  it("the lab's mode: the plugin outside the node namespace (TORTIE_CNI_HOST_NETNS), through runCniPlugin", async () => {
    const p = await newPod();
    const base = {
      containerId: p.containerId,
      netns: p.netns,
      pod: p.pod,
      hostNetns: `/var/run/netns/${host.name}`,
      config: config(),
    };
    const add = await runCniPlugin({ ...base, command: 'ADD', executable: [wrapper] });
    expect(add.exitCode, `${add.stdout} ${add.stderr}`).toBe(0);
    const hostIf = workloadInterfaceName('default', p.pod.name);
    expect((await hostLinks()).map((l) => l.ifname)).toContain(hostIf);
    expect((await host.exec('cat', [`/proc/sys/net/ipv4/conf/${hostIf}/proxy_arp`])).trim()).toBe('1');
    const del = await runCniPlugin({ ...base, command: 'DEL', executable: [wrapper] });
    expect(del.exitCode, del.stdout).toBe(0);
    await expectNothingFor(p.containerId, hostIf);
  }, 60_000);

  it("kubernetes datastore, as ServiceAccount tortie-cni with only its ClusterRole (the agent's token refresher wrote the kubeconfig): ADD annotates the Pod (containerID, podIP, podIPs), DEL removes the addresses", async () => {
    const api = await startFakeApiServer();
    const kube = await openKubernetes({ kubeconfig: api.kubeconfigPath, timeoutMs: 5_000 });
    const tokenDir = mkdtempSync(join(tmpdir(), 'tortie-cni-kube-'));
    let refresher: CniTokenRefresher | undefined;
    try {
      // RBAC as manifests/tortie.yaml says; the plugin's kubeconfig is the one the agent keeps.
      api.serviceAccount('tortie-system', 'tortie-node');
      api.serviceAccount('tortie-system', 'tortie-cni');
      api.setGrants(grantsFromManifests(loadKubeDocuments(join(MANIFEST_DIR, 'tortie.yaml'))));
      const agentKubeconfig = await api.kubeconfigWithToken(api.issueToken('tortie-system', 'tortie-node').token);
      const cniKubeconfig = join(tokenDir, 'tortie-kubeconfig');
      refresher = new CniTokenRefresher({
        kubeconfigPath: cniKubeconfig,
        server: api.url,
        caData: '',
        request: await kubeTokenRequester(agentKubeconfig, 5_000, 'tortie-system', 'tortie-cni'),
      });
      await refresher.start();
      expect(refresher.written).toBe(1);
      await kube.create({
        apiVersion: API_VERSION,
        kind: 'IPPool',
        metadata: { name: 'kube-pods' },
        spec: { cidr: '10.71.0.0/16', blockSize: 26, ipipMode: 'Never', nodeSelector: 'all()' },
      });
      api.put({ core: 'nodes' }, { metadata: { name: NODE } });
      const p = await newPod();
      api.put(
        { core: 'pods' },
        { metadata: { name: p.pod.name, namespace: 'default', annotations: { keep: 'me' } }, spec: { nodeName: NODE } },
      );
      const kubeConfig = {
        cniVersion: '1.0.0',
        name: NETWORK,
        type: 'tortie',
        datastore_type: 'kubernetes',
        kubeconfig: cniKubeconfig,
        nodename: NODE,
        ipam: { type: 'tortie-ipam' },
      };
      const base = {
        containerId: p.containerId,
        netns: p.netns,
        pod: p.pod,
        hostNetns: `/var/run/netns/${host.name}`,
        config: kubeConfig,
        executable: [wrapper],
      };
      const add = await runCniPlugin({ ...base, command: 'ADD' });
      expect(add.exitCode, `${add.stdout} ${add.stderr}`).toBe(0);
      const address = resultAddress(add);
      expect(address.startsWith('10.71.')).toBe(true);
      const annotations = (): unknown =>
        (api.object({ core: 'pods' }, p.pod.name, 'default')?.metadata as { annotations?: Record<string, string> })
          .annotations;
      expect(annotations()).toEqual({
        keep: 'me',
        'cni.projectcalico.org/containerID': p.containerId,
        'cni.projectcalico.org/podIP': `${address}/32`,
        'cni.projectcalico.org/podIPs': `${address}/32`,
      });
      expect(await kube.get('IPAMHandle', `${NETWORK}.${p.containerId}`)).not.toBeNull();
      const del = await runCniPlugin({ ...base, command: 'DEL' });
      expect(del.exitCode, `${del.stdout} ${del.stderr}`).toBe(0);
      expect(annotations()).toEqual({ keep: 'me', 'cni.projectcalico.org/containerID': p.containerId });
      expect(await kube.get('IPAMHandle', `${NETWORK}.${p.containerId}`)).toBeNull();
      expect((await hostLinks()).map((l) => l.ifname)).not.toContain(workloadInterfaceName('default', p.pod.name));
      // Every call the plugin made was its own ServiceAccount's, none refused, each one its role grants
      // (src/cni/api-calls.ts), the Pod written only through pods/status.
      const byCni = api.calls.filter((c) => c.user === 'system:serviceaccount:tortie-system:tortie-cni');
      expect(byCni.filter((c) => c.status === 401 || c.status === 403)).toEqual([]);
      const declared = new Set(CNI_API_CALLS.map((g) => `${g.verb} ${g.resource}`));
      expect([...new Set(byCni.map((c) => `${c.verb} ${c.resource}`))].filter((c) => !declared.has(c))).toEqual([]);
      expect(byCni.some((c) => c.verb === 'patch' && c.resource === 'pods/status' && c.status === 200)).toBe(true);
      expect(byCni.some((c) => c.resource === 'pods' && c.verb === 'patch')).toBe(false);
    } finally {
      refresher?.stop();
      rmSync(tokenDir, { recursive: true, force: true });
      await kube.close();
      await api.stop();
    }
  }, 60_000);

  it('VERSION lists the spec versions; STATUS says ready', async () => {
    const version = await call({ command: 'VERSION', rawStdin: '{"cniVersion":"1.0.0"}' });
    expect(version.json).toEqual({
      cniVersion: '1.1.0',
      supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'],
    });
    const status = await call({ command: 'STATUS', config: config({ cniVersion: '1.1.0' }) });
    expect(status.exitCode, status.stdout).toBe(0);
  }, 60_000);
});
