// Soft reconfiguration (bgp/soft-reconfig.ts): a peer whose import or export policy alone changes keeps its
// session — no NOTIFICATION, no new OPEN, no second End-of-RIB — and gets exactly the difference: withdrawn
// what the new export refuses, announced what it now allows, never its own routes back. An import change
// re-runs import over the routes held as received, and the Loc-RIB change reaches every peer. On fake time,
// with raw Sessions as peers (the update group machinery, bgp/rib/update-group.ts `adopt`, is exercised).

import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../../bgp/clock.js';
import { formatPrefix, parseIpv4, parsePrefix } from '../../bgp/ip.js';
import type { Route } from '../../bgp/rib/index.js';
import { Session } from '../../bgp/session.js';
import { Speaker, type PeerSpec } from '../../bgp/speaker.js';
import { MemoryNetwork } from '../../bgp/transport.js';
import { Origin, type PathAttributes } from '../../bgp/types.js';

const TORTIE = '127.0.0.1';

interface Peer {
  address: string;
  session: Session;
  table: Map<string, PathAttributes>;
  updates: number;
  endOfRibs: number;
  established: number;
  notifications: number;
}

let cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

async function lab() {
  const net = new MemoryNetwork();
  const clock = new FakeClock(1_000_000);
  const speaker = new Speaker({
    routerId: parseIpv4(TORTIE),
    localAs: 64512,
    listen: { address: TORTIE, port: 179 },
    clusterId: parseIpv4('244.0.0.1'),
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
  function peer(address: string, asn: number): Peer {
    const session = new Session({
      localAs: asn,
      peerAs: 64512,
      routerId: parseIpv4(address),
      peerAddress: TORTIE,
      clock,
      transport: net.transport(address),
    });
    const p: Peer = { address, session, table: new Map(), updates: 0, endOfRibs: 0, established: 0, notifications: 0 };
    session.on('update', (e) => {
      p.updates++;
      for (const w of e.withdrawn) p.table.delete(formatPrefix(w));
      for (const a of e.announced) p.table.set(formatPrefix(a.prefix), a.attrs);
    });
    session.on('endOfRib', () => p.endOfRibs++);
    session.on('state', (e) => {
      if (e.to === 'Established') p.established++;
    });
    session.on('notification', () => p.notifications++);
    cleanups.push(() => session.stop());
    return p;
  }
  function announce(p: Peer, prefix: string, nextHop: string): void {
    p.session.send({
      type: 2,
      withdrawn: [],
      attributes: { origin: Origin.IGP, asPath: [], nextHop: parseIpv4(nextHop), localPref: 100 },
      nlri: [parsePrefix(prefix)],
    });
  }
  return { speaker, settle, peer, announce };
}

const spec = (p: Peer, extra: Partial<PeerSpec> = {}): PeerSpec => ({
  address: p.address,
  peerAs: 64512,
  passive: true,
  rrClient: true,
  ...extra,
});
const notB = (route: Route): Route | null => (formatPrefix(route.prefix) === '10.244.2.0/26' ? null : route);

/** Two reflector clients: c0 announces A and B, c1 announces C; each has the other's routes. */
async function twoClients() {
  const l = await lab();
  const c0 = l.peer('127.0.0.11', 64512);
  const c1 = l.peer('127.0.0.12', 64512);
  l.speaker.setPeers([spec(c0), spec(c1)]);
  c0.session.start();
  c1.session.start();
  await l.settle();
  l.announce(c0, '10.244.1.0/26', '198.18.0.11');
  l.announce(c0, '10.244.2.0/26', '198.18.0.11');
  l.announce(c1, '10.244.3.0/26', '198.18.0.12');
  await l.settle();
  expect([...c1.table.keys()].sort()).toEqual(['10.244.1.0/26', '10.244.2.0/26']);
  expect([...c0.table.keys()]).toEqual(['10.244.3.0/26']);
  return { ...l, c0, c1 };
}

function unchangedSessions(...peers: Peer[]): void {
  for (const p of peers) {
    expect(p.session.established, p.address).toBe(true);
    expect(p.established, `${p.address}: a new OPEN would mean a second Established`).toBe(1);
    expect(p.endOfRibs, `${p.address}: a reset would send End-of-RIB again`).toBe(1);
    expect(p.notifications, p.address).toBe(0);
  }
}

describe('Speaker: soft reconfiguration of a peer policy', () => {
  it('export: a changed filter withdraws what it refuses and announces it again when changed back, without a reset', async () => {
    const { speaker, settle, c0, c1 } = await twoClients();
    const before = c1.updates;
    speaker.setPeers([spec(c0), spec(c1, { exportFilter: notB })]);
    await settle();
    expect([...c1.table.keys()]).toEqual(['10.244.1.0/26']);
    expect(c1.updates - before).toBe(1); // one UPDATE: the withdrawal of B; A is not sent again
    speaker.setPeers([spec(c0), spec(c1)]);
    await settle();
    expect([...c1.table.keys()].sort()).toEqual(['10.244.1.0/26', '10.244.2.0/26']);
    expect(c1.updates - before).toBe(2);
    // Its own route C never came back to it, nor went from the others.
    expect(c1.table.has('10.244.3.0/26')).toBe(false);
    expect([...c0.table.keys()]).toEqual(['10.244.3.0/26']);
    unchangedSessions(c0, c1);
  });

  it('import: a changed filter re-runs import over the routes held, and every peer follows, without a reset', async () => {
    const { speaker, settle, c0, c1 } = await twoClients();
    const refuseB = (route: Route) => (formatPrefix(route.prefix) === '10.244.2.0/26' ? { refused: 'test' } : route);
    speaker.setPeers([spec(c0, { importFilter: refuseB }), spec(c1)]);
    await settle();
    expect(speaker.best(parsePrefix('10.244.2.0/26'))).toBeNull();
    expect(speaker.refusedRoutes().map((r) => `${formatPrefix(r.prefix)} ${r.reason}`)).toEqual(['10.244.2.0/26 test']);
    expect([...c1.table.keys()]).toEqual(['10.244.1.0/26']);
    speaker.setPeers([spec(c0), spec(c1)]);
    await settle();
    expect(speaker.best(parsePrefix('10.244.2.0/26'))?.from).toBe('127.0.0.11');
    expect(speaker.refusedRoutes()).toEqual([]);
    expect([...c1.table.keys()].sort()).toEqual(['10.244.1.0/26', '10.244.2.0/26']);
    unchangedSessions(c0, c1);
  });

  it('a peer moved into a group that already has members gets only its difference; the members are not disturbed', async () => {
    const { speaker, settle, peer, c0, c1 } = await twoClients();
    const c2 = peer('127.0.0.13', 64512);
    speaker.setPeers([spec(c0), spec(c1), spec(c2, { exportFilter: notB })]);
    c2.session.start();
    await settle();
    expect([...c2.table.keys()].sort()).toEqual(['10.244.1.0/26', '10.244.3.0/26']);
    const c2Before = c2.updates;
    const c0Before = c0.updates;
    // c2 joins c1's group (no filter): it lacks B only.
    speaker.setPeers([spec(c0), spec(c1), spec(c2)]);
    await settle();
    expect([...c2.table.keys()].sort()).toEqual(['10.244.1.0/26', '10.244.2.0/26', '10.244.3.0/26']);
    expect(c2.updates - c2Before).toBe(1);
    expect(c0.updates).toBe(c0Before);
    expect(c2.established).toBe(1);
    expect(c2.notifications).toBe(0);
  });

  it('any other change still resets the session (BGP cannot change it on a live session)', async () => {
    const { speaker, settle, c0, c1 } = await twoClients();
    speaker.setPeers([spec(c0), spec(c1, { exportFilter: notB, keepaliveTime: 10 })]);
    c1.session.start();
    await settle(6000);
    expect(c1.notifications).toBeGreaterThan(0);
  });
});
