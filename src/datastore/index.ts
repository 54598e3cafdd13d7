// Choosing and opening the datastore: loadDatastoreConfig() reads --config / /etc/tortie/tortie.cfg / the
// environment (parsing rules in ./config.ts), openDatastore() opens the backend it names. Backends are
// imported on demand so that `tortie --help` does not load the etcd and Kubernetes clients.
//
// etcd has two transports with the same semantics (./etcd-store.ts): gRPC (package etcd3, ./etcd.ts), the
// default, and the HTTP/JSON gateway (./etcd-gateway.ts), which loads ~40x faster and is what the CNI
// plugin asks for (`etcdTransport: 'http'`); when etcd's gateway cannot serve (etcd-gateway.ts says when),
// that falls back to gRPC and tells the caller why (`onTransportFallback`).
//
// Why this is hard: "an unreachable datastore fails within a few seconds, never hangs" must hold even if
// a client library retries forever, so every call of the opened Datastore is also bounded here
// (`boundCalls`), a little longer than the backend's own timeout so the backend's message wins when it
// has one.

import { access, readFile } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import type { Datastore } from './types.js';
import { DatastoreUnavailableError } from './types.js';
import {
  ConfigError,
  DEFAULT_CONFIG_PATH,
  configFromEnv,
  configFromFile,
  filesNamed,
  type DatastoreConfig,
  type DatastoreType,
} from './config.js';

export { ConfigError, DEFAULT_CONFIG_PATH, type DatastoreConfig, type DatastoreType } from './config.js';

export interface LoadOptions {
  /** The file read when no configPath is given and it exists (default /etc/tortie/tortie.cfg). */
  defaultPath?: string;
  readFile?: (path: string) => Promise<string>;
  /** Rejects when the file cannot be read. */
  checkReadable?: (path: string) => Promise<void>;
}

function errorCode(error: unknown): string {
  return typeof error === 'object' && error !== null && 'code' in error
    ? String((error as { code: unknown }).code)
    : String(error);
}

/**
 * The datastore configuration: `configPath` (from --config) when given, else /etc/tortie/tortie.cfg when it
 * exists, else the environment. Files the configuration names (certificates, kubeconfig) must be readable.
 */
export async function loadDatastoreConfig(
  env: NodeJS.ProcessEnv,
  configPath?: string,
  options: LoadOptions = {},
): Promise<DatastoreConfig> {
  const read = options.readFile ?? ((path: string) => readFile(path, 'utf8'));
  const checkReadable = options.checkReadable ?? ((path: string) => access(path, fsConstants.R_OK));
  let config: DatastoreConfig;
  if (configPath !== undefined) {
    let text: string;
    try {
      text = await read(configPath);
    } catch (error) {
      throw new ConfigError(`--config ${configPath}: cannot read it (${errorCode(error)})`);
    }
    config = configFromFile(text, configPath);
  } else {
    const defaultPath = options.defaultPath ?? DEFAULT_CONFIG_PATH;
    let text: string | undefined;
    try {
      text = await read(defaultPath);
    } catch (error) {
      if (errorCode(error) !== 'ENOENT')
        throw new ConfigError(
          `${defaultPath}: cannot read it (${errorCode(error)}); fix its permissions or pass --config FILE`,
        );
    }
    config = text === undefined ? configFromEnv(env) : configFromFile(text, defaultPath);
  }
  for (const { where, path } of filesNamed(config)) {
    try {
      await checkReadable(path);
    } catch (error) {
      throw new ConfigError(`${where}: ${path} cannot be read (${errorCode(error)})`);
    }
  }
  return config;
}

/** Where the datastore is, for messages: "etcdv3 at http://127.0.0.1:2379". */
export function describeDatastore(config: DatastoreConfig): string {
  return config.datastoreType === 'etcdv3'
    ? `etcdv3 at ${config.etcdEndpoints.join(',')}`
    : `kubernetes via ${config.kubeconfig ?? 'the default kubeconfig'}`;
}

