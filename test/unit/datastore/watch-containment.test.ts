// Watch loops survive what one event can do to them (issue #15): a response etcd's stream hands over
// that cannot be read, a consumer whose handler throws, an event the agent's cache cannot apply, a
// listener of the cache that throws. None may throw into the transport's stream, end the process, or be
// lost silently: each becomes a watch `error` event (the cache re-lists that kind) and the loop goes on.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock, settle } from '../../../bgp/clock.js';
import { ResourceCache } from '../../../src/agent/cache.js';
import {
  EtcdStore,
  WATCH_BACKOFF_MS,
  type EtcdTransport,
  type WatchHandlers,
  type WatchResponse,
} from '../../../src/datastore/etcd-store.js';
import { openKubernetes } from '../../../src/datastore/kubernetes.js';
import { MemoryDatastore } from '../../../src/datastore/memory.js';
import type { Datastore, WatchEvent } from '../../../src/datastore/types.js';
import { API_VERSION, type Kind, type Resource } from '../../../src/resources/types.js';
import { startFakeApiServer, type FakeApiServer } from '../../harness/fake-apiserver.js';
import { waitFor } from '../../harness/wait.js';

function pool(name: string, cidr: string): Resource<'IPPool'> {
  return { apiVersion: API_VERSION, kind: 'IPPool', metadata: { name }, spec: { cidr } };
}

/** An EtcdTransport with no data whose watch streams the test drives by hand. */
function scriptedTransport() {
  const streams: WatchHandlers[] = [];
  const transport: EtcdTransport = {
    endpoints: ['http://127.0.0.1:2379'],
    timeoutMs: 1000,
    range: async () => ({ revision: '10', kvs: [] }),
    txn: async () => ({ revision: '10', succeeded: true, responses: [] }),
    watch: (_request, handlers) => {
      streams.push(handlers);
      return { cancel: () => undefined };
    },
    isRefusal: () => false,
    close: () => undefined,
  };
  return { transport, streams };
}

const ok = (events: WatchResponse['events']): WatchResponse => ({
  created: false,
  canceled: false,
  cancel_reason: '',
  compact_revision: '0',
  events,
});
const kv = (name: string, revision: number, value: string) => ({
  key: Buffer.from(`/calico/resources/v3/projectcalico.org/ippools/${name}`),
  value: Buffer.from(value),
  create_revision: String(revision),
  mod_revision: String(revision),
});
const poolJson = (name: string, cidr: string) => JSON.stringify({ ...pool(name, cidr), metadata: { name } });

describe('etcd watch', () => {
  it('a response that cannot be read does not throw into the stream: an error event, then the watch re-opens', async () => {
    const { transport, streams } = scriptedTransport();
    const store = new EtcdStore(transport);
    const events: Array<WatchEvent<'IPPool'>> = [];
    const watch = store.watch('IPPool', '10', (event) => events.push(event));
    expect(streams).toHaveLength(1);
    // An event without its key-value (a transport that handed over something odd).
    const broken = ok([{ type: 'Put' } as unknown as WatchResponse['events'][number]]);
    expect(() => streams[0]!.onResponse(broken)).not.toThrow();
    expect(events.map((e) => e.type)).toEqual(['error']);
    // The watch goes on: on a new stream (the old one was given up), later events arrive.
    await waitFor(() => streams.length >= 2, { what: 'a second watch stream', timeoutMs: 5_000, intervalMs: 10 });
    expect(streams).toHaveLength(2);
    streams[1]!.onResponse(ok([{ type: 'Put', kv: kv('p1', 11, poolJson('p1', '10.9.0.0/16')) }]));
    expect(events.map((e) => e.type)).toEqual(['error', 'added']);
    watch.stop();
  });

  it('responses that stay unreadable are reported once, and re-opening backs off (on the injected clock)', () => {
    const { transport, streams } = scriptedTransport();
    const clock = new FakeClock();
    const store = new EtcdStore(transport, { clock });
    const events: Array<WatchEvent<'IPPool'>> = [];
    const watch = store.watch('IPPool', '10', (event) => events.push(event));
    const broken = ok([{ type: 'Put' } as unknown as WatchResponse['events'][number]]);
    // 50, 100, 200, 400 ms (WATCH_BACKOFF_MS): each re-open comes exactly that long after its failure.
    for (const delay of WATCH_BACKOFF_MS.slice(0, 4)) {
      const stream = streams[streams.length - 1]!;
      stream.onResponse({ ...ok([]), created: true });
      stream.onResponse(broken);
      const count = streams.length;
      clock.advance(delay - 1);
      expect(streams.length, `not re-opened before ${delay} ms`).toBe(count);
      clock.advance(1);
      expect(streams.length, `re-opened at ${delay} ms`).toBe(count + 1);
    }
    expect(events.map((e) => e.type)).toEqual(['error']);
    watch.stop();
  });

  it('a broken stream is re-opened after 50, 100, ... 1000 ms, then every 1000 ms; an answer resets the backoff', () => {
    const { transport, streams } = scriptedTransport();
    const clock = new FakeClock();
    const store = new EtcdStore(transport, { clock });
    const events: Array<WatchEvent<'IPPool'>> = [];
    const watch = store.watch('IPPool', '10', (event) => events.push(event));
    const reopenedAfter = (): number => {
      const count = streams.length;
      streams[count - 1]!.onBroken(new Error('connection lost'));
      const start = clock.now();
      for (let step = 0; step < 10_000 && streams.length === count; step++) clock.advance(1);
      return clock.now() - start;
    };
    const delays = Array.from({ length: 8 }, reopenedAfter);
    expect(delays).toEqual([50, 100, 200, 400, 800, 1000, 1000, 1000]);
    expect(events.map((e) => e.type)).toEqual(['error']); // said once while it lasts
    // etcd answers on the new stream: the next break starts the backoff again.
    streams[streams.length - 1]!.onResponse({ ...ok([]), created: true });
    expect(reopenedAfter()).toBe(50);
    // stop() clears the pending re-open.
    streams[streams.length - 1]!.onBroken(new Error('connection lost'));
    expect(clock.pending).toBe(1);
    watch.stop();
    expect(clock.pending).toBe(0);
  });

  it('a consumer that throws gets an error event instead, and the next event still arrives', () => {
    const { transport, streams } = scriptedTransport();
    const store = new EtcdStore(transport);
    const seen: string[] = [];
    let throwNext = true;
    const watch = store.watch('IPPool', '10', (event) => {
      seen.push(event.type);
      if (event.type !== 'error' && throwNext) {
        throwNext = false;
        throw new Error('consumer bug');
      }
    });
    expect(() =>
      streams[0]!.onResponse(ok([{ type: 'Put', kv: kv('p1', 11, poolJson('p1', '10.9.0.0/16')) }])),
    ).not.toThrow();
    streams[0]!.onResponse(ok([{ type: 'Put', kv: kv('p2', 12, poolJson('p2', '10.10.0.0/16')) }]));
    expect(seen).toEqual(['added', 'error', 'added']);
    watch.stop();
  });
});

