// Three `tortie node run` agents as child processes on a real etcd, plus a BIRD 2 office router:
//   1. the node-to-node mesh comes up by itself (bindMode NodeIP, each node on its own 127.0.28.x), and
//      `tortie node status` on each shows the two others Established as `node-to-node mesh`;
//   2. every agent's Loc-RIB holds all three blocks; a global BGPPeer for the office router (AS 65001)
//      makes BIRD learn them;
//   3. switching to a route reflector on node 1 (label + routeReflectorClusterID + a BGPPeer
//      nodeSelector all() / peerSelector route-reflector == 'true', then the mesh off) while every agent's
//      Loc-RIB is sampled over the control socket every ~50 ms: no block may ever be missing;
//   4. releasing a node's block withdraws it from every agent and from BIRD;
//   5. SIGTERM stops an agent with exit 0 and its peers see the session end at once.
// Before all that, a bad environment makes `tortie node run` exit 1 naming the variable.
// Every process is stopped by PID, even on failure.

import { calicoResource } from '../harness/resources.js';
import { stopChild } from '../harness/process.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runTortie } from '../harness/cli.js';
import { queryControl } from '../../src/agent/control.js';
import type { AgentStatus, RouteRow } from '../../src/agent/types.js';
import { openEtcd } from '../../src/datastore/etcd.js';
import type { Datastore } from '../../src/datastore/types.js';
import { Ipam } from '../../src/ipam/index.js';
import { addressBlock } from '../harness/addresses.js';
import { requirePeers } from '../harness/binaries.js';
import { freePort, requireEtcd, startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { startPeer, waitFor, waitForNoRoute, waitForRoute, waitForSession, type PeerDaemon } from '../harness/index.js';

const HERE = fileURLToPath(import.meta.url);
const ROOT = HERE.slice(0, HERE.lastIndexOf('/test/')).replace(/\/dist$/, '');
const CLI = `${ROOT}/dist/src/cli/main.js`;
const block = addressBlock(import.meta.url);
const NODES = [1, 2, 3].map((i) => ({ name: `node-${i}`, ip: block.host(10 + i) }));
const OFFICE = { address: block.host(50), as: 65001 };
const haveEtcd = requireEtcd();
const haveBird = requirePeers('bird2');

interface AgentProcess {
  name: string;
  ip: string;
  socket: string;
  child: ChildProcess;
  log: () => string;
}

/** Runs the built CLI once (bounded to 10 s). */
const tortie = (env: Record<string, string>, args: string[]) => runTortie(env, args, { timeoutMs: 10_000 });

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

describe('tortie node run refuses a bad environment before touching anything', () => {
  it('exits 1 naming the variable, its value and what is accepted', async () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [
        { IP_AUTODETECTION_METHOD: 'guess' },
        /IP_AUTODETECTION_METHOD="guess" is not a valid method; valid methods: first-found, interface=<regex,...>, skip-interface=<regex,...>, cidr=<cidr,...>, can-reach=<IPv4 address>/,
      ],
      [{ TORTIE_DATAPLANE: 'ebpf' }, /TORTIE_DATAPLANE="ebpf" is not one of kernel, none/],
      [{ IP: '10.0.0.300' }, /IP="10.0.0.300"/],
    ];
    expect(cases.length).toBeGreaterThan(0);
    for (const [env, pattern] of cases) {
      const run = await tortie(
        {
          NODENAME: 'n1',
          TORTIE_CNI_SOCKET: 'off',
          DATASTORE_TYPE: 'etcdv3',
          ETCD_ENDPOINTS: 'http://127.0.0.1:1',
          ...env,
        },
        ['node', 'run'],
      );
      expect(run.status, run.stderr).toBe(1);
      expect(run.stderr).toMatch(pattern);
    }
  }, 30_000);
});

