// Peering that follows the cluster live, for real in network namespaces this file creates: one `tortie node
// run` agent in a node namespace (its etcd reached through `tortie lab relay`, as the lab does), an office
// router (BIRD 2) beside it, and a workload (BIRD 2 in the workload's namespace, behind a cali* veth as
// Calico wires pods):
//
//   office router 198.18.44.2/24 ──eth0── node 198.18.44.1/24 ──cali44wl── workload 10.44.0.5/32
//
// Checked:
// - BGPPeer localWorkloadSelector: a WorkloadEndpoint on this node that the selector matches gets a passive
//   Local_Workload_10_44_0_5 session; the workload's BIRD connects and establishes, its route is learned and
//   it is sent the node's block; deleting the WorkloadEndpoint removes the session.
// - Soft reconfiguration: the office router's BGPFilter changed so the node's block is rejected → the block
//   disappears at BIRD, and the session is untouched (the agent's "since" the same, one Established in its
//   log, BIRD's protocol still up since the same time); changed back → the block returns, still no reset.
// Every process is stopped by PID; the namespaces are removed after the tests, also when one fails.

import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryControl } from '../../src/agent/control.js';
import type { AgentStatus, RouteRow } from '../../src/agent/types.js';
import { openEtcd } from '../../src/datastore/etcd.js';
import type { Datastore } from '../../src/datastore/types.js';
import type { Resource } from '../../src/resources/index.js';
import { addressBlock } from '../harness/addresses.js';
import { requirePeers } from '../harness/binaries.js';
import { freePort, requireEtcd, startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { startPeer, waitFor, waitForRoute, waitForSession, type PeerDaemon } from '../harness/index.js';
import { createNetns, destroyAllNetns, netnsUnavailableReason, type Netns } from '../harness/netns.js';
import { makeTempDir, stopChild } from '../harness/process.js';
import { calicoResource } from '../harness/resources.js';

const unavailable = netnsUnavailableReason();
if (unavailable && process.env.CI === 'true') throw new Error(`live peering tests cannot run: ${unavailable}`);

const HERE = fileURLToPath(import.meta.url);
const ROOT = HERE.slice(0, HERE.lastIndexOf('/test/')).replace(/\/dist$/, '');
const CLI = `${ROOT}/dist/src/cli/main.js`;
const BLOCK = addressBlock(import.meta.url).block; // 44
const NODE = { name: 'node-1', ip: `198.18.${BLOCK}.1`, as: 64512 };
const ROUTER = { ip: `198.18.${BLOCK}.2`, as: 65001 };
const WORKLOAD = { ip: `10.${BLOCK}.0.5`, as: 65044, iface: `cali${BLOCK}wl` };
const POOL = `10.${BLOCK}.0.0/16`;
const haveEtcd = requireEtcd();
const havePeers = requirePeers('bird2');

describe.skipIf(unavailable !== null || !haveEtcd || !havePeers)('peering that follows the cluster live', () => {
  let etcd: EtcdInstance;
  let ds: Datastore;
  let dir: string;
  let socket: string;
  let node: Netns;
  let router: Netns;
  let pod: Netns;
  const children: ChildProcess[] = [];
  let log = '';
  let office: PeerDaemon | undefined;
  let workloadBird: PeerDaemon | undefined;
  let ownBlock = '';

  async function status(): Promise<AgentStatus> {
    const answer = await queryControl(socket, { command: 'status' }, 2000);
    if (!answer.ok || !('status' in answer)) throw new Error(JSON.stringify(answer));
    return answer.status;
  }

  async function routes(): Promise<RouteRow[]> {
    const answer = await queryControl(socket, { command: 'routes' }, 2000);
    if (!answer.ok || !('routes' in answer)) throw new Error(JSON.stringify(answer));
    return answer.routes;
  }

  const withLog = (error: unknown): never => {
    throw new Error(`${(error as Error).message}\nagent log tail:\n${log.slice(-4000)}`);
  };

  function start(name: string, command: string, args: string[], env?: NodeJS.ProcessEnv): ChildProcess {
    const child = spawn(command, args, { env: env ?? process.env, stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (d: Buffer) => {
      if (name !== 'agent') return;
      log += d.toString();
      if (log.length > 400_000) log = log.slice(-200_000);
    });
    children.push(child);
    return child;
  }

  /** The agent's log lines saying a session to `address` reached Established. */
  const establishedInLog = (address: string): number =>
    log
      .split('\n')
      .filter(
        (l) =>
          l.includes(`"peer":"${address}"`) &&
          l.includes('"to":"Established"') &&
          l.includes('"msg":"BGP session state"'),
      ).length;

  beforeAll(async () => {
    dir = makeTempDir('peering-live');
    socket = join(dir, 'node-1.ctl');
    etcd = await startEtcd();
    ds = await openEtcd({ endpoints: [etcd.endpoint], timeoutMs: 5000 });
    // Namespaces: node, office router beside it, a workload behind a cali veth (/32, default route via
    // 169.254.1.1, proxy ARP on the node side: how Calico's CNI plugin wires a pod).
    node = await createNetns('livenode');
    router = await createNetns('liverouter');
    pod = await createNetns('livepod');
    await node.ip('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', router.name);
    await node.ip('addr', 'add', `${NODE.ip}/24`, 'dev', 'eth0');
    await node.ip('link', 'set', 'eth0', 'up');
    await router.ip('addr', 'add', `${ROUTER.ip}/24`, 'dev', 'eth0');
    await router.ip('link', 'set', 'eth0', 'up');
    // The node's default route (via the router) is what lets proxy ARP answer the pod for 169.254.1.1.
    await node.ip('route', 'add', 'default', 'via', ROUTER.ip, 'dev', 'eth0');
    await node.ip('link', 'add', WORKLOAD.iface, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod.name);
    await node.ip('link', 'set', WORKLOAD.iface, 'up');
    // Proxy ARP answers only on a forwarding interface (a Calico node forwards).
    await node.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    await node.exec('sysctl', ['-qw', `net.ipv4.conf.${WORKLOAD.iface}.proxy_arp=1`]);
    await node.ip('route', 'add', `${WORKLOAD.ip}/32`, 'dev', WORKLOAD.iface, 'scope', 'link');
    await pod.ip('addr', 'add', `${WORKLOAD.ip}/32`, 'dev', 'eth0');
    await pod.ip('link', 'set', 'eth0', 'up');
    await pod.ip('route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link');
    await pod.ip('route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0');

    await ds.create(calicoResource('BGPConfiguration', 'default', { nodeToNodeMeshEnabled: false, asNumber: NODE.as }));
    await ds.create(
      calicoResource('IPPool', 'pods', { cidr: POOL, blockSize: 26, ipipMode: 'Never', nodeSelector: 'all()' }),
    );
    // At first the office filter rejects nothing the node has.
    await ds.create(
      calicoResource('BGPFilter', 'office-out', {
        exportV4: [{ cidr: '192.0.2.0/24', matchOperator: 'In', action: 'Reject' }],
      }),
    );
    await ds.create(
      calicoResource('BGPPeer', 'office', { peerIP: ROUTER.ip, asNumber: ROUTER.as, filters: ['office-out'] }),
    );
    await ds.create(
      calicoResource('BGPPeer', 'vrouters', { localWorkloadSelector: "app == 'vrouter'", asNumber: WORKLOAD.as }),
    );

    // etcd through two relays: host unix socket → etcd, node's 127.0.0.1:2379 → that socket.
    const etcdSocket = join(dir, 'etcd.sock');
    start('relay-host', process.execPath, [
      CLI,
      'lab',
      'relay',
      `unix:${etcdSocket}`,
      `tcp:${new URL(etcd.endpoint).hostname}:${new URL(etcd.endpoint).port}`,
    ]);
    start('relay-node', 'ip', [
      'netns',
      'exec',
      node.name,
      process.execPath,
      CLI,
      'lab',
      'relay',
      'tcp:127.0.0.1:2379',
      `unix:${etcdSocket}`,
    ]);
    start('agent', 'ip', ['netns', 'exec', node.name, process.execPath, CLI, 'node', 'run'], {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      NODENAME: NODE.name,
      TORTIE_CNI_SOCKET: 'off', // not a CNI test: no agent binds the host's /var/run/tortie/cni.sock
      IP: `${NODE.ip}/24`,
      DATASTORE_TYPE: 'etcdv3',
      ETCD_ENDPOINTS: 'http://127.0.0.1:2379',
      TORTIE_DATAPLANE: 'none',
      TORTIE_CTL_SOCKET: socket,
      TORTIE_HEALTH_PORT: String(await freePort()),
      TORTIE_LOG_LEVEL: 'info',
      NO_DEFAULT_POOLS: 'true',
    });
    ownBlock = await waitFor(async () => (await status().catch(() => null))?.blocks[0], {
      timeoutMs: 30_000,
      intervalMs: 100,
      what: 'the agent claiming its block',
    }).catch(withLog);
    office = await startPeer('bird2', {
      address: ROUTER.ip,
      as: ROUTER.as,
      netns: router.name,
      neighbors: [{ address: NODE.ip, as: NODE.as }],
    });
  }, 90_000);

  afterAll(async () => {
    for (const child of children.reverse()) await stopChild(child).catch(() => undefined);
    await office?.stop().catch(() => undefined);
    await workloadBird?.stop().catch(() => undefined);
    await ds?.close().catch(() => undefined);
    await etcd?.stop();
    await destroyAllNetns();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('BGPPeer localWorkloadSelector: the workload’s BIRD establishes a Local_Workload session; deleting the workload ends it', async () => {
    const wep = calicoResource(
      'WorkloadEndpoint',
      'node--1-k8s-vrouter-eth0',
      {
        node: NODE.name,
        orchestrator: 'k8s',
        pod: 'vrouter',
        endpoint: 'eth0',
        interfaceName: WORKLOAD.iface,
        ipNetworks: [`${WORKLOAD.ip}/32`],
      },
      { app: 'vrouter', 'projectcalico.org/namespace': 'default' },
    ) as Resource<'WorkloadEndpoint'>;
    wep.metadata.namespace = 'default';
    await ds.create(wep);
    workloadBird = await startPeer('bird2', {
      address: WORKLOAD.ip,
      as: WORKLOAD.as,
      netns: pod.name,
      neighbors: [{ address: NODE.ip, as: NODE.as, multihop: true }],
      announce: [{ prefix: '203.0.113.0/24', nextHop: WORKLOAD.ip }],
    });
    await waitForSession(workloadBird, NODE.ip, 'Established', 30_000).catch(withLog);
    const row = await waitFor(
      async () => (await status()).peers.find((p) => p.address === WORKLOAD.ip && p.info === 'Established'),
      { timeoutMs: 20_000, intervalMs: 100, what: 'the workload session in node status' },
    ).catch(withLog);
    expect(row).toMatchObject({ name: `Local_Workload_10_${BLOCK}_0_5`, type: 'local workload' });
    // Its route is learned; it is sent the node's block.
    await waitFor(
      async () => (await routes()).find((r) => r.prefix === '203.0.113.0/24' && r.from === WORKLOAD.ip && r.best),
      { timeoutMs: 20_000, intervalMs: 100, what: "the workload's route in node routes" },
    ).catch(withLog);
    await waitForRoute(workloadBird, ownBlock, () => true, 20_000).catch(withLog);
    // The workload goes: the session goes.
    await ds.delete('WorkloadEndpoint', wep.metadata.name, { namespace: 'default' });
    await waitFor(async () => !(await status()).peers.some((p) => p.address === WORKLOAD.ip), {
      timeoutMs: 20_000,
      intervalMs: 100,
      what: 'the workload session removed',
    }).catch(withLog);
    await waitForSession(workloadBird, NODE.ip, 'Active', 20_000).catch(async () =>
      expect((await workloadBird!.sessions())[0]?.state).not.toBe('Established'),
    );
  }, 90_000);

  it('soft reconfiguration: a changed BGPFilter withdraws and restores the block at BIRD without a session reset', async () => {
    await waitForSession(office!, NODE.ip, 'Established', 30_000).catch(withLog);
    await waitForRoute(office!, ownBlock, () => true, 20_000).catch(withLog);
    const since = (await status()).peers.find((p) => p.address === ROUTER.ip)?.sinceIso;
    expect(since).toBeDefined();
    const birdSince = birdProtocolSince(await office!.cli('show protocols'));
    expect(establishedInLog(ROUTER.ip)).toBe(1);

    const setRules = async (exportV4: object[]) => {
      const current = (await ds.get('BGPFilter', 'office-out'))!;
      await ds.update({ ...current, spec: { ...current.spec, exportV4 } } as Resource<'BGPFilter'>);
    };
    await setRules([{ cidr: POOL, matchOperator: 'In', action: 'Reject' }]);
    await waitFor(async () => !(await office!.routes()).some((r) => r.prefix === ownBlock), {
      timeoutMs: 20_000,
      intervalMs: 100,
      what: 'the block withdrawn at BIRD',
    }).catch(withLog);
    await setRules([{ cidr: '192.0.2.0/24', matchOperator: 'In', action: 'Reject' }]);
    await waitForRoute(office!, ownBlock, () => true, 20_000).catch(withLog);

    // No reset on either side: the same session all along.
    const after = (await status()).peers.find((p) => p.address === ROUTER.ip);
    expect(after).toMatchObject({ info: 'Established', sinceIso: since });
    expect(establishedInLog(ROUTER.ip)).toBe(1);
    expect(log).not.toMatch(/Other Configuration Change/i);
    expect(birdProtocolSince(await office!.cli('show protocols'))).toBe(birdSince);
  }, 90_000);
});

/** BIRD's `show protocols` Since column for the (one) BGP protocol, which changes whenever the session does. */
function birdProtocolSince(text: string): string {
  const line = text.split('\n').find((l) => /^t_n1\s/.test(l));
  if (line === undefined) throw new Error(`no t_n1 in BIRD's show protocols:\n${text}`);
  const columns = line.trim().split(/\s+/);
  // name proto table state since [since-time] info
  return `${columns[4]} ${columns[5]}`;
}
