// The node agent's configuration from its environment, with Calico's variable names where Calico has one
// (NODENAME, IP, IP_AUTODETECTION_METHOD, AS, WAIT_FOR_DATASTORE, CALICO_IPV4POOL_*, NO_DEFAULT_POOLS,
// FELIX_IPINIPMTU) and TORTIE_* for the rest. The datastore's own variables (DATASTORE_TYPE, ETCD_*,
// KUBECONFIG) are read by src/datastore (loadDatastoreConfig), not here.
//
// Pure: `parseAgentConfig(env, hostname)` returns the config or throws AgentConfigError listing every
// problem at once; each names the variable, the value and what would be accepted.
//
// TORTIE_DATAPLANE: `kernel` (the default) programs routes and tunl0 (felix/, ipip/); `none` computes
// them and leaves the kernel alone (an agent on a host whose routes someone else manages, benches).
// FELIX_ROUTEREFRESHINTERVAL (seconds, Calico's name and default 90) is the full route resync period.
// TORTIE_TUNL0_STANDIN=manage lets a non-IPIP device named tunl0 stand in for the tunnel (tests on
// kernels without IPIP: routes get their real shape, nothing is encapsulated); default refuse.
// TORTIE_BGP_MAX_PREFIXES: prefixes any one BGP peer may send (default 500 000; a BGPPeer's
// tortie.dev/max-prefixes annotation overrides it for its sessions).

import { createHash } from 'node:crypto';
import { parsePrefix, tryParseIpv4 } from '../../bgp/index.js';
import { parseAsNumber } from '../resources/index.js';
import type { EncapMode } from '../resources/types.js';
import { DEFAULT_CTL_SOCKET, DEFAULT_HEALTH_PORT } from './types.js';

export class AgentConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(
      problems.length === 1
        ? problems[0]
        : `${problems.length} problems in the environment:\n  ${problems.join('\n  ')}`,
    );
    this.name = 'AgentConfigError';
  }
}

/** How to find this node's address (IP_AUTODETECTION_METHOD). */
export type AutodetectMethod =
  | { kind: 'first-found' }
  | { kind: 'interface'; patterns: RegExp[] }
  | { kind: 'skip-interface'; patterns: RegExp[] }
  | { kind: 'cidr'; cidrs: string[] }
  | { kind: 'can-reach'; address: string };

export type IpSetting =
  | { mode: 'autodetect'; method: AutodetectMethod }
  /** prefixLength undefined: take it from the interface that holds the address. */
  | { mode: 'fixed'; address: string; prefixLength?: number };

export interface DefaultPoolConfig {
  name: string;
  cidr: string;
  blockSize: number;
  ipipMode: EncapMode;
  /** CALICO_IPV4POOL_VXLAN (default Never); never on together with ipipMode. */
  vxlanMode: EncapMode;
  natOutgoing: boolean;
}

/** CALICO_NETWORKING_BACKEND: `bird` (BGP, the default) or `vxlan` (no BGP speaker at all, VXLAN routes only). */
export type NetworkingBackend = 'bird' | 'vxlan';

export type Dataplane = 'none' | 'kernel';

export interface AgentConfig {
  nodeName: string;
  ip: IpSetting;
  /** AS: this node's AS number (Node.spec.bgp.asNumber); undefined = the global one. */
  asNumber?: number;
  waitForDatastore: boolean;
  /** null with NO_DEFAULT_POOLS. */
  defaultPool: DefaultPoolConfig | null;
  dataplane: Dataplane;
  /** FELIX_ROUTEREFRESHINTERVAL in ms (default 90 s): full re-read of the kernel's routes. */
  routeRefreshMs: number;
  /** TORTIE_TUNL0_STANDIN: manage a non-IPIP device named tunl0 (tests), or refuse it (default). */
  tunl0StandIn: 'manage' | 'refuse';
  ctlSocket: string;
  /** 0 = no health server. */
  healthPort: number;
  /** TORTIE_LOG_LEVEL when set; otherwise BGPConfiguration.logSeverityScreen decides. */
  logLevel?: string;
  /** FELIX_IPINIPMTU; undefined = auto (host MTU − 20). */
  ipipMtu?: number;
  /** FELIX_VXLANMTU; undefined = auto (host MTU − 50). */
  vxlanMtu?: number;
  /** CALICO_NETWORKING_BACKEND (default bird). */
  networkingBackend: NetworkingBackend;
  /** CALICO_ROUTER_ID: `hash` (from the node name) or an IPv4 address; undefined = the node's IPv4 address. */
  routerId?: 'hash' | string;
  /** TORTIE_BGP_MAX_PREFIXES; undefined = the speaker's default (500 000). */
  maxPrefixes?: number;
  /** TORTIE_BGP_PORT_GUARD (default true): felix drops pods' traffic to nodes' TCP port 179 (felix/bgp-guard.ts). */
  bgpPortGuard: boolean;
}

