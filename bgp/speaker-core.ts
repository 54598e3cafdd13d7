// The Speaker's shared state (the layer every other one builds on): its config with defaults, the peers by
// endpoint, the attribute table and Loc-RIB, the selection deferral, the update groups, the peers whose
// routes linger, and the few helpers every role uses (a peer by address, its session config, its update
// group, best-route changes handed to the export side). The Speaker is built in layers, one file per role:
//   speaker-core.ts    this state                          (SpeakerCore)
//   speaker-import.ts  what a peer's routes do: the import judge, the prefix limit, what is kept when its
//                      session ends (./retention.ts), make-before-break              (SpeakerImport)
//   speaker-peers.ts   peers' lifecycle: add, remove, TCP-MD5/GTSM on the listener, a session's events
//                      wired in, Established, ROUTE-REFRESH, the end of the deferral, inbound connections
//                                                                                     (SpeakerPeers)
//   speaker.ts         the public API and the DOC comment on the whole               (Speaker)
// Only `Speaker` is used from outside; the layers are its parts.

import { EventEmitter } from 'node:events';
import { systemClock } from './clock.js';
import type { CollisionHost } from './collision.js';
import { SelectionDeferral, type DeferralPeer } from './deferral.js';
import { UpdateGroups } from './export.js';
import { parseIpv4, prefixFromKey } from './ip.js';
import { parseIpv6, type RibKey } from './ip6.js';
import { tcpAcceptor, type ListenerHandle } from './listener.js';
import type { PeerEntry } from './peer-entry.js';
import { toRibEntry, toRibEntry6 } from './peer-report.js';
import {
  AttrTable,
  LocRib,
  localSource,
  type BestChange,
  type LocalSpeaker,
  type PeerPolicy,
  type RouteSource,
  type UpdateGroup,
} from './rib/index.js';
import { Session, type SessionConfig } from './session.js';
import type { SpeakerEvents } from './speaker-events.js';
import {
  endpointOf,
  sessionConfigFor,
  type LoggerLike,
  type NormalSpec,
  type SpeakerConfig,
  type SpeakerSettings,
} from './speaker-config.js';
import { tcpTransport } from './transport.js';
import type { PathAttributes } from './types.js';

const silentLogger: LoggerLike = { debug() {}, info() {}, warn() {}, error() {} };

export const DEFAULT_MAX_PREFIXES = 500_000;
export const DEFAULT_PREFIX_LIMIT_RESTART_MS = 60_000;
export const DEFAULT_ROUTE_REFRESH_INTERVAL_MS = 5000;

export abstract class SpeakerCore extends EventEmitter<SpeakerEvents> {
  protected readonly config: SpeakerSettings;
  protected readonly peers = new Map<string, PeerEntry>();
  protected readonly table = new AttrTable();
  protected readonly locRib = new LocRib(this.table);
  protected readonly local: LocalSpeaker;
  protected readonly localSource: RouteSource;
  /** Originated routes: prefix key → the canonical attribute set offered to the Loc-RIB. */
  protected originated = new Map<RibKey, PathAttributes>();
  protected closeListener: ListenerHandle | null = null;
  protected stopped = false;
  /** RFC 4724 §4.1 when restarting: nothing is sent until peers' End-of-RIB (./deferral.ts). */
  protected readonly deferral: SelectionDeferral;
  /** The export side: update groups and the coalesced flush (./export.ts). */
  protected readonly exports: UpdateGroups<PeerEntry>;
  /** Removed peers whose routes still linger (make-before-break), until their timer. */
  protected readonly lingering = new Set<PeerEntry>();
  /** Peers whose routes linger in place because they de-configured us (`lingersInPlace`). */
  protected lingeringInPlaceCount = 0;
  /** What ./collision.ts needs of this speaker. */
  protected readonly collisions: CollisionHost;

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
      ...(config.address6 !== undefined ? { address6: parseIpv6(config.address6, 'address6') } : {}),
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
  }

  /** The peer at address:port; without a port, the inbound peer of the address (the lowest port there). */
  protected peerAt(address: string, port?: number): PeerEntry | undefined {
    if (port !== undefined) return this.peers.get(endpointOf({ address, port }));
    let found: PeerEntry | undefined;
    for (const entry of this.peers.values()) {
      if (entry.spec.address === address && (found === undefined || entry.spec.port < found.spec.port)) found = entry;
    }
    return found;
  }

  protected sessionConfig(entry: { spec: NormalSpec }, passive: boolean): SessionConfig {
    return sessionConfigFor(this.config, entry.spec, passive, this.deferral.active);
  }

  /** This speaker as one peer sees it: our AS toward it (localAs) and our address on its connection. */
  protected localFor(spec: NormalSpec, address: number): LocalSpeaker {
    return { ...this.local, asn: spec.localAs ?? this.local.asn, address };
  }

  protected sourceOf(policy: PeerPolicy, routerId: number): RouteSource {
    return Object.freeze({
      address: policy.address,
      ...(policy.port !== undefined ? { port: policy.port } : {}),
      routerId,
      asn: policy.asn,
      ebgp: policy.ebgp,
      rrClient: policy.rrClient,
    });
  }

  protected groupFor(policy: PeerPolicy, local: LocalSpeaker): UpdateGroup<PeerEntry> {
    return this.exports.groupFor(policy, local, () => this.locRib.bestRoutes());
  }

  /** Best-route changes → every peer's desired state; then one coalesced flush. */
  protected propagate(changes: readonly BestChange[]): void {
    if (changes.length === 0) return;
    this.exports.apply(changes);
    const v6 = changes.filter((c) => typeof c.key === 'string');
    const v4 = v6.length === 0 ? changes : changes.filter((c) => typeof c.key === 'number');
    if (v4.length > 0 && this.listenerCount('bestChanged') > 0) {
      this.emit(
        'bestChanged',
        v4.map((c) => ({ prefix: prefixFromKey(c.key as number), best: c.best ? toRibEntry(c.best) : null })),
      );
    }
    if (v6.length > 0 && this.listenerCount('bestChanged6') > 0)
      this.emit(
        'bestChanged6',
        v6.map((c) => ({ prefix: c.key as string, best: c.best ? toRibEntry6(c.best) : null })),
      );
  }

  // ---- what the other layers provide (./speaker-peers.ts) ----------------------------------------------

  protected abstract wire(entry: PeerEntry, session: Session): void;
  protected abstract onEstablished(entry: PeerEntry): void;
  protected abstract deferralPeers(): Generator<DeferralPeer>;
  protected abstract endDeferral(reason: string): void;
}
