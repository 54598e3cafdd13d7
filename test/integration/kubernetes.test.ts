// The kubernetes datastore against the fake API server (test/harness/fake-apiserver.ts), with the real
// @kubernetes/client-node client in between: CRUD and compare-and-swap on Calico CRDs, the shape of the
// objects as the API server stores them, Node annotations, Pods as WorkloadEndpoints, watches through
// 410 Gone and dropped streams, unreachable servers, and the API calls made (for RBAC).

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  KUBERNETES_API_CALLS,
  LIST_PAGE_SIZE,
  UnsupportedOperationError,
  openKubernetes,
} from '../../src/datastore/kubernetes.js';
import {
  AlreadyExistsError,
  ConflictError,
  DatastoreUnavailableError,
  NotFoundError,
  type Datastore,
  type WatchEvent,
} from '../../src/datastore/types.js';
import type { Kind, Resource } from '../../src/resources/types.js';
import { FakeClock } from '../../bgp/clock.js';
import { startFakeApiServer, type FakeApiServer } from '../harness/fake-apiserver.js';
import { waitFor } from '../harness/wait.js';

function pool(name: string, cidr: string, extra: Partial<Resource<'IPPool'>['spec']> = {}): Resource<'IPPool'> {
  return {
    apiVersion: 'projectcalico.org/v3',
    kind: 'IPPool',
    metadata: { name },
    spec: { cidr, blockSize: 26, ...extra },
  };
}

/** Polls the assertion `check` every 10 ms for at most `ms` (the harness's waitFor); the timeout names its last failure. */
async function eventually(check: () => void, ms = 5000): Promise<void> {
  await waitFor(() => (check(), true), { what: 'the assertion to hold', timeoutMs: ms, intervalMs: 10 });
}

/** Collects a watch's events. */
function collect<K extends Kind>(ds: Datastore, kind: K, from: string): { events: Array<WatchEvent<K>>; stop(): void } {
  const events: Array<WatchEvent<K>> = [];
  const w = ds.watch(kind, from, (e) => events.push(e));
  return { events, stop: () => w.stop() };
}

function names(events: Array<WatchEvent<Kind>>): string[] {
  return events.map((e) =>
    e.type === 'sync'
      ? `sync:${e.items.map((i) => i.metadata.name).join(',')}`
      : e.type === 'error'
        ? 'error'
        : `${e.type}:${e.resource.metadata.name}`,
  );
}

let api: FakeApiServer;
let ds: Datastore;
const servers: FakeApiServer[] = [];

beforeAll(async () => {
  api = await startFakeApiServer();
});
afterAll(async () => {
  await api.stop();
  for (const s of servers) await s.stop();
});
beforeEach(async () => {
  ds = await openKubernetes({ kubeconfig: api.kubeconfigPath, timeoutMs: 2000, watchRetryMs: 20 });
});
afterEach(async () => {
  await ds.close();
  for (const p of (await ds.list('IPPool')).items) await ds.delete('IPPool', p.metadata.name).catch(() => undefined);
});

