// Import protection against real peers: one `tortie node run` agent on a real etcd; a BIRD 2 that is a
// mesh node of the cluster (a Node at its address, iBGP) announcing every hijack the agent must refuse —
// this node's own block, a block with a next hop that is not its owner's, longer prefixes inside a block,
// a block nobody owns, 0.0.0.0/0 and its two halves, link-local (169.254.169.254), a service IP — next to
// legitimate routes (another node's block with its owner's next hop, as a reflector passes it on; a
// borrowed /32 with its holder's next hop; an outside prefix). BIRD 2 will not originate loopback or
// multicast prefixes ("Ignoring bogus route"; ExaBGP sends 224/4 only as multicast SAFI), and here etcd
// and the node subnet are on loopback, so a GoBGP office router (eBGP, a BGPPeer) announces those:
// 127.1.0.0/16, 224.0.0.0/4, etcd's own /32, a more-specific of the node subnet — plus 0.0.0.0/0 and this
// node's block (refused from any peer) and a block of another node with the router's own next hop
// (accepted: external routers are exempt from the next-hop rule). None of the hijacks may be best in the
// Loc-RIB (what felix programs: TORTIE_DATAPLANE=none, so the desired routes are the Loc-RIB's best), each
// must be listed by `tortie node routes` with its reason, the metric must count them, and the legitimate
// ones must be best. Then the affinity of the unowned block is written: the route held as refused becomes
// best without being announced again.
// Every process is stopped by PID.

