// The route table reconciler: keeps the kernel's main routing table equal to felix's desired routes,
// touching only the routes felix owns. The decisions are route-diff.ts's (pure: ownership, the desired
// set's kernel form, one destination's writes) and the echoes of our own writes route-echoes.ts's; this
// class holds the state between applies and decides when to apply: scheduling, the event stream, retries.
//
// `apply()` does, in order: (1) read the kernel — all of it on the first apply, after a broken event
// stream, a failed write and every `resyncMs` (90 s, Calico's default), otherwise only the prefixes kernel
// events marked; (2) diff desired vs kernel for the dirty prefixes only; (3) one batch: deletions first,
// then additions with replace semantics; (4) on failure, one retry with a fresh kernel connection
// (`options.reconnect`) after a full re-read; a second failure rejects and leaves a full resync due.
//
// Where the time goes, and the overlaps that cut it (10,000 routes into an empty table: ~1.1× a bare
// `ip -batch` of the same lines; test/bench/README.md "felix-routes"): `setDesired` only checks and copies
// the routes; the full read is started first and the desired set is settled while ip reads; a full resync
// with changes reads and writes through one kernel session (`readThenWrite`: one `ip` process, not two);
// the view of the kernel is updated while ip works through the batch, and forgotten if it fails.
//
// Why this is hard: a restart adopts the owned routes already there and writes only the difference (no
// blackout), and until BGP has re-learned the remote blocks the caller keeps unwanted ones
// (`retainUnwanted`); a workload's cali* interface may not exist yet (the route waits for its link event)
// or be brand new with a route the CNI added (kept for `graceMs`); our writes come back as events.

import {
  sameNormalizedRoute,
  type Kernel,
  type KernelBatch,
  type KernelEvent,
  type KernelRoute,
  type KernelSnapshot,
} from './kernel.js';
import {
  copyDesired,
  desiredDst,
  diffDestination,
  isOwnedRoute,
  settleDesired,
  DestinationNotes,
  type DiffContext,
  type SettledDesired,
} from './route-diff.js';
import { KernelView } from './kernel-view.js';
import { RouteEchoes } from './route-echoes.js';
import type { DesiredRoute, RouteConflict } from './routes.js';
import { systemClock, type Clock } from '../bgp/clock.js';

export { isOwnedRoute, toKernelRoute } from './route-diff.js';

/** The time source: the project's one Clock (bgp/clock.ts, which felix may import). */
export type RouteTableClock = Clock;

const realClock: RouteTableClock = systemClock;

export interface RouteTableOptions {
  /** Full re-read of the kernel this often (default 90,000 ms, as Calico felix). */
  resyncMs?: number;
  /** Routes on a cali* interface first seen less than this long ago are not deleted (default 10,000 ms). */
  graceMs?: number;
  /** After `start()`: wait this long after a change before applying, to batch bursts (default 10 ms). */
  debounceMs?: number;
  /** After `start()`: retry a failed apply (or a lost event stream) after this long (default 2,000 ms). */
  retryMs?: number;
  clock?: RouteTableClock;
  /** A fresh kernel connection, used for the one retry after a failed apply. Same kernel when absent. */
  reconnect?: () => Kernel;
  /** Called after every apply run by `start()`'s loop. */
  onApplied?: (result: ApplyResult) => void;
  /** Called when an apply run by `start()`'s loop failed (after its retry). */
  onError?: (error: Error) => void;
}

