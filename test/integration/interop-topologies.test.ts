// `tortie bgp speaker` in the two shapes a Calico cluster takes, against real daemons:
//   1. a 4-way iBGP full mesh (node-to-node mesh) with BIRD 2, FRR and GoBGP: every route is learned from
//      its originator only; tortie re-advertises nothing it learned over iBGP (RFC 4271 §9.2);
//   2. tortie between its iBGP "nodes" (BIRD 2, FRR) and an eBGP office router (BIRD 1.6 or FRR) with
//      next-hop=keep: the office learns every node's block with AS_PATH [64512] and the node's own next
//      hop; the office's route reaches the nodes with LOCAL_PREF 100, AS_PATH [65001], next hop unchanged;
//   3. three tortie nodes (the Speaker in this process, each told its subnet) and eBGP office routers
//      (BIRD 2, FRR) on node-1's subnet: they learn node-2's block, an iBGP route node-1 passes on, with
//      node-2's own next hop (RFC 4271 §5.1.3 (2), third party), node-3's (another subnet) with node-1's;
//      a BIRD 2 router beyond the subnet gets node-1's next hop for everything.
// Checked in each daemon's own CLI (PeerDaemon.routes(), every path with the neighbour it came from) and
// in tortie's update events and Loc-RIB.
//
// Why this is hard: a wrong re-advertisement does not break reachability in a mesh, it only adds a
// second path, so the tests count paths per prefix and name the neighbour of each, after giving a wrong
// one time to appear. Each peer is on its own 127.0.30.x (block 30); GoBGP is always the passive side (it
// waits ~5 s before connecting), and of every other pair exactly one side connects.

import { describe, expect, it } from 'vitest';
import { parseIpv4, parsePrefix } from '../../bgp/ip.js';
import { Speaker, type PeerSpec } from '../../bgp/speaker.js';
import { Origin } from '../../bgp/types.js';
import { addressBlock } from '../harness/addresses.js';
import { requirePeers } from '../harness/binaries.js';
import {
  startPeer,
  waitFor,
  waitForRoute,
  waitForSession,
  type NeighborOptions,
  type PeerDaemon,
  type PeerKind,
} from '../harness/index.js';
import { isState, isUpdate, SpeakerProcess, stopAfterEachTest } from './speaker-process.js';

