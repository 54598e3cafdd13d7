// Calico's BGPConfiguration fields seen from the office router, end to end in a lab (namespaces, real etcd,
// agents, a BIRD 2 office router peering with every node): `communities` + `prefixAdvertisements` — the
// router's `show route all` shows the standard and the large community on every node's block, and they go
// when the configuration no longer names them; `serviceClusterIPs` + `serviceExternalIPs` — the router
// learns both ranges from every node, and they are withdrawn when removed. The configuration is changed on the lab's etcd while the lab
// runs, as a user would with `tortie apply`. The lab is taken down (and checked gone) even when a test fails.

import { existsSync, mkdtempSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openEtcd } from '../../src/datastore/etcd.js';
import { labDown, labUp, nodeStatus, type LabState } from '../../src/lab/lab.js';
import { LAB_DEFAULTS, type LabOptions } from '../../src/lab/plan.js';
import { parseBirdRoutes } from '../harness/bird.js';
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

const root = mkdtempSync(join(tmpdir(), 'tortie-lab-config-'));
chmodSync(root, 0o755);
const labs: string[] = [];
const io = { progress: () => undefined };

beforeAll(() => {
  process.env.TORTIE_LAB_ROOT = root;
});

afterEach(async () => {
  for (const name of labs.splice(0)) await labDown(name, io);
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

function labName(tag: string): string {
  return `${tag}${(process.pid % 46656).toString(36)}`.slice(0, 6);
}

async function up(options: Partial<LabOptions> & { name: string }): Promise<LabState> {
  labs.push(options.name);
  return labUp({ ...LAB_DEFAULTS, ...options }, io, [process.execPath, CLI]);
}

/** The office router's BGP paths (`birdc show route all`, parsed by the harness). */
async function routerPaths(state: LabState): Promise<PeerRoute[]> {
  const out = await runCommand(BIRD2.replace(/bird$/, 'birdc'), [
    '-s',
    join(state.dir, 'bird.ctl'),
    'show',
    'route',
    'all',
  ]);
  expect(out.code, out.stderr).toBe(0);
  return parseBirdRoutes(out.stdout);
}

/** Rewrites the lab's default BGPConfiguration with `change` applied to its spec. */
async function changeConfig(
  state: LabState,
  change: (spec: Record<string, unknown>) => Record<string, unknown>,
): Promise<void> {
  const ds = await openEtcd({ endpoints: [`http://127.0.0.1:${state.etcdPort}`], timeoutMs: 10_000 });
  try {
    const current = await ds.get('BGPConfiguration', 'default');
    if (current === null) throw new Error('the lab has no BGPConfiguration default');
    await ds.update({ ...current, spec: change({ ...(current.spec as Record<string, unknown>) }) });
  } finally {
    await ds.close();
  }
}

describe.skipIf(unavailable !== null)('lab: Calico BGPConfiguration fields at the office router', () => {
  it('communities and prefixAdvertisements: every block at the BIRD office router carries the standard and the large community; removed, they go', async () => {
    const state = await up({ name: labName('c'), nodes: 2, officeRouter: 'bird' });
    const blocks = (await Promise.all(state.plan.nodes.map((n) => nodeStatus(state, n.name)))).flatMap(
      (s) => s?.blocks ?? [],
    );
    expect(blocks).toHaveLength(2);
    await changeConfig(state, (spec) => ({
      ...spec,
      communities: [{ name: 'office', value: '65001:100' }],
      prefixAdvertisements: [{ cidr: '10.244.0.0/16', communities: ['office', '65001:200:300'] }],
    }));
    const marked = await waitFor(
      async () => {
        const paths = (await routerPaths(state)).filter((p) => blocks.includes(p.prefix));
        const done =
          paths.length >= blocks.length &&
          paths.every((p) => p.communities?.includes('65001:100') && p.largeCommunities?.includes('65001:200:300'));
        return done ? paths : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250, what: 'every block at the office router with 65001:100 and 65001:200:300' },
    );
    expect(new Set(marked.map((p) => p.prefix))).toEqual(new Set(blocks));
    await changeConfig(state, ({ communities: _c, prefixAdvertisements: _p, ...spec }) => spec);
    await waitFor(
      async () => {
        const paths = (await routerPaths(state)).filter((p) => blocks.includes(p.prefix));
        return paths.length >= blocks.length &&
          paths.every((p) => (p.communities ?? []).length === 0 && (p.largeCommunities ?? []).length === 0)
          ? true
          : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250, what: 'the communities gone from every block at the office router' },
    );
  }, 240_000);

  it('serviceClusterIPs and serviceExternalIPs: the BIRD office router learns both ranges from every node; removed, they are withdrawn', async () => {
    const state = await up({ name: labName('s'), nodes: 2, officeRouter: 'bird' });
    const ranges = ['10.96.0.0/12', '203.0.113.0/24'];
    const nodeIps = state.plan.nodes.map((n) => n.ip);
    await changeConfig(state, (spec) => ({
      ...spec,
      serviceClusterIPs: [{ cidr: ranges[0] }],
      serviceExternalIPs: [{ cidr: ranges[1] }],
    }));
    const paths = await waitFor(
      async () => {
        const found = (await routerPaths(state)).filter((p) => ranges.includes(p.prefix));
        // Each node's path has that node as next hop (the router's CLI does not name the peer of every path).
        const complete = ranges.every((range) =>
          nodeIps.every((ip) => found.some((p) => p.prefix === range && p.nextHop === ip)),
        );
        return complete ? found : undefined;
      },
      {
        timeoutMs: 30_000,
        intervalMs: 250,
        what: `${ranges.join(' and ')} at the office router from every node (${nodeIps.join(', ')})`,
      },
    ).catch(async (error: unknown) => {
      const status = await nodeStatus(state, state.plan.nodes[0]!.name);
      throw new Error(
        `${(error as Error).message}\nrouter: ${JSON.stringify(await routerPaths(state))}\nnode-1 warnings: ${JSON.stringify(status?.warnings)}`,
      );
    });
    for (const range of ranges)
      expect(new Set(paths.filter((p) => p.prefix === range).map((p) => p.nextHop)), range).toEqual(new Set(nodeIps));
    await changeConfig(state, ({ serviceClusterIPs: _c, serviceExternalIPs: _e, ...spec }) => spec);
    await waitFor(async () => ((await routerPaths(state)).some((p) => ranges.includes(p.prefix)) ? undefined : true), {
      timeoutMs: 30_000,
      intervalMs: 250,
      what: 'the service ranges withdrawn from the office router',
    });
  }, 240_000);
});
