// DOC: the Speaker is one BGP router: sessions to its peers and the routing core between them.
//
//   session(P) ──UPDATE──▶ Adj-RIB-In(P) ──import policy──▶ Loc-RIB (best path) ──export policy(Q)──▶
//   Adj-RIB-Out(Q): desired vs advertised ──pending()──▶ packed UPDATEs ──▶ session(Q)
//
// - Peers are a desired set (`setPeers`): a peer added starts, a removed one gets Cease/Peer De-configured,
//   one whose parameters changed restarts with Cease/Other Configuration Change, the rest are left alone;
//   one whose import or export policy alone changed keeps its session (./soft-reconfig.ts).
// - Originated routes (`setOriginated`) enter the Loc-RIB as local candidates, which win over learned ones.
// - Every peer's Adj-RIB-Out is kept equal to "what it should have" at all times, whether Established or
//   not; what is sent is only the difference to what it was sent. Peers with identical export (same AS,
//   eBGP-ness, RR client, next-hop mode, local address, export filter; an eBGP peer one IP hop away gets
//   third-party next hops that depend on its subnet and address, so it is in a group of its own) form an
//   update group
//   (./rib/update-group.ts): one Adj-RIB-Out and one encoding of each UPDATE for all of them, and per peer
//   only the routes it sent us, which it never gets back. A new session, or a ROUTE-REFRESH
//   (RFC 2918), resets "advertised" so the whole table goes again; End-of-RIB (RFC 4724 §2) follows the
//   initial table. Sends are coalesced: every change made while handling I/O goes out in one flush (./export.ts).
// - Route reflection (RFC 4456), iBGP split horizon and the eBGP rules live in ./rib/policy.ts; this file
//   only wires them. A peer's `subnet` (ours, on the network the session runs over) tells the policy which
//   eBGP peers are one IP hop away (RFC 4271 §5.1.3 (2): third-party next hops toward them).
// - Graceful restart (RFC 4724), both roles (what happens to one peer's routes is the state machine in
//   ./retention.ts; the restarting side's deferral is ./deferral.ts):
//   receiving: when a peer that advertised GR for IPv4 unicast drops without a NOTIFICATION, its routes
//   stay (stale) in Adj-RIB-In and Loc-RIB, and are still exported, until it comes back and sends
//   End-of-RIB, or its restart time passes, or it comes back without the F bit;
//   restarting (`gracefulRestart.restarting`): the first OPEN to each peer has the R bit, and no route is
//   sent to anyone until every GR peer sent End-of-RIB or the selection deferral timer fires (§4.1), so we
//   never withdraw what we are about to re-learn. Without `gracefulRestart`, tortie is a GR helper only.
// - Make-before-break on reconfiguration, both sides (./retention.ts again): a peer removed (or restarted) by `setPeers` leaves its
//   routes stale for `deconfiguredLingerMs` unless another peer offers the prefix; and an iBGP peer that
//   ends the session with Cease / Peer De-configured (it took us out of its configuration on purpose: the
//   mesh turned off on its side first, a reflector taking over) is treated the same way, so the side that
//   hears of the change second has no gap either. RFC 4271 withdraws on every NOTIFICATION; this one
//   exception keeps paths that still forward (inside the AS their next hops are the nodes that own the
//   blocks, not the peer) until a replacement arrives, the peer is back and sends End-of-RIB, or the linger
//   ends. Not for eBGP: routers send the same Cease when they shut down (GoBGP's Stop does), and their
//   routes' next hop is the router itself. Any other NOTIFICATION withdraws at once.
// - An import judge (`SpeakerConfig.importJudge`, ./import-judge.ts; the node agent's import protection) may
//   refuse a route after the RFC import rules, giving a reason code. A refused route stays in the peer's
//   Adj-RIB-In, marked with its reason (`refusedRoutes()`, the 'refused' event), and never enters the Loc-RIB;
//   `rejudge()` asks the judge again (all routes, or those inside some prefixes) when what it judges by changed.
// - Peers are keyed by address and port (`endpointOf`): two peers on one address with different ports are two
//   sessions, and their routes two sources (./rib/route.ts `sourceId`). An inbound connection comes from an
//   ephemeral port, so it says only its address: it goes to the *inbound peer* of that address, the one with
//   the lowest port (a single peer on an address is its inbound peer, as before). That peer's TCP-MD5 key
//   and GTSM are the ones on the listener. Another peer on the same address is reached by the connections
//   we open (its own password on them); its router must not connect to us itself (BIRD `passive`, FRR
//   `neighbor … passive`), or its connection lands on the inbound peer — as BIRD does with two protocols to
//   one address: it takes the first.
// - A connection collision (RFC 4271 §6.8) runs the inbound connection in a second session until an
//   OPEN gives the peer's BGP identifier; the connection opened by the higher identifier survives.
// - Limits across messages: a peer's Adj-RIB-In holds at most `maxPrefixes` prefixes (what it sent, before
//   import policy; a route treated as withdraw (RFC 7606) is not held, so not counted): one more and the
//   session ends with Cease / Maximum Number of Prefixes Reached (RFC 4486, data AFI, SAFI, limit) and
//   stays down — its inbound connections refused — for `prefixLimitRestartMs` (BIRD's `receive limit …
//   action restart`, FRR's `maximum-prefix N restart M`). A ROUTE-REFRESH is answered at most once per
//   `routeRefreshIntervalMs`; more in between are coalesced into one answer at the end of the interval.
//   The session bounds its send queue and damps reconnects after errors (./session.ts, ./fsm.ts).
//
// Why this is hard: sessions come and go while routes change. Every peer must end up with exactly the
// desired set whatever the interleaving; nothing may go to a peer that is not Established; routes kept
// through a peer's restart must not be withdrawn and re-announced; and at 100k routes × several peers
// nothing may be copied per route per peer more than once.

