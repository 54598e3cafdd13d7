// Calico block IPAM (src/ipam) over the kubernetes datastore: nodes racing through separate clients against
// one (fake) API server, where every compare-and-swap is a PUT with metadata.resourceVersion and a lost race
// is the server's 409. Also checks that the IPAM objects land under Calico's CRD names.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openKubernetes } from '../../src/datastore/kubernetes.js';
import type { Datastore } from '../../src/datastore/types.js';
import { Ipam } from '../../src/ipam/index.js';
import { API_VERSION } from '../../src/resources/types.js';
import { startFakeApiServer, type FakeApiServer } from '../harness/fake-apiserver.js';

const NODES = 8;
const nodeName = (i: number): string => `node-${i}`;

describe('IPAM over the kubernetes datastore', () => {
  let api: FakeApiServer;
  const clients: Datastore[] = [];

  beforeAll(async () => {
    api = await startFakeApiServer();
    for (let i = 0; i < NODES; i++) {
      api.put(
        { core: 'nodes' },
        { metadata: { name: nodeName(i), labels: { 'kubernetes.io/hostname': nodeName(i) } } },
      );
      clients.push(await openKubernetes({ kubeconfig: api.kubeconfigPath, timeoutMs: 5000 }));
    }
    await clients[0]!.create({
      apiVersion: API_VERSION,
      kind: 'IPPool',
      metadata: { name: 'pool' },
      spec: { cidr: '10.244.0.0/16', blockSize: 26, nodeSelector: 'all()' },
    });
  });
  afterAll(async () => {
    for (const ds of clients) await ds.close();
    await api?.stop();
  });

  it(`${NODES} nodes claiming at once get distinct blocks, stored as Calico CRD objects`, async () => {
    expect(clients).toHaveLength(NODES);
    const claimed = await Promise.all(clients.map((ds, i) => new Ipam(ds).claimBlock(nodeName(i))));
    expect(new Set(claimed).size).toBe(NODES);
    for (const [i, cidr] of claimed.entries()) {
      const name = cidr.replace(/[./]/g, '-');
      expect(api.object({ crd: 'ipamblocks' }, name)?.spec).toMatchObject({ cidr, affinity: `host:${nodeName(i)}` });
      expect(api.object({ crd: 'blockaffinities' }, `${nodeName(i)}-${name}`)?.spec).toEqual({
        state: 'confirmed',
        node: nodeName(i),
        cidr,
        deleted: 'false',
      });
    }
  }, 60_000);

  it('60 addresses assigned at once on one node through separate clients: no duplicates, none lost', async () => {
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, k) => new Ipam(clients[k % NODES]!).assign(nodeName(0), `pod-${k}`)),
    );
    const ips = results.flat();
    expect(ips).toHaveLength(60);
    expect(new Set(ips).size).toBe(60);
    const stored = (await clients[0]!.list('IPAMBlock')).items;
    expect(stored.reduce((sum, b) => sum + b.spec.allocations.filter((a) => a !== null).length, 0)).toBe(60);
    // Races really happened and the server settled them: some block PUTs were refused with 409 Conflict.
    const blockPuts = api.calls.filter((c) => c.verb === 'update' && c.resource === 'ipamblocks.crd.projectcalico.org');
    expect(blockPuts.filter((c) => c.status === 409).length).toBeGreaterThan(0);
    expect(blockPuts.filter((c) => c.status === 200).length).toBeGreaterThanOrEqual(60);
  }, 120_000);

  it('releasing every handle at once frees every address exactly once and deletes the handles', async () => {
    const released = await Promise.all(
      Array.from({ length: 60 }, (_, k) => new Ipam(clients[k % NODES]!).releaseByHandle(`pod-${k}`)),
    );
    expect(released.flat()).toHaveLength(60);
    expect(new Set(released.flat()).size).toBe(60);
    const stored = (await clients[0]!.list('IPAMBlock')).items;
    expect(stored.length).toBeGreaterThan(0);
    expect(stored.every((b) => b.spec.allocations.every((a) => a === null))).toBe(true);
    expect((await clients[0]!.list('IPAMHandle')).items).toEqual([]);
  }, 120_000);
});
