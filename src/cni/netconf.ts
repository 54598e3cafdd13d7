// The CNI network configuration (stdin) read into NetConf, as a pure function: one table (FIELDS) of the
// keys a tortie configuration may hold, and one (UNSUPPORTED) of the Calico keys we refuse with what to do
// instead.
//
// Why this is hard: the configuration is written by people (Calico's conflists are copied around), so a
// typo must be refused by name instead of silently falling back to a default datastore — one table
// (FIELDS) says which keys exist, what each accepts, and which Calico keys we deliberately do not
// support. And every refusal must land in the right spec error code: runtimes act on them (11 = retry).

import { parseResult, type CniResult } from './result.js';
import { asObject, CNI_VERSIONS, CniError, describe, SUPPORTED_VERSIONS } from './spec.js';

export type DatastoreKind = 'etcdv3' | 'kubernetes';
export type LogLevel = 'debug' | 'info' | 'warning' | 'error';
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warning', 'error'];

export interface NetConf {
  cniVersion: string;
  /** The network name (`k8s-pod-network`): part of every IPAM handle id. */
  name: string;
  type: string;
  datastoreType: DatastoreKind;
  etcdEndpoints?: string;
  etcdCaCertFile?: string;
  etcdCertFile?: string;
  etcdKeyFile?: string;
  kubeconfig?: string;
  nodename?: string;
  nodenameFile?: string;
  /** undefined: choose (see src/cni/plugin.ts chooseMtu). */
  mtu?: number;
  /** IPPool names or CIDRs to assign from, in order; empty = any pool that selects the node. */
  ipv4Pools: string[];
  logLevel: LogLevel;
  logFile?: string;
  prevResult?: CniResult;
  /** GC (1.1.0): the attachments the runtime still knows; everything else of ours may go. */
  validAttachments?: Array<{ containerId: string; ifname?: string }>;
}

/** How one configuration key is read into NetConf; `where` is its path for messages. */
interface Field {
  key: string;
  read(value: unknown, conf: NetConf, where: string): void;
}

const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

function text(value: unknown, where: string, example: string): string {
  if (typeof value !== 'string' || value.trim() === '')
    throw new CniError(
      'invalidConfig',
      `${where}: expected a non-empty string (like ${example}), found ${describe(value)}`,
    );
  return value.trim();
}

/** Accepted and not used by tortie (the runtime's, or a Calico field that needs no action here). */
const ignored = (): void => undefined;

