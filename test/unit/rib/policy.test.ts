// Import checks (loops, own next hop, eBGP-only attributes), the route-reflection export matrix, attribute
// rewriting per peer type and next-hop mode, third-party next hops toward an eBGP peer one IP hop away,
// filters, and the export cache.

import { describe, expect, it } from 'vitest';
import { AttrTable } from '../../../bgp/rib/attrs.js';
import {
  PeerExport,
  WellKnownCommunity,
  exportAttributes,
  exportScope,
  importRejection,
  importRoute,
  importVerdict,
  isThirdPartyNextHop,
  prependAs,
} from '../../../bgp/rib/policy.js';
import type { LocalSpeaker, PeerPolicy, SharedSubnet } from '../../../bgp/rib/policy.js';
import { parsePrefix } from '../../../bgp/ip.js';
import { Route } from '../../../bgp/rib/route.js';
import type { RouteSource } from '../../../bgp/rib/route.js';
import { AsPathSegmentType, AttrFlag, Origin } from '../../../bgp/types.js';
import { LOCAL_AS, ip, route, seq, source } from './fixtures.js';

const LOCAL: LocalSpeaker = {
  asn: LOCAL_AS,
  routerId: ip('10.0.0.100'),
  address: ip('10.0.0.100'),
  clusterId: ip('1.0.0.1'),
};

const SOURCES: Record<string, RouteSource> = {
  client: source('10.0.0.1', { rrClient: true }),
  nonClient: source('10.0.0.2'),
  ebgp: source('10.0.0.3', { ebgp: true, asn: 65001 }),
  local: source('10.0.0.100', { local: true }),
};

function peerOf(from: RouteSource, overrides: Partial<PeerPolicy> = {}): PeerPolicy {
  return { address: from.address, asn: from.asn, ebgp: from.ebgp, rrClient: from.rrClient, ...overrides };
}

const PEERS: Record<string, PeerPolicy> = {
  client: peerOf(source('10.0.0.11', { rrClient: true })),
  nonClient: peerOf(source('10.0.0.12')),
  ebgp: peerOf(source('10.0.0.13', { ebgp: true, asn: 65002 })),
};

// RFC 4456 §6 and RFC 4271 §9.2: from × to → scope.
const MATRIX: [from: string, to: string, scope: 'none' | 'plain' | 'reflected'][] = [
  ['client', 'client', 'reflected'],
  ['client', 'nonClient', 'reflected'],
  ['client', 'ebgp', 'plain'],
  ['nonClient', 'client', 'reflected'],
  ['nonClient', 'nonClient', 'none'],
  ['nonClient', 'ebgp', 'plain'],
  ['ebgp', 'client', 'plain'],
  ['ebgp', 'nonClient', 'plain'],
  ['ebgp', 'ebgp', 'plain'],
  ['local', 'client', 'plain'],
  ['local', 'nonClient', 'plain'],
  ['local', 'ebgp', 'plain'],
];

function learned(from: RouteSource): Route {
  const path = from.local ? [] : from.ebgp ? [seq(from.asn)] : [seq(65009)];
  return route(from, { asPath: path, nextHop: ip('198.18.0.9'), med: 7, ...(from.ebgp ? {} : { localPref: 150 }) });
}

describe('export scope: the route-reflection matrix', () => {
  it('covers every source kind × every peer kind', () => {
    expect(MATRIX).toHaveLength(Object.keys(SOURCES).length * Object.keys(PEERS).length);
  });

  it.each(MATRIX)('%s → %s: %s', (from, to, scope) => {
    const src = SOURCES[from]!;
    const peer = PEERS[to]!;
    expect(exportScope(src, peer)).toBe(scope);
    const out = exportAttributes(learned(src), peer, LOCAL);
    expect(out === null).toBe(scope === 'none');
    if (out === null) return;
    if (scope === 'reflected') {
      // RFC 4456 §8: ORIGINATOR_ID from the source's router id, our cluster id prepended; next hop kept.
      expect(out.originatorId).toBe(src.routerId);
      expect(out.clusterList).toEqual([LOCAL.clusterId]);
      expect(out.nextHop).toBe(ip('198.18.0.9'));
    } else {
      expect(out.originatorId).toBeUndefined();
      expect(out.clusterList).toBeUndefined();
    }
  });

  it('never sends a route back to the peer it came from', () => {
    for (const from of [SOURCES.client!, SOURCES.ebgp!]) {
      expect(exportAttributes(learned(from), peerOf(from), LOCAL)).toBeNull();
    }
  });

  it('keeps an existing ORIGINATOR_ID and prepends to an existing CLUSTER_LIST', () => {
    const r = route(SOURCES.client!, { originatorId: ip('9.9.9.9'), clusterList: [ip('2.0.0.2')] });
    const out = exportAttributes(r, PEERS.nonClient!, LOCAL);
    expect(out?.originatorId).toBe(ip('9.9.9.9'));
    expect(out?.clusterList).toEqual([LOCAL.clusterId, ip('2.0.0.2')]);
  });

  it('the cluster id defaults to the router id', () => {
    const { clusterId: _c, ...noCluster } = LOCAL;
    expect(exportAttributes(learned(SOURCES.client!), PEERS.client!, noCluster)?.clusterList).toEqual([LOCAL.routerId]);
  });
});

