// The agent's BGP Speaker, kept: its identity, the peer set and the originated routes the agent asks for,
// the events the agent acts on, and when BGP has settled after a start. What one planned peer becomes for
// the Speaker (its PeerSpec and BGPFilter hooks) is ./peer-specs.ts; the connection tracking for a
// graceful swap is ./connection-tracker.ts.
//
// Why this is hard:
// - A new router id, AS, listen address or cluster id needs a new Speaker (BGP has no way to change them
//   on a session). That swap is done as a graceful restart (RFC 4724): the old sessions' connections are
//   dropped without NOTIFICATION, so peers (GR helpers) keep our routes as stale; the new Speaker starts
//   "restarting" (R bit, deferred selection). Meanwhile rows() keeps showing the old Loc-RIB's routes,
//   marked stale, for prefixes the new one has not learned yet — the forwarding state we preserve.
// - A Speaker that does not start (address in use) is tried again by itself, 1 s, 2 s, … 30 s apart.
// - Live reconfiguration must not flap sessions. Speaker.setPeers restarts a peer whose spec changed
//   except in its policy hooks alone (those it applies in place: bgp/soft-reconfig.ts), and compares hooks
//   by identity, so the export filter is memoised on the pools that shape it, and each peer's BGPFilter
//   hooks on the filters' specs: an unrelated change gives no new hooks at all.
// - Felix may delete last run's remote routes only when BGP has re-learned what it will (`onSettled`):
//   see settleIfDone. Every timer here runs on the injected clock.

import {
  BGP_PORT,
  type Clock,
  type TimerHandle,
  parseIpv4,
  formatPrefix,
  parsePrefix,
  Speaker,
  type ImportJudge,
  type OriginatedRoute,
  type PeerSpec,
  type RibEntry,
  type SpeakerConfig,
  Origin,
  type Prefix,
} from '../../bgp/index.js';
import { missingFilters } from './bgp-filter.js';
import type { Resource } from '../resources/index.js';
import type { Logger } from '../log.js';
import { calicoExportFilter, prefixCommunities } from './advertise.js';
import { ConnectionTracker } from './connection-tracker.js';
import { importContextChanges, judgeImport, peerKindOf, type ImportContext } from './import-guard.js';
import type { AgentMetrics } from './metrics.js';
import { errorText } from './error-text.js';
import { filterHooks, toPeerSpec, type PeerHooks } from './peer-specs.js';
import { refusedRow, routeRow } from './status.js';
import type { DesiredPeer, PeeringPlan, Readiness, RouteRow } from './types.js';

export { importContextOf, insideSubnetOf, nodeSubnet } from './peer-specs.js';

/** The part of Speaker the agent uses (tests pass a fake). */
export type SpeakerLike = Pick<
  Speaker,
  'start' | 'stop' | 'setPeers' | 'setOriginated' | 'peerStatus' | 'bestRoutes' | 'on'
> &
  Partial<Pick<Speaker, 'refusedRoutes' | 'rejudge'>>;

/** Graceful restart we advertise: restart time (RFC 4724 §3) and how long we defer selection after a start. */
export const GRACEFUL_RESTART = { restartTime: 120, deferralMs: 30_000 } as const;

export interface SpeakerIdentity {
  routerId: string;
  localAs: number;
  listenAddress: string;
  listenPort: number;
  clusterId: string | null;
}

function sameIdentity(a: SpeakerIdentity, b: SpeakerIdentity): boolean {
  return (
    a.routerId === b.routerId &&
    a.localAs === b.localAs &&
    a.listenAddress === b.listenAddress &&
    a.listenPort === b.listenPort &&
    a.clusterId === b.clusterId
  );
}

