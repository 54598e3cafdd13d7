// The OPEN exchange as pure functions: the OPEN we send, the checks on the one we receive, what the two
// agree on (capabilities, 4-octet AS, graceful restart, families), and which connection survives a
// collision. No sockets, no timers: the session (./session.ts) and the speaker (./speaker.ts) call these.
//
// Why this is hard: the OPEN check mixes RFC 4271 §6.2 with RFC 6793 (the peer's real AS is in the 4-octet
// AS capability; the 2-octet field may be AS_TRANS) and RFC 6286 (the BGP identifier only has to differ on
// iBGP). Hold time is negotiated by the FSM (fsm.ts `negotiateHoldTime`) and only carried through here.

import { BgpError, ErrorCode, OpenSubcode } from './errors.js';
import { formatIpv4 } from './ip.js';
import {
  Afi,
  AS_TRANS,
  BGP_VERSION,
  CapabilityCode,
  MessageType,
  Safi,
  type Capability,
  type CodecContext,
  type OpenMessage,
} from './types.js';

export interface GracefulRestartConfig {
  /** Restart time advertised, seconds 0..4095 (RFC 4724 §3). */
  readonly restartTime: number;
  /** F bit for IPv4 unicast: forwarding state preserved across a restart. */
  readonly forwardingState?: boolean;
  /** R bit: we are restarting. */
  readonly restarting?: boolean;
  /** Helper only (RFC 4724 §3): the capability with no address family — we keep a restarting peer's
   *  routes, but promise nothing about our own forwarding state. */
  readonly helperOnly?: boolean;
}

export type GracefulRestartCapability = Extract<Capability, { code: typeof CapabilityCode.GRACEFUL_RESTART }>;

export interface NegotiatedSession {
  /** Seconds; 0 means no hold timer and no keepalives. */
  readonly holdTime: number;
  readonly keepaliveTime: number;
  /** Both sides sent the 4-octet AS capability (RFC 6793). */
  readonly fourOctetAs: boolean;
  /** The peer accepts ROUTE-REFRESH (RFC 2918) — we always offer it. */
  readonly routeRefresh: boolean;
  readonly enhancedRouteRefresh: boolean;
  /** The peer's graceful restart capability, if sent. */
  readonly gracefulRestart?: GracefulRestartCapability;
  /** Families both sides support (RFC 4760; no MP capability from the peer means IPv4 unicast). */
  readonly families: ReadonlyArray<{ afi: number; safi: number }>;
  readonly peerAs: number;
  readonly peerBgpId: number;
  readonly ebgp: boolean;
  readonly peerCapabilities: readonly Capability[];
  readonly codec: CodecContext;
}

/** An address family (RFC 4760 §5): AFI and SAFI. */
export interface Family {
  readonly afi: number;
  readonly safi: number;
}

export const IPV4_UNICAST: Family = Object.freeze({ afi: Afi.IPV4, safi: Safi.UNICAST });
export const IPV6_UNICAST: Family = Object.freeze({ afi: Afi.IPV6, safi: Safi.UNICAST });

/**
 * The capabilities of our OPEN: one Multiprotocol capability per family (RFC 4760 §8; IPv4 unicast unless
 * told otherwise, IPv6 unicast when the session carries it, RFC 2545), ROUTE-REFRESH (RFC 2918), our 4-octet
 * AS (RFC 6793), and GR if configured with the same families (RFC 4724 §3: one entry per AFI/SAFI).
 */
export function ourCapabilities(
  localAs: number,
  gr: GracefulRestartConfig | undefined,
  families: readonly Family[] = [IPV4_UNICAST],
): Capability[] {
  const caps: Capability[] = [
    ...families.map((f): Capability => ({ code: CapabilityCode.MULTIPROTOCOL, afi: f.afi, safi: f.safi })),
    { code: CapabilityCode.ROUTE_REFRESH },
    { code: CapabilityCode.FOUR_OCTET_AS, asn: localAs },
  ];
  if (gr) {
    caps.push({
      code: CapabilityCode.GRACEFUL_RESTART,
      restarting: gr.restarting ?? false,
      restartTime: gr.restartTime,
      families: gr.helperOnly
        ? []
        : families.map((f) => ({ afi: f.afi, safi: f.safi, forwardingState: gr.forwardingState ?? false })),
    });
  }
  return caps;
}