describe('custom objects (IPPool, BGPPeer, IPAM)', () => {
  it('creates, reads back identically, lists at a revision, and refuses a second create', async () => {
    const created = await ds.create({
      ...pool('p1', '10.244.0.0/16', { ipipMode: 'Always', natOutgoing: true }),
      metadata: { name: 'p1', labels: { tier: 'gold' } },
    });
    expect(created.metadata.resourceVersion).toMatch(/^\d+$/);
    const got = await ds.get('IPPool', 'p1');
    expect(got).toEqual(created);
    expect(got?.spec).toEqual({ cidr: '10.244.0.0/16', blockSize: 26, ipipMode: 'Always', natOutgoing: true });
    expect(got?.metadata.labels).toEqual({ tier: 'gold' });
    const list = await ds.list('IPPool');
    expect(list.items.map((p) => p.metadata.name)).toEqual(['p1']);
    expect(Number(list.revision)).toBeGreaterThanOrEqual(Number(created.metadata.resourceVersion));
    await expect(ds.create(pool('p1', '10.245.0.0/16'))).rejects.toBeInstanceOf(AlreadyExistsError);
    expect((await ds.get('IPPool', 'p1'))?.spec.cidr).toBe('10.244.0.0/16');
  });

  it('stores the v3 spec in a crd.projectcalico.org/v1 object, labels in projectcalico.org/metadata', async () => {
    await ds.create({ ...pool('p2', '10.246.0.0/16'), metadata: { name: 'p2', labels: { a: 'b' } } });
    const raw = api.object({ crd: 'ippools' }, 'p2');
    expect(raw?.apiVersion).toBe('crd.projectcalico.org/v1');
    expect(raw?.kind).toBe('IPPool');
    expect(raw?.spec).toEqual({ cidr: '10.246.0.0/16', blockSize: 26 });
    expect(raw?.metadata.labels).toBeUndefined();
    expect((raw?.metadata.annotations as Record<string, string>)['projectcalico.org/metadata']).toBe(
      '{"labels":{"a":"b"}}',
    );
  });

  it('names IPAM objects as Calico does: blocks 10-244-1-0-26, handles in lower case', async () => {
    const block: Resource<'IPAMBlock'> = {
      apiVersion: 'projectcalico.org/v3',
      kind: 'IPAMBlock',
      metadata: { name: '10.244.1.0-26' },
      spec: {
        cidr: '10.244.1.0/26',
        affinity: 'host:node-1',
        allocations: new Array<null>(64).fill(null),
        unallocated: [...Array(64).keys()],
        attributes: [],
      },
    };
    const created = await ds.create(block);
    expect(created.metadata.name).toBe('10-244-1-0-26');
    expect(api.object({ crd: 'ipamblocks' }, '10-244-1-0-26')?.spec).toEqual(block.spec);
    // Any spelling of the CIDR finds the same object.
    expect((await ds.get('IPAMBlock', '10.244.1.0/26'))?.metadata.resourceVersion).toBe(
      created.metadata.resourceVersion,
    );
    const handle = await ds.create({
      apiVersion: 'projectcalico.org/v3',
      kind: 'IPAMHandle',
      metadata: { name: 'ipip-tunnel-addr-Node1' },
      spec: { handleID: 'ipip-tunnel-addr-Node1', block: { '10.244.1.0/26': 1 } },
    });
    expect(handle.metadata.name).toBe('ipip-tunnel-addr-node1');
    expect(handle.spec.handleID).toBe('ipip-tunnel-addr-Node1');
    const affinity = await ds.create({
      apiVersion: 'projectcalico.org/v3',
      kind: 'BlockAffinity',
      metadata: { name: 'node-1-10-244-1-0-26' },
      spec: { state: 'pending', node: 'node-1', cidr: '10.244.1.0/26' },
    });
    expect(api.object({ crd: 'blockaffinities' }, 'node-1-10-244-1-0-26')?.spec).toEqual({
      state: 'pending',
      node: 'node-1',
      cidr: '10.244.1.0/26',
      deleted: 'false',
    });
    expect(affinity.spec).toEqual({ state: 'pending', node: 'node-1', cidr: '10.244.1.0/26' });
    await ds.delete('IPAMBlock', '10-244-1-0-26');
    await ds.delete('IPAMHandle', 'ipip-tunnel-addr-Node1');
    await ds.delete('BlockAffinity', 'node-1-10-244-1-0-26');
  });

  it('update with a stale resourceVersion is ConflictError and writes nothing; without one it updates', async () => {
    const v1 = await ds.create(pool('p3', '10.247.0.0/16'));
    const v2 = await ds.update({ ...v1, spec: { ...v1.spec, natOutgoing: true } });
    expect(Number(v2.metadata.resourceVersion)).toBeGreaterThan(Number(v1.metadata.resourceVersion));
    const before = api.revision();
    await expect(ds.update({ ...v1, spec: { ...v1.spec, disabled: true } })).rejects.toBeInstanceOf(ConflictError);
    expect(api.revision()).toBe(before);
    expect(await ds.get('IPPool', 'p3')).toEqual(v2);
    const { resourceVersion: _drop, ...meta } = v2.metadata;
    const v3 = await ds.update({ ...v2, metadata: meta, spec: { ...v2.spec, disabled: true } });
    expect(v3.spec.disabled).toBe(true);
  });

  it('update and delete of a missing object are NotFoundError; get is null', async () => {
    expect(await ds.get('IPPool', 'nope')).toBeNull();
    await expect(ds.update(pool('nope', '10.1.0.0/16'))).rejects.toBeInstanceOf(NotFoundError);
    await expect(
      ds.update({ ...pool('nope', '10.1.0.0/16'), metadata: { name: 'nope', resourceVersion: '3' } }),
    ).rejects.toBeInstanceOf(NotFoundError);
    await expect(ds.delete('IPPool', 'nope')).rejects.toThrow(/IPPool "nope" not found/);
  });

  it('delete with a stale revision is ConflictError and keeps the object; with the current one deletes', async () => {
    const v1 = await ds.create(pool('p4', '10.248.0.0/16'));
    const v2 = await ds.update({ ...v1, spec: { ...v1.spec, natOutgoing: true } });
    await expect(ds.delete('IPPool', 'p4', { revision: v1.metadata.resourceVersion! })).rejects.toBeInstanceOf(
      ConflictError,
    );
    expect(await ds.get('IPPool', 'p4')).not.toBeNull();
    const deleted = await ds.delete('IPPool', 'p4', { revision: v2.metadata.resourceVersion! });
    expect(deleted.spec.cidr).toBe('10.248.0.0/16');
    expect(await ds.get('IPPool', 'p4')).toBeNull();
  });

  it('reads a large collection in pages of LIST_PAGE_SIZE, all at one revision', async () => {
    const count = LIST_PAGE_SIZE * 2 + 3;
    for (let i = 0; i < count; i++)
      api.put({ crd: 'ipamhandles' }, { metadata: { name: `bulk-${i}` }, spec: { handleID: `bulk-${i}`, block: {} } });
    const revision = String(api.revision());
    const before = api.calls.length;
    const list = await ds.list('IPAMHandle');
    const pages = api.calls.slice(before);
    expect(pages.map((c) => `${c.verb} ${c.resource} ${c.status}`)).toEqual(
      Array<string>(3).fill('list ipamhandles.crd.projectcalico.org 200'),
    );
    expect(list.items).toHaveLength(count);
    expect(new Set(list.items.map((h) => h.metadata.name)).size).toBe(count);
    expect(list.revision).toBe(revision);
    for (let i = 0; i < count; i++) api.remove({ crd: 'ipamhandles' }, `bulk-${i}`);
  });

  it('a name Kubernetes refuses is an error naming the field', async () => {
    await expect(ds.create(pool('Bad_Name', '10.2.0.0/16'))).rejects.toThrow(/metadata\.name.*Bad_Name/);
  });
});

