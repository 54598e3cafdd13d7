// The Speaker as a router, on fake time: route reflection (RFC 4456) between clients, non-clients and eBGP
// peers; loop checks on import (RFC 4456 §8, AS loops); graceful restart both ways (RFC 4724); ROUTE-REFRESH
// (RFC 2918). The peers are raw Sessions, so the tests can send any attributes and crash at will.

import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../../bgp/clock.js';
import { encodeEndOfRib } from '../../bgp/codec/index.js';
import { CeaseSubcode } from '../../bgp/errors.js';
import { formatIpv4, formatPrefix, parseIpv4, parsePrefix } from '../../bgp/ip.js';
import { Session, type GracefulRestartConfig } from '../../bgp/session.js';
import { DEFAULT_MAX_PREFIXES, Speaker, type PeerSpec, type SpeakerConfig } from '../../bgp/speaker.js';
import { MemoryNetwork, type Connection, type Transport } from '../../bgp/transport.js';
import { AsPathSegmentType, Origin, type PathAttributes, type Prefix } from '../../bgp/types.js';

const TORTIE = '127.0.0.1';
const CLUSTER = parseIpv4('244.0.0.1');
const seq = (...asns: number[]) => [{ type: AsPathSegmentType.AS_SEQUENCE, asns }];

interface Peer {
  address: string;
  session: Session;
  /** What tortie sent this peer: prefix → attributes (withdrawals delete). */
  table: Map<string, PathAttributes>;
  endOfRibs: number;
  updates: number;
  /** The live TCP-like connections this peer opened (to crash them). */
  conns: Connection[];
}

let cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

function recording(base: Transport, conns: Connection[]): Transport {
  return {
    connect: async (options) => {
      const conn = await base.connect(options);
      conns.push(conn);
      return conn;
    },
  };
}

async function lab(config: Partial<SpeakerConfig> = {}) {
  const net = new MemoryNetwork();
  const clock = new FakeClock(1_000_000);
  const speaker = new Speaker({
    routerId: parseIpv4(TORTIE),
    localAs: 64512,
    listen: { address: TORTIE, port: 179 },
    clusterId: CLUSTER,
    clock,
    transport: net.transport(TORTIE),
    acceptor: async (address, port, on) => {
      const close = net.listen(address, port, on);
      return async () => close();
    },
    ...config,
  });
  await speaker.start();
  cleanups.push(() => speaker.stop());
  const settle = (ms = 200) => clock.advanceAsync(ms);

  /** A raw peer that connects to tortie (tortie's side is passive for it). */
  function peer(
    address: string,
    asn: number,
    options: { gracefulRestart?: GracefulRestartConfig; tortieAs?: number } = {},
  ): Peer {
    const conns: Connection[] = [];
    const session = new Session({
      localAs: asn,
      peerAs: options.tortieAs ?? 64512,
      routerId: parseIpv4(address),
      peerAddress: TORTIE,
      clock,
      transport: recording(net.transport(address), conns),
      ...(options.gracefulRestart ? { gracefulRestart: options.gracefulRestart } : {}),
    });
    const p: Peer = { address, session, table: new Map(), endOfRibs: 0, updates: 0, conns };
    session.on('update', (e) => {
      p.updates++;
      for (const w of e.withdrawn) p.table.delete(formatPrefix(w));
      for (const a of e.announced) p.table.set(formatPrefix(a.prefix), a.attrs);
    });
    session.on('endOfRib', () => p.endOfRibs++);
    cleanups.push(() => session.stop());
    return p;
  }

  function announce(p: Peer, prefix: string, attrs: PathAttributes): void {
    p.session.send({
      type: 2,
      withdrawn: [],
      attributes: { origin: Origin.IGP, ...attrs },
      nlri: [parsePrefix(prefix)],
    });
  }
  function withdraw(p: Peer, prefix: string): void {
    p.session.send({ type: 2, withdrawn: [parsePrefix(prefix)], attributes: {}, nlri: [] });
  }
  return { net, clock, speaker, settle, peer, announce, withdraw };
}

const specOf = (p: Peer, asn: number, extra: Partial<PeerSpec> = {}): PeerSpec => ({
  address: p.address,
  peerAs: asn,
  passive: true,
  ...extra,
});
const nh = (text: string) => parseIpv4(text);
const prefixOf = (text: string): Prefix => parsePrefix(text);

describe('Speaker: route reflection (RFC 4456)', () => {
  async function reflector() {
    const l = await lab();
    const c1 = l.peer('127.0.0.11', 64512);
    const c2 = l.peer('127.0.0.12', 64512);
    const n1 = l.peer('127.0.0.21', 64512);
    const e1 = l.peer('127.0.0.31', 65001);
    l.speaker.setPeers([
      specOf(c1, 64512, { rrClient: true }),
      specOf(c2, 64512, { rrClient: true }),
      specOf(n1, 64512),
      specOf(e1, 65001),
    ]);
    for (const p of [c1, c2, n1, e1]) p.session.start();
    await l.settle();
    for (const p of [c1, c2, n1, e1]) expect(p.session.established).toBe(true);
    return { ...l, c1, c2, n1, e1 };
  }

  it('reflects a client route to clients and non-clients with ORIGINATOR_ID and CLUSTER_LIST, and to eBGP with our AS', async () => {
    const { c1, c2, n1, e1, announce, settle } = await reflector();
    announce(c1, '10.244.1.0/26', { asPath: [], nextHop: nh('198.18.0.11'), localPref: 100 });
    await settle();
    for (const p of [c2, n1]) {
      const got = p.table.get('10.244.1.0/26');
      expect(got?.originatorId).toBe(parseIpv4('127.0.0.11'));
      expect(got?.clusterList).toEqual([CLUSTER]);
      expect(got?.nextHop).toBe(nh('198.18.0.11')); // RFC 4456 §10: reflected routes keep their next hop
      expect(got?.asPath).toEqual([]);
    }
    const toE = e1.table.get('10.244.1.0/26');
    expect(toE?.asPath).toEqual(seq(64512));
    expect(toE?.originatorId).toBeUndefined();
    expect(toE?.clusterList).toBeUndefined();
    expect(toE?.localPref).toBeUndefined();
    // Never back to where it came from.
    expect(c1.table.has('10.244.1.0/26')).toBe(false);
  });

  it('reflects a non-client route to clients only (RFC 4456 §6), and eBGP routes to everyone', async () => {
    const { c1, c2, n1, e1, announce, settle } = await reflector();
    announce(n1, '10.244.2.0/26', { asPath: [], nextHop: nh('198.18.0.21'), localPref: 100 });
    announce(e1, '192.0.2.0/24', { asPath: seq(65001), nextHop: nh('198.18.0.31') });
    await settle();
    expect(c1.table.get('10.244.2.0/26')?.clusterList).toEqual([CLUSTER]);
    expect(c2.table.get('10.244.2.0/26')?.originatorId).toBe(parseIpv4('127.0.0.21'));
    expect(e1.table.has('10.244.2.0/26')).toBe(true);
    for (const p of [c1, c2, n1]) {
      const got = p.table.get('192.0.2.0/24');
      expect(got?.asPath).toEqual(seq(65001));
      expect(got?.localPref).toBe(100);
      expect(got?.originatorId).toBeUndefined(); // learned over eBGP: not reflection
    }
  });

  it('never installs or reflects a route carrying our router id as ORIGINATOR_ID or our cluster id (RFC 4456 §8)', async () => {
    const { speaker, c1, c2, n1, announce, settle } = await reflector();
    announce(c1, '10.9.1.0/24', {
      asPath: [],
      nextHop: nh('198.18.0.11'),
      localPref: 100,
      originatorId: parseIpv4(TORTIE),
    });
    announce(c1, '10.9.2.0/24', {
      asPath: [],
      nextHop: nh('198.18.0.11'),
      localPref: 100,
      originatorId: nh('198.51.100.1'),
      clusterList: [nh('1.1.1.1'), CLUSTER],
    });
    announce(c1, '10.9.3.0/24', {
      asPath: [],
      nextHop: nh('198.18.0.11'),
      localPref: 100,
      clusterList: [nh('1.1.1.1')],
    });
    await settle();
    expect(speaker.best(prefixOf('10.9.1.0/24'))).toBeNull();
    expect(speaker.best(prefixOf('10.9.2.0/24'))).toBeNull();
    expect(speaker.best(prefixOf('10.9.3.0/24'))).not.toBeNull(); // another cluster's id is fine
    for (const p of [c2, n1]) {
      expect(p.table.has('10.9.1.0/24')).toBe(false);
      expect(p.table.has('10.9.2.0/24')).toBe(false);
      expect(p.table.get('10.9.3.0/24')?.clusterList).toEqual([CLUSTER, nh('1.1.1.1')]);
    }
  });

  it('withdraws a reflected route everywhere when its client withdraws it', async () => {
    const { c1, c2, n1, e1, announce, withdraw, settle } = await reflector();
    announce(c1, '10.244.1.0/26', { asPath: [], nextHop: nh('198.18.0.11'), localPref: 100 });
    await settle();
    withdraw(c1, '10.244.1.0/26');
    await settle();
    for (const p of [c2, n1, e1]) expect(p.table.has('10.244.1.0/26')).toBe(false);
  });
});

