// The agent-convergence bench's arithmetic: percentiles, phases of one claim, rows of a scenario.
import { describe, expect, it } from 'vitest';
import { claimPhases, percentile, spread, summarizeClaims, summaryRows, type ClaimTimeline } from './agent-stats.js';

describe('percentile (nearest rank)', () => {
  it('picks the ceil(p·n)-th smallest value, whatever the input order', () => {
    const hundred = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1
    expect(percentile(hundred, 50)).toBe(50);
    expect(percentile(hundred, 99)).toBe(99);
    expect(percentile(hundred, 100)).toBe(100);
    expect(percentile([7], 1)).toBe(7);
    expect(percentile([3, 1, 2], 50)).toBe(2);
    expect(percentile([1, 2, 3, 4], 99)).toBe(4);
  });
  it('refuses an empty list and p outside (0, 100]', () => {
    expect(() => percentile([], 50)).toThrow(/empty list/);
    expect(() => percentile([1], 0)).toThrow(/p=0 is outside/);
    expect(() => percentile([1], 101)).toThrow(/p=101/);
  });
  it('spread gives count, p50, p99 and max', () => {
    expect(spread([5, 1, 9, 3])).toEqual({ count: 4, p50: 3, p99: 9, max: 9 });
  });
});

const timeline = (over: Partial<ClaimTimeline> = {}): ClaimTimeline => ({
  node: 'n1',
  cidr: '10.244.1.0/26',
  written: 6,
  ownerEvent: 5,
  originated: 27,
  others: [29, 31, 30],
  ...over,
});

describe('claimPhases', () => {
  it("splits the path at the owner's watch event and its own Loc-RIB; the total is the last arrival", () => {
    expect(claimPhases(timeline())).toEqual({ total: 31, watch: 5, replan: 22, bgp: 4, missing: 0 });
  });
  it('has no total (and no BGP phase) when an agent never got the route', () => {
    const p = claimPhases(timeline({ others: [29, undefined, 30] }));
    expect(p.total).toBeUndefined();
    expect(p.bgp).toBeUndefined();
    expect(p.missing).toBe(1);
    expect(p.replan).toBe(22);
  });
  it('leaves a phase out when its start was not seen', () => {
    const p = claimPhases(timeline({ ownerEvent: undefined }));
    expect(p.watch).toBeUndefined();
    expect(p.replan).toBeUndefined();
    expect(p.total).toBe(31);
  });
});

describe('summarizeClaims and summaryRows', () => {
  const timelines = [timeline(), timeline({ others: [40, 41, 60] }), timeline({ others: [undefined, 1, 2] })];
  it('counts complete claims and takes percentiles over those only', () => {
    expect(timelines.length).toBeGreaterThan(0);
    const s = summarizeClaims('mesh 3', timelines);
    expect(s.claims).toBe(3);
    expect(s.complete).toBe(2);
    expect(s.total).toEqual({ count: 2, p50: 31, p99: 60, max: 60 });
    expect(s.written?.count).toBe(3);
  });
  it('rows: p50/p99/max of the whole path, the p99 against the target, then each phase', () => {
    const rows = summaryRows(summarizeClaims('mesh 3', timelines), 50);
    expect(rows.map((r) => r.name)).toEqual([
      'mesh 3: claim → every other Loc-RIB, p50',
      'mesh 3: claim → every other Loc-RIB, p99',
      'mesh 3: claim → every other Loc-RIB, max',
      'mesh 3: claimBlock writes, p50 (p99)',
      'mesh 3: claim → owner watch event, p50 (p99)',
      'mesh 3: owner event → owner Loc-RIB, p50 (p99)',
      'mesh 3: owner Loc-RIB → last other, p50 (p99)',
      'mesh 3: claims reaching every agent',
    ]);
    expect(rows[1]).toMatchObject({ value: 60, unit: 'ms', vs: '1.20× of 50 ms target' });
    expect(rows[7]).toMatchObject({ value: 2, vs: 'of 3' });
  });
  it('rows without any complete claim still say how many claims reached everyone (none)', () => {
    const rows = summaryRows(summarizeClaims('rr 200', [timeline({ others: [undefined] })]), 50);
    expect(rows.some((r) => r.name.includes('every other Loc-RIB'))).toBe(false);
    expect(rows.at(-1)).toMatchObject({ value: 0, vs: 'of 1' });
  });
});
