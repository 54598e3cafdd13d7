// BGPFilter against real peers: one `tortie node run` agent on a real etcd, two office routers as BGPPeers
// with `filters` — BIRD 2 (AS 65001) and FRR (AS 65002), both eBGP — announcing routes that the filters
// reject and accept by cidr and prefixLength. What the import rules reject is never best and `tortie node
// routes` says which rule refused it; what they accept is best, with the community an Accept added. The
// export rules: FRR's filter rejects the node's pool blocks (BIRD, without that filter, still gets them)
// and accepts two routes learned from BIRD that Calico's default export rules would never pass on to
// another peer (one with the community the import rule added, one re-marked with a large community and a
// prepended AS) — and BIRD, with no export rule, still gets only the blocks. (FRR is told to accept next hops in
// 127/8, which it refuses as martian otherwise: test/harness/README.md.) Every process is stopped by PID.

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
import { runTortie } from '../harness/cli.js';
import { freePort, requireEtcd, startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { startPeer, waitFor, waitForRoute, waitForSession, type PeerDaemon } from '../harness/index.js';
import { stopChild } from '../harness/process.js';
import { calicoResource } from '../harness/resources.js';

const HERE = fileURLToPath(import.meta.url);
const ROOT = HERE.slice(0, HERE.lastIndexOf('/test/')).replace(/\/dist$/, '');
const CLI = `${ROOT}/dist/src/cli/main.js`;
const block = addressBlock(import.meta.url);
const AGENT = { name: 'node-1', ip: block.host(11), as: 64512 };
const BIRD = { ip: block.host(2), as: 65001 };
const FRR = { ip: block.host(3), as: 65002 };
const haveEtcd = requireEtcd();
const havePeers = requirePeers('bird2', 'frr');

describe.skipIf(!haveEtcd || !havePeers)('BGPFilter with BIRD 2 and FRR as office routers', () => {
  let etcd: EtcdInstance;
  let ds: Datastore;
  let dir: string;
  let socket: string;
  let child: ChildProcess | undefined;
  let log = '';
  let bird: PeerDaemon | undefined;
  let frr: PeerDaemon | undefined;
  let ownBlock = '';

  async function routes(): Promise<RouteRow[]> {
    const answer = await queryControl(socket, { command: 'routes' }, 2000);
    if (!answer.ok || !('routes' in answer)) throw new Error(JSON.stringify(answer));
    return answer.routes;
  }

  async function status(): Promise<AgentStatus> {
    const answer = await queryControl(socket, { command: 'status' }, 2000);
    if (!answer.ok || !('status' in answer)) throw new Error(JSON.stringify(answer));
    return answer.status;
  }

  const withLog = (error: unknown): never => {
    throw new Error(`${(error as Error).message}\nagent log tail:\n${log.slice(-3000)}`);
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tortie-bgp-filter-'));
    socket = join(dir, 'node-1.ctl');
    etcd = await startEtcd();
    ds = await openEtcd({ endpoints: [etcd.endpoint], timeoutMs: 5000 });
    await ds.create(
      calicoResource('BGPConfiguration', 'default', {
        bindMode: 'NodeIP',
        nodeToNodeMeshEnabled: false,
        asNumber: AGENT.as,
      }),
    );
    await ds.create(
      calicoResource('IPPool', 'pods', {
        cidr: '10.244.0.0/16',
        blockSize: 26,
        ipipMode: 'Never',
        natOutgoing: false,
        nodeSelector: 'all()',
      }),
    );
    await ds.create(
      calicoResource('BGPFilter', 'office-in', {
        importV4: [
          // Longer than /24 inside 198.51.100.0/24: refused; the /24 itself: kept, marked 65000:7.
          { cidr: '198.51.100.0/24', matchOperator: 'In', prefixLength: { min: 25 }, action: 'Reject' },
          {
            cidr: '198.51.100.0/24',
            matchOperator: 'Equal',
            action: 'Accept',
            operations: [{ addCommunity: { value: '65000:7' } }],
          },
          { cidr: '192.0.2.0/24', matchOperator: 'In', action: 'Reject' },
        ],
      }),
    );
    await ds.create(
      calicoResource('BGPFilter', 'frr-out', {
        exportV4: [
          { cidr: '10.244.0.0/16', matchOperator: 'In', action: 'Reject' },
          { source: 'RemotePeers', communities: { values: ['65000:7'] }, action: 'Accept' },
          {
            cidr: '203.0.113.0/24',
            matchOperator: 'Equal',
            source: 'RemotePeers',
            action: 'Accept',
            operations: [{ addCommunity: { value: '65000:300:400' } }, { prependASPath: { prefix: [64999] } }],
          },
        ],
      }),
    );
    await ds.create(calicoResource('BGPPeer', 'bird', { peerIP: BIRD.ip, asNumber: BIRD.as, filters: ['office-in'] }));
    await ds.create(
      calicoResource('BGPPeer', 'frr', { peerIP: FRR.ip, asNumber: FRR.as, filters: ['office-in', 'frr-out'] }),
    );
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      NODENAME: AGENT.name,
      TORTIE_CNI_SOCKET: 'off', // not a CNI test: no agent binds the host's /var/run/tortie/cni.sock
      IP: `${AGENT.ip}/24`,
      DATASTORE_TYPE: 'etcdv3',
      ETCD_ENDPOINTS: etcd.endpoint,
      TORTIE_DATAPLANE: 'none',
      TORTIE_CTL_SOCKET: socket,
      TORTIE_HEALTH_PORT: String(await freePort()),
      TORTIE_LOG_LEVEL: 'info',
      NO_DEFAULT_POOLS: 'true',
    };
    child = spawn(process.execPath, [CLI, 'node', 'run'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (d: Buffer) => {
      log += d.toString();
      if (log.length > 400_000) log = log.slice(-200_000);
    });
    ownBlock = await waitFor(async () => (await status().catch(() => null))?.blocks[0], {
      timeoutMs: 30_000,
      intervalMs: 100,
      what: 'the agent claiming its block',
    }).catch(withLog);
    bird = await startPeer('bird2', {
      address: BIRD.ip,
      as: BIRD.as,
      neighbors: [{ address: AGENT.ip, as: AGENT.as }],
      announce: ['198.51.100.0/24', '198.51.100.128/25', '192.0.2.0/24', '203.0.113.0/24'].map((prefix) => ({
        prefix,
        nextHop: BIRD.ip,
      })),
    });
    frr = await startPeer('frr', {
      address: FRR.ip,
      as: FRR.as,
      neighbors: [{ address: AGENT.ip, as: AGENT.as }],
      announce: ['192.0.2.128/25', '100.64.0.0/24'].map((prefix) => ({ prefix, nextHop: FRR.ip })),
    });
    await frr.cli(`configure terminal\nrouter bgp ${FRR.as}\nbgp allow-martian-nexthop`);
  }, 90_000);

  afterAll(async () => {
    if (child) await stopChild(child);
    await bird?.stop().catch(() => undefined);
    await frr?.stop().catch(() => undefined);
    await ds?.close().catch(() => undefined);
    await etcd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('import: rejected routes are held as refused with the rule that refused them; accepted ones are best', async () => {
    for (const peer of [bird!, frr!]) await waitForSession(peer, AGENT.ip, 'Established', 30_000).catch(withLog);
    const expected: Array<{ prefix: string; from: string; refused: string | null }> = [
      { prefix: '198.51.100.0/24', from: BIRD.ip, refused: null },
      { prefix: '198.51.100.128/25', from: BIRD.ip, refused: 'filter office-in importV4[0]' },
      { prefix: '192.0.2.0/24', from: BIRD.ip, refused: 'filter office-in importV4[2]' },
      { prefix: '203.0.113.0/24', from: BIRD.ip, refused: null },
      { prefix: '192.0.2.128/25', from: FRR.ip, refused: 'filter office-in importV4[2]' },
      { prefix: '100.64.0.0/24', from: FRR.ip, refused: null },
    ];
    const rib = await waitFor(
      async () => {
        const rows = await routes();
        return expected.every((e) => rows.some((r) => r.prefix === e.prefix && r.from === e.from)) ? rows : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 100, what: 'every announced route in node routes' },
    ).catch(withLog);
    for (const { prefix, from, refused } of expected) {
      const row = rib.find((r) => r.prefix === prefix && r.from === from);
      if (refused === null) expect(row, `${prefix} from ${from}`).toMatchObject({ best: true });
      else expect(row, `${prefix} from ${from}`).toMatchObject({ best: false, refused });
      if (refused === null) expect(row?.refused).toBeUndefined();
    }
    const table = await runTortie({ TORTIE_CTL_SOCKET: socket }, ['node', 'routes'], { timeoutMs: 10_000 });
    expect(table.status, table.stderr).toBe(0);
    const line = table.stdout.split('\n').find((l) => l.includes(' 198.51.100.128/25 '));
    expect(line, table.stdout).toContain('refused: filter office-in importV4[0]');
  }, 60_000);

  it('export: FRR’s filter rejects the pool blocks and passes on what its Accept rules match; BIRD gets Calico’s default', async () => {
    // BIRD has no export rule: the node's block (Calico's default export), nothing learned from FRR.
    await waitForRoute(bird!, ownBlock, () => true, 20_000).catch(withLog);
    // FRR: the /24 that the import rule marked 65000:7 (matched by community), and 203.0.113.0/24 with our AS
    // prepended after 64999, which the rule prepended to BIRD's path.
    const marked = await waitForRoute(frr!, '198.51.100.0/24', () => true, 20_000).catch(withLog);
    expect(marked.communities).toContain('65000:7');
    expect(marked.asPath).toEqual([AGENT.as, BIRD.as]);
    const remarked = await waitForRoute(frr!, '203.0.113.0/24', () => true, 20_000).catch(withLog);
    expect(remarked.asPath).toEqual([AGENT.as, 64999, BIRD.as]);
    // Both routers have heard everything they will: what the filters keep away is not there.
    const frrRoutes = await frr!.routes();
    expect(
      frrRoutes.filter((r) => r.prefix.startsWith('10.244.')),
      'pool blocks at FRR',
    ).toEqual([]);
    const birdRoutes = await bird!.routes();
    expect(birdRoutes.map((r) => r.prefix).sort()).toEqual([ownBlock]);
    // The large community reached a daemon that shows it: BIRD re-learns nothing from us, so ask FRR's CLI.
    const detail = await frr!.cli('show bgp ipv4 unicast 203.0.113.0/24 json');
    expect(detail).toContain('65000:300:400');
  }, 60_000);
});
