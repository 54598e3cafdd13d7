// The route table reconciler: keeps the kernel's main routing table equal to felix's desired routes,
// touching only the routes felix owns.
//
// Owned: routes with protocol 80 (FELIX_ROUTE_PROTOCOL) and routes on cali* interfaces. Everything else —
// proto kernel, boot, static, bird, a user's route — is never deleted, and never overwritten either: a
// desired route whose destination is held by a foreign route (same metric, so `replace` would clobber
// it) is skipped and reported in `foreignConflicts`.
//
// `apply()` does, in order: (1) read the kernel — all of it on the first apply, after a broken event
// stream, a failed write and every `resyncMs` (90 s, Calico's default), otherwise only when a kernel
// event marked prefixes dirty; (2) diff desired vs kernel for the dirty prefixes only; (3) one batch:
// deletions first, then additions with replace semantics; (4) on failure, one retry with a fresh kernel
// connection (`options.reconnect`) after a full re-read; a second failure rejects and leaves a full resync
// due.
//
// Where the time goes, and the overlaps that cut it (10,000 routes into an empty table: ~1.1× a bare
// `ip -batch` of the same lines; test/bench/README.md "felix-routes"): `setDesired` only checks and copies
// the routes; the full read is started first and the desired set is settled (class resolution, kernel form,
// what changed) while ip reads; a full resync with changes reads and writes through one kernel session
// (`readThenWrite`: one `ip` process, not two); the view of the kernel is updated while ip works through
// the batch, and forgotten for the batch's routes if it fails.
//
// Why this is hard (the problems that bite a route agent):
//   - restart: the first apply adopts the owned routes already there and writes only the difference, so
//     an agent restart never takes down a route that is still wanted (no blackout); and until BGP has
//     re-learned the remote blocks the caller keeps unwanted owned routes too (`retainUnwanted`);
//   - our own writes come back as kernel events; they are expected and swallowed, or every apply would
//     cause a re-read of the whole table (a foreign change to the same prefix, same kind, within 5 s of our
//     write is swallowed too: the periodic full resync is the backstop for that);
//   - a workload's cali* interface may not exist yet (the CNI is still creating it): the route waits in
//     `waitingForInterface` and is written when the link event arrives;
//   - the CNI may add a route on a brand-new cali* interface before felix hears of the workload: routes on
//     a cali* interface first seen less than `graceMs` ago are not deleted until the grace period ends;
//   - the kernel prints one route in several spellings: comparisons go through kernel.ts normalization.

import {
  canonicalDst,
  FELIX_PROTOCOL,
  normalizeKernelRoute,
  protocolNumber,
  sameNormalizedRoute,
  type Kernel,
  type KernelEvent,
  type KernelBatch,
  type KernelRoute,
  type KernelSnapshot,
} from './kernel.js';
import { systemClock, type Clock } from '../bgp/clock.js';
import { resolveByClassMap, routeKey, sameRoute, type DesiredRoute, type RouteConflict } from './routes.js';

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

/** A route felix may delete or replace: protocol 80, or on a cali* interface. */
export function isOwnedRoute(route: KernelRoute): boolean {
  // "80" first: every normalized owned route spells it so (the resync asks this of every kernel route).
  return route.protocol === FELIX_PROTOCOL_TEXT || protocolNumber(route.protocol) === FELIX_PROTOCOL || (route.dev?.startsWith('cali') ?? false);
}

const FELIX_PROTOCOL_TEXT = String(FELIX_PROTOCOL);
/** Shared by every desired route's kernel form (routes are never changed in place; frozen to make sure). */
const NO_FLAGS = Object.freeze([]) as unknown as string[];
const ONLINK_FLAGS = Object.freeze(['onlink']) as unknown as string[];
const NO_ROUTES: readonly KernelRoute[] = [];

/** The kernel spelling of a desired route. */
export function toKernelRoute(route: DesiredRoute): KernelRoute {
  return kernelForm(route, desiredDst(route.dst));
}

/**
 * The kernel spelling of a desired route whose destination is already `dst`, its one spelling. Built in
 * normalizeKernelRoute's form (type, scope and flags filled, protocol its decimal number), so it is not
 * normalized again — unless the protocol is not a plain number, which normalizeKernelRoute then settles.
 */