const AS = 64512;
const OFFICE_AS = 65001;
const block = addressBlock(import.meta.url);
const B = block.block;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('interop: topologies', () => {
  const track = stopAfterEachTest();

  it('4-way iBGP full mesh with BIRD 2, FRR and GoBGP: every route from its originator only, nothing re-advertised', async (ctx) => {
    // Outside CI a missing daemon is a visible skip; in CI requirePeers throws (a failure).
    if (!requirePeers('bird2', 'frr', 'gobgp')) return ctx.skip();
    const tortie = {
      kind: 'tortie' as const,
      address: block.host(1),
      prefix: `10.244.${B}.0/26`,
      nextHop: `198.18.${B}.1`,
    };
    const daemonKinds: PeerKind[] = ['bird2', 'frr', 'gobgp'];
    const members = daemonKinds.map((kind, i) => ({
      kind,
      address: block.host(2 + i),
      prefix: `10.${B}.${2 + i}.0/26`,
      nextHop: `198.18.${B}.${2 + i}`,
    }));
    const all = [tortie, ...members];
    expect(members).toHaveLength(3);

    // Who connects: tortie to everyone; among the daemons the earlier in the list connects to the later
    // (so GoBGP, last, never connects).
    const daemons = new Map<string, PeerDaemon>();
    for (const [i, m] of members.entries()) {
      const neighbors: NeighborOptions[] = all
        .filter((o) => o !== m)
        .map((o) => ({
          address: o.address,
          as: AS,
          passive: o === tortie || members.indexOf(o as (typeof members)[number]) < i || m.kind === 'gobgp',
        }));
      daemons.set(
        m.address,
        track(
          await startPeer(m.kind, {
            address: m.address,
            as: AS,
            neighbors,
            announce: [{ prefix: m.prefix, nextHop: m.nextHop }],
          }),
        ),
      );
    }
    const speaker = track(
      SpeakerProcess.start([
        '--router-id',
        tortie.address,
        '--as',
        String(AS),
        '--connect-retry',
        '1',
        ...members.flatMap((m) => ['--peer', `${m.address},as=${AS}`]),
        '--announce',
        `${tortie.prefix},nexthop=${tortie.nextHop}`,
      ]),
    );
    for (const m of members)
      await speaker.waitForEvent(isState(m.address, 'Established'), { what: `Established with ${m.kind}` });
    for (const m of members) {
      for (const o of members) if (o !== m) await waitForSession(daemons.get(m.address)!, o.address);
    }

    // Everyone has everyone else's route...
    for (const m of members) {
      for (const o of all) if (o !== m) await waitForRoute(daemons.get(m.address)!, o.prefix);
    }
    await waitFor(
      async () => {
        const prefixes = new Set((await speaker.rib()).map((r) => r.prefix));
        return members.every((m) => prefixes.has(m.prefix)) || undefined;
      },
      { timeoutMs: 10_000, intervalMs: 200, what: "every member's prefix in tortie's Loc-RIB" },
    );
    // ...then time for a wrong re-advertisement to show up, and count the paths.
    await sleep(2000);
    for (const m of members) {
      const routes = await daemons.get(m.address)!.routes();
      for (const o of all) {
        if (o === m) continue;
        // RFC 4271 §9.2: a route learned from an internal peer is not advertised to other internal peers,
        // so the one path is the originator's, unchanged: empty AS_PATH, its next hop, no reflection attributes.
        const paths = routes
          .filter((r) => r.prefix === o.prefix)
          .map((r) => ({
            fromPeer: r.fromPeer,
            nextHop: r.nextHop,
            asPath: r.asPath,
            originatorId: r.originatorId,
            clusters: r.clusterList ?? [],
          }));
        expect({ at: m.kind, of: o.kind, paths }).toEqual({
          at: m.kind,
          of: o.kind,
          paths: [{ fromPeer: o.address, nextHop: o.nextHop, asPath: [], originatorId: undefined, clusters: [] }],
        });
      }
      // And nothing else: no prefix that nobody announced, none of its own coming back.
      expect(new Set(routes.map((r) => r.prefix))).toEqual(new Set(all.filter((o) => o !== m).map((o) => o.prefix)));
    }

    // tortie's side: each peer sent only its own prefix, and the Loc-RIB has each from its originator.
    const updates = speaker.events.filter(isUpdate);
    expect(updates.length).toBeGreaterThan(0);
    for (const u of updates) {
      const sender = members.find((m) => m.address === u.peer);
      expect({ peer: u.peer, announced: u.announce.map((r) => r.prefix) }).toEqual({
        peer: u.peer,
        announced: u.announce.length ? [sender?.prefix] : [],
      });
    }
    const rib = await speaker.rib();
    expect(
      rib
        .map((r) => ({ prefix: r.prefix, from: r.from, nextHop: r.nextHop, localPref: r.localPref }))
        .sort((a, b) => a.prefix.localeCompare(b.prefix)),
    ).toEqual(
      all
        .map((o) => ({
          prefix: o.prefix,
          from: o === tortie ? 'local' : o.address,
          nextHop: o.nextHop,
          localPref: o === tortie ? undefined : 100,
        }))
        .sort((a, b) => a.prefix.localeCompare(b.prefix)),
    );
  });

  for (const office of [
    { kind: 'bird1' as const, hosts: [11, 12, 13, 14] },
    { kind: 'frr' as const, hosts: [21, 22, 23, 24] },
  ]) {
    it(`between iBGP nodes (BIRD 2, FRR) and an eBGP office router (${office.kind}, next-hop=keep)`, async (ctx) => {
      if (!requirePeers('bird2', 'frr', office.kind)) return ctx.skip();
      const [t, n1, n2, o] = office.hosts as [number, number, number, number];
      const tortieIp = block.host(t);
      const officeIp = block.host(o);
      const tortiePrefix = `10.244.${B}.${(t % 4) * 64}/26`;
      const tortieNextHop = `198.18.${B}.${t}`;
      const nodes = (['bird2', 'frr'] as const).map((kind, i) => {
        const h = i === 0 ? n1 : n2;
        return { kind, address: block.host(h), prefix: `10.${B}.${h}.0/26`, nextHop: `198.18.${B}.${h}` };
      });
      const officePrefix = `10.${B + 100}.${o}.0/26`;
      const officeNextHop = `198.18.${B}.${o}`;

      const nodeDaemons = new Map<string, PeerDaemon>();
      for (const n of nodes) {
        nodeDaemons.set(
          n.address,
          track(
            await startPeer(n.kind, {
              address: n.address,
              as: AS,
              neighbors: [{ address: tortieIp, as: AS, passive: true }],
              announce: [{ prefix: n.prefix, nextHop: n.nextHop }],
            }),
          ),
        );
      }
      const router = track(
        await startPeer(office.kind, {
          address: officeIp,
          as: OFFICE_AS,
          neighbors: [{ address: tortieIp, as: AS, passive: true }],
          announce: [{ prefix: officePrefix, nextHop: officeNextHop }],
        }),
      );
      const speaker = track(
        SpeakerProcess.start([
          '--router-id',
          tortieIp,
          '--as',
          String(AS),
          '--connect-retry',
          '1',
          ...nodes.flatMap((n) => ['--peer', `${n.address},as=${AS}`]),
          '--peer',
          `${officeIp},as=${OFFICE_AS},next-hop=keep`,
          '--announce',
          `${tortiePrefix},nexthop=${tortieNextHop}`,
        ]),
      );
      for (const peer of [...nodes.map((n) => n.address), officeIp]) {
        await speaker.waitForEvent(isState(peer, 'Established'), { what: `Established with ${peer}` });
      }

      // The office router learns every block: the nodes' with their own next hops (next-hop=keep), tortie's
      // with the one it announces, all with AS_PATH [64512] (RFC 4271 §5.1.2: we prepend our AS to eBGP).
      const expected = [...nodes, { kind: 'tortie', address: tortieIp, prefix: tortiePrefix, nextHop: tortieNextHop }];
      for (const e of expected) {
        const route = await waitForRoute(router, e.prefix);
        expect({
          of: e.kind,
          nextHop: route.nextHop,
          asPath: route.asPath,
          fromPeer: route.fromPeer,
          originatorId: route.originatorId,
          clusters: route.clusterList ?? [],
        }).toEqual({
          of: e.kind,
          nextHop: e.nextHop,
          asPath: [AS],
          fromPeer: tortieIp,
          originatorId: undefined,
          clusters: [],
        });
      }

      // The office's route reaches every node: LOCAL_PREF 100 (RFC 4271 §5.1.5, added toward iBGP),
      // AS_PATH [65001], next hop unchanged (§5.1.3: not modified toward internal peers).
      for (const n of nodes) {
        const route = await waitForRoute(nodeDaemons.get(n.address)!, officePrefix);
        expect({
          at: n.kind,
          nextHop: route.nextHop,
          asPath: route.asPath,
          localPref: route.localPref,
          fromPeer: route.fromPeer,
        }).toEqual({
          at: n.kind,
          nextHop: officeNextHop,
          asPath: [OFFICE_AS],
          localPref: 100,
          fromPeer: tortieIp,
        });
      }

      // tortie is not a reflector here: one node never learns the other's block through it (§9.2), and the
      // office gets nothing but the three blocks.
      await sleep(1000);
      for (const n of nodes) {
        const prefixes = (await nodeDaemons.get(n.address)!.routes()).map((r) => r.prefix).sort();
        expect({ at: n.kind, prefixes }).toEqual({ at: n.kind, prefixes: [officePrefix, tortiePrefix].sort() });
      }
      const atOffice = (await router.routes()).map((r) => r.prefix).sort();
      expect(atOffice).toEqual(expected.map((e) => e.prefix).sort());
    });
  }

  it("third-party next hops: eBGP routers on node-1's subnet (BIRD 2, FRR) get node-2's block with node-2 as next hop, others node-1", async (ctx) => {
    if (!requirePeers('bird2', 'frr')) return ctx.skip();
    // node-1, node-2 and the routers "bird" and "frr" are on 127.0.B.32/27; node-3 and the router "far" are not.
    const subnet = `${block.host(41)}/27`;
    const nodes = [41, 42, 70].map((h, i) => ({
      name: `node-${i + 1}`,
      address: block.host(h),
      prefix: `10.244.${B}.${i * 64}/26`,
    }));
    const [node1, node2, node3] = nodes as [(typeof nodes)[number], (typeof nodes)[number], (typeof nodes)[number]];
    const routers = [
      { name: 'bird', kind: 'bird2' as const, address: block.host(45), onSubnet: true },
      { name: 'frr', kind: 'frr' as const, address: block.host(46), onSubnet: true },
      { name: 'far', kind: 'bird2' as const, address: block.host(75), onSubnet: false },
    ];
    const daemons = new Map<string, PeerDaemon>();
    for (const r of routers) {
      const daemon = track(
        await startPeer(r.kind, {
          address: r.address,
          as: OFFICE_AS,
          neighbors: [{ address: node1.address, as: AS, passive: true }],
        }),
      );
      // FRR refuses 127.x next hops as martian (harness README); these are the nodes' own addresses here.
      if (r.kind === 'frr') await daemon.cli(`configure terminal\nrouter bgp ${OFFICE_AS}\nbgp allow-martian-nexthop`);
      daemons.set(r.name, daemon);
    }
    // Each node originates its block with its own address as next hop, as the agent does.
    const speakers = new Map<string, Speaker>();
    const startNode = async (node: (typeof nodes)[number], peers: PeerSpec[]): Promise<Speaker> => {
      const speaker = track(
        new Speaker({
          routerId: parseIpv4(node.address),
          localAs: AS,
          listen: { address: node.address, port: 179 },
          connectRetryMs: 1000,
        }),
      );
      await speaker.start();
      speaker.setPeers(peers);
      speaker.setOriginated([
        { prefix: parsePrefix(node.prefix), attrs: { origin: Origin.IGP, nextHop: parseIpv4(node.address) } },
      ]);
      speakers.set(node.name, speaker);
      return speaker;
    };
    await startNode(node2, [{ address: node1.address, peerAs: AS, passive: true, subnet }]);
    await startNode(node3, [{ address: node1.address, peerAs: AS, passive: true, subnet: `${node3.address}/27` }]);
    const speaker1 = await startNode(node1, [
      { address: node2.address, peerAs: AS, subnet },
      { address: node3.address, peerAs: AS, subnet },
      ...routers.map((r) => ({ address: r.address, peerAs: OFFICE_AS, subnet })),
    ]);
    await waitFor(() => speaker1.peerStatus().every((p) => p.state === 'Established') || undefined, {
      timeoutMs: 20_000,
      intervalMs: 100,
      what: 'node-1 Established with node-2, node-3 and the three routers',
    }).catch((err: Error) => {
      throw new Error(
        `${err.message}: ${JSON.stringify(speaker1.peerStatus().map((p) => [p.address, p.state, p.lastError]))}`,
      );
    });

    // What each router's own CLI shows for the three blocks: one path each, from node-1, AS_PATH [64512].
    const expectedNextHop = (r: (typeof routers)[number], node: (typeof nodes)[number]): string =>
      r.onSubnet && node !== node3 ? node.address : node1.address;
    for (const r of routers) {
      const daemon = daemons.get(r.name)!;
      for (const node of nodes) await waitForRoute(daemon, node.prefix);
      await sleep(500); // time for a wrong second path or a changed next hop to show up
      const seen = (await daemon.routes())
        .filter((route) => nodes.some((n) => n.prefix === route.prefix))
        .map((route) => ({
          prefix: route.prefix,
          nextHop: route.nextHop,
          asPath: route.asPath,
          fromPeer: route.fromPeer,
        }))
        .sort((a, b) => a.prefix.localeCompare(b.prefix));
      expect({ router: r.name, seen }).toEqual({
        router: r.name,
        seen: nodes
          .map((node) => ({
            prefix: node.prefix,
            nextHop: expectedNextHop(r, node),
            asPath: [AS],
            fromPeer: node1.address,
          }))
          .sort((a, b) => a.prefix.localeCompare(b.prefix)),
      });
    }
    // The cases that differ from "our address to eBGP" are really there (the expectation is not all node-1).
    expect(routers.filter((r) => r.onSubnet).map((r) => expectedNextHop(r, node2))).toEqual([
      node2.address,
      node2.address,
    ]);

    // node-2's next hop leaves the subnet: the routers on it get node-1's address from then on.
    speakers
      .get('node-2')!
      .setOriginated([
        { prefix: parsePrefix(node2.prefix), attrs: { origin: Origin.IGP, nextHop: parseIpv4(`198.18.${B}.42`) } },
      ]);
    for (const r of routers) {
      const route = await waitForRoute(daemons.get(r.name)!, node2.prefix, (x) => x.nextHop === node1.address).catch(
        async (err: Error) => {
          throw new Error(
            `${r.name}: ${err.message}; it shows ${JSON.stringify((await daemons.get(r.name)!.routes()).filter((x) => x.prefix === node2.prefix))}`,
          );
        },
      );
      expect(route.asPath).toEqual([AS]);
    }
  });
});
