// The felix dataplane driver: what the node agent talks to. It owns one RouteTable (the kernel's main
// table, owned routes only) and, when any pool uses IPIP, the tunl0 device (through ipip/'s Tunl0Keeper).
// The agent hands it the node's view of the world (`update`) whenever that changes; the driver computes the
// routes (route-calc.ts, pure), hands them to the reconciler and keeps tunl0 right.
//
//   update(input)  node, pools, local blocks, workloads, BGP best routes → calculateRoutes → RouteTable
//   bgpSettled()   BGP has re-learned what it will: owned routes nobody wants may now be deleted
//   status()       tunl0, route counts, the last apply, warnings — for `node status -o json` and readiness
//   programmed(p)  whether the route for a prefix is in the kernel as wanted (`node routes` IN KERNEL)
//
// Why this is hard:
// - Restart without blackout. After a restart the Loc-RIB is empty until the peers have sent their routes
//   again (graceful restart: up to the selection deferral). The kernel still holds last run's remote
//   routes, which are right. So the driver starts with the RouteTable retaining unwanted owned routes via
//   a gateway and only lets them go on `bgpSettled()` (the Speaker's "ready"). Local routes (blackholes,
//   workloads) come from the datastore and are exact from the first apply.
// - tunl0 may be impossible (no ipip module): then tunnel routes are skipped (calculateRoutes'
//   `tunnelUsable`), it is said once in the log and kept in `status().tunl0` for people and readiness,
//   and every other route is still programmed. tunl0 is only touched when some pool uses IPIP.
// - A change of tunnel address, MTU or IPIP usage must reach tunl0 before routes rely on it; drift (someone
//   set tunl0 down) is repaired on every resync (`resyncMs`, 90 s like felix's route refresh). When the
//   last IPIP pool goes, tunl0's addresses are removed (its tunnel address went back to IPAM), as felix does.
//   A check that fails or times out does not take a working tunl0's routes away; it is retried after retryMs.
// - Warnings from the calculation are stable strings: each is logged once when it first appears, and the
//   current set is kept for status, so a 90 s resync does not repeat them forever.
// - natOutgoing (nat.ts, pure) lives in its own nftables table `ip tortie-nat`, kept by an NftTableKeeper
//   (nft-table.ts): written only when `nft -j list` differs from the desired content, re-checked on every
//   resync and at once on an `nft monitor` event about it, so a rule deleted by hand comes back.
// - VXLAN (vxlan.ts): when a pool uses VXLAN, a VxlanKeeper keeps vxlan.calico, its neighbours and FDB
//   entries (on every update and resync, and at once when `ip monitor neigh` reports a change on the device:
//   vxlan-watch.ts); routes through it wait until it is usable, like tunl0's. Until
//   the first check after a start the device is taken as usable: a restart finds vxlan.calico and its
//   routes in place, and must not swap them for stand-ins and back (a rewrite, and lost packets). The kernel settings routes and NAT need (ip_forward,
//   forwarding, rp_filter, proxy_arp: kernel-settings.ts) are checked at start and on every resync;
//   felix sets ip_forward itself (logged), the rest is reported in status warnings and logged once.

import { ensureKernelSettings, type SysctlIo } from './kernel-settings.js';
import { natTableFor, NAT_TABLE } from './nat.js';
import { bgpGuardTableFor, BGP_GUARD_TABLE } from './bgp-guard.js';
import type { NftMonitor } from './nft.js';
import { NftTableKeeper, type NftSyncResult, type NftTableStatus } from './nft-table.js';
import { calculateRoutes } from './route-calc.js';
import { Ipv6Dataplane } from './ipv6-dataplane.js';
import { VxlanDriftWatch, VxlanKeeper, vxlanInputFor, type VxlanStatus } from './vxlan.js';
import { RouteTable, type ApplyResult, type RouteTableClock } from './route-table.js';
import { ipCommand } from './ip-command.js';
import { Tunl0Keeper, type Tunl0Status } from '../ipip/tunl0.js';
import { systemClock, unrefTimer, type TimerHandle } from '../bgp/clock.js';
import type { DataplaneInput, DataplaneLog, DataplaneOptions, DataplaneStatus } from './dataplane-types.js';

export type { DataplaneInput, DataplaneLog, DataplaneOptions, DataplaneStatus } from './dataplane-types.js';

