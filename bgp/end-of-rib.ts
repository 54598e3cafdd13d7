// End-of-RIB per address family (RFC 4724 §2: one marker per AFI/SAFI): which families' markers a peer's
// current session has sent. The speaker's graceful-restart sweep and selection deferral wait for all of them:
// on a session with IPv4 and IPv6 unicast, IPv4's End-of-RIB alone must not sweep the stale IPv6 routes the
// peer is still re-sending (nor end the deferral before its IPv6 table is in).

import { negotiatedFamily, type Family, type NegotiatedSession } from './negotiation.js';
import { IPV4_UNICAST, IPV6_UNICAST } from './negotiation.js';

interface Seen {
  /** The peer's session count when these were seen (a new session starts over). */
  readonly session: number;
  readonly families: Set<string>;
}

const seenBy = new WeakMap<object, Seen>();

/** The families whose End-of-RIB the speaker waits for (those it understands, when negotiated). */
const KNOWN: readonly Family[] = [IPV4_UNICAST, IPV6_UNICAST];

/**
 * Records `family`'s End-of-RIB from `peer` (its current session numbered `session`); true when every known
 * family the session negotiated has now sent its marker (a family the session did not negotiate is not
 * waited for). An unknown family's marker is recorded and changes nothing.
 */
export function endOfRibComplete(
  peer: object,
  session: number,
  negotiated: Pick<NegotiatedSession, 'families'> | undefined,
  family: Family,
): boolean {
  let seen = seenBy.get(peer);
  if (seen === undefined || seen.session !== session) {
    seen = { session, families: new Set() };
    seenBy.set(peer, seen);
  }
  seen.families.add(`${family.afi}/${family.safi}`);
  if (!KNOWN.some((f) => f.afi === family.afi && f.safi === family.safi)) return false;
  return KNOWN.every((f) => !negotiatedFamily(negotiated, f) || seen.families.has(`${f.afi}/${f.safi}`));
}
