// No silent no-op, by construction: every field of every kind tortie accepts (the schema, which the CRDs
// are checked against in test/unit/manifests.test.ts) has either a named test that shows its effect —
// behaviour that changes because of the field, not its validation — or a row in NOT_IN_EFFECT
// (src/resources/effect.ts), which `tortie apply` and `tortie node status` print. A field added to the
// schema without one fails here.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NOT_IN_EFFECT, notInEffect } from '../../../src/resources/effect.js';
import { SPEC_SHAPES, type Shape } from '../../../src/resources/schema.js';
import type { AnyResource, Kind } from '../../../src/resources/types.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');

/** A test that shows a field's effect: its file and (part of) its title, exactly as written there. */
interface EffectTest {
  readonly file: string;
  readonly title: string;
}

const PLANNER = 'test/unit/agent/planner.test.ts';
const ADVERTISE = 'test/unit/agent/advertise.test.ts';
const IPAM = 'test/unit/ipam/ipam.test.ts';
const SERVICES = 'test/unit/agent/service-routes.test.ts';

/**
 * Field (as the schema walk names it, `Kind.spec.a.b`; a list's items as `[]`) → the test of its effect. A
 * key may name a whole subtree (`NetworkPolicy.spec`): state and Kubernetes kinds are covered as a whole.
 */
