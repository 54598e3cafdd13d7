// Loc-RIB: changes of best on add / replace / withdraw, the single-candidate fast path, references held,
// and a bench-like run at 100k prefixes × 3 peers with a heap-per-route printout (no timing assertions).

import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { prefixKey } from '../../../bgp/ip.js';
import { AdjRibIn } from '../../../bgp/rib/adj-rib-in.js';
import { AdjRibOut } from '../../../bgp/rib/adj-rib-out.js';
import { AttrTable } from '../../../bgp/rib/attrs.js';
import { LocRib } from '../../../bgp/rib/loc-rib.js';
import { Route } from '../../../bgp/rib/route.js';
import type { RouteSource } from '../../../bgp/rib/route.js';
import type { Prefix } from '../../../bgp/types.js';
import { attrs, key, seq, source } from './fixtures.js';

const K = key('10.244.1.0/26');

function setup() {
  const table = new AttrTable();
  const locRib = new LocRib(table);
  const make = (from: RouteSource, overrides = {}) => new Route(K, table.canonical(attrs(overrides)), from);
  return { table, locRib, make };
}

describe('LocRib', () => {
  it('reports the change of best on add, replace and withdraw', () => {
    const { locRib, make, table } = setup();
    const a = source('10.0.0.1');
    const b = source('10.0.0.2');
    const ra = make(a, { localPref: 100 });
    expect(locRib.set(a, K, ra)).toEqual({ key: K, previous: null, best: locRib.best(K) });
    // A worse candidate: no change of best.
    expect(locRib.set(b, K, make(b, { localPref: 50 }))).toBeNull();
    expect(locRib.candidates(K)).toHaveLength(2);
    // The other source gets better: it becomes best.
    const rb = make(b, { localPref: 200 });
    const change = locRib.set(b, K, rb);
    expect(change?.previous?.source).toBe(a);
    expect(change?.best?.source).toBe(b);
    expect(locRib.candidates(K)[0]?.source).toBe(b);
    // Withdrawing the best falls back to the other.
    expect(locRib.set(b, K, null)?.best?.source).toBe(a);
    // Withdrawing a source that has no candidate changes nothing.
    expect(locRib.set(b, K, null)).toBeNull();
    // Withdrawing the last: best becomes none.
    expect(locRib.set(a, K, null)).toEqual({ key: K, previous: expect.anything(), best: null });
    expect(locRib.size).toBe(0);
    expect(table.size).toBe(0);
  });

  it('replacing the only candidate with the same attributes is no change; with others it is', () => {
    const { locRib, make } = setup();
    const a = source('10.0.0.1');
    locRib.set(a, K, make(a));
    expect(locRib.set(a, K, make(a))).toBeNull();
    expect(locRib.set(a, K, make(a, { med: 9 }))?.best?.attrs.med).toBe(9);
  });

  it('tells candidates apart by source address (a reconnect replaces, not adds)', () => {
    const { locRib, make } = setup();
    locRib.set(source('10.0.0.1'), K, make(source('10.0.0.1')));
    const again = source('10.0.0.1', { routerId: 77 });
    locRib.set(again, K, make(again));
    expect(locRib.candidates(K)).toHaveLength(1);
    expect(locRib.best(K)?.source).toBe(again);
  });

  it('holds one reference per candidate and interns policy-made sets', () => {
    const { locRib, make, table } = setup();
    const a = source('10.0.0.1');
    const b = source('10.0.0.2');
    locRib.set(a, K, make(a));
    locRib.set(b, K, make(b));
    const best = locRib.best(K)!;
    expect(table.refCount(best.attrs)).toBe(2);
    expect(locRib.removeSource(a)).toHaveLength(1);
    expect(table.refCount(best.attrs)).toBe(1);
  });

  it('removeSource reports only prefixes whose best changed', () => {
    const { locRib, table } = setup();
    const a = source('10.0.0.1');
    const b = source('10.0.0.2');
    const r = (from: RouteSource, k: number, lp: number) =>
      new Route(k, table.canonical(attrs({ localPref: lp })), from);
    locRib.set(a, key('10.0.1.0/24'), r(a, key('10.0.1.0/24'), 200));
    locRib.set(b, key('10.0.1.0/24'), r(b, key('10.0.1.0/24'), 100));
    locRib.set(a, key('10.0.2.0/24'), r(a, key('10.0.2.0/24'), 50));
    locRib.set(b, key('10.0.2.0/24'), r(b, key('10.0.2.0/24'), 100));
    const changes = locRib.removeSource(a);
    expect(changes.map((c) => c.key)).toEqual([key('10.0.1.0/24')]);
    expect([...locRib.bestRoutes()].every((x) => x.source === b)).toBe(true);
  });
});

