// BGP with local workloads (BGPPeer localWorkloadSelector, src/agent/workload-peers.ts) in the peering
// planner, against Calico's facts: confd's compiled template explicit_peering/local_bgp_peer (one global and
// one node-specific BGPPeer, each with its own workload: Local_Workload_<ip>, the BGPPeer's AS and local AS,
// passive, no source address, filters) and felix's choice of one BGPPeer per workload (the first by name).

import { describe, expect, it } from 'vitest';
import { planPeers } from '../../../src/agent/planner.js';
import type { DesiredPeer } from '../../../src/agent/types.js';
import type { BGPPeerSpec, Resource } from '../../../src/resources/index.js';

const API = 'projectcalico.org/v3' as const;

function node(name: string, ip: string, labels: Record<string, string> = {}): Resource<'Node'> {
  return { apiVersion: API, kind: 'Node', metadata: { name, labels }, spec: { bgp: { ipv4Address: ip } } };
}

function bgpPeer(name: string, spec: BGPPeerSpec): Resource<'BGPPeer'> {
  return { apiVersion: API, kind: 'BGPPeer', metadata: { name }, spec };
}

function workload(
  name: string,
  nodeName: string,
  ips: string[],
  labels: Record<string, string>,
): Resource<'WorkloadEndpoint'> {
  return {
    apiVersion: API,
    kind: 'WorkloadEndpoint',
    metadata: { name, namespace: 'default', labels: { 'projectcalico.org/namespace': 'default', ...labels } },
    spec: { node: nodeName, interfaceName: `cali${name}`, ipNetworks: ips },
  };
}

const NODES = [
  node('kube-master', '10.192.0.2/16', { 'global-peer': 'yes' }),
  node('kube-node-1', '10.192.0.3/16', { 'global-peer': 'yes' }),
];
const MESH_OFF = {
  apiVersion: API,
  kind: 'BGPConfiguration',
  metadata: { name: 'default' },
  spec: { nodeToNodeMeshEnabled: false },
} as const;
// Calico's confd/tests/mock_data/calicoctl/local_bgp_peer/input.yaml.
const GLOBAL = bgpPeer('test-global-peer-with-filter', {
  localWorkloadSelector: "app == 'calico-bird-0'",
  asNumber: 64516,
  localASNumber: 65002,
  filters: ['import-only-filter'],
});
const NODE_SPECIFIC = bgpPeer('test-node-peer-with-filter', {
  localWorkloadSelector: "app == 'calico-bird-1'",
  node: 'kube-master',
  asNumber: 64517,
  localASNumber: 65001,
  filters: ['import-only-filter'],
});

function planFor(nodeName: string, peers: Resource<'BGPPeer'>[], workloads: Resource<'WorkloadEndpoint'>[]) {
  return planPeers({ nodeName, nodes: NODES, bgpConfigurations: [MESH_OFF], bgpPeers: peers, workloads });
}

function facts(p: DesiredPeer): object {
  return {
    name: p.name,
    type: p.type,
    address: p.address,
    port: p.port,
    asNumber: p.asNumber,
    localAsNumber: p.localAsNumber,
    passive: p.passive,
    sourceAddress: p.sourceAddress,
    filters: p.filters,
    fromResource: p.fromResource,
  };
}