describe('Speaker: update groups (peers with identical export share one Adj-RIB-Out)', () => {
  async function clients(count: number, extra: (i: number) => Partial<PeerSpec> = () => ({})) {
    const l = await lab();
    const cs = Array.from({ length: count }, (_, i) => l.peer(`127.0.0.${11 + i}`, 64512));
    l.speaker.setPeers(cs.map((c, i) => specOf(c, 64512, { rrClient: true, ...extra(i) })));
    for (const c of cs) c.session.start();
    await l.settle();
    for (const c of cs) expect(c.session.established).toBe(true);
    return { ...l, cs };
  }
  const block = (i: number, j: number) => `10.${100 + i}.${j}.0/26`;

  it("sends every client the others' routes and never its own, and moves a prefix to its new owner", async () => {
    const { cs, announce, withdraw, settle, speaker } = await clients(4);
    expect(cs.length).toBe(4);
    cs.forEach((c, i) => {
      for (let j = 0; j < 3; j++)
        announce(c, block(i, j), { asPath: [], nextHop: nh(`198.18.0.${11 + i}`), localPref: 100 });
    });
    await settle();
    cs.forEach((c, i) => {
      const want = cs.flatMap((_, k) => (k === i ? [] : [0, 1, 2].map((j) => block(k, j)))).sort();
      expect([...c.table.keys()].sort()).toEqual(want);
      expect(c.table.get(block((i + 1) % 4, 0))?.originatorId).toBe(parseIpv4(cs[(i + 1) % 4]!.address));
    });
    const status = speaker.peerStatus();
    expect(status.map((s) => s.routesAdvertised)).toEqual([9, 9, 9, 9]);
    // c1 also announces c0's first block with a worse LOCAL_PREF; when c0 withdraws it, c1's becomes best:
    // c1 must lose the reflected copy (now its own), the others get c1's.
    const [c0, c1, c2] = cs as [Peer, Peer, Peer];
    announce(c1, block(0, 0), { asPath: [], nextHop: nh('198.18.0.12'), localPref: 50 });
    await settle();
    expect(c1.table.get(block(0, 0))?.originatorId).toBe(parseIpv4(c0.address));
    withdraw(c0, block(0, 0));
    await settle();
    expect(c1.table.has(block(0, 0))).toBe(false);
    expect(c0.table.get(block(0, 0))?.originatorId).toBe(parseIpv4(c1.address));
    expect(c2.table.get(block(0, 0))?.originatorId).toBe(parseIpv4(c1.address));
    // And back: c0 announces again with the better LOCAL_PREF.
    announce(c0, block(0, 0), { asPath: [], nextHop: nh('198.18.0.11'), localPref: 100 });
    await settle();
    expect(c0.table.has(block(0, 0))).toBe(false);
    expect(c1.table.get(block(0, 0))?.originatorId).toBe(parseIpv4(c0.address));
  });

  it('gives a member that reconnects the whole table while the others get only what changed', async () => {
    const { cs, announce, settle, clock } = await clients(3);
    const [c0, c1, c2] = cs as [Peer, Peer, Peer];
    announce(c0, block(0, 0), { asPath: [], nextHop: nh('198.18.0.11'), localPref: 100 });
    await settle();
    expect(c2.table.has(block(0, 0))).toBe(true);
    c2.session.stop();
    await settle();
    c2.table.clear();
    announce(c0, block(0, 1), { asPath: [], nextHop: nh('198.18.0.11'), localPref: 100 });
    await settle();
    const updatesBefore = c1.updates;
    c2.session.start();
    await clock.advanceAsync(10_000);
    expect(c2.session.established).toBe(true);
    expect([...c2.table.keys()].sort()).toEqual([block(0, 0), block(0, 1)].sort());
    expect(c1.updates).toBe(updatesBefore); // in sync: nothing re-sent to it
    expect(c0.table.size).toBe(0);
  });

  it('sends members in sync the same UPDATEs (one shared buffer), and a member with exceptions its own cut', async () => {
    const { cs, announce, settle } = await clients(4);
    const [c0, c1, c2, c3] = cs as [Peer, Peer, Peer, Peer];
    // Two attribute sets in one batch: the shared buffer holds several UPDATEs back to back.
    for (let j = 0; j < 6; j++)
      announce(c0, block(0, j), { asPath: [], nextHop: nh('198.18.0.11'), localPref: j % 2 === 0 ? 100 : 90 });
    await settle();
    const want = Array.from({ length: 6 }, (_, j) => block(0, j)).sort();
    for (const c of [c1, c2, c3]) {
      expect([...c.table.keys()].sort()).toEqual(want);
      expect(c.table.get(block(0, 1))?.localPref).toBe(90);
    }
    expect(c1.updates).toBeGreaterThanOrEqual(2);
    expect(c2.updates).toBe(c1.updates);
    expect(c3.updates).toBe(c1.updates);
    expect(c0.table.size).toBe(0);
    // c1 takes over one prefix: it lacks that one, the others get the new owner's route.
    announce(c1, block(0, 0), { asPath: [], nextHop: nh('198.18.0.12'), localPref: 200 });
    await settle();
    expect(c1.table.has(block(0, 0))).toBe(false);
    for (const c of [c0, c2, c3]) expect(c.table.get(block(0, 0))?.originatorId).toBe(parseIpv4(c1.address));
    expect(c3.updates).toBe(c2.updates);
  });

  it('keeps peers whose export filter differs in separate groups', async () => {
    const onlyFirst = (route: import('../../bgp/rib/index.js').Route) =>
      route.prefix.addr === parsePrefix(block(0, 0)).addr ? route : null;
    const { cs, announce, settle } = await clients(3, (i) => (i === 2 ? { exportFilter: onlyFirst } : {}));
    const [c0, c1, c2] = cs as [Peer, Peer, Peer];
    for (let j = 0; j < 2; j++) announce(c0, block(0, j), { asPath: [], nextHop: nh('198.18.0.11'), localPref: 100 });
    await settle();
    expect([...c1.table.keys()].sort()).toEqual([block(0, 0), block(0, 1)].sort());
    expect([...c2.table.keys()]).toEqual([block(0, 0)]);
    expect(c0.table.size).toBe(0);
  });
});

