// Update groups: peers whose export is identical share one Adj-RIB-Out and one encoding of each UPDATE.
//
// Owns: the group's desired set (export policy run once per best-route change, not once per peer), the
// group's view of what its in-sync members were sent, and per member only what differs from the group:
// - `own`: prefixes whose best route came from that member. It must never get them back (RFC 4271 §9.2,
//   RFC 4456 §6: not to the peer a route came from), so for those its desired state is "nothing". Only
//   prefixes the group exports are kept, so a peer whose routes go nowhere (a plain iBGP receiver) costs
//   nothing here.
// - `touched`: prefixes that entered or left `own` since the last flush, each with whether it was in `own`
//   then. In sync, a member lacks exactly the prefixes that were its own at the last flush ("sent"), so
//   that set is `own` corrected by `touched`, not a second copy.
// - `mode`: 'fresh' (the peer has nothing: a new session, or it was not Established at a flush), 'refresh'
//   (RFC 2918 §4: send everything again), 'sync', 'adopt' (it came from another group with what it had
//   there, `view`: its export policy changed on a live session, and it is sent only the difference).
//
// Who is grouped is the speaker's business (same AS and eBGP-ness, route-reflector client or not, next-hop
// mode, local next-hop address and export filter identity; an eBGP peer one IP hop away by its shared
// subnet and address too). The group's exporter must not apply "not back to the sender" itself (its policy
// has no real peer address): that is what `own` does per member.
// Choice recorded: tortie keeps the exception list rather than sending a route back and relying on the
// receiver's loop checks, which non-client iBGP and eBGP peers do not have for this case.
//
// Why this is hard: one flush must give every member exactly its own diff while sharing the encoded
// messages. `flush()` returns the group's batch (what the group view lacks) and, per member, which of the
// batch's announcement groups (and the withdrawals) go out as they are, plus what that member needs on its
// own: its exceptions, the announcement groups re-cut without them, a full table for a fresh member. It
// commits the group view at once: the speaker sends synchronously and calls `reset(member, 'fresh')` for
// any member whose send failed.
//
// Imports only the rib's own modules; pure (no sockets, no timers).

import type { AdjRibOut, PendingUpdates } from './adj-rib-out.js';
import type { Attrs } from './attrs.js';
import type { BestChange } from './loc-rib.js';
import type { PeerExport } from './policy.js';
import { compareRibKeys, ribPrefix, type RibKey, type RibPrefix } from './prefix6.js';
import { sourceId } from './route.js';

export type MemberMode = 'fresh' | 'refresh' | 'sync' | 'adopt';

/** What one member is sent in a flush. */
export interface MemberSend<M> {
  readonly member: M;
  /** Withdrawals only this member gets (sent before any announcement). */
  readonly withdraw: readonly RibPrefix[];
  /** The batch's withdrawals go to this member as encoded for the group. */
  readonly sharedWithdraw: boolean;
  /** Indexes into the batch's announcement groups that go to this member as encoded for the group. */
  readonly shared: readonly number[];
  /** Announcements only this member gets. */
  readonly announce: PendingUpdates['announce'];
}

/** One flush: the group batch (encode once) and what each ready member is sent. */
export interface GroupFlush<M> {
  readonly batch: PendingUpdates;
  readonly sends: ReadonlyArray<MemberSend<M>>;
}

interface MemberState<M> {
  readonly member: M;
  readonly address: number;
  own: Set<RibKey>;
  /** Prefix → whether it was in `own` at the last flush, for prefixes that entered or left `own` since. */
  touched: Map<RibKey, boolean>;
  mode: MemberMode;
  /** 'adopt': what the member has (from its previous group); it is sent the difference to this group's export. */
  view?: Map<RibKey, Attrs>;
}

const byKey = compareRibKeys;

function toAnnounce(groups: Map<Attrs, RibKey[]>): PendingUpdates['announce'] {
  const out: Array<{ attrs: Attrs; prefixes: RibPrefix[] }> = [];
  for (const [attrs, keys] of groups) out.push({ attrs, prefixes: keys.sort(byKey).map(ribPrefix) });
  return out;
}

function push(groups: Map<Attrs, RibKey[]>, attrs: Attrs, key: RibKey): void {
  const keys = groups.get(attrs);
  if (keys === undefined) groups.set(attrs, [key]);
  else keys.push(key);
}

export class UpdateGroup<M> {
  private readonly members = new Map<M, MemberState<M>>();
  private readonly byAddress = new Map<number, MemberState<M>>();

  /**
   * @param out the group's Adj-RIB-Out: desired = the group's export; "advertised" = what in-sync members have
   * @param exporter export for the group's shared policy (its peer address matches no member)
   */
  constructor(
    readonly out: AdjRibOut,
    readonly exporter: PeerExport,
  ) {}

  get size(): number {
    return this.members.size;
  }

  has(member: M): boolean {
    return this.members.has(member);
  }

