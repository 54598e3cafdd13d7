// A stand-in etcd member on 127.0.0.1 that accepts TCP connections and never sends a byte (a hung etcd;
// for https, a TLS handshake that never completes), or with `garbage`, answers every connection with bytes
// that are not TLS and closes. For failover tests of the etcd gateway transport.

import { createServer, type AddressInfo, type Socket } from 'node:net';

export interface SilentMember {
  endpoint: string;
  connections: () => number;
  close(): Promise<void>;
}

export async function silentMember(scheme: 'http' | 'https' = 'http', garbage = false): Promise<SilentMember> {
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('error', () => undefined);
    if (garbage) socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `${scheme}://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
