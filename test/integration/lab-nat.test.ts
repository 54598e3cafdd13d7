// natOutgoing through the whole lab, as root: `tortie lab up` (real etcd, `tortie node run` per node
// namespace with TORTIE_DATAPLANE=kernel, workloads made by the CNI plugin), plus an "outside" namespace
// this test plugs into the lab's bridge at 198.19.1.254 — an address in no pool, like a host on the
// office LAN. The lab's pool starts with natOutgoing false; `tortie apply` switches it on in etcd and the
// agents program `table ip tortie-nat` by themselves.
//
//   natOutgoing false  pod → outside arrives with the pod's address (not masqueraded)
//   natOutgoing true   pod → outside arrives with its node's address, and the answer gets back;
//                      pod → pod on the other node keeps the pod's address; node status: nat in sync,
//                      ip_forward left at 1, no kernel-settings warnings
//   natOutgoing false  again: the agents remove the table.

import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labDown, labUp, nodeStatus, type LabState } from '../../src/lab/lab.js';
import { LAB_DEFAULTS } from '../../src/lab/plan.js';
import { createNetns, destroyAllNetns, netnsUnavailableReason, runCommand, type Netns } from '../harness/netns.js';
import { UdpListener, udpSend } from '../harness/udp-probe.js';
import { waitFor } from '../harness/wait.js';

const CLI = resolve('dist/src/cli/main.js');
const unavailable =
  netnsUnavailableReason() ??
  (existsSync(CLI) ? null : `${CLI} is not built (npm run build)`) ??
  (existsSync('/usr/bin/etcd') ? null : 'etcd-server is not installed');
if (unavailable && process.env.CI === 'true') throw new Error(`lab natOutgoing test cannot run: ${unavailable}`);

const OUTSIDE_IP = '198.19.1.254';
const PORT = 7071;
const root = mkdtempSync(join(tmpdir(), 'tortie-lab-nat-'));
const name = `nat${(process.pid % 1296).toString(36)}`.slice(0, 6);
const io = { progress: () => undefined };

/** Polls `check` every 100 ms for at most `ms` (the harness's waitFor), naming `what` on timeout. */
async function eventually(what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
  await waitFor(check, { what, timeoutMs: ms, intervalMs: 100 });
}

describe.skipIf(unavailable !== null)('natOutgoing in the lab', () => {
  let state: LabState;
  let outside: Netns;
  let listener: UdpListener;
  let up = false;

  const pool = (natOutgoing: boolean): string =>
    JSON.stringify({
      apiVersion: 'projectcalico.org/v3',
      kind: 'IPPool',
      metadata: { name: 'lab-pool' },
      spec: { cidr: LAB_DEFAULTS.poolCidr, blockSize: 26, ipipMode: 'Never', natOutgoing, nodeSelector: 'all()' },
    });

  async function applyPool(natOutgoing: boolean): Promise<void> {
    const file = join(root, `pool-${natOutgoing}.json`);
    writeFileSync(file, pool(natOutgoing));
    const env = ['DATASTORE_TYPE=etcdv3', `ETCD_ENDPOINTS=http://127.0.0.1:${state.etcdPort}`];
    const result = await runCommand('env', [...env, process.execPath, CLI, 'apply', '-f', file], undefined, 30_000);
    expect(result.code, result.stderr).toBe(0);
  }

  async function natTables(): Promise<boolean[]> {
    return Promise.all(
      state.plan.nodes.map(
        async (n) =>
          (await runCommand('ip', ['netns', 'exec', n.ns, 'nft', 'list', 'table', 'ip', 'tortie-nat'])).code === 0,
      ),
    );
  }

  const nodeIpOf = (workload: number): string =>
    state.plan.nodes.find((n) => n.name === state.plan.workloads[workload]!.node)!.ip;

  beforeAll(async () => {
    process.env.TORTIE_LAB_ROOT = root;
    up = true;
    state = await labUp({ ...LAB_DEFAULTS, name, nodes: 2, workloadsPerNode: 1 }, io, [process.execPath, CLI]);
    // The outside: a host on the lab's LAN, in no pool, with no route to the pods.
    outside = await createNetns('labout');
    const lan = state.plan.lans[0]!.ns;
    await runCommand('ip', [
      '-n',
      lan,
      'link',
      'add',
      'o-out',
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      outside.name,
    ]);
    await runCommand('ip', ['-n', lan, 'link', 'set', 'o-out', 'master', 'br0', 'up']);
    await outside.ip('addr', 'add', `${OUTSIDE_IP}/24`, 'dev', 'eth0');
    await outside.ip('link', 'set', 'eth0', 'up');
    listener = new UdpListener(outside.name, OUTSIDE_IP, PORT);
    await listener.ready;
  }, 180_000);

  afterAll(async () => {
    listener?.stop();
    if (up) await labDown(name, io);
    await destroyAllNetns();
    rmSync(root, { recursive: true, force: true });
  }, 60_000);

  it('natOutgoing false (the lab default): the pod address arrives, no table', async () => {
    expect(await natTables()).toEqual(state.plan.nodes.map(() => false));
    const pod = state.plan.workloads[0]!;
    const { tag, answer } = await udpSend(pod.ns, OUTSIDE_IP, PORT);
    expect(await listener.sourceOf(tag)).toBe(state.workloadIps[pod.pod]);
    expect(answer).toBeNull(); // the outside has no route back to a pod address
  });

  it('natOutgoing switched on through tortie apply: the node address arrives, pod to pod keeps the pod address', async () => {
    await applyPool(true);
    await eventually('the NAT table on every node', async () => (await natTables()).every(Boolean), 30_000);
    for (let i = 0; i < state.plan.workloads.length; i++) {
      const pod = state.plan.workloads[i]!;
      const { tag, answer } = await udpSend(pod.ns, OUTSIDE_IP, PORT);
      expect(await listener.sourceOf(tag)).toBe(nodeIpOf(i));
      expect(answer).toBe(nodeIpOf(i));
    }
    // Pod to the pod on the other node: not masqueraded.
    const [a, b] = state.plan.workloads;
    const podListener = new UdpListener(b!.ns, state.workloadIps[b!.pod]!, PORT);
    try {
      await podListener.ready;
      const { tag } = await udpSend(a!.ns, state.workloadIps[b!.pod]!, PORT);
      expect(await podListener.sourceOf(tag)).toBe(state.workloadIps[a!.pod]);
    } finally {
      podListener.stop();
    }
    for (const node of state.plan.nodes) {
      const status = await nodeStatus(state, node.name);
      expect(status?.dataplane).toMatchObject({
        mode: 'kernel',
        nat: { managed: true, inSync: true, natPools: [LAB_DEFAULTS.poolCidr] },
        kernelSettings: { warnings: [] },
      });
    }
  });

  it('natOutgoing switched off again: the agents remove the table and the pod address arrives', async () => {
    await applyPool(false);
    await eventually('the NAT table gone from every node', async () => (await natTables()).every((t) => !t), 30_000);
    const pod = state.plan.workloads[0]!;
    const { tag } = await udpSend(pod.ns, OUTSIDE_IP, PORT);
    expect(await listener.sourceOf(tag)).toBe(state.workloadIps[pod.pod]);
  });
});