describe('watch', () => {
  it('delivers every change after the revision, in order, once', async () => {
    const start = await ds.list('IPPool');
    const w = collect(ds, 'IPPool', start.revision);
    const a = await ds.create(pool('w1', '10.10.0.0/16'));
    await ds.update({ ...a, spec: { ...a.spec, natOutgoing: true } });
    await ds.create(pool('w2', '10.11.0.0/16'));
    await ds.delete('IPPool', 'w1');
    await eventually(() => expect(names(w.events)).toEqual(['added:w1', 'modified:w1', 'added:w2', 'deleted:w1']));
    const revisions = w.events.map((e) => Number('revision' in e ? e.revision : 0));
    expect(revisions).toEqual([...revisions].sort((x, y) => x - y));
    // A second watch from the middle sees only what came after.
    const w2 = collect(ds, 'IPPool', (w.events[1] as { revision: string }).revision);
    await eventually(() => expect(names(w2.events)).toEqual(['added:w2', 'deleted:w1']));
    w.stop();
    w2.stop();
  });

  it('410 Gone: re-lists, sends sync with the whole set, then continues', async () => {
    await ds.create(pool('g1', '10.20.0.0/16'));
    const from = (await ds.list('IPPool')).revision;
    await ds.create(pool('g2', '10.21.0.0/16'));
    api.compact(); // the server no longer has the events after `from`
    const w = collect(ds, 'IPPool', from);
    await eventually(() => expect(names(w.events)).toEqual(['sync:g1,g2']));
    await ds.create(pool('g3', '10.22.0.0/16'));
    await eventually(() => expect(names(w.events)).toEqual(['sync:g1,g2', 'added:g3']));
    w.stop();
  });

  it('410 Gone with a small history window while watching from an old revision', async () => {
    const small = await startFakeApiServer({ historyWindow: 2 });
    servers.push(small);
    const ds2 = await openKubernetes({ kubeconfig: small.kubeconfigPath, timeoutMs: 2000, watchRetryMs: 20 });
    const from = (await ds2.list('IPPool')).revision;
    for (const [i, cidr] of ['10.30.0.0/16', '10.31.0.0/16', '10.32.0.0/16'].entries())
      await ds2.create(pool(`h${i}`, cidr));
    const w = collect(ds2, 'IPPool', from);
    await eventually(() => expect(names(w.events)).toEqual(['sync:h0,h1,h2']));
    w.stop();
    await ds2.close();
  });

  for (const abrupt of [false, true]) {
    it(`survives the server ${abrupt ? 'resetting the connection' : 'closing the stream'}: resumes without loss or repeats`, async () => {
      const w = collect(ds, 'IPPool', (await ds.list('IPPool')).revision);
      await eventually(() => expect(api.openWatches()).toBe(1));
      await ds.create(pool('d1', '10.40.0.0/16'));
      await eventually(() => expect(names(w.events)).toEqual(['added:d1']));
      expect(api.dropWatches({ abrupt })).toBe(1);
      // Written while no stream is open: the watch must catch up from its last revision.
      await ds.create(pool('d2', '10.41.0.0/16'));
      await eventually(() => expect(api.openWatches()).toBe(1));
      await ds.create(pool('d3', '10.42.0.0/16'));
      await eventually(() =>
        expect(names(w.events).filter((n) => n !== 'error')).toEqual(['added:d1', 'added:d2', 'added:d3']),
      );
      w.stop();
      await eventually(() => expect(api.openWatches()).toBe(0));
    });
  }

  it('a watch stopped right after it opened closes its stream', async () => {
    const w = collect(ds, 'IPPool', (await ds.list('IPPool')).revision);
    await eventually(() => expect(api.openWatches()).toBe(1));
    w.stop();
    await eventually(() => expect(api.openWatches()).toBe(0));
  });
});