import { EventEmitter } from 'node:events';
import { encodeEndOfRib } from './codec/index.js';
import { systemClock } from './clock.js';
import { acceptInbound, replaceSession, resolveCollision, type CollisionHost } from './collision.js';
import { SelectionDeferral, type DeferralPeer } from './deferral.js';
import { CeaseSubcode } from './errors.js';
import { UpdateGroups } from './export.js';
import { judgeImport, routesWithin, type RefusedRoute } from './import-judge.js';
import { formatIpv4, parseIpv4, prefixFromKey, prefixKey } from './ip.js';
import { tcpAcceptor, type ListenerHandle } from './listener.js';
import { hasIpv4Gr, type PeerEntry } from './peer-entry.js';
import { peerStatusRow, receivedRows, refusedRows, toRibEntry, type PeerStatus, type RibEntry } from './peer-report.js';
import {
  AdjRibIn,
  AttrTable,
  LocRib,
  Route,
  localSource,
  sourceId,
  type BestChange,
  type LocalSpeaker,
  type PeerPolicy,
  type RouteSource,
  type UpdateGroup,
} from './rib/index.js';
import {
  classifyNotification,
  INITIAL_RETENTION,
  lingersInPlace,
  retentionTransition,
  type RetentionEvent,
  type RetentionState,
} from './retention.js';
import { answerRefresh, cancelRefresh } from './route-refresh.js';
import { Session, type SessionConfig } from './session.js';
import { softReconfigure, type SoftReconfigHost } from './soft-reconfig.js';
import type { OriginatedRoute, SpeakerEvents } from './speaker-events.js';
import {
  endpointOf,
  normalizeSpec,
  policyOf,
  sameSpec,
  securityOf,
  sessionConfigFor,
  sourceAddress,
  validatePeerSpec,
  type LoggerLike,
  type NormalSpec,
  type PeerSpec,
  type SpeakerConfig,
  type SpeakerSettings,
} from './speaker-config.js';
import { tcpTransport, type Connection } from './transport.js';
import { Afi, Safi, type PathAttributes, type Prefix } from './types.js';

export type { NextHopMode } from './rib/index.js';
export type { ImportJudge, RefusedRoute } from './import-judge.js';
export { tcpAcceptor, type Acceptor, type ListenerHandle } from './listener.js';
export type { GracefulRestartOptions, LoggerLike, PeerSpec, SpeakerConfig } from './speaker-config.js';
export type { PeerStatus, RibEntry } from './peer-report.js';
export type { OriginatedRoute, SpeakerEvents } from './speaker-events.js';

const silentLogger: LoggerLike = { debug() {}, info() {}, warn() {}, error() {} };

export const DEFAULT_MAX_PREFIXES = 500_000;
export const DEFAULT_PREFIX_LIMIT_RESTART_MS = 60_000;
export const DEFAULT_ROUTE_REFRESH_INTERVAL_MS = 5000;

export class Speaker extends EventEmitter<SpeakerEvents> {
  private readonly config: SpeakerSettings;
  private readonly peers = new Map<string, PeerEntry>();
  private readonly table = new AttrTable();
  private readonly locRib = new LocRib(this.table);
  private readonly local: LocalSpeaker;
  private readonly localSource: RouteSource;
  /** Originated routes: prefix key → the canonical attribute set offered to the Loc-RIB. */
  private originated = new Map<number, PathAttributes>();
  private closeListener: ListenerHandle | null = null;
  private stopped = false;
  /** RFC 4724 §4.1 when restarting: nothing is sent until peers' End-of-RIB (./deferral.ts). */
  private readonly deferral: SelectionDeferral;
  /** The export side: update groups and the coalesced flush (./export.ts). */
  private readonly exports: UpdateGroups<PeerEntry>;
  /** Removed peers whose routes still linger (make-before-break), until their timer. */
  private readonly lingering = new Set<PeerEntry>();
  /** Peers whose routes linger in place because they de-configured us (`lingersInPlace`). */
  private lingeringInPlaceCount = 0;
  /** What ./collision.ts needs of this speaker. */
  private readonly collisions: CollisionHost;
  /** What ./soft-reconfig.ts needs of this speaker. */
  private readonly soft: SoftReconfigHost;

