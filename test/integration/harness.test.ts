// Proves the real-peer harness without tortie: pairs of real daemons peer with each other on 127.0.10.x,
// a route announced on one side shows up on the other with the right next hop and AS path, a withdraw
// removes it, and stop() leaves no process behind. If these fail, interop failures mean nothing.

import { afterAll, describe, expect, it } from 'vitest';
import {
  addressBlock,
  pidAlive,
  requirePeers,
  startPeer,
  stopAll,
  waitForNoRoute,
  waitForRoute,
  waitForSession,
  type PeerDaemon,
  type PeerKind,
} from '../harness/index.js';

const block = addressBlock('test/integration/harness.test.ts');
const startupTimes: string[] = [];

afterAll(async () => {
  if (startupTimes.length > 0) console.info(`daemon start-to-ready times: ${startupTimes.join(', ')}`);
  await stopAll();
});

interface PairCase {
  readonly a: PeerKind;
  readonly b: PeerKind;
  readonly ebgp: boolean;
  /** Host numbers in 127.0.10.0/24 and a distinct third octet for the test prefixes. */
  readonly hostA: number;
  readonly hostB: number;
  readonly net: number;
}

const PAIRS: readonly PairCase[] = [
  { a: 'bird2', b: 'frr', ebgp: true, hostA: 1, hostB: 2, net: 1 },
  { a: 'bird1', b: 'gobgp', ebgp: false, hostA: 3, hostB: 4, net: 2 },
  { a: 'frr', b: 'gobgp', ebgp: true, hostA: 5, hostB: 6, net: 3 },
  { a: 'bird2', b: 'gobgp', ebgp: false, hostA: 7, hostB: 8, net: 4 },
  { a: 'bird1', b: 'frr', ebgp: true, hostA: 9, hostB: 10, net: 5 },
  { a: 'frr', b: 'bird2', ebgp: false, hostA: 11, hostB: 12, net: 6 },
  { a: 'exabgp', b: 'frr', ebgp: true, hostA: 13, hostB: 14, net: 7 },
  { a: 'bird1', b: 'exabgp', ebgp: false, hostA: 15, hostB: 16, net: 8 },
];

it('has pairs to run', () => {
  expect(PAIRS.length).toBeGreaterThan(0);
});

async function startPair(c: PairCase): Promise<[PeerDaemon, PeerDaemon]> {
  const addrA = block.host(c.hostA);
  const addrB = block.host(c.hostB);
  const asA = 64512;
  const asB = c.ebgp ? 65001 : 64512;
  const [a, b] = await Promise.all([
    startPeer(c.a, { address: addrA, as: asA, routerId: `10.0.${c.net}.1`, neighbors: [{ address: addrB, as: asB }] }),
    // B is passive so only one TCP connection exists (collision handling is not what this tests).
    startPeer(c.b, { address: addrB, as: asB, routerId: `10.0.${c.net}.2`, neighbors: [{ address: addrA, as: asA, passive: true }] }),
  ]);
  startupTimes.push(`${c.a} ${a.startupMs} ms`, `${c.b} ${b.startupMs} ms`);
  return [a, b];
}

describe.each(PAIRS)('$a <-> $b (ebgp: $ebgp)', (c) => {
  const available = requirePeers(c.a, c.b);
  it.skipIf(!available)(
    'establishes, carries a route each way with next hop and AS path, withdraws, and stops cleanly',
    async () => {
      const [a, b] = await startPair(c);
      await Promise.all([waitForSession(a, b.address), waitForSession(b, a.address)]).catch(async (err: Error) => {
        // Both sides' view, so a failure here can be diagnosed from the test output alone.
        const views = await Promise.all([a, b].map(async (p) => `--- ${p.kind} ${p.address}: ${JSON.stringify(await p.sessions().catch(() => []))}\n${p.log().slice(-2000)}`));
        throw new Error(`${err.message.split('\n')[0]}\n${views.join('\n')}`);
      });

      const sessionsA = await a.sessions();
      expect(sessionsA.length).toBeGreaterThan(0);
      expect(sessionsA).toContainEqual(expect.objectContaining({ neighbor: b.address, state: 'Established' }));

      const prefixA = `10.${100 + c.net}.1.0/24`;
      const prefixB = `10.${100 + c.net}.2.0/24`;
      const hopA = `198.18.${c.net}.1`;
      const hopB = `198.18.${c.net}.2`;
      await a.announce(prefixA, hopA);
      await b.announce(prefixB, hopB);

      const onB = await waitForRoute(b, prefixA);
      expect(onB.nextHop).toBe(hopA);
      expect(onB.fromPeer).toBe(a.address);
      expect(onB.best).toBe(true);
      expect(onB.asPath).toEqual(c.ebgp ? [a.as] : []);
      if (!c.ebgp) expect(onB.localPref).toBe(100);

      const onA = await waitForRoute(a, prefixB);
      expect(onA.nextHop).toBe(hopB);
      expect(onA.asPath).toEqual(c.ebgp ? [b.as] : []);
      expect(onA.fromPeer).toBe(b.address);
      expect(onA.best).toBe(true);
      const routesA = await a.routes();
      expect(routesA.length).toBeGreaterThan(0);
      // Only learned routes: A's own announcement is not in its routes().
      expect(routesA.map((r) => r.prefix)).not.toContain(prefixA);

      await a.withdraw(prefixA);
      await waitForNoRoute(b, prefixA);
      expect((await b.routes()).map((r) => r.prefix)).not.toContain(prefixA);

      const pids = [a.pid(), b.pid()];
      expect(pids.every((p) => typeof p === 'number')).toBe(true);
      await Promise.all([a.stop(), b.stop()]);
      for (const pid of pids) expect(pidAlive(pid!)).toBe(false);
      expect(a.pid()).toBeUndefined();
    },
    60_000,
  );
});
