// The Speaker's export side: update groups by export identity, best-route changes into every group's
// desired set, and the coalesced flush that encodes each group's UPDATEs once per codec context and sends
// every Established member its difference (./rib/update-group.ts owns the per-member bookkeeping).
//
// Why this is hard: a flush runs out of a setImmediate, where an exception would end the process; a route
// whose attributes outgrew an UPDATE at this hop must be left out for that peer, not crash the export; and
// at 100k routes × several peers nothing may be encoded per peer more than once.

import {
  encodeEndOfRib,
  encodeEndOfRib6,
  encodeUpdates,
  encodeUpdates6,
  encodeWithdrawals,
  encodeWithdrawals6,
} from './codec/index.js';
import { formatIpv4, formatPrefix } from './ip.js';
import { IPV4_UNICAST, IPV6_UNICAST, negotiatedFamily } from './negotiation.js';
import {
  AdjRibOut,
  PeerExport,
  UpdateGroup,
  type AttrTable,
  type BestChange,
  type LocalSpeaker,
  type PeerPolicy,
  type Route,
} from './rib/index.js';
import { byFamily, formatRibPrefix, type RibPrefix } from './rib/prefix6.js';
import type { Logger, Session } from './session.js';
import type { CodecContext, PathAttributes } from './types.js';

/** What the export side needs of a peer. */
export interface ExportMember {
  readonly spec: { readonly address: string };
  readonly session: Session;
  group: UpdateGroup<this>;
}

export interface ExportHooks<M> {
  /** Peers currently configured, to find a failed group's members. */
  members(): Iterable<M>;
  /** The member may be sent routes now (it is still the configured peer). */
  current(member: M): boolean;
  /** Sending is deferred (RFC 4724 §4.1, restarting). */
  deferring(): boolean;
}

export class UpdateGroups<M extends ExportMember> {
  /** Update groups by export identity (see `groupFor`), and each live group's key. */
  private readonly groups = new Map<string, UpdateGroup<M>>();
  private readonly groupKeys = new Map<UpdateGroup<M>, string>();
  private readonly dirty = new Set<UpdateGroup<M>>();
  private flushScheduled = false;
  /** Export filters by identity → a small number for group keys. */
  private readonly filterIds = new WeakMap<object, number>();
  private nextFilterId = 1;

  constructor(
    private readonly table: AttrTable,
    private readonly logger: Logger,
    private readonly hooks: ExportHooks<M>,
  ) {}

  /**
   * The update group for a peer's export: same AS and eBGP-ness, RR client or not, next-hop mode, local
   * next-hop address and export filter (by identity) give the same attributes for every route, so such
   * peers share one Adj-RIB-Out and one encoding. The codec context (4-octet AS) is handled when encoding.
   * An eBGP peer one IP hop away is keyed by its subnet and its own address too: which next hops it gets
   * unchanged depends on the subnet, and a route whose next hop is its address gets ours instead — for it
   * alone. Such peers are few (the routers on a node's network), so they simply do not share.
   */
  groupFor(policy: PeerPolicy, local: LocalSpeaker, bestRoutes: () => Iterable<Route>): UpdateGroup<M> {
    const filter = policy.exportFilter;
    let filterId = 0;
    if (filter !== undefined) {
      filterId = this.filterIds.get(filter) ?? this.nextFilterId++;
      this.filterIds.set(filter, filterId);
    }
    const onLink =
      policy.sharedSubnet === undefined
        ? '-'
        : `${formatPrefix(policy.sharedSubnet.prefix)}>${formatIpv4(policy.sharedSubnet.peerAddress)}`;
    const key = `${local.asn}|${policy.asn}|${policy.ebgp}|${policy.rrClient}|${policy.nextHop ?? 'auto'}|${local.address}|${local.address6 ?? ''}|${filterId}|${onLink}`;
    const existing = this.groups.get(key);
    if (existing !== undefined) return existing;
    // The group's policy is the peers' with an address no peer has: "not back to the sender" is per member.
    const shared: PeerPolicy = { ...policy, address: -1 };
    const group = new UpdateGroup<M>(new AdjRibOut(this.table), new PeerExport(shared, local, this.table));
    for (const best of bestRoutes()) group.out.setDesired(best.key, group.exporter.attributes(best));
    this.groups.set(key, group);
    this.groupKeys.set(group, key);
    return group;
  }