/** One row per key a tortie network configuration may hold. */
const FIELDS: readonly Field[] = [
  { key: 'cniVersion', read: ignored }, // read first, in parseNetConf
  { key: 'name', read: ignored }, // ditto
  { key: 'type', read: (v, c, w) => (c.type = text(v, w, '"tortie"')) },
  {
    key: 'datastore_type',
    read: (v, c, w) => {
      if (v !== 'etcdv3' && v !== 'kubernetes')
        throw new CniError(
          'invalidConfig',
          `${w}: ${JSON.stringify(v)} is not a datastore type; use "etcdv3" or "kubernetes"`,
        );
      c.datastoreType = v;
    },
  },
  { key: 'etcd_endpoints', read: (v, c, w) => (c.etcdEndpoints = text(v, w, '"http://127.0.0.1:2379"')) },
  { key: 'etcd_ca_cert_file', read: (v, c, w) => (c.etcdCaCertFile = text(v, w, '"/etc/tortie/ca.pem"')) },
  { key: 'etcd_cert_file', read: (v, c, w) => (c.etcdCertFile = text(v, w, '"/etc/tortie/cert.pem"')) },
  { key: 'etcd_key_file', read: (v, c, w) => (c.etcdKeyFile = text(v, w, '"/etc/tortie/key.pem"')) },
  { key: 'kubeconfig', read: (v, c, w) => (c.kubeconfig = text(v, w, '"/etc/cni/net.d/tortie-kubeconfig"')) },
  {
    // Calico's spelling: "kubernetes": {"kubeconfig": "..."}.
    key: 'kubernetes',
    read: (v, c, w) => {
      const o = asObject(v, w, 'invalidConfig');
      for (const [k, value] of Object.entries(o)) {
        if (k === 'kubeconfig') c.kubeconfig = text(value, `${w}.kubeconfig`, '"/etc/cni/net.d/tortie-kubeconfig"');
        else
          throw new CniError(
            'unsupportedField',
            `${w}.${k} is not supported by tortie; set the API server and credentials in a kubeconfig file (${w}.kubeconfig)`,
          );
      }
    },
  },
  { key: 'nodename', read: (v, c, w) => (c.nodename = text(v, w, '"node-1"')) },
  { key: 'nodename_file', read: (v, c, w) => (c.nodenameFile = text(v, w, '"/var/run/tortie/nodename"')) },
  {
    key: 'mtu',
    read: (v, c, w) => {
      if (v === 0) return; // Calico's "unset"
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 68 || v > 65535) {
        throw new CniError(
          'invalidConfig',
          `${w}: ${JSON.stringify(v)} is not an MTU; use an integer 68..65535, or leave it out to have tortie choose`,
        );
      }
      c.mtu = v;
    },
  },
  { key: 'ipam', read: readIpam },
  {
    key: 'log_level',
    read: (v, c, w) => {
      const level = typeof v === 'string' ? v.toLowerCase().replace(/^warn$/, 'warning') : v;
      if (!(LOG_LEVELS as readonly unknown[]).includes(level)) {
        throw new CniError(
          'invalidConfig',
          `${w}: ${JSON.stringify(v)} is not a log level; use ${LOG_LEVELS.join(', ')}`,
        );
      }
      c.logLevel = level as LogLevel;
    },
  },
  { key: 'log_file_path', read: (v, c, w) => (c.logFile = text(v, w, '"/var/log/tortie/cni.log"')) },
  { key: 'prevResult', read: (v, c, w) => (c.prevResult = parseResult(v, w)) },
  { key: 'cni.dev/valid-attachments', read: readAttachments },
  // libcni sends both spellings (CNI issue #1101: an early 1.1 draft named it cni.dev/attachments).
  { key: 'cni.dev/attachments', read: readAttachments },
  // Runtime fields tortie does not act on: accepted.
  { key: 'cniVersions', read: ignored },
  { key: 'runtimeConfig', read: ignored },
  { key: 'capabilities', read: ignored },
  { key: 'args', read: ignored },
  { key: 'dns', read: ignored },
  { key: 'disableCheck', read: ignored },
  { key: 'disableGC', read: ignored },
  // Calico: NetworkPolicy is not tortie's (yet); the field is accepted so Calico's conflists work.
  { key: 'policy', read: ignored },
];

/** Calico CNI keys tortie does not support, with what to do instead (code 2). */
const UNSUPPORTED: Readonly<Record<string, string>> = {
  etcd_scheme: 'write the scheme in etcd_endpoints (http://HOST:PORT or https://HOST:PORT)',
  etcd_authority: 'use etcd_endpoints (http://HOST:PORT)',
  etcd_discovery_srv: 'list the endpoints in etcd_endpoints',
  etcd_ca_cert: 'put the CA certificate in a file and set etcd_ca_cert_file',
  etcd_cert: 'put the certificate in a file and set etcd_cert_file',
  etcd_key: 'put the key in a file and set etcd_key_file',
  container_settings: 'tortie does not change sysctls inside the container',
  feature_control: 'tortie has no optional features to switch',
  dataplane_options: 'tortie has one dataplane (veth + routes)',
  windows_use_single_network: 'tortie runs on Linux only',
  num_queues: 'tortie creates single-queue veths',
};

function readIpam(value: unknown, conf: NetConf, where: string): void {
  const o = asObject(value, where, 'invalidConfig');
  for (const [key, v] of Object.entries(o)) {
    const at = `${where}.${key}`;
    if (key === 'type') {
      if (v !== 'tortie-ipam' && v !== 'calico-ipam') {
        throw new CniError(
          'unsupportedField',
          `${at}: ${JSON.stringify(v)} is not supported; tortie assigns addresses from its own block IPAM: use "tortie-ipam" (or Calico's "calico-ipam")`,
        );
      }
    } else if (key === 'ipv4_pools') {
      if (!Array.isArray(v) || v.some((p) => typeof p !== 'string' || p.trim() === '')) {
        throw new CniError(
          'invalidConfig',
          `${at}: expected a list of IPPool names or CIDRs (like ["default-ipv4-ippool"]), found ${describe(v)}`,
        );
      }
      conf.ipv4Pools = (v as string[]).map((p) => p.trim());
    } else if (key === 'assign_ipv4') {
      if (v !== 'true' && v !== true)
        throw new CniError(
          'unsupportedField',
          `${at}: ${JSON.stringify(v)}: tortie always assigns an IPv4 address; remove the field or set "true"`,
        );
    } else if (key === 'assign_ipv6') {
      if (v !== 'false' && v !== false)
        throw new CniError(
          'unsupportedField',
          `${at}: ${JSON.stringify(v)}: tortie does not assign IPv6 addresses; remove the field or set "false"`,
        );
    } else {
      throw new CniError(
        'unsupportedField',
        `${at} is not supported; the ipam section accepts type, ipv4_pools, assign_ipv4, assign_ipv6`,
      );
    }
  }
}

