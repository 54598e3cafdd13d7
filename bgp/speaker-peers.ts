// The Speaker's peers (a layer of the Speaker, see ./speaker-core.ts): a peer added (its session, Adj-RIB-In,
// update group) and removed (Cease, its key off the listener, its routes to ./retention.ts); its TCP-MD5 key
// and GTSM on the listener; a session's events wired into the routing core while it is the peer's current
// one; a session Established (the whole Adj-RIB-Out, then End-of-RIB); ROUTE-REFRESH answered
// (./route-refresh.ts); the end of the selection deferral (RFC 4724 §4.1); inbound connections handed to
// their peer's session, collisions by ./collision.ts.

import { acceptInbound, replaceSession, resolveCollision } from './collision.js';
import type { DeferralPeer } from './deferral.js';
import { endOfRibComplete } from './end-of-rib.js';
import { endOfRibs } from './export.js';
import { parseIpv4 } from './ip.js';
import type { RibKey } from './ip6.js';
import { hasIpv4Gr, type PeerEntry } from './peer-entry.js';
import { AdjRibIn, sourceId } from './rib/index.js';
import { classifyNotification, INITIAL_RETENTION } from './retention.js';
import { answerRefresh, cancelRefresh } from './route-refresh.js';
import { Session } from './session.js';
import { endpointOf, policyOf, securityOf, sourceAddress, type NormalSpec } from './speaker-config.js';
import { SpeakerImport } from './speaker-import.js';
import type { Connection } from './transport.js';

export abstract class SpeakerPeers extends SpeakerImport {
  protected addPeer(spec: NormalSpec): void {
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
    const own: RibKey[] = [];
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

  /**
   * Puts the peer's TCP-MD5 key and GTSM hops on the listener (inbound; outbound connections get them from
   * the transport). Where that fails — no native part, a kernel without TCP_MD5SIG — the peer's inbound
   * connections are refused and its status says why: never a session without the password.
   */
  protected installSecurity(address: string): void {
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

  /** Cease to the peer first (so its NOTIFICATION and last state change are still reported), then forget it. */
  protected removePeer(entry: PeerEntry, subcode: number): void {
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

  /** Routes a session's events into the routing core while it is the peer's current session. */
  protected wire(entry: PeerEntry, session: Session): void {
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
      // RFC 4724 §2: End-of-RIB is per address family; stale routes go once every negotiated family's came.
      if (endOfRibComplete(entry, entry.sessions, session.negotiated, e)) this.onEndOfRib(entry);
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

  protected onEstablished(entry: PeerEntry): void {
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
      const own: RibKey[] = [];
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
      session.sendUpdates(endOfRibs(entry.session));
    } else {
      this.deferral.check();
    }
  }

  /** A ROUTE-REFRESH from the peer, paced (./route-refresh.ts): its whole Adj-RIB-Out goes again. */
  protected answerRefresh(entry: PeerEntry): void {
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

  protected cancelRefresh(entry: PeerEntry): void {
    cancelRefresh(entry, this.config.clock);
  }

  // ---- graceful restart: the restarting side ------------------------------------------------------------

  protected *deferralPeers(): Generator<DeferralPeer> {
    for (const entry of this.peers.values()) {
      const negotiated = entry.session.established ? entry.session.negotiated : undefined;
      yield { up: negotiated !== undefined, gracefulRestart: negotiated?.gracefulRestart, endOfRib: entry.endOfRib };
    }
  }

  protected endDeferral(reason: string): void {
    this.config.logger.info({ reason }, 'graceful restart: route selection deferral over, sending routes');
    // The restart is over: later OPENs (reconnects) no longer say "restarting" (RFC 4724 §3).
    for (const entry of this.peers.values()) {
      entry.session.setRestarting(false);
      entry.challenger?.setRestarting(false);
    }
    this.exports.flushAll();
    for (const entry of this.peers.values())
      if (entry.session.established) entry.session.sendUpdates(endOfRibs(entry.session));
    this.emit('ready');
  }

  // ---- connection collisions ------------------------------------------------------------------------------

  /** An inbound TCP connection: give it to the session of the peer it comes from, or refuse it. */
  protected onInbound(conn: Connection): void {
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
}
