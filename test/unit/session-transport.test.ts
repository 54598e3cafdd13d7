// The in-memory transport behaves like a socket in the ways the session relies on.
import { describe, expect, it } from 'vitest';
import { settle } from '../../bgp/clock.js';
import { MemoryNetwork, memoryPair, TransportError } from '../../bgp/transport.js';

describe('memoryPair', () => {
  it('delivers in order, asynchronously, as copies', async () => {
    const [a, b] = memoryPair();
    const got: number[][] = [];
    b.on('data', (c) => got.push([...c]));
    const buf = Uint8Array.of(1, 2, 3);
    a.write(buf);
    buf[0] = 9; // the writer reuses its buffer
    a.write(Uint8Array.of(4));
    expect(got).toEqual([]); // never re-entrant
    await settle();
    expect(got).toEqual([[1, 2, 3], [4]]);
  });

  it('keeps data and close that arrive before anyone listens, and replays them in order', async () => {
    const [a, b] = memoryPair();
    a.write(Uint8Array.of(7));
    a.close();
    await settle();
    const seen: string[] = [];
    b.on('close', () => seen.push('close'));
    b.on('data', (c) => seen.push(`data ${[...c].join(',')}`));
    await settle();
    expect(seen).toEqual(['data 7', 'close']);
  });

  it('close() delivers queued bytes first; destroy() closes both ends', async () => {
    const [a, b] = memoryPair();
    const seen: string[] = [];
    b.on('data', () => seen.push('data'));
    b.on('close', () => seen.push('close'));
    a.write(Uint8Array.of(1));
    a.close();
    await settle();
    expect(seen).toEqual(['data', 'close']);
    expect(a.closed && b.closed).toBe(true);
  });

  it('signals back-pressure with false, then drain', async () => {
    const [a, b] = memoryPair();
    b.on('data', () => {});
    const results: boolean[] = [];
    for (let i = 0; i < 3; i++) results.push(a.write(new Uint8Array(40 * 1024)));
    expect(results).toEqual([true, false, false]);
    let drained = false;
    a.on('drain', () => (drained = true));
    await settle();
    expect(drained).toBe(true);
  });
});

describe('MemoryNetwork', () => {
  it('connects to a listener and refuses with ECONNREFUSED naming the address otherwise', async () => {
    const net = new MemoryNetwork();
    const accepted: string[] = [];
    net.listen('127.0.0.2', 179, (conn) =>
      accepted.push(`${conn.remoteAddress}→${conn.localAddress}:${conn.localPort}`),
    );
    const conn = await net.transport('127.0.0.1').connect({ remoteAddress: '127.0.0.2', remotePort: 179 });
    expect(conn.remotePort).toBe(179);
    expect(accepted).toEqual(['127.0.0.1→127.0.0.2:179']);
    const refused = await net
      .transport()
      .connect({ remoteAddress: '127.0.0.3', remotePort: 179 })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(refused).toBeInstanceOf(TransportError);
    expect((refused as TransportError).code).toBe('ECONNREFUSED');
    expect((refused as Error).message).toContain('127.0.0.3:179');
  });
});
