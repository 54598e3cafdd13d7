// The BGP library's front door (STYLE.md lesson 11): what src/ may use of bgp/, and nothing more. src/
// imports bgp/ only through this file (test/unit/dependencies.test.ts; the CNI plugin is the one named
// exception). Add a name here when src/ needs it; everything else stays the library's own business.

export { formatLargeCommunities } from './codec/attributes.js';
export { systemClock, unrefTimer, type Clock, type TimerHandle } from './clock.js';
export { formatCommunity, parseCommunity } from './community.js';
export { downReasonInfo } from './down-reason.js';
export { notificationReason } from './errors.js';
export {
  formatIpv4,
  formatPrefix,
  maskOf,
  parseIpv4,
  parsePrefix,
  prefixContains,
  prefixKey,
  tryParseIpv4,
  tryParseIpv4Prefix,
} from './ip.js';
export type { Logger } from './log.js';
export { nativeSocketOptions } from './socket-options.js';
export {
  Speaker,
  tcpAcceptor,
  type Acceptor,
  type ImportJudge,
  type OriginatedRoute,
  type PeerSpec,
  type PeerStatus,
  type RefusedRoute,
  type RibEntry,
  type SpeakerConfig,
} from './speaker.js';
export {
  diagnoseTcpSecurity,
  formatTcpSecurityFindings,
  parseTcpSecurityCounters,
  type TcpSecurityCounters,
} from './tcp-diagnosis.js';
export { tcpTransport, type Connection, type Transport } from './transport.js';
export { Route } from './rib/route.js';
export { AsPathSegmentType, BGP_PORT, Origin, type AsPathSegment, type PathAttributes, type Prefix } from './types.js';
