// Names of IPAM objects, the same in every datastore: Calico's CRD names, which the etcd backend maps to
// and from its keys (/calico/ipam/v2/...).
//   IPAMBlock     10.244.1.0/26 on any node  → "10-244-1-0-26"
//   BlockAffinity node-a, 10.244.1.0/26      → "node-a-10-244-1-0-26"
//   IPAMHandle    handle id                  → the id itself

import { formatPrefix, parsePrefix } from '../../bgp/index.js';

/** "10.244.1.0/26" → "10-244-1-0-26". */
export function blockName(cidr: string): string {
  return formatPrefix(parsePrefix(cidr, { strict: true, what: 'block CIDR' })).replace(/[./]/g, '-');
}

/**
 * The CIDR an IPAMBlock name stands for. Accepts "10-244-1-0-26" (the CRD name), "10.244.1.0-26" (the
 * etcd key's last part) and "10.244.1.0/26"; anything else throws naming the value.
 */
export function cidrOfBlockName(name: string): string {
  const parts = name.split(/[-./]/);
  if (parts.length !== 5) {
    throw new Error(`IPAMBlock name "${name}" is not a block like 10-244-1-0-26 or 10.244.1.0/26`);
  }
  const cidr = `${parts.slice(0, 4).join('.')}/${parts[4]}`;
  return formatPrefix(parsePrefix(cidr, { strict: true, what: `IPAMBlock name "${name}"` }));
}

/** "node-a", "10.244.1.0/26" → "node-a-10-244-1-0-26". */
export function affinityName(node: string, cidr: string): string {
  return `${node}-${blockName(cidr)}`;
}

/** The node and CIDR of a BlockAffinity name (the CIDR is always the last five dash-separated parts). */
export function parseAffinityName(name: string): { node: string; cidr: string } {
  const parts = name.split('-');
  if (parts.length < 6) {
    throw new Error(`BlockAffinity name "${name}" is not <node>-<block>, like node-a-10-244-1-0-26`);
  }
  const node = parts.slice(0, -5).join('-');
  return { node, cidr: cidrOfBlockName(parts.slice(-5).join('-')) };
}

/** "10.244.1.0/26" → "10.244.1.0-26", the last part of Calico's etcd keys. */
export function cidrKeyPart(cidr: string): string {
  return formatPrefix(parsePrefix(cidr, { strict: true, what: 'block CIDR' })).replace('/', '-');
}

/**
 * The handle prefixes of a node's tunnel addresses, as Calico names them (`ipip-tunnel-addr-<node>`, and
 * for VXLAN and WireGuard interfaces its `vxlan-tunnel-addr-` / `wireguard-tunnel-addr-`). One row per
 * kind of tunnel: tortie allocates only the IPIP one, but releases any of them with their node.
 */
export const TUNNEL_HANDLE_PREFIXES = ['ipip-tunnel-addr-', 'vxlan-tunnel-addr-', 'wireguard-tunnel-addr-'] as const;

/** The IPAM handle of `node`'s IPIP tunnel address: "ipip-tunnel-addr-node-a". */
export function ipipTunnelHandle(node: string): string {
  return `${TUNNEL_HANDLE_PREFIXES[0]}${node}`;
}

/** The node whose tunnel address a handle holds ("ipip-tunnel-addr-node-a" → "node-a"), or null. */
export function tunnelHandleNode(handle: string | null | undefined): string | null {
  if (!handle) return null;
  const prefix = TUNNEL_HANDLE_PREFIXES.find((p) => handle.startsWith(p) && handle.length > p.length);
  return prefix === undefined ? null : handle.slice(prefix.length);
}
