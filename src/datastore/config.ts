// Where the datastore is: parsed from the environment (calicoctl's variable names), from tortie's own
// config file, or from calicoctl's `CalicoAPIConfig` file. Pure: the caller reads files; this module only
// turns text and variables into a checked DatastoreConfig, and every refusal names the variable or field,
// the value, and what would be accepted.
//
// Why this is hard: the same setting arrives under three spellings (ETCD_ENDPOINTS, `etcdEndpoints:` in
// tortie.cfg, `spec.etcdEndpoints` in a CalicoAPIConfig), and a typo must not silently fall back to a
// default etcd on 127.0.0.1 — so unknown keys are refused, and one table (SETTINGS) drives all three.
//
// Precedence (as calicoctl): a config file, when one is used, is the whole configuration; the environment
// is read only when there is no file. `--config FILE` wins over /etc/tortie/tortie.cfg.

import { createRequire } from 'node:module';

/** `yaml`, loaded only when a config file is read (the CNI plugin, a process per pod, never reads one). */
function parseYaml(text: string): unknown {
  return (createRequire(import.meta.url)('yaml') as typeof import('yaml')).parse(text);
}

export type DatastoreType = 'etcdv3' | 'kubernetes';
export const DATASTORE_TYPES: readonly DatastoreType[] = ['etcdv3', 'kubernetes'];

export interface DatastoreConfig {
  datastoreType: DatastoreType;
  /** URLs like http://127.0.0.1:2379; used when datastoreType is etcdv3. */
  etcdEndpoints: string[];
  etcdCACertFile?: string;
  etcdCertFile?: string;
  etcdKeyFile?: string;
  /** Path to a kubeconfig; unset means the client's defaults (KUBECONFIG, ~/.kube/config, in-cluster). */
  kubeconfig?: string;
  /** How long one datastore call may take before it is reported as unreachable. */
  timeoutMs: number;
  /** Where the configuration came from, for messages: "environment" or a file path. */
  source: string;
}

export const DEFAULT_CONFIG_PATH = '/etc/tortie/tortie.cfg';
export const DEFAULT_ETCD_ENDPOINT = 'http://127.0.0.1:2379';
export const DEFAULT_TIMEOUT_MS = 5000;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Field = Exclude<keyof DatastoreConfig, 'source'>;

interface Setting {
  field: Field;
  /** Environment variable (calicoctl's name where calicoctl has one). */
  env: string;
  /** Key in tortie.cfg and in a CalicoAPIConfig's spec. */
  key: string;
  /** `where` names the variable or field in messages. */
  parse(value: unknown, where: string): DatastoreConfig[Field];
}

/** One row per setting: the same parser serves the environment, tortie.cfg and CalicoAPIConfig. */
const SETTINGS: readonly Setting[] = [
  { field: 'datastoreType', env: 'DATASTORE_TYPE', key: 'datastoreType', parse: parseDatastoreType },
  { field: 'etcdEndpoints', env: 'ETCD_ENDPOINTS', key: 'etcdEndpoints', parse: parseEndpoints },
  { field: 'etcdCACertFile', env: 'ETCD_CA_CERT_FILE', key: 'etcdCACertFile', parse: parsePath },
  { field: 'etcdCertFile', env: 'ETCD_CERT_FILE', key: 'etcdCertFile', parse: parsePath },
  { field: 'etcdKeyFile', env: 'ETCD_KEY_FILE', key: 'etcdKeyFile', parse: parsePath },
  { field: 'kubeconfig', env: 'KUBECONFIG', key: 'kubeconfig', parse: parsePath },
  { field: 'timeoutMs', env: 'TORTIE_DATASTORE_TIMEOUT_MS', key: 'timeoutMs', parse: parseTimeout },
];

/** CalicoAPIConfig fields calicoctl knows that tortie does not support, with what to use instead. */
const UNSUPPORTED_CALICO_FIELDS: Readonly<Record<string, string>> = {
  etcdDiscoverySrv: 'list the endpoints in etcdEndpoints',
  etcdUsername: 'use client certificates (etcdCertFile, etcdKeyFile)',
  etcdPassword: 'use client certificates (etcdCertFile, etcdKeyFile)',
  etcdKey: 'put the key in a file and set etcdKeyFile',
  etcdCert: 'put the certificate in a file and set etcdCertFile',
  etcdCACert: 'put the CA certificate in a file and set etcdCACertFile',
  k8sAPIEndpoint: 'set the server in a kubeconfig file',
  k8sKeyFile: 'set the client key in a kubeconfig file',
  k8sCertFile: 'set the client certificate in a kubeconfig file',
  k8sCAFile: 'set the CA in a kubeconfig file',
  k8sAPIToken: 'set the token in a kubeconfig file',
  k8sInsecureSkipTLSVerify: 'set insecure-skip-tls-verify in a kubeconfig file',
};

