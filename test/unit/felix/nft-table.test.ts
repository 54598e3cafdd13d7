// felix/nft-table.ts without nft: canonical forms (a listing captured from nft 1.0.6 compares equal to the
// spec that wrote it), tableDifference case by case, and the keeper against a fake nft on fake time —
// no write when nothing changed, a rule deleted by hand comes back on the next check or poke, the table is
// removed when nothing is wanted, a failure is retried, a read-back in another spelling is accepted
// instead of rewritten forever, and a change during a sync is applied right after it.

import { describe, expect, it } from 'vitest';
import { MASQUERADE_RULE, natTableFor } from '../../../felix/nat.js';
import {
  NftTableKeeper,
  canonicalListing,
  canonicalSpec,
  renderDeleteScript,
  stableJson,
  tableDifference,
  type NftLike,
  type NftTableSpec,
} from '../../../felix/nft-table.js';
import type { RouteTableClock } from '../../../felix/route-table.js';

/** `nft -j list table ip tortie-nat` as nft 1.0.6 printed it here after writing SPEC_FOR_CAPTURE. */
const CAPTURED = JSON.parse(
  '{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "ip", "name": "tortie-nat", "handle": 3}}, {"set": {"family": "ip", "name": "nat-pools", "table": "tortie-nat", "type": "ipv4_addr", "handle": 2, "flags": ["interval"], "elem": [{"prefix": {"addr": "10.0.0.0", "len": 25}}, {"prefix": {"addr": "10.0.0.128", "len": 25}}, "10.9.9.9"]}}, {"set": {"family": "ip", "name": "all-pools", "table": "tortie-nat", "type": "ipv4_addr", "handle": 3, "flags": ["interval"]}}, {"chain": {"family": "ip", "table": "tortie-nat", "name": "postrouting", "handle": 1, "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}, {"rule": {"family": "ip", "table": "tortie-nat", "chain": "postrouting", "handle": 4, "comment": "tortie natOutgoing", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@nat-pools"}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "@all-pools"}}, {"masquerade": null}]}}]}',
).nftables as unknown[];

const SPEC_FOR_CAPTURE: NftTableSpec = {
  family: 'ip',
  name: 'tortie-nat',
  sets: [
    {
      name: 'nat-pools',
      type: 'ipv4_addr',
      flags: ['interval'],
      elements: ['10.9.9.9/32', '10.0.0.128/25', '10.0.0.0/25'],
    },
    { name: 'all-pools', type: 'ipv4_addr', flags: ['interval'], elements: [] },
  ],
  chains: [
    {
      name: 'postrouting',
      type: 'nat',
      hook: 'postrouting',
      priority: 100,
      policy: 'accept',
      rules: [MASQUERADE_RULE],
    },
  ],
};

/** What nft would list for `spec` (the shapes of CAPTURED), with fresh handles. */
function listingOf(spec: NftTableSpec, handle = 1): unknown[] {
  const out: unknown[] = [
    { metainfo: { json_schema_version: 1 } },
    { table: { family: spec.family, name: spec.name, handle } },
  ];
  for (const s of spec.sets) {
    const elem = s.elements.map((e) =>
      e.endsWith('/32') ? e.slice(0, -3) : { prefix: { addr: e.split('/')[0], len: Number(e.split('/')[1]) } },
    );
    out.push({
      set: {
        family: spec.family,
        name: s.name,
        table: spec.name,
        type: s.type,
        handle: handle + 1,
        flags: [...s.flags],
        ...(elem.length > 0 ? { elem } : {}),
      },
    });
  }
  for (const c of spec.chains) {
    out.push({
      chain: {
        family: spec.family,
        table: spec.name,
        name: c.name,
        handle: handle + 2,
        type: c.type,
        hook: c.hook,
        prio: c.priority,
        policy: c.policy,
      },
    });
    for (const r of c.rules)
      out.push({
        rule: {
          family: spec.family,
          table: spec.name,
          chain: c.name,
          handle: handle + 3,
          ...(r.comment ? { comment: r.comment } : {}),
          expr: r.expr,
        },
      });
  }
  return out;
}