export interface SpeakerKeeperOptions {
  log: Logger;
  clock: Clock;
  metrics: AgentMetrics;
  /** Default: a real Speaker over TCP. */
  createSpeaker?: ((config: SpeakerConfig) => SpeakerLike) | undefined;
  /** Speaker connect retry (ms, default 2000). */
  connectRetryMs?: number | undefined;
  /** TORTIE_BGP_MAX_PREFIXES. */
  maxPrefixes?: number | undefined;
  /** The agent's warnings (node status): a Speaker that does not start leaves one until one starts. */
  warnings: Set<string>;
  /** The agent's `contained`: runs work nobody awaits (Speaker events, timers), a throw logged and kept. */
  contained: (what: string, action: () => void) => void;
  /** The peers of the current plan (whose End-of-RIB settles BGP). */
  plannedPeers: () => readonly DesiredPeer[];
  /** Whether anyone waits for BGP to settle (the kernel dataplane): only then is the deferral timer armed. */
  settleWatched: () => boolean;
  /** BGP has settled: felix may remove last run's routes no longer wanted. */
  onSettled: () => void;
  /** The Loc-RIB (or its readiness) changed: recalculate the kernel routes. */
  onRoutesChanged: () => void;
  /** Time to try starting a Speaker again (the agent re-plans). */
  onRetry: () => void;
  stopping: () => boolean;
}

export class SpeakerKeeper {
  private speakerNow: SpeakerLike | null = null;
  private tracker: ConnectionTracker | null = null;
  private identityNow: SpeakerIdentity | null = null;
  /** The previous Speaker's best routes while a graceful swap is under way (see header). */
  private retained: RibEntry[] | null = null;
  /** Peers seen Established since the current Speaker started (readiness), by `endpoint`. */
  private readonly everEstablished = new Set<string>();
  /** Peers whose End-of-RIB this Speaker received (felix keeps last run's routes until every peer's is in), by `endpoint`. */
  private readonly endOfRibFrom = new Set<string>();
  private speakerReady = false;
  private settleTimer: TimerHandle | null = null;
  /** (peer, reason) pairs already logged at info by this Speaker: later refusals of the pair go to debug. */
  private readonly refusalsLogged = new Set<string>();
  private exportFilterCache: { key: string; filter: PeerSpec['exportFilter'] } | null = null;
  /** Per peer (by name): its BGPFilter hooks and what they were made from (see hooksFor). */
  private readonly hooksCache = new Map<
    string,
    { key: string; defaultExport: PeerSpec['exportFilter']; hooks: PeerHooks }
  >();
  /** What the import judge judges by (null until the agent's first pass sets it; see rejudge). */
  importContext: ImportContext | null = null;
  /** Import protection (./import-guard.ts) is the Speaker's import judge, always on. */
  private readonly importJudge: ImportJudge = (route) => {
    const context = this.importContext;
    if (context === null) return null;
    return judgeImport(
      { prefix: route.prefix, nextHop: route.attrs.nextHop },
      peerKindOf(route.source.address, context),
      context,
    );
  };
  /** Consecutive failures to start a BGP speaker, and the timer of the next try (1 s, 2 s, … 30 s). */
  private failures = 0;
  private retry: TimerHandle | null = null;

  constructor(private readonly options: SpeakerKeeperOptions) {}

  get speaker(): SpeakerLike | null {
    return this.speakerNow;
  }

  get identity(): SpeakerIdentity | null {
    return this.identityNow;
  }

  /**
   * A Speaker with this identity, started: the current one when it has it, else a new one (a graceful swap).
   * A Speaker that does not start is tried again later by itself (onRetry); the error is thrown.
   */
  async ensureIdentity(identity: SpeakerIdentity): Promise<void> {
    if (this.speakerNow && this.identityNow && sameIdentity(identity, this.identityNow)) return;
    try {
      await this.replaceSpeaker(identity);
    } catch (error) {
      this.retryLater();
      throw error;
    }
    this.failures = 0;
    for (const w of [...this.options.warnings]) if (w.startsWith('BGP speaker: ')) this.options.warnings.delete(w);
  }

