// The Speaker's import side (a layer of the Speaker, see ./speaker-core.ts): what a peer's routes do to the
// Loc-RIB. An UPDATE goes into the peer's Adj-RIB-In, past the prefix limit (RFC 4486), through the RFC
// import rules and the import judge (./import-judge.ts) into the Loc-RIB; a live peer's route replaces a
// lingering copy of a removed peer (make-before-break). When a session ends, gets End-of-RIB, or the peer is
// removed, the peer's retention state machine (./retention.ts) decides what is kept, and its actions (mark
// stale, sweep, withdraw, hand over, one timer) are carried out here.

import { CeaseSubcode } from './errors.js';
import { judgeImport } from './import-judge.js';
import type { RibKey } from './ip6.js';
import { endpointOf } from './speaker-config.js';
import { hasIpv4Gr, type PeerEntry } from './peer-entry.js';
import { sourceId, type AdjRibIn, type BestChange, type Route } from './rib/index.js';
import { lingersInPlace, retentionTransition, type RetentionEvent, type RetentionState } from './retention.js';
import { SpeakerCore } from './speaker-core.js';
import { Afi, Safi } from './types.js';

export abstract class SpeakerImport extends SpeakerCore {
  /**
   * RFC 4486 §4: more prefixes than allowed. The session ends with Cease / Maximum Number of Prefixes
   * Reached, data AFI (2 octets), SAFI (1), the upper bound (4), and stays down for the restart delay.
   * The UPDATE that went over is not taken into the Loc-RIB; the session's end withdraws the rest.
   */
  protected overPrefixLimit(entry: PeerEntry): boolean {
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

  protected onUpdate(entry: PeerEntry, message: Parameters<AdjRibIn['apply']>[0]): void {
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
  protected judge(entry: PeerEntry, received: Route): Route | null {
    return judgeImport(entry, received, this.table, this.config.importJudge, entry.reportRefused);
  }

  protected replaceLingering(by: PeerEntry, key: RibKey, changes: BestChange[]): void {
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

  protected onEndOfRib(entry: PeerEntry): void {
    entry.endOfRib = true;
    // RFC 4724 §4.2: End-of-RIB from a restarted peer removes what it did not send again.
    this.retain(entry, { type: 'endOfRib' });
    // The same peer, added back after a reconfiguration, has now sent everything it has.
    for (const old of [...this.lingering])
      if (sourceId(old.policy) === sourceId(entry.policy)) this.retain(old, { type: 'endOfRib' });
    this.deferral.check();
  }

  /** The end of an Established session decides about its routes (./retention.ts). */
  protected onDown(entry: PeerEntry): void {
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
  protected retain(entry: PeerEntry, event: RetentionEvent, covered: readonly RibKey[] = []): void {
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

  protected clearRetentionTimer(entry: PeerEntry): void {
    if (entry.retentionTimer !== null) this.config.clock.clearTimeout(entry.retentionTimer);
    entry.retentionTimer = null;
  }

  /** Keys of `entry`'s routes that another peer (or we) also offer. */
  protected coveredElsewhere(entry: PeerEntry): RibKey[] {
    const covered: RibKey[] = [];
    for (const route of entry.ribIn.routes()) {
      if (this.locRib.candidates(route.key).some((c) => sourceId(c.source) !== sourceId(entry.policy)))
        covered.push(route.key);
    }
    return covered;
  }

  protected withdrawFromLocRib(entry: PeerEntry, keys: readonly RibKey[]): void {
    const changes: BestChange[] = [];
    for (const key of keys) {
      entry.refused.delete(key);
      const change = this.locRib.set(entry.ribIn.source, key, null);
      if (change) changes.push(change);
    }
    this.propagate(changes);
  }
}
