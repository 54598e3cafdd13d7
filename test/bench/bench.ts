// What a benchmark is, and a bounded timing loop. Benches are registered in ./registry.ts and run by
// ./run.ts (`npm run bench`, `npm run bench -- --only codec`).

import { performance } from 'node:perf_hooks';

/** One line of the results table. */
export interface BenchRow {
  /** What was measured: "decode UPDATE, 800 /26 per message". */
  name: string;
  value: number;
  /** "UPDATEs/s", "prefixes/s", "ms". */
  unit: string;
  /** A comparison for the `vs` column: a ratio to a budget or to another implementation ("0.21× of 50 ms budget"). */
  vs?: string;
}

export interface Bench {
  name: string;
  run(): Promise<BenchRow[]>;
}

export interface Timing {
  /** Calls of `fn` completed. */
  iterations: number;
  /** Total milliseconds spent in them. */
  totalMs: number;
  /** Fastest single call, ms. */
  bestMs: number;
}

/**
 * Calls `fn` repeatedly: a few warm-up calls, then until `maxMs` has passed (at most 2000 ms, so every
 * measurement is bounded) or `maxIterations` calls were made.
 */
export function time(
  fn: () => unknown,
  options: { maxMs?: number; maxIterations?: number; warmup?: number } = {},
): Timing {
  const maxMs = Math.min(options.maxMs ?? 1000, 2000);
  const maxIterations = options.maxIterations ?? 1_000_000;
  for (let i = 0; i < (options.warmup ?? 3); i++) fn();
  let iterations = 0;
  let bestMs = Infinity;
  const start = performance.now();
  let now = start;
  while (iterations < maxIterations && now - start < maxMs) {
    const t0 = now;
    fn();
    now = performance.now();
    bestMs = Math.min(bestMs, now - t0);
    iterations++;
  }
  return { iterations, totalMs: now - start, bestMs };
}

/** Operations per second from a timing where each call did `opsPerCall` operations. */
export function rate(t: Timing, opsPerCall = 1): number {
  return t.totalMs === 0 ? 0 : (t.iterations * opsPerCall * 1000) / t.totalMs;
}
