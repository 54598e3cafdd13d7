// Clients that hold connections open without sending anything, for tests of a server's connection bound
// (the health port, the control socket).

import type net from 'node:net';
import { waitFor } from '../../harness/wait.js';

/** Opens `count` connections with `connect`, one after the other, each left idle. */
export async function holdIdleConnections(connect: () => net.Socket, count: number): Promise<net.Socket[]> {
  const idle: net.Socket[] = [];
  for (let i = 0; i < count; i++) {
    const socket = connect();
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()).once('close', () => resolve()));
    idle.push(socket);
  }
  return idle;
}

/** How many of `sockets` are still open once the server has closed those over its bound (polled, at most 2 s). */
export async function stillOpen(sockets: readonly net.Socket[], bound: number): Promise<number> {
  const open = (): number => sockets.filter((s) => !s.destroyed && s.readyState === 'open').length;
  try {
    await waitFor(() => open() <= bound, { what: `at most ${bound} sockets open`, timeoutMs: 2_000, intervalMs: 20 });
  } catch {
    // Not a swallowed check: the count is the answer, and the caller's assertion on it names what stayed open.
  }
  return open();
}