function kernelForm(route: DesiredRoute, dst: string): KernelRoute {
  const out: KernelRoute = {
    type: route.type,
    dst,
    protocol: String(route.proto),
    scope: route.scope ?? 'global',
    flags: route.onlink === true ? ONLINK_FLAGS : NO_FLAGS,
  };
  if (route.via !== undefined) out.gateway = route.via;
  if (route.dev !== undefined) out.dev = route.dev;
  return Number.isSafeInteger(route.proto) && route.proto >= 0 && route.type !== undefined ? out : normalizeKernelRoute(out);
}

/**
 * `routeKey(dst)` (routes.ts), fast: kernel.ts `canonicalDst` gives the same string for every spelling
 * routeKey accepts, in one pass over the characters (routeKey's split and regexes made `setDesired` of
 * 10,000 routes ~17 ms slower); anything else goes to routeKey for its error naming the value.
 */
function desiredDst(dst: string): string {
  return canonicalDst(dst) ?? routeKey(dst);
}

/** Whether `text` is a dotted IPv4 address in its one spelling (no leading zeros): one pass, no allocation. */
function isIpv4Address(text: string): boolean {
  const n = text.length;
  if (n < 7 || n > 15) return false;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digits === 1 && octet === 0) return false; // a leading zero
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return false;
    } else if (c === 46 /* . */ && digits > 0 && dots < 3) {
      dots++;
      octet = 0;
      digits = 0;
    } else {
      return false;
    }
  }
  return dots === 3 && digits > 0;
}

/** How long an expected echo of our own write is waited for before a matching event counts as foreign. */
const ECHO_WINDOW_MS = 5_000;

export class RouteTable {
  private kernel: Kernel;
  private readonly resyncMs: number;
  private readonly graceMs: number;
  private readonly debounceMs: number;
  private readonly retryMs: number;
  private readonly clock: RouteTableClock;

  private desired = new Map<string, DesiredRoute>();
  /**
   * The last `setDesired` set, checked and copied but not yet settled into `desired`/`desiredKernel`/`dirty`
   * (`settleDesired`): apply() settles it while the kernel is being read.
   */
  private pendingDesired: DesiredRoute[] | null = null;
  /** The kernel spelling of each desired route (normalized once, compared on every resync). */
  private desiredKernel = new Map<string, KernelRoute>();
  private classConflicts: RouteConflict[] = [];
  /** The kernel as last read or written: destination → routes (normalized). */
  private dataplane = new Map<string, KernelRoute[]>();
  private links = new Set<string>();
  /** cali* interface → when it was first seen (-Infinity for those present at the first full resync). */
  private readonly caliFirstSeen = new Map<string, number>();

  private fullResyncDue = true;
  private lastFullResync = -Infinity;
  /** Prefixes whose desired state changed since the last apply. */
  private dirty = new Set<string>();
  /** Prefixes a kernel event says changed: re-read before diffing. */
  private readonly kernelDirty = new Set<string>();
  /** `${dst}|${deleted}` → when we wrote it: kernel events that are echoes of our own writes. */
  private readonly expectedEchoes = new Map<string, number>();

