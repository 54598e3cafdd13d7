// The CNI specification's side of the plugin, as pure functions: which spec versions and commands we
// speak, the error codes, parsing the network configuration (stdin) and the CNI_* environment, and the
// result / error / version JSON written to stdout. No I/O, no datastore: src/cni/plugin.ts does the work,
// src/cni/main.ts the process glue.
//
// Spec facts applied here (CNI SPEC.md, versions 0.3.0 … 1.1.0):
// - The runtime passes one plugin's configuration on stdin (a conflist's `plugins` entry with `name` and
//   `cniVersion` copied in, and `prevResult` when an earlier plugin of the chain produced one) and the
//   parameters in CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH.
// - Success: exit 0, the result on stdout (ADD), nothing (DEL, CHECK, STATUS, GC). Failure: exit non-zero
//   and `{"cniVersion","code","msg","details"}` on stdout. Codes 1–99 are the spec's (ERRORS below),
//   100+ are ours.
// - The result's `cniVersion` is the configuration's. 0.3.x/0.4.0 results carry `"version": "4"` on each
//   IP; 1.0.0 dropped it. CHECK exists from 0.4.0, STATUS and GC from 1.1.0.
//
// Why this is hard: the configuration is written by people (Calico's conflists are copied around), so a
// typo must be refused by name instead of silently falling back to a default datastore — one table
// (FIELDS) says which keys exist, what each accepts, and which Calico keys we deliberately do not
// support. And every refusal must land in the right spec error code: runtimes act on them (11 = retry).

import { tryParseIpv4 } from '../../bgp/ip.js';
import { interfaceNameProblem } from '../../felix/route-calc.js';

// ---------------------------------------------------------------------------------------------------------
// Versions and commands

/** What each spec version we accept changes for us. */
interface VersionRow {
  /** Results carry `"version": "4"` on each IP (dropped in 1.0.0). */
  ipVersionField: boolean;
  /** CHECK exists (0.4.0+). */
  check: boolean;
  /** STATUS and GC exist (1.1.0+). */
  statusAndGc: boolean;
}

export const CNI_VERSIONS: Readonly<Record<string, VersionRow>> = {
  '0.3.0': { ipVersionField: true, check: false, statusAndGc: false },
  '0.3.1': { ipVersionField: true, check: false, statusAndGc: false },
  '0.4.0': { ipVersionField: true, check: true, statusAndGc: false },
  '1.0.0': { ipVersionField: false, check: true, statusAndGc: false },
  '1.1.0': { ipVersionField: false, check: true, statusAndGc: true },
};
export const SUPPORTED_VERSIONS: readonly string[] = Object.keys(CNI_VERSIONS);
export const LATEST_VERSION = '1.1.0';

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC';

interface CommandRow {
  /** Environment variables the command cannot run without. */
  needs: ReadonlyArray<'CNI_CONTAINERID' | 'CNI_NETNS' | 'CNI_IFNAME'>;
  /** Whether the command exists in a configuration's version. */
  inVersion(row: VersionRow): boolean;
  /** Whether stdin must hold a network configuration (VERSION only needs `cniVersion`). */
  needsConfig: boolean;
}