function gc(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

function sendAll(ribOut: AdjRibOut): void {
  ribOut.markSent(ribOut.pending());
}

/** 100k distinct /26s in 10.0.0.0/8 upward, beyond the Smi range (keys > 2^31) as real pools are. */
function prefixes(count: number): Prefix[] {
  const out: Prefix[] = [];
  for (let i = 0; i < count; i++) out.push({ addr: (0xc0000000 + i * 64) >>> 0, len: 26 });
  return out;
}

describe('LocRib at 100k prefixes (bench-like; prints, asserts only correctness)', () => {
  it('feeds 100k prefixes × 3 peers through Adj-RIB-In and Loc-RIB', () => {
    const COUNT = 100_000;
    const all = prefixes(COUNT);
    expect(all).toHaveLength(COUNT);
    const table = new AttrTable();
    const locRib = new LocRib(table);
    const peers = [1, 2, 3].map((n) => source(`10.0.0.${n}`));
    const ribs = peers.map((p) => new AdjRibIn(p, table));
    const timings: string[] = [];
    ribs.forEach((ribIn, n) => {
      const started = performance.now();
      const BATCH = 500;
      let changes = 0;
      for (let i = 0; i < COUNT; i += BATCH) {
        const nlri = all.slice(i, i + BATCH);
        const changed = ribIn.apply({ withdrawn: [], nlri, attributes: attrs({ asPath: [seq(65000 + n)], med: n }) });
        for (const k of changed) if (locRib.set(ribIn.source, k, ribIn.get(k) ?? null) !== null) changes += 1;
      }
      timings.push(`peer ${n + 1}: ${(performance.now() - started).toFixed(0)} ms, ${changes} best changes`);
    });
    const started = performance.now();
    const withdrawn = ribs[0]!.clear();
    let changes = 0;
    for (const k of withdrawn) if (locRib.set(peers[0]!, k, null) !== null) changes += 1;
    timings.push(`withdraw peer 1: ${(performance.now() - started).toFixed(0)} ms, ${changes} best changes`);
    console.log(`[rib bench] 100k prefixes × 3 peers: ${timings.join('; ')}`);
    expect(locRib.size).toBe(COUNT);
    expect(changes).toBe(COUNT); // peer 1 (lowest address) was best everywhere
    expect(locRib.best(prefixKey(all[0]!))?.source).toBe(peers[1]);
    expect(table.size).toBe(2);
  });

  it('heap per route at 100k routes from one peer (Adj-RIB-In + Loc-RIB)', () => {
    const COUNT = 100_000;
    const all = prefixes(COUNT);
    const table = new AttrTable();
    const peer = source('10.0.0.1');
    gc();
    const before = process.memoryUsage().heapUsed;
    const locRib = new LocRib(table);
    const ribIn = new AdjRibIn(peer, table);
    for (let i = 0; i < COUNT; i += 500) {
      const changed = ribIn.apply({ withdrawn: [], nlri: all.slice(i, i + 500), attributes: attrs() });
      for (const k of changed) locRib.set(peer, k, ribIn.get(k) ?? null);
    }
    gc();
    const afterIn = process.memoryUsage().heapUsed;
    const perRoute = (afterIn - before) / COUNT;
    // The Adj-RIB-Out of one peer, desired and advertised (after markSent), sharing one exported set.
    const ribOut = new AdjRibOut(table);
    const exported = table.canonical(attrs({ localPref: 100 }));
    for (const r of ribIn.routes()) ribOut.setDesired(r.key, exported);
    sendAll(ribOut); // in its own frame, so the batch is garbage by the time we measure
    gc();
    const perOut = (process.memoryUsage().heapUsed - afterIn) / COUNT;
    console.log(
      `[rib heap] ${perRoute.toFixed(0)} bytes per route at 100k (Adj-RIB-In + Loc-RIB, one shared attribute set); ` +
        `Adj-RIB-Out ${perOut.toFixed(0)} bytes per prefix per peer (desired + advertised)`,
    );
    // Everything measured must still be alive here, or the numbers would be too low.
    expect(all).toHaveLength(COUNT);
    expect(locRib.size).toBe(COUNT);
    expect(ribIn.size).toBe(COUNT);
    expect(ribOut.advertisedSize).toBe(COUNT);
    expect(ribOut.hasPending()).toBe(false);
    expect(table.size).toBe(2);
  });
});
