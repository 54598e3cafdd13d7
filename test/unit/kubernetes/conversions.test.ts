// The pure half of the kubernetes datastore: v3 resource ↔ crd.projectcalico.org/v1 object, Kubernetes Node
// annotations ↔ Node.spec.bgp, Pod → WorkloadEndpoint, and Calico's object names.

import { describe, expect, it } from 'vitest';
import {
  KUBERNETES_API_CALLS,
  annotationPatch,
  cidrToName,
  crdToResource,
  mergeNodeAnnotations,
  nodeToResource,
  objectNameFor,
  parseWorkloadEndpointName,
  podToWorkloadEndpoint,
  resourceToCrd,
  workloadEndpointName,
  workloadInterfaceName,
} from '../../../src/datastore/kubernetes.js';
import type { AnyResource, Resource } from '../../../src/resources/types.js';

const CRD_FIXTURES: AnyResource[] = [
  {
    apiVersion: 'projectcalico.org/v3',
    kind: 'IPPool',
    metadata: { name: 'default-ipv4-ippool', labels: { tier: 'a' }, annotations: { note: 'x' } },
    spec: {
      cidr: '10.244.0.0/16',
      blockSize: 26,
      ipipMode: 'Always',
      vxlanMode: 'Never',
      natOutgoing: true,
      nodeSelector: 'all()',
    },
  },
  {
    apiVersion: 'projectcalico.org/v3',
    kind: 'BGPConfiguration',
    metadata: { name: 'default' },
    spec: { nodeToNodeMeshEnabled: false, asNumber: 64512, serviceClusterIPs: [{ cidr: '10.96.0.0/12' }] },
  },
  {
    apiVersion: 'projectcalico.org/v3',
    kind: 'BGPPeer',
    metadata: { name: 'peer-to-rrs' },
    spec: { nodeSelector: 'all()', peerSelector: "route-reflector == 'true'" },
  },
  {
    apiVersion: 'projectcalico.org/v3',
    kind: 'IPAMBlock',
    metadata: { name: '10-244-1-0-26' },
    spec: {
      cidr: '10.244.1.0/26',
      affinity: 'host:node-1',
      strictAffinity: false,
      allocations: [0, null],
      unallocated: [1],
      attributes: [{ handle_id: 'h1', secondary: null }],
      deleted: false,
    },
  },
  {
    apiVersion: 'projectcalico.org/v3',
    kind: 'BlockAffinity',
    metadata: { name: 'node-1-10-244-1-0-26' },
    spec: { state: 'confirmed', node: 'node-1', cidr: '10.244.1.0/26' },
  },
  {
    apiVersion: 'projectcalico.org/v3',
    kind: 'IPAMHandle',
    metadata: { name: 'k8s-pod-network.abc' },
    spec: { handleID: 'k8s-pod-network.abc', block: { '10.244.1.0/26': 1 } },
  },
];

describe('custom objects', () => {
  it('has a fixture for each custom-object kind', () => {
    expect(new Set(CRD_FIXTURES.map((r) => r.kind)).size).toBe(6);
  });

  for (const resource of CRD_FIXTURES) {
    it(`${resource.kind}: v3 → crd.projectcalico.org/v1 → v3 keeps spec, labels and annotations`, () => {
      const crd = resourceToCrd(resource);
      expect(crd.apiVersion).toBe('crd.projectcalico.org/v1');
      expect(crd.kind).toBe(resource.kind);
      expect(crd.metadata.name).toBe(resource.metadata.name);
      // Calico keeps labels/annotations of the v3 object in one annotation, not on the CRD object itself.
      expect(crd.metadata.labels).toBeUndefined();
      const back = crdToResource(resource.kind, { ...crd, metadata: { ...crd.metadata, resourceVersion: '7' } });
      expect(back).toEqual({ ...resource, metadata: { ...resource.metadata, resourceVersion: '7' } });
    });
  }

  it('stores labels and annotations in projectcalico.org/metadata', () => {
    const crd = resourceToCrd(CRD_FIXTURES[0]!);
    expect(JSON.parse(crd.metadata.annotations?.['projectcalico.org/metadata'] ?? '{}')).toEqual({
      labels: { tier: 'a' },
      annotations: { note: 'x' },
    });
  });

  it("BlockAffinity's deleted is a string in the CRD, a boolean in v3", () => {
    const affinity = CRD_FIXTURES.find((r) => r.kind === 'BlockAffinity')!;
    expect(resourceToCrd(affinity).spec?.deleted).toBe('false');
    const deleted = resourceToCrd({ ...affinity, spec: { ...affinity.spec, deleted: true } } as AnyResource);
    expect(deleted.spec?.deleted).toBe('true');
    expect(crdToResource('BlockAffinity', deleted).spec.deleted).toBe(true);
  });
});

