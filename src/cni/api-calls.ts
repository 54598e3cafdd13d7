// The Kubernetes API calls the CNI plugin (ServiceAccount tortie-cni, whose token the agent keeps fresh in
// /etc/cni/net.d/tortie-kubeconfig: src/agent/cni-token.ts) makes for ADD, DEL, CHECK and GC, as RBAC
// grants: what ClusterRole tortie-cni in manifests/tortie.yaml gives, exactly. test/unit/manifests.test.ts
// compares the two and finds each line's `uses` in the plugin's sources (src/cni/, src/ipam/index.ts); the
// fake API server enforces the role in test/integration/cni.test.ts, so a call not granted fails there.
// How Datastore operations become RBAC verbs: src/agent/api-calls.ts.

import type { ApiGrant } from '../datastore/api-grants.js';

const CRD = 'crd.projectcalico.org';

/** Where src/ipam/index.ts (or the plugin) does `verb` on `kind`. */
function ipamUse(verb: string, kind: string): RegExp {
  if (verb === 'get' || verb === 'list' || verb === 'delete') return new RegExp(`ds\\.${verb}\\('${kind}'`);
  if (kind === 'IPAMBlock') return new RegExp(`ds\\.${verb}\\(blockResource\\(`);
  if (verb === 'create') return new RegExp(`ds\\.create\\(\\{[^}]*kind: '${kind}'`);
  return kind === 'BlockAffinity'
    ? /ds\.update\(\{ \.\.\.(affinity|current), spec: \{ \.\.\.(affinity|current)\.spec, state/
    : /ds\.update\(\{ \.\.\.current, spec: \{ \.\.\.current\.spec, block/;
}

export const CNI_API_CALLS: readonly ApiGrant[] = [
  // The Pod: its annotations (cni.projectcalico.org/podIP, podIPs, containerID) are written through the
  // status subresource, as Calico's plugin does, so the plugin cannot change a Pod's spec.
  { verb: 'get', resource: 'pods', uses: /readNamespacedPod\(/, why: "DEL and CHECK read the Pod's annotations" },
  {
    verb: 'patch',
    resource: 'pods/status',
    uses: /patchNamespacedPodStatus\(/,
    why: "ADD records the Pod's addresses, DEL removes them",
  },
  // IPAM: pools (read), the node (its labels against a pool's nodeSelector), and the IPAM objects an
  // assignment or release writes — including claiming a block when the node has no free address.
  { verb: 'list', resource: `ippools.${CRD}`, uses: /ds\.list\('IPPool'\)/, why: 'choosing the pool' },
  { verb: 'get', resource: 'nodes', uses: /ds\.get\('Node', node\)/, why: "the node's labels (pool nodeSelector)" },
  // Blocks: created when claimed, updated by every assignment and release; never deleted by the plugin
  // (an empty block is released by its node's agent or `tortie ipam`, not by a pod's DEL).
  ...['get', 'list', 'create', 'update'].map((verb): ApiGrant => ({
    verb,
    resource: `ipamblocks.${CRD}`,
    uses: ipamUse(verb, 'IPAMBlock'),
    why: 'IPAM: blocks',
  })),
  ...['get', 'list', 'create', 'update', 'delete'].map((verb): ApiGrant => ({
    verb,
    resource: `blockaffinities.${CRD}`,
    uses: ipamUse(verb, 'BlockAffinity'),
    why: 'IPAM: claiming a block',
  })),
  ...['get', 'create', 'update', 'delete'].map((verb): ApiGrant => ({
    verb,
    resource: `ipamhandles.${CRD}`,
    uses: ipamUse(verb, 'IPAMHandle'),
    why: "IPAM: the container's handle",
  })),
];
