// Calico's etcd key layout and JSON values, one row per kind (LAYOUTS): where an object lives, how its
// name is read back from a key, and its value both ways. Pure, and free of any etcd client, so the gRPC
// client (./etcd.ts) and the HTTP/JSON gateway client (./etcd-gateway.ts) share it through ./etcd-store.ts
// and cannot drift apart.
//
//   v3 resources  /calico/resources/v3/projectcalico.org/<plural>/<name>   (WorkloadEndpoint: <plural>/<ns>/<name>)
//                 value: the v3 object as JSON, without metadata.resourceVersion (that is the key's mod_revision)
//   IPAMBlock     /calico/ipam/v2/assignment/ipv4/block/10.244.1.0-26      value: model.AllocationBlock JSON
//                 /calico/ipam/v2/assignment/ipv6/block/fd00:10:244::40-122   (IPv6: the CIDR, '/' as '-')
//   BlockAffinity /calico/ipam/v2/host/<node>/ipv4/block/10.244.1.0-26     value: {"state":…,"deleted":…}
//                 /calico/ipam/v2/host/<node>/ipv6/block/fd00:10:244::40-122
//   IPAMHandle    /calico/ipam/v2/handle/<id>                              value: {"block":{…},"deleted":…}
//   NetworkPolicy /calico/resources/v3/projectcalico.org/kubernetesnetworkpolicies/<ns>/<name>   (tortie's own key)
//   Namespace     /calico/resources/v3/projectcalico.org/namespaces/<name>                        (tortie's own key)
// (./etcd.ts's header says why the last two are tortie's own.)
//
// Why this is hard: the layout is a contract with Calico's tools (calicoctl reads what tortie writes and
// the other way round), including old spellings on read (a block's `hostAffinity`, an affinity without
// `state`), so decode accepts more than encode writes.

import { API_VERSION, apiVersionOf, type Kind, type Resource, type ResourceSpecs } from '../resources/types.js';
import {
  affinityName,
  cidrKeyPart,
  cidrOfBlockName,
  blockName,
  ipVersionKeyPart,
  parseAffinityName,
} from '../resources/ipam-names.js';

export const V3_ROOT = '/calico/resources/v3/projectcalico.org/';
const IPAM_ROOT = '/calico/ipam/v2/';

/** Where one object lives: its key (or the prefix to list) and its name/namespace. */
export interface Located {
  name: string;
  namespace?: string;
}

/** How one kind is stored: keys, and the value's JSON both ways. One row per kind in LAYOUTS. */
export interface KindLayout<K extends Kind> {
  /** The prefix that holds every object of this kind (in one namespace when given). */
  prefix(namespace?: string): string;
  key(at: Located): string;
  /** Name (and namespace) from a key under prefix(); null when the key is not one of ours. */
  locate(key: string): Located | null;
  encode(resource: Resource<K>): unknown;
  decode(at: Located, value: unknown): Resource<K>;
}

type AnyLayout = { [K in Kind]: KindLayout<K> };

function v3Layout<K extends Kind>(kind: K, plural: string, namespaced = false): KindLayout<K> {
  const root = `${V3_ROOT}${plural}/`;
  return {
    prefix: (namespace) => (namespaced && namespace !== undefined ? `${root}${namespace}/` : root),
    key: (at) => {
      if (namespaced) {
        if (!at.namespace)
          throw new Error(`${kind} "${at.name}": metadata.namespace is required (it is a namespaced kind)`);
        return `${root}${at.namespace}/${at.name}`;
      }
      return `${root}${at.name}`;
    },
    locate: (key) => {
      if (!key.startsWith(root)) return null;
      const parts = key.slice(root.length).split('/');
      if (namespaced)
        return parts.length === 2 && parts[0] && parts[1] ? { namespace: parts[0], name: parts[1] } : null;
      return parts.length === 1 && parts[0] ? { name: parts[0] } : null;
    },
    encode: (resource) => {
      const metadata = { ...resource.metadata };
      delete metadata.resourceVersion;
      return { kind, apiVersion: apiVersionOf(kind), metadata, spec: resource.spec };
    },
    decode: (at, value) => {
      const object = value as { metadata?: Resource<K>['metadata']; spec?: ResourceSpecs[K] };
      return {
        apiVersion: apiVersionOf(kind),
        kind,
        metadata: {
          ...(object.metadata ?? {}),
          name: at.name,
          ...(at.namespace !== undefined ? { namespace: at.namespace } : {}),
        },
        spec: (object.spec ?? {}) as ResourceSpecs[K],
      } as Resource<K>;
    },
  };
}