describe('object names', () => {
  const cases: Array<[Parameters<typeof objectNameFor>[0], string, string]> = [
    ['IPAMBlock', '10.244.1.0/26', '10-244-1-0-26'],
    ['IPAMBlock', '10.244.1.0-26', '10-244-1-0-26'],
    ['IPAMBlock', '10-244-1-0-26', '10-244-1-0-26'],
    ['BlockAffinity', 'node-1-10.244.1.0-26', 'node-1-10-244-1-0-26'],
    ['BlockAffinity', 'node.example.com-10.244.1.0/26', 'node.example.com-10-244-1-0-26'],
    ['IPAMHandle', 'K8s-Pod-Network.ABC', 'k8s-pod-network.abc'],
    ['IPPool', 'default-ipv4-ippool', 'default-ipv4-ippool'],
  ];
  it('has cases', () => expect(cases.length).toBeGreaterThan(0));
  for (const [kind, name, expected] of cases) {
    it(`${kind} "${name}" → "${expected}"`, () => expect(objectNameFor(kind, name)).toBe(expected));
  }
  it('cidrToName mangles dots and slashes', () => expect(cidrToName('192.168.0.0/20')).toBe('192-168-0-0-20'));
});

describe('Node annotations', () => {
  const k8sNode = {
    metadata: {
      name: 'node-1',
      resourceVersion: '12',
      labels: { 'kubernetes.io/hostname': 'node-1', zone: 'a' },
      annotations: { 'node.alpha.kubernetes.io/ttl': '0' },
    },
  };

  it('reads BGP data from the Calico annotations and labels from the Kubernetes Node', () => {
    const node = nodeToResource({
      metadata: {
        ...k8sNode.metadata,
        annotations: {
          'projectcalico.org/IPv4Address': '198.18.0.11/24',
          'projectcalico.org/IPv4IPIPTunnelAddr': '10.244.1.1',
          'projectcalico.org/ASNumber': '64513',
          'projectcalico.org/RouteReflectorClusterID': '244.0.0.1',
          'projectcalico.org/labels': '{"route-reflector":"true","zone":"b"}',
        },
      },
    });
    expect(node.spec).toEqual({
      bgp: {
        ipv4Address: '198.18.0.11/24',
        ipv4IPIPTunnelAddr: '10.244.1.1',
        asNumber: 64513,
        routeReflectorClusterID: '244.0.0.1',
      },
    });
    // A Kubernetes label shadows a Calico label of the same key (Calico does the same).
    expect(node.metadata.labels).toEqual({ 'kubernetes.io/hostname': 'node-1', zone: 'a', 'route-reflector': 'true' });
  });

  it('writes BGP data as annotations, removes those no longer set, never touches Kubernetes labels', () => {
    const withBgp = mergeNodeAnnotations(k8sNode, {
      apiVersion: 'projectcalico.org/v3',
      kind: 'Node',
      metadata: {
        name: 'node-1',
        labels: { 'kubernetes.io/hostname': 'node-1', zone: 'a', 'route-reflector': 'true' },
      },
      spec: { bgp: { ipv4Address: '198.18.0.11/24', asNumber: 64512, routeReflectorClusterID: '244.0.0.1' } },
    });
    expect(withBgp.metadata.labels).toEqual(k8sNode.metadata.labels);
    expect(withBgp.metadata.annotations).toEqual({
      'node.alpha.kubernetes.io/ttl': '0',
      'projectcalico.org/IPv4Address': '198.18.0.11/24',
      'projectcalico.org/ASNumber': '64512',
      'projectcalico.org/RouteReflectorClusterID': '244.0.0.1',
      'projectcalico.org/labels': '{"route-reflector":"true"}',
    });
    const cleared = mergeNodeAnnotations(withBgp, {
      apiVersion: 'projectcalico.org/v3',
      kind: 'Node',
      metadata: { name: 'node-1' },
      spec: {},
    });
    expect(cleared.metadata.annotations).toEqual({ 'node.alpha.kubernetes.io/ttl': '0' });
    expect(k8sNode.metadata.annotations).toEqual({ 'node.alpha.kubernetes.io/ttl': '0' }); // input not mutated
  });

  it('patches annotations as an RFC 7386 merge patch: changed keys set, removed keys null, unchanged keys absent', () => {
    expect(annotationPatch({ keep: '1', change: 'a', drop: 'x' }, { keep: '1', change: 'b', add: 'y' })).toEqual({
      change: 'b',
      add: 'y',
      drop: null,
    });
  });

  it('ignores an ASNumber annotation that is not a number', () => {
    expect(
      nodeToResource({ metadata: { name: 'n', annotations: { 'projectcalico.org/ASNumber': 'x' } } }).spec,
    ).toEqual({});
  });
});