describe('Speaker: iBGP and eBGP rules', () => {
  it('does not pass iBGP routes to other iBGP peers without reflection (split horizon)', async () => {
    const l = await lab();
    const a = l.peer('127.0.0.11', 64512);
    const b = l.peer('127.0.0.12', 64512);
    l.speaker.setPeers([specOf(a, 64512), specOf(b, 64512)]);
    a.session.start();
    b.session.start();
    await l.settle();
    l.announce(a, '10.1.0.0/24', { asPath: [], nextHop: nh('198.18.0.11'), localPref: 100 });
    await l.settle();
    expect(l.speaker.best(prefixOf('10.1.0.0/24'))?.from).toBe('127.0.0.11');
    expect(b.table.has('10.1.0.0/24')).toBe(false);
  });

  it('drops eBGP routes that contain our AS, unless allow-own-as permits it', async () => {
    const l = await lab();
    const e1 = l.peer('127.0.0.31', 65001);
    const e2 = l.peer('127.0.0.32', 65002);
    l.speaker.setPeers([specOf(e1, 65001), specOf(e2, 65002, { allowOwnAs: 1 })]);
    e1.session.start();
    e2.session.start();
    await l.settle();
    l.announce(e1, '10.2.0.0/24', { asPath: seq(65001, 64512), nextHop: nh('198.18.0.31') });
    l.announce(e2, '10.3.0.0/24', { asPath: seq(65002, 64512), nextHop: nh('198.18.0.32') });
    await l.settle();
    expect(l.speaker.best(prefixOf('10.2.0.0/24'))).toBeNull();
    expect(l.speaker.best(prefixOf('10.3.0.0/24'))?.from).toBe('127.0.0.32');
  });

  it('speaks to one peer with its own local AS (localAs): OPEN, AS_PATH prepend, loop check; and its own restart time', async () => {
    const l = await lab();
    const e1 = l.peer('127.0.0.31', 65001, { tortieAs: 65100 });
    l.speaker.setOriginated([
      { prefix: prefixOf('10.244.9.0/26'), attrs: { origin: Origin.IGP, nextHop: nh('198.18.0.1') } },
    ]);
    l.speaker.setPeers([specOf(e1, 65001, { localAs: 65100, restartTime: 77 })]);
    e1.session.start();
    await l.settle();
    expect(e1.session.established).toBe(true); // it expected AS 65100 in our OPEN
    expect(e1.session.negotiated?.gracefulRestart?.restartTime).toBe(77);
    expect(e1.table.get('10.244.9.0/26')?.asPath).toEqual(seq(65100));
    l.announce(e1, '10.7.1.0/24', { asPath: seq(65001, 65100), nextHop: nh('198.18.0.31') });
    l.announce(e1, '10.7.2.0/24', { asPath: seq(65001, 65002), nextHop: nh('198.18.0.31') });
    await l.settle();
    expect(l.speaker.best(prefixOf('10.7.1.0/24'))).toBeNull(); // our AS toward this peer is in the path
    expect(l.speaker.best(prefixOf('10.7.2.0/24'))?.from).toBe('127.0.0.31');
  });

  it('rejects a route whose next hop is our own address', async () => {
    const l = await lab();
    const a = l.peer('127.0.0.11', 64512);
    l.speaker.setPeers([specOf(a, 64512)]);
    a.session.start();
    await l.settle();
    l.announce(a, '10.4.0.0/24', { asPath: [], nextHop: parseIpv4(TORTIE), localPref: 100 });
    await l.settle();
    expect(l.speaker.best(prefixOf('10.4.0.0/24'))).toBeNull();
  });

  it('prefers the better path and fails over when it is withdrawn', async () => {
    const l = await lab();
    const a = l.peer('127.0.0.11', 64512);
    const b = l.peer('127.0.0.12', 64512);
    const e = l.peer('127.0.0.31', 65001);
    l.speaker.setPeers([specOf(a, 64512), specOf(b, 64512), specOf(e, 65001)]);
    for (const p of [a, b, e]) p.session.start();
    await l.settle();
    l.announce(a, '10.5.0.0/24', { asPath: seq(65009, 65010), nextHop: nh('198.18.0.11'), localPref: 100 });
    l.announce(b, '10.5.0.0/24', { asPath: seq(65009), nextHop: nh('198.18.0.12'), localPref: 100 });
    await l.settle();
    expect(l.speaker.best(prefixOf('10.5.0.0/24'))?.from).toBe('127.0.0.12'); // shorter AS_PATH
    expect(e.table.get('10.5.0.0/24')?.asPath).toEqual(seq(64512, 65009));
    l.withdraw(b, '10.5.0.0/24');
    await l.settle();
    expect(l.speaker.best(prefixOf('10.5.0.0/24'))?.from).toBe('127.0.0.11');
    expect(e.table.get('10.5.0.0/24')?.asPath).toEqual(seq(64512, 65009, 65010));
  });
});

