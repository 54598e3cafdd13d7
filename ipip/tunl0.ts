// The tunl0 device: make it exist, carry the node's tunnel address, have the tunnel MTU and be up, and
// put it back that way when someone (or something) changes it. Also: tell clearly when this kernel has no
// IPIP at all. Imports nothing of ours but bgp/ip.ts and runs no program itself: `ip` (iproute2) is reached
// through an `IpCommand` its caller hands in (the real one is felix/ip-command.ts `ipCommand()`, through
// felix's one process runner), so all of this runs in unit tests without a kernel.
//
//   observe  one `ip -details -json addr show dev tunl0` (kind, MTU, UP flag, IPv4 addresses)
//   plan     `planTunl0(observed, desired)`: pure, the list of steps that close the difference
//   apply    one `ip` command per step (STEPS table), then observe again and insist the difference is gone
//
// Decisions (documented here because felix and the agent rely on them):
// - Addresses: tunl0 is a device dedicated to the tunnel, so every IPv4 address on it other than the
//   desired /32 is drift and is removed (Calico's felix does the same). A stale tunnel address from an
//   earlier IPAM allocation would otherwise stay the source address of tunnelled traffic. We cannot tell
//   "ours from before" from "someone else's" after a restart anyway: nothing in the kernel records it.
//   IPv6 addresses are left alone. `address: undefined` = "not known yet": addresses are not touched;
//   `address: null` = "this node has no tunnel address": every IPv4 address is removed.
// - MTU: `mtu` (FELIX_IPINIPMTU) when given, else `hostMtu` − 20 (the outer IPv4 header, RFC 2003 §3.1),
//   else the MTU is left as the kernel made it (1480 for a fresh tunl0).
// - A device named tunl0 that is not an IPIP tunnel (a veth or dummy standing in for it where the kernel
//   has no IPIP, as in our tests) is refused by default — routes through it would not be encapsulated —
//   and managed like the real one only with `standIn: 'manage'`; the status then says `standIn: true`.
//
// Why this is hard: `ip link add tunl0 type ipip` fails in three different ways that mean three different
// things. "File exists" is success: loading the ipip module creates a fallback tunl0 in every namespace by
// itself, and a second any-to-any ipip device (under any name) is refused with the same words. "Unknown
// device type" (iproute2 ≥ 5.x, from the kernel's extended ack) or "Operation not supported" (older) means
// the kernel has no IPIP: not an error to throw but a fact to report once — the node keeps working without
// tunnel routes. Anything else (no such namespace, no permission) is a real failure. One table (IP_ERRORS)
// maps `ip`'s stderr to those meanings.

import { formatIpv4, tryParseIpv4 } from '../bgp/ip.js';
import type { Logger } from '../bgp/log.js';
import { IPIP_DEVICE as TUNL0 } from './encap.js';

/** The IPIP device, named once (encap.ts). */
export { TUNL0 };

/** Bytes IPIP adds to every packet: one outer IPv4 header without options (RFC 2003 §3.1). */
export const IPIP_OVERHEAD = 20;

/** Smallest MTU an IPv4 link may have (RFC 791 §3.2: every module must forward 68 octets unfragmented). */
export const MIN_IPV4_MTU = 68;
/** Largest MTU the kernel accepts for a link (u16 in the IP header's total length). */
export const MAX_MTU = 65535;

// ---------------------------------------------------------------------------------------------------
// Running `ip`

/** What one `ip` run answered. A non-zero exit is an answer, not an exception. */
export interface IpResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `ip <args>` (inside the namespace it was made for). Rejects only when `ip` could not run at all. */
export type IpCommand = (args: readonly string[]) => Promise<IpResult>;

// ---------------------------------------------------------------------------------------------------
// What `ip`'s complaints mean: one table

export type IpErrorKind = 'exists' | 'no-ipip' | 'no-device' | 'no-netns' | 'not-permitted' | 'other';

interface IpErrorRow {
  readonly kind: Exclude<IpErrorKind, 'other'>;
  readonly pattern: RegExp;
  /** A stderr line `ip` really prints for it (tests check every row against its example). */
  readonly example: string;
  readonly meaning: string;
}

