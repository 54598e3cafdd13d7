// Who an allocation is for: the per-allocation attributes of an IPAMBlock, as Calico writes them, so that
// calicoctl, `tortie ipam show` and `tortie get ipamblocks -o yaml` show the same data for both, and so
// that code deciding whether an address may be released can ask the block instead of guessing.
//
// Calico's format (libcalico-go lib/backend/model/block.go AllocationAttribute and its IPAMBlockAttribute*
// keys; cni-plugin pkg/ipamplugin sets them on a pod's address; node pkg/allocateip on a tunnel's):
//   attributes[i] = { handle_id: "<network>.<container id>",
//                     secondary: { node, namespace, pod, timestamp } }      a pod's address
//                 = { handle_id: "ipip-tunnel-addr-<node>",
//                     secondary: { node, type: "ipipTunnelAddress" } }      a node's tunnel address
// `timestamp` is Go's time.Time String() of the UTC time of the assignment, e.g.
// "2026-11-22 10:04:05.123 +0000 UTC" (fraction without trailing zeros, none when whole seconds).
//
// Why this matters: a block is not one node's alone. A node borrows from another node's block when its
// pools have no free block, and blocks outlive their node (kept without affinity while other nodes' pods
// use them). So "in a block affine to me" does not mean "mine": the `node` attribute does. Allocations
// written before tortie recorded attributes have none; callers that release must treat those as unknown
// (never as theirs). Pure functions, no I/O.

import type { IPAMBlockSpec } from '../resources/types.js';
import { TUNNEL_HANDLE_PREFIXES } from '../resources/ipam-names.js';

/** The attribute keys (Calico's IPAMBlockAttribute* constants): one row per key tortie writes or reads. */
export const ATTRIBUTE_KEYS = {
  /** The node the address was assigned for (pods and tunnels). */
  node: 'node',
  /** The pod's namespace and name (Kubernetes pods only). */
  namespace: 'namespace',
  pod: 'pod',
  /** When the address was assigned (see calicoTimestamp). */
  timestamp: 'timestamp',
  /** What a tunnel address is for (TUNNEL_ATTRIBUTE_TYPES). */
  type: 'type',
} as const;

/** Calico's `type` attribute of a node's tunnel address, by the prefix of its handle (names.ts). */
export const TUNNEL_ATTRIBUTE_TYPES: Readonly<Record<(typeof TUNNEL_HANDLE_PREFIXES)[number], string>> = {
  'ipip-tunnel-addr-': 'ipipTunnelAddress',
  'vxlan-tunnel-addr-': 'vxlanTunnelAddress',
  'wireguard-tunnel-addr-': 'wireguardTunnelAddress',
};

/** The `type` attribute for an address held by `handle`: a tunnel's type, or null for anything else. */
export function tunnelAttributeType(handle: string): string | null {
  const prefix = TUNNEL_HANDLE_PREFIXES.find((p) => handle.startsWith(p) && handle.length > p.length);
  return prefix === undefined ? null : TUNNEL_ATTRIBUTE_TYPES[prefix];
}

/**
 * The attributes one assignment records: `extra` (a pod's namespace, pod and timestamp), `type` for a
 * tunnel handle, and always `node` — the node the address is assigned for, which no caller can override.
 */
export function assignmentAttributes(
  node: string,
  handle: string,
  extra: Readonly<Record<string, string>> = {},
): Record<string, string> {
  const type = tunnelAttributeType(handle);
  return { ...extra, ...(type !== null ? { [ATTRIBUTE_KEYS.type]: type } : {}), [ATTRIBUTE_KEYS.node]: node };
}

/** The attributes of the allocation at `ordinal`: null when it is free or was written without any. */
export function attributesAt(block: IPAMBlockSpec, ordinal: number): Readonly<Record<string, string>> | null {
  const attr = block.allocations[ordinal];
  if (attr === null || attr === undefined) return null;
  return block.attributes[attr]?.secondary ?? null;
}

/** The node the allocation at `ordinal` was assigned for; null when free or not recorded (written before attributes). */
export function allocationNode(block: IPAMBlockSpec, ordinal: number): string | null {
  const node = attributesAt(block, ordinal)?.[ATTRIBUTE_KEYS.node];
  return typeof node === 'string' && node !== '' ? node : null;
}

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/**
 * `date` as Calico's plugin writes `timestamp`: Go's time.Time String() in UTC,
 * "2006-01-02 15:04:05.999999999 -0700 MST" → "2026-11-22 10:04:05.12 +0000 UTC" (milliseconds here,
 * trailing zeros dropped, no fraction at all on a whole second).
 */
export function calicoTimestamp(date: Date): string {
  const day = `${pad(date.getUTCFullYear(), 4)}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())}`;
  const time = `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}`;
  const fraction = pad(date.getUTCMilliseconds(), 3).replace(/0+$/, '');
  return `${day} ${time}${fraction === '' ? '' : `.${fraction}`} +0000 UTC`;
}
