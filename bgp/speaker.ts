// DOC: the Speaker owns everything one BGP router does with its peers.
//
// - a TCP listener (optional) that hands inbound connections to the session of the peer they come from
//   and resolves connection collisions (RFC 4271 §6.8);
// - one Session per configured peer, kept equal to a desired set (`setPeers`): a peer added starts, a peer
//   removed gets Cease/Peer De-configured, a peer whose parameters changed restarts with Cease/Other
//   Configuration Change, an unchanged peer is left alone;
// - originated routes (`setOriginated`), kept as a desired set and advertised to every Established peer as
//   differences only (desired vs advertised, per peer); after a (re)connect the whole set is sent again,
//   followed by End-of-RIB (RFC 4724 §2);
// - what peers send arrives as `update` events after the session's Adj-RIB-In has applied it.
//
// Why this is hard: sessions come and go while routes change; every peer must end up with exactly the
// desired set whatever the interleaving, and nothing may be sent to a peer that is not Established.

import { EventEmitter } from 'node:events';
import { createServer } from 'node:net';
import { encodeUpdates, encodeWithdrawals, encodeEndOfRib } from './codec/index.js';
import { systemClock, type Clock } from './clock.js';
import { CeaseSubcode } from './errors.js';
import { formatIpv4, formatPrefix, parseIpv4, prefixKey } from './ip.js';
import { Session, type Logger, type SessionConfig, type SessionState } from './session.js';
import { tcpTransport, wrapSocket, type Connection, type Transport } from './transport.js';
import { AsPathSegmentType, BGP_PORT, type PathAttributes, type Prefix } from './types.js';

/** The subset of pino's logger the library uses (`child` optional); pass nothing to log nothing. */
export interface LoggerLike extends Logger {
  child?(bindings: object): LoggerLike;
}

const silentLogger: LoggerLike = { debug() {}, info() {}, warn() {}, error() {} };

export interface SpeakerConfig {
  routerId: number;
  localAs: number;
  /** Where to accept connections; null = only connect out. */
  listen: { address: string; port: number } | null;
  /** Hold time offered to every peer unless the peer says otherwise (default 90). */
  holdTime?: number;
  connectRetryMs?: number;
  clock?: Clock;
  transport?: Transport;
  /** How to accept connections (default: a TCP server); tests pass MemoryNetwork's listen. */
  acceptor?: Acceptor;
  logger?: LoggerLike;
}

/** Listens on address:port and hands every inbound connection to `onConnection`; resolves to a closer. */
export type Acceptor = (address: string, port: number, onConnection: (conn: Connection) => void) => Promise<() => Promise<void>>;

/** The TCP acceptor. Rejects with a message naming the address and the likely cause when it cannot bind. */
export const tcpAcceptor: Acceptor = async (address, port, onConnection) => {
  const server = createServer({ noDelay: true }, (socket) => onConnection(wrapSocket(socket)));
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
  return () => new Promise<void>((resolve) => server.close(() => resolve()));
};

export interface PeerSpec {
  address: string;
  port?: number;
  peerAs: number;
  passive?: boolean;
  holdTime?: number;
  keepaliveTime?: number;
  localAddress?: string;
}

export interface OriginatedRoute {
  prefix: Prefix;
  /** ORIGIN, NEXT_HOP, MED, LOCAL_PREF, COMMUNITIES as the operator set them; AS_PATH is built per peer. */
  attrs: PathAttributes;
}

export interface SpeakerEvents {
  state: [{ peer: string; from: SessionState; to: SessionState; reason?: string }];
  update: [{ peer: string; announced: Array<{ prefix: Prefix; attrs: PathAttributes }>; withdrawn: Prefix[] }];
  endOfRib: [{ peer: string }];
  notification: [{ peer: string; direction: 'sent' | 'received'; code: number; subcode: number; data: Uint8Array; reason: string }];
}

interface PeerEntry {
  spec: Required<Pick<PeerSpec, 'address' | 'port' | 'peerAs' | 'passive'>> & PeerSpec;
  session: Session;
  /** A second session on an inbound connection that collided with the current one, until §6.8 decides. */
  challenger: Session | null;
  /** The session came from a collision and is passive: replace it with a normal one when it goes down. */
  promoted: boolean;
  /** What this peer has been sent: prefix key → key of the exported attribute set. */
  advertised: Map<number, string>;
  ebgp: boolean;
}

export interface PeerStatus {
  address: string;
  port: number;
  peerAs: number;
  state: SessionState;
  since: number;
  routesReceived: number;
  routesAdvertised: number;
  lastError?: string;
}

function normalizeSpec(spec: PeerSpec): PeerEntry['spec'] {
  return { ...spec, port: spec.port ?? BGP_PORT, passive: spec.passive ?? false };
}

function sameSpec(a: PeerEntry['spec'], b: PeerEntry['spec']): boolean {
  return (
    a.address === b.address &&
    a.port === b.port &&
    a.peerAs === b.peerAs &&
    a.passive === b.passive &&
    a.holdTime === b.holdTime &&
    a.keepaliveTime === b.keepaliveTime &&
    a.localAddress === b.localAddress
  );
}

