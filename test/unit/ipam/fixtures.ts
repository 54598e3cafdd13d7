// Resources the IPAM tests build their clusters from (one shape each, so tests differ only in what matters).

import { API_VERSION, type Resource } from '../../../src/resources/types.js';

/** An IPPool with /26 blocks selecting every node, plus `extra`. */
export function pool(name: string, cidr: string, extra: Partial<Resource<'IPPool'>['spec']> = {}): Resource<'IPPool'> {
  return {
    apiVersion: API_VERSION,
    kind: 'IPPool',
    metadata: { name },
    spec: { cidr, blockSize: 26, nodeSelector: 'all()', ...extra },
  };
}

/** A Node on 198.18.0.1/24, with its IPIP tunnel address when given. */
export function node(name: string, tunnel?: string): Resource<'Node'> {
  return {
    apiVersion: API_VERSION,
    kind: 'Node',
    metadata: { name },
    spec: { bgp: { ipv4Address: '198.18.0.1/24', ...(tunnel ? { ipv4IPIPTunnelAddr: tunnel } : {}) } },
  };
}

/** The WorkloadEndpoint of pod `default/<pod>` on `nodeName`, holding `ip`. */
export function wep(nodeName: string, pod: string, ip: string): Resource<'WorkloadEndpoint'> {
  return {
    apiVersion: API_VERSION,
    kind: 'WorkloadEndpoint',
    metadata: { name: `${nodeName}-k8s-${pod}-eth0`, namespace: 'default' },
    spec: { node: nodeName, pod, interfaceName: 'cali0', ipNetworks: [`${ip}/32`] },
  };
}