export class FelixDataplane {
  private readonly table: RouteTable;
  private readonly keeper: Tunl0Keeper;
  private readonly log: DataplaneLog;
  private readonly clock: RouteTableClock;
  private readonly resyncMs: number;
  private input: DataplaneInput | null = null;
  private tunnelNeeded = false;
  private tunnelKey = '';
  private tunl0: Tunl0Status | undefined;
  private tunl0Running: Promise<void> = Promise.resolve();
  /** The periodic repair of tunl0, vxlan.calico, kernel settings and the nft monitor (every resyncMs). */
  private repairTimer: TimerHandle | null = null;
  private calcWarnings: string[] = [];
  private readonly logged = new Set<string>();
  private last: ApplyResult | null = null;
  private lastApplyAt: number | null = null;
  private lastError: string | undefined;
  private retaining = true;
  private started = false;
  private stopped = false;
  private readonly nat: NftTableKeeper | null;
  /** `table ip tortie-bgp-guard` (bgp-guard.ts), with the same nft as natOutgoing's. */
  private readonly guard: NftTableKeeper | null;
  private natMonitor: NftMonitor | null = null;
  private natMonitorLost: string | null = null;
  private natPools: { natPools: string[]; allPools: string[]; warnings: string[] } = {
    natPools: [],
    allPools: [],
    warnings: [],
  };
  private readonly sysctl: SysctlIo | null;
  private settingsWarnings: string[] = [];
  private settingsCheckedAt: number | null = null;
  private settingsRunning: Promise<string[]> | null = null;
  private readonly vxlanKeeper: VxlanKeeper | null;
  /** The keeper has looked at the kernel once since start (before that, vxlan.calico counts as usable). */
  private vxlanChecked = false;
  private vxlanKey = '';
  private vxlanRetry: TimerHandle | null = null;
  /** tunl0's last check failed (kept working: ensureTunl0) and is tried again soon. */
  private tunl0Error: string | undefined;
  private tunl0Retry: TimerHandle | null = null;
  private readonly vxlanWatch: VxlanDriftWatch | null;
  /** The last input wants vxlan.calico. */
  private vxlanWanted = false;
  private readonly v6: Ipv6Dataplane | null;

  constructor(private readonly options: DataplaneOptions) {
    this.log = options.log;
    this.clock = options.clock ?? systemClock;
    this.resyncMs = options.resyncMs ?? 90_000;
    this.table = new RouteTable(options.kernel, {
      resyncMs: this.resyncMs,
      ...(options.graceMs !== undefined ? { graceMs: options.graceMs } : {}),
      ...(options.debounceMs !== undefined ? { debounceMs: options.debounceMs } : {}),
      ...(options.retryMs !== undefined ? { retryMs: options.retryMs } : {}),
      ...(options.clock !== undefined ? { clock: options.clock } : {}),
      ...(options.reconnect !== undefined ? { reconnect: options.reconnect } : {}),
      onApplied: (result) => this.onApplied(result),
      onError: (error) => {
        this.lastError = error.message;
        this.log.error({ err: error.message }, 'programming the kernel routes failed; retrying');
      },
    });
    // Routes via a gateway are the ones BGP re-learns after a restart (see the header).
    this.table.retainUnwanted((route) => route.gateway !== undefined);
    this.nat =
      options.nft === undefined
        ? null
        : new NftTableKeeper({
            nft: options.nft,
            family: NAT_TABLE.family,
            name: NAT_TABLE.name,
            log: this.log,
            resyncMs: this.resyncMs,
            ...(options.retryMs !== undefined ? { retryMs: options.retryMs } : {}),
            ...(options.clock !== undefined ? { clock: options.clock } : {}),
          });
    this.guard =
      options.nft === undefined
        ? null
        : new NftTableKeeper({
            nft: options.nft,
            family: BGP_GUARD_TABLE.family,
            name: BGP_GUARD_TABLE.name,
            log: this.log,
            resyncMs: this.resyncMs,
            ...(options.retryMs !== undefined ? { retryMs: options.retryMs } : {}),
            ...(options.clock !== undefined ? { clock: options.clock } : {}),
          });
    this.sysctl = options.sysctl ?? null;
    this.v6 = options.ipv6 === undefined ? null : new Ipv6Dataplane({ ...options.ipv6, log: this.log });
    this.vxlanKeeper = options.vxlan === undefined ? null : new VxlanKeeper(options.vxlan.run, this.log);
    const watch = options.vxlan?.watch;
    this.vxlanWatch = watch === undefined ? null : new VxlanDriftWatch(watch, () => void this.repairVxlan(), this.log);
    const { netns, standIn, ip } = options.tunl0 ?? {};
    this.keeper = new Tunl0Keeper(
      { ...(netns !== undefined ? { netns } : {}), ...(standIn !== undefined ? { standIn } : {}) },
      this.log,
      { ip: ip ?? ipCommand(netns !== undefined ? { netns } : {}) },
    );
  }