const EFFECT_TESTS: Readonly<Record<string, EffectTest>> = {
  'IPPool.spec.cidr': { file: IPAM, title: 'claims the first free aligned block and records a confirmed affinity' },
  'IPPool.spec.blockSize': { file: IPAM, title: 'never claims a block that overlaps an existing one of another size' },
  'IPPool.spec.ipipMode': {
    file: 'test/unit/agent/agent-dataplane.test.ts',
    title: 'a pool switched from Never to Always while running',
  },
  'IPPool.spec.vxlanMode': { file: 'test/unit/felix/calc.test.ts', title: 'CrossSubnet, same subnet: direct' },
  'IPPool.spec.natOutgoing': {
    file: 'test/unit/felix/dataplane-nat.test.ts',
    title: 'programs the table from the pools, rewrites it on a change, removes it when no pool wants NAT',
  },
  'IPPool.spec.disabled': { file: IPAM, title: 'uses only enabled pools whose nodeSelector matches the Node labels' },
  'IPPool.spec.disableBGPExport': {
    file: ADVERTISE,
    title: 'a disableBGPExport pool refuses even what an overlapping enabled pool would accept',
  },
  'IPPool.spec.nodeSelector': {
    file: IPAM,
    title: 'uses only enabled pools whose nodeSelector matches the Node labels',
  },
  'IPPool.spec.namespaceSelector': {
    file: 'test/unit/cni/plugin.test.ts',
    title: 'IPPool namespaceSelector: a pod gets an address from a pool whose selector its Namespace labels match',
  },
  'IPPool.spec.assignmentMode': { file: IPAM, title: 'assignmentMode Manual: a pool only a request naming it uses' },
  'IPPool.spec.allowedUses': {
    file: IPAM,
    title: 'honours allowedUses: a Tunnel-only pool gives tunnel addresses and never pod addresses',
  },

  'BGPConfiguration.spec.nodeToNodeMeshEnabled': {
    file: PLANNER,
    title: 'has no mesh when nodeToNodeMeshEnabled is false',
  },
  'BGPConfiguration.spec.asNumber': { file: PLANNER, title: 'then BGPConfiguration default' },
  'BGPConfiguration.spec.listenPort': {
    file: PLANNER,
    title: 'bindMode NodeIP binds to the node IP; listenPort comes from node.<name>, then default',
  },
  'BGPConfiguration.spec.logSeverityScreen': {
    file: 'test/unit/agent/agent.test.ts',
    title: 'logSeverityScreen sets the log level (Trace is trace, not info)',
  },
  'BGPConfiguration.spec.bindMode': {
    file: PLANNER,
    title: 'bindMode NodeIP binds to the node IP; listenPort comes from node.<name>, then default',
  },
  'BGPConfiguration.spec.nodeMeshPassword': {
    file: 'test/unit/agent/agent-passwords.test.ts',
    title: 'gives each peer its password; a changed Secret re-keys only the peers that use it',
  },
  'BGPConfiguration.spec.nodeMeshMaxRestartTime': {
    file: PLANNER,
    title: 'carries the mesh settings: source address, local AS, no next-hop change, nodeMeshMaxRestartTime',
  },
  'BGPConfiguration.spec.ignoredInterfaces': {
    file: 'test/unit/agent/agent.test.ts',
    title: 'ignoredInterfaces: an ignored interface is never the node address nor felix',
  },
  'BGPConfiguration.spec.communities': {
    file: 'test/unit/agent/agent.test.ts',
    title: 'prefixAdvertisements put their communities on the originated blocks',
  },
  'BGPConfiguration.spec.prefixAdvertisements': {
    file: ADVERTISE,
    title: 'a block inside the cidr gets every named and inline community',
  },
  'BGPConfiguration.spec.serviceClusterIPs': {
    file: SERVICES,
    title: 'serviceClusterIPs and the non-single external and LoadBalancer CIDRs, from every node (IPv6 left out)',
  },
  'BGPConfiguration.spec.serviceExternalIPs': {
    file: SERVICES,
    title:
      'with a ready endpoint on this node: cluster IP, external IPs inside serviceExternalIPs, ingress IPs inside serviceLoadBalancerIPs, as /32s',
  },
  'BGPConfiguration.spec.serviceLoadBalancerIPs': {
    file: SERVICES,
    title:
      'a LoadBalancer ingress IP in a single-address serviceLoadBalancerIPs entry: its /32s from every node, endpoints or not',
  },

  'BGPPeer.spec.localWorkloadSelector': {
    file: 'test/unit/agent/planner-workloads.test.ts',
    title:
      "Calico's local_bgp_peer case: Local_Workload_<ip>, the BGPPeer's AS and local AS, passive, no source address, filters",
  },
  'BGPPeer.spec.node': { file: PLANNER, title: 'selected by %s: only node-a peers with the ToR' },
  'BGPPeer.spec.nodeSelector': { file: PLANNER, title: 'selected by %s: only node-a peers with the ToR' },
  'BGPPeer.spec.peerSelector': {
    file: PLANNER,
    title:
      'with the mesh still on (migration), clients keep meshing with each other but nobody meshes with the reflector',
  },
  'BGPPeer.spec.peerIP': { file: PLANNER, title: 'an explicit port is kept and named as Calico names it' },
  'BGPPeer.spec.asNumber': { file: PLANNER, title: 'peers with it as Global, active, never an RR client' },
  'BGPPeer.spec.localASNumber': { file: PLANNER, title: 'localASNumber decides iBGP/eBGP for the RR-client rule' },
  'BGPPeer.spec.nextHopMode': { file: PLANNER, title: 'next hop %j → %s' },
  'BGPPeer.spec.keepOriginalNextHop': { file: PLANNER, title: 'next hop %j → %s' },
  'BGPPeer.spec.sourceAddress': {
    file: PLANNER,
    title: 'sourceAddress UseNodeIP (default) is our IP; None leaves it to the kernel',
  },
  'BGPPeer.spec.maxRestartTime': {
    file: PLANNER,
    title: 'durations become seconds; numAllowedLocalASNumbers and localASNumber are carried',
  },
  'BGPPeer.spec.keepaliveTime': {
    file: PLANNER,
    title: 'durations become seconds; numAllowedLocalASNumbers and localASNumber are carried',
  },
  'BGPPeer.spec.numAllowedLocalASNumbers': {
    file: PLANNER,
    title: 'durations become seconds; numAllowedLocalASNumbers and localASNumber are carried',
  },
  'BGPPeer.spec.password': {
    file: 'test/unit/agent/agent-passwords.test.ts',
    title: 'gives each peer its password; a changed Secret re-keys only the peers that use it',
  },
  'BGPPeer.spec.reversePeering': {
    file: PLANNER,
    title: 'reversePeering: Manual — the reflector does not peer back by itself',
  },
  'BGPPeer.spec.reachableBy': {
    file: 'test/unit/felix/dataplane-peer-routes.test.ts',
    title: 'programs the peer route as its own and removes it when the peer goes',
  },
  'BGPPeer.spec.filters': {
    file: 'test/integration/bgp-filter.test.ts',
    title: 'import: rejected routes are held as refused with the rule that refused them; accepted ones are best',
  },
  'BGPFilter.spec.importV4': {
    file: 'test/integration/bgp-filter.test.ts',
    title: 'import: rejected routes are held as refused with the rule that refused them; accepted ones are best',
  },
  'BGPFilter.spec.exportV4': {
    file: 'test/integration/bgp-filter.test.ts',
    title:
      'export: FRR’s filter rejects the pool blocks and passes on what its Accept rules match; BIRD gets Calico’s default',
  },
  'BGPPeer.spec.ttlSecurity': {
    file: 'test/integration/interop-gtsm.test.ts',
    title: 'one router in between: Established with ttlSecurity 2; refused with ttlSecurity 1',
  },

  'Node.spec.bgp.ipv4Address': { file: PLANNER, title: 'leaves out a node without an IPv4 address, and says so' },
  'Node.spec.bgp.asNumber': { file: PLANNER, title: 'Node.spec.bgp.asNumber wins' },
  'Node.spec.bgp.ipv4IPIPTunnelAddr': {
    file: 'test/unit/agent/agent-dataplane.test.ts',
    title: 'IPIP Always with a working tunl0: tunl0 gets the tunnel address',
  },
  'Node.spec.ipv4VXLANTunnelAddr': {
    file: 'test/unit/felix/vxlan.test.ts',
    title: 'vxlanInputFor: needed only for a valid IPv4 VXLAN pool; our own node is never a remote',
  },
  'Node.spec.vxlanTunnelMACAddr': {
    file: 'test/unit/felix/vxlan.test.ts',
    title: 'vxlanInputFor: needed only for a valid IPv4 VXLAN pool; our own node is never a remote',
  },
  'Node.spec.bgp.routeReflectorClusterID': {
    file: PLANNER,
    title: 'the reflector plan carries its cluster id and the BGPPeer it came from',
  },

  // IPAM state, workload endpoints and Kubernetes kinds: written and read by tortie itself, covered whole.
  'WorkloadEndpoint.spec': { file: 'test/unit/felix/calc.test.ts', title: 'workload' },
  'IPAMBlock.spec': {
    file: IPAM,
    title: 'fills a block, then claims the next; releasing the last address keeps the block',
  },
  'BlockAffinity.spec': { file: IPAM, title: 'claims the first free aligned block and records a confirmed affinity' },
  'IPAMHandle.spec': {
    file: IPAM,
    title: 'fills a block, then claims the next; releasing the last address keeps the block',
  },
  'NetworkPolicy.spec': { file: 'test/integration/policy-lab.test.ts', title: 'enforces every case both ways' },
  'Namespace.spec': { file: 'test/integration/policy-lab.test.ts', title: 'enforces every case both ways' },
};

