// The IPIP encapsulation decision: does traffic to a remote node go through tunl0 or straight out of the
// host interface? One table row per IPPool `ipipMode`, one pure function that felix's route calculation
// calls for every remote block. Imports nothing of ours but bgp/ip.ts.
//
// Why this is hard: `CrossSubnet` means "direct when the remote node is in my own subnet", and "my own
// subnet" is only known from the node's address *with its prefix length*. A node address written as a
// /32 (cloud metadata, a hand-written `IP=10.0.0.5`, autodetection that dropped the length) has no
// useful subnet: no other node is "inside" it. Calico then silently sends every remote block through
// tunl0. We make the same safe choice — a tunnelled packet is routed by the host's own table and reaches
// the remote node whatever lies between, while a direct onlink route assumes layer-2 adjacency that a
// /32 cannot confirm — but we report it: `subnetOf()` says `useful: false` and felix's route calculation
// turns that into a warning naming the address and the fix. A /0 is the opposite trap (every address
// would be "same subnet", so everything would go out unencapsulated, across routers): it is treated like
// a /32 — tunnel, and reported.

import { formatPrefix, maskOf, parseIpv4, prefixContains, tryParseIpv4 } from '../bgp/ip.js';
import type { Prefix } from '../bgp/types.js';

export type IpipMode = 'Never' | 'Always' | 'CrossSubnet';
export type Encapsulation = 'tunnel' | 'direct';

/** Whether the remote node is in this node's subnet; `unknown` when the local prefix says nothing. */
export type SubnetRelation = 'same' | 'other' | 'unknown';

interface IpipModeRow {
  /** What the mode means, for people (docs, warnings). */
  readonly meaning: string;
  readonly decide: (relation: SubnetRelation) => Encapsulation;
}

/** One row per Calico IPPool `ipipMode` (projectcalico.org/v3 IPPool spec). */
export const IPIP_MODES: Readonly<Record<IpipMode, IpipModeRow>> = {
  Never: { meaning: 'never encapsulate: remote blocks go via the host interface', decide: () => 'direct' },
  Always: { meaning: 'always encapsulate: remote blocks go via tunl0', decide: () => 'tunnel' },
  CrossSubnet: {
    meaning: "encapsulate only towards nodes outside this node's subnet",
    // `unknown` (a /32 or /0 local address) tunnels: see the header comment for why.
    decide: (relation) => (relation === 'same' ? 'direct' : 'tunnel'),
  },
};

export function isIpipMode(value: unknown): value is IpipMode {
  return typeof value === 'string' && Object.hasOwn(IPIP_MODES, value);
}

/** A node's IPv4 address with its prefix length, and the subnet that length implies. */
export interface NodeSubnet {
  addr: number;
  subnet: Prefix;
  /** False for /32 (no other address inside) and /0 (every address inside): CrossSubnet cannot decide. */
  useful: boolean;
}

/**
 * Parses a node address "a.b.c.d/len" (host bits set, as an interface address is written). A bare
 * "a.b.c.d" is taken as /32. Throws an error naming the value and the expected form.
 */
export function subnetOf(localIpWithLen: string, what = 'node address'): NodeSubnet {
  const slash = localIpWithLen.indexOf('/');
  const addrText = slash < 0 ? localIpWithLen : localIpWithLen.slice(0, slash);
  const addr = tryParseIpv4(addrText);
  if (addr === null) {
    throw new Error(`${what} "${localIpWithLen}" is not an IPv4 address with prefix length (like 192.168.31.201/24)`);
  }
  let len = 32;
  if (slash >= 0) {
    const lenText = localIpWithLen.slice(slash + 1);
    if (!/^(0|[1-9][0-9]?)$/.test(lenText) || Number(lenText) > 32) {
      throw new Error(`${what} "${localIpWithLen}": prefix length "${lenText}" is not 0..32 (like 192.168.31.201/24)`);
    }
    len = Number(lenText);
  }
  const subnet = { addr: (addr & maskOf(len)) >>> 0, len };
  return { addr, subnet, useful: len > 0 && len < 32 };
}

/** Where `remote` lies relative to the local node's subnet. */
export function subnetRelation(local: NodeSubnet, remote: number): SubnetRelation {
  if (!local.useful) return 'unknown';
  return prefixContains(local.subnet, remote) ? 'same' : 'other';
}

/**
 * The encapsulation towards one remote node under an IPPool's ipipMode.
 * `localIpWithLen` is this node's address with prefix length ("192.168.31.201/24"); `remoteIp` is the
 * remote node's address (the BGP next hop). A /32 or /0 local address cannot place anyone in "my subnet":
 * CrossSubnet then tunnels (see the header). Throws for a malformed address or an unknown mode.
 */
export function encapsulationFor(mode: IpipMode, localIpWithLen: string, remoteIp: string): Encapsulation {
  const row: IpipModeRow | undefined = isIpipMode(mode) ? IPIP_MODES[mode] : undefined;
  if (row === undefined) {
    throw new Error(`ipipMode "${String(mode)}" is not one of ${Object.keys(IPIP_MODES).join(', ')}`);
  }
  const local = subnetOf(localIpWithLen);
  const remote = parseIpv4(remoteIp, 'remote node address');
  return row.decide(subnetRelation(local, remote));
}

/** "192.168.31.0/24" for messages. */
export function formatSubnet(local: NodeSubnet): string {
  return formatPrefix(local.subnet);
}

/** The IPIP device every tunnel route goes out of (Calico's name; the kernel's fallback ipip device). */
export const IPIP_DEVICE = 'tunl0';
