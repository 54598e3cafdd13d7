// Update groups: members with identical export share one Adj-RIB-Out and one batch, yet each ends up with
// exactly "the group's desired set minus the routes it sent us", only differences are sent, a fresh member
// gets the whole table, a refresh re-announces everything, and references go back to zero.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatRibPrefix, ribKeyOf, ribPrefix, type RibKey } from '../../../bgp/rib/prefix6.js';
import { AdjRibOut } from '../../../bgp/rib/adj-rib-out.js';
import { AttrTable } from '../../../bgp/rib/attrs.js';
import type { Attrs } from '../../../bgp/rib/attrs.js';
import type { BestChange } from '../../../bgp/rib/loc-rib.js';
import { PeerExport } from '../../../bgp/rib/policy.js';
import type { LocalSpeaker, PeerPolicy } from '../../../bgp/rib/policy.js';
import { Route, localSource } from '../../../bgp/rib/route.js';
import type { RouteSource } from '../../../bgp/rib/route.js';
import { UpdateGroup } from '../../../bgp/rib/update-group.js';
import type { GroupFlush } from '../../../bgp/rib/update-group.js';
import { LOCAL_AS, attrs, ip, key, source } from './fixtures.js';

const LOCAL: LocalSpeaker = { asn: LOCAL_AS, routerId: ip('10.0.0.100'), address: ip('10.0.0.100') };
const MEMBERS = ['10.0.0.1', '10.0.0.2', '10.0.0.3'] as const;
const PREFIXES = ['10.244.0.0/26', '10.244.0.64/26', '10.244.0.128/26', '10.244.0.192/26'] as const;

/** A member's view of the world: prefix key → attribute set it was sent. */
type Held = Map<RibKey, Attrs>;

function setup() {
  const table = new AttrTable();
  // Route-reflector clients: everything is reflected to every client except its sender.
  const policy: PeerPolicy = { address: -1, asn: LOCAL_AS, ebgp: false, rrClient: true };
  const group = new UpdateGroup<string>(new AdjRibOut(table), new PeerExport(policy, LOCAL, table));
  const sources = new Map<string, RouteSource>(MEMBERS.map((a) => [a, source(a, { rrClient: true })]));
  sources.set('local', localSource(LOCAL));
  sources.set('other', source('10.0.0.9', { rrClient: true }));
  const best = new Map<number, Route>();
  /** Sets the best route of a prefix (as the Loc-RIB would report it) and feeds the change to the group. */
  const setBest = (prefix: string, from: string | null, med = 1): void => {
    const k = key(prefix);
    const previous = best.get(k) ?? null;
    let next: Route | null = null;
    if (from !== null) {
      next = new Route(k, table.canonical(attrs({ med, nextHop: ip('198.18.0.1') })), sources.get(from)!);
      best.set(k, next);
    } else {
      best.delete(k);
    }
    if (previous === null && next === null) return;
    const change: BestChange = { key: k, previous, best: next };
    group.apply([change]);
  };
  /** What `member` should hold: every best route not learned from it, as the group exports it. */
  const expected = (member: string): Map<string, number | undefined> => {
    const out = new Map<string, number | undefined>();
    for (const [k, route] of best) {
      if (!route.source.local && route.source.address === ip(member)) continue;
      const exported = group.exporter.attributes(route);
      if (exported !== null) out.set(formatRibPrefix(ribPrefix(k)), exported.med);
    }
    return out;
  };
  const show = (held: Held): Map<string, number | undefined> =>
    new Map([...held].map(([k, a]) => [formatRibPrefix(ribPrefix(k)), a.med]));
  return { table, group, setBest, expected, show, best };
}

/** Applies one flush's sends to the members' views; returns how many announcements/withdrawals were redundant. */
function deliver(plan: GroupFlush<string>, held: Map<string, Held>): { redundant: number; sent: number } {
  let redundant = 0;
  let sent = 0;
  for (const send of plan.sends) {
    const view = held.get(send.member)!;
    const withdraw = [...(send.sharedWithdraw ? plan.batch.withdraw : []), ...send.withdraw];
    for (const p of withdraw) {
      sent++;
      if (!view.delete(ribKeyOf(p))) redundant++;
    }
    const announce = [...send.shared.map((i) => plan.batch.announce[i]!), ...send.announce];
    for (const g of announce) {
      for (const p of g.prefixes) {
        sent++;
        if (view.get(ribKeyOf(p)) === g.attrs) redundant++;
        view.set(ribKeyOf(p), g.attrs);
      }
    }
  }
  return { redundant, sent };
}

