// The narrow kernel interface felix programs routes through, and the shape of a kernel route.
//
// `KernelRoute` mirrors the fields of `ip -json route show table main` (IPv4, main table only); the real
// implementation (iproute2.ts) decodes the kernel's own route messages (`ip route save`, rtnetlink.ts) into
// those fields, already in normal form, and the in-memory one (memory-kernel.ts) looks exactly like it.
// Two implementations:
//   - felix/iproute2.ts: the real kernel, inside a given network namespace;
//   - felix/memory-kernel.ts: in memory, for unit tests, can be told to fail the next call.
//
// Why this is hard: the kernel prints the same route in several spellings (`10.0.0.5` vs `10.0.0.5/32`,
// `type` and `scope` omitted when they are the defaults, a protocol by name or by number). Everything that
// compares routes goes through `normalizeKernelRoute` and `protocolNumber` here, so two spellings of one
// route never look like a difference (which would mean a kernel write on every resync).

import { formatPrefix, maskOf } from '../bgp/ip.js';

/** One route of the main table, field names as `ip -json route` prints them. */
export interface KernelRoute {
  /** `unicast` (the default, often omitted by ip), `blackhole`, `unreachable`, `prohibit`, `local`, ... */
  type?: string;
  /** The destination: `default`, `10.0.0.5` (a /32) or `10.244.1.0/26`. */
  dst: string;
  gateway?: string;
  dev?: string;
  /** By name (`kernel`, `boot`, `static`, `bird`, ...) or a number as a string (`"80"`). */
  protocol?: string;
  /** `link`, `host` or `global` (the default, often omitted). */
  scope?: string;
  prefsrc?: string;
  metric?: number;
  /** e.g. `["onlink"]`, `["linkdown"]`. */
  flags?: string[];
}

/** A change seen by `watch`: a route of the main table, or a network interface, added/changed or deleted. */
export type KernelEvent =
  | { kind: 'route'; dst: string; deleted: boolean }
  | { kind: 'link'; name: string; deleted: boolean }
  /** The event stream broke (the monitor process died): the view of the kernel may be stale. */
  | { kind: 'lost'; reason: string };

/** One batch of writes: every deletion runs before any addition; additions have replace semantics. */
export interface KernelBatch {
  del: KernelRoute[];
  add: KernelRoute[];
}

/** The routes and the interfaces, read together (one `ip` process for iproute2.ts). */
export interface KernelSnapshot {
  /** Every route of the main IPv4 table. */
  routes: KernelRoute[];
  /** Names of every network interface. */
  links: string[];
}

export interface Kernel {
  /** Every route of the main IPv4 table and every interface name, in one read: the full resync's read. */
  readAll(): Promise<KernelSnapshot>;
  /** Every route of the main IPv4 table. */
  listRoutes(): Promise<KernelRoute[]>;
  /** Names of every network interface. */
  listLinks(): Promise<string[]>;
  linkExists(name: string): Promise<boolean>;
  /**
   * Applies deletions first, then additions (`ip route replace`). Rejects with a `KernelError` when any
   * line failed; the lines that succeeded stay applied (the caller re-reads the kernel and retries).
   * An empty batch writes nothing.
   */
  apply(batch: KernelBatch): Promise<void>;
  /**
   * Optional: a full read (as `readAll`) whose answer the caller turns into one batch, written by the same
   * process (iproute2.ts: one `ip -batch` reads the kernel, then takes the route lines), so that a resync
   * that writes starts one process, not two. `write` is called once after `read` resolved — with an empty
   * batch when there is nothing to write; if `read` rejects, the process is gone and `write` is not called.
   */
  readThenWrite?(): { read: Promise<KernelSnapshot>; write(batch: KernelBatch): Promise<void> };
  /** Calls `onChange` for kernel changes (ours included) until `stop()`. */
  watch(onChange: (event: KernelEvent) => void): { stop(): void };
  /** Releases processes/handles; the kernel's routes stay as they are. */
  close(): Promise<void>;
}

/** A kernel call that failed; `lines` are the failing commands with the kernel's message. */
export class KernelError extends Error {
  constructor(
    message: string,
    readonly lines: ReadonlyArray<{ command: string; error: string }> = [],
  ) {
    super(message);
    this.name = 'KernelError';
  }
}

/**
 * Route protocol numbers and the names iproute2 prints for them (/etc/iproute2/rt_protos and
 * <linux/rtnetlink.h> RTPROT_*). Felix's own routes carry 80 (Calico's felix protocol number).
 */
export const ROUTE_PROTOCOLS: Readonly<Record<string, number>> = {
  unspec: 0,
  redirect: 1,
  kernel: 2,
  boot: 3,
  static: 4,
  gated: 8,
  ra: 9,
  mrt: 10,
  zebra: 11,
  bird: 12,
  dnrouted: 13,
  xorp: 14,
  ntk: 15,
  dhcp: 16,
  keepalived: 18,
  babel: 42,
  openr: 99,
  bgp: 186,
  isis: 187,
  ospf: 188,
  rip: 189,
  eigrp: 192,
};

/** The protocol felix marks its routes with (Calico felix uses 80): one constant, in routes.ts. */
export { FELIX_ROUTE_PROTOCOL as FELIX_PROTOCOL } from './routes.js';

/** A protocol as a number: `"80"` → 80, `"bird"` → 12, missing → 3 (boot, what `ip route add` uses). */
export function protocolNumber(protocol: string | undefined): number {
  if (protocol === undefined) return ROUTE_PROTOCOLS.boot ?? 3;
  if (DIGITS.test(protocol)) return Number(protocol);
  return ROUTE_PROTOCOLS[protocol] ?? -1;
}