describe('watch through an outage', () => {
  it('reports errors naming the server while it is down, then resumes from its last revision', async () => {
    const w = collect(ds, 'IPPool', (await ds.list('IPPool')).revision);
    await eventually(() => expect(api.openWatches()).toBe(1));
    api.setDown(true);
    // Written "by someone else" during the outage (straight into the store).
    api.put({ crd: 'ippools' }, { metadata: { name: 'o1' }, spec: { cidr: '10.50.0.0/16' } });
    await eventually(() => expect(w.events.some((e) => e.type === 'error')).toBe(true));
    const error = w.events.find((e) => e.type === 'error') as { error: Error };
    expect(error.error).toBeInstanceOf(DatastoreUnavailableError);
    expect(error.error.message).toContain(api.url);
    api.setDown(false);
    await eventually(() => expect(names(w.events).filter((n) => n !== 'error')).toEqual(['added:o1']));
    await ds.delete('IPPool', 'o1');
    await eventually(() => expect(names(w.events).filter((n) => n !== 'error')).toEqual(['added:o1', 'deleted:o1']));
    w.stop();
  });
});

describe('watch retry timing (fake clock)', () => {
  it('waits watchRetryMs before re-opening, doubling while the server stays down', async () => {
    const clock = new FakeClock(0);
    const slow = await openKubernetes({ kubeconfig: api.kubeconfigPath, timeoutMs: 2000, watchRetryMs: 1000, clock });
    const w = collect(slow, 'IPPool', (await slow.list('IPPool')).revision);
    await eventually(() => expect(api.openWatches()).toBe(1));
    api.setDown(true);
    await eventually(() => expect(w.events.filter((e) => e.type === 'error')).toHaveLength(1));
    clock.advance(1000); // first retry, still down: a second error
    await eventually(() => expect(w.events.filter((e) => e.type === 'error')).toHaveLength(2));
    api.setDown(false);
    await new Promise((r) => setTimeout(r, 100));
    expect(api.openWatches()).toBe(0); // nothing happens before the fake clock moves
    clock.advance(1999); // the second delay is twice the first
    await new Promise((r) => setTimeout(r, 50));
    expect(api.openWatches()).toBe(0);
    clock.advance(1);
    await eventually(() => expect(api.openWatches()).toBe(1));
    w.stop();
    await slow.close();
    await eventually(() => expect(api.openWatches()).toBe(0));
  });
});

