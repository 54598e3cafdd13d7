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
  waitFor,
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
    startPeer(c.b, {
      address: addrB,
      as: asB,
      routerId: `10.0.${c.net}.2`,
      neighbors: [{ address: addrA, as: asA, passive: true }],
    }),
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
        const views = await Promise.all(
          [a, b].map(
            async (p) =>
              `--- ${p.kind} ${p.address}: ${JSON.stringify(await p.sessions().catch(() => []))}\n${p.log().slice(-2000)}`,
          ),
        );
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

describe('restart, crash and graceful restart', () => {
  const available = requirePeers('bird2', 'gobgp');
  it.skipIf(!available)(
    'kill9 leaves no process; restart comes back with the same config and announced routes',
    async () => {
      const bird = block.host(30);
      const gobgp = block.host(31);
      const [b, g] = await Promise.all([
        startPeer('bird2', {
          address: bird,
          as: 64512,
          gracefulRestart: true,
          neighbors: [{ address: gobgp, as: 64512 }],
        }),
        // GoBGP passive: as the active side it waits about 5 s before its first connect.
        startPeer('gobgp', {
          address: gobgp,
          as: 64512,
          gracefulRestart: { restartTime: 30 },
          neighbors: [{ address: bird, as: 64512, passive: true }],
        }),
      ]);
      await waitForSession(b, gobgp);
      await g.announce('10.120.0.0/24', '198.18.20.1');
      expect((await waitForRoute(b, '10.120.0.0/24')).nextHop).toBe('198.18.20.1');

      const crashed = g.pid()!;
      await g.kill9();
      expect(pidAlive(crashed)).toBe(false);
      expect(g.pid()).toBeUndefined();

      await g.restart();
      expect(g.pid()).not.toBe(crashed);
      await waitForSession(b, gobgp);
      await waitForSession(g, bird);
      // The route announced before the crash is announced again after the restart.
      expect((await waitForRoute(b, '10.120.0.0/24')).nextHop).toBe('198.18.20.1');

      await b.restart();
      await waitForSession(b, gobgp);
      expect((await waitForRoute(b, '10.120.0.0/24')).fromPeer).toBe(gobgp);
      await Promise.all([b.stop(), g.stop()]);
    },
    60_000,
  );
});

describe('route reflection attributes are parsed (RFC 4456)', () => {
  const available = requirePeers('bird2', 'frr', 'bird1', 'gobgp');
  it.skipIf(!available)(
    'a BIRD 2 reflector passes routes between FRR, BIRD 1.6 and GoBGP clients with ORIGINATOR_ID and CLUSTER_LIST',
    async () => {
      const rr = block.host(40);
      const [frrAddr, bird1Addr, gobgpAddr] = [block.host(41), block.host(42), block.host(43)];
      const clients = [frrAddr, bird1Addr, gobgpAddr];
      const client = (kind: PeerKind, address: string, id: string) =>
        startPeer(kind, { address, as: 64512, routerId: id, neighbors: [{ address: rr, as: 64512, passive: true }] });
      const [reflector, frr, bird1, gobgp] = await Promise.all([
        startPeer('bird2', {
          address: rr,
          as: 64512,
          routerId: '10.40.0.1',
          clusterId: '10.255.0.1',
          neighbors: clients.map((address) => ({ address, as: 64512, rrClient: true })),
        }),
        client('frr', frrAddr, '10.40.0.2'),
        client('bird1', bird1Addr, '10.40.0.3'),
        client('gobgp', gobgpAddr, '10.40.0.4'),
      ]);
      await Promise.all(clients.map((c) => waitForSession(reflector, c)));
      const rrSessions = await reflector.sessions();
      expect(
        rrSessions
          .filter((s) => s.state === 'Established')
          .map((s) => s.neighbor)
          .sort(),
      ).toEqual([...clients].sort());

      await frr.announce('10.140.1.0/24', '198.18.40.2');
      await bird1.announce('10.140.2.0/24', '198.18.40.3');
      const reflected = { originatorId: '10.40.0.2', clusterList: ['10.255.0.1'] };
      const onBird1 = await waitForRoute(bird1, '10.140.1.0/24');
      const onGobgp = await waitForRoute(gobgp, '10.140.1.0/24');
      for (const route of [onBird1, onGobgp]) {
        expect(route).toMatchObject({ nextHop: '198.18.40.2', asPath: [], localPref: 100, fromPeer: rr, ...reflected });
      }
      const onFrr = await waitForRoute(frr, '10.140.2.0/24');
      expect(onFrr).toMatchObject({
        nextHop: '198.18.40.3',
        originatorId: '10.40.0.3',
        clusterList: ['10.255.0.1'],
        fromPeer: rr,
      });
      await Promise.all([reflector, frr, bird1, gobgp].map((p) => p.stop()));
    },
    60_000,
  );
});

describe('a wrong remote AS is refused and reported', () => {
  const available = requirePeers('frr', 'bird2');
  it.skipIf(!available)(
    'FRR expecting the wrong AS sends OPEN Message Error / Bad Peer AS; both sides show it as lastError',
    async () => {
      const frrAddr = block.host(50);
      const birdAddr = block.host(51);
      const [f, b] = await Promise.all([
        startPeer('frr', { address: frrAddr, as: 64512, neighbors: [{ address: birdAddr, as: 65099 }] }),
        startPeer('bird2', {
          address: birdAddr,
          as: 65001,
          neighbors: [{ address: frrAddr, as: 64512, passive: true }],
        }),
      ]);
      const refused = await waitForSession(b, frrAddr, 'Idle').then(() =>
        waitFor(async () => (await b.sessions()).find((s) => s.lastError !== undefined), {
          timeoutMs: 15_000,
          what: 'bird2 lastError',
        }),
      );
      expect(refused.lastError).toMatch(/bad peer as/i);
      const frrView = await waitFor(async () => (await f.sessions()).find((s) => s.lastError !== undefined), {
        timeoutMs: 15_000,
        what: 'frr lastError',
      });
      expect(frrView.state).not.toBe('Established');
      expect(frrView.lastError).toMatch(/bad peer as|open message error/i);
      await Promise.all([f.stop(), b.stop()]);
    },
    60_000,
  );
});
