// Calico's defaults, applied the way Calico applies them (libcalico-go's IPPool client on create, the
// CRD defaults, and the documented BGP defaults that calico-node assumes for the `default`
// BGPConfiguration). One table: kind → function filling only what is unset. Pure: returns a new object.

import { parseCidr } from './cidr.js';
import type { AnyResource, Kind, Resource } from './types.js';

/** Calico's documented defaults for the global BGP configuration. */
export const BGP_DEFAULTS = {
  nodeToNodeMeshEnabled: true,
  asNumber: 64512,
  listenPort: 179,
  logSeverityScreen: 'Info',
} as const;
/** Block size when an IPPool does not say: /26 for IPv4, /122 for IPv6. */
export const DEFAULT_BLOCK_SIZE = { 4: 26, 6: 122 } as const;

type Defaulter<K extends Kind> = (r: Resource<K>) => void;

const DEFAULTERS: { [K in Kind]?: Defaulter<K> } = {
  IPPool: (r) => {
    const s = r.spec;
    const family = parseCidr(s.cidr ?? '')?.family ?? 4;
    s.blockSize ??= DEFAULT_BLOCK_SIZE[family];
    s.ipipMode ??= 'Never';
    s.vxlanMode ??= 'Never';
    if (s.nodeSelector === undefined || s.nodeSelector.trim() === '') s.nodeSelector = 'all()';
    s.natOutgoing ??= false;
    s.disabled ??= false;
    s.disableBGPExport ??= false;
    if (s.allowedUses === undefined || s.allowedUses.length === 0) s.allowedUses = ['Workload', 'Tunnel'];
  },
  BGPConfiguration: (r) => {
    // Only the cluster-wide object carries the global defaults; `node.<name>` objects override
    // just what they set, so defaulting them would silently override the global values.
    if (r.metadata.name !== 'default') return;
    const s = r.spec;
    s.nodeToNodeMeshEnabled ??= BGP_DEFAULTS.nodeToNodeMeshEnabled;
    s.asNumber ??= BGP_DEFAULTS.asNumber;
    s.listenPort ??= BGP_DEFAULTS.listenPort;
    s.logSeverityScreen ??= BGP_DEFAULTS.logSeverityScreen;
  },
  WorkloadEndpoint: (r) => {
    r.metadata.namespace ??= 'default';
  },
  // Kubernetes' defaulting of networking.k8s.io/v1 NetworkPolicy: policyTypes is Ingress, plus Egress
  // when the policy has egress rules; a port's protocol is TCP.
  NetworkPolicy: (r) => {
    r.metadata.namespace ??= 'default';
    const s = r.spec;
    if (s.policyTypes === undefined || s.policyTypes.length === 0)
      s.policyTypes = s.egress !== undefined && s.egress.length > 0 ? ['Ingress', 'Egress'] : ['Ingress'];
    for (const rule of [...(s.ingress ?? []), ...(s.egress ?? [])])
      for (const port of rule.ports ?? []) port.protocol ??= 'TCP';
  },
  // The API server labels every namespace with its own name (kubernetes.io/metadata.name, since 1.21),
  // so a namespaceSelector can pick one namespace by name.
  Namespace: (r) => {
    r.metadata.labels = { ...(r.metadata.labels ?? {}), [NAMESPACE_NAME_LABEL]: r.metadata.name };
  },
};

/** The label Kubernetes puts on every Namespace: its name. */
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

/** Returns a copy of `r` with Calico's defaults filled in where the field is unset. */
export function applyDefaults<R extends AnyResource>(r: R): R {
  const copy = structuredClone(r);
  copy.spec ??= {} as R['spec'];
  const defaulter = DEFAULTERS[copy.kind] as Defaulter<Kind> | undefined;
  defaulter?.(copy as Resource<Kind>);
  return copy;
}
