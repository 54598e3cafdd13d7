// TCP behind a small interface: a `Transport` opens connections, a `Connection` carries bytes. The session
// only ever sees these, so tests run over in-memory pipes (`memoryPair`, `MemoryNetwork`) on fake time.
//
// Implementations here:
// - `tcpTransport` on node:net: setNoDelay(true) (BGP messages are small and latency matters for
//   keepalives), optional bind to a local address, errors that name the address and the errno
//   (EADDRNOTAVAIL, ECONNREFUSED, ...). With `md5Key` or `ttlSecurity` the socket is made natively with
//   those options set before the SYN (bgp/socket-options.ts) and then adopted by node:net; where the
//   native part is missing such a connect fails with ENOTSUP, never unsigned. `wrapSocket` turns a socket accepted by the speaker's listener
//   into a `Connection` so it can be handed to a session.
// - `MemoryNetwork`: listeners keyed by "address:port"; `transport(localAddress)` gives a Transport that
//   connects to them, refusing (ECONNREFUSED) when nothing listens.
// - `memoryPair()`: two connected ends. Bytes are delivered asynchronously (microtask), never re-entrantly,
//   and a chunk is copied on write, so neither side can see the other mutate a buffer.
//
// Why this is hard: ordering and back-pressure. `write` returns false when the peer is slow ('drain'
// follows); callers must keep order and keep going (timers must not block). `close()` flushes queued bytes
// first (a NOTIFICATION must reach the peer before the FIN); `destroy()` drops them.

import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import { openSocket, SocketOptionError } from './socket-options.js';

export interface ConnectionEvents {
  data: [chunk: Uint8Array];
  /** Emitted once, after the connection is gone for whatever reason. */
  close: [hadError: boolean];
  error: [error: Error];
  /** The write buffer emptied after a `write` returned false. */
  drain: [];
}

export interface Connection extends EventEmitter<ConnectionEvents> {
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** Queues bytes in order. Returns false when the caller should wait for 'drain' before writing more. */
  write(bytes: Uint8Array): boolean;
  /** Flushes what is queued, then closes (FIN). */
  close(): void;
  /** Closes at once, dropping queued bytes. */
  destroy(): void;
  readonly closed: boolean;
  /** Bytes written and not yet taken by the kernel / the peer (the session bounds its send queue with it). */
  readonly bufferedBytes?: number;
}

export interface ConnectOptions {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress?: string;
  /** Aborting rejects a pending connect and destroys the socket. */
  readonly signal?: AbortSignal;
  /** TCP-MD5 key (RFC 2385): every segment of the connection, the SYN first, is signed with it. */
  readonly md5Key?: Uint8Array;
  /** GTSM (RFC 5082): send with TTL 255, accept only segments that crossed at most this many hops. */
  readonly ttlSecurity?: number;
}

export interface Transport {
  connect(options: ConnectOptions): Promise<Connection>;
}

/** An error that names what failed: "connect to 127.0.0.2:179 from 127.0.0.9: EADDRNOTAVAIL (...)". */
export class TransportError extends Error {
  /** errno name (ECONNREFUSED, EADDRNOTAVAIL, ETIMEDOUT, ABORTED, ...). */
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'TransportError';
    this.code = code;
  }
}

/** Short human words for an errno, as `tortie node status` shows them (BIRD says "Connection refused"). */
const ERRNO_TEXT: Record<string, string> = {
  ECONNREFUSED: 'Connection refused',
  ECONNRESET: 'Connection reset by peer',
  ETIMEDOUT: 'Connection timed out',
  EHOSTUNREACH: 'No route to host',
  ENETUNREACH: 'Network is unreachable',
  EADDRNOTAVAIL: 'Cannot assign requested address',
  EADDRINUSE: 'Address already in use',
  ABORTED: 'Connection attempt aborted',
  ENOTSUP: 'Not supported here',
};

export function describeErrno(code: string): string {
  return ERRNO_TEXT[code] ?? code;
}

function connectError(options: ConnectOptions, code: string): TransportError {
  const from = options.localAddress ? ` from ${options.localAddress}` : '';
  const hint =
    code === 'EADDRNOTAVAIL' && options.localAddress
      ? ` (local address ${options.localAddress} is not assigned to any interface of this host; set it to one that is, or leave it unset)`
      : '';
  return new TransportError(
    code,
    `connect to ${options.remoteAddress}:${options.remotePort}${from}: ${describeErrno(code)} (${code})${hint}`,
  );
}