/** Calico's defaults for the pool calico-node creates at first start. */
export const DEFAULT_POOL = {
  name: 'default-ipv4-ippool',
  cidr: '192.168.0.0/16',
  blockSize: 26,
  ipipMode: 'Always',
  natOutgoing: true,
} as const;

/** Interface names first-found never picks (Calico's list: container, tunnel and loopback devices). */
export const FIRST_FOUND_SKIP = [
  '^docker.*',
  '^cbr.*',
  '^dummy.*',
  '^virbr.*',
  '^lxcbr.*',
  '^veth.*',
  '^lo$',
  '^br-.*',
  '^cali.*',
  '^tunl.*',
  '^flannel.*',
  '^kube-ipvs.*',
  '^cni.*',
  '^vxlan\\.calico.*',
];

const AUTODETECT_HELP =
  'first-found, interface=<regex,...>, skip-interface=<regex,...>, cidr=<cidr,...>, can-reach=<IPv4 address>';

/** CALICO_IPV4POOL_IPIP spellings Calico accepts → the pool's ipipMode. */
const IPIP_MODES: Readonly<Record<string, EncapMode>> = {
  always: 'Always',
  crosssubnet: 'CrossSubnet',
  'cross-subnet': 'CrossSubnet',
  never: 'Never',
  off: 'Never',
};

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** Calico's logSeverityScreen values → pino levels. */
export const SEVERITY_TO_LEVEL: Readonly<Record<string, string>> = {
  // Calico's Trace is more than Debug (BIRD's `debug all`): pino's trace level (it ran at info before).
  trace: 'trace',
  debug: 'debug',
  info: 'info',
  warning: 'warn',
  warn: 'warn',
  error: 'error',
  fatal: 'fatal',
  panic: 'fatal',
  none: 'silent',
};

const TRUE_WORDS = ['true', 'yes', '1', 'on'];
const FALSE_WORDS = ['false', 'no', '0', 'off', ''];

type Env = Readonly<Record<string, string | undefined>>;

function parseBool(env: Env, name: string, fallback: boolean, problems: string[]): boolean {
  const raw = env[name];
  if (raw === undefined) return fallback;
  const word = raw.trim().toLowerCase();
  if (TRUE_WORDS.includes(word)) return true;
  if (FALSE_WORDS.includes(word)) return false;
  problems.push(`${name}="${raw}" is not a boolean (use true or false)`);
  return fallback;
}

function parseRegexList(name: string, raw: string, list: string, problems: string[]): RegExp[] {
  const patterns: RegExp[] = [];
  for (const item of list.split(',').map((s) => s.trim())) {
    if (item === '') {
      problems.push(`${name}="${raw}": an empty regular expression in the list`);
      continue;
    }
    try {
      patterns.push(new RegExp(item));
    } catch (error) {
      problems.push(`${name}="${raw}": "${item}" is not a regular expression (${(error as Error).message})`);
    }
  }
  return patterns;
}

