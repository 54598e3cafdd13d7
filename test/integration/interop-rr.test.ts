// Route reflection (RFC 4456) between `tortie bgp speaker` and real BIRD 1.6, BIRD 2, FRR and GoBGP:
//   1. tortie as the reflector of four real clients;
//   2. tortie as a client of a BIRD 2 reflector and of an FRR reflector;
//   3. loop prevention: a real reflector hands tortie routes whose ORIGINATOR_ID is tortie's own BGP
//      identifier, or whose CLUSTER_LIST holds tortie's cluster id — tortie must never install them.
// Every attribute is checked where a person would look: in each daemon's own CLI (PeerDaemon.routes())
// and in tortie's Loc-RIB (the `rib` stdin command).
//
// Why this is hard: a looped route only counts if a real reflector sends it, and reflectors differ: BIRD 2
// did not send a client's route back to that client in our runs, FRR 8.4 does (with ORIGINATOR_ID = that client). So
// the tests use FRR for "our own route comes back", give a BIRD 2 reflector's other client tortie's router
// id for "someone else's route carries our ORIGINATOR_ID", and check on the wire (tortie's update events)
// that the looped route really arrived before asserting it is absent from the Loc-RIB. Each peer is on its
// own 127.0.25.x (block 25); daemons are mostly passive so tortie opens the connections (no collisions,
// no GoBGP connect delay).

import { describe, expect, it } from 'vitest';
import { addressBlock } from '../harness/addresses.js';
import { requirePeers } from '../harness/binaries.js';
import {
  startPeer,
  waitFor,
  waitForNoRoute,
  waitForRoute,
  waitForSession,
  type PeerDaemon,
  type PeerKind,
} from '../harness/index.js';
import {
  isState,
  isUpdate,
  type RibRoute,
  SpeakerProcess,
  stopAfterEachTest,
  type UpdateEvent,
} from './speaker-process.js';

const AS = 64512;
const block = addressBlock(import.meta.url);
const B = block.block;

/** Polls tortie's Loc-RIB until `match` finds a route, bounded. */
async function waitForRibRoute(
  speaker: SpeakerProcess,
  match: (r: RibRoute) => boolean,
  what: string,
  timeoutMs = 15_000,
): Promise<RibRoute> {
  return waitFor(async () => (await speaker.rib()).find(match), {
    timeoutMs,
    intervalMs: 200,
    what: `tortie Loc-RIB: ${what}`,
  });
}