describe('BGPPeer localWorkloadSelector: sessions with the local workloads it selects', () => {
  it("Calico's local_bgp_peer case: Local_Workload_<ip>, the BGPPeer's AS and local AS, passive, no source address, filters", () => {
    const plan = planFor(
      'kube-master',
      [GLOBAL, NODE_SPECIFIC],
      [
        workload('pod1', 'kube-master', ['192.168.162.134/32', 'fd00:10:244::a284/128'], { app: 'calico-bird-0' }),
        workload('pod2', 'kube-master', ['192.168.162.136/32'], { app: 'calico-bird-1' }),
        workload('elsewhere', 'kube-node-1', ['192.168.7.1/32'], { app: 'calico-bird-0' }),
        workload('plain', 'kube-master', ['192.168.162.140/32'], { app: 'web' }),
      ],
    );
    expect(plan.peers.map(facts)).toEqual([
      {
        name: 'Local_Workload_192_168_162_134',
        type: 'LocalWorkload',
        address: '192.168.162.134',
        port: 179,
        asNumber: 64516,
        localAsNumber: 65002,
        passive: true,
        sourceAddress: undefined,
        filters: ['import-only-filter'],
        fromResource: 'test-global-peer-with-filter',
      },
      {
        name: 'Local_Workload_192_168_162_136',
        type: 'LocalWorkload',
        address: '192.168.162.136',
        port: 179,
        asNumber: 64517,
        localAsNumber: 65001,
        passive: true,
        sourceAddress: undefined,
        filters: ['import-only-filter'],
        fromResource: 'test-node-peer-with-filter',
      },
    ]);
    expect(plan.warnings).toEqual([]);
  });

  it('only workloads on this node; a node-specific BGPPeer for another node gives nothing here', () => {
    const workloads = [
      workload('pod1', 'kube-master', ['192.168.162.134/32'], { app: 'calico-bird-0' }),
      workload('pod9', 'kube-node-1', ['192.168.7.1/32'], { app: 'calico-bird-1' }),
    ];
    expect(planFor('kube-node-1', [GLOBAL, NODE_SPECIFIC], workloads).peers.map((p) => p.name)).toEqual([]);
    const both = [...workloads, workload('pod8', 'kube-node-1', ['192.168.7.2/32'], { app: 'calico-bird-0' })];
    expect(planFor('kube-node-1', [GLOBAL, NODE_SPECIFIC], both).peers.map((p) => p.name)).toEqual([
      'Local_Workload_192_168_7_2',
    ]);
  });

  it('a workload two BGPPeers select peers once, from the first BGPPeer by name (felix)', () => {
    const other = bgpPeer('a-first', { localWorkloadSelector: 'has(app)', asNumber: 64999 });
    const plan = planFor(
      'kube-master',
      [GLOBAL, other],
      [workload('pod1', 'kube-master', ['192.168.162.134/32'], { app: 'calico-bird-0' })],
    );
    expect(plan.peers.map((p) => `${p.name} AS${p.asNumber} ${p.fromResource}`)).toEqual([
      'Local_Workload_192_168_162_134 AS64999 a-first',
    ]);
  });

  it('workloads appearing and disappearing add and remove sessions; no reverse peering from other nodes', () => {
    const pod = workload('pod1', 'kube-master', ['192.168.162.134/32'], { app: 'calico-bird-0' });
    expect(planFor('kube-master', [GLOBAL], []).peers).toEqual([]);
    expect(planFor('kube-master', [GLOBAL], [pod]).peers.map((p) => p.name)).toEqual([
      'Local_Workload_192_168_162_134',
    ]);
    // Relabelled out of the selector: gone.
    const relabelled = { ...pod, metadata: { ...pod.metadata, labels: { app: 'web' } } };
    expect(planFor('kube-master', [GLOBAL], [relabelled]).peers).toEqual([]);
    expect(planFor('kube-node-1', [GLOBAL], [pod]).peers).toEqual([]);
  });

  it('a BGPPeer without asNumber, or a workload without IPv4, gives a warning and no session', () => {
    const noAs = bgpPeer('no-as', { localWorkloadSelector: 'all()' });
    const pod = workload('pod1', 'kube-master', ['192.168.162.134/32'], { app: 'x' });
    const a = planFor('kube-master', [noAs], [pod]);
    expect(a.peers).toEqual([]);
    expect(a.warnings).toEqual([
      "BGPPeer no-as: spec.asNumber is required with spec.localWorkloadSelector (the workloads' AS, like 64516); ignored",
    ]);
    const v6 = workload('pod6', 'kube-master', ['fd00::6/128'], { app: 'calico-bird-0' });
    const b = planFor('kube-master', [GLOBAL], [v6]);
    expect(b.peers).toEqual([]);
    expect(b.warnings).toEqual([
      "WorkloadEndpoint default/pod6: selected by BGPPeer test-global-peer-with-filter's localWorkloadSelector but has no IPv4 address; no session",
    ]);
  });
});
