// Telling the rest of tortie that a workload exists, so felix routes to it at once:
// - etcd: a WorkloadEndpoint resource (Calico's v3 shape and name), created or updated on ADD, deleted
//   on DEL when it still belongs to this container;
// - Kubernetes: WorkloadEndpoints are derived from Pods (src/datastore/kube-mapping.ts), so the plugin
//   annotates the Pod as Calico's plugin does: cni.projectcalico.org/containerID, /podIP and /podIPs
//   ("10.244.1.5/32"). DEL removes podIP/podIPs when containerID is still ours.
//
// Why this is hard: the same pod can be re-created with a new sandbox before the old one's DEL arrives
// (kubelet retries, a crashed runtime). The record is keyed by pod, not by container, so a late DEL of
// the old sandbox must not remove the new sandbox's record: remove() only touches a record whose
// containerID is the DEL's.

import { API_VERSION, type Resource, type WorkloadEndpointSpec } from '../resources/types.js';
import { AlreadyExistsError, ConflictError, NotFoundError, type Datastore } from '../datastore/types.js';
import { workloadEndpointName } from '../resources/workload-names.js';
import { workloadNamespace, type WorkloadIdentity } from './names.js';
import { CniError } from './spec.js';
import { type NetConf } from './netconf.js';

/** The WorkloadEndpoint of this attachment: `<node>-k8s-<pod>-<ifname>`, or `<node>-cni-<container id>-<ifname>` without a pod. */
function endpointName(id: WorkloadIdentity): string {
  return id.pod
    ? workloadEndpointName(id.node, id.pod.name, id.ifname, 'k8s')
    : workloadEndpointName(id.node, id.containerId, id.ifname, 'cni');
}

/** What ADD made, to be recorded. */
export interface Attachment {
  id: WorkloadIdentity;
  /** The host end (cali…). */
  hostIf: string;
  /** The pod end's MAC. */
  mac: string;
  /** "10.244.1.5/32" */
  ipNetworks: string[];
  /** The network name (profile of a bare container's endpoint). */
  network: string;
}

/** What the datastore says about an attachment, for CHECK. */
export interface RecordedEndpoint {
  containerId?: string;
  ipNetworks: string[];
}

export interface EndpointRecorder {
  record(attachment: Attachment): Promise<void>;
  /** Removes the record when it belongs to `id.containerId`; resolves when there is none. */
  remove(id: WorkloadIdentity): Promise<void>;
  find(id: WorkloadIdentity): Promise<RecordedEndpoint | null>;
}

/** The WorkloadEndpoint Calico's plugin writes for an attachment (pure). */
export function workloadEndpointFor(attachment: Attachment): Resource<'WorkloadEndpoint'> {
  const { id } = attachment;
  const namespace = workloadNamespace(id);
  const orchestrator = id.pod ? 'k8s' : 'cni';
  const spec: WorkloadEndpointSpec = {
    orchestrator,
    node: id.node,
    ...(id.pod ? { pod: id.pod.name } : { workload: id.containerId }),
    endpoint: id.ifname,
    containerID: id.containerId,
    interfaceName: attachment.hostIf,
    mac: attachment.mac,
    ipNetworks: attachment.ipNetworks,
    profiles: id.pod ? [`kns.${namespace}`] : [attachment.network],
  };
  return {
    apiVersion: API_VERSION,
    kind: 'WorkloadEndpoint',
    metadata: {
      name: endpointName(id),
      namespace,
      labels: { 'projectcalico.org/namespace': namespace, 'projectcalico.org/orchestrator': orchestrator },
    },
    spec,
  };
}

/** Compare-and-swap attempts before giving up on a WorkloadEndpoint someone else keeps rewriting. */
const WRITE_ATTEMPTS = 5;

/** WorkloadEndpoint resources (the etcd datastore; any Datastore that stores them). */
export class WorkloadEndpointRecorder implements EndpointRecorder {
  constructor(private readonly ds: Datastore) {}

