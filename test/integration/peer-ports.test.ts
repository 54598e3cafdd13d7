// Two BGP peers on one address, different ports, are two sessions (Calico: `Global_<ip>_port_<n>`, one BIRD
// protocol each). Two real BIRD 2 daemons share 127.0.49.2, on ports 1790 and 1791, with different AS
// numbers; tortie's Speaker on 127.0.49.1 keeps both sessions, learns from both, passes each one's route to
// the other, and removing one leaves the other up. The one on 1790 connects to us: an inbound connection
// comes from an ephemeral port, and goes to the peer with the lowest port on its address. The one on 1791
// is passive (our connection reaches it), as bgp/speaker.ts says a second peer on an address must be.

import { afterAll, describe, expect, it } from 'vitest';
import { parseIpv4, parsePrefix } from '../../bgp/ip.js';
import { Speaker } from '../../bgp/speaker.js';
import { Origin } from '../../bgp/types.js';
import { addressBlock } from '../harness/addresses.js';
import { requirePeers } from '../harness/binaries.js';
import { startPeer, stopAll, waitFor, waitForNoRoute, waitForRoute, waitForSession } from '../harness/index.js';

const block = addressBlock(import.meta.url);
const TORTIE = block.host(1);
const ROUTERS = block.host(2);
const TORTIE_AS = 64512;

const running: Array<{ stop(): Promise<unknown> }> = [];
afterAll(async () => {
  for (const thing of running.splice(0).reverse()) await thing.stop().catch(() => undefined);
  await stopAll();
});

describe('two peers on one address, different ports', () => {
  it('two BIRD 2 on one address: two sessions, routes from both and to both; removing one leaves the other', async (ctx) => {
    if (!requirePeers('bird2')) return ctx.skip();
    const low = await startPeer('bird2', {
      address: ROUTERS,
      port: 1790,
      as: 65001,
      routerId: '10.49.0.1',
      neighbors: [{ address: TORTIE, as: TORTIE_AS }],
      announce: [{ prefix: '10.49.1.0/24', nextHop: '198.18.49.1' }],
    });
    running.push(low);
    const high = await startPeer('bird2', {
      address: ROUTERS,
      port: 1791,
      as: 65002,
      routerId: '10.49.0.2',
      neighbors: [{ address: TORTIE, as: TORTIE_AS, passive: true }],
      announce: [{ prefix: '10.49.2.0/24', nextHop: '198.18.49.2' }],
    });
    running.push(high);

    const speaker = new Speaker({
      routerId: parseIpv4(TORTIE),
      localAs: TORTIE_AS,
      listen: { address: TORTIE, port: 179 },
      connectRetryMs: 1000,
    });
    running.push(speaker);
    await speaker.start();
    speaker.setOriginated([
      { prefix: parsePrefix('10.244.49.0/26'), attrs: { origin: Origin.IGP, nextHop: parseIpv4('198.18.49.9') } },
    ]);
    // Passive toward the one on 1790: its session can only be its own connection, matched by address.
    speaker.setPeers([
      { address: ROUTERS, port: 1790, peerAs: 65001, passive: true },
      { address: ROUTERS, port: 1791, peerAs: 65002 },
    ]);

    const rows = await waitFor(
      () => {
        const r = speaker
          .peerStatus()
          .map((p) => `${p.address}:${p.port} AS${p.peerAs} ${p.state}`)
          .sort();
        return r.every((row) => row.endsWith('Established')) && r.length === 2 ? r : null;
      },
      { what: 'both sessions Established', timeoutMs: 20_000 },
    );
    expect(rows).toEqual([`${ROUTERS}:1790 AS65001 Established`, `${ROUTERS}:1791 AS65002 Established`]);
    await waitForSession(low, TORTIE);
    await waitForSession(high, TORTIE);

    // Each BIRD gets our block and the other's route through us (eBGP: our AS first, then the other's).
    for (const [bird, other, otherAs] of [
      [low, '10.49.2.0/24', 65002],
      [high, '10.49.1.0/24', 65001],
    ] as const) {
      expect((await waitForRoute(bird, '10.244.49.0/26')).asPath).toEqual([TORTIE_AS]);
      expect((await waitForRoute(bird, other)).asPath).toEqual([TORTIE_AS, otherAs]);
    }
    // We hold each route from its own session.
    expect(speaker.receivedRoutes(ROUTERS, 1790).map((r) => r.prefix.addr)).toEqual([parseIpv4('10.49.1.0')]);
    expect(speaker.receivedRoutes(ROUTERS, 1791).map((r) => r.prefix.addr)).toEqual([parseIpv4('10.49.2.0')]);

    // The one on 1791 goes: the one on 1790 stays up, and loses the route that came through the other.
    const downs: string[] = [];
    speaker.on('state', (e) => {
      if (e.from === 'Established') downs.push(`${e.peer}:${e.port}`);
    });
    speaker.setPeers([{ address: ROUTERS, port: 1790, peerAs: 65001, passive: true }]);
    await waitForNoRoute(low, '10.49.2.0/24', 20_000);
    await waitFor(async () => (await high.sessions()).find((s) => s.neighbor === TORTIE)?.state !== 'Established', {
      what: 'the BIRD on 1791 sees its session end',
    });
    expect(downs).toEqual([`${ROUTERS}:1791`]);
    expect((await low.sessions()).find((s) => s.neighbor === TORTIE)?.state).toBe('Established');
    expect(speaker.peerStatus().map((p) => `${p.port} ${p.state}`)).toEqual(['1790 Established']);
  });
});