  /**
   * Adds a member that has nothing yet (mode 'fresh'). `ownKeys`: prefixes whose best route comes from it
   * now (routes kept through its graceful restart); only those the group exports are kept. `address`: the
   * `sourceId` of the member's routes (its address, and port).
   */
  add(member: M, address: number, ownKeys: Iterable<RibKey> = []): void {
    const own = new Set<RibKey>();
    for (const key of ownKeys) if (this.out.desiredOf(key) !== undefined) own.add(key);
    const state: MemberState<M> = { member, address, own, touched: new Map(), mode: 'fresh' };
    this.members.set(member, state);
    this.byAddress.set(address, state);
  }

  /**
   * Adds a member that has `view` already (it leaves another group on a live session: its export policy
   * changed). The next flush sends it only what differs between `view` and this group's export — no reset.
   */
  adopt(member: M, address: number, ownKeys: Iterable<RibKey>, view: Map<RibKey, Attrs>): void {
    this.add(member, address, ownKeys);
    const state = this.members.get(member)!;
    state.mode = 'adopt';
    state.view = view;
  }

  /**
   * What the member has now, as this group sent it (the group view less the prefixes it lacks), or null when
   * it has nothing yet ('fresh').
   */
  viewOf(member: M): Map<RibKey, Attrs> | null {
    const state = this.members.get(member);
    if (state === undefined || state.mode === 'fresh') return null;
    if (state.mode === 'adopt') return new Map(state.view);
    const view = new Map<RibKey, Attrs>();
    for (const [key, attrs] of this.out.advertisedEntries())
      if (!(state.touched.get(key) ?? state.own.has(key))) view.set(key, attrs);
    return view;
  }

  remove(member: M): void {
    const state = this.members.get(member);
    if (state === undefined) return;
    this.members.delete(member);
    if (this.byAddress.get(state.address) === state) this.byAddress.delete(state.address);
  }

  /** The member lost everything (new session: 'fresh') or asked for everything again ('refresh'). */
  reset(member: M, mode: 'fresh' | 'refresh'): void {
    const state = this.members.get(member);
    if (state === undefined) return;
    if (mode === 'fresh') {
      state.touched.clear();
      state.mode = 'fresh';
      delete state.view;
    } else if (state.mode === 'sync') {
      state.mode = 'refresh';
    }
  }

  modeOf(member: M): MemberMode | undefined {
    return this.members.get(member)?.mode;
  }

  /** Best-route changes → the group's desired set and the members' exceptions. */
  apply(changes: readonly BestChange[]): void {
    for (const change of changes) {
      const best = change.best;
      const desired = best === null ? null : this.exporter.attributes(best);
      this.out.setDesired(change.key, desired);
      const previous = change.previous;
      const before =
        previous === null || previous.source.local ? undefined : this.byAddress.get(sourceId(previous.source));
      const after =
        best === null || desired === null || best.source.local ? undefined : this.byAddress.get(sourceId(best.source));
      if (
        before !== undefined &&
        before !== after &&
        before.own.delete(change.key) &&
        !before.touched.has(change.key)
      ) {
        before.touched.set(change.key, true);
      }
      if (after !== undefined && !after.own.has(change.key)) {
        after.own.add(change.key);
        if (!after.touched.has(change.key)) after.touched.set(change.key, false);
      }
    }
  }

  /** Something to send to someone (fresh members are flushed when their session comes up). */
  hasPending(): boolean {
    if (this.out.hasPending()) return true;
    for (const state of this.members.values())
      if (state.touched.size > 0 || state.mode === 'refresh' || state.mode === 'adopt') return true;
    return false;
  }