  /** Starts the reconciler (it programs once the first `update` arrives) and the periodic tunl0 repair. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    if (this.input !== null) this.recalculate();
    if (this.input?.ipv6 !== undefined) void this.v6?.update(this.input.ipv6);
    this.table.start();
    this.nat?.start();
    this.guard?.start();
    this.watchNat();
    if (this.input !== null) void this.checkKernelSettings();
    this.scheduleRepair();
  }

  /** Drift (tunl0 set down, a neighbour deleted, a sysctl changed, the nft monitor lost) is repaired every resyncMs. */
  private scheduleRepair(): void {
    this.repairTimer = this.clock.setTimeout(() => {
      this.repairTimer = null;
      if (this.stopped) return;
      if (this.tunnelNeeded) void this.ensureTunl0();
      void this.repairVxlan();
      void this.checkKernelSettings();
      void this.v6?.resync();
      this.watchNat();
      this.scheduleRepair();
    }, this.resyncMs);
    unrefTimer(this.repairTimer);
  }

  /** The node's current view; routes follow at once (debounced by the reconciler). */
  update(input: DataplaneInput): void {
    if (this.stopped) return;
    this.input = input;
    const needed = input.pools.some((p) => p.ipipMode !== 'Never' && (p.vxlanMode ?? 'Never') === 'Never');
    const key = JSON.stringify([
      needed,
      input.tunnel.address ?? null,
      input.tunnel.mtu ?? null,
      input.tunnel.hostMtu ?? null,
    ]);
    const tunnelChanged = key !== this.tunnelKey;
    const wasNeeded = this.tunnelNeeded;
    this.tunnelKey = key;
    this.tunnelNeeded = needed;
    if (wasNeeded && !needed) this.clearTunl0();
    if (needed && tunnelChanged) {
      this.keeper.update({
        address: input.tunnel.address,
        ...(input.tunnel.mtu !== undefined ? { mtu: input.tunnel.mtu } : {}),
        ...(input.tunnel.hostMtu !== undefined ? { hostMtu: input.tunnel.hostMtu } : {}),
      });
      // Routes through tunl0 wait for tunl0; the others are programmed meanwhile.
      void this.ensureTunl0();
    }
    if (this.vxlanKeeper !== null) {
      // Only a change of what vxlan.calico should hold costs a look at the kernel; drift comes from the monitor.
      const vxlanInput = vxlanInputFor(input);
      const key = JSON.stringify(vxlanInput);
      if (key !== this.vxlanKey) {
        this.vxlanKey = key;
        this.vxlanWanted = vxlanInput.needed;
        this.vxlanKeeper.update(vxlanInput);
        void this.repairVxlan();
      }
    }
    if (this.started) this.recalculate();
    if (this.started && input.ipv6 !== undefined) void this.v6?.update(input.ipv6);
    if (this.started && this.settingsCheckedAt === null) void this.checkKernelSettings();
  }

  /** Whether routes through vxlan.calico may be programmed: as last checked, or (before the first check) yes. */
  private vxlanUsable(): boolean {
    if (this.vxlanKeeper === null) return false;
    return this.vxlanChecked ? this.vxlanKeeper.status().usable : true;
  }

  /** The IPv6 side's last reconcile (ipv6-dataplane.ts): resolves when the kernel has the IPv6 routes; null without one. */
  settleIpv6(): Promise<void> | null {
    return this.v6?.resync() ?? null;
  }