export interface ApplyResult {
  /** Whether this apply re-read the whole kernel table. */
  fullResync: boolean;
  /** Whether the first attempt failed and a retry (fresh connection, full re-read) was needed. */
  retried: boolean;
  /** Route lines written to the kernel (deletions + additions); 0 when nothing differed. */
  kernelWrites: number;
  deleted: KernelRoute[];
  added: KernelRoute[];
  /** Desired routes whose interface does not exist (yet); written when it appears. */
  waitingForInterface: Array<{ dst: string; dev: string }>;
  /** Unwanted routes on a new cali* interface, kept until `untilMs` (clock time). */
  heldByGrace: Array<{ dst: string; dev: string; untilMs: number }>;
  /** Desired routes not written because a route felix does not own holds the destination. */
  foreignConflicts: Array<{ dst: string; foreign: KernelRoute }>;
  /** Desired routes that lost to another route for the same prefix (route classes, felix/routes.ts). */
  classConflicts: RouteConflict[];
  /** Owned routes nobody wants, kept because `retainUnwanted(true)` is on (a restart: BGP not settled). */
  retained: string[];
}

/** The kernel session of a full resync that reads and then writes through one process (readThenWrite). */
type Session = { read: Promise<KernelSnapshot>; write(batch: KernelBatch): Promise<void> };

const NO_DESIRED: SettledDesired = { desired: new Map(), desiredKernel: new Map(), classConflicts: [] };

export class RouteTable {
  private kernel: Kernel;
  private readonly resyncMs: number;
  private readonly graceMs: number;
  private readonly debounceMs: number;
  private readonly retryMs: number;
  private readonly clock: RouteTableClock;

  /** The desired routes after class resolution, and each one's kernel spelling (compared on every resync). */
  private settled: SettledDesired = NO_DESIRED;
  /**
   * The last `setDesired` set, checked and copied but not yet settled into `settled` and `dirty`
   * (`settle`): apply() settles it while the kernel is being read.
   */
  private pendingDesired: DesiredRoute[] | null = null;
  /** The kernel as last read or written. */
  private readonly dataplane: KernelView;

  private fullResyncDue = true;
  private lastFullResync = -Infinity;
  /** Prefixes whose desired state changed since the last apply. */
  private dirty = new Set<string>();
  /** Prefixes a kernel event says changed: re-read before diffing. */
  private readonly kernelDirty = new Set<string>();
  private readonly echoes = new RouteEchoes();

  /** Why some destinations were not written as desired (ApplyResult's lists). */
  private readonly notes = new DestinationNotes();
  /** While set, owned routes with no desired route that it accepts are kept (see retainUnwanted). */
  private retainWhich: ((route: KernelRoute) => boolean) | null = null;

  private running: Promise<unknown> = Promise.resolve();
  private started = false;
  private watchHandle: { stop(): void } | null = null;
  private applyTimer: object | null = null;
  private resyncTimer: object | null = null;
  private readonly graceTimers = new Map<string, object>();

  constructor(
    kernel: Kernel,
    private readonly options: RouteTableOptions = {},
  ) {
    this.kernel = kernel;
    this.resyncMs = options.resyncMs ?? 90_000;
    this.graceMs = options.graceMs ?? 10_000;
    this.debounceMs = options.debounceMs ?? 10;
    this.retryMs = options.retryMs ?? 2_000;
    this.clock = options.clock ?? realClock;
    this.dataplane = new KernelView(this.graceMs);
    for (const [name, value] of Object.entries({
      resyncMs: this.resyncMs,
      graceMs: this.graceMs,
      debounceMs: this.debounceMs,
      retryMs: this.retryMs,
    })) {
      if (!Number.isFinite(value) || value < 0) {
        throw new Error(`RouteTable option ${name} is ${value}; expected a finite number of milliseconds >= 0`);
      }
    }
  }

  /**
   * Replaces the whole desired set; conflicts for one prefix are settled by route class. A destination that
   * is not an IPv4 prefix, or a gateway that is not an IPv4 address, throws here, naming it. The rest of the
   * work (class resolution, the kernel form, what changed) is done by the next apply() while it waits for
   * the kernel's read, or by any call that needs it first.
   */
  setDesired(routes: readonly DesiredRoute[]): void {
    this.pendingDesired = copyDesired(routes);
    if (this.started) this.scheduleApply(this.debounceMs);
  }