export const COMMANDS: Readonly<Record<CniCommand, CommandRow>> = {
  ADD: { needs: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'], inVersion: () => true, needsConfig: true },
  // DEL: CNI_NETNS may be empty (the sandbox is already gone); the container and interface still name
  // the attachment to clean up.
  DEL: { needs: ['CNI_CONTAINERID', 'CNI_IFNAME'], inVersion: () => true, needsConfig: true },
  CHECK: { needs: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'], inVersion: (v) => v.check, needsConfig: true },
  VERSION: { needs: [], inVersion: () => true, needsConfig: false },
  STATUS: { needs: [], inVersion: (v) => v.statusAndGc, needsConfig: true },
  GC: { needs: [], inVersion: (v) => v.statusAndGc, needsConfig: true },
};

// ---------------------------------------------------------------------------------------------------------
// Errors

/** The error codes: the spec's (1–99) and ours (100+). `name` is what the message calls them. */
export const ERRORS = {
  incompatibleVersion: { code: 1, name: 'incompatible CNI version' },
  unsupportedField: { code: 2, name: 'unsupported field in network configuration' },
  unknownContainer: { code: 3, name: 'container unknown or does not exist' },
  invalidEnvironment: { code: 4, name: 'invalid necessary environment variables' },
  io: { code: 5, name: 'I/O failure' },
  decode: { code: 6, name: 'failed to decode content' },
  invalidConfig: { code: 7, name: 'invalid network configuration' },
  tryAgainLater: { code: 11, name: 'try again later' },
  notAvailable: { code: 50, name: 'the plugin is not available' },
  // ours
  noAddress: { code: 100, name: 'no IP address available' },
  dataplane: { code: 101, name: 'configuring the pod network failed' },
  datastore: { code: 102, name: 'the datastore refused' },
  checkFailed: { code: 103, name: 'the attachment is not as ADD left it' },
  internal: { code: 199, name: 'internal error' },
} as const;
export type CniErrorKind = keyof typeof ERRORS;

/** A failure the plugin reports as the spec's error JSON. */
export class CniError extends Error {
  readonly code: number;
  constructor(
    readonly kind: CniErrorKind,
    message: string,
    readonly details?: string,
  ) {
    super(message);
    this.name = 'CniError';
    this.code = ERRORS[kind].code;
  }
}

// ---------------------------------------------------------------------------------------------------------
// The environment

export interface CniEnv {
  command: CniCommand;
  containerId?: string;
  netns?: string;
  ifname?: string;
  /** CNI_ARGS as pairs, in order. */
  args: Record<string, string>;
  /** From CNI_ARGS; both or neither. */
  pod?: { namespace: string; name: string };
}

/** CNI_CONTAINERID: spec 1.0 "alphanumeric, underscore, period, hyphen; starts with an alphanumeric". */
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** `K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0` → pairs; a part without "=" is refused. */
export function parseCniArgs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(';')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0) {
      throw new CniError(
        'invalidEnvironment',
        `CNI_ARGS: "${part}" is not KEY=VALUE (expected like K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0)`,
      );
    }
    out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

/** The CNI_* variables, checked for `command`. Every refusal is code 4 and names the variable. */
export function parseEnv(env: Readonly<Record<string, string | undefined>>): CniEnv {
  const rawCommand = env.CNI_COMMAND ?? '';
  if (!Object.hasOwn(COMMANDS, rawCommand)) {
    // not `in`: "toString" or "__proto__" are in every object
    throw new CniError(
      'invalidEnvironment',
      `CNI_COMMAND: "${rawCommand}" is not a CNI command; expected one of ${Object.keys(COMMANDS).join(', ')}`,
    );
  }
  const command = rawCommand as CniCommand;
  const value = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v === '' ? undefined : v;
  };
  for (const name of COMMANDS[command].needs) {
    if (value(name) !== undefined) continue;
    const what: Record<string, string> = {
      CNI_CONTAINERID: 'the container (sandbox) id',
      CNI_NETNS: "the path of the container's network namespace (like /var/run/netns/NAME or /proc/PID/ns/net)",
      CNI_IFNAME: 'the interface name to create inside the container (like eth0)',
    };
    throw new CniError('invalidEnvironment', `${name} is not set: ${command} needs ${what[name]}`);
  }
  const out: CniEnv = { command, args: parseCniArgs(env.CNI_ARGS ?? '') };
  const containerId = value('CNI_CONTAINERID');
  if (containerId !== undefined) {
    if (!CONTAINER_ID.test(containerId)) {
      throw new CniError(
        'invalidEnvironment',
        `CNI_CONTAINERID: "${containerId}" is not a container id (letters, digits, "_", "." and "-", starting with a letter or digit)`,
      );
    }
    out.containerId = containerId;
  }
  const netns = value('CNI_NETNS');
  if (netns !== undefined) {
    if (!netns.startsWith('/'))
      throw new CniError(
        'invalidEnvironment',
        `CNI_NETNS: "${netns}" is not an absolute path (like /var/run/netns/NAME or /proc/PID/ns/net)`,
      );
    out.netns = netns;
  }
  const ifname = value('CNI_IFNAME');
  if (ifname !== undefined) {
    const problem = interfaceNameProblem(ifname);
    if (problem !== null) throw new CniError('invalidEnvironment', `CNI_IFNAME: "${ifname}" ${problem}`);
    out.ifname = ifname;
  }
  const namespace = out.args.K8S_POD_NAMESPACE;
  const name = out.args.K8S_POD_NAME;
  if ((namespace === undefined || namespace === '') !== (name === undefined || name === '')) {
    const [given, missing] = namespace ? ['K8S_POD_NAMESPACE', 'K8S_POD_NAME'] : ['K8S_POD_NAME', 'K8S_POD_NAMESPACE'];
    throw new CniError(
      'invalidEnvironment',
      `CNI_ARGS: ${given} is set but ${missing} is not; a Kubernetes pod needs both`,
    );
  }
  if (namespace && name) out.pod = { namespace, name };
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Results

export interface CniInterface {
  name: string;
  mac?: string;
  /** The network namespace path, for interfaces inside the container. */
  sandbox?: string;
  mtu?: number;
}

export interface CniIp {
  /** "10.244.1.5/32" */
  address: string;
  gateway?: string;
  /** Index into `interfaces`. */
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
}

export interface CniResult {
  interfaces: CniInterface[];
  ips: CniIp[];
  routes: CniRoute[];
  dns: Record<string, unknown>;
}

export function emptyResult(): CniResult {
  return { interfaces: [], ips: [], routes: [], dns: {} };
}

/** A result as JSON for the configuration's version (0.3.x/0.4.0: `"version"` on each IP). */
export function formatResult(cniVersion: string, result: CniResult): Record<string, unknown> {
  const row = CNI_VERSIONS[cniVersion] ?? CNI_VERSIONS[LATEST_VERSION]!;
  const withMtu = row.statusAndGc; // interface `mtu` is a 1.1.0 field
  return {
    cniVersion,
    interfaces: result.interfaces.map((i) => {
      const out: Record<string, unknown> = { name: i.name };
      if (i.mac !== undefined) out.mac = i.mac;
      if (withMtu && i.mtu !== undefined) out.mtu = i.mtu;
      if (i.sandbox !== undefined) out.sandbox = i.sandbox;
      return out;
    }),
    ips: result.ips.map((ip) => {
      const out: Record<string, unknown> = {};
      if (row.ipVersionField) out.version = ip.address.includes(':') ? '6' : '4';
      out.address = ip.address;
      if (ip.gateway !== undefined) out.gateway = ip.gateway;
      if (ip.interface !== undefined) out.interface = ip.interface;
      return out;
    }),
    routes: result.routes.map((r) => (r.gw !== undefined ? { dst: r.dst, gw: r.gw } : { dst: r.dst })),
    dns: result.dns,
  };
}

/** The spec's error JSON. */
export function formatError(cniVersion: string, error: CniError): Record<string, unknown> {
  return {
    cniVersion,
    code: error.code,
    msg: error.message,
    ...(error.details !== undefined ? { details: error.details } : {}),
  };
}

/** VERSION's answer. */
export function formatVersionInfo(): Record<string, unknown> {
  return { cniVersion: LATEST_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] };
}