describe('Speaker: graceful restart (RFC 4724)', () => {
  const GR: GracefulRestartConfig = { restartTime: 30, forwardingState: true };

  async function withGrPeer() {
    const l = await lab();
    const a = l.peer('127.0.0.11', 64512, { gracefulRestart: GR });
    const watcher = l.peer('127.0.0.31', 65001);
    l.speaker.setPeers([specOf(a, 64512), specOf(watcher, 65001)]);
    a.session.start();
    watcher.session.start();
    await l.settle();
    l.announce(a, '10.6.1.0/24', { asPath: [], nextHop: nh('198.18.0.11'), localPref: 100 });
    l.announce(a, '10.6.2.0/24', { asPath: [], nextHop: nh('198.18.0.11'), localPref: 100 });
    await l.settle();
    expect(watcher.table.size).toBe(2);
    return { ...l, a, watcher };
  }

  /** The peer's process dies: its connection drops without a NOTIFICATION and it does not reconnect. */
  function crash(p: Peer): void {
    for (const c of p.conns) c.destroy();
    p.session.stop();
  }

  it("keeps a crashed GR peer's routes (stale, still exported) until it is back and sends End-of-RIB", async () => {
    const l = await withGrPeer();
    const watcherUpdates = l.watcher.updates;
    crash(l.a);
    await l.settle(10_000);
    expect(l.speaker.best(prefixOf('10.6.1.0/24'))?.stale).toBe(true);
    expect(l.watcher.updates).toBe(watcherUpdates); // nothing withdrawn downstream

    // It restarts: a new session, sends one of the two routes again, then End-of-RIB.
    const back = l.peer('127.0.0.11', 64512, { gracefulRestart: { ...GR, restarting: true } });
    back.session.start();
    await l.settle();
    expect(l.speaker.best(prefixOf('10.6.2.0/24'))?.stale).toBe(true); // still kept: no End-of-RIB yet
    l.announce(back, '10.6.1.0/24', { asPath: [], nextHop: nh('198.18.0.11'), localPref: 100 });
    back.session.sendUpdates([encodeEndOfRib()]);
    await l.settle();
    expect(l.speaker.best(prefixOf('10.6.1.0/24'))?.stale).toBe(false);
    expect(l.speaker.best(prefixOf('10.6.2.0/24'))).toBeNull(); // not sent again: swept at End-of-RIB
    expect(l.watcher.table.has('10.6.1.0/24')).toBe(true);
    expect(l.watcher.table.has('10.6.2.0/24')).toBe(false);
  });

  it('drops the stale routes when the restart time passes without the peer', async () => {
    const l = await withGrPeer();
    crash(l.a);
    await l.settle(29_000);
    expect(l.speaker.best(prefixOf('10.6.1.0/24'))).not.toBeNull();
    await l.settle(2_000);
    expect(l.speaker.best(prefixOf('10.6.1.0/24'))).toBeNull();
    expect(l.watcher.table.size).toBe(0);
  });

  it('drops them at once when the peer comes back without the F bit, or ends the session with a NOTIFICATION', async () => {
    const l = await withGrPeer();
    crash(l.a);
    await l.settle(1000);
    const back = l.peer('127.0.0.11', 64512, {
      gracefulRestart: { restartTime: 30, forwardingState: false, restarting: true },
    });
    back.session.start();
    await l.settle();
    expect(l.speaker.best(prefixOf('10.6.1.0/24'))).toBeNull();

    const l2 = await withGrPeer();
    l2.a.session.stop(); // Cease: a clean shutdown is not a restart
    await l2.settle();
    expect(l2.speaker.best(prefixOf('10.6.1.0/24'))).toBeNull();
  });

  it('as a restarting speaker, sends nothing until every GR peer sent End-of-RIB, then everything and End-of-RIB', async () => {
    const l = await lab({ gracefulRestart: { restartTime: 60, restarting: true } });
    const a = l.peer('127.0.0.11', 64512, { gracefulRestart: GR });
    const b = l.peer('127.0.0.12', 64512, { gracefulRestart: GR });
    l.speaker.setOriginated([
      { prefix: prefixOf('10.244.9.0/26'), attrs: { origin: Origin.IGP, nextHop: nh('198.18.0.1') } },
    ]);
    l.speaker.setPeers([specOf(a, 64512), specOf(b, 64512)]);
    a.session.start();
    b.session.start();
    await l.settle();
    // Our OPEN said R (restarting) and F (forwarding kept).
    const gr = a.session.negotiated?.gracefulRestart;
    expect(gr?.restarting).toBe(true);
    expect(gr?.families[0]?.forwardingState).toBe(true);
    expect(a.table.size + b.table.size + a.endOfRibs + b.endOfRibs).toBe(0);

    a.session.sendUpdates([encodeEndOfRib()]);
    await l.settle();
    expect(a.table.size).toBe(0); // b has not finished yet
    b.session.sendUpdates([encodeEndOfRib()]);
    await l.settle();
    expect(a.table.has('10.244.9.0/26') && b.table.has('10.244.9.0/26')).toBe(true);
    expect(a.endOfRibs).toBe(1);
    expect(b.endOfRibs).toBe(1);
  });

  it('as a restarting speaker, does not let a peer that is not up hold everyone else back (1 s)', async () => {
    const l = await lab({ gracefulRestart: { restartTime: 60, restarting: true } });
    const a = l.peer('127.0.0.11', 64512, { gracefulRestart: GR });
    const absent = l.peer('127.0.0.12', 64512, { gracefulRestart: GR }); // configured, never started
    void absent;
    l.speaker.setOriginated([
      { prefix: prefixOf('10.244.9.0/26'), attrs: { origin: Origin.IGP, nextHop: nh('198.18.0.1') } },
    ]);
    l.speaker.setPeers([specOf(a, 64512), { address: '127.0.0.12', peerAs: 64512 }]);
    a.session.start();
    await l.settle(100);
    a.session.sendUpdates([encodeEndOfRib()]);
    await l.settle(500);
    expect(a.table.size).toBe(0); // still within the wait for 127.0.0.12
    await l.settle(600);
    expect(a.table.has('10.244.9.0/26')).toBe(true);
    expect(a.endOfRibs).toBe(1);
  });

  it('keeps stale routes when a reconnect attempt fails before Established (RFC 4724 §4.2)', async () => {
    const l = await withGrPeer();
    crash(l.a);
    await l.settle(1000);
    expect(l.speaker.best(prefixOf('10.6.1.0/24'))?.stale).toBe(true);
    // The restarting peer's side accepts TCP and closes it again before any OPEN of its own.
    const conn = await l.net.transport('127.0.0.11').connect({ remoteAddress: TORTIE, remotePort: 179 });
    await l.settle(10);
    conn.destroy();
    await l.settle(1000);
    expect(l.speaker.best(prefixOf('10.6.1.0/24'))?.stale).toBe(true);
    expect(l.watcher.table.has('10.6.1.0/24')).toBe(true);
  });

  it('treats a session we end with a NOTIFICATION as no graceful restart: routes withdrawn at once', async () => {
    const l = await withGrPeer();
    // Garbage on the wire: tortie answers with Message Header Error / Connection Not Synchronized.
    l.a.conns[0]!.write(new Uint8Array(19));
    await l.settle(100);
    expect(l.speaker.best(prefixOf('10.6.1.0/24'))).toBeNull();
    expect(l.watcher.table.has('10.6.1.0/24')).toBe(false);
  });

  it('sets the R bit only while the restart is under way, not on later reconnects', async () => {
    const l = await lab({ gracefulRestart: { restartTime: 60, restarting: true } });
    const a = l.peer('127.0.0.11', 64512, { gracefulRestart: GR });
    l.speaker.setPeers([specOf(a, 64512)]);
    a.session.start();
    await l.settle();
    expect(a.session.negotiated?.gracefulRestart?.restarting).toBe(true);
    a.session.sendUpdates([encodeEndOfRib()]);
    await l.settle();
    // A later session (the peer restarts the connection): our OPEN no longer says "restarting".
    for (const c of a.conns) c.destroy();
    await l.settle(10);
    expect(a.session.established).toBe(false);
    for (let i = 0; i < 10 && !a.session.established; i++) await l.settle(1000);
    expect(a.session.established).toBe(true);
    expect(a.session.negotiated?.gracefulRestart?.restarting).toBe(false);
  });

  it('as a restarting speaker, stops waiting when the selection deferral timer fires', async () => {
    const l = await lab({ gracefulRestart: { restartTime: 60, restarting: true, deferralMs: 5000 } });
    const a = l.peer('127.0.0.11', 64512, { gracefulRestart: GR });
    l.speaker.setOriginated([
      { prefix: prefixOf('10.244.9.0/26'), attrs: { origin: Origin.IGP, nextHop: nh('198.18.0.1') } },
    ]);
    l.speaker.setPeers([specOf(a, 64512)]);
    a.session.start();
    await l.settle(4000);
    expect(a.table.size).toBe(0);
    await l.settle(2000);
    expect(a.table.has('10.244.9.0/26')).toBe(true);
  });
});

