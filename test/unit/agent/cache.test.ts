// ResourceCache over MemoryDatastore on a FakeClock: initial lists, one coalesced 'changed' per burst,
// deletes and syncs, and recovery from watch errors by re-listing with doubling backoff while the lag grows.

import { describe, expect, it } from 'vitest';
import { FakeClock, settle } from '../../../bgp/clock.js';
import { CACHED_KINDS, ResourceCache, type CachedKind } from '../../../src/agent/cache.js';
import { MemoryDatastore } from '../../../src/datastore/memory.js';
import type { Datastore, WatchEvent } from '../../../src/datastore/types.js';
import { API_VERSION, type Kind, type Resource } from '../../../src/resources/types.js';

function node(name: string, ip: string): Resource<'Node'> {
  return { apiVersion: API_VERSION, kind: 'Node', metadata: { name }, spec: { bgp: { ipv4Address: ip } } };
}

function pool(name: string, cidr: string): Resource<'IPPool'> {
  return { apiVersion: API_VERSION, kind: 'IPPool', metadata: { name }, spec: { cidr } };
}

/** A MemoryDatastore whose watches can be sent an error and whose lists can be made to fail. */
class FaultyDatastore {
  readonly inner = new MemoryDatastore();
  failLists = 0;
  lists = 0;
  private readonly callbacks = new Map<Kind, (event: WatchEvent<Kind>) => void>();
  readonly ds: Datastore;

  constructor() {
    this.ds = {
      type: 'faulty',
      get: (kind, name, ns) => this.inner.get(kind, name, ns),
      list: async (kind, options) => {
        this.lists++;
        if (this.failLists > 0) {
          this.failLists--;
          throw new Error('etcd at http://127.0.0.1:1: connection refused');
        }
        return this.inner.list(kind, options);
      },
      create: (r) => this.inner.create(r),
      update: (r) => this.inner.update(r),
      delete: (kind, name, options) => this.inner.delete(kind, name, options),
      watch: (kind, from, onEvent) => {
        this.callbacks.set(kind, onEvent as (event: WatchEvent<Kind>) => void);
        return this.inner.watch(kind, from, onEvent);
      },
      close: () => this.inner.close(),
    };
  }

  breakWatch(kind: Kind): void {
    this.callbacks.get(kind)!({ type: 'error', error: new Error(`watch ${kind}: stream reset`) });
  }
}

async function advance(clock: FakeClock, ms: number): Promise<void> {
  await settle(10);
  await clock.advanceAsync(ms);
  await settle(10);
}