  constructor(config: SpeakerConfig) {
    super();
    this.config = {
      holdTime: 90,
      connectRetryMs: 5000,
      stalePathMs: 360_000,
      deconfiguredLingerMs: 10_000,
      maxPrefixes: DEFAULT_MAX_PREFIXES,
      prefixLimitRestartMs: DEFAULT_PREFIX_LIMIT_RESTART_MS,
      routeRefreshIntervalMs: DEFAULT_ROUTE_REFRESH_INTERVAL_MS,
      clock: systemClock,
      transport: tcpTransport,
      acceptor: tcpAcceptor,
      logger: silentLogger,
      ...config,
    };
    const address =
      config.listen && config.listen.address !== '0.0.0.0' ? parseIpv4(config.listen.address) : config.routerId;
    this.local = {
      asn: config.localAs,
      routerId: config.routerId,
      address,
      ...(config.clusterId !== undefined ? { clusterId: config.clusterId } : {}),
    };
    this.localSource = localSource(this.local);
    this.deferral = new SelectionDeferral(
      config.gracefulRestart,
      this.config.clock,
      () => this.deferralPeers(),
      (reason) => this.endDeferral(reason),
    );
    this.exports = new UpdateGroups<PeerEntry>(this.table, this.config.logger, {
      members: () => this.peers.values(),
      current: (entry) => this.peers.get(endpointOf(entry.spec)) === entry,
      deferring: () => this.deferral.active,
    });
    this.collisions = {
      routerId: this.config.routerId,
      logger: this.config.logger,
      newSession: (entry, passive) => {
        const session = new Session(this.sessionConfig(entry, passive));
        this.wire(entry, session);
        return session;
      },
      onEstablished: (entry) => this.onEstablished(entry),
    };
    this.soft = {
      localAs: this.config.localAs,
      table: this.table,
      locRib: this.locRib,
      judge: (entry, received) => this.judge(entry, received),
      propagate: (changes) => this.propagate(changes),
      groupFor: (policy, local) => this.groupFor(policy, local),
      leaveGroup: (entry) => this.exports.leave(entry),
      markDirty: (group) => this.exports.markDirty(group),
    };
  }

  /** Starts the listener (if any) and, when restarting, the selection deferral timer. */
  async start(): Promise<void> {
    const listen = this.config.listen;
    if (listen) {
      this.closeListener = await this.config.acceptor(listen.address, listen.port, (conn) => this.onInbound(conn));
      for (const entry of this.peers.values()) this.installSecurity(entry.spec.address);
    }
    if (!this.deferral.start()) this.emit('ready');
  }

  /** Makes the running sessions equal to `specs`; only peers whose parameters changed are restarted. */
  setPeers(specs: readonly PeerSpec[]): void {
    if (this.stopped) return;
    // Refuse a bad spec before anything changes (the error names the peer, the field and the value).
    for (const spec of specs) validatePeerSpec(spec);
    const desired = new Map(specs.map((s) => [endpointOf(s), normalizeSpec(s)]));
    for (const [endpoint, entry] of this.peers) {
      const want = desired.get(endpoint);
      if (!want) {
        this.removePeer(entry, CeaseSubcode.PEER_DECONFIGURED);
      } else if (!sameSpec(entry.spec, want) && !softReconfigure(this.soft, entry, want)) {
        // Only policy hooks changed: applied in place above (./soft-reconfig.ts); anything else resets.
        this.removePeer(entry, CeaseSubcode.OTHER_CONFIGURATION_CHANGE);
        this.addPeer(want);
      }
    }
    for (const [address, spec] of desired) if (!this.peers.has(address)) this.addPeer(spec);
    this.exports.scheduleFlush();
  }

  /** Replaces the set of originated routes; peers are sent the difference. */
  setOriginated(routes: readonly OriginatedRoute[]): void {
    const next = new Map<number, PathAttributes>();
    for (const r of routes)
      next.set(prefixKey(r.prefix), this.table.canonical({ ...r.attrs, asPath: r.attrs.asPath ?? [] }));
    const changes: BestChange[] = [];
    for (const [key, attrs] of next) {
      if (this.originated.get(key) === attrs) continue;
      const change = this.locRib.set(this.localSource, key, new Route(key, attrs as Route['attrs'], this.localSource));
      if (change) changes.push(change);
    }
    for (const key of this.originated.keys()) {
      if (next.has(key)) continue;
      const change = this.locRib.set(this.localSource, key, null);
      if (change) changes.push(change);
    }
    this.originated = next;
    this.propagate(changes);
  }

  /**
   * Asks a peer to send its routes again (RFC 2918). False when it is not Established or did not offer it.
   * Without a port: the inbound peer of that address (the only one, unless several share it).
   */
  refresh(address: string, port?: number): boolean {
    return this.peerAt(address, port)?.session.sendRouteRefresh() ?? false;
  }