/** A stable text key for an attribute set, for grouping prefixes into UPDATEs and for diffing. */
function attrsKey(attrs: PathAttributes): string {
  return JSON.stringify(attrs, (_key, value: unknown) => (value instanceof Uint8Array ? Buffer.from(value).toString('hex') : value));
}

export class Speaker extends EventEmitter<SpeakerEvents> {
  private readonly config: Required<Omit<SpeakerConfig, 'listen'>> & Pick<SpeakerConfig, 'listen'>;
  private readonly peers = new Map<string, PeerEntry>();
  private originated = new Map<number, OriginatedRoute>();
  private closeListener: (() => Promise<void>) | null = null;
  private stopped = false;

  constructor(config: SpeakerConfig) {
    super();
    this.config = {
      holdTime: 90,
      connectRetryMs: 5000,
      clock: systemClock,
      transport: tcpTransport,
      acceptor: tcpAcceptor,
      logger: silentLogger,
      ...config,
    };
  }

  /** Starts the listener (if any). Rejects with a message naming the address when it cannot bind. */
  async start(): Promise<void> {
    const listen = this.config.listen;
    if (!listen) return;
    this.closeListener = await this.config.acceptor(listen.address, listen.port, (conn) => this.onInbound(conn));
  }

  /** Makes the running sessions equal to `specs`; only peers whose parameters changed are restarted. */
  setPeers(specs: readonly PeerSpec[]): void {
    if (this.stopped) return;
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
  }

  /** Replaces the set of originated routes; every Established peer is sent the difference. */
  setOriginated(routes: readonly OriginatedRoute[]): void {
    this.originated = new Map(routes.map((r) => [prefixKey(r.prefix), r]));
    for (const entry of this.peers.values()) if (entry.session.established) this.syncPeer(entry);
  }

  peerStatus(): PeerStatus[] {
    return [...this.peers.values()].map((entry) => {
      const stats = entry.session.stats;
      return {
        address: entry.spec.address,
        port: entry.spec.port,
        peerAs: entry.spec.peerAs,
        state: entry.session.state,
        since: stats.stateSince,
        routesReceived: entry.session.adjRibIn.size,
        routesAdvertised: entry.advertised.size,
        ...(stats.lastError ? { lastError: stats.lastError } : {}),
      };
    });
  }

  /** Routes received from one peer (its Adj-RIB-In), for status output. */
  receivedRoutes(address: string): Array<{ prefix: Prefix; attrs: PathAttributes }> {
    const entry = this.peers.get(address);
    return entry ? [...entry.session.adjRibIn.values()] : [];
  }

  /** Sends Cease/Administrative Shutdown to every peer and closes the listener. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const entry of this.peers.values()) {
      entry.challenger?.stop(CeaseSubcode.ADMINISTRATIVE_SHUTDOWN);
      entry.session.stop(CeaseSubcode.ADMINISTRATIVE_SHUTDOWN);
    }
    this.peers.clear();
    const close = this.closeListener;
    this.closeListener = null;
    if (close) await close();
  }

  private sessionConfig(spec: PeerEntry['spec'], passive: boolean): SessionConfig {
    // The session puts `peer` in every log line itself.
    const logger = this.config.logger;
    return {
      localAs: this.config.localAs,
      peerAs: spec.peerAs,
      routerId: this.config.routerId,
      peerAddress: spec.address,
      port: spec.port,
      passive,
      holdTime: spec.holdTime ?? this.config.holdTime,
      connectRetryMs: this.config.connectRetryMs,
      clock: this.config.clock,
      transport: this.config.transport,
      logger,
      ...(spec.keepaliveTime !== undefined ? { keepaliveTime: spec.keepaliveTime } : {}),
      ...(this.sourceAddress(spec) !== undefined ? { localAddress: this.sourceAddress(spec) } : {}),
    };
  }

  /**
   * The address outbound connections leave from: the peer's own setting, else the listen address. Peers
   * check the source of a connection against their neighbour list (BIRD 1.6 resets anything else), so
   * leaving this to the kernel (127.0.0.1 on loopback, the primary address elsewhere) breaks sessions.
   */
  private sourceAddress(spec: PeerEntry['spec']): string | undefined {
    if (spec.localAddress !== undefined) return spec.localAddress;
    const listen = this.config.listen?.address;
    return listen !== undefined && listen !== '0.0.0.0' ? listen : undefined;
  }

  private addPeer(spec: PeerEntry['spec']): void {
    const session = new Session(this.sessionConfig(spec, spec.passive));
    const entry: PeerEntry = {
      spec,
      session,
      challenger: null,
      promoted: false,
      advertised: new Map(),
      ebgp: spec.peerAs !== this.config.localAs,
    };
    this.peers.set(spec.address, entry);
    this.wire(entry, session);
    session.start();
  }