const DIGITS = /^\d+$/;

/**
 * `10.0.0.5` → `10.0.0.5/32`, `10.244.1.0/26` unchanged, `default` → `0.0.0.0/0`, host bits cleared.
 * Anything else (IPv6, garbage) is returned as is.
 */
export function normalizeDst(dst: string): string {
  return canonicalDst(dst) ?? dst;
}

/**
 * The one spelling of an IPv4 route destination ("a.b.c.d/len", host bits cleared), or null when `dst` is
 * not one: accepts what routes.ts `routeKey` accepts (`default`, a dotted quad, a CIDR; no leading zeros)
 * and gives the same string, without its cost. Hot path: every desired route goes through it on every
 * `setDesired`, every kernel route on every resync (10,000 each in the felix-routes bench). One pass
 * over the characters; no regex, no split, no exception, and no new string when the spelling is already
 * canonical — routeKey (split + a regex per octet) made `setDesired` of 10,000 routes cost ~17 ms more.
 */
export function canonicalDst(dst: string): string | null {
  if (dst === 'default') return '0.0.0.0/0';
  const n = dst.length;
  let addr = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  let i = 0;
  for (; i < n; i++) {
    const c = dst.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digits === 1 && octet === 0) return null; // a leading zero
      octet = octet * 10 + (c - 48);
      if (++digits > 3) return null;
    } else if (c === 46 /* . */) {
      if (digits === 0 || dots === 3 || octet > 255) return null;
      addr = addr * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c === 47 /* / */) {
      break;
    } else {
      return null;
    }
  }
  if (dots !== 3 || digits === 0 || octet > 255) return null;
  addr = addr * 256 + octet;
  if (i === n) return `${dst}/32`;
  let len = 0;
  let lenDigits = 0;
  for (i++; i < n; i++) {
    const c = dst.charCodeAt(i);
    if (c < 48 || c > 57 || ++lenDigits > 2 || (lenDigits === 2 && len === 0)) return null;
    len = len * 10 + (c - 48);
  }
  if (lenDigits === 0 || len > 32) return null;
  const network = (addr & maskOf(len)) >>> 0;
  return network === addr ? dst : formatPrefix({ addr: network, len });
}

/**
 * One spelling per route: dst with its length, defaults filled, flags sorted (without `linkdown`), protocol
 * as a number, metric 0 left out. A route already in that form is returned as it is (not copied): every
 * desired route and every kernel route of a resync comes through here, and none of them is ever mutated.
 */
export function normalizeKernelRoute(route: KernelRoute): KernelRoute {
  if (isNormalized(route)) return route;
  const flags = route.flags;
  const out: KernelRoute = {
    type: route.type ?? 'unicast',
    dst: normalizeDst(route.dst),
    protocol: protocolText(route.protocol),
    scope: route.scope ?? 'global',
    flags:
      flags === undefined || flags.length === 0
        ? []
        : flags.length === 1 && flags[0] !== 'linkdown'
          ? [...flags]
          : flags.filter((f) => f !== 'linkdown').sort(),
  };
  if (route.gateway !== undefined) out.gateway = route.gateway;
  if (route.dev !== undefined) out.dev = route.dev;
  if (route.prefsrc !== undefined) out.prefsrc = route.prefsrc;
  if (route.metric !== undefined && route.metric !== 0) out.metric = route.metric;
  return out;
}

/** Whether `normalizeKernelRoute` would give back an equal route (checked without allocating). */
function isNormalized(route: KernelRoute): boolean {
  const { type, protocol, scope, flags } = route;
  return (
    type !== undefined &&
    scope !== undefined &&
    protocol !== undefined &&
    flags !== undefined &&
    flagsNormalized(flags) &&
    route.metric !== 0 &&
    isDecimal(protocol) &&
    canonicalDst(route.dst) === route.dst
  );
}

/** Sorted, without `linkdown` (a carrier state, not part of the route). */
function flagsNormalized(flags: readonly string[]): boolean {
  for (let i = 0; i < flags.length; i++) {
    const flag = flags[i] as string;
    if (flag === 'linkdown' || (i > 0 && (flags[i - 1] as string) > flag)) return false;
  }
  return true;
}

/** The protocol as normalized routes spell it: its number as a decimal string (`"80"`, `"12"` for bird). */
function protocolText(protocol: string | undefined): string {
  return protocol !== undefined && isDecimal(protocol) ? protocol : String(protocolNumber(protocol));
}

/** Digits only, no leading zero: what `String(n)` gives for a non-negative integer. */
function isDecimal(text: string): boolean {
  const n = text.length;
  if (n === 0 || n > 9 || (n > 1 && text.charCodeAt(0) === 48)) return false;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** Whether two routes are the same route (compared on normalized fields; prefsrc is ignored). */
export function sameKernelRoute(a: KernelRoute, b: KernelRoute): boolean {
  return sameNormalizedRoute(normalizeKernelRoute(a), normalizeKernelRoute(b));
}

/** `sameKernelRoute` for two routes already through `normalizeKernelRoute` (the resync hot path). */
export function sameNormalizedRoute(x: KernelRoute, y: KernelRoute): boolean {
  if (
    x.type !== y.type ||
    x.dst !== y.dst ||
    x.protocol !== y.protocol ||
    x.scope !== y.scope ||
    x.gateway !== y.gateway ||
    x.dev !== y.dev ||
    (x.metric ?? 0) !== (y.metric ?? 0)
  ) {
    return false;
  }
  const fx = x.flags ?? [];
  const fy = y.flags ?? [];
  if (fx.length !== fy.length) return false;
  for (let i = 0; i < fx.length; i++) if (fx[i] !== fy[i]) return false;
  return true;
}
