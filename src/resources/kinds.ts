// The table of resource kinds: the names a user may type for each (calicoctl's singular, plural and short
// forms), its plural for storage keys, whether it is namespaced, and the key that identifies an object.

import { KINDS, type AnyResource, type Kind } from './types.js';

export interface KindInfo {
  kind: Kind;
  /** Lowercase plural, as in etcd keys and Kubernetes resource names. */
  plural: string;
  /** Other names accepted by resolveKind (lowercase), besides the kind and its plural. */
  aliases: string[];
  namespaced: boolean;
}

export const KIND_INFO: Readonly<Record<Kind, KindInfo>> = {
  IPPool: { kind: 'IPPool', plural: 'ippools', aliases: ['pool', 'pools', 'ipp', 'ipps'], namespaced: false },
  BGPConfiguration: {
    kind: 'BGPConfiguration',
    plural: 'bgpconfigurations',
    aliases: ['bgpconfig', 'bgpconfigs'],
    namespaced: false,
  },
  BGPPeer: { kind: 'BGPPeer', plural: 'bgppeers', aliases: ['bgpp', 'bgpps'], namespaced: false },
  BGPFilter: { kind: 'BGPFilter', plural: 'bgpfilters', aliases: [], namespaced: false },
  Node: { kind: 'Node', plural: 'nodes', aliases: ['no'], namespaced: false },
  WorkloadEndpoint: {
    kind: 'WorkloadEndpoint',
    plural: 'workloadendpoints',
    aliases: ['wep', 'weps'],
    namespaced: true,
  },
  IPAMBlock: { kind: 'IPAMBlock', plural: 'ipamblocks', aliases: [], namespaced: false },
  BlockAffinity: { kind: 'BlockAffinity', plural: 'blockaffinities', aliases: [], namespaced: false },
  IPAMHandle: { kind: 'IPAMHandle', plural: 'ipamhandles', aliases: [], namespaced: false },
  // Kubernetes kinds (networking.k8s.io/v1 NetworkPolicy, v1 Namespace), kubectl's short names.
  NetworkPolicy: {
    kind: 'NetworkPolicy',
    plural: 'networkpolicies',
    aliases: ['netpol', 'netpols', 'knp'],
    namespaced: true,
  },
  Namespace: { kind: 'Namespace', plural: 'namespaces', aliases: ['ns'], namespaced: false },
};

const BY_NAME: ReadonlyMap<string, Kind> = new Map(
  KINDS.flatMap((kind) => {
    const info = KIND_INFO[kind];
    return [kind.toLowerCase(), info.plural, ...info.aliases].map((name) => [name, kind] as const);
  }),
);

/** Resolves a kind as typed on a command line (case-insensitive singular, plural or short name). */
export function resolveKind(text: string): Kind {
  const kind = BY_NAME.get(text.trim().toLowerCase());
  if (kind !== undefined) return kind;
  const accepted = KINDS.map((k) => [k.toLowerCase(), KIND_INFO[k].plural, ...KIND_INFO[k].aliases].join('|')).join(
    ', ',
  );
  throw new Error(`resource kind ${JSON.stringify(text)} is not known; accepted (case-insensitive): ${accepted}`);
}

/** Finds a kind by its exact name as written in YAML (`kind: IPPool`); null when unknown. */
export function kindOf(text: unknown): Kind | null {
  return typeof text === 'string' && (KINDS as readonly string[]).includes(text) ? (text as Kind) : null;
}

/** "IPPool/p1", or "<Kind>/<namespace>/<name>" for namespaced kinds (WorkloadEndpoint, NetworkPolicy). */
export function resourceKey(r: Pick<AnyResource, 'kind' | 'metadata'>): string {
  if (KIND_INFO[r.kind].namespaced) return `${r.kind}/${r.metadata.namespace ?? 'default'}/${r.metadata.name}`;
  return `${r.kind}/${r.metadata.name}`;
}
