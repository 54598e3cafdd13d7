// Nothing a peer sends, and no bug behind a session, may escape the session: the 4096-byte ROUTE-REFRESH
// that used to throw out of the socket's data handler (its NOTIFICATION did not fit 4096 bytes), a write
// that throws, a timer whose handling throws, an owner's event handler (import, RIB, export) that throws.
// Each resets that session with a NOTIFICATION and a log line naming the peer; the process and the other
// peers carry on. A scripted peer (raw bytes over an in-memory connection) on fake time.
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../bgp/clock.js';
import { decodeMessage, encodeMessage, encodeUpdates, MessageFramer } from '../../bgp/codec/index.js';
import { parseIpv4, parsePrefix } from '../../bgp/ip.js';
import { DEFAULT_ERROR_WAIT_INITIAL_MS, Session, type Logger, type NotificationEvent } from '../../bgp/session.js';
import { Speaker, type Acceptor } from '../../bgp/speaker.js';
import { MemoryNetwork, memoryPair, type Connection, type Transport } from '../../bgp/transport.js';
import type { BgpMessage, NotificationMessage } from '../../bgp/types.js';
import { message, toHex } from './helpers/bytes.js';

const TORTIE = '127.0.0.1';
const PEER = '127.0.0.2';
const refusing: Transport = { connect: () => Promise.reject(new Error('no outbound connections in this test')) };

interface LogLine {
  level: 'warn' | 'error';
  obj: Record<string, unknown>;
  msg: string;
}

function recordingLogger(lines: LogLine[]): Logger {
  return {
    debug: () => {},
    info: () => {},
    warn: (obj, msg) => void lines.push({ level: 'warn', obj: obj as Record<string, unknown>, msg: msg ?? '' }),
    error: (obj, msg) => void lines.push({ level: 'error', obj: obj as Record<string, unknown>, msg: msg ?? '' }),
  };
}

/** The peer's end: what tortie sent it, decoded, and raw bytes to send. */
class ScriptedPeer {
  readonly received: BgpMessage[] = [];
  readonly raw: Uint8Array[] = [];
  closed = false;
  private readonly framer = new MessageFramer();
  constructor(readonly conn: Connection) {
    conn.on('data', (chunk) => {
      for (const m of this.framer.push(chunk)) {
        this.raw.push(m);
        this.received.push(decodeMessage(m, { fourOctetAs: true }).message);
      }
    });
    conn.on('close', () => (this.closed = true));
  }
  send(bytes: Uint8Array): void {
    this.conn.write(bytes);
  }
  open(asn = 65002, id = '2.2.2.2'): void {
    this.send(
      encodeMessage(
        {
          type: 1,
          version: 4,
          myAs: asn,
          holdTime: 90,
          bgpId: parseIpv4(id),
          capabilities: [{ code: 1, afi: 1, safi: 1 }, { code: 2 }, { code: 65, asn }],
        },
        { fourOctetAs: false },
      ),
    );
    this.send(encodeMessage({ type: 4 }, { fourOctetAs: false }));
  }
  notifications(): NotificationMessage[] {
    return this.received.filter((m): m is NotificationMessage => m.type === 3);
  }
}

/** A passive tortie Session with one scripted peer connected and Established. */
async function established(
  options: { connWrite?: (real: (b: Uint8Array) => boolean) => (b: Uint8Array) => boolean } = {},
) {
  const clock = new FakeClock(1_000_000);
  const lines: LogLine[] = [];
  const session = new Session({
    localAs: 65001,
    peerAs: 65002,
    routerId: parseIpv4('1.1.1.1'),
    peerAddress: PEER,
    passive: true,
    jitter: 0,
    clock,
    transport: refusing,
    logger: recordingLogger(lines),
  });
  const notes: NotificationEvent[] = [];
  session.on('notification', (e) => notes.push(e));
  session.start();
  const [ours, theirs] = memoryPair({ address: TORTIE, port: 179 }, { address: PEER, port: 40001 });
  if (options.connWrite) ours.write = options.connWrite(ours.write.bind(ours));
  const peer = new ScriptedPeer(theirs);
  expect(session.acceptConnection(ours)).toBe(true);
  peer.open();
  await clock.advanceAsync(0);
  expect(session.state).toBe('Established');
  return { clock, session, peer, lines, notes };
}

