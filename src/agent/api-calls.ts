// The Kubernetes API calls the agent (`tortie node run`, ServiceAccount tortie-node) makes, as RBAC grants:
// what manifests/tortie.yaml gives that ServiceAccount, exactly (test/unit/manifests.test.ts compares the
// two, and checks every line's `uses` against the agent's sources: a grant no code needs fails, and the
// fake API server of the integration tests enforces these roles, so a call not granted fails).
//
// Cluster-wide (ClusterRole tortie-node) unless `namespaced`: then a Role in the agent's own namespace.
// `uses`: a pattern that finds, in the agent's sources (src/agent/, src/ipam/index.ts), the code that
// needs the grant; through the kubernetes datastore (src/datastore/kubernetes.ts) a Datastore `get` is
// RBAC get, `list` list, `watch` watch, `create` create, `update` update (and get, for an update without a
// resourceVersion), `delete` delete; on a Node, `update` is get + patch (annotations), `create` a get (the
// kubelet registers Nodes); WorkloadEndpoints are Pods.

import type { ApiGrant } from '../datastore/api-grants.js';

export type { ApiGrant };

const CRD = 'crd.projectcalico.org';
/** The CNI plugin's ServiceAccount, for which the agent requests tokens (src/agent/cni-token.ts). */
export const CNI_SERVICE_ACCOUNT = 'tortie-cni';

