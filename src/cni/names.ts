// The names one attachment goes by, as Calico spells them, so calicoctl, felix and the agent find what
// the plugin made: the IPAM handle, the WorkloadEndpoint name, the host-side veth, the pod-side MAC.
// Pure functions (random bytes are passed in).
//
//   IPAM handle         <network name>.<container id>          k8s-pod-network.3f6940ab5ab4…
//   WorkloadEndpoint    <node>-k8s-<pod>-<endpoint>             node--1-k8s-web--0-eth0   (a Kubernetes pod)
//                       <node>-cni-<container id>-<endpoint>    (no K8S_POD_* in CNI_ARGS)
//                       "-" inside a part is doubled, so the parts can be read back
//                       (src/resources/workload-names.ts, the one definition; endpoint.ts uses it).
//   host veth           cali + 11 hex of sha1("<namespace>.<pod>")  (felix's workloadInterfaceName)
//                       cali + the first 11 characters of the container id (no pod: as Calico's plugin)

import { workloadInterfaceName } from '../../felix/interface-names.js';

/** Who the workload is: a Kubernetes pod, or a bare container (orchestrator "cni"). */
export interface WorkloadIdentity {
  node: string;
  containerId: string;
  /** CNI_IFNAME: Calico's "endpoint" part of the name. */
  ifname: string;
  pod?: { namespace: string; name: string };
}

/** The handle all addresses of one attachment are held under (Calico: network name + "." + container id). */
export function handleId(networkName: string, containerId: string): string {
  return `${networkName}.${containerId}`;
}

/** The namespace the WorkloadEndpoint is kept in: the pod's, or "default" for a bare container. */
export function workloadNamespace(id: WorkloadIdentity): string {
  return id.pod?.namespace ?? 'default';
}

/** The host end of the pod's veth: felix derives the same name from the WorkloadEndpoint. */
export function hostVethName(id: Pick<WorkloadIdentity, 'containerId' | 'pod'>): string {
  return id.pod ? workloadInterfaceName(id.pod.namespace, id.pod.name) : `cali${id.containerId.slice(0, 11)}`;
}

/** The host end's MAC, as Calico sets it: the same on every cali*, so nothing keys on it. */
export const HOST_VETH_MAC = 'ee:ee:ee:ee:ee:ee';

/**
 * A MAC for the pod end, chosen by us so no second `ip` call is needed to read it back: locally
 * administered (bit 1 of the first octet set), unicast (bit 0 clear), from 6 random bytes.
 */
export function podMac(random: Uint8Array): string {
  if (random.length < 6) throw new Error(`podMac needs 6 random bytes, got ${random.length}`);
  const bytes = Array.from(random.subarray(0, 6));
  bytes[0] = ((bytes[0] ?? 0) & 0xfc) | 0x02;
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}