function parseDatastoreType(value: unknown, where: string): DatastoreType {
  if (typeof value === 'string' && (DATASTORE_TYPES as readonly string[]).includes(value))
    return value as DatastoreType;
  throw new ConfigError(
    `${where}: ${JSON.stringify(value)} is not a datastore type; use ${DATASTORE_TYPES.join(' or ')}`,
  );
}

/** A comma-separated string (as ETCD_ENDPOINTS and calicoctl's spec.etcdEndpoints) or a YAML list. */
function parseEndpoints(value: unknown, where: string): string[] {
  const parts = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : null;
  if (parts === null)
    throw new ConfigError(
      `${where}: ${JSON.stringify(value)} is not a list of URLs; write http://HOST:PORT[,http://HOST:PORT...]`,
    );
  const endpoints = parts.map((part) => (typeof part === 'string' ? part.trim() : part)).filter((part) => part !== '');
  if (endpoints.length === 0)
    throw new ConfigError(`${where}: no endpoint given; write http://HOST:PORT[,http://HOST:PORT...]`);
  return endpoints.map((endpoint) => parseEndpoint(endpoint, where));
}

function parseEndpoint(endpoint: unknown, where: string): string {
  const shown = JSON.stringify(endpoint);
  if (typeof endpoint !== 'string')
    throw new ConfigError(`${where}: ${shown} is not a URL; write http://HOST:PORT or https://HOST:PORT`);
  if (/^[\w.-]+:\d+$/.test(endpoint))
    throw new ConfigError(`${where}: ${shown} has no scheme; write http://${endpoint} (or https://${endpoint})`);
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new ConfigError(`${where}: ${shown} is not a URL; write http://HOST:PORT or https://HOST:PORT`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(
      `${where}: ${shown} has scheme "${url.protocol.replace(/:$/, '')}"; use http://HOST:PORT or https://HOST:PORT`,
    );
  }
  if (url.port === '')
    throw new ConfigError(`${where}: ${shown} has no port; write ${url.protocol}//${url.hostname}:2379`);
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '') {
    throw new ConfigError(`${where}: ${shown} has a path; write only ${url.protocol}//${url.host}`);
  }
  return `${url.protocol}//${url.host}`;
}

function parsePath(value: unknown, where: string): string {
  if (typeof value === 'string' && value.trim() !== '') return value.trim();
  throw new ConfigError(`${where}: ${JSON.stringify(value)} is not a file path`);
}

function parseTimeout(value: unknown, where: string): number {
  const n = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : value;
  if (typeof n === 'number' && Number.isInteger(n) && n >= 100 && n <= 600_000) return n;
  throw new ConfigError(`${where}: ${JSON.stringify(value)} is not a timeout; use milliseconds, 100..600000`);
}

/** Fill defaults and check settings that only make sense together. */
function finish(
  partial: Partial<Omit<DatastoreConfig, 'source'>>,
  source: string,
  names: Record<Field, string>,
): DatastoreConfig {
  const config: DatastoreConfig = {
    datastoreType: partial.datastoreType ?? 'etcdv3',
    etcdEndpoints: partial.etcdEndpoints ?? [DEFAULT_ETCD_ENDPOINT],
    timeoutMs: partial.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    source,
  };
  for (const field of ['etcdCACertFile', 'etcdCertFile', 'etcdKeyFile', 'kubeconfig'] as const) {
    if (partial[field] !== undefined) config[field] = partial[field];
  }
  if ((config.etcdCertFile === undefined) !== (config.etcdKeyFile === undefined)) {
    const [given, missing] =
      config.etcdCertFile === undefined
        ? (['etcdKeyFile', 'etcdCertFile'] as const)
        : (['etcdCertFile', 'etcdKeyFile'] as const);
    throw new ConfigError(`${names[given]} is set but ${names[missing]} is not; a client certificate needs both`);
  }
  const tls = config.etcdCACertFile ?? config.etcdCertFile;
  if (config.datastoreType === 'etcdv3' && tls !== undefined) {
    const plain = config.etcdEndpoints.find((endpoint) => endpoint.startsWith('http:'));
    if (plain !== undefined) {
      const which = config.etcdCACertFile !== undefined ? names.etcdCACertFile : names.etcdCertFile;
      throw new ConfigError(
        `${names.etcdEndpoints}: "${plain}" is plain http but ${which} is set; use https://${plain.slice('http://'.length)}`,
      );
    }
  }
  FIELD_NAMES.set(config, names);
  return config;
}

