// The shapes the BGP library speaks in: messages as decoded values, path attributes, prefixes.
//
// Conventions (they matter for speed and for comparisons):
// - Every IPv4 address (next hop, BGP identifier, ORIGINATOR_ID, CLUSTER_LIST entries, AGGREGATOR
//   address) is an unsigned 32-bit integer held in a JS number (0..2^32-1). Convert at the edges with
//   `parseIpv4` / `formatIpv4` from ./ip.ts.
// - A prefix is `{ addr, len }` with the host bits zero. `prefixKey()` in ./ip.ts packs one into a single
//   number (addr * 64 + len) for map keys; RIBs key on that, never on strings.
// - IPv6 addresses and prefixes are compact strings (`Ipv6`, 16 chars; `Prefix6`, 17 chars) from ./ip6.ts.
// - AS numbers are always full 4-octet values here; the codec maps to/from AS_TRANS + AS4_PATH when the
//   session did not negotiate 4-octet AS (RFC 6793).

import type { Ipv6, Prefix6 } from './ip6.js';

/** An IPv4 prefix. `addr` is the network address as uint32 with host bits zero; `len` is 0..32. */
export interface Prefix {
  readonly addr: number;
  readonly len: number;
}

/** ORIGIN values, RFC 4271 §5.1.1. */
export const Origin = { IGP: 0, EGP: 1, INCOMPLETE: 2 } as const;
export type Origin = (typeof Origin)[keyof typeof Origin];

/** AS_PATH segment types, RFC 4271 §4.3 and RFC 5065 (confederations, decoded and kept, never built). */
export const AsPathSegmentType = { AS_SET: 1, AS_SEQUENCE: 2, AS_CONFED_SEQUENCE: 3, AS_CONFED_SET: 4 } as const;
export type AsPathSegmentType = (typeof AsPathSegmentType)[keyof typeof AsPathSegmentType];

export interface AsPathSegment {
  readonly type: AsPathSegmentType;
  readonly asns: readonly number[];
}

/** Address family identifiers (RFC 4760): only what tortie negotiates or must recognise. */
export const Afi = { IPV4: 1, IPV6: 2 } as const;
export const Safi = { UNICAST: 1, MULTICAST: 2 } as const;

/** Path attribute type codes (IANA "BGP Path Attributes"). */
export const AttrType = {
  ORIGIN: 1,
  AS_PATH: 2,
  NEXT_HOP: 3,
  MULTI_EXIT_DISC: 4,
  LOCAL_PREF: 5,
  ATOMIC_AGGREGATE: 6,
  AGGREGATOR: 7,
  COMMUNITIES: 8,
  ORIGINATOR_ID: 9,
  CLUSTER_LIST: 10,
  MP_REACH_NLRI: 14,
  MP_UNREACH_NLRI: 15,
  AS4_PATH: 17,
  AS4_AGGREGATOR: 18,
  LARGE_COMMUNITY: 32,
} as const;

/** Attribute flag bits, RFC 4271 §4.3. */
export const AttrFlag = { OPTIONAL: 0x80, TRANSITIVE: 0x40, PARTIAL: 0x20, EXTENDED_LENGTH: 0x10 } as const;

/** An attribute tortie does not understand, kept as bytes (optional transitive ones are passed on). */
export interface UnknownAttribute {
  readonly flags: number;
  readonly type: number;
  readonly value: Uint8Array;
}

export interface Aggregator {
  readonly asn: number;
  readonly address: number;
}

/** MP_REACH_NLRI (RFC 4760 §3). For IPv4 unicast, `nlri` is decoded; for other families `raw` keeps the bytes. */
export interface MpReach {
  readonly afi: number;
  readonly safi: number;
  /** Next hop bytes as on the wire (4 for IPv4, 16 or 32 for IPv6). */
  readonly nextHop: Uint8Array;
  readonly nlri: readonly Prefix[];
  /** IPv6 unicast (AFI 2, SAFI 1, RFC 2545): the NLRI as prefix keys; `nlri` is then empty. */
  readonly nlri6?: readonly Prefix6[];
  /** Undecoded NLRI bytes for families tortie does not parse. */
  readonly raw?: Uint8Array;
}

/** MP_UNREACH_NLRI (RFC 4760 §4). An empty withdrawn list for a family is that family's End-of-RIB (RFC 4724 §2). */
export interface MpUnreach {
  readonly afi: number;
  readonly safi: number;
  readonly withdrawn: readonly Prefix[];
  /** IPv6 unicast (AFI 2, SAFI 1): the withdrawn prefix keys; `withdrawn` is then empty. */
  readonly withdrawn6?: readonly Prefix6[];
  readonly raw?: Uint8Array;
}

