// The RIBs driven the way the speaker drives them (README.md of bgp/rib): a route reflector with two
// clients and an eBGP peer. Checks what each peer would be sent and that references all go back to zero.

import { describe, expect, it } from 'vitest';
import { formatIpv4, parsePrefix } from '../../../bgp/ip.js';
import { formatRibPrefix, type RibKey } from '../../../bgp/rib/prefix6.js';
import { AdjRibIn } from '../../../bgp/rib/adj-rib-in.js';
import { AdjRibOut } from '../../../bgp/rib/adj-rib-out.js';
import { AttrTable } from '../../../bgp/rib/attrs.js';
import { LocRib } from '../../../bgp/rib/loc-rib.js';
import { PeerExport, importRoute } from '../../../bgp/rib/policy.js';
import type { LocalSpeaker, PeerPolicy } from '../../../bgp/rib/policy.js';
import { Route, localSource } from '../../../bgp/rib/route.js';
import type { RouteSource } from '../../../bgp/rib/route.js';
import type { PathAttributes } from '../../../bgp/types.js';
import { LOCAL_AS, attrs, ip, seq, source } from './fixtures.js';

const LOCAL: LocalSpeaker = { asn: LOCAL_AS, routerId: ip('10.0.0.100'), address: ip('10.0.0.100') };

interface Peer {
  source: RouteSource;
  policy: PeerPolicy;
  ribIn: AdjRibIn;
  ribOut: AdjRibOut;
  exporter: PeerExport;
}

function speaker() {
  const table = new AttrTable();
  const locRib = new LocRib(table);
  const peers: Peer[] = [
    source('10.0.0.1', { rrClient: true }),
    source('10.0.0.2', { rrClient: true }),
    source('10.0.0.3', { ebgp: true, asn: 65001 }),
  ].map((s) => {
    const policy: PeerPolicy = { address: s.address, asn: s.asn, ebgp: s.ebgp, rrClient: s.rrClient };
    return {
      source: s,
      policy,
      ribIn: new AdjRibIn(s, table),
      ribOut: new AdjRibOut(table),
      exporter: new PeerExport(policy, LOCAL, table),
    };
  });
  const propagate = (key: RibKey) => {
    const best = locRib.best(key) ?? null;
    for (const q of peers) q.ribOut.setDesired(key, best && q.exporter.attributes(best));
  };
  const receive = (from: Peer, update: { nlri?: string[]; withdrawn?: string[]; attributes?: PathAttributes }) => {
    const changed = from.ribIn.apply({
      nlri: (update.nlri ?? []).map((p) => parsePrefix(p)),
      withdrawn: (update.withdrawn ?? []).map((p) => parsePrefix(p)),
      attributes: update.attributes ?? attrs(),
    });
    for (const key of changed) {
      const received = from.ribIn.get(key);
      const imported = received === undefined ? null : importRoute(received, from.policy, LOCAL, table);
      if (locRib.set(from.source, key, imported) !== null) propagate(key);
    }
  };
  const originate = (prefix: string) => {
    const key = parsePrefix(prefix).addr * 64 + parsePrefix(prefix).len;
    const own = localSource(LOCAL);
    const route = new Route(key, table.canonical(attrs({ nextHop: LOCAL.address })), own);
    if (locRib.set(own, key, route) !== null) propagate(key);
  };
  const sent = (q: Peer) => {
    const batch = q.ribOut.pending();
    q.ribOut.markSent(batch);
    return {
      announce: batch.announce.map((g) => ({
        prefixes: g.prefixes.map(formatRibPrefix),
        nextHop: formatIpv4(g.attrs.nextHop ?? 0),
        asPath: g.attrs.asPath?.flatMap((s) => s.asns),
        originatorId: g.attrs.originatorId === undefined ? undefined : formatIpv4(g.attrs.originatorId),
        clusterList: g.attrs.clusterList?.map(formatIpv4),
      })),
      withdraw: batch.withdraw.map(formatRibPrefix),
    };
  };
  return { table, locRib, peers, receive, originate, sent };
}