  async record(attachment: Attachment): Promise<void> {
    const wanted = workloadEndpointFor(attachment);
    const { name, namespace } = wanted.metadata;
    // A new pod's endpoint does not exist yet: create it without reading first (one round trip, not two).
    try {
      await this.ds.create(wanted);
      return;
    } catch (err) {
      if (!(err instanceof AlreadyExistsError)) throw err;
    }
    for (let attempt = 1; ; attempt++) {
      const current = await this.ds.get('WorkloadEndpoint', name, namespace);
      try {
        if (current === null) await this.ds.create(wanted);
        else
          await this.ds.update({
            ...wanted,
            metadata: {
              ...current.metadata,
              ...wanted.metadata,
              resourceVersion: current.metadata.resourceVersion ?? '',
            },
          });
        return;
      } catch (err) {
        const raced = err instanceof ConflictError || err instanceof NotFoundError || err instanceof AlreadyExistsError;
        if (!raced || attempt >= WRITE_ATTEMPTS) throw err;
      }
    }
  }

  async remove(id: WorkloadIdentity): Promise<void> {
    const name = endpointName(id);
    const namespace = workloadNamespace(id);
    for (let attempt = 1; ; attempt++) {
      const current = await this.ds.get('WorkloadEndpoint', name, namespace);
      if (current === null) return;
      const owner = current.spec.containerID;
      if (owner !== undefined && owner !== '' && owner !== id.containerId) return; // a newer sandbox's
      try {
        await this.ds.delete('WorkloadEndpoint', name, { namespace, revision: current.metadata.resourceVersion ?? '' });
        return;
      } catch (err) {
        if (err instanceof NotFoundError) return;
        if (!(err instanceof ConflictError) || attempt >= WRITE_ATTEMPTS) throw err;
      }
    }
  }

  async find(id: WorkloadIdentity): Promise<RecordedEndpoint | null> {
    const current = await this.ds.get('WorkloadEndpoint', endpointName(id), workloadNamespace(id));
    if (current === null) return null;
    return {
      ...(current.spec.containerID !== undefined ? { containerId: current.spec.containerID } : {}),
      ipNetworks: current.spec.ipNetworks,
    };
  }
}

// ---------------------------------------------------------------------------------------------------------
// Kubernetes: Pod annotations

export const POD_ANNOTATIONS = {
  containerID: 'cni.projectcalico.org/containerID',
  podIP: 'cni.projectcalico.org/podIP',
  podIPs: 'cni.projectcalico.org/podIPs',
} as const;

/** The merge patch ADD applies to the Pod (pure). */
export function podAnnotationsPatch(attachment: Attachment): { metadata: { annotations: Record<string, string> } } {
  return {
    metadata: {
      annotations: {
        [POD_ANNOTATIONS.containerID]: attachment.id.containerId,
        [POD_ANNOTATIONS.podIP]: attachment.ipNetworks[0] ?? '',
        [POD_ANNOTATIONS.podIPs]: attachment.ipNetworks.join(','),
      },
    },
  };
}

/** The merge patch DEL applies when the Pod's containerID annotation is still `containerId`; null otherwise. */
export function podAnnotationsRemoval(
  annotations: Record<string, string>,
  containerId: string,
): { metadata: { annotations: Record<string, null> } } | null {
  if (annotations[POD_ANNOTATIONS.containerID] !== containerId) return null;
  if (!(POD_ANNOTATIONS.podIP in annotations) && !(POD_ANNOTATIONS.podIPs in annotations)) return null;
  return { metadata: { annotations: { [POD_ANNOTATIONS.podIP]: null, [POD_ANNOTATIONS.podIPs]: null } } };
}

/** The few Pod calls the recorder makes (the real one is client-node's CoreV1Api; tests pass a fake). */
export interface PodApi {
  /** The Pod's annotations; null when the Pod does not exist. */
  annotations(namespace: string, name: string): Promise<Record<string, string> | null>;
  /** A JSON merge patch (RFC 7386) of the Pod; rejects with NotFoundError when it does not exist. */
  patch(namespace: string, name: string, patch: unknown): Promise<void>;
}

