// The BGP listener: a TCP server that hands each inbound connection to the Speaker, with TCP-MD5 keys
// (RFC 2385) and GTSM (RFC 5082) per peer address on the listening socket. Tests pass MemoryNetwork's
// `listen` instead (the `Acceptor` shape).

import { createServer } from 'node:net';
import { setTtl255, setTtlSecurity, setTcpMd5, type SecureSocketOptions } from './socket-options.js';
import { wrapSocket, type Connection } from './transport.js';

/**
 * A running listener: calling it closes it. `setPeerSecurity` (where the listener can) installs or removes
 * one peer's TCP-MD5 key and GTSM hops; it throws, naming the reason, when it cannot. A listener without it
 * cannot accept a peer that has a password: the speaker refuses such a peer's inbound connections.
 */
export type ListenerHandle = (() => Promise<void>) & {
  readonly setPeerSecurity?: (address: string, options: SecureSocketOptions | undefined) => void;
};

/** Listens on address:port and hands every inbound connection to `onConnection`; resolves to a handle. */
export type Acceptor = (
  address: string,
  port: number,
  onConnection: (conn: Connection) => void,
) => Promise<ListenerHandle>;

/** The file descriptor under a node:net socket or server (Linux; -1 when there is none). */
function fdOf(handleOwner: unknown): number {
  const fd = (handleOwner as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' ? fd : -1;
}

/**
 * The TCP acceptor. Rejects with a message naming the address and the likely cause when it cannot bind.
 * TCP-MD5 keys go on the listening socket, one per peer address (RFC 2385 as Linux does it: the kernel
 * drops a SYN from that address without a valid signature). GTSM: IP_TTL 255 on the listener (the SYN-ACK
 * and, inherited, every accepted socket send with it), IP_MINTTL on each accepted socket of that peer.
 */
export const tcpAcceptor: Acceptor = async (address, port, onConnection) => {
  const security = new Map<string, SecureSocketOptions>();
  const server = createServer({ noDelay: true }, (socket) => {
    const hops = security.get((socket.remoteAddress ?? '').replace(/^::ffff:/, ''))?.ttlSecurity;
    if (hops !== undefined) {
      try {
        setTtlSecurity(fdOf(socket), hops);
      } catch {
        // The listener set IP_TTL already, so the native part works; a socket that is gone meanwhile
        // closes by itself.
        socket.destroy();
        return;
      }
    }
    onConnection(wrapSocket(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      const hint =
        error.code === 'EADDRINUSE'
          ? 'another BGP speaker (bird, bgpd, gobgpd?) already listens there'
          : error.code === 'EACCES'
            ? 'ports below 1024 need root or CAP_NET_BIND_SERVICE'
            : error.code === 'EADDRNOTAVAIL'
              ? 'no interface on this machine has that address'
              : error.message;
      reject(new Error(`cannot listen for BGP on ${address}:${port}: ${error.code ?? 'error'} (${hint})`));
    });
    server.listen({ host: address, port, exclusive: true }, () => resolve());
  });
  let ttl255 = false;
  const setPeerSecurity = (peer: string, options: SecureSocketOptions | undefined): void => {
    const had = security.get(peer);
    const key = options?.md5Key !== undefined && options.md5Key.length > 0 ? options.md5Key : undefined;
    if (key !== undefined) setTcpMd5(fdOf(server), peer, key);
    else if (had?.md5Key !== undefined) setTcpMd5(fdOf(server), peer, undefined);
    if (options?.ttlSecurity !== undefined && !ttl255) {
      setTtl255(fdOf(server));
      ttl255 = true;
    }
    if (options && (key !== undefined || options.ttlSecurity !== undefined)) security.set(peer, options);
    else security.delete(peer);
  };
  const close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return Object.assign(close, { setPeerSecurity });
};