describe('export attribute rewriting', () => {
  it('eBGP: prepends our AS, next hop ours, drops LOCAL_PREF, ORIGINATOR_ID, CLUSTER_LIST and a learned MED', () => {
    const r = route(SOURCES.client!, {
      asPath: [seq(65009, 65010)],
      nextHop: ip('198.18.0.9'),
      med: 7,
      localPref: 300,
      originatorId: 5,
      clusterList: [6],
      communities: [100],
      origin: Origin.EGP,
    });
    expect(exportAttributes(r, PEERS.ebgp!, LOCAL)).toEqual({
      origin: Origin.EGP,
      asPath: [seq(LOCAL_AS, 65009, 65010)],
      nextHop: LOCAL.address,
      communities: [100],
    });
  });

  it('eBGP: a locally originated route gets a path of our AS alone and keeps the MED we set', () => {
    const r = route(SOURCES.local!, { asPath: [], nextHop: LOCAL.address, med: 3 });
    expect(exportAttributes(r, PEERS.ebgp!, LOCAL)).toEqual({
      origin: Origin.IGP,
      asPath: [seq(LOCAL_AS)],
      nextHop: LOCAL.address,
      med: 3,
    });
  });

  it('eBGP with nextHop keep leaves the next hop alone', () => {
    const out = exportAttributes(learned(SOURCES.ebgp!), { ...PEERS.ebgp!, nextHop: 'keep' }, LOCAL);
    expect(out?.nextHop).toBe(ip('198.18.0.9'));
  });

  it('iBGP: LOCAL_PREF is always present (default 100), AS_PATH and MED unchanged', () => {
    const fromEbgp = exportAttributes(learned(SOURCES.ebgp!), PEERS.nonClient!, LOCAL);
    expect(fromEbgp).toEqual({
      origin: Origin.IGP,
      asPath: [seq(65001)],
      nextHop: ip('198.18.0.9'),
      med: 7,
      localPref: 100,
    });
    const reflected = exportAttributes(learned(SOURCES.client!), PEERS.nonClient!, LOCAL);
    expect(reflected?.localPref).toBe(150);
  });

  it.each([
    ['auto', 'ebgp', '198.18.0.9'],
    ['auto', 'client', '198.18.0.9'],
    ['self', 'ebgp', '10.0.0.100'],
    ['self', 'client', '10.0.0.100'],
    ['keep', 'nonClient', '198.18.0.9'],
  ] as const)('nextHop %s for a route from %s to an iBGP client → %s', (mode, from, expected) => {
    const out = exportAttributes(learned(SOURCES[from]!), { ...PEERS.client!, nextHop: mode }, LOCAL);
    expect(out?.nextHop).toBe(ip(expected));
  });

  it('a local route without a next hop gets ours towards iBGP', () => {
    const r = route(SOURCES.local!, { nextHop: undefined });
    expect(exportAttributes(r, PEERS.nonClient!, LOCAL)?.nextHop).toBe(LOCAL.address);
  });

  it('unknown transitive attributes go on with Partial set; unknown non-transitive ones stop (RFC 4271 §5)', () => {
    const transitive = { flags: AttrFlag.OPTIONAL | AttrFlag.TRANSITIVE, type: 99, value: Uint8Array.of(1) };
    const nonTransitive = { flags: AttrFlag.OPTIONAL, type: 98, value: Uint8Array.of(2) };
    const r = route(SOURCES.ebgp!, { asPath: [seq(65001)], unknown: [transitive, nonTransitive] });
    for (const peer of [PEERS.ebgp!, PEERS.client!]) {
      const out = exportAttributes(r, peer, LOCAL);
      expect(out?.unknown).toHaveLength(1);
      expect(out?.unknown?.[0]?.type).toBe(99);
      expect(out?.unknown?.[0]?.flags).toBe(AttrFlag.OPTIONAL | AttrFlag.TRANSITIVE | AttrFlag.PARTIAL);
    }
  });

  it('honours NO_ADVERTISE and NO_EXPORT (RFC 1997)', () => {
    const noAdvertise = route(SOURCES.ebgp!, { asPath: [seq(65001)], communities: [WellKnownCommunity.NO_ADVERTISE] });
    expect(exportAttributes(noAdvertise, PEERS.client!, LOCAL)).toBeNull();
    const noExport = route(SOURCES.ebgp!, { asPath: [seq(65001)], communities: [WellKnownCommunity.NO_EXPORT] });
    expect(exportAttributes(noExport, PEERS.ebgp!, LOCAL)).toBeNull();
    expect(exportAttributes(noExport, PEERS.client!, LOCAL)).not.toBeNull();
  });

  it('prepends into a new segment when the first is full or not a sequence, and drops confed segments', () => {
    const full = { type: AsPathSegmentType.AS_SEQUENCE, asns: Array.from({ length: 255 }, (_, i) => i + 1) };
    expect(prependAs([full], 7)[0]).toEqual(seq(7));
    expect(prependAs([{ type: AsPathSegmentType.AS_SET, asns: [1, 2] }], 7)).toHaveLength(2);
    expect(prependAs([{ type: AsPathSegmentType.AS_CONFED_SEQUENCE, asns: [9] }, seq(1)], 7)).toEqual([seq(7, 1)]);
  });

  it('runs the export filter first: it can drop a route or change its attributes', () => {
    const table = new AttrTable();
    const r = learned(SOURCES.ebgp!);
    const drop: PeerPolicy = { ...PEERS.client!, exportFilter: () => null };
    expect(exportAttributes(r, drop, LOCAL)).toBeNull();
    const tag: PeerPolicy = {
      ...PEERS.client!,
      exportFilter: (x) => new Route(x.key, table.canonical({ ...x.attrs, communities: [42] }), x.source),
    };
    expect(exportAttributes(r, tag, LOCAL)?.communities).toEqual([42]);
  });
});

