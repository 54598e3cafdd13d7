// The Datastore contract (src/datastore/types.ts) as a reusable vitest suite. Every backend runs it from its
// own test file: `datastoreContract('etcd', async () => ({ ds, cleanup }))`. `open` is called before each
// test and `cleanup` after it. Names carry a random suffix and assertions only look at the objects a test
// made, so the suite also works against a store other tests share.
//
// What it pins down: CRUD, AlreadyExists, NotFound (get → null; update/delete → NotFoundError), CAS on
// resourceVersion that writes nothing on conflict (also when two writers race), watch order and
// exactly-once delivery, watch from a revision (no replay of what came before it), stop(), and namespaced
// WorkloadEndpoints.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { API_VERSION, type Kind, type Resource } from '../../../src/resources/types.js';
import {
  AlreadyExistsError,
  ConflictError,
  NotFoundError,
  type Datastore,
  type WatchEvent,
} from '../../../src/datastore/types.js';
import { waitFor as poll } from '../../harness/wait.js';

export interface OpenedDatastore {
  ds: Datastore;
  cleanup(): Promise<void>;
}

const WAIT_MS = 5000;

/** Polls `predicate` every 10 ms until it holds or `timeoutMs` passes (then throws naming `what`). */
export async function waitFor(what: string, predicate: () => boolean, timeoutMs = WAIT_MS): Promise<void> {
  await poll(predicate, { what, timeoutMs, intervalMs: 10 });
}

function suffix(): string {
  return Math.random().toString(36).slice(2, 8);
}

function octet(): number {
  return 1 + Math.floor(Math.random() * 250);
}

export function pool(name: string, cidr: string, extra: Partial<Resource<'IPPool'>['spec']> = {}): Resource<'IPPool'> {
  return {
    apiVersion: API_VERSION,
    kind: 'IPPool',
    metadata: { name },
    spec: {
      cidr,
      blockSize: 26,
      ipipMode: 'Always',
      vxlanMode: 'Never',
      natOutgoing: true,
      nodeSelector: 'all()',
      ...extra,
    },
  };
}

export function peer(name: string, peerIP: string): Resource<'BGPPeer'> {
  return {
    apiVersion: API_VERSION,
    kind: 'BGPPeer',
    metadata: { name },
    spec: { peerIP, asNumber: 64513, nodeSelector: 'all()' },
  };
}

export function workloadEndpoint(namespace: string, name: string, ip: string): Resource<'WorkloadEndpoint'> {
  return {
    apiVersion: API_VERSION,
    kind: 'WorkloadEndpoint',
    metadata: { name, namespace, labels: { app: 'web' } },
    spec: {
      node: 'node-1',
      orchestrator: 'k8s',
      pod: name,
      endpoint: 'eth0',
      interfaceName: 'cali0123456789a',
      ipNetworks: [`${ip}/32`],
    },
  };
}

/** Collects the events of one watch that concern `names` (other tests may share the store). */
function collector<K extends Kind>(
  names: string[],
): { events: Array<WatchEvent<K>>; onEvent: (e: WatchEvent<K>) => void } {
  const events: Array<WatchEvent<K>> = [];
  return {
    events,
    onEvent: (e) => {
      if (e.type === 'sync' || e.type === 'error' || names.includes(e.resource.metadata.name)) events.push(e);
    },
  };
}

function summary<K extends Kind>(events: Array<WatchEvent<K>>): string[] {
  return events.map((e) =>
    e.type === 'sync' || e.type === 'error' ? e.type : `${e.type} ${e.resource.metadata.name}`,
  );
}