  /** Makes vxlan.calico, its neighbours and FDB entries right now (also on every update and resync). Never throws. */
  async repairVxlan(): Promise<VxlanStatus | null> {
    if (this.vxlanKeeper === null || this.stopped) return null;
    const before = `${this.vxlanUsable()} ${this.vxlanChecked ? this.vxlanKeeper.status().programmedVteps.join(',') : '*'}`;
    // Make before break: deleting vxlan.calico takes its routes with it at once, so when it is to go (no
    // VXLAN pool any more), the routes that replace them (tunl0, direct) are applied first.
    if (!this.vxlanWanted && this.vxlanKeeper.status().device !== null && this.started)
      await this.table.apply().catch(() => undefined);
    const status = await this.vxlanKeeper.ensure();
    this.vxlanChecked = true;
    // Watching starts once VXLAN is in use (and again here after it was lost: this runs on every resync).
    if (status.needed && this.started) this.vxlanWatch?.ensure();
    const after = `${this.vxlanUsable()} ${status.programmedVteps.join(',')}`;
    if (after !== before && this.started && !this.stopped) this.recalculate();
    // A failed write is tried again soon (retryMs), not only at the next resync.
    if (status.lastError !== undefined && this.vxlanRetry === null && !this.stopped) {
      this.vxlanRetry = this.clock.setTimeout(() => {
        this.vxlanRetry = null;
        void this.repairVxlan();
      }, this.options.retryMs ?? 2000);
      unrefTimer(this.vxlanRetry);
    }
    return status;
  }

  /** BGP has settled (the Speaker is ready): owned routes nobody wants may go now. */
  bgpSettled(): void {
    if (!this.retaining) return;
    this.retaining = false;
    this.table.retainUnwanted(null);
    this.log.info({}, 'BGP settled: routes no longer wanted are removed from the kernel');
  }

  /** Makes tunl0 right now (also done on every resync). Never throws; a failure is kept for status. */
  repairTunl0(): Promise<void> {
    return this.ensureTunl0();
  }

  /** Waits for the pending tunl0 work and one apply of the current desired routes (tests, shutdown). */
  async settle(): Promise<ApplyResult> {
    await this.tunl0Running;
    await this.repairVxlan();
    return this.table.apply();
  }

  /** Checks `table ip tortie-nat` now and writes it if it differs (tests; also done on every resync). */
  settleNat(): Promise<NftSyncResult> {
    if (this.nat === null)
      return Promise.reject(new Error('natOutgoing is not managed by this dataplane (no nft given)'));
    return this.nat.sync();
  }

  /**
   * Reads the kernel settings, sets ip_forward if it is off, keeps the warnings for status (each logged
   * once). Also done at start and on every resync. Never throws.
   */
  checkKernelSettings(): Promise<string[]> {
    if (this.sysctl === null || this.input === null || this.stopped) return Promise.resolve(this.settingsWarnings);
    if (this.settingsRunning !== null) return this.settingsRunning;
    const sysctl = this.sysctl;
    const run = ensureKernelSettings(sysctl, { hostInterface: this.input.node.hostInterface }, this.log).then(
      (warnings) => {
        this.settingsWarnings = warnings;
        this.settingsCheckedAt = this.clock.now();
        this.logOnce(warnings, 'kernel settings');
        return warnings;
      },
    );
    this.settingsRunning = run;
    void run.finally(() => (this.settingsRunning = null));
    return run;
  }

  programmed(prefix: string): boolean {
    return this.table.programmed(prefix);
  }