/** Checked in order; the first match wins. */
export const IP_ERRORS: readonly IpErrorRow[] = [
  {
    kind: 'exists',
    pattern: /File exists/i,
    example: 'RTNETLINK answers: File exists',
    meaning: 'the device (or an equivalent any-to-any ipip device) is already there',
  },
  {
    kind: 'no-ipip',
    pattern: /Unknown device type/i,
    example: 'Error: Unknown device type.',
    meaning: 'the kernel has no ipip link type (module missing and not loadable)',
  },
  {
    kind: 'no-ipip',
    pattern: /Operation not supported/i,
    example: 'RTNETLINK answers: Operation not supported',
    meaning: 'the kernel has no ipip link type (older iproute2 wording)',
  },
  {
    kind: 'no-device',
    pattern: /does not exist|Cannot find device/i,
    example: 'Device "tunl0" does not exist.',
    meaning: 'there is no such device',
  },
  {
    kind: 'no-netns',
    pattern: /Cannot open network namespace/i,
    example: 'Cannot open network namespace "tortie-x": No such file or directory',
    meaning: 'the network namespace does not exist',
  },
  {
    kind: 'not-permitted',
    pattern: /Operation not permitted/i,
    example: 'RTNETLINK answers: Operation not permitted',
    meaning: 'not allowed: run as root or with CAP_NET_ADMIN',
  },
];

export function classifyIpError(stderr: string): IpErrorKind {
  return IP_ERRORS.find((row) => row.pattern.test(stderr))?.kind ?? 'other';
}

/** A failure that is not "the kernel has no IPIP": names the command, what `ip` said and what it means. */
export class Tunl0Error extends Error {
  constructor(
    message: string,
    readonly kind: IpErrorKind | 'verify',
  ) {
    super(message);
    this.name = 'Tunl0Error';
  }
}

function failure(args: readonly string[], result: IpResult, netns: string | undefined): Tunl0Error {
  const kind = classifyIpError(result.stderr);
  const meaning = IP_ERRORS.find((row) => row.kind === kind)?.meaning;
  const where = netns !== undefined ? ` in netns ${netns}` : '';
  return new Tunl0Error(
    `"ip ${args.join(' ')}"${where} failed (exit ${result.code}): ${firstLine(result.stderr) || 'no message'}` +
      (meaning !== undefined ? ` — ${meaning}` : ''),
    kind,
  );
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0] ?? '';
}

// ---------------------------------------------------------------------------------------------------
// Desired state

/** The tunnel address as "a.b.c.d/32". Accepts "a.b.c.d" or "a.b.c.d/32"; refuses any other length. */
export function normalizeTunnelAddress(address: string): string {
  const slash = address.indexOf('/');
  const ipText = slash < 0 ? address : address.slice(0, slash);
  const len = slash < 0 ? '32' : address.slice(slash + 1);
  const ip = tryParseIpv4(ipText);
  if (ip === null) {
    throw new Error(
      `tunnel address "${address}" is not an IPv4 address (expected a.b.c.d or a.b.c.d/32, like 10.244.1.1)`,
    );
  }
  if (len !== '32') {
    throw new Error(
      `tunnel address "${address}" has prefix length /${len}; tunl0 carries a single /32 (like ${formatIpv4(ip)}/32)`,
    );
  }
  return `${formatIpv4(ip)}/32`;
}

/** tunl0's MTU: `mtu` (FELIX_IPINIPMTU) when given, else host MTU − 20 (RFC 2003 §3.1), else undefined (leave it). */
export function tunl0Mtu(options: { mtu?: number; hostMtu?: number }): number | undefined {
  if (options.mtu !== undefined) return checkMtu(options.mtu, 'mtu (FELIX_IPINIPMTU)');
  if (options.hostMtu !== undefined) {
    checkMtu(options.hostMtu, 'hostMtu');
    return checkMtu(options.hostMtu - IPIP_OVERHEAD, `hostMtu ${options.hostMtu} − ${IPIP_OVERHEAD}`);
  }
  return undefined;
}

function checkMtu(value: number, what: string): number {
  if (!Number.isInteger(value) || value < MIN_IPV4_MTU || value > MAX_MTU) {
    throw new Error(
      `${what} = ${value} is not an MTU: expected a whole number ${MIN_IPV4_MTU}..${MAX_MTU} (like 1480)`,
    );
  }
  return value;
}

