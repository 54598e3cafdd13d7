// What a Speaker (./speaker.ts) tells its owner — the typed events (`SpeakerEvents`) — and the routes it is
// given to originate. Types only; ./speaker.ts re-exports them.

import type { Prefix6 } from './ip6.js';
import type { RibEntry, RibEntry6 } from './peer-report.js';
import type { SessionState } from './session.js';
import type { PathAttributes, Prefix } from './types.js';

export interface OriginatedRoute {
  prefix: Prefix;
  /** ORIGIN, NEXT_HOP, MED, LOCAL_PREF, COMMUNITIES as the operator set them; AS_PATH is built per peer. */
  attrs: PathAttributes;
}

/** An IPv6 route we originate: the prefix key (./ip6.ts `parsePrefix6`); next hop `attrs.nextHop6` or ours. */
export interface OriginatedRoute6 {
  prefix: Prefix6;
  attrs: PathAttributes;
}

/** Events name the peer by its address; `port` (always set by the Speaker) tells two peers on one address apart. */
export interface SpeakerEvents {
  state: [{ peer: string; port?: number; from: SessionState; to: SessionState; reason?: string }];
  /** What one peer sent (after RFC 7606 handling), before import policy. */
  update: [
    { peer: string; port?: number; announced: Array<{ prefix: Prefix; attrs: PathAttributes }>; withdrawn: Prefix[] },
  ];
  endOfRib: [{ peer: string; port?: number }];
  notification: [
    {
      peer: string;
      port?: number;
      direction: 'sent' | 'received';
      code: number;
      subcode: number;
      data: Uint8Array;
      reason: string;
    },
  ];
  /** Loc-RIB best routes that changed, in one batch per handled message or operation. */
  bestChanged: [ReadonlyArray<{ prefix: Prefix; best: RibEntry | null }>];
  /** The same for IPv6 unicast (RFC 2545): `prefix` is the key (../ip6.ts), `best` its row. */
  bestChanged6: [ReadonlyArray<{ prefix: Prefix6; best: RibEntry6 | null }>];
  /** Route selection is no longer deferred (immediately unless restarting, RFC 4724 §4.1). */
  ready: [];
  /** The import judge refused a route: a new announcement, or a held route judged again (`rejudge`). */
  refused: [{ peer: string; port?: number; prefix: Prefix; reason: string }];
}