  /**
   * Settles the pending desired set (route-diff.ts settleDesired). An apply about to re-read everything
   * passes `markDirty` false: it diffs every destination anyway, and a failed attempt leaves a full resync
   * due (10,000 fewer entries to make on the first programming).
   */
  private settle(markDirty = true): void {
    const copies = this.pendingDesired;
    if (copies === null) return;
    this.pendingDesired = null;
    this.settled = settleDesired(this.settled, copies, markDirty ? this.dirty : null);
  }

  /** Makes the kernel match the desired routes (owned routes only). Calls are serialized. */
  apply(): Promise<ApplyResult> {
    const run = this.running.then(
      () => this.applyOnce(),
      () => this.applyOnce(),
    );
    this.running = run.catch(() => undefined);
    return run;
  }

  /** Watches the kernel, applies on changes, re-reads everything every `resyncMs`. Idempotent. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.startWatch();
    this.scheduleResync();
    this.scheduleApply(0);
  }

  /** Stops watching and every timer; routes stay in the kernel (a restart adopts them). */
  stop(): void {
    this.started = false;
    this.watchHandle?.stop();
    this.watchHandle = null;
    for (const timer of [this.applyTimer, this.resyncTimer, ...this.graceTimers.values()]) {
      if (timer !== null) this.clock.clearTimeout(timer);
    }
    this.applyTimer = null;
    this.resyncTimer = null;
    this.graceTimers.clear();
  }

  /**
   * While `which` is set, owned kernel routes that no desired route covers and that `which` accepts are
   * kept instead of deleted; desired routes are still added and replaced. The felix driver sets it at
   * start for routes via a gateway (the ones BGP will re-learn after a graceful restart), so a restart
   * never takes down a route that is still wanted, and clears it (null) once BGP has settled: then
   * whatever is still unwanted goes.
   */
  retainUnwanted(which: ((route: KernelRoute) => boolean) | null): void {
    const was = this.retainWhich;
    this.retainWhich = which;
    if (was !== null && which === null) {
      for (const dst of this.notes.retained) this.dirty.add(dst);
      if (this.started) this.scheduleApply(0);
    }
  }

  /** Whether the desired route for `dst` is in the kernel as wanted (as last read or written). */
  programmed(dst: string): boolean {
    this.settle();
    const key = desiredDst(dst);
    const want = this.settled.desiredKernel.get(key);
    if (want === undefined) return false;
    return (this.dataplane.routes.get(key) ?? []).some((r) => isOwnedRoute(r) && sameNormalizedRoute(r, want));
  }

  /** The desired routes after class resolution, keyed by destination. */
  desiredRoutes(): DesiredRoute[] {
    this.settle();
    return [...this.settled.desired.values()];
  }

  private async applyOnce(): Promise<ApplyResult> {
    try {
      return await this.attempt(false);
    } catch (first) {
      // One retry, on a fresh connection when we can make one, after a full re-read.
      if (this.options.reconnect) {
        const old = this.kernel;
        await old.close().catch(() => undefined);
        this.kernel = this.options.reconnect();
        if (this.started) this.startWatch();
      }
      this.fullResyncDue = true;
      try {
        return await this.attempt(true);
      } catch (second) {
        this.fullResyncDue = true;
        const message = (second as Error).message;
        throw new RouteTableError(
          `route table apply failed twice (first: ${(first as Error).message}; retry: ${message}); a full resync is due`,
          second,
        );
      }
    }
  }