describe('a 4096-byte ROUTE-REFRESH from an Established peer', () => {
  it('subtype 0: NOTIFICATION 1/2 Bad Message Length with the Length field (0x1000) as data; the session resets, nothing escapes', async () => {
    const { clock, session, peer, notes, lines } = await established();
    const rr = message(5, '0001 00 01', '00'.repeat(4096 - 23));
    expect(rr.length).toBe(4096);
    peer.send(rr);
    await clock.advanceAsync(0);
    expect(peer.notifications().map((n) => [n.code, n.subcode, toHex(n.data)])).toEqual([[1, 2, '1000']]);
    expect(notes).toEqual([expect.objectContaining({ direction: 'sent', code: 1, subcode: 2 })]);
    expect(session.state).toBe('Idle');
    expect(peer.closed).toBe(true);
    expect(lines.filter((l) => l.level === 'error')).toEqual([]);
  });

  it('subtype 1 (BoRR, RFC 7313 §5): NOTIFICATION 7/1 whose data is the message cut to 4075 bytes — the NOTIFICATION is exactly 4096', async () => {
    const { clock, session, peer } = await established();
    const rr = message(5, '0001 01 01', 'ab'.repeat(4096 - 23));
    peer.send(rr);
    await clock.advanceAsync(0);
    const sent = peer.raw.find((m) => m[18] === 3)!;
    expect(sent.length).toBe(4096);
    expect(peer.notifications()).toEqual([{ type: 3, code: 7, subcode: 1, data: rr.subarray(0, 4096 - 21) }]);
    expect(session.state).toBe('Idle');
  });

  it('the peer may connect again afterwards and reach Established', async () => {
    const { clock, session, peer } = await established();
    peer.send(message(5, '0001 00 01', '00'.repeat(4096 - 23)));
    await clock.advanceAsync(0);
    const [ours, theirs] = memoryPair({ address: TORTIE, port: 179 }, { address: PEER, port: 40002 });
    const again = new ScriptedPeer(theirs);
    // After a NOTIFICATION the peer waits out the error wait (RFC 4271 §8.1.1 DampPeerOscillations).
    expect(session.holdingDown).toBe(true);
    await clock.advanceAsync(DEFAULT_ERROR_WAIT_INITIAL_MS);
    expect(session.acceptConnection(ours)).toBe(true);
    again.open();
    await clock.advanceAsync(0);
    expect(session.state).toBe('Established');
  });
});

