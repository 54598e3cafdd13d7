// The node agent (`tortie node run`): wires datastore → cache → planner/advertiser → Speaker and felix, and
// answers `tortie node status|routes` (control socket) and the kubelet's probes (health server). The
// process around it (environment, datastore, signals) is ./run-node.ts.
//
// Start: the startup sequence (./bootstrap.ts: WAIT_FOR_DATASTORE, our address, our Node, the default pool,
// a block, the IPIP tunnel address), the VXLAN tunnel endpoint (./vxlan-tunnel.ts, kept right on every
// pass after); then the cache, the kernel dataplane, one pass, the servers
// (./servers.ts). Then the replan loop: on every (coalesced) cache change, one pass — planPeers → the
// Speaker's identity and peer set (./speaker-keeper.ts: eBGP peers with the node's subnet, for third-party
// next hops), originatedPrefixes → its originated routes (next hop: our address), the import context,
// felix's input (./dataplane-input.ts, pure) and the network policy. Status and readiness: ./status.ts;
// service IPs: ./service-advertiser.ts; what the agent is given (AgentDeps): ./agent-deps.ts.
//
// Why this is hard:
// - An IPAM or workload change (another node's block claim) moves originated routes, not peers: the plan
//   is kept, so N agents do not all re-plan N peers for every claim in the cluster (PEERING_KINDS).
// - Readiness is Calico's: no peers → ready; until every peer has been Established once → all must be;
//   afterwards at least one. Then felix's: the kernel has been programmed once.
// - Import protection (./import-guard.ts) is the Speaker's import judge, always on. Its context is rebuilt
//   from the cache on every pass that touched what it judges by, and only the routes the change can
//   touch are judged again (Speaker.rejudge): an affinity arriving after its block's route, a node moving.
// - Nothing the agent starts without awaiting it (a Speaker event, a timer, the live tunnel address, a
//   stop asked for on the control socket) may end as an unhandled rejection or an uncaught exception:
//   that would end the process. Each such entry point runs `contained`: a throw is logged and kept as
//   the last error, and the next change or resync tries again.
// - Every timer runs on the injected clock (`AgentDeps.clock`); the kernel-route recalculation is
//   coalesced per turn of the event loop (setImmediate), which is not a timer.

import { systemClock, type Clock } from '../../bgp/index.js';
import type { PolicyEnforcer } from '../policy/enforcer.js';
import type { Datastore } from '../datastore/types.js';
import { Ipam } from '../ipam/index.js';
import type { AgentDeps } from './agent-deps.js';
import type { Resource } from '../resources/index.js';
import type { Logger } from '../log.js';
import { originatedPrefixes } from './advertise.js';
import {
  bootstrap,
  ensureTunnelAddress,
  ipipTunnelNeedsWork,
  type BootstrapContext,
  type NodeAddress,
} from './bootstrap.js';
import { ResourceCache } from './cache.js';
import { startKernelDataplane, type DataplaneLike } from './kernel-dataplane.js';
import { levelOfSeverity, routerIdFor, type AgentConfig } from './config.js';
import { dataplaneInput, sysfsInterfaceMtu } from './dataplane-input.js';
import { errorText } from './error-text.js';
import { AgentMetrics } from './metrics.js';
import { VxlanTunnelKeeper } from './vxlan-tunnel.js';
import { PasswordBook } from './passwords.js';
import { serviceExportRanges } from './service-routes.js';
import { ServiceAdvertiser } from './service-advertiser.js';
import { planPeers } from './planner.js';
import { AgentServers } from './servers.js';
import { importContextOf, insideSubnetOf, nodeSubnet, SpeakerKeeper, type SpeakerIdentity } from './speaker-keeper.js';
import { agentReadiness, agentStatus, notInEffectWarnings, packageVersion, TcpDropWatch } from './status.js';
import type { AgentStatus, PeeringPlan, Readiness, RouteRow } from './types.js';

export type { AgentDeps } from './agent-deps.js';
export type { SpeakerLike } from './speaker-keeper.js';
export type { DataplaneLike } from './kernel-dataplane.js';

/** Kinds whose change can change the peering plan (the rest only move originated routes). IPPool is here
 *  because the export filter is derived from the pools. */
const PEERING_KINDS: ReadonlySet<string> = new Set(['Node', 'BGPConfiguration', 'BGPPeer', 'BGPFilter', 'IPPool']);
/** Kinds the import protection judges by (./import-guard.ts). */
const IMPORT_GUARD_KINDS: ReadonlySet<string> = new Set([
  'Node',
  'BGPConfiguration',
  'IPPool',
  'IPAMBlock',
  'BlockAffinity',
]);

