// The route table's decisions, pure: which kernel routes felix owns, the kernel spelling of a desired
// route, the desired set settled by route class, and for one destination the writes that make the kernel
// match (desired vs kernel → deletions, a replacement, or why nothing is written). No I/O, no clock, no
// timers: route-table.ts reads the kernel, calls these, writes the batch and schedules the next apply.
//
//   isOwnedRoute(route)           protocol 80 or a cali* interface: the only routes ever deleted or replaced
//   kernelForm / toKernelRoute    a DesiredRoute in normalizeKernelRoute's form (compared on every resync)
//   copyDesired(routes)           setDesired's check and copy (one spelling per destination, gateways IPv4)
//   settleDesired(before, copies) winners by class, their kernel form, the destinations that changed
//   diffDestination(...)          one destination: writes appended to a batch; a note: waiting, held, foreign, retained
//   groupByDst / recordWritten    the view of the kernel: read, and after a batch was written
//
// Ownership (the rule the whole reconciler rests on): a route felix does not own — proto kernel, boot,
// static, bird, a user's — is never deleted, and never overwritten either: a desired route whose
// destination is held by a foreign route at metric 0 (where `replace` would clobber it) is not written
// and comes back as `foreign`. Owned routes at another metric are deleted (ours is always metric 0);
// the metric-0 one is replaced.
//
// Why this is hard: an unwanted owned route is not always deleted at once. It stays while the caller
// retains unwanted routes (a restart, until BGP has re-learned the remote blocks), and while its cali*
// interface is younger than the grace period (the CNI added it before felix heard of the workload). And a
// desired route through an interface that does not exist yet waits for its link event.

import {
  canonicalDst,
  FELIX_PROTOCOL,
  normalizeKernelRoute,
  protocolNumber,
  sameNormalizedRoute,
  type KernelBatch,
  type KernelRoute,
} from './kernel.js';
import { resolveByClassMap, routeKey, sameRoute, type DesiredRoute, type RouteConflict } from './routes.js';