describe('Pods as WorkloadEndpoints', () => {
  it('names the host-side interface cali + 11 hex of sha1("<namespace>.<pod>")', () => {
    // Expected values computed outside this code: printf 'default.nginx' | sha1sum → c440f455693b…
    expect(workloadInterfaceName('default', 'nginx')).toBe('calic440f455693');
    expect(workloadInterfaceName('kube-system', 'coredns-5d78c9869d-abcde')).toBe('cali4d5f75c480c');
  });

  it("names the endpoint Calico's way, doubling dashes inside each part", () => {
    expect(workloadEndpointName('node-1', 'coredns-5d78c9869d-abcde')).toBe(
      'node--1-k8s-coredns--5d78c9869d--abcde-eth0',
    );
  });

  const names: Array<[string, string]> = [
    ['node-1', 'coredns-5d78c9869d-abcde'],
    ['n', 'p'],
    ['node.example.com', 'web--x'],
  ];
  it('has name cases', () => expect(names.length).toBeGreaterThan(0));
  for (const [node, pod] of names) {
    it(`parses the endpoint name of ${node}/${pod} back`, () =>
      expect(parseWorkloadEndpointName(workloadEndpointName(node, pod))).toEqual({ node, pod }));
  }
  it('refuses names that are not <node>-k8s-<pod>-eth0', () => {
    for (const bad of ['nginx', 'node-cni-abc-eth0', 'node-k8s-pod-eth1', 'a-k8s-b-c-eth0'])
      expect(parseWorkloadEndpointName(bad)).toBeNull();
  });

  it('maps podIP, nodeName, namespace, labels and service account', () => {
    const wep = podToWorkloadEndpoint({
      metadata: { name: 'nginx', namespace: 'default', resourceVersion: '40', labels: { app: 'web' } },
      spec: { nodeName: 'node-1', serviceAccountName: 'default' },
      status: { phase: 'Running', podIP: '10.244.1.5', podIPs: [{ ip: '10.244.1.5' }] },
    });
    expect(wep).toEqual({
      apiVersion: 'projectcalico.org/v3',
      kind: 'WorkloadEndpoint',
      metadata: {
        name: 'node--1-k8s-nginx-eth0',
        namespace: 'default',
        resourceVersion: '40',
        labels: {
          app: 'web',
          'projectcalico.org/namespace': 'default',
          'projectcalico.org/orchestrator': 'k8s',
          'projectcalico.org/serviceaccount': 'default',
        },
      },
      spec: {
        orchestrator: 'k8s',
        node: 'node-1',
        pod: 'nginx',
        endpoint: 'eth0',
        interfaceName: 'calic440f455693',
        ipNetworks: ['10.244.1.5/32'],
        profiles: ['kns.default', 'ksa.default.default'],
      },
    } satisfies Resource<'WorkloadEndpoint'>);
  });

  it("takes the CNI plugin's annotations before status (a new pod is routed before the kubelet reports its IP)", () => {
    const base = { metadata: { name: 'p', namespace: 'd' }, spec: { nodeName: 'n' } };
    const annotated = (annotations: Record<string, string>, status = {}) =>
      podToWorkloadEndpoint({ ...base, metadata: { ...base.metadata, annotations }, status })?.spec.ipNetworks;
    expect(
      annotated(
        { 'cni.projectcalico.org/podIPs': '10.244.1.7/32', 'cni.projectcalico.org/podIP': '10.244.1.9/32' },
        { phase: 'Pending' },
      ),
    ).toEqual(['10.244.1.7/32']);
    expect(annotated({ 'cni.projectcalico.org/podIP': '10.244.1.9/32' })).toEqual(['10.244.1.9/32']);
    expect(annotated({ 'cni.projectcalico.org/podIPs': '10.244.1.7/32, fd00::7/128' })).toEqual([
      '10.244.1.7/32',
      'fd00::7/128',
    ]);
    expect(annotated({}, { podIP: '10.244.1.5' })).toEqual(['10.244.1.5/32']);
  });

  const without: Array<[string, Parameters<typeof podToWorkloadEndpoint>[0]]> = [
    ['not scheduled', { metadata: { name: 'p', namespace: 'd' }, spec: {}, status: { podIP: '10.0.0.1' } }],
    ['no IP yet', { metadata: { name: 'p', namespace: 'd' }, spec: { nodeName: 'n' }, status: { phase: 'Pending' } }],
    [
      'host network',
      {
        metadata: { name: 'p', namespace: 'd' },
        spec: { nodeName: 'n', hostNetwork: true },
        status: { podIP: '198.18.0.1' },
      },
    ],
    [
      'finished',
      {
        metadata: { name: 'p', namespace: 'd' },
        spec: { nodeName: 'n' },
        status: { podIP: '10.0.0.1', phase: 'Succeeded' },
      },
    ],
  ];
  it('has cases without an endpoint', () => expect(without.length).toBeGreaterThan(0));
  for (const [why, pod] of without) {
    it(`a Pod ${why} has no WorkloadEndpoint`, () => expect(podToWorkloadEndpoint(pod)).toBeNull());
  }
});