  /** The peer at address:port; without a port, the inbound peer of the address (the lowest port there). */
  private peerAt(address: string, port?: number): PeerEntry | undefined {
    if (port !== undefined) return this.peers.get(endpointOf({ address, port }));
    let found: PeerEntry | undefined;
    for (const entry of this.peers.values()) {
      if (entry.spec.address === address && (found === undefined || entry.spec.port < found.spec.port)) found = entry;
    }
    return found;
  }

  /**
   * The peers and their sessions. `routesAccepted` and `staleRoutes` look at every received route; callers
   * that only need states and counts (metrics, on every state change) pass `{ routeDetail: false }` and
   * get 0 there.
   */
  peerStatus(options: { routeDetail?: boolean } = {}): PeerStatus[] {
    const detail = options.routeDetail ?? true;
    return [...this.peers.values()].map((entry) => peerStatusRow(entry, this.locRib, detail));
  }

  /** Routes received from one peer (its Adj-RIB-In, before import policy); without a port as `refresh`. */
  receivedRoutes(address: string, port?: number): RibEntry[] {
    return receivedRows(this.peerAt(address, port), address);
  }

  /** Routes the import judge refused, per peer, as held in the peers' Adj-RIBs-In. */
  refusedRoutes(): RefusedRoute[] {
    return refusedRows(this.peers.values());
  }

  /**
   * Asks the import judge again about the routes held from every peer — all of them, or only those inside
   * `within` (equal or more specific) — after what it judges by changed. A route it now refuses leaves the
   * Loc-RIB; one it now accepts enters it. Returns how many routes changed verdict. Routes of a removed
   * peer that still linger (make-before-break) are not judged again: they go within the linger.
   */
  rejudge(within?: readonly Prefix[]): number {
    if (this.config.importJudge === undefined || this.stopped) return 0;
    const changes: BestChange[] = [];
    let changed = 0;
    for (const entry of this.peers.values()) {
      for (const received of routesWithin(entry.ribIn, within)) {
        const wasRefused = entry.refused.has(received.key);
        const route = this.judge(entry, received);
        if (wasRefused === entry.refused.has(received.key)) continue;
        changed++;
        const change = this.locRib.set(entry.ribIn.source, received.key, route);
        if (change) changes.push(change);
      }
    }
    this.propagate(changes);
    return changed;
  }

  /** The Loc-RIB's best routes. */
  bestRoutes(): RibEntry[] {
    return [...this.locRib.bestRoutes()].map((r) => toRibEntry(r));
  }

  /** Number of prefixes in the Loc-RIB. */
  get locRibSize(): number {
    return this.locRib.size;
  }

  /** Best route for one prefix. */
  best(prefix: Prefix): RibEntry | null {
    const route = this.locRib.best(prefixKey(prefix));
    return route ? toRibEntry(route) : null;
  }

  /** Distinct attribute sets held (interning at work: far fewer than routes). */
  get attributeSets(): number {
    return this.table.size;
  }

  /** Sends Cease/Administrative Shutdown to every peer and closes the listener. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const entry of this.lingering) this.clearRetentionTimer(entry);
    this.lingering.clear();
    this.deferral.stop();
    for (const entry of this.peers.values()) {
      // No graceful-restart bookkeeping (new restart timers) for sessions we end ourselves.
      entry.removing = true;
      this.clearRetentionTimer(entry);
      this.cancelRefresh(entry);
      entry.challenger?.stop(CeaseSubcode.ADMINISTRATIVE_SHUTDOWN);
      entry.session.stop(CeaseSubcode.ADMINISTRATIVE_SHUTDOWN);
    }
    this.peers.clear();
    const close = this.closeListener;
    this.closeListener = null;
    if (close) await close();
  }

  // ---- peers and sessions -----------------------------------------------------------------------------

  private sessionConfig(entry: { spec: NormalSpec }, passive: boolean): SessionConfig {
    return sessionConfigFor(this.config, entry.spec, passive, this.deferral.active);
  }

  /** This speaker as one peer sees it: our AS toward it (localAs) and our address on its connection. */
  private localFor(spec: NormalSpec, address: number): LocalSpeaker {
    return { ...this.local, asn: spec.localAs ?? this.local.asn, address };
  }

  private sourceOf(policy: PeerPolicy, routerId: number): RouteSource {
    return Object.freeze({
      address: policy.address,
      ...(policy.port !== undefined ? { port: policy.port } : {}),
      routerId,
      asn: policy.asn,
      ebgp: policy.ebgp,
      rrClient: policy.rrClient,
    });
  }

