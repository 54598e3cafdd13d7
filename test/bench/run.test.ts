import { describe, expect, it } from 'vitest';
import type { Bench } from './bench.js';
import { rate, time } from './bench.js';
import { BENCHES } from './registry.js';
import { formatTable, selectBenches } from './run.js';

const fake = (name: string): Bench => ({ name, run: async () => [] });

describe('bench runner', () => {
  it('registers the codec bench', () => expect(BENCHES.map((b) => b.name)).toContain('codec'));
  it('--only selects benches by name and refuses unknown names', () => {
    const all = [fake('codec'), fake('rib')];
    expect(selectBenches([], all).map((b) => b.name)).toEqual(['codec', 'rib']);
    expect(selectBenches(['--only', 'rib'], all).map((b) => b.name)).toEqual(['rib']);
    expect(selectBenches(['--only=codec,rib'], all).map((b) => b.name)).toEqual(['codec', 'rib']);
    expect(() => selectBenches(['--only', 'nope'], all)).toThrow(/no bench named "nope"; known: codec, rib/);
    expect(() => selectBenches(['--fast'], all)).toThrow(/unknown argument "--fast"/);
  });
  it('prints aligned columns with the vs column', () => {
    const table = formatTable([
      { bench: 'codec', name: 'decode', value: 1234567.8, unit: 'UPDATEs/s' },
      { bench: 'codec', name: 'decode 100k', value: 2.5, unit: 'ms', vs: '0.05× of 50 ms budget' },
    ]);
    expect(table.split('\n')).toEqual([
      'bench  name             value  unit       vs',
      'codec  decode       1,234,568  UPDATEs/s',
      'codec  decode 100k       2.50  ms         0.05× of 50 ms budget',
    ]);
  });
  it('time() stops at its iteration bound and rate() counts operations', () => {
    let calls = 0;
    const t = time(() => calls++, { maxIterations: 5, warmup: 2, maxMs: 2000 });
    expect([t.iterations, calls]).toEqual([5, 7]);
    expect(rate({ iterations: 10, totalMs: 1000, bestMs: 1 }, 3)).toBe(30);
  });
});
