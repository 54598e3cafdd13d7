// How tortie talks to a Kubernetes API server, in one place: the kubeconfig (a file, or the client's
// defaults: $KUBECONFIG, ~/.kube/config, the in-cluster service account), its current cluster, and a
// client configuration whose every request carries its own deadline. The datastore backend
// (./kubernetes.ts) and the CNI plugin's Pod annotations (src/cni/endpoint.ts) both build their API
// objects on it, so the two cannot drift apart (a deadline forgotten in one would hang a pod's ADD).
//
// Why this is hard: @kubernetes/client-node has no request timeout of its own — a silent server hangs a
// request forever — so the deadline is a middleware that gives each request a fresh AbortSignal.

import { KubeConfig, ServerConfiguration, createConfiguration, type Configuration } from '@kubernetes/client-node';
import { DatastoreError } from './types.js';

/** The kubeconfig cannot be loaded or names no cluster; the message says which file and what to fix. */
export class KubeconfigError extends DatastoreError {}

export interface KubeClient {
  kc: KubeConfig;
  /** The current cluster's server URL, for messages. */
  server: string;
  /** For CoreV1Api, CustomObjectsApi, ...: the server, the kubeconfig's credentials, a deadline per request. */
  configuration: Configuration;
}

/** Loads `kubeconfig` (or the defaults) and builds the client configuration with `timeoutMs` per request. */
export function kubeClient(kubeconfig: string | undefined, timeoutMs: number): KubeClient {
  const kc = new KubeConfig();
  try {
    if (kubeconfig) kc.loadFromFile(kubeconfig);
    else kc.loadFromDefault();
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    const cause =
      err instanceof Error ? (typeof code === 'string' ? `${code}: ${err.message}` : err.message) : String(err);
    throw new KubeconfigError(
      `cannot load the kubeconfig ${kubeconfig ?? '(default: $KUBECONFIG or ~/.kube/config)'}: ${cause}`,
    );
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster) {
    throw new KubeconfigError(
      `the kubeconfig ${kubeconfig ?? '(default)'} has no current cluster: set current-context to a context naming a cluster`,
    );
  }
  const configuration = createConfiguration({
    baseServer: new ServerConfiguration(cluster.server, {}),
    authMethods: { default: kc },
    promiseMiddleware: [
      {
        // Every request gets its own deadline, so a silent server cannot hang the caller.
        pre: (context) => {
          context.setSignal(AbortSignal.timeout(timeoutMs));
          return Promise.resolve(context);
        },
        post: (context) => Promise.resolve(context),
      },
    ],
  });
  return { kc, server: cluster.server, configuration };
}
