// The shared Datastore contract suite (test/unit/datastore/contract.ts) against openKubernetes and the fake
// API server.
//
// One part of the contract does not apply as written: on Kubernetes, WorkloadEndpoints are derived from
// Pods and the backend refuses to write them (tested in kubernetes.test.ts). So for the contract's
// WorkloadEndpoint steps this file plays the orchestrator: a WorkloadEndpoint "create" becomes a Pod
// scheduled to spec.node with spec.ipNetworks[0] as its IP (written straight into the fake API server, as
// the kubelet would), a "delete" deletes the Pod, and the names the suite uses (the pod name) are mapped to
// and from Calico's endpoint names (`<node>-k8s-<pod>-eth0`). Reads, lists and watches of WorkloadEndpoints
// still go through the real backend: Pod list/watch, namespaces, conversion. Everything else is passed
// through untouched.

import { afterAll, beforeAll, describe } from 'vitest';
import { openKubernetes } from '../../src/datastore/kubernetes.js';
import { AlreadyExistsError, NotFoundError, type Datastore, type WatchEvent } from '../../src/datastore/types.js';
import type { Kind, Resource } from '../../src/resources/types.js';
import { startFakeApiServer, type FakeApiServer } from '../harness/fake-apiserver.js';
import { datastoreContract } from '../unit/datastore/contract.js';

type Wep = Resource<'WorkloadEndpoint'>;

/** The contract's view of an endpoint: named after its pod. */
function byPodName<R extends Resource>(r: R): R {
  if (r.kind !== 'WorkloadEndpoint') return r;
  const wep = r as unknown as Wep;
  return { ...r, metadata: { ...r.metadata, name: wep.spec.pod ?? r.metadata.name } };
}

function withPods(ds: Datastore, api: FakeApiServer): Datastore {
  const findPod = async (name: string, namespace?: string): Promise<Wep | undefined> =>
    (await ds.list('WorkloadEndpoint', namespace ? { namespace } : {})).items.find((w) => w.spec.pod === name);
  return {
    type: ds.type,
    async get<K extends Kind>(kind: K, name: string, namespace?: string) {
      if (kind !== 'WorkloadEndpoint') return ds.get(kind, name, namespace);
      const found = await findPod(name, namespace);
      return found ? (byPodName(found) as unknown as Resource<K>) : null;
    },
    async list<K extends Kind>(kind: K, options?: { namespace?: string }) {
      const result = await ds.list(kind, options);
      return { ...result, items: result.items.map(byPodName) };
    },
    async create<K extends Kind>(resource: Resource<K>) {
      if (resource.kind !== 'WorkloadEndpoint') return ds.create(resource);
      const wep = resource as unknown as Wep;
      const namespace = wep.metadata.namespace ?? 'default';
      if (api.object({ core: 'pods' }, wep.metadata.name, namespace))
        throw new AlreadyExistsError(`Pod ${namespace}/${wep.metadata.name} exists`);
      api.put(
        { core: 'pods' },
        {
          metadata: { name: wep.metadata.name, namespace, labels: wep.metadata.labels ?? {} },
          spec: { nodeName: wep.spec.node },
          status: { phase: 'Running', podIP: (wep.spec.ipNetworks[0] ?? '').replace(/\/\d+$/, '') },
        },
      );
      return byPodName((await findPod(wep.metadata.name, namespace))!) as unknown as Resource<K>;
    },
    update: (resource) => ds.update(resource),
    async delete<K extends Kind>(kind: K, name: string, options?: { namespace?: string; revision?: string }) {
      if (kind !== 'WorkloadEndpoint') return ds.delete(kind, name, options);
      const existing = await findPod(name, options?.namespace);
      if (!existing || !api.remove({ core: 'pods' }, name, options?.namespace))
        throw new NotFoundError(`Pod ${options?.namespace}/${name} not found`);
      return byPodName(existing) as unknown as Resource<K>;
    },
    watch<K extends Kind>(kind: K, fromRevision: string, onEvent: (event: WatchEvent<K>) => void) {
      return ds.watch(kind, fromRevision, (e) => {
        if (e.type === 'added' || e.type === 'modified' || e.type === 'deleted')
          onEvent({ ...e, resource: byPodName(e.resource) });
        else if (e.type === 'sync') onEvent({ ...e, items: e.items.map(byPodName) });
        else onEvent(e);
      });
    },
    close: () => ds.close(),
  };
}

describe('kubernetes backend (fake API server)', () => {
  let api: FakeApiServer;
  beforeAll(async () => {
    api = await startFakeApiServer();
  });
  afterAll(async () => {
    await api?.stop();
  });
  datastoreContract('kubernetes', async () => {
    const ds = await openKubernetes({ kubeconfig: api.kubeconfigPath, timeoutMs: 3000, watchRetryMs: 20 });
    return { ds: withPods(ds, api), cleanup: () => ds.close() };
  });
});