describe('Node: the Kubernetes Node and its projectcalico.org annotations', () => {
  beforeAll(() => {
    api.put(
      { core: 'nodes' },
      {
        metadata: {
          name: 'node-1',
          labels: { 'kubernetes.io/hostname': 'node-1' },
          annotations: { 'kubeadm.alpha.kubernetes.io/cri-socket': '/run/containerd/containerd.sock' },
        },
      },
    );
  });

  it('round-trips BGP data through the annotations and keeps Kubernetes labels and annotations', async () => {
    const node = await ds.get('Node', 'node-1');
    expect(node?.spec).toEqual({});
    const updated = await ds.update({
      ...node!,
      metadata: { ...node!.metadata, labels: { ...node!.metadata.labels, 'route-reflector': 'true' } },
      spec: {
        bgp: {
          ipv4Address: '198.18.0.11/24',
          asNumber: 64512,
          ipv4IPIPTunnelAddr: '10.244.1.1',
          routeReflectorClusterID: '244.0.0.1',
        },
      },
    });
    expect(updated.spec.bgp).toEqual({
      ipv4Address: '198.18.0.11/24',
      asNumber: 64512,
      ipv4IPIPTunnelAddr: '10.244.1.1',
      routeReflectorClusterID: '244.0.0.1',
    });
    expect(updated.metadata.labels).toEqual({ 'kubernetes.io/hostname': 'node-1', 'route-reflector': 'true' });
    const raw = api.object({ core: 'nodes' }, 'node-1')!;
    expect(raw.metadata.annotations).toEqual({
      'kubeadm.alpha.kubernetes.io/cri-socket': '/run/containerd/containerd.sock',
      'projectcalico.org/IPv4Address': '198.18.0.11/24',
      'projectcalico.org/ASNumber': '64512',
      'projectcalico.org/IPv4IPIPTunnelAddr': '10.244.1.1',
      'projectcalico.org/RouteReflectorClusterID': '244.0.0.1',
      'projectcalico.org/labels': '{"route-reflector":"true"}',
    });
    expect(raw.metadata.labels).toEqual({ 'kubernetes.io/hostname': 'node-1' });
    expect(await ds.get('Node', 'node-1')).toEqual(updated);
    // A stale resourceVersion: conflict, nothing written.
    await expect(
      ds.update({
        ...updated,
        metadata: { ...updated.metadata, resourceVersion: node!.metadata.resourceVersion! },
        spec: {},
      }),
    ).rejects.toBeInstanceOf(ConflictError);
    expect((await ds.get('Node', 'node-1'))?.spec.bgp?.asNumber).toBe(64512);
    // Clearing the BGP spec removes the annotations.
    const cleared = await ds.update({ ...updated, spec: {} });
    expect(cleared.spec).toEqual({});
    expect(
      Object.keys(api.object({ core: 'nodes' }, 'node-1')!.metadata.annotations as object).filter((k) =>
        k.startsWith('projectcalico.org/'),
      ),
    ).toEqual(['projectcalico.org/labels']);
  });

  it('writes only annotations: fields of the Node the client model does not know survive an update', async () => {
    api.put(
      { core: 'nodes' },
      {
        metadata: { name: 'node-future', labels: { a: 'b' } },
        spec: { futureField: 'keep' },
        status: { futureStatus: { x: 1 } },
      },
    );
    const node = (await ds.get('Node', 'node-future'))!;
    await ds.update({ ...node, spec: { bgp: { ipv4Address: '198.18.0.20/24' } } });
    const raw = api.object({ core: 'nodes' }, 'node-future')!;
    expect(raw.spec).toEqual({ futureField: 'keep' });
    expect(raw.status).toEqual({ futureStatus: { x: 1 } });
    expect(raw.metadata.labels).toEqual({ a: 'b' });
    expect((raw.metadata.annotations as Record<string, string>)['projectcalico.org/IPv4Address']).toBe(
      '198.18.0.20/24',
    );
  });

  it('create of an existing Node is AlreadyExists; of a missing one, and delete, are refused with a reason', async () => {
    const node: Resource<'Node'> = {
      apiVersion: 'projectcalico.org/v3',
      kind: 'Node',
      metadata: { name: 'node-1' },
      spec: {},
    };
    await expect(ds.create(node)).rejects.toBeInstanceOf(AlreadyExistsError);
    await expect(ds.create({ ...node, metadata: { name: 'ghost' } })).rejects.toThrow(
      /registered by its kubelet.*"ghost"/,
    );
    await expect(ds.delete('Node', 'node-1')).rejects.toBeInstanceOf(UnsupportedOperationError);
    await expect(ds.update({ ...node, metadata: { name: 'ghost' } })).rejects.toBeInstanceOf(NotFoundError);
  });

  it('watches Nodes: a change of annotations is a modified event', async () => {
    const w = collect(ds, 'Node', (await ds.list('Node')).revision);
    const node = (await ds.get('Node', 'node-1'))!;
    await ds.update({ ...node, spec: { bgp: { ipv4Address: '198.18.0.12/24' } } });
    await eventually(() =>
      expect(w.events.map((e) => e.type === 'modified' && e.resource.spec.bgp?.ipv4Address)).toEqual([
        '198.18.0.12/24',
      ]),
    );
    w.stop();
  });
});

