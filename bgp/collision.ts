// RFC 4271 §6.8 connection collisions, the Speaker's side: an inbound connection from a peer whose own
// session is in OpenSent/OpenConfirm runs in a second ("challenger") session until an OPEN gives the peer's
// BGP identifier; then the connection opened by the higher identifier survives (`collisionWinner`,
// ./negotiation.ts) and the other gets Cease / Connection Collision Resolution. A passive session that won
// is replaced by a normal one when it ends. The peer record is ./peer-entry.ts; the Speaker supplies how a
// session is made and wired.

import type { LoggerLike } from './speaker-config.js';
import { CeaseSubcode } from './errors.js';
import { collisionWinner } from './negotiation.js';
import type { PeerEntry } from './peer-entry.js';
import type { Session } from './session.js';
import type { Connection } from './transport.js';

/** What collision handling needs of the Speaker. */
export interface CollisionHost {
  readonly routerId: number;
  readonly logger: LoggerLike;
  /** A new session for the peer, its events wired into the speaker, not yet started. */
  newSession(entry: PeerEntry, passive: boolean): Session;
  onEstablished(entry: PeerEntry): void;
}

/** A session that won a collision was passive; once it ends, go back to a normal (active) one. */
export function replaceSession(host: CollisionHost, entry: PeerEntry): void {
  const old = entry.session;
  old.removeAllListeners();
  old.stop(CeaseSubcode.ADMINISTRATIVE_RESET);
  entry.promoted = false;
  entry.session = host.newSession(entry, entry.spec.passive);
  entry.session.start();
}

/**
 * RFC 4271 §6.8 connection collision: two connections with the same peer, one we initiated and one it
 * did. Once a BGP identifier is known (an OPEN arrived on either), keep the connection initiated by the
 * side with the higher identifier and send Cease / Connection Collision Resolution on the other.
 */
export function resolveCollision(host: CollisionHost, entry: PeerEntry): void {
  const challenger = entry.challenger;
  if (!challenger) return;
  const remoteId = challenger.peerBgpId ?? entry.session.peerBgpId;
  if (remoteId === undefined) return;
  // The existing connection is ours unless it was accepted too (then the newer inbound one simply loses).
  const keepInbound = collisionWinner(entry.session.connectionDirection, host.routerId, remoteId) === 'challenger';
  entry.challenger = null;
  if (keepInbound) {
    host.logger.info(
      { peer: entry.spec.address },
      'connection collision: keeping the connection the peer opened (its BGP identifier is higher)',
    );
    const loser = entry.session;
    entry.session = challenger;
    entry.promoted = true;
    loser.collisionDump();
    loser.removeAllListeners();
    // The winner may already be Established (its events were ignored while it was the challenger).
    if (challenger.established) host.onEstablished(entry);
  } else {
    host.logger.info(
      { peer: entry.spec.address },
      'connection collision: keeping our connection (our BGP identifier is higher)',
    );
    challenger.collisionDump();
    challenger.removeAllListeners();
  }
}

/** An inbound TCP connection from a configured peer: give it to the peer's session, run it as a challenger, or refuse it. */
export function acceptInbound(host: CollisionHost, entry: PeerEntry, conn: Connection, remote: string): void {
  if (entry.securityRefusal !== null) {
    // Never a session without the password or GTSM the peer is configured with.
    host.logger.warn(
      { peer: remote, reason: entry.securityRefusal },
      "inbound connection refused: the peer's TCP-MD5 or GTSM could not be set on the listener",
    );
    conn.destroy();
    return;
  }
  if (entry.session.holdingDown) {
    // DampPeerOscillations / a prefix-limit restart delay: the peer waits as our own reconnect does.
    host.logger.info(
      { peer: remote, state: entry.session.state },
      'inbound connection refused: waiting after an error before this peer may reconnect',
    );
    conn.destroy();
    return;
  }
  if (entry.session.acceptConnection(conn)) return;
  // RFC 4271 §6.8: a collision with an Established session closes the new connection; so does a third
  // connection while two are being resolved.
  if (entry.session.established || entry.challenger || !entry.session.enabled) {
    host.logger.info(
      { peer: remote, state: entry.session.state },
      'inbound connection refused: a session with this peer already exists',
    );
    conn.destroy();
    return;
  }
  // Our own connection is in OpenSent/OpenConfirm: run the inbound one beside it until an OPEN tells
  // us the peer's BGP identifier.
  const challenger = host.newSession(entry, true);
  entry.challenger = challenger;
  challenger.start();
  if (!challenger.acceptConnection(conn)) {
    entry.challenger = null;
    challenger.removeAllListeners();
    challenger.stop();
    conn.destroy();
    return;
  }
  resolveCollision(host, entry);
}
