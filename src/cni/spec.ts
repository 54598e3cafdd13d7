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
// The results (formatting per version, prevResult, chaining) are in src/cni/result.ts, the network
// configuration (the FIELDS table) in src/cni/netconf.ts.

import { interfaceNameProblem } from '../../felix/interface-names.js';

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
// JSON shapes, for the result and configuration readers

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${JSON.stringify(value)}`;
}

export function asObject(value: unknown, where: string, kind: CniErrorKind): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CniError(kind, `${where}: expected a JSON object, found ${describe(value)}`);
  }
  return value as Record<string, unknown>;
}
