// The one real-socket test: two sessions over TCP on 127.0.0.1 reach Established and exchange an UPDATE;
// the TCP transport names the address when a bind fails. Real time, bounded by explicit timeouts.
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeUpdates } from '../../bgp/codec/index.js';
import { parseIpv4, parsePrefix } from '../../bgp/ip.js';
import { Session } from '../../bgp/session.js';
import { tcpTransport, TransportError, wrapSocket } from '../../bgp/transport.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()!();
});

function waitFor<T>(what: string, ms: number, arm: (done: (v: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    arm((v) => {
      clearTimeout(timer);
      resolve(v);
    });
  });
}

describe('Session over TCP on 127.0.0.1', () => {
  it('reaches Established, carries an UPDATE, and stops cleanly', async () => {
    const b = new Session({
      localAs: 65002,
      peerAs: 65001,
      routerId: parseIpv4('2.2.2.2'),
      peerAddress: '127.0.0.1',
      passive: true,
      transport: tcpTransport,
    });
    const server = net.createServer((socket) => {
      if (!b.acceptConnection(wrapSocket(socket))) socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    const a = new Session({
      localAs: 65001,
      peerAs: 65002,
      routerId: parseIpv4('1.1.1.1'),
      peerAddress: '127.0.0.1',
      port,
      localAddress: '127.0.0.1',
      transport: tcpTransport,
    });
    cleanups.push(() => {
      a.stop();
      b.stop();
      server.close();
    });
    const bUp = waitFor<void>('B Established', 5000, (done) => b.on('state', (e) => e.to === 'Established' && done()));
    const aUp = waitFor<void>('A Established', 5000, (done) => a.on('state', (e) => e.to === 'Established' && done()));
    b.start();
    a.start();
    await Promise.all([aUp, bUp]);
    expect(a.negotiated?.fourOctetAs).toBe(true);
    expect(a.localAddress).toBe('127.0.0.1');

    const got = waitFor<number>('UPDATE at B', 5000, (done) => b.on('update', (e) => done(e.announced.length)));
    a.sendUpdates(
      encodeUpdates(
        { origin: 0, asPath: [{ type: 2, asns: [65001] }], nextHop: parseIpv4('198.18.0.1') },
        [parsePrefix('10.244.1.0/26')],
        a.codecContext,
      ),
    );
    expect(await got).toBe(1);

    const cease = waitFor<number>('Cease at B', 5000, (done) =>
      b.on('notification', (e) => e.direction === 'received' && done(e.subcode)),
    );
    a.stop();
    expect(await cease).toBe(2);
  });

  it('a bind failure names the local address and the errno', async () => {
    const error = await tcpTransport
      .connect({ remoteAddress: '127.0.0.1', remotePort: 9, localAddress: '192.0.2.77' })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(TransportError);
    expect((error as TransportError).code).toBe('EADDRNOTAVAIL');
    expect((error as Error).message).toContain('192.0.2.77');
  });
});
