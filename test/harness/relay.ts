// A recording TCP relay for BGP: listens on <listenAddress>:179; when peer A connects, it connects to
// peer B from A's own address (ephemeral port: A only holds port 179 on that address), relays bytes both
// ways untouched, and splits each direction into whole BGP messages by the header's length field
// (RFC 4271 §4.1) to keep a copy of each. B should be passive so the relayed connection is the only one.
//
// Why this is hard: TCP chunks do not follow message boundaries, so each direction keeps its leftover
// bytes until a whole message is there; a length outside 19..4096 means the stream is not BGP and
// recording stops for that direction (bytes are still relayed).

import { createServer, connect, type Server, type Socket } from 'node:net';

export type RelayDirection = 'a-to-b' | 'b-to-a';

export interface RecordedMessage {
  readonly direction: RelayDirection;
  /** BGP message type (1 OPEN .. 5 ROUTE-REFRESH). */
  readonly type: number;
  /** The whole message, header included (a copy). */
  readonly bytes: Buffer;
  readonly atMs: number;
}

export interface RecordingRelay {
  readonly listenAddress: string;
  readonly messages: RecordedMessage[];
  /** How many connections A made through the relay. */
  connections(): number;
  close(): Promise<void>;
}

export interface RelayOptions {
  readonly listenAddress: string;
  readonly listenPort?: number;
  readonly targetAddress: string;
  readonly targetPort?: number;
  /** Time source for atMs (injected for tests). */
  readonly now?: () => number;
}

/** Splits a byte stream into BGP messages; keeps the leftover between calls. */
export class BgpStreamSplitter {
  private pending: Buffer = Buffer.alloc(0);
  private broken = false;

  /** Feeds bytes; returns the whole messages completed by them. */
  push(chunk: Buffer): Buffer[] {
    if (this.broken) return [];
    this.pending = this.pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.pending, chunk]);
    const out: Buffer[] = [];
    for (let guard = 0; guard < 10_000 && this.pending.length >= 19; guard++) {
      const length = this.pending.readUInt16BE(16);
      // RFC 4271 §4.1: Length is 19..4096.
      if (length < 19 || length > 4096) {
        this.broken = true;
        return out;
      }
      if (this.pending.length < length) break;
      out.push(Buffer.from(this.pending.subarray(0, length)));
      this.pending = this.pending.subarray(length);
    }
    return out;
  }
}

export function startRecordingRelay(options: RelayOptions): Promise<RecordingRelay> {
  const now = options.now ?? Date.now;
  const messages: RecordedMessage[] = [];
  const sockets = new Set<Socket>();
  let connectionCount = 0;

  const record = (direction: RelayDirection, splitter: BgpStreamSplitter, chunk: Buffer) => {
    for (const bytes of splitter.push(chunk)) messages.push({ direction, type: bytes[18] ?? 0, bytes, atMs: now() });
  };

  const server: Server = createServer((fromA) => {
    connectionCount++;
    sockets.add(fromA);
    const toB = connect({
      host: options.targetAddress,
      port: options.targetPort ?? 179,
      localAddress: fromA.remoteAddress?.replace(/^::ffff:/, ''),
    });
    sockets.add(toB);
    const aToB = new BgpStreamSplitter();
    const bToA = new BgpStreamSplitter();
    fromA.on('data', (chunk: Buffer) => {
      record('a-to-b', aToB, chunk);
      toB.write(chunk);
    });
    toB.on('data', (chunk: Buffer) => {
      record('b-to-a', bToA, chunk);
      fromA.write(chunk);
    });
    const closeBoth = () => {
      fromA.end();
      toB.end();
    };
    fromA.on('end', closeBoth);
    toB.on('end', closeBoth);
    fromA.on('error', () => toB.destroy());
    toB.on('error', () => fromA.destroy());
    fromA.on('close', () => sockets.delete(fromA));
    toB.on('close', () => sockets.delete(toB));
  });

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: options.listenAddress, port: options.listenPort ?? 179 }, () => {
      resolve({
        listenAddress: options.listenAddress,
        messages,
        connections: () => connectionCount,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}
