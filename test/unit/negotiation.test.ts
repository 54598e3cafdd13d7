// bgp/negotiation.ts as tables: the OPEN checks (RFC 4271 §6.2, RFC 6793, RFC 6286), what two OPENs agree on
// (families, 4-octet AS, route refresh, graceful restart), our own OPEN, and the collision rule (§6.8).
import { describe, expect, it } from 'vitest';
import { parseIpv4 } from '../../bgp/ip.js';
import {
  buildOpen,
  checkOpen,
  collisionSurvivor,
  collisionWinner,
  negotiateCapabilities,
  ourCapabilities,
  withRestartingBit,
} from '../../bgp/negotiation.js';
import type { Capability, OpenMessage } from '../../bgp/types.js';

const open = (over: Partial<OpenMessage>): OpenMessage => ({
  type: 1,
  version: 4,
  myAs: 65001,
  holdTime: 90,
  bgpId: parseIpv4('10.0.0.2'),
  capabilities: [],
  ...over,
});
const EBGP = { localAs: 65000, peerAs: 65001, routerId: parseIpv4('10.0.0.1') };
const IBGP = { localAs: 65000, peerAs: 65000, routerId: parseIpv4('10.0.0.1') };

describe('checkOpen', () => {
  const cases: Array<[string, OpenMessage, typeof EBGP, { code: number; subcode: number } | undefined]> = [
    ['a plain eBGP OPEN', open({}), EBGP, undefined],
    ['version 3', open({ version: 3 }), EBGP, { code: 2, subcode: 1 }],
    ['the wrong 2-octet AS', open({ myAs: 65009 }), EBGP, { code: 2, subcode: 2 }],
    [
      'AS_TRANS with the right 4-octet AS',
      open({ myAs: 23456, capabilities: [{ code: 65, asn: 4200000001 }] }),
      { ...EBGP, peerAs: 4200000001 },
      undefined,
    ],
    [
      'a 4-octet AS capability that disagrees',
      open({ capabilities: [{ code: 65, asn: 65009 }] }),
      EBGP,
      { code: 2, subcode: 2 },
    ],
    ['BGP identifier 0', open({ bgpId: 0 }), EBGP, { code: 2, subcode: 3 }],
    ['our own identifier on iBGP', open({ myAs: 65000, bgpId: IBGP.routerId }), IBGP, { code: 2, subcode: 3 }],
    ['our own identifier on eBGP (allowed, RFC 6286 §2.2)', open({ bgpId: EBGP.routerId }), EBGP, undefined],
    ['hold time 1', open({ holdTime: 1 }), EBGP, { code: 2, subcode: 6 }],
    ['hold time 0 (the FSM decides)', open({ holdTime: 0 }), EBGP, undefined],
    ['hold time 3', open({ holdTime: 3 }), EBGP, undefined],
  ];
  it.each(cases)('%s', (_name, message, local, expected) => {
    expect(cases.length).toBeGreaterThan(0);
    const error = checkOpen(message, local);
    if (expected === undefined) expect(error).toBeUndefined();
    else expect(error).toMatchObject(expected);
  });
});

describe('negotiateCapabilities', () => {
  const ours = ourCapabilities(65000, { restartTime: 120, forwardingState: true });
  const hold = { holdTime: 30, keepaliveTime: 10 };
  const gr: Capability = {
    code: 64,
    restarting: false,
    restartTime: 90,
    families: [{ afi: 1, safi: 1, forwardingState: true }],
  };
  const cases: Array<[string, readonly Capability[], Record<string, unknown>]> = [
    [
      'no capabilities: IPv4 unicast only, 2-octet AS, no refresh',
      [],
      {
        families: [{ afi: 1, safi: 1 }],
        fourOctetAs: false,
        routeRefresh: false,
        codec: { fourOctetAs: false, ebgp: true },
      },
    ],
    [
      '4-octet AS and route refresh',
      [{ code: 65, asn: 65001 }, { code: 2 }],
      { fourOctetAs: true, routeRefresh: true, enhancedRouteRefresh: false, codec: { fourOctetAs: true, ebgp: true } },
    ],
    [
      'enhanced route refresh alone counts as route refresh',
      [{ code: 70 }],
      { routeRefresh: true, enhancedRouteRefresh: false },
    ],
    ['IPv6 only: no family in common', [{ code: 1, afi: 2, safi: 1 }], { families: [] }],
    [
      'IPv4 and IPv6: IPv4 unicast in common',
      [
        { code: 1, afi: 2, safi: 1 },
        { code: 1, afi: 1, safi: 1 },
      ],
      { families: [{ afi: 1, safi: 1 }] },
    ],
    ['graceful restart from the peer is kept', [gr], { gracefulRestart: gr }],
  ];
  it.each(cases)('%s', (_name, theirs, expected) => {
    const n = negotiateCapabilities(ours, open({ capabilities: theirs }), EBGP, hold);
    expect(n).toMatchObject({
      holdTime: 30,
      keepaliveTime: 10,
      peerAs: 65001,
      peerBgpId: parseIpv4('10.0.0.2'),
      ebgp: true,
      peerCapabilities: theirs,
      ...expected,
    });
    if (!theirs.some((c) => c.code === 64)) expect(n.gracefulRestart).toBeUndefined();
  });

  it('iBGP: the codec context says so', () => {
    expect(negotiateCapabilities(ours, open({ myAs: 65000 }), IBGP, hold).codec).toEqual({
      fourOctetAs: false,
      ebgp: false,
    });
  });
});