describe('canonical forms', () => {
  it('a real nft listing equals the spec that wrote it (bare /32, prio number, no elem key on an empty set)', () => {
    expect(tableDifference(canonicalSpec(SPEC_FOR_CAPTURE), canonicalListing(CAPTURED, 'tortie-nat'))).toBeNull();
    expect(canonicalListing(CAPTURED, 'tortie-nat').sets['nat-pools']?.elements).toEqual([
      '10.0.0.0/25',
      '10.0.0.128/25',
      '10.9.9.9/32',
    ]);
  });

  it('ignores objects of other tables in a listing', () => {
    const other = [
      ...CAPTURED,
      { rule: { family: 'ip', table: 'other', chain: 'postrouting', expr: [] } },
      { set: { table: 'other', name: 'x', type: 'ipv4_addr' } },
    ];
    expect(canonicalListing(other, 'tortie-nat')).toEqual(canonicalListing(CAPTURED, 'tortie-nat'));
  });

  it('stableJson does not depend on key order', () => {
    expect(stableJson({ b: 1, a: [{ d: null, c: 'x' }] })).toBe(stableJson({ a: [{ c: 'x', d: null }], b: 1 }));
    expect(stableJson({ a: 1 })).not.toBe(stableJson({ a: 2 }));
  });
});

describe('tableDifference', () => {
  const wanted = canonicalSpec(SPEC_FOR_CAPTURE);
  const mutate = (
    f: (list: Array<Record<string, Record<string, unknown>>>) => void,
  ): ReturnType<typeof canonicalListing> => {
    const list = structuredClone(CAPTURED) as Array<Record<string, Record<string, unknown>>>;
    f(list);
    return canonicalListing(list, 'tortie-nat');
  };
  const cases: Array<{
    name: string;
    actual: () => ReturnType<typeof canonicalListing> | null;
    want: RegExp | null;
    wanted?: ReturnType<typeof canonicalSpec> | null;
  }> = [
    { name: 'equal', actual: () => canonicalListing(CAPTURED, 'tortie-nat'), want: null },
    { name: 'table missing', actual: () => null, want: /the table is missing/ },
    {
      name: 'nothing wanted, table there',
      wanted: null,
      actual: () => canonicalListing(CAPTURED, 'tortie-nat'),
      want: /nothing is wanted/,
    },
    { name: 'nothing wanted, nothing there', wanted: null, actual: () => null, want: null },
    {
      name: 'rule deleted by hand',
      actual: () => mutate((l) => l.splice(5, 1)),
      want: /chain postrouting has 0 rules, wanted 1 \(rule 1 is missing\)/,
    },
    {
      name: 'a rule added by hand',
      actual: () => mutate((l) => l.push(structuredClone(l[5]!))),
      want: /chain postrouting has 2 rules, wanted 1/,
    },
    {
      name: 'rule changed',
      actual: () => mutate((l) => ((l[5]!.rule!.expr as unknown[])[2] = { accept: null })),
      want: /rule 1 of chain postrouting differs/,
    },
    {
      name: 'rule comment changed',
      actual: () => mutate((l) => (l[5]!.rule!.comment = 'x')),
      want: /rule 1 of chain postrouting differs/,
    },
    {
      name: 'element removed',
      actual: () => mutate((l) => (l[2]!.set!.elem as unknown[]).pop()),
      want: /set nat-pools: lacks 10\.9\.9\.9\/32/,
    },
    {
      name: 'element added',
      actual: () => mutate((l) => (l[3]!.set!.elem = ['8.8.8.8'])),
      want: /set all-pools: has extra 8\.8\.8\.8\/32/,
    },
    { name: 'set deleted', actual: () => mutate((l) => l.splice(3, 1)), want: /set all-pools is missing/ },
    {
      name: 'a foreign set in our table',
      actual: () => mutate((l) => l.push({ set: { table: 'tortie-nat', name: 'mine', type: 'ipv4_addr' } })),
      want: /set mine is not ours to have/,
    },
    {
      name: 'chain policy changed',
      actual: () => mutate((l) => (l[4]!.chain!.policy = 'drop')),
      want: /chain postrouting is type nat hook postrouting priority 100 policy drop/,
    },
    {
      name: 'chain deleted (and its rule)',
      actual: () => mutate((l) => l.splice(4, 2)),
      want: /chain postrouting is missing/,
    },
    {
      name: 'a foreign chain in our table',
      actual: () => mutate((l) => l.push({ chain: { table: 'tortie-nat', name: 'extra' } })),
      want: /chain extra is not ours to have/,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const got = tableDifference(c.wanted === undefined ? wanted : c.wanted, c.actual());
      if (c.want === null) expect(got).toBeNull();
      else expect(got).toMatch(c.want);
    });
  }
});