describe('WorkloadEndpoints from Pods (read-only)', () => {
  beforeAll(() => {
    api.put(
      { core: 'pods' },
      {
        metadata: { name: 'nginx', namespace: 'default', labels: { app: 'web' } },
        spec: { nodeName: 'node-1', serviceAccountName: 'default' },
        status: { phase: 'Running', podIP: '10.244.1.5', podIPs: [{ ip: '10.244.1.5' }] },
      },
    );
    api.put(
      { core: 'pods' },
      {
        metadata: { name: 'coredns-5d78c9869d-abcde', namespace: 'kube-system' },
        spec: { nodeName: 'node-2' },
        status: { phase: 'Running', podIP: '10.244.2.7' },
      },
    );
    api.put(
      { core: 'pods' },
      {
        metadata: { name: 'kube-proxy-x', namespace: 'kube-system' },
        spec: { nodeName: 'node-2', hostNetwork: true },
        status: { phase: 'Running', podIP: '198.18.0.12' },
      },
    );
    api.put(
      { core: 'pods' },
      { metadata: { name: 'pending', namespace: 'default' }, spec: {}, status: { phase: 'Pending' } },
    );
  });

  it('lists one endpoint per Pod with an IP, with Calico interface names (sha1 computed outside)', async () => {
    const all = await ds.list('WorkloadEndpoint');
    expect(
      all.items.map((w) => [
        w.metadata.namespace,
        w.metadata.name,
        w.spec.interfaceName,
        w.spec.ipNetworks,
        w.spec.node,
      ]),
    ).toEqual([
      ['default', 'node--1-k8s-nginx-eth0', 'calic440f455693', ['10.244.1.5/32'], 'node-1'],
      ['kube-system', 'node--2-k8s-coredns--5d78c9869d--abcde-eth0', 'cali4d5f75c480c', ['10.244.2.7/32'], 'node-2'],
    ]);
    const inDefault = await ds.list('WorkloadEndpoint', { namespace: 'default' });
    expect(inDefault.items.map((w) => w.spec.pod)).toEqual(['nginx']);
    const one = await ds.get('WorkloadEndpoint', 'node--1-k8s-nginx-eth0', 'default');
    expect(one?.metadata.labels?.app).toBe('web');
    expect(await ds.get('WorkloadEndpoint', 'node--1-k8s-nginx-eth0', 'kube-system')).toBeNull();
  });

  it('refuses create, update and delete, saying Pods are the source', async () => {
    const wep = (await ds.list('WorkloadEndpoint', { namespace: 'default' })).items[0]!;
    await expect(ds.create(wep)).rejects.toThrow(/derived from Pods and are read-only/);
    await expect(ds.update(wep)).rejects.toBeInstanceOf(UnsupportedOperationError);
    await expect(ds.delete('WorkloadEndpoint', wep.metadata.name, { namespace: 'default' })).rejects.toBeInstanceOf(
      UnsupportedOperationError,
    );
  });

  it('watch: a Pod getting its IP makes its endpoint appear (modified: the Pod existed), deleting the Pod removes it', async () => {
    const w = collect(ds, 'WorkloadEndpoint', (await ds.list('WorkloadEndpoint')).revision);
    api.put(
      { core: 'pods' },
      { metadata: { name: 'late', namespace: 'default' }, spec: { nodeName: 'node-1' }, status: { phase: 'Pending' } },
    );
    api.put(
      { core: 'pods' },
      {
        metadata: { name: 'late', namespace: 'default' },
        spec: { nodeName: 'node-1' },
        status: { phase: 'Running', podIP: '10.244.1.9' },
      },
    );
    api.remove({ core: 'pods' }, 'late', 'default');
    await eventually(() =>
      expect(names(w.events)).toEqual(['modified:node--1-k8s-late-eth0', 'deleted:node--1-k8s-late-eth0']),
    );
    const added = w.events[0] as { resource: Resource<'WorkloadEndpoint'> };
    expect(added.resource.spec.ipNetworks).toEqual(['10.244.1.9/32']);
    w.stop();
  });
});

