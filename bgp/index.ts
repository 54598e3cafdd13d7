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
export {
  formatIpv6,
  formatPrefix6,
  parseIpv6,
  parsePrefix6,
  prefix6Contains,
  prefix6Len,
  tryParseIpv6,
  type Ipv6,
  type Prefix6,
} from './ip6.js';
export type { Logger } from './log.js';
export { nativeSocketOptions } from './socket-options.js';
export {
  Speaker,
  tcpAcceptor,
  type Acceptor,
  type ImportJudge,
  type OriginatedRoute,
  type OriginatedRoute6,
  type PeerSpec,
  type PeerStatus,
  type RefusedRoute,
  type RibEntry,
  type SpeakerConfig,
} from './speaker.js';
export type { RibEntry6 } from './peer-report.js';
export {
  diagnoseTcpSecurity,
  formatTcpSecurityFindings,
  parseTcpSecurityCounters,
  type TcpSecurityCounters,
} from './tcp-diagnosis.js';
export { tcpTransport, type Connection, type Transport } from './transport.js';
export { Route } from './rib/route.js';
export { AsPathSegmentType, BGP_PORT, Origin, type AsPathSegment, type PathAttributes, type Prefix } from './types.js';