describe('Speaker: make-before-break on reconfiguration', () => {
  it("keeps a removed peer's routes (stale, still exported) for the linger, so a replacement path arrives first", async () => {
    const l = await lab();
    const mesh = l.peer('127.0.0.12', 64512); // the node-to-node mesh session, about to be removed
    const reflector = l.peer('127.0.0.11', 64512); // the route reflector that takes over
    const watcher = l.peer('127.0.0.31', 65001);
    l.speaker.setPeers([specOf(mesh, 64512), specOf(reflector, 64512), specOf(watcher, 65001)]);
    for (const p of [mesh, reflector, watcher]) p.session.start();
    await l.settle();
    l.announce(mesh, '10.244.3.0/26', { asPath: [], nextHop: nh('198.18.0.12'), localPref: 100 });
    await l.settle();
    const updatesBefore = watcher.updates;

    // The mesh goes: the route stays (stale) and nothing is withdrawn downstream.
    l.speaker.setPeers([specOf(reflector, 64512), specOf(watcher, 65001)]);
    await l.settle(1000);
    expect(l.speaker.best(prefixOf('10.244.3.0/26'))).toMatchObject({ from: '127.0.0.12', stale: true });
    expect(watcher.updates).toBe(updatesBefore);
    // The reflector's copy arrives and replaces the lingering one at once (it would lose on CLUSTER_LIST
    // length otherwise), with no gap downstream.
    l.announce(reflector, '10.244.3.0/26', {
      asPath: [],
      nextHop: nh('198.18.0.12'),
      localPref: 100,
      originatorId: nh('127.0.0.12'),
      clusterList: [CLUSTER + 1],
    });
    await l.settle(100);
    expect(l.speaker.best(prefixOf('10.244.3.0/26'))).toMatchObject({ from: '127.0.0.11', stale: false });
    await l.settle(10_000);
    expect(l.speaker.best(prefixOf('10.244.3.0/26'))).toMatchObject({ from: '127.0.0.11', stale: false });
    expect(watcher.table.has('10.244.3.0/26')).toBe(true);
  });

  it('hands over at once where another peer already offers the prefix', async () => {
    const l = await lab();
    const mesh = l.peer('127.0.0.12', 64512);
    const reflector = l.peer('127.0.0.11', 64512);
    l.speaker.setPeers([specOf(mesh, 64512), specOf(reflector, 64512)]);
    mesh.session.start();
    reflector.session.start();
    await l.settle();
    l.announce(mesh, '10.244.3.0/26', { asPath: [], nextHop: nh('198.18.0.12'), localPref: 100 });
    l.announce(reflector, '10.244.3.0/26', {
      asPath: [],
      nextHop: nh('198.18.0.12'),
      localPref: 100,
      originatorId: nh('127.0.0.12'),
      clusterList: [CLUSTER + 1],
    });
    await l.settle();
    expect(l.speaker.best(prefixOf('10.244.3.0/26'))?.from).toBe('127.0.0.12'); // the direct path wins while both exist
    l.speaker.setPeers([specOf(reflector, 64512)]);
    await l.settle(100);
    expect(l.speaker.best(prefixOf('10.244.3.0/26'))).toMatchObject({ from: '127.0.0.11', stale: false });
  });

  it('a peer that de-configures us first (Cease / Peer De-configured) leaves its routes stale until a replacement arrives; other NOTIFICATIONs withdraw at once', async () => {
    const l = await lab();
    const mesh = l.peer('127.0.0.12', 64512); // the mesh peer whose side turns the mesh off first
    const reflector = l.peer('127.0.0.11', 64512);
    const watcher = l.peer('127.0.0.31', 65001);
    l.speaker.setPeers([specOf(mesh, 64512), specOf(reflector, 64512), specOf(watcher, 65001)]);
    for (const p of [mesh, reflector, watcher]) p.session.start();
    await l.settle();
    l.announce(mesh, '10.244.3.0/26', { asPath: [], nextHop: nh('198.18.0.12'), localPref: 100 });
    l.announce(mesh, '10.244.3.64/26', { asPath: [], nextHop: nh('198.18.0.12'), localPref: 100 });
    await l.settle();
    const updatesBefore = watcher.updates;

    mesh.session.stop(CeaseSubcode.PEER_DECONFIGURED);
    await l.settle(1000);
    expect(l.speaker.best(prefixOf('10.244.3.0/26'))).toMatchObject({ from: '127.0.0.12', stale: true });
    expect(watcher.updates).toBe(updatesBefore); // nothing withdrawn downstream
    // The reflector's copy of one prefix replaces the stale one at once; the other waits for its own.
    l.announce(reflector, '10.244.3.0/26', {
      asPath: [],
      nextHop: nh('198.18.0.12'),
      localPref: 100,
      originatorId: nh('127.0.0.12'),
      clusterList: [CLUSTER + 1],
    });
    await l.settle(100);
    expect(l.speaker.best(prefixOf('10.244.3.0/26'))).toMatchObject({ from: '127.0.0.11', stale: false });
    expect(l.speaker.best(prefixOf('10.244.3.64/26'))).toMatchObject({ from: '127.0.0.12', stale: true });
    // No replacement for the second within the linger (10 s): it goes then.
    await l.settle(10_000);
    expect(l.speaker.best(prefixOf('10.244.3.64/26'))).toBeNull();
    expect(watcher.table.has('10.244.3.64/26')).toBe(false);
    expect(l.speaker.best(prefixOf('10.244.3.0/26'))).toMatchObject({ from: '127.0.0.11', stale: false });

    // An eBGP router sends the same Cease when it shuts down (GoBGP does), and its routes lead to itself:
    // withdrawn at once.
    const l3 = await lab();
    const router = l3.peer('127.0.0.31', 65001);
    l3.speaker.setPeers([specOf(router, 65001)]);
    router.session.start();
    await l3.settle();
    l3.announce(router, '10.99.0.0/24', { origin: Origin.IGP, asPath: seq(65001), nextHop: nh('198.18.0.31') });
    await l3.settle();
    expect(l3.speaker.best(prefixOf('10.99.0.0/24'))).toMatchObject({ from: '127.0.0.31' });
    router.session.stop(CeaseSubcode.PEER_DECONFIGURED);
    await l3.settle(100);
    expect(l3.speaker.best(prefixOf('10.99.0.0/24'))).toBeNull();

    // Administrative Shutdown is not a reconfiguration: withdrawn at once.
    const l2 = await lab();
    const b = l2.peer('127.0.0.12', 64512);
    l2.speaker.setPeers([specOf(b, 64512)]);
    b.session.start();
    await l2.settle();
    l2.announce(b, '10.244.6.0/26', { asPath: [], nextHop: nh('198.18.0.12'), localPref: 100 });
    await l2.settle();
    b.session.stop(CeaseSubcode.ADMINISTRATIVE_SHUTDOWN);
    await l2.settle(100);
    expect(l2.speaker.best(prefixOf('10.244.6.0/26'))).toBeNull();
  });

  it('a peer that de-configured us and comes back (no F bit) keeps its lingering routes until its End-of-RIB sweeps what it did not send again', async () => {
    const l = await lab();
    const mesh = l.peer('127.0.0.12', 64512);
    const watcher = l.peer('127.0.0.31', 65001);
    l.speaker.setPeers([specOf(mesh, 64512), specOf(watcher, 65001)]);
    mesh.session.start();
    watcher.session.start();
    await l.settle();
    l.announce(mesh, '10.244.7.0/26', { asPath: [], nextHop: nh('198.18.0.12'), localPref: 100 });
    l.announce(mesh, '10.244.7.64/26', { asPath: [], nextHop: nh('198.18.0.12'), localPref: 100 });
    await l.settle();
    const updatesBefore = watcher.updates;
    mesh.session.stop(CeaseSubcode.PEER_DECONFIGURED); // its side dropped us, and re-adds us a moment later
    await l.settle(500);
    mesh.session.start();
    for (let i = 0; i < 10 && !mesh.session.established; i++) await l.settle(1000);
    expect(mesh.session.established).toBe(true);
    // Established again, nothing re-sent yet: both still there (stale), nothing withdrawn downstream.
    expect(l.speaker.best(prefixOf('10.244.7.0/26'))).toMatchObject({ from: '127.0.0.12', stale: true });
    expect(l.speaker.best(prefixOf('10.244.7.64/26'))).toMatchObject({ from: '127.0.0.12', stale: true });
    expect(watcher.updates).toBe(updatesBefore);
    l.announce(mesh, '10.244.7.0/26', { asPath: [], nextHop: nh('198.18.0.12'), localPref: 100 });
    mesh.session.sendUpdates([encodeEndOfRib()]);
    await l.settle(100);
    expect(l.speaker.best(prefixOf('10.244.7.0/26'))).toMatchObject({ from: '127.0.0.12', stale: false });
    expect(l.speaker.best(prefixOf('10.244.7.64/26'))).toBeNull();
    await l.settle(12_000);
    expect(l.speaker.best(prefixOf('10.244.7.0/26'))).toMatchObject({ from: '127.0.0.12', stale: false });
  });

  it('withdraws them when the linger ends without a replacement; a peer added back keeps what it re-announced', async () => {
    const l = await lab();
    const a = l.peer('127.0.0.12', 64512);
    const watcher = l.peer('127.0.0.31', 65001);
    l.speaker.setPeers([specOf(a, 64512), specOf(watcher, 65001)]);
    a.session.start();
    watcher.session.start();
    await l.settle();
    l.announce(a, '10.244.4.0/26', { asPath: [], nextHop: nh('198.18.0.12'), localPref: 100 });
    l.announce(a, '10.244.5.0/26', { asPath: [], nextHop: nh('198.18.0.12'), localPref: 100 });
    await l.settle();
    // Restarted with another hold time (Cease / Other Configuration Change): it comes back and sends one prefix.
    l.speaker.setPeers([specOf(a, 64512, { holdTime: 30 }), specOf(watcher, 65001)]);
    await l.settle(100); // the Cease reaches the peer first (in-memory delivery is asynchronous)
    expect(a.session.established).toBe(false);
    for (let i = 0; i < 10 && !a.session.established; i++) await l.settle(1000);
    expect(a.session.established).toBe(true);
    expect(a.table.has('10.244.4.0/26')).toBe(false); // its own routes are never sent back to it
    l.announce(a, '10.244.4.0/26', { asPath: [], nextHop: nh('198.18.0.12'), localPref: 100 });
    a.session.sendUpdates([encodeEndOfRib()]);
    await l.settle(100);
    // Its End-of-RIB ends the linger at once: what it did not send again is gone, what it did stays.
    expect(l.speaker.best(prefixOf('10.244.5.0/26'))).toBeNull();
    expect(l.speaker.best(prefixOf('10.244.4.0/26'))).toMatchObject({ from: '127.0.0.12', stale: false });
    await l.settle(12_000);
    expect(l.speaker.best(prefixOf('10.244.4.0/26'))).toMatchObject({ from: '127.0.0.12', stale: false });
    expect(l.speaker.best(prefixOf('10.244.5.0/26'))).toBeNull();
    expect(watcher.table.has('10.244.4.0/26')).toBe(true);
    expect(watcher.table.has('10.244.5.0/26')).toBe(false);

    const l2 = await lab({ deconfiguredLingerMs: 0 });
    const b = l2.peer('127.0.0.12', 64512);
    l2.speaker.setPeers([specOf(b, 64512)]);
    b.session.start();
    await l2.settle();
    l2.announce(b, '10.244.6.0/26', { asPath: [], nextHop: nh('198.18.0.12'), localPref: 100 });
    await l2.settle();
    l2.speaker.setPeers([]);
    expect(l2.speaker.best(prefixOf('10.244.6.0/26'))).toBeNull(); // linger 0: at once
  });
});

