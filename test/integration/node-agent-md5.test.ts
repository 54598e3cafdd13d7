// BGP passwords end to end in the node agent, etcd datastore (the mounted-Secret file form): two
// `tortie node run` agents on a real etcd, a node-to-node mesh without a password, and a BIRD 2 office
// router with `password` peered through a global BGPPeer whose password.secretKeyRef is office/pw —
// resolved by each agent from its own TORTIE_BGP_SECRETS_DIR/office/pw.
//   1. both agents reach Established with the office router (signed) and with each other;
//   2. changing the Secret (the files) re-keys only the office sessions: they go down (BIRD still has the
//      old password) and node status says "wrong password" from the kernel's counters; the mesh session
//      keeps its `since`;
//   3. BIRD given the new password: the office sessions come back.

import { calicoResource } from '../harness/resources.js';
import { stopChild } from '../harness/process.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nativeSocketOptions } from '../../bgp/socket-options.js';
import { queryControl } from '../../src/agent/control.js';
import type { AgentStatus } from '../../src/agent/types.js';
import { openEtcd } from '../../src/datastore/etcd.js';
import type { Datastore } from '../../src/datastore/types.js';
import { addressBlock } from '../harness/addresses.js';
import { requirePeers } from '../harness/binaries.js';
import { requireEtcd, startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { startPeer, waitFor, type PeerDaemon } from '../harness/index.js';

const HERE = fileURLToPath(import.meta.url);
const ROOT = HERE.slice(0, HERE.lastIndexOf('/test/')).replace(/\/dist$/, '');
const CLI = `${ROOT}/dist/src/cli/main.js`;
const block = addressBlock(import.meta.url);
const NODES = [1, 2].map((i) => ({ name: `node-${i}`, ip: block.host(10 + i) }));
const OFFICE = { address: block.host(50), as: 65001 };
const ready = requireEtcd() && requirePeers('bird2') && nativeSocketOptions().available;

interface AgentProcess {
  name: string;
  ip: string;
  socket: string;
  secrets: string;
  child: ChildProcess;
  log: () => string;
}

async function status(agent: AgentProcess): Promise<AgentStatus> {
  const answer = await queryControl(agent.socket, { command: 'status' }, 2000);
  if (!answer.ok || !('status' in answer)) throw new Error(`${agent.name}: ${JSON.stringify(answer)}`);
  return answer.status;
}

describe.skipIf(!ready)('tortie node run: BGPPeer password from a mounted Secret, BIRD 2 office router', () => {
  let etcd: EtcdInstance;
  let ds: Datastore;
  let dir: string;
  let bird: PeerDaemon | undefined;
  const agents: AgentProcess[] = [];

  const startBird = async (password: string) => {
    bird = await startPeer('bird2', {
      address: OFFICE.address,
      as: OFFICE.as,
      neighbors: NODES.map((n) => ({ address: n.ip, as: 64512, password })),
    });
  };
  const putSecret = (value: string) => {
    for (const a of agents) {
      mkdirSync(join(a.secrets, 'office'), { recursive: true });
      writeFileSync(join(a.secrets, 'office', 'pw'), value);
    }
  };
  const diagnose = () => agents.map((a) => `--- ${a.name} ---\n${a.log().slice(-3000)}`).join('\n');

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tortie-node-md5-'));
    etcd = await startEtcd();
    ds = await openEtcd({ endpoints: [etcd.endpoint], timeoutMs: 5000 });
    await ds.create(
      calicoResource('BGPConfiguration', 'default', {
        bindMode: 'NodeIP',
        nodeToNodeMeshEnabled: true,
        asNumber: 64512,
      }),
    );
    await ds.create(
      calicoResource('BGPPeer', 'office-router', {
        peerIP: OFFICE.address,
        asNumber: OFFICE.as,
        password: { secretKeyRef: { name: 'office', key: 'pw' } },
      }),
    );
    for (const node of NODES) {
      const secrets = join(dir, `${node.name}-secrets`);
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
        TORTIE_HEALTH_PORT: '0',
        TORTIE_LOG_LEVEL: 'info',
        TORTIE_BGP_SECRETS_DIR: secrets,
        CALICO_IPV4POOL_CIDR: '10.244.0.0/16',
        CALICO_IPV4POOL_IPIP: 'Never',
      };
      const child = spawn(process.execPath, [CLI, 'node', 'run'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      let log = '';
      child.stderr!.on('data', (d: Buffer) => {
        log += d.toString();
        if (log.length > 400_000) log = log.slice(-200_000);
      });
      agents.push({ ...node, socket, secrets, child, log: () => log });
    }
    putSecret('office-secret-1');
    await startBird('office-secret-1');
  }, 60_000);

  afterAll(async () => {
    await Promise.all(agents.map((a) => stopChild(a.child)));
    await bird?.stop().catch(() => undefined);
    await ds?.close().catch(() => undefined);
    await etcd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  const peerOf = (s: AgentStatus, address: string) => s.peers.find((p) => p.address === address);

  it("the office sessions come up signed with the Secret's password; the mesh without one", async () => {
    await waitFor(
      async () =>
        (await Promise.all(agents.map(status))).every(
          (s) => s.peers.length === 2 && s.peers.every((p) => p.bgpState === 'Established'),
        ),
      { timeoutMs: 40_000, intervalMs: 200, what: 'mesh and office sessions Established on both agents' },
    ).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}\n${diagnose()}`);
    });
    for (const a of agents) expect(a.log()).not.toContain('office-secret-1');
  }, 60_000);

  it('a changed Secret re-keys only the office sessions; node status names the wrong password; BIRD re-keyed brings them back', async () => {
    const meshSince = (await Promise.all(agents.map(status))).map((s, i) => peerOf(s, NODES[1 - i]!.ip)!.sinceIso);
    putSecret('office-secret-2');
    const down = await waitFor(
      async () => {
        const all = await Promise.all(agents.map(status));
        return all.every(
          (s) =>
            peerOf(s, OFFICE.address)?.bgpState !== 'Established' &&
            /wrong password/.test(peerOf(s, OFFICE.address)?.info ?? ''),
        )
          ? all
          : undefined;
      },
      {
        timeoutMs: 40_000,
        intervalMs: 200,
        what: 'the office sessions re-keyed (down, BIRD has the old password) and INFO saying "wrong password"',
      },
    ).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}\n${diagnose()}`);
    });
    down.forEach((s, i) => {
      const mesh = peerOf(s, NODES[1 - i]!.ip)!;
      expect(mesh.bgpState).toBe('Established');
      expect(mesh.sinceIso).toBe(meshSince[i]);
    });
    await bird!.stop();
    await startBird('office-secret-2');
    await waitFor(
      async () =>
        (await Promise.all(agents.map(status))).every((s) => peerOf(s, OFFICE.address)?.bgpState === 'Established'),
      { timeoutMs: 40_000, intervalMs: 200, what: 'the office sessions back with the new password' },
    );
    const after = await Promise.all(agents.map(status));
    after.forEach((s, i) => expect(peerOf(s, NODES[1 - i]!.ip)!.sinceIso).toBe(meshSince[i]));
    for (const a of agents) expect(a.log()).not.toMatch(/office-secret-[12]/);
  }, 120_000);
});
