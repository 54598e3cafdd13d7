// The Speaker with IPv6 unicast (RFC 4760, RFC 2545) on fake time: IPv6 routes received in MP_REACH_NLRI go
// through Adj-RIB-In, Loc-RIB and update groups to the peers that negotiated IPv6 — reflected (RFC 4456)
// with their next hop, to eBGP with ours — and never to a peer that did not; withdrawals in MP_UNREACH_NLRI;
// End-of-RIB per family; originated IPv6 blocks with our IPv6 next hop. The peers are raw Sessions.
import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../../bgp/clock.js';
import { ipv6UnicastRoutes } from '../../bgp/codec/index.js';
import { formatPrefix, parseIpv4, parsePrefix } from '../../bgp/ip.js';
import { formatIpv6, formatPrefix6, ipv6ToBytes, parseIpv6, parsePrefix6 } from '../../bgp/ip6.js';
import { IPV4_UNICAST, IPV6_UNICAST } from '../../bgp/negotiation.js';
import { Session } from '../../bgp/session.js';
import { Speaker, type PeerSpec } from '../../bgp/speaker.js';
import { MemoryNetwork } from '../../bgp/transport.js';
import { Origin, type PathAttributes } from '../../bgp/types.js';

const TORTIE = '127.0.0.1';
const TORTIE6 = 'fd00:51::1';
let cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

interface Peer {
  address: string;
  session: Session;
  v4: Map<string, PathAttributes>;
  v6: Map<string, PathAttributes>;
  endOfRibs: string[];
}

async function lab() {
  const net = new MemoryNetwork();
  const clock = new FakeClock(1_000_000);
  const speaker = new Speaker({
    routerId: parseIpv4(TORTIE),
    localAs: 64512,
    listen: { address: TORTIE, port: 179 },
    address6: TORTIE6,
    clock,
    transport: net.transport(TORTIE),
    acceptor: async (address, port, on) => {
      const close = net.listen(address, port, on);
      return async () => close();
    },
  });
  await speaker.start();
  cleanups.push(() => speaker.stop());
  const settle = (ms = 200) => clock.advanceAsync(ms);
  function peer(address: string, asn: number, ipv6: boolean): Peer {
    const session = new Session({
      localAs: asn,
      peerAs: 64512,
      routerId: parseIpv4(address),
      peerAddress: TORTIE,
      clock,
      transport: net.transport(address),
      families: ipv6 ? [IPV4_UNICAST, IPV6_UNICAST] : [IPV4_UNICAST],
    });
    const p: Peer = { address, session, v4: new Map(), v6: new Map(), endOfRibs: [] };
    session.on('update', (e) => {
      for (const w of e.withdrawn) p.v4.delete(formatPrefix(w));
      for (const a of e.announced) p.v4.set(formatPrefix(a.prefix), a.attrs);
      const v6 = ipv6UnicastRoutes(e.message);
      for (const key of v6.withdrawn) p.v6.delete(formatPrefix6(key));
      for (const g of v6.announced) for (const key of g.nlri) p.v6.set(formatPrefix6(key), g.attributes);
    });
    session.on('endOfRib', (e) => p.endOfRibs.push(`${e.afi}/${e.safi}`));
    cleanups.push(() => session.stop());
    return p;
  }
  return { speaker, settle, peer };
}

const spec = (p: Peer, asn: number, extra: Partial<PeerSpec> = {}): PeerSpec => ({
  address: p.address,
  peerAs: asn,
  passive: true,
  ...extra,
});

function announce6(p: Peer, prefix: string, nextHop: string, attrs: PathAttributes = {}): void {
  p.session.send({
    type: 2,
    withdrawn: [],
    attributes: {
      origin: Origin.IGP,
      asPath: [],
      ...attrs,
      mpReach: { afi: 2, safi: 1, nextHop: ipv6ToBytes(parseIpv6(nextHop)), nlri: [], nlri6: [parsePrefix6(prefix)] },
    },
    nlri: [],
  });
}

function withdraw6(p: Peer, prefix: string): void {
  p.session.send({
    type: 2,
    withdrawn: [],
    attributes: { mpUnreach: { afi: 2, safi: 1, withdrawn: [], withdrawn6: [parsePrefix6(prefix)] } },
    nlri: [],
  });
}

