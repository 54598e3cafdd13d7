// RFC 7606 revised UPDATE error handling, apart from parsing: parsing (update.ts, attributes.ts) only
// records `Problem`s, each with the action its rule names; this module adds the semantic checks and
// decides what the UPDATE becomes.
//
// Why this is hard: RFC 4271 §6.3 resets the session on any attribute error, which takes down every
// route on the session for one bad attribute. RFC 7606 §2 replaces that with three actions, and when
// several errors are present the strongest wins (RFC 7606 §3 (h): session reset > treat-as-withdraw >
// attribute-discard). Treat-as-withdraw must still withdraw every prefix the UPDATE named, so NLRI has
// to be located even when attributes are broken — that is why the Total Attribute Length is trusted
// (RFC 7606 §4) and why NLRI that cannot be parsed is a session reset (RFC 7606 §5.3).

import { BgpError, ErrorCode, UpdateSubcode } from '../errors.js';
import { formatIpv4 } from '../ip.js';
import type { Prefix6 } from '../ip6.js';
import {
  Afi,
  MessageType,
  Safi,
  type BgpMessage,
  type CodecContext,
  type Prefix,
  type UpdateMessage,
} from '../types.js';
import type { MutableAttributes, Rfc7606Action } from './attributes.js';
import { badNextHop6, isIpv6Unicast, mpUnreach6, nextHop6Of } from './mp-ipv6.js';

/** One thing wrong with an UPDATE, and what RFC 7606 says to do about it. */
export interface Problem {
  readonly action: Rfc7606Action;
  /** Attribute or field name: "ORIGIN", "NLRI", "attribute list". */
  readonly what: string;
  readonly reason: string;
  /** The rule that chose the action, cited in logs: "RFC 7606 §7.1". */
  readonly rule: string;
  /** For a session reset: the UPDATE Message Error subcode and data (RFC 4271 §6.3). */
  readonly subcode?: number;
  readonly data?: Uint8Array;
}

/** The outcome of decoding one message (see index.ts for the contract). */
export interface DecodeResult {
  message: BgpMessage;
  treatAsWithdraw?: string;
  discarded?: string[];
}

/** The parts of an UPDATE as parsed, before RFC 7606 decides. */
export interface ParsedUpdate {
  readonly withdrawn: Prefix[];
  readonly attrs: MutableAttributes;
  readonly nlri: Prefix[];
}

/**
 * Semantic checks that need the whole UPDATE (RFC 7606 §3 d, §7.3, §7.5). Adds problems; may remove an
 * attribute that is to be disregarded.
 */
export function checkSemantics(u: ParsedUpdate, ctx: CodecContext, problems: Problem[]): void {
  const a = u.attrs;
  const mpNlri =
    a.mpReach !== undefined &&
    (a.mpReach.nlri.length > 0 || (a.mpReach.nlri6?.length ?? 0) > 0 || (a.mpReach.raw?.length ?? 0) > 0);
  // RFC 7606 §3 (d): a missing well-known mandatory attribute → treat-as-withdraw. ORIGIN and AS_PATH are
  // needed whenever there is reachability; NEXT_HOP only for the IPv4 NLRI field (RFC 4760 §3 makes it
  // effectively discretionary with MP_REACH_NLRI).
  if (u.nlri.length > 0 || mpNlri) {
    const missing: string[] = [];
    if (a.origin === undefined) missing.push('ORIGIN');
    if (a.asPath === undefined) missing.push('AS_PATH');
    if (u.nlri.length > 0 && a.nextHop === undefined) missing.push('NEXT_HOP');
    if (missing.length > 0) {
      problems.push({
        action: 'withdraw',
        what: missing.join(', '),
        reason: `missing well-known mandatory attribute(s) ${missing.join(', ')}`,
        rule: 'RFC 7606 §3 (d)',
      });
    }
  }
  // RFC 4271 §6.3 / RFC 7606 §7.3: a NEXT_HOP that is not a valid host address → treat-as-withdraw.
  if (u.nlri.length > 0 && a.nextHop !== undefined) {
    const nh = a.nextHop;
    const bad =
      nh === 0
        ? 'is 0.0.0.0'
        : nh === 0xffffffff
          ? 'is the broadcast address'
          : nh >= 0xe0000000 && nh < 0xf0000000
            ? 'is multicast (224.0.0.0/4)'
            : null;
    if (bad)
      problems.push({
        action: 'withdraw',
        what: 'NEXT_HOP',
        reason: `NEXT_HOP ${formatIpv4(nh)} ${bad}, expected a unicast host address`,
        rule: 'RFC 7606 §7.3',
      });
  }
  // IPv6 unicast next hop that is not a host address (RFC 2545 §3; as RFC 7606 §7.3) → treat-as-withdraw.
  if (a.mpReach !== undefined && isIpv6Unicast(a.mpReach) && (a.mpReach.nlri6?.length ?? 0) > 0) {
    const nh = nextHop6Of(a.mpReach);
    const bad = nh === undefined ? 'has no IPv6 address' : badNextHop6(nh);
    if (bad)
      problems.push({
        action: 'withdraw',
        what: 'MP_REACH_NLRI next hop',
        reason: `IPv6 next hop ${bad}, expected a unicast host address`,
        rule: 'RFC 2545 §3, RFC 7606 §7.3',
      });
  }
  // RFC 7606 §7.5: LOCAL_PREF from an external neighbour is disregarded.
  if (ctx.ebgp && a.localPref !== undefined) {
    delete a.localPref;
    problems.push({
      action: 'discard',
      what: 'LOCAL_PREF',
      reason: 'LOCAL_PREF received from an eBGP peer is disregarded',
      rule: 'RFC 7606 §7.5',
    });
  }
}

