// Echoes of our own writes: every route the table writes comes back as a kernel event (`ip monitor`),
// possibly before the write's promise resolves. Those events are expected and swallowed — otherwise every
// apply would mark its own prefixes dirty and cause another read. An event matches an expected echo by
// destination and kind (added or deleted) within ECHO_WINDOW_MS of the write; a foreign change to the same
// prefix, same kind, inside that window is swallowed too (the periodic full resync is the backstop). A full
// read forgets every expectation: it covers whatever the events would have said.

import type { KernelRoute } from './kernel.js';

/** How long an expected echo of our own write is waited for before a matching event counts as foreign. */
export const ECHO_WINDOW_MS = 5_000;

export class RouteEchoes {
  /** `${dst}|${deleted}` → when we wrote it. */
  private readonly expected = new Map<string, number>();

  /** The batch `del` + `add` was written at `now`: its events are ours. */
  expect(del: readonly KernelRoute[], add: readonly KernelRoute[], now: number): void {
    for (const route of del) this.expected.set(`${route.dst}|true`, now);
    for (const route of add) this.expected.set(`${route.dst}|false`, now);
  }

  /** Whether a route event is the echo of our own write (consumed: each write is one echo). */
  isEcho(dst: string, deleted: boolean, now: number): boolean {
    const key = `${dst}|${deleted}`;
    const wrote = this.expected.get(key);
    if (wrote === undefined || now - wrote > ECHO_WINDOW_MS) return false;
    this.expected.delete(key);
    return true;
  }

  /** A full read of the kernel: nothing is expected any more. */
  clear(): void {
    this.expected.clear();
  }
}