/** `prevResult` (any supported version's shape) → a CniResult; `where` names it in messages. */
export function parseResult(value: unknown, where: string): CniResult {
  const object = asObject(value, where, 'invalidConfig');
  const list = (key: string): Array<Record<string, unknown>> => {
    const v = object[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v))
      throw new CniError('invalidConfig', `${where}.${key}: expected a list, found ${describe(v)}`);
    return v.map((item, i) => asObject(item, `${where}.${key}[${i}]`, 'invalidConfig'));
  };
  const str = (o: Record<string, unknown>, key: string, at: string, required: boolean): string | undefined => {
    const v = o[key];
    if (v === undefined || (v === null && !required)) {
      if (required) throw new CniError('invalidConfig', `${at}.${key} is required`);
      return undefined;
    }
    if (typeof v !== 'string')
      throw new CniError('invalidConfig', `${at}.${key}: expected a string, found ${describe(v)}`);
    return v;
  };
  const result = emptyResult();
  list('interfaces').forEach((i, n) => {
    const at = `${where}.interfaces[${n}]`;
    const iface: CniInterface = { name: str(i, 'name', at, true)! };
    const mac = str(i, 'mac', at, false);
    const sandbox = str(i, 'sandbox', at, false);
    if (mac !== undefined && mac !== '') iface.mac = mac;
    if (sandbox !== undefined && sandbox !== '') iface.sandbox = sandbox;
    if (typeof i.mtu === 'number') iface.mtu = i.mtu;
    result.interfaces.push(iface);
  });
  list('ips').forEach((ip, n) => {
    const at = `${where}.ips[${n}]`;
    const out: CniIp = { address: str(ip, 'address', at, true)! };
    const gateway = str(ip, 'gateway', at, false);
    if (gateway !== undefined && gateway !== '') out.gateway = gateway;
    if (typeof ip.interface === 'number') out.interface = ip.interface;
    result.ips.push(out);
  });
  list('routes').forEach((r, n) => {
    const at = `${where}.routes[${n}]`;
    const route: CniRoute = { dst: str(r, 'dst', at, true)! };
    const gw = str(r, 'gw', at, false);
    if (gw !== undefined && gw !== '') route.gw = gw;
    result.routes.push(route);
  });
  if (object.dns !== undefined && object.dns !== null)
    result.dns = asObject(object.dns, `${where}.dns`, 'invalidConfig');
  return result;
}

