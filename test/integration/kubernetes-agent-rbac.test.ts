// The agent (`tortie node run`, the built CLI) on the kubernetes datastore as ServiceAccount tortie-node
// with only the roles manifests/tortie.yaml gives it, enforced by the fake API server
// (test/harness/fake-apiserver.ts: a token minted by TokenRequest, RBAC per ServiceAccount, 403 for the
// rest). It starts from an empty cluster as the first agent does: creates the default pool (IPIP Always,
// so it also takes a tunnel address), claims a block, patches its Node, reads a BGP password from a Secret
// in its namespace, and writes the CNI plugin's kubeconfig with a token of tortie-cni
// (TORTIE_CNI_KUBECONFIG). Every call it made was granted (none refused) and is one src/agent/api-calls.ts
// declares; the CNI kubeconfig's token can do what ClusterRole tortie-cni grants and not what it does not.
// Addresses: 127.0.43.0/24 (test/harness/addresses.ts).

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_API_CALLS } from '../../src/agent/api-calls.js';
import { queryControl } from '../../src/agent/control.js';
import type { AgentStatus } from '../../src/agent/types.js';
import { addressBlock } from '../harness/addresses.js';
import { grantsFromManifests, startFakeApiServer, type FakeApiServer } from '../harness/fake-apiserver.js';
import { loadKubeDocuments, MANIFEST_DIR } from '../harness/manifests.js';
import { stopChild, waitFor } from '../harness/process.js';

const CLI = resolve('dist/src/cli/main.js');
const NS = 'tortie-system';
const AGENT = `system:serviceaccount:${NS}:tortie-node`;
const CNI = `system:serviceaccount:${NS}:tortie-cni`;
const block = addressBlock(import.meta.url);
const NODE_IP = block.host(1);
const OFFICE_IP = block.host(9);
const unavailable = existsSync(CLI)
  ? process.getuid?.() === 0
    ? null
    : 'needs root (BGP port 179)'
  : `${CLI} is not built (npm run build)`;
if (unavailable && process.env.CI === 'true') throw new Error(`kubernetes agent RBAC test cannot run: ${unavailable}`);

