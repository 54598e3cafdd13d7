// The route table reconciler against the in-memory kernel: ownership (foreign routes survive), restart
// adoption (no blackout), deletions before additions, retry on a fresh connection, kernel events,
// waiting for an interface, the grace period on new cali* interfaces, periodic resync, class conflicts.

import { describe, expect, it } from 'vitest';
import { FakeClock, settle } from '../../../bgp/clock.js';
import { MemoryKernel } from '../../../felix/memory-kernel.js';
import { RouteTable, isOwnedRoute, toKernelRoute, type ApplyResult } from '../../../felix/route-table.js';
import type { DesiredRoute } from '../../../felix/routes.js';
import type { Kernel, KernelRoute } from '../../../felix/kernel.js';

const CALI = 'calie8e9a5cf531';
const blackhole = (dst: string): DesiredRoute => ({ dst, type: 'blackhole', proto: 80, class: 'blackhole' });
const workload = (ip: string, dev = CALI): DesiredRoute => ({
  dst: `${ip}/32`,
  type: 'unicast',
  dev,
  scope: 'link',
  proto: 80,
  class: 'workload',
});
const remote = (dst: string, via: string, dev = 'eth0'): DesiredRoute => ({
  dst,
  type: 'unicast',
  via,
  dev,
  onlink: true,
  proto: 80,
  class: dev === 'tunl0' ? 'tunnel' : 'direct',
});

const FOREIGN: KernelRoute[] = [
  { dst: '192.168.31.0/24', dev: 'eth0', protocol: 'kernel', scope: 'link', prefsrc: '192.168.31.201' },
  { dst: '10.9.0.0/16', gateway: '192.168.31.1', dev: 'eth0', protocol: 'bird' },
  { dst: '10.8.0.0/16', gateway: '192.168.31.1', dev: 'eth0', protocol: 'static' },
  { dst: '10.7.0.0/16', gateway: '192.168.31.1', dev: 'eth0', protocol: 'boot' },
  { dst: 'default', gateway: '192.168.31.1', dev: 'eth0', protocol: 'dhcp', metric: 100 },
];

const WANTED: DesiredRoute[] = [
  blackhole('10.244.1.0/26'),
  workload('10.244.1.5'),
  remote('10.244.2.0/26', '192.168.31.202'),
  remote('10.244.3.0/26', '192.168.32.9', 'tunl0'),
];

function newKernel(): MemoryKernel {
  return new MemoryKernel({ links: ['lo', 'eth0', 'tunl0', CALI], routes: FOREIGN });
}

function dsts(routes: readonly KernelRoute[]): string[] {
  return routes.map((r) => r.dst).sort();
}

function foreignOf(kernel: MemoryKernel): KernelRoute[] {
  return kernel.snapshot().filter((r) => !isOwnedRoute(r));
}