/** Both OPENs named the family (RFC 4760 §8): routes of it may be sent and are expected. */
export function negotiatedFamily(session: Pick<NegotiatedSession, 'families'> | undefined, family: Family): boolean {
  return session?.families.some((f) => f.afi === family.afi && f.safi === family.safi) ?? false;
}

/**
 * The peer's graceful restart entry for one family (RFC 4724 §3), or undefined when its capability does not
 * name the family (its routes of that family are then not retained across its restart, §4.2).
 */
export function restartFamily(
  gr: GracefulRestartCapability | undefined,
  family: Family,
): { readonly forwardingState: boolean } | undefined {
  return gr?.families.find((f) => f.afi === family.afi && f.safi === family.safi);
}

/** The OPEN we send. RFC 6793 §4.1: an AS above 65535 goes in the 2-octet field as AS_TRANS. */
export function buildOpen(
  local: { localAs: number; routerId: number },
  holdTime: number,
  capabilities: readonly Capability[],
): OpenMessage {
  return {
    type: MessageType.OPEN,
    version: BGP_VERSION,
    myAs: local.localAs > 0xffff ? AS_TRANS : local.localAs,
    holdTime,
    bgpId: local.routerId,
    capabilities,
  };
}

/** `capabilities` with the graceful restart capability's R bit set to `restarting` (RFC 4724 §3). */
export function withRestartingBit(capabilities: readonly Capability[], restarting: boolean): Capability[] {
  return capabilities.map((c) =>
    c.code === CapabilityCode.GRACEFUL_RESTART && 'restartTime' in c ? { ...c, restarting } : c,
  );
}

export function capabilityWith<C extends number>(
  caps: readonly Capability[],
  code: C,
): Extract<Capability, { code: C }> | undefined {
  return caps.find((c) => c.code === code && !('unknown' in c)) as Extract<Capability, { code: C }> | undefined;
}

/**
 * RFC 4271 §6.2 semantic checks of a received OPEN (syntax is the codec's): the peer's AS (RFC 6793 §4.1:
 * the 4-octet AS capability when present) must be the configured one; the BGP identifier must differ from
 * ours on iBGP (RFC 6286 §2.2); the hold time must be 0 or ≥ 3. Returns the error to send, or undefined.
 */
export function checkOpen(
  open: OpenMessage,
  local: { localAs: number; peerAs: number; routerId: number },
): BgpError | undefined {
  if (open.version !== BGP_VERSION) {
    return new BgpError(
      ErrorCode.OPEN_MESSAGE,
      OpenSubcode.UNSUPPORTED_VERSION,
      `version ${open.version}, only ${BGP_VERSION} is supported`,
      Uint8Array.of(0, BGP_VERSION),
    );
  }
  const four = capabilityWith(open.capabilities, CapabilityCode.FOUR_OCTET_AS);
  const peerAs = four ? four.asn : open.myAs;
  if (peerAs !== local.peerAs) {
    // RFC 4271 §6.2: the data is the 2-octet My Autonomous System field as received.
    return new BgpError(
      ErrorCode.OPEN_MESSAGE,
      OpenSubcode.BAD_PEER_AS,
      `peer AS ${peerAs}${four ? ` (4-octet AS capability; My AS field ${open.myAs})` : ''} is not the configured peer AS ${local.peerAs}`,
      Uint8Array.of((open.myAs >>> 8) & 0xff, open.myAs & 0xff),
    );
  }
  if (open.bgpId === 0 || (local.localAs === local.peerAs && open.bgpId === local.routerId)) {
    return new BgpError(
      ErrorCode.OPEN_MESSAGE,
      OpenSubcode.BAD_BGP_IDENTIFIER,
      open.bgpId === 0
        ? 'BGP identifier 0.0.0.0 is not valid (RFC 6286)'
        : `peer BGP identifier ${formatIpv4(open.bgpId)} equals ours on an iBGP session (RFC 6286 §2.2)`,
    );
  }
  if (open.holdTime === 1 || open.holdTime === 2) {
    return new BgpError(
      ErrorCode.OPEN_MESSAGE,
      OpenSubcode.UNACCEPTABLE_HOLD_TIME,
      `hold time ${open.holdTime} s is not 0 or 3..65535 (RFC 4271 §4.2)`,
    );
  }
  return undefined;
}

