// The agent-convergence bench's scenario table and its selection from AGENT_BENCH_SCENARIOS (no agents run here).
import { describe, expect, it } from 'vitest';
import { CLAIMS, SCENARIOS, selectScenarios } from './agent-convergence.js';

describe('agent-convergence scenarios', () => {
  it('are the three the brief asks for: 10 and 50 meshed, 200 via 2 reflectors, 100 claims each', () => {
    expect(SCENARIOS.length).toBeGreaterThan(0);
    expect(SCENARIOS.map((s) => [s.agents, s.reflectors])).toEqual([
      [10, 0],
      [50, 0],
      [200, 2],
    ]);
    expect(CLAIMS).toBe(100);
    // Agents live on 127.0.60.1..N: a /24 holds at most 254 hosts.
    for (const s of SCENARIOS) expect(s.agents).toBeLessThanOrEqual(254);
  });
  it('selects all by default, or by label or index', () => {
    expect(selectScenarios(undefined)).toEqual(SCENARIOS);
    expect(selectScenarios(' ')).toEqual(SCENARIOS);
    expect(selectScenarios('mesh 50').map((s) => s.agents)).toEqual([50]);
    expect(selectScenarios('2,0').map((s) => s.agents)).toEqual([200, 10]);
  });
  it('refuses an unknown scenario, naming the known ones', () => {
    expect(() => selectScenarios('mesh 7')).toThrow(
      /no scenario "mesh 7"; known: 0 "mesh 10", 1 "mesh 50", 2 "rr 200 \(2 RR\)"/,
    );
    expect(() => selectScenarios('9')).toThrow(/no scenario "9"/);
  });
});