  private addPeer(spec: NormalSpec): void {
    const policy = policyOf(spec, this.config.localAs);
    const source = sourceAddress(spec, this.config.listen);
    const local = this.localFor(spec, source !== undefined ? parseIpv4(source) : this.local.address);
    const partial = { spec, sessions: 0 };
    const entry: PeerEntry = {
      spec,
      session: new Session(this.sessionConfig(partial, spec.passive)),
      challenger: null,
      promoted: false,
      policy,
      local,
      ribIn: new AdjRibIn(this.sourceOf(policy, 0), this.table),
      group: this.groupFor(policy, local),
      retention: INITIAL_RETENTION,
      retentionTimer: null,
      notification: 'none',
      endOfRib: false,
      sessions: 0,
      removing: false,
      up: false,
      refused: new Map(),
      reportRefused: (route, reason) =>
        this.emit('refused', { peer: spec.address, port: spec.port, prefix: route.prefix, reason }),
      refreshAnsweredAt: null,
      refreshTimer: null,
      securityRefusal: null,
    };
    this.peers.set(endpointOf(spec), entry);
    this.installSecurity(spec.address);
    // What this peer should have: every best route its group exports, except its own — routes still
    // lingering from its previous configuration are its own too.
    const own: number[] = [];
    const id = sourceId(policy);
    for (const old of this.lingering) {
      if (sourceId(old.policy) !== id) continue;
      for (const route of old.ribIn.routes()) {
        const best = this.locRib.best(route.key);
        if (best !== undefined && sourceId(best.source) === id) own.push(route.key);
      }
    }
    entry.group.add(entry, id, own);
    this.wire(entry, entry.session);
    entry.session.start();
  }

  /** Cease to the peer first (so its NOTIFICATION and last state change are still reported), then forget it. */
  /**
   * Puts the peer's TCP-MD5 key and GTSM hops on the listener (inbound; outbound connections get them from
   * the transport). Where that fails — no native part, a kernel without TCP_MD5SIG — the peer's inbound
   * connections are refused and its status says why: never a session without the password.
   */
  private installSecurity(address: string): void {
    // Only the inbound peer of an address (see the top of this file) has its key on the listener.
    const entry = this.peerAt(address);
    if (entry === undefined) return;
    const options = securityOf(entry.spec);
    entry.securityRefusal = null;
    if (this.config.listen === null || this.closeListener === null) return;
    const set = this.closeListener.setPeerSecurity;
    if (options === undefined) {
      // Another peer on this address (a higher port) may have been the inbound one and left its key there.
      if (
        set !== undefined &&
        [...this.peers.values()].some(
          (p) => p !== entry && p.spec.address === address && securityOf(p.spec) !== undefined,
        )
      ) {
        try {
          set(address, undefined);
        } catch (error) {
          this.config.logger.warn(
            { peer: address, error: error instanceof Error ? error.message : String(error) },
            'could not remove a TCP-MD5 key from the listener',
          );
        }
      }
      return;
    }
    try {
      if (!set) throw new Error('this listener cannot set TCP-MD5 or GTSM');
      set(entry.spec.address, options);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      entry.securityRefusal = reason;
      entry.session.noteError({ kind: 'inboundRefused', detail: reason });
      this.config.logger.error(
        { peer: entry.spec.address, reason },
        'TCP-MD5/GTSM cannot be set on the listener: inbound connections from this peer are refused',
      );
    }
  }

  private removePeer(entry: PeerEntry, subcode: number): void {
    entry.removing = true;
    this.cancelRefresh(entry);
    entry.challenger?.stop(subcode);
    entry.session.stop(subcode);
    this.peers.delete(endpointOf(entry.spec));
    if (securityOf(entry.spec) !== undefined && !this.stopped) {
      try {
        this.closeListener?.setPeerSecurity?.(entry.spec.address, undefined);
      } catch (error) {
        this.config.logger.warn(
          { peer: entry.spec.address, error: error instanceof Error ? error.message : String(error) },
          "could not remove the peer's TCP-MD5 key from the listener",
        );
      }
    }
    // A peer left on this address may now be its inbound peer: its key goes on the listener.
    if (!this.stopped) this.installSecurity(entry.spec.address);
    this.exports.leave(entry);
    // Make-before-break (./retention.ts): what another peer already offers is handed over now.
    const covered = this.config.deconfiguredLingerMs > 0 && entry.ribIn.size > 0 ? this.coveredElsewhere(entry) : [];
    this.retain(
      entry,
      { type: 'removed', held: entry.ribIn.size, uncovered: entry.ribIn.size - covered.length },
      covered,
    );
  }

  private groupFor(policy: PeerPolicy, local: LocalSpeaker): UpdateGroup<PeerEntry> {
    return this.exports.groupFor(policy, local, () => this.locRib.bestRoutes());
  }

