// needsTunnel: which node pairs the lab's pool sends through tunl0 — what the lab does not wait for where
// the kernel has no IPIP (felix cannot program those routes and says so).

import { describe, expect, it } from 'vitest';
import { LAB_DEFAULTS, needsTunnel, planLab, type LabIpipMode } from '../../../src/lab/plan.js';

function pairs(ipipMode: LabIpipMode, subnets: 1 | 2): string[] {
  const plan = planLab({ ...LAB_DEFAULTS, nodes: 4, subnets, ipipMode });
  const out: string[] = [];
  for (const a of plan.nodes)
    for (const b of plan.nodes) if (a !== b && needsTunnel(plan, a, b)) out.push(`${a.name}>${b.name}`);
  return out;
}

describe('needsTunnel', () => {
  it('Always: every pair of nodes; Never: none', () => {
    expect(pairs('Always', 1)).toHaveLength(12);
    expect(pairs('Always', 2)).toHaveLength(12);
    expect(pairs('Never', 1)).toEqual([]);
  });

  it('CrossSubnet: only pairs on different subnets (nodes 1-2 on the first, 3-4 on the second)', () => {
    expect(pairs('CrossSubnet', 1)).toEqual([]);
    expect(pairs('CrossSubnet', 2)).toEqual([
      'node-1>node-3',
      'node-1>node-4',
      'node-2>node-3',
      'node-2>node-4',
      'node-3>node-1',
      'node-3>node-2',
      'node-4>node-1',
      'node-4>node-2',
    ]);
  });
});
