// AgentMetrics: the series the agent exports, with their labels, in Prometheus text format; peers that go
// away lose their series; the convergence histogram's buckets run from 1 ms to 10 s; two instances do not
// share a registry.

import { describe, expect, it } from 'vitest';
import { AgentMetrics, CONVERGENCE_BUCKETS } from '../../../src/agent/metrics.js';

const peer = (address: string, bgpState: string, routesReceived: number, routesAdvertised: number) => ({
  address,
  bgpState,
  routesReceived,
  routesAdvertised,
});

/** The value of one series line ("name{labels} value"), or undefined when the line is absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('AgentMetrics', () => {
  it('exports session counts per BGP state, zeros included', async () => {
    const metrics = new AgentMetrics({ processMetrics: false });
    metrics.observeSessions([
      peer('10.0.0.2', 'Established', 4, 1),
      peer('10.0.0.3', 'Established', 0, 1),
      peer('10.0.0.4', 'Active', 0, 0),
    ]);
    const text = await metrics.render();
    expect(text).toContain('# TYPE tortie_bgp_sessions gauge');
    const expected: Array<[string, number]> = [
      ['Established', 2],
      ['Active', 1],
      ['Idle', 0],
      ['Connect', 0],
      ['OpenSent', 0],
      ['OpenConfirm', 0],
    ];
    for (const [state, count] of expected) expect(sample(text, `tortie_bgp_sessions{state="${state}"}`)).toBe(count);
  });

  it('exports routes received and advertised per peer, and drops the series of a peer that went away', async () => {
    const metrics = new AgentMetrics({ processMetrics: false });
    metrics.observeSessions([peer('10.0.0.2', 'Established', 4, 1), peer('10.0.0.3', 'Established', 7, 2)]);
    let text = await metrics.render();
    expect(sample(text, 'tortie_bgp_routes_received{peer="10.0.0.2"}')).toBe(4);
    expect(sample(text, 'tortie_bgp_routes_advertised{peer="10.0.0.2"}')).toBe(1);
    expect(sample(text, 'tortie_bgp_routes_received{peer="10.0.0.3"}')).toBe(7);
    expect(sample(text, 'tortie_bgp_routes_advertised{peer="10.0.0.3"}')).toBe(2);

    metrics.observeSessions([peer('10.0.0.3', 'Established', 8, 2)]);
    text = await metrics.render();
    expect(sample(text, 'tortie_bgp_routes_received{peer="10.0.0.2"}')).toBeUndefined();
    expect(sample(text, 'tortie_bgp_routes_received{peer="10.0.0.3"}')).toBe(8);

    metrics.observeRoutes('10.0.0.3', 9, 3);
    text = await metrics.render();
    expect(sample(text, 'tortie_bgp_routes_received{peer="10.0.0.3"}')).toBe(9);
    expect(sample(text, 'tortie_bgp_routes_advertised{peer="10.0.0.3"}')).toBe(3);
  });

  it('exports the datastore watch lag', async () => {
    const metrics = new AgentMetrics({ processMetrics: false });
    metrics.observeWatchLag(0.25);
    expect(sample(await metrics.render(), 'tortie_datastore_watch_lag_seconds')).toBe(0.25);
    metrics.observeWatchLag(-1); // clock skew between datastore and node: never negative
    expect(sample(await metrics.render(), 'tortie_datastore_watch_lag_seconds')).toBe(0);
  });

  it('exports a convergence histogram with buckets from 1 ms to 10 s', async () => {
    expect(CONVERGENCE_BUCKETS[0]).toBe(0.001);
    expect(CONVERGENCE_BUCKETS[CONVERGENCE_BUCKETS.length - 1]).toBe(10);
    const metrics = new AgentMetrics({ processMetrics: false });
    metrics.observeConvergence(0.003);
    metrics.observeConvergence(0.2);
    metrics.observeConvergence(30);
    const text = await metrics.render();
    expect(text).toContain('# TYPE tortie_convergence_seconds histogram');
    expect(sample(text, 'tortie_convergence_seconds_bucket{le="0.001"}')).toBe(0);
    expect(sample(text, 'tortie_convergence_seconds_bucket{le="0.005"}')).toBe(1);
    expect(sample(text, 'tortie_convergence_seconds_bucket{le="0.25"}')).toBe(2);
    expect(sample(text, 'tortie_convergence_seconds_bucket{le="10"}')).toBe(2);
    expect(sample(text, 'tortie_convergence_seconds_bucket{le="+Inf"}')).toBe(3);
    expect(sample(text, 'tortie_convergence_seconds_count')).toBe(3);
    expect(sample(text, 'tortie_convergence_seconds_sum')).toBeCloseTo(30.203, 6);
  });

  it('includes the default process metrics unless asked not to', async () => {
    expect(await new AgentMetrics().render()).toMatch(/^process_resident_memory_bytes \d+/m);
    expect(await new AgentMetrics({ processMetrics: false }).render()).not.toContain('process_resident_memory_bytes');
  });

  it('keeps each instance in its own registry', async () => {
    const a = new AgentMetrics({ processMetrics: false });
    const b = new AgentMetrics({ processMetrics: false });
    a.observeWatchLag(5);
    expect(sample(await b.render(), 'tortie_datastore_watch_lag_seconds')).toBe(0);
    expect(a.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  });
});