describe('kubernetes watch', () => {
  let api: FakeApiServer;
  let ds: Datastore;
  beforeAll(async () => {
    api = await startFakeApiServer();
    ds = await openKubernetes({ kubeconfig: api.kubeconfigPath, timeoutMs: 2000, watchRetryMs: 20 });
  });
  afterAll(async () => {
    await ds?.close();
    await api?.stop();
  });

  it('a consumer that throws is told with an error event (client-node would swallow the throw and lose the event)', async () => {
    const list = await ds.list('IPPool');
    const seen: string[] = [];
    let throwNext = true;
    const watch = ds.watch('IPPool', list.revision, (event) => {
      seen.push(event.type);
      if (event.type !== 'error' && throwNext) {
        throwNext = false;
        throw new Error('consumer bug');
      }
    });
    await waitFor(() => api.openWatches() > 0, {
      what: 'the watch open at the API server',
      timeoutMs: 5_000,
      intervalMs: 10,
    });
    await ds.create(pool('p1', '10.9.0.0/16'));
    await waitFor(() => seen.length >= 2, { what: 'two watch events', timeoutMs: 5_000, intervalMs: 10 });
    expect(seen.slice(0, 2)).toEqual(['added', 'error']);
    await ds.create(pool('p2', '10.10.0.0/16'));
    await waitFor(() => seen.length >= 3, { what: 'three watch events', timeoutMs: 5_000, intervalMs: 10 });
    expect(seen).toContain('added');
    expect(seen.length).toBeGreaterThanOrEqual(3);
    watch.stop();
  });
});

describe('the agent cache', () => {
  /** A MemoryDatastore whose IPPool watch the test can push raw events into. */
  function pushable() {
    const inner = new MemoryDatastore();
    let push: ((event: WatchEvent<Kind>) => void) | null = null;
    let lists = 0;
    const ds: Datastore = {
      type: 'pushable',
      get: (kind, name, ns) => inner.get(kind, name, ns),
      list: (kind, options) => {
        if (kind === 'IPPool') lists++;
        return inner.list(kind, options);
      },
      create: (r) => inner.create(r),
      update: (r) => inner.update(r),
      delete: (kind, name, options) => inner.delete(kind, name, options),
      watch: (kind, from, onEvent) => {
        if (kind === 'IPPool') push = onEvent as (event: WatchEvent<Kind>) => void;
        return inner.watch(kind, from, onEvent);
      },
      close: () => inner.close(),
    };
    return { inner, ds, push: (event: WatchEvent<Kind>) => push!(event), lists: () => lists };
  }

  it('an event it cannot apply makes that kind re-list instead of throwing into the watch', async () => {
    const clock = new FakeClock();
    const p = pushable();
    const errors: string[] = [];
    const cache = new ResourceCache(p.ds, {
      clock,
      coalesceMs: 5,
      backoffMs: { initial: 100, max: 1000 },
      onError: (kind, e) => errors.push(`${kind}: ${e.message}`),
    });
    await cache.start();
    const before = p.lists();
    await p.inner.create(pool('p1', '10.9.0.0/16'));
    expect(() => p.push({ type: 'added', resource: {} as Resource, revision: '99' })).not.toThrow();
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^IPPool: /);
    await settle(10);
    await clock.advanceAsync(100);
    await settle(10);
    expect(p.lists()).toBe(before + 1);
    expect(cache.list('IPPool').map((x) => x.metadata.name)).toEqual(['p1']);
    expect(cache.connected).toBe(true);
    cache.stop();
  });

  it("a listener of changed that throws does not throw out of the cache's timer, and later bursts still come", async () => {
    const clock = new FakeClock();
    const p = pushable();
    const errors: string[] = [];
    const cache = new ResourceCache(p.ds, {
      clock,
      coalesceMs: 5,
      onError: (kind, e) => errors.push(`${kind}: ${e.message}`),
    });
    let calls = 0;
    cache.on('changed', () => {
      calls++;
      if (calls === 1) throw new Error('listener bug');
    });
    await cache.start();
    await settle(10);
    await expect(clock.advanceAsync(5)).resolves.not.toThrow();
    expect(calls).toBe(1);
    expect(errors.some((e) => e.includes('listener bug'))).toBe(true);
    await p.inner.create(pool('p1', '10.9.0.0/16'));
    await settle(10);
    await clock.advanceAsync(5);
    expect(calls).toBe(2);
    cache.stop();
  });
});