describe('our OPEN', () => {
  it('offers IPv4 unicast, route refresh, the 4-octet AS, and graceful restart as configured', () => {
    expect(ourCapabilities(65000, undefined)).toEqual([
      { code: 1, afi: 1, safi: 1 },
      { code: 2 },
      { code: 65, asn: 65000 },
    ]);
    expect(ourCapabilities(65000, { restartTime: 120, forwardingState: true, restarting: true })[3]).toEqual({
      code: 64,
      restarting: true,
      restartTime: 120,
      families: [{ afi: 1, safi: 1, forwardingState: true }],
    });
    expect(ourCapabilities(65000, { restartTime: 120, helperOnly: true })[3]).toEqual({
      code: 64,
      restarting: false,
      restartTime: 120,
      families: [],
    });
  });

  it('puts AS_TRANS in the 2-octet field for an AS above 65535 (RFC 6793 §4.1)', () => {
    expect(buildOpen({ localAs: 65000, routerId: 7 }, 90, [])).toEqual({
      type: 1,
      version: 4,
      myAs: 65000,
      holdTime: 90,
      bgpId: 7,
      capabilities: [],
    });
    expect(buildOpen({ localAs: 4200000001, routerId: 7 }, 90, []).myAs).toBe(23456);
  });

  it('sets and clears the R bit, leaving the other capabilities alone', () => {
    const caps = ourCapabilities(65000, { restartTime: 120, restarting: true });
    const cleared = withRestartingBit(caps, false);
    expect(cleared[3]).toMatchObject({ code: 64, restarting: false, restartTime: 120 });
    expect(cleared.slice(0, 3)).toEqual(caps.slice(0, 3));
    expect(caps[3]).toMatchObject({ restarting: true }); // not changed in place
    expect(withRestartingBit(ourCapabilities(65000, undefined), true)).toEqual(ourCapabilities(65000, undefined));
  });
});

describe('connection collision (RFC 4271 §6.8)', () => {
  const low = parseIpv4('10.0.0.1');
  const high = parseIpv4('10.0.0.2');
  const top = parseIpv4('200.0.0.1'); // above 2^31: compared unsigned
  const survivors: Array<[number, number, 'outbound' | 'inbound']> = [
    [high, low, 'outbound'],
    [low, high, 'inbound'],
    [top, high, 'outbound'],
    [high, top, 'inbound'],
  ];
  it.each(survivors)('collisionSurvivor(%i, %i) keeps our %s connection', (local, remote, kept) => {
    expect(collisionSurvivor(local, remote)).toBe(kept);
  });

  const winners: Array<['inbound' | 'outbound' | undefined, number, number, 'existing' | 'challenger']> = [
    ['outbound', low, high, 'challenger'], // the peer's identifier is higher: its connection wins
    ['outbound', high, low, 'existing'],
    ['outbound', high, top, 'challenger'],
    ['outbound', low, low, 'existing'], // equal identifiers (eBGP only): the existing one stays
    ['inbound', low, high, 'existing'], // an accepted connection is not displaced by a newer inbound one
    [undefined, low, high, 'existing'],
  ];
  it.each(winners)('existing %s, local %i, remote %i: the %s session stays', (existing, local, remote, winner) => {
    expect(collisionWinner(existing, local, remote)).toBe(winner);
  });
});