// ---- the keeper on a fake nft and fake time ---------------------------------------------------------------

class FakeClock implements RouteTableClock {
  t = 0;
  timers = new Map<number, { at: number; fn: () => void }>();
  private next = 1;
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): object {
    const id = this.next++;
    this.timers.set(id, { at: this.t + ms, fn });
    return { id };
  }
  clearTimeout(handle: object): void {
    this.timers.delete((handle as { id: number }).id);
  }
  /** Moves time forward, running due timers in order. */
  async advance(ms: number): Promise<void> {
    const until = this.t + ms;
    for (let guard = 0; guard < 1000; guard++) {
      const due = [...this.timers.entries()].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
      if (due === undefined) break;
      this.timers.delete(due[0]);
      this.t = due[1].at;
      due[1].fn();
      await flush();
    }
    this.t = until;
  }
}

async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

/** The kernel's table, in nft's JSON: apply() of a render script sets it from the spec given to `expect`. */
class FakeNft implements NftLike {
  listing: unknown[] | null = null;
  applied: string[] = [];
  lists = 0;
  failNext: Error | null = null;
  /** What the next table write materializes as (the test sets it from the spec, or an odd spelling). */
  materialize: (() => unknown[]) | null = null;
  async listTable(): Promise<unknown[] | null> {
    this.lists++;
    await Promise.resolve();
    return this.listing === null ? null : structuredClone(this.listing);
  }
  async apply(script: string): Promise<void> {
    await Promise.resolve();
    if (this.failNext !== null) {
      const e = this.failNext;
      this.failNext = null;
      throw e;
    }
    this.applied.push(script);
    this.listing = script.includes('{') ? (this.materialize?.() ?? null) : null;
  }
}

const log = { info: (): void => undefined, warn: (): void => undefined };

function setup(resyncMs = 90_000): { nft: FakeNft; clock: FakeClock; keeper: NftTableKeeper } {
  const nft = new FakeNft();
  const clock = new FakeClock();
  const keeper = new NftTableKeeper({ nft, family: 'ip', name: 'tortie-nat', log, clock, resyncMs, retryMs: 1_000 });
  return { nft, clock, keeper };
}

const specA = natTableFor([{ cidr: '10.244.0.0/16', natOutgoing: true }]).table!;
const specB = natTableFor([{ cidr: '10.244.0.0/16', natOutgoing: true }, { cidr: '10.96.0.0/20' }]).table!;

