// The routing core's public API: attribute interning, Adj-RIB-In, Loc-RIB with best path, import/export
// policy, Adj-RIB-Out. Pure: no sockets, no timers; the speaker drives it (see README.md in this folder).

export { AttrTable, attributesHash, attributesKey, sameAttributes } from './attrs.js';
export type { Attrs } from './attrs.js';
export { Route, localSource, sourceId } from './route.js';
export type { RouteSource } from './route.js';
export { AdjRibIn } from './adj-rib-in.js';
export type { RibInUpdate } from './adj-rib-in.js';
export {
  DECISION_STEPS,
  DEFAULT_LOCAL_PREF,
  LOCAL_NEIGHBOUR_AS,
  asPathLength,
  compareRoutes,
  decidingStep,
  neighbourAs,
  selectBest,
} from './best-path.js';
export type { DecisionStep } from './best-path.js';
export { LocRib } from './loc-rib.js';
export type { BestChange } from './loc-rib.js';
export {
  PeerExport,
  WellKnownCommunity,
  exportAttributes,
  exportScope,
  importAttributes,
  importRejection,
  importRoute,
  importVerdict,
  isThirdPartyNextHop,
  prependAs,
  rewriteForPeer,
} from './policy.js';
export type { ImportFilterResult, LocalSpeaker, NextHopMode, PeerPolicy, SharedSubnet } from './policy.js';
export { AdjRibOut } from './adj-rib-out.js';
export type { AnnounceGroup, PendingUpdates } from './adj-rib-out.js';
export { UpdateGroup } from './update-group.js';
export type { GroupFlush, MemberMode, MemberSend } from './update-group.js';