  /** One attempt: read (all, or the prefixes events marked), diff, write; on failure the dirty sets are put back. */
  private async attempt(retried: boolean): Promise<ApplyResult> {
    const now = this.clock.now();
    const fullResync = this.fullResyncDue || now - this.lastFullResync >= this.resyncMs;
    // A full resync starts its read first, and settles the desired set while ip reads (on another CPU).
    // Events from before this read are covered by it; events during it stay for the next apply.
    const kernelDirtyBefore = fullResync ? [...this.kernelDirty] : [];
    if (fullResync) this.kernelDirty.clear();
    // Desired routes changed and the kernel is read first: a write is likely, so the read and the batch go
    // through one kernel session where the kernel has them (iproute2: one `ip -batch` process, not two).
    // Its write is then called even with nothing to write, which ends it.
    const changed = this.pendingDesired !== null || this.dirty.size > 0;
    const session: Session | null = fullResync && changed ? (this.kernel.readThenWrite?.() ?? null) : null;
    const read = session?.read ?? (fullResync ? this.kernel.readAll() : null);
    read?.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
    this.settle(!fullResync);
    // What is dirty now is taken: changes that arrive while this attempt awaits the kernel stay dirty for
    // the next apply (clearing them at the end would lose them); on failure they are put back.
    const dirtyNow = this.dirty;
    this.dirty = new Set();
    let batch: KernelBatch;
    try {
      batch = read !== null ? await this.diffAll(read, session, now, dirtyNow) : await this.diffDirty(now, dirtyNow);
      await this.write(batch, session, now);
    } catch (error) {
      for (const dst of dirtyNow) this.dirty.add(dst);
      for (const dst of kernelDirtyBefore) this.kernelDirty.add(dst);
      throw error;
    }
    if (fullResync) {
      this.fullResyncDue = false;
      this.lastFullResync = now;
    }
    return {
      fullResync,
      retried,
      kernelWrites: batch.del.length + batch.add.length,
      deleted: batch.del,
      added: batch.add,
      ...this.notes.lists(),
      classConflicts: this.settled.classConflicts,
    };
  }

  /** A full read taken as the view of the kernel; the writes every destination then needs. */
  private async diffAll(
    read: Promise<KernelSnapshot>,
    session: Session | null,
    now: number,
    dirty: ReadonlySet<string>,
  ): Promise<KernelBatch> {
    const snapshot = await read;
    try {
      this.dataplane.take(snapshot, this.lastFullResync === -Infinity ? -Infinity : now);
      this.echoes.clear();
      // Every destination that is desired, in the kernel, changed or held — each once.
      const batch: KernelBatch = { del: [], add: [] };
      const context = this.diffContext(now);
      const desired = this.settled.desiredKernel;
      for (const dst of desired.keys()) this.diffOne(dst, context, batch);
      const kernel = this.dataplane.routes;
      for (const dst of kernel.keys()) if (!desired.has(dst)) this.diffOne(dst, context, batch);
      for (const dst of dirty) if (!desired.has(dst) && !kernel.has(dst)) this.diffOne(dst, context, batch);
      for (const dst of this.notes.held.keys()) {
        if (!dirty.has(dst) && !desired.has(dst) && !kernel.has(dst)) this.diffOne(dst, context, batch);
      }
      return batch;
    } catch (error) {
      void session?.write({ del: [], add: [] }).catch(() => undefined); // the session must end all the same
      throw error;
    }
  }

  /** No full read: the changed, held and waiting destinations, after re-reading those events marked. */
  private async diffDirty(now: number, dirty: ReadonlySet<string>): Promise<KernelBatch> {
    const kernelDirty = [...this.kernelDirty];
    this.kernelDirty.clear();
    const toCheck = new Set([...dirty, ...kernelDirty]);
    for (const dst of this.notes.held.keys()) toCheck.add(dst);
    for (const dst of this.notes.waiting.keys()) toCheck.add(dst);
    if (kernelDirty.length > 0) {
      try {
        this.dataplane.refresh(kernelDirty, await this.kernel.listRoutes());
      } catch (error) {
        for (const dst of kernelDirty) this.kernelDirty.add(dst);
        throw error;
      }
    }
    const batch: KernelBatch = { del: [], add: [] };
    const context = this.diffContext(now);
    for (const dst of toCheck) this.diffOne(dst, context, batch);
    return batch;
  }