function ipamMeta(name: string): Resource['metadata'] {
  return { name };
}

// Blocks of both families: …/assignment/ipv4/block/10.244.1.0-26 and …/assignment/ipv6/block/fd00:10:244::40-122.
const BLOCK_ROOT = `${IPAM_ROOT}assignment/`;
const BLOCK_KEY = /^\/calico\/ipam\/v2\/assignment\/ipv[46]\/block\/([^/]+)$/;
const HANDLE_ROOT = `${IPAM_ROOT}handle/`;
const AFFINITY_ROOT = `${IPAM_ROOT}host/`;
const AFFINITY_KEY = /^\/calico\/ipam\/v2\/host\/([^/]+)\/ipv[46]\/block\/([^/]+)$/;

/** Calico's model.AllocationBlock JSON (field names from libcalico-go lib/backend/model/block.go). */
interface AllocationBlockJson {
  cidr: string;
  affinity: string | null;
  allocations: Array<number | null>;
  unallocated: number[];
  attributes: Array<{ handle_id?: string; secondary?: Record<string, string> }>;
  sequenceNumber: number;
  sequenceNumberForAllocation: Record<string, number> | null;
  deleted: boolean;
}

const LAYOUTS: AnyLayout = {
  IPPool: v3Layout('IPPool', 'ippools'),
  BGPConfiguration: v3Layout('BGPConfiguration', 'bgpconfigurations'),
  BGPPeer: v3Layout('BGPPeer', 'bgppeers'),
  BGPFilter: v3Layout('BGPFilter', 'bgpfilters'),
  Node: v3Layout('Node', 'nodes'),
  WorkloadEndpoint: v3Layout('WorkloadEndpoint', 'workloadendpoints', true),
  NetworkPolicy: v3Layout('NetworkPolicy', 'kubernetesnetworkpolicies', true),
  Namespace: v3Layout('Namespace', 'namespaces'),
  IPAMBlock: {
    prefix: () => BLOCK_ROOT,
    key: (at) => {
      const cidr = cidrOfBlockName(at.name);
      return `${BLOCK_ROOT}${ipVersionKeyPart(cidr)}/block/${cidrKeyPart(cidr)}`;
    },
    locate: (key) => {
      const match = BLOCK_KEY.exec(key);
      if (!match?.[1]) return null;
      try {
        return { name: blockName(cidrOfBlockName(match[1])) };
      } catch {
        return null;
      }
    },
    encode: (r): AllocationBlockJson => ({
      cidr: r.spec.cidr,
      affinity: r.spec.affinity ?? null,
      allocations: r.spec.allocations,
      unallocated: r.spec.unallocated,
      attributes: r.spec.attributes.map((a) => ({
        ...(a.handle_id !== null && a.handle_id !== undefined ? { handle_id: a.handle_id } : {}),
        ...(a.secondary !== null && a.secondary !== undefined ? { secondary: a.secondary } : {}),
      })),
      sequenceNumber: r.spec.sequenceNumber ?? 0,
      sequenceNumberForAllocation: null,
      deleted: r.spec.deleted ?? false,
    }),
    decode: (at, value) => {
      const b = value as Partial<AllocationBlockJson> & { hostAffinity?: string };
      // Old Calico blocks carry hostAffinity instead of affinity (block.go: "deprecated in favor of Affinity").
      const affinity = b.affinity ?? (b.hostAffinity ? `host:${b.hostAffinity}` : null);
      for (const field of ['allocations', 'unallocated', 'attributes'] as const) {
        const v = b[field] as unknown;
        if (v !== undefined && v !== null && !Array.isArray(v))
          throw new Error(`IPAM block ${at.name}: ${field} is ${JSON.stringify(v).slice(0, 80)}, not a list`);
      }
      return {
        apiVersion: API_VERSION,
        kind: 'IPAMBlock',
        metadata: ipamMeta(at.name),
        spec: {
          cidr: b.cidr ?? cidrOfBlockName(at.name),
          affinity,
          allocations: b.allocations ?? [],
          unallocated: b.unallocated ?? [],
          attributes: (b.attributes ?? []).map((a) => ({
            handle_id: a?.handle_id ?? null,
            secondary: a?.secondary ?? null,
          })),
          deleted: b.deleted ?? false,
          sequenceNumber: b.sequenceNumber ?? 0,
        },
      };
    },
  },
  BlockAffinity: {
    prefix: () => AFFINITY_ROOT,
    key: (at) => {
      const { node, cidr } = parseAffinityName(at.name);
      return `${AFFINITY_ROOT}${node}/${ipVersionKeyPart(cidr)}/block/${cidrKeyPart(cidr)}`;
    },
    locate: (key) => {
      const match = AFFINITY_KEY.exec(key);
      if (!match?.[1] || !match[2]) return null;
      try {
        return { name: affinityName(match[1], cidrOfBlockName(match[2])) };
      } catch {
        return null;
      }
    },
    encode: (r) => ({ state: r.spec.state, deleted: r.spec.deleted ?? false }),
    decode: (at, value) => {
      const v = value as { state?: 'pending' | 'confirmed' | 'pendingDeletion'; deleted?: boolean };
      const { node, cidr } = parseAffinityName(at.name);
      // Calico's oldest affinities have no state: they were written confirmed.
      return {
        apiVersion: API_VERSION,
        kind: 'BlockAffinity',
        metadata: ipamMeta(at.name),
        spec: { state: v.state ?? 'confirmed', node, cidr, deleted: v.deleted ?? false },
      };
    },
  },
  IPAMHandle: {
    prefix: () => HANDLE_ROOT,
    key: (at) => `${HANDLE_ROOT}${at.name}`,
    locate: (key) => {
      const rest = key.startsWith(HANDLE_ROOT) ? key.slice(HANDLE_ROOT.length) : '';
      return rest && !rest.includes('/') ? { name: rest } : null;
    },
    encode: (r) => ({ block: r.spec.block, deleted: r.spec.deleted ?? false }),
    decode: (at, value) => {
      const v = value as { block?: Record<string, number>; deleted?: boolean };
      return {
        apiVersion: API_VERSION,
        kind: 'IPAMHandle',
        metadata: ipamMeta(at.name),
        spec: { handleID: at.name, block: v.block ?? {}, deleted: v.deleted ?? false },
      };
    },
  },
};