  /**
   * Everything to send now, and the group view committed as sent. `ready(m)`: the member can be sent to
   * (Established, not deferring); a member that is not becomes 'fresh' and gets the whole table later.
   */
  flush(ready: (member: M) => boolean): GroupFlush<M> {
    const keyed = this.out.pendingKeys();
    const batchSize = this.out.pendingSize;
    const batch: PendingUpdates = {
      announce: keyed.announce.map((g) => ({ attrs: g.attrs, prefixes: g.keys.map(ribPrefix) })),
      withdraw: keyed.withdraw.map(ribPrefix),
    };
    let indexOf: Map<Attrs, number> | undefined;
    const allShared = keyed.announce.map((_, i) => i);
    const sends: Array<MemberSend<M>> = [];
    for (const state of this.members.values()) {
      if (!ready(state.member)) {
        this.reset(state.member, 'fresh');
        continue;
      }
      if (state.mode === 'fresh') {
        sends.push(this.fullTable(state));
        continue;
      }
      if (state.mode === 'adopt') {
        sends.push(this.difference(state));
        continue;
      }
      // Prefixes where this member may differ from the group: exceptions that moved, and exceptions in the batch.
      // (No Set for a member without any: with 1,000 members most flushes concern few of them.)
      let concerns: Set<RibKey> | undefined =
        state.touched.size > 0 ? new Set<RibKey>(state.touched.keys()) : undefined;
      if (state.own.size <= batchSize) {
        for (const key of state.own) if (this.out.isPending(key)) (concerns ??= new Set<RibKey>()).add(key);
      } else {
        for (const g of keyed.announce)
          for (const key of g.keys) if (state.own.has(key)) (concerns ??= new Set<RibKey>()).add(key);
        for (const key of keyed.withdraw) if (state.own.has(key)) (concerns ??= new Set<RibKey>()).add(key);
      }
      if (concerns === undefined && state.mode === 'sync') {
        if (batchSize > 0)
          sends.push({
            member: state.member,
            withdraw: [],
            sharedWithdraw: keyed.withdraw.length > 0,
            shared: allShared,
            announce: [],
          });
        continue;
      }
      concerns ??= new Set<RibKey>();
      const announce = new Map<Attrs, RibKey[]>();
      const withdraw: RibKey[] = [];
      const recut = new Set<number>();
      let recutWithdraw = false;
      for (const key of concerns) {
        const want = state.own.has(key) ? undefined : this.out.desiredOf(key);
        const lacks = state.touched.get(key) ?? state.own.has(key);
        const has = lacks ? undefined : this.out.advertisedOf(key);
        if (this.out.isPending(key)) {
          const inBatch = this.out.desiredOf(key);
          if (inBatch === undefined) recutWithdraw = true;
          else {
            indexOf ??= new Map(keyed.announce.map((g, i) => [g.attrs, i]));
            recut.add(indexOf.get(inBatch) as number);
          }
        }
        if (want === has) continue;
        if (want === undefined) withdraw.push(key);
        else push(announce, want, key);
      }
      // Batch parts that carry one of this member's exceptions are re-cut without them.
      for (const index of recut) {
        const group = keyed.announce[index] as { attrs: Attrs; keys: RibKey[] };
        for (const key of group.keys) if (!concerns.has(key)) push(announce, group.attrs, key);
      }
      if (recutWithdraw) for (const key of keyed.withdraw) if (!concerns.has(key)) withdraw.push(key);
      if (state.mode === 'refresh') {
        // RFC 2918 §4: everything again; what the batch carries is already in.
        for (const [key, attrs] of this.out.desiredEntries()) {
          if (!concerns.has(key) && !state.own.has(key) && !this.out.isPending(key)) push(announce, attrs, key);
        }
      }
      state.touched.clear();
      state.mode = 'sync';
      sends.push({
        member: state.member,
        withdraw: withdraw.sort(byKey).map(ribPrefix),
        sharedWithdraw: !recutWithdraw && keyed.withdraw.length > 0,
        shared: recut.size === 0 ? allShared : allShared.filter((i) => !recut.has(i)),
        announce: toAnnounce(announce),
      });
    }
    this.out.markAllSent();
    return { batch, sends };
  }

  /** Prefixes the group view has and `member` has too (for status). */
  advertisedCount(member: M): number {
    const state = this.members.get(member);
    if (state === undefined || state.mode === 'fresh') return 0;
    if (state.mode === 'adopt') return state.view?.size ?? 0;
    let count = this.out.advertisedSize;
    for (const key of state.own) if (!state.touched.has(key) && this.out.advertisedOf(key) !== undefined) count--;
    for (const [key, wasOwn] of state.touched) if (wasOwn && this.out.advertisedOf(key) !== undefined) count--;
    return count;
  }

  /** Drops the group's state (its last member left). */
  clear(): void {
    this.members.clear();
    this.byAddress.clear();
    this.out.clear();
  }

  /** An adopted member: what differs between what it has (`view`) and the desired set less its own routes. */
  private difference(state: MemberState<M>): MemberSend<M> {
    const view = state.view ?? new Map<RibKey, Attrs>();
    const announce = new Map<Attrs, RibKey[]>();
    const withdraw: RibKey[] = [];
    for (const [key, attrs] of this.out.desiredEntries())
      if (!state.own.has(key) && view.get(key) !== attrs) push(announce, attrs, key);
    for (const key of view.keys()) if (state.own.has(key) || this.out.desiredOf(key) === undefined) withdraw.push(key);
    state.touched.clear();
    state.mode = 'sync';
    delete state.view;
    return {
      member: state.member,
      withdraw: withdraw.sort(byKey).map(ribPrefix),
      sharedWithdraw: false,
      shared: [],
      announce: toAnnounce(announce),
    };
  }

  /** A fresh member: the whole desired set except its own routes (RFC 4271 §9.2: the whole Adj-RIB-Out). */
  private fullTable(state: MemberState<M>): MemberSend<M> {
    const announce = new Map<Attrs, RibKey[]>();
    for (const [key, attrs] of this.out.desiredEntries()) if (!state.own.has(key)) push(announce, attrs, key);
    state.touched.clear();
    state.mode = 'sync';
    return { member: state.member, withdraw: [], sharedWithdraw: false, shared: [], announce: toAnnounce(announce) };
  }
}
