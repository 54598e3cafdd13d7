// Where BGP passwords come from (Calico's BGPPeer.spec.password.secretKeyRef and BGPConfiguration
// spec.nodeMeshPassword.secretKeyRef): a key of a Secret.
//
// - Kubernetes datastore: the Secret in the agent's own namespace, read through the API (get) and
//   watched (watch on the namespace's secrets), as calico-node does. The agent's Role allows exactly that.
// - etcd datastore: there is no API to ask, so the same reference is resolved from a directory of mounted
//   Secrets: DIR/<secret name>/<key> — what a Secret volume mounted at DIR/<secret name> looks like
//   (TORTIE_BGP_SECRETS_DIR, default /etc/tortie/bgp-secrets). Kubernetes updates such a mount in place
//   (an atomic symlink swap), so the directory is re-read every few seconds.
//
// A value is never logged, never in an error message, never in status: errors name the Secret, the key
// and where it was looked for. Sources only read; the agent compares values and re-keys only the sessions
// whose password changed (Speaker.setPeers restarts a peer whose spec changed, nothing else).

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { systemClock, type Clock, type TimerHandle } from '../../bgp/index.js';
import type { SecretKeyRef } from './types.js';

export const DEFAULT_SECRETS_DIR = '/etc/tortie/bgp-secrets';

export interface SecretSource {
  /** Where secrets are looked for, for messages: "Secrets in namespace tortie-system", "files under DIR". */
  readonly where: string;
  /** The value of one key. Rejects with a message that names the Secret and key, never a value. */
  read(ref: SecretKeyRef): Promise<string>;
  /** Calls `onChange` whenever a secret may have changed (more often is fine); returns a stopper. */
  watch(onChange: () => void): () => void;
}

export function refText(ref: SecretKeyRef): string {
  return `Secret ${ref.name} key ${ref.key}`;
}

/** A Secret's name or key must be a plain name: no path may leave the directory. */
function safeSegment(text: string): boolean {
  return /^[A-Za-z0-9._-]+$/.test(text) && text !== '.' && text !== '..';
}

/**
 * The system clock's handles are Node timers: a poll or retry must not keep the process alive by itself
 * (the agent stops its watch; a CLI that never started one must still exit). A fake clock's are not.
 */
function unrefTimer(handle: TimerHandle): void {
  (handle as { unref?: () => void }).unref?.();
}

/**
 * etcd datastore: DIR/<name>/<key>, the file's exact bytes (a Secret volume holds the value as is). The
 * directory is polled every `pollMs` on `clock`.
 */
export function fileSecretSource(dir: string, pollMs = 5000, clock: Clock = systemClock): SecretSource {
  return {
    where: `files under ${dir}`,
    async read(ref) {
      if (!safeSegment(ref.name) || !safeSegment(ref.key))
        throw new Error(`${refText(ref)}: not a valid Secret name and key`);
      const path = join(dir, ref.name, ref.key);
      let value: string;
      try {
        value = await readFile(path, 'utf8');
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? 'error';
        throw new Error(
          `${refText(ref)}: cannot read ${path} (${code}); with etcd, mount the Secret at ${join(dir, ref.name)}`,
        );
      }
      if (value === '') throw new Error(`${refText(ref)}: ${path} is empty`);
      return value;
    },
    watch(onChange) {
      let timer: TimerHandle | null = null;
      let stopped = false;
      const poll = (): void => {
        timer = clock.setTimeout(() => {
          if (stopped) return;
          poll(); // re-armed first, as an interval: a throwing onChange does not end the polling
          onChange();
        }, pollMs);
        unrefTimer(timer);
      };
      poll();
      return () => {
        stopped = true;
        if (timer) clock.clearTimeout(timer);
      };
    },
  };
}

/** The two calls the Kubernetes source makes (client-node's CoreV1Api and Watch; tests pass fakes). */
export interface SecretApi {
  /** GET /api/v1/namespaces/{namespace}/secrets/{name}: the Secret's `data` (base64 values). */
  getSecretData(namespace: string, name: string): Promise<Record<string, string> | undefined>;
  /** WATCH /api/v1/namespaces/{namespace}/secrets: calls onEvent per event, onDone when the stream ends. */
  watchSecrets(
    namespace: string,
    onEvent: (name: string) => void,
    onDone: (error: unknown) => void,
  ): Promise<{ abort(): void }>;
}

