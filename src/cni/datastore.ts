// The datastore named by a CNI network configuration: its `datastore_type`, `etcd_endpoints`,
// `etcd_*_file` and `kubeconfig` fields are the agent's DATASTORE_TYPE, ETCD_ENDPOINTS, ETCD_*_FILE and
// KUBECONFIG, so they go through the same checks (src/datastore/config.ts) and the same bounded backends
// (src/datastore/index.ts) — with the messages naming the CNI field instead of the variable. etcd is
// reached over its HTTP/JSON gateway (src/datastore/etcd-gateway.ts: the same keys, revisions and
// compare-and-swap as the agent's gRPC client, without the ~200 ms of loading grpc-js in every pod's ADD),
// and over gRPC when the gateway cannot serve (a TLS server certificate without clientAuth, etcd RBAC).
//
// Failures map to CNI codes: a bad field → 7, an unreachable datastore → 11 (the runtime retries),
// a datastore that answers "no" → 102.

import type { EtcdTransportName } from '../datastore/index.js';
import { DatastoreError, DatastoreUnavailableError, type Datastore } from '../datastore/types.js';
import { CniError } from './spec.js';
import { type NetConf } from './netconf.js';

/** CNI field → the agent's environment variable that means the same. One row per datastore field. */
const FIELD_TO_ENV: ReadonlyArray<{ field: keyof NetConf; key: string; env: string }> = [
  { field: 'datastoreType', key: 'datastore_type', env: 'DATASTORE_TYPE' },
  { field: 'etcdEndpoints', key: 'etcd_endpoints', env: 'ETCD_ENDPOINTS' },
  { field: 'etcdCaCertFile', key: 'etcd_ca_cert_file', env: 'ETCD_CA_CERT_FILE' },
  { field: 'etcdCertFile', key: 'etcd_cert_file', env: 'ETCD_CERT_FILE' },
  { field: 'etcdKeyFile', key: 'etcd_key_file', env: 'ETCD_KEY_FILE' },
  { field: 'kubeconfig', key: 'kubeconfig', env: 'KUBECONFIG' },
];

/** The agent-style environment a configuration stands for (pure). */
export function datastoreEnv(conf: NetConf): Record<string, string> {
  const env: Record<string, string> = {};
  for (const row of FIELD_TO_ENV) {
    const value = conf[row.field];
    if (typeof value === 'string') env[row.env] = value;
  }
  return env;
}

/** A message about ETCD_ENDPOINTS etc. rewritten to name the CNI field (etcd_endpoints). */
export function renameVariables(message: string): string {
  let out = message;
  for (const row of FIELD_TO_ENV) out = out.split(row.env).join(row.key);
  return out;
}

/** How the plugin talks to etcd (src/datastore/index.ts OpenOptions). */
export interface CniDatastoreOptions {
  /** Default 'http': etcd's JSON gateway (no grpc-js to load), gRPC when the gateway cannot serve. */
  etcdTransport?: EtcdTransportName;
  onTransportFallback?: (reason: string) => void;
}

/** Opens the configured datastore; every call on it is bounded (src/datastore/index.ts). */
export async function openConfiguredDatastore(
  conf: NetConf,
  timeoutMs?: number,
  options: CniDatastoreOptions = {},
): Promise<Datastore> {
  const [{ openDatastore }, { configFromEnv, ConfigError }] = await Promise.all([
    import('../datastore/index.js'),
    import('../datastore/config.js'),
  ]);
  let config;
  try {
    config = configFromEnv({
      ...datastoreEnv(conf),
      ...(timeoutMs !== undefined ? { TORTIE_DATASTORE_TIMEOUT_MS: String(timeoutMs) } : {}),
    });
  } catch (err) {
    if (err instanceof ConfigError) throw new CniError('invalidConfig', renameVariables(err.message));
    throw err;
  }
  return openDatastore(config, {
    etcdTransport: options.etcdTransport ?? 'http',
    ...(options.onTransportFallback ? { onTransportFallback: options.onTransportFallback } : {}),
  });
}

/** A datastore failure → the CNI error the runtime should see. */
export function datastoreError(err: unknown, what: string): CniError | undefined {
  if (err instanceof CniError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof DatastoreUnavailableError) return new CniError('tryAgainLater', `${what}: ${message}`);
  if (err instanceof DatastoreError) return new CniError('datastore', `${what}: ${message}`);
  return undefined;
}