describe('RouteTable: ownership and the first apply', () => {
  it('fixtures are not empty', () => {
    expect(FOREIGN.length).toBeGreaterThan(3);
    expect(WANTED.length).toBeGreaterThan(3);
  });

  it('programs every desired route in one batch and keeps every foreign route', async () => {
    const kernel = newKernel();
    const foreignBefore = foreignOf(kernel);
    const table = new RouteTable(kernel, { clock: new FakeClock() });
    table.setDesired(WANTED);
    const result = await table.apply();
    expect(result.fullResync).toBe(true);
    expect(result.kernelWrites).toBe(4);
    expect(kernel.calls.apply).toBe(1);
    const owned = kernel.snapshot().filter(isOwnedRoute);
    expect(owned).toEqual(expect.arrayContaining(WANTED.map(toKernelRoute)));
    expect(owned).toHaveLength(4);
    expect(foreignOf(kernel)).toEqual(foreignBefore);
  });

  it('deletes owned routes nobody wants (proto 80 and any proto on cali*), never foreign ones', async () => {
    const kernel = newKernel();
    kernel.insert({ dst: '10.244.9.0/26', type: 'blackhole', protocol: '80' });
    kernel.insert({ dst: '10.244.1.77', dev: CALI, scope: 'link', protocol: 'boot' });
    const table = new RouteTable(kernel, { clock: new FakeClock() });
    table.setDesired([]);
    const result = await table.apply();
    expect(dsts(result.deleted)).toEqual(['10.244.1.77/32', '10.244.9.0/26']);
    expect(result.added).toEqual([]);
    expect(kernel.snapshot()).toEqual(new MemoryKernel({ routes: FOREIGN }).snapshot());
  });

  it('a second apply with nothing changed reads nothing and writes nothing', async () => {
    const kernel = newKernel();
    const table = new RouteTable(kernel, { clock: new FakeClock() });
    table.setDesired(WANTED);
    await table.apply();
    const writes = kernel.writes;
    const reads = kernel.calls.listRoutes;
    const again = await table.apply();
    expect(again.kernelWrites).toBe(0);
    expect(again.fullResync).toBe(false);
    expect(kernel.writes).toBe(writes);
    expect(kernel.calls.listRoutes).toBe(reads);
  });

  it('a full resync due (resyncMs passed) with nothing changed re-reads the kernel and writes nothing', async () => {
    const kernel = newKernel();
    const clock = new FakeClock();
    const table = new RouteTable(kernel, { clock, resyncMs: 90_000 });
    table.setDesired(WANTED);
    await table.apply();
    const writes = kernel.writes;
    const reads = kernel.calls.listRoutes ?? 0;
    clock.advance(90_000);
    const again = await table.apply();
    expect(again.fullResync).toBe(true);
    expect(kernel.calls.listRoutes).toBe(reads + 1);
    expect(again.kernelWrites).toBe(0);
    expect(kernel.writes).toBe(writes);
  });

  it('keys desired routes by one spelling of the destination, and refuses a non-destination naming it', async () => {
    const kernel = newKernel();
    const table = new RouteTable(kernel, { clock: new FakeClock() });
    // A /32 without its length and a block with host bits set: the same routes as their canonical spellings.
    table.setDesired([{ ...workload('10.244.1.5'), dst: '10.244.1.5' }, blackhole('10.244.4.7/26')]);
    expect(
      table
        .desiredRoutes()
        .map((r) => r.dst)
        .sort(),
    ).toEqual(['10.244.1.5/32', '10.244.4.0/26']);
    await table.apply();
    expect(table.programmed('10.244.1.5')).toBe(true);
    expect(table.programmed('10.244.4.0/26')).toBe(true);
    table.setDesired([workload('10.244.1.5'), blackhole('10.244.4.0/26')]);
    expect((await table.apply()).kernelWrites).toBe(0);
    expect(() => table.setDesired([blackhole('10.244.4.0/33')])).toThrow(/10\.244\.4\.0\/33/);
    expect(() => table.setDesired([blackhole('010.244.4.0/26')])).toThrow(/010\.244\.4\.0\/26/);
  });

  it('refuses a gateway that is not an IPv4 address, naming the route and the value (ip -4 would stop its batch there)', () => {
    const table = new RouteTable(newKernel(), { clock: new FakeClock() });
    for (const via of ['fe80::1', '192.168.31.256', '192.168.031.1', '192.168.31.1/32', 'default', '']) {
      expect(() => table.setDesired([remote('10.244.2.0/26', via)]), via).toThrow(
        new RegExp(
          `route 10\\.244\\.2\\.0/26: gateway \\(via\\) "${via.replace(/\./g, '\\.')}" is not an IPv4 address`,
        ),
      );
    }
    table.setDesired([remote('10.244.2.0/26', '192.168.31.1')]);
    expect(table.desiredRoutes()).toHaveLength(1);
  });

  it('the whole set again with one field of one route changed writes exactly that route, for every field', async () => {
    const base = remote('10.244.2.0/26', '192.168.31.202');
    const changes: Array<[string, DesiredRoute]> = [
      ['via', { ...base, via: '192.168.31.203' }],
      ['dev', { ...base, dev: 'tunl0' }],
      ['onlink', { ...base, onlink: false }],
      ['scope', { ...base, scope: 'link' }],
      ['type', { dst: base.dst, type: 'blackhole', proto: 80, class: 'direct' }],
    ];
    expect(changes.length).toBeGreaterThan(4);
    for (const [field, changed] of changes) {
      const kernel = newKernel();
      const table = new RouteTable(kernel, { clock: new FakeClock() });
      const others = WANTED.filter((r) => r.dst !== base.dst);
      table.setDesired([...others, base]);
      await table.apply();
      table.setDesired([...others, base]); // the same set again, new objects: nothing to write
      expect((await table.apply()).kernelWrites, field).toBe(0);
      table.setDesired([...others.map((r) => ({ ...r })), changed]);
      const result = await table.apply();
      expect(
        result.added.map((r) => r.dst),
        field,
      ).toEqual([base.dst]);
      expect(
        kernel.snapshot().filter((r) => r.dst === base.dst),
        field,
      ).toEqual([toKernelRoute(changed)]);
    }
  });

  it('puts deletions before additions and replaces a changed route in place', async () => {
    const kernel = newKernel();
    const table = new RouteTable(kernel, { clock: new FakeClock() });
    table.setDesired(WANTED);
    await table.apply();
    const batches: Array<{ del: string[]; add: string[] }> = [];
    const realApply = kernel.apply.bind(kernel);
    kernel.apply = async (batch) => {
      batches.push({ del: dsts(batch.del), add: dsts(batch.add) });
      return realApply(batch);
    };
    // 10.244.2.0/26 moves from direct to tunl0; the blackhole goes; a new block comes.
    table.setDesired([
      workload('10.244.1.5'),
      remote('10.244.2.0/26', '192.168.31.202', 'tunl0'),
      remote('10.244.3.0/26', '192.168.32.9', 'tunl0'),
      blackhole('10.244.4.0/26'),
    ]);
    const result = await table.apply();
    expect(batches).toEqual([{ del: ['10.244.1.0/26'], add: ['10.244.2.0/26', '10.244.4.0/26'] }]);
    expect(result.kernelWrites).toBe(3);
    const moved = kernel.snapshot().filter((r) => r.dst === '10.244.2.0/26');
    expect(moved).toEqual([toKernelRoute(remote('10.244.2.0/26', '192.168.31.202', 'tunl0'))]);
  });

  it('never overwrites a foreign route holding a desired destination, and says so', async () => {
    const kernel = newKernel();
    kernel.insert({ dst: '10.244.2.0/26', gateway: '192.168.31.250', dev: 'eth0', protocol: 'static' });
    const table = new RouteTable(kernel, { clock: new FakeClock() });
    table.setDesired(WANTED);
    const result = await table.apply();
    expect(result.foreignConflicts.map((c) => c.dst)).toEqual(['10.244.2.0/26']);
    expect(result.foreignConflicts[0]?.foreign.protocol).toBe('4');
    expect(kernel.snapshot().filter((r) => r.dst === '10.244.2.0/26')).toHaveLength(1);
    expect(kernel.snapshot().find((r) => r.dst === '10.244.2.0/26')?.gateway).toBe('192.168.31.250');
  });

  it('settles two desired routes for one prefix by route class and reports the loser', async () => {
    const kernel = newKernel();
    const table = new RouteTable(kernel, { clock: new FakeClock() });
    table.setDesired([blackhole('10.244.2.0/26'), remote('10.244.2.0/26', '192.168.31.202')]);
    const result = await table.apply();
    expect(result.classConflicts).toHaveLength(1);
    expect(result.classConflicts[0]?.winner.class).toBe('direct');
    expect(
      kernel
        .snapshot()
        .filter((r) => r.dst === '10.244.2.0/26')
        .map((r) => r.type),
    ).toEqual(['unicast']);
  });
});

