// Calico's WorkloadEndpoint names (libcalico-go names.WorkloadEndpointIdentifiers): `<node>-<orchestrator>-
// <workload>-<endpoint>`, each "-" inside a part doubled so a single "-" separates parts. One definition
// (src/resources/workload-names.ts) serves the CNI plugin and the kubernetes datastore.

import { describe, expect, it } from 'vitest';
import { parseWorkloadEndpointName, workloadEndpointName } from '../../../src/resources/workload-names.js';

describe('workloadEndpointName', () => {
  it.each([
    // [node, workload, endpoint, orchestrator, name] — the values Calico's names package gives.
    ['node1', 'nginx', 'eth0', 'k8s', 'node1-k8s-nginx-eth0'],
    ['node-1', 'nginx', 'eth0', 'k8s', 'node--1-k8s-nginx-eth0'],
    ['node-1', 'coredns-5d78c9869d-abcde', 'eth0', 'k8s', 'node--1-k8s-coredns--5d78c9869d--abcde-eth0'],
    ['ip-10-0-0-1.ec2.internal', 'web-0', 'eth0', 'k8s', 'ip--10--0--0--1.ec2.internal-k8s-web--0-eth0'],
    ['n1', 'c-1', 'eth0', 'cni', 'n1-cni-c--1-eth0'],
    ['n1', 'pod', 'net-1', 'k8s', 'n1-k8s-pod-net--1'],
    ['a--b', 'p', 'eth0', 'k8s', 'a----b-k8s-p-eth0'],
  ] as const)('%s / %s / %s (%s) → %s', (node, workload, endpoint, orchestrator, name) => {
    expect(workloadEndpointName(node, workload, endpoint, orchestrator)).toBe(name);
  });

  it('defaults to a Kubernetes pod on eth0', () => {
    expect(workloadEndpointName('node-1', 'web-0')).toBe('node--1-k8s-web--0-eth0');
  });

  // Node and pod names are DNS-1123 names: they never begin or end with "-" (where a doubled dash would be ambiguous).
  it('reads a Kubernetes name back into node and pod', () => {
    for (const [node, pod] of [
      ['node-1', 'web-0'],
      ['n', 'p'],
      ['a--b', 'c---d'],
      ['ip-10-0-0-1.ec2.internal', 'coredns-5d78c9869d-abcde'],
    ] as const) {
      expect(parseWorkloadEndpointName(workloadEndpointName(node, pod))).toEqual({ node, pod });
    }
  });

  it('refuses what is not <node>-k8s-<pod>-eth0', () => {
    for (const bad of [
      '',
      'nginx',
      'node-k8s-eth0',
      'node-cni-abc-eth0',
      'node-k8s-pod-eth1',
      'a-k8s-b-c-eth0',
      'node--1-k8s-web--0',
    ]) {
      expect(parseWorkloadEndpointName(bad)).toBeNull();
    }
  });
});