describe('UpdateGroup', () => {
  it("shares one batch, keeps each member's own routes from it, and re-cuts only the part that held them", () => {
    const { group, setBest, expected, show } = setup();
    const held = new Map<string, Held>(MEMBERS.map((m) => [m, new Map()]));
    for (const m of MEMBERS) group.add(m, ip(m));
    deliver(
      group.flush(() => true),
      held,
    ); // empty tables
    setBest(PREFIXES[0], '10.0.0.1');
    setBest(PREFIXES[1], 'other');
    const plan = group.flush(() => true);
    expect(plan.sends.length).toBe(3);
    const bySender = new Map(plan.sends.map((s) => [s.member, s]));
    // Member 1's route and the other route have different attribute sets (ORIGINATOR_ID): two batch parts.
    expect(plan.batch.announce.length).toBe(2);
    expect(bySender.get('10.0.0.2')!.shared).toEqual([0, 1]);
    expect(bySender.get('10.0.0.2')!.announce).toEqual([]);
    expect(bySender.get('10.0.0.1')!.shared.length).toBe(1);
    deliver(plan, held);
    for (const m of MEMBERS) expect(show(held.get(m)!)).toEqual(expected(m));
    expect(held.get('10.0.0.1')!.has(key(PREFIXES[0]))).toBe(false);
    expect(held.get('10.0.0.2')!.has(key(PREFIXES[0]))).toBe(true);
  });

  it('withdraws from a member a route that became its own, and announces one that stopped being its own', () => {
    const { group, setBest, expected, show } = setup();
    const held = new Map<string, Held>(MEMBERS.map((m) => [m, new Map()]));
    for (const m of MEMBERS) group.add(m, ip(m));
    setBest(PREFIXES[0], 'other', 5);
    deliver(
      group.flush(() => true),
      held,
    );
    expect(held.get('10.0.0.2')!.size).toBe(1);
    // Same exported attributes would not move the group; a new source does (originator id differs).
    setBest(PREFIXES[0], '10.0.0.2', 5);
    let result = deliver(
      group.flush(() => true),
      held,
    );
    expect(result.redundant).toBe(0);
    expect(held.get('10.0.0.2')!.size).toBe(0);
    for (const m of MEMBERS) expect(show(held.get(m)!)).toEqual(expected(m));
    setBest(PREFIXES[0], 'local');
    result = deliver(
      group.flush(() => true),
      held,
    );
    expect(result.redundant).toBe(0);
    for (const m of MEMBERS) expect(show(held.get(m)!)).toEqual(expected(m));
    expect(held.get('10.0.0.2')!.size).toBe(1);
  });

  it('gives a fresh member the whole table, a refresh everything again, and nothing to a member not ready', () => {
    const { group, setBest, expected, show } = setup();
    const held = new Map<string, Held>(MEMBERS.map((m) => [m, new Map()]));
    group.add('10.0.0.1', ip('10.0.0.1'));
    for (const p of PREFIXES) setBest(p, 'other');
    deliver(
      group.flush((m) => m === '10.0.0.1'),
      held,
    );
    expect(held.get('10.0.0.1')!.size).toBe(PREFIXES.length);
    group.add('10.0.0.2', ip('10.0.0.2'));
    expect(group.modeOf('10.0.0.2')).toBe('fresh');
    let plan = group.flush(() => true);
    expect(plan.sends.map((s) => s.member)).toEqual(['10.0.0.2']); // member 1 is in sync: nothing for it
    deliver(plan, held);
    expect(show(held.get('10.0.0.2')!)).toEqual(expected('10.0.0.2'));
    group.reset('10.0.0.1', 'refresh');
    expect(group.hasPending()).toBe(true);
    plan = group.flush(() => true);
    expect(deliver(plan, held).sent).toBe(PREFIXES.length);
    expect(group.modeOf('10.0.0.1')).toBe('sync');
    setBest(PREFIXES[0], null);
    plan = group.flush((m) => m !== '10.0.0.2');
    expect(group.modeOf('10.0.0.2')).toBe('fresh');
    expect(plan.sends.map((s) => s.member)).toEqual(['10.0.0.1']);
  });

  it('converges every member to its own desired set with only differences sent, and releases every reference (fast-check)', () => {
    const op = fc.oneof(
      fc.record({
        kind: fc.constant('best' as const),
        at: fc.integer({ min: 0, max: PREFIXES.length - 1 }),
        from: fc.constantFrom(null, 'local', 'other', ...MEMBERS),
        med: fc.constantFrom(1, 2),
      }),
      fc.record({ kind: fc.constant('flush' as const), down: fc.constantFrom(null, ...MEMBERS) }),
      fc.record({ kind: fc.constantFrom('refresh' as const, 'fresh' as const), member: fc.constantFrom(...MEMBERS) }),
    );
    let runs = 0;
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 40 }), (ops) => {
        runs++;
        const { table, group, setBest, expected, show, best } = setup();
        const held = new Map<string, Held>(MEMBERS.map((m) => [m, new Map()]));
        for (const m of MEMBERS) group.add(m, ip(m));
        const refreshing = new Set<string>();
        const check = (down: string | null): void => {
          const plan = group.flush((m) => m !== down);
          if (down !== null) held.set(down, new Map()); // its session went: it holds nothing any more
          const before = new Map([...held].map(([m, v]) => [m, new Map(v)]));
          for (const send of plan.sends) {
            const one = deliver({ batch: plan.batch, sends: [send] }, new Map([[send.member, held.get(send.member)!]]));
            // Only differences, except an answer to ROUTE-REFRESH which is everything again.
            if (!refreshing.has(send.member)) expect(one.redundant).toBe(0);
          }
          refreshing.clear();
          for (const m of MEMBERS) {
            if (m === down) continue;
            expect(show(held.get(m)!), `member ${m} after flush (held before: ${before.get(m)?.size})`).toEqual(
              expected(m),
            );
          }
        };
        for (const o of ops) {
          if (o.kind === 'best') setBest(PREFIXES[o.at]!, o.from, o.med);
          else if (o.kind === 'flush') check(o.down);
          else if (o.kind === 'refresh') {
            if (group.modeOf(o.member) === 'sync') refreshing.add(o.member);
            group.reset(o.member, 'refresh');
          } else {
            group.reset(o.member, 'fresh');
            held.set(o.member, new Map());
          }
        }
        check(null);
        for (const p of PREFIXES) setBest(p, null);
        check(null);
        expect(best.size).toBe(0);
        for (const m of MEMBERS) expect(held.get(m)!.size).toBe(0);
        group.clear();
        expect(table.size).toBe(0);
      }),
      { numRuns: 300 },
    );
    expect(runs).toBeGreaterThan(0);
  });
});
