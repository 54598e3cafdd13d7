// The IPv4 unicast routes of an UPDATE as the codec reads them (codec/update.ts): the classic fields and
// MP_REACH/MP_UNREACH (RFC 4760), MP_REACH's next hop as a number, other families left out.
import { describe, expect, it } from 'vitest';
import { ipv4UnicastRoutes, mpReachNextHop } from '../../../bgp/codec/index.js';
import { parseIpv4, parsePrefix } from '../../../bgp/ip.js';
import type { MpReach, PathAttributes } from '../../../bgp/types.js';

const P = parsePrefix;
const base: PathAttributes = { origin: 0, asPath: [{ type: 2, asns: [65001] }], nextHop: parseIpv4('198.18.0.1') };
const v4 = (nextHop: number[], nlri: string[]): MpReach => ({
  afi: 1,
  safi: 1,
  nextHop: Uint8Array.from(nextHop),
  nlri: nlri.map((p) => P(p)),
});

describe('mpReachNextHop', () => {
  const cases: Array<[string, MpReach, number | undefined]> = [
    ['IPv4 unicast, 4 bytes', v4([198, 18, 0, 2], []), parseIpv4('198.18.0.2')],
    ['above 2^31 stays unsigned', v4([200, 0, 0, 1], []), parseIpv4('200.0.0.1')],
    ['IPv4 unicast, 16 bytes', v4(new Array<number>(16).fill(1), []), undefined],
    ['IPv6 unicast', { afi: 2, safi: 1, nextHop: new Uint8Array(16), nlri: [] }, undefined],
  ];
  it.each(cases)('%s', (_name, mp, expected) => {
    expect(mpReachNextHop(mp)).toBe(expected);
  });
});

describe('ipv4UnicastRoutes', () => {
  it("withdrawn routes, then MP_UNREACH; the NLRI with the UPDATE's attributes, then MP_REACH with its next hop", () => {
    const update = {
      withdrawn: [P('10.0.1.0/24')],
      attributes: {
        ...base,
        mpReach: v4([198, 18, 0, 9], ['10.0.3.0/24']),
        mpUnreach: { afi: 1, safi: 1, withdrawn: [P('10.0.2.0/24')] },
      },
      nlri: [P('10.0.4.0/24')],
    };
    const routes = ipv4UnicastRoutes(update);
    expect(routes.withdrawn).toEqual([P('10.0.1.0/24'), P('10.0.2.0/24')]);
    expect(routes.announced).toEqual([
      { nlri: [P('10.0.4.0/24')], attributes: base },
      { nlri: [P('10.0.3.0/24')], attributes: { ...base, nextHop: parseIpv4('198.18.0.9') } },
    ]);
    for (const group of routes.announced) expect(group.attributes).not.toHaveProperty('mpReach');
    expect(update.withdrawn).toEqual([P('10.0.1.0/24')]); // the message is not changed
  });

  it('leaves other families out', () => {
    const routes = ipv4UnicastRoutes({
      withdrawn: [],
      attributes: {
        ...base,
        mpReach: { afi: 2, safi: 1, nextHop: new Uint8Array(16), nlri: [], raw: Uint8Array.of(0) },
        mpUnreach: { afi: 2, safi: 1, withdrawn: [], raw: Uint8Array.of(0) },
      },
      nlri: [],
    });
    expect(routes).toEqual({ withdrawn: [], announced: [] });
  });
});