describe('unreachable API server', () => {
  it('a closed port: DatastoreUnavailableError naming the URL, quickly', async () => {
    const closed = await startFakeApiServer();
    const kubeconfig = closed.kubeconfigPath;
    const url = closed.url;
    // Keep a copy of its kubeconfig: stopping the server removes the original.
    const dir = await mkdtemp(join(tmpdir(), 'tortie-kubeconfig-'));
    const copy = join(dir, 'kubeconfig');
    await writeFile(copy, await readFile(kubeconfig));
    await closed.stop();
    const started = Date.now();
    const err = await openKubernetes({ kubeconfig: copy, timeoutMs: 1000 }).catch((e: unknown) => e);
    await rm(dir, { recursive: true, force: true });
    expect(err).toBeInstanceOf(DatastoreUnavailableError);
    expect((err as Error).message).toContain(url);
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it('a server that accepts and never answers: DatastoreUnavailableError within timeoutMs', async () => {
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const port = (silent.address() as { port: number }).port;
    const dir = await mkdtemp(join(tmpdir(), 'tortie-kubeconfig-'));
    const kubeconfig = join(dir, 'kubeconfig');
    await writeFile(
      kubeconfig,
      `apiVersion: v1\nkind: Config\nclusters:\n- name: s\n  cluster:\n    server: http://127.0.0.1:${port}\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user: {}\ncontexts:\n- name: s\n  context: {cluster: s, user: u}\ncurrent-context: s\n`,
    );
    const started = Date.now();
    const err = await openKubernetes({ kubeconfig, timeoutMs: 800 }).catch((e: unknown) => e);
    const elapsed = Date.now() - started;
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => silent.close(() => r()));
    await rm(dir, { recursive: true, force: true });
    expect(err).toBeInstanceOf(DatastoreUnavailableError);
    expect((err as Error).message).toContain(`http://127.0.0.1:${port}`);
    expect(elapsed).toBeGreaterThanOrEqual(700);
    expect(elapsed).toBeLessThan(2000);
  });
});

describe('API calls (for RBAC)', () => {
  it('every call the backend made is declared in KUBERNETES_API_CALLS', () => {
    expect(api.calls.length).toBeGreaterThan(0);
    const declared = new Set(KUBERNETES_API_CALLS.map((c) => `${c.verb} ${c.resource}`));
    const made = new Set(api.calls.map((c) => `${c.verb} ${c.resource}`));
    expect([...made].filter((c) => !declared.has(c))).toEqual([]);
    // And the suite exercised the verbs that matter for each backing collection.
    for (const needed of [
      'create ippools.crd.projectcalico.org',
      'update ippools.crd.projectcalico.org',
      'delete ippools.crd.projectcalico.org',
      'watch ippools.crd.projectcalico.org',
      'patch nodes',
      'watch pods',
      'list pods',
      'get pods',
    ]) {
      expect(made).toContain(needed);
    }
  });
});
