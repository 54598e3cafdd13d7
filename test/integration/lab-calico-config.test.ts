// Calico's BGPConfiguration fields seen from the office router, end to end in a lab (namespaces, real etcd,
// agents, a BIRD 2 office router peering with every node): `communities` + `prefixAdvertisements` — the
// router's `show route all` shows the standard and the large community on every node's block, and they go
// when the configuration no longer names them. The configuration is changed on the lab's etcd while the lab
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
const unavailable = netnsUnavailableReason() ?? (existsSync(CLI) ? null : `${CLI} is not built (npm run build)`) ?? (existsSync('/usr/bin/etcd') ? null : 'etcd-server is not installed');
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
  const out = await runCommand(BIRD2.replace(/bird$/, 'birdc'), ['-s', join(state.dir, 'bird.ctl'), 'show', 'route', 'all']);
  expect(out.code, out.stderr).toBe(0);
  return parseBirdRoutes(out.stdout);
}

/** Rewrites the lab's default BGPConfiguration with `change` applied to its spec. */
async function changeConfig(state: LabState, change: (spec: Record<string, unknown>) => Record<string, unknown>): Promise<void> {
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
    const blocks = (await Promise.all(state.plan.nodes.map((n) => nodeStatus(state, n.name)))).flatMap((s) => s?.blocks ?? []);
    expect(blocks).toHaveLength(2);
    await changeConfig(state, (spec) => ({
      ...spec,
      communities: [{ name: 'office', value: '65001:100' }],
      prefixAdvertisements: [{ cidr: '10.244.0.0/16', communities: ['office', '65001:200:300'] }],
    }));
    const marked = await waitFor(
      async () => {
        const paths = (await routerPaths(state)).filter((p) => blocks.includes(p.prefix));
        const done = paths.length >= blocks.length && paths.every((p) => p.communities?.includes('65001:100') && p.largeCommunities?.includes('65001:200:300'));
        return done ? paths : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250, what: 'every block at the office router with 65001:100 and 65001:200:300' },
    );
    expect(new Set(marked.map((p) => p.prefix))).toEqual(new Set(blocks));
    await changeConfig(state, ({ communities: _c, prefixAdvertisements: _p, ...spec }) => spec);
    await waitFor(
      async () => {
        const paths = (await routerPaths(state)).filter((p) => blocks.includes(p.prefix));
        return paths.length >= blocks.length && paths.every((p) => (p.communities ?? []).length === 0 && (p.largeCommunities ?? []).length === 0) ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250, what: 'the communities gone from every block at the office router' },
    );
  }, 240_000);
});