/** Kubernetes datastore: Secrets in the agent's own namespace, read with get and followed with watch. */
export function kubeSecretSource(
  api: SecretApi,
  namespace: string,
  retryMs = 2000,
  clock: Clock = systemClock,
): SecretSource {
  return {
    where: `Secrets in namespace ${namespace}`,
    async read(ref) {
      let data: Record<string, string> | undefined;
      try {
        data = await api.getSecretData(namespace, ref.name);
      } catch (error) {
        const status =
          (error as { code?: unknown; statusCode?: unknown }).code ?? (error as { statusCode?: unknown }).statusCode;
        throw new Error(
          `${refText(ref)}: cannot read the Secret in namespace ${namespace}${status !== undefined ? ` (HTTP ${String(status)})` : ''}`,
        );
      }
      const encoded = data?.[ref.key];
      if (encoded === undefined)
        throw new Error(`${refText(ref)}: the Secret in namespace ${namespace} has no key ${ref.key}`);
      const value = Buffer.from(encoded, 'base64').toString('utf8');
      if (value === '') throw new Error(`${refText(ref)}: the value is empty`);
      return value;
    },
    watch(onChange) {
      let stopped = false;
      let current: { abort(): void } | null = null;
      let timer: TimerHandle | null = null;
      const open = (): void => {
        if (stopped) return;
        api
          .watchSecrets(
            namespace,
            () => onChange(),
            () => {
              // The stream ended (server timeout, error): anything may have changed meanwhile.
              current = null;
              if (stopped) return;
              onChange();
              timer = clock.setTimeout(open, retryMs);
              unrefTimer(timer);
            },
          )
          .then(
            (handle) => {
              if (stopped) handle.abort();
              else current = handle;
            },
            () => {
              if (stopped) return;
              timer = clock.setTimeout(open, retryMs);
              unrefTimer(timer);
            },
          );
      };
      open();
      return () => {
        stopped = true;
        if (timer) clock.clearTimeout(timer);
        current?.abort();
      };
    },
  };
}

/**
 * The agent's namespace: POD_NAMESPACE (the DaemonSet sets it from metadata.namespace), else the service
 * account's namespace file, else tortie-system.
 */
export async function agentNamespace(env: NodeJS.ProcessEnv): Promise<string> {
  if (env.POD_NAMESPACE) return env.POD_NAMESPACE;
  try {
    const text = (await readFile('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8')).trim();
    if (text !== '') return text;
  } catch {
    // not in a pod
  }
  return 'tortie-system';
}

/** The real SecretApi: client-node's CoreV1Api (get) and Watch, with the datastore's kubeconfig. */
export async function kubeSecretApi(kubeconfig: string | undefined, timeoutMs: number): Promise<SecretApi> {
  const [{ CoreV1Api, Watch }, { kubeClient }] = await Promise.all([
    import('@kubernetes/client-node'),
    import('../datastore/kube-client.js'),
  ]);
  const { kc, configuration } = kubeClient(kubeconfig, timeoutMs);
  const core = new CoreV1Api(configuration);
  const watcher = new Watch(kc);
  return {
    async getSecretData(namespace, name) {
      const secret = await core.readNamespacedSecret({ name, namespace });
      return secret.data;
    },
    async watchSecrets(namespace, onEvent, onDone) {
      const controller = await watcher.watch(
        `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets`,
        {},
        (_type: string, obj: unknown) =>
          onEvent((obj as { metadata?: { name?: string } } | null)?.metadata?.name ?? ''),
        onDone,
      );
      return { abort: () => controller.abort() };
    },
  };
}

/** The source for this datastore: Secrets through the API (kubernetes), mounted Secret files (etcd). */
export async function secretSourceFor(
  datastore: { datastoreType: string; kubeconfig?: string; timeoutMs: number },
  env: NodeJS.ProcessEnv,
): Promise<SecretSource> {
  if (datastore.datastoreType === 'kubernetes')
    return kubeSecretSource(await kubeSecretApi(datastore.kubeconfig, datastore.timeoutMs), await agentNamespace(env));
  return fileSecretSource(env.TORTIE_BGP_SECRETS_DIR || DEFAULT_SECRETS_DIR);
}
