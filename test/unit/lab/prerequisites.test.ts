// What `tortie lab` says when a program it runs is missing: the ping matrix is "not measured: ping is not
// installed (Debian: iputils-ping)", never a row of FAILs; `lab up` names every missing program before it
// creates anything (labPrograms is the list it checks).

import { describe, expect, it } from 'vitest';
import { formatPingMatrix, labPing, labPrograms, type LabState } from '../../../src/lab/lab.js';
import { planLab, LAB_DEFAULTS } from '../../../src/lab/plan.js';

describe('lab prerequisites', () => {
  it('lab up checks every program it will run, the office router’s included', () => {
    const bird = labPrograms(planLab({ ...LAB_DEFAULTS, officeRouter: 'bird' }));
    expect(bird).toEqual(expect.arrayContaining(['ip', 'sysctl', 'nft', 'ping', '/usr/bin/etcd']));
    expect(bird.some((p) => p.endsWith('/usr/sbin/bird'))).toBe(true);
    expect(bird.some((p) => p.endsWith('/usr/sbin/birdc'))).toBe(true);
    const frr = labPrograms(planLab({ ...LAB_DEFAULTS, officeRouter: 'frr' }));
    expect(frr).toEqual(expect.arrayContaining(['/usr/lib/frr/bgpd', '/usr/lib/frr/zebra', 'vtysh']));
    const none = labPrograms(planLab({ ...LAB_DEFAULTS, officeRouter: 'none' }));
    expect(none.some((p) => p.includes('bird') || p.includes('frr'))).toBe(false);
  });

  it('a matrix that could not be measured says why, not FAIL', () => {
    const text = formatPingMatrix({
      pods: ['pod-1a', 'pod-2a'],
      ok: [
        [true, false],
        [false, true],
      ],
      failures: ['ping is not installed (Debian: iputils-ping)'],
      error: 'ping is not installed (Debian: iputils-ping)',
    });
    expect(text).toContain('not measured: ping is not installed (Debian: iputils-ping)');
    expect(text).not.toContain('FAIL');
  });

  it('a measured matrix is unchanged', () => {
    const text = formatPingMatrix({
      pods: ['pod-1a', 'pod-2a'],
      ok: [
        [true, true],
        [true, true],
      ],
      failures: [],
    });
    expect(text).toContain('all 2 pairs reach each other');
  });

  it('lab ping on a machine without ping: every pair untried, the reason named, no process started', async () => {
    const plan = planLab({ ...LAB_DEFAULTS, nodes: 2 });
    const state: LabState = { plan, dir: '/nonexistent', etcdPort: 0, processes: [], workloadIps: {}, command: [] };
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent-bin';
    try {
      const matrix = await labPing(state);
      expect(matrix.error).toBe('ping is not installed (Debian: iputils-ping)');
      expect(formatPingMatrix(matrix)).toContain(
        `not measured: ping is not installed (Debian: iputils-ping); the ${plan.workloads.length * (plan.workloads.length - 1)} pairs were not tried`,
      );
    } finally {
      process.env.PATH = path;
    }
  });
});
