// Two Session objects over in-memory connections on fake time: OPEN exchange, keepalives, UPDATEs, hold
// timer, OPEN checks, malformed UPDATEs, stop, collision dump, backoff, back-pressure ordering.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../bgp/clock.js';
import {
  decodeMessage,
  encodeEndOfRib,
  encodeUpdates,
  encodeWithdrawals,
  MessageFramer,
} from '../../bgp/codec/index.js';
import { BgpError, isBgpError } from '../../bgp/errors.js';
import { encodeMessage } from '../../bgp/codec/index.js';
import { parseIpv4, parsePrefix, prefixKey } from '../../bgp/ip.js';
import { checkOpen, collisionSurvivor } from '../../bgp/negotiation.js';
import type { AdjRibIn } from '../../bgp/rib/index.js';
import { Session, type NotificationEvent, type SessionConfig, type StateChange } from '../../bgp/session.js';
import {
  MemoryNetwork,
  memoryPair,
  type Connection,
  type ConnectionEvents,
  type Transport,
} from '../../bgp/transport.js';
import type { BgpMessage, OpenMessage, PathAttributes } from '../../bgp/types.js';
import { sessionRib, type SessionRibHooks } from './helpers/session-rib.js';

const A_ADDR = '127.0.0.1';
const B_ADDR = '127.0.0.2';

interface Lab {
  clock: FakeClock;
  net: MemoryNetwork;
  a: Session;
  b: Session;
  /** B's end of each inbound connection, in order. */
  inbound: Connection[];
  /** A's end of each outbound connection. */
  outbound: Connection[];
  connects: number[];
  events: { a: StateChange[]; b: StateChange[]; aNotes: NotificationEvent[]; bNotes: NotificationEvent[] };
  /** B's Adj-RIB-In of what A announced (the Session keeps none; helpers/session-rib.ts). */
  rib: AdjRibIn;
}

/** A actively connects to B (passive, listening on B_ADDR:179). */
function lab(
  aOver: Partial<SessionConfig> = {},
  bOver: Partial<SessionConfig> = {},
  ribHooks: SessionRibHooks = {},
): Lab {
  const clock = new FakeClock(1_000_000);
  const net = new MemoryNetwork();
  const inbound: Connection[] = [];
  const connects: number[] = [];
  const outbound: Connection[] = [];
  const base = net.transport(A_ADDR);
  const counting: Transport = {
    connect: async (o) => {
      connects.push(clock.now());
      const conn = await base.connect(o);
      outbound.push(conn);
      return conn;
    },
  };
  const a = new Session({
    localAs: 65001,
    peerAs: 65002,
    routerId: parseIpv4('1.1.1.1'),
    peerAddress: B_ADDR,
    holdTime: 30,
    jitter: 0,
    clock,
    transport: counting,
    ...aOver,
  });
  const b = new Session({
    localAs: 65002,
    peerAs: 65001,
    routerId: parseIpv4('2.2.2.2'),
    peerAddress: A_ADDR,
    passive: true,
    jitter: 0,
    clock,
    transport: net.transport(B_ADDR),
    ...bOver,
  });
  net.listen(B_ADDR, 179, (conn) => {
    inbound.push(conn);
    if (!b.acceptConnection(conn)) conn.destroy();
  });
  const events = {
    a: [] as StateChange[],
    b: [] as StateChange[],
    aNotes: [] as NotificationEvent[],
    bNotes: [] as NotificationEvent[],
  };
  a.on('state', (e) => events.a.push(e));
  b.on('state', (e) => events.b.push(e));
  a.on('notification', (e) => events.aNotes.push(e));
  b.on('notification', (e) => events.bNotes.push(e));
  const rib = sessionRib(
    b,
    { address: parseIpv4(A_ADDR), routerId: parseIpv4('1.1.1.1'), asn: 65001, ebgp: true, rrClient: false },
    ribHooks,
  );
  return { clock, net, a, b, inbound, outbound, connects, events, rib };
}

async function up(l: Lab): Promise<void> {
  l.b.start();
  l.a.start();
  await l.clock.advanceAsync(0);
  expect(l.a.state).toBe('Established');
  expect(l.b.state).toBe('Established');
}

const attrs: PathAttributes = { origin: 0, asPath: [{ type: 2, asns: [65001] }], nextHop: parseIpv4('198.18.0.1') };
const prefixes = ['10.244.1.0/26', '10.244.1.64/26', '10.244.2.0/26'].map((p) => parsePrefix(p));

