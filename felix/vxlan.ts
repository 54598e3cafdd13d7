// The VXLAN dataplane outside the routing table, as Calico's felix sets it up: the device `vxlan.calico`
// (VNI 4096, UDP 4789, local = this node's address, learning off, the node's tunnel address and MAC, MTU
// host − 50 or FELIX_VXLANMTU), and for every remote node with a VTEP (Node.spec.ipv4VXLANTunnelAddr and
// vxlanTunnelMACAddr) one permanent neighbour entry (its tunnel address → its MAC on vxlan.calico) and
// one permanent FDB entry (its MAC → its node address). The routes through the device
// (`<block> via <tunnel address> dev vxlan.calico onlink`) are the route table's (route-calc.ts).
//
//   desiredVxlan(input)        pure: the device, neighbours and FDB entries wanted, plus warnings
//   parse*(stdout)             pure: `ip -d -j addr`, `ip -j neigh`, `bridge -j fdb` as they print here
//   planVxlan(observed, want)  pure: the steps that close the difference, and the conflicts left alone
//   VxlanKeeper                observe (3 reads) → plan → one `ip -batch` and one `bridge -batch` → observe
//
// Ownership (what "never touch foreign entries" means here):
// - The device is ours by name when it is a vxlan device; a vxlan.calico of another kind is refused and
//   reported (never deleted). A vxlan.calico with another VNI, port, local address or learning is made
//   again (those cannot be changed in place). With no VXLAN pool it is deleted (felix does the same).
// - A neighbour entry on vxlan.calico is ours when it is PERMANENT with protocol 80 (felix's number, as
//   on routes: `ip neigh ... protocol 80`). Entries the kernel made (INCOMPLETE, FAILED, STALE...) are
//   replaced when we want their address; a permanent entry of another protocol for an address we want is
//   a conflict: reported, left as it is.
// - An FDB entry on vxlan.calico is ours when its MAC is one we want, the MAC of one of our neighbour
//   entries, or one this process wanted before (the kernel keeps no protocol on FDB entries); anything
//   else (the all-zero flood entry someone added, entries for other MACs) is left alone.
// - Every IPv4 address on vxlan.calico other than the tunnel address is removed (the device is dedicated,
//   like tunl0: ipip/tunl0.ts).
//
// Why this is hard: a restart must not rewrite anything (the entries survive the agent; rewriting the
// neighbour of a remote VTEP while traffic flows costs packets), so every comparison is on normal forms
// (lower-case MACs, dotted quads) and an equal observation plans nothing. Programming is one `ip -batch
// -force` and one `bridge -batch -force` (the lines that fail do not stop the rest); the result is
// observed again, and what is still different is reported, not assumed done.

import { tryParseIpv4, formatIpv4 } from '../bgp/ip.js';
import { runCommand, commandLine, failureMessage } from './command.js';
import { protocolNumber } from './kernel.js';
import { FELIX_ROUTE_PROTOCOL } from './routes.js';

export const VXLAN_DEVICE = 'vxlan.calico';
/** Calico's VNI for IPv4 (felix VXLANVNI default). */
export const VXLAN_VNI = 4096;
/** The IANA VXLAN port (RFC 7348 §5), felix's VXLANPort default. */
export const VXLAN_PORT = 4789;
/** Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14) headers: felix's auto MTU is host − 50. */
export const VXLAN_OVERHEAD = 50;

/** One remote node's tunnel endpoint. */
export interface VxlanVtep {
  node: string;
  /** The node's address (no length): the FDB entry's destination. */
  nodeIp: string;
  tunnelAddress: string;
  mac: string;
}

export interface VxlanInput {
  /** Some IPv4 pool has vxlanMode not Never: the device should exist. */
  needed: boolean;
  /** This node: its address (no length) and its VTEP when allocated. */
  local: { nodeIp: string; tunnelAddress?: string; mac?: string };
  /** Every other node's VTEP that is known. */
  remotes: readonly VxlanVtep[];
  /** FELIX_VXLANMTU. */
  mtu?: number;
  /** The host interface's MTU (the device gets this − 50 unless `mtu`). */
  hostMtu?: number;
}

