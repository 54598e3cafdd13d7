// The Speaker's import judge (SpeakerConfig.importJudge), on fake time with raw Session peers: a refused
// route is held in the Adj-RIB-In with its reason, never reaches the Loc-RIB or another peer, and
// `rejudge()` moves routes in and out of the Loc-RIB when the judge's answer changes — only inside the
// prefixes it is given.

import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../../bgp/clock.js';
import { formatPrefix, parseIpv4, parsePrefix } from '../../bgp/ip.js';
import type { Route } from '../../bgp/rib/index.js';
import { Session } from '../../bgp/session.js';
import { Speaker, type ImportJudge } from '../../bgp/speaker.js';
import { MemoryNetwork } from '../../bgp/transport.js';
import { Origin, type PathAttributes } from '../../bgp/types.js';

const TORTIE = '127.0.0.1';

let cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

/** tortie with `judge`, an iBGP peer A that announces and an iBGP peer B (an RR client) that listens. */
async function lab(judge: ImportJudge) {
  const net = new MemoryNetwork();
  const clock = new FakeClock(1_000_000);
  const speaker = new Speaker({
    routerId: parseIpv4(TORTIE),
    localAs: 64512,
    listen: { address: TORTIE, port: 179 },
    clock,
    transport: net.transport(TORTIE),
    acceptor: async (address, port, on) => {
      const close = net.listen(address, port, on);
      return async () => close();
    },
    importJudge: judge,
  });
  await speaker.start();
  cleanups.push(() => speaker.stop());
  const refusedEvents: Array<{ peer: string; prefix: string; reason: string }> = [];
  speaker.on('refused', (e) => refusedEvents.push({ peer: e.peer, prefix: formatPrefix(e.prefix), reason: e.reason }));
  const peer = (address: string) => {
    const session = new Session({
      localAs: 64512,
      peerAs: 64512,
      routerId: parseIpv4(address),
      peerAddress: TORTIE,
      clock,
      transport: net.transport(address),
    });
    const table = new Map<string, PathAttributes>();
    session.on('update', (e) => {
      for (const w of e.withdrawn) table.delete(formatPrefix(w));
      for (const a of e.announced) table.set(formatPrefix(a.prefix), a.attrs);
    });
    cleanups.push(() => session.stop());
    return { address, session, table };
  };
  const a = peer('127.0.0.11');
  const b = peer('127.0.0.12');
  speaker.setPeers([
    { address: a.address, peerAs: 64512, passive: true },
    { address: b.address, peerAs: 64512, passive: true, rrClient: true },
  ]);
  a.session.start();
  b.session.start();
  const settle = () => clock.advanceAsync(200);
  await settle();
  expect(a.session.established && b.session.established).toBe(true);
  const announce = (prefixes: string[], nextHop: string) =>
    a.session.send({
      type: 2,
      withdrawn: [],
      attributes: { origin: Origin.IGP, asPath: [], nextHop: parseIpv4(nextHop), localPref: 100 },
      nlri: prefixes.map((p) => parsePrefix(p)),
    });
  const withdraw = (prefixes: string[]) =>
    a.session.send({ type: 2, withdrawn: prefixes.map((p) => parsePrefix(p)), attributes: {}, nlri: [] });
  const best = () =>
    speaker
      .bestRoutes()
      .map((r) => formatPrefix(r.prefix))
      .sort();
  const refused = () =>
    speaker
      .refusedRoutes()
      .map((r) => `${formatPrefix(r.prefix)} ${r.from} ${r.reason}`)
      .sort();
  return { speaker, a, b, settle, announce, withdraw, best, refused, refusedEvents };
}