// ---- TCP ---------------------------------------------------------------------------------------------------

class TcpConnection extends EventEmitter<ConnectionEvents> implements Connection {
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  private readonly socket: net.Socket;
  private isClosed = false;

  constructor(socket: net.Socket) {
    super();
    this.socket = socket;
    socket.setNoDelay(true);
    // A session with hold time 0 has no BGP keepalives: TCP's notice a dead peer (probes after 30 s idle).
    socket.setKeepAlive(true, 30_000);
    this.localAddress = socket.localAddress ?? '';
    this.localPort = socket.localPort ?? 0;
    this.remoteAddress = socket.remoteAddress ?? '';
    this.remotePort = socket.remotePort ?? 0;
    socket.on('data', (chunk: Buffer) =>
      this.emit('data', new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)),
    );
    socket.on('drain', () => this.emit('drain'));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? 'EIO';
      this.emit(
        'error',
        new TransportError(
          code,
          `connection ${this.localAddress}:${this.localPort} ↔ ${this.remoteAddress}:${this.remotePort}: ${describeErrno(code)} (${code})`,
        ),
      );
    });
    socket.on('close', (hadError) => {
      this.isClosed = true;
      this.emit('close', hadError);
    });
  }

  get closed(): boolean {
    return this.isClosed;
  }

  get bufferedBytes(): number {
    return this.socket.writableLength;
  }

  write(bytes: Uint8Array): boolean {
    if (this.isClosed || this.socket.destroyed) return true;
    return this.socket.write(bytes);
  }

  close(): void {
    if (this.socket.destroyed) return;
    this.socket.end();
    // A peer that never closes its side must not keep the socket forever.
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Wraps a socket accepted by a listener (or already connected) as a Connection. */
export function wrapSocket(socket: net.Socket): Connection {
  return new TcpConnection(socket);
}

export const tcpTransport: Transport = {
  connect(options: ConnectOptions): Promise<Connection> {
    return new Promise((resolve, reject) => {
      if (options.signal?.aborted) {
        reject(connectError(options, 'ABORTED'));
        return;
      }
      const target = {
        host: options.remoteAddress,
        port: options.remotePort,
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      };
      let socket: net.Socket;
      if ((options.md5Key !== undefined && options.md5Key.length > 0) || options.ttlSecurity !== undefined) {
        // The options must be on the socket before the SYN: a socket made natively, adopted by node:net,
        // connected by it (libuv binds and connects an adopted, unconnected socket as its own).
        let fd: number;
        try {
          fd = openSocket(options.remoteAddress, {
            ...(options.md5Key !== undefined ? { md5Key: options.md5Key } : {}),
            ...(options.ttlSecurity !== undefined ? { ttlSecurity: options.ttlSecurity } : {}),
          });
        } catch (error) {
          const code = error instanceof SocketOptionError ? error.code : 'EIO';
          const from = options.localAddress ? ` from ${options.localAddress}` : '';
          reject(
            new TransportError(
              code,
              `connect to ${options.remoteAddress}:${options.remotePort}${from}: ${error instanceof Error ? error.message : String(error)}`,
            ),
          );
          return;
        }
        socket = new net.Socket({ fd, readable: true, writable: true });
        socket.connect(target);
      } else {
        socket = net.connect(target);
      }
      const onAbort = (): void => {
        socket.destroy();
        reject(connectError(options, 'ABORTED'));
      };
      options.signal?.addEventListener('abort', onAbort, { once: true });
      socket.once('error', (err: NodeJS.ErrnoException) => {
        options.signal?.removeEventListener('abort', onAbort);
        socket.destroy();
        reject(connectError(options, err.code ?? 'EIO'));
      });
      socket.once('connect', () => {
        options.signal?.removeEventListener('abort', onAbort);
        socket.removeAllListeners('error');
        resolve(new TcpConnection(socket));
      });
    });
  },
};

// ---- in memory ---------------------------------------------------------------------------------------------

interface Endpoint {
  address: string;
  port: number;
}

class MemoryConnection extends EventEmitter<ConnectionEvents> implements Connection {
  peer: MemoryConnection | undefined;
  private isClosed = false;
  /** Bytes written but not yet delivered; write() returns false above this (simulated back-pressure). */
  private inFlight = 0;
  highWaterMark = 64 * 1024;
  private wantDrain = false;

  /** Data and close that arrived before anyone listened (a socket buffers them the same way). */
  private backlog: Uint8Array[] = [];
  private closeUnheard = false;

  constructor(
    private readonly local: Endpoint,
    private readonly remote: Endpoint,
  ) {
    super();
    (this as EventEmitter).on('newListener', (event: string) => {
      if (event === 'data' && this.backlog.length > 0) queueMicrotask(() => this.replayBacklog());
      if (event === 'close' && this.closeUnheard) queueMicrotask(() => this.replayBacklog());
    });
  }

  /** Called by the peer: hands over a chunk, or keeps it until a 'data' listener exists. */
  receive(chunk: Uint8Array): void {
    if (this.listenerCount('data') === 0 || this.backlog.length > 0) this.backlog.push(chunk);
    else this.emit('data', chunk);
  }

  private replayBacklog(): void {
    if (this.listenerCount('data') > 0) {
      const chunks = this.backlog;
      this.backlog = [];
      for (const c of chunks) this.emit('data', c);
    }
    if (this.closeUnheard && this.backlog.length === 0 && this.listenerCount('close') > 0) {
      this.closeUnheard = false;
      this.emit('close', false);
    }
  }

  private announceClose(): void {
    if (this.listenerCount('close') === 0 || this.backlog.length > 0) this.closeUnheard = true;
    else this.emit('close', false);
  }

  get localAddress(): string {
    return this.local.address;
  }
  get localPort(): number {
    return this.local.port;
  }
  get remoteAddress(): string {
    return this.remote.address;
  }
  get remotePort(): number {
    return this.remote.port;
  }
  get closed(): boolean {
    return this.isClosed;
  }

  write(bytes: Uint8Array): boolean {
    const peer = this.peer;
    if (this.isClosed || !peer || peer.isClosed) return true;
    const copy = Uint8Array.from(bytes);
    this.inFlight += copy.length;
    queueMicrotask(() => {
      this.inFlight -= copy.length;
      if (!peer.isClosed) peer.receive(copy);
      if (this.wantDrain && this.inFlight === 0 && !this.isClosed) {
        this.wantDrain = false;
        this.emit('drain');
      }
    });
    if (this.inFlight > this.highWaterMark) {
      this.wantDrain = true;
      return false;
    }
    return true;
  }

  close(): void {
    // Queued data is delivered first: the close is queued behind it.
    if (this.isClosed) return;
    queueMicrotask(() => this.destroy());
  }

  destroy(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    const peer = this.peer;
    queueMicrotask(() => this.announceClose());
    if (peer && !peer.isClosed) peer.destroy();
  }
}

/** Two connected in-memory ends: [a, b]. What a writes, b receives (asynchronously, in order). */
export function memoryPair(
  a: Endpoint = { address: '127.0.0.1', port: 40000 },
  b: Endpoint = { address: '127.0.0.2', port: 179 },
): [Connection, Connection] {
  const left = new MemoryConnection(a, b);
  const right = new MemoryConnection(b, a);
  left.peer = right;
  right.peer = left;
  return [left, right];
}

/** Listeners keyed by "address:port"; transports that connect to them. */
export class MemoryNetwork {
  private readonly listeners = new Map<string, (conn: Connection) => void>();
  private nextPort = 40000;

  listen(address: string, port: number, onConnection: (conn: Connection) => void): () => void {
    const key = `${address}:${port}`;
    if (this.listeners.has(key)) throw new Error(`MemoryNetwork: ${key} is already listening`);
    this.listeners.set(key, onConnection);
    return () => this.listeners.delete(key);
  }

  transport(localAddress = '127.0.0.1'): Transport {
    return {
      connect: (options) =>
        new Promise((resolve, reject) => {
          queueMicrotask(() => {
            if (options.signal?.aborted) return reject(connectError(options, 'ABORTED'));
            const onConnection = this.listeners.get(`${options.remoteAddress}:${options.remotePort}`);
            if (!onConnection) return reject(connectError(options, 'ECONNREFUSED'));
            const local = { address: options.localAddress ?? localAddress, port: this.nextPort++ };
            const [mine, theirs] = memoryPair(local, { address: options.remoteAddress, port: options.remotePort });
            onConnection(theirs);
            resolve(mine);
          });
        }),
    };
  }
}