  /**
   * The plan's peers (those whose password could be read) as the Speaker's peer set. `serviceRanges`: learned
   * routes inside these are exported too (a route reflector's service ranges, ./service-routes.ts).
   */
  setPeers(
    peers: readonly DesiredPeer[],
    context: {
      pools: Array<Resource<'IPPool'>>;
      serviceRanges?: readonly string[];
      bgpFilters?: ReadonlyArray<Resource<'BGPFilter'>>;
      localAs: number;
      subnet: string | undefined;
      interfaceOf?: (address: number) => string | undefined;
      passwordOf: (peer: DesiredPeer) => string | undefined;
    },
  ): void {
    const filter = this.exportFilterFor(context.pools, context.serviceRanges ?? []);
    const hooksFor = (p: DesiredPeer): PeerHooks =>
      this.hooksFor(p, filter, context.bgpFilters ?? [], context.interfaceOf ?? (() => undefined));
    this.speakerNow?.setPeers(
      peers.map((p) => toPeerSpec(p, hooksFor(p), context.localAs, context.subnet, context.passwordOf(p))),
    );
    this.filterProblems = peers.flatMap((p) =>
      missingFilters(p.filters ?? [], context.bgpFilters ?? []).map(
        (name) =>
          `BGPPeer ${p.fromResource ?? p.name}: spec.filters names BGPFilter ${name}, which does not exist; the peer's other filters apply`,
      ),
    );
  }

  /** Problems with the peers' BGPFilters (a filter named but missing), for `node status`. */
  filterProblems: string[] = [];

  /**
   * A peer's hooks, the same function objects while what shapes them is the same (the Speaker re-applies
   * changed hooks to the live session: bgp/soft-reconfig.ts): its filters' names and specs, eBGP or not,
   * and the default export filter.
   */
  private hooksFor(
    peer: DesiredPeer,
    defaultExport: PeerSpec['exportFilter'],
    filters: ReadonlyArray<Resource<'BGPFilter'>>,
    interfaceOf: (address: number) => string | undefined,
  ): PeerHooks {
    const names = peer.filters ?? [];
    if (names.length === 0 || defaultExport === undefined) return { exportFilter: defaultExport };
    const ebgp = peer.asNumber !== peer.localAsNumber;
    const used = names.map((name) => filters.find((f) => f.metadata.name === name)?.spec ?? null);
    const key = JSON.stringify([names, used, ebgp]);
    const cached = this.hooksCache.get(peer.name);
    if (cached !== undefined && cached.key === key && cached.defaultExport === defaultExport) return cached.hooks;
    const hooks = filterHooks(names, filters, ebgp, defaultExport, interfaceOf);
    this.hooksCache.set(peer.name, { key, defaultExport, hooks });
    return hooks;
  }

  /** Our prefixes, next hop our address; BGPConfiguration prefixAdvertisements: Calico's apply_communities(). */
  setOriginated(
    prefixes: readonly string[],
    nextHopAddress: string,
    bgpConfigurations: Array<Resource<'BGPConfiguration'>>,
  ): void {
    const nextHop = parseIpv4(nextHopAddress);
    this.speakerNow?.setOriginated(
      prefixes.map((cidr): OriginatedRoute => {
        const prefix = parsePrefix(cidr);
        return {
          prefix,
          attrs: { origin: Origin.IGP, nextHop, asPath: [], ...prefixCommunities(prefix, bgpConfigurations) },
        };
      }),
    );
  }

  /** The import context changed (from `previous`): the routes it can change the verdict of are judged again. */
  rejudge(previous: ImportContext | null, plan: PeeringPlan): void {
    const speaker = this.speakerNow;
    const next = this.importContext;
    if (speaker?.rejudge === undefined || next === null || next === previous) return;
    const changes = importContextChanges(
      previous,
      next,
      plan.peers.map((p) => parseIpv4(p.address)),
    );
    if (changes !== 'all' && changes.length === 0) return;
    const changed = speaker.rejudge(changes === 'all' ? undefined : changes);
    if (changed > 0) {
      this.options.log.info(
        { routes: changed, scope: changes === 'all' ? 'all' : `${changes.length} block(s)` },
        'import protection: routes judged again after a change in the cluster',
      );
      this.options.onRoutesChanged();
    }
  }

