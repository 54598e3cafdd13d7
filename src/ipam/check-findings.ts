// What `tortie ipam check` can find and how it reports it: the FINDINGS table (one row per kind of finding:
// scope, whether it is per address, title, summary line), the Finding / AddressRecord / report shapes, and
// the small helpers the structure and cluster checks share to word their sentences. See ./check.ts for the
// whole check.

import { parsePrefix, type Prefix } from '../../bgp/index.js';

/**
 * Every kind of finding: its scope, whether it is about one address (listed with --show-problem-ips) or an
 * object (always listed), and the summary line of the text report (calicoctl's wording where it has one).
 */
export const FINDINGS = {
  'leaked-address': {
    scope: 'cluster',
    perAddress: true,
    title: 'leaked',
    summary: 'IPs that are allocated in IPAM but not in use by a workload or node (leaked)',
  },
  'outside-pools': {
    scope: 'cluster',
    perAddress: true,
    title: 'not in a pool',
    summary: 'in-use IPs that are not in any active IP pool',
  },
  'not-allocated': {
    scope: 'cluster',
    perAddress: true,
    title: 'not allocated',
    summary: 'in-use IPs that are in an active IP pool but have no IPAM allocation',
  },
  'multiple-owners': {
    scope: 'cluster',
    perAddress: true,
    title: 'two owners',
    summary: 'in-use IPs with more than one owner',
  },
  'node-gone': {
    scope: 'cluster',
    perAddress: false,
    title: 'node gone',
    summary: 'IPAM blocks affine to nodes that no longer exist',
  },
  'block-outside-pools': {
    scope: 'cluster',
    perAddress: false,
    title: 'block in no pool',
    summary: 'IPAM blocks in no IP pool',
  },
  'invalid-block': { scope: 'structure', perAddress: false, title: 'invalid block', summary: 'invalid IPAM blocks' },
  'affinity-missing': {
    scope: 'structure',
    perAddress: false,
    title: 'no affinity',
    summary: 'blocks affine to a node without its BlockAffinity',
  },
  'affinity-not-confirmed': {
    scope: 'structure',
    perAddress: false,
    title: 'affinity not confirmed',
    summary: 'blocks whose BlockAffinity is pending or pendingDeletion (not advertised)',
  },
  'affinity-without-block': {
    scope: 'structure',
    perAddress: false,
    title: 'affinity without block',
    summary: 'BlockAffinities without their block',
  },
  'affinity-mismatch': {
    scope: 'structure',
    perAddress: false,
    title: 'affinity of another node',
    summary: 'BlockAffinities whose block is affine to another node (or none)',
  },
  'handle-missing': {
    scope: 'structure',
    perAddress: false,
    title: 'no handle',
    summary: 'handles mentioned in blocks with no matching IPAMHandle',
  },
  'handle-count': {
    scope: 'structure',
    perAddress: false,
    title: 'handle miscounts',
    summary: 'IPAMHandles whose counts differ from what the blocks hold',
  },
  'handle-leaked': {
    scope: 'structure',
    perAddress: false,
    title: 'leaked handle',
    summary: 'IPAMHandles with no matching IPs',
  },
} as const satisfies Record<
  string,
  { scope: 'structure' | 'cluster'; perAddress: boolean; title: string; summary: string }
>;

export type FindingKind = keyof typeof FINDINGS;
export const FINDING_KINDS = Object.keys(FINDINGS) as FindingKind[];

export interface Finding {
  kind: FindingKind;
  /** The object it is about: `IPAMBlock 10.244.1.0/26`, `Workload(default/web-1)`, `IPAMHandle k8s-pod-network.abc`. */
  object: string;
  address?: string;
  handle?: string;
  /** What is wrong, one sentence. */
  detail: string;
  /** What to do about it, one sentence. */
  action: string;
}

/** One allocated or in-use address, as calicoctl's report lists it. */
export interface AddressRecord {
  ip: string;
  /** The block holding its allocation, or null when IPAM has none. */
  block: string | null;
  handle: string | null;
  /** The allocation's attributes (./attributes.ts), when it has them. */
  node?: string;
  namespace?: string;
  pod?: string;
  type?: string;
  timestamp?: string;
  /** Allocated in a block affine to another node than the one it was assigned for. */
  borrowed: boolean;
  /** Who uses it: `Workload(ns/name)`, `Node(name)` (calicoctl's names). */
  owners: string[];
  inUse: boolean;
}

export interface IpamCheckReport {
  counts: {
    pools: number;
    activePools: number;
    blocks: number;
    allocations: number;
    nodes: number;
    nodeTunnelIps: number;
    workloadIps: number;
    inUseIps: number;
    handles: number;
  };
  findings: Finding[];
  /** Every allocated or in-use address, ordered by address. */
  addresses: AddressRecord[];
}

/** "IPAMBlock 10.244.1.0/26: 63 allocation slots, expected 64": a finding as one sentence. */
export function findingSentence(f: Finding): string {
  return `${f.object}: ${f.detail}`;
}

export const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

export function tryPrefix(cidr: string): Prefix | null {
  try {
    return parsePrefix(cidr);
  } catch {
    return null;
  }
}

export const bareIp = (text: string): string => text.split('/')[0] ?? '';