  /** Routes a session's events into the routing core while it is the peer's current session. */
  private wire(entry: PeerEntry, session: Session): void {
    const peer = entry.spec.address;
    const port = entry.spec.port;
    const endpoint = endpointOf(entry.spec);
    const current = (): boolean => this.peers.get(endpoint) === entry && entry.session === session;
    session.on('state', (e) => {
      // A collision challenger whose connection died before any OPEN: forget it, or it would refuse every
      // later inbound connection and could even win a later collision while dead.
      if (entry.challenger === session && e.to === 'Idle') {
        entry.challenger = null;
        session.removeAllListeners();
        return;
      }
      if (!current()) return;
      if (e.to === 'Established') this.onEstablished(entry);
      this.emit('state', { peer, port, from: e.from, to: e.to, ...(e.reason ? { reason: e.reason } : {}) });
      if (entry.promoted && (e.to === 'Idle' || e.to === 'Active') && !this.stopped && !entry.removing)
        replaceSession(this.collisions, entry);
    });
    session.on('open', () => resolveCollision(this.collisions, entry));
    session.on('update', (e) => {
      if (!current()) return;
      this.emit('update', { peer, port, announced: e.announced, withdrawn: e.withdrawn });
      this.onUpdate(entry, e.message);
    });
    session.on('endOfRib', (e) => {
      if (!current()) return;
      this.emit('endOfRib', { peer, port });
      // RFC 4724 §2: End-of-RIB is per address family; only IPv4 unicast's ends our stale IPv4 routes.
      if (e.afi === Afi.IPV4 && e.safi === Safi.UNICAST) this.onEndOfRib(entry);
    });
    session.on('down', () => {
      if (!current() || entry.removing) return;
      this.cancelRefresh(entry);
      // Only the end of an Established session decides about routes: a reconnect attempt that fails in
      // OpenSent/OpenConfirm learned nothing, and must not wipe routes kept through a graceful restart.
      if (!entry.up) return;
      entry.up = false;
      this.onDown(entry);
    });
    session.on('routeRefresh', () => {
      if (!current()) return;
      this.answerRefresh(entry);
    });
    session.on('notification', (e) => {
      if (this.peers.get(endpoint) !== entry) return;
      // RFC 4724 §4.2: a session ended by a NOTIFICATION, sent or received, is not a graceful restart
      // (tortie does not offer RFC 8538's N bit).
      if (entry.session === session) entry.notification = classifyNotification(e, entry.policy.ebgp);
      // A challenger's NOTIFICATIONs (its collision dump) are shown too: they went over the wire.
      if (entry.session === session || entry.challenger === session) this.emit('notification', { peer, port, ...e });
    });
  }

  private onEstablished(entry: PeerEntry): void {
    const session = entry.session;
    entry.up = true;
    entry.sessions++;
    entry.endOfRib = false;
    entry.notification = 'none';
    const negotiated = session.negotiated!;
    entry.ribIn.setSource(this.sourceOf(entry.policy, negotiated.peerBgpId));
    // Next hop self is the address of this connection; rebuild the exporter if it is not the one assumed.
    const localAddress = session.localAddress !== undefined ? parseIpv4(session.localAddress) : undefined;
    if (localAddress !== undefined && localAddress !== entry.local.address) {
      // Routes kept through its graceful restart may still be best: they stay exceptions in the new group.
      const own: number[] = [];
      const id = sourceId(entry.policy);
      for (const route of entry.ribIn.routes()) {
        const best = this.locRib.best(route.key);
        if (best !== undefined && sourceId(best.source) === id) own.push(route.key);
      }
      this.exports.leave(entry);
      entry.local = this.localFor(entry.spec, localAddress);
      entry.group = this.groupFor(entry.policy, entry.local);
      entry.group.add(entry, id, own);
    }
    // RFC 4724 §4.2: stale routes stay only if the peer is back with the F bit for IPv4 unicast.
    this.retain(entry, { type: 'established', forwardingPreserved: hasIpv4Gr(negotiated.gracefulRestart, true) });
    // RFC 4271 §9.2: a new session gets the whole Adj-RIB-Out, then End-of-RIB (RFC 4724 §2).
    entry.group.reset(entry, 'fresh');
    if (!this.deferral.active) {
      this.exports.flush(entry.group);
      session.sendUpdates([encodeEndOfRib()]);
    } else {
      this.deferral.check();
    }
  }

  /** A ROUTE-REFRESH from the peer, paced (./route-refresh.ts): its whole Adj-RIB-Out goes again. */
  private answerRefresh(entry: PeerEntry): void {
    const context = {
      clock: this.config.clock,
      intervalMs: this.config.routeRefreshIntervalMs,
      logger: this.config.logger,
      peer: entry.spec.address,
    };
    answerRefresh(
      entry,
      context,
      () => {
        entry.group.reset(entry, 'refresh');
        this.exports.markDirty(entry.group);
      },
      () => this.peers.get(endpointOf(entry.spec)) === entry && entry.session.established,
    );
  }

  private cancelRefresh(entry: PeerEntry): void {
    cancelRefresh(entry, this.config.clock);
  }