describe.skipIf(unavailable !== null)('the agent as ServiceAccount tortie-node, with only its roles', () => {
  let api: FakeApiServer;
  let dir: string;
  let agent: ChildProcess;
  let log = '';
  const socket = (): string => join(dir, 'tortie.ctl');
  const cniKubeconfig = (): string => join(dir, 'tortie-kubeconfig');

  async function status(): Promise<AgentStatus | null> {
    try {
      const r = await queryControl(socket(), { command: 'status' }, 2000);
      return r.ok && 'status' in r ? r.status : null;
    } catch {
      return null;
    }
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tortie-kube-rbac-'));
    api = await startFakeApiServer();
    api.serviceAccount(NS, 'tortie-node');
    api.serviceAccount(NS, 'tortie-cni');
    api.setGrants(grantsFromManifests(loadKubeDocuments(join(MANIFEST_DIR, 'tortie.yaml'))));
    // What the cluster has before the first agent: its Node (the kubelet's), a Secret, a BGPPeer using it.
    api.put(
      { core: 'nodes' },
      { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a', labels: { 'kubernetes.io/hostname': 'node-a' } } },
    );
    api.put(
      { core: 'secrets' },
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'office', namespace: NS },
        data: { pw: Buffer.from('office-pw-1').toString('base64') },
      },
    );
    api.put(
      { crd: 'bgpconfigurations' },
      { metadata: { name: 'default' }, spec: { bindMode: 'NodeIP', asNumber: 64512 } },
    );
    api.put(
      { crd: 'bgppeers' },
      {
        metadata: { name: 'office' },
        spec: { peerIP: OFFICE_IP, asNumber: 65001, password: { secretKeyRef: { name: 'office', key: 'pw' } } },
      },
    );
    const kubeconfig = await api.kubeconfigWithToken(api.issueToken(NS, 'tortie-node', 24 * 3600).token);
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      DATASTORE_TYPE: 'kubernetes',
      KUBECONFIG: kubeconfig,
      NODENAME: 'node-a',
      TORTIE_CNI_SOCKET: 'off', // not a CNI test: no agent binds the host's /var/run/tortie/cni.sock
      IP: `${NODE_IP}/24`,
      POD_NAMESPACE: NS,
      TORTIE_DATAPLANE: 'none',
      TORTIE_CTL_SOCKET: socket(),
      TORTIE_HEALTH_PORT: '0',
      TORTIE_LOG_LEVEL: 'info',
      TORTIE_CNI_KUBECONFIG: cniKubeconfig(),
      CALICO_IPV4POOL_CIDR: '10.243.0.0/16',
      CALICO_IPV4POOL_IPIP: 'Always',
    };
    agent = spawn(process.execPath, [CLI, 'node', 'run'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    agent.stderr!.on('data', (d: Buffer) => {
      log += d.toString();
      if (log.length > 400_000) log = log.slice(-200_000);
    });
    await waitFor(
      async () => {
        const s = await status();
        return (
          s !== null &&
          s.blocks.length > 0 &&
          s.peers.some((p) => p.address === OFFICE_IP && !/not started/.test(p.info)) &&
          existsSync(cniKubeconfig())
        );
      },
      {
        timeoutMs: 40_000,
        intervalMs: 200,
        what: 'the agent up: a block, the office peer started (its password read), the CNI kubeconfig written',
      },
    ).catch((error: unknown) => {
      throw new Error(
        `${(error as Error).message}\n${log.slice(-4000)}\n${JSON.stringify(api.calls.filter((c) => (c.status ?? 0) >= 400))}`,
      );
    });
  }, 60_000);

  afterAll(async () => {
    if (agent) await stopChild(agent);
    await api?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('every call it made was granted, and is declared in src/agent/api-calls.ts', () => {
    const mine = api.calls.filter((c) => c.user === AGENT);
    expect(mine.length).toBeGreaterThan(10);
    expect(mine.filter((c) => c.status === 401 || c.status === 403)).toEqual([]);
    const declared = new Set(AGENT_API_CALLS.map((g) => `${g.verb} ${g.resource}`));
    const made = [...new Set(mine.map((c) => `${c.verb} ${c.resource}`))].sort();
    expect(made.filter((c) => !declared.has(c))).toEqual([]);
    // The first agent's writes, each through its role: the default pool, IPAM, its Node, the CNI token.
    for (const needed of [
      'create ippools.crd.projectcalico.org',
      'create blockaffinities.crd.projectcalico.org',
      'create ipamblocks.crd.projectcalico.org',
      'create ipamhandles.crd.projectcalico.org',
      'patch nodes',
      'get secrets',
      'create serviceaccounts/token',
    ]) {
      expect(made).toContain(needed);
    }
    expect(api.object({ crd: 'ippools' }, 'default-ipv4-ippool')).toBeDefined();
    expect(JSON.stringify(api.object({ core: 'nodes' }, 'node-a'))).toContain(NODE_IP);
  });

  it("the CNI kubeconfig (0600) holds a token of tortie-cni: what its ClusterRole grants works, the agent's rights do not", async () => {
    expect(statSync(cniKubeconfig()).mode & 0o777).toBe(0o600);
    const token = /token: "([^"]+)"/.exec(readFileSync(cniKubeconfig(), 'utf8'))![1]!;
    const get = (path: string) =>
      new Promise<number>((done, fail) => {
        request(`${api.url}${path}`, { headers: { authorization: `Bearer ${token}` } }, (res) => {
          res.resume();
          done(res.statusCode ?? 0);
        })
          .on('error', fail)
          .end();
      });
    expect(await get('/api/v1/nodes/node-a')).toBe(200);
    expect(await get('/apis/crd.projectcalico.org/v1/ippools')).toBe(200);
    expect(await get('/api/v1/nodes')).toBe(403);
    expect(await get(`/api/v1/namespaces/${NS}/secrets/office`)).toBe(403);
    expect(await get('/apis/crd.projectcalico.org/v1/bgppeers')).toBe(403);
    expect(api.calls.filter((c) => c.user === CNI).map((c) => c.status)).toEqual([200, 200, 403, 403, 403]);
  });

  it('the password never appears in its log or status', async () => {
    expect(log).not.toContain('office-pw-1');
    expect(JSON.stringify(await status())).not.toContain('office-pw-1');
  });
});
