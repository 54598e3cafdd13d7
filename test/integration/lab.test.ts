// End to end, as root, in network namespaces the lab makes: real etcd, `tortie node run` in every node
// namespace programming the kernel (TORTIE_DATAPLANE=kernel), workloads made by the CNI plugin, real
// ICMP between workload namespaces.
//   - 4-node mesh, ipipMode Never: routes learned over BGP and programmed by felix, full ping matrix;
//     kill -9 one agent while workloads ping each other and start it again: no echo lost, and `ip monitor
//     route` in every node sees no wanted route deleted; `tortie node stop --graceful` (the preStop hook):
//     peers keep the node's routes as stale, in their kernels, until its new agent is back.
//   - 4-node reflector lab: full ping matrix.
//   - 2 subnets joined by an office router, BIRD 2 and FRR (AS 65001, every node's only peer): full ping
//     matrix, and the router's CLI shows every block, each path with its own node as next hop.
// Each lab has its own name and state root, and is taken down (and checked gone) even when a test fails.

import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { queryControl } from '../../src/agent/control.js';
import type { RouteRow } from '../../src/agent/types.js';
import {
  killAgent,
  labDown,
  labPing,
  labStatus,
  labUp,
  nodeStatus,
  officeRouterRoutes,
  readState,
  startAgent,
  type LabState,
} from '../../src/lab/lab.js';
import { LAB_DEFAULTS, type LabOptions } from '../../src/lab/plan.js';
import { parseBirdRoutes } from '../harness/bird.js';
import { parseFrrPrefixDetail } from '../harness/frr.js';
import { netnsUnavailableReason, runCommand } from '../harness/netns.js';
import type { PeerRoute } from '../harness/peer.js';
import { waitFor } from '../harness/wait.js';

const CLI = resolve('dist/src/cli/main.js');
const BIRD2 = `${process.env.TORTIE_BIRD2_ROOT ?? '/opt/tortie/bird2'}/usr/sbin/bird`;
const unavailable =
  netnsUnavailableReason() ??
  (existsSync(CLI) ? null : `${CLI} is not built (npm run build)`) ??
  (existsSync('/usr/bin/etcd') ? null : 'etcd-server is not installed');
if (unavailable && process.env.CI === 'true') throw new Error(`lab tests cannot run: ${unavailable}`);

const root = mkdtempSync(join(tmpdir(), 'tortie-lab-test-'));
chmodSync(root, 0o755); // FRR's zebra runs as its own user and must reach its directory in the lab's
const labs: string[] = [];
const io = { progress: () => undefined };
const children: ChildProcess[] = [];

beforeAll(() => {
  process.env.TORTIE_LAB_ROOT = root;
});

afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  for (const name of labs.splice(0)) await labDown(name, io);
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

/** A short lab name unique to this run (namespace names are built from it). */
function labName(tag: string): string {
  return `${tag}${(process.pid % 46656).toString(36)}`.slice(0, 6);
}

async function up(options: Partial<LabOptions> & { name: string }): Promise<LabState> {
  labs.push(options.name);
  return labUp({ ...LAB_DEFAULTS, ...options }, io, [process.execPath, CLI]);
}

async function expectFullMatrix(state: LabState): Promise<void> {
  const matrix = await labPing(state);
  expect(matrix.pods.length).toBe(state.plan.workloads.length);
  expect(matrix.failures).toEqual([]);
}

async function namespacesLeft(prefix: string): Promise<string[]> {
  const list = await runCommand('ip', ['netns', 'list']);
  return list.stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(`${prefix}-`));
}

/** PIDs whose command line or environment names `dir` (the lab's processes: agents carry it in TORTIE_CTL_SOCKET). */
function processesNaming(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    for (const file of ['cmdline', 'environ']) {
      try {
        if (readFileSync(`/proc/${entry}/${file}`, 'utf8').includes(dir)) {
          pids.push(Number(entry));
          break;
        }
      } catch {
        break; // gone meanwhile
      }
    }
  }
  return pids;
}

