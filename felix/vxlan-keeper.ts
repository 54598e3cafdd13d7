// The VXLAN keeper: observe vxlan.calico (3 reads) → plan (vxlan-plan.ts) → one `ip -batch` and one
// `bridge -batch` → observe again, and the status felix and `node status` read. The I/O of felix/vxlan.ts.

import { runCommand, commandLine, failureMessage } from './command.js';
import { desiredVxlan, VXLAN_DEVICE, type VxlanInput } from './vxlan-desired.js';
import { parseFdb, parseNeighbours, parseVxlanLink, type VxlanObserved } from './vxlan-observed.js';
import { ownNeighbour, planVxlan, type VxlanStep } from './vxlan-plan.js';

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