describe('ResourceCache', () => {
  it('lists every kind at start and serves list/get', async () => {
    const ds = new MemoryDatastore();
    await ds.create(node('node-1', '198.18.0.11/24'));
    await ds.create(pool('p1', '10.244.0.0/16'));
    const cache = new ResourceCache(ds, { clock: new FakeClock() });
    await cache.start();
    expect(CACHED_KINDS).toContain('WorkloadEndpoint');
    expect(cache.list('Node').map((n) => n.metadata.name)).toEqual(['node-1']);
    expect(cache.get('IPPool', 'p1')?.spec.cidr).toBe('10.244.0.0/16');
    expect(cache.list('BGPPeer')).toEqual([]);
    expect(cache.connected).toBe(true);
    expect(cache.lagSeconds()).toBe(0);
    cache.stop();
  });

  it('emits one changed per burst, naming the kinds', async () => {
    const clock = new FakeClock();
    const ds = new MemoryDatastore();
    const cache = new ResourceCache(ds, { clock, coalesceMs: 20 });
    const bursts: Array<Set<CachedKind>> = [];
    cache.on('changed', (kinds) => bursts.push(new Set(kinds)));
    await cache.start();
    await advance(clock, 20);
    bursts.length = 0; // the initial lists
    for (let i = 1; i <= 5; i++) await ds.create(node(`node-${i}`, `198.18.0.${10 + i}/24`));
    await ds.create(pool('p1', '10.244.0.0/16'));
    await settle(10);
    expect(bursts).toHaveLength(0);
    await advance(clock, 20);
    expect(bursts).toEqual([new Set(['Node', 'IPPool'])]);
    expect(cache.list('Node')).toHaveLength(5);
    await ds.delete('Node', 'node-3');
    await advance(clock, 20);
    expect(bursts).toHaveLength(2);
    expect(cache.get('Node', 'node-3')).toBeUndefined();
    expect(cache.list('Node')).toHaveLength(4);
    cache.stop();
  });

  it('after a watch error: stale with growing lag, re-lists with doubling backoff, then current again', async () => {
    const clock = new FakeClock();
    const faulty = new FaultyDatastore();
    const errors: string[] = [];
    const cache = new ResourceCache(faulty.ds, {
      clock,
      coalesceMs: 5,
      backoffMs: { initial: 100, max: 1000 },
      onError: (kind, e) => errors.push(`${kind}: ${e.message}`),
    });
    await cache.start();
    await faulty.inner.create(node('node-1', '198.18.0.11/24'));
    await advance(clock, 5);
    expect(cache.list('Node')).toHaveLength(1);

    faulty.failLists = 2;
    faulty.breakWatch('Node');
    expect(cache.connected).toBe(false);
    expect(cache.lastError).toBe('watch Node: stream reset');
    // A change made while the watch is down must show up after the re-list.
    await faulty.inner.create(node('node-2', '198.18.0.12/24'));
    const listsBefore = faulty.lists;
    await advance(clock, 99);
    expect(faulty.lists).toBe(listsBefore);
    await advance(clock, 1); // 100 ms: first re-list, fails
    expect(faulty.lists).toBe(listsBefore + 1);
    await advance(clock, 199);
    expect(faulty.lists).toBe(listsBefore + 1);
    await advance(clock, 1); // +200 ms: second re-list, fails
    expect(faulty.lists).toBe(listsBefore + 2);
    expect(cache.lagSeconds()).toBeCloseTo(0.3, 5);
    expect(cache.lastError).toMatch(/connection refused/);
    await advance(clock, 400); // +400 ms: third re-list succeeds
    expect(faulty.lists).toBe(listsBefore + 3);
    expect(cache.connected).toBe(true);
    expect(cache.lagSeconds()).toBe(0);
    expect(
      cache
        .list('Node')
        .map((n) => n.metadata.name)
        .sort(),
    ).toEqual(['node-1', 'node-2']);
    expect(errors).toHaveLength(3);
    // And the new watch is live.
    await faulty.inner.create(node('node-3', '198.18.0.13/24'));
    await advance(clock, 5);
    expect(cache.list('Node')).toHaveLength(3);
    cache.stop();
  });

  it('a sync event (compaction) replaces the kind', async () => {
    const clock = new FakeClock();
    const faulty = new FaultyDatastore();
    const cache = new ResourceCache(faulty.ds, { clock, coalesceMs: 5 });
    await cache.start();
    await faulty.inner.create(node('node-1', '198.18.0.11/24'));
    await advance(clock, 5);
    expect(cache.list('Node')).toHaveLength(1);
    // Simulate the backend's re-list after it could not resume.
    const cb = (faulty as unknown as { callbacks: Map<Kind, (e: WatchEvent<Kind>) => void> }).callbacks.get('Node')!;
    cb({ type: 'sync', items: [node('node-9', '198.18.0.19/24')], revision: '99' });
    await advance(clock, 5);
    expect(cache.list('Node').map((n) => n.metadata.name)).toEqual(['node-9']);
    cache.stop();
  });

  it('adaptive coalescing: no wait after a quiet period, a growing window while changes keep coming', async () => {
    const clock = new FakeClock();
    const ds = new MemoryDatastore();
    const cache = new ResourceCache(ds, { clock, coalesceMs: 20 });
    const fired: number[] = [];
    cache.on('changed', () => fired.push(clock.now()));
    await cache.start();
    await advance(clock, 100); // the initial lists, then quiet
    fired.length = 0;

    // Quiet: the first change fires without any time passing; changes of the same turn join it.
    await ds.create(node('node-1', '198.18.0.11/24'));
    await ds.create(node('node-2', '198.18.0.12/24'));
    await settle(10);
    await advance(clock, 0);
    expect(fired).toEqual([100]);

    // A claim-like sequence, writes 5 ms apart: each is applied as it arrives (the window, 2.5 then 5 ms, has passed).
    await advance(clock, 5);
    await ds.create(pool('p1', '10.244.0.0/16'));
    await advance(clock, 0);
    await advance(clock, 5);
    await ds.create(pool('p2', '10.245.0.0/16'));
    await advance(clock, 0);
    expect(fired).toEqual([100, 105, 110]);

    // A storm, one change every ms for 200 ms: the window doubles to 20 ms; at most one 'changed' per 20 ms then.
    fired.length = 0;
    for (let i = 0; i < 200; i++) {
      await ds.create(node(`storm-${i}`, `198.18.1.${i}/24`));
      await advance(clock, 1);
    }
    await advance(clock, 20);
    expect(fired.length).toBeLessThanOrEqual(14);
    expect(fired.length).toBeGreaterThanOrEqual(10);
    const gaps = fired.slice(1).map((t, i) => t - fired[i]!);
    expect(gaps.slice(-5).every((g) => g === 20)).toBe(true);
    expect(cache.list('Node')).toHaveLength(202);

    // Quiet again (more than 20 ms since the last 'changed'): at once.
    await advance(clock, 50);
    fired.length = 0;
    const t = clock.now();
    await ds.delete('Node', 'node-1');
    await advance(clock, 0);
    expect(fired).toEqual([t]);
    cache.stop();
  });
});
