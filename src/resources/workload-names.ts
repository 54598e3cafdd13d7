// The name of a WorkloadEndpoint, as Calico spells it (libcalico-go names.WorkloadEndpointIdentifiers), so
// calicoctl, felix, the CNI plugin and both datastores find the same object. One definition: the CNI
// plugin names the endpoints it writes with it, the kubernetes datastore names the ones it derives from Pods.
//
//   <node>-<orchestrator>-<workload>-<endpoint>
//   node-1, k8s, web-0, eth0           → node--1-k8s-web--0-eth0   (a Kubernetes pod)
//   n1, cni, c-1, eth0                 → n1-cni-c--1-eth0          (a bare container: its id)
//
// A "-" inside a part is doubled, so the parts can be read back: a single "-" separates parts.

/** Calico's WorkloadEndpoint name: the parts joined by "-", each part's own dashes doubled. */
export function workloadEndpointName(
  node: string,
  workload: string,
  endpoint = 'eth0',
  orchestrator: 'k8s' | 'cni' = 'k8s',
): string {
  return [node, orchestrator, workload, endpoint].map((part) => part.replace(/-/g, '--')).join('-');
}

/** The node and pod a Kubernetes WorkloadEndpoint name stands for; null when it is not `<node>-k8s-<pod>-eth0`. */
export function parseWorkloadEndpointName(name: string): { node: string; pod: string } | null {
  const parts: string[] = [];
  let start = 0;
  for (let i = 1; i < name.length; i++) {
    if (name[i] !== '-') continue;
    if (name[i + 1] === '-') {
      i++; // an escaped dash inside a part
      continue;
    }
    parts.push(name.slice(start, i).replace(/--/g, '-'));
    start = i + 1;
  }
  parts.push(name.slice(start).replace(/--/g, '-'));
  const [node, orchestrator, pod, endpoint] = parts;
  if (parts.length !== 4 || orchestrator !== 'k8s' || endpoint !== 'eth0' || !node || !pod) return null;
  return { node, pod };
}