describe('RouteTable: restart safety', () => {
  it('a new RouteTable over a kernel that already has the routes adopts them and writes nothing', async () => {
    const kernel = newKernel();
    const first = new RouteTable(kernel, { clock: new FakeClock() });
    first.setDesired(WANTED);
    await first.apply();
    let deletions = 0;
    kernel.watch((e) => {
      if (e.kind === 'route' && e.deleted) deletions++;
    });
    const writes = kernel.writes;
    const second = new RouteTable(kernel, { clock: new FakeClock() });
    second.setDesired(WANTED);
    const result = await second.apply();
    await settle();
    expect(result.fullResync).toBe(true);
    expect(result.kernelWrites).toBe(0);
    expect(kernel.writes).toBe(writes);
    expect(deletions).toBe(0);
  });

  it('after a restart with one route fewer, only that route is deleted', async () => {
    const kernel = newKernel();
    const first = new RouteTable(kernel, { clock: new FakeClock() });
    first.setDesired(WANTED);
    await first.apply();
    const second = new RouteTable(kernel, { clock: new FakeClock() });
    second.setDesired(WANTED.slice(1));
    const result = await second.apply();
    expect(dsts(result.deleted)).toEqual(['10.244.1.0/26']);
    expect(result.added).toEqual([]);
  });

  it('retainUnwanted keeps the unwanted routes it accepts (routes via a gateway) until cleared; the others go at once', async () => {
    const kernel = newKernel();
    const first = new RouteTable(kernel, { clock: new FakeClock() });
    first.setDesired(WANTED);
    await first.apply();
    // A restart: BGP has not re-learned the remote blocks, and the block was released meanwhile.
    const second = new RouteTable(kernel, { clock: new FakeClock() });
    second.retainUnwanted((route) => route.gateway !== undefined);
    second.setDesired([workload('10.244.1.5')]);
    const during = await second.apply();
    expect(dsts(during.deleted)).toEqual(['10.244.1.0/26']);
    expect(during.retained.sort()).toEqual(['10.244.2.0/26', '10.244.3.0/26']);
    expect(dsts(kernel.snapshot().filter(isOwnedRoute))).toEqual(['10.244.1.5/32', '10.244.2.0/26', '10.244.3.0/26']);
    // One comes back over BGP with another next hop: replaced in place, still no deletion.
    second.setDesired([workload('10.244.1.5'), remote('10.244.2.0/26', '192.168.31.203')]);
    const relearned = await second.apply();
    expect(relearned.deleted).toEqual([]);
    expect(relearned.added.map((r) => [r.dst, r.gateway])).toEqual([['10.244.2.0/26', '192.168.31.203']]);
    expect(relearned.retained).toEqual(['10.244.3.0/26']);
    // BGP settled: what nobody wants now goes, and only that.
    second.retainUnwanted(null);
    const settled = await second.apply();
    expect(dsts(settled.deleted)).toEqual(['10.244.3.0/26']);
    expect(settled.retained).toEqual([]);
    expect(foreignOf(kernel)).toHaveLength(FOREIGN.length);
  });
});