  /** Routes a session's events to the speaker's, while it is the peer's current session. */
  private wire(entry: PeerEntry, session: Session): void {
    const peer = entry.spec.address;
    const current = (): boolean => this.peers.get(peer) === entry && entry.session === session;
    session.on('state', (e) => {
      if (!current()) return;
      if (e.to === 'Established') {
        // RFC 4271 §9.2: the whole Adj-RIB-Out goes to a new session; End-of-RIB marks its end (RFC 4724 §2).
        entry.advertised.clear();
        this.syncPeer(entry);
        session.sendUpdates([encodeEndOfRib()]);
      } else if (e.from === 'Established') {
        entry.advertised.clear();
      }
      this.emit('state', { peer, from: e.from, to: e.to, ...(e.reason ? { reason: e.reason } : {}) });
      if (entry.promoted && (e.to === 'Idle' || e.to === 'Active') && !this.stopped) this.replaceSession(entry);
    });
    session.on('open', () => this.resolveCollision(entry));
    session.on('update', (e) => {
      if (current()) this.emit('update', { peer, announced: e.announced, withdrawn: e.withdrawn });
    });
    session.on('endOfRib', () => {
      if (current()) this.emit('endOfRib', { peer });
    });
    session.on('notification', (e) => {
      // A challenger's NOTIFICATIONs (its collision dump) are shown too: they went over the wire.
      if (this.peers.get(peer) === entry && (entry.session === session || entry.challenger === session)) this.emit('notification', { peer, ...e });
    });
  }

  /** A session that won a collision was passive; once it ends, go back to a normal (active) one. */
  private replaceSession(entry: PeerEntry): void {
    const old = entry.session;
    old.removeAllListeners();
    old.stop(CeaseSubcode.ADMINISTRATIVE_RESET);
    entry.promoted = false;
    entry.session = new Session(this.sessionConfig(entry.spec, entry.spec.passive));
    this.wire(entry, entry.session);
    entry.session.start();
  }

  /** Cease to the peer first (so its NOTIFICATION and last state change are still reported), then forget it. */
  private removePeer(entry: PeerEntry, subcode: number): void {
    entry.challenger?.stop(subcode);
    entry.session.stop(subcode);
    this.peers.delete(entry.spec.address);
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
    const keepInbound = entry.session.connectionDirection === 'outbound' && this.config.routerId < remoteId;
    entry.challenger = null;
    if (keepInbound) {
      this.config.logger.info({ peer: entry.spec.address }, 'connection collision: keeping the connection the peer opened (its BGP identifier is higher)');
      const loser = entry.session;
      entry.session = challenger;
      entry.promoted = true;
      loser.collisionDump();
      loser.removeAllListeners();
    } else {
      this.config.logger.info({ peer: entry.spec.address }, 'connection collision: keeping our connection (our BGP identifier is higher)');
      challenger.collisionDump();
      challenger.removeAllListeners();
    }
  }

  /** The attributes this router sends to `entry` for an originated route (RFC 4271 §5.1). */
  private exportAttrs(entry: PeerEntry, route: OriginatedRoute): PathAttributes {
    const local = entry.session.localAddress;
    const attrs: PathAttributes = {
      ...route.attrs,
      // RFC 4271 §5.1.2: a route we originate carries an empty AS_PATH to internal peers and our AS to
      // external ones.
      asPath: entry.ebgp ? [{ type: AsPathSegmentType.AS_SEQUENCE, asns: [this.config.localAs] }] : [],
      // RFC 4271 §5.1.3: without a configured next hop, our own address on this connection.
      nextHop: route.attrs.nextHop ?? (local ? parseIpv4(local) : this.config.routerId),
    };
    if (entry.ebgp) delete attrs.localPref; // RFC 4271 §5.1.5: LOCAL_PREF is not sent to external peers.
    else attrs.localPref = route.attrs.localPref ?? 100; // RFC 4271 §5.1.5: SHALL be included toward internal peers.
    return attrs;
  }

  /** Sends `entry` the difference between the originated routes and what it was sent (RFC 4271 §9.2). */
  private syncPeer(entry: PeerEntry): void {
    const ctx = entry.session.codecContext;
    const groups = new Map<string, { attrs: PathAttributes; prefixes: Prefix[] }>();
    const withdraw: Prefix[] = [];
    const next = new Map<number, string>();
    for (const [key, route] of this.originated) {
      const attrs = this.exportAttrs(entry, route);
      const akey = attrsKey(attrs);
      next.set(key, akey);
      if (entry.advertised.get(key) === akey) continue;
      let group = groups.get(akey);
      if (!group) groups.set(akey, (group = { attrs, prefixes: [] }));
      group.prefixes.push(route.prefix);
    }
    for (const key of entry.advertised.keys()) {
      if (!next.has(key)) withdraw.push({ addr: (key - (key % 64)) / 64, len: key % 64 });
    }
    const messages: Uint8Array[] = [];
    if (withdraw.length) messages.push(...encodeWithdrawals(withdraw, ctx));
    for (const group of groups.values()) messages.push(...encodeUpdates(group.attrs, group.prefixes, ctx));
    entry.advertised = next;
    if (messages.length) {
      this.config.logger.debug({ peer: entry.spec.address, announce: next.size, withdraw: withdraw.map(formatPrefix) }, 'sending routes');
      entry.session.sendUpdates(messages);
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
    const challenger = new Session(this.sessionConfig(entry.spec, true));
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