/** How each field was spelled where this configuration came from (ETCD_CA_CERT_FILE, "f: spec.kubeconfig"). */
const FIELD_NAMES = new WeakMap<DatastoreConfig, Record<Field, string>>();

/** The configuration from environment variables alone (no file). */
export function configFromEnv(env: Readonly<Record<string, string | undefined>>): DatastoreConfig {
  const partial: Partial<Record<Field, unknown>> = {};
  for (const setting of SETTINGS) {
    const raw = env[setting.env];
    if (raw === undefined || raw === '') continue;
    partial[setting.field] = setting.parse(raw, setting.env);
  }
  const names = Object.fromEntries(SETTINGS.map((s) => [s.field, s.env])) as Record<Field, string>;
  return finish(partial as Partial<DatastoreConfig>, 'environment', names);
}

/**
 * A config file's text: tortie's own form (flat keys, as in CalicoAPIConfig's spec) or calicoctl's
 * `apiVersion: projectcalico.org/v3, kind: CalicoAPIConfig` with the keys under `spec`.
 */
export function configFromFile(text: string, path: string): DatastoreConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (error) {
    throw new ConfigError(
      `${path}: not valid YAML: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`,
    );
  }
  if (doc === null || doc === undefined)
    throw new ConfigError(`${path}: the file is empty; set at least datastoreType`);
  if (typeof doc !== 'object' || Array.isArray(doc))
    throw new ConfigError(
      `${path}: expected a mapping of settings, found ${Array.isArray(doc) ? 'a list' : JSON.stringify(doc)}`,
    );
  const top = doc as Record<string, unknown>;
  let body = top;
  let prefix = '';
  if ('kind' in top || 'apiVersion' in top) {
    if (top.kind !== 'CalicoAPIConfig') {
      throw new ConfigError(
        `${path}: kind ${JSON.stringify(top.kind)} is not a datastore configuration; use kind: CalicoAPIConfig (apiVersion: projectcalico.org/v3), or tortie's flat form without kind`,
      );
    }
    if (top.apiVersion !== 'projectcalico.org/v3') {
      throw new ConfigError(
        `${path}: apiVersion ${JSON.stringify(top.apiVersion)} is not supported for CalicoAPIConfig; use projectcalico.org/v3`,
      );
    }
    const extra = Object.keys(top).filter((key) => !['apiVersion', 'kind', 'metadata', 'spec'].includes(key));
    if (extra.length > 0)
      throw new ConfigError(
        `${path}: unknown field ${extra.join(', ')}; a CalicoAPIConfig has apiVersion, kind, metadata, spec`,
      );
    const spec = top.spec ?? {};
    if (typeof spec !== 'object' || spec === null || Array.isArray(spec))
      throw new ConfigError(`${path}: spec must be a mapping of settings, found ${JSON.stringify(spec)}`);
    body = spec as Record<string, unknown>;
    prefix = 'spec.';
  }
  const byKey = new Map(SETTINGS.map((s) => [s.key, s]));
  const partial: Partial<Record<Field, unknown>> = {};
  for (const [key, value] of Object.entries(body)) {
    const where = `${path}: ${prefix}${key}`;
    const setting = byKey.get(key);
    if (setting === undefined) {
      const instead = UNSUPPORTED_CALICO_FIELDS[key];
      if (instead !== undefined) throw new ConfigError(`${where} is not supported by tortie; ${instead}`);
      throw new ConfigError(`${where}: unknown setting; accepted: ${SETTINGS.map((s) => s.key).join(', ')}`);
    }
    if (value === null || value === '') continue;
    partial[setting.field] = setting.parse(value, where);
  }
  const names = Object.fromEntries(SETTINGS.map((s) => [s.field, `${path}: ${prefix}${s.key}`])) as Record<
    Field,
    string
  >;
  return finish(partial as Partial<DatastoreConfig>, path, names);
}

/** Files the configuration names, with the variable or field that named them (checked before connecting). */
export function filesNamed(config: DatastoreConfig): Array<{ where: string; path: string }> {
  const files: Array<{ where: string; path: string }> = [];
  for (const setting of SETTINGS) {
    const value = config[setting.field];
    if (setting.parse !== parsePath || typeof value !== 'string') continue;
    const where = FIELD_NAMES.get(config)?.[setting.field] ?? setting.key;
    // KUBECONFIG may be a colon-separated list, as kubectl reads it.
    const paths = setting.field === 'kubeconfig' ? value.split(':').filter((p) => p !== '') : [value];
    for (const path of paths) files.push({ where, path });
  }
  return files;
}
