// Answering a peer's ROUTE-REFRESH (RFC 2918), paced: the Speaker (./speaker.ts) calls `answerRefresh`
// when one arrives and `cancelRefresh` when the session or the peer goes. The answer itself (reset the
// peer's "advertised" so its whole Adj-RIB-Out goes again) is the speaker's callback.

import type { Clock, TimerHandle } from './clock.js';
import type { LoggerLike } from './speaker-config.js';

/** The two fields of a peer (./peer-entry.ts) the pacing keeps. */
export interface RefreshPacing {
  /** clock.now() when a ROUTE-REFRESH was last answered; the answer scheduled for the end of the interval. */
  refreshAnsweredAt: number | null;
  refreshTimer: TimerHandle | null;
}

/**
 * RFC 2918 §4: a ROUTE-REFRESH is answered with the whole Adj-RIB-Out — at most once per interval per
 * peer. One asked for sooner is answered at the end of the interval, and any more asked for meanwhile
 * ride on that answer: a peer sending ROUTE-REFRESH in a loop gets the table once per interval, not
 * once per request. `stillWanted` is asked when a scheduled answer is due (the peer may be gone).
 */
export function answerRefresh(
  state: RefreshPacing,
  context: { clock: Clock; intervalMs: number; logger: LoggerLike; peer: string },
  send: () => void,
  stillWanted: () => boolean,
): void {
  if (state.refreshTimer !== null) return; // an answer is already scheduled: this one is coalesced into it
  const now = context.clock.now();
  const due = state.refreshAnsweredAt === null ? now : state.refreshAnsweredAt + context.intervalMs;
  const answer = (): void => {
    state.refreshAnsweredAt = context.clock.now();
    send();
  };
  if (due <= now) {
    answer();
    return;
  }
  context.logger.debug({ peer: context.peer, inMs: due - now }, 'ROUTE-REFRESH: answered at the end of the interval');
  state.refreshTimer = context.clock.setTimeout(() => {
    state.refreshTimer = null;
    if (stillWanted()) answer();
  }, due - now);
}

export function cancelRefresh(state: RefreshPacing, clock: Clock): void {
  if (state.refreshTimer !== null) clock.clearTimeout(state.refreshTimer);
  state.refreshTimer = null;
}