/** The etcd key of a resource, exactly as Calico lays it out (exported for tests and tools). */
export function etcdKeyOf(kind: Kind, name: string, namespace?: string): string {
  return (LAYOUTS[kind] as KindLayout<Kind>).key({ name, ...(namespace !== undefined ? { namespace } : {}) });
}

/** The prefix under which every object of `kind` is stored. */
export function etcdPrefixOf(kind: Kind, namespace?: string): string {
  return (LAYOUTS[kind] as KindLayout<Kind>).prefix(namespace);
}

/** The layout of `kind`; throws naming the kinds etcd stores when it is not one of them. */
export function layoutOf<K extends Kind>(kind: K): KindLayout<K> {
  const layout = LAYOUTS[kind] as KindLayout<K> | undefined;
  if (!layout)
    throw new Error(`kind "${String(kind)}" is not stored in etcd (known: ${Object.keys(LAYOUTS).join(', ')})`);
  return layout;
}

/** The first key after every key that starts with `prefix` (etcd's range_end for a prefix). */
export function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  end[end.length - 1] = (end[end.length - 1] ?? 0) + 1;
  return end;
}

/** `IPPool "default"`, `WorkloadEndpoint "ns/name"`: an object as messages name it. */
export function describeKey(at: Located, kind: Kind): string {
  return at.namespace !== undefined ? `${kind} "${at.namespace}/${at.name}"` : `${kind} "${at.name}"`;
}
