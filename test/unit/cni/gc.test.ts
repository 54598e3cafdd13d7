// The CNI GC plan (src/cni/gc.ts), pure: which allocations GC on a node may release. One row per kind of
// allocation in one block affine to this node and one affine to another; the plan must release exactly
// the rows marked `released`, and report the unattributed and other nodes' ones it keeps.

import { describe, expect, it } from 'vitest';
import { planGc } from '../../../src/cni/gc.js';
import * as blocks from '../../../src/ipam/block.js';
import { API_VERSION, type IPAMBlockSpec, type Resource } from '../../../src/resources/types.js';

const NODE = 'node-a';
const NET = 'k8s-pod-network';

type Fate = 'released' | 'unattributed' | 'other-node' | 'ignored';

/** Each allocation: its handle, its secondary attributes (null: written before attributes), its fate. */
const ROWS: Array<{ handle: string; secondary: Record<string, string> | null; fate: Fate; why: string }> = [
  {
    handle: `${NET}.stale-a`,
    secondary: { node: NODE, pod: 'web-1', namespace: 'default' },
    fate: 'released',
    why: "this node's, runtime forgot it",
  },
  { handle: `${NET}.valid-a`, secondary: { node: NODE }, fate: 'ignored', why: 'a valid attachment' },
  { handle: `${NET}.stale-b`, secondary: { node: 'node-b' }, fate: 'other-node', why: "another node's pod" },
  { handle: `${NET}.old`, secondary: null, fate: 'unattributed', why: 'written before attributes' },
  { handle: `${NET}.empty`, secondary: {}, fate: 'unattributed', why: 'attributes without node' },
  {
    handle: 'ipip-tunnel-addr-node-a',
    secondary: { node: NODE, type: 'ipipTunnelAddress' },
    fate: 'ignored',
    why: 'the tunnel address',
  },
  { handle: 'other-net.stale-a2', secondary: { node: NODE }, fate: 'ignored', why: 'another network' },
];

function blockWith(cidr: string, affinity: string | null): Resource<'IPAMBlock'> {
  let spec: IPAMBlockSpec = blocks.newBlock(cidr, affinity);
  for (const row of ROWS) spec = blocks.allocate(spec, 1, row.handle, row.secondary).block;
  return {
    apiVersion: API_VERSION,
    kind: 'IPAMBlock',
    metadata: { name: blocks.addressOf(spec, 0), resourceVersion: '7' },
    spec,
  };
}

describe('planGc', () => {
  it("releases only this node's stale pods, in blocks of any affinity", () => {
    expect(ROWS.filter((r) => r.fate === 'released')).not.toHaveLength(0);
    const mine = blockWith('10.244.0.0/26', NODE);
    const theirs = blockWith('10.244.0.64/26', 'node-b');
    const orphan = blockWith('10.244.0.128/26', null);
    const plan = planGc([mine, theirs, orphan], NODE, NET, new Set(['valid-a']));
    const expected = (fate: Fate): string[] => ROWS.filter((r) => r.fate === fate).map((r) => r.handle);
    expect(plan.release.map((r) => r.block.spec.cidr)).toEqual(['10.244.0.0/26', '10.244.0.64/26', '10.244.0.128/26']);
    for (const r of plan.release) {
      expect(r.refs.map((ref) => ref.handle)).toEqual(expected('released'));
      expect(r.refs.every((ref) => ref.node === NODE)).toBe(true);
      expect(r.block.metadata.resourceVersion).toBe('7'); // the block as read, for the first compare-and-swap
    }
    expect(plan.release[0]!.ips).toEqual(['10.244.0.0']);
    expect(plan.unattributed.map((k) => k.handle)).toEqual([
      ...expected('unattributed'),
      ...expected('unattributed'),
      ...expected('unattributed'),
    ]);
    expect(plan.otherNodes.map((k) => `${k.handle} ${k.ip}`)).toEqual([
      `${NET}.stale-b 10.244.0.2`,
      `${NET}.stale-b 10.244.0.66`,
      `${NET}.stale-b 10.244.0.130`,
    ]);
  });

  it("for node-b, the same blocks release node-b's and keep node-a's", () => {
    const plan = planGc([blockWith('10.244.0.0/26', NODE)], 'node-b', NET, new Set());
    expect(plan.release.flatMap((r) => r.refs.map((ref) => ref.handle))).toEqual([`${NET}.stale-b`]);
    expect(plan.otherNodes.map((k) => k.handle)).toEqual([`${NET}.stale-a`, `${NET}.valid-a`]);
  });

  it('skips blocks marked deleted', () => {
    const gone = blockWith('10.244.0.0/26', NODE);
    gone.spec.deleted = true;
    expect(planGc([gone], NODE, NET, new Set())).toEqual({
      release: [],
      proven: [],
      unattributed: [],
      otherNodes: [],
      endpoints: [],
    });
  });
});

