// Names of IPAM objects, the same in every datastore: Calico's CRD names, which the etcd backend maps to
// and from its keys (/calico/ipam/v2/...).
//   IPAMBlock     10.244.1.0/26 on any node  → "10-244-1-0-26"
//                 fd00:10:244::40/122        → "fd00-10-244--40-122"   (libcalico-go names.CIDRToName:
//                                                                       '.', ':' and '/' become '-')
//   BlockAffinity node-a, 10.244.1.0/26      → "node-a-10-244-1-0-26"
//   IPAMHandle    handle id                  → the id itself
//
// Why this is hard: an IPv6 name does not say where the node ends and the CIDR begins ("node-a-fd00-…"
// could be node "node" and block "a:fd00:…"). Calico never reads a name back (etcd keys and CRD specs
// carry node and CIDR apart); tortie's etcd layout does, so every affinity name made here is remembered
// with its parts, and a name never made in this process is split by a rule (parseAffinityName).

import { formatPrefix, parsePrefix } from '../../bgp/index.js';
import { formatAddress, parseCidr } from './cidr.js';

/** A block CIDR of either family, canonical (RFC 5952 for IPv6), host bits refused. */
function canonicalBlock(cidr: string, what: string): string {
  if (!cidr.includes(':')) return formatPrefix(parsePrefix(cidr, { strict: true, what }));
  const parsed = parseCidr(cidr);
  if (parsed === null || parsed.family !== 6 || parsed.addr !== parsed.network) {
    throw new Error(`${what} "${cidr}" is not an IPv6 network CIDR (like fd00:10:244::40/122)`);
  }
  return `${formatAddress(6, parsed.network)}/${parsed.len}`;
}

/** "10.244.1.0/26" → "10-244-1-0-26"; "fd00:10:244::40/122" → "fd00-10-244--40-122". */
export function blockName(cidr: string): string {
  return canonicalBlock(cidr, 'block CIDR').replace(/[./:]/g, '-');
}

/** The IPv6 CIDR of a name like "fd00-10-244--40-122" or a key part "fd00:10:244::40-122"; null when not one. */
function ipv6OfName(name: string): string | null {
  const dash = name.lastIndexOf('-');
  if (dash <= 0) return null;
  const len = name.slice(dash + 1);
  const cidr = `${name.slice(0, dash).replace(/-/g, ':')}/${len}`;
  const parsed = parseCidr(cidr);
  if (parsed === null || parsed.family !== 6 || parsed.addr !== parsed.network) return null;
  return `${formatAddress(6, parsed.network)}/${parsed.len}`;
}

/**
 * The CIDR an IPAMBlock name stands for. Accepts "10-244-1-0-26" (the CRD name), "10.244.1.0-26" (the
 * etcd key's last part) and "10.244.1.0/26"; anything else throws naming the value.
 */
export function cidrOfBlockName(name: string): string {
  const v4 = ipv4OfName(name);
  if (v4 !== null) return v4;
  const v6 = ipv6OfName(name.replace('/', '-'));
  if (v6 !== null) return v6;
  throw new Error(`IPAMBlock name "${name}" is not a block like 10-244-1-0-26, 10.244.1.0/26 or fd00-10-244--40-122`);
}

/** The IPv4 CIDR of "10-244-1-0-26", "10.244.1.0-26" or "10.244.1.0/26"; null when the name is not one. */
function ipv4OfName(name: string): string | null {
  const parts = name.split(/[-./]/);
  if (parts.length !== 5 || !parts.every((p) => /^[0-9]{1,3}$/.test(p))) return null;
  const cidr = `${parts.slice(0, 4).join('.')}/${parts[4]}`;
  return formatPrefix(parsePrefix(cidr, { strict: true, what: `IPAMBlock name "${name}"` }));
}

/** IPv6 affinity names made in this process, with their parts (see the header: such a name is ambiguous). */
const madeIpv6Names = new Map<string, { node: string; cidr: string }>();