export class Agent {
  private readonly ds: Datastore;
  private readonly log: Logger;
  private readonly metrics: AgentMetrics;
  private readonly clock: Clock;
  private readonly ipam: Ipam;
  private readonly startedAt: number;
  /** Warnings for node status, added and cleared by the startup steps and the speaker keeper. */
  private readonly warnings = new Set<string>();
  private readonly keeper: SpeakerKeeper;
  private readonly passwords: PasswordBook;
  /** TcpExt counters since the sessions with a password were last (re)configured: node status shows growth. */
  private readonly drops: TcpDropWatch;
  private readonly servers: AgentServers;
  private cache: ResourceCache | null = null;
  private plan: PeeringPlan | null = null;
  private blocks: string[] = [];
  /** Our address and the interface holding it (direct and BGP routes leave through it); null until found. */
  private ip: NodeAddress | null = null;
  private dataplane: DataplaneLike | null = null;
  /** NetworkPolicy enforcement (src/policy/enforcer.ts), with the kernel dataplane. */
  private policy: PolicyEnforcer | null = null;
  private dataplaneUpdate: ReturnType<typeof setImmediate> | null = null;
  private tunnelAddressRunning = false;
  /** Node.spec.ipv4VXLANTunnelAddr / vxlanTunnelMACAddr (./vxlan-tunnel.ts). */
  private readonly vxlanTunnel: VxlanTunnelKeeper;
  private stopping = false;
  private started = false;
  private lastError: string | undefined;
  private replanning: Promise<void> = Promise.resolve();
  private cacheLoaded = false;
  /** Kinds changed since the last pass; peers are re-planned only when one of PEERING_KINDS changed. */
  private readonly changedKinds = new Set<string>();
  private lastChangeAt: number | null = null;
  private readonly logLevelFromEnv: boolean;
  private stopSecretWatch: (() => void) | null = null;
  /** Service IP advertisement: service CIDRs, and Services and EndpointSlices while one is configured. */
  private readonly services: ServiceAdvertiser;

  constructor(
    readonly config: AgentConfig,
    private readonly deps: AgentDeps,
  ) {
    this.ds = deps.datastore;
    this.log = deps.logger;
    this.metrics = deps.metrics ?? new AgentMetrics();
    this.clock = deps.clock ?? systemClock;
    this.ipam = new Ipam(this.ds);
    this.vxlanTunnel = new VxlanTunnelKeeper({
      ds: this.ds,
      ipam: this.ipam,
      nodeName: config.nodeName,
      log: this.log,
      deviceReady: (address, mac) => this.vxlanDeviceReady(address, mac),
    });
    this.startedAt = this.clock.now();
    this.logLevelFromEnv = config.logLevel !== undefined;
    this.passwords = new PasswordBook(deps.secrets ?? null, this.log);
    this.drops = new TcpDropWatch(deps.readNetstat);
    this.servers = new AgentServers({
      config,
      log: this.log,
      metrics: this.metrics,
      clock: this.clock,
      serveControl: deps.serveControl,
      startHealth: deps.startHealth,
    });
    this.services = new ServiceAdvertiser({
      nodeName: config.nodeName,
      api: deps.serviceApi ?? null,
      clock: this.clock,
      log: this.log,
      warnings: this.warnings,
      onChange: () =>
        this.contained('a Service or EndpointSlice change', () => {
          this.changedKinds.add('Service');
          this.scheduleReplan();
        }),
      stopping: () => this.stopping,
    });
    this.keeper = new SpeakerKeeper({
      log: this.log,
      clock: this.clock,
      metrics: this.metrics,
      createSpeaker: deps.createSpeaker,
      connectRetryMs: deps.connectRetryMs,
      maxPrefixes: config.maxPrefixes,
      warnings: this.warnings,
      contained: (what, action) => this.contained(what, action),
      plannedPeers: () => this.plan?.peers ?? [],
      settleWatched: () => this.dataplane !== null,
      onSettled: () => this.dataplane?.bgpSettled(),
      onRoutesChanged: () => this.scheduleDataplaneUpdate(),
      onRetry: () => this.scheduleReplan(),
      stopping: () => this.stopping,
    });
  }

