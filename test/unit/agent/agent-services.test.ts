// The agent's service IP advertisement (src/agent/agent.ts + ./service-watch.ts) with a fake Speaker and an
// in-memory Kubernetes API: the service routes join the originated set and follow the EndpointSlices; the
// watch is started only while a service CIDR is configured; without a Kubernetes API only the CIDRs are
// advertised and node status says the per-Service /32s are not in effect; a 410 Gone re-lists.

import { describe, expect, it } from 'vitest';
import { formatPrefix } from '../../../bgp/ip.js';
import type { EndpointSliceObject, ServiceObject } from '../../../src/agent/service-routes.js';
import {
  ENDPOINT_SLICES_PATH,
  SERVICES_PATH,
  type ListPage,
  type ServiceApi,
} from '../../../src/agent/service-watch.js';
import { MemoryDatastore } from '../../../src/datastore/memory.js';
import { res, testAgent, until } from '../helpers/agent-fixtures.js';

type Item = ServiceObject | EndpointSliceObject;

/** A Kubernetes API in memory: lists at a resourceVersion, watches that get every later change, 410 on demand. */
class MemoryServiceApi implements ServiceApi {
  readonly server = 'memory://api';
  private rv = 1;
  private readonly store = new Map<string, Map<string, Item>>([
    [SERVICES_PATH, new Map()],
    [ENDPOINT_SLICES_PATH, new Map()],
  ]);
  private readonly watchers = new Set<{ path: string; onLine: (type: string, obj: unknown) => void }>();
  lists = 0;
  /** The next watch opened answers 410 Gone. */
  goneNext = 0;

  put(path: string, item: Item): void {
    const stored = { ...item, metadata: { ...item.metadata, resourceVersion: String(++this.rv) } } as Item;
    const key = `${item.metadata?.namespace}/${item.metadata?.name}`;
    const type = this.store.get(path)!.has(key) ? 'MODIFIED' : 'ADDED';
    this.store.get(path)!.set(key, stored);
    for (const w of this.watchers) if (w.path === path) w.onLine(type, stored);
  }

  private list<T extends Item>(path: string): Promise<ListPage<T>> {
    this.lists++;
    return Promise.resolve({
      items: [...this.store.get(path)!.values()] as T[],
      revision: String(this.rv),
      next: undefined,
    });
  }

  listServices = () => this.list<ServiceObject>(SERVICES_PATH);
  listEndpointSlices = () => this.list<EndpointSliceObject>(ENDPOINT_SLICES_PATH);