describe('third-party NEXT_HOP toward an eBGP peer one IP hop away (RFC 4271 §5.1.3 (2))', () => {
  // We are 10.0.0.100 on 10.0.0.0/25; the external peer 10.0.0.13 is on it too (PEERS.ebgp).
  const SHARED: SharedSubnet = { prefix: parsePrefix('10.0.0.0/25'), peerAddress: ip('10.0.0.13') };
  const onLink = (overrides: Partial<PeerPolicy> = {}): PeerPolicy => ({
    ...PEERS.ebgp!,
    sharedSubnet: SHARED,
    ...overrides,
  });

  it.each([
    // [what, source, route NEXT_HOP, peer's next-hop mode, NEXT_HOP the peer gets]
    ['an iBGP route from the node on the subnet', 'nonClient', '10.0.0.2', 'auto', '10.0.0.2'],
    ['a client route from the node on the subnet', 'client', '10.0.0.1', 'auto', '10.0.0.1'],
    ['the last address of the subnet', 'nonClient', '10.0.0.127', 'auto', '10.0.0.127'],
    ['the first address after the subnet', 'nonClient', '10.0.0.128', 'auto', '10.0.0.100'],
    ['a next hop on another network', 'nonClient', '198.18.0.9', 'auto', '10.0.0.100'],
    ["the peer's own address", 'nonClient', '10.0.0.13', 'auto', '10.0.0.100'],
    ['an eBGP route from a router on the subnet', 'ebgp', '10.0.0.3', 'auto', '10.0.0.3'],
    ['an eBGP route with a next hop elsewhere', 'ebgp', '198.18.0.9', 'auto', '10.0.0.100'],
    ['nextHop self', 'nonClient', '10.0.0.2', 'self', '10.0.0.100'],
    ['nextHop keep, next hop elsewhere', 'nonClient', '198.18.0.9', 'keep', '198.18.0.9'],
    ['a route we originate with a next hop set elsewhere', 'local', '198.18.0.9', 'auto', '198.18.0.9'],
    ['a route we originate with our own next hop', 'local', '10.0.0.100', 'auto', '10.0.0.100'],
  ] as const)('%s (%s, NEXT_HOP %s, %s) → %s', (_what, from, nextHop, mode, expected) => {
    const r = route(SOURCES[from]!, { asPath: from === 'ebgp' ? [seq(65001)] : [], nextHop: ip(nextHop) });
    const out = exportAttributes(r, onLink({ nextHop: mode }), LOCAL);
    expect(out?.nextHop).toBe(ip(expected));
    // Everything else is the eBGP rewrite as without a shared subnet.
    const { nextHop: _a, ...rest } = out!;
    const { nextHop: _b, ...plain } = exportAttributes(r, { ...PEERS.ebgp!, nextHop: mode }, LOCAL)!;
    expect(rest).toEqual(plain);
  });

  it('without a shared subnet (a peer on another network, or multihop) an iBGP route gets our address, as before', () => {
    const r = route(SOURCES.nonClient!, { nextHop: ip('10.0.0.2') });
    expect(exportAttributes(r, PEERS.ebgp!, LOCAL)?.nextHop).toBe(LOCAL.address);
  });

  it('changes nothing toward iBGP peers', () => {
    for (const nextHop of ['10.0.0.2', '198.18.0.9']) {
      const r = route(SOURCES.ebgp!, { asPath: [seq(65001)], nextHop: ip(nextHop) });
      const peer = PEERS.nonClient!;
      expect(exportAttributes(r, { ...peer, sharedSubnet: { ...SHARED, peerAddress: peer.address } }, LOCAL)).toEqual(
        exportAttributes(r, peer, LOCAL),
      );
    }
  });

  it("the peer's own address is checked from sharedSubnet, so a group's exporter (peer address -1) gets it right", () => {
    const table = new AttrTable();
    const exporter = new PeerExport({ ...onLink(), address: -1 }, LOCAL, table);
    expect(exporter.attributes(route(SOURCES.nonClient!, { nextHop: ip('10.0.0.13') }))?.nextHop).toBe(LOCAL.address);
    expect(exporter.attributes(route(SOURCES.nonClient!, { nextHop: ip('10.0.0.14') }))?.nextHop).toBe(ip('10.0.0.14'));
  });

  it('isThirdPartyNextHop: inside the subnet and not the peer; nothing without a next hop or a subnet', () => {
    expect(isThirdPartyNextHop(ip('10.0.0.2'), SHARED)).toBe(true);
    expect(isThirdPartyNextHop(ip('10.0.0.13'), SHARED)).toBe(false);
    expect(isThirdPartyNextHop(ip('10.0.1.2'), SHARED)).toBe(false);
    expect(isThirdPartyNextHop(undefined, SHARED)).toBe(false);
    expect(isThirdPartyNextHop(ip('10.0.0.2'), undefined)).toBe(false);
  });
});

