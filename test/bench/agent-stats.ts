// The pure arithmetic of the `agent-convergence` bench: nearest-rank percentiles, one claim's timeline
// turned into phases, and a scenario's rows for the results table. No I/O, no clocks: the bench passes
// times it measured (ms, from performance.now()).

import type { BenchRow } from './bench.js';

/** Nearest-rank percentile (p in 0..100] of `values` (any order). Throws on an empty list. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new Error('percentile of an empty list: no claims were measured');
  if (!(p > 0 && p <= 100)) throw new Error(`percentile p=${p} is outside (0, 100]`);
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export interface Spread {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export function spread(values: readonly number[]): Spread {
  return { count: values.length, p50: percentile(values, 50), p99: percentile(values, 99), max: Math.max(...values) };
}

/**
 * One claim, every time relative to the moment just before Ipam.claimBlock was called (ms). A time is
 * undefined when that step was not seen within the bound.
 */
export interface ClaimTimeline {
  node: string;
  cidr: string;
  /** claimBlock resolved (pending affinity, block, confirmed affinity all written). */
  written: number;
  /** The owner's datastore watch delivered the confirmed BlockAffinity (what makes the block "ours"). */
  ownerEvent: number | undefined;
  /** The block became a best route in the owner's own Loc-RIB (Speaker.setOriginated after the replan). */
  originated: number | undefined;
  /** First time the block became best in each other agent's Loc-RIB; undefined where it never arrived. */
  others: ReadonlyArray<number | undefined>;
}

export interface ClaimPhases {
  /** All others hold the prefix: time of the last arrival; undefined when some never did. */
  total: number | undefined;
  /** Claim start → owner's watch event (etcd writes and the watch stream). */
  watch: number | undefined;
  /** Owner's watch event → owner's Loc-RIB (cache coalescing + replan + setOriginated). */
  replan: number | undefined;
  /** Owner's Loc-RIB → the last other agent's Loc-RIB (BGP UPDATEs, through reflectors where there are). */
  bgp: number | undefined;
  /** Other agents that never got the prefix within the bound. */
  missing: number;
}

export function claimPhases(t: ClaimTimeline): ClaimPhases {
  const missing = t.others.filter((x) => x === undefined).length;
  const arrived = t.others.filter((x): x is number => x !== undefined);
  const last = missing === 0 && arrived.length > 0 ? Math.max(...arrived) : undefined;
  const diff = (a: number | undefined, b: number | undefined): number | undefined =>
    a !== undefined && b !== undefined ? a - b : undefined;
  return {
    total: last,
    watch: t.ownerEvent,
    replan: diff(t.originated, t.ownerEvent),
    bgp: diff(last, t.originated),
    missing,
  };
}

export interface ScenarioSummary {
  label: string;
  claims: number;
  /** Claims where every other agent got the route within the bound. */
  complete: number;
  total: Spread | null;
  watch: Spread | null;
  replan: Spread | null;
  bgp: Spread | null;
  /** claimBlock's own duration (its datastore round trips). */
  written: Spread | null;
}

function defined(values: ReadonlyArray<number | undefined>): number[] {
  return values.filter((v): v is number => v !== undefined);
}

function spreadOrNull(values: ReadonlyArray<number | undefined>): Spread | null {
  const got = defined(values);
  return got.length > 0 ? spread(got) : null;
}

export function summarizeClaims(label: string, timelines: readonly ClaimTimeline[]): ScenarioSummary {
  const phases = timelines.map(claimPhases);
  return {
    label,
    claims: timelines.length,
    complete: phases.filter((p) => p.total !== undefined).length,
    total: spreadOrNull(phases.map((p) => p.total)),
    watch: spreadOrNull(phases.map((p) => p.watch)),
    replan: spreadOrNull(phases.map((p) => p.replan)),
    bgp: spreadOrNull(phases.map((p) => p.bgp)),
    written: spreadOrNull(timelines.map((t) => t.written)),
  };
}

/** The bench's rows for one scenario: p50/p99/max of the whole path (p99 against the budget), then p50 per phase. */
export function summaryRows(s: ScenarioSummary, budgetMs: number): BenchRow[] {
  const rows: BenchRow[] = [];
  if (s.total) {
    rows.push({ name: `${s.label}: claim → every other Loc-RIB, p50`, value: s.total.p50, unit: 'ms' });
    rows.push({
      name: `${s.label}: claim → every other Loc-RIB, p99`,
      value: s.total.p99,
      unit: 'ms',
      vs: `${(s.total.p99 / budgetMs).toFixed(2)}× of ${budgetMs} ms target`,
    });
    rows.push({ name: `${s.label}: claim → every other Loc-RIB, max`, value: s.total.max, unit: 'ms' });
  }
  const phase = (name: string, x: Spread | null): void => {
    if (x)
      rows.push({ name: `${s.label}: ${name}, p50 (p99)`, value: x.p50, unit: 'ms', vs: `p99 ${x.p99.toFixed(1)} ms` });
  };
  phase('claimBlock writes', s.written);
  phase('claim → owner watch event', s.watch);
  phase('owner event → owner Loc-RIB', s.replan);
  phase('owner Loc-RIB → last other', s.bgp);
  rows.push({
    name: `${s.label}: claims reaching every agent`,
    value: s.complete,
    unit: 'claims',
    vs: `of ${s.claims}`,
  });
  return rows;
}