/** IP_AUTODETECTION_METHOD → a method, or a problem naming the valid ones. */
export function parseAutodetectMethod(
  raw: string | undefined,
  problems: string[],
  name = 'IP_AUTODETECTION_METHOD',
): AutodetectMethod {
  const text = (raw ?? '').trim();
  if (text === '' || text === 'first-found') return { kind: 'first-found' };
  const eq = text.indexOf('=');
  const head = eq < 0 ? text : text.slice(0, eq);
  const arg = eq < 0 ? '' : text.slice(eq + 1).trim();
  if (eq >= 0 && arg === '') {
    problems.push(`${name}="${raw}": "${head}=" needs a value; valid methods: ${AUTODETECT_HELP}`);
    return { kind: 'first-found' };
  }
  switch (head) {
    case 'interface':
    case 'skip-interface':
      if (eq < 0) break;
      return { kind: head, patterns: parseRegexList(name, text, arg, problems) };
    case 'cidr': {
      if (eq < 0) break;
      const cidrs: string[] = [];
      for (const item of arg.split(',').map((s) => s.trim())) {
        try {
          const p = parsePrefix(item, { what: `${name} cidr` });
          cidrs.push(`${item.split('/')[0]}/${p.len}`);
        } catch (error) {
          problems.push(`${name}="${raw}": ${(error as Error).message}`);
        }
      }
      return { kind: 'cidr', cidrs };
    }
    case 'can-reach':
      if (eq < 0) break;
      if (tryParseIpv4(arg) === null) {
        problems.push(
          `${name}="${raw}": "${arg}" is not a dotted-quad IPv4 address (can-reach takes an address, like can-reach=198.18.0.1)`,
        );
      }
      return { kind: 'can-reach', address: arg };
  }
  problems.push(`${name}="${raw}" is not a valid method; valid methods: ${AUTODETECT_HELP}`);
  return { kind: 'first-found' };
}

function parseIp(env: Env, problems: string[]): IpSetting {
  const raw = env.IP;
  const text = (raw ?? '').trim();
  const method = parseAutodetectMethod(env.IP_AUTODETECTION_METHOD, problems);
  if (text === '' || text.toLowerCase() === 'autodetect') return { mode: 'autodetect', method };
  const slash = text.indexOf('/');
  const addressText = slash < 0 ? text : text.slice(0, slash);
  if (tryParseIpv4(addressText) === null) {
    problems.push(
      `IP="${raw}" is not "autodetect" or an IPv4 address with optional prefix length (like 198.18.0.11/24)`,
    );
    return { mode: 'autodetect', method };
  }
  if (slash < 0) return { mode: 'fixed', address: addressText };
  const lenText = text.slice(slash + 1);
  if (!/^(0|[1-9][0-9]?)$/.test(lenText) || Number(lenText) > 32) {
    problems.push(`IP="${raw}": prefix length "${lenText}" is not 0..32`);
    return { mode: 'fixed', address: addressText };
  }
  return { mode: 'fixed', address: addressText, prefixLength: Number(lenText) };
}

function parseInteger(env: Env, name: string, min: number, max: number, problems: string[]): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  const text = raw.trim();
  if (!/^[0-9]+$/.test(text) || Number(text) < min || Number(text) > max) {
    problems.push(`${name}="${raw}" is not an integer ${min}..${max}`);
    return undefined;
  }
  return Number(text);
}