  /**
   * RFC 4486 §4: more prefixes than allowed. The session ends with Cease / Maximum Number of Prefixes
   * Reached, data AFI (2 octets), SAFI (1), the upper bound (4), and stays down for the restart delay.
   * The UPDATE that went over is not taken into the Loc-RIB; the session's end withdraws the rest.
   */
  private overPrefixLimit(entry: PeerEntry): boolean {
    const limit = entry.spec.maxPrefixes ?? this.config.maxPrefixes;
    const count = entry.ribIn.size;
    if (count <= limit) return false;
    const data = new Uint8Array(7);
    new DataView(data.buffer).setUint16(0, Afi.IPV4);
    data[2] = Safi.UNICAST;
    new DataView(data.buffer).setUint32(3, limit);
    const restartMs = this.config.prefixLimitRestartMs;
    this.config.logger.warn(
      { peer: entry.spec.address, prefixes: count, maxPrefixes: limit, restartMs },
      'peer sent more prefixes than allowed: session reset, reconnect after the restart delay',
    );
    entry.session.limitExceeded(
      CeaseSubcode.MAX_PREFIXES,
      data,
      `${count} prefixes received, more than the limit of ${limit} (IPv4 unicast)`,
      restartMs,
    );
    return true;
  }

  private onUpdate(entry: PeerEntry, message: Parameters<AdjRibIn['apply']>[0]): void {
    const changes: BestChange[] = [];
    const keys = entry.ribIn.apply(message);
    if (this.overPrefixLimit(entry)) return;
    for (const key of keys) {
      const received = entry.ribIn.get(key);
      if (received === undefined) entry.refused.delete(key);
      const route = received ? this.judge(entry, received) : null;
      const change = this.locRib.set(entry.ribIn.source, key, route);
      if (change) changes.push(change);
      // Make-before-break: a live peer now offers this prefix, so a removed peer's lingering copy has
      // done its job and goes (else the stale copy could stay best for the rest of the linger).
      if (route !== null && (this.lingering.size > 0 || this.lingeringInPlaceCount > 0))
        this.replaceLingering(entry, key, changes);
    }
    this.propagate(changes);
  }

  /** The RFC import rules, then the import judge (./import-judge.ts); null = not in the Loc-RIB. */
  private judge(entry: PeerEntry, received: Route): Route | null {
    return judgeImport(entry, received, this.table, this.config.importJudge, entry.reportRefused);
  }

  private replaceLingering(by: PeerEntry, key: number, changes: BestChange[]): void {
    for (const old of this.lingering) {
      if (sourceId(old.policy) === sourceId(by.policy) || old.ribIn.withdraw([key]).length === 0) continue;
      old.refused.delete(key);
      const change = this.locRib.set(old.ribIn.source, key, null);
      if (change) changes.push(change);
    }
    // Peers that de-configured us: only their stale copy goes (a fresh one, after they came back, stays).
    for (const old of this.peers.values()) {
      if (
        !lingersInPlace(old.retention) ||
        old === by ||
        old.ribIn.get(key)?.stale !== true ||
        old.ribIn.withdraw([key]).length === 0
      )
        continue;
      old.refused.delete(key);
      const change = this.locRib.set(old.ribIn.source, key, null);
      if (change) changes.push(change);
    }
  }

  private onEndOfRib(entry: PeerEntry): void {
    entry.endOfRib = true;
    // RFC 4724 §4.2: End-of-RIB from a restarted peer removes what it did not send again.
    this.retain(entry, { type: 'endOfRib' });
    // The same peer, added back after a reconfiguration, has now sent everything it has.
    for (const old of [...this.lingering])
      if (sourceId(old.policy) === sourceId(entry.policy)) this.retain(old, { type: 'endOfRib' });
    this.deferral.check();
  }

  /** The end of an Established session decides about its routes (./retention.ts). */
  private onDown(entry: PeerEntry): void {
    const notification = entry.notification;
    entry.notification = 'none';
    const gr = entry.session.negotiated?.gracefulRestart;
    const covered =
      notification === 'deconfiguredUs' && this.config.deconfiguredLingerMs > 0 && entry.ribIn.size > 0
        ? this.coveredElsewhere(entry)
        : [];
    const held = entry.ribIn.size;
    this.retain(
      entry,
      {
        type: 'sessionDown',
        notification,
        peerRestartTime: gr !== undefined && hasIpv4Gr(gr) ? gr.restartTime : null,
        held,
        uncovered: held - covered.length,
      },
      covered,
    );
  }