  /** The Loc-RIB's best routes; during a graceful swap, plus the retained ones not yet re-learned (stale). */
  rows(): RouteRow[] {
    const current = this.speakerNow?.bestRoutes() ?? [];
    const rows = current.map((e) => routeRow(e));
    if (this.retained) {
      const have = new Set(rows.map((r) => r.prefix));
      for (const old of this.retained) if (!have.has(formatPrefix(old.prefix))) rows.push(routeRow(old, true));
    }
    return rows;
  }

  /** Every route import protection refused (best: false, with the reason). */
  refusedRows(): RouteRow[] {
    return (this.speakerNow?.refusedRoutes?.() ?? []).map(refusedRow);
  }

  /** Calico's BIRD readiness: no peers → ready; just started → all Established; afterwards at least one. */
  readiness(started: boolean, ipv4Disabled = false): Readiness {
    // IPv4 disabled (no address, no CALICO_ROUTER_ID): no Speaker and no peers, which Calico calls ready.
    if (started && !this.speakerNow && ipv4Disabled) return { ready: true };
    if (!started || !this.speakerNow) return { ready: false, reason: 'the agent is starting' };
    const peers = this.speakerNow.peerStatus();
    if (peers.length === 0) return { ready: true };
    const up = peers.filter((p) => p.state === 'Established');
    for (const p of up) this.everEstablished.add(endpoint(p.address, p.port));
    const allSeen = peers.every((p) => seen(this.everEstablished, p.address, p.port));
    if (!allSeen && up.length < peers.length) {
      const down = peers.filter((p) => p.state !== 'Established').map((p) => `${p.address} (${p.state})`);
      return { ready: false, reason: `BGP not established with ${down.join(', ')}` };
    }
    if (up.length === 0) return { ready: false, reason: `no BGP session is established (${peers.length} configured)` };
    return { ready: true };
  }

  /**
   * A graceful stop's first step, before any await (a peer reconnecting meanwhile would otherwise get a
   * Cease after all): every connection closed without NOTIFICATION, then the Speaker stopped.
   */
  async dropGracefully(): Promise<void> {
    const speaker = this.speakerNow;
    if (!speaker) return;
    this.options.log.info('stopping gracefully: BGP connections closed without NOTIFICATION, peers keep our routes');
    this.speakerNow = null;
    this.tracker?.dropAll();
    await speaker
      .stop()
      .catch((e: unknown) => this.options.log.warn({ err: errorText(e) }, 'stopping the BGP speaker'));
  }

  /** No more retries and no settle deadline (the agent is stopping). */
  clearTimers(): void {
    if (this.retry !== null) this.options.clock.clearTimeout(this.retry);
    this.retry = null;
    if (this.settleTimer !== null) this.options.clock.clearTimeout(this.settleTimer);
    this.settleTimer = null;
  }

  /** Stops the Speaker (Cease to every peer); nothing when dropGracefully ran. */
  async stop(): Promise<void> {
    const speaker = this.speakerNow;
    this.speakerNow = null;
    if (speaker)
      await speaker
        .stop()
        .catch((e: unknown) => this.options.log.warn({ err: errorText(e) }, 'stopping the BGP speaker'));
  }

  private retryLater(): void {
    if (this.retry !== null || this.options.stopping()) return;
    const delay = Math.min(30_000, 1000 * 2 ** this.failures++);
    this.options.log.warn({ retryInMs: delay }, 'BGP speaker did not start; trying again');
    this.retry = this.options.clock.setTimeout(() => {
      this.retry = null;
      this.options.onRetry();
    }, delay);
    unref(this.retry);
  }