  private readonly waiting = new Map<string, string>();
  private readonly held = new Map<string, { dev: string; untilMs: number }>();
  private readonly foreign = new Map<string, KernelRoute>();
  /** While set, owned routes with no desired route that it accepts are kept (see retainUnwanted). */
  private retainWhich: ((route: KernelRoute) => boolean) | null = null;
  private readonly retained = new Set<string>();

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
    for (const [name, value] of Object.entries({ resyncMs: this.resyncMs, graceMs: this.graceMs, debounceMs: this.debounceMs, retryMs: this.retryMs })) {
      if (!Number.isFinite(value) || value < 0) {
        throw new Error(`RouteTable option ${name} is ${value}; expected a finite number of milliseconds >= 0`);
      }
    }
  }

  /**
   * Replaces the whole desired set; conflicts for one prefix are settled by route class. A destination that
   * is not an IPv4 prefix, or a gateway that is not an IPv4 address, throws here, naming it. The rest of the work (class resolution, the kernel form,
   * what changed) is done by the next apply() while it waits for the kernel's read, or by any call that
   * needs it first.
   */
  setDesired(routes: readonly DesiredRoute[]): void {
    // The table's own copies (a caller may reuse its objects), each destination in its one spelling.
    const copies: DesiredRoute[] = new Array<DesiredRoute>(routes.length);
    let goodVia: string | undefined; // the last gateway checked (routes via one node come together): not checked again
    for (let i = 0; i < routes.length; i++) {
      const route = routes[i] as DesiredRoute;
      const dst = desiredDst(route.dst);
      // A gateway ip -4 cannot parse stops its whole batch at that line (iproute2.ts BATCH_END): refused here.
      const via = route.via;
      if (via !== undefined && via !== goodVia) {
        if (!isIpv4Address(via)) {
          throw new Error(`desired route ${dst}: gateway (via) "${via}" is not an IPv4 address (like 192.168.31.1: four numbers 0-255, no leading zeros)`);
        }
        goodVia = via;
      }
      copies[i] = { ...route, dst };
    }
    this.pendingDesired = copies;
    if (this.started) this.scheduleApply(this.debounceMs);
  }

  /**
   * Settles the pending desired set: winners by class, their kernel form, and what changed (dirty). An
   * apply about to re-read everything passes `markDirty` false: it diffs every destination anyway, and a
   * failed attempt leaves a full resync due (10,000 fewer entries to make on the first programming).
   */
  private settleDesired(markDirty = true): void {
    const copies = this.pendingDesired;
    if (copies === null) return;
    this.pendingDesired = null;
    const { byDst: next, conflicts } = resolveByClassMap(copies);
    this.classConflicts = conflicts;
    const nextKernel = new Map<string, KernelRoute>();
    const first = this.desired.size === 0; // nothing to compare with (the first set: 10,000 new routes)
    for (const [dst, route] of next) {
      const before = first ? undefined : this.desiredKernel.get(dst);
      if (before !== undefined) {
        const was = this.desired.get(dst);
        if (was !== undefined && sameRoute(was, route)) {
          // Unchanged (the usual case: the whole set again, a few routes different): same kernel form.
          nextKernel.set(dst, before);
          continue;
        }
      }
      const want = kernelForm(route, dst);
      nextKernel.set(dst, want);
      if (markDirty && (before === undefined || !sameNormalizedRoute(before, want))) this.dirty.add(dst);
    }
    if (markDirty && !first) for (const dst of this.desired.keys()) if (!next.has(dst)) this.dirty.add(dst);
    this.desired = next;
    this.desiredKernel = nextKernel;
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
      for (const dst of this.retained) this.dirty.add(dst);
      if (this.started) this.scheduleApply(0);
    }
  }

  /** Whether the desired route for `dst` is in the kernel as wanted (as last read or written). */
  programmed(dst: string): boolean {
    this.settleDesired();
    const key = desiredDst(dst);
    const want = this.desiredKernel.get(key);
    if (want === undefined) return false;
    return (this.dataplane.get(key) ?? []).some((r) => isOwnedRoute(r) && sameNormalizedRoute(r, want));
  }

  /** The desired routes after class resolution, keyed by destination. */
  desiredRoutes(): DesiredRoute[] {
    this.settleDesired();
    return [...this.desired.values()];
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
    const session = fullResync && changed ? (this.kernel.readThenWrite?.() ?? null) : null;
    const read = session?.read ?? (fullResync ? this.kernel.readAll() : null);
    read?.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
    this.settleDesired(!fullResync);
    // What is dirty now is taken: changes that arrive while this attempt awaits the kernel stay dirty for
    // the next apply (clearing them at the end would lose them); on failure they are put back.
    const dirtyNow = this.dirty;
    this.dirty = new Set();
    try {
      const write = session !== null ? (batch: KernelBatch) => session.write(batch) : null;
      return await this.attemptWith({ retried, now, fullResync, read, write }, dirtyNow);
    } catch (error) {
      for (const dst of dirtyNow) this.dirty.add(dst);
      for (const dst of kernelDirtyBefore) this.kernelDirty.add(dst);
      throw error;
    }
  }

  private async attemptWith(
    how: {
      retried: boolean;
      now: number;
      fullResync: boolean;
      read: Promise<KernelSnapshot> | null;
      /** The session's write, when the read came from readThenWrite: called exactly once after a good read. */
      write: ((batch: KernelBatch) => Promise<void>) | null;
    },
    dirty: ReadonlySet<string>,
  ): Promise<ApplyResult> {
    const { retried, now, fullResync, read, write } = how;
    const del: KernelRoute[] = [];
    const add: KernelRoute[] = [];
    if (read !== null) {
      const snapshot = await read;
      try {
        this.takeSnapshot(snapshot, now, dirty, del, add);
      } catch (error) {
        void write?.({ del: [], add: [] }).catch(() => undefined); // the session must end all the same
        throw error;
      }
    } else {
      const kernelDirty = [...this.kernelDirty];
      this.kernelDirty.clear();
      const toCheck = new Set([...dirty, ...kernelDirty]);
      for (const dst of this.held.keys()) toCheck.add(dst);
      for (const dst of this.waiting.keys()) toCheck.add(dst);
      if (kernelDirty.length > 0) {
        let fresh: Map<string, KernelRoute[]>;
        try {
          fresh = groupByDst(await this.kernel.listRoutes());
        } catch (error) {
          for (const dst of kernelDirty) this.kernelDirty.add(dst);
          throw error;
        }
        for (const dst of kernelDirty) {
          const routes = fresh.get(dst);
          if (routes === undefined) this.dataplane.delete(dst);
          else this.dataplane.set(dst, routes);
        }
      }
      for (const dst of toCheck) this.diffOne(dst, now, del, add);
    }

    // Our writes come back as kernel events, possibly before `apply` resolves: expect them first
    // (only while watching; nothing else would ever consume them).
    if (this.watchHandle !== null) {
      for (const route of del) this.expectedEchoes.set(`${route.dst}|true`, now);
      for (const route of add) this.expectedEchoes.set(`${route.dst}|false`, now);
    }
    const writes = del.length + add.length;
    if (writes > 0 || write !== null) {
      // The kernel has the batch once the call returns (iproute2: every line is in ip's pipe), so the view
      // of the kernel is brought up to date while ip works through it, not after. If the batch fails, what
      // it touched is forgotten (programmed() says no until the re-read) and a full re-read is due before
      // anything is compared with this view again.
      const applying = write !== null ? write({ del, add }) : this.kernel.apply({ del, add });
      this.recordWritten(del, add);
      try {
        await applying;
      } catch (error) {
        for (const route of del) this.dataplane.delete(route.dst);
        for (const route of add) this.dataplane.delete(route.dst);
        this.fullResyncDue = true;
        throw error;
      }
    }
    if (fullResync) {
      this.fullResyncDue = false;
      this.lastFullResync = now;
    }
    return {
      fullResync,
      retried,
      kernelWrites: del.length + add.length,
      deleted: del,
      added: add,
      waitingForInterface: [...this.waiting].map(([dst, dev]) => ({ dst, dev })),
      heldByGrace: [...this.held].map(([dst, h]) => ({ dst, dev: h.dev, untilMs: h.untilMs })),
      foreignConflicts: [...this.foreign].map(([dst, foreign]) => ({ dst, foreign })),
      classConflicts: this.classConflicts,
      retained: [...this.retained],
    };
  }

  /** A full read taken as the view of the kernel; the writes every destination then needs. */
  private takeSnapshot(snapshot: KernelSnapshot, now: number, dirty: ReadonlySet<string>, del: KernelRoute[], add: KernelRoute[]): void {
    const firstEver = this.lastFullResync === -Infinity;
    this.dataplane = groupByDst(snapshot.routes);
    this.links = new Set(snapshot.links);
    for (const name of [...this.caliFirstSeen.keys()]) if (!this.links.has(name)) this.caliFirstSeen.delete(name);
    this.noteLinks(snapshot.links, firstEver ? -Infinity : now);
    this.expectedEchoes.clear();
    // Every destination that is desired, in the kernel, changed or held — each once.
    for (const dst of this.desiredKernel.keys()) this.diffOne(dst, now, del, add);
    for (const dst of this.dataplane.keys()) if (!this.desiredKernel.has(dst)) this.diffOne(dst, now, del, add);
    for (const dst of dirty) if (!this.desiredKernel.has(dst) && !this.dataplane.has(dst)) this.diffOne(dst, now, del, add);
    for (const dst of this.held.keys()) {
      if (!dirty.has(dst) && !this.desiredKernel.has(dst) && !this.dataplane.has(dst)) this.diffOne(dst, now, del, add);
    }
  }

  /** The view of the kernel after `del` and `add` were written. */
  private recordWritten(del: readonly KernelRoute[], add: readonly KernelRoute[]): void {
    for (const route of del) {
      const list = this.dataplane.get(route.dst);
      if (list === undefined) continue;
      const left = list.filter((r) => !sameNormalizedRoute(r, route));
      if (left.length > 0) this.dataplane.set(route.dst, left);
      else this.dataplane.delete(route.dst);
    }
    for (const route of add) {
      const list = this.dataplane.get(route.dst);
      if (list === undefined || list.length === 0) {
        this.dataplane.set(route.dst, [route]);
        continue;
      }
      const metric = route.metric ?? 0;
      const left = list.filter((r) => (r.metric ?? 0) !== metric);
      left.push(route);
      this.dataplane.set(route.dst, left);
    }
  }

  /** The writes one destination needs; updates the waiting/held/foreign bookkeeping for it. */
  private diffOne(dst: string, now: number, del: KernelRoute[], add: KernelRoute[]): void {
    if (this.waiting.size > 0) this.waiting.delete(dst);
    if (this.held.size > 0) this.held.delete(dst);
    if (this.foreign.size > 0) this.foreign.delete(dst);
    if (this.retained.size > 0) this.retained.delete(dst);
    const have = this.dataplane.get(dst) ?? NO_ROUTES;
    const want = this.desiredKernel.get(dst);

    if (want === undefined) {
      for (const route of have) {
        if (!isOwnedRoute(route)) continue;
        if (this.retainWhich?.(route) === true) {
          this.retained.add(dst);
          continue;
        }
        const until = this.graceUntil(route.dev);
        if (until > now) {
          this.held.set(dst, { dev: route.dev ?? '', untilMs: until });
          this.scheduleGraceCheck(dst, until - now);
          continue;
        }
        del.push(route);
      }
      return;
    }

    // One pass: a foreign route holding the destination, and our own metric-0 route.
    let holder: KernelRoute | undefined;
    let current: KernelRoute | undefined;
    let otherOwned = false;
    for (const route of have) {
      const metricZero = (route.metric ?? 0) === 0;
      if (!isOwnedRoute(route)) {
        if (metricZero && holder === undefined) holder = route;
      } else if (!metricZero) {
        otherOwned = true;
      } else if (current === undefined) {
        current = route;
      }
    }
    if (holder !== undefined) {
      // Never overwrite a route felix does not own (`replace` would delete it).
      this.foreign.set(dst, holder);
      return;
    }
    if (want.dev !== undefined && !this.links.has(want.dev)) {
      this.waiting.set(dst, want.dev);
      return;
    }
    // Owned routes at other metrics are not replaced by ours: delete them. The metric-0 one is replaced.
    if (otherOwned) for (const route of have) if (isOwnedRoute(route) && (route.metric ?? 0) !== 0) del.push(route);
    if (current === undefined || !sameNormalizedRoute(current, want)) add.push(want);
  }

  private graceUntil(dev: string | undefined): number {
    if (dev === undefined || !dev.startsWith('cali')) return -Infinity;
    const seen = this.caliFirstSeen.get(dev);
    return seen === undefined ? -Infinity : seen + this.graceMs;
  }

  private noteLinks(links: Iterable<string>, when: number): void {
    for (const name of links) {
      if (name.startsWith('cali') && !this.caliFirstSeen.has(name)) this.caliFirstSeen.set(name, when);
    }
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
      if (event.deleted) {
        this.links.delete(event.name);
        this.caliFirstSeen.delete(event.name);
      } else {
        this.links.add(event.name);
        this.noteLinks([event.name], now);
      }
      // Desired routes through this interface: waiting ones can be written now, others re-checked.
      this.settleDesired();
      for (const [dst, route] of this.desired) if (route.dev === event.name) this.dirty.add(dst);
      if (this.started) this.scheduleApply(this.debounceMs);
      return;
    }
    const key = `${event.dst}|${event.deleted}`;
    const wrote = this.expectedEchoes.get(key);
    if (wrote !== undefined && now - wrote <= ECHO_WINDOW_MS) {
      this.expectedEchoes.delete(key);
      return;
    }
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

function groupByDst(routes: readonly KernelRoute[]): Map<string, KernelRoute[]> {
  const out = new Map<string, KernelRoute[]>();
  for (const raw of routes) {
    const route = normalizeKernelRoute(raw);
    const list = out.get(route.dst);
    if (list === undefined) out.set(route.dst, [route]);
    else list.push(route);
  }
  return out;
}