const isIpv4Unicast = (afi: number, safi: number): boolean => afi === Afi.IPV4 && safi === Safi.UNICAST;

/** Every prefix the UPDATE names, for treat-as-withdraw (RFC 7606 §2). */
function allPrefixes(u: ParsedUpdate): Prefix[] {
  const out = [...u.withdrawn, ...u.nlri];
  const { mpReach, mpUnreach } = u.attrs;
  if (mpReach && isIpv4Unicast(mpReach.afi, mpReach.safi)) out.push(...mpReach.nlri);
  if (mpUnreach && isIpv4Unicast(mpUnreach.afi, mpUnreach.safi)) out.push(...mpUnreach.withdrawn);
  return out;
}

/** Every IPv6 unicast prefix the UPDATE names, for treat-as-withdraw (RFC 7606 §2). */
function allPrefixes6(u: ParsedUpdate): Prefix6[] {
  const { mpReach, mpUnreach } = u.attrs;
  const out: Prefix6[] = [];
  if (mpReach && isIpv6Unicast(mpReach)) out.push(...(mpReach.nlri6 ?? []));
  if (mpUnreach && isIpv6Unicast(mpUnreach)) out.push(...(mpUnreach.withdrawn6 ?? []));
  return out;
}

const describe = (p: Problem): string => `${p.what}: ${p.reason} (${p.rule})`;

/**
 * Applies the strongest action among `problems` (RFC 7606 §3 (h)). Throws BgpError for a session reset;
 * otherwise returns the UPDATE (or its treat-as-withdraw form) with any discard notes.
 */
export function resolveUpdate(u: ParsedUpdate, problems: readonly Problem[], notes: readonly string[]): DecodeResult {
  const reset = problems.find((p) => p.action === 'reset');
  if (reset) {
    throw new BgpError(
      ErrorCode.UPDATE_MESSAGE,
      reset.subcode ?? UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
      describe(reset),
      reset.data,
    );
  }
  const discarded = [...problems.filter((p) => p.action === 'discard').map(describe), ...notes];
  const withdraws = problems.filter((p) => p.action === 'withdraw');
  if (withdraws.length > 0) {
    // The IPv6 prefixes named go out as one MP_UNREACH_NLRI (RFC 4760 §4) of the treat-as-withdraw UPDATE.
    const v6 = allPrefixes6(u);
    const attributes = v6.length > 0 ? { mpUnreach: mpUnreach6(v6) } : {};
    const message: UpdateMessage = { type: MessageType.UPDATE, withdrawn: allPrefixes(u), attributes, nlri: [] };
    return {
      message,
      treatAsWithdraw: withdraws.map(describe).join('; '),
      ...(discarded.length > 0 ? { discarded } : {}),
    };
  }
  const message: UpdateMessage = {
    type: MessageType.UPDATE,
    withdrawn: u.withdrawn,
    attributes: u.attrs,
    nlri: u.nlri,
  };
  return discarded.length > 0 ? { message, discarded } : { message };
}