describe('containment: an unexpected exception resets only that session', () => {
  it('an update handler that throws: logged with the peer, Cease / Unspecific (6/0) to the peer, the session comes back', async () => {
    const { clock, session, peer, lines } = await established();
    session.on('update', () => {
      throw new TypeError('import bug');
    });
    const [update] = encodeUpdates(
      { origin: 0, asPath: [{ type: 2, asns: [65002] }], nextHop: parseIpv4('198.18.0.2') },
      [parsePrefix('10.9.0.0/24')],
      { fourOctetAs: true, ebgp: true },
    );
    peer.send(update!);
    await clock.advanceAsync(0);
    expect(peer.notifications().map((n) => [n.code, n.subcode])).toEqual([[6, 0]]);
    expect(session.state).toBe('Idle');
    expect(lines).toContainEqual(
      expect.objectContaining({
        level: 'error',
        msg: 'BGP session event handler threw',
        obj: expect.objectContaining({ peer: PEER, event: 'update', error: 'import bug' }),
      }),
    );
    expect(session.stats.lastError).toMatch(/'update' handler threw: import bug/);
    // After the backoff, a new connection is taken again.
    await clock.advanceAsync(2_000);
    const [ours, theirs] = memoryPair({ address: TORTIE, port: 179 }, { address: PEER, port: 40003 });
    new ScriptedPeer(theirs).open();
    // After a NOTIFICATION the peer waits out the error wait (RFC 4271 §8.1.1 DampPeerOscillations).
    expect(session.holdingDown).toBe(true);
    await clock.advanceAsync(DEFAULT_ERROR_WAIT_INITIAL_MS);
    expect(session.acceptConnection(ours)).toBe(true);
    await clock.advanceAsync(0);
    expect(session.state).toBe('Established');
  });

  it('a connection whose write throws: the session resets without the FSM (the NOTIFICATION cannot be written either) and is down', async () => {
    let broken = false;
    const { clock, session, lines } = await established({
      connWrite: (real) => (b) => {
        if (broken) throw new RangeError('socket bug');
        return real(b);
      },
    });
    const downs: string[] = [];
    session.on('down', (e) => downs.push(e.reason));
    broken = true;
    expect(session.send({ type: 4 })).toBe(true);
    await clock.advanceAsync(0);
    expect(session.state).toBe('Idle');
    expect(downs).toHaveLength(1);
    expect(lines.map((l) => l.msg)).toEqual(
      expect.arrayContaining([
        'BGP session internal error: resetting the session',
        'BGP session reset without a NOTIFICATION',
      ]),
    );
    expect(lines.find((l) => l.msg === 'BGP session internal error: resetting the session')?.obj).toMatchObject({
      peer: PEER,
      where: 'a write',
      error: 'socket bug',
    });
    // It retries after the backoff like any failed session.
    await clock.advanceAsync(60_000);
    expect(session.state).toBe('Active');
  });

  it('a keepalive timer whose write throws: contained the same way', async () => {
    let broken = false;
    const { clock, session } = await established({
      connWrite: (real) => (b) => {
        if (broken) throw new Error('write failed inside a timer');
        return real(b);
      },
    });
    broken = true;
    await clock.advanceAsync(31_000); // the keepalive timer (hold 90 → 30 s) fires and writes
    expect(session.state).not.toBe('Established');
  });
});

describe('containment in the Speaker: one peer’s import bug does not touch another peer', () => {
  it('an importFilter that throws resets that peer with 6/0; the other peer stays Established and keeps its route', async () => {
    const clock = new FakeClock(1_000_000);
    const net = new MemoryNetwork();
    const acceptor: Acceptor = async (address, port, onConnection) => {
      const close = net.listen(address, port, onConnection);
      return async () => close();
    };
    const lines: LogLine[] = [];
    const speaker = new Speaker({
      routerId: parseIpv4('1.1.1.1'),
      localAs: 65001,
      listen: { address: TORTIE, port: 179 },
      clock,
      transport: refusing,
      acceptor,
      logger: recordingLogger(lines),
    });
    await speaker.start();
    const bad = '127.0.0.3';
    speaker.setPeers([
      { address: PEER, peerAs: 65002, passive: true },
      {
        address: bad,
        peerAs: 65003,
        passive: true,
        importFilter: () => {
          throw new Error('filter bug');
        },
      },
    ]);
    const good = new ScriptedPeer(await net.transport(PEER).connect({ remoteAddress: TORTIE, remotePort: 179 }));
    const evil = new ScriptedPeer(await net.transport(bad).connect({ remoteAddress: TORTIE, remotePort: 179 }));
    good.open(65002, '2.2.2.2');
    evil.open(65003, '3.3.3.3');
    await clock.advanceAsync(0);
    const state = (address: string) => speaker.peerStatus().find((p) => p.address === address)?.state;
    expect([state(PEER), state(bad)]).toEqual(['Established', 'Established']);
    const ctx = { fourOctetAs: true, ebgp: true };
    good.send(
      encodeUpdates(
        { origin: 0, asPath: [{ type: 2, asns: [65002] }], nextHop: parseIpv4('198.18.0.2') },
        [parsePrefix('10.2.0.0/24')],
        ctx,
      )[0]!,
    );
    evil.send(
      encodeUpdates(
        { origin: 0, asPath: [{ type: 2, asns: [65003] }], nextHop: parseIpv4('198.18.0.3') },
        [parsePrefix('10.3.0.0/24')],
        ctx,
      )[0]!,
    );
    await clock.advanceAsync(0);
    expect(evil.notifications().map((n) => [n.code, n.subcode])).toEqual([[6, 0]]);
    expect(good.notifications()).toEqual([]);
    expect(state(PEER)).toBe('Established');
    expect(state(bad)).toBe('Idle');
    expect(
      speaker.bestRoutes().map((r) => `${r.from} ${r.prefix.addr >>> 24}.${(r.prefix.addr >>> 16) & 255}`),
    ).toEqual([`${PEER} 10.2`]);
    expect(lines).toContainEqual(
      expect.objectContaining({
        msg: 'BGP session event handler threw',
        obj: expect.objectContaining({ peer: bad, error: 'filter bug' }),
      }),
    );
    await speaker.stop();
  });
});