export function datastoreContract(name: string, open: () => Promise<OpenedDatastore>): void {
  describe(`Datastore contract: ${name}`, () => {
    let opened: OpenedDatastore;
    let ds: Datastore;
    let id: string;

    beforeEach(async () => {
      opened = await open();
      ds = opened.ds;
      id = suffix();
    });
    afterEach(async () => {
      await opened.cleanup();
    });

    it('creates, gets and lists, with a revision on every object', async () => {
      const cidr = `10.${octet()}.0.0/16`;
      const created = await ds.create(pool(`p-${id}`, cidr));
      expect(created.metadata.name).toBe(`p-${id}`);
      expect(typeof created.metadata.resourceVersion).toBe('string');
      expect(created.metadata.resourceVersion).not.toBe('');
      const got = await ds.get('IPPool', `p-${id}`);
      expect(got?.spec).toEqual(pool(`p-${id}`, cidr).spec);
      expect(got?.metadata.resourceVersion).toBe(created.metadata.resourceVersion);
      const listed = await ds.list('IPPool');
      expect(typeof listed.revision).toBe('string');
      expect(listed.items.filter((p) => p.metadata.name === `p-${id}`)).toHaveLength(1);
      expect(listed.items.every((p) => p.kind === 'IPPool')).toBe(true);
      await ds.create(peer(`p-${id}`, '198.18.0.1'));
      expect((await ds.list('IPPool')).items.filter((p) => p.metadata.name === `p-${id}`)).toHaveLength(1);
      expect((await ds.get('BGPPeer', `p-${id}`))?.spec.peerIP).toBe('198.18.0.1');
    });

    it('get of a missing object resolves null', async () => {
      expect(await ds.get('IPPool', `missing-${id}`)).toBeNull();
      expect(await ds.get('WorkloadEndpoint', `missing-${id}`, 'default')).toBeNull();
    });

    it('create of an existing name rejects with AlreadyExistsError and changes nothing', async () => {
      const first = await ds.create(pool(`p-${id}`, '10.10.0.0/16'));
      await expect(ds.create(pool(`p-${id}`, '10.20.0.0/16'))).rejects.toBeInstanceOf(AlreadyExistsError);
      const got = await ds.get('IPPool', `p-${id}`);
      expect(got?.spec.cidr).toBe('10.10.0.0/16');
      expect(got?.metadata.resourceVersion).toBe(first.metadata.resourceVersion);
    });

    it('update with the current revision writes and returns a new revision', async () => {
      const created = await ds.create(pool(`p-${id}`, '10.10.0.0/16'));
      const updated = await ds.update({ ...created, spec: { ...created.spec, natOutgoing: false } });
      expect(updated.metadata.resourceVersion).not.toBe(created.metadata.resourceVersion);
      const got = await ds.get('IPPool', `p-${id}`);
      expect(got?.spec.natOutgoing).toBe(false);
      expect(got?.metadata.resourceVersion).toBe(updated.metadata.resourceVersion);
    });

    it('update with a stale revision rejects with ConflictError and writes nothing', async () => {
      const created = await ds.create(pool(`p-${id}`, '10.10.0.0/16'));
      const second = await ds.update({ ...created, spec: { ...created.spec, natOutgoing: false } });
      const stale = { ...created, spec: { ...created.spec, disabled: true } };
      await expect(ds.update(stale)).rejects.toBeInstanceOf(ConflictError);
      const got = await ds.get('IPPool', `p-${id}`);
      expect(got?.spec.disabled).toBeUndefined();
      expect(got?.spec.natOutgoing).toBe(false);
      expect(got?.metadata.resourceVersion).toBe(second.metadata.resourceVersion);
    });

    it('of two writers racing on one revision, exactly one wins', async () => {
      const created = await ds.create(pool(`p-${id}`, '10.10.0.0/16'));
      const results = await Promise.allSettled([
        ds.update({ ...created, spec: { ...created.spec, natOutgoing: false } }),
        ds.update({ ...created, spec: { ...created.spec, disabled: true } }),
      ]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(1);
      expect(lost[0]!.reason).toBeInstanceOf(ConflictError);
      const got = await ds.get('IPPool', `p-${id}`);
      // Only the winner's change is there.
      expect(got?.spec.natOutgoing === false).not.toBe(got?.spec.disabled === true);
    });

    it('update without a revision is unconditional', async () => {
      await ds.create(pool(`p-${id}`, '10.10.0.0/16'));
      const blind = pool(`p-${id}`, '10.10.0.0/16', { natOutgoing: false });
      delete blind.metadata.resourceVersion;
      const updated = await ds.update(blind);
      expect(updated.spec.natOutgoing).toBe(false);
      expect((await ds.get('IPPool', `p-${id}`))?.spec.natOutgoing).toBe(false);
    });

    it('update and delete of a missing object reject with NotFoundError', async () => {
      await expect(ds.update(pool(`missing-${id}`, '10.10.0.0/16'))).rejects.toBeInstanceOf(NotFoundError);
      await expect(ds.delete('IPPool', `missing-${id}`)).rejects.toBeInstanceOf(NotFoundError);
      expect(await ds.get('IPPool', `missing-${id}`)).toBeNull();
    });

    it('delete with a stale revision rejects with ConflictError and deletes nothing; with the current one it deletes', async () => {
      const created = await ds.create(pool(`p-${id}`, '10.10.0.0/16'));
      const updated = await ds.update({ ...created, spec: { ...created.spec, natOutgoing: false } });
      await expect(
        ds.delete('IPPool', `p-${id}`, { revision: created.metadata.resourceVersion! }),
      ).rejects.toBeInstanceOf(ConflictError);
      expect(await ds.get('IPPool', `p-${id}`)).not.toBeNull();
      const deleted = await ds.delete('IPPool', `p-${id}`, { revision: updated.metadata.resourceVersion! });
      expect(deleted.metadata.name).toBe(`p-${id}`);
      expect(deleted.spec.cidr).toBe('10.10.0.0/16');
      expect(await ds.get('IPPool', `p-${id}`)).toBeNull();
    });

    it('keeps WorkloadEndpoints apart by namespace', async () => {
      const [nsA, nsB] = [`ns-a-${id}`, `ns-b-${id}`];
      await ds.create(workloadEndpoint(nsA, `pod-${id}`, '10.244.1.5'));
      await ds.create(workloadEndpoint(nsB, `pod-${id}`, '10.244.1.6'));
      await expect(ds.create(workloadEndpoint(nsA, `pod-${id}`, '10.244.1.7'))).rejects.toBeInstanceOf(
        AlreadyExistsError,
      );
      expect((await ds.get('WorkloadEndpoint', `pod-${id}`, nsA))?.spec.ipNetworks).toEqual(['10.244.1.5/32']);
      expect((await ds.get('WorkloadEndpoint', `pod-${id}`, nsB))?.spec.ipNetworks).toEqual(['10.244.1.6/32']);
      expect((await ds.get('WorkloadEndpoint', `pod-${id}`, nsA))?.metadata.namespace).toBe(nsA);
      const inA = (await ds.list('WorkloadEndpoint', { namespace: nsA })).items;
      expect(inA.map((w) => `${w.metadata.namespace}/${w.metadata.name}`)).toEqual([`${nsA}/pod-${id}`]);
      const all = (await ds.list('WorkloadEndpoint')).items.filter((w) => w.metadata.name === `pod-${id}`);
      expect(all.map((w) => w.metadata.namespace).sort()).toEqual([nsA, nsB]);
      await ds.delete('WorkloadEndpoint', `pod-${id}`, { namespace: nsA });
      expect(await ds.get('WorkloadEndpoint', `pod-${id}`, nsA)).toBeNull();
      expect(await ds.get('WorkloadEndpoint', `pod-${id}`, nsB)).not.toBeNull();
    });

    it('round-trips IPAM state exactly (null allocations, attributes, affinity)', async () => {
      const [a, b] = [octet(), octet()];
      const block: Resource<'IPAMBlock'> = {
        apiVersion: API_VERSION,
        kind: 'IPAMBlock',
        metadata: { name: `10-${a}-${b}-0-26` },
        spec: {
          cidr: `10.${a}.${b}.0/26`,
          affinity: `host:node-${id}`,
          strictAffinity: false,
          allocations: [0, null, ...Array<null>(62).fill(null)],
          unallocated: Array.from({ length: 63 }, (_, i) => i + 1),
          attributes: [{ handle_id: `k8s-pod-network.${id}`, secondary: { namespace: 'default', pod: 'web' } }],
          deleted: false,
        },
      };
      await ds.create(block);
      try {
        const got = await ds.get('IPAMBlock', block.metadata.name);
        expect(got?.spec.cidr).toBe(block.spec.cidr);
        expect(got?.spec.allocations).toEqual(block.spec.allocations);
        expect(got?.spec.unallocated).toEqual(block.spec.unallocated);
        expect(got?.spec.attributes).toEqual(block.spec.attributes);
        expect(got?.spec.affinity).toBe(`host:node-${id}`);
      } finally {
        await ds.delete('IPAMBlock', block.metadata.name);
      }
    });

    it('watch from a list revision delivers every later change of that kind, in order, once', async () => {
      const names = [`a-${id}`, `b-${id}`];
      const start = await ds.list('IPPool');
      const seen = collector<'IPPool'>(names);
      const watch = ds.watch('IPPool', start.revision, seen.onEvent);
      try {
        const a = await ds.create(pool(names[0]!, '10.30.0.0/16'));
        await ds.create(peer(names[0]!, '198.18.0.2')); // another kind: must not show up
        const a2 = await ds.update({ ...a, spec: { ...a.spec, natOutgoing: false } });
        await ds.create(pool(names[1]!, '10.31.0.0/16'));
        await ds.delete('IPPool', names[0]!);
        await waitFor('4 IPPool events', () => seen.events.length >= 4);
        await ds.delete('IPPool', names[1]!); // a sentinel: once it arrives, nothing earlier is still on its way
        await waitFor('5 IPPool events', () => seen.events.length >= 5);
        expect(summary(seen.events)).toEqual([
          `added ${names[0]}`,
          `modified ${names[0]}`,
          `added ${names[1]}`,
          `deleted ${names[0]}`,
          `deleted ${names[1]}`,
        ]);
        const modified = seen.events[1]!;
        expect(modified.type === 'modified' && modified.resource.spec.natOutgoing).toBe(false);
        expect(modified.type === 'modified' && modified.revision).toBe(a2.metadata.resourceVersion);
        expect(seen.events.every((e) => e.type !== 'error' && e.type !== 'sync' && e.resource.kind === 'IPPool')).toBe(
          true,
        );
      } finally {
        watch.stop();
      }
    });

    it('watch from a revision does not replay changes made before it', async () => {
      const names = [`old-${id}`, `new-${id}`];
      await ds.create(pool(names[0]!, '10.40.0.0/16'));
      const after = await ds.list('IPPool');
      await ds.create(pool(names[1]!, '10.41.0.0/16'));
      const seen = collector<'IPPool'>(names);
      const watch = ds.watch('IPPool', after.revision, seen.onEvent);
      try {
        await waitFor('the event of the later create', () => seen.events.length >= 1);
        await ds.update(pool(names[1]!, '10.41.0.0/16', { natOutgoing: false }));
        await waitFor('the sentinel update', () => seen.events.length >= 2);
        expect(summary(seen.events)).toEqual([`added ${names[1]}`, `modified ${names[1]}`]);
      } finally {
        watch.stop();
      }
    });

    it('a stopped watch delivers nothing more', async () => {
      const names = [`w-${id}`];
      const start = await ds.list('IPPool');
      const stopped = collector<'IPPool'>(names);
      const running = collector<'IPPool'>(names);
      const first = ds.watch('IPPool', start.revision, stopped.onEvent);
      const second = ds.watch('IPPool', start.revision, running.onEvent);
      try {
        first.stop();
        await ds.create(pool(names[0]!, '10.50.0.0/16'));
        await waitFor('the event on the running watch', () => running.events.length >= 1);
        expect(stopped.events).toEqual([]);
      } finally {
        second.stop();
      }
    });

    it('watches namespaced WorkloadEndpoints with their namespace', async () => {
      const names = [`pod-${id}`];
      const start = await ds.list('WorkloadEndpoint');
      const seen = collector<'WorkloadEndpoint'>(names);
      const watch = ds.watch('WorkloadEndpoint', start.revision, seen.onEvent);
      try {
        await ds.create(workloadEndpoint(`ns-${id}`, names[0]!, '10.244.2.5'));
        await ds.delete('WorkloadEndpoint', names[0]!, { namespace: `ns-${id}` });
        await waitFor('2 WorkloadEndpoint events', () => seen.events.length >= 2);
        expect(summary(seen.events)).toEqual([`added ${names[0]}`, `deleted ${names[0]}`]);
        expect(
          seen.events.map((e) => (e.type === 'added' || e.type === 'deleted' ? e.resource.metadata.namespace : null)),
        ).toEqual([`ns-${id}`, `ns-${id}`]);
      } finally {
        watch.stop();
      }
    });
  });
}