describe('interop: route reflection', () => {
  const track = stopAfterEachTest();

  it('tortie reflects between BIRD 1.6, BIRD 2, FRR and GoBGP clients: ORIGINATOR_ID, CLUSTER_LIST, next hop kept; withdrawals reach everyone', async (ctx) => {
    const kinds: PeerKind[] = ['bird1', 'bird2', 'frr', 'gobgp'];
    // Outside CI a missing daemon is a visible skip; in CI requirePeers throws (a failure).
    if (!requirePeers(...kinds)) return ctx.skip();
    const tortieIp = block.host(1);
    const clusterId = '244.0.0.1';
    const clients = kinds.map((kind, i) => ({
      kind,
      address: block.host(2 + i),
      routerId: `10.${B}.0.${2 + i}`,
      prefix: `10.${B}.${2 + i}.0/26`,
      nextHop: `198.18.${B}.${2 + i}`,
    }));
    expect(clients).toHaveLength(4);

    const daemons = new Map<string, PeerDaemon>();
    for (const c of clients) {
      daemons.set(
        c.address,
        track(
          await startPeer(c.kind, {
            address: c.address,
            as: AS,
            routerId: c.routerId,
            neighbors: [{ address: tortieIp, as: AS, passive: true }],
            announce: [{ prefix: c.prefix, nextHop: c.nextHop }],
          }),
        ),
      );
    }
    const ownPrefix = `10.244.${B}.0/26`;
    const speaker = track(
      SpeakerProcess.start([
        '--router-id',
        tortieIp,
        '--as',
        String(AS),
        '--connect-retry',
        '1',
        '--cluster-id',
        clusterId,
        ...clients.flatMap((c) => ['--peer', `${c.address},as=${AS},rr-client`]),
        '--announce',
        `${ownPrefix},nexthop=198.18.${B}.1`,
      ]),
    );
    for (const c of clients)
      await speaker.waitForEvent(isState(c.address, 'Established'), { what: `Established with ${c.kind}` });

    // Every client sees every other client's route, reflected: RFC 4456 §8 ORIGINATOR_ID = the originating
    // client's BGP identifier, CLUSTER_LIST = [our cluster id]; the next hop is the originator's (§10: a
    // reflector must not change it); iBGP: empty AS_PATH, LOCAL_PREF 100.
    for (const c of clients) {
      const daemon = daemons.get(c.address)!;
      for (const o of clients) {
        if (o === c) continue;
        const route = await waitForRoute(daemon, o.prefix);
        expect({
          at: c.kind,
          prefix: route.prefix,
          nextHop: route.nextHop,
          asPath: route.asPath,
          originatorId: route.originatorId,
          clusterList: route.clusterList,
          fromPeer: route.fromPeer,
        }).toEqual({
          at: c.kind,
          prefix: o.prefix,
          nextHop: o.nextHop,
          asPath: [],
          originatorId: o.routerId,
          clusterList: [clusterId],
          fromPeer: tortieIp,
        });
        if (route.localPref !== undefined) expect(route.localPref).toBe(100);
      }
      // tortie's own route is originated, not reflected: no ORIGINATOR_ID, no CLUSTER_LIST.
      const own = await waitForRoute(daemon, ownPrefix);
      expect({
        at: c.kind,
        nextHop: own.nextHop,
        asPath: own.asPath,
        originatorId: own.originatorId,
        clusters: own.clusterList ?? [],
      }).toEqual({ at: c.kind, nextHop: `198.18.${B}.1`, asPath: [], originatorId: undefined, clusters: [] });
      // A client never gets its own route back.
      expect((await daemon.routes()).filter((r) => r.prefix === c.prefix)).toEqual([]);
    }

    // A withdrawal on one client (FRR) disappears from every other client.
    const gone = clients.find((c) => c.kind === 'frr')!;
    await daemons.get(gone.address)!.withdraw(gone.prefix);
    for (const c of clients) {
      if (c !== gone) await waitForNoRoute(daemons.get(c.address)!, gone.prefix);
    }
    // ...while the others' routes stay.
    const bird2 = daemons.get(clients.find((c) => c.kind === 'bird2')!.address)!;
    expect((await bird2.routes()).map((r) => r.prefix).sort()).toEqual(
      [ownPrefix, ...clients.filter((c) => c !== gone && c.kind !== 'bird2').map((c) => c.prefix)].sort(),
    );
  });

  for (const reflector of [
    { kind: 'bird2' as const, other: 'gobgp' as const, hosts: [11, 12, 13], ownPrefix: `10.244.${B}.0/26` },
    { kind: 'frr' as const, other: 'bird1' as const, hosts: [21, 22, 23], ownPrefix: `10.244.${B}.64/26` },
  ]) {
    it(`tortie as a route-reflector client of ${reflector.kind}, beside a ${reflector.other} client`, async (ctx) => {
      if (!requirePeers(reflector.kind, reflector.other)) return ctx.skip();
      const [tortieHost, rrHost, otherHost] = reflector.hosts as [number, number, number];
      const tortieIp = block.host(tortieHost);
      const rrIp = block.host(rrHost);
      const otherIp = block.host(otherHost);
      const clusterId = `244.0.0.${rrHost}`;
      const otherId = `10.${B}.0.${otherHost}`;
      const otherPrefix = `10.${B}.${otherHost}.0/26`;
      const ownPrefix = reflector.ownPrefix;

      const rr = track(
        await startPeer(reflector.kind, {
          address: rrIp,
          as: AS,
          clusterId,
          neighbors: [
            { address: tortieIp, as: AS, rrClient: true, passive: true },
            { address: otherIp, as: AS, rrClient: true },
          ],
        }),
      );
      const other = track(
        await startPeer(reflector.other, {
          address: otherIp,
          as: AS,
          routerId: otherId,
          neighbors: [{ address: rrIp, as: AS, passive: true }],
          announce: [{ prefix: otherPrefix, nextHop: `198.18.${B}.${otherHost}` }],
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
          '--peer',
          `${rrIp},as=${AS}`,
          '--announce',
          `${ownPrefix},nexthop=198.18.${B}.${tortieHost}`,
        ]),
      );
      await speaker.waitForEvent(isState(rrIp, 'Established'), {
        what: `Established with the ${reflector.kind} reflector`,
      });
      await waitForSession(rr, otherIp);

      // tortie's Loc-RIB: the other client's route, reflected by the real reflector.
      const learned = await waitForRibRoute(speaker, (r) => r.prefix === otherPrefix, otherPrefix);
      expect(learned).toMatchObject({
        prefix: otherPrefix,
        nextHop: `198.18.${B}.${otherHost}`,
        asPath: [],
        localPref: 100,
        originatorId: otherId,
        clusterList: [clusterId],
        from: rrIp,
      });

      // The other client sees tortie's route with tortie's identifier as ORIGINATOR_ID.
      const atOther = await waitForRoute(other, ownPrefix);
      expect({
        nextHop: atOther.nextHop,
        asPath: atOther.asPath,
        originatorId: atOther.originatorId,
        clusterList: atOther.clusterList,
      }).toEqual({
        nextHop: `198.18.${B}.${tortieHost}`,
        asPath: [],
        originatorId: tortieIp,
        clusterList: [clusterId],
      });

      // A withdrawal from tortie reaches the other client through the reflector.
      speaker.send(`withdraw ${ownPrefix}`);
      await waitForNoRoute(other, ownPrefix);
    });
  }

  it('loop prevention: a BIRD 2 reflector hands tortie a route with its own ORIGINATOR_ID; tortie never installs it', async (ctx) => {
    if (!requirePeers('bird2', 'bird1', 'gobgp')) return ctx.skip();
    // A BIRD 2 reflector with three clients: tortie, BIRD 1.6 configured (wrongly, on purpose) with tortie's
    // BGP identifier, and GoBGP with its own. BIRD reflects BIRD 1.6's route to tortie with
    // ORIGINATOR_ID = tortie's identifier: RFC 4456 §8 says ignore it. GoBGP's route is the control.
    const tortieIp = block.host(31);
    const rrIp = block.host(32);
    const twinIp = block.host(33);
    const controlIp = block.host(34);
    const loopedPrefix = `10.${B}.33.0/26`;
    const controlPrefix = `10.${B}.34.0/26`;
    const ownPrefix = `10.244.${B}.64/26`;
    const clusterId = '244.0.0.32';
    const rr = track(
      await startPeer('bird2', {
        address: rrIp,
        as: AS,
        clusterId,
        neighbors: [
          { address: tortieIp, as: AS, rrClient: true, passive: true },
          { address: twinIp, as: AS, rrClient: true, passive: true },
          { address: controlIp, as: AS, rrClient: true },
        ],
      }),
    );
    const twin = track(
      await startPeer('bird1', {
        address: twinIp,
        as: AS,
        routerId: tortieIp,
        neighbors: [{ address: rrIp, as: AS }],
        announce: [{ prefix: loopedPrefix, nextHop: `198.18.${B}.33` }],
      }),
    );
    track(
      await startPeer('gobgp', {
        address: controlIp,
        as: AS,
        routerId: `10.${B}.0.34`,
        neighbors: [{ address: rrIp, as: AS, passive: true }],
        announce: [{ prefix: controlPrefix, nextHop: `198.18.${B}.34` }],
      }),
    );
    // The reflector has the looped route before tortie connects, so it is in tortie's initial table.
    await waitForRoute(rr, loopedPrefix, (r) => r.fromPeer === twinIp);
    await waitForRoute(rr, controlPrefix, (r) => r.fromPeer === controlIp);
    const speaker = track(
      SpeakerProcess.start([
        '--router-id',
        tortieIp,
        '--as',
        String(AS),
        '--connect-retry',
        '1',
        '--peer',
        `${rrIp},as=${AS}`,
        '--announce',
        `${ownPrefix},nexthop=198.18.${B}.31`,
      ]),
    );
    await speaker.waitForEvent(isState(rrIp, 'Established'), { what: 'Established with the BIRD 2 reflector' });

    // The control route is installed (so the session delivers reflected routes at all)...
    const control = await waitForRibRoute(speaker, (r) => r.prefix === controlPrefix, controlPrefix);
    expect(control).toMatchObject({ originatorId: `10.${B}.0.34`, clusterList: [clusterId], from: rrIp });
    // ...and BIRD 2 did send the looped one: it is on the wire, with tortie's identifier as ORIGINATOR_ID.
    const sent = await speaker.waitForEvent((e) => isUpdate(e) && e.announce.some((r) => r.prefix === loopedPrefix), {
      what: `the reflector's UPDATE for ${loopedPrefix}`,
    });
    expect((sent as UpdateEvent).announce.find((r) => r.prefix === loopedPrefix)).toMatchObject({
      originatorId: tortieIp,
      clusterList: [clusterId],
    });
    await waitForSession(twin, rrIp);
    // Give the routing core time to (wrongly) install it, then check the Loc-RIB has no trace of it.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const rib = await speaker.rib();
    expect(rib.filter((r) => r.prefix === loopedPrefix)).toEqual([]);
    expect(rib.filter((r) => r.prefix === ownPrefix).map((r) => r.from)).toEqual(['local']);
  });

  it("loop prevention: an FRR reflector sends tortie's own route back (ORIGINATOR_ID = tortie); the only entry stays local", async (ctx) => {
    if (!requirePeers('frr')) return ctx.skip();
    // Seen here with FRR 8.4: a reflector reflects a client's route to every client, the originating one
    // included, with ORIGINATOR_ID = that client's identifier. RFC 4456 §8: the client must ignore it.
    // While tortie originates the prefix its local route wins anyway, so the test then withdraws the local
    // route: nothing may take its place, not even for a moment.
    const tortieIp = block.host(41);
    const frrIp = block.host(42);
    const ownPrefix = `10.244.${B}.128/26`;
    const clusterId = '244.0.0.42';
    const frr = track(
      await startPeer('frr', {
        address: frrIp,
        as: AS,
        clusterId,
        neighbors: [{ address: tortieIp, as: AS, rrClient: true, passive: true }],
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
        '--peer',
        `${frrIp},as=${AS}`,
        '--announce',
        `${ownPrefix},nexthop=198.18.${B}.41`,
      ]),
    );
    await speaker.waitForEvent(isState(frrIp, 'Established'), { what: 'Established with FRR' });
    const back = await speaker.waitForEvent(
      (e) => isUpdate(e) && e.peer === frrIp && e.announce.some((r) => r.prefix === ownPrefix),
      {
        what: `FRR reflecting ${ownPrefix} back`,
      },
    );
    expect((back as UpdateEvent).announce.find((r) => r.prefix === ownPrefix)).toMatchObject({
      originatorId: tortieIp,
      clusterList: [clusterId],
    });
    const rib = await speaker.rib();
    expect(
      rib.filter((r) => r.prefix === ownPrefix).map((r) => ({ from: r.from, originatorId: r.originatorId })),
    ).toEqual([{ from: 'local', originatorId: undefined }]);

    // Withdraw the local route. Poll the Loc-RIB until FRR has withdrawn its copy: the looped route must
    // not show up in any of the answers.
    speaker.send(`withdraw ${ownPrefix}`);
    const seen: RibRoute[] = [];
    await waitFor(
      async () => {
        seen.push(...(await speaker.rib()).filter((r) => r.prefix === ownPrefix));
        return !(await frr.routes()).some((r) => r.prefix === ownPrefix) || undefined;
      },
      { timeoutMs: 10_000, intervalMs: 50, what: `FRR to drop ${ownPrefix}` },
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    seen.push(...(await speaker.rib()).filter((r) => r.prefix === ownPrefix));
    expect(seen).toEqual([]);
  });

  it('loop prevention: a route carrying our own cluster id in CLUSTER_LIST is ignored (redundant reflectors, one cluster)', async (ctx) => {
    if (!requirePeers('bird2', 'bird1')) return ctx.skip();
    // tortie and BIRD 2 are both reflectors of cluster 244.0.0.1 and ordinary iBGP peers of each other;
    // BIRD 1.6 is a client of BIRD 2 only. BIRD 2 reflects BIRD 1.6's route to tortie with CLUSTER_LIST
    // [244.0.0.1]: RFC 4456 §8 says tortie must ignore it. BIRD 2's own route (no CLUSTER_LIST) is the control.
    const tortieIp = block.host(51);
    const rrIp = block.host(52);
    const clientIp = block.host(53);
    const clusterId = '244.0.0.1';
    const clientPrefix = `10.${B}.53.0/26`;
    const rrPrefix = `10.${B}.52.0/26`;
    const rr = track(
      await startPeer('bird2', {
        address: rrIp,
        as: AS,
        clusterId,
        neighbors: [
          { address: tortieIp, as: AS, passive: true },
          { address: clientIp, as: AS, rrClient: true, passive: true },
        ],
        announce: [{ prefix: rrPrefix, nextHop: `198.18.${B}.52` }],
      }),
    );
    track(
      await startPeer('bird1', {
        address: clientIp,
        as: AS,
        neighbors: [{ address: rrIp, as: AS }],
        announce: [{ prefix: clientPrefix, nextHop: `198.18.${B}.53` }],
      }),
    );
    await waitForRoute(rr, clientPrefix, (r) => r.fromPeer === clientIp);
    const speaker = track(
      SpeakerProcess.start([
        '--router-id',
        tortieIp,
        '--as',
        String(AS),
        '--connect-retry',
        '1',
        '--cluster-id',
        clusterId,
        '--peer',
        `${rrIp},as=${AS}`,
      ]),
    );
    await speaker.waitForEvent(isState(rrIp, 'Established'), { what: 'Established with BIRD 2' });
    const control = await waitForRibRoute(speaker, (r) => r.prefix === rrPrefix, rrPrefix);
    expect(control).toMatchObject({ nextHop: `198.18.${B}.52`, from: rrIp, asPath: [] });
    expect(control.clusterList ?? []).toEqual([]);
    const sent = await speaker.waitForEvent((e) => isUpdate(e) && e.announce.some((r) => r.prefix === clientPrefix), {
      what: `BIRD 2's UPDATE for ${clientPrefix}`,
    });
    expect((sent as UpdateEvent).announce.find((r) => r.prefix === clientPrefix)?.clusterList).toEqual([clusterId]);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect((await speaker.rib()).filter((r) => r.prefix === clientPrefix)).toEqual([]);
  });
});