describe('RIB pipeline: a route reflector with two clients and an eBGP peer', () => {
  it('reflects, exports to eBGP, withdraws, and releases every attribute set at the end', () => {
    const { table, peers, receive, originate, sent, locRib } = speaker();
    const [a, b, e] = peers as [Peer, Peer, Peer];
    originate('10.244.0.0/26');
    // a learned its blocks from its own neighbour AS 65099.
    receive(a, {
      nlri: ['10.244.1.0/26', '10.244.2.0/26'],
      attributes: attrs({ asPath: [seq(65099)], nextHop: ip('10.0.0.1') }),
    });

    expect(sent(a)).toEqual({
      announce: [
        {
          prefixes: ['10.244.0.0/26'],
          nextHop: '10.0.0.100',
          asPath: [],
          originatorId: undefined,
          clusterList: undefined,
        },
      ],
      withdraw: [],
    });
    // Client b gets a's blocks reflected (next hop kept, RFC 4456 §8 attributes) and ours.
    expect(sent(b).announce).toEqual([
      {
        prefixes: ['10.244.0.0/26'],
        nextHop: '10.0.0.100',
        asPath: [],
        originatorId: undefined,
        clusterList: undefined,
      },
      {
        prefixes: ['10.244.1.0/26', '10.244.2.0/26'],
        nextHop: '10.0.0.1',
        asPath: [65099],
        originatorId: '10.0.0.1',
        clusterList: ['10.0.0.100'],
      },
    ]);
    // eBGP: our AS prepended, next hop ours, no reflection attributes.
    expect(sent(e).announce).toEqual([
      {
        prefixes: ['10.244.0.0/26'],
        nextHop: '10.0.0.100',
        asPath: [LOCAL_AS],
        originatorId: undefined,
        clusterList: undefined,
      },
      {
        prefixes: ['10.244.1.0/26', '10.244.2.0/26'],
        nextHop: '10.0.0.100',
        asPath: [LOCAL_AS, 65099],
        originatorId: undefined,
        clusterList: undefined,
      },
    ]);

    // The eBGP peer announces a block we also learned from a, same path length, another neighbour AS (so
    // MED is not compared): eBGP wins (RFC 4271 §9.1.2.2 (d)).
    receive(e, { nlri: ['10.244.1.0/26'], attributes: attrs({ asPath: [seq(65001)], nextHop: ip('192.0.2.1') }) });
    expect(locRib.best(parsePrefix('10.244.1.0/26').addr * 64 + 26)?.source).toBe(e.source);
    expect(sent(a).announce).toEqual([
      {
        prefixes: ['10.244.1.0/26'],
        nextHop: '192.0.2.1',
        asPath: [65001],
        originatorId: undefined,
        clusterList: undefined,
      },
    ]);
    // Not back to e, which now has nothing better to be told: a withdrawal of what it was sent before.
    expect(sent(e)).toEqual({ announce: [], withdraw: ['10.244.1.0/26'] });

    // a withdraws one block: b and e hear it, a does not.
    receive(a, { withdrawn: ['10.244.2.0/26'] });
    expect(sent(b).withdraw).toEqual(['10.244.2.0/26']);
    expect(sent(e).withdraw).toEqual(['10.244.2.0/26']);
    expect(sent(a)).toEqual({ announce: [], withdraw: [] });

    // A loop: e sends a route with our AS in its path; it is not used.
    receive(e, {
      nlri: ['10.244.9.0/26'],
      attributes: attrs({ asPath: [seq(65001, LOCAL_AS)], nextHop: ip('192.0.2.1') }),
    });
    expect(locRib.best(parsePrefix('10.244.9.0/26').addr * 64 + 26)).toBeUndefined();

    // Tear down everything: every reference is given back.
    for (const q of peers) {
      for (const key of q.ribIn.clear()) locRib.set(q.source, key, null);
      q.ribOut.clear();
    }
    locRib.removeSource(localSource(LOCAL));
    expect(locRib.size).toBe(0);
    expect(table.size).toBe(0);
  });
});