describe('PeerExport cache', () => {
  it('gives the same answers as exportAttributes, as one canonical object per (set, source)', () => {
    const table = new AttrTable();
    const routes = [...Object.values(SOURCES)].map(learned);
    expect(routes.length).toBeGreaterThan(0);
    for (const peer of Object.values(PEERS)) {
      const exporter = new PeerExport(peer, LOCAL, table);
      for (const r of routes) {
        const first = exporter.attributes(r);
        expect(first).toEqual(exportAttributes(r, peer, LOCAL));
        const again = exporter.attributes(new Route((r.key as number) + 64, r.attrs, r.source));
        expect(again).toBe(first);
      }
    }
  });
});

describe('import', () => {
  it.each([
    ['our AS in the AS_PATH', { asPath: [seq(65001, LOCAL_AS)] }, 0, /AS_PATH contains our AS 64512 1 time/],
    [
      'our AS twice with one allowed',
      { asPath: [seq(LOCAL_AS, 65001, LOCAL_AS)] },
      1,
      /2 time\(s\), more than the 1 allowed/,
    ],
    ['our router id as ORIGINATOR_ID (RFC 4456 §8)', { originatorId: LOCAL.routerId }, 0, /ORIGINATOR_ID/],
    ['our cluster id in the CLUSTER_LIST (RFC 4456 §8)', { clusterList: [7, LOCAL.clusterId!] }, 0, /CLUSTER_LIST/],
    ['our own address as NEXT_HOP', { nextHop: LOCAL.address }, 0, /NEXT_HOP/],
  ] as const)('rejects %s', (_name, overrides, allow, reason) => {
    const r = route(SOURCES.nonClient!, overrides);
    expect(importRejection(r.attrs, LOCAL, allow)).toMatch(reason);
    expect(importRoute(r, peerOf(SOURCES.nonClient!, { allowOwnAs: allow }), LOCAL, new AttrTable())).toBeNull();
  });

  it('accepts our AS as often as allowOwnAs permits', () => {
    const r = route(SOURCES.nonClient!, { asPath: [seq(LOCAL_AS, 65001)] });
    expect(importRejection(r.attrs, LOCAL, 1)).toBeNull();
    expect(importRoute(r, peerOf(SOURCES.nonClient!, { allowOwnAs: 1 }), LOCAL, new AttrTable())).toBe(r);
  });

  it('strips LOCAL_PREF, ORIGINATOR_ID and CLUSTER_LIST from eBGP routes (RFC 7606 §7.5, §7.9, §7.10)', () => {
    const table = new AttrTable();
    const r = route(SOURCES.ebgp!, { asPath: [seq(65001)], localPref: 500, originatorId: 3, clusterList: [4] });
    const imported = importRoute(r, peerOf(SOURCES.ebgp!), LOCAL, table);
    expect(imported).not.toBe(r);
    expect(imported?.attrs.localPref).toBeUndefined();
    expect(imported?.attrs.originatorId).toBeUndefined();
    expect(imported?.attrs.clusterList).toBeUndefined();
    expect(imported?.attrs.asPath).toEqual([seq(65001)]);
    // iBGP keeps them.
    const ibgp = route(SOURCES.nonClient!, { localPref: 500 });
    expect(importRoute(ibgp, peerOf(SOURCES.nonClient!), LOCAL, table)).toBe(ibgp);
  });

  it('runs the import filter after the RFC checks', () => {
    const seen: Route[] = [];
    const peer = peerOf(SOURCES.nonClient!, {
      importFilter: (x) => {
        seen.push(x);
        return x.attrs.med === 1 ? null : x;
      },
    });
    expect(importRoute(route(SOURCES.nonClient!, { med: 1 }), peer, LOCAL, new AttrTable())).toBeNull();
    expect(importRoute(route(SOURCES.nonClient!, { med: 2 }), peer, LOCAL, new AttrTable())).not.toBeNull();
    expect(importRoute(route(SOURCES.nonClient!, { nextHop: LOCAL.address }), peer, LOCAL, new AttrTable())).toBeNull();
    expect(seen).toHaveLength(2);
  });

  it("keeps an import filter's refusal and its reason, and makes attributes it changed canonical", () => {
    const table = new AttrTable();
    const peer = peerOf(SOURCES.nonClient!, {
      importFilter: (x) =>
        x.attrs.med === 1
          ? { refused: 'filter f importV4[0]' }
          : new Route(x.key, { ...x.attrs, communities: [7] } as Route['attrs'], x.source, x.stale),
    });
    expect(importVerdict(route(SOURCES.nonClient!, { med: 1 }), peer, LOCAL, table)).toEqual({
      refused: 'filter f importV4[0]',
    });
    expect(importRoute(route(SOURCES.nonClient!, { med: 1 }), peer, LOCAL, table)).toBeNull();
    const a = importVerdict(route(SOURCES.nonClient!, { med: 2 }), peer, LOCAL, table) as Route;
    expect(a.attrs.communities).toEqual([7]);
    // A canonical set of the table: interning it adopts that object, and equal attributes then find it.
    expect(table.intern(a.attrs)).toBe(a.attrs);
    expect((importVerdict(route(SOURCES.nonClient!, { med: 2 }), peer, LOCAL, table) as Route).attrs).toBe(a.attrs);
  });
});
