// DOC: the Speaker is one BGP router: sessions to its peers and the routing core between them.
//
//   session(P) ──UPDATE──▶ Adj-RIB-In(P) ──import policy──▶ Loc-RIB (best path) ──export policy(Q)──▶
//   Adj-RIB-Out(Q): desired vs advertised ──pending()──▶ packed UPDATEs ──▶ session(Q)
//
// - Peers are a desired set (`setPeers`): a peer added starts, a removed one gets Cease/Peer De-configured,
//   one whose parameters changed restarts with Cease/Other Configuration Change, the rest are left alone.
// - Originated routes (`setOriginated`) enter the Loc-RIB as local candidates, which win over learned ones.
// - Every peer's Adj-RIB-Out is kept equal to "what it should have" at all times, whether Established or
//   not; what is sent is only the difference to what it was sent. Peers with identical export (same AS,
//   eBGP-ness, RR client, next-hop mode, local address, export filter; an eBGP peer one IP hop away gets
//   third-party next hops that depend on its subnet and address, so it is in a group of its own) form an
//   update group
//   (./rib/update-group.ts): one Adj-RIB-Out and one encoding of each UPDATE for all of them, and per peer
//   only the routes it sent us, which it never gets back. A new session, or a ROUTE-REFRESH
//   (RFC 2918), resets "advertised" so the whole table goes again; End-of-RIB (RFC 4724 §2) follows the
//   initial table. Sends are coalesced: every change made while handling I/O goes out in one flush.
// - Route reflection (RFC 4456), iBGP split horizon and the eBGP rules live in ./rib/policy.ts; this file
//   only wires them. A peer's `subnet` (ours, on the network the session runs over) tells the policy which
//   eBGP peers are one IP hop away (RFC 4271 §5.1.3 (2): third-party next hops toward them).
// - Graceful restart (RFC 4724), both roles:
//   receiving: when a peer that advertised GR for IPv4 unicast drops without a NOTIFICATION, its routes
//   stay (stale) in Adj-RIB-In and Loc-RIB, and are still exported, until it comes back and sends
//   End-of-RIB, or its restart time passes, or it comes back without the F bit;
//   restarting (`gracefulRestart.restarting`): the first OPEN to each peer has the R bit, and no route is
//   sent to anyone until every GR peer sent End-of-RIB or the selection deferral timer fires (§4.1), so we
//   never withdraw what we are about to re-learn. Without `gracefulRestart`, tortie is a GR helper only.
// - Make-before-break on reconfiguration, both sides: a peer removed (or restarted) by `setPeers` leaves its
//   routes stale for `deconfiguredLingerMs` unless another peer offers the prefix; and an iBGP peer that
//   ends the session with Cease / Peer De-configured (it took us out of its configuration on purpose: the
//   mesh turned off on its side first, a reflector taking over) is treated the same way, so the side that
//   hears of the change second has no gap either. RFC 4271 withdraws on every NOTIFICATION; this one
//   exception keeps paths that still forward (inside the AS their next hops are the nodes that own the
//   blocks, not the peer) until a replacement arrives, the peer is back and sends End-of-RIB, or the linger
//   ends. Not for eBGP: routers send the same Cease when they shut down (GoBGP's Stop does), and their
//   routes' next hop is the router itself. Any other NOTIFICATION withdraws at once.
// - An import judge (`SpeakerConfig.importJudge`, the node agent's import protection) may refuse a route
//   after the RFC import rules, giving a reason code. A refused route stays in the peer's Adj-RIB-In, marked
//   with its reason (`refusedRoutes()`, the 'refused' event), and never enters the Loc-RIB; `rejudge()` asks
//   the judge again (all routes, or those inside some prefixes) when what it judges by has changed.
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
import { createServer } from 'node:net';
import { encodeEndOfRib, encodeUpdates, encodeWithdrawals } from './codec/index.js';
import { systemClock, type Clock, type TimerHandle } from './clock.js';
import { CeaseSubcode, ErrorCode } from './errors.js';
import { formatIpv4, formatPrefix, parseIpv4, parsePrefix, prefixContains, prefixFromKey, prefixKey } from './ip.js';
import {
  AdjRibIn,
  AdjRibOut,
  AttrTable,
  LocRib,
  PeerExport,
  Route,
  UpdateGroup,
  importRoute,
  localSource,
  type BestChange,
  type LocalSpeaker,
  type NextHopMode,
  type PeerPolicy,
  type RouteSource,
  type SharedSubnet,
} from './rib/index.js';
import { collisionWinner } from './negotiation.js';
import { Session, type Logger, type SessionConfig, type SessionDownReason, type SessionState } from './session.js';
import { setTcpMd5, setTtl255, setTtlSecurity, TCP_MD5_MAX_KEY_BYTES, type SecureSocketOptions } from './socket-options.js';
import { tcpTransport, wrapSocket, type Connection, type Transport } from './transport.js';
import { Afi, BGP_PORT, Safi, type CodecContext, type PathAttributes, type Prefix } from './types.js';

export type { NextHopMode } from './rib/index.js';

/** The subset of pino's logger the library uses; pass nothing to log nothing. */
export type LoggerLike = Logger;

const silentLogger: LoggerLike = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * A running listener: calling it closes it. `setPeerSecurity` (where the listener can) installs or removes
 * one peer's TCP-MD5 key and GTSM hops; it throws, naming the reason, when it cannot. A listener without it
 * cannot accept a peer that has a password: the speaker refuses such a peer's inbound connections.
 */
export type ListenerHandle = (() => Promise<void>) & {
  readonly setPeerSecurity?: (address: string, options: SecureSocketOptions | undefined) => void;
};

/** Listens on address:port and hands every inbound connection to `onConnection`; resolves to a handle. */
export type Acceptor = (address: string, port: number, onConnection: (conn: Connection) => void) => Promise<ListenerHandle>;