/** How to open a backend beyond what the configuration says. */
export interface OpenOptions {
  /** etcd only: 'grpc' (default), or 'http' — the JSON gateway, gRPC when the gateway cannot serve. */
  etcdTransport?: EtcdTransportName;
  /** Called with the reason when 'http' was asked for and gRPC is used instead. */
  onTransportFallback?: (reason: string) => void;
}

export type EtcdTransportName = 'grpc' | 'http';

/** One row per backend: how to open it from a configuration. */
const BACKENDS: Readonly<Record<DatastoreType, (config: DatastoreConfig, options: OpenOptions) => Promise<Datastore>>> =
  {
    etcdv3: async (config, options) => {
      const etcdOptions = {
        endpoints: config.etcdEndpoints,
        ...(config.etcdCACertFile !== undefined ? { caFile: config.etcdCACertFile } : {}),
        ...(config.etcdCertFile !== undefined ? { certFile: config.etcdCertFile } : {}),
        ...(config.etcdKeyFile !== undefined ? { keyFile: config.etcdKeyFile } : {}),
        timeoutMs: config.timeoutMs,
      };
      if (options.etcdTransport === 'http') {
        const { EtcdGatewayUnusableError, openEtcdGateway } = await import('./etcd-gateway.js');
        try {
          return await openEtcdGateway(etcdOptions);
        } catch (err) {
          if (!(err instanceof EtcdGatewayUnusableError)) throw err;
          options.onTransportFallback?.(`${err.message}; using gRPC`);
        }
      }
      const { openEtcd } = await import('./etcd.js');
      return openEtcd(etcdOptions);
    },
    kubernetes: async (config) => {
      const { openKubernetes } = await import('./kubernetes.js');
      return openKubernetes({
        ...(config.kubeconfig !== undefined ? { kubeconfig: config.kubeconfig } : {}),
        timeoutMs: config.timeoutMs,
      });
    },
  };

/** The grace added to the backend's own timeout before this layer gives up on a call. */
const GUARD_GRACE_MS = 2000;

function withDeadline<T>(promise: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DatastoreUnavailableError(what())), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/**
 * The same Datastore with every request/response call bounded to `ms`: a call with no answer rejects with
 * DatastoreUnavailableError naming the datastore. (A write that times out may still land; the message says so.)
 */
export function boundCalls(ds: Datastore, ms: number, where: string): Datastore {
  const late = (call: string, write: boolean) => () =>
    `${where}: no answer to ${call} within ${ms} ms${write ? ' (the write may or may not have happened)' : ''}; is the datastore running and reachable?`;
  return {
    type: ds.type,
    get: (kind, name, namespace) => withDeadline(ds.get(kind, name, namespace), ms, late(`get ${kind}`, false)),
    list: (kind, options) => withDeadline(ds.list(kind, options), ms, late(`list ${kind}`, false)),
    create: (resource) => withDeadline(ds.create(resource), ms, late(`create ${resource.kind}`, true)),
    update: (resource) => withDeadline(ds.update(resource), ms, late(`update ${resource.kind}`, true)),
    delete: (kind, name, options) => withDeadline(ds.delete(kind, name, options), ms, late(`delete ${kind}`, true)),
    watch: (kind, fromRevision, onEvent) => ds.watch(kind, fromRevision, onEvent),
    close: () => withDeadline(ds.close(), ms, late('close', false)),
  };
}

/** Opens the backend the configuration names; every call on it is bounded (see boundCalls). */
export async function openDatastore(config: DatastoreConfig, options: OpenOptions = {}): Promise<Datastore> {
  const where = describeDatastore(config);
  // A gateway that cannot serve costs one quick answer before gRPC connects: still one connection's time.
  const limit = config.timeoutMs + GUARD_GRACE_MS;
  const ds = await withDeadline(
    BACKENDS[config.datastoreType](config, options),
    limit,
    () => `${where}: could not connect within ${limit} ms`,
  );
  return boundCalls(ds, limit, where);
}