  /** Runs the startup sequence, then serves. Rejects (and leaves nothing running) when startup fails. */
  async start(): Promise<void> {
    try {
      this.ip = await bootstrap(this.bootstrapContext());
      await this.vxlanTunnel.ensure({ sweep: true });
      this.cache = new ResourceCache(this.ds, {
        clock: this.clock,
        ...(this.deps.coalesceMs !== undefined ? { coalesceMs: this.deps.coalesceMs } : {}),
        onError: (kind, error) => {
          this.lastError = error.message;
          this.log.warn({ kind, err: error.message }, 'datastore watch failed; re-listing');
        },
        onProblem: (kind, problem) => {
          this.warnings.add(`${kind}: ${problem} (left out)`);
          this.log.warn({ kind, problem }, 'a stored object could not be read and is left out');
        },
      });
      // Changes are acted on only once every kind is loaded: a plan from a half-loaded cache (Nodes listed,
      // BGPConfiguration not yet) would say wrong things (no such node; listen on 0.0.0.0).
      this.cache.on('changed', (kinds: ReadonlySet<string>) =>
        this.contained('a datastore change', () => {
          if (!this.cacheLoaded) return;
          for (const kind of kinds) this.changedKinds.add(kind);
          this.scheduleReplan();
        }),
      );
      await this.cache.start();
      this.cacheLoaded = true;
      this.drops.rebase();
      this.stopSecretWatch = this.deps.secrets?.watch(() => void this.refreshPasswords()) ?? null;
      this.startDataplane();
      await this.replanNow();
      await this.servers.start(
        { status: () => this.status(), routes: () => this.routes(), stop: (graceful) => this.onStopRequest(graceful) },
        { readiness: () => this.readiness(), liveness: () => !this.stopping },
      );
      this.started = true;
      this.log.info({ node: this.config.nodeName }, 'tortie node agent started');
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  /**
   * Stops everything: watches, servers, and the BGP sessions — with Cease to every peer, or, `graceful`,
   * by closing every connection without a NOTIFICATION, so peers (graceful-restart helpers, RFC 4724)
   * keep this node's routes as stale until it is back (a restart: rolling update, preStop hook). Kernel
   * routes stay either way. Safe to call twice.
   */
  async stop(options: { graceful?: boolean } = {}): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    // First, before any await: a peer reconnecting meanwhile would otherwise get a Cease after all.
    if (options.graceful === true) await this.keeper.dropGracefully();
    this.keeper.clearTimers();
    this.vxlanTunnel.stop();
    this.stopSecretWatch?.();
    this.stopSecretWatch = null;
    this.services.stop();
    if (this.dataplaneUpdate !== null) clearImmediate(this.dataplaneUpdate);
    this.dataplaneUpdate = null;
    this.policy?.stop();
    this.cache?.stop();
    await this.replanning.catch(() => undefined);
    // Routes stay in the kernel: the next start adopts them (no blackout across a restart).
    await this.dataplane?.stop().catch((e: unknown) => this.log.warn({ err: errorText(e) }, 'stopping the dataplane'));
    await this.keeper.stop();
    await this.servers.close();
  }

  status(): AgentStatus {
    const plan = this.plan;
    const kernelFindings = this.drops.findings(plan?.peers ?? []);
    const peers = this.keeper.speaker?.peerStatus() ?? [];
    return agentStatus({
      node: this.config.nodeName,
      configuredAs: this.config.asNumber,
      version: this.deps.version ?? packageVersion(),
      datastoreType: this.ds.type,
      startedAt: this.startedAt,
      now: this.clock.now(),
      ip: this.ip,
      hostInterface: this.ip?.hostInterface ?? null,
      plan,
      routerId: this.keeper.identity?.routerId ?? null,
      peers,
      passwordProblem: (p) => this.passwords.problem(p),
      kernelFindings,
      readiness: this.readiness(),
      cache: this.cache ? { connected: this.cache.connected, lastError: this.cache.lastError } : null,
      lastError: this.lastError,
      blocks: this.blocks,
      dataplane: this.dataplane?.status(),
      policy: this.policy?.status(),
      warnings: [
        ...this.warnings,
        ...this.keeper.filterProblems,
        ...(this.vxlanTunnel.warning() !== null ? [this.vxlanTunnel.warning()!] : []),
      ],
      notInEffect: notInEffectWarnings(this.cache, this.config.nodeName),
      ...(this.config.networkingBackend === 'vxlan'
        ? {
            summary:
              'tortie is running (CALICO_NETWORKING_BACKEND=vxlan: no BGP speaker, routes from IPAM block affinities and VXLAN).',
          }
        : {}),
    });
  }

  /**
   * The Loc-RIB's best routes; during a graceful Speaker swap, plus the retained ones not yet re-learned;
   * then every route import protection refused (best: false, with the reason).
   */
  routes(): RouteRow[] {
    const rows = [...this.keeper.rows(), ...this.keeper.refusedRows()];
    const dataplane = this.dataplane;
    if (dataplane) for (const row of rows) row.inKernel = dataplane.programmed(row.prefix);
    return rows;
  }

  /** Calico's BIRD readiness, then felix's (./status.ts). */
  readiness(): Readiness {
    // CALICO_NETWORKING_BACKEND=vxlan: no BGP to wait for, only felix.
    const bgp =
      this.config.networkingBackend === 'vxlan' && this.started
        ? { ready: true }
        : this.keeper.readiness(this.started, this.plan?.routerId === null);
    return bgp.ready ? agentReadiness(bgp, this.dataplane?.status()) : bgp;
  }

  private bootstrapContext(): BootstrapContext {
    return {
      ds: this.ds,
      ipam: this.ipam,
      config: this.config,
      log: this.log,
      clock: this.clock,
      warnings: this.warnings,
      ...(this.deps.interfaces ? { interfaces: this.deps.interfaces } : {}),
      ...(this.deps.localAddressToward ? { localAddressToward: this.deps.localAddressToward } : {}),
      stopped: () => this.stopping,
    };
  }

  /** Our vxlan.calico is up with this VTEP (or nothing here programs it): its MAC may be published. */
  private vxlanDeviceReady(address: string, mac: string): boolean {
    if (this.config.dataplane !== 'kernel') return true;
    const status = this.dataplane?.status();
    if (status === undefined) return false;
    const vxlan = status.vxlan;
    return vxlan === null || (vxlan.usable && vxlan.device?.address === `${address}/32` && vxlan.device.mac === mac);
  }

  private onStopRequest(graceful: boolean): void {
    this.log.info({ graceful }, 'stop requested on the control socket');
    if (this.deps.onStopRequest) this.contained('a stop request', () => this.deps.onStopRequest!(graceful));
    else
      void this.stop({ graceful }).catch((error: unknown) =>
        this.log.error({ err: errorText(error) }, 'stopping failed'),
      );
  }

  // ---- the replan loop ----------------------------------------------------------------------------------

  private scheduleReplan(): void {
    this.lastChangeAt ??= this.clock.now();
    this.replanning = this.replanning
      .then(() => this.replanNow())
      .catch((e: unknown) => {
        this.lastError = errorText(e);
        this.log.error({ err: errorText(e) }, 'reconfiguration failed');
      });
  }

  /** One pass: plan from the cache, reconcile the Speaker's identity, peers and originated routes, felix, policy. */
  private async replanNow(): Promise<void> {
    const cache = this.cache;
    if (!cache || this.stopping) return;
    const changeAt = this.lastChangeAt;
    this.lastChangeAt = null;
    // Peers are re-planned only when a kind that shapes them changed (see header).
    // Workloads shape the peers only through a BGPPeer localWorkloadSelector (./workload-peers.ts).
    const peeringChanged =
      this.plan === null ||
      [...this.changedKinds].some((k) => PEERING_KINDS.has(k)) ||
      (this.changedKinds.has('WorkloadEndpoint') && cache.list('BGPPeer').some((p) => p.spec.localWorkloadSelector));
    const guardChanged =
      this.keeper.importContext === null || [...this.changedKinds].some((k) => IMPORT_GUARD_KINDS.has(k));
    this.changedKinds.clear();
    if (this.config.networkingBackend === 'vxlan') return this.replanWithoutBgp(cache, changeAt);
    let plan = this.plan;
    if (plan === null || peeringChanged) {
      const bgpConfigurations = cache.list('BGPConfiguration');
      plan = planPeers({
        nodeName: this.config.nodeName,
        nodes: cache.list('Node'),
        bgpConfigurations,
        bgpPeers: cache.list('BGPPeer'),
        workloads: cache.list('WorkloadEndpoint'),
      });
      this.applyLogLevel(bgpConfigurations);
      for (const w of plan.warnings)
        if (!this.plan?.warnings.includes(w)) this.log.warn({ warning: w }, 'peering plan');
    }
    // CALICO_ROUTER_ID (hash or an address) over the node's IPv4 address, as calico-node does. Null: the
    // Node has no IPv4 address and no CALICO_ROUTER_ID — IPv4 disabled (the plan says so): a running
    // Speaker keeps its identity and loses its peers; none is started.
    const routerId = routerIdFor(this.config.routerId, this.config.nodeName, plan.routerId);
    if (routerId !== null) {
      const identity: SpeakerIdentity = {
        routerId,
        localAs: plan.localAsNumber,
        listenAddress: plan.bindAddress ?? '0.0.0.0',
        listenPort: plan.listenPort,
        clusterId: plan.clusterId ?? null,
      };
      try {
        await this.keeper.ensureIdentity(identity);
      } catch (error) {
        // Re-plan from the datastore next time (not from this plan); the keeper tries again by itself.
        this.plan = null;
        throw error;
      }
    }
    this.plan = plan;
    const pools = cache.list('IPPool');
    const subnet = nodeSubnet(
      cache.list('Node').find((n) => n.metadata.name === this.config.nodeName),
      this.ip,
    );
    const previousContext = this.keeper.importContext;
    if (guardChanged)
      this.keeper.importContext = importContextOf(
        cache,
        this.config.nodeName,
        subnet ?? (this.ip ? `${this.ip.address}/${this.ip.prefixLength}` : undefined),
        this.deps.controlPlane ?? [],
      );
    if (peeringChanged || this.passwords.empty) await this.resolvePasswords(plan);
    // A peer whose password cannot be read is not started at all: never a session without it.
    const startable = plan.peers.filter((p) => this.passwords.problem(p) === undefined);
    const bgpConfigurations = cache.list('BGPConfiguration');
    const hostInterface = this.ip?.hostInterface ?? null;
    this.keeper.setPeers(startable, {
      pools,
      // A route reflector passes its clients' service routes on (./service-routes.ts).
      serviceRanges: serviceExportRanges(bgpConfigurations, plan.clusterId !== undefined),
      bgpFilters: cache.list('BGPFilter'),
      localAs: plan.localAsNumber,
      subnet,
      // BGPFilter `interface`: a next hop on the node's own subnet leaves through the host interface.
      interfaceOf: (address) =>
        hostInterface !== null && subnet !== undefined && insideSubnetOf(subnet, address) ? hostInterface : undefined,
      passwordOf: (p) => this.passwords.passwordOf(p),
    });
    const prefixes = originatedPrefixes({
      nodeName: this.config.nodeName,
      pools,
      blocks: cache.list('IPAMBlock'),
      affinities: cache.list('BlockAffinity'),
      workloads: cache.list('WorkloadEndpoint'),
    });
    this.blocks = prefixes;
    const node = cache.list('Node').find((n) => n.metadata.name === this.config.nodeName);
    const services = this.services.routes(node?.metadata.labels ?? {}, bgpConfigurations);
    this.keeper.setOriginated([...prefixes, ...services], this.ip!.address, bgpConfigurations);
    if (guardChanged) this.keeper.rejudge(previousContext, plan);
    this.updateDataplane();
    this.updatePolicy();
    this.ensureTunnelAddressLive();
    this.vxlanTunnel.poke(
      cache.list('Node').find((n) => n.metadata.name === this.config.nodeName),
      pools,
    );
    this.metrics.observeWatchLag(cache.lagSeconds());
    if (changeAt !== null) this.metrics.observeConvergence(Math.max(0, this.clock.now() - changeAt) / 1000);
  }

  /** CALICO_NETWORKING_BACKEND=vxlan: no BGP speaker at all; felix's routes come from the datastore alone (exact at once). */
  private replanWithoutBgp(cache: ResourceCache, changeAt: number | null): void {
    const pools = cache.list('IPPool');
    this.blocks = originatedPrefixes({
      nodeName: this.config.nodeName,
      pools,
      blocks: cache.list('IPAMBlock'),
      affinities: cache.list('BlockAffinity'),
      workloads: cache.list('WorkloadEndpoint'),
    });
    this.updateDataplane();
    this.dataplane?.bgpSettled();
    this.updatePolicy();
    this.ensureTunnelAddressLive();
    this.vxlanTunnel.poke(
      cache.list('Node').find((n) => n.metadata.name === this.config.nodeName),
      pools,
    );
    if (changeAt !== null) this.metrics.observeConvergence(Math.max(0, this.clock.now() - changeAt) / 1000);
  }

  /** Reads the passwords the plan's peers use (./passwords.ts); a change restarts the kernel drop count. */
  private async resolvePasswords(plan: PeeringPlan): Promise<boolean> {
    const changed = await this.passwords.resolve(plan.peers);
    if (changed) this.drops.rebase();
    return changed;
  }

  /** A Secret may have changed: re-read the passwords in use; re-plan (re-key only those peers) if one did. */
  private async refreshPasswords(): Promise<void> {
    const plan = this.plan;
    if (!plan || this.stopping || !plan.peers.some((p) => p.password)) return;
    if (await this.resolvePasswords(plan)) this.scheduleReplan();
  }

  /** A pool switched to or from IPIP while we run: allocate or release our tunnel address now, not at the next restart. */
  private ensureTunnelAddressLive(): void {
    const cache = this.cache;
    if (cache === null || this.tunnelAddressRunning || this.stopping) return;
    const node = cache.list('Node').find((n) => n.metadata.name === this.config.nodeName);
    if (!node || !ipipTunnelNeedsWork(node.spec, cache.list('IPPool'), node.metadata.labels ?? {})) return;
    this.tunnelAddressRunning = true;
    void ensureTunnelAddress(this.bootstrapContext())
      .catch((error: unknown) =>
        this.log.warn(
          { err: errorText(error) },
          'could not allocate the IPIP tunnel address; trying again on the next change',
        ),
      )
      .finally(() => (this.tunnelAddressRunning = false));
  }

  private applyLogLevel(configs: ReadonlyArray<Resource<'BGPConfiguration'>>): void {
    if (this.logLevelFromEnv) return;
    const severity =
      configs.find((c) => c.metadata.name === `node.${this.config.nodeName}`)?.spec.logSeverityScreen ??
      configs.find((c) => c.metadata.name === 'default')?.spec.logSeverityScreen;
    const level = levelOfSeverity(severity);
    if (this.log.level !== level) {
      this.log.info({ level }, 'log level from BGPConfiguration logSeverityScreen');
      this.log.level = level;
    }
  }

  // ---- the kernel dataplane (felix) and network policy ------------------------------------------------------

  private startDataplane(): void {
    const started = startKernelDataplane(this.config, this.deps, this.log, this.clock);
    this.dataplane = started?.dataplane ?? null;
    this.policy = started?.policy ?? null;
  }

  /** felix's input from the cache and the BGP routes (./dataplane-input.ts). */
  private updateDataplane(): void {
    const { dataplane, cache, ip } = this;
    if (dataplane === null || cache === null || ip === null || this.stopping) return;
    dataplane.update(
      dataplaneInput({
        nodeName: this.config.nodeName,
        node: ip,
        cache,
        bgpRoutes: this.keeper.rows(),
        peers: this.plan?.peers ?? [],
        bgpPortGuard: this.config.bgpPortGuard,
        ...(this.config.ipipMtu !== undefined ? { ipipMtu: this.config.ipipMtu } : {}),
        ...(this.config.vxlanMtu !== undefined ? { vxlanMtu: this.config.vxlanMtu } : {}),
        interfaceMtu: this.deps.interfaceMtu ?? sysfsInterfaceMtu,
      }),
    );
  }

  /** NetworkPolicy: the cache's policies, namespaces, workloads and nodes to this node's nftables filter. */
  private updatePolicy(): void {
    const cache = this.cache;
    if (this.policy === null || cache === null || this.stopping) return;
    this.policy.update({
      policies: cache.list('NetworkPolicy'),
      namespaces: cache.list('Namespace'),
      workloadEndpoints: cache.list('WorkloadEndpoint'),
      nodes: cache.list('Node'),
    });
  }

  /** Loc-RIB changes arrive per UPDATE: one recalculation per turn of the event loop is plenty. */
  private scheduleDataplaneUpdate(): void {
    if (this.dataplane === null || this.dataplaneUpdate !== null || this.stopping) return;
    this.dataplaneUpdate = setImmediate(() => {
      this.dataplaneUpdate = null;
      this.contained('updating the kernel routes', () => this.updateDataplane());
    });
  }

  /**
   * Runs work started by an event or a timer (nobody awaits it): a throw is logged and kept as the last
   * error instead of reaching the process; the next change or resync runs the work again.
   */
  private contained(what: string, action: () => void): void {
    try {
      action();
    } catch (error) {
      this.lastError = `${what} failed: ${errorText(error)}`;
      this.log.error({ err: errorText(error), during: what }, 'agent: a step failed; the next change tries again');
    }
  }
}
