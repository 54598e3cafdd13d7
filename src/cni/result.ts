// CNI results, as pure functions: the result JSON for the configuration's spec version (0.3.x/0.4.0 carry
// `"version": "4"` on each IP; 1.0.0 dropped it), the error and VERSION answers, reading a chained
// plugin's `prevResult` in any supported version's shape, and merging it with ours.

import { tryParseIpv4 } from '../../bgp/ip.js';
import { asObject, CNI_VERSIONS, CniError, describe, LATEST_VERSION, SUPPORTED_VERSIONS } from './spec.js';

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

/** An IPv4 address's /32 ("10.244.1.5" → "10.244.1.5/32"); null when it is not IPv4. */
export function hostPrefix(ip: string): string | null {
  return tryParseIpv4(ip) === null ? null : `${ip}/32`;
}