/** "node-a", "10.244.1.0/26" → "node-a-10-244-1-0-26"; "node-a", "fd00:10:244::40/122" → "node-a-fd00-10-244--40-122". */
export function affinityName(node: string, cidr: string): string {
  const name = `${node}-${blockName(cidr)}`;
  if (cidr.includes(':') && !madeIpv6Names.has(name))
    madeIpv6Names.set(name, { node, cidr: canonicalBlock(cidr, 'block CIDR') });
  return name;
}

/**
 * The node and CIDR of a BlockAffinity name. IPv4: the CIDR is the last five dash-separated parts. IPv6: a
 * name made by affinityName in this process is known; otherwise the CIDR is the longest tail that is an
 * IPv6 network whose first group has four hex digits (fd00:…, 2001:…: how real prefixes begin), which a
 * node name's last word rarely is — and failing that the longest tail that is an IPv6 network at all.
 */
export function parseAffinityName(name: string): { node: string; cidr: string } {
  const parts = name.split('-');
  const known = madeIpv6Names.get(name);
  if (known) return known;
  const v4 = parts.length >= 6 ? ipv4OfName(parts.slice(-5).join('-')) : null;
  if (v4 !== null) return { node: parts.slice(0, -5).join('-'), cidr: v4 };
  let fallback: { node: string; cidr: string } | null = null;
  for (let i = 1; i < parts.length - 1; i++) {
    const cidr = ipv6OfName(parts.slice(i).join('-'));
    if (cidr === null || parts.slice(0, i).join('-') === '') continue;
    const found = { node: parts.slice(0, i).join('-'), cidr };
    if (/^[0-9a-f]{4}$/i.test(parts[i] ?? '')) return found;
    fallback ??= found;
  }
  if (fallback !== null) return fallback;
  throw new Error(
    `BlockAffinity name "${name}" is not <node>-<block>, like node-a-10-244-1-0-26 or node-a-fd00-10-244--40-122`,
  );
}

/** "10.244.1.0/26" → "10.244.1.0-26", "fd00:10:244::40/122" → "fd00:10:244::40-122": the last part of Calico's etcd keys. */
export function cidrKeyPart(cidr: string): string {
  return canonicalBlock(cidr, 'block CIDR').replace('/', '-');
}

/** "ipv4" or "ipv6": the family part of Calico's etcd IPAM keys. */
export function ipVersionKeyPart(cidr: string): 'ipv4' | 'ipv6' {
  return cidr.includes(':') ? 'ipv6' : 'ipv4';
}

/**
 * The handle prefixes of a node's tunnel addresses, as Calico names them (`ipip-tunnel-addr-<node>`, and
 * for VXLAN and WireGuard interfaces its `vxlan-tunnel-addr-` / `wireguard-tunnel-addr-`). One row per
 * kind of tunnel: tortie allocates the IPIP and VXLAN ones, and releases any of them with their node.
 */
export const TUNNEL_HANDLE_PREFIXES = ['ipip-tunnel-addr-', 'vxlan-tunnel-addr-', 'wireguard-tunnel-addr-'] as const;

/** The IPAM handle of `node`'s IPIP tunnel address: "ipip-tunnel-addr-node-a". */
export function ipipTunnelHandle(node: string): string {
  return `${TUNNEL_HANDLE_PREFIXES[0]}${node}`;
}

/** The IPAM handle of `node`'s VXLAN tunnel address: "vxlan-tunnel-addr-node-a". */
export function vxlanTunnelHandle(node: string): string {
  return `${TUNNEL_HANDLE_PREFIXES[1]}${node}`;
}

/** The node whose tunnel address a handle holds ("ipip-tunnel-addr-node-a" → "node-a"), or null. */
export function tunnelHandleNode(handle: string | null | undefined): string | null {
  if (!handle) return null;
  const prefix = TUNNEL_HANDLE_PREFIXES.find((p) => handle.startsWith(p) && handle.length > p.length);
  return prefix === undefined ? null : handle.slice(prefix.length);
}
