// The route table's pure decisions (felix/route-diff.ts) as tables: one destination's desired route
// against the kernel's routes → the writes, or why nothing is written (ownership: a route felix does not
// own is never deleted or replaced); the desired set settled against the one before; the echo filter.

import { describe, expect, it } from 'vitest';
import type { KernelRoute } from '../../../felix/kernel.js';
import { ECHO_WINDOW_MS, RouteEchoes } from '../../../felix/route-echoes.js';
import {
  copyDesired,
  diffDestination,
  groupByDst,
  recordWritten,
  settleDesired,
  toKernelRoute,
  type DestinationNote,
  type DiffContext,
  type SettledDesired,
} from '../../../felix/route-diff.js';
import type { DesiredRoute } from '../../../felix/routes.js';

const NOW = 100_000;
const DST = '10.244.2.0/26';
const tunnel: DesiredRoute = {
  dst: DST,
  type: 'unicast',
  via: '192.168.31.202',
  dev: 'tunl0',
  onlink: true,
  proto: 80,
  class: 'tunnel',
};
const WANT = toKernelRoute(tunnel);
const vxlanRoute: DesiredRoute = {
  dst: DST,
  type: 'unicast',
  via: '10.244.2.1',
  dev: 'vxlan.calico',
  onlink: true,
  proto: 80,
  class: 'tunnel',
};

const owned = (extra: Partial<KernelRoute> = {}): KernelRoute => ({ ...WANT, ...extra });
const foreignRoute = (protocol: string, extra: Partial<KernelRoute> = {}): KernelRoute => ({
  dst: DST,
  type: 'unicast',
  gateway: '192.168.31.1',
  dev: 'eth0',
  protocol,
  scope: 'global',
  flags: [],
  ...extra,
});
const onCali = (dev: string): KernelRoute => ({
  dst: DST,
  type: 'unicast',
  dev,
  protocol: 'boot',
  scope: 'link',
  flags: [],
});

function context(over: Partial<DiffContext> = {}): DiffContext {
  return {
    now: NOW,
    hasLink: (dev) => ['eth0', 'tunl0', 'calinew', 'caliold'].includes(dev),
    graceUntil: (dev) => (dev === 'calinew' ? NOW + 5_000 : -Infinity),
    retain: null,
    ...over,
  };
}

/** One destination's outcome in one object: the writes diffDestination appended, and its note. */
interface DestinationDiff extends Omit<DestinationNote, 'retained'> {
  del: KernelRoute[];
  add?: KernelRoute;
  retained: boolean;
}

function diffOne(want: KernelRoute | undefined, have: KernelRoute[], over: Partial<DiffContext> = {}): DestinationDiff {
  const batch = { del: [] as KernelRoute[], add: [] as KernelRoute[] };
  const { retained, ...note } = diffDestination(want, have, context(over), batch) ?? {};
  expect(batch.add.length).toBeLessThanOrEqual(1);
  return {
    del: batch.del,
    ...(batch.add[0] !== undefined ? { add: batch.add[0] } : {}),
    ...note,
    retained: retained === true,
  };
}

interface Row {
  name: string;
  want: KernelRoute | undefined;
  have: KernelRoute[];
  context?: Partial<DiffContext>;
  expect: Partial<DestinationDiff>;
}

const ROWS: Row[] = [
  { name: 'desired, kernel empty: added', want: WANT, have: [], expect: { del: [], add: WANT } },
  { name: 'desired, kernel has it: nothing', want: WANT, have: [owned()], expect: { del: [] } },
  {
    name: 'desired, kernel has it spelled with protocol 80 as a number string: nothing',
    want: WANT,
    have: [owned({ protocol: '80' })],
    expect: { del: [] },
  },
  {
    name: 'desired, ours differs (other gateway): replaced',
    want: WANT,
    have: [owned({ gateway: '192.168.31.9' })],
    expect: { del: [], add: WANT },
  },
  {
    name: 'desired, ours at metric 100 too: that one deleted, ours added',
    want: WANT,
    have: [owned({ metric: 100 })],
    expect: { del: [owned({ metric: 100 })], add: WANT },
  },
  {
    name: 'desired, foreign route (bird) holds it: not written',
    want: WANT,
    have: [foreignRoute('bird')],
    expect: { del: [], foreign: foreignRoute('bird') },
  },
  {
    name: 'desired, foreign route (static) and ours: not written, ours not deleted',
    want: WANT,
    have: [foreignRoute('static'), owned()],
    expect: { del: [], foreign: foreignRoute('static') },
  },
  {
    name: 'desired, foreign route at another metric: ours added beside it',
    want: WANT,
    have: [foreignRoute('dhcp', { metric: 100 })],
    expect: { del: [], add: WANT },
  },
  {
    name: 'desired, its interface missing: waits',
    want: WANT,
    have: [],
    context: { hasLink: () => false },
    expect: { del: [], waitingFor: 'tunl0' },
  },
  {
    name: 'desired through a VXLAN device (onlink): written like any other',
    want: toKernelRoute(vxlanRoute),
    have: [],
    context: { hasLink: () => true },
    expect: { del: [], add: toKernelRoute(vxlanRoute) },
  },
  { name: 'unwanted, ours: deleted', want: undefined, have: [owned()], expect: { del: [owned()] } },
  { name: 'unwanted, foreign: left alone', want: undefined, have: [foreignRoute('kernel')], expect: { del: [] } },
  {
    name: 'unwanted, on a cali* interface (any protocol): ours, deleted',
    want: undefined,
    have: [onCali('caliold')],
    expect: { del: [onCali('caliold')] },
  },
  {
    name: 'unwanted, on a new cali* interface: held for its grace',
    want: undefined,
    have: [onCali('calinew')],
    expect: { del: [], held: { dev: 'calinew', untilMs: NOW + 5_000 } },
  },
  {
    name: 'unwanted, retained (restart): kept',
    want: undefined,
    have: [owned()],
    context: { retain: (r) => r.gateway !== undefined },
    expect: { del: [], retained: true },
  },
  {
    name: 'unwanted, retain refuses it: deleted',
    want: undefined,
    have: [owned()],
    context: { retain: () => false },
    expect: { del: [owned()], retained: false },
  },
  { name: 'unwanted, nothing there: nothing', want: undefined, have: [], expect: { del: [] } },
];