import { calicoResource } from '../harness/resources.js';
import { stopChild } from '../harness/process.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryControl } from '../../src/agent/control.js';
import { IMPORT_REFUSAL_REASONS, type ImportRefusal } from '../../src/agent/import-guard.js';
import type { AgentStatus, RouteRow } from '../../src/agent/types.js';
import { openEtcd } from '../../src/datastore/etcd.js';
import type { Datastore } from '../../src/datastore/types.js';
import { allocate, newBlock } from '../../src/ipam/block.js';
import { affinityName, blockName } from '../../src/resources/ipam-names.js';
import { addressBlock } from '../harness/addresses.js';
import { requirePeers } from '../harness/binaries.js';
import { runTortie } from '../harness/cli.js';
import { freePort, requireEtcd, startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { startPeer, waitFor, waitForSession, type PeerDaemon } from '../harness/index.js';

const HERE = fileURLToPath(import.meta.url);
const ROOT = HERE.slice(0, HERE.lastIndexOf('/test/')).replace(/\/dist$/, '');
const CLI = `${ROOT}/dist/src/cli/main.js`;
const block = addressBlock(import.meta.url);
const AGENT = { name: 'node-1', ip: block.host(11) };
/** BIRD is a node of the cluster: the agent meshes with it (iBGP, AS 64512). */
const BIRD = { name: 'bird-node', ip: block.host(2) };
/** Nodes without an agent: node-3 owns two blocks, node-4 borrowed an address from one of them. */
const NODE_3 = { name: 'node-3', ip: block.host(3) };
const NODE_4 = { name: 'node-4', ip: block.host(4) };
const haveEtcd = requireEtcd();
/** An office router (eBGP, BGPPeer peerIP): an external peer. */
const ROUTER = { ip: block.host(5), as: 65001, nextHop: '198.18.37.9' };
const haveBird = requirePeers('bird2', 'gobgp');

describe.skipIf(!haveEtcd || !haveBird)(
  'import protection: a BIRD 2 mesh peer and a GoBGP router announcing every hijack',
  () => {
    let etcd: EtcdInstance;
    let ds: Datastore;
    let dir: string;
    let socket: string;
    let healthPort: number;
    let child: ChildProcess | undefined;
    let log = '';
    let bird: PeerDaemon | undefined;
    let router: PeerDaemon | undefined;
    let ownBlock = '';
    /** What each peer announces and the verdict expected: a reason, or null (accepted, best). */
    const announced: Array<{ prefix: string; from: string; nextHop: string; expected: ImportRefusal | null }> = [];

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

    /** An IPAM block affine to `owner` (with its BlockAffinity, confirmed), `allocations` as [count, node]. */
    async function writeBlock(cidr: string, owner: string, allocations: Array<[number, string]> = []): Promise<void> {
      let spec = newBlock(cidr, owner);
      for (const [count, node] of allocations) spec = allocate(spec, count, `k8s-pod-network.${node}`, { node }).block;
      await ds.create(calicoResource('IPAMBlock', blockName(cidr), spec));
      await ds.create(
        calicoResource('BlockAffinity', affinityName(owner, cidr), { state: 'confirmed', node: owner, cidr }),
      );
    }

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'tortie-import-guard-'));
      socket = join(dir, 'node-1.ctl');
      etcd = await startEtcd();
      ds = await openEtcd({ endpoints: [etcd.endpoint], timeoutMs: 5000 });
      await ds.create(
        calicoResource('BGPConfiguration', 'default', {
          bindMode: 'NodeIP',
          nodeToNodeMeshEnabled: true,
          asNumber: 64512,
          serviceClusterIPs: [{ cidr: '10.96.0.0/12' }],
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
      for (const node of [BIRD, NODE_3, NODE_4])
        await ds.create(calicoResource('Node', node.name, { bgp: { ipv4Address: `${node.ip}/24` } }));
      await ds.create(calicoResource('BGPPeer', 'office-router', { peerIP: ROUTER.ip, asNumber: ROUTER.as }));
      // node-3's blocks; in the first, ordinals 0..4 are node-3's own pods and ordinal 5 is node-4's (borrowed).
      await writeBlock('10.244.3.0/26', NODE_3.name, [
        [5, NODE_3.name],
        [1, NODE_4.name],
      ]);
      await writeBlock('10.244.4.0/26', NODE_3.name);
      await writeBlock('10.244.6.0/26', NODE_3.name);
      healthPort = await freePort();
      const env = {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        NODENAME: AGENT.name,
        TORTIE_CNI_SOCKET: 'off', // not a CNI test: no agent binds the host's /var/run/tortie/cni.sock
        IP: `${AGENT.ip}/24`,
        DATASTORE_TYPE: 'etcdv3',
        ETCD_ENDPOINTS: etcd.endpoint,
        TORTIE_DATAPLANE: 'none',
        TORTIE_CTL_SOCKET: socket,
        TORTIE_HEALTH_PORT: String(healthPort),
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
      });

      const fromBird = (prefix: string, expected: ImportRefusal | null, nextHop = BIRD.ip) =>
        announced.push({ prefix, from: BIRD.ip, nextHop, expected });
      fromBird(ownBlock, 'own-block');
      fromBird('10.244.4.0/26', 'next-hop-not-owner'); // node-3's block, BIRD's next hop
      fromBird('10.244.3.7/32', 'longer-than-block', NODE_3.ip); // node-3's own pod: its block covers it
      fromBird('10.244.3.16/28', 'longer-than-block', NODE_3.ip);
      fromBird('10.244.5.0/26', 'unowned-block', NODE_3.ip); // no IPAM record (yet: see the last test)
      fromBird('0.0.0.0/0', 'default-route');
      fromBird('0.0.0.0/1', 'default-route');
      fromBird('128.0.0.0/1', 'default-route');
      fromBird('169.254.169.254/32', 'link-local');
      fromBird('10.96.0.10/32', 'service-range');
      fromBird('10.244.3.0/26', null, NODE_3.ip); // node-3's block with its own next hop (as a reflector passes it on)
      fromBird('10.244.3.5/32', null, NODE_4.ip); // node-4's borrowed address, node-4's next hop
      fromBird('203.0.113.0/24', null, '198.18.37.9');
      const fromRouter = (prefix: string, expected: ImportRefusal | null) =>
        announced.push({ prefix, from: ROUTER.ip, nextHop: ROUTER.nextHop, expected });
      fromRouter('127.1.0.0/16', 'loopback');
      fromRouter('224.0.0.0/4', 'multicast');
      fromRouter(`${new URL(etcd.endpoint).hostname}/32`, 'control-plane');
      fromRouter(`${block.host(128)}/25`, 'node-subnet');
      fromRouter('0.0.0.0/0', 'default-route');
      fromRouter(ownBlock, 'own-block');
      fromRouter('10.244.6.0/26', null); // node-3's block from a top-of-rack router, its own next hop: exempt
      const routesOf = (from: string) =>
        announced.filter((a) => a.from === from).map(({ prefix, nextHop }) => ({ prefix, nextHop }));
      bird = await startPeer('bird2', {
        address: BIRD.ip,
        as: 64512,
        neighbors: [{ address: AGENT.ip, as: 64512 }],
        announce: routesOf(BIRD.ip),
      });
      router = await startPeer('gobgp', {
        address: ROUTER.ip,
        as: ROUTER.as,
        neighbors: [{ address: AGENT.ip, as: 64512, passive: true }],
        announce: routesOf(ROUTER.ip),
      });
    }, 90_000);

    afterAll(async () => {
      if (child) await stopChild(child);
      await bird?.stop().catch(() => undefined);
      await router?.stop().catch(() => undefined);
      await ds?.close().catch(() => undefined);
      await etcd?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    }, 60_000);

    it('refuses every hijack (never best, listed with its reason, counted) and accepts the legitimate routes', async () => {
      const hijacks = announced.filter((a) => a.expected !== null);
      const legitimate = announced.filter((a) => a.expected === null);
      expect(new Set(hijacks.map((h) => h.expected)).size).toBe(IMPORT_REFUSAL_REASONS.length); // every reason at least once
      expect(legitimate).toHaveLength(4);
      for (const [peer, address] of [
        [bird!, AGENT.ip],
        [router!, AGENT.ip],
      ] as const) {
        await waitForSession(peer, address, 'Established', 30_000).catch((error: unknown) => {
          throw new Error(`${(error as Error).message}\n${log.slice(-3000)}`);
        });
      }
      // Everything the peers sent has arrived once each route is listed from its peer.
      let missing: string[] = [];
      const rib = await waitFor(
        async () => {
          const rows = await routes();
          missing = announced
            .filter((a) => !rows.some((r) => r.prefix === a.prefix && r.from === a.from))
            .map((a) => `${a.prefix} from ${a.from}`);
          return missing.length === 0 ? rows : undefined;
        },
        { timeoutMs: 20_000, intervalMs: 100, what: 'every announced route in node routes' },
      ).catch((error: unknown) => {
        throw new Error(`${(error as Error).message}; missing ${missing.join(', ')}\n${log.slice(-3000)}`);
      });
      for (const { prefix, from, expected } of hijacks) {
        const best = rib.filter((r) => r.prefix === prefix && r.best);
        expect(best, `${prefix} must not be best from a peer`).toEqual(
          prefix === ownBlock ? [expect.objectContaining({ from: 'local' })] : [],
        );
        expect(
          rib.filter((r) => r.prefix === prefix && r.from === from),
          `${prefix} from ${from}`,
        ).toEqual([expect.objectContaining({ best: false, inKernel: false, refused: expected })]);
      }
      for (const { prefix, from, nextHop } of legitimate) {
        expect(
          rib.filter((r) => r.prefix === prefix),
          prefix,
        ).toEqual([expect.objectContaining({ best: true, from, nextHop })]);
        expect(rib.find((r) => r.prefix === prefix)?.refused).toBeUndefined();
      }

      // The table says it too, one line per refused route.
      const table = await runTortie({ TORTIE_CTL_SOCKET: socket }, ['node', 'routes'], { timeoutMs: 10_000 });
      expect(table.status, table.stderr).toBe(0);
      for (const { prefix, from, expected } of hijacks) {
        const line = table.stdout.split('\n').find((l) => l.includes(` ${prefix} `) && l.includes(from));
        expect(line, `${prefix} from ${from} in\n${table.stdout}`).toContain(`refused: ${expected}`);
      }
      // And the metric counts each refusal by peer and reason.
      const metrics = await (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text();
      const counted = new Map<string, number>();
      for (const { from, expected } of hijacks)
        counted.set(`${from}|${expected}`, (counted.get(`${from}|${expected}`) ?? 0) + 1);
      expect(counted.size).toBeGreaterThan(0);
      for (const [key, count] of counted) {
        const [peer, reason] = key.split('|');
        expect(metrics).toContain(`tortie_bgp_import_refused_total{peer="${peer}",reason="${reason}"} ${count}`);
      }
      const peers = (await status()).peers;
      for (const from of [BIRD.ip, ROUTER.ip]) {
        const sent = announced.filter((a) => a.from === from);
        expect(
          peers.find((p) => p.address === from),
          from,
        ).toMatchObject({
          routesReceived: sent.length,
          routesAccepted: sent.filter((a) => a.expected === null).length,
        });
      }
    }, 60_000);

    it('a block refused for having no owner becomes best once its affinity is written, without being announced again', async () => {
      expect((await routes()).find((r) => r.prefix === '10.244.5.0/26')?.refused).toBe('unowned-block');
      await writeBlock('10.244.5.0/26', NODE_3.name);
      const row = await waitFor(async () => (await routes()).find((r) => r.prefix === '10.244.5.0/26' && r.best), {
        timeoutMs: 10_000,
        intervalMs: 50,
        what: '10.244.5.0/26 best after its affinity',
      });
      expect(row).toMatchObject({ from: BIRD.ip, nextHop: NODE_3.ip });
      expect(row.refused).toBeUndefined();
      // The other refusals stand.
      const rows = await routes();
      for (const { prefix, from } of announced.filter((a) => a.expected !== null && a.prefix !== '10.244.5.0/26')) {
        expect(
          rows.find((r) => r.prefix === prefix && r.from === from)?.refused,
          `${prefix} from ${from}`,
        ).toBeDefined();
      }
    }, 30_000);
  },
);
