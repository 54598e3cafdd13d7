// Adj-RIB-Out: only differences are pending; everything again after a reset; a batch that raced with a
// newer desired state leaves that prefix pending; references are balanced.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parsePrefix } from '../../../bgp/ip.js';
import { formatRibPrefix, ribKeyOf, type RibKey } from '../../../bgp/rib/prefix6.js';
import { AdjRibOut } from '../../../bgp/rib/adj-rib-out.js';
import type { PendingUpdates } from '../../../bgp/rib/adj-rib-out.js';
import { AttrTable } from '../../../bgp/rib/attrs.js';
import { attrs } from './fixtures.js';

const P = (text: string) => parsePrefix(text);
const A = attrs({ med: 1 });
const B = attrs({ med: 2 });

function show(batch: PendingUpdates) {
  return {
    announce: batch.announce.map((g) => ({ med: g.attrs.med, prefixes: g.prefixes.map(formatRibPrefix) })),
    withdraw: batch.withdraw.map(formatRibPrefix),
  };
}

function setup() {
  const table = new AttrTable();
  return { table, out: new AdjRibOut(table) };
}

describe('AdjRibOut', () => {
  it('groups announcements by attribute set and lists withdrawals', () => {
    const { out } = setup();
    out.setDesired(P('10.0.2.0/24'), A);
    out.setDesired(P('10.0.1.0/24'), A);
    out.setDesired(P('10.0.3.0/24'), B);
    expect(show(out.pending())).toEqual({
      announce: [
        { med: 1, prefixes: ['10.0.1.0/24', '10.0.2.0/24'] },
        { med: 2, prefixes: ['10.0.3.0/24'] },
      ],
      withdraw: [],
    });
    out.markSent(out.pending());
    expect(out.hasPending()).toBe(false);
    expect(out.advertisedSize).toBe(3);
    out.setDesired(P('10.0.1.0/24'), null);
    out.setDesired(P('10.0.3.0/24'), A);
    expect(show(out.pending())).toEqual({
      announce: [{ med: 1, prefixes: ['10.0.3.0/24'] }],
      withdraw: ['10.0.1.0/24'],
    });
  });

  it('sends nothing for a change that is undone before sending, or for an unknown withdrawal', () => {
    const { out } = setup();
    out.setDesired(P('10.0.1.0/24'), A);
    out.markSent(out.pending());
    out.setDesired(P('10.0.1.0/24'), B);
    out.setDesired(P('10.0.1.0/24'), A);
    out.setDesired(P('10.0.9.0/24'), null);
    out.setDesired(P('10.0.8.0/24'), A);
    out.setDesired(P('10.0.8.0/24'), null);
    expect(show(out.pending())).toEqual({ announce: [], withdraw: [] });
    expect(out.hasPending()).toBe(false);
  });

  it('sends the whole desired set after resetAdvertised (reconnect, ROUTE-REFRESH)', () => {
    const { out } = setup();
    out.setDesired(P('10.0.1.0/24'), A);
    out.setDesired(P('10.0.2.0/24'), B);
    out.markSent(out.pending());
    out.setDesired(P('10.0.3.0/24'), A);
    out.setDesired(P('10.0.2.0/24'), null); // pending withdrawal: after a reset the peer has nothing to withdraw
    out.resetAdvertised();
    expect(out.advertisedSize).toBe(0);
    expect(show(out.pending())).toEqual({
      announce: [{ med: 1, prefixes: ['10.0.1.0/24', '10.0.3.0/24'] }],
      withdraw: [],
    });
  });

  it('keeps a prefix pending when desired moved on after pending() was taken', () => {
    const { out } = setup();
    out.setDesired(P('10.0.1.0/24'), A);
    const batch = out.pending();
    out.setDesired(P('10.0.1.0/24'), B);
    out.markSent(batch);
    expect(out.advertisedOf(P('10.0.1.0/24'))?.med).toBe(1);
    expect(show(out.pending())).toEqual({ announce: [{ med: 2, prefixes: ['10.0.1.0/24'] }], withdraw: [] });
  });

  it('releases every attribute set when cleared', () => {
    const { out, table } = setup();
    out.setDesired(P('10.0.1.0/24'), A);
    out.markSent(out.pending());
    out.setDesired(P('10.0.1.0/24'), B);
    expect(table.size).toBe(2);
    out.clear();
    expect(table.size).toBe(0);
  });

  it('converges to desired and balances references for any sequence of operations (fast-check)', () => {
    const prefixes = ['10.0.1.0/24', '10.0.2.0/24', '10.0.3.0/24'].map(P);
    const op = fc.oneof(
      fc.record({
        kind: fc.constant('set' as const),
        at: fc.integer({ min: 0, max: 2 }),
        med: fc.constantFrom(null, 1, 2, 3),
      }),
      fc.record({ kind: fc.constantFrom('take' as const, 'send' as const, 'reset' as const) }),
    );
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 40 }), (ops) => {
        const { out, table } = setup();
        // A model of the peer: what it has been told, applying batches in order.
        const peer = new Map<RibKey, number | undefined>();
        let taken: PendingUpdates | null = null;
        for (const o of ops) {
          if (o.kind === 'set') out.setDesired(prefixes[o.at]!, o.med === null ? null : attrs({ med: o.med }));
          else if (o.kind === 'take') taken = out.pending();
          else if (o.kind === 'send' && taken !== null) {
            for (const g of taken.announce) for (const p of g.prefixes) peer.set(ribKeyOf(p), g.attrs.med);
            for (const p of taken.withdraw) peer.delete(ribKeyOf(p));
            out.markSent(taken);
            taken = null;
          } else if (o.kind === 'reset') {
            out.resetAdvertised();
            peer.clear();
            taken = null;
          }
        }
        // Flush and compare the peer with desired.
        const last = out.pending();
        for (const g of last.announce) for (const p of g.prefixes) peer.set(ribKeyOf(p), g.attrs.med);
        for (const p of last.withdraw) peer.delete(ribKeyOf(p));
        out.markSent(last);
        for (const p of prefixes) {
          if (peer.get(ribKeyOf(p)) !== out.desiredOf(p)?.med) return false;
          if (out.advertisedOf(p) !== out.desiredOf(p)) return false;
        }
        if (out.hasPending()) return false;
        out.clear();
        return table.size === 0;
      }),
      { numRuns: 300 },
    );
  });
});