  leave(member: M): void {
    const group = member.group;
    group.remove(member);
    if (group.size > 0) return;
    const key = this.groupKeys.get(group);
    if (key !== undefined) this.groups.delete(key);
    this.groupKeys.delete(group);
    this.dirty.delete(group);
    group.clear();
  }

  /** Best-route changes → every group's desired state; then one coalesced flush. */
  apply(changes: readonly BestChange[]): void {
    for (const group of this.groups.values()) {
      group.apply(changes);
      if (group.hasPending()) this.markDirty(group);
    }
  }

  markDirty(group: UpdateGroup<M>): void {
    this.dirty.add(group);
    this.scheduleFlush();
  }

  /** Sends are coalesced: everything changed while handling this round of I/O goes out together. */
  scheduleFlush(): void {
    if (this.flushScheduled || this.dirty.size === 0) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      const dirty = [...this.dirty];
      this.dirty.clear();
      for (const group of dirty) if (this.groupKeys.has(group)) this.flushContained(group);
    });
  }

  /** Flushes every group now (the end of the selection deferral). */
  flushAll(): void {
    for (const group of this.groups.values()) this.flush(group);
  }

  /**
   * A flush runs out of a setImmediate, where an exception would end the process: a failure exporting to
   * one update group is logged and resets that group's sessions (they get the whole table again), and the
   * other groups and the process carry on.
   */
  private flushContained(group: UpdateGroup<M>): void {
    try {
      this.flush(group);
    } catch (error) {
      const members = [...this.hooks.members()].filter((member) => member.group === group);
      const message = error instanceof Error ? error.message : String(error);
      this.logger.error(
        { peers: members.map((member) => member.spec.address), error: message },
        'BGP export failed: resetting the sessions of its update group',
      );
      for (const member of members) member.session.abort(`export failed: ${message}`);
    }
  }

  /**
   * A route whose attributes no longer fit a 4096-byte UPDATE once this hop adds its own (LOCAL_PREF,
   * ORIGINATOR_ID, CLUSTER_LIST, AS4_PATH) cannot be sent: it is left out for this peer and said in the log.
   * An exception here would run out of a setImmediate and take the whole process down with it.
   */
  private encodeOrSkip(
    attrs: PathAttributes,
    prefixes: readonly RibPrefix[],
    ctx: CodecContext,
    session: Session,
    families: Families,
  ): Uint8Array[] {
    try {
      // One attribute set is of one family (an IPv6 route's carries nextHop6): RFC 4760 §8, a family only
      // to a peer that negotiated it.
      const { v4, v6 } = byFamily(prefixes);
      const out = families.v4 && v4.length > 0 ? encodeUpdates(attrs, v4, ctx) : [];
      if (families.v6 && v6.length > 0) out.push(...encodeUpdates6(attrs, v6, ctx));
      return out;
    } catch (error) {
      this.logger.error(
        {
          peer: session.negotiated ? formatIpv4(session.negotiated.peerBgpId) : undefined,
          prefixes: prefixes.length,
          first: prefixes[0] ? formatRibPrefix(prefixes[0]) : undefined,
          err: (error as Error).message,
        },
        'routes not advertised: their path attributes do not fit a BGP UPDATE',
      );
      return [];
    }
  }

  /**
   * Sends every Established member of `group` the difference between what it should have and what it was
   * sent. The group's batch is encoded once per codec context; members only re-encode their exceptions.
   */
  flush(group: UpdateGroup<M>): void {
    if (this.hooks.deferring()) return;
    // RFC 4760 §8 / RFC 4271: routes of a family only to a peer that negotiated that family.
    const plan = group.flush(
      (member) =>
        member.session.established &&
        this.hooks.current(member) &&
        (carriesIpv4(member.session) || carriesIpv6(member.session)),
    );
    const encoded = new Map<
      string,
      {
        withdraw?: Uint8Array[];
        announce: Array<Uint8Array[] | undefined>;
        whole?: { bytes: Uint8Array; updates: number };
      }
    >();
    const batchParts = plan.batch.announce.length;
    for (const send of plan.sends) {
      const session = send.member.session;
      const ctx = session.codecContext;
      const families: Families = { v4: carriesIpv4(session), v6: carriesIpv6(session) };
      const ctxKey = `${ctx.fourOctetAs}|${ctx.ebgp === true}|${families.v4}|${families.v6}`;
      let shared = encoded.get(ctxKey);
      if (shared === undefined) {
        shared = { announce: [] };
        encoded.set(ctxKey, shared);
      }
      // A member that gets the whole batch and nothing of its own (every in-sync member without exceptions
      // in it) is sent one buffer, made once per codec context and shared by all of them: the same bytes
      // as the messages one by one, without a copy per member.
      const whole =
        send.withdraw.length === 0 &&
        send.announce.length === 0 &&
        send.shared.length === batchParts &&
        (send.sharedWithdraw || plan.batch.withdraw.length === 0);
      if (whole && shared.whole !== undefined) {
        if (shared.whole.updates > 0 && !session.sendUpdates([shared.whole.bytes], shared.whole.updates))
          group.reset(send.member, 'fresh');
        continue;
      }
      const messages: Uint8Array[] = [];
      const add = (list: readonly Uint8Array[]): void => {
        for (const m of list) messages.push(m);
      };
      if (send.sharedWithdraw) add((shared.withdraw ??= withdrawals(plan.batch.withdraw, ctx, families)));
      if (send.withdraw.length > 0) add(withdrawals(send.withdraw, ctx, families));
      for (const index of send.shared) {
        let list = shared.announce[index];
        if (list === undefined) {
          const g = plan.batch.announce[index]!;
          list = this.encodeOrSkip(g.attrs, g.prefixes, ctx, session, families);
          shared.announce[index] = list;
        }
        add(list);
      }
      for (const g of send.announce) add(this.encodeOrSkip(g.attrs, g.prefixes, ctx, session, families));
      if (whole) shared.whole = { bytes: concatBytes(messages), updates: messages.length };
      if (messages.length > 0 && !session.sendUpdates(messages)) group.reset(send.member, 'fresh');
    }
  }
}