describe('FSM: InternalError', () => {
  it('resets a session in OpenSent/OpenConfirm/Established with the error’s NOTIFICATION; nothing to reset before that', async () => {
    const { transition, INITIAL_STATE } = await import('../../bgp/fsm.js');
    const { BgpError } = await import('../../bgp/errors.js');
    const config = { holdTime: 90, connectRetryMs: 5000 };
    const error = new BgpError(6, 0, 'bug');
    for (const name of ['OpenSent', 'OpenConfirm', 'Established'] as const) {
      const t = transition({ ...INITIAL_STATE, name }, { type: 'InternalError', error }, config);
      expect(t.next.name).toBe('Idle');
      expect(t.actions).toContainEqual(expect.objectContaining({ type: 'sendNotification', code: 6, subcode: 0 }));
      expect(t.actions).toContainEqual({ type: 'close' });
    }
    for (const name of ['Idle', 'Connect', 'Active'] as const) {
      const t = transition({ ...INITIAL_STATE, name }, { type: 'InternalError', error }, config);
      expect(t.next.name).toBe(name);
      expect(t.actions).toEqual([]);
    }
  });
});

describe('containment: an exception in the middle of a transition', () => {
  it('a connection whose close() throws while a malformed message resets the session: routes released, backoff armed, a new connection accepted', async () => {
    let closeThrows = false;
    const { clock, session, peer, lines } = await established({
      connWrite: (real) => real,
    });
    const conn = (session as unknown as { conn: Connection }).conn;
    const close = conn.close.bind(conn);
    conn.close = () => {
      if (closeThrows) throw new Error('close bug');
      close();
    };
    const downs: string[] = [];
    session.on('down', (e) => downs.push(e.reason));
    closeThrows = true;
    peer.send(message(5, '0001 00')); // a 3-byte ROUTE-REFRESH: 1/2, session reset
    await clock.advanceAsync(0);
    expect(session.state).toBe('Idle');
    expect(downs).toHaveLength(1);
    expect(lines.find((l) => l.msg === 'BGP session internal error: resetting the session')?.obj).toMatchObject({
      peer: PEER,
      error: 'close bug',
    });
    await clock.advanceAsync(2_000); // the backoff passes
    const [ours, theirs] = memoryPair({ address: TORTIE, port: 179 }, { address: PEER, port: 40009 });
    new ScriptedPeer(theirs).open();
    // After a NOTIFICATION the peer waits out the error wait (RFC 4271 §8.1.1 DampPeerOscillations).
    expect(session.holdingDown).toBe(true);
    await clock.advanceAsync(DEFAULT_ERROR_WAIT_INITIAL_MS);
    expect(session.acceptConnection(ours)).toBe(true);
    await clock.advanceAsync(0);
    expect(session.state).toBe('Established');
  });
});
