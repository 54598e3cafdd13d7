// Graceful restart, the restarting side (RFC 4724 §4.1): after we restart, route selection is deferred —
// nothing is sent to anyone — until every GR peer that is up has sent End-of-RIB, or the selection deferral
// timer fires, so we never withdraw what we are about to re-learn. A peer that is not Established holds the
// deferral up only briefly (`peerWaitMs`): it has nothing to re-learn from yet.

import type { Clock, TimerHandle } from './clock.js';

/** What the deferral needs to know of one configured peer. */
export interface DeferralPeer {
  /** Its session is Established (and negotiated). */
  readonly up: boolean;
  /** The peer's graceful restart capability on that session, if it sent one. */
  readonly gracefulRestart: { readonly restarting: boolean } | undefined;
  /** It sent End-of-RIB for IPv4 unicast on that session. */
  readonly endOfRib: boolean;
}

/** The part of `SpeakerConfig.gracefulRestart` the deferral uses (see `GracefulRestartOptions`). */
export interface DeferralOptions {
  readonly restartTime: number;
  readonly restarting?: boolean;
  readonly deferralMs?: number;
  readonly peerWaitMs?: number;
}

export class SelectionDeferral {
  private deferring: boolean;
  private deferralTimer: TimerHandle | null = null;
  /** Set while peers that are not Established still hold the deferral up. */
  private peerWaitTimer: TimerHandle | null = null;

  /**
   * @param onEnd called once when the deferral ends (with why); never when there was none
   * @param peers the configured peers, asked at every check
   */
  constructor(
    private readonly gr: DeferralOptions | null | undefined,
    private readonly clock: Clock,
    private readonly peers: () => Iterable<DeferralPeer>,
    private readonly onEnd: (reason: string) => void,
  ) {
    this.deferring = gr?.restarting === true;
  }

  /** Route selection is deferred (nothing is sent yet). */
  get active(): boolean {
    return this.deferring;
  }

  /** Starts the timers; false when there is nothing to defer (not restarting). */
  start(): boolean {
    if (!this.deferring) return false;
    const gr = this.gr!;
    this.peerWaitTimer = this.clock.setTimeout(() => {
      this.peerWaitTimer = null;
      this.check();
    }, gr.peerWaitMs ?? 1000);
    this.deferralTimer = this.clock.setTimeout(
      () => this.end('selection deferral timer expired'),
      gr.deferralMs ?? gr.restartTime * 1000,
    );
    return true;
  }

  /** RFC 4724 §4.1: selection is deferred until every GR peer that is up has sent End-of-RIB. */
  check(): void {
    if (!this.deferring) return;
    for (const peer of this.peers()) {
      if (!peer.up) {
        if (this.peerWaitTimer !== null) return; // not up yet: wait for it, briefly
        continue;
      }
      // Peers without GR, or restarting themselves (R bit), are not waited for.
      if (peer.gracefulRestart === undefined || peer.gracefulRestart.restarting) continue;
      if (!peer.endOfRib) return;
    }
    this.end('End-of-RIB received from every peer that is up');
  }

  /** Clears the timers without ending the deferral (the speaker stops). */
  stop(): void {
    this.clearTimers();
  }

  private end(reason: string): void {
    if (!this.deferring) return;
    this.deferring = false;
    this.clearTimers();
    this.onEnd(reason);
  }

  private clearTimers(): void {
    if (this.deferralTimer) this.clock.clearTimeout(this.deferralTimer);
    this.deferralTimer = null;
    if (this.peerWaitTimer) this.clock.clearTimeout(this.peerWaitTimer);
    this.peerWaitTimer = null;
  }
}