export interface VxlanDeviceSpec {
  vni: number;
  port: number;
  local: string;
  mac: string;
  /** undefined: left as the kernel makes it. */
  mtu?: number;
  /** "10.244.0.1/32". */
  address: string;
}

export interface VxlanDesired {
  /** null: no device wanted (one of ours is deleted). */
  device: VxlanDeviceSpec | null;
  /** tunnel address → MAC. */
  neighbours: ReadonlyMap<string, string>;
  /** MAC → node address. */
  fdb: ReadonlyMap<string, string>;
}

/** The device's MTU: `mtu` when given, else host − 50, else undefined (left alone). */
export function vxlanMtu(options: { mtu?: number; hostMtu?: number }): number | undefined {
  if (options.mtu !== undefined && options.mtu > 0) return options.mtu;
  if (options.hostMtu !== undefined && options.hostMtu > VXLAN_OVERHEAD + 68) return options.hostMtu - VXLAN_OVERHEAD;
  return undefined;
}

function bareIp(text: string | undefined): string | null {
  if (text === undefined) return null;
  const addr = tryParseIpv4(text.split('/')[0] ?? '');
  return addr === null ? null : formatIpv4(addr);
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

function normalMac(text: string | undefined): string | null {
  const mac = (text ?? '').toLowerCase();
  return MAC.test(mac) && (parseInt(mac.slice(0, 2), 16) & 1) === 0 ? mac : null;
}

/** What the kernel should hold for `input`; a VTEP with a bad field is left out with a warning naming it. */
export function desiredVxlan(input: VxlanInput): { desired: VxlanDesired; warnings: string[] } {
  const warnings: string[] = [];
  const neighbours = new Map<string, string>();
  const fdb = new Map<string, string>();
  if (!input.needed) return { desired: { device: null, neighbours, fdb }, warnings };
  const local = bareIp(input.local.nodeIp);
  const address = bareIp(input.local.tunnelAddress);
  const mac = normalMac(input.local.mac);
  let device: VxlanDeviceSpec | null = null;
  if (local === null)
    warnings.push(
      `${VXLAN_DEVICE}: this node's address "${input.local.nodeIp}" is not an IPv4 address: no VXLAN device`,
    );
  else if (address === null || mac === null) {
    warnings.push(
      `${VXLAN_DEVICE}: this node has no VXLAN tunnel address and MAC yet (Node.spec.ipv4VXLANTunnelAddr, vxlanTunnelMACAddr): no VXLAN device`,
    );
  } else {
    const mtu = vxlanMtu(input);
    device = {
      vni: VXLAN_VNI,
      port: VXLAN_PORT,
      local,
      mac,
      address: `${address}/32`,
      ...(mtu !== undefined ? { mtu } : {}),
    };
  }
  const sorted = [...input.remotes].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  for (const vtep of sorted) {
    const ip = bareIp(vtep.tunnelAddress);
    const dst = bareIp(vtep.nodeIp);
    const vmac = normalMac(vtep.mac);
    if (ip === null || dst === null || vmac === null) {
      warnings.push(
        `node ${vtep.node}: VTEP tunnel address "${vtep.tunnelAddress}", MAC "${vtep.mac}", node address "${vtep.nodeIp}" — not all valid: no VXLAN entries for it`,
      );
      continue;
    }
    if (neighbours.has(ip) || fdb.has(vmac)) {
      warnings.push(`node ${vtep.node}: VTEP ${ip} / ${vmac} is already another node's: no VXLAN entries for it`);
      continue;
    }
    neighbours.set(ip, vmac);
    fdb.set(vmac, dst);
  }
  return { desired: { device, neighbours, fdb }, warnings };
}

/** The dataplane's view (dataplane.ts DataplaneInput) as the keeper's input. Pure. */
export function vxlanInputFor(input: {
  node: { ip: string };
  pools: ReadonlyArray<{ cidr: string; ipipMode: string; vxlanMode?: string }>;
  tunnel: { hostMtu?: number };
  vxlan?: {
    local: { tunnelAddress?: string; mac?: string };
    nodes: ReadonlyArray<{ name: string; ip: string; tunnelAddress?: string; mac?: string }>;
    mtu?: number;
  };
}): VxlanInput {
  // A pool with both encapsulations on is left alone (route-calc.ts warns): it does not ask for the device.
  const needed = input.pools.some(
    (p) => !p.cidr.includes(':') && (p.vxlanMode ?? 'Never') !== 'Never' && p.ipipMode === 'Never',
  );
  const nodeIp = input.node.ip.split('/')[0] ?? '';
  // Not needed: nothing but "no device" matters, so other nodes' changes do not make this input differ.
  if (!needed || input.vxlan === undefined) return { needed: false, local: { nodeIp }, remotes: [] };
  const v = input.vxlan;
  const remotes: VxlanVtep[] = [];
  for (const n of v.nodes) {
    if (n.tunnelAddress === undefined || n.mac === undefined) continue;
    const ip = n.ip.split('/')[0] ?? '';
    if (ip === nodeIp) continue;
    remotes.push({ node: n.name, nodeIp: ip, tunnelAddress: n.tunnelAddress, mac: n.mac });
  }
  return {
    needed: true,
    local: {
      nodeIp,
      ...(v.local.tunnelAddress !== undefined ? { tunnelAddress: v.local.tunnelAddress } : {}),
      ...(v.local.mac !== undefined ? { mac: v.local.mac } : {}),
    },
    remotes,
    ...(v.mtu !== undefined ? { mtu: v.mtu } : {}),
    ...(input.tunnel.hostMtu !== undefined ? { hostMtu: input.tunnel.hostMtu } : {}),
  };
}

// ---------------------------------------------------------------------------------------------------
// What the kernel holds (parsed from the JSON iproute2 6.1 prints; checked on this machine)

export interface ObservedVxlanDevice {
  kind: string;
  vni?: number;
  port?: number;
  local?: string;
  learning?: boolean;
  mtu: number;
  mac: string;
  up: boolean;
  /** IPv4 addresses with their length. */
  addresses: string[];
}

export interface ObservedNeighbour {
  ip: string;
  mac: string | null;
  permanent: boolean;
  protocol: number | null;
}

export interface ObservedFdb {
  mac: string;
  dst: string | null;
  permanent: boolean;
}

export interface VxlanObserved {
  device: ObservedVxlanDevice | null;
  neighbours: ObservedNeighbour[];
  fdb: ObservedFdb[];
}

type Json = Record<string, unknown>;

function jsonArray(stdout: string, what: string): Json[] {
  const text = stdout.trim();
  if (text === '') return [];
  const parsed: unknown = JSON.parse(text);
  if (!Array.isArray(parsed)) throw new Error(`${what}: expected a JSON array, got ${text.slice(0, 80)}`);
  return parsed as Json[];
}

/** `ip -d -j addr show dev vxlan.calico`: the device, or null when the output holds none. */
export function parseVxlanLink(stdout: string): ObservedVxlanDevice | null {
  const [link] = jsonArray(stdout, `ip -d -j addr show dev ${VXLAN_DEVICE}`);
  if (link === undefined) return null;
  const info = (link.linkinfo ?? {}) as { info_kind?: string; info_data?: Json };
  const data = info.info_data ?? {};
  const flags = Array.isArray(link.flags) ? (link.flags as string[]) : [];
  const addresses = (Array.isArray(link.addr_info) ? (link.addr_info as Json[]) : [])
    .filter((a) => a.family === 'inet')
    .map((a) => `${String(a.local)}/${String(a.prefixlen)}`);
  return {
    kind: info.info_kind ?? 'unknown',
    ...(typeof data.id === 'number' ? { vni: data.id } : {}),
    ...(typeof data.port === 'number' ? { port: data.port } : {}),
    ...(typeof data.local === 'string' ? { local: data.local } : {}),
    ...(typeof data.learning === 'boolean' ? { learning: data.learning } : {}),
    mtu: Number(link.mtu),
    mac: String(link.address ?? '').toLowerCase(),
    up: flags.includes('UP'),
    addresses,
  };
}

/** `ip -j neigh show dev vxlan.calico`. */
export function parseNeighbours(stdout: string): ObservedNeighbour[] {
  return jsonArray(stdout, `ip -j neigh show dev ${VXLAN_DEVICE}`).flatMap((n) => {
    const ip = bareIp(typeof n.dst === 'string' ? n.dst : undefined);
    if (ip === null) return [];
    const state = Array.isArray(n.state) ? (n.state as string[]) : [];
    // ip prints a protocol by name when it has one (`static`), else its number (`80`).
    const protocol = typeof n.protocol === 'string' ? protocolNumber(n.protocol) : null;
    return [
      {
        ip,
        mac: typeof n.lladdr === 'string' ? n.lladdr.toLowerCase() : null,
        permanent: state.includes('PERMANENT'),
        protocol,
      },
    ];
  });
}

/** `bridge -j fdb show dev vxlan.calico`. */
export function parseFdb(stdout: string): ObservedFdb[] {
  return jsonArray(stdout, `bridge -j fdb show dev ${VXLAN_DEVICE}`).flatMap((f) => {
    if (typeof f.mac !== 'string') return [];
    return [
      { mac: f.mac.toLowerCase(), dst: typeof f.dst === 'string' ? f.dst : null, permanent: f.state === 'permanent' },
    ];
  });
}

// ---------------------------------------------------------------------------------------------------
// The plan: steps as `ip` / `bridge` batch lines

export type VxlanStep = { tool: 'ip'; line: string; what: string } | { tool: 'bridge'; line: string; what: string };

export interface VxlanPlan {
  steps: VxlanStep[];
  /** Entries we want that someone else's entry holds: left alone, reported. */
  conflicts: string[];
}

/** Whether a neighbour entry is ours (see the header). */
export function ownNeighbour(n: ObservedNeighbour): boolean {
  return n.permanent && n.protocol === FELIX_ROUTE_PROTOCOL;
}

/**
 * The steps that turn `observed` into `desired`; nothing when they agree. `knownMacs`: FDB MACs this
 * process wanted before (ours even when their neighbour entry is gone).
 */
export function planVxlan(
  observed: VxlanObserved,
  desired: VxlanDesired,
  knownMacs: ReadonlySet<string> = new Set(),
): VxlanPlan {
  const steps: VxlanStep[] = [];
  const conflicts: string[] = [];
  const dev = VXLAN_DEVICE;
  const have = observed.device;
  const want = desired.device;
  if (have !== null && have.kind !== 'vxlan') {
    conflicts.push(
      `a ${have.kind} device named ${dev} exists: it is not a VXLAN device, so it is left alone and no VXLAN entries are programmed`,
    );
    return { steps, conflicts };
  }
  if (want === null) {
    if (have !== null) steps.push({ tool: 'ip', line: `link del ${dev}`, what: `delete ${dev} (no VXLAN pool)` });
    return { steps, conflicts };
  }
  let fresh = have === null;
  if (
    have !== null &&
    (have.vni !== want.vni || have.port !== want.port || have.local !== want.local || have.learning !== false)
  ) {
    steps.push({
      tool: 'ip',
      line: `link del ${dev}`,
      what: `re-create ${dev}: VNI ${String(have.vni)}, port ${String(have.port)}, local ${String(have.local)}, learning ${String(have.learning)} differ`,
    });
    fresh = true;
  }
  const mtu = want.mtu !== undefined ? ` mtu ${want.mtu}` : '';
  if (fresh) {
    steps.push({
      tool: 'ip',
      line: `link add ${dev} address ${want.mac}${mtu} type vxlan id ${want.vni} local ${want.local} dstport ${want.port} nolearning`,
      what: `create ${dev}`,
    });
  } else if (have !== null) {
    if (have.mac !== want.mac)
      steps.push({
        tool: 'ip',
        line: `link set dev ${dev} address ${want.mac}`,
        what: `MAC ${have.mac} → ${want.mac}`,
      });
    if (want.mtu !== undefined && have.mtu !== want.mtu)
      steps.push({ tool: 'ip', line: `link set dev ${dev} mtu ${want.mtu}`, what: `MTU ${have.mtu} → ${want.mtu}` });
  }
  if (fresh || !have!.up) steps.push({ tool: 'ip', line: `link set dev ${dev} up`, what: `${dev} up` });
  const addresses = fresh ? [] : have!.addresses;
  for (const a of addresses)
    if (a !== want.address)
      steps.push({ tool: 'ip', line: `addr del ${a} dev ${dev}`, what: `remove stray address ${a}` });
  if (!addresses.includes(want.address))
    steps.push({ tool: 'ip', line: `addr add ${want.address} dev ${dev}`, what: `address ${want.address}` });

  // Neighbours: tunnel address → MAC, permanent, protocol 80.
  const neighbours = fresh ? [] : observed.neighbours;
  const ownedMacs = new Set<string>(knownMacs);
  const seen = new Set<string>();
  for (const n of neighbours) {
    seen.add(n.ip);
    const wanted = desired.neighbours.get(n.ip);
    if (ownNeighbour(n)) {
      if (n.mac !== null) ownedMacs.add(n.mac);
      if (wanted === undefined)
        steps.push({ tool: 'ip', line: `neigh del ${n.ip} dev ${dev}`, what: `neighbour ${n.ip} no longer wanted` });
      else if (n.mac !== wanted) steps.push(neighStep(n.ip, wanted));
    } else if (wanted !== undefined) {
      if (n.permanent)
        conflicts.push(
          `neighbour ${n.ip} on ${dev} is a permanent entry felix does not own (protocol ${n.protocol ?? 'none'}, MAC ${n.mac ?? 'none'}): ours (MAC ${wanted}) is not written`,
        );
      else steps.push(neighStep(n.ip, wanted));
    }
  }
  for (const [ip, mac] of desired.neighbours) if (!seen.has(ip)) steps.push(neighStep(ip, mac));

  // FDB: MAC → node address, permanent, on the device itself.
  const entries = fresh ? [] : observed.fdb;
  const fdbSeen = new Set<string>();
  for (const f of entries) {
    const wanted = desired.fdb.get(f.mac);
    if (wanted !== undefined) {
      fdbSeen.add(f.mac);
      if (f.dst !== wanted || !f.permanent) steps.push(fdbStep(f.mac, wanted));
    } else if (ownedMacs.has(f.mac) && f.dst !== null) {
      steps.push({
        tool: 'bridge',
        line: `fdb del ${f.mac} dev ${dev} dst ${f.dst} self`,
        what: `FDB ${f.mac} no longer wanted`,
      });
    }
  }
  for (const [mac, dst] of desired.fdb) if (!fdbSeen.has(mac)) steps.push(fdbStep(mac, dst));
  return { steps, conflicts };
}

function neighStep(ip: string, mac: string): VxlanStep {
  return {
    tool: 'ip',
    line: `neigh replace ${ip} lladdr ${mac} dev ${VXLAN_DEVICE} nud permanent protocol ${FELIX_ROUTE_PROTOCOL}`,
    what: `neighbour ${ip} → ${mac}`,
  };
}

function fdbStep(mac: string, dst: string): VxlanStep {
  return {
    tool: 'bridge',
    line: `fdb replace ${mac} dev ${VXLAN_DEVICE} dst ${dst} self permanent`,
    what: `FDB ${mac} → ${dst}`,
  };
}

// ---------------------------------------------------------------------------------------------------
// The keeper: the I/O

/** Runs `tool args` with `stdin` (the batch lines); resolves with the exit code and output. */
export type VxlanRunner = (
  tool: 'ip' | 'bridge',
  args: readonly string[],
  stdin?: string,
) => Promise<{ code: number | null; stdout: string; stderr: string }>;

/** The real `ip` / `bridge` through felix's one process runner (command.ts), bounded in time. */
export function vxlanRunner(options: { netns?: string; timeoutMs?: number } = {}): VxlanRunner {
  const prefix = options.netns !== undefined ? ['-n', options.netns] : [];
  return async (tool, args, stdin) => {
    const argv = [...prefix, ...args];
    const result = await runCommand({
      command: tool,
      args: argv,
      timeoutMs: options.timeoutMs ?? 5000,
      ...(stdin !== undefined ? { stdin } : {}),
    });
    return { code: result.code, stdout: result.stdout.toString('utf8'), stderr: result.stderr };
  };
}

export interface VxlanStatus {
  needed: boolean;
  /** The device as last observed, when wanted. */
  device: { mtu: number; mac: string; address: string | null; up: boolean } | null;
  /** Remote VTEPs whose neighbour and FDB entries are in the kernel as wanted. */
  remoteVteps: number;
  /** Their tunnel addresses: only these may carry routes (a route before its neighbour entry drops packets). */
  programmedVteps: string[];
  /** Whether the device is there and right: routes through it may be programmed. */
  usable: boolean;
  /** Kernel writes (batch lines) since start: a restart that adopts everything adds none. */
  writes: number;
  conflicts: string[];
  warnings: string[];
  lastError?: string;
}

export interface VxlanLog {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

export class VxlanKeeper {
  private input: VxlanInput | null = null;
  private current: VxlanStatus = {
    needed: false,
    device: null,
    remoteVteps: 0,
    programmedVteps: [],
    usable: false,
    writes: 0,
    conflicts: [],
    warnings: [],
  };
  private running: Promise<VxlanStatus> | null = null;
  private again = false;
  /** FDB MACs wanted at some point by this process: still ours to remove after their neighbour is gone. */
  private readonly knownMacs = new Set<string>();

  constructor(
    private readonly run: VxlanRunner,
    private readonly log: VxlanLog,
  ) {}

  update(input: VxlanInput): void {
    this.input = input;
  }

  status(): VxlanStatus {
    return this.current;
  }

  /** Observes, writes what differs, observes again. Never throws (a failure is kept in the status). */
  ensure(): Promise<VxlanStatus> {
    if (this.running !== null) {
      this.again = true;
      return this.running;
    }
    const run = this.once().then(async (status) => {
      while (this.again) {
        this.again = false;
        status = await this.once();
      }
      return status;
    });
    this.running = run.finally(() => (this.running = null));
    return this.running;
  }

  private async once(): Promise<VxlanStatus> {
    const input = this.input;
    if (input === null) return this.current;
    const { desired, warnings } = desiredVxlan(input);
    try {
      let observed = await this.observe();
      if (!input.needed && observed.device === null) {
        this.current = {
          ...this.current,
          needed: false,
          device: null,
          remoteVteps: 0,
          programmedVteps: [],
          usable: false,
          conflicts: [],
          warnings,
        };
        delete this.current.lastError;
        return this.current;
      }
      const plan = planVxlan(observed, desired, this.knownMacs);
      for (const mac of desired.fdb.keys()) this.knownMacs.add(mac);
      let lastError: string | undefined;
      if (plan.steps.length > 0) {
        lastError = await this.write(plan.steps);
        this.current.writes += plan.steps.length;
        this.log.info({ steps: plan.steps.map((s) => s.what) }, `${VXLAN_DEVICE}: programmed`);
        observed = await this.observe();
      }
      const left = planVxlan(observed, desired, this.knownMacs);
      for (const mac of this.knownMacs)
        if (!desired.fdb.has(mac) && !observed.fdb.some((f) => f.mac === mac)) this.knownMacs.delete(mac);
      if (left.steps.length > 0 && lastError === undefined)
        lastError = `still different after writing: ${left.steps.map((s) => s.what).join(', ')}`;
      const device = observed.device;
      const programmed = [...desired.neighbours]
        .filter(([ip, mac]) => {
          const n = observed.neighbours.find((o) => o.ip === ip);
          const f = observed.fdb.find((o) => o.mac === mac);
          return (
            n !== undefined && ownNeighbour(n) && n.mac === mac && f !== undefined && f.dst === desired.fdb.get(mac)
          );
        })
        .map(([ip]) => ip);
      const remoteVteps = programmed.length;
      const want = desired.device;
      const usable =
        want !== null &&
        device !== null &&
        device.kind === 'vxlan' &&
        device.up &&
        device.addresses.includes(want.address) &&
        device.local === want.local &&
        device.vni === want.vni;
      this.current = {
        needed: input.needed,
        device:
          device === null || want === null
            ? null
            : { mtu: device.mtu, mac: device.mac, address: device.addresses[0] ?? null, up: device.up },
        remoteVteps,
        programmedVteps: programmed,
        usable,
        writes: this.current.writes,
        conflicts: left.conflicts,
        warnings,
        ...(lastError !== undefined ? { lastError } : {}),
      };
      if (lastError !== undefined)
        this.log.warn({ err: lastError }, `${VXLAN_DEVICE}: programming failed; retrying on the next change or resync`);
    } catch (error) {
      this.current = { ...this.current, usable: false, warnings, lastError: (error as Error).message };
      this.log.warn({ err: (error as Error).message }, `${VXLAN_DEVICE}: could not read or program the VXLAN device`);
    }
    return this.current;
  }

  private async observe(): Promise<VxlanObserved> {
    const link = await this.run('ip', ['-d', '-j', 'addr', 'show', 'dev', VXLAN_DEVICE]);
    if (link.code !== 0) {
      if (/does not exist|Cannot find device/i.test(link.stderr)) return { device: null, neighbours: [], fdb: [] };
      throw new Error(
        failureMessage(commandLine('ip', ['-d', '-j', 'addr', 'show', 'dev', VXLAN_DEVICE]), {
          code: link.code,
          signal: null,
          stdout: Buffer.from(link.stdout),
          stderr: link.stderr,
        }),
      );
    }
    const device = parseVxlanLink(link.stdout);
    if (device === null || device.kind !== 'vxlan') return { device, neighbours: [], fdb: [] };
    const [neigh, fdb] = await Promise.all([
      this.run('ip', ['-j', 'neigh', 'show', 'dev', VXLAN_DEVICE]),
      this.run('bridge', ['-j', 'fdb', 'show', 'dev', VXLAN_DEVICE]),
    ]);
    if (neigh.code !== 0) throw new Error(`ip -j neigh show dev ${VXLAN_DEVICE} failed: ${neigh.stderr.trim()}`);
    if (fdb.code !== 0) throw new Error(`bridge -j fdb show dev ${VXLAN_DEVICE} failed: ${fdb.stderr.trim()}`);
    return { device, neighbours: parseNeighbours(neigh.stdout), fdb: parseFdb(fdb.stdout) };
  }

  /** The ip lines in one `ip -batch`, then the bridge lines in one `bridge -batch`; the failures' text, or undefined. */
  private async write(steps: readonly VxlanStep[]): Promise<string | undefined> {
    const errors: string[] = [];
    for (const tool of ['ip', 'bridge'] as const) {
      const lines = steps.filter((s) => s.tool === tool).map((s) => `${s.line}\n`);
      if (lines.length === 0) continue;
      const result = await this.run(tool, ['-force', '-batch', '-'], lines.join(''));
      if (result.code !== 0) errors.push(`${tool} -batch: ${result.stderr.trim().slice(0, 300)}`);
    }
    return errors.length > 0 ? errors.join('; ') : undefined;
  }
}