/**
 * The path attributes of one UPDATE. Well-known mandatory ones are optional here because an UPDATE that
 * only withdraws carries none; the codec's validation enforces presence when NLRI is present.
 * AS4_PATH / AS4_AGGREGATOR never appear here: the codec merges them into asPath / aggregator.
 */
export interface PathAttributes {
  origin?: Origin;
  asPath?: readonly AsPathSegment[];
  nextHop?: number;
  /**
   * The next hop of an IPv6 unicast route (RFC 2545 §3): the global address of MP_REACH_NLRI, and the
   * link-local one when the next hop was 32 bytes. Never on the wire as attributes of their own: the codec
   * fills them from MP_REACH_NLRI (`ipv6UnicastRoutes`) and builds MP_REACH_NLRI from them on export.
   */
  nextHop6?: Ipv6;
  nextHop6LinkLocal?: Ipv6;
  med?: number;
  localPref?: number;
  atomicAggregate?: boolean;
  aggregator?: Aggregator;
  communities?: readonly number[];
  /**
   * LARGE_COMMUNITY (RFC 8092), flat: each community is three u32s in a row (global administrator, local
   * data part 1, local data part 2), so the length is a multiple of 3; no duplicates (§2).
   */
  largeCommunities?: readonly number[];
  originatorId?: number;
  clusterList?: readonly number[];
  mpReach?: MpReach;
  mpUnreach?: MpUnreach;
  /** Unknown attributes in arrival order. Unknown non-transitive ones are dropped on export by the speaker. */
  unknown?: readonly UnknownAttribute[];
}

/** Capability codes (IANA "Capability Codes"). */
export const CapabilityCode = {
  MULTIPROTOCOL: 1,
  ROUTE_REFRESH: 2,
  GRACEFUL_RESTART: 64,
  FOUR_OCTET_AS: 65,
  ENHANCED_ROUTE_REFRESH: 70,
} as const;

export interface GracefulRestartFamily {
  readonly afi: number;
  readonly safi: number;
  /** F bit: forwarding state was preserved for this family. */
  readonly forwardingState: boolean;
}

export type Capability =
  | { readonly code: 1; readonly afi: number; readonly safi: number }
  | { readonly code: 2 }
  | {
      readonly code: 64;
      /** R bit: the sender has restarted. */
      readonly restarting: boolean;
      /** N bit (RFC 8538), kept when seen. */
      readonly notification?: boolean;
      /** Restart time in seconds, 0..4095. */
      readonly restartTime: number;
      readonly families: readonly GracefulRestartFamily[];
    }
  | { readonly code: 65; readonly asn: number }
  | { readonly code: 70 }
  /** Any other capability, kept as bytes so it can be shown and compared. */
  | { readonly code: number; readonly value: Uint8Array; readonly unknown: true };

export const MessageType = { OPEN: 1, UPDATE: 2, NOTIFICATION: 3, KEEPALIVE: 4, ROUTE_REFRESH: 5 } as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** ROUTE-REFRESH message subtypes (RFC 7313 §3): a request, Beginning / End of Route Refresh. */
export const RouteRefreshSubtype = { REQUEST: 0, BORR: 1, EORR: 2 } as const;

export interface OpenMessage {
  readonly type: 1;
  readonly version: number;
  /** The 2-octet "My Autonomous System" field as sent (AS_TRANS 23456 when the real AS is > 65535). */
  readonly myAs: number;
  readonly holdTime: number;
  readonly bgpId: number;
  readonly capabilities: readonly Capability[];
}

export interface UpdateMessage {
  readonly type: 2;
  readonly withdrawn: readonly Prefix[];
  readonly attributes: PathAttributes;
  readonly nlri: readonly Prefix[];
}

export interface NotificationMessage {
  readonly type: 3;
  readonly code: number;
  readonly subcode: number;
  readonly data: Uint8Array;
}

export interface KeepaliveMessage {
  readonly type: 4;
}

export interface RouteRefreshMessage {
  readonly type: 5;
  readonly afi: number;
  /** RFC 7313 message subtype: 0 normal request, 1 BoRR, 2 EoRR. */
  readonly subtype: number;
  readonly safi: number;
}

export type BgpMessage = OpenMessage | UpdateMessage | NotificationMessage | KeepaliveMessage | RouteRefreshMessage;

/** What the codec must know about the session to decode and encode UPDATEs. */
export interface CodecContext {
  /** Both sides advertised the 4-octet AS capability (RFC 6793 §3): AS_PATH carries 4-octet ASNs. */
  readonly fourOctetAs: boolean;
  /** The session is eBGP (LOCAL_PREF from an eBGP peer is ignored, RFC 7606 §7.5). */
  readonly ebgp?: boolean;
}

export const BGP_PORT = 179;
export const BGP_VERSION = 4;
export const AS_TRANS = 23456;
export const HEADER_LENGTH = 19;
export const MAX_MESSAGE_LENGTH = 4096;
