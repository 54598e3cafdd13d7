// The felix-routes bench's pure parts (no namespace, no root): the 10,000 routes it programs, the
// `ip -batch` lines of the baseline, the one-route change, and the rows it reports.
import { describe, expect, it } from 'vitest';
import { parsePrefix, prefixContains, tryParseIpv4 } from '../../bgp/ip.js';
import { interfaceNameProblem } from '../../felix/interface-names.js';
import {
  benchRoutes,
  felixRows,
  median,
  MIX,
  replaceLines,
  ROUNDS,
  roundsFrom,
  ROUTE_COUNT,
  underlay,
  withOneMoved,
  type TortieRound,
  type Window,
} from './felix-routes.js';

describe('felix-routes: the routes', () => {
  const { routes, interfaces } = benchRoutes();

  it('are 10,000 distinct destinations in the mix asked for', () => {
    expect(routes).toHaveLength(ROUTE_COUNT);
    expect(MIX.blackholes + MIX.workloads + MIX.remotes).toBe(ROUTE_COUNT);
    expect(new Set(routes.map((r) => r.dst)).size).toBe(ROUTE_COUNT);
    const byClass = (c: string) => routes.filter((r) => r.class === c);
    expect(byClass('blackhole')).toHaveLength(MIX.blackholes);
    expect(byClass('workload')).toHaveLength(MIX.workloads);
    expect(byClass('direct')).toHaveLength(MIX.remotes);
    for (const r of routes) expect(r.proto).toBe(80);
  });

  it("have felix's shapes: blackhole /26, /32 scope link on its own cali*, /26 via a node onlink on eth0", () => {
    const local = routes.filter((r) => r.class === 'blackhole').map((r) => parsePrefix(r.dst, { strict: true }));
    for (const r of routes) {
      if (r.class === 'blackhole')
        expect([r.type, r.dst.endsWith('/26'), r.dev, r.via]).toEqual(['blackhole', true, undefined, undefined]);
      if (r.class === 'workload') {
        expect([r.type, r.dst.endsWith('/32'), r.scope, r.via]).toEqual(['unicast', true, 'link', undefined]);
        expect(interfaceNameProblem(r.dev ?? '')).toBeNull();
        const addr = tryParseIpv4(r.dst.slice(0, -3)) as number;
        expect(local.some((p) => prefixContains(p, addr) && addr !== p.addr)).toBe(true); // a pod address inside a local block
      }
      if (r.class === 'direct') {
        expect([r.type, r.dst.endsWith('/26'), r.dev, r.onlink]).toEqual(['unicast', true, 'eth0', true]);
        expect(r.via).toMatch(/^198\.18\.61\.\d+$/);
      }
    }
    expect(new Set(interfaces).size).toBe(MIX.workloads);
    expect(new Set(routes.filter((r) => r.class === 'workload').map((r) => r.dev))).toEqual(new Set(interfaces));
    expect(new Set(routes.filter((r) => r.class === 'direct').map((r) => r.via)).size).toBe(MIX.nodes);
  });

  it("underlay addresses come from this file's block, never its own node (.1) for a remote one", () => {
    expect(underlay(1)).toBe('198.18.61.1');
    expect(() => underlay(255)).toThrow(/1\.\.254/);
    expect(routes.some((r) => r.via === underlay(1))).toBe(false);
  });

  it("the baseline lines are tortie's own spelling of each route", () => {
    const lines = replaceLines(routes);
    expect(lines).toHaveLength(ROUTE_COUNT);
    expect(lines[0]).toBe('route replace blackhole 10.64.0.0/26 proto 80 table main');
    expect(lines[MIX.blackholes]).toMatch(
      /^route replace 10\.64\.0\.1\/32 dev cali[0-9a-f]{11} scope link proto 80 table main$/,
    );
    expect(lines.at(-1)).toMatch(
      /^route replace 10\.\d+\.\d+\.\d+\/26 via 198\.18\.61\.\d+ dev eth0 proto 80 table main onlink$/,
    );
  });

  it('the incremental change moves exactly one remote block to another node', () => {
    const { routes: moved, moved: dst } = withOneMoved(routes, underlay(253));
    const changed = moved.filter((r, i) => r !== routes[i]);
    expect(changed).toHaveLength(1);
    expect(changed[0]).toMatchObject({ dst, via: '198.18.61.253', class: 'direct' });
    expect(() =>
      withOneMoved(
        routes.filter((r) => r.class !== 'direct'),
        underlay(253),
      ),
    ).toThrow(/no remote/);
  });
});

describe('felix-routes: the rows', () => {
  const w = (ms: number, readMs: number, writeMs: number, writes: number, events = -1): Window => ({
    ms,
    readMs,
    writeMs,
    cpuMs: 12,
    writes,
    events,
    fullResync: true,
  });
  const round = (program: number, resync: number, incremental: number, resyncWrites = 0): TortieRound => ({
    program: w(program, 5, program - 20, 10_000),
    resync: w(resync, resync - 10, 0, resyncWrites, resyncWrites),
    incremental: w(incremental, 0, 4, 1, 1),
  });

  it('FELIX_BENCH_ROUNDS: default 3, 1..20, anything else refused naming the value', () => {
    expect([roundsFrom(undefined), roundsFrom(''), roundsFrom('7')]).toEqual([ROUNDS, ROUNDS, 7]);
    expect(ROUNDS).toBe(3);
    for (const bad of ['0', '21', '2.5', 'many'])
      expect(() => roundsFrom(bad)).toThrow(new RegExp(`FELIX_BENCH_ROUNDS="${bad}"`));
  });

  it('median of odd and even counts', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
  });

  it("ratios best to best and median to median; the worst round's writes; the cold round apart", () => {
    const rows = felixRows(
      [100, 120, 110],
      [round(130, 40, 20), round(150, 60, 30), round(125, 50, 25, 2)],
      round(200, 0, 0),
    );
    const byName = new Map(rows.map((r) => [r.name, r]));
    expect(rows.length).toBeGreaterThan(6);
    expect(byName.get('10k routes: ip -batch (baseline), best of 3')?.value).toBe(100);
    expect(byName.get('10k routes: tortie RouteTable, best of 3')).toMatchObject({
      value: 125,
      vs: '1.25× ip -batch (target ≤ 1.2×)',
    });
    expect(byName.get('10k routes: tortie RouteTable, median of 3')?.vs).toMatch(
      /^1\.18× ip -batch median; reads 5\.0 \+ ip -batch 110\.0 \+ JS 15\.0 ms, Node CPU 12\.0 ms$/,
    );
    expect(byName.get('10k routes: tortie, first in this process (cold JIT)')?.value).toBe(200);
    expect(byName.get('no-op resync of 10k (full re-read), median of 3')).toMatchObject({ value: 50 });
    expect(byName.get('no-op resync: kernel writes (max over rounds)')).toMatchObject({
      value: 2,
      vs: '2 route changes seen by ip monitor (target 0)',
    });
    expect(byName.get('1 route moved among 10k, median of 3')?.value).toBe(25);
    expect(() => felixRows([], [])).toThrow(/no rounds/);
  });
});