  status(): DataplaneStatus {
    const t = this.tunl0;
    let tunl0: DataplaneStatus['tunl0'];
    if (!this.tunnelNeeded) tunl0 = { needed: false };
    else if (t === undefined) tunl0 = { needed: true, supported: false, reason: 'tunl0 has not been checked yet' };
    else if (t.supported)
      tunl0 = { needed: true, supported: true, standIn: t.standIn, mtu: t.device.mtu, addresses: t.device.addresses };
    else tunl0 = { needed: true, supported: false, reason: t.reason };
    const last = this.last;
    const warnings = [...this.calcWarnings];
    if (tunl0.needed && !tunl0.supported && t !== undefined)
      warnings.push(`${tunl0.reason}: routes through tunl0 are not programmed`);
    if (tunl0.needed && tunl0.supported && this.tunl0Error !== undefined)
      warnings.push(`${this.tunl0Error}: the routes through tunl0 stay as it last worked, checked again soon`);
    for (const c of last?.foreignConflicts ?? []) {
      warnings.push(
        `${c.dst}: a route felix does not own holds this destination (proto ${c.foreign.protocol ?? '?'}${c.foreign.dev ? ` dev ${c.foreign.dev}` : ''}); ours is not written`,
      );
    }
    const natStatus: NftTableStatus = this.nat?.status() ?? {
      inSync: false,
      checks: 0,
      writes: 0,
      lastCheckAt: null,
      lastWriteAt: null,
      lastDifference: null,
    };
    warnings.push(...this.natPools.warnings);
    if (natStatus.lastError !== undefined && this.natPools.natPools.length > 0) {
      warnings.push(
        `natOutgoing: table ${NAT_TABLE.family} ${NAT_TABLE.name} could not be programmed (${natStatus.lastError}): pods in ${this.natPools.natPools.join(', ')} cannot reach addresses outside the pools`,
      );
    }
    warnings.push(...this.settingsWarnings);
    const v6 = this.v6?.status();
    if (v6 !== undefined)
      warnings.push(...v6.warnings, ...(v6.lastError !== null ? [`IPv6 routes: ${v6.lastError}`] : []));
    const vxlan = this.vxlanKeeper?.status() ?? null;
    if (vxlan !== null) {
      warnings.push(...vxlan.warnings, ...vxlan.conflicts);
      if (vxlan.lastError !== undefined) warnings.push(`vxlan.calico: ${vxlan.lastError}`);
    }
    const desired = this.table.desiredRoutes();
    return {
      tunl0,
      routes: {
        desired: desired.length,
        programmed: desired.filter((r) => this.table.programmed(r.dst)).length,
        waitingForInterface: last?.waitingForInterface.length ?? 0,
        foreignConflicts: last?.foreignConflicts.length ?? 0,
        retained: last?.retained.length ?? 0,
      },
      retainingUnwanted: this.retaining,
      inSync: this.lastApplyAt !== null,
      lastApplyAt: this.lastApplyAt === null ? null : new Date(this.lastApplyAt).toISOString(),
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
      nat: {
        table: `${NAT_TABLE.family} ${NAT_TABLE.name}`,
        managed: this.nat !== null,
        natPools: this.natPools.natPools,
        allPools: this.natPools.allPools,
        ...natStatus,
      },
      kernelSettings: {
        checkedAt: this.settingsCheckedAt === null ? null : new Date(this.settingsCheckedAt).toISOString(),
        warnings: this.settingsWarnings,
      },
      warnings,
      vxlan,
    };
  }

  /** Stops watching and every timer; routes stay in the kernel (the next start adopts them). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.repairTimer !== null) this.clock.clearTimeout(this.repairTimer);
    if (this.vxlanRetry !== null) this.clock.clearTimeout(this.vxlanRetry);
    if (this.tunl0Retry !== null) this.clock.clearTimeout(this.tunl0Retry);
    this.vxlanWatch?.stop();
    this.table.stop();
    this.nat?.stop();
    this.guard?.stop();
    this.natMonitor?.stop();
    this.natMonitor = null;
    await this.tunl0Running.catch(() => undefined);
    await this.settingsRunning?.catch(() => undefined);
    await this.options.kernel.close().catch(() => undefined);
  }

  private recalculate(): void {
    const input = this.input;
    if (input === null) return;
    const { tunnel: _tunnel, ...rest } = input;
    const { vxlan, ...others } = rest;
    const result = calculateRoutes({
      ...others,
      tunnelUsable: this.tunl0?.supported === true,
      ...(vxlan !== undefined
        ? {
            vxlan: {
              remoteBlocks: vxlan.remoteBlocks,
              nodes: vxlan.nodes,
              usable: this.vxlanUsable(),
              ...(this.vxlanChecked ? { programmed: new Set(this.vxlanKeeper?.status().programmedVteps ?? []) } : {}),
            },
          }
        : {}),
    });
    this.logOnce(result.warnings, 'route calculation');
    this.calcWarnings = result.warnings;
    this.table.setDesired(result.routes);
    const nat = natTableFor(input.pools);
    this.logOnce(nat.warnings, 'natOutgoing');
    this.natPools = { natPools: nat.natPools, allPools: nat.allPools, warnings: nat.warnings };
    this.nat?.setDesired(nat.table);
    const guard = input.bgpGuard
      ? bgpGuardTableFor({ pools: input.pools, ...input.bgpGuard })
      : { table: null, warnings: [] };
    this.logOnce(guard.warnings, 'BGP port guard');
    this.guard?.setDesired(guard.table);
  }

  /** Checks `table ip tortie-bgp-guard` now and writes it if it differs (tests; also done on every resync). */
  settleBgpGuard(): Promise<NftSyncResult> {
    if (this.guard === null)
      return Promise.reject(new Error('the BGP port guard is not managed by this dataplane (no nft given)'));
    return this.guard.sync();
  }

