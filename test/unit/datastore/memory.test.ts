// MemoryDatastore: the shared contract suite, plus what only the in-memory store can show cheaply —
// bounded history and the `sync` a watch gets when it starts from a revision older than that history.

import { describe, expect, it } from 'vitest';
import { MemoryDatastore } from '../../../src/datastore/memory.js';
import type { WatchEvent } from '../../../src/datastore/types.js';
import { datastoreContract, pool, waitFor } from './contract.js';

datastoreContract('memory', async () => {
  const ds = new MemoryDatastore();
  return { ds, cleanup: () => ds.close() };
});

describe('MemoryDatastore specifics', () => {
  it('revisions are increasing integers shared by all kinds', async () => {
    const ds = new MemoryDatastore();
    const a = await ds.create(pool('a', '10.1.0.0/16'));
    const b = await ds.create(pool('b', '10.2.0.0/16'));
    expect(Number(b.metadata.resourceVersion)).toBeGreaterThan(Number(a.metadata.resourceVersion));
    expect((await ds.list('BGPPeer')).revision).toBe(b.metadata.resourceVersion);
  });

  it('sets uid and creationTimestamp on create and keeps them on update', async () => {
    const ds = new MemoryDatastore({ now: () => new Date('2026-01-02T03:04:05Z'), newUid: () => 'uid-1' });
    const a = await ds.create(pool('a', '10.1.0.0/16'));
    expect(a.metadata).toMatchObject({ uid: 'uid-1', creationTimestamp: '2026-01-02T03:04:05.000Z' });
    const b = await ds.update({ ...pool('a', '10.1.0.0/16'), metadata: { name: 'a' } });
    expect(b.metadata).toMatchObject({ uid: 'uid-1', creationTimestamp: '2026-01-02T03:04:05.000Z' });
  });

  it('returns copies: changing a returned object changes nothing stored', async () => {
    const ds = new MemoryDatastore();
    const a = await ds.create(pool('a', '10.1.0.0/16'));
    a.spec.cidr = '10.9.0.0/16';
    expect((await ds.get('IPPool', 'a'))?.spec.cidr).toBe('10.1.0.0/16');
  });

  it('replays kept history to a watch from an old revision', async () => {
    const ds = new MemoryDatastore();
    await ds.create(pool('a', '10.1.0.0/16'));
    await ds.create(pool('b', '10.2.0.0/16'));
    const events: Array<WatchEvent<'IPPool'>> = [];
    const watch = ds.watch('IPPool', '0', (e) => events.push(e));
    await waitFor('2 replayed events', () => events.length >= 2);
    expect(events.map((e) => e.type === 'added' && e.resource.metadata.name)).toEqual(['a', 'b']);
    expect(events.map((e) => e.type === 'added' && e.revision)).toEqual(['1', '2']);
    watch.stop();
  });

  it('sends one sync with the whole list when the revision is older than the kept history, then continues', async () => {
    const ds = new MemoryDatastore({ historyLimit: 2 });
    await ds.create(pool('a', '10.1.0.0/16'));
    await ds.create(pool('b', '10.2.0.0/16'));
    await ds.create(pool('c', '10.3.0.0/16'));
    await ds.delete('IPPool', 'a');
    const events: Array<WatchEvent<'IPPool'>> = [];
    const watch = ds.watch('IPPool', '1', (e) => events.push(e));
    await ds.create(pool('d', '10.4.0.0/16'));
    await waitFor('sync + 1 event', () => events.length >= 2);
    const [sync, next] = events;
    expect(sync?.type).toBe('sync');
    expect(sync?.type === 'sync' && sync.items.map((p) => p.metadata.name)).toEqual(['b', 'c']);
    expect(sync?.type === 'sync' && sync.revision).toBe('4');
    expect(next?.type === 'added' && next.resource.metadata.name).toBe('d');
    expect(events).toHaveLength(2);
    watch.stop();
  });

  it('compact() makes a watch from before it re-list', async () => {
    const ds = new MemoryDatastore();
    await ds.create(pool('a', '10.1.0.0/16'));
    ds.compact();
    const events: Array<WatchEvent<'IPPool'>> = [];
    ds.watch('IPPool', '0', (e) => events.push(e));
    await waitFor('sync', () => events.length >= 1);
    expect(events[0]?.type).toBe('sync');
    const fromNow: Array<WatchEvent<'IPPool'>> = [];
    ds.watch('IPPool', ds.currentRevision, (e) => fromNow.push(e));
    await ds.create(pool('b', '10.2.0.0/16'));
    await waitFor('added b', () => fromNow.length >= 1);
    expect(fromNow.map((e) => e.type)).toEqual(['added']);
  });

  it('reports a revision that is not a number as an error event', async () => {
    const ds = new MemoryDatastore();
    const events: Array<WatchEvent<'IPPool'>> = [];
    ds.watch('IPPool', 'abc', (e) => events.push(e));
    await waitFor('error', () => events.length >= 1);
    expect(events[0]?.type === 'error' && events[0].error.message).toMatch(/"abc" is not a revision/);
  });

  it('a callback that writes sees its own write after the current event, not inside it', async () => {
    const ds = new MemoryDatastore();
    const order: string[] = [];
    ds.watch('IPPool', ds.currentRevision, (e) => {
      if (e.type !== 'added') return;
      order.push(`start ${e.resource.metadata.name}`);
      if (e.resource.metadata.name === 'a') void ds.create(pool('b', '10.2.0.0/16'));
      order.push(`end ${e.resource.metadata.name}`);
    });
    await ds.create(pool('a', '10.1.0.0/16'));
    await waitFor('both events', () => order.length >= 4);
    expect(order).toEqual(['start a', 'end a', 'start b', 'end b']);
  });
});