describe.skipIf(!haveEtcd || !haveBird)(
  'tortie node run: three agents, a BIRD office router, a reflector switch',
  () => {
    let etcd: EtcdInstance;
    let ds: Datastore;
    let dir: string;
    let bird: PeerDaemon | undefined;
    const agents: AgentProcess[] = [];
    const blocks = new Map<string, string>();
    let healthPort = 0;

    function startAgent(node: { name: string; ip: string }, health = 0): AgentProcess {
      const socket = join(dir, `${node.name}.ctl`);
      const env = {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        NODENAME: node.name,
        TORTIE_CNI_SOCKET: 'off', // not a CNI test: no agent binds the host's /var/run/tortie/cni.sock
        IP: `${node.ip}/24`,
        DATASTORE_TYPE: 'etcdv3',
        ETCD_ENDPOINTS: etcd.endpoint,
        TORTIE_DATAPLANE: 'none',
        TORTIE_CTL_SOCKET: socket,
        TORTIE_HEALTH_PORT: String(health),
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

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'tortie-node-agent-'));
      etcd = await startEtcd();
      ds = await openEtcd({ endpoints: [etcd.endpoint], timeoutMs: 5000 });
      await ds.create(
        calicoResource('BGPConfiguration', 'default', {
          bindMode: 'NodeIP',
          nodeToNodeMeshEnabled: true,
          asNumber: 64512,
        }),
      );
      healthPort = await freePort();
      NODES.forEach((node, i) => startAgent(node, i === 0 ? healthPort : 0));
    }, 60_000);

    afterAll(async () => {
      await Promise.all(agents.map((a) => stopChild(a.child)));
      await bird?.stop().catch(() => undefined);
      await ds?.close().catch(() => undefined);
      await etcd?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    }, 60_000);

    function diagnose(): string {
      return agents.map((a) => `--- ${a.name} (exit ${a.child.exitCode}) ---\n${a.log().slice(-3000)}`).join('\n');
    }

    it('forms the node-to-node mesh, and tortie node status shows it as calicoctl does', async () => {
      expect(agents).toHaveLength(3);
      try {
        await waitFor(
          async () => {
            const all = await Promise.all(agents.map(status));
            return all.every(
              (s) =>
                s.peers.length === 2 &&
                s.peers.every((p) => p.bgpState === 'Established' && p.type === 'node-to-node mesh'),
            );
          },
          { timeoutMs: 40_000, intervalMs: 200, what: 'a full mesh of 3 agents' },
        );
      } catch (error) {
        throw new Error(`${(error as Error).message}\n${diagnose()}`);
      }
      for (const agent of agents) {
        const run = await tortie({ TORTIE_CTL_SOCKET: agent.socket }, ['node', 'status']);
        expect(run.status, run.stderr).toBe(0);
        expect(run.stdout).toContain('tortie is running.');
        for (const other of agents.filter((a) => a !== agent)) {
          const line = run.stdout.split('\n').find((l) => l.includes(` ${other.ip} `));
          expect(line, run.stdout).toBeDefined();
          expect(line).toContain('node-to-node mesh');
          expect(line).toContain('Established');
        }
        const s = await status(agent);
        expect(s.ipv4Address).toBe(`${agent.ip}/24`);
        expect(s.blocks).toHaveLength(1);
        blocks.set(agent.name, s.blocks[0]!);
      }
      // Node 1 serves health and metrics: ready (every peer Established), sessions counted by state.
      const readiness = await fetch(`http://127.0.0.1:${healthPort}/readiness`);
      expect(readiness.status).toBe(200);
      const metrics = await (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text();
      expect(metrics).toMatch(/tortie_bgp_sessions\{state="Established"\} 2/);
      // One default pool, created by whichever agent came first; three distinct blocks from it.
      const pools = await ds.list('IPPool');
      expect(pools.items.map((p) => p.spec.cidr)).toEqual(['10.244.0.0/16']);
      expect(new Set(blocks.values()).size).toBe(3);
    }, 60_000);

    it('every agent has every block in its Loc-RIB, and the office router learns them all', async () => {
      expect(blocks.size).toBe(3);
      await waitFor(
        async () => {
          const ribs = await Promise.all(agents.map(routes));
          return ribs.every((rib) => [...blocks.values()].every((b) => rib.some((r) => r.prefix === b)));
        },
        { timeoutMs: 15_000, intervalMs: 100, what: 'all three blocks in every Loc-RIB' },
      );
      const rib1 = await routes(agents[0]!);
      const own = rib1.find((r) => r.prefix === blocks.get('node-1'));
      expect(own).toMatchObject({ from: 'local', nextHop: NODES[0]!.ip, inKernel: false });
      const learned = rib1.find((r) => r.prefix === blocks.get('node-2'));
      expect(learned).toMatchObject({ from: NODES[1]!.ip, nextHop: NODES[1]!.ip });

      bird = await startPeer('bird2', {
        address: OFFICE.address,
        as: OFFICE.as,
        neighbors: NODES.map((n) => ({ address: n.ip, as: 64512 })),
      });
      await ds.create(calicoResource('BGPPeer', 'office-router', { peerIP: OFFICE.address, asNumber: OFFICE.as }));
      for (const node of NODES) await waitForSession(bird, node.ip, 'Established', 30_000);
      for (const [name, cidr] of blocks) {
        const route = await waitForRoute(bird, cidr, () => true, 15_000);
        expect(route.asPath, `${cidr} of ${name}`).toEqual([64512]);
      }
      const s = await status(agents[1]!);
      const office = s.peers.find((p) => p.address === OFFICE.address);
      expect(office).toMatchObject({ type: 'global', bgpState: 'Established' });
    }, 90_000);

    it('switching to a route reflector on node 1 keeps every block in every Loc-RIB at every moment', async () => {
      expect(blocks.size).toBe(3);
      const wanted = [...blocks.values()];
      const gaps: string[] = [];
      let samples = 0;
      let sampling = true;
      const sampler = (async () => {
        for (let i = 0; sampling && i < 4000; i++) {
          const started = Date.now();
          const ribs = await Promise.all(agents.map((a) => routes(a).catch((e: unknown) => (e as Error).message)));
          ribs.forEach((rib, index) => {
            if (typeof rib === 'string') gaps.push(`${agents[index]!.name}: no answer (${rib})`);
            else
              for (const b of wanted)
                if (!rib.some((r) => r.prefix === b))
                  gaps.push(`${agents[index]!.name} at ${new Date().toISOString()}: ${b} missing`);
          });
          samples++;
          await new Promise((resolve) => setTimeout(resolve, Math.max(0, 50 - (Date.now() - started))));
        }
      })();
      try {
        await ds.create(
          calicoResource('BGPPeer', 'peer-with-route-reflectors', {
            nodeSelector: 'all()',
            peerSelector: "route-reflector == 'true'",
          }),
        );
        const node1 = (await ds.get('Node', 'node-1'))!;
        await ds.update({
          ...node1,
          metadata: { ...node1.metadata, labels: { ...(node1.metadata.labels ?? {}), 'route-reflector': 'true' } },
          spec: { ...node1.spec, bgp: { ...(node1.spec.bgp ?? {}), routeReflectorClusterID: '244.0.0.1' } },
        });
        await waitFor(
          async () => {
            const [s1, s2, s3] = await Promise.all(agents.map(status));
            const clientsUp = [s2!, s3!].every((s) =>
              s.peers.some(
                (p) => p.address === NODES[0]!.ip && p.bgpState === 'Established' && p.type !== 'node-to-node mesh',
              ),
            );
            return (
              s1!.clusterId === '244.0.0.1' &&
              s1!.peers.filter((p) => p.bgpState === 'Established').length === 3 &&
              clientsUp
            );
          },
          { timeoutMs: 30_000, intervalMs: 100, what: 'node 1 reflecting for nodes 2 and 3' },
        );
        const config = (await ds.get('BGPConfiguration', 'default'))!;
        await ds.update({ ...config, spec: { ...config.spec, nodeToNodeMeshEnabled: false } });
        await waitFor(
          async () => {
            const [, s2, s3] = await Promise.all(agents.map(status));
            return [s2!, s3!].every(
              (s) =>
                s.peers.length === 2 &&
                s.peers.every((p) => p.bgpState === 'Established') &&
                !s.peers.some((p) => p.type === 'node-to-node mesh'),
            );
          },
          {
            timeoutMs: 30_000,
            intervalMs: 100,
            what: 'the mesh gone, nodes 2 and 3 peering only with the reflector and the office router',
          },
        );
        // Keep sampling until the reflector carries node 2's and node 3's blocks to each other (routes removed
        // with the mesh linger as stale until their replacement arrives), then a little longer.
        await waitFor(
          async () => {
            const [, rib2, rib3] = await Promise.all(agents.map(routes));
            return (
              rib3!.find((r) => r.prefix === blocks.get('node-2'))?.from === NODES[0]!.ip &&
              rib2!.find((r) => r.prefix === blocks.get('node-3'))?.from === NODES[0]!.ip
            );
          },
          { timeoutMs: 20_000, intervalMs: 100, what: 'nodes 2 and 3 reaching each other through the reflector' },
        );
        await new Promise((resolve) => setTimeout(resolve, 500));
      } finally {
        sampling = false;
        await sampler;
      }
      expect(samples).toBeGreaterThan(2); // a count that depends on load; the gaps are what is checked
      expect(gaps, `${gaps.slice(0, 20).join('\n')}\n${diagnose()}`).toEqual([]);
      const rib3 = await routes(agents[2]!);
      // Node 2's block now reaches node 3 through the reflector: next hop unchanged (iBGP, RFC 4456 §10).
      expect(rib3.find((r) => r.prefix === blocks.get('node-2'))).toMatchObject({
        from: NODES[0]!.ip,
        nextHop: NODES[1]!.ip,
      });
    }, 120_000);

    it("releasing a node's block withdraws it from every agent and from the office router", async () => {
      const cidr = blocks.get('node-3');
      expect(cidr).toBeDefined();
      await new Ipam(ds).releaseBlock(cidr!);
      await waitFor(
        async () => {
          const ribs = await Promise.all(agents.map(routes));
          return ribs.every((rib) => !rib.some((r) => r.prefix === cidr));
        },
        { timeoutMs: 15_000, intervalMs: 100, what: `${cidr} withdrawn from every agent` },
      );
      if (bird) await waitForNoRoute(bird, cidr!, 15_000);
      const s3 = await status(agents[2]!);
      expect(s3.blocks).not.toContain(cidr);
      // The other blocks stay.
      const rib1 = await routes(agents[0]!);
      expect(rib1.some((r) => r.prefix === blocks.get('node-2'))).toBe(true);
    }, 60_000);

    it('SIGTERM stops an agent cleanly: exit 0, its peers see the session end at once (Cease, not a hold timer)', async () => {
      const node3 = agents[2]!;
      const exited = new Promise<number | null>((resolve) => node3.child.once('exit', (code) => resolve(code)));
      const started = Date.now();
      process.kill(node3.child.pid!, 'SIGTERM');
      expect(await exited).toBe(0);
      expect(Date.now() - started).toBeLessThan(5000);
      await waitFor(
        async () => {
          const peer = (await status(agents[0]!)).peers.find((p) => p.address === node3.ip);
          return peer !== undefined && peer.bgpState !== 'Established' ? peer : undefined;
        },
        { timeoutMs: 3000, intervalMs: 50, what: 'node 1 to see node 3 go down' },
      );
      expect(node3.log()).toMatch(/"msg":"stopped"/);
      const run = await tortie({ TORTIE_CTL_SOCKET: node3.socket }, ['node', 'status']);
      expect(run.status).toBe(1);
      expect(run.stderr).toContain(node3.socket);
    }, 30_000);
  },
);
