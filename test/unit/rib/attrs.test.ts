// Interning: one shared frozen object per distinct set, found by identity when already interned, released
// when the last reference goes.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AttrTable, attributesHash, attributesKey, sameAttributes } from '../../../bgp/rib/attrs.js';
import { AttrFlag, Origin } from '../../../bgp/types.js';
import type { PathAttributes } from '../../../bgp/types.js';
import { attrs, ip, seq } from './fixtures.js';

describe('AttrTable', () => {
  it('returns the same frozen object for equal sets built separately', () => {
    const table = new AttrTable();
    const a = table.intern(attrs({ asPath: [seq(65001, 65002)], communities: [1, 2], med: 5 }));
    const b = table.intern(attrs({ med: 5, communities: [1, 2], asPath: [seq(65001, 65002)] }));
    expect(b).toBe(a);
    expect(Object.isFrozen(a)).toBe(true);
    expect(Object.isFrozen(a.asPath)).toBe(true);
    expect(Object.isFrozen(a.asPath?.[0]?.asns)).toBe(true);
    expect(table.size).toBe(1);
    expect(table.refCount(a)).toBe(2);
  });

  it('keeps sets that differ in any attribute apart', () => {
    const variants: PathAttributes[] = [
      attrs(),
      attrs({ origin: Origin.EGP }),
      attrs({ asPath: [seq(1)] }),
      attrs({ nextHop: ip('198.18.0.2') }),
      attrs({ med: 0 }),
      attrs({ localPref: 100 }),
      attrs({ atomicAggregate: true }),
      attrs({ aggregator: { asn: 1, address: 2 } }),
      attrs({ communities: [1] }),
      attrs({ originatorId: 1 }),
      attrs({ clusterList: [1] }),
      attrs({ unknown: [{ flags: AttrFlag.OPTIONAL | AttrFlag.TRANSITIVE, type: 99, value: Uint8Array.of(1) }] }),
      attrs({ unknown: [{ flags: AttrFlag.OPTIONAL | AttrFlag.TRANSITIVE, type: 99, value: Uint8Array.of(2) }] }),
    ];
    expect(variants.length).toBeGreaterThan(10);
    const table = new AttrTable();
    const interned = variants.map((v) => table.intern(v));
    expect(new Set(interned).size).toBe(variants.length);
    expect(new Set(variants.map(attributesKey)).size).toBe(variants.length);
  });

  it('drops MP_REACH / MP_UNREACH, which describe an UPDATE, not a route', () => {
    const table = new AttrTable();
    const withMp = table.intern({ ...attrs(), mpUnreach: { afi: 1, safi: 1, withdrawn: [] } });
    expect(withMp).toBe(table.intern(attrs()));
    expect('mpUnreach' in withMp).toBe(false);
  });

  it('interning an interned set is an identity lookup that adds a reference', () => {
    const table = new AttrTable();
    const a = table.intern(attrs());
    expect(table.intern(a)).toBe(a);
    expect(table.refCount(a)).toBe(2);
  });

  it('releases a set when its last reference goes, and refuses an extra release', () => {
    const table = new AttrTable();
    const a = table.intern(attrs());
    table.retain(a, 2);
    table.release(a, 2);
    expect(table.has(a)).toBe(true);
    table.release(a);
    expect(table.has(a)).toBe(false);
    expect(table.size).toBe(0);
    expect(() => table.release(a)).toThrow(/not in the table/);
  });

  it('re-adopts a released canonical object instead of copying it again', () => {
    const table = new AttrTable();
    const a = table.intern(attrs({ med: 1 }));
    table.release(a);
    expect(table.intern(a)).toBe(a);
    const c = table.canonical(attrs({ med: 2 }));
    expect(table.has(c)).toBe(false);
    expect(table.intern(attrs({ med: 2 }))).not.toBe(undefined);
  });

  it('canonical() returns the live set when there is one, without taking a reference', () => {
    const table = new AttrTable();
    const a = table.intern(attrs({ med: 3 }));
    expect(table.canonical(attrs({ med: 3 }))).toBe(a);
    expect(table.refCount(a)).toBe(1);
    const pending = table.canonical(attrs({ med: 4 }));
    expect(table.intern(pending)).toBe(pending);
  });

  it('copies unknown attribute bytes so the receive buffer is not pinned', () => {
    const table = new AttrTable();
    const bytes = Uint8Array.of(9, 9);
    const a = table.intern(
      attrs({ unknown: [{ flags: AttrFlag.OPTIONAL | AttrFlag.TRANSITIVE, type: 99, value: bytes }] }),
    );
    expect(a.unknown?.[0]?.value).not.toBe(bytes);
    expect([...(a.unknown?.[0]?.value ?? [])]).toEqual([9, 9]);
  });

  it('adopts an owned object as the canonical set (frozen in place), and finds it for an equal set built later', () => {
    const table = new AttrTable();
    const bytes = Uint8Array.of(7);
    const owned: PathAttributes = attrs({
      asPath: [seq(65001)],
      communities: [5],
      unknown: [{ flags: AttrFlag.OPTIONAL | AttrFlag.TRANSITIVE, type: 99, value: bytes }],
    });
    const a = table.internOwned(owned);
    expect(a).toBe(owned);
    expect(
      Object.isFrozen(a) &&
        Object.isFrozen(a.asPath) &&
        Object.isFrozen(a.asPath?.[0]?.asns) &&
        Object.isFrozen(a.communities),
    ).toBe(true);
    expect(a.unknown?.[0]?.value).not.toBe(bytes);
    expect({ ...a }).toEqual(a); // the table's bookkeeping is invisible to spread and equality
    expect(
      table.internOwned(
        attrs({
          asPath: [seq(65001)],
          communities: [5],
          unknown: [{ flags: AttrFlag.OPTIONAL | AttrFlag.TRANSITIVE, type: 99, value: Uint8Array.of(7) }],
        }),
      ),
    ).toBe(a);
    expect(table.refCount(a)).toBe(2);
    // A spread copy of a canonical set is not mistaken for it.
    const copy = { ...a, med: 9 };
    expect(table.intern(copy)).not.toBe(a);
    // Another table never takes this table's object as its own.
    const other = new AttrTable();
    expect(other.intern(a)).not.toBe(a);
  });

  it('hash and equality agree with the canonical key (fast-check)', () => {
    const segment = fc.record({
      type: fc.constantFrom(1, 2),
      asns: fc.array(fc.constantFrom(1, 2, 65001, 4_200_000_000), { maxLength: 3 }),
    });
    const set = fc.record(
      {
        origin: fc.constantFrom(0, 1, 2),
        asPath: fc.array(segment, { maxLength: 2 }),
        nextHop: fc.constantFrom(1, 0xc6120001),
        med: fc.constantFrom(0, 1, 0xffffffff),
        localPref: fc.constantFrom(100, 200),
        atomicAggregate: fc.boolean(),
        aggregator: fc.record({ asn: fc.constantFrom(1, 2), address: fc.constantFrom(1, 2) }),
        communities: fc.array(fc.constantFrom(1, 0xffffff01), { maxLength: 2 }),
        originatorId: fc.constantFrom(1, 2),
        clusterList: fc.array(fc.constantFrom(1, 2), { maxLength: 2 }),
        unknown: fc.array(
          fc.record({
            flags: fc.constantFrom(0xc0, 0xe0),
            type: fc.constantFrom(99, 100),
            value: fc.uint8Array({ maxLength: 2 }),
          }),
          { maxLength: 1 },
        ),
      },
      { requiredKeys: [] },
    );
    let runs = 0;
    fc.assert(
      fc.property(set, set, (a, b) => {
        runs++;
        const sameKey = attributesKey(a) === attributesKey(b);
        expect(sameAttributes(a, b)).toBe(sameKey);
        expect(sameAttributes(a, { ...a })).toBe(true);
        if (sameKey) {
          expect(attributesHash(a)).toBe(attributesHash(b));
        }
        const hash = attributesHash(a);
        expect(Number.isInteger(hash) && hash >= 0 && hash < 2 ** 30).toBe(true);
      }),
      { numRuns: 2000 },
    );
    expect(runs).toBe(2000);
    // Equal sets built apart: same hash, same interned object.
    const table = new AttrTable();
    expect(table.intern(attrs({ asPath: [seq(1, 2)], med: 3 }))).toBe(
      table.intern(attrs({ med: 3, asPath: [seq(1, 2)] })),
    );
  });
});
