// What the kernel holds on vxlan.calico, read from the JSON iproute2 6.1 prints (`ip -d -j addr`, `ip -j
// neigh`, `bridge -j fdb`; checked on this machine). Pure parsers: the keeper (vxlan-keeper.ts) runs the
// commands.

import { protocolNumber } from './kernel.js';
import { bareIp, VXLAN_DEVICE } from './vxlan-desired.js';

export interface ObservedVxlanDevice {
  kind: string;
  vni?: number;
  port?: number;
  local?: string;
  learning?: boolean;
  mtu: number;
  mac: string;
  up: boolean;
  /** IPv4 addresses with their length. */
  addresses: string[];
}

export interface ObservedNeighbour {
  ip: string;
  mac: string | null;
  permanent: boolean;
  protocol: number | null;
}

export interface ObservedFdb {
  mac: string;
  dst: string | null;
  permanent: boolean;
}

export interface VxlanObserved {
  device: ObservedVxlanDevice | null;
  neighbours: ObservedNeighbour[];
  fdb: ObservedFdb[];
}

type Json = Record<string, unknown>;

function jsonArray(stdout: string, what: string): Json[] {
  const text = stdout.trim();
  if (text === '') return [];
  const parsed: unknown = JSON.parse(text);
  if (!Array.isArray(parsed)) throw new Error(`${what}: expected a JSON array, got ${text.slice(0, 80)}`);
  return parsed as Json[];
}

/** `ip -d -j addr show dev vxlan.calico`: the device, or null when the output holds none. */
export function parseVxlanLink(stdout: string): ObservedVxlanDevice | null {
  const [link] = jsonArray(stdout, `ip -d -j addr show dev ${VXLAN_DEVICE}`);
  if (link === undefined) return null;
  const info = (link.linkinfo ?? {}) as { info_kind?: string; info_data?: Json };
  const data = info.info_data ?? {};
  const flags = Array.isArray(link.flags) ? (link.flags as string[]) : [];
  const addresses = (Array.isArray(link.addr_info) ? (link.addr_info as Json[]) : [])
    .filter((a) => a.family === 'inet')
    .map((a) => `${String(a.local)}/${String(a.prefixlen)}`);
  return {
    kind: info.info_kind ?? 'unknown',
    ...(typeof data.id === 'number' ? { vni: data.id } : {}),
    ...(typeof data.port === 'number' ? { port: data.port } : {}),
    ...(typeof data.local === 'string' ? { local: data.local } : {}),
    ...(typeof data.learning === 'boolean' ? { learning: data.learning } : {}),
    mtu: Number(link.mtu),
    mac: String(link.address ?? '').toLowerCase(),
    up: flags.includes('UP'),
    addresses,
  };
}

/** `ip -j neigh show dev vxlan.calico`. */
export function parseNeighbours(stdout: string): ObservedNeighbour[] {
  return jsonArray(stdout, `ip -j neigh show dev ${VXLAN_DEVICE}`).flatMap((n) => {
    const ip = bareIp(typeof n.dst === 'string' ? n.dst : undefined);
    if (ip === null) return [];
    const state = Array.isArray(n.state) ? (n.state as string[]) : [];
    // ip prints a protocol by name when it has one (`static`), else its number (`80`).
    const protocol = typeof n.protocol === 'string' ? protocolNumber(n.protocol) : null;
    return [
      {
        ip,
        mac: typeof n.lladdr === 'string' ? n.lladdr.toLowerCase() : null,
        permanent: state.includes('PERMANENT'),
        protocol,
      },
    ];
  });
}

/** `bridge -j fdb show dev vxlan.calico`. */
export function parseFdb(stdout: string): ObservedFdb[] {
  return jsonArray(stdout, `bridge -j fdb show dev ${VXLAN_DEVICE}`).flatMap((f) => {
    if (typeof f.mac !== 'string') return [];
    return [
      { mac: f.mac.toLowerCase(), dst: typeof f.dst === 'string' ? f.dst : null, permanent: f.state === 'permanent' },
    ];
  });
}
