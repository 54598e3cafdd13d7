// The felix-routes bench's floor rows (no namespace, no root): the no-op resync's floors — one bare
// `ip -json route show` of the 10,000 routes, and the read the reconciler does — are reported next to it
// when the rounds measured them, and left out when they did not.
import { describe, expect, it } from 'vitest';
import { felixRows, type TortieRound, type Window } from './felix-routes.js';

const w = (ms: number): Window => ({ ms, readMs: 1, writeMs: 1, cpuMs: 1, writes: 0, events: 0, fullResync: true });
const round = (jsonShowMs?: number, saveAndLinksMs?: number): TortieRound => ({
  program: w(130),
  resync: w(25),
  incremental: w(10),
  ...(jsonShowMs !== undefined && saveAndLinksMs !== undefined ? { floors: { jsonShowMs, saveAndLinksMs } } : {}),
});

describe('felix-routes: the floor rows', () => {
  it('median and best of the rounds that measured them', () => {
    const rows = felixRows([100, 100, 100], [round(30, 14), round(26, 12), round(28, 20)]);
    const json = rows.find((r) => r.name.startsWith('no-op resync floor: one ip -4 -json route show'));
    const save = rows.find((r) => r.name.startsWith("no-op resync floor: tortie's read"));
    expect(json).toMatchObject({
      value: 28,
      unit: 'ms',
      name: 'no-op resync floor: one ip -4 -json route show of 10k, median of 3',
    });
    expect(json?.vs).toMatch(/^best 26\.0 ms;/);
    expect(save).toMatchObject({ value: 14 });
    expect(save?.vs).toMatch(/^best 12\.0 ms;/);
  });

  it('absent when no round measured them', () => {
    const rows = felixRows([100], [round()]);
    expect(rows.some((r) => r.name.includes('floor'))).toBe(false);
  });
});
