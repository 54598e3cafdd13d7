// The Speaker on fake time over an in-memory network: desired-vs-advertised routes per peer (only
// differences go out; everything again plus End-of-RIB after a reconnect), iBGP/eBGP export attributes,
// peers reconfigured as a diff, RFC 4271 §6.8 collision resolution, and connections from strangers refused.

import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../../bgp/clock.js';
import { parseIpv4, parsePrefix } from '../../bgp/ip.js';
import { Speaker, type Acceptor, type PeerSpec, type SpeakerEvents } from '../../bgp/speaker.js';
import { Session } from '../../bgp/session.js';
import { MemoryNetwork, type Connection } from '../../bgp/transport.js';
import { AsPathSegmentType, Origin, type PathAttributes } from '../../bgp/types.js';

type Event = { [K in keyof SpeakerEvents]: { kind: K; data: SpeakerEvents[K][0] } }[keyof SpeakerEvents];

interface Node {
  speaker: Speaker;
  events: Event[];
  address: string;
}

const speakers: Speaker[] = [];
afterEach(async () => {
  for (const s of speakers.splice(0)) await s.stop();
});

function memoryAcceptor(net: MemoryNetwork): Acceptor {
  return async (address, port, onConnection) => {
    const close = net.listen(address, port, onConnection);
    return async () => close();
  };
}

async function node(net: MemoryNetwork, clock: FakeClock, address: string, asn: number): Promise<Node> {
  const speaker = new Speaker({
    routerId: parseIpv4(address),
    localAs: asn,
    listen: { address, port: 179 },
    clock,
    transport: net.transport(address),
    acceptor: memoryAcceptor(net),
    connectRetryMs: 5000,
  });
  speakers.push(speaker);
  const events: Event[] = [];
  speaker.on('state', (data) => events.push({ kind: 'state', data }));
  speaker.on('update', (data) => events.push({ kind: 'update', data }));
  speaker.on('endOfRib', (data) => events.push({ kind: 'endOfRib', data }));
  speaker.on('notification', (data) => events.push({ kind: 'notification', data }));
  await speaker.start();
  return { speaker, events, address };
}

const route = (prefix: string, attrs: PathAttributes = {}) => ({
  prefix: parsePrefix(prefix),
  attrs: { origin: Origin.IGP, nextHop: parseIpv4('198.18.0.1'), ...attrs },
});

function updates(n: Node) {
  return n.events.filter((e): e is Extract<Event, { kind: 'update' }> => e.kind === 'update').map((e) => e.data);
}
function established(n: Node, peer: string): boolean {
  return n.speaker.peerStatus().find((p) => p.address === peer)?.state === 'Established';
}

async function pair(options: { aAs?: number; bAs?: number; bPassive?: boolean; aPassive?: boolean } = {}) {
  const net = new MemoryNetwork();
  const clock = new FakeClock(1_000_000);
  const a = await node(net, clock, '127.0.0.1', options.aAs ?? 64512);
  const b = await node(net, clock, '127.0.0.2', options.bAs ?? 65001);
  const aSpec: PeerSpec = { address: b.address, peerAs: options.bAs ?? 65001, passive: options.aPassive ?? false };
  const bSpec: PeerSpec = { address: a.address, peerAs: options.aAs ?? 64512, passive: options.bPassive ?? true };
  return { net, clock, a, b, aSpec, bSpec };
}

