// The built `tortie ipam check` against a real etcd (test/harness/etcd.ts): a cluster whose addresses were
// assigned and released through Ipam reports nothing and exits 0; the same cluster after a leaked
// allocation and an orphan affinity are written directly into etcd (as a crashed CNI DEL and a node removed
// by hand would leave them) reports both, with what to do, and exits 1; -o writes the JSON report; a bad
// flag exits 2. On the kubernetes datastore (the fake API server) the workloads are the Pods, as the
// datastore derives WorkloadEndpoints from them: a running Pod holds its address, a deleted one leaks it.

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILT_CLI as CLI, runTortie } from '../harness/cli.js';
import { openEtcd } from '../../src/datastore/etcd.js';
import { openKubernetes } from '../../src/datastore/kubernetes.js';
import { checkIpam, readCheckSnapshot } from '../../src/ipam/check.js';
import type { Datastore } from '../../src/datastore/types.js';
import { allocate } from '../../src/ipam/block.js';
import { Ipam, ipipTunnelHandle } from '../../src/ipam/index.js';
import { API_VERSION } from '../../src/resources/types.js';
import { requireEtcd, startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { startFakeApiServer } from '../harness/fake-apiserver.js';

const haveEtcd = requireEtcd();

/** Runs the built CLI with only the variables given (plus PATH), bounded to 20 s. */
const tortie = (env: Record<string, string>, args: string[]) => runTortie(env, args);

describe.skipIf(!haveEtcd)('tortie ipam check on a real etcd', () => {
  let etcd: EtcdInstance;
  let ds: Datastore;
  let env: Record<string, string>;
  let dir: string;

  beforeAll(async () => {
    if (existsSync('/etc/tortie/tortie.cfg'))
      throw new Error('/etc/tortie/tortie.cfg exists on this machine; move it away to run this test');
    expect(existsSync(CLI), `${CLI} is missing; run npm run build first`).toBe(true);
    etcd = await startEtcd();
    env = { ETCD_ENDPOINTS: etcd.endpoint, DATASTORE_TYPE: 'etcdv3' };
    ds = await openEtcd({ endpoints: [etcd.endpoint], timeoutMs: 5000 });
    dir = mkdtempSync(join(tmpdir(), 'tortie-ipam-check-'));
  }, 30_000);

  afterAll(async () => {
    await ds?.close().catch(() => undefined);
    await etcd?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('a clean cluster (assign and release through Ipam) exits 0; a leaked allocation and an orphan affinity exit 1', async () => {
    await ds.create({
      apiVersion: API_VERSION,
      kind: 'IPPool',
      metadata: { name: 'pool-a' },
      spec: { cidr: '10.244.0.0/24', blockSize: 26, nodeSelector: 'all()' },
    });
    const ipam = new Ipam(ds);
    for (const name of ['node-1', 'node-2']) {
      const [tunnel] = await ipam.assign(name, ipipTunnelHandle(name), { use: 'Tunnel' });
      await ds.create({
        apiVersion: API_VERSION,
        kind: 'Node',
        metadata: { name },
        spec: { bgp: { ipv4Address: '198.18.0.1/24', ipv4IPIPTunnelAddr: tunnel! } },
      });
    }
    const [web] = await ipam.assign('node-1', 'k8s-pod-network.web', {
      attributes: { namespace: 'default', pod: 'web' },
    });
    await ds.create({
      apiVersion: API_VERSION,
      kind: 'WorkloadEndpoint',
      metadata: { name: 'node-1-k8s-web-eth0', namespace: 'default' },
      spec: { node: 'node-1', pod: 'web', interfaceName: 'cali0', ipNetworks: [`${web!}/32`] },
    });
    await ipam.assign('node-2', 'k8s-pod-network.gone', { attributes: { namespace: 'default', pod: 'gone' } });
    await ipam.releaseByHandle('k8s-pod-network.gone');

    const clean = await tortie(env, ['ipam', 'check']);
    expect(clean.stderr).toBe('');
    expect(clean.stdout).toContain('Found 2 IPAM blocks; they record 3 allocations.');
    expect(clean.stdout).toContain('Workloads and nodes are using 3 IPs.');
    expect(clean.stdout).toContain('Check complete; found 0 problems.');
    expect(clean.status).toBe(0);

    // Broken on purpose, written straight into etcd: an allocation with no endpoint (a CNI DEL that never
    // came) in node-2's block, and an affinity of a node that does not exist for a block that does not.
    const block = (await ds.get('IPAMBlock', '10-244-0-64-26'))!;
    const leaked = allocate(block.spec, 1, 'k8s-pod-network.lost', {
      node: 'node-2',
      namespace: 'default',
      pod: 'lost',
    });
    await ds.update({ ...block, spec: leaked.block });
    await ds.create({
      apiVersion: API_VERSION,
      kind: 'IPAMHandle',
      metadata: { name: 'k8s-pod-network.lost' },
      spec: { handleID: 'k8s-pod-network.lost', block: { '10.244.0.64/26': 1 } },
    });
    await ds.create({
      apiVersion: API_VERSION,
      kind: 'BlockAffinity',
      metadata: { name: 'node-9-10-244-0-192-26' },
      spec: { state: 'confirmed', node: 'node-9', cidr: '10.244.0.192/26' },
    });
    const lostIp = `10.244.0.${64 + leaked.ordinals[0]!}`;

    const report = join(dir, 'report.json');
    const broken = await tortie(env, ['ipam', 'check', '--show-problem-ips', '-o', report]);
    expect(broken.stderr).toBe('');
    expect(broken.status).toBe(1);
    expect(broken.stdout).toContain(
      'Found 1 IPs that are allocated in IPAM but not in use by a workload or node (leaked).',
    );
    expect(broken.stdout).toContain('Found 1 BlockAffinities without their block.');
    expect(broken.stdout).toContain('Check complete; found 2 problems.');
    const rows = broken.stdout
      .split('\n')
      .filter((l) => /^\| +\d+ \|/.test(l))
      .map((l) =>
        l
          .split('|')
          .map((c) => c.trim())
          .slice(1, -1),
      );
    expect(rows).toEqual([
      [
        '1',
        'leaked',
        'IPAMBlock 10.244.0.64/26',
        lostIp,
        'assigned on node node-2 for pod default/lost; no workload endpoint holds it',
      ],
      [
        '2',
        'affinity without block',
        'BlockAffinity node-9-10-244-0-192-26',
        '',
        '(confirmed) names node node-9 and block 10.244.0.192/26, which does not exist',
      ],
    ]);
    expect(broken.stdout).toContain(
      '\n  2: node node-9 no longer exists: `tortie delete node node-9` releases what it left\n',
    );
    const json = JSON.parse(readFileSync(report, 'utf8')) as {
      problems: number;
      findings: Array<{ kind: string; address?: string; object: string }>;
    };
    expect(json.problems).toBe(2);
    expect(json.findings.map((f) => [f.kind, f.address ?? f.object])).toEqual([
      ['leaked-address', lostIp],
      ['affinity-without-block', 'BlockAffinity node-9-10-244-0-192-26'],
    ]);

    // Repaired through the real paths: the handle released, the gone node's state removed.
    await ipam.releaseByHandle('k8s-pod-network.lost');
    const deleted = await tortie(env, ['delete', 'node', 'node-9']);
    expect(deleted.status, deleted.stderr).toBe(0);
    const again = await tortie(env, ['ipam', 'check']);
    expect(again.stdout).toContain('Check complete; found 0 problems.');
    expect(again.status).toBe(0);
  }, 60_000);

  it('a bad flag exits 2 and says what is accepted', async () => {
    const r = await tortie(env, ['ipam', 'check', '--show-blocks']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/ipam check: Unknown option '--show-blocks'/);
    expect(r.stderr).toContain('tortie ipam check [--show-all-ips] [--show-problem-ips] [-o FILE]');
  });
});

describe('ipam check on the kubernetes datastore (fake API server): Pods are the workloads', () => {
  it('a running Pod holds its address; once the Pod is gone its address is reported leaked', async () => {
    const api = await startFakeApiServer();
    const ds = await openKubernetes({ kubeconfig: api.kubeconfigPath, timeoutMs: 5000 });
    try {
      api.put({ core: 'nodes' }, { metadata: { name: 'node-1', labels: { 'kubernetes.io/hostname': 'node-1' } } });
      await ds.create({
        apiVersion: API_VERSION,
        kind: 'IPPool',
        metadata: { name: 'pool' },
        spec: { cidr: '10.244.0.0/24', blockSize: 26, nodeSelector: 'all()' },
      });
      const [ip] = await new Ipam(ds).assign('node-1', 'k8s-pod-network.c1', {
        attributes: { namespace: 'default', pod: 'web' },
      });
      api.put(
        { core: 'pods' },
        {
          metadata: { name: 'web', namespace: 'default' },
          spec: { nodeName: 'node-1' },
          status: { phase: 'Running', podIP: ip! },
        },
      );
      const clean = checkIpam(await readCheckSnapshot(ds));
      expect(clean.findings).toEqual([]);
      expect(clean.addresses.map((a) => [a.ip, a.owners])).toEqual([[ip, ['Workload(default/node--1-k8s-web-eth0)']]]);

      expect(api.remove({ core: 'pods' }, 'web', 'default')).toBe(true);
      const after = checkIpam(await readCheckSnapshot(ds));
      expect(after.findings.map((f) => [f.kind, f.address, f.detail])).toEqual([
        ['leaked-address', ip, 'assigned on node node-1 for pod default/web; no workload endpoint holds it'],
      ]);
    } finally {
      await ds.close().catch(() => undefined);
      await api.stop();
    }
  }, 30_000);
});