describe('KUBERNETES_API_CALLS', () => {
  it('lists every CRD plural and the core resources, with read-only Pods, NetworkPolicies and Namespaces', () => {
    const resources = new Set(KUBERNETES_API_CALLS.map((c) => c.resource));
    expect([...resources].sort()).toEqual(
      ['bgpconfigurations', 'bgpfilters', 'bgppeers', 'blockaffinities', 'ipamblocks', 'ipamhandles', 'ippools']
        .map((p) => `${p}.crd.projectcalico.org`)
        .concat(['nodes', 'pods', 'namespaces', 'networkpolicies.networking.k8s.io'])
        .sort(),
    );
    for (const readOnly of ['pods', 'namespaces', 'networkpolicies.networking.k8s.io']) {
      expect(
        KUBERNETES_API_CALLS.filter((c) => c.resource === readOnly)
          .map((c) => c.verb)
          .sort(),
      ).toEqual(['get', 'list', 'watch']);
    }
  });
});

describe('NetworkPolicy, Namespace and named ports from the Kubernetes API', () => {
  it('a NetworkPolicy keeps its spec, with policyTypes defaulted as the API server does', async () => {
    const { networkPolicyToResource } = await import('../../../src/datastore/kubernetes.js');
    const r = networkPolicyToResource({
      metadata: { name: 'db', namespace: 'prod', resourceVersion: '7' },
      spec: { podSelector: { matchLabels: { role: 'db' } }, egress: [{ ports: [{ protocol: 'UDP', port: 53 }] }] },
    });
    expect(r).toEqual({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'db', namespace: 'prod', resourceVersion: '7' },
      spec: {
        podSelector: { matchLabels: { role: 'db' } },
        egress: [{ ports: [{ protocol: 'UDP', port: 53 }] }],
        policyTypes: ['Ingress', 'Egress'],
      },
    });
  });

  it('a Namespace carries its labels and kubernetes.io/metadata.name', async () => {
    const { namespaceToResource } = await import('../../../src/datastore/kubernetes.js');
    expect(namespaceToResource({ metadata: { name: 'prod', labels: { team: 'a' } } }).metadata.labels).toEqual({
      team: 'a',
      'kubernetes.io/metadata.name': 'prod',
    });
  });

  it("a Pod's named container ports become the WorkloadEndpoint's ports (unnamed ones are left out)", async () => {
    const { podToWorkloadEndpoint } = await import('../../../src/datastore/kubernetes.js');
    const wep = podToWorkloadEndpoint({
      metadata: { name: 'web', namespace: 'prod' },
      spec: {
        nodeName: 'node-1',
        containers: [
          { ports: [{ name: 'http', containerPort: 8080 }, { containerPort: 9000 }] },
          { ports: [{ name: 'dns', containerPort: 53, protocol: 'UDP' }] },
        ],
      },
      status: { podIP: '10.244.1.5', phase: 'Running' },
    });
    expect(wep?.spec.ports).toEqual([
      { name: 'http', protocol: 'TCP', port: 8080 },
      { name: 'dns', protocol: 'UDP', port: 53 },
    ]);
  });
});