  /**
   * The same function object while the pools and service ranges that shape it are the same (Speaker compares
   * hooks by identity). Routes we originate (blocks, borrowed /32s, service routes) pass unless a
   * disableBGPExport pool refuses them; the service routes we originate come and go with endpoints without
   * touching the filter, so that never re-runs export. A new filter is applied without a session reset.
   */
  private exportFilterFor(
    pools: Array<Resource<'IPPool'>>,
    serviceRanges: readonly string[],
  ): PeerSpec['exportFilter'] {
    const key = JSON.stringify([
      pools
        .map((p) => [p.metadata.name, p.spec.cidr, p.spec.disabled ?? false, p.spec.disableBGPExport ?? false])
        .sort(),
      serviceRanges,
    ]);
    if (this.exportFilterCache?.key === key) return this.exportFilterCache.filter;
    const allowed = calicoExportFilter(pools, serviceRanges);
    const filter: PeerSpec['exportFilter'] = (route) =>
      allowed(route.prefix, route.source.local === true) ? route : null;
    this.exportFilterCache = { key, filter };
    return filter;
  }

  /** A Speaker with a new identity; an old one is stopped as a graceful restart (see header). */
  private async replaceSpeaker(identity: SpeakerIdentity): Promise<void> {
    const { log, contained } = this.options;
    const old = this.speakerNow;
    const oldTracker = this.tracker;
    if (old) {
      log.info({ from: this.identityNow, to: identity }, 'BGP identity changed: restarting the speaker gracefully');
      this.retained = old.bestRoutes();
      oldTracker?.dropAll();
      await old.stop();
    }
    const tracker = new ConnectionTracker();
    const config: SpeakerConfig = {
      routerId: parseIpv4(identity.routerId, 'router id'),
      localAs: identity.localAs,
      listen: { address: identity.listenAddress, port: identity.listenPort },
      ...(identity.clusterId !== null ? { clusterId: parseIpv4(identity.clusterId, 'routeReflectorClusterID') } : {}),
      gracefulRestart: {
        restartTime: GRACEFUL_RESTART.restartTime,
        restarting: true,
        deferralMs: GRACEFUL_RESTART.deferralMs,
      },
      connectRetryMs: this.options.connectRetryMs ?? 2000,
      ...(this.options.maxPrefixes !== undefined ? { maxPrefixes: this.options.maxPrefixes } : {}),
      clock: this.options.clock,
      transport: tracker.transport,
      acceptor: tracker.acceptor,
      logger: log.child({ component: 'bgp' }),
      importJudge: this.importJudge,
    };
    const speaker = (this.options.createSpeaker ?? ((c) => new Speaker(c)))(config);
    // The Speaker calls these from inside its sessions: a throw here must not reach them (`contained`).
    speaker.on('state', (event) =>
      contained('a BGP session state change', () => {
        if (event.to === 'Established') this.everEstablished.add(endpoint(event.peer, event.port));
        log.info(
          { peer: event.peer, from: event.from, to: event.to, ...(event.reason ? { reason: event.reason } : {}) },
          'BGP session state',
        );
        this.observeSessions();
      }),
    );
    speaker.on('ready', () =>
      contained('the BGP speaker becoming ready', () => {
        if (this.retained) log.info('graceful restart complete: routes re-learned');
        this.retained = null;
        this.speakerReady = true;
        this.settleIfDone();
        this.options.onRoutesChanged();
      }),
    );
    speaker.on('endOfRib', (event) =>
      contained('an End-of-RIB', () => {
        this.endOfRibFrom.add(endpoint(event.peer, event.port));
        this.settleIfDone();
      }),
    );
    speaker.on('update', () => contained('a BGP update', () => this.options.onRoutesChanged()));
    speaker.on('refused', (event) => contained('an import refusal', () => this.onRefused(event)));
    this.refusalsLogged.clear();
    this.everEstablished.clear();
    this.endOfRibFrom.clear();
    this.speakerReady = false;
    // Felix's retention after a start ends at the latest with the selection deferral (a peer that never
    // comes back must not keep a dead node's routes forever).
    if (this.settleTimer === null && this.options.settleWatched()) {
      this.settleTimer = this.options.clock.setTimeout(() => {
        log.info('BGP did not settle within the graceful-restart deferral: routes no longer wanted may go now');
        contained('settling the kernel routes', () => this.options.onSettled());
      }, GRACEFUL_RESTART.deferralMs);
      unref(this.settleTimer);
    }
    this.speakerNow = speaker;
    this.tracker = tracker;
    this.identityNow = identity;
    try {
      await speaker.start();
    } catch (error) {
      // Not listening (address in use...): forget the identity so the next change or resync tries again.
      this.identityNow = null;
      this.options.warnings.add(`BGP speaker: ${errorText(error)}`);
      throw error;
    }
  }

