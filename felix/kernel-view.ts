// The route table's view of the kernel, as last read or written: routes by destination (normalized), the
// interfaces, and when each cali* interface was first seen (for the grace period of route-diff.ts). Only
// bookkeeping, no I/O: route-table.ts reads the kernel and hands the answers in.

import type { KernelBatch, KernelRoute, KernelSnapshot } from './kernel.js';
import { groupByDst, recordWritten } from './route-diff.js';

export class KernelView {
  /** Destination → the kernel's routes for it (normalized). */
  routes = new Map<string, KernelRoute[]>();
  links = new Set<string>();
  /** cali* interface → when it was first seen (-Infinity for those present at the first full read). */
  private readonly caliFirstSeen = new Map<string, number>();

  constructor(private readonly graceMs: number) {}

  /** A full read: the whole view replaced; cali* interfaces first seen at `seenAt`. */
  take(snapshot: KernelSnapshot, seenAt: number): void {
    this.routes = groupByDst(snapshot.routes);
    this.links = new Set(snapshot.links);
    for (const name of [...this.caliFirstSeen.keys()]) if (!this.links.has(name)) this.caliFirstSeen.delete(name);
    this.noteLinks(snapshot.links, seenAt);
  }

  /** A partial read (`listRoutes`): the routes of `dsts` taken from it. */
  refresh(dsts: Iterable<string>, listed: readonly KernelRoute[]): void {
    const fresh = groupByDst(listed);
    for (const dst of dsts) {
      const routes = fresh.get(dst);
      if (routes === undefined) this.routes.delete(dst);
      else this.routes.set(dst, routes);
    }
  }

  /** A link event. */
  link(name: string, deleted: boolean, now: number): void {
    if (deleted) {
      this.links.delete(name);
      this.caliFirstSeen.delete(name);
    } else {
      this.links.add(name);
      this.noteLinks([name], now);
    }
  }

  /** The batch was handed to the kernel. */
  written(batch: KernelBatch): void {
    recordWritten(this.routes, batch.del, batch.add);
  }

  /** The batch failed: what it touched is unknown until the next read. */
  forget(batch: KernelBatch): void {
    for (const route of batch.del) this.routes.delete(route.dst);
    for (const route of batch.add) this.routes.delete(route.dst);
  }

  /** Until when (clock time) an unwanted route on `dev` is kept for its new cali* interface; -Infinity: not. */
  graceUntil(dev: string | undefined): number {
    if (dev === undefined || !dev.startsWith('cali')) return -Infinity;
    const seen = this.caliFirstSeen.get(dev);
    return seen === undefined ? -Infinity : seen + this.graceMs;
  }

  private noteLinks(links: Iterable<string>, when: number): void {
    for (const name of links) {
      if (name.startsWith('cali') && !this.caliFirstSeen.has(name)) this.caliFirstSeen.set(name, when);
    }
  }
}