/** The file descriptor under a node:net socket or server (Linux; -1 when there is none). */
function fdOf(handleOwner: unknown): number {
  const fd = (handleOwner as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' ? fd : -1;
}

/**
 * The TCP acceptor. Rejects with a message naming the address and the likely cause when it cannot bind.
 * TCP-MD5 keys go on the listening socket, one per peer address (RFC 2385 as Linux does it: the kernel
 * drops a SYN from that address without a valid signature). GTSM: IP_TTL 255 on the listener (the SYN-ACK
 * and, inherited, every accepted socket send with it), IP_MINTTL on each accepted socket of that peer.
 */
export const tcpAcceptor: Acceptor = async (address, port, onConnection) => {
  const security = new Map<string, SecureSocketOptions>();
  const server = createServer({ noDelay: true }, (socket) => {
    const hops = security.get((socket.remoteAddress ?? '').replace(/^::ffff:/, ''))?.ttlSecurity;
    if (hops !== undefined) {
      try {
        setTtlSecurity(fdOf(socket), hops);
      } catch {
        // The listener set IP_TTL already, so the native part works; a socket that is gone meanwhile
        // closes by itself.
        socket.destroy();
        return;
      }
    }
    onConnection(wrapSocket(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      const hint =
        error.code === 'EADDRINUSE'
          ? 'another BGP speaker (bird, bgpd, gobgpd?) already listens there'
          : error.code === 'EACCES'
            ? 'ports below 1024 need root or CAP_NET_BIND_SERVICE'
            : error.code === 'EADDRNOTAVAIL'
              ? 'no interface on this machine has that address'
              : error.message;
      reject(new Error(`cannot listen for BGP on ${address}:${port}: ${error.code ?? 'error'} (${hint})`));
    });
    server.listen({ host: address, port, exclusive: true }, () => resolve());
  });
  let ttl255 = false;
  const setPeerSecurity = (peer: string, options: SecureSocketOptions | undefined): void => {
    const had = security.get(peer);
    const key = options?.md5Key !== undefined && options.md5Key.length > 0 ? options.md5Key : undefined;
    if (key !== undefined) setTcpMd5(fdOf(server), peer, key);
    else if (had?.md5Key !== undefined) setTcpMd5(fdOf(server), peer, undefined);
    if (options?.ttlSecurity !== undefined && !ttl255) {
      setTtl255(fdOf(server));
      ttl255 = true;
    }
    if (options && (key !== undefined || options.ttlSecurity !== undefined)) security.set(peer, options);
    else security.delete(peer);
  };
  const close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return Object.assign(close, { setPeerSecurity });
};

export interface GracefulRestartOptions {
  /** Restart time we advertise, seconds 0..4095 (RFC 4724 §3). */
  restartTime: number;
  /** We have just restarted: set the R bit and defer sending routes until peers' End-of-RIB (§4.1). */
  restarting?: boolean;
  /** Selection deferral timer (§4.1), ms. Default: the restart time. */
  deferralMs?: number;
  /**
   * How long a peer that is not Established may hold the deferral up (default 1 s after start). A peer that
   * is not up has nothing to re-learn from yet; waiting for it (an office router that reconnects only after
   * its own retry delay) would keep every other peer from hearing anything for the whole deferral.
   */
  peerWaitMs?: number;
}

/**
 * Says why a received route must not enter the Loc-RIB — a short reason code (a value the caller defines and
 * formats, not prose) — or null to accept it. Runs after the RFC import rules on the imported route (its
 * `source.address` is the peer's). Must be a pure function of the route and of what the caller last told
 * `rejudge()` about: the speaker asks again only then.
 */
export type ImportJudge = (route: Route) => string | null;

/** A route the import judge refused, still held in its peer's Adj-RIB-In. */
export interface RefusedRoute {
  prefix: Prefix;
  attrs: PathAttributes;
  from: string;
  reason: string;
  stale: boolean;
}

export interface SpeakerConfig {
  routerId: number;
  localAs: number;
  /** Where to accept connections; null = only connect out. Also the default source of outbound connections. */
  listen: { address: string; port: number } | null;
  /** Route-reflector cluster id (RFC 4456 §7); defaults to the router id. Only used with rrClient peers. */
  clusterId?: number;
  /** Graceful restart as a restarting speaker (F bit set: forwarding survives us). Absent: helper only. */
  gracefulRestart?: GracefulRestartOptions | null;
  /** Hold time offered to every peer unless the peer says otherwise (default 90). */
  holdTime?: number;
  connectRetryMs?: number;
  /** How long stale routes may wait for End-of-RIB after the peer is back (default 360 s, as FRR's stalepath-time). */
  stalePathMs?: number;
  /**
   * Make-before-break on reconfiguration: routes of a peer that is removed or restarted by `setPeers` stay
   * (stale, still exported) this long, so a replacement path (a route reflector taking over from the mesh,
   * the same peer with new parameters) can arrive first. 0 = withdraw at once. Default 10 s.
   */
  deconfiguredLingerMs?: number;
  /** Prefixes a peer may send (its Adj-RIB-In size) unless its PeerSpec says otherwise; one more ends the
   *  session with Cease / Maximum Number of Prefixes Reached (RFC 4486). Default 500 000. */
  maxPrefixes?: number;
  /** How long a peer cut off for too many prefixes stays down (no connect, inbound refused), ms. Default 60 s. */
  prefixLimitRestartMs?: number;
  /** A ROUTE-REFRESH is answered at most once per this interval per peer; more are coalesced. Default 5 s. */
  routeRefreshIntervalMs?: number;
  /** Per session: bytes a peer may leave unread before Cease / Out of Resources (default 32 MiB). */
  maxSendQueueBytes?: number;
  /** Per session: the smallest non-zero hold time accepted from a peer, seconds (default 3). */
  minHoldTime?: number;
  clock?: Clock;
  transport?: Transport;
  /** How to accept connections (default: a TCP server); tests pass MemoryNetwork's listen. */
  acceptor?: Acceptor;
  logger?: LoggerLike;
  /** Refuses received routes with a reason (see `ImportJudge`); absent = every route the RFC rules allow. */
  importJudge?: ImportJudge;
}

export interface PeerSpec {
  address: string;
  port?: number;
  peerAs: number;
  passive?: boolean;
  holdTime?: number;
  keepaliveTime?: number;
  localAddress?: string;
  /** A route-reflector client of ours (RFC 4456); ignored for eBGP peers. */
  rrClient?: boolean;
  /**
   * Next hop toward this peer: auto (eBGP: ours, or a third-party next hop inside `subnet` when the peer
   * is in it; iBGP: unchanged), self, keep.
   */
  nextHop?: NextHopMode;
  /**
   * Our address on the network this session runs over, with its prefix length ("198.19.1.11/24"; host bits
   * allowed). An eBGP peer whose address is inside it is one IP hop away: under nextHop auto it gets a
   * route's NEXT_HOP unchanged when that is inside the subnet too (RFC 4271 §5.1.3 (2), as BIRD does),
   * rather than ours. tortie has no eBGP multihop setting (it sets no TTL): a peer outside the subnet is
   * the multihop case, and gets our address. Absent: every eBGP peer gets our address.
   */
  subnet?: string;
  /** Times our own AS may appear in a received AS_PATH (Calico's numAllowedLocalASNumbers). */
  allowOwnAs?: number;
  /** Our AS toward this peer (Calico's BGPPeer localASNumber); default the speaker's. It decides eBGP vs
   *  iBGP, goes in our OPEN, is prepended toward eBGP and counts for loop detection. */
  localAs?: number;
  /** Graceful restart time we advertise to this peer, seconds (Calico's maxRestartTime). */
  restartTime?: number;
  /** Prefixes this peer may send; default the speaker's `maxPrefixes`. */
  maxPrefixes?: number;
  /**
   * TCP-MD5 password (RFC 2385; Calico's BGPPeer password): every segment both ways is signed, on
   * connections we open and on those we accept. 1..80 bytes. Never logged or reported.
   */
  password?: string;
  /** GTSM (RFC 5082; Calico's ttlSecurity): the peer is at most this many hops away (1 = directly connected). */
  ttlSecurity?: number;
  /** Policy hooks (compared by identity when peers are reconfigured). */
  importFilter?: PeerPolicy['importFilter'];
  exportFilter?: PeerPolicy['exportFilter'];
}

export interface OriginatedRoute {
  prefix: Prefix;
  /** ORIGIN, NEXT_HOP, MED, LOCAL_PREF, COMMUNITIES as the operator set them; AS_PATH is built per peer. */
  attrs: PathAttributes;
}

/** A Loc-RIB route for people and tests. */
export interface RibEntry {
  prefix: Prefix;
  attrs: PathAttributes;
  /** The peer it came from, or null when we originate it. */
  from: string | null;
  stale: boolean;
}

export interface SpeakerEvents {
  state: [{ peer: string; from: SessionState; to: SessionState; reason?: string }];
  /** What one peer sent (after RFC 7606 handling), before import policy. */
  update: [{ peer: string; announced: Array<{ prefix: Prefix; attrs: PathAttributes }>; withdrawn: Prefix[] }];
  endOfRib: [{ peer: string }];
  notification: [{ peer: string; direction: 'sent' | 'received'; code: number; subcode: number; data: Uint8Array; reason: string }];
  /** Loc-RIB best routes that changed, in one batch per handled message or operation. */
  bestChanged: [ReadonlyArray<{ prefix: Prefix; best: RibEntry | null }>];
  /** Route selection is no longer deferred (immediately unless restarting, RFC 4724 §4.1). */
  ready: [];
  /** The import judge refused a route: a new announcement, or a held route judged again (`rejudge`). */
  refused: [{ peer: string; prefix: Prefix; reason: string }];
}

type NormalSpec = PeerSpec & { port: number; passive: boolean };

interface PeerEntry {
  spec: NormalSpec;
  session: Session;
  /** A second session on an inbound connection that collided with the current one, until §6.8 decides. */
  challenger: Session | null;
  /** The session came from a collision and is passive: replace it with a normal one when it goes down. */
  promoted: boolean;
  policy: PeerPolicy;
  /** Our side as this peer's export sees it (next hop self is `local.address`). */
  local: LocalSpeaker;
  ribIn: AdjRibIn;
  /** The update group this peer is a member of: peers with identical export share one Adj-RIB-Out. */
  group: UpdateGroup<PeerEntry>;
  /** The peer sent a NOTIFICATION before the session ended: no graceful restart for that end (RFC 4724 §4.2). */
  notifiedDown: boolean;
  /** The NOTIFICATION it sent was Cease / Peer De-configured: its routes linger as if we had removed it. */
  deconfiguredUs: boolean;
  /** Its routes are stale because it de-configured us: a live path from another peer replaces each at once. */
  lingeringInPlace: boolean;
  /** Restart or stale-path timer while its routes are stale. */
  staleTimer: TimerHandle | null;
  /** The peer sent End-of-RIB on the current session. */
  endOfRib: boolean;
  /** Sessions established so far (the R bit goes only on the first when restarting). */
  sessions: number;
  /** Being removed by setPeers: its routes are removePeer's business (linger), not the session's 'down'. */
  removing: boolean;
  /** The current session reached Established and has not gone down since. */
  up: boolean;
  /** Adj-RIB-In routes the import judge refused (prefix key → the route and the reason); never in the Loc-RIB. */
  refused: Map<number, { route: Route; reason: string }>;
  /** clock.now() when a ROUTE-REFRESH was last answered; the answer scheduled for the end of the interval. */
  refreshAnsweredAt: number | null;
  refreshTimer: TimerHandle | null;
  /** Why the listener could not take this peer's TCP-MD5 key or GTSM: its inbound connections are refused. */
  securityRefusal: string | null;
}

export interface PeerStatus {
  address: string;
  port: number;
  peerAs: number;
  state: SessionState;
  since: number;
  routesReceived: number;
  routesAccepted: number;
  routesAdvertised: number;
  staleRoutes: number;
  lastError?: string;
  /** Why the session last failed, as a value (format it with ./down-reason.ts). */
  lastReason?: SessionDownReason;
}

function normalizeSpec(spec: PeerSpec): NormalSpec {
  return { ...spec, port: spec.port ?? BGP_PORT, passive: spec.passive ?? false };
}

const SPEC_FIELDS = ['address', 'port', 'peerAs', 'passive', 'holdTime', 'keepaliveTime', 'localAddress', 'rrClient', 'nextHop', 'subnet', 'allowOwnAs', 'localAs', 'restartTime', 'importFilter', 'exportFilter', 'maxPrefixes', 'password', 'ttlSecurity'] as const;

/** The TCP-MD5 key and GTSM hops of a peer, for the transport and the listener; undefined when neither. */
function securityOf(spec: PeerSpec): SecureSocketOptions | undefined {
  if (spec.password === undefined && spec.ttlSecurity === undefined) return undefined;
  return {
    ...(spec.password !== undefined ? { md5Key: Buffer.from(spec.password, 'utf8') } : {}),
    ...(spec.ttlSecurity !== undefined ? { ttlSecurity: spec.ttlSecurity } : {}),
  };
}

/** Refuses a password Linux cannot use and a GTSM hop count outside 1..255, naming the peer. */
function checkSecurity(spec: PeerSpec): void {
  if (spec.password !== undefined) {
    const bytes = Buffer.byteLength(spec.password, 'utf8');
    if (bytes < 1 || bytes > TCP_MD5_MAX_KEY_BYTES) throw new Error(`peer ${spec.address}: a password must be 1 to ${TCP_MD5_MAX_KEY_BYTES} bytes (TCP-MD5), this one is ${bytes}`);
  }
  const hops = spec.ttlSecurity;
  if (hops !== undefined && (!Number.isInteger(hops) || hops < 1 || hops > 255)) throw new Error(`peer ${spec.address}: ttlSecurity must be a hop count from 1 to 255, not ${hops}`);
}

function sameSpec(a: NormalSpec, b: NormalSpec): boolean {
  return SPEC_FIELDS.every((field) => a[field] === b[field]);
}

const DEFAULT_HELPER_RESTART_TIME = 120;
export const DEFAULT_MAX_PREFIXES = 500_000;
export const DEFAULT_PREFIX_LIMIT_RESTART_MS = 60_000;
export const DEFAULT_ROUTE_REFRESH_INTERVAL_MS = 5000;

export class Speaker extends EventEmitter<SpeakerEvents> {
  private readonly config: Required<Omit<SpeakerConfig, 'listen' | 'clusterId' | 'gracefulRestart' | 'importJudge' | 'maxSendQueueBytes' | 'minHoldTime'>> &
    Pick<SpeakerConfig, 'listen' | 'clusterId' | 'gracefulRestart' | 'importJudge' | 'maxSendQueueBytes' | 'minHoldTime'>;
  private readonly peers = new Map<string, PeerEntry>();
  private readonly table = new AttrTable();
  private readonly locRib = new LocRib(this.table);
  private readonly local: LocalSpeaker;
  private readonly localSource: RouteSource;
  /** Originated routes: prefix key → the canonical attribute set offered to the Loc-RIB. */
  private originated = new Map<number, PathAttributes>();
  private closeListener: ListenerHandle | null = null;
  private stopped = false;
  private deferring: boolean;
  private deferralTimer: TimerHandle | null = null;
  /** Set while peers that are not Established still hold the deferral up. */
  private peerWaitTimer: TimerHandle | null = null;
  private flushScheduled = false;
  private readonly dirty = new Set<UpdateGroup<PeerEntry>>();
  /** Update groups by export identity (see `groupFor`), and each live group's key. */
  private readonly groups = new Map<string, UpdateGroup<PeerEntry>>();
  private readonly groupKeys = new Map<UpdateGroup<PeerEntry>, string>();
  /** Removed peers whose routes still linger (make-before-break), until their timer. */
  private readonly lingering = new Set<PeerEntry>();
  /** Peers whose routes linger in place because they de-configured us (see setLingeringInPlace). */
  private lingeringInPlaceCount = 0;
  /** Export filters by identity → a small number for group keys. */
  private readonly filterIds = new WeakMap<object, number>();
  private nextFilterId = 1;

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
    const address = config.listen && config.listen.address !== '0.0.0.0' ? parseIpv4(config.listen.address) : config.routerId;
    this.local = { asn: config.localAs, routerId: config.routerId, address, ...(config.clusterId !== undefined ? { clusterId: config.clusterId } : {}) };
    this.localSource = localSource(this.local);
    this.deferring = config.gracefulRestart?.restarting === true;
  }

  /** Starts the listener (if any) and, when restarting, the selection deferral timer. */
  async start(): Promise<void> {
    const listen = this.config.listen;
    if (listen) {
      this.closeListener = await this.config.acceptor(listen.address, listen.port, (conn) => this.onInbound(conn));
      for (const entry of this.peers.values()) this.installSecurity(entry);
    }
    if (this.deferring) {
      const gr = this.config.gracefulRestart!;
      const ms = gr.deferralMs ?? gr.restartTime * 1000;
      this.peerWaitTimer = this.config.clock.setTimeout(() => {
        this.peerWaitTimer = null;
        this.checkDeferral();
      }, gr.peerWaitMs ?? 1000);
      this.deferralTimer = this.config.clock.setTimeout(() => this.endDeferral('selection deferral timer expired'), ms);
    } else {
      this.emit('ready');
    }
  }

  /** Makes the running sessions equal to `specs`; only peers whose parameters changed are restarted. */
  setPeers(specs: readonly PeerSpec[]): void {
    if (this.stopped) return;
    // Refuse a bad spec before anything changes (the error names the peer, the field and the value).
    for (const spec of specs) {
      parseIpv4(spec.address, 'peer address');
      if (spec.maxPrefixes !== undefined && !(Number.isInteger(spec.maxPrefixes) && spec.maxPrefixes >= 1 && spec.maxPrefixes <= 0xffffffff)) {
        throw new Error(`peer ${spec.address} maxPrefixes ${spec.maxPrefixes} is not a whole number 1..4294967295`);
      }
      if (spec.subnet !== undefined) parsePrefix(spec.subnet, { what: `peer ${spec.address} subnet` });
      checkSecurity(spec);
    }
    const desired = new Map(specs.map((s) => [s.address, normalizeSpec(s)]));
    for (const [address, entry] of this.peers) {
      const want = desired.get(address);
      if (!want) {
        this.removePeer(entry, CeaseSubcode.PEER_DECONFIGURED);
      } else if (!sameSpec(entry.spec, want)) {
        this.removePeer(entry, CeaseSubcode.OTHER_CONFIGURATION_CHANGE);
        this.addPeer(want);
      }
    }
    for (const [address, spec] of desired) if (!this.peers.has(address)) this.addPeer(spec);
    this.scheduleFlush();
  }

  /** Replaces the set of originated routes; peers are sent the difference. */
  setOriginated(routes: readonly OriginatedRoute[]): void {
    const next = new Map<number, PathAttributes>();
    for (const r of routes) next.set(prefixKey(r.prefix), this.table.canonical({ ...r.attrs, asPath: r.attrs.asPath ?? [] }));
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

  /** Asks a peer to send its routes again (RFC 2918). False when it is not Established or did not offer it. */
  refresh(address: string): boolean {
    return this.peers.get(address)?.session.sendRouteRefresh() ?? false;
  }

  /**
   * The peers and their sessions. `routesAccepted` and `staleRoutes` look at every received route; callers
   * that only need states and counts (metrics, on every state change) pass `{ routeDetail: false }` and
   * get 0 there.
   */
  peerStatus(options: { routeDetail?: boolean } = {}): PeerStatus[] {
    const detail = options.routeDetail ?? true;
    return [...this.peers.values()].map((entry) => {
      const stats = entry.session.stats;
      let stale = 0;
      let accepted = 0;
      if (detail) for (const route of entry.ribIn.routes()) {
        if (route.stale) stale++;
        if (this.locRib.candidates(route.key).some((c) => c.source.address === entry.policy.address)) accepted++;
      }
      return {
        address: entry.spec.address,
        port: entry.spec.port,
        peerAs: entry.spec.peerAs,
        state: entry.session.state,
        since: stats.stateSince,
        routesReceived: entry.ribIn.size,
        routesAccepted: accepted,
        routesAdvertised: entry.session.established ? entry.group.advertisedCount(entry) : 0,
        staleRoutes: stale,
        ...(stats.lastError ? { lastError: stats.lastError } : {}),
        ...(stats.lastReason ? { lastReason: stats.lastReason } : {}),
      };
    });
  }

  /** Routes received from one peer (its Adj-RIB-In, before import policy). */
  receivedRoutes(address: string): RibEntry[] {
    const entry = this.peers.get(address);
    return entry ? [...entry.ribIn.routes()].map((r) => ({ prefix: r.prefix, attrs: r.attrs, from: address, stale: r.stale })) : [];
  }

  /** Routes the import judge refused, per peer, as held in the peers' Adj-RIBs-In. */
  refusedRoutes(): RefusedRoute[] {
    const out: RefusedRoute[] = [];
    for (const entry of this.peers.values()) {
      for (const { route, reason } of entry.refused.values()) {
        out.push({ prefix: route.prefix, attrs: route.attrs, from: entry.spec.address, reason, stale: route.stale });
      }
    }
    return out;
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
        const route = this.imported(entry, received);
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
    return [...this.locRib.bestRoutes()].map((r) => this.toEntry(r));
  }

  /** Number of prefixes in the Loc-RIB. */
  get locRibSize(): number {
    return this.locRib.size;
  }

  /** Best route for one prefix. */
  best(prefix: Prefix): RibEntry | null {
    const route = this.locRib.best(prefixKey(prefix));
    return route ? this.toEntry(route) : null;
  }

  /** Distinct attribute sets held (interning at work: far fewer than routes). */
  get attributeSets(): number {
    return this.table.size;
  }

  /** Sends Cease/Administrative Shutdown to every peer and closes the listener. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const entry of this.lingering) if (entry.staleTimer) this.config.clock.clearTimeout(entry.staleTimer);
    this.lingering.clear();
    if (this.peerWaitTimer) this.config.clock.clearTimeout(this.peerWaitTimer);
    if (this.deferralTimer) this.config.clock.clearTimeout(this.deferralTimer);
    for (const entry of this.peers.values()) {
      // No graceful-restart bookkeeping (new restart timers) for sessions we end ourselves.
      entry.removing = true;
      if (entry.staleTimer) this.config.clock.clearTimeout(entry.staleTimer);
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

  private toEntry(route: Route): RibEntry {
    return { prefix: route.prefix, attrs: route.attrs, from: route.source.local ? null : formatIpv4(route.source.address), stale: route.stale };
  }

  private sessionConfig(entry: { spec: NormalSpec; sessions: number }, passive: boolean): SessionConfig {
    const spec = entry.spec;
    const gr = this.config.gracefulRestart;
    const source = this.sourceAddress(spec);
    return {
      localAs: spec.localAs ?? this.config.localAs,
      peerAs: spec.peerAs,
      routerId: this.config.routerId,
      peerAddress: spec.address,
      port: spec.port,
      passive,
      holdTime: spec.holdTime ?? this.config.holdTime,
      connectRetryMs: this.config.connectRetryMs,
      ...(this.config.maxSendQueueBytes !== undefined ? { maxSendQueueBytes: this.config.maxSendQueueBytes } : {}),
      ...(this.config.minHoldTime !== undefined ? { minHoldTime: this.config.minHoldTime } : {}),
      clock: this.config.clock,
      transport: this.config.transport,
      // The session puts `peer` in every log line itself.
      logger: this.config.logger,
      // RFC 4724 §3: as a restarting speaker, IPv4 unicast with the F bit (routes stay in the kernel while
      // we restart) and the R bit on the first session after our start; otherwise a helper.
      gracefulRestart: gr
        ? { restartTime: spec.restartTime ?? gr.restartTime, forwardingState: true, restarting: gr.restarting === true && this.deferring }
        : { restartTime: spec.restartTime ?? DEFAULT_HELPER_RESTART_TIME, helperOnly: true },
      ...(spec.keepaliveTime !== undefined ? { keepaliveTime: spec.keepaliveTime } : {}),
      ...(source !== undefined ? { localAddress: source } : {}),
      ...securityOf(spec),
    };
  }

  /**
   * The address outbound connections leave from: the peer's own setting, else the listen address. Peers
   * check the source of a connection against their neighbour list (BIRD 1.6 resets anything else), so
   * leaving this to the kernel (127.0.0.1 on loopback, the primary address elsewhere) breaks sessions.
   */
  private sourceAddress(spec: PeerSpec): string | undefined {
    if (spec.localAddress !== undefined) return spec.localAddress;
    const listen = this.config.listen?.address;
    return listen !== undefined && listen !== '0.0.0.0' ? listen : undefined;
  }

  private policyOf(spec: NormalSpec): PeerPolicy {
    const ebgp = spec.peerAs !== (spec.localAs ?? this.config.localAs);
    const address = parseIpv4(spec.address);
    const shared = ebgp ? sharedSubnetOf(spec, address) : undefined;
    return {
      address,
      asn: spec.peerAs,
      ebgp,
      rrClient: !ebgp && spec.rrClient === true,
      ...(spec.nextHop !== undefined ? { nextHop: spec.nextHop } : {}),
      ...(shared !== undefined ? { sharedSubnet: shared } : {}),
      ...(spec.allowOwnAs !== undefined ? { allowOwnAs: spec.allowOwnAs } : {}),
      ...(spec.importFilter !== undefined ? { importFilter: spec.importFilter } : {}),
      ...(spec.exportFilter !== undefined ? { exportFilter: spec.exportFilter } : {}),
    };
  }

  /** This speaker as one peer sees it: our AS toward it (localAs) and our address on its connection. */
  private localFor(spec: NormalSpec, address: number): LocalSpeaker {
    return { ...this.local, asn: spec.localAs ?? this.local.asn, address };
  }

  private sourceOf(policy: PeerPolicy, routerId: number): RouteSource {
    return Object.freeze({ address: policy.address, routerId, asn: policy.asn, ebgp: policy.ebgp, rrClient: policy.rrClient });
  }

  private addPeer(spec: NormalSpec): void {
    const policy = this.policyOf(spec);
    const source = this.sourceAddress(spec);
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
      notifiedDown: false,
      deconfiguredUs: false,
      lingeringInPlace: false,
      staleTimer: null,
      endOfRib: false,
      sessions: 0,
      removing: false,
      up: false,
      refused: new Map(),
      refreshAnsweredAt: null,
      refreshTimer: null,
      securityRefusal: null,
    };
    this.peers.set(spec.address, entry);
    this.installSecurity(entry);
    // What this peer should have: every best route its group exports, except its own — routes still
    // lingering from its previous configuration are its own too.
    const own: number[] = [];
    for (const old of this.lingering) {
      if (old.spec.address !== spec.address) continue;
      for (const route of old.ribIn.routes()) if (this.locRib.best(route.key)?.source.address === policy.address) own.push(route.key);
    }
    entry.group.add(entry, policy.address, own);
    this.wire(entry, entry.session);
    entry.session.start();
  }

  /** Cease to the peer first (so its NOTIFICATION and last state change are still reported), then forget it. */
  /**
   * Puts the peer's TCP-MD5 key and GTSM hops on the listener (inbound; outbound connections get them from
   * the transport). Where that fails — no native part, a kernel without TCP_MD5SIG — the peer's inbound
   * connections are refused and its status says why: never a session without the password.
   */
  private installSecurity(entry: PeerEntry): void {
    const options = securityOf(entry.spec);
    entry.securityRefusal = null;
    if (options === undefined || this.config.listen === null || this.closeListener === null) return;
    const set = this.closeListener.setPeerSecurity;
    try {
      if (!set) throw new Error('this listener cannot set TCP-MD5 or GTSM');
      set(entry.spec.address, options);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      entry.securityRefusal = reason;
      entry.session.noteError({ kind: 'inboundRefused', detail: reason });
      this.config.logger.error({ peer: entry.spec.address, reason }, 'TCP-MD5/GTSM cannot be set on the listener: inbound connections from this peer are refused');
    }
  }

  private removePeer(entry: PeerEntry, subcode: number): void {
    entry.removing = true;
    this.setLingeringInPlace(entry, false);
    this.cancelRefresh(entry);
    entry.challenger?.stop(subcode);
    entry.session.stop(subcode);
    if (entry.staleTimer) this.config.clock.clearTimeout(entry.staleTimer);
    entry.staleTimer = null;
    this.peers.delete(entry.spec.address);
    if (securityOf(entry.spec) !== undefined && !this.stopped) {
      try {
        this.closeListener?.setPeerSecurity?.(entry.spec.address, undefined);
      } catch (error) {
        this.config.logger.warn({ peer: entry.spec.address, error: error instanceof Error ? error.message : String(error) }, 'could not remove the peer\'s TCP-MD5 key from the listener');
      }
    }
    this.leaveGroup(entry);
    const linger = this.config.deconfiguredLingerMs;
    if (linger > 0 && entry.ribIn.size > 0 && !this.stopped) {
      // Make-before-break: where another peer already offers the prefix, hand over now; keep the rest
      // (stale) until a replacement had time to arrive.
      this.withdrawFromLocRib(entry, entry.ribIn.withdraw(this.coveredElsewhere(entry)));
      if (entry.ribIn.size === 0) return;
      entry.ribIn.markStale();
      this.lingering.add(entry);
      entry.staleTimer = this.config.clock.setTimeout(() => this.endLinger(entry), linger);
      return;
    }
    this.withdrawFromLocRib(entry, entry.ribIn.clear());
  }

  /**
   * The linger of a removed peer is over: its routes leave the Loc-RIB — except where the peer was added
   * back and its new session announced the prefix again (the Loc-RIB candidate, keyed by address, is then
   * the new session's).
   */
  private endLinger(entry: PeerEntry): void {
    entry.staleTimer = null;
    if (!this.lingering.delete(entry)) return;
    const current = this.peers.get(entry.spec.address);
    const keys = entry.ribIn.clear().filter((key) => current?.ribIn.get(key) === undefined);
    if (keys.length > 0) this.config.logger.info({ peer: entry.spec.address, routes: keys.length }, 'routes of a removed peer withdrawn after the linger');
    this.withdrawFromLocRib(entry, keys);
  }

  /**
   * The update group for a peer's export: same AS and eBGP-ness, RR client or not, next-hop mode, local
   * next-hop address and export filter (by identity) give the same attributes for every route, so such
   * peers share one Adj-RIB-Out and one encoding. The codec context (4-octet AS) is handled when encoding.
   * An eBGP peer one IP hop away is keyed by its subnet and its own address too: which next hops it gets
   * unchanged depends on the subnet, and a route whose next hop is its address gets ours instead — for it
   * alone. Such peers are few (the routers on a node's network), so they simply do not share.
   */
  private groupFor(policy: PeerPolicy, local: LocalSpeaker): UpdateGroup<PeerEntry> {
    const filter = policy.exportFilter;
    let filterId = 0;
    if (filter !== undefined) {
      filterId = this.filterIds.get(filter) ?? this.nextFilterId++;
      this.filterIds.set(filter, filterId);
    }
    const onLink = policy.sharedSubnet === undefined ? '-' : `${formatPrefix(policy.sharedSubnet.prefix)}>${formatIpv4(policy.sharedSubnet.peerAddress)}`;
    const key = `${local.asn}|${policy.asn}|${policy.ebgp}|${policy.rrClient}|${policy.nextHop ?? 'auto'}|${local.address}|${filterId}|${onLink}`;
    const existing = this.groups.get(key);
    if (existing !== undefined) return existing;
    // The group's policy is the peers' with an address no peer has: "not back to the sender" is per member.
    const shared: PeerPolicy = { ...policy, address: -1 };
    const group = new UpdateGroup<PeerEntry>(new AdjRibOut(this.table), new PeerExport(shared, local, this.table));
    for (const best of this.locRib.bestRoutes()) group.out.setDesired(best.key, group.exporter.attributes(best));
    this.groups.set(key, group);
    this.groupKeys.set(group, key);
    return group;
  }

  private leaveGroup(entry: PeerEntry): void {
    const group = entry.group;
    group.remove(entry);
    if (group.size > 0) return;
    const key = this.groupKeys.get(group);
    if (key !== undefined) this.groups.delete(key);
    this.groupKeys.delete(group);
    this.dirty.delete(group);
    group.clear();
  }

  /** Routes a session's events into the routing core while it is the peer's current session. */
  private wire(entry: PeerEntry, session: Session): void {
    const peer = entry.spec.address;
    const current = (): boolean => this.peers.get(peer) === entry && entry.session === session;
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
      this.emit('state', { peer, from: e.from, to: e.to, ...(e.reason ? { reason: e.reason } : {}) });
      if (entry.promoted && (e.to === 'Idle' || e.to === 'Active') && !this.stopped && !entry.removing) this.replaceSession(entry);
    });
    session.on('open', () => this.resolveCollision(entry));
    session.on('update', (e) => {
      if (!current()) return;
      this.emit('update', { peer, announced: e.announced, withdrawn: e.withdrawn });
      this.onUpdate(entry, e.message);
    });
    session.on('endOfRib', (e) => {
      if (!current()) return;
      this.emit('endOfRib', { peer });
      // RFC 4724 §2: End-of-RIB is per address family; only IPv4 unicast's ends our stale IPv4 routes.
      if (e.afi === Afi.IPV4 && e.safi === Safi.UNICAST) this.onEndOfRib(entry);
    });
    session.on('down', (e) => {
      // Whether the peer's routes are kept (RFC 4724 §4.2), decided for whichever session of this address
      // went down; the NOTIFICATION mark is used up either way.
      const live = this.peers.get(peer);
      const graceful = live !== undefined && !live.notifiedDown && hasIpv4Gr(e.peerGracefulRestart);
      if (live) live.notifiedDown = false;
      if (!current() || entry.removing) return;
      this.cancelRefresh(entry);
      // Only the end of an Established session decides about routes: a reconnect attempt that fails in
      // OpenSent/OpenConfirm learned nothing, and must not wipe routes kept through a graceful restart.
      if (!entry.up) return;
      entry.up = false;
      this.onDown(entry, graceful);
    });
    session.on('routeRefresh', () => {
      if (!current()) return;
      this.answerRefresh(entry);
    });
    session.on('notification', (e) => {
      if (this.peers.get(peer) !== entry) return;
      // RFC 4724 §4.2: a session ended by a NOTIFICATION, sent or received, is not a graceful restart
      // (tortie does not offer RFC 8538's N bit).
      if (entry.session === session) {
        entry.notifiedDown = true;
        entry.deconfiguredUs = !entry.policy.ebgp && e.direction === 'received' && e.code === ErrorCode.CEASE && e.subcode === CeaseSubcode.PEER_DECONFIGURED;
      }
      // A challenger's NOTIFICATIONs (its collision dump) are shown too: they went over the wire.
      if (entry.session === session || entry.challenger === session) this.emit('notification', { peer, ...e });
    });
  }

  private onEstablished(entry: PeerEntry): void {
    const session = entry.session;
    entry.up = true;
    entry.sessions++;
    entry.endOfRib = false;
    entry.notifiedDown = false;
    entry.deconfiguredUs = false;
    const negotiated = session.negotiated!;
    entry.ribIn.setSource(this.sourceOf(entry.policy, negotiated.peerBgpId));
    // Next hop self is the address of this connection; rebuild the exporter if it is not the one assumed.
    const localAddress = session.localAddress !== undefined ? parseIpv4(session.localAddress) : undefined;
    if (localAddress !== undefined && localAddress !== entry.local.address) {
      // Routes kept through its graceful restart may still be best: they stay exceptions in the new group.
      const own: number[] = [];
      for (const route of entry.ribIn.routes()) if (this.locRib.best(route.key)?.source.address === entry.policy.address) own.push(route.key);
      this.leaveGroup(entry);
      entry.local = this.localFor(entry.spec, localAddress);
      entry.group = this.groupFor(entry.policy, entry.local);
      entry.group.add(entry, entry.policy.address, own);
    }
    // Back after it de-configured us (its side re-added us): its lingering routes keep their linger timer,
    // and its End-of-RIB sweeps what it did not send again — no graceful-restart rule applies to them.
    if (entry.lingeringInPlace) {
      this.setLingeringInPlace(entry, false);
    } else if (entry.staleTimer) {
      // RFC 4724 §4.2: stale routes stay only if the peer is back with the F bit for IPv4 unicast.
      this.config.clock.clearTimeout(entry.staleTimer);
      entry.staleTimer = null;
      if (!hasIpv4Gr(negotiated.gracefulRestart, true)) {
        this.sweepStale(entry, 'the peer came back without preserving forwarding state');
      } else {
        entry.staleTimer = this.config.clock.setTimeout(() => this.sweepStale(entry, 'no End-of-RIB within the stale-path time'), this.config.stalePathMs);
      }
    }
    // RFC 4271 §9.2: a new session gets the whole Adj-RIB-Out, then End-of-RIB (RFC 4724 §2).
    entry.group.reset(entry, 'fresh');
    if (!this.deferring) {
      this.flushGroup(entry.group);
      session.sendUpdates([encodeEndOfRib()]);
    } else {
      this.checkDeferral();
    }
  }

  /**
   * RFC 2918 §4: a ROUTE-REFRESH is answered with the whole Adj-RIB-Out — at most once per interval per
   * peer. One asked for sooner is answered at the end of the interval, and any more asked for meanwhile
   * ride on that answer: a peer sending ROUTE-REFRESH in a loop gets the table once per interval, not
   * once per request.
   */
  private answerRefresh(entry: PeerEntry): void {
    if (entry.refreshTimer !== null) return; // an answer is already scheduled: this one is coalesced into it
    const now = this.config.clock.now();
    const due = entry.refreshAnsweredAt === null ? now : entry.refreshAnsweredAt + this.config.routeRefreshIntervalMs;
    const answer = (): void => {
      entry.refreshAnsweredAt = this.config.clock.now();
      entry.group.reset(entry, 'refresh');
      this.markDirty(entry.group);
    };
    if (due <= now) {
      answer();
      return;
    }
    this.config.logger.debug({ peer: entry.spec.address, inMs: due - now }, 'ROUTE-REFRESH: answered at the end of the interval');
    entry.refreshTimer = this.config.clock.setTimeout(() => {
      entry.refreshTimer = null;
      if (this.peers.get(entry.spec.address) === entry && entry.session.established) answer();
    }, due - now);
  }

  private cancelRefresh(entry: PeerEntry): void {
    if (entry.refreshTimer !== null) this.config.clock.clearTimeout(entry.refreshTimer);
    entry.refreshTimer = null;
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
    this.config.logger.warn({ peer: entry.spec.address, prefixes: count, maxPrefixes: limit, restartMs }, 'peer sent more prefixes than allowed: session reset, reconnect after the restart delay');
    entry.session.limitExceeded(CeaseSubcode.MAX_PREFIXES, data, `${count} prefixes received, more than the limit of ${limit} (IPv4 unicast)`, restartMs);
    return true;
  }

  private onUpdate(entry: PeerEntry, message: Parameters<AdjRibIn['apply']>[0]): void {
    const changes: BestChange[] = [];
    const keys = entry.ribIn.apply(message);
    if (this.overPrefixLimit(entry)) return;
    for (const key of keys) {
      const received = entry.ribIn.get(key);
      if (received === undefined) entry.refused.delete(key);
      const route = received ? this.imported(entry, received) : null;
      const change = this.locRib.set(entry.ribIn.source, key, route);
      if (change) changes.push(change);
      // Make-before-break: a live peer now offers this prefix, so a removed peer's lingering copy has
      // done its job and goes (else the stale copy could stay best for the rest of the linger).
      if (route !== null && (this.lingering.size > 0 || this.lingeringInPlaceCount > 0)) this.replaceLingering(entry, key, changes);
    }
    this.propagate(changes);
  }

  /**
   * What the Loc-RIB gets from `entry` for a received route: the RFC import rules (./rib/policy.ts), then the
   * import judge. A refusal is recorded on the peer (and said once per route and reason); null = not used.
   */
  private imported(entry: PeerEntry, received: Route): Route | null {
    const route = importRoute(received, entry.policy, entry.local, this.table);
    const judge = this.config.importJudge;
    const reason = route === null || judge === undefined ? null : judge(route);
    if (reason === null) {
      entry.refused.delete(received.key);
      return route;
    }
    const held = entry.refused.get(received.key);
    if (held?.route !== received || held.reason !== reason) {
      entry.refused.set(received.key, { route: received, reason });
      this.emit('refused', { peer: entry.spec.address, prefix: received.prefix, reason });
    }
    return null;
  }

  private replaceLingering(by: PeerEntry, key: number, changes: BestChange[]): void {
    for (const old of this.lingering) {
      if (old.spec.address === by.spec.address || old.ribIn.withdraw([key]).length === 0) continue;
      old.refused.delete(key);
      const change = this.locRib.set(old.ribIn.source, key, null);
      if (change) changes.push(change);
    }
    // Peers that de-configured us: only their stale copy goes (a fresh one, after they came back, stays).
    for (const old of this.peers.values()) {
      if (!old.lingeringInPlace || old === by || old.ribIn.get(key)?.stale !== true || old.ribIn.withdraw([key]).length === 0) continue;
      old.refused.delete(key);
      const change = this.locRib.set(old.ribIn.source, key, null);
      if (change) changes.push(change);
    }
  }

  private setLingeringInPlace(entry: PeerEntry, on: boolean): void {
    if (entry.lingeringInPlace === on) return;
    entry.lingeringInPlace = on;
    this.lingeringInPlaceCount += on ? 1 : -1;
  }

  private onEndOfRib(entry: PeerEntry): void {
    entry.endOfRib = true;
    // RFC 4724 §4.2: End-of-RIB from a restarted peer removes what it did not send again.
    if (entry.staleTimer) {
      this.config.clock.clearTimeout(entry.staleTimer);
      entry.staleTimer = null;
      this.sweepStale(entry, 'End-of-RIB received');
    }
    // The same peer, added back after a reconfiguration, has now sent everything it has: what lingers
    // from its previous session and was not sent again goes now, not at the end of the linger.
    for (const old of [...this.lingering]) {
      if (old.spec.address !== entry.spec.address) continue;
      if (old.staleTimer) this.config.clock.clearTimeout(old.staleTimer);
      this.endLinger(old);
    }
    this.checkDeferral();
  }

  private onDown(entry: PeerEntry, graceful: boolean): void {
    this.setLingeringInPlace(entry, false);
    if (graceful && entry.ribIn.size > 0) {
      // RFC 4724 §4.2: keep the routes, marked stale, for the peer's restart time.
      const count = entry.ribIn.markStale();
      const seconds = entry.session.negotiated?.gracefulRestart?.restartTime ?? DEFAULT_HELPER_RESTART_TIME;
      if (entry.staleTimer) this.config.clock.clearTimeout(entry.staleTimer);
      entry.staleTimer = this.config.clock.setTimeout(() => this.sweepStale(entry, `restart time of ${seconds} s passed`), seconds * 1000);
      this.config.logger.info({ peer: entry.spec.address, routes: count, restartTime: seconds }, 'graceful restart: keeping the peer\'s routes as stale');
      return;
    }
    const linger = this.config.deconfiguredLingerMs;
    if (entry.deconfiguredUs && linger > 0 && entry.ribIn.size > 0) {
      // It took us out of its configuration (see the header): hand over where another peer offers the
      // prefix, keep the rest stale until a replacement arrives, it comes back (End-of-RIB), or the linger ends.
      entry.deconfiguredUs = false;
      this.withdrawFromLocRib(entry, entry.ribIn.withdraw(this.coveredElsewhere(entry)));
      if (entry.ribIn.size === 0) return;
      const count = entry.ribIn.markStale();
      this.setLingeringInPlace(entry, true);
      if (entry.staleTimer) this.config.clock.clearTimeout(entry.staleTimer);
      entry.staleTimer = this.config.clock.setTimeout(() => this.sweepStale(entry, `it de-configured us and no replacement came within ${linger} ms`, 'routes of a peer that de-configured us withdrawn after the linger'), linger);
      this.config.logger.info({ peer: entry.spec.address, routes: count, lingerMs: linger }, 'peer de-configured us: keeping its routes (stale) until another peer offers them');
      return;
    }
    this.withdrawFromLocRib(entry, entry.ribIn.clear());
  }

  /** Keys of `entry`'s routes that another peer (or we) also offer. */
  private coveredElsewhere(entry: PeerEntry): number[] {
    const covered: number[] = [];
    for (const route of entry.ribIn.routes()) {
      if (this.locRib.candidates(route.key).some((c) => c.source.address !== entry.policy.address)) covered.push(route.key);
    }
    return covered;
  }

  private sweepStale(entry: PeerEntry, reason: string, message = 'graceful restart: stale routes removed'): void {
    entry.staleTimer = null;
    this.setLingeringInPlace(entry, false);
    if (this.peers.get(entry.spec.address) !== entry) return;
    const removed = entry.ribIn.sweepStale();
    if (removed.length > 0) this.config.logger.info({ peer: entry.spec.address, routes: removed.length, reason }, message);
    this.withdrawFromLocRib(entry, removed);
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
    for (const group of this.groups.values()) {
      group.apply(changes);
      if (group.hasPending()) this.markDirty(group);
    }
    if (this.listenerCount('bestChanged') > 0) {
      this.emit(
        'bestChanged',
        changes.map((c) => ({ prefix: prefixFromKey(c.key), best: c.best ? this.toEntry(c.best) : null })),
      );
    }
  }

  private markDirty(group: UpdateGroup<PeerEntry>): void {
    this.dirty.add(group);
    this.scheduleFlush();
  }

  /** Sends are coalesced: everything changed while handling this round of I/O goes out together. */
  private scheduleFlush(): void {
    if (this.flushScheduled || this.dirty.size === 0) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      const dirty = [...this.dirty];
      this.dirty.clear();
      for (const group of dirty) if (this.groupKeys.has(group)) this.flushContained(group);
    });
  }

  /**
   * A flush runs out of a setImmediate, where an exception would end the process: a failure exporting to
   * one update group is logged and resets that group's sessions (they get the whole table again), and the
   * other groups and the process carry on.
   */
  private flushContained(group: UpdateGroup<PeerEntry>): void {
    try {
      this.flushGroup(group);
    } catch (error) {
      const members = [...this.peers.values()].filter((entry) => entry.group === group);
      const message = error instanceof Error ? error.message : String(error);
      this.config.logger.error({ peers: members.map((entry) => entry.spec.address), error: message }, 'BGP export failed: resetting the sessions of its update group');
      for (const entry of members) entry.session.abort(`export failed: ${message}`);
    }
  }

  /**
   * Sends every Established member of `group` the difference between what it should have and what it was
   * sent. The group's batch is encoded once per codec context; members only re-encode their exceptions.
   */
  /**
   * A route whose attributes no longer fit a 4096-byte UPDATE once this hop adds its own (LOCAL_PREF,
   * ORIGINATOR_ID, CLUSTER_LIST, AS4_PATH) cannot be sent: it is left out for this peer and said in the log.
   * An exception here would run out of a setImmediate and take the whole process down with it.
   */
  private encodeOrSkip(attrs: PathAttributes, prefixes: readonly Prefix[], ctx: CodecContext, session: Session): Uint8Array[] {
    try {
      return encodeUpdates(attrs, prefixes, ctx);
    } catch (error) {
      this.config.logger.error(
        { peer: session.negotiated ? formatIpv4(session.negotiated.peerBgpId) : undefined, prefixes: prefixes.length, first: prefixes[0] ? formatPrefix(prefixes[0]) : undefined, err: (error as Error).message },
        'routes not advertised: their path attributes do not fit a BGP UPDATE',
      );
      return [];
    }
  }

  private flushGroup(group: UpdateGroup<PeerEntry>): void {
    if (this.deferring) return;
    // RFC 4760 §8 / RFC 4271: IPv4 unicast routes only to a peer that negotiated that family.
    const plan = group.flush((entry) => entry.session.established && this.peers.get(entry.spec.address) === entry && carriesIpv4(entry.session));
    const encoded = new Map<string, { withdraw?: Uint8Array[]; announce: Array<Uint8Array[] | undefined> }>();
    for (const send of plan.sends) {
      const session = send.member.session;
      const ctx = session.codecContext;
      const ctxKey = `${ctx.fourOctetAs}|${ctx.ebgp === true}`;
      let shared = encoded.get(ctxKey);
      if (shared === undefined) {
        shared = { announce: [] };
        encoded.set(ctxKey, shared);
      }
      const messages: Uint8Array[] = [];
      const add = (list: readonly Uint8Array[]): void => {
        for (const m of list) messages.push(m);
      };
      if (send.sharedWithdraw) add((shared.withdraw ??= encodeWithdrawals(plan.batch.withdraw, ctx)));
      if (send.withdraw.length > 0) add(encodeWithdrawals(send.withdraw, ctx));
      for (const index of send.shared) {
        let list = shared.announce[index];
        if (list === undefined) {
          const g = plan.batch.announce[index]!;
          list = this.encodeOrSkip(g.attrs, g.prefixes, ctx, session);
          shared.announce[index] = list;
        }
        add(list);
      }
      for (const g of send.announce) add(this.encodeOrSkip(g.attrs, g.prefixes, ctx, session));
      if (messages.length > 0 && !session.sendUpdates(messages)) group.reset(send.member, 'fresh');
    }
  }

  // ---- graceful restart: the restarting side ------------------------------------------------------------

  /** RFC 4724 §4.1: selection is deferred until every GR peer that is up has sent End-of-RIB. */
  private checkDeferral(): void {
    if (!this.deferring) return;
    for (const entry of this.peers.values()) {
      const negotiated = entry.session.negotiated;
      if (!entry.session.established || !negotiated) {
        if (this.peerWaitTimer !== null) return; // not up yet: wait for it, briefly
        continue;
      }
      const gr = negotiated.gracefulRestart;
      // Peers without GR, or restarting themselves (R bit), are not waited for.
      if (gr === undefined || gr.restarting) continue;
      if (!entry.endOfRib) return;
    }
    this.endDeferral('End-of-RIB received from every peer that is up');
  }

  private endDeferral(reason: string): void {
    if (!this.deferring) return;
    this.deferring = false;
    if (this.deferralTimer) this.config.clock.clearTimeout(this.deferralTimer);
    this.deferralTimer = null;
    if (this.peerWaitTimer) this.config.clock.clearTimeout(this.peerWaitTimer);
    this.peerWaitTimer = null;
    this.config.logger.info({ reason }, 'graceful restart: route selection deferral over, sending routes');
    // The restart is over: later OPENs (reconnects) no longer say "restarting" (RFC 4724 §3).
    for (const entry of this.peers.values()) {
      entry.session.setRestarting(false);
      entry.challenger?.setRestarting(false);
    }
    for (const group of this.groups.values()) this.flushGroup(group);
    for (const entry of this.peers.values()) if (entry.session.established) entry.session.sendUpdates([encodeEndOfRib()]);
    this.emit('ready');
  }

  // ---- connection collisions ------------------------------------------------------------------------------

  /** A session that won a collision was passive; once it ends, go back to a normal (active) one. */
  private replaceSession(entry: PeerEntry): void {
    const old = entry.session;
    old.removeAllListeners();
    old.stop(CeaseSubcode.ADMINISTRATIVE_RESET);
    entry.promoted = false;
    entry.session = new Session(this.sessionConfig(entry, entry.spec.passive));
    this.wire(entry, entry.session);
    entry.session.start();
  }

  /**
   * RFC 4271 §6.8 connection collision: two connections with the same peer, one we initiated and one it
   * did. Once a BGP identifier is known (an OPEN arrived on either), keep the connection initiated by the
   * side with the higher identifier and send Cease / Connection Collision Resolution on the other.
   */
  private resolveCollision(entry: PeerEntry): void {
    const challenger = entry.challenger;
    if (!challenger) return;
    const remoteId = challenger.peerBgpId ?? entry.session.peerBgpId;
    if (remoteId === undefined) return;
    // The existing connection is ours unless it was accepted too (then the newer inbound one simply loses).
    const keepInbound = collisionWinner(entry.session.connectionDirection, this.config.routerId, remoteId) === 'challenger';
    entry.challenger = null;
    if (keepInbound) {
      this.config.logger.info({ peer: entry.spec.address }, 'connection collision: keeping the connection the peer opened (its BGP identifier is higher)');
      const loser = entry.session;
      entry.session = challenger;
      entry.promoted = true;
      loser.collisionDump();
      loser.removeAllListeners();
      // The winner may already be Established (its events were ignored while it was the challenger).
      if (challenger.established) this.onEstablished(entry);
    } else {
      this.config.logger.info({ peer: entry.spec.address }, 'connection collision: keeping our connection (our BGP identifier is higher)');
      challenger.collisionDump();
      challenger.removeAllListeners();
    }
  }

  /** An inbound TCP connection: give it to the session of the peer it comes from, or refuse it. */
  private onInbound(conn: Connection): void {
    const remote = conn.remoteAddress.replace(/^::ffff:/, '');
    const entry = this.peers.get(remote);
    if (!entry || this.stopped) {
      this.config.logger.info({ remote, localAddress: conn.localAddress }, 'connection from an address that is not a configured peer: closed');
      conn.destroy();
      return;
    }
    if (entry.securityRefusal !== null) {
      // Never a session without the password or GTSM the peer is configured with.
      this.config.logger.warn({ peer: remote, reason: entry.securityRefusal }, 'inbound connection refused: the peer\'s TCP-MD5 or GTSM could not be set on the listener');
      conn.destroy();
      return;
    }
    if (entry.session.holdingDown) {
      // DampPeerOscillations / a prefix-limit restart delay: the peer waits as our own reconnect does.
      this.config.logger.info({ peer: remote, state: entry.session.state }, 'inbound connection refused: waiting after an error before this peer may reconnect');
      conn.destroy();
      return;
    }
    if (entry.session.acceptConnection(conn)) return;
    // RFC 4271 §6.8: a collision with an Established session closes the new connection; so does a third
    // connection while two are being resolved.
    if (entry.session.established || entry.challenger || !entry.session.enabled) {
      this.config.logger.info({ peer: remote, state: entry.session.state }, 'inbound connection refused: a session with this peer already exists');
      conn.destroy();
      return;
    }
    // Our own connection is in OpenSent/OpenConfirm: run the inbound one beside it until an OPEN tells
    // us the peer's BGP identifier.
    const challenger = new Session(this.sessionConfig(entry, true));
    entry.challenger = challenger;
    this.wire(entry, challenger);
    challenger.start();
    if (!challenger.acceptConnection(conn)) {
      entry.challenger = null;
      challenger.removeAllListeners();
      challenger.stop();
      conn.destroy();
      return;
    }
    this.resolveCollision(entry);
  }

  get routerIdText(): string {
    return formatIpv4(this.config.routerId);
  }
}