export const AGENT_API_CALLS: readonly ApiGrant[] = [
  // Configuration: read-only. The cache (src/agent/cache.ts) lists and watches every CACHED_KINDS kind.
  {
    verb: 'get',
    resource: `bgpconfigurations.${CRD}`,
    uses: /ds\.get\('BGPConfiguration', 'default'\)/,
    why: 'startup: ignoredInterfaces before autodetection',
  },
  {
    verb: 'list',
    resource: `bgpconfigurations.${CRD}`,
    uses: /CACHED_KINDS = \[[^\]]*'BGPConfiguration'/,
    why: 'the cache',
  },
  {
    verb: 'watch',
    resource: `bgpconfigurations.${CRD}`,
    uses: /CACHED_KINDS = \[[^\]]*'BGPConfiguration'/,
    why: 'the cache',
  },
  { verb: 'list', resource: `bgppeers.${CRD}`, uses: /CACHED_KINDS = \[[^\]]*'BGPPeer'/, why: 'the cache' },
  { verb: 'watch', resource: `bgppeers.${CRD}`, uses: /CACHED_KINDS = \[[^\]]*'BGPPeer'/, why: 'the cache' },
  {
    verb: 'list',
    resource: `bgpfilters.${CRD}`,
    uses: /CACHED_KINDS = \[[^\]]*'BGPFilter'/,
    why: "the cache (a BGPPeer's filters)",
  },
  { verb: 'watch', resource: `bgpfilters.${CRD}`, uses: /CACHED_KINDS = \[[^\]]*'BGPFilter'/, why: 'the cache' },
  {
    verb: 'list',
    resource: `ippools.${CRD}`,
    uses: /CACHED_KINDS = \[[^\]]*'IPPool'/,
    why: 'the cache; the default pool check',
  },
  { verb: 'watch', resource: `ippools.${CRD}`, uses: /CACHED_KINDS = \[[^\]]*'IPPool'/, why: 'the cache' },
  // RBAC cannot limit create by name (the name is in the body, not the URL): the agent creates only the
  // default pool, only when no pool of that family exists, and never updates or deletes a pool.
  {
    verb: 'create',
    resource: `ippools.${CRD}`,
    uses: /ds\.list\('IPPool'\)[\s\S]{0,400}ds\.create\(/,
    why: 'the default pool (CALICO_IPV4POOL_CIDR) at first start',
  },
  // IPAM (src/ipam/index.ts): claiming, confirming and releasing the node's blocks, the tunnel address.
  ...['get', 'list', 'watch', 'create', 'update', 'delete'].map((verb): ApiGrant => ({
    verb,
    resource: `ipamblocks.${CRD}`,
    uses: verb === 'watch' ? /CACHED_KINDS = \[[^\]]*'IPAMBlock'/ : ipamUse(verb, 'IPAMBlock'),
    why: 'IPAM: blocks',
  })),
  ...['get', 'list', 'watch', 'create', 'update', 'delete'].map((verb): ApiGrant => ({
    verb,
    resource: `blockaffinities.${CRD}`,
    uses: verb === 'watch' ? /CACHED_KINDS = \[[^\]]*'BlockAffinity'/ : ipamUse(verb, 'BlockAffinity'),
    why: 'IPAM: affinities',
  })),
  // The tunnel address's handle: created, or read and updated when one is left from before. The agent
  // releases no address (the CNI plugin and `tortie ipam` do), so it never deletes a handle.
  ...['get', 'create', 'update'].map((verb): ApiGrant => ({
    verb,
    resource: `ipamhandles.${CRD}`,
    uses: ipamUse(verb, 'IPAMHandle'),
    why: 'IPAM: the tunnel address handle',
  })),
  // Nodes: read all (the mesh), patch its own Node's annotations (BGP address, tunnel address). RBAC cannot
  // say "only your own Node" for a DaemonSet; Calico grants the same.
  { verb: 'get', resource: 'nodes', uses: /ds\.get\('Node'/, why: 'registration' },
  { verb: 'list', resource: 'nodes', uses: /CACHED_KINDS = \[\s*'Node'/, why: 'the cache (mesh peers)' },
  { verb: 'watch', resource: 'nodes', uses: /CACHED_KINDS = \[\s*'Node'/, why: 'the cache (mesh peers)' },
  {
    verb: 'patch',
    resource: 'nodes',
    uses: /ds\.update\(\{ \.\.\.(node|current), spec/,
    why: 'registration: its BGP and tunnel addresses',
  },
  // Workloads and policy: read-only.
  {
    verb: 'list',
    resource: 'pods',
    uses: /CACHED_KINDS = \[[^\]]*'WorkloadEndpoint'/,
    why: 'WorkloadEndpoints (the routes to local pods)',
  },
  { verb: 'watch', resource: 'pods', uses: /CACHED_KINDS = \[[^\]]*'WorkloadEndpoint'/, why: 'WorkloadEndpoints' },
  { verb: 'list', resource: 'namespaces', uses: /CACHED_KINDS = \[[^\]]*'Namespace'/, why: 'policy: namespace labels' },
  {
    verb: 'watch',
    resource: 'namespaces',
    uses: /CACHED_KINDS = \[[^\]]*'Namespace'/,
    why: 'policy: namespace labels',
  },
  {
    verb: 'list',
    resource: 'networkpolicies.networking.k8s.io',
    uses: /CACHED_KINDS = \[[^\]]*'NetworkPolicy'/,
    why: 'policy',
  },
  {
    verb: 'watch',
    resource: 'networkpolicies.networking.k8s.io',
    uses: /CACHED_KINDS = \[[^\]]*'NetworkPolicy'/,
    why: 'policy',
  },
  // Service IP advertisement (src/agent/service-watch.ts): Services and EndpointSlices, read-only.
  { verb: 'list', resource: 'services', uses: /core\.listServiceForAllNamespaces\(/, why: 'service IP advertisement' },
  {
    verb: 'watch',
    resource: 'services',
    uses: /SERVICES_PATH = '\/api\/v1\/services'/,
    why: 'service IP advertisement',
  },
  {
    verb: 'list',
    resource: 'endpointslices.discovery.k8s.io',
    uses: /discovery\.listEndpointSliceForAllNamespaces\(/,
    why: 'service IP advertisement: local endpoints',
  },
  {
    verb: 'watch',
    resource: 'endpointslices.discovery.k8s.io',
    uses: /ENDPOINT_SLICES_PATH = '\/apis\/discovery\.k8s\.io\/v1\/endpointslices'/,
    why: 'service IP advertisement: local endpoints',
  },
  // In its own namespace only (Role tortie-node): BGP passwords, and the CNI plugin's token.
  {
    verb: 'get',
    resource: 'secrets',
    namespaced: true,
    uses: /readNamespacedSecret\(/,
    why: 'BGP passwords (src/agent/secrets.ts)',
  },
  {
    verb: 'watch',
    resource: 'secrets',
    namespaced: true,
    uses: /watch\(\s*`\/api\/v1\/namespaces\/\$\{[^}]+\}\/secrets`/,
    why: 'a changed Secret re-keys the session',
  },
  {
    verb: 'create',
    resource: 'serviceaccounts/token',
    namespaced: true,
    resourceNames: [CNI_SERVICE_ACCOUNT],
    uses: /createNamespacedServiceAccountToken\(/,
    why: "the CNI plugin's bound token (src/agent/cni-token.ts)",
  },
];

/** Where src/ipam/index.ts does `verb` on `kind` (for `uses`). */
function ipamUse(verb: string, kind: string): RegExp {
  if (verb === 'get' || verb === 'list' || verb === 'delete') return new RegExp(`ds\\.${verb}\\('${kind}'`);
  if (kind === 'IPAMBlock') return new RegExp(`ds\\.${verb}\\(blockResource\\(`);
  if (verb === 'create') return new RegExp(`ds\\.create\\(\\{[^}]*kind: '${kind}'`);
  // update: of an object read just before (`{ ...affinity, spec` / `{ ...current, spec: { ...current.spec, block`)
  return kind === 'BlockAffinity'
    ? /ds\.update\(\{ \.\.\.(affinity|current), spec: \{ \.\.\.(affinity|current)\.spec, state/
    : /ds\.update\(\{ \.\.\.current, spec: \{ \.\.\.current\.spec, block/;
}