  /**
   * Felix may delete last run's remote routes only when BGP has re-learned what it will: the Speaker is
   * ready AND every planned peer has sent its End-of-RIB. The Speaker's own readiness waits only briefly
   * for peers that are not up yet (its deferral is about *sending*); a passive session toward a peer
   * whose connect-retry timer is still running can come up seconds later, and deleting that peer's
   * routes meanwhile would blackhole its pods. Capped by the deferral timer set when the Speaker starts.
   */
  private settleIfDone(): void {
    if (!this.options.settleWatched() || !this.speakerReady) return;
    if (!this.options.plannedPeers().every((p) => seen(this.endOfRibFrom, p.address, p.port))) return;
    if (this.settleTimer !== null) this.options.clock.clearTimeout(this.settleTimer);
    this.settleTimer = null;
    this.options.onSettled();
  }

  private onRefused(event: { peer: string; port?: number; prefix: Prefix; reason: string }): void {
    this.options.metrics.observeImportRefused(peerLabel(event.peer, event.port), event.reason);
    const pair = `${event.peer}|${event.reason}`;
    const fields = { peer: event.peer, prefix: formatPrefix(event.prefix), reason: event.reason };
    const by = event.reason.startsWith('filter ') ? 'BGPFilter' : 'import protection';
    if (this.refusalsLogged.has(pair)) {
      this.options.log.debug(fields, `${by}: route refused`);
      return;
    }
    this.refusalsLogged.add(pair);
    this.options.log.info(
      fields,
      `${by}: route refused (further refusals of this peer for this reason are logged at debug)`,
    );
  }

  /** On every session state change: only what the metrics need, not the whole status (no per-route scan). */
  private observeSessions(): void {
    const peers = this.speakerNow?.peerStatus({ routeDetail: false }) ?? [];
    this.options.metrics.observeSessions(
      peers.map((p) => ({
        address: peerLabel(p.address, p.port),
        bgpState: p.state,
        routesReceived: p.routesReceived,
        routesAdvertised: p.routesAdvertised,
      })),
    );
  }
}

/** A real timer must not keep the process alive by itself (a fake clock's handle has no unref). */
function unref(handle: TimerHandle): void {
  (handle as { unref?: () => void }).unref?.();
}

/** A peer as the readiness sets hold it: address and port (two peers may share an address), or the address alone when an event had no port. */
function endpoint(address: string, port: number | undefined): string {
  return port === undefined ? address : `${address}:${port}`;
}

/**
 * A peer's metrics label: its key, the address, with the port when it is not 179 ("127.0.0.2:1790"), so two
 * peers on one address (different ports) are two series.
 */
function peerLabel(address: string, port: number | undefined): string {
  return port === undefined || port === BGP_PORT ? address : `${address}:${port}`;
}

/** Whether the peer at address:port is in `set` (or its address, recorded from an event without a port). */
function seen(set: ReadonlySet<string>, address: string, port: number): boolean {
  return set.has(`${address}:${port}`) || set.has(address);
}