/** Hand-built UPDATE bytes (header + body), independent of the production encoder. */
function rawUpdate(withdrawn: number[], pathAttrs: number[], nlri: number[]): Uint8Array {
  const body = [
    withdrawn.length >> 8,
    withdrawn.length & 255,
    ...withdrawn,
    pathAttrs.length >> 8,
    pathAttrs.length & 255,
    ...pathAttrs,
    ...nlri,
  ];
  const len = 19 + body.length;
  return Uint8Array.from([...new Array<number>(16).fill(0xff), len >> 8, len & 255, 2, ...body]);
}

function decodeAll(chunks: Uint8Array[]): BgpMessage[] {
  const framer = new MessageFramer();
  const out: BgpMessage[] = [];
  for (const c of chunks) for (const m of framer.push(c)) out.push(decodeMessage(m, { fourOctetAs: true }).message);
  return out;
}

describe('Session: OPEN exchange and keepalives', () => {
  it('reaches Established and negotiates hold, keepalive and capabilities', async () => {
    const l = lab({ gracefulRestart: { restartTime: 120, forwardingState: true } });
    const opens: number[] = [];
    l.b.on('open', (e) => opens.push(e.bgpId));
    await up(l);
    expect(l.events.a.map((e) => e.to)).toEqual(['Connect', 'OpenSent', 'OpenConfirm', 'Established']);
    expect(l.events.b.map((e) => e.to)).toEqual(['Active', 'OpenSent', 'OpenConfirm', 'Established']);
    expect(opens).toEqual([parseIpv4('1.1.1.1')]);
    expect(l.b.peerBgpId).toBe(parseIpv4('1.1.1.1'));
    for (const s of [l.a, l.b]) {
      expect(s.negotiated).toMatchObject({
        holdTime: 30,
        keepaliveTime: 10,
        fourOctetAs: true,
        routeRefresh: true,
        ebgp: true,
        families: [{ afi: 1, safi: 1 }],
      });
      expect(s.codecContext).toEqual({ fourOctetAs: true, ebgp: true });
      expect(s.stats.establishedSince).toBe(1_000_000);
    }
    expect(l.b.negotiated?.gracefulRestart).toMatchObject({
      restartTime: 120,
      families: [{ afi: 1, safi: 1, forwardingState: true }],
    });
    expect(l.a.negotiated?.gracefulRestart).toBeUndefined();
    expect(l.a.localAddress).toBe(A_ADDR);
  });

  it('stays up through many keepalive intervals on fake time', async () => {
    const l = lab();
    await up(l);
    const before = l.b.stats.messagesIn;
    for (let i = 0; i < 10; i++) await l.clock.advanceAsync(10_000); // 100 s > 3 hold times of 30 s
    expect(l.a.state).toBe('Established');
    expect(l.b.state).toBe('Established');
    expect(l.b.stats.messagesIn - before).toBeGreaterThanOrEqual(9); // a keepalive every 10 s
    expect(l.events.a.length).toBe(4);
  });

  it('hold time 0 on both sides: no keepalives at all, and still up', async () => {
    const l = lab({ holdTime: 0 }, { holdTime: 0 });
    await up(l);
    expect(l.b.negotiated?.holdTime).toBe(0);
    const before = l.b.stats.messagesIn;
    await l.clock.advanceAsync(600_000);
    expect(l.b.stats.messagesIn).toBe(before);
    expect(l.a.state).toBe('Established');
  });

  it('hold time 0 from a peer whose hold time is not 0, or one below the minimum: Unacceptable Hold Time (2/6)', async () => {
    const zero = lab({ holdTime: 0 });
    zero.b.start();
    zero.a.start();
    await zero.clock.advanceAsync(0);
    expect(zero.events.bNotes[0]).toMatchObject({ direction: 'sent', code: 2, subcode: 6 });
    expect(zero.events.bNotes[0]?.reason).toContain('hold time 0');
    expect(zero.b.state).not.toBe('Established');

    const short = lab({ holdTime: 6 }, { minHoldTime: 9 });
    short.b.start();
    short.a.start();
    await short.clock.advanceAsync(0);
    expect(short.events.aNotes[0]).toMatchObject({ direction: 'received', code: 2, subcode: 6 });
    expect(short.events.bNotes[0]?.reason).toContain('below the minimum accepted, 9 s');
  });

  it('hold timer expiry sends NOTIFICATION 4 when keepalives stop', async () => {
    const l = lab();
    await up(l);
    const bEnd = l.inbound[0]!;
    bEnd.write = () => true; // B's keepalives now vanish
    await l.clock.advanceAsync(30_000);
    expect(l.a.state).toBe('Idle');
    expect(l.events.aNotes).toEqual([expect.objectContaining({ direction: 'sent', code: 4, subcode: 0 })]);
    expect(l.events.bNotes).toEqual([expect.objectContaining({ direction: 'received', code: 4, subcode: 0 })]);
    expect(l.b.state).not.toBe('Established');
  });

  it('OpenSent waits 240 s for an OPEN, then Hold Timer Expired', async () => {
    const clock = new FakeClock();
    const net = new MemoryNetwork();
    const received: Uint8Array[] = [];
    net.listen(B_ADDR, 179, (conn) => conn.on('data', (c) => received.push(c)));
    const a = new Session({
      localAs: 65001,
      peerAs: 65002,
      routerId: 1,
      peerAddress: B_ADDR,
      jitter: 0,
      clock,
      transport: net.transport(A_ADDR),
    });
    a.start();
    await clock.advanceAsync(0);
    expect(a.state).toBe('OpenSent');
    await clock.advanceAsync(239_999);
    expect(a.state).toBe('OpenSent');
    await clock.advanceAsync(1);
    expect(a.state).toBe('Idle');
    const messages = decodeAll(received);
    expect(messages.map((m) => m.type)).toEqual([1, 3]);
    expect((messages[0] as OpenMessage).capabilities.map((c) => c.code)).toEqual([1, 2, 65]);
    expect(messages[1]).toMatchObject({ code: 4, subcode: 0 });
  });
});