describe('Speaker: ROUTE-REFRESH (RFC 2918)', () => {
  it('sends the whole table again when a peer asks', async () => {
    const l = await lab();
    const a = l.peer('127.0.0.11', 65001);
    l.speaker.setOriginated([
      { prefix: prefixOf('10.244.1.0/26'), attrs: { origin: Origin.IGP, nextHop: nh('198.18.0.1') } },
      { prefix: prefixOf('10.244.1.64/26'), attrs: { origin: Origin.IGP, nextHop: nh('198.18.0.1') } },
    ]);
    l.speaker.setPeers([specOf(a, 65001)]);
    a.session.start();
    await l.settle();
    const before = a.updates;
    a.table.clear();
    expect(a.session.sendRouteRefresh()).toBe(true);
    await l.settle();
    expect(a.updates).toBeGreaterThan(before);
    expect([...a.table.keys()].sort()).toEqual(['10.244.1.0/26', '10.244.1.64/26']);
  });

  it('asks a peer to resend, on request', async () => {
    const l = await lab();
    const a = l.peer('127.0.0.11', 65001);
    let asked = 0;
    a.session.on('routeRefresh', () => asked++);
    l.speaker.setPeers([specOf(a, 65001)]);
    a.session.start();
    await l.settle();
    expect(l.speaker.refresh('127.0.0.11')).toBe(true);
    await l.settle();
    expect(asked).toBe(1);
  });

  it('answers at most once per interval (5 s): requests in between are coalesced into one answer at its end', async () => {
    const l = await lab();
    const a = l.peer('127.0.0.11', 65001);
    l.speaker.setOriginated([
      { prefix: prefixOf('10.244.1.0/26'), attrs: { origin: Origin.IGP, nextHop: nh('198.18.0.1') } },
    ]);
    l.speaker.setPeers([specOf(a, 65001)]);
    a.session.start();
    await l.settle();
    const sent: number[] = [];
    a.session.on('update', (e) => {
      if (e.announced.length > 0) sent.push(l.clock.now());
    });
    const start = l.clock.now();
    for (let i = 0; i < 10; i++) {
      a.session.sendRouteRefresh();
      await l.settle(100);
    }
    expect(sent.map((t) => t - start)).toEqual([0]); // the first at once; nine more within 1 s: one answer, later
    await l.clock.advanceAsync(4000);
    expect(sent.map((t) => t - start)).toEqual([0, 5000]);
    await l.clock.advanceAsync(10_000);
    expect(sent).toHaveLength(2);
    a.session.sendRouteRefresh(); // after a quiet interval: at once again
    await l.settle(10);
    expect(sent).toHaveLength(3);
  });
});