describe('RouteTable: changes during an apply', () => {
  it('a route made desired while an apply awaits the kernel is written by the next apply, not forgotten', async () => {
    const kernel = newKernel();
    let release: () => void = () => undefined;
    let writing = false;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow: Kernel = Object.assign(Object.create(kernel) as MemoryKernel, {
      apply: async (batch: Parameters<Kernel['apply']>[0]) => {
        writing = true;
        await gate;
        return kernel.apply(batch);
      },
    });
    const table = new RouteTable(slow, { clock: new FakeClock() });
    table.setDesired([WANTED[0]!]);
    const first = table.apply();
    for (let i = 0; i < 100 && !writing; i++) await settle();
    expect(writing).toBe(true);
    table.setDesired([WANTED[0]!, WANTED[2]!]); // arrives while the first batch is in the kernel's hands
    release();
    expect(dsts((await first).added)).toEqual(['10.244.1.0/26']);
    const second = await table.apply();
    expect(dsts(second.added)).toEqual(['10.244.2.0/26']);
    expect(table.programmed('10.244.2.0/26')).toBe(true);
  });
});

describe('RouteTable: failures', () => {
  it('retries once on a fresh connection after a failed write, with a full re-read', async () => {
    const kernel = newKernel();
    let connections = 0;
    const table = new RouteTable(kernel, {
      clock: new FakeClock(),
      reconnect: () => {
        connections++;
        return kernel;
      },
    });
    table.setDesired(WANTED);
    kernel.failNext('apply');
    const result = await table.apply();
    expect(result.retried).toBe(true);
    expect(result.fullResync).toBe(true);
    expect(connections).toBe(1);
    expect(kernel.closes).toBe(1);
    expect(kernel.snapshot().filter(isOwnedRoute)).toHaveLength(4);
  });

  it('rejects after the retry fails too, and the next apply does a full resync and succeeds', async () => {
    const kernel = newKernel();
    const table = new RouteTable(kernel, { clock: new FakeClock() });
    table.setDesired(WANTED);
    await table.apply();
    table.setDesired([...WANTED, blackhole('10.244.5.0/26')]);
    kernel.failNext('apply', 'RTNETLINK answers: Operation not permitted');
    kernel.failNext('listRoutes', 'netns gone');
    await expect(table.apply()).rejects.toThrow(/failed twice.*Operation not permitted.*netns gone/);
    const result = await table.apply();
    expect(result.fullResync).toBe(true);
    expect(dsts(result.added)).toEqual(['10.244.5.0/26']);
  });

  it('a partial batch failure (interface vanished) is repaired by the retry', async () => {
    const kernel = newKernel();
    const table = new RouteTable(kernel, { clock: new FakeClock() });
    table.setDesired([]);
    await table.apply();
    kernel.removeLink(CALI);
    // The table still believes CALI exists (no watch): the write fails for that line only.
    table.setDesired(WANTED);
    const result = await table.apply();
    expect(result.retried).toBe(true);
    expect(result.waitingForInterface).toEqual([{ dst: '10.244.1.5/32', dev: CALI }]);
    expect(kernel.snapshot().filter(isOwnedRoute)).toHaveLength(3);
  });
});