describe('Session: UPDATEs and the Adj-RIB-In', () => {
  it('applies announcements, withdrawals and End-of-RIB, in order', async () => {
    const seen: string[] = [];
    const l = lab({}, {}, { onChange: (e) => seen.push(`+${e.announced} -${e.withdrawn}`) });
    await up(l);
    l.b.on('endOfRib', (e) => seen.push(`eor ${e.afi}/${e.safi}`));
    expect(l.a.sendUpdates([...encodeUpdates(attrs, prefixes, l.a.codecContext), encodeEndOfRib()])).toBe(true);
    await l.clock.advanceAsync(0);
    expect(seen).toEqual(['+3 -0', 'eor 1/1']);
    expect(l.rib.size).toBe(3);
    expect(l.rib.get(prefixKey(prefixes[0]!))?.attrs).toMatchObject({
      nextHop: parseIpv4('198.18.0.1'),
      asPath: [{ type: 2, asns: [65001] }],
    });
    l.a.sendUpdates(encodeWithdrawals([prefixes[1]!, parsePrefix('10.9.9.0/24')], l.a.codecContext));
    await l.clock.advanceAsync(0);
    expect(seen[2]).toBe('+0 -1'); // only prefixes that were there
    expect(l.rib.get(prefixKey(prefixes[1]!))).toBeUndefined();
    expect(l.a.stats.updatesOut).toBe(3);
    expect(l.b.stats.updatesIn).toBe(3);
  });

  it('a throwing event handler is logged and resets only that session (Cease), which then comes back', async () => {
    const errors: string[] = [];
    const logger = {
      debug: () => {},
      info: () => {},
      warn: () => {},
      error: (_o: object, m?: string) => void errors.push(m ?? ''),
    };
    const l = lab({}, { logger });
    await up(l);
    let throwing = true;
    l.b.on('update', () => {
      if (throwing) throw new Error('handler bug');
    });
    l.a.sendUpdates(encodeUpdates(attrs, prefixes, l.a.codecContext));
    await l.clock.advanceAsync(0);
    throwing = false;
    expect(errors).toEqual(['BGP session event handler threw']);
    expect(l.events.bNotes).toEqual([expect.objectContaining({ direction: 'sent', code: 6, subcode: 0 })]);
    expect(l.rib.size).toBe(0);
    await l.clock.advanceAsync(60_000);
    expect(l.b.state).toBe('Established');
  });

  it('sendUpdates is refused before Established', () => {
    const l = lab();
    expect(l.a.sendUpdates(encodeWithdrawals(prefixes, { fourOctetAs: true }))).toBe(false);
  });

  it('a malformed UPDATE: the NOTIFICATION the codec chose is sent, received, and the session closes', async () => {
    const l = lab();
    await up(l);
    // NLRI with prefix length 33 (RFC 4271 §6.3 / RFC 7606 §5.3: session reset).
    const bad = rawUpdate(
      [],
      [0x40, 1, 1, 0, 0x40, 2, 6, 2, 1, 0xfd, 0xe9, 0, 0, 0x40, 3, 4, 198, 18, 0, 1],
      [33, 10, 0, 0, 0, 0],
    );
    let expected: BgpError | undefined;
    try {
      decodeMessage(bad, l.b.codecContext);
    } catch (e) {
      if (isBgpError(e)) expected = e;
    }
    expect(expected).toBeDefined();
    expect(expected!.code).toBe(3);
    l.a.sendUpdates([bad]);
    await l.clock.advanceAsync(0);
    expect(l.events.bNotes).toEqual([
      expect.objectContaining({ direction: 'sent', code: expected!.code, subcode: expected!.subcode }),
    ]);
    expect(l.events.aNotes).toEqual([
      expect.objectContaining({ direction: 'received', code: expected!.code, subcode: expected!.subcode }),
    ]);
    expect(l.b.state).toBe('Idle');
    expect(l.a.state).toBe('Idle');
  });

  it('treat-as-withdraw (RFC 7606): the prefixes go, the session stays up', async () => {
    const warnings: string[] = [];
    const logger = {
      debug: () => {},
      info: () => {},
      warn: (_o: object, m?: string) => void warnings.push(m ?? ''),
      error: () => {},
    };
    const l = lab({}, { logger });
    await up(l);
    l.a.sendUpdates(encodeUpdates(attrs, prefixes.slice(0, 1), l.a.codecContext));
    await l.clock.advanceAsync(0);
    expect(l.rib.size).toBe(1);
    // ORIGIN 7 is invalid: RFC 7606 §7.1 treat-as-withdraw.
    const p = prefixes[0]!;
    l.a.sendUpdates([
      rawUpdate(
        [],
        [0x40, 1, 1, 7, 0x40, 2, 6, 2, 1, 0xfd, 0xe9, 0, 0, 0x40, 3, 4, 198, 18, 0, 1],
        [26, 10, 244, 1, 0],
      ),
    ]);
    await l.clock.advanceAsync(0);
    expect(p.len).toBe(26);
    expect(l.rib.size).toBe(0);
    expect(l.b.state).toBe('Established');
    expect(warnings.some((w) => w.includes('treated as withdraw'))).toBe(true);
  });

  it('clears the Adj-RIB-In when the session goes down, or keeps it stale when its owner says graceful', async () => {
    for (const graceful of [false, true]) {
      const downs: Array<{ graceful: boolean; withdrawn: number }> = [];
      const l = lab({}, {}, { graceful: () => graceful, onDown: (e) => downs.push(e) });
      await up(l);
      l.a.sendUpdates(encodeUpdates(attrs, prefixes, l.a.codecContext));
      await l.clock.advanceAsync(0);
      l.a.stop();
      await l.clock.advanceAsync(0);
      expect(downs).toEqual([{ graceful, withdrawn: graceful ? 0 : 3 }]);
      expect(l.rib.size).toBe(graceful ? 3 : 0);
      if (graceful) expect([...l.rib.routes()].every((e) => e.stale)).toBe(true);
    }
  });

  it("several UPDATEs back to back in one buffer (an update group's shared batch): each arrives, each is counted", async () => {
    const l = lab();
    await up(l);
    const parts = prefixes.flatMap((p) => encodeUpdates(attrs, [p], l.a.codecContext)); // one UPDATE each
    const joined = new Uint8Array(parts.reduce((n, m) => n + m.length, 0));
    parts.reduce((at, m) => (joined.set(m, at), at + m.length), 0);
    const seen: number[] = [];
    l.b.on('update', (e) => seen.push(...e.announced.map((x) => x.prefix.addr)));
    const messagesBefore = l.a.stats.messagesOut;
    expect(l.a.sendUpdates([joined], parts.length)).toBe(true);
    await l.clock.advanceAsync(0);
    expect(seen).toEqual(prefixes.map((p) => p.addr));
    expect(l.a.stats.updatesOut).toBe(3);
    expect(l.a.stats.messagesOut - messagesBefore).toBe(3);
    expect(l.b.stats.updatesIn).toBe(3);
  });

  it('batches many UPDATEs into few writes and keeps their order under back-pressure', async () => {
    const l = lab();
    await up(l);
    const many = Array.from({ length: 2000 }, (_, i) => ({ addr: (parseIpv4('10.0.0.0') + i * 64) >>> 0, len: 26 }));
    const messages = many.flatMap((p) => encodeUpdates(attrs, [p], l.a.codecContext)); // one UPDATE each
    expect(messages.length).toBe(2000);
    const bEnd = l.inbound[0]!;
    let chunks = 0;
    bEnd.on('data', () => chunks++);
    const order: number[] = [];
    l.b.on('update', (e) => order.push(...e.announced.map((x) => x.prefix.addr)));
    const aEnd = l.outbound[0]!;
    const write = aEnd.write.bind(aEnd);
    let refused = 0;
    aEnd.write = (bytes) => {
      const ok = write(bytes);
      if (!ok) refused++;
      return ok;
    };
    l.a.sendUpdates(messages);
    for (let i = 0; i < 5; i++) await l.clock.advanceAsync(0);
    expect(order).toEqual(many.map((p) => p.addr));
    expect(chunks).toBeLessThan(20); // ~100 KB in 64 KiB writes, not 2000 writes
    expect(refused).toBeGreaterThan(0); // back-pressure really happened
    expect(l.a.state).toBe('Established');
  });
});