describe('Speaker: maximum prefixes per peer (RFC 4486 Cease subcode 1)', () => {
  it('one prefix over the limit: Cease 6/1 with AFI, SAFI and the limit; the routes leave; no reconnect for the restart delay', async () => {
    const l = await lab({ prefixLimitRestartMs: 60_000 });
    const a = l.peer('127.0.0.11', 65001);
    const notes: Array<{ code: number; subcode: number; data: Uint8Array }> = [];
    a.session.on('notification', (e) => notes.push(e));
    const ups: number[] = [];
    a.session.on('state', (e) => {
      if (e.to === 'Established') ups.push(l.clock.now());
    });
    l.speaker.setPeers([specOf(a, 65001, { maxPrefixes: 3 })]);
    a.session.start();
    await l.settle();
    for (const p of ['10.1.1.0/24', '10.1.2.0/24', '10.1.3.0/24'])
      l.announce(a, p, { asPath: seq(65001), nextHop: nh('198.18.0.11') });
    await l.settle();
    expect(l.speaker.bestRoutes()).toHaveLength(3); // at the limit: fine
    expect(notes).toEqual([]);

    const cutAt = l.clock.now();
    l.announce(a, '10.1.4.0/24', { asPath: seq(65001), nextHop: nh('198.18.0.11') });
    await l.settle(10);
    expect(notes).toEqual([expect.objectContaining({ code: 6, subcode: 1, data: Uint8Array.of(0, 1, 1, 0, 0, 0, 3) })]);
    expect(l.speaker.bestRoutes()).toEqual([]);
    expect(l.speaker.peerStatus()[0]?.lastError).toContain('more than the limit of 3');

    // The peer keeps trying (its own error wait: 5, 10, 20 s …); tortie refuses it until 60 s have passed.
    await l.clock.advanceAsync(59_000);
    expect(ups).toHaveLength(1);
    expect(a.conns.length).toBeGreaterThan(1); // it did try
    await l.clock.advanceAsync(30_000);
    expect(ups).toHaveLength(2);
    expect(ups[1]! - cutAt).toBeGreaterThanOrEqual(60_000);
  });

  it('the limit counts what the peer sent, withdrawals included, per peer; the default is 500 000', async () => {
    const l = await lab({ maxPrefixes: 2 });
    const a = l.peer('127.0.0.11', 65001);
    const b = l.peer('127.0.0.12', 65002);
    l.speaker.setPeers([specOf(a, 65001), specOf(b, 65002)]);
    a.session.start();
    b.session.start();
    await l.settle();
    l.announce(a, '10.1.1.0/24', { asPath: seq(65001), nextHop: nh('198.18.0.11') });
    l.announce(a, '10.1.2.0/24', { asPath: seq(65001), nextHop: nh('198.18.0.11') });
    l.withdraw(a, '10.1.1.0/24');
    l.announce(a, '10.1.3.0/24', { asPath: seq(65001), nextHop: nh('198.18.0.11') });
    l.announce(b, '10.2.1.0/24', { asPath: seq(65002), nextHop: nh('198.18.0.12') });
    l.announce(b, '10.2.2.0/24', { asPath: seq(65002), nextHop: nh('198.18.0.12') });
    await l.settle();
    expect(l.speaker.peerStatus().map((p) => p.state)).toEqual(['Established', 'Established']);
    expect(l.speaker.bestRoutes()).toHaveLength(4);
    expect(DEFAULT_MAX_PREFIXES).toBe(500_000);
  });
});