/** A route felix may delete or replace: protocol 80, or on a cali* interface. */
export function isOwnedRoute(route: KernelRoute): boolean {
  // "80" first: every normalized owned route spells it so (the resync asks this of every kernel route).
  return (
    route.protocol === FELIX_PROTOCOL_TEXT ||
    protocolNumber(route.protocol) === FELIX_PROTOCOL ||
    (route.dev?.startsWith('cali') ?? false)
  );
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
 * Any device works, `onlink` included (`via X dev D onlink` for tunl0, a host interface, a VXLAN device).
 */
export function kernelForm(route: DesiredRoute, dst: string): KernelRoute {
  const out: KernelRoute = {
    type: route.type,
    dst,
    protocol: String(route.proto),
    scope: route.scope ?? 'global',
    flags: route.onlink === true ? ONLINK_FLAGS : NO_FLAGS,
  };
  if (route.via !== undefined) out.gateway = route.via;
  if (route.dev !== undefined) out.dev = route.dev;
  return Number.isSafeInteger(route.proto) && route.proto >= 0 && route.type !== undefined
    ? out
    : normalizeKernelRoute(out);
}

/**
 * `routeKey(dst)` (routes.ts), fast: kernel.ts `canonicalDst` gives the same string for every spelling
 * routeKey accepts, in one pass over the characters (routeKey's split and regexes made `setDesired` of
 * 10,000 routes ~17 ms slower); anything else goes to routeKey for its error naming the value.
 */
export function desiredDst(dst: string): string {
  return canonicalDst(dst) ?? routeKey(dst);
}

/** Whether `text` is a dotted IPv4 address in its one spelling (no leading zeros): one pass, no allocation. */
export function isIpv4Address(text: string): boolean {
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

/**
 * The table's own copies of `routes` (a caller may reuse its objects), each destination in its one
 * spelling. A destination that is not an IPv4 prefix, or a gateway that is not an IPv4 address, throws,
 * naming it: a gateway ip -4 cannot parse would stop its whole batch at that line (iproute2.ts BATCH_END).
 */
export function copyDesired(routes: readonly DesiredRoute[]): DesiredRoute[] {
  const copies: DesiredRoute[] = new Array<DesiredRoute>(routes.length);
  let goodVia: string | undefined; // the last gateway checked (routes via one node come together): not checked again
  for (let i = 0; i < routes.length; i++) {
    const route = routes[i] as DesiredRoute;
    const dst = desiredDst(route.dst);
    const via = route.via;
    if (via !== undefined && via !== goodVia) {
      if (!isIpv4Address(via)) {
        throw new Error(
          `desired route ${dst}: gateway (via) "${via}" is not an IPv4 address (like 192.168.31.1: four numbers 0-255, no leading zeros)`,
        );
      }
      goodVia = via;
    }
    copies[i] = { ...route, dst };
  }
  return copies;
}

/** The desired set as the table keeps it: winners by class and each one's kernel form. */
export interface SettledDesired {
  desired: Map<string, DesiredRoute>;
  desiredKernel: Map<string, KernelRoute>;
  classConflicts: RouteConflict[];
}

/**
 * Settles a new desired set against the one before: winners by class, their kernel form (reused when the
 * route did not change: the usual case is the whole set again with a few routes different), and, when
 * `dirty` is given, every destination whose kernel form changed or that is no longer desired added to it.
 */
export function settleDesired(
  before: SettledDesired,
  copies: readonly DesiredRoute[],
  dirty: Set<string> | null,
): SettledDesired {
  const { byDst: desired, conflicts } = resolveByClassMap(copies);
  const desiredKernel = new Map<string, KernelRoute>();
  const first = before.desired.size === 0; // nothing to compare with (the first set: 10,000 new routes)
  for (const [dst, route] of desired) {
    const was = first ? undefined : before.desiredKernel.get(dst);
    if (was !== undefined) {
      const wasRoute = before.desired.get(dst);
      if (wasRoute !== undefined && sameRoute(wasRoute, route)) {
        desiredKernel.set(dst, was);
        continue;
      }
    }
    const want = kernelForm(route, dst);
    desiredKernel.set(dst, want);
    if (dirty !== null && (was === undefined || !sameNormalizedRoute(was, want))) dirty.add(dst);
  }
  if (dirty !== null && !first) for (const dst of before.desired.keys()) if (!desired.has(dst)) dirty.add(dst);
  return { desired, desiredKernel, classConflicts: conflicts };
}

/** What one destination's diff needs to know besides the routes. */
export interface DiffContext {
  now: number;
  /** Whether the interface exists (as last read, or from link events). */
  hasLink(dev: string): boolean;
  /** Until when (clock time) an unwanted route on `dev` is kept for its new cali* interface; -Infinity: not. */
  graceUntil(dev: string | undefined): number;
  /** While set, unwanted owned routes it accepts are kept (RouteTable.retainUnwanted). */
  retain: ((route: KernelRoute) => boolean) | null;
}

/** Why one destination is not (yet) as desired; null from diffDestination when nothing is to be said. */
export interface DestinationNote {
  /** The desired route's interface does not exist (yet). */
  waitingFor?: string;
  /** An unwanted route kept for its new cali* interface (the last one seen, when several). */
  held?: { dev: string; untilMs: number };
  /** A route felix does not own holds the destination: the desired route is not written. */
  foreign?: KernelRoute;
  /** An unwanted owned route kept because `retain` accepted it. */
  retained?: true;
}

/**
 * Desired (`want`, kernel form, or undefined) against the kernel's routes for one destination (`have`):
 * the writes it needs are appended to `batch` (deletions; the desired route, replace semantics, when the
 * kernel lacks it), and the returned note says why some were not made (null: nothing to say, the usual
 * case — no object is made for the 10,000 destinations of a resync that are as desired).
 */
export function diffDestination(
  want: KernelRoute | undefined,
  have: readonly KernelRoute[] = NO_ROUTES,
  context: DiffContext,
  batch: KernelBatch,
): DestinationNote | null {
  if (want === undefined) {
    let note: DestinationNote | null = null;
    for (const route of have) {
      if (!isOwnedRoute(route)) continue;
      if (context.retain?.(route) === true) {
        note = { ...(note ?? {}), retained: true };
        continue;
      }
      const until = context.graceUntil(route.dev);
      if (until > context.now) {
        note = { ...(note ?? {}), held: { dev: route.dev ?? '', untilMs: until } };
        continue;
      }
      batch.del.push(route);
    }
    return note;
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
  // Never overwrite a route felix does not own (`replace` would delete it).
  if (holder !== undefined) return { foreign: holder };
  if (want.dev !== undefined && !context.hasLink(want.dev)) return { waitingFor: want.dev };
  // Owned routes at other metrics are not replaced by ours: delete them. The metric-0 one is replaced.
  if (otherOwned) for (const route of have) if (isOwnedRoute(route) && (route.metric ?? 0) !== 0) batch.del.push(route);
  if (current === undefined || !sameNormalizedRoute(current, want)) batch.add.push(want);
  return null;
}

/** Kernel routes (any spelling) normalized and grouped by destination. */
export function groupByDst(routes: readonly KernelRoute[]): Map<string, KernelRoute[]> {
  const out = new Map<string, KernelRoute[]>();
  for (const raw of routes) {
    const route = normalizeKernelRoute(raw);
    const list = out.get(route.dst);
    if (list === undefined) out.set(route.dst, [route]);
    else list.push(route);
  }
  return out;
}

/** Updates `view` (destination → routes) to the kernel after `del` and `add` were written. */
export function recordWritten(
  view: Map<string, KernelRoute[]>,
  del: readonly KernelRoute[],
  add: readonly KernelRoute[],
): void {
  for (const route of del) {
    const list = view.get(route.dst);
    if (list === undefined) continue;
    const left = list.filter((r) => !sameNormalizedRoute(r, route));
    if (left.length > 0) view.set(route.dst, left);
    else view.delete(route.dst);
  }
  for (const route of add) {
    const list = view.get(route.dst);
    if (list === undefined || list.length === 0) {
      view.set(route.dst, [route]);
      continue;
    }
    // `replace` takes the place of the route at the same metric.
    const metric = route.metric ?? 0;
    const left = list.filter((r) => (r.metric ?? 0) !== metric);
    left.push(route);
    view.set(route.dst, left);
  }
}

/**
 * Why destinations are not (yet) as desired, kept between applies from each destination's last diff: the
 * lists of ApplyResult (waiting for an interface, held by grace, held by a foreign route, retained).
 */
export class DestinationNotes {
  readonly waiting = new Map<string, string>();
  readonly held = new Map<string, { dev: string; untilMs: number }>();
  readonly foreign = new Map<string, KernelRoute>();
  readonly retained = new Set<string>();

  /** Replaces what is noted for `dst` with what its latest diff says. */
  note(dst: string, diff: DestinationNote | null): void {
    if (this.waiting.size > 0) this.waiting.delete(dst);
    if (this.held.size > 0) this.held.delete(dst);
    if (this.foreign.size > 0) this.foreign.delete(dst);
    if (this.retained.size > 0) this.retained.delete(dst);
    if (diff === null) return;
    if (diff.retained === true) this.retained.add(dst);
    if (diff.foreign !== undefined) this.foreign.set(dst, diff.foreign);
    if (diff.waitingFor !== undefined) this.waiting.set(dst, diff.waitingFor);
    if (diff.held !== undefined) this.held.set(dst, diff.held);
  }

  /** As ApplyResult reports them. */
  lists(): {
    waitingForInterface: Array<{ dst: string; dev: string }>;
    heldByGrace: Array<{ dst: string; dev: string; untilMs: number }>;
    foreignConflicts: Array<{ dst: string; foreign: KernelRoute }>;
    retained: string[];
  } {
    return {
      waitingForInterface: [...this.waiting].map(([dst, dev]) => ({ dst, dev })),
      heldByGrace: [...this.held].map(([dst, h]) => ({ dst, dev: h.dev, untilMs: h.untilMs })),
      foreignConflicts: [...this.foreign].map(([dst, foreign]) => ({ dst, foreign })),
      retained: [...this.retained],
    };
  }
}