describe('NftTableKeeper', () => {
  it('writes once, then only checks while nothing changes', async () => {
    const { nft, keeper } = setup();
    nft.materialize = () => listingOf(specA);
    keeper.setDesired(specA);
    expect(await keeper.sync()).toEqual({ wrote: true, difference: 'the table is missing' });
    for (let i = 0; i < 5; i++) expect(await keeper.sync()).toEqual({ wrote: false, difference: null });
    expect(nft.applied.length).toBe(1);
    expect(keeper.status()).toMatchObject({
      inSync: true,
      writes: 1,
      checks: 6,
      lastDifference: 'the table is missing',
    });
  });

  it('adopts an equal table left by an earlier run without writing', async () => {
    const { nft, keeper } = setup();
    nft.listing = listingOf(specA, 40);
    keeper.setDesired(specA);
    expect(await keeper.sync()).toEqual({ wrote: false, difference: null });
    expect(nft.applied).toEqual([]);
  });

  it('a rule deleted by hand comes back on the periodic check', async () => {
    const { nft, clock, keeper } = setup(10_000);
    nft.materialize = () => listingOf(specA);
    keeper.setDesired(specA);
    keeper.start();
    await flush();
    expect(nft.applied.length).toBe(1);
    nft.listing = nft.listing!.filter((o) => !('rule' in (o as object))); // `nft delete rule ...`
    await clock.advance(9_000);
    expect(nft.applied.length).toBe(1); // not yet: the check is every 10 s
    await clock.advance(1_000);
    expect(nft.applied.length).toBe(2);
    expect(keeper.status().lastDifference).toMatch(/rule 1 is missing/);
    expect(tableDifference(canonicalSpec(specA), canonicalListing(nft.listing!, 'tortie-nat'))).toBeNull();
    keeper.stop();
  });

  it('poke() checks at once (an nft monitor event)', async () => {
    const { nft, keeper } = setup();
    nft.materialize = () => listingOf(specA);
    keeper.setDesired(specA);
    keeper.start();
    await flush();
    nft.listing = null; // `nft delete table ip tortie-nat`
    keeper.poke();
    await flush();
    expect(nft.applied.length).toBe(2);
    keeper.stop();
  });

  it('a desired change is written at once when started; back to nothing removes the table', async () => {
    const { nft, keeper } = setup();
    let current = specA;
    nft.materialize = () => listingOf(current);
    keeper.setDesired(specA);
    keeper.start();
    await flush();
    current = specB;
    keeper.setDesired(specB);
    await flush();
    expect(nft.applied.length).toBe(2);
    expect(keeper.status().lastDifference).toMatch(/set all-pools: lacks 10\.96\.0\.0\/20/);
    keeper.setDesired(specB); // the same again: nothing to do
    await flush();
    expect(nft.applied.length).toBe(2);
    keeper.setDesired(null);
    await flush();
    expect(nft.applied[2]).toBe(renderDeleteScript('ip', 'tortie-nat'));
    expect(nft.listing).toBeNull();
    keeper.stop();
  });

  it('nothing wanted and no table: no write at all', async () => {
    const { nft, keeper } = setup();
    keeper.setDesired(null);
    expect(await keeper.sync()).toEqual({ wrote: false, difference: null });
    expect(nft.applied).toEqual([]);
  });

  it('a failed write is reported in status and retried after retryMs', async () => {
    const { nft, clock, keeper } = setup();
    nft.materialize = () => listingOf(specA);
    nft.failNext = new Error('nft refused the script, nothing applied: line 3: ...');
    keeper.setDesired(specA);
    keeper.start();
    await flush();
    expect(keeper.status()).toMatchObject({
      inSync: false,
      writes: 0,
      lastError: expect.stringMatching(/nft refused/),
    });
    await clock.advance(1_000);
    expect(keeper.status()).toMatchObject({ inSync: true, writes: 1 });
    expect(keeper.status().lastError).toBeUndefined();
    keeper.stop();
  });

  it('a read-back in a spelling the model does not predict is accepted, not rewritten forever', async () => {
    const { nft, keeper } = setup();
    // Another nft version prints the masquerade statement as {"masquerade": {}}.
    nft.materialize = () => {
      const list = listingOf(specA) as Array<Record<string, Record<string, unknown>>>;
      const rule = list.find((o) => o.rule !== undefined)!.rule!;
      rule.expr = [...(rule.expr as unknown[]).slice(0, 2), { masquerade: {} }];
      return list;
    };
    keeper.setDesired(specA);
    expect((await keeper.sync()).wrote).toBe(true);
    for (let i = 0; i < 3; i++) expect((await keeper.sync()).wrote).toBe(false);
    expect(nft.applied.length).toBe(1);
    // ...but a real change to that table is still repaired.
    nft.listing = nft.listing!.filter((o) => !('rule' in (o as object)));
    expect((await keeper.sync()).wrote).toBe(true);
  });

  it('a change during a sync is applied right after it (one at a time)', async () => {
    const { nft, keeper } = setup();
    let current = specA;
    nft.materialize = () => listingOf(current);
    keeper.setDesired(specA);
    const first = keeper.sync();
    current = specB;
    keeper.setDesired(specB);
    const second = keeper.sync();
    await Promise.all([first, second]);
    expect(tableDifference(canonicalSpec(specB), canonicalListing(nft.listing!, 'tortie-nat'))).toBeNull();
    expect(keeper.status().inSync).toBe(true);
  });

  it('refuses a spec for another table', () => {
    const { keeper } = setup();
    expect(() => keeper.setDesired({ ...specA, name: 'other' })).toThrow(/owns table ip tortie-nat, not ip other/);
  });
});