/**
 * The subnet an eBGP peer shares with us, when it is one IP hop away (its address inside `spec.subnet`)
 * and next hops toward it follow 'auto' — the only mode third-party next hops change (RFC 4271 §5.1.3 (2)).
 */
function sharedSubnetOf(spec: NormalSpec, address: number): SharedSubnet | undefined {
  if (spec.subnet === undefined || (spec.nextHop ?? 'auto') !== 'auto') return undefined;
  const prefix = parsePrefix(spec.subnet, { what: `peer ${spec.address} subnet` });
  return prefixContains(prefix, address) ? { prefix, peerAddress: address } : undefined;
}

/** Prefixes longer than this are looked up one by one inside a `rejudge` prefix (at most 2^(n+1) − 1 keys). */
const REJUDGE_ENUMERATE_BITS = 10;

/**
 * The routes of `ribIn` inside `within` (equal or more specific), or all of them. A short prefix (a /26
 * block: 127 possible keys) is looked up key by key, so a change to one block costs the same whatever the
 * size of the table; a wide one (a pool) scans the table once.
 */
function* routesWithin(ribIn: AdjRibIn, within: readonly Prefix[] | undefined): Generator<Route> {
  if (within === undefined) {
    yield* [...ribIn.routes()];
    return;
  }
  const narrow = within.filter((p) => 32 - p.len <= REJUDGE_ENUMERATE_BITS);
  const wide = within.filter((p) => 32 - p.len > REJUDGE_ENUMERATE_BITS);
  const seen = new Set<number>();
  for (const outer of narrow) {
    for (let len = outer.len; len <= 32; len++) {
      const step = 2 ** (32 - len);
      for (let addr = outer.addr; addr < outer.addr + 2 ** (32 - outer.len); addr += step) {
        const key = prefixKey({ addr, len });
        const route = ribIn.get(key);
        if (route !== undefined && !seen.has(key)) {
          seen.add(key);
          yield route;
        }
      }
    }
  }
  if (wide.length === 0) return;
  for (const route of [...ribIn.routes()]) {
    if (seen.has(route.key)) continue;
    const { addr, len } = route.prefix;
    if (wide.some((outer) => len >= outer.len && prefixContains(outer, addr))) yield route;
  }
}

/**
 * The session negotiated IPv4 unicast (RFC 4760 §8): `families` is what both OPENs have in common, a side
 * without the multiprotocol capability counting as IPv4 unicast only.
 */
function carriesIpv4(session: Session): boolean {
  return session.negotiated?.families.some((f) => f.afi === Afi.IPV4 && f.safi === Safi.UNICAST) ?? false;
}

/** The peer's GR capability covers IPv4 unicast (and, with `forwarding`, says forwarding was preserved). */
function hasIpv4Gr(gr: { families: ReadonlyArray<{ afi: number; safi: number; forwardingState: boolean }> } | undefined, forwarding = false): boolean {
  return gr?.families.some((f) => f.afi === Afi.IPV4 && f.safi === Safi.UNICAST && (!forwarding || f.forwardingState)) ?? false;
}