export interface Tunl0Desired {
  /** "a.b.c.d/32"; null = no address at all; undefined = leave addresses alone. */
  readonly address: string | null | undefined;
  /** undefined = leave the MTU alone. */
  readonly mtu: number | undefined;
}

// ---------------------------------------------------------------------------------------------------
// Observed state

export interface ObservedTunl0 {
  /** linkinfo.info_kind: "ipip" for the real thing; "veth", "dummy"... for a stand-in; "" when `ip` gave none. */
  readonly kind: string;
  readonly mtu: number;
  /** The administrative UP flag (not operstate: a stand-in veth whose peer is down is UP but LOWERLAYERDOWN). */
  readonly up: boolean;
  /** IPv4 addresses as "a.b.c.d/len", in the order `ip` listed them. */
  readonly addresses: readonly string[];
}

/** Reads the output of `ip -details -json addr show dev tunl0`. */
export function parseTunl0Json(stdout: string): ObservedTunl0 | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    throw new Tunl0Error(
      `"ip -details -json addr show dev ${TUNL0}" printed something that is not JSON: ${stdout.slice(0, 200)}`,
      'other',
    );
  }
  if (!Array.isArray(parsed)) {
    throw new Tunl0Error(
      `"ip -details -json addr show dev ${TUNL0}" printed ${typeof parsed}, expected a JSON array of links`,
      'other',
    );
  }
  const link = parsed.find((entry): entry is Record<string, unknown> => isRecord(entry) && entry.ifname === TUNL0);
  if (link === undefined) return null;
  const flags = Array.isArray(link.flags) ? link.flags : [];
  const linkinfo = isRecord(link.linkinfo) ? link.linkinfo : {};
  const addrInfo = Array.isArray(link.addr_info) ? link.addr_info : [];
  const addresses = addrInfo
    .filter((a): a is Record<string, unknown> => isRecord(a) && a.family === 'inet' && typeof a.local === 'string')
    .map((a) => `${String(a.local)}/${typeof a.prefixlen === 'number' ? a.prefixlen : 32}`);
  return {
    kind: typeof linkinfo.info_kind === 'string' ? linkinfo.info_kind : '',
    mtu: typeof link.mtu === 'number' ? link.mtu : 0,
    up: flags.includes('UP'),
    addresses,
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ---------------------------------------------------------------------------------------------------
// The plan: pure

export type Tunl0Step =
  | { readonly op: 'del-address'; readonly address: string }
  | { readonly op: 'set-mtu'; readonly mtu: number; readonly from: number }
  | { readonly op: 'add-address'; readonly address: string }
  | { readonly op: 'set-up' };

type StepOf<Op extends Tunl0Step['op']> = Extract<Tunl0Step, { op: Op }>;

/** One row per step: the `ip` arguments that perform it and how to say it to people. */
const STEPS: {
  readonly [Op in Tunl0Step['op']]: { args(step: StepOf<Op>): string[]; describe(step: StepOf<Op>): string };
} = {
  'del-address': {
    args: (s) => ['addr', 'del', s.address, 'dev', TUNL0],
    describe: (s) => `removed address ${s.address}`,
  },
  'set-mtu': {
    args: (s) => ['link', 'set', 'dev', TUNL0, 'mtu', String(s.mtu)],
    describe: (s) => `MTU ${s.from} → ${s.mtu}`,
  },
  'add-address': {
    args: (s) => ['addr', 'add', s.address, 'dev', TUNL0],
    describe: (s) => `added address ${s.address}`,
  },
  'set-up': {
    args: () => ['link', 'set', 'dev', TUNL0, 'up'],
    describe: () => 'set up',
  },
};

export function stepArgs(step: Tunl0Step): string[] {
  return (STEPS[step.op].args as (s: Tunl0Step) => string[])(step);
}

export function describeStep(step: Tunl0Step): string {
  return (STEPS[step.op].describe as (s: Tunl0Step) => string)(step);
}

/**
 * The steps that turn `observed` into `desired`, in a safe order: stray addresses go first (so the
 * source address is never ambiguous), then the MTU, then our address, then up (so the device never
 * carries traffic with the wrong MTU or address). Empty when nothing differs.
 */
export function planTunl0(observed: ObservedTunl0, desired: Tunl0Desired): Tunl0Step[] {
  const steps: Tunl0Step[] = [];
  if (desired.address !== undefined) {
    for (const address of observed.addresses) {
      if (address !== desired.address) steps.push({ op: 'del-address', address });
    }
  }
  if (desired.mtu !== undefined && observed.mtu !== desired.mtu) {
    steps.push({ op: 'set-mtu', mtu: desired.mtu, from: observed.mtu });
  }
  if (typeof desired.address === 'string' && !observed.addresses.includes(desired.address)) {
    steps.push({ op: 'add-address', address: desired.address });
  }
  if (!observed.up) steps.push({ op: 'set-up' });
  return steps;
}

// ---------------------------------------------------------------------------------------------------
// ensureTunl0

export interface Tunl0Options {
  /** The network namespace to work in (tests); the host's own when absent. Ignored when `ip` is injected. */
  netns?: string;
  /** The node's tunnel address (Calico `ipv4IPIPTunnelAddr`), "a.b.c.d" or "a.b.c.d/32"; see the header for undefined/null. */
  address?: string | null;
  /** FELIX_IPINIPMTU; wins over hostMtu. */
  mtu?: number;
  /** The host interface's MTU; tunl0 gets this − 20 when `mtu` is absent. */
  hostMtu?: number;
  /** What to do with a tunl0 that is not an IPIP device (default 'refuse'; tests use 'manage'). */
  standIn?: 'refuse' | 'manage';
}

export interface Tunl0Device {
  readonly kind: string;
  readonly mtu: number;
  readonly up: boolean;
  readonly addresses: readonly string[];
}

export type Tunl0Status =
  | {
      /** tunl0 is there, managed and matches the desired state: tunnel routes may use it. */
      readonly supported: true;
      /** The device is not an IPIP tunnel but a stand-in (only with `standIn: 'manage'`): no encapsulation. */
      readonly standIn: boolean;
      /** This call created tunl0 (false when it was there, e.g. made by the kernel when ipip loaded). */
      readonly created: boolean;
      /** What this call changed, for people ("MTU 1500 → 1480"); empty when nothing had drifted. */
      readonly repaired: readonly string[];
      readonly device: Tunl0Device;
    }
  | {
      readonly supported: false;
      /** Why tunl0 cannot be used, for the log, `node status` and readiness. */
      readonly reason: string;
    };

export interface Tunl0Deps {
  /** Runs `ip` (inside the network namespace the options name): felix/ip-command.ts `ipCommand`, or a fake. */
  ip: IpCommand;
}

const SHOW_ARGS = ['-details', '-json', 'addr', 'show', 'dev', TUNL0];
const CREATE_ARGS = ['link', 'add', TUNL0, 'type', 'ipip'];

/**
 * Makes tunl0 exist, carry `address`, have the tunnel MTU and be up; repairs whatever drifted since the
 * last call. Resolves `{ supported: false, reason }` (never throws) when the kernel has no IPIP or tunl0
 * is a device we will not manage; throws `Tunl0Error` for real failures and `Error` for bad options.
 */
export async function ensureTunl0(options: Tunl0Options, deps: Tunl0Deps): Promise<Tunl0Status> {
  const desired: Tunl0Desired = {
    address:
      options.address === undefined || options.address === null
        ? options.address
        : normalizeTunnelAddress(options.address),
    mtu: tunl0Mtu(options),
  };
  const ip = deps.ip;
  const netns = options.netns;

  let observed = await observe(ip, netns);
  let created = false;
  if (observed === null) {
    const result = await ip(CREATE_ARGS);
    const kind = result.code === 0 ? 'created' : classifyIpError(result.stderr);
    if (kind === 'no-ipip') return { supported: false, reason: noIpipReason(result, netns) };
    if (kind !== 'created' && kind !== 'exists') throw failure(CREATE_ARGS, result, netns);
    created = kind === 'created';
    observed = await observe(ip, netns);
    if (observed === null) {
      throw new Tunl0Error(
        `"ip ${CREATE_ARGS.join(' ')}"${where(netns)} answered ${kind === 'created' ? 'success' : '"File exists"'} but there is still no ${TUNL0}`,
        'verify',
      );
    }
  }

  const standIn = observed.kind !== 'ipip';
  if (standIn && options.standIn !== 'manage') {
    return {
      supported: false,
      reason:
        `${TUNL0}${where(netns)} exists but is a "${observed.kind || 'unknown'}" device, not an IPIP tunnel (kind ipip): ` +
        `routes through it would not be encapsulated, so tortie leaves it alone and skips tunnel routes (remove it to let tortie create the real one)`,
    };
  }

  const steps = planTunl0(observed, desired);
  for (const step of steps) {
    const args = stepArgs(step);
    const result = await ip(args);
    // A stray address that vanished meanwhile, or ours added meanwhile, is already what we wanted.
    if (result.code !== 0 && !alreadyDone(step, result)) throw failure(args, result, netns);
  }

  if (steps.length > 0) {
    observed = await observe(ip, netns);
    const left = observed === null ? null : planTunl0(observed, desired);
    if (observed === null || (left !== null && left.length > 0)) {
      throw new Tunl0Error(
        `${TUNL0}${where(netns)} still differs after repair: ` +
          (observed === null ? 'it disappeared' : (left ?? []).map(describeStep).join(', ') + ' still needed'),
        'verify',
      );
    }
  }

  return {
    supported: true,
    standIn,
    created,
    repaired: steps.map(describeStep),
    device: { kind: observed.kind, mtu: observed.mtu, up: observed.up, addresses: [...observed.addresses] },
  };
}

function alreadyDone(step: Tunl0Step, result: IpResult): boolean {
  const kind = classifyIpError(result.stderr);
  if (step.op === 'add-address') return kind === 'exists';
  if (step.op === 'del-address') return /Cannot assign requested address/i.test(result.stderr);
  return false;
}

async function observe(ip: IpCommand, netns: string | undefined): Promise<ObservedTunl0 | null> {
  const result = await ip(SHOW_ARGS);
  if (result.code === 0) return parseTunl0Json(result.stdout);
  if (classifyIpError(result.stderr) === 'no-device') return null;
  throw failure(SHOW_ARGS, result, netns);
}

function where(netns: string | undefined): string {
  return netns !== undefined ? ` in netns ${netns}` : '';
}

function noIpipReason(result: IpResult, netns: string | undefined): string {
  return (
    `the kernel has no IPIP support${where(netns)}: "ip ${CREATE_ARGS.join(' ')}" answered "${firstLine(result.stderr)}" ` +
    `(load the ipip module with "modprobe ipip", or use ipipMode Never); tunnel routes are skipped, everything else keeps working`
  );
}

/**
 * No pool uses IPIP any more: takes every IPIP address off tunl0, as Calico's felix does when IPIP is
 * disabled (its tunnel address went back to IPAM and may be a pod's next; a stale /32 on tunl0 would also
 * stay a local address of the node). Only a real ipip tunl0 is touched, never created; the device itself
 * stays (the kernel's fallback device cannot be deleted while the module is loaded). Returns what it removed.
 */
export async function clearTunl0Addresses(netns: string | undefined, deps: Tunl0Deps): Promise<string[]> {
  const observed = await observe(deps.ip, netns);
  if (observed === null || observed.kind !== 'ipip') return [];
  const removed: string[] = [];
  for (const address of observed.addresses) {
    const step: Tunl0Step = { op: 'del-address', address };
    const result = await deps.ip(stepArgs(step));
    if (result.code !== 0 && !alreadyDone(step, result)) throw failure(stepArgs(step), result, netns);
    removed.push(address);
  }
  return removed;
}

// ---------------------------------------------------------------------------------------------------
// The capability check alone

export type IpipSupport = { readonly supported: true } | { readonly supported: false; readonly reason: string };

/** A throwaway name for the probe device; never left behind. */
const PROBE = 'tortie-ipipchk';

/**
 * Does this kernel (in `netns`) have IPIP? An existing ipip tunl0 says yes at once. Otherwise it asks the
 * kernel to create an any-to-any ipip device under a throwaway name: "File exists" (the fallback tunl0 the
 * module makes is the same device) or success (deleted again at once) mean yes, "Unknown device type" no.
 * Side effect worth knowing: on a kernel where ipip is a loadable module, asking loads it, and the kernel
 * then creates the fallback tunl0 in every namespace — which ensureTunl0 would do anyway.
 */
export async function checkIpip(netns: string | undefined, deps: Tunl0Deps): Promise<IpipSupport> {
  const ip = deps.ip;
  const observed = await observe(ip, netns);
  if (observed?.kind === 'ipip') return { supported: true };
  const probeArgs = ['link', 'add', PROBE, 'type', 'ipip'];
  const result = await ip(probeArgs);
  if (result.code === 0) {
    const removeArgs = ['link', 'del', PROBE];
    const removed = await ip(removeArgs);
    if (removed.code !== 0) throw failure(removeArgs, removed, netns);
    return { supported: true };
  }
  const kind = classifyIpError(result.stderr);
  if (kind === 'exists') return { supported: true };
  if (kind === 'no-ipip') {
    return {
      supported: false,
      reason: `the kernel has no IPIP support${where(netns)}: "ip ${probeArgs.join(' ')}" answered "${firstLine(result.stderr)}" (load the ipip module with "modprobe ipip")`,
    };
  }
  throw failure(probeArgs, result, netns);
}

/** True when the kernel (in `netns`) can make IPIP tunnels; see checkIpip for how and why. */
export async function ipipSupported(netns: string | undefined, deps: Tunl0Deps): Promise<boolean> {
  return (await checkIpip(netns, deps)).supported;
}

// ---------------------------------------------------------------------------------------------------
// Calling ensureTunl0 again and again (on every resync) without saying the same thing again and again

/** The two logger methods the keeper uses. */
export type Tunl0Log = Pick<Logger, 'info' | 'warn'>;

/**
 * Holds the options and the last status for the agent: `ensure()` on start and on every resync, `status`
 * for `node status -o json` and readiness. "Unsupported" is logged once per distinct reason (not on every
 * resync); each repair of drift is logged as it happens; a real failure is logged and thrown.
 */
export class Tunl0Keeper {
  private last: Tunl0Status | undefined;
  private reported: string | undefined;

  constructor(
    private options: Tunl0Options,
    private readonly log: Tunl0Log,
    private readonly deps: Tunl0Deps,
  ) {}

  /** The status of the last ensure(), undefined before the first. */
  get status(): Tunl0Status | undefined {
    return this.last;
  }

  /** New desired state (a new tunnel address from IPAM, a new MTU); applied by the next ensure(). */
  update(options: Partial<Tunl0Options>): void {
    this.options = { ...this.options, ...options };
  }

  /** No pool uses IPIP now: tunl0's addresses go (clearTunl0Addresses); logged when there were any. */
  async clear(): Promise<void> {
    const removed = await clearTunl0Addresses(this.options.netns, this.deps);
    this.last = undefined;
    if (removed.length > 0)
      this.log.info({ device: TUNL0, removed }, `${TUNL0}: no IPIP pool any more, addresses removed`);
  }

  async ensure(): Promise<Tunl0Status> {
    let status: Tunl0Status;
    try {
      status = await ensureTunl0(this.options, this.deps);
    } catch (error) {
      this.log.warn({ device: TUNL0, netns: this.options.netns, err: error }, `${TUNL0}: ${(error as Error).message}`);
      throw error;
    }
    if (!status.supported) {
      if (this.reported !== status.reason) this.log.warn({ device: TUNL0, supported: false }, status.reason);
      this.reported = status.reason;
    } else {
      if (this.reported !== undefined) this.log.info({ device: TUNL0, supported: true }, `${TUNL0} is usable now`);
      this.reported = undefined;
      if (status.repaired.length > 0) {
        this.log.info(
          { device: TUNL0, created: status.created, repaired: status.repaired, standIn: status.standIn },
          `${TUNL0} ${status.created ? 'created' : 'repaired'}: ${status.repaired.join(', ')}`,
        );
      }
    }
    this.last = status;
    return status;
  }
}