  watch(path: string, _rv: string, onLine: (type: string, obj: unknown) => void): Promise<AbortController> {
    const controller = new AbortController();
    if (this.goneNext > 0) {
      this.goneNext--;
      queueMicrotask(() =>
        onLine('ERROR', { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' }),
      );
      return Promise.resolve(controller);
    }
    const w = { path, onLine };
    this.watchers.add(w);
    controller.signal.addEventListener('abort', () => this.watchers.delete(w));
    return Promise.resolve(controller);
  }

  /** Watch streams open now. */
  get open(): number {
    return this.watchers.size;
  }

  /** Every open stream reports 410 Gone (the server forgot the versions they watch from). */
  expireWatches(): void {
    for (const w of [...this.watchers])
      w.onLine('ERROR', { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' });
  }
}

const SERVICE: ServiceObject = {
  metadata: { name: 'web', namespace: 'shop' },
  spec: {
    type: 'LoadBalancer',
    clusterIP: '10.96.0.10',
    clusterIPs: ['10.96.0.10'],
    ipFamilies: ['IPv4'],
    externalTrafficPolicy: 'Local',
  },
  status: { loadBalancer: { ingress: [{ ip: '192.0.2.5' }] } },
};

function slice(nodeName: string): EndpointSliceObject {
  return {
    metadata: { name: 'web-1', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
    addressType: 'IPv4',
    endpoints: [{ addresses: ['10.244.0.5'], nodeName, conditions: { ready: true } }],
  };
}

async function withPool(): Promise<MemoryDatastore> {
  const ds = new MemoryDatastore();
  await ds.create(res('IPPool', 'mine', { cidr: '10.9.0.0/16', ipipMode: 'Never' }));
  return ds;
}

describe('Agent: service IP advertisement', () => {
  it('originates the service CIDRs and a Local Service’s /32s while its endpoint is here; the watch starts only once a CIDR is configured', async () => {
    const api = new MemoryServiceApi();
    api.put(SERVICES_PATH, SERVICE);
    api.put(ENDPOINT_SLICES_PATH, slice('node-1'));
    const { agent, ds, last } = testAgent({ IP: '198.18.0.11/24' }, await withPool(), { serviceApi: api });
    await agent.start();
    const originated = (): string[] => last().originated.map((r) => formatPrefix(r.prefix));
    expect(originated()).toEqual(['10.9.0.0/26']);
    expect(api.lists).toBe(0); // no service CIDR yet: Services are not even listed
    await ds.create(
      res('BGPConfiguration', 'default', {
        serviceClusterIPs: [{ cidr: '10.96.0.0/12' }],
        serviceLoadBalancerIPs: [{ cidr: '192.0.2.0/24' }],
      }),
    );
    await until(() => originated().includes('192.0.2.5/32'), 'the LoadBalancer IP /32 originated');
    expect(originated()).toEqual(['10.9.0.0/26', '10.96.0.0/12', '10.96.0.10/32', '192.0.2.0/24', '192.0.2.5/32']);
    api.put(ENDPOINT_SLICES_PATH, slice('node-2'));
    await until(
      () => !originated().includes('10.96.0.10/32') && originated(),
      'the /32s withdrawn when the endpoint leaves',
    );
    expect(originated()).toEqual(['10.9.0.0/26', '10.96.0.0/12', '192.0.2.0/24']);
    expect(agent.status().warnings.filter((w) => w.startsWith('service advertisement'))).toEqual([]);
  });

  it('re-lists after 410 Gone and follows the changes made meanwhile', async () => {
    const api = new MemoryServiceApi();
    api.put(SERVICES_PATH, SERVICE);
    const ds = await withPool();
    await ds.create(res('BGPConfiguration', 'default', { serviceClusterIPs: [{ cidr: '10.96.0.0/12' }] }));
    const { agent, last } = testAgent({ IP: '198.18.0.11/24' }, ds, { serviceApi: api });
    await agent.start();
    await until(() => api.open === 2, 'both watches open');
    expect(api.lists).toBe(2);
    // The server restarts its watches and has forgotten the agent's version: every re-open gets 410.
    api.goneNext = 2;
    api.expireWatches();
    api.put(ENDPOINT_SLICES_PATH, slice('node-1')); // made while nobody watches: only a list can show it
    await until(
      () => last().originated.some((r) => formatPrefix(r.prefix) === '10.96.0.10/32'),
      'the /32 after the re-list',
    );
    expect(api.lists).toBeGreaterThanOrEqual(4);
  });

  it('without a Kubernetes API (etcd without a kubeconfig): the CIDRs only, and node status says the /32s are not in effect', async () => {
    const ds = await withPool();
    await ds.create(res('BGPConfiguration', 'default', { serviceClusterIPs: [{ cidr: '10.96.0.0/12' }] }));
    const { agent, last } = testAgent({ IP: '198.18.0.11/24' }, ds);
    await agent.start();
    expect(last().originated.map((r) => formatPrefix(r.prefix))).toEqual(['10.9.0.0/26', '10.96.0.0/12']);
    expect(agent.status().warnings.filter((w) => w.startsWith('service advertisement'))).toEqual([
      'service advertisement: per-Service /32 routes (externalTrafficPolicy Local, single-address entries) are not in effect: no Kubernetes API to read Services from (etcd datastore without KUBECONFIG); only the service CIDRs are advertised',
    ]);
  });
});