/**
 * A chained plugin's result: what the earlier plugins reported, plus our interfaces, addresses and
 * routes (spec: "must pass through prevResult with its own modifications"). Our IPs' `interface` indexes
 * are relative to `ours.interfaces` and are shifted past the previous ones.
 */
export function mergeResults(previous: CniResult | undefined, ours: CniResult): CniResult {
  if (!previous) return ours;
  const offset = previous.interfaces.length;
  const routes = [...previous.routes];
  for (const route of ours.routes) if (!routes.some((r) => r.dst === route.dst)) routes.push(route);
  return {
    interfaces: [...previous.interfaces, ...ours.interfaces],
    ips: [
      ...previous.ips,
      ...ours.ips.map((ip) => (ip.interface !== undefined ? { ...ip, interface: ip.interface + offset } : ip)),
    ],
    routes,
    dns: Object.keys(ours.dns).length > 0 ? ours.dns : previous.dns,
  };
}

// ---------------------------------------------------------------------------------------------------------
// The network configuration

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
  /** ipam.assign_ipv6 "true": an IPv6 address too (./dual-stack.ts); absent: IPv4 only. */
  assignIpv6?: boolean;
  /** ipam.ipv6_pools: as ipv4Pools, for the IPv6 address. */
  ipv6Pools?: string[];
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

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${JSON.stringify(value)}`;
}

function asObject(value: unknown, where: string, kind: CniErrorKind): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CniError(kind, `${where}: expected a JSON object, found ${describe(value)}`);
  }
  return value as Record<string, unknown>;
}

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
    } else if (key === 'ipv4_pools' || key === 'ipv6_pools') {
      if (!Array.isArray(v) || v.some((p) => typeof p !== 'string' || p.trim() === '')) {
        throw new CniError(
          'invalidConfig',
          `${at}: expected a list of IPPool names or CIDRs (like ["default-${key.slice(0, 4)}-ippool"]), found ${describe(v)}`,
        );
      }
      if (key === 'ipv4_pools') conf.ipv4Pools = (v as string[]).map((p) => p.trim());
      else conf.ipv6Pools = (v as string[]).map((p) => p.trim());
    } else if (key === 'assign_ipv4') {
      if (v !== 'true' && v !== true)
        throw new CniError(
          'unsupportedField',
          `${at}: ${JSON.stringify(v)}: tortie always assigns an IPv4 address; remove the field or set "true"`,
        );
    } else if (key === 'assign_ipv6') {
      if (v !== 'false' && v !== false && v !== 'true' && v !== true)
        throw new CniError('invalidConfig', `${at}: ${JSON.stringify(v)} is not "true" or "false"`);
      conf.assignIpv6 = v === 'true' || v === true;
    } else {
      throw new CniError(
        'unsupportedField',
        `${at} is not supported; the ipam section accepts type, ipv4_pools, ipv6_pools, assign_ipv4, assign_ipv6`,
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

/** An IPv4 address's /32 ("10.244.1.5" → "10.244.1.5/32"); null when it is not IPv4. */
export function hostPrefix(ip: string): string | null {
  return tryParseIpv4(ip) === null ? null : `${ip}/32`;
}
