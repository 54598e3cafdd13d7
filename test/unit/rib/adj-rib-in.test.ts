// Adj-RIB-In: which prefixes an UPDATE changes, MP_REACH/MP_UNREACH for IPv4 unicast, graceful-restart
// stale marks, and attribute references.

import { describe, expect, it } from 'vitest';
import { parsePrefix } from '../../../bgp/ip.js';
import { AdjRibIn } from '../../../bgp/rib/adj-rib-in.js';
import { AttrTable } from '../../../bgp/rib/attrs.js';
import type { PathAttributes } from '../../../bgp/types.js';
import { attrs, ip, key, source } from './fixtures.js';

const P = (text: string) => parsePrefix(text);
const update = (nlri: string[], attributes: PathAttributes = attrs(), withdrawn: string[] = []) => ({
  nlri: nlri.map(P),
  withdrawn: withdrawn.map(P),
  attributes,
});

function rib() {
  const table = new AttrTable();
  return { table, ribIn: new AdjRibIn(source('10.0.0.2'), table) };
}

describe('AdjRibIn', () => {
  it('reports announced, replaced and withdrawn prefixes, and nothing for a repeat', () => {
    const { ribIn } = rib();
    expect(ribIn.apply(update(['10.244.1.0/26', '10.244.2.0/26']))).toEqual([
      key('10.244.1.0/26'),
      key('10.244.2.0/26'),
    ]);
    expect(ribIn.apply(update(['10.244.1.0/26']))).toEqual([]);
    expect(ribIn.apply(update(['10.244.1.0/26'], attrs({ med: 5 })))).toEqual([key('10.244.1.0/26')]);
    expect(ribIn.get(key('10.244.1.0/26'))?.attrs.med).toBe(5);
    expect(ribIn.apply(update([], {}, ['10.244.2.0/26', '10.244.9.0/26']))).toEqual([key('10.244.2.0/26')]);
    expect(ribIn.size).toBe(1);
  });

  it('shares one attribute object among the prefixes of an UPDATE', () => {
    const { ribIn, table } = rib();
    ribIn.apply(update(['10.244.1.0/26', '10.244.2.0/26', '10.244.3.0/26']));
    const a = ribIn.get(key('10.244.1.0/26'))?.attrs;
    expect(a).toBeDefined();
    expect(ribIn.get(key('10.244.3.0/26'))?.attrs).toBe(a);
    expect(table.size).toBe(1);
    expect(table.refCount(a!)).toBe(3);
  });

  it('a prefix both withdrawn and announced in one UPDATE ends up announced (withdrawals are applied first)', () => {
    const { ribIn } = rib();
    expect(ribIn.apply(update(['10.244.1.0/26'], attrs(), ['10.244.1.0/26']))).toEqual([key('10.244.1.0/26')]);
    expect(ribIn.get(key('10.244.1.0/26'))).toBeDefined();
  });

  it('takes IPv4 unicast NLRI and next hop from MP_REACH_NLRI, withdrawals from MP_UNREACH_NLRI', () => {
    const { ribIn } = rib();
    const mp = { afi: 1, safi: 1, nextHop: Uint8Array.of(198, 18, 0, 7), nlri: [P('10.244.5.0/26')] };
    expect(ribIn.apply({ nlri: [], withdrawn: [], attributes: { ...attrs(), mpReach: mp } })).toEqual([
      key('10.244.5.0/26'),
    ]);
    const route = ribIn.get(key('10.244.5.0/26'));
    expect(route?.attrs.nextHop).toBe(ip('198.18.0.7'));
    expect(route?.attrs).not.toHaveProperty('mpReach');
    const unreach = { afi: 1, safi: 1, withdrawn: [P('10.244.5.0/26')] };
    expect(ribIn.apply({ nlri: [], withdrawn: [], attributes: { mpUnreach: unreach } })).toEqual([
      key('10.244.5.0/26'),
    ]);
    // The same prefix in both NLRI fields (different next hops) is reported once; the MP_REACH one wins.
    const both = { afi: 1, safi: 1, nextHop: Uint8Array.of(198, 18, 0, 8), nlri: [P('10.244.7.0/26')] };
    expect(
      ribIn.apply({ nlri: [P('10.244.7.0/26')], withdrawn: [], attributes: { ...attrs(), mpReach: both } }),
    ).toEqual([key('10.244.7.0/26')]);
    expect(ribIn.get(key('10.244.7.0/26'))?.attrs.nextHop).toBe(ip('198.18.0.8'));
    // Other families are not ours to keep.
    const v6 = { afi: 2, safi: 1, nextHop: new Uint8Array(16), nlri: [P('10.244.6.0/26')] };
    expect(ribIn.apply({ nlri: [], withdrawn: [], attributes: { ...attrs(), mpReach: v6 } })).toEqual([]);
  });

  it('graceful restart: marks stale, a refresh clears the mark, the sweep removes the rest (RFC 4724 §4.2)', () => {
    const { ribIn, table } = rib();
    ribIn.apply(update(['10.244.1.0/26', '10.244.2.0/26', '10.244.3.0/26']));
    expect(ribIn.markStale()).toBe(3);
    expect([...ribIn.routes()].every((r) => r.stale)).toBe(true);
    expect(ribIn.apply(update(['10.244.1.0/26']))).toEqual([]);
    expect(ribIn.get(key('10.244.1.0/26'))?.stale).toBe(false);
    expect(ribIn.apply(update(['10.244.2.0/26'], attrs({ med: 1 })))).toEqual([key('10.244.2.0/26')]);
    expect(ribIn.sweepStale()).toEqual([key('10.244.3.0/26')]);
    expect(ribIn.size).toBe(2);
    expect(table.size).toBe(2);
  });

  it('a new session source replaces routes on re-announce', () => {
    const { ribIn } = rib();
    ribIn.apply(update(['10.244.1.0/26']));
    const restarted = source('10.0.0.2', { routerId: ip('9.9.9.9') });
    ribIn.setSource(restarted);
    expect(ribIn.apply(update(['10.244.1.0/26']))).toEqual([key('10.244.1.0/26')]);
    expect(ribIn.get(key('10.244.1.0/26'))?.source).toBe(restarted);
  });

  it('releases every attribute set when cleared', () => {
    const { ribIn, table } = rib();
    ribIn.apply(update(['10.244.1.0/26'], attrs({ med: 1 })));
    ribIn.apply(update(['10.244.2.0/26'], attrs({ med: 2 })));
    expect(table.size).toBe(2);
    expect(ribIn.clear().sort()).toEqual([key('10.244.1.0/26'), key('10.244.2.0/26')].sort());
    expect(table.size).toBe(0);
  });
});