describe('Speaker: IPv6 unicast', () => {
  async function setup() {
    const l = await lab();
    const c1 = l.peer('127.0.0.11', 64512, true);
    const c2 = l.peer('127.0.0.12', 64512, true);
    const v4only = l.peer('127.0.0.13', 64512, false);
    const e1 = l.peer('127.0.0.31', 65001, true);
    l.speaker.setPeers([
      spec(c1, 64512, { rrClient: true, ipv6Unicast: true }),
      spec(c2, 64512, { rrClient: true, ipv6Unicast: true }),
      spec(v4only, 64512, { rrClient: true, ipv6Unicast: true }),
      spec(e1, 65001, { ipv6Unicast: true }),
    ]);
    for (const p of [c1, c2, v4only, e1]) p.session.start();
    await l.settle();
    for (const p of [c1, c2, v4only, e1]) expect(p.session.established).toBe(true);
    return { ...l, c1, c2, v4only, e1 };
  }

  it('End-of-RIB for each negotiated family after the initial table (RFC 4724 §2)', async () => {
    const { c1, v4only } = await setup();
    expect(c1.endOfRibs.sort()).toEqual(['1/1', '2/1']);
    expect(v4only.endOfRibs).toEqual(['1/1']);
  });

  it('reflects an IPv6 route to IPv6 clients with its next hop, to eBGP with ours, and not to an IPv4-only peer', async () => {
    const { speaker, c1, c2, v4only, e1, settle } = await setup();
    const changes: string[] = [];
    speaker.on('bestChanged6', (list) => {
      for (const c of list) changes.push(`${formatPrefix6(c.prefix)} ${c.best ? (c.best.nextHop ?? '-') : 'gone'}`);
    });
    announce6(c1, 'fd00:10:244::/122', 'fd00:51::11', { localPref: 100 });
    await settle();
    const toC2 = c2.v6.get('fd00:10:244::/122');
    expect(toC2 && formatIpv6(toC2.nextHop6!)).toBe('fd00:51::11'); // RFC 4456 §10: next hop kept
    expect(toC2?.originatorId).toBe(parseIpv4('127.0.0.11'));
    expect(toC2?.clusterList).toEqual([parseIpv4(TORTIE)]);
    expect(toC2?.nextHop).toBeUndefined(); // no IPv4 NEXT_HOP with IPv6 NLRI
    const toE1 = e1.v6.get('fd00:10:244::/122');
    expect(toE1 && formatIpv6(toE1.nextHop6!)).toBe(TORTIE6); // RFC 4271 §5.1.3: ours to eBGP
    expect(toE1?.asPath).toEqual([{ type: 2, asns: [64512] }]);
    expect(v4only.v6.size).toBe(0);
    expect(c1.v6.size).toBe(0); // never back to the sender
    expect(speaker.bestRoutes6().map((r) => `${r.text} ${r.nextHop} ${r.from}`)).toEqual([
      'fd00:10:244::/122 fd00:51::11 127.0.0.11',
    ]);
    expect(speaker.bestRoutes()).toEqual([]); // the IPv4 view has no IPv6 rows
    expect(changes).toEqual(['fd00:10:244::/122 fd00:51::11']);

    withdraw6(c1, 'fd00:10:244::/122');
    await settle();
    expect(c2.v6.size).toBe(0);
    expect(e1.v6.size).toBe(0);
    expect(speaker.bestRoutes6()).toEqual([]);
    expect(changes).toEqual(['fd00:10:244::/122 fd00:51::11', 'fd00:10:244::/122 gone']);
  });

  it('IPv4 and IPv6 routes side by side: each family reaches the peers that negotiated it', async () => {
    const { speaker, settle, c2, v4only, e1 } = await setup();
    speaker.setOriginated([
      { prefix: parsePrefix('10.244.1.0/26'), attrs: { origin: Origin.IGP } },
      { prefix: parsePrefix6('fd00:10:244:1::/122'), attrs: { origin: Origin.IGP } },
    ]);
    await settle();
    for (const p of [c2, e1]) {
      expect([...p.v4.keys()]).toEqual(['10.244.1.0/26']);
      expect([...p.v6.keys()]).toEqual(['fd00:10:244:1::/122']);
      expect(formatIpv6(p.v6.get('fd00:10:244:1::/122')!.nextHop6!)).toBe(TORTIE6);
    }
    expect([...v4only.v4.keys()]).toEqual(['10.244.1.0/26']);
    expect(v4only.v6.size).toBe(0);
    speaker.setOriginated([{ prefix: parsePrefix('10.244.1.0/26'), attrs: { origin: Origin.IGP } }]);
    await settle();
    expect(c2.v6.size).toBe(0);
    expect([...c2.v4.keys()]).toEqual(['10.244.1.0/26']);
  });

  it('an originated IPv6 route without a next hop is refused, naming the prefix', async () => {
    const l = await lab();
    const noAddress = new Speaker({ routerId: 1, localAs: 64512, listen: null });
    expect(() =>
      noAddress.setOriginated([{ prefix: parsePrefix6('fd00:1::/64'), attrs: { origin: Origin.IGP } }]),
    ).toThrow(/fd00:1::\/64 has no next hop/);
    expect(l.speaker.bestRoutes6()).toEqual([]);
  });
});
