// An in-memory kernel for unit tests: a main routing table and a set of interface names that behave
// like Linux where felix cares, plus knobs a test needs (fail the next call, count writes, add a
// foreign route or an interface as "someone else").
//
// Kernel behaviour copied (facts, checked against iproute2 6.1 in a namespace):
//   - a route is identified in the main table by destination and metric: `replace` overwrites whatever
//     route has that destination and metric, whoever installed it;
//   - `del` removes the first route matching every field given;
//   - a route naming a `dev` that does not exist fails ("Cannot find device");
//   - deleting an interface deletes the routes through it;
//   - every change is announced to watchers (asynchronously, like `ip monitor`).

import {
  KernelError,
  normalizeKernelRoute,
  type Kernel,
  type KernelBatch,
  type KernelEvent,
  type KernelRoute,
  type KernelSnapshot,
} from './kernel.js';

export class MemoryKernel implements Kernel {
  private routes: KernelRoute[] = [];
  private readonly links = new Set<string>();
  private readonly watchers = new Set<(event: KernelEvent) => void>();
  private failures: Array<{ call: string; error: string }> = [];
  /** Route lines written by `apply` (deletions + additions) since creation. */
  writes = 0;
  /** Calls to `apply`, `listRoutes`, `listLinks` and `linkExists`, by name. */
  readonly calls: Record<string, number> = {};
  /** How many times `close` was called (a fresh connection in the reconciler closes the old one). */
  closes = 0;

  constructor(options: { links?: string[]; routes?: KernelRoute[] } = {}) {
    for (const name of options.links ?? []) this.links.add(name);
    for (const route of options.routes ?? []) this.routes.push(normalizeKernelRoute(route));
  }

  /** The next call of `call` (or of any call, '*') rejects with `error`. */
  failNext(call: 'apply' | 'listRoutes' | 'listLinks' | 'linkExists' | '*' = '*', error = 'injected failure'): void {
    this.failures.push({ call, error });
  }

  /** Someone else adds a route (a user, BIRD, the CNI): no write counted, watchers told. */
  insert(route: KernelRoute): void {
    const n = normalizeKernelRoute(route);
    this.routes = this.routes.filter((r) => !(r.dst === n.dst && (r.metric ?? 0) === (n.metric ?? 0)));
    this.routes.push(n);
    this.emit({ kind: 'route', dst: n.dst, deleted: false });
  }

  /** Someone else deletes every route to `dst`. */
  remove(dst: string): void {
    const n = normalizeKernelRoute({ dst }).dst;
    const before = this.routes.length;
    this.routes = this.routes.filter((r) => r.dst !== n);
    if (this.routes.length !== before) this.emit({ kind: 'route', dst: n, deleted: true });
  }

  addLink(name: string): void {
    this.links.add(name);
    this.emit({ kind: 'link', name, deleted: false });
  }

  removeLink(name: string): void {
    if (!this.links.delete(name)) return;
    const gone = this.routes.filter((r) => r.dev === name);
    this.routes = this.routes.filter((r) => r.dev !== name);
    this.emit({ kind: 'link', name, deleted: true });
    for (const r of gone) this.emit({ kind: 'route', dst: r.dst, deleted: true });
  }

  /** The table as it is now, normalized, sorted by destination. */
  snapshot(): KernelRoute[] {
    return [...this.routes].sort((a, b) => (a.dst < b.dst ? -1 : a.dst > b.dst ? 1 : 0));
  }

  /** `listRoutes` and `listLinks` together (each counted, and failing, as itself). */
  async readAll(): Promise<KernelSnapshot> {
    return { routes: await this.listRoutes(), links: await this.listLinks() };
  }

  async listRoutes(): Promise<KernelRoute[]> {
    this.enter('listRoutes');
    return this.routes.map((r) => ({ ...r, flags: [...(r.flags ?? [])] }));
  }

  async listLinks(): Promise<string[]> {
    this.enter('listLinks');
    return [...this.links];
  }

  async linkExists(name: string): Promise<boolean> {
    this.enter('linkExists');
    return this.links.has(name);
  }

  async apply(batch: KernelBatch): Promise<void> {
    this.enter('apply');
    const failed: Array<{ command: string; error: string }> = [];
    for (const route of batch.del) {
      this.writes++;
      const want = normalizeKernelRoute(route);
      const index = this.routes.findIndex((r) => matchesForDelete(r, want, route));
      if (index < 0) {
        failed.push({ command: `route del ${want.dst}`, error: 'RTNETLINK answers: No such process' });
        continue;
      }
      this.routes.splice(index, 1);
      this.emit({ kind: 'route', dst: want.dst, deleted: true });
    }
    for (const route of batch.add) {
      this.writes++;
      const n = normalizeKernelRoute(route);
      if (n.dev !== undefined && !this.links.has(n.dev)) {
        failed.push({ command: `route replace ${n.dst} dev ${n.dev}`, error: `Cannot find device "${n.dev}"` });
        continue;
      }
      this.routes = this.routes.filter((r) => !(r.dst === n.dst && (r.metric ?? 0) === (n.metric ?? 0)));
      this.routes.push(n);
      this.emit({ kind: 'route', dst: n.dst, deleted: false });
    }
    if (failed.length > 0) {
      throw new KernelError(`${failed.length} of ${batch.del.length + batch.add.length} route commands failed`, failed);
    }
  }

  watch(onChange: (event: KernelEvent) => void): { stop(): void } {
    this.watchers.add(onChange);
    return { stop: () => this.watchers.delete(onChange) };
  }

  async close(): Promise<void> {
    this.closes++;
  }

  /** Tells watchers the event stream broke (what a dead `ip monitor` looks like). */
  loseEvents(reason = 'monitor exited'): void {
    this.emit({ kind: 'lost', reason });
  }

  private enter(call: string): void {
    this.calls[call] = (this.calls[call] ?? 0) + 1;
    const index = this.failures.findIndex((f) => f.call === call || f.call === '*');
    if (index >= 0) {
      const [failure] = this.failures.splice(index, 1);
      throw new KernelError(`${call}: ${failure?.error ?? 'injected failure'}`);
    }
  }

  private emit(event: KernelEvent): void {
    for (const watcher of [...this.watchers]) queueMicrotask(() => watcher(event));
  }
}

/** `ip route del` semantics: the destination must match; every other field given must match too. */
function matchesForDelete(have: KernelRoute, want: KernelRoute, given: KernelRoute): boolean {
  if (have.dst !== want.dst) return false;
  if (given.type !== undefined && have.type !== want.type) return false;
  if (given.protocol !== undefined && have.protocol !== want.protocol) return false;
  if (given.dev !== undefined && have.dev !== want.dev) return false;
  if (given.gateway !== undefined && have.gateway !== want.gateway) return false;
  if ((have.metric ?? 0) !== (want.metric ?? 0)) return false;
  return true;
}