describe('Session: OPEN checks, stop, collisions, backoff', () => {
  it('wrong peer AS: Bad Peer AS (2/2) with the 2-octet AS as data, seen on both sides; A retries after the error wait', async () => {
    const l = lab({}, { peerAs: 65009 });
    l.b.start();
    l.a.start();
    await l.clock.advanceAsync(0);
    expect(l.events.bNotes).toEqual([
      expect.objectContaining({ direction: 'sent', code: 2, subcode: 2, data: Uint8Array.of(0xfd, 0xe9) }),
    ]);
    expect(l.events.aNotes).toEqual([
      expect.objectContaining({ direction: 'received', code: 2, subcode: 2, data: Uint8Array.of(0xfd, 0xe9) }),
    ]);
    expect(l.a.state).toBe('Idle');
    expect(l.a.stats.lastError).toContain('Bad Peer AS');
    expect(l.connects).toEqual([1_000_000]);
    // DampPeerOscillations (BIRD's error wait time 5,30): 5 s, then 10 s, 20 s, 30 s, 30 s.
    await l.clock.advanceAsync(4999);
    expect(l.connects).toEqual([1_000_000]);
    await l.clock.advanceAsync(1);
    expect(l.connects).toEqual([1_000_000, 1_005_000]);
    for (let i = 0; i < 4; i++) await l.clock.advanceAsync(30_000);
    expect(l.connects).toEqual([1_000_000, 1_005_000, 1_015_000, 1_035_000, 1_065_000, 1_095_000, 1_125_000]);
  });

  it("after a NOTIFICATION the peer's own connections are refused until the error wait ends", async () => {
    const l = lab({}, { peerAs: 65009 });
    l.b.start();
    l.a.start();
    await l.clock.advanceAsync(0);
    expect(l.a.holdingDown).toBe(true);
    expect(l.b.holdingDown).toBe(true); // the side that sent it waits too
    const [, toA] = memoryPair({ address: B_ADDR, port: 50001 }, { address: A_ADDR, port: 179 });
    expect(l.a.acceptConnection(toA)).toBe(false);
    await l.clock.advanceAsync(4999);
    expect(l.a.holdingDown).toBe(true);
    expect(l.connects).toEqual([1_000_000]);
    await l.clock.advanceAsync(1); // the wait is over: A connects (and, AS still wrong, waits 10 s next)
    expect(l.connects).toEqual([1_000_000, 1_005_000]);
  });

  it('checkOpen: 4-octet AS capability, iBGP identifier, hold time', () => {
    const open = (over: Partial<OpenMessage>): OpenMessage => ({
      type: 1,
      version: 4,
      myAs: 23456,
      holdTime: 90,
      bgpId: 5,
      capabilities: [{ code: 65, asn: 4200000001 }],
      ...over,
    });
    expect(checkOpen(open({}), { localAs: 65000, peerAs: 4200000001, routerId: 1 })).toBeUndefined();
    const badAs = checkOpen(open({}), { localAs: 65000, peerAs: 4200000002, routerId: 1 });
    expect(badAs).toMatchObject({ code: 2, subcode: 2, data: Uint8Array.of(0x5b, 0xa0) });
    expect(badAs?.message).toContain('4200000001');
    expect(
      checkOpen(open({ myAs: 65000, capabilities: [], bgpId: 1 }), { localAs: 65000, peerAs: 65000, routerId: 1 }),
    ).toMatchObject({ code: 2, subcode: 3 });
    expect(
      checkOpen(open({ myAs: 65001, capabilities: [], bgpId: 1 }), { localAs: 65000, peerAs: 65001, routerId: 1 }),
    ).toBeUndefined(); // eBGP: may equal
    expect(checkOpen(open({ holdTime: 2 }), { localAs: 65000, peerAs: 4200000001, routerId: 1 })).toMatchObject({
      code: 2,
      subcode: 6,
    });
  });

  it('iBGP with our own BGP identifier: Bad BGP Identifier', async () => {
    const l = lab({ peerAs: 65002, localAs: 65002, routerId: parseIpv4('2.2.2.2') }, { peerAs: 65002 });
    l.b.start();
    l.a.start();
    await l.clock.advanceAsync(0);
    expect(l.events.bNotes[0]).toMatchObject({ direction: 'sent', code: 2, subcode: 3 });
  });

  it('stop(): Cease/Administrative Shutdown, Idle, and no restart', async () => {
    const l = lab();
    await up(l);
    l.a.stop('maintenance');
    await l.clock.advanceAsync(0);
    expect(l.events.bNotes).toEqual([expect.objectContaining({ direction: 'received', code: 6, subcode: 2 })]);
    await l.clock.advanceAsync(60_000);
    expect(l.a.state).toBe('Idle');
    expect(l.connects.length).toBe(1);
    // B (passive) goes back to waiting; A can come back with start().
    expect(l.b.state).toBe('Active');
    l.a.start();
    await l.clock.advanceAsync(0);
    expect(l.a.state).toBe('Established');
  });

  it('stop(subcode) sends that Cease subcode', async () => {
    const l = lab();
    await up(l);
    l.a.stop(3);
    await l.clock.advanceAsync(0);
    expect(l.events.bNotes[0]).toMatchObject({ code: 6, subcode: 3 });
  });

  it('collisionSurvivor: the connection opened by the higher BGP identifier survives (RFC 4271 §6.8)', () => {
    expect(collisionSurvivor(parseIpv4('10.0.0.2'), parseIpv4('10.0.0.1'))).toBe('outbound');
    expect(collisionSurvivor(parseIpv4('10.0.0.1'), parseIpv4('10.0.0.2'))).toBe('inbound');
    expect(collisionSurvivor(parseIpv4('200.0.0.1'), parseIpv4('10.0.0.2'))).toBe('outbound'); // unsigned compare
  });

  it('connectionDirection tells the speaker who opened each connection', async () => {
    const l = lab();
    await up(l);
    expect(l.a.connectionDirection).toBe('outbound');
    expect(l.b.connectionDirection).toBe('inbound');
    l.a.stop();
    expect(l.a.connectionDirection).toBeUndefined();
  });

  it('collisionDump(): Cease/Connection Collision Resolution (6/7), no automatic restart', async () => {
    const l = lab();
    l.b.on('open', () => l.b.collisionDump());
    l.b.start();
    l.a.start();
    await l.clock.advanceAsync(0);
    expect(l.events.bNotes[0]).toMatchObject({ direction: 'sent', code: 6, subcode: 7 });
    expect(l.events.aNotes[0]).toMatchObject({ direction: 'received', code: 6, subcode: 7 });
    expect(l.b.state).toBe('Idle');
    await l.clock.advanceAsync(60_000);
    expect(l.b.state).toBe('Idle');
  });

  it('connection refused: backoff 1, 2, 4, 5, 5 s and lastReason ECONNREFUSED; reset after a stable session', async () => {
    const clock = new FakeClock();
    const net = new MemoryNetwork();
    const connects: number[] = [];
    const t = net.transport(A_ADDR);
    const a = new Session({
      localAs: 65001,
      peerAs: 65002,
      routerId: 1,
      peerAddress: B_ADDR,
      jitter: 0,
      clock,
      transport: { connect: (o) => (connects.push(clock.now()), t.connect(o)) },
    });
    a.start();
    await clock.advanceAsync(17_000);
    expect(connects).toEqual([0, 1000, 3000, 7000, 12000, 17000]);
    expect(a.stats.lastReason).toMatchObject({ kind: 'transport', errno: 'ECONNREFUSED' });
    expect(a.stats.lastError).toContain('127.0.0.2:179');
    expect(a.state).toBe('Idle');
  });

  it('ConnectRetry expiry drops a hanging connect attempt and tries again (RFC 4271 §8.2.2 Connect, Event 9)', async () => {
    const clock = new FakeClock();
    const attempts: Array<{ at: number; signal: AbortSignal | undefined }> = [];
    const hanging: Transport = {
      connect: (o) => {
        attempts.push({ at: clock.now(), signal: o.signal });
        return new Promise((_resolve, reject) =>
          o.signal?.addEventListener('abort', () => reject(new Error('aborted'))),
        );
      },
    };
    const a = new Session({
      localAs: 65001,
      peerAs: 65002,
      routerId: 1,
      peerAddress: B_ADDR,
      connectRetryMs: 5000,
      jitter: 0,
      clock,
      transport: hanging,
    });
    a.start();
    await clock.advanceAsync(10_000);
    expect(attempts.map((x) => x.at)).toEqual([0, 5000, 10000]);
    expect(attempts.map((x) => x.signal?.aborted)).toEqual([true, true, false]);
    expect(a.state).toBe('Connect');
    a.stop();
    expect(attempts[2]!.signal?.aborted).toBe(true);
  });

  it('an inbound connection during the reconnect backoff is taken at once (error wait off)', async () => {
    const l = lab({ errorWaitInitialMs: 0 }, { peerAs: 65009 }); // first attempt fails: Bad Peer AS
    l.b.start();
    l.a.start();
    await l.clock.advanceAsync(0);
    expect(l.a.state).toBe('Idle');
    const fixed = new Session({
      localAs: 65002,
      peerAs: 65001,
      routerId: parseIpv4('2.2.2.2'),
      peerAddress: A_ADDR,
      jitter: 0,
      clock: l.clock,
      transport: l.net.transport(B_ADDR),
    });
    const [toA, toFixed] = memoryPair({ address: B_ADDR, port: 50000 }, { address: A_ADDR, port: 179 });
    fixed.start();
    expect(l.a.acceptConnection(toFixed)).toBe(true);
    expect(fixed.acceptConnection(toA)).toBe(true);
    await l.clock.advanceAsync(0);
    expect(l.a.state).toBe('Established');
    expect(fixed.state).toBe('Established');
    fixed.stop();
  });

  it('ROUTE-REFRESH reaches the peer as a routeRefresh event', async () => {
    const l = lab();
    await up(l);
    const got: Array<{ afi: number; safi: number }> = [];
    l.b.on('routeRefresh', (e) => got.push({ afi: e.afi, safi: e.safi }));
    expect(l.a.sendRouteRefresh()).toBe(true);
    expect(l.a.sendRouteRefresh(2, 1)).toBe(true); // IPv6 was never negotiated: RFC 2918 §4 says ignore
    await l.clock.advanceAsync(0);
    expect(got).toEqual([{ afi: 1, safi: 1 }]);
    expect(l.b.state).toBe('Established');
  });

  it('a passive session never connects', async () => {
    const l = lab();
    l.b.start();
    let bConnects = 0;
    (l.b.config.transport as { connect: unknown }).connect = () => {
      bConnects++;
      return Promise.reject(new Error('no'));
    };
    await l.clock.advanceAsync(600_000);
    expect(bConnects).toBe(0);
    expect(l.b.state).toBe('Active');
  });

  it('refuses a second connection while one is up, and any while stopped', async () => {
    const l = lab();
    await up(l);
    const [, extra] = memoryPair();
    expect(l.b.acceptConnection(extra)).toBe(false);
    const stopped = new Session({
      localAs: 1,
      peerAs: 2,
      routerId: 1,
      peerAddress: A_ADDR,
      clock: l.clock,
      transport: l.net.transport(),
    });
    expect(stopped.acceptConnection(extra)).toBe(false);
  });

  it('names the field, value and accepted range in config errors', () => {
    const t = new MemoryNetwork().transport();
    expect(
      () => new Session({ localAs: 65001, peerAs: 65002, routerId: 1, peerAddress: B_ADDR, holdTime: 2, transport: t }),
    ).toThrow(/holdTime 2 is not 0 or 3\.\.65535/);
    expect(
      () => new Session({ localAs: 65001, peerAs: 65002, routerId: 0, peerAddress: B_ADDR, transport: t }),
    ).toThrow(/routerId 0/);
    expect(
      () => new Session({ localAs: 65001, peerAs: 65002, routerId: 1, peerAddress: '10.0.0', transport: t }),
    ).toThrow(/peerAddress "10.0.0"/);
  });
});