describe('Speaker import judge', () => {
  it('holds a refused route with its reason: not best, not sent on, said once; the others go through', async () => {
    const judge: ImportJudge = (route: Route) => (route.prefix.len <= 1 ? 'default-route' : null);
    const l = await lab(judge);
    l.announce(['0.0.0.0/1', '128.0.0.0/1', '10.244.1.0/26'], '198.18.0.11');
    await l.settle();
    expect(l.best()).toEqual(['10.244.1.0/26']);
    expect(l.refused()).toEqual(['0.0.0.0/1 127.0.0.11 default-route', '128.0.0.0/1 127.0.0.11 default-route']);
    expect([...l.b.table.keys()]).toEqual(['10.244.1.0/26']);
    expect(l.refusedEvents).toHaveLength(2);
    // The same announcement again (a refresh) is no new refusal; a withdrawal forgets the route.
    l.announce(['0.0.0.0/1'], '198.18.0.11');
    await l.settle();
    expect(l.refusedEvents).toHaveLength(2);
    l.withdraw(['0.0.0.0/1']);
    await l.settle();
    expect(l.refused()).toEqual(['128.0.0.0/1 127.0.0.11 default-route']);
    expect(l.speaker.peerStatus().find((p) => p.address === l.a.address)).toMatchObject({
      routesReceived: 2,
      routesAccepted: 1,
    });
  });

  it('rejudge moves routes in and out of the Loc-RIB and to and from other peers, only inside the given prefixes', async () => {
    const allowed = new Set<string>(['10.244.2.0/26']);
    const l = await lab((route) => (allowed.has(formatPrefix(route.prefix)) ? null : 'unowned-block'));
    l.announce(['10.244.1.0/26', '10.244.2.0/26', '10.244.3.0/26'], '198.18.0.11');
    await l.settle();
    expect(l.best()).toEqual(['10.244.2.0/26']);
    expect(l.refused()).toHaveLength(2);

    // The affinities of .1 and .3 arrive; only .1's block is said to have changed.
    allowed.add('10.244.1.0/26').add('10.244.3.0/26');
    expect(l.speaker.rejudge([parsePrefix('10.244.1.0/26')])).toBe(1);
    await l.settle();
    expect(l.best()).toEqual(['10.244.1.0/26', '10.244.2.0/26']);
    expect([...l.b.table.keys()].sort()).toEqual(['10.244.1.0/26', '10.244.2.0/26']);
    expect(l.refused()).toEqual(['10.244.3.0/26 127.0.0.11 unowned-block']);

    // Everything judged again (a pool changed): .3 comes in; then .2 loses its owner and is withdrawn from B.
    expect(l.speaker.rejudge()).toBe(1);
    allowed.delete('10.244.2.0/26');
    expect(l.speaker.rejudge([parsePrefix('10.244.0.0/16')])).toBe(1);
    await l.settle();
    expect(l.best()).toEqual(['10.244.1.0/26', '10.244.3.0/26']);
    expect([...l.b.table.keys()].sort()).toEqual(['10.244.1.0/26', '10.244.3.0/26']);
    expect(l.refused()).toEqual(['10.244.2.0/26 127.0.0.11 unowned-block']);
    expect(l.refusedEvents.map((e) => e.prefix)).toEqual(['10.244.1.0/26', '10.244.3.0/26', '10.244.2.0/26']);
    // Nothing changed: nothing moves.
    expect(l.speaker.rejudge()).toBe(0);
  });

  it('finds more-specifics inside a rejudged block (key by key) and in a wide prefix (by scan)', async () => {
    let refuse = true;
    const l = await lab(() => (refuse ? 'longer-than-block' : null));
    l.announce(['10.244.1.0/26', '10.244.1.7/32', '10.244.1.32/27', '10.244.2.9/32', '172.16.0.0/12'], '198.18.0.11');
    await l.settle();
    expect(l.refused()).toHaveLength(5);
    refuse = false;
    expect(l.speaker.rejudge([parsePrefix('10.244.1.0/26')])).toBe(3);
    expect(l.speaker.rejudge([parsePrefix('10.0.0.0/8')])).toBe(1);
    expect(l.refused()).toEqual(['172.16.0.0/12 127.0.0.11 longer-than-block']);
  });

  it('a session that ends takes its refused routes with it', async () => {
    const l = await lab(() => 'own-block');
    l.announce(['10.244.1.0/26'], '198.18.0.11');
    await l.settle();
    expect(l.refused()).toHaveLength(1);
    l.speaker.setPeers([{ address: l.b.address, peerAs: 64512, passive: true, rrClient: true }]);
    await l.settle();
    expect(l.refused()).toEqual([]);
    expect(l.best()).toEqual([]);
  });
});