function requirePod(id: WorkloadIdentity): { namespace: string; name: string } {
  if (!id.pod) {
    throw new CniError(
      'invalidEnvironment',
      'CNI_ARGS: datastore_type "kubernetes" needs K8S_POD_NAMESPACE and K8S_POD_NAME (the Pod to annotate); the runtime sets them for Kubernetes pods',
    );
  }
  return id.pod;
}

export class PodAnnotationRecorder implements EndpointRecorder {
  constructor(private readonly pods: PodApi) {}

  async record(attachment: Attachment): Promise<void> {
    const pod = requirePod(attachment.id);
    try {
      await this.pods.patch(pod.namespace, pod.name, podAnnotationsPatch(attachment));
    } catch (err) {
      if (err instanceof NotFoundError)
        throw new CniError(
          'datastore',
          `Pod ${pod.namespace}/${pod.name} does not exist in the Kubernetes API; cannot record its address`,
        );
      throw err;
    }
  }

  async remove(id: WorkloadIdentity): Promise<void> {
    if (!id.pod) return;
    const annotations = await this.pods.annotations(id.pod.namespace, id.pod.name);
    if (annotations === null) return;
    const patch = podAnnotationsRemoval(annotations, id.containerId);
    if (patch === null) return;
    try {
      await this.pods.patch(id.pod.namespace, id.pod.name, patch);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  }

  async find(id: WorkloadIdentity): Promise<RecordedEndpoint | null> {
    const pod = requirePod(id);
    const annotations = await this.pods.annotations(pod.namespace, pod.name);
    const ips = annotations?.[POD_ANNOTATIONS.podIPs] ?? annotations?.[POD_ANNOTATIONS.podIP];
    if (annotations === null || ips === undefined || ips === '') return null;
    const containerId = annotations[POD_ANNOTATIONS.containerID];
    return {
      ...(containerId !== undefined ? { containerId } : {}),
      ipNetworks: ips.split(',').filter((s) => s !== ''),
    };
  }
}

/**
 * client-node's CoreV1Api behind PodApi, configured as the Kubernetes datastore's (src/datastore/
 * kube-client.ts: the kubeconfig, a deadline on every request). Loaded only for kubernetes.
 */
export async function openPodApi(conf: Pick<NetConf, 'kubeconfig'>, timeoutMs: number): Promise<PodApi> {
  const [k8s, { KubeconfigError, kubeClient }] = await Promise.all([
    import('@kubernetes/client-node'),
    import('../datastore/kube-client.js'),
  ]);
  let client;
  try {
    client = kubeClient(conf.kubeconfig, timeoutMs);
  } catch (err) {
    if (err instanceof KubeconfigError) throw new CniError('invalidConfig', `kubeconfig: ${err.message}`);
    throw err;
  }
  const { configuration, server } = client;
  const core = new k8s.CoreV1Api(configuration);
  const notFound = (err: unknown): boolean =>
    typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 404;
  const describeError = (err: unknown, what: string): Error => {
    if (notFound(err)) return new NotFoundError(`${what}: not found`);
    const body = typeof err === 'object' && err !== null ? (err as { body?: unknown }).body : undefined;
    const detail = typeof body === 'string' ? body.slice(0, 300) : err instanceof Error ? err.message : String(err);
    return new CniError('datastore', `${what} at ${server} failed: ${detail}`);
  };
  return {
    async annotations(namespace, name) {
      try {
        const pod = await core.readNamespacedPod({ namespace, name });
        return pod.metadata?.annotations ?? {};
      } catch (err) {
        if (notFound(err)) return null;
        throw describeError(err, `reading Pod ${namespace}/${name}`);
      }
    },
    async patch(namespace, name, patch) {
      try {
        // Through the status subresource, as Calico's plugin does: its ServiceAccount may patch pods/status
        // (annotations included) but not the Pods themselves (manifests/tortie.yaml, ClusterRole tortie-cni).
        await core.patchNamespacedPodStatus(
          { namespace, name, body: patch },
          k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
        );
      } catch (err) {
        throw describeError(err, `patching Pod ${namespace}/${name}`);
      }
    },
  };
}