function readAttachments(value: unknown, conf: NetConf, where: string): void {
  if (!Array.isArray(value))
    throw new CniError(
      'invalidConfig',
      `${where}: expected a list of {"containerID", "ifname"}, found ${describe(value)}`,
    );
  conf.validAttachments = value.map((item, i) => {
    const o = asObject(item, `${where}[${i}]`, 'invalidConfig');
    const containerId = text(o.containerID, `${where}[${i}].containerID`, '"3f69…"');
    return typeof o.ifname === 'string' && o.ifname !== '' ? { containerId, ifname: o.ifname } : { containerId };
  });
}

/** Checks only `cniVersion` (VERSION's stdin, and the first thing every command reads). */
export function parseVersionField(text: string): string | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  const v = typeof doc === 'object' && doc !== null ? (doc as Record<string, unknown>).cniVersion : undefined;
  return typeof v === 'string' ? v : undefined;
}

/**
 * stdin → NetConf. Refusals: not JSON → 6; no/unsupported cniVersion → 7/1; a key tortie does not know or
 * does not support → 2; a bad value → 7. Each names the key, the value and what would be accepted.
 */
export function parseNetConf(stdin: string): NetConf {
  if (stdin.trim() === '')
    throw new CniError(
      'decode',
      'no network configuration on stdin: the runtime must pass the plugin configuration as JSON',
    );
  let doc: unknown;
  try {
    doc = JSON.parse(stdin);
  } catch (err) {
    throw new CniError(
      'decode',
      `the network configuration on stdin is not JSON: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  const o = asObject(doc, 'network configuration', 'decode');
  const version = o.cniVersion;
  if (version === undefined)
    throw new CniError('invalidConfig', `cniVersion is required; tortie supports ${SUPPORTED_VERSIONS.join(', ')}`);
  if (typeof version !== 'string')
    throw new CniError('invalidConfig', `cniVersion: expected a string like "1.0.0", found ${describe(version)}`);
  if (!Object.hasOwn(CNI_VERSIONS, version)) {
    throw new CniError(
      'incompatibleVersion',
      `cniVersion "${version}" is not supported; tortie supports ${SUPPORTED_VERSIONS.join(', ')}`,
    );
  }
  const name = o.name;
  if (typeof name !== 'string' || !NETWORK_NAME.test(name)) {
    throw new CniError(
      'invalidConfig',
      `name: ${describe(name)} is not a network name (letters, digits, "_", "." and "-", like "k8s-pod-network")`,
    );
  }
  const conf: NetConf = {
    cniVersion: version,
    name,
    type: 'tortie',
    datastoreType: 'etcdv3',
    ipv4Pools: [],
    logLevel: 'warning',
  };
  const byKey = new Map(FIELDS.map((f) => [f.key, f]));
  for (const [key, value] of Object.entries(o)) {
    const field = byKey.get(key);
    if (field) {
      if (value !== null) field.read(value, conf, key);
      continue;
    }
    const instead = UNSUPPORTED[key];
    if (instead !== undefined) throw new CniError('unsupportedField', `${key} is not supported by tortie; ${instead}`);
    throw new CniError(
      'unsupportedField',
      `${key} is not a tortie network configuration field; accepted: ${FIELDS.map((f) => f.key).join(', ')}`,
    );
  }
  if (
    conf.datastoreType === 'kubernetes' &&
    (conf.etcdEndpoints ?? conf.etcdCaCertFile ?? conf.etcdCertFile ?? conf.etcdKeyFile) !== undefined
  ) {
    throw new CniError(
      'invalidConfig',
      'datastore_type is "kubernetes" but etcd_* fields are set; remove them, or set datastore_type "etcdv3"',
    );
  }
  return conf;
}