describe('Speaker', () => {
  it('sends originated routes to an eBGP peer with our AS and no LOCAL_PREF, then End-of-RIB', async () => {
    const { clock, a, b, aSpec, bSpec } = await pair();
    a.speaker.setOriginated([route('10.244.1.0/26'), route('10.244.1.64/26')]);
    b.speaker.setPeers([bSpec]);
    a.speaker.setPeers([aSpec]);
    await clock.advanceAsync(100);
    expect(established(a, b.address) && established(b, a.address)).toBe(true);

    const got = updates(b).flatMap((u) => u.announced);
    expect(got.map((r) => r.prefix)).toEqual([parsePrefix('10.244.1.0/26'), parsePrefix('10.244.1.64/26')]);
    expect(got[0]!.attrs.asPath).toEqual([{ type: AsPathSegmentType.AS_SEQUENCE, asns: [64512] }]);
    expect(got[0]!.attrs.localPref).toBeUndefined();
    expect(got[0]!.attrs.nextHop).toBe(parseIpv4('198.18.0.1'));
    expect(b.events.some((e) => e.kind === 'endOfRib')).toBe(true);
  });

  it('sends iBGP peers an empty AS_PATH, LOCAL_PREF 100, and our address as next hop when none is set', async () => {
    const { clock, a, b, aSpec, bSpec } = await pair({ aAs: 64512, bAs: 64512 });
    a.speaker.setOriginated([{ prefix: parsePrefix('10.244.2.0/26'), attrs: { origin: Origin.IGP } }]);
    b.speaker.setPeers([bSpec]);
    a.speaker.setPeers([aSpec]);
    await clock.advanceAsync(100);
    const [r] = updates(b).flatMap((u) => u.announced);
    expect(r?.attrs.asPath).toEqual([]);
    expect(r?.attrs.localPref).toBe(100);
    expect(r?.attrs.nextHop).toBe(parseIpv4(a.address));
  });

  it('sends only the difference when the originated set changes', async () => {
    const { clock, a, b, aSpec, bSpec } = await pair();
    a.speaker.setOriginated([route('10.0.1.0/24'), route('10.0.2.0/24'), route('10.0.3.0/24')]);
    b.speaker.setPeers([bSpec]);
    a.speaker.setPeers([aSpec]);
    await clock.advanceAsync(100);
    const before = updates(b).length;

    // 10.0.1.0 unchanged, 10.0.2.0 gets a MED, 10.0.3.0 goes, 10.0.4.0 comes.
    a.speaker.setOriginated([route('10.0.1.0/24'), route('10.0.2.0/24', { med: 7 }), route('10.0.4.0/24')]);
    await clock.advanceAsync(100);
    const after = updates(b).slice(before);
    const announced = after.flatMap((u) => u.announced.map((r) => r.prefix));
    const withdrawn = after.flatMap((u) => u.withdrawn);
    expect(announced).toEqual(expect.arrayContaining([parsePrefix('10.0.2.0/24'), parsePrefix('10.0.4.0/24')]));
    expect(announced).toHaveLength(2);
    expect(withdrawn).toEqual([parsePrefix('10.0.3.0/24')]);
    expect(
      after.flatMap((u) => u.announced).find((r) => r.prefix.addr === parsePrefix('10.0.2.0/24').addr)?.attrs.med,
    ).toBe(7);

    // Setting the same set again sends nothing.
    const settled = updates(b).length;
    a.speaker.setOriginated([route('10.0.1.0/24'), route('10.0.2.0/24', { med: 7 }), route('10.0.4.0/24')]);
    await clock.advanceAsync(100);
    expect(updates(b).length).toBe(settled);
  });

  it('sends everything again, then End-of-RIB, after the session comes back', async () => {
    const { clock, a, b, aSpec, bSpec } = await pair();
    a.speaker.setOriginated([route('10.0.1.0/24'), route('10.0.2.0/24')]);
    b.speaker.setPeers([bSpec]);
    a.speaker.setPeers([aSpec]);
    await clock.advanceAsync(100);
    // b's operator changes the hold time: b restarts that session (Cease / Other Configuration Change).
    const mark = b.events.length;
    b.speaker.setPeers([{ ...bSpec, holdTime: 30 }]);
    await clock.advanceAsync(20_000);
    expect(established(a, b.address) && established(b, a.address)).toBe(true);
    const again = b.events.slice(mark);
    expect(
      again.some(
        (e) => e.kind === 'notification' && e.data.direction === 'sent' && e.data.code === 6 && e.data.subcode === 6,
      ),
    ).toBe(true);
    const prefixes = again.flatMap((e) => (e.kind === 'update' ? e.data.announced.map((r) => r.prefix) : []));
    expect(prefixes).toEqual([parsePrefix('10.0.1.0/24'), parsePrefix('10.0.2.0/24')]);
    expect(again.some((e) => e.kind === 'endOfRib')).toBe(true);
  });

  it('leaves unchanged peers alone when the peer set changes, and de-configures removed ones', async () => {
    const net = new MemoryNetwork();
    const clock = new FakeClock(1_000_000);
    const a = await node(net, clock, '127.0.0.1', 64512);
    const b = await node(net, clock, '127.0.0.2', 65001);
    const c = await node(net, clock, '127.0.0.3', 65002);
    b.speaker.setPeers([{ address: a.address, peerAs: 64512, passive: true }]);
    c.speaker.setPeers([{ address: a.address, peerAs: 64512, passive: true }]);
    const toB = { address: b.address, peerAs: 65001 };
    const toC = { address: c.address, peerAs: 65002 };
    a.speaker.setPeers([toB, toC]);
    await clock.advanceAsync(100);
    expect(established(a, b.address) && established(a, c.address)).toBe(true);

    const mark = a.events.length;
    a.speaker.setPeers([{ ...toB }]); // same parameters for b, c removed
    await clock.advanceAsync(100);
    const changes = a.events.slice(mark);
    expect(changes.filter((e) => e.kind === 'state' && e.data.peer === b.address)).toEqual([]);
    expect(
      c.events.some(
        (e) =>
          e.kind === 'notification' && e.data.direction === 'received' && e.data.code === 6 && e.data.subcode === 3,
      ),
    ).toBe(true);
    expect(a.speaker.peerStatus().map((p) => p.address)).toEqual([b.address]);
  });

  // RFC 4271 §6.8. The remote router is two raw Sessions on 127.0.0.2: `s1` answers tortie's outbound
  // connection, `s2` opens a second connection toward tortie while tortie's own is in OpenSent.
  async function collision(localAddress: string) {
    const net = new MemoryNetwork();
    const clock = new FakeClock(1_000_000);
    const a = await node(net, clock, localAddress, 64512);
    const remote = (passive: boolean) =>
      new Session({
        localAs: 65001,
        peerAs: 64512,
        routerId: parseIpv4('127.0.0.2'),
        peerAddress: localAddress,
        passive,
        clock,
        transport: net.transport('127.0.0.2'),
      });
    const s1 = remote(true);
    const s2 = remote(false);
    const seen: Record<string, Array<{ direction: string; code: number; subcode: number }>> = { s1: [], s2: [] };
    s1.on('notification', (n) => seen.s1!.push(n));
    s2.on('notification', (n) => seen.s2!.push(n));
    s1.start();
    net.listen('127.0.0.2', 179, (conn) => void s1.acceptConnection(conn));
    let opened = false;
    a.speaker.on('state', (e) => {
      if (e.to === 'OpenSent' && !opened) {
        opened = true;
        s2.start();
      }
    });
    a.speaker.setPeers([{ address: '127.0.0.2', peerAs: 65001 }]);
    for (let i = 0; i < 10 && !established(a, '127.0.0.2'); i++) await clock.advanceAsync(100);
    return { a, s1, s2, seen, clock };
  }

  it('collision, the peer has the higher BGP identifier: its connection survives, ours gets Cease/7 (RFC 4271 §6.8)', async () => {
    const { a, s1, s2, seen, clock } = await collision('127.0.0.1');
    expect(established(a, '127.0.0.2')).toBe(true);
    expect(s2.established).toBe(true);
    expect(s1.established).toBe(false);
    expect(seen.s1).toContainEqual(expect.objectContaining({ direction: 'received', code: 6, subcode: 7 }));
    // Once the surviving (inbound) session ends, tortie goes back to connecting out itself.
    const mark = a.events.length;
    s2.stop();
    await clock.advanceAsync(10_000);
    expect(a.events.slice(mark).some((e) => e.kind === 'state' && e.data.to === 'Connect')).toBe(true);
    s1.stop();
  });

  it("collision, we have the higher BGP identifier: our connection survives, the peer's gets Cease/7 (RFC 4271 §6.8)", async () => {
    const { a, s1, s2, seen } = await collision('127.0.0.9');
    expect(established(a, '127.0.0.2')).toBe(true);
    expect(s1.established).toBe(true);
    expect(s2.established).toBe(false);
    expect(seen.s2).toContainEqual(expect.objectContaining({ direction: 'received', code: 6, subcode: 7 }));
    s1.stop();
    s2.stop();
  });

  it('two peers on one address, different ports: two sessions, two sources; inbound goes to the lowest port', async () => {
    const net = new MemoryNetwork();
    const clock = new FakeClock(1_000_000);
    const a = await node(net, clock, '127.0.0.1', 64512);
    // Two speakers on 127.0.0.2: one on port 179 (it connects to us), one on 1179 (passive: we connect to it).
    const low = await node(net, clock, '127.0.0.2', 65001);
    const high = new Speaker({
      routerId: parseIpv4('127.0.0.3'),
      localAs: 65002,
      listen: { address: '127.0.0.2', port: 1179 },
      clock,
      transport: net.transport('127.0.0.2'),
      acceptor: memoryAcceptor(net),
    });
    speakers.push(high);
    await high.start();
    const highUpdates: Array<SpeakerEvents['update'][0]> = [];
    high.on('update', (e) => highUpdates.push(e));
    low.speaker.setPeers([{ address: '127.0.0.1', peerAs: 64512 }]);
    high.setPeers([{ address: '127.0.0.1', peerAs: 64512, passive: true }]);
    low.speaker.setOriginated([route('10.1.0.0/24')]);
    high.setOriginated([route('10.2.0.0/24')]);
    a.speaker.setOriginated([route('10.244.1.0/26')]);
    // We wait for the low one (its connection arrives from an ephemeral port) and connect to the high one.
    a.speaker.setPeers([
      { address: '127.0.0.2', port: 179, peerAs: 65001, passive: true },
      { address: '127.0.0.2', port: 1179, peerAs: 65002 },
    ]);
    await clock.advanceAsync(200);
    const rows = a.speaker
      .peerStatus()
      .map((p) => `${p.address}:${p.port} AS${p.peerAs} ${p.state} ${p.routesReceived}`);
    expect(rows.sort()).toEqual(['127.0.0.2:1179 AS65002 Established 1', '127.0.0.2:179 AS65001 Established 1']);
    const ports = a.events
      .filter((e) => e.kind === 'state' && e.data.to === 'Established')
      .map((e) => (e.kind === 'state' ? e.data.port : 0));
    expect(ports.sort()).toEqual([1179, 179]);
    // Both routes are in the Loc-RIB, each from its own session (one address, two sources).
    expect(
      a.speaker
        .bestRoutes()
        .map((r) => `${r.prefix.addr}/${r.prefix.len} from ${r.from}`)
        .filter((r) => !r.includes('null')).length,
    ).toBe(2);
    expect(a.speaker.receivedRoutes('127.0.0.2', 1179).map((r) => r.prefix.len)).toEqual([24]);
    expect(a.speaker.receivedRoutes('127.0.0.2', 1179)[0]!.prefix.addr).toBe(parseIpv4('10.2.0.0'));
    expect(a.speaker.receivedRoutes('127.0.0.2')[0]!.prefix.addr).toBe(parseIpv4('10.1.0.0')); // no port: the inbound peer
    // Not "back to the sender": the route of the one on 179 goes to the one on 1179 (another speaker).
    const heard = highUpdates.flatMap((u) => u.announced.map((r) => r.prefix.addr));
    expect(heard).toContain(parseIpv4('10.1.0.0'));
    expect(heard).toContain(parseIpv4('10.244.1.0'));
    expect(heard).not.toContain(parseIpv4('10.2.0.0'));
    // Removing one leaves the other alone; its route goes, the other's stays.
    a.speaker.setPeers([{ address: '127.0.0.2', port: 179, peerAs: 65001, passive: true }]);
    await clock.advanceAsync(20_000);
    expect(a.speaker.peerStatus().map((p) => `${p.port} ${p.state}`)).toEqual(['179 Established']);
    expect(a.speaker.best(parsePrefix('10.2.0.0/24'))).toBeNull();
    expect(a.speaker.best(parsePrefix('10.1.0.0/24'))?.from).toBe('127.0.0.2');
  });

  it('closes connections from addresses that are not configured peers', async () => {
    const net = new MemoryNetwork();
    const clock = new FakeClock();
    const a = await node(net, clock, '127.0.0.1', 64512);
    const stranger = net.transport('127.0.0.66');
    const conn: Connection = await stranger.connect({ remoteAddress: '127.0.0.1', remotePort: 179 });
    let closed = false;
    conn.on('close', () => (closed = true));
    await clock.advanceAsync(10);
    expect(closed).toBe(true);
    expect(a.events).toEqual([]);
  });

  it('refuses to start when the listen address is taken, naming it', async () => {
    const net = new MemoryNetwork();
    const clock = new FakeClock();
    await node(net, clock, '127.0.0.1', 64512);
    await expect(node(net, clock, '127.0.0.1', 64512)).rejects.toThrow(/127\.0\.0\.1:179/);
  });
});
