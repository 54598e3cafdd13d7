// The route table's overlaps, against the in-memory kernel: a full resync starts its kernel read before the
// desired set is settled, and when a write is likely reads and writes through one kernel session
// (readThenWrite, whose write is then always called, an empty batch ending it); a resync with nothing
// changed reads only; the view of the kernel is updated while the batch runs, and a failed batch leaves its
// routes unknown (programmed() false) with a full re-read due; setDesired still refuses a bad destination
// at once.

import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../../bgp/clock.js';
import type { KernelBatch, KernelSnapshot } from '../../../felix/kernel.js';
import { MemoryKernel } from '../../../felix/memory-kernel.js';
import { RouteTable } from '../../../felix/route-table.js';
import type { DesiredRoute } from '../../../felix/routes.js';

const CALI = 'calie8e9a5cf531';
const blackhole = (dst: string): DesiredRoute => ({ dst, type: 'blackhole', proto: 80, class: 'blackhole' });
const workload = (ip: string): DesiredRoute => ({
  dst: `${ip}/32`,
  type: 'unicast',
  dev: CALI,
  scope: 'link',
  proto: 80,
  class: 'workload',
});
const WANTED: DesiredRoute[] = [blackhole('10.244.1.0/26'), blackhole('10.244.2.0/26'), workload('10.244.1.5')];

/** A MemoryKernel with read-then-write sessions; every call is logged in order. */
class PreparingKernel extends MemoryKernel {
  readonly log: string[] = [];
  override async readAll(): Promise<KernelSnapshot> {
    this.log.push('readAll');
    return super.readAll();
  }
  readThenWrite(): { read: Promise<KernelSnapshot>; write(batch: KernelBatch): Promise<void> } {
    this.log.push('readThenWrite');
    const read = super.readAll();
    return {
      read,
      write: (batch) => {
        this.log.push(`write ${batch.del.length}+${batch.add.length}`);
        return super.apply(batch);
      },
    };
  }
  override async apply(batch: KernelBatch): Promise<void> {
    this.log.push(`apply ${batch.del.length}+${batch.add.length}`);
    return super.apply(batch);
  }
}

function kernel(): PreparingKernel {
  return new PreparingKernel({ links: ['lo', 'eth0', CALI] });
}

describe('RouteTable: reading, preparing and writing overlap', () => {
  it('fixtures are not empty', () => {
    expect(WANTED.length).toBeGreaterThan(2);
  });

  it('first apply: one session reads, then writes the batch', async () => {
    const k = kernel();
    const table = new RouteTable(k, { clock: new FakeClock() });
    table.setDesired(WANTED);
    expect(k.log).toEqual([]); // setDesired alone touches no kernel
    const result = await table.apply();
    expect(k.log).toEqual(['readThenWrite', 'write 0+3']);
    expect(result.kernelWrites).toBe(3);
    expect(k.calls).toMatchObject({ listRoutes: 1, listLinks: 1, apply: 1 });
  });

  it('a restart that finds everything in place: the session is ended by an empty batch', async () => {
    const k = kernel();
    const first = new RouteTable(k, { clock: new FakeClock() });
    first.setDesired(WANTED);
    await first.apply();
    k.log.length = 0;
    const again = new RouteTable(k, { clock: new FakeClock() });
    again.setDesired(WANTED);
    expect((await again.apply()).kernelWrites).toBe(0);
    expect(k.log).toEqual(['readThenWrite', 'write 0+0']);
    expect(k.writes).toBe(3);
  });

  it('a periodic resync with nothing changed only reads', async () => {
    const k = kernel();
    const clock = new FakeClock();
    const table = new RouteTable(k, { clock, resyncMs: 1_000 });
    table.setDesired(WANTED);
    await table.apply();
    k.log.length = 0;
    clock.advance(1_000);
    const result = await table.apply();
    expect(result.fullResync).toBe(true);
    expect(k.log).toEqual(['readAll']);
  });

  it('a change without a read: the batch at once', async () => {
    const k = kernel();
    const table = new RouteTable(k, { clock: new FakeClock() });
    table.setDesired(WANTED);
    await table.apply();
    k.log.length = 0;
    table.setDesired([...WANTED, blackhole('10.244.3.0/26')]);
    expect((await table.apply()).kernelWrites).toBe(1);
    expect(k.log).toEqual(['apply 0+1']);
  });

  it('a failed batch: its routes are not claimed as programmed, and the retry re-reads everything', async () => {
    const k = kernel();
    const table = new RouteTable(k, { clock: new FakeClock() });
    table.setDesired(WANTED);
    await table.apply();
    expect(table.programmed('10.244.1.0/26')).toBe(true);
    k.failNext('apply', 'first');
    k.failNext('apply', 'second');
    table.setDesired([blackhole('10.244.4.0/26'), ...WANTED]);
    await expect(table.apply()).rejects.toThrow(/failed twice/);
    expect(table.programmed('10.244.4.0/26')).toBe(false);
    expect(table.programmed('10.244.1.0/26')).toBe(true); // untouched by the failed batch
    const result = await table.apply();
    expect(result.fullResync).toBe(true);
    expect(result.kernelWrites).toBe(1);
    expect(table.programmed('10.244.4.0/26')).toBe(true);
  });

  it('setDesired refuses a bad destination at once, naming it; what it keeps is settled on demand', () => {
    const table = new RouteTable(kernel(), { clock: new FakeClock() });
    expect(() => table.setDesired([blackhole('10.244.4.0/27'), blackhole('10.300.0.0/26')])).toThrow(
      /10\.300\.0\.0\/26/,
    );
    table.setDesired([blackhole('10.244.4.0/26'), { ...blackhole('10.244.4.0/26'), dst: '10.244.4.7/26' }]);
    expect(table.desiredRoutes().map((r) => r.dst)).toEqual(['10.244.4.0/26']);
    expect(table.programmed('10.244.4.0/26')).toBe(false);
  });

  it('the table keeps its own copies: a caller changing its objects afterwards changes nothing', async () => {
    const k = kernel();
    const table = new RouteTable(k, { clock: new FakeClock() });
    const routes = WANTED.map((r) => ({ ...r }));
    table.setDesired(routes);
    (routes[0] as DesiredRoute).dst = '10.99.0.0/26';
    await table.apply();
    expect(
      table
        .desiredRoutes()
        .map((r) => r.dst)
        .sort(),
    ).toEqual(['10.244.1.0/26', '10.244.1.5/32', '10.244.2.0/26']);
  });
});
