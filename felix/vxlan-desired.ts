// What vxlan.calico should hold (felix/vxlan.ts tells the whole story): the device, one neighbour and one
// FDB entry per remote VTEP, computed from the node's view. Pure: no I/O, no clock.

import { tryParseIpv4, formatIpv4 } from '../bgp/ip.js';

export const VXLAN_DEVICE = 'vxlan.calico';
/** Calico's VNI for IPv4 (felix VXLANVNI default). */
export const VXLAN_VNI = 4096;
/** The IANA VXLAN port (RFC 7348 §5), felix's VXLANPort default. */
export const VXLAN_PORT = 4789;
/** Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14) headers: felix's auto MTU is host − 50. */
export const VXLAN_OVERHEAD = 50;

/** One remote node's tunnel endpoint. */
export interface VxlanVtep {
  node: string;
  /** The node's address (no length): the FDB entry's destination. */
  nodeIp: string;
  tunnelAddress: string;
  mac: string;
}

export interface VxlanInput {
  /** Some IPv4 pool has vxlanMode not Never: the device should exist. */
  needed: boolean;
  /** This node: its address (no length) and its VTEP when allocated. */
  local: { nodeIp: string; tunnelAddress?: string; mac?: string };
  /** Every other node's VTEP that is known. */
  remotes: readonly VxlanVtep[];
  /** FELIX_VXLANMTU. */
  mtu?: number;
  /** The host interface's MTU (the device gets this − 50 unless `mtu`). */
  hostMtu?: number;
}

export interface VxlanDeviceSpec {
  vni: number;
  port: number;
  local: string;
  mac: string;
  /** undefined: left as the kernel makes it. */
  mtu?: number;
  /** "10.244.0.1/32". */
  address: string;
}

export interface VxlanDesired {
  /** null: no device wanted (one of ours is deleted). */
  device: VxlanDeviceSpec | null;
  /** tunnel address → MAC. */
  neighbours: ReadonlyMap<string, string>;
  /** MAC → node address. */
  fdb: ReadonlyMap<string, string>;
}

/** The device's MTU: `mtu` when given, else host − 50, else undefined (left alone). */
export function vxlanMtu(options: { mtu?: number; hostMtu?: number }): number | undefined {
  if (options.mtu !== undefined && options.mtu > 0) return options.mtu;
  if (options.hostMtu !== undefined && options.hostMtu > VXLAN_OVERHEAD + 68) return options.hostMtu - VXLAN_OVERHEAD;
  return undefined;
}

export function bareIp(text: string | undefined): string | null {
  if (text === undefined) return null;
  const addr = tryParseIpv4(text.split('/')[0] ?? '');
  return addr === null ? null : formatIpv4(addr);
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

function normalMac(text: string | undefined): string | null {
  const mac = (text ?? '').toLowerCase();
  return MAC.test(mac) && (parseInt(mac.slice(0, 2), 16) & 1) === 0 ? mac : null;
}

/** What the kernel should hold for `input`; a VTEP with a bad field is left out with a warning naming it. */
export function desiredVxlan(input: VxlanInput): { desired: VxlanDesired; warnings: string[] } {
  const warnings: string[] = [];
  const neighbours = new Map<string, string>();
  const fdb = new Map<string, string>();
  if (!input.needed) return { desired: { device: null, neighbours, fdb }, warnings };
  const local = bareIp(input.local.nodeIp);
  const address = bareIp(input.local.tunnelAddress);
  const mac = normalMac(input.local.mac);
  let device: VxlanDeviceSpec | null = null;
  if (local === null)
    warnings.push(
      `${VXLAN_DEVICE}: this node's address "${input.local.nodeIp}" is not an IPv4 address: no VXLAN device`,
    );
  else if (address === null || mac === null) {
    warnings.push(
      `${VXLAN_DEVICE}: this node has no VXLAN tunnel address and MAC yet (Node.spec.ipv4VXLANTunnelAddr, vxlanTunnelMACAddr): no VXLAN device`,
    );
  } else {
    const mtu = vxlanMtu(input);
    device = {
      vni: VXLAN_VNI,
      port: VXLAN_PORT,
      local,
      mac,
      address: `${address}/32`,
      ...(mtu !== undefined ? { mtu } : {}),
    };
  }
  const sorted = [...input.remotes].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  for (const vtep of sorted) {
    const ip = bareIp(vtep.tunnelAddress);
    const dst = bareIp(vtep.nodeIp);
    const vmac = normalMac(vtep.mac);
    if (ip === null || dst === null || vmac === null) {
      warnings.push(
        `node ${vtep.node}: VTEP tunnel address "${vtep.tunnelAddress}", MAC "${vtep.mac}", node address "${vtep.nodeIp}" — not all valid: no VXLAN entries for it`,
      );
      continue;
    }
    if (neighbours.has(ip) || fdb.has(vmac)) {
      warnings.push(`node ${vtep.node}: VTEP ${ip} / ${vmac} is already another node's: no VXLAN entries for it`);
      continue;
    }
    neighbours.set(ip, vmac);
    fdb.set(vmac, dst);
  }
  return { desired: { device, neighbours, fdb }, warnings };
}

/** The dataplane's view (dataplane.ts DataplaneInput) as the keeper's input. Pure. */
export function vxlanInputFor(input: {
  node: { ip: string };
  pools: ReadonlyArray<{ cidr: string; ipipMode: string; vxlanMode?: string }>;
  tunnel: { hostMtu?: number };
  vxlan?: {
    local: { tunnelAddress?: string; mac?: string };
    nodes: ReadonlyArray<{ name: string; ip: string; tunnelAddress?: string; mac?: string }>;
    mtu?: number;
  };
}): VxlanInput {
  // A pool with both encapsulations on is left alone (route-calc.ts warns): it does not ask for the device.
  const needed = input.pools.some(
    (p) => !p.cidr.includes(':') && (p.vxlanMode ?? 'Never') !== 'Never' && p.ipipMode === 'Never',
  );
  const nodeIp = input.node.ip.split('/')[0] ?? '';
  // Not needed: nothing but "no device" matters, so other nodes' changes do not make this input differ.
  if (!needed || input.vxlan === undefined) return { needed: false, local: { nodeIp }, remotes: [] };
  const v = input.vxlan;
  const remotes: VxlanVtep[] = [];
  for (const n of v.nodes) {
    if (n.tunnelAddress === undefined || n.mac === undefined) continue;
    const ip = n.ip.split('/')[0] ?? '';
    if (ip === nodeIp) continue;
    remotes.push({ node: n.name, nodeIp: ip, tunnelAddress: n.tunnelAddress, mac: n.mac });
  }
  return {
    needed: true,
    local: {
      nodeIp,
      ...(v.local.tunnelAddress !== undefined ? { tunnelAddress: v.local.tunnelAddress } : {}),
      ...(v.local.mac !== undefined ? { mac: v.local.mac } : {}),
    },
    remotes,
    ...(v.mtu !== undefined ? { mtu: v.mtu } : {}),
    ...(input.tunnel.hostMtu !== undefined ? { hostMtu: input.tunnel.hostMtu } : {}),
  };
}