  /** `nft monitor`: any change to our table (or one nft cannot place) is checked at once. Restarted on resync if lost. */
  private watchNat(): void {
    const nft = this.options.nft;
    if (this.nat === null || nft?.monitor === undefined || this.natMonitor !== null || this.stopped) return;
    this.natMonitor = nft.monitor(
      (event) => {
        const ours = event.table === NAT_TABLE.name && (event.family === null || event.family === NAT_TABLE.family);
        if (ours || event.table === null) this.nat?.poke();
        if (event.table === BGP_GUARD_TABLE.name || event.table === null) this.guard?.poke();
      },
      (reason) => {
        this.natMonitor = null;
        if (this.stopped) return;
        if (reason !== this.natMonitorLost)
          this.log.warn(
            { reason },
            `nft monitor lost: changes to table ${NAT_TABLE.family} ${NAT_TABLE.name} are repaired on the next resync`,
          );
        this.natMonitorLost = reason;
      },
    );
  }

  /** Warnings are stable strings: each is logged the first time it appears. */
  private logOnce(warnings: readonly string[], what: string): void {
    for (const w of warnings) {
      if (this.logged.has(w)) continue;
      this.logged.add(w);
      this.log.warn({ warning: w }, what);
    }
  }

  /** The last IPIP pool went (switched to VXLAN or Never): tunl0 keeps no address (ipip/tunl0.ts clear). */
  private clearTunl0(): void {
    const run = this.tunl0Running.then(async () => {
      // this.tunl0 stays as it was: the device stays (up, without address) and still carries IPIP, so a pool
      // switched back, or a VXLAN block standing in through tunl0 (route-calc.ts), may route through it at once.
      if (this.stopped || this.tunnelNeeded) return;
      await this.keeper.clear().catch((error: unknown) => {
        this.log.warn(
          { err: (error as Error).message },
          'tunl0: could not remove its addresses (no IPIP pool any more)',
        );
        this.retryTunl0(); // a released address left on tunl0 stays a local address of the node
      });
    });
    this.tunl0Running = run.catch(() => undefined);
  }

  /** After a failed tunl0 check or clear: the same again after retryMs (whichever the pools want then). */
  private retryTunl0(): void {
    if (this.tunl0Retry !== null || this.stopped) return;
    this.tunl0Retry = this.clock.setTimeout(() => {
      this.tunl0Retry = null;
      if (this.tunnelNeeded) void this.ensureTunl0();
      else this.clearTunl0();
    }, this.options.retryMs ?? 2000);
    unrefTimer(this.tunl0Retry);
  }

  private ensureTunl0(): Promise<void> {
    const run = this.tunl0Running.then(async () => {
      if (this.stopped || !this.tunnelNeeded) return;
      const before = this.tunl0?.supported;
      try {
        this.tunl0 = await this.keeper.ensure();
        this.tunl0Error = undefined;
      } catch (error) {
        // Logged by the keeper. A tunl0 that worked keeps its routes: a failed or slow `ip` (a loaded machine)
        // says nothing about the device, and dropping them would blackhole every tunnel route until the next
        // check. One never set up is not trusted. Either way it is tried again soon.
        const reason = `tunl0 could not be set up: ${(error as Error).message}`;
        if (this.tunl0?.supported === true) this.tunl0Error = reason;
        else this.tunl0 = { supported: false, reason };
        this.retryTunl0();
      }
      if (this.tunl0.supported !== before && this.started) this.recalculate();
    });
    this.tunl0Running = run.catch(() => undefined);
    return this.tunl0Running;
  }

  private onApplied(result: ApplyResult): void {
    this.last = result;
    this.lastApplyAt = this.clock.now();
    this.lastError = undefined;
    if (result.kernelWrites > 0) {
      this.log.info(
        { added: result.added.length, deleted: result.deleted.length, fullResync: result.fullResync },
        'kernel routes programmed',
      );
    }
    this.options.onApplied?.(result);
  }
}