/** Lines `ip monitor route` prints in a namespace until stopped. */
function monitorRoutes(ns: string): { lines: string[]; child: ChildProcess } {
  const child = spawn('ip', ['-n', ns, 'monitor', 'route'], { stdio: ['ignore', 'pipe', 'ignore'] });
  children.push(child);
  const lines: string[] = [];
  let rest = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    const text = rest + chunk.toString('utf8');
    const parts = text.split('\n');
    rest = parts.pop() ?? '';
    lines.push(...parts);
  });
  return { lines, child };
}

/** A continuous ping (every 50 ms, `count` echoes); resolves to [transmitted, received]. */
function pingFor(ns: string, ip: string, count: number): Promise<[number, number]> {
  return new Promise((resolvePing) => {
    const child = spawn(
      'ip',
      ['netns', 'exec', ns, 'ping', '-n', '-q', '-i', '0.05', '-W', '1', '-c', String(count), ip],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    children.push(child);
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.once('exit', () => {
      const match = /(\d+) packets transmitted, (\d+) received/.exec(out);
      resolvePing(match ? [Number(match[1]), Number(match[2])] : [count, 0]);
    });
  });
}

/** The office router's BGP paths for `prefixes`, from its own CLI (`birdc show route all` / vtysh JSON). */
async function officeRouterPaths(state: LabState, prefixes: readonly string[]): Promise<PeerRoute[]> {
  if (state.plan.router?.kind === 'bird') {
    const out = await runCommand(BIRD2.replace(/bird$/, 'birdc'), [
      '-s',
      join(state.dir, 'bird.ctl'),
      'show',
      'route',
      'all',
    ]);
    expect(out.code, out.stderr).toBe(0);
    return parseBirdRoutes(out.stdout).filter((r) => prefixes.includes(r.prefix));
  }
  const paths: PeerRoute[] = [];
  for (const prefix of prefixes) {
    const out = await runCommand('vtysh', [
      '--vty_socket',
      join(state.dir, 'frr'),
      '-c',
      `show bgp ipv4 unicast ${prefix} json`,
    ]);
    expect(out.code, out.stderr).toBe(0);
    paths.push(...parseFrrPrefixDetail(out.stdout));
  }
  return paths;
}

async function converged(state: LabState, name: string): Promise<boolean> {
  const status = await nodeStatus(state, name);
  return status !== null && status.peers.length > 0 && status.peers.every((p) => p.bgpState === 'Established');
}

/** The office router holds every node's block, and every path to a block has that block's node as next hop.
 *  Returns how many of those paths were passed on by another node (third-party next hops). */
async function expectRouterPathsViaOwners(state: LabState): Promise<number> {
  const routes = officeRouterRoutes(state);
  const statuses = await Promise.all(state.plan.nodes.map((n) => nodeStatus(state, n.name)));
  const blocks = statuses.flatMap((s) => s?.blocks ?? []);
  expect(blocks).toHaveLength(state.plan.nodes.length);
  for (const block of blocks) expect(routes).toContain(block);
  const owner = new Map(state.plan.nodes.flatMap((n, i) => (statuses[i]?.blocks ?? []).map((b) => [b, n.ip] as const)));
  const paths = await officeRouterPaths(state, blocks);
  expect(new Set(paths.map((p) => p.prefix))).toEqual(new Set(blocks));
  expect(
    paths
      .filter((p) => p.nextHop !== owner.get(p.prefix))
      .map((p) => ({ prefix: p.prefix, nextHop: p.nextHop, from: p.fromPeer, owner: owner.get(p.prefix) })),
  ).toEqual([]);
  return paths.filter((p) => p.fromPeer !== owner.get(p.prefix)).length;
}

describe.skipIf(unavailable !== null)(
  'tortie lab (namespaces, real etcd, agents programming the kernel, CNI workloads)',
  () => {
    it('4-node mesh, ipipMode Never: routes over BGP in every kernel, every workload pings every other; a kill -9 and restart loses nothing', async () => {
      const name = labName('m');
      const state = await up({ name, nodes: 4, mode: 'mesh' });
      // Routes learned over BGP (from the peer that owns the block) and programmed by felix.
      const response = await queryControl(join(state.dir, 'node-1', 'tortie.ctl'), { command: 'routes' });
      const routes = (response as { routes: RouteRow[] }).routes;
      const statuses = await Promise.all(state.plan.nodes.map((n) => nodeStatus(state, n.name)));
      for (const [i, node] of state.plan.nodes.entries()) {
        if (node.name === 'node-1') continue;
        for (const block of statuses[i]!.blocks) {
          expect(
            routes.find((r) => r.prefix === block),
            block,
          ).toMatchObject({ from: node.ip, nextHop: node.ip, inKernel: true });
        }
      }
      const kernel = await runCommand('ip', ['-n', state.plan.nodes[0]!.ns, 'route', 'show', 'proto', '80']);
      expect(kernel.stdout).toMatch(/via 198\.19\.1\.12 dev eth0 .*onlink/);
      await expectFullMatrix(state);

      // Restart without loss: workloads keep pinging while node-3's agent is killed and started again.
      const monitors = state.plan.nodes.map((n) => ({ node: n.name, ...monitorRoutes(n.ns) }));
      const ip = (pod: string) => state.workloadIps[pod]!;
      const otherPair = pingFor(state.plan.workloads[0]!.ns, ip('pod-2a'), 100);
      const toRestarted = pingFor(state.plan.workloads[0]!.ns, ip('pod-3a'), 100);
      await new Promise((r) => setTimeout(r, 1000));
      await killAgent(state, 'node-3');
      await new Promise((r) => setTimeout(r, 300));
      startAgent(state, 'node-3');
      await waitFor(() => converged(state, 'node-3'), {
        what: 'node-3 converged after its restart',
        timeoutMs: 30_000,
        intervalMs: 100,
      });
      expect(await converged(state, 'node-3')).toBe(true);
      const [sentOther, gotOther] = await otherPair;
      const [sentRestarted, gotRestarted] = await toRestarted;
      expect(sentOther).toBe(100);
      expect(gotOther).toBe(sentOther);
      expect(gotRestarted).toBe(sentRestarted);
      for (const m of monitors) {
        const deleted = m.lines.filter(
          (l) => l.startsWith('Deleted') && (l.includes('proto 80') || l.includes('cali')),
        );
        expect(deleted, `${m.node}: ip monitor saw owned routes deleted`).toEqual([]);
      }
      await expectFullMatrix(state);
      expect(await labStatus(state)).toMatch(/node-3[\s\S]*Established/);

      // `tortie node stop --graceful` (the DaemonSet's preStop): peers keep node-2's block (stale, still in
      // their kernels) and its pods stay reachable; a new agent takes over and the routes are fresh again.
      const node2Block = (await nodeStatus(state, 'node-2'))!.blocks[0]!;
      const stop = await runCommand(
        'env',
        [
          `TORTIE_CTL_SOCKET=${join(state.dir, 'node-2', 'tortie.ctl')}`,
          process.execPath,
          CLI,
          'node',
          'stop',
          '--graceful',
        ],
        undefined,
        30_000,
      );
      expect(stop.code, stop.stderr).toBe(0);
      expect(stop.stdout).toMatch(/has stopped gracefully/);
      const node1Routes = async (): Promise<RouteRow[]> =>
        ((await queryControl(join(state.dir, 'node-1', 'tortie.ctl'), { command: 'routes' })) as { routes: RouteRow[] })
          .routes;
      const held = await waitFor(
        async () => (await node1Routes()).find((r) => r.prefix === node2Block && r.stale === true),
        {
          what: `node-1 holding ${node2Block} stale`,
          timeoutMs: 5_000,
          intervalMs: 50,
        },
      );
      expect(held).toMatchObject({ prefix: node2Block, stale: true, inKernel: true });
      expect((await labPing(state)).failures).toEqual([]);
      startAgent(state, 'node-2');
      await waitFor(async () => (await node1Routes()).find((r) => r.prefix === node2Block)?.stale === false, {
        what: `${node2Block} fresh at node-1 again`,
        timeoutMs: 30_000,
        intervalMs: 100,
      });
      expect((await node1Routes()).find((r) => r.prefix === node2Block)).toMatchObject({
        stale: false,
        inKernel: true,
      });

      await labDown(name, io);
      labs.splice(labs.indexOf(name), 1);
      expect(await namespacesLeft(name)).toEqual([]);
      expect(readState(join(root, name))).toBeNull();
      expect(processesNaming(state.dir)).toEqual([]);
      await labDown(name, io); // twice is fine
    }, 180_000);

    it('a failed lab up (the agents cannot start) says why at once, and lab down leaves nothing behind', async () => {
      const name = labName('x');
      labs.push(name);
      const broken = join(root, 'no-such-tortie.js');
      const failed = labUp({ ...LAB_DEFAULTS, name, nodes: 2 }, io, [process.execPath, broken]);
      await expect(failed).rejects.toThrow(/the agent of node-1 exited: .*no-such-tortie\.js/);
      const state = readState(join(root, name));
      expect(state?.processes.map((p) => p.role)).toContain('etcd');
      expect(await namespacesLeft(name)).not.toEqual([]);
      await labDown(name, io);
      labs.splice(labs.indexOf(name), 1);
      expect(await namespacesLeft(name)).toEqual([]);
      expect(processesNaming(state!.dir)).toEqual([]);
      expect(existsSync(join(root, name))).toBe(false);
      const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
      expect(mounts).not.toContain(`/netns/${name}-`);
    }, 60_000);

    it('4-node route reflector lab with a BIRD office router on the same subnet: every workload pings every other; the router reaches each block via its own node (third-party next hop)', async () => {
      const state = await up({ name: labName('r'), nodes: 4, mode: 'rr', officeRouter: 'bird' });
      const client = await nodeStatus(state, 'node-4');
      expect(
        client?.peers
          .filter((p) => p.type !== 'global')
          .map((p) => p.address)
          .sort(),
      ).toEqual(['198.19.1.11', '198.19.1.12']);
      await expectFullMatrix(state);
      // Every node peers with the router and also passes on the blocks it learned from the reflectors: those
      // paths must name the block's own node (RFC 4271 §5.1.3 (2)), not the node passing them on.
      expect(await expectRouterPathsViaOwners(state)).toBeGreaterThan(0);
    }, 180_000);

    it.each([
      ['bird', existsSync(BIRD2)],
      ['frr', existsSync('/usr/lib/frr/zebra')],
    ] as const)(
      'two subnets joined by a %s office router: every workload pings every other, the router shows every block',
      async (router, present) => {
        if (!present) return;
        const state = await up({
          name: labName(router === 'bird' ? 's' : 'f'),
          nodes: 4,
          subnets: 2,
          officeRouter: router,
        });
        await expectFullMatrix(state);
        // In the router's own table each node's block goes to that node, on every path (here each node peers
        // with the router only; the reflector lab above has nodes passing on each other's blocks).
        await expectRouterPathsViaOwners(state);
        // Across subnets the next hop is the router; within a subnet, the other node itself.
        const node1 = await runCommand('ip', ['-n', state.plan.nodes[0]!.ns, 'route', 'show', 'proto', '80']);
        expect(node1.stdout).toMatch(/via 198\.19\.1\.1 dev eth0/);
        expect(node1.stdout).toMatch(/via 198\.19\.1\.12 dev eth0/);
      },
      180_000,
    );
  },
);