/** `parts` one after the other in one buffer. */
function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const p of parts) size += p.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * The session negotiated IPv4 unicast (RFC 4760 §8): `families` is what both OPENs have in common, a side
 * without the multiprotocol capability counting as IPv4 unicast only.
 */
export function carriesIpv4(session: Session): boolean {
  return negotiatedFamily(session.negotiated, IPV4_UNICAST);
}

/** The session negotiated IPv6 unicast (RFC 4760 §8, RFC 2545). */
export function carriesIpv6(session: Session): boolean {
  return negotiatedFamily(session.negotiated, IPV6_UNICAST);
}

/** Which families a member may be sent. */
interface Families {
  readonly v4: boolean;
  readonly v6: boolean;
}

function withdrawals(prefixes: readonly RibPrefix[], ctx: CodecContext, families: Families): Uint8Array[] {
  const { v4, v6 } = byFamily(prefixes);
  const out = families.v4 && v4.length > 0 ? encodeWithdrawals(v4, ctx) : [];
  if (families.v6 && v6.length > 0) out.push(...encodeWithdrawals6(v6));
  return out;
}

/** End-of-RIB for every family the session negotiated (RFC 4724 §2: one per AFI/SAFI). */
export function endOfRibs(session: Session): Uint8Array[] {
  const out: Uint8Array[] = [];
  if (carriesIpv4(session)) out.push(encodeEndOfRib());
  if (carriesIpv6(session)) out.push(encodeEndOfRib6());
  return out;
}