/** A peer that never reads: every write stays in the "socket" (bufferedBytes), `write` always says wait. */
class UnreadConnection extends EventEmitter<ConnectionEvents> implements Connection {
  readonly localAddress = A_ADDR;
  readonly localPort = 40000;
  readonly remoteAddress = B_ADDR;
  readonly remotePort = 179;
  bufferedBytes = 0;
  written: Uint8Array[] = [];
  closed = false;
  write(bytes: Uint8Array): boolean {
    this.bufferedBytes += bytes.length;
    this.written.push(bytes);
    return false;
  }
  close(): void {
    this.destroy();
  }
  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    queueMicrotask(() => this.emit('close', false));
  }
}

describe('Session: a peer that stops reading', () => {
  it('is reset with Cease / Out of Resources (6/8) once the send queue passes its bound, and nothing more is buffered', async () => {
    const clock = new FakeClock(1_000_000);
    const conn = new UnreadConnection();
    const max = 1024 * 1024;
    const a = new Session({
      localAs: 65001,
      peerAs: 65002,
      routerId: parseIpv4('1.1.1.1'),
      peerAddress: B_ADDR,
      jitter: 0,
      clock,
      maxSendQueueBytes: max,
      transport: { connect: async () => conn },
    });
    const notes: NotificationEvent[] = [];
    a.on('notification', (e) => notes.push(e));
    a.start();
    await clock.advanceAsync(0);
    // The peer's OPEN and KEEPALIVE (it sends; it just never reads what we send).
    const open: OpenMessage = {
      type: 1,
      version: 4,
      myAs: 65002,
      holdTime: 90,
      bgpId: parseIpv4('2.2.2.2'),
      capabilities: [{ code: 1, afi: 1, safi: 1 }, { code: 2 }, { code: 65, asn: 65002 }],
    };
    conn.emit('data', encodeMessage(open, { fourOctetAs: false }));
    conn.emit('data', encodeMessage({ type: 4 }, { fourOctetAs: false }));
    await clock.advanceAsync(0);
    expect(a.state).toBe('Established');

    // A whole table, again and again (what answering ROUTE-REFRESHes used to do): ~4 KiB per UPDATE.
    const many = Array.from({ length: 1000 }, (_, i) => parsePrefix(`10.${i >> 8}.${i & 255}.0/24`));
    const table = encodeUpdates(attrs, many, a.codecContext);
    const tableBytes = table.reduce((n, m) => n + m.length, 0);
    expect(tableBytes).toBeGreaterThan(3000);
    let rounds = 0;
    while (a.established && rounds < 2000) {
      a.sendUpdates(table);
      rounds++;
      await clock.advanceAsync(0);
    }
    expect(notes).toEqual([expect.objectContaining({ direction: 'sent', code: 6, subcode: 8 })]);
    expect(notes[0]?.reason).toContain('send queue over 1048576 bytes');
    expect(a.state).toBe('Idle');
    expect(a.holdingDown).toBe(true);
    // Bounded: what reached the socket is at most the bound plus one table (the last batch) plus one write.
    expect(conn.bufferedBytes).toBeLessThan(max + tableBytes + 64 * 1024);
    expect(rounds * tableBytes).toBeGreaterThan(max);
    a.stop();
  });
});

describe('BgpError sanity for fixtures', () => {
  it('hand-built UPDATE helper produces a decodable message', () => {
    const ok = rawUpdate([], [0x40, 1, 1, 0, 0x40, 2, 0, 0x40, 3, 4, 198, 18, 0, 1], [24, 10, 1, 2]);
    const r = decodeMessage(ok, { fourOctetAs: true });
    expect(r.message).toMatchObject({ type: 2, nlri: [{ addr: parseIpv4('10.1.2.0'), len: 24 }] });
    expect(new BgpError(3, 1, 'x').code).toBe(3);
  });
});
