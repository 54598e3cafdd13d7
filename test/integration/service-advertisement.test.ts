// Service IP advertisement end to end: three `tortie node run` agents on a real etcd, reading Services and
// EndpointSlices from the fake Kubernetes API server (KUBECONFIG on the etcd datastore, as Calico's confd),
// and a BIRD 2 office router (eBGP, AS 65001) peering with every node:
//   1. the serviceExternalIPs range reaches BIRD from every node; a Service with externalTrafficPolicy Local
//      and its ready endpoint on node 2 → its external IP /32 reaches BIRD from node 2 only (nodes 1 and 3
//      neither originate nor pass it on);
//   2. the endpoint moved to node 3 → the /32 moves (withdrawn by node 2, announced by node 3); not ready →
//      withdrawn everywhere;
//   3. the API server forgets its history (410 Gone on the next watch): the agents re-list, and a change
//      after that still moves the route;
//   4. serviceClusterIPs added → every node advertises the range (and the Local Service's cluster IP /32
//      from its node only); removed → withdrawn from BIRD.
// Every process is stopped by PID, even on failure.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryControl } from '../../src/agent/control.js';
import type { AgentStatus, RouteRow } from '../../src/agent/types.js';
import { openEtcd } from '../../src/datastore/etcd.js';
import type { Datastore } from '../../src/datastore/types.js';
import { addressBlock } from '../harness/addresses.js';
import { requirePeers } from '../harness/binaries.js';
import { requireEtcd, startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { startFakeApiServer, type FakeApiServer, type KubeObject } from '../harness/fake-apiserver.js';
import { startPeer, waitFor, waitForSession, type PeerDaemon } from '../harness/index.js';
import { stopChild } from '../harness/process.js';
import { calicoResource } from '../harness/resources.js';

const HERE = fileURLToPath(import.meta.url);
const ROOT = HERE.slice(0, HERE.lastIndexOf('/test/')).replace(/\/dist$/, '');
const CLI = `${ROOT}/dist/src/cli/main.js`;
const block = addressBlock(import.meta.url);
const NODES = [1, 2, 3].map((i) => ({ name: `node-${i}`, ip: block.host(10 + i) }));
const OFFICE = { address: block.host(50), as: 65001 };
const EXTERNAL_RANGE = '203.0.113.0/24';
const EXTERNAL_IP = '203.0.113.9';
const CLUSTER_RANGE = '10.96.0.0/12';
const CLUSTER_IP = '10.96.0.10';
const haveEtcd = requireEtcd();
const haveBird = requirePeers('bird2');

interface AgentProcess {
  name: string;
  ip: string;
  socket: string;
  child: ChildProcess;
  log: () => string;
}

async function status(agent: AgentProcess): Promise<AgentStatus> {
  const answer = await queryControl(agent.socket, { command: 'status' }, 2000);
  if (!answer.ok || !('status' in answer)) throw new Error(`${agent.name}: ${JSON.stringify(answer)}`);
  return answer.status;
}

async function routes(agent: AgentProcess): Promise<RouteRow[]> {
  const answer = await queryControl(agent.socket, { command: 'routes' }, 2000);
  if (!answer.ok || !('routes' in answer)) throw new Error(`${agent.name}: ${JSON.stringify(answer)}`);
  return answer.routes;
}

const SERVICE: KubeObject = {
  metadata: { name: 'web', namespace: 'shop' },
  spec: {
    type: 'NodePort',
    clusterIP: CLUSTER_IP,
    clusterIPs: [CLUSTER_IP],
    ipFamilies: ['IPv4'],
    externalTrafficPolicy: 'Local',
    externalIPs: [EXTERNAL_IP],
    ports: [{ port: 80, protocol: 'TCP' }],
  },
};

function endpointSlice(nodeName: string, ready: boolean): KubeObject {
  return {
    metadata: { name: 'web-x7k2p', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
    addressType: 'IPv4',
    endpoints: [{ addresses: ['10.244.7.5'], nodeName, conditions: { ready } }],
    ports: [{ port: 80, protocol: 'TCP' }],
  };
}

describe.skipIf(!haveEtcd || !haveBird)(
  'service IP advertisement: three agents, the fake API server, a BIRD office router',
  () => {
    let etcd: EtcdInstance;
    let api: FakeApiServer;
    let ds: Datastore;
    let dir: string;
    let bird: PeerDaemon;
    const agents: AgentProcess[] = [];

    function startAgent(node: { name: string; ip: string }): AgentProcess {
      const socket = join(dir, `${node.name}.ctl`);
      const env = {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        NODENAME: node.name,
        TORTIE_CNI_SOCKET: 'off', // not a CNI test: no agent binds the host's /var/run/tortie/cni.sock
        IP: `${node.ip}/24`,
        DATASTORE_TYPE: 'etcdv3',
        ETCD_ENDPOINTS: etcd.endpoint,
        KUBECONFIG: api.kubeconfigPath,
        TORTIE_DATAPLANE: 'none',
        TORTIE_CTL_SOCKET: socket,
        TORTIE_HEALTH_PORT: '0',
        TORTIE_LOG_LEVEL: 'info',
        CALICO_IPV4POOL_CIDR: '10.244.0.0/16',
        CALICO_IPV4POOL_IPIP: 'Never',
      };
      const child = spawn(process.execPath, [CLI, 'node', 'run'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      let log = '';
      child.stderr!.on('data', (d: Buffer) => {
        log += d.toString();
        if (log.length > 400_000) log = log.slice(-200_000);
      });
      const agent = { ...node, socket, child, log: () => log };
      agents.push(agent);
      return agent;
    }

    function diagnose(): string {
      return agents.map((a) => `--- ${a.name} (exit ${a.child.exitCode}) ---\n${a.log().slice(-3000)}`).join('\n');
    }

    /** The neighbors BIRD holds a path for `prefix` from, sorted (every path, not only the best). */
    async function announcers(prefix: string): Promise<string[]> {
      return (await bird.routes())
        .filter((r) => r.prefix === prefix)
        .map((r) => r.fromPeer ?? '?')
        .sort();
    }

    async function waitForAnnouncers(prefix: string, wanted: string[], what: string): Promise<void> {
      try {
        await waitFor(async () => JSON.stringify(await announcers(prefix)) === JSON.stringify([...wanted].sort()), {
          timeoutMs: 15_000,
          intervalMs: 50,
          what,
        });
      } catch (error) {
        throw new Error(
          `${(error as Error).message}: BIRD has ${prefix} from ${JSON.stringify(await announcers(prefix))}\n${diagnose()}`,
        );
      }
    }

    async function updateConfig(change: (spec: Record<string, unknown>) => Record<string, unknown>): Promise<void> {
      const config = (await ds.get('BGPConfiguration', 'default'))!;
      await ds.update({ ...config, spec: change({ ...config.spec }) as typeof config.spec });
    }

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'tortie-services-'));
      etcd = await startEtcd();
      api = await startFakeApiServer();
      ds = await openEtcd({ endpoints: [etcd.endpoint], timeoutMs: 5000 });
      await ds.create(
        calicoResource('BGPConfiguration', 'default', {
          bindMode: 'NodeIP',
          nodeToNodeMeshEnabled: true,
          asNumber: 64512,
          serviceExternalIPs: [{ cidr: EXTERNAL_RANGE }],
        }),
      );
      await ds.create(calicoResource('BGPPeer', 'office-router', { peerIP: OFFICE.address, asNumber: OFFICE.as }));
      api.put({ core: 'services' }, SERVICE);
      api.put({ core: 'endpointslices' }, endpointSlice('node-2', true));
      bird = await startPeer('bird2', {
        address: OFFICE.address,
        as: OFFICE.as,
        neighbors: NODES.map((n) => ({ address: n.ip, as: 64512 })),
      });
      for (const node of NODES) startAgent(node);
    }, 60_000);

    afterAll(async () => {
      await Promise.all(agents.map((a) => stopChild(a.child)));
      await bird?.stop().catch(() => undefined);
      await ds?.close().catch(() => undefined);
      await api?.stop().catch(() => undefined);
      await etcd?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    }, 60_000);

    it('the external range from every node; the Local Service’s /32 from node 2 only, where its endpoint is', async () => {
      for (const node of NODES)
        await waitForSession(bird, node.ip, 'Established', 40_000).catch((e: unknown) =>
          Promise.reject(new Error(`${(e as Error).message}\n${diagnose()}`)),
        );
      await waitForAnnouncers(
        EXTERNAL_RANGE,
        NODES.map((n) => n.ip),
        'the external range from every node',
      );
      await waitForAnnouncers(`${EXTERNAL_IP}/32`, [NODES[1]!.ip], 'the Local Service /32 from node 2 only');
      const [rib1, rib2, rib3] = await Promise.all(agents.map(routes));
      expect(rib2!.find((r) => r.prefix === `${EXTERNAL_IP}/32`)).toMatchObject({ from: 'local', best: true });
      // Nodes 1 and 3 hear it over the mesh and refuse it (a service route is never used from a peer).
      for (const rib of [rib1!, rib3!])
        expect(rib.filter((r) => r.prefix === `${EXTERNAL_IP}/32` && r.best)).toEqual([]);
      // The warning that service /32s are not in effect is absent: there is a Kubernetes API.
      for (const s of await Promise.all(agents.map(status)))
        expect(s.warnings.filter((w) => w.startsWith('service advertisement:'))).toEqual([]);
    }, 90_000);

    it('the endpoint moving to node 3 moves the /32; not ready, it is withdrawn everywhere', async () => {
      api.put({ core: 'endpointslices' }, endpointSlice('node-3', true));
      const moved = Date.now();
      await waitForAnnouncers(`${EXTERNAL_IP}/32`, [NODES[2]!.ip], 'the /32 from node 3 only');
      console.log(`service /32 moved from node 2 to node 3 at BIRD in ${Date.now() - moved} ms`);
      api.put({ core: 'endpointslices' }, endpointSlice('node-3', false));
      const unready = Date.now();
      await waitForAnnouncers(`${EXTERNAL_IP}/32`, [], 'the /32 withdrawn when its last endpoint is not ready');
      console.log(
        `service /32 withdrawn at BIRD ${Date.now() - unready} ms after its last local endpoint went not-ready`,
      );
      await waitForAnnouncers(
        EXTERNAL_RANGE,
        NODES.map((n) => n.ip),
        'the range stays',
      );
    }, 60_000);

    it('after the API server forgets its history (410 Gone), the agents re-list and keep following', async () => {
      const lists = (resource: string): number =>
        api.calls.filter((c) => c.verb === 'list' && c.resource === resource).length;
      expect([lists('services'), lists('endpointslices.discovery.k8s.io')]).toEqual([3, 3]); // one list per agent so far
      // A change the agents do not watch moves the resourceVersion past theirs; then history is forgotten.
      api.put({ core: 'namespaces' }, { metadata: { name: 'elsewhere' } });
      const dropped = api.dropWatches();
      expect(dropped).toBeGreaterThanOrEqual(6); // services and endpointslices, three agents
      api.compact();
      api.put({ core: 'endpointslices' }, endpointSlice('node-1', true));
      await waitForAnnouncers(`${EXTERNAL_IP}/32`, [NODES[0]!.ip], 'the /32 from node 1 after a re-list');
      // Each agent's re-opened watches got 410 Gone and re-listed both collections.
      await waitFor(() => lists('services') >= 6 && lists('endpointslices.discovery.k8s.io') >= 6, {
        timeoutMs: 10_000,
        what: 'a re-list per agent and collection',
      });
      // ...and watch again from the new list: six watch streams open once more.
      await waitFor(() => api.openWatches() >= 6, {
        timeoutMs: 10_000,
        what: 'the watches re-opened after the re-list',
      });
    }, 60_000);

    it('serviceClusterIPs added → every node advertises the range, the Local cluster IP /32 only from its node; removed → withdrawn', async () => {
      const officeSince = async (): Promise<Array<string | undefined>> =>
        (await Promise.all(agents.map(status))).map((s) => s.peers.find((p) => p.address === OFFICE.address)?.sinceIso);
      const before = await officeSince();
      await updateConfig((spec) => ({ ...spec, serviceClusterIPs: [{ cidr: CLUSTER_RANGE }] }));
      await waitForAnnouncers(
        CLUSTER_RANGE,
        NODES.map((n) => n.ip),
        'the cluster range from every node',
      );
      await waitForAnnouncers(
        `${CLUSTER_IP}/32`,
        [NODES[0]!.ip],
        'the cluster IP /32 from node 1, where the endpoint is',
      );
      await updateConfig((spec) => {
        const { serviceClusterIPs: _removed, ...rest } = spec;
        return rest;
      });
      await waitForAnnouncers(CLUSTER_RANGE, [], 'the cluster range withdrawn');
      await waitForAnnouncers(`${CLUSTER_IP}/32`, [], 'the cluster IP /32 withdrawn');
      await waitForAnnouncers(`${EXTERNAL_IP}/32`, [NODES[0]!.ip], 'the external IP /32 stays');
      // The configuration changes restarted no session with the office router (same Established-since).
      expect(before.every((since) => since !== undefined)).toBe(true);
      expect(await officeSince()).toEqual(before);
    }, 60_000);
  },
);
