// A byte relay between a TCP address and a Unix socket, for the lab (`tortie lab relay FROM TO`).
//
// Why the lab needs it: etcd runs in the host's network namespace on 127.0.0.1 (so `tortie get` and the
// tests reach it as usual), but the agents run inside node namespaces, whose 127.0.0.1 is their own. A Unix
// socket lives in the file system, which every namespace shares. So: one relay on the host from
// `unix:<lab>/etcd.sock` to etcd's `tcp:127.0.0.1:<port>`, and one inside each node namespace from that
// namespace's `tcp:127.0.0.1:2379` to the socket. All traffic stays on loopback and in files.
//
// Bounded: at most `maxConnections` at once (more are refused), idle connections are not kept alive by us,
// and an error on either side closes both.

import net from 'node:net';
import { rmSync } from 'node:fs';

export type Endpoint = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

/** "tcp:127.0.0.1:2379" or "unix:/path/to.sock". */
export function parseEndpoint(text: string): Endpoint {
  if (text.startsWith('unix:')) {
    const path = text.slice('unix:'.length);
    if (!path.startsWith('/'))
      throw new Error(`relay endpoint "${text}": a unix socket needs an absolute path (unix:/path/to.sock)`);
    return { kind: 'unix', path };
  }
  const match = /^tcp:(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(text);
  if (match === null || Number(match[2]) < 1 || Number(match[2]) > 65535) {
    throw new Error(`relay endpoint "${text}" is neither tcp:<IPv4>:<port 1..65535> nor unix:/<path>`);
  }
  return { kind: 'tcp', host: match[1]!, port: Number(match[2]) };
}

export function formatEndpoint(endpoint: Endpoint): string {
  return endpoint.kind === 'unix' ? `unix:${endpoint.path}` : `tcp:${endpoint.host}:${endpoint.port}`;
}

function connectTo(endpoint: Endpoint): net.Socket {
  return endpoint.kind === 'unix' ? net.connect(endpoint.path) : net.connect(endpoint.port, endpoint.host);
}

export interface Relay {
  close(): Promise<void>;
}

/** Listens on `from` and pipes every connection to a new connection to `to`. */
export async function startRelay(
  from: Endpoint,
  to: Endpoint,
  options: { maxConnections?: number } = {},
): Promise<Relay> {
  const open = new Set<net.Socket>();
  const server = net.createServer((inbound) => {
    const outbound = connectTo(to);
    open.add(inbound);
    open.add(outbound);
    const done = (): void => {
      inbound.destroy();
      outbound.destroy();
      open.delete(inbound);
      open.delete(outbound);
    };
    inbound.on('error', done).on('close', done);
    outbound.on('error', done).on('close', done);
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  server.maxConnections = options.maxConnections ?? 256;
  if (from.kind === 'unix') rmSync(from.path, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(new Error(`relay: cannot listen on ${formatEndpoint(from)}: ${error.code ?? error.message}`)),
    );
    if (from.kind === 'unix') server.listen(from.path, resolve);
    else server.listen(from.port, from.host, resolve);
  });
  return {
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