  /**
   * Feeds one event to the peer's retention state machine (./retention.ts) and carries out the actions it
   * returns, in order. `covered`: the keys another peer offers (for `handOver`).
   */
  private retain(entry: PeerEntry, event: RetentionEvent, covered: readonly number[] = []): void {
    const before = entry.retention;
    const { next, actions, reason } = retentionTransition(before, event, {
      stalePathMs: this.config.stalePathMs,
      lingerMs: this.config.deconfiguredLingerMs,
    });
    entry.retention = next;
    if (lingersInPlace(before) !== lingersInPlace(next)) this.lingeringInPlaceCount += lingersInPlace(next) ? 1 : -1;
    const removedLinger = (state: RetentionState): boolean => state.name === 'lingering' && state.reason === 'removed';
    if (!removedLinger(next)) this.lingering.delete(entry);
    const peer = entry.spec.address;
    for (const action of actions) {
      switch (action.type) {
        case 'clearTimer':
          this.clearRetentionTimer(entry);
          break;
        case 'startTimer':
          entry.retentionTimer = this.config.clock.setTimeout(() => {
            entry.retentionTimer = null;
            this.retain(entry, { type: 'timerFired' });
          }, action.ms);
          break;
        case 'markStale': {
          const routes = entry.ribIn.markStale();
          if (removedLinger(next)) this.lingering.add(entry);
          else
            this.config.logger.info(
              {
                peer,
                routes,
                state: next.name,
                ...(next.name === 'grStale'
                  ? { restartTime: next.restartTime }
                  : { lingerMs: this.config.deconfiguredLingerMs }),
              },
              reason,
            );
          break;
        }
        case 'sweepStale': {
          if (this.peers.get(endpointOf(entry.spec)) !== entry) break;
          const removed = entry.ribIn.sweepStale();
          if (removed.length > 0)
            this.config.logger.info({ peer, routes: removed.length, reason }, 'stale routes removed');
          this.withdrawFromLocRib(entry, removed);
          break;
        }
        case 'withdrawAll':
          this.withdrawFromLocRib(entry, entry.ribIn.clear());
          break;
        case 'handOver':
          this.withdrawFromLocRib(entry, entry.ribIn.withdraw(covered));
          break;
        case 'endLinger': {
          // Except where the peer was added back and its new session announced the prefix again (the
          // Loc-RIB candidate, keyed by address, is then the new session's).
          const current = this.peers.get(endpointOf(entry.spec));
          const keys = entry.ribIn.clear().filter((key) => current?.ribIn.get(key) === undefined);
          if (keys.length > 0)
            this.config.logger.info(
              { peer, routes: keys.length, reason },
              'routes of a removed peer withdrawn after the linger',
            );
          this.withdrawFromLocRib(entry, keys);
          break;
        }
      }
    }
  }

  private clearRetentionTimer(entry: PeerEntry): void {
    if (entry.retentionTimer !== null) this.config.clock.clearTimeout(entry.retentionTimer);
    entry.retentionTimer = null;
  }

  /** Keys of `entry`'s routes that another peer (or we) also offer. */
  private coveredElsewhere(entry: PeerEntry): number[] {
    const covered: number[] = [];
    for (const route of entry.ribIn.routes()) {
      if (this.locRib.candidates(route.key).some((c) => sourceId(c.source) !== sourceId(entry.policy)))
        covered.push(route.key);
    }
    return covered;
  }

  private withdrawFromLocRib(entry: PeerEntry, keys: readonly number[]): void {
    const changes: BestChange[] = [];
    for (const key of keys) {
      entry.refused.delete(key);
      const change = this.locRib.set(entry.ribIn.source, key, null);
      if (change) changes.push(change);
    }
    this.propagate(changes);
  }

  /** Best-route changes → every peer's desired state; then one coalesced flush. */
  private propagate(changes: readonly BestChange[]): void {
    if (changes.length === 0) return;
    this.exports.apply(changes);
    if (this.listenerCount('bestChanged') > 0) {
      this.emit(
        'bestChanged',
        changes.map((c) => ({ prefix: prefixFromKey(c.key), best: c.best ? toRibEntry(c.best) : null })),
      );
    }
  }

  // ---- graceful restart: the restarting side ------------------------------------------------------------

  private *deferralPeers(): Generator<DeferralPeer> {
    for (const entry of this.peers.values()) {
      const negotiated = entry.session.established ? entry.session.negotiated : undefined;
      yield { up: negotiated !== undefined, gracefulRestart: negotiated?.gracefulRestart, endOfRib: entry.endOfRib };
    }
  }

  private endDeferral(reason: string): void {
    this.config.logger.info({ reason }, 'graceful restart: route selection deferral over, sending routes');
    // The restart is over: later OPENs (reconnects) no longer say "restarting" (RFC 4724 §3).
    for (const entry of this.peers.values()) {
      entry.session.setRestarting(false);
      entry.challenger?.setRestarting(false);
    }
    this.exports.flushAll();
    for (const entry of this.peers.values())
      if (entry.session.established) entry.session.sendUpdates([encodeEndOfRib()]);
    this.emit('ready');
  }

  // ---- connection collisions ------------------------------------------------------------------------------

  /** An inbound TCP connection: give it to the session of the peer it comes from, or refuse it. */
  private onInbound(conn: Connection): void {
    const remote = conn.remoteAddress.replace(/^::ffff:/, '');
    // From an ephemeral port: the inbound peer of the address (see the top of this file).
    const entry = this.peerAt(remote);
    if (!entry || this.stopped) {
      this.config.logger.info(
        { remote, localAddress: conn.localAddress },
        'connection from an address that is not a configured peer: closed',
      );
      conn.destroy();
      return;
    }
    acceptInbound(this.collisions, entry, conn, remote);
  }

  get routerIdText(): string {
    return formatIpv4(this.config.routerId);
  }
}
