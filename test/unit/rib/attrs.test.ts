// Interning: one shared frozen object per distinct set, found by identity when already interned, released
// when the last reference goes.

import { describe, expect, it } from 'vitest';
import { AttrTable, attributesKey } from '../../../bgp/rib/attrs.js';
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
    const a = table.intern(attrs({ unknown: [{ flags: AttrFlag.OPTIONAL | AttrFlag.TRANSITIVE, type: 99, value: bytes }] }));
    expect(a.unknown?.[0]?.value).not.toBe(bytes);
    expect([...(a.unknown?.[0]?.value ?? [])]).toEqual([9, 9]);
  });
});
