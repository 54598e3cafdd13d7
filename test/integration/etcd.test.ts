// The etcd datastore against a real etcd 3.4: Calico's keys and JSON (read back raw), compare-and-swap,
// an unreachable endpoint, a watch that survives an etcd restart, and a watch whose revision was compacted.

import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Etcd3 } from 'etcd3';
import { openEtcd } from '../../src/datastore/etcd.js';
import {
  AlreadyExistsError,
  ConflictError,
  DatastoreUnavailableError,
  NotFoundError,
  type Datastore,
  type WatchEvent,
} from '../../src/datastore/types.js';
import type { Kind, Resource } from '../../src/resources/types.js';
import { requireEtcd, startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { waitFor } from '../harness/process.js';

function pool(name: string, cidr: string): Resource<'IPPool'> {
  return {
    apiVersion: 'projectcalico.org/v3',
    kind: 'IPPool',
    metadata: { name },
    spec: { cidr, blockSize: 26, ipipMode: 'Never', natOutgoing: true, nodeSelector: 'all()' },
  };
}

describe.skipIf(!requireEtcd())('etcd datastore (real etcd)', () => {
  let etcd: EtcdInstance;
  let ds: Datastore;
  let raw: Etcd3;

  beforeAll(async () => {
    etcd = await startEtcd();
    ds = await openEtcd({ endpoints: [etcd.endpoint], timeoutMs: 3000 });
    raw = new Etcd3({ hosts: etcd.endpoint });
  });
  afterAll(async () => {
    raw?.close();
    await ds?.close();
    await etcd?.stop();
  });

  it('stores resources and IPAM objects under Calico keys with Calico JSON', async () => {
    await ds.create(pool('default-ipv4-ippool', '10.244.0.0/16'));
    await ds.create({
      apiVersion: 'projectcalico.org/v3',
      kind: 'WorkloadEndpoint',
      metadata: { name: 'node--a-k8s-pod1-eth0', namespace: 'prod' },
      spec: { node: 'node-a', interfaceName: 'cali0123456789a', ipNetworks: ['10.244.1.5/32'] },
    });
    await ds.create({
      apiVersion: 'projectcalico.org/v3',
      kind: 'IPAMBlock',
      metadata: { name: '10-244-1-0-26' },
      spec: {
        cidr: '10.244.1.0/26',
        affinity: 'host:node-a',
        allocations: [0, ...Array<null>(63).fill(null)],
        unallocated: Array.from({ length: 63 }, (_, i) => i + 1),
        attributes: [{ handle_id: 'k8s-pod-network.abc', secondary: { node: 'node-a' } }],
        sequenceNumber: 1,
      },
    });
    await ds.create({
      apiVersion: 'projectcalico.org/v3',
      kind: 'BlockAffinity',
      metadata: { name: 'node-a-10-244-1-0-26' },
      spec: { state: 'confirmed', node: 'node-a', cidr: '10.244.1.0/26' },
    });
    await ds.create({
      apiVersion: 'projectcalico.org/v3',
      kind: 'IPAMHandle',
      metadata: { name: 'k8s-pod-network.abc' },
      spec: { handleID: 'k8s-pod-network.abc', block: { '10.244.1.0/26': 1 } },
    });

    const all = await raw.getAll().prefix('/calico/').strings();
    const keys = Object.keys(all).sort();
    expect(keys).toEqual([
      '/calico/ipam/v2/assignment/ipv4/block/10.244.1.0-26',
      '/calico/ipam/v2/handle/k8s-pod-network.abc',
      '/calico/ipam/v2/host/node-a/ipv4/block/10.244.1.0-26',
      '/calico/resources/v3/projectcalico.org/ippools/default-ipv4-ippool',
      '/calico/resources/v3/projectcalico.org/workloadendpoints/prod/node--a-k8s-pod1-eth0',
    ]);
    const poolJson = JSON.parse(
      all['/calico/resources/v3/projectcalico.org/ippools/default-ipv4-ippool'] ?? '{}',
    ) as Resource<'IPPool'>;
    expect(poolJson.kind).toBe('IPPool');
    expect(poolJson.apiVersion).toBe('projectcalico.org/v3');
    expect(poolJson.metadata.resourceVersion).toBeUndefined(); // the revision is the key's, as Calico does
    expect(poolJson.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(poolJson.spec.cidr).toBe('10.244.0.0/16');
    const block = JSON.parse(all['/calico/ipam/v2/assignment/ipv4/block/10.244.1.0-26'] ?? '{}') as Record<
      string,
      unknown
    >;
    expect(Object.keys(block).sort()).toEqual([
      'affinity',
      'allocations',
      'attributes',
      'cidr',
      'deleted',
      'sequenceNumber',
      'sequenceNumberForAllocation',
      'unallocated',
    ]);
    expect(block.affinity).toBe('host:node-a');
    expect(block.attributes).toEqual([{ handle_id: 'k8s-pod-network.abc', secondary: { node: 'node-a' } }]);
    expect(JSON.parse(all['/calico/ipam/v2/host/node-a/ipv4/block/10.244.1.0-26'] ?? '{}')).toEqual({
      state: 'confirmed',
      deleted: false,
    });
    expect(JSON.parse(all['/calico/ipam/v2/handle/k8s-pod-network.abc'] ?? '{}')).toEqual({
      block: { '10.244.1.0/26': 1 },
      deleted: false,
    });

    // And the other way: what Calico wrote, tortie reads (revision = mod_revision).
    await raw.put('/calico/ipam/v2/host/node-b/ipv4/block/10.244.2.0-26').value('{"state":"pending","deleted":false}');
    const affinity = await ds.get('BlockAffinity', 'node-b-10-244-2-0-26');
    expect(affinity?.spec).toEqual({ state: 'pending', node: 'node-b', cidr: '10.244.2.0/26', deleted: false });
    const rawKv = await raw.get('/calico/ipam/v2/host/node-b/ipv4/block/10.244.2.0-26').exec();
    expect(affinity?.metadata.resourceVersion).toBe(String(rawKv.kvs[0]?.mod_revision));
    await raw.put('/calico/resources/v3/projectcalico.org/bgppeers/broken').value('{not json');
    await expect(ds.get('BGPPeer', 'broken')).rejects.toThrow(
      'etcd key /calico/resources/v3/projectcalico.org/bgppeers/broken (BGPPeer) does not hold JSON',
    );
    // A list leaves the unreadable one out and names it, instead of failing the whole kind.
    await ds.create({
      apiVersion: 'projectcalico.org/v3',
      kind: 'BGPPeer',
      metadata: { name: 'fine' },
      spec: { peerIP: '198.18.9.9', asNumber: 65009 },
    });
    const listed = await ds.list('BGPPeer');
    expect(listed.items.map((p) => p.metadata.name)).toContain('fine');
    expect(listed.problems).toEqual([expect.stringContaining('bgppeers/broken (BGPPeer) does not hold JSON')]);
    await ds.delete('BGPPeer', 'fine');
    await raw.delete().key('/calico/resources/v3/projectcalico.org/bgppeers/broken');
    const weps = await ds.list('WorkloadEndpoint', { namespace: 'prod' });
    expect(weps.items.map((w) => `${w.metadata.namespace}/${w.metadata.name}`)).toEqual(['prod/node--a-k8s-pod1-eth0']);
  });

  it('compare-and-swap: a stale revision writes nothing; create twice, update/delete of missing', async () => {
    const created = await ds.create(pool('cas', '10.99.0.0/24'));
    await expect(ds.create(pool('cas', '10.99.0.0/24'))).rejects.toBeInstanceOf(AlreadyExistsError);
    const updated = await ds.update({ ...created, spec: { ...created.spec, natOutgoing: false } });
    expect(Number(updated.metadata.resourceVersion)).toBeGreaterThan(Number(created.metadata.resourceVersion));
    await expect(ds.update({ ...created, spec: { ...created.spec, disabled: true } })).rejects.toBeInstanceOf(
      ConflictError,
    );
    await expect(ds.delete('IPPool', 'cas', { revision: created.metadata.resourceVersion ?? '' })).rejects.toThrow(
      /changed by someone else/,
    );
    const now = await ds.get('IPPool', 'cas');
    expect(now?.spec.natOutgoing).toBe(false);
    expect(now?.spec.disabled).toBeUndefined();
    expect(now?.metadata.resourceVersion).toBe(updated.metadata.resourceVersion);
    await ds.delete('IPPool', 'cas', { revision: updated.metadata.resourceVersion ?? '' });
    expect(await ds.get('IPPool', 'cas')).toBeNull();
    await expect(ds.update(pool('cas', '10.99.0.0/24'))).rejects.toBeInstanceOf(NotFoundError);
    await expect(ds.delete('IPPool', 'cas')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('a watch resumes after an etcd restart: every change once, in order', async () => {
    const start = await ds.list('BGPPeer');
    const events: Array<WatchEvent<'BGPPeer'>> = [];
    const watch = ds.watch('BGPPeer', start.revision, (e) => events.push(e));
    const peer = (n: number): Resource<'BGPPeer'> => ({
      apiVersion: 'projectcalico.org/v3',
      kind: 'BGPPeer',
      metadata: { name: `p${n}` },
      spec: { peerIP: `198.18.0.${n}`, asNumber: 65000 + n },
    });
    const names = (): string[] =>
      events.filter((e) => e.type === 'added').map((e) => (e.type === 'added' ? e.resource.metadata.name : ''));
    try {
      await ds.create(peer(1));
      await waitFor(() => names().length === 1, { timeoutMs: 5000, what: 'the first event' });
      await etcd.kill9();
      await etcd.restart();
      // Written while the watch is still reconnecting.
      for (let n = 2; n <= 6; n++) {
        await waitFor(
          async () =>
            await ds.create(peer(n)).then(
              () => true,
              (e: unknown) => (e instanceof AlreadyExistsError ? true : false),
            ),
          { timeoutMs: 10_000, what: `create p${n}` },
        );
      }
      await waitFor(() => names().length >= 6, { timeoutMs: 15_000, what: 'six added events' });
      await new Promise((r) => setTimeout(r, 300)); // a duplicate would arrive now
      expect(names()).toEqual(['p1', 'p2', 'p3', 'p4', 'p5', 'p6']);
      expect(events.some((e) => e.type === 'error' && /etcd at http:\/\/127\.0\.0\.1:\d+/.test(e.error.message))).toBe(
        true,
      );
    } finally {
      watch.stop();
    }
  }, 60_000);

  it('tells a refusal from etcd (a request too large) apart from etcd being unreachable', async () => {
    const huge: Resource<'BGPPeer'> = {
      apiVersion: 'projectcalico.org/v3',
      kind: 'BGPPeer',
      metadata: { name: 'huge', annotations: { blob: 'x'.repeat(2 * 1024 * 1024) } },
      spec: { peerIP: '198.18.9.1', asNumber: 65009 },
    };
    const error = await ds.create(huge).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(DatastoreUnavailableError);
    expect((error as Error).message).toMatch(
      /create \/calico\/resources\/v3\/projectcalico\.org\/bgppeers\/huge refused: .*(too large|larger than max)/,
    );
  });

  it('a watch delivers every event of a multi-key revision (one delete of several keys)', async () => {
    const peer = (n: number): Resource<'BGPPeer'> => ({
      apiVersion: 'projectcalico.org/v3',
      kind: 'BGPPeer',
      metadata: { name: `multi${n}` },
      spec: { peerIP: `198.18.1.${n}`, asNumber: 65000 + n },
    });
    for (let n = 1; n <= 3; n++) await ds.create(peer(n));
    const start = await ds.list('BGPPeer');
    const events: Array<WatchEvent<'BGPPeer'>> = [];
    const watch = ds.watch('BGPPeer', start.revision, (e) => events.push(e));
    try {
      // One etcd revision, three deleted keys (what `etcdctl del --prefix` or a transaction does).
      await raw.delete().prefix('/calico/resources/v3/projectcalico.org/bgppeers/multi');
      const deleted = () =>
        events.filter((e) => e.type === 'deleted').map((e) => (e.type === 'deleted' ? e.resource.metadata.name : ''));
      await waitFor(() => deleted().length >= 3, { timeoutMs: 5000, what: 'three deleted events' });
      expect(deleted().sort()).toEqual(['multi1', 'multi2', 'multi3']);
    } finally {
      watch.stop();
    }
  });

  it('a watch from a compacted revision re-lists and sends sync, then continues', async () => {
    const node = (name: string): Resource<'Node'> => ({
      apiVersion: 'projectcalico.org/v3',
      kind: 'Node',
      metadata: { name },
      spec: { bgp: { ipv4Address: '198.18.0.1/24' } },
    });
    const first = await ds.create(node('n1'));
    await ds.create(node('n2'));
    await ds.delete('Node', 'n1');
    const latest = await raw.get('/calico/').exec();
    await raw.kv.compact({ revision: latest.header.revision, physical: true });
    const events: Array<WatchEvent<Kind>> = [];
    const watch = ds.watch('Node', first.metadata.resourceVersion ?? '1', (e) => events.push(e as WatchEvent<Kind>));
    try {
      const sync = await waitFor(() => events.find((e) => e.type === 'sync'), {
        timeoutMs: 5000,
        what: 'a sync event',
      });
      expect(sync.type === 'sync' && sync.items.map((n) => n.metadata.name)).toEqual(['n2']);
      await ds.create(node('n3'));
      const added = await waitFor(() => events.find((e) => e.type === 'added'), { timeoutMs: 5000, what: 'n3 added' });
      expect(added.type === 'added' && added.resource.metadata.name).toBe('n3');
      expect(events.filter((e) => e.type === 'sync')).toHaveLength(1);
    } finally {
      watch.stop();
    }
  });
});

describe('etcd datastore: unreachable endpoint', () => {
  it('rejects with DatastoreUnavailableError naming the endpoint, within the timeout', async () => {
    // A port that was free a moment ago and is closed now: nothing listens there.
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const a = s.address();
        s.close(() => resolve(typeof a === 'object' && a ? a.port : 1));
      });
    });
    const endpoint = `http://127.0.0.1:${port}`;
    const started = Date.now();
    const error = await openEtcd({ endpoints: [endpoint], timeoutMs: 1500 }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DatastoreUnavailableError);
    expect((error as Error).message).toContain(endpoint);
    expect(Date.now() - started).toBeLessThan(4000);
  });
});

describe.skipIf(!requireEtcd())('etcd datastore over TLS (client certificates)', () => {
  it('connects with caFile/certFile/keyFile, and is refused without a client certificate', async () => {
    const etcd = await startEtcd({ tls: true });
    try {
      expect(etcd.endpoint).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const ds = await openEtcd({
        endpoints: [etcd.endpoint],
        caFile: etcd.tls.caFile,
        certFile: etcd.tls.clientCertFile,
        keyFile: etcd.tls.clientKeyFile,
        timeoutMs: 3000,
      });
      try {
        await ds.create(pool('tls', '10.98.0.0/24'));
        expect((await ds.get('IPPool', 'tls'))?.spec.cidr).toBe('10.98.0.0/24');
      } finally {
        await ds.close();
      }
      const refused = await openEtcd({ endpoints: [etcd.endpoint], caFile: etcd.tls.caFile, timeoutMs: 2000 }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(refused).toBeInstanceOf(DatastoreUnavailableError);
      expect((refused as Error).message).toContain(etcd.endpoint);
    } finally {
      await etcd.stop();
    }
  }, 60_000);
});