/** Every leaf field of a kind's spec, as `Kind.spec.a.b` (a list of objects counts as one field). */
function leafFields(kind: string, shape: Shape, path = `${kind}.spec`, out: string[] = []): string[] {
  if (shape.type === 'object') {
    for (const [name, field] of Object.entries(shape.fields)) leafFields(kind, field, `${path}.${name}`, out);
  } else if (shape.type === 'array' && shape.items.type === 'object') {
    out.push(path);
  } else {
    out.push(path);
  }
  return out;
}

/** The shape at a dotted path (`a[].b`: into the items of list a); null when there is no such field. */
function shapeAt(shape: Shape, path: string): Shape | null {
  let at: Shape | null = shape;
  for (const part of path.split('.')) {
    const name = part.replace(/\[\]$/, '');
    if (at?.type !== 'object' || !Object.hasOwn(at.fields, name)) return null;
    at = at.fields[name]!;
    if (part.endsWith('[]')) at = at.type === 'array' ? at.items : null;
  }
  return at;
}

function allFields(shapes: Readonly<Record<string, Shape>>): string[] {
  return Object.entries(shapes).flatMap(([kind, shape]) => leafFields(kind, shape));
}

function coveredBy(field: string): EffectTest | 'not-in-effect' | null {
  for (let at = field; at.includes('.'); at = at.slice(0, at.lastIndexOf('.'))) {
    if (Object.hasOwn(EFFECT_TESTS, at)) return EFFECT_TESTS[at]!;
    if (NOT_IN_EFFECT.some((row) => `${row.kind}.${row.path}` === at)) return 'not-in-effect';
  }
  return null;
}

/** The fields with neither a test of their effect nor a not-in-effect row. */
function uncovered(shapes: Readonly<Record<string, Shape>>): string[] {
  return allFields(shapes).filter((f) => coveredBy(f) === null);
}