/** A WorkloadEndpoint of `containerID` on `node` naming `ips` (as the plugin records a pod). */
function endpoint(node: string, pod: string, containerID: string, ips: string[]): Resource<'WorkloadEndpoint'> {
  return {
    apiVersion: API_VERSION,
    kind: 'WorkloadEndpoint',
    metadata: { name: `${node}-k8s-${pod}-eth0`, namespace: 'default' },
    spec: {
      node,
      orchestrator: 'k8s',
      pod,
      endpoint: 'eth0',
      containerID,
      interfaceName: 'cali0',
      ipNetworks: ips.map((ip) => `${ip}/32`),
    },
  };
}

describe("planGc: an unattributed address is this node's when this node's stale endpoint of the same container names it", () => {
  // One block, every allocation without attributes (as tortie wrote them before it recorded any). Each row:
  // the container, the endpoint the datastore holds for it (or none), and whether that proves ownership.
  const CASES: Array<{
    container: string;
    wep: ((ip: string) => Resource<'WorkloadEndpoint'>) | null;
    fate: 'released' | 'unattributed' | 'ignored';
    why: string;
  }> = [
    {
      container: 'proven',
      wep: (ip) => endpoint(NODE, 'web-1', 'proven', [ip]),
      fate: 'released',
      why: "this node's endpoint, same container, same address",
    },
    { container: 'no-wep', wep: null, fate: 'unattributed', why: 'no endpoint names it' },
    {
      container: 'other-ip',
      wep: () => endpoint(NODE, 'web-2', 'other-ip', ['10.244.0.60']),
      fate: 'unattributed',
      why: 'the endpoint names another address',
    },
    {
      container: 'newer',
      wep: (ip) => endpoint(NODE, 'web-3', 'newer-sandbox', [ip]),
      fate: 'unattributed',
      why: "the endpoint is another container's (a newer sandbox)",
    },
    {
      container: 'elsewhere',
      wep: (ip) => endpoint('node-b', 'web-4', 'elsewhere', [ip]),
      fate: 'unattributed',
      why: 'the endpoint is on another node',
    },
    {
      container: 'valid-a',
      wep: (ip) => endpoint(NODE, 'web-5', 'valid-a', [ip]),
      fate: 'ignored',
      why: 'a valid attachment',
    },
  ];

  function scene(): { block: Resource<'IPAMBlock'>; endpoints: Array<Resource<'WorkloadEndpoint'>> } {
    let spec: IPAMBlockSpec = blocks.newBlock('10.244.0.0/26', NODE);
    const endpoints: Array<Resource<'WorkloadEndpoint'>> = [];
    for (const c of CASES) {
      const step = blocks.allocate(spec, 1, `${NET}.${c.container}`, null);
      spec = step.block;
      const wep = c.wep?.(blocks.addressOf(spec, step.ordinals[0]!));
      if (wep) endpoints.push(wep);
    }
    return {
      block: {
        apiVersion: API_VERSION,
        kind: 'IPAMBlock',
        metadata: { name: '10-244-0-0-26', resourceVersion: '9' },
        spec,
      },
      endpoints,
    };
  }

  it('releases exactly the proven ones (the handle re-checked, no node to re-check), keeps and reports the rest', () => {
    const { block, endpoints } = scene();
    const plan = planGc([block], NODE, NET, new Set(['valid-a']), endpoints);
    const handles = (fate: string): string[] =>
      CASES.filter((c) => c.fate === fate).map((c) => `${NET}.${c.container}`);
    expect(handles('released')).not.toHaveLength(0);
    expect(plan.release.flatMap((r) => r.refs)).toEqual([{ ordinal: 0, handle: `${NET}.proven` }]);
    expect(plan.release[0]?.ips).toEqual(['10.244.0.0']);
    expect(plan.proven).toEqual([
      { handle: `${NET}.proven`, ip: '10.244.0.0', cidr: '10.244.0.0/26', endpoint: 'default/node-a-k8s-web-1-eth0' },
    ]);
    expect(plan.unattributed.map((k) => k.handle)).toEqual(handles('unattributed'));
  });

  it("lists this node's endpoints of containers the runtime no longer knows (deleted after the release), not others'", () => {
    const { block, endpoints } = scene();
    const plan = planGc([block], NODE, NET, new Set(['valid-a']), endpoints);
    expect(plan.endpoints.map((w) => w.spec.containerID)).toEqual(['proven', 'other-ip', 'newer-sandbox']);
  });

  it('without endpoints (the kubernetes datastore: GC does not remove Pods) nothing unattributed is released', () => {
    const { block } = scene();
    const plan = planGc([block], NODE, NET, new Set(['valid-a']));
    expect(plan.release).toEqual([]);
    expect(plan.proven).toEqual([]);
    expect(plan.unattributed).toHaveLength(5);
  });
});