  /**
   * Writes the batch (through the session when there is one: its write is called even when empty, which
   * ends it). The kernel has the batch once the call returns (iproute2: every line is in ip's pipe), so the
   * view of the kernel is brought up to date while ip works through it, not after. If the batch fails, what
   * it touched is forgotten (programmed() says no until the re-read) and a full re-read is due.
   */
  private async write(batch: KernelBatch, session: Session | null, now: number): Promise<void> {
    // Our writes come back as kernel events, possibly before `apply` resolves: expect them first
    // (only while watching; nothing else would ever consume them).
    if (this.watchHandle !== null) this.echoes.expect(batch.del, batch.add, now);
    if (batch.del.length + batch.add.length === 0 && session === null) return;
    const applying = session !== null ? session.write(batch) : this.kernel.apply(batch);
    this.dataplane.written(batch);
    try {
      await applying;
    } catch (error) {
      this.dataplane.forget(batch);
      this.fullResyncDue = true;
      throw error;
    }
  }

  private diffContext(now: number): DiffContext {
    const view = this.dataplane;
    return {
      now,
      hasLink: (dev) => view.links.has(dev),
      graceUntil: (dev) => view.graceUntil(dev),
      retain: this.retainWhich,
    };
  }

  /** One destination's writes (route-diff.ts diffDestination) added to `batch`; its bookkeeping updated. */
  private diffOne(dst: string, context: DiffContext, batch: KernelBatch): void {
    const note = diffDestination(this.settled.desiredKernel.get(dst), this.dataplane.routes.get(dst), context, batch);
    this.notes.note(dst, note);
    if (note?.held !== undefined) this.scheduleGraceCheck(dst, note.held.untilMs - context.now);
  }

  private onKernelEvent(event: KernelEvent): void {
    const now = this.clock.now();
    if (event.kind === 'lost') {
      this.fullResyncDue = true;
      this.watchHandle = null;
      if (this.started) {
        this.clock.setTimeout(() => {
          if (this.started && this.watchHandle === null) this.startWatch();
          if (this.started) this.scheduleApply(0);
        }, this.retryMs);
      }
      return;
    }
    if (event.kind === 'link') {
      this.dataplane.link(event.name, event.deleted, now);
      // Desired routes through this interface: waiting ones can be written now, others re-checked.
      this.settle();
      for (const [dst, route] of this.settled.desired) if (route.dev === event.name) this.dirty.add(dst);
      if (this.started) this.scheduleApply(this.debounceMs);
      return;
    }
    if (this.echoes.isEcho(event.dst, event.deleted, now)) return;
    this.kernelDirty.add(event.dst);
    if (this.started) this.scheduleApply(this.debounceMs);
  }

  private startWatch(): void {
    this.watchHandle?.stop();
    this.watchHandle = this.kernel.watch((event) => this.onKernelEvent(event));
  }

  private scheduleApply(ms: number): void {
    if (!this.started || this.applyTimer !== null) return;
    this.applyTimer = this.clock.setTimeout(() => {
      this.applyTimer = null;
      if (!this.started) return;
      this.apply().then(
        (result) => this.options.onApplied?.(result),
        (error: unknown) => {
          this.options.onError?.(error instanceof Error ? error : new Error(String(error)));
          this.scheduleApply(this.retryMs);
        },
      );
    }, ms);
  }

  private scheduleResync(): void {
    if (!this.started) return;
    this.resyncTimer = this.clock.setTimeout(() => {
      this.resyncTimer = null;
      this.fullResyncDue = true;
      this.scheduleApply(0);
      this.scheduleResync();
    }, this.resyncMs);
  }

  private scheduleGraceCheck(dst: string, ms: number): void {
    if (!this.started || this.graceTimers.has(dst)) return;
    this.graceTimers.set(
      dst,
      this.clock.setTimeout(() => {
        this.graceTimers.delete(dst);
        this.dirty.add(dst);
        this.scheduleApply(0);
      }, ms),
    );
  }
}

/** An apply that failed on its retry too; `cause` is the last kernel error. */
export class RouteTableError extends Error {
  constructor(
    message: string,
    override readonly cause: unknown,
  ) {
    super(message);
    this.name = 'RouteTableError';
  }
}