describe('every field tortie accepts does something, or says it does not', () => {
  it('the walk finds the fields (a walk that finds nothing checks nothing)', () => {
    const fields = allFields(SPEC_SHAPES);
    expect(fields.length).toBeGreaterThan(40);
    expect(fields).toContain('BGPPeer.spec.password.secretKeyRef.name');
    expect(fields).toContain('BGPPeer.spec.ttlSecurity');
    expect(fields).toContain('IPPool.spec.ipipMode');
  });

  it('each field has a named effect test or a NOT_IN_EFFECT row', () => {
    expect(
      uncovered(SPEC_SHAPES),
      'give each a test of its effect (EFFECT_TESTS here) or a row in src/resources/effect.ts',
    ).toEqual([]);
  });

  it('a field added to the schema without either fails the check', () => {
    const grown = {
      ...SPEC_SHAPES,
      IPPool: {
        type: 'object',
        fields: { ...(SPEC_SHAPES.IPPool as Extract<Shape, { type: 'object' }>).fields, newField: { type: 'string' } },
      },
    } as Record<string, Shape>;
    expect(uncovered(grown)).toEqual(['IPPool.spec.newField']);
  });

  it('every named effect test exists, with that title, in that file', () => {
    const missing = Object.entries(EFFECT_TESTS)
      .filter(([, t]) => !readFileSync(join(ROOT, t.file), 'utf8').includes(t.title))
      .map(([f, t]) => `${f}: "${t.title}" in ${t.file}`);
    expect(missing).toEqual([]);
  });

  it('every NOT_IN_EFFECT row names a field of the schema, and none also claims an effect test', () => {
    const fields = new Set(allFields(SPEC_SHAPES));
    for (const row of NOT_IN_EFFECT) {
      const key = `${row.kind}.${row.path}`;
      if (row.path.includes('[]')) {
        // A field inside list items: it must exist in the item shape (walked here, as the leaf walk stops at lists).
        expect(shapeAt(SPEC_SHAPES[row.kind], row.path.replace(/^spec\./, '')), key).not.toBeNull();
        continue;
      }
      expect(
        [...fields].some((f) => f === key || f.startsWith(`${key}.`) || f.startsWith(`${key}[`)),
        key,
      ).toBe(true);
      expect(Object.hasOwn(EFFECT_TESTS, key), `${key} is both in effect and not`).toBe(false);
    }
  });

  it('notInEffect names the set fields only, with the resource', () => {
    const node = {
      apiVersion: 'projectcalico.org/v3',
      kind: 'Node',
      metadata: { name: 'n' },
      spec: { orchRefs: [{ nodeName: 'n', orchestrator: 'k8s' }], addresses: [] },
    } as unknown as AnyResource;
    expect(notInEffect(node)).toEqual([
      'Node/n: spec.orchRefs is stored but not in effect in tortie: informational: tortie matches a Node to its Kubernetes node by name',
    ]);
    const filter = (rule: object) =>
      ({
        apiVersion: 'projectcalico.org/v3',
        kind: 'BGPFilter',
        metadata: { name: 'f' },
        spec: { exportV4: [{ action: 'Accept' }, rule] },
      }) as unknown as AnyResource;
    expect(notInEffect(filter({ priority: 5, action: 'Accept' }))).toEqual([
      expect.stringMatching(
        /^BGPFilter\/f: spec\.exportV4\[\]\.priority is stored but not in effect in tortie: no route here carries a kernel priority/,
      ),
    ]);
    expect(
      notInEffect(
        filter({
          action: 'Accept',
          operations: [{ addCommunity: { value: '65000:1' } }, { setPriority: { value: 5 } }],
        }),
      ),
    ).toEqual([expect.stringMatching(/^BGPFilter\/f: spec\.exportV4\[\]\.operations\[\]\.setPriority is stored/)]);
    expect(notInEffect(filter({ cidr: '10.0.0.0/8', matchOperator: 'In', action: 'Reject' }))).toEqual([]);
    const kinds: Kind[] = ['IPPool'];
    expect(
      notInEffect({
        apiVersion: 'projectcalico.org/v3',
        kind: kinds[0]!,
        metadata: { name: 'p' },
        spec: { cidr: '10.0.0.0/16' },
      } as unknown as AnyResource),
    ).toEqual([]);
  });
});