describe('diffDestination: desired vs kernel for one destination', () => {
  it('has rows', () => expect(ROWS.length).toBeGreaterThan(10));
  it.each(ROWS)('$name', (row) => {
    const diff = diffOne(row.want, row.have, row.context);
    expect(diff).toEqual({ retained: false, ...row.expect });
  });
  it('never deletes or writes over a route it does not own, whatever is desired', () => {
    for (const protocol of ['kernel', 'boot', 'static', 'bird', 'dhcp', 'zebra']) {
      for (const want of [WANT, undefined]) {
        const diff = diffOne(want, [foreignRoute(protocol)]);
        expect(diff.del).toEqual([]);
        expect(diff.add).toBeUndefined();
      }
    }
  });
});

describe('settleDesired: the desired set against the one before', () => {
  const blackhole: DesiredRoute = { dst: '10.244.1.0/26', type: 'blackhole', proto: 80, class: 'blackhole' };
  const empty: SettledDesired = { desired: new Map(), desiredKernel: new Map(), classConflicts: [] };
  const first = settleDesired(empty, copyDesired([tunnel, blackhole]), new Set());

  it.each([
    { name: 'the same set: nothing dirty, kernel forms reused', next: [tunnel, blackhole], dirty: [] as string[] },
    {
      name: 'a route changed: its destination dirty',
      next: [{ ...tunnel, via: '192.168.31.203' }, blackhole],
      dirty: [DST],
    },
    { name: 'a route gone: its destination dirty', next: [blackhole], dirty: [DST] },
    {
      name: 'a route new: its destination dirty',
      next: [tunnel, blackhole, { ...blackhole, dst: '10.244.1.64/26' }],
      dirty: ['10.244.1.64/26'],
    },
  ])('$name', ({ next, dirty }) => {
    const marked = new Set<string>();
    const settled = settleDesired(first, copyDesired(next), marked);
    expect([...marked].sort()).toEqual(dirty);
    if (dirty.length === 0) expect(settled.desiredKernel.get(DST)).toBe(first.desiredKernel.get(DST));
  });

  it('two routes for one destination: the lower class rank wins, the conflict reported', () => {
    const direct: DesiredRoute = { ...tunnel, dev: 'eth0', class: 'direct' };
    const settled = settleDesired(empty, copyDesired([tunnel, direct]), null);
    expect(settled.desired.get(DST)?.class).toBe('direct');
    expect(settled.classConflicts).toHaveLength(1);
  });

  it('copyDesired refuses a gateway that is not an IPv4 address, naming it', () => {
    expect(() => copyDesired([{ ...tunnel, via: '192.168.031.1' }])).toThrow(
      /gateway \(via\) "192.168.031.1" is not an IPv4 address/,
    );
    expect(copyDesired([{ ...tunnel, dst: '10.244.2.5/26' }])[0]?.dst).toBe(DST);
  });
});

describe('recordWritten: the view of the kernel after a batch', () => {
  it('a deletion removes that route only; a replacement takes the place of the route at its metric', () => {
    const dhcp = groupByDst([foreignRoute('dhcp', { metric: 100 })]).get(DST)![0]!; // deletions come from the (normalized) view
    const view = groupByDst([dhcp, owned({ gateway: '192.168.31.9' }), owned({ metric: 50 })]);
    recordWritten(view, [owned({ metric: 50 })], [WANT]);
    expect(view.get(DST)).toEqual([dhcp, WANT]);
    recordWritten(view, [WANT, dhcp], []);
    expect(view.has(DST)).toBe(false);
  });
});

describe('RouteEchoes: events of our own writes', () => {
  it.each([
    {
      name: 'our addition comes back: an echo, once',
      events: [
        [DST, false, NOW + 10],
        [DST, false, NOW + 20],
      ] as const,
      echo: [true, false],
    },
    { name: 'our deletion comes back: an echo', events: [['10.244.9.0/26', true, NOW + 10]] as const, echo: [true] },
    { name: 'the other kind for the same prefix: not ours', events: [[DST, true, NOW + 10]] as const, echo: [false] },
    {
      name: 'after the echo window: not ours',
      events: [[DST, false, NOW + ECHO_WINDOW_MS + 1]] as const,
      echo: [false],
    },
    { name: 'another prefix: not ours', events: [['10.244.3.0/26', false, NOW]] as const, echo: [false] },
  ])('$name', ({ events, echo }) => {
    const echoes = new RouteEchoes();
    echoes.expect([owned({ dst: '10.244.9.0/26' })], [WANT], NOW);
    expect(events.map(([dst, deleted, at]) => echoes.isEcho(dst, deleted, at))).toEqual(echo);
  });
  it('a full read forgets what was expected', () => {
    const echoes = new RouteEchoes();
    echoes.expect([], [WANT], NOW);
    echoes.clear();
    expect(echoes.isEcho(DST, false, NOW)).toBe(false);
  });
});