function parseDefaultPool(env: Env, problems: string[]): DefaultPoolConfig | null {
  if (parseBool(env, 'NO_DEFAULT_POOLS', false, problems)) return null;
  let cidr: string = DEFAULT_POOL.cidr;
  const cidrRaw = env.CALICO_IPV4POOL_CIDR;
  if (cidrRaw !== undefined && cidrRaw.trim() !== '') {
    try {
      parsePrefix(cidrRaw.trim(), { strict: true, what: 'CALICO_IPV4POOL_CIDR' });
      cidr = cidrRaw.trim();
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  const blockSize = parseInteger(env, 'CALICO_IPV4POOL_BLOCK_SIZE', 20, 32, problems) ?? DEFAULT_POOL.blockSize;
  const poolLen = Number(cidr.split('/')[1]);
  if (blockSize < poolLen)
    problems.push(
      `CALICO_IPV4POOL_BLOCK_SIZE="${blockSize}" is shorter than the pool's prefix length /${poolLen} (CALICO_IPV4POOL_CIDR=${cidr})`,
    );
  const ipipMode = parseEncapMode(env, 'CALICO_IPV4POOL_IPIP', problems);
  const vxlanMode = parseEncapMode(env, 'CALICO_IPV4POOL_VXLAN', problems) ?? 'Never';
  // As calico-node: IPIP Always is the default only when VXLAN is not asked for; both on is refused.
  if (ipipMode !== undefined && ipipMode !== 'Never' && vxlanMode !== 'Never') {
    problems.push(
      `CALICO_IPV4POOL_IPIP="${env.CALICO_IPV4POOL_IPIP}" and CALICO_IPV4POOL_VXLAN="${env.CALICO_IPV4POOL_VXLAN}" cannot both be enabled: set one of them to Never`,
    );
  }
  const natOutgoing = parseBool(env, 'CALICO_IPV4POOL_NAT_OUTGOING', DEFAULT_POOL.natOutgoing, problems);
  return {
    name: DEFAULT_POOL.name,
    cidr,
    blockSize,
    ipipMode: ipipMode ?? (vxlanMode === 'Never' ? DEFAULT_POOL.ipipMode : 'Never'),
    vxlanMode,
    natOutgoing,
  };
}

/** CALICO_IPV4POOL_IPIP / CALICO_IPV4POOL_VXLAN: a pool encapsulation mode, undefined when unset. */
function parseEncapMode(
  env: Env,
  name: 'CALICO_IPV4POOL_IPIP' | 'CALICO_IPV4POOL_VXLAN',
  problems: string[],
): EncapMode | undefined {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  const mode = IPIP_MODES[raw.trim().toLowerCase()];
  if (mode === undefined) problems.push(`${name}="${raw}" is not one of Always, CrossSubnet, cross-subnet, Never, off`);
  return mode;
}

function parseBackend(env: Env, problems: string[]): NetworkingBackend {
  const raw = (env.CALICO_NETWORKING_BACKEND ?? '').trim().toLowerCase();
  if (raw === '' || raw === 'bird') return 'bird';
  if (raw === 'vxlan') return 'vxlan';
  problems.push(`CALICO_NETWORKING_BACKEND="${env.CALICO_NETWORKING_BACKEND}" is not one of bird, vxlan`);
  return 'bird';
}

function parseDataplane(env: Env, problems: string[]): Dataplane {
  const raw = env.TORTIE_DATAPLANE;
  if (raw === undefined || raw.trim() === '') return 'kernel';
  const word = raw.trim().toLowerCase();
  if (word === 'none' || word === 'kernel') return word;
  problems.push(`TORTIE_DATAPLANE="${raw}" is not one of kernel, none`);
  return 'kernel';
}

function parseStandIn(env: Env, problems: string[]): 'manage' | 'refuse' {
  const raw = (env.TORTIE_TUNL0_STANDIN ?? '').trim().toLowerCase();
  if (raw === '' || raw === 'refuse') return 'refuse';
  if (raw === 'manage') return 'manage';
  problems.push(`TORTIE_TUNL0_STANDIN="${env.TORTIE_TUNL0_STANDIN}" is not one of manage, refuse`);
  return 'refuse';
}

/** The agent's configuration from the environment; throws AgentConfigError listing every problem. */
export function parseAgentConfig(env: Env, hostname: string): AgentConfig {
  const problems: string[] = [];
  const nodeName = (env.NODENAME ?? '').trim() || hostname.trim();
  if (nodeName === '') problems.push('NODENAME is empty and the hostname is empty: set NODENAME');
  else if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(nodeName)) {
    problems.push(
      `NODENAME="${nodeName}" is not a valid node name (lower-case letters, digits, "-" and ".", starting and ending with a letter or digit)`,
    );
  }
  const ip = parseIp(env, problems);
  let asNumber: number | undefined;
  const asRaw = env.AS;
  if (asRaw !== undefined && asRaw.trim() !== '') {
    const parsed = parseAsNumber(asRaw.trim());
    if (parsed === null || parsed < 1 || parsed > 4294967295)
      problems.push(`AS="${asRaw}" is not an AS number (1..4294967295, or dotted like 1.10)`);
    else asNumber = parsed;
  }
  const waitForDatastore = parseBool(env, 'WAIT_FOR_DATASTORE', false, problems);
  const defaultPool = parseDefaultPool(env, problems);
  const dataplane = parseDataplane(env, problems);
  const routeRefreshS = parseInteger(env, 'FELIX_ROUTEREFRESHINTERVAL', 1, 86_400, problems) ?? 90;
  const tunl0StandIn = parseStandIn(env, problems);
  const ctlSocket = (env.TORTIE_CTL_SOCKET ?? '').trim() || DEFAULT_CTL_SOCKET;
  const healthPort = parseInteger(env, 'TORTIE_HEALTH_PORT', 0, 65535, problems) ?? DEFAULT_HEALTH_PORT;
  let logLevel: string | undefined;
  const levelRaw = env.TORTIE_LOG_LEVEL;
  if (levelRaw !== undefined && levelRaw.trim() !== '') {
    if (LOG_LEVELS.includes(levelRaw.trim().toLowerCase())) logLevel = levelRaw.trim().toLowerCase();
    else problems.push(`TORTIE_LOG_LEVEL="${levelRaw}" is not one of ${LOG_LEVELS.join(', ')}`);
  }
  const ipipMtu = parseInteger(env, 'FELIX_IPINIPMTU', 0, 65535, problems);
  const vxlanMtu = parseInteger(env, 'FELIX_VXLANMTU', 0, 65535, problems);
  const networkingBackend = parseBackend(env, problems);
  const routerIdRaw = (env.CALICO_ROUTER_ID ?? '').trim();
  let routerId: string | undefined;
  if (routerIdRaw === 'hash') routerId = 'hash';
  else if (routerIdRaw !== '') {
    const address = tryParseIpv4(routerIdRaw);
    if (address === null || address === 0)
      problems.push(
        `CALICO_ROUTER_ID="${routerIdRaw}" is neither "hash" nor a non-zero IPv4 address (a BGP identifier, RFC 6286)`,
      );
    else routerId = routerIdRaw;
  }
  const maxPrefixes = parseInteger(env, 'TORTIE_BGP_MAX_PREFIXES', 1, 4294967295, problems);
  const bgpPortGuard = parseBool(env, 'TORTIE_BGP_PORT_GUARD', true, problems);
  if (problems.length > 0) throw new AgentConfigError(problems);
  return {
    nodeName,
    ip,
    ...(asNumber !== undefined ? { asNumber } : {}),
    waitForDatastore,
    defaultPool,
    dataplane,
    routeRefreshMs: routeRefreshS * 1000,
    tunl0StandIn,
    ctlSocket,
    healthPort,
    ...(logLevel !== undefined ? { logLevel } : {}),
    ...(ipipMtu !== undefined && ipipMtu !== 0 ? { ipipMtu } : {}),
    ...(vxlanMtu !== undefined && vxlanMtu !== 0 ? { vxlanMtu } : {}),
    networkingBackend,
    ...(routerId !== undefined ? { routerId } : {}),
    ...(maxPrefixes !== undefined ? { maxPrefixes } : {}),
    bgpPortGuard,
  };
}

/**
 * The BGP identifier as calico-node chooses it: CALICO_ROUTER_ID=hash → the first four bytes of
 * sha256(node name) as an address, the first byte less 32 when above 223 (no multicast or reserved id);
 * an address → that address; unset → the node's IPv4 address (null when it has none: IPv4 disabled).
 */
export function routerIdFor(setting: AgentConfig['routerId'], nodeName: string, nodeIp: string | null): string | null {
  if (setting === undefined) return nodeIp;
  if (setting !== 'hash') return setting;
  const bytes = createHash('sha256').update(nodeName).digest();
  const first = bytes[0]! > 223 ? bytes[0]! - 32 : bytes[0]!;
  return `${first}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

/** Calico's logSeverityScreen as a pino level (unknown values → info). */
export function levelOfSeverity(severity: string | undefined): string {
  return SEVERITY_TO_LEVEL[(severity ?? 'info').toLowerCase()] ?? 'info';
}
