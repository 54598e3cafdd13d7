// The Speaker's side of TCP-MD5 and GTSM, on fake time over the in-memory network: keys go to the listener
// per peer address and to every outbound connect; a changed password re-keys that peer alone (its session
// restarts, the others' do not); a listener that cannot take a key refuses that peer's inbound connections
// and says why; a password Linux cannot use is refused without echoing it.

import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../../bgp/clock.js';
import { parseIpv4 } from '../../bgp/ip.js';
import type { SecureSocketOptions } from '../../bgp/socket-options.js';
import { Speaker, type Acceptor, type PeerSpec } from '../../bgp/speaker.js';
import { MemoryNetwork, type ConnectOptions, type Transport } from '../../bgp/transport.js';

const speakers: Speaker[] = [];
afterEach(async () => {
  for (const s of speakers.splice(0)) await s.stop();
});

interface Recorder {
  keys: Array<[string, SecureSocketOptions | undefined]>;
  connects: ConnectOptions[];
}

function acceptor(net: MemoryNetwork, rec: Recorder | null): Acceptor {
  return async (address, port, onConnection) => {
    const close = net.listen(address, port, onConnection);
    const handle = async () => close();
    return rec
      ? Object.assign(handle, {
          setPeerSecurity: (peer: string, options: SecureSocketOptions | undefined) =>
            void rec.keys.push([peer, options]),
        })
      : handle;
  };
}

function recordingTransport(inner: Transport, rec: Recorder): Transport {
  return { connect: (options) => (rec.connects.push(options), inner.connect(options)) };
}

async function speaker(
  net: MemoryNetwork,
  clock: FakeClock,
  address: string,
  asn: number,
  rec: Recorder | null,
): Promise<Speaker> {
  const s = new Speaker({
    routerId: parseIpv4(address),
    localAs: asn,
    listen: { address, port: 179 },
    clock,
    transport: rec ? recordingTransport(net.transport(address), rec) : net.transport(address),
    acceptor: acceptor(net, rec),
    connectRetryMs: 1000,
  });
  speakers.push(s);
  await s.start();
  return s;
}

const text = (key: Uint8Array | undefined) => (key ? Buffer.from(key).toString('utf8') : undefined);
const state = (s: Speaker, peer: string) => s.peerStatus().find((p) => p.address === peer)?.state;

describe('Speaker: TCP-MD5 keys', () => {
  it('keys go to the listener per peer and on every outbound connect; a changed password restarts that peer alone', async () => {
    const net = new MemoryNetwork();
    const clock = new FakeClock(1_000_000);
    const rec: Recorder = { keys: [], connects: [] };
    const a = await speaker(net, clock, '127.0.0.1', 64512, rec);
    const b = await speaker(net, clock, '127.0.0.2', 65001, null);
    const c = await speaker(net, clock, '127.0.0.3', 65002, null);
    b.setPeers([{ address: '127.0.0.1', peerAs: 64512, passive: true }]);
    c.setPeers([{ address: '127.0.0.1', peerAs: 64512, passive: true }]);
    const signed: PeerSpec = { address: '127.0.0.2', peerAs: 65001, password: 'office-1' };
    const plain: PeerSpec = { address: '127.0.0.3', peerAs: 65002 };
    a.setPeers([signed, plain]);
    await clock.advanceAsync(100);
    expect([state(a, '127.0.0.2'), state(a, '127.0.0.3')]).toEqual(['Established', 'Established']);
    expect(rec.keys.map(([peer, o]) => [peer, text(o?.md5Key)])).toEqual([['127.0.0.2', 'office-1']]);
    expect(rec.connects.map((o) => [o.remoteAddress, text(o.md5Key)])).toEqual([
      ['127.0.0.2', 'office-1'],
      ['127.0.0.3', undefined],
    ]);

    const plainSince = a.peerStatus().find((p) => p.address === '127.0.0.3')!.since;
    const states: string[] = [];
    a.on('state', (e) => states.push(`${e.peer} ${e.to}`));
    clock.advance(1000);
    a.setPeers([{ ...signed, password: 'office-2' }, plain]);
    await clock.advanceAsync(2000);
    // The old key is removed from the listener, the new one installed; only that peer reconnects.
    expect(rec.keys.slice(1).map(([peer, o]) => [peer, text(o?.md5Key)])).toEqual([
      ['127.0.0.2', undefined],
      ['127.0.0.2', 'office-2'],
    ]);
    expect(rec.connects.slice(2).map((o) => [o.remoteAddress, text(o.md5Key)])).toContainEqual([
      '127.0.0.2',
      'office-2',
    ]);
    expect(rec.connects.slice(2).some((o) => o.remoteAddress === '127.0.0.3')).toBe(false);
    expect(states.every((s) => s.startsWith('127.0.0.2 '))).toBe(true);
    expect(state(a, '127.0.0.2')).toBe('Established');
    expect(a.peerStatus().find((p) => p.address === '127.0.0.3')!.since).toBe(plainSince);
  });

  it("a listener that cannot take the key: that peer's inbound connections are refused, and its status says why", async () => {
    const net = new MemoryNetwork();
    const clock = new FakeClock(1_000_000);
    const a = await speaker(net, clock, '127.0.0.1', 64512, null);
    const b = await speaker(net, clock, '127.0.0.2', 65001, null);
    a.setPeers([{ address: '127.0.0.2', peerAs: 65001, passive: true, password: 'office-1' }]);
    b.setPeers([{ address: '127.0.0.1', peerAs: 64512 }]);
    await clock.advanceAsync(5000);
    expect(state(a, '127.0.0.2')).not.toBe('Established');
    const status = a.peerStatus()[0]!;
    expect(status.lastError).toMatch(/inbound connections refused: this listener cannot set TCP-MD5 or GTSM/);
    expect(JSON.stringify(status)).not.toContain('office-1');
  });

  it('a password Linux cannot use (over 80 bytes) or a GTSM hop count out of range is refused, naming the peer, not the password', async () => {
    const net = new MemoryNetwork();
    const a = await speaker(net, new FakeClock(1_000_000), '127.0.0.1', 64512, null);
    const long = 'x'.repeat(81);
    expect(() => a.setPeers([{ address: '127.0.0.2', peerAs: 65001, password: long }])).toThrow(
      /peer 127\.0\.0\.2: a password must be 1 to 80 bytes \(TCP-MD5\), this one is 81/,
    );
    expect(() => a.setPeers([{ address: '127.0.0.2', peerAs: 65001, password: long }])).not.toThrow(new RegExp(long));
    expect(() => a.setPeers([{ address: '127.0.0.2', peerAs: 65001, ttlSecurity: 0 }])).toThrow(
      /ttlSecurity must be a hop count from 1 to 255, not 0/,
    );
  });
});