describe('RouteTable: running (events, timers)', () => {
  async function running(kernel: Kernel, extra: { graceMs?: number } = {}) {
    const clock = new FakeClock();
    const results: ApplyResult[] = [];
    const errors: Error[] = [];
    const table = new RouteTable(kernel, {
      clock,
      resyncMs: 90_000,
      debounceMs: 10,
      ...extra,
      onApplied: (r) => results.push(r),
      onError: (e) => errors.push(e),
    });
    return { clock, table, results, errors };
  }

  it('an owned route deleted by hand comes back; a foreign route added by hand stays', async () => {
    const kernel = newKernel();
    const { clock, table, results, errors } = await running(kernel);
    table.setDesired(WANTED);
    table.start();
    await clock.advanceAsync(20);
    expect(results.at(-1)?.kernelWrites).toBe(4);
    const reads = kernel.calls.listRoutes ?? 0;
    // Echoes of our own writes did not cause a re-read.
    await clock.advanceAsync(50);
    expect(kernel.calls.listRoutes).toBe(reads);

    kernel.remove('10.244.2.0/26');
    kernel.insert({ dst: '172.16.0.0/16', gateway: '192.168.31.1', dev: 'eth0', protocol: 'static' });
    await settle();
    await clock.advanceAsync(20);
    expect(results.at(-1)?.fullResync).toBe(false);
    expect(dsts(results.at(-1)?.added ?? [])).toEqual(['10.244.2.0/26']);
    expect(kernel.snapshot().some((r) => r.dst === '172.16.0.0/16')).toBe(true);
    expect(errors).toEqual([]);
    table.stop();
  });

  it('a workload whose interface does not exist yet is written when the interface appears', async () => {
    const kernel = newKernel();
    const { clock, table, results } = await running(kernel);
    table.setDesired([workload('10.244.1.9', 'cali0123456789a')]);
    table.start();
    await clock.advanceAsync(20);
    expect(results.at(-1)?.waitingForInterface).toEqual([{ dst: '10.244.1.9/32', dev: 'cali0123456789a' }]);
    expect(kernel.snapshot().some((r) => r.dst === '10.244.1.9/32')).toBe(false);
    kernel.addLink('cali0123456789a');
    await settle();
    await clock.advanceAsync(20);
    expect(results.at(-1)?.waitingForInterface).toEqual([]);
    expect(kernel.snapshot().find((r) => r.dst === '10.244.1.9/32')?.dev).toBe('cali0123456789a');
    table.stop();
  });

  it('keeps an unwanted route on a new cali* interface for the grace period, then deletes it', async () => {
    const kernel = newKernel();
    const { clock, table, results } = await running(kernel, { graceMs: 5_000 });
    table.setDesired([]);
    table.start();
    await clock.advanceAsync(20);
    // The CNI creates an interface and its route before felix hears of the workload.
    kernel.addLink('calinew00000001');
    kernel.insert({ dst: '10.244.1.20', dev: 'calinew00000001', scope: 'link', protocol: 'boot' });
    await settle();
    await clock.advanceAsync(20);
    expect(results.at(-1)?.heldByGrace.map((h) => h.dst)).toEqual(['10.244.1.20/32']);
    expect(kernel.snapshot().some((r) => r.dst === '10.244.1.20/32')).toBe(true);
    await clock.advanceAsync(4_000);
    expect(kernel.snapshot().some((r) => r.dst === '10.244.1.20/32')).toBe(true);
    await clock.advanceAsync(1_100);
    expect(kernel.snapshot().some((r) => r.dst === '10.244.1.20/32')).toBe(false);
    table.stop();
  });

  it('an interface present at the first resync gets no grace: its stale route goes at once', async () => {
    const kernel = newKernel();
    kernel.insert({ dst: '10.244.1.30', dev: CALI, scope: 'link', protocol: '80' });
    const table = new RouteTable(kernel, { clock: new FakeClock(), graceMs: 5_000 });
    table.setDesired([]);
    const result = await table.apply();
    expect(dsts(result.deleted)).toEqual(['10.244.1.30/32']);
  });

  it('re-reads the whole table every resyncMs and repairs drift no event reported', async () => {
    const kernel = newKernel();
    const { clock, table, results } = await running(kernel);
    table.setDesired(WANTED);
    table.start();
    await clock.advanceAsync(20);
    const full = results.filter((r) => r.fullResync).length;
    // Drift without an event: the watcher missed it.
    const stopWatch = kernel.watch(() => undefined);
    stopWatch.stop();
    (kernel as unknown as { routes: KernelRoute[] }).routes = kernel
      .snapshot()
      .filter((r) => r.dst !== '10.244.1.0/26');
    await clock.advanceAsync(89_000);
    expect(kernel.snapshot().some((r) => r.dst === '10.244.1.0/26')).toBe(false);
    await clock.advanceAsync(1_100);
    expect(results.filter((r) => r.fullResync).length).toBe(full + 1);
    expect(kernel.snapshot().some((r) => r.dst === '10.244.1.0/26')).toBe(true);
    table.stop();
  });

  it('a lost event stream causes a full resync and a new watch', async () => {
    const kernel = newKernel();
    const { clock, table, results } = await running(kernel);
    table.setDesired(WANTED);
    table.start();
    await clock.advanceAsync(20);
    const before = results.length;
    kernel.loseEvents();
    await settle();
    await clock.advanceAsync(2_100);
    expect(results.length).toBeGreaterThan(before);
    expect(results.at(-1)?.fullResync).toBe(true);
    table.stop();
  });

  it('a failing apply in the loop is reported and retried after retryMs', async () => {
    const kernel = newKernel();
    const { clock, table, results, errors } = await running(kernel);
    table.setDesired(WANTED);
    kernel.failNext('listRoutes');
    kernel.failNext('listRoutes');
    table.start();
    await clock.advanceAsync(20);
    expect(errors).toHaveLength(1);
    expect(kernel.snapshot().filter(isOwnedRoute)).toHaveLength(0);
    await clock.advanceAsync(2_100);
    expect(results.at(-1)?.kernelWrites).toBe(4);
    table.stop();
  });

  it('refuses a negative option, naming it', () => {
    expect(() => new RouteTable(newKernel(), { resyncMs: -1 })).toThrow(/resyncMs is -1/);
  });
});
