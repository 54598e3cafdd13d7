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
//
// The code is in layers, one file per role (./speaker-core.ts lists them); this file is the public API.

import { CeaseSubcode } from './errors.js';
import { routesWithin, type RefusedRoute } from './import-judge.js';
import { formatIpv4, prefixKey } from './ip.js';
import type { RibKey } from './ip6.js';
import { originatedAttrs } from './originate.js';
import { ribKeyOf } from './rib/prefix6.js';
import {
  isIpv4Route,
  peerStatusRow,
  receivedRows,
  refusedRows,
  toRibEntry,
  toRibEntry6,
  type PeerStatus,
  type RibEntry,
  type RibEntry6,
} from './peer-report.js';
import { Route, type BestChange } from './rib/index.js';
import type { OriginatedRoute, OriginatedRoute6 } from './speaker-events.js';
import { endpointOf, normalizeSpec, sameSpec, validatePeerSpec, type PeerSpec } from './speaker-config.js';
import { SpeakerPeers } from './speaker-peers.js';
import { softReconfigure, type SoftReconfigHost } from './soft-reconfig.js';
import type { PathAttributes, Prefix } from './types.js';

export type { NextHopMode } from './rib/index.js';
export type { ImportJudge, RefusedRoute } from './import-judge.js';
export { tcpAcceptor, type Acceptor, type ListenerHandle } from './listener.js';
export type { GracefulRestartOptions, LoggerLike, PeerSpec, SpeakerConfig } from './speaker-config.js';
export type { PeerStatus, RibEntry } from './peer-report.js';
export type { OriginatedRoute, OriginatedRoute6, SpeakerEvents } from './speaker-events.js';
export {
  DEFAULT_MAX_PREFIXES,
  DEFAULT_PREFIX_LIMIT_RESTART_MS,
  DEFAULT_ROUTE_REFRESH_INTERVAL_MS,
} from './speaker-core.js';

export class Speaker extends SpeakerPeers {
  /** What ./soft-reconfig.ts needs of this speaker. */
  private readonly soft: SoftReconfigHost = {
    localAs: this.config.localAs,
    table: this.table,
    locRib: this.locRib,
    judge: (entry, received) => this.judge(entry, received),
    propagate: (changes) => this.propagate(changes),
    groupFor: (policy, local) => this.groupFor(policy, local),
    leaveGroup: (entry) => this.exports.leave(entry),
    markDirty: (group) => this.exports.markDirty(group),
  };

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
  setOriginated(routes: ReadonlyArray<OriginatedRoute | OriginatedRoute6>): void {
    const next = new Map<RibKey, PathAttributes>();
    for (const r of routes) next.set(ribKeyOf(r.prefix), this.table.canonical(originatedAttrs(r, this.local)));
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
    return [...this.locRib.bestRoutes()].filter(isIpv4Route).map((r) => toRibEntry(r));
  }

  /** The Loc-RIB's best IPv6 unicast routes (RFC 2545). */
  bestRoutes6(): RibEntry6[] {
    return [...this.locRib.bestRoutes()].filter((r) => !isIpv4Route(r)).map((r) => toRibEntry6(r));
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

  get routerIdText(): string {
    return formatIpv4(this.config.routerId);
  }
}