describe('Speaker: third-party next hops toward eBGP peers one IP hop away (RFC 4271 §5.1.3 (2))', () => {
  // tortie is 127.0.0.1 on 127.0.0.0/24 (the subnet every eBGP spec below names). Two iBGP "nodes" on it;
  // eBGP routers of one AS: two on the subnet, one beyond it, one on it with next-hop self, one given no
  // subnet; and a router of another AS on the subnet.
  const SUBNET = '127.0.0.1/24';
  async function office() {
    const l = await lab();
    const node2 = l.peer('127.0.0.2', 64512);
    const node3 = l.peer('127.0.0.3', 64512);
    const r1 = l.peer('127.0.0.31', 65001);
    const r2 = l.peer('127.0.0.32', 65001);
    const far = l.peer('127.0.1.33', 65001);
    const self = l.peer('127.0.0.34', 65001);
    const plain = l.peer('127.0.0.35', 65001);
    const other = l.peer('127.0.0.41', 65002);
    l.speaker.setPeers([
      specOf(node2, 64512, { subnet: SUBNET }),
      specOf(node3, 64512),
      specOf(r1, 65001, { subnet: SUBNET }),
      specOf(r2, 65001, { subnet: SUBNET }),
      specOf(far, 65001, { subnet: SUBNET }),
      specOf(self, 65001, { subnet: SUBNET, nextHop: 'self' }),
      specOf(plain, 65001),
      specOf(other, 65002, { subnet: SUBNET }),
    ]);
    const all = [node2, node3, r1, r2, far, self, plain, other];
    for (const p of all) p.session.start();
    await l.settle();
    for (const p of all) expect(p.session.established, p.address).toBe(true);
    return { ...l, node2, node3, r1, r2, far, self, plain, other };
  }

  it('passes a next hop inside the subnet on unchanged to routers on it, ours otherwise; one group per such router', async () => {
    const l = await office();
    const { node2, node3, r1, r2, far, self, plain, other } = l;
    // node-2's block with node-2 as next hop; node-3 names one elsewhere; a route whose next hop is r1.
    l.announce(node2, '10.244.2.0/26', { asPath: [], nextHop: nh('127.0.0.2'), localPref: 100 });
    l.announce(node3, '10.244.3.0/26', { asPath: [], nextHop: nh('198.18.0.3'), localPref: 100 });
    l.announce(node2, '10.244.4.0/26', { asPath: [], nextHop: nh('127.0.0.31'), localPref: 100 });
    // From the router of the other AS: its own next hop (the second form of §5.1.3 (2)), and one it set to r1.
    l.announce(other, '192.0.2.0/24', { asPath: seq(65002), nextHop: nh('127.0.0.41') });
    l.announce(other, '198.51.100.0/24', { asPath: seq(65002), nextHop: nh('127.0.0.31') });
    await l.settle();

    const ours = '127.0.0.1';
    const nextHops = (p: Peer) =>
      Object.fromEntries(
        [...p.table].map(([prefix, attrs]) => [
          prefix,
          attrs.nextHop === undefined ? undefined : formatIpv4(attrs.nextHop),
        ]),
      );
    expect(nextHops(r1)).toEqual({
      '10.244.2.0/26': '127.0.0.2',
      '10.244.3.0/26': ours,
      '10.244.4.0/26': ours, // its own address: never its next hop
      '192.0.2.0/24': '127.0.0.41',
      '198.51.100.0/24': ours,
    });
    expect(nextHops(r2)).toEqual({
      '10.244.2.0/26': '127.0.0.2',
      '10.244.3.0/26': ours,
      '10.244.4.0/26': '127.0.0.31',
      '192.0.2.0/24': '127.0.0.41',
      '198.51.100.0/24': '127.0.0.31',
    });
    const allOurs = {
      '10.244.2.0/26': ours,
      '10.244.3.0/26': ours,
      '10.244.4.0/26': ours,
      '192.0.2.0/24': ours,
      '198.51.100.0/24': ours,
    };
    expect(nextHops(far)).toEqual(allOurs); // beyond the subnet: not one hop away
    expect(nextHops(self)).toEqual(allOurs); // next-hop self
    expect(nextHops(plain)).toEqual(allOurs); // no subnet given
    // The other AS's router gets the iBGP routes the same way (its own routes never go back to it).
    expect(nextHops(other)).toEqual({
      '10.244.2.0/26': '127.0.0.2',
      '10.244.3.0/26': ours,
      '10.244.4.0/26': '127.0.0.31',
    });
    // iBGP peers get eBGP routes with their next hop unchanged (RFC 4271 §5.1.3 (1)), subnet or not, and
    // nothing of each other's (iBGP split horizon, as ever).
    expect(nextHops(node3)).toEqual({ '192.0.2.0/24': '127.0.0.41', '198.51.100.0/24': '127.0.0.31' });
    expect(nextHops(node2)).toEqual({ '192.0.2.0/24': '127.0.0.41', '198.51.100.0/24': '127.0.0.31' }); // its subnet does not matter

    // The next hop moves off the subnet: r1 and r2 now get ours, and only for that prefix.
    const before = { r1: r1.updates, r2: r2.updates };
    l.announce(node2, '10.244.2.0/26', { asPath: [], nextHop: nh('198.18.0.2'), localPref: 100 });
    await l.settle();
    expect(r1.table.get('10.244.2.0/26')?.nextHop).toBe(nh(ours));
    expect(r2.table.get('10.244.2.0/26')?.nextHop).toBe(nh(ours));
    expect(r1.updates - before.r1).toBe(1);
    expect(r2.updates - before.r2).toBe(1);
  });

  it('a changed subnet restarts only that session, and its next hops follow', async () => {
    const l = await office();
    const { node2, r1, r2 } = l;
    l.announce(node2, '10.244.2.0/26', { asPath: [], nextHop: nh('127.0.0.2'), localPref: 100 });
    await l.settle();
    expect(r1.table.get('10.244.2.0/26')?.nextHop).toBe(nh('127.0.0.2'));
    const notifications: Array<{ peer: string; subcode: number }> = [];
    l.speaker.on('notification', (e) => notifications.push({ peer: e.peer, subcode: e.subcode }));
    const specs = [
      specOf(node2, 64512, { subnet: SUBNET }),
      specOf(l.node3, 64512),
      specOf(r1, 65001, { subnet: '127.0.0.1/31' }), // r1 is no longer inside it
      specOf(r2, 65001, { subnet: SUBNET }),
      specOf(l.far, 65001, { subnet: SUBNET }),
      specOf(l.self, 65001, { subnet: SUBNET, nextHop: 'self' }),
      specOf(l.plain, 65001),
      specOf(l.other, 65002, { subnet: SUBNET }),
    ];
    l.speaker.setPeers(specs);
    await l.settle(100);
    expect(notifications).toEqual([{ peer: '127.0.0.31', subcode: 6 }]); // Cease / Other Configuration Change
    for (let i = 0; i < 10 && !r1.session.established; i++) await l.settle(1000);
    expect(r1.session.established).toBe(true);
    expect(r1.table.get('10.244.2.0/26')?.nextHop).toBe(nh('127.0.0.1'));
    expect(r2.table.get('10.244.2.0/26')?.nextHop).toBe(nh('127.0.0.2'));
  });

  it('refuses a subnet that is not a.b.c.d/len before changing anything, naming the peer and the value', async () => {
    const l = await lab();
    const r1 = l.peer('127.0.0.31', 65001);
    l.speaker.setPeers([specOf(r1, 65001)]);
    expect(() => l.speaker.setPeers([specOf(r1, 65001, { subnet: '127.0.0.1' })])).toThrow(
      'peer 127.0.0.31 subnet "127.0.0.1" has no prefix length (expected a.b.c.d/len, like 10.244.1.0/26)',
    );
    expect(() => l.speaker.setPeers([specOf(r1, 65001, { subnet: '127.0.0.1/33' })])).toThrow(
      /peer 127\.0\.0\.31 subnet "127\.0\.0\.1\/33": prefix length "33" is not 0\.\.32/,
    );
    expect(l.speaker.peerStatus().map((p) => p.address)).toEqual(['127.0.0.31']);
  });
});