/** RFC 4760 §8 / RFC 5492: a speaker that sends no multiprotocol capability speaks IPv4 unicast only. */
function familiesOf(caps: readonly Capability[]): Array<{ afi: number; safi: number }> {
  const list = caps
    .filter(
      (c): c is Extract<Capability, { code: typeof CapabilityCode.MULTIPROTOCOL }> =>
        c.code === CapabilityCode.MULTIPROTOCOL && 'afi' in c,
    )
    .map((c) => ({ afi: c.afi, safi: c.safi }));
  return list.length > 0 ? list : [{ afi: Afi.IPV4, safi: Safi.UNICAST }];
}

/** What the two OPENs agree on (capabilities side; hold time comes from the FSM). */
export function negotiateCapabilities(
  ours: readonly Capability[],
  open: OpenMessage,
  local: { localAs: number; peerAs: number },
  hold: { holdTime: number; keepaliveTime: number },
): NegotiatedSession {
  const theirs = open.capabilities;
  const has = (caps: readonly Capability[], code: number): boolean => caps.some((c) => c.code === code);
  const theirFamilies = familiesOf(theirs);
  const families = familiesOf(ours).filter((f) => theirFamilies.some((t) => t.afi === f.afi && t.safi === f.safi));
  const fourOctetAs = has(ours, CapabilityCode.FOUR_OCTET_AS) && has(theirs, CapabilityCode.FOUR_OCTET_AS);
  const ebgp = local.localAs !== local.peerAs;
  const gracefulRestart = capabilityWith(theirs, CapabilityCode.GRACEFUL_RESTART);
  return {
    holdTime: hold.holdTime,
    keepaliveTime: hold.keepaliveTime,
    fourOctetAs,
    routeRefresh: has(theirs, CapabilityCode.ROUTE_REFRESH) || has(theirs, CapabilityCode.ENHANCED_ROUTE_REFRESH),
    enhancedRouteRefresh:
      has(ours, CapabilityCode.ENHANCED_ROUTE_REFRESH) && has(theirs, CapabilityCode.ENHANCED_ROUTE_REFRESH),
    ...(gracefulRestart ? { gracefulRestart } : {}),
    families,
    peerAs: local.peerAs,
    peerBgpId: open.bgpId,
    ebgp,
    peerCapabilities: theirs,
    codec: { fourOctetAs, ebgp },
  };
}

/**
 * RFC 4271 §6.8 connection collision: of two connections between the same pair of speakers, the one opened
 * by the speaker with the higher BGP identifier survives. Returns which of *our* connections to keep: the
 * one we opened ('outbound') or the one the peer opened ('inbound'); call `collisionDump()` on the other.
 */
export function collisionSurvivor(localBgpId: number, remoteBgpId: number): 'outbound' | 'inbound' {
  // "If the value of the local BGP Identifier is less than the remote one, the local system closes the
  // BGP connection that already exists ... and accepts the BGP connection initiated by the remote system."
  return localBgpId >>> 0 > remoteBgpId >>> 0 ? 'outbound' : 'inbound';
}

/**
 * The speaker's collision (RFC 4271 §6.8): its existing session and a challenger that holds the peer's
 * newer inbound connection. The challenger wins only when the existing connection is one we opened and
 * the peer's identifier is the higher; an existing connection that was accepted too (inbound) keeps its
 * place, and the newer inbound one simply loses. Equal identifiers (possible on eBGP only) keep the existing one.
 */
export function collisionWinner(
  existing: 'inbound' | 'outbound' | undefined,
  localBgpId: number,
  remoteBgpId: number,
): 'existing' | 'challenger' {
  return existing === 'outbound' && localBgpId >>> 0 < remoteBgpId >>> 0 ? 'challenger' : 'existing';
}
