// felix/vxlan-watch.ts without a kernel: the lines `ip -o monitor neigh` prints (captured with iproute2 6.1
// on this machine: neighbour and FDB changes on vxlan.calico, one on eth0), and VxlanDriftWatch on a fake
// watch: events folded into one check, a lost monitor said once and started again on the next ensure().

import { describe, expect, it } from 'vitest';
import { parseNeighMonitorLine, VxlanDriftWatch, type VxlanWatch } from '../../../felix/vxlan-watch.js';

const CAPTURED = [
  '10.244.1.1 dev vxlan.calico lladdr 66:aa:bb:cc:dd:02 PERMANENT proto 80 ',
  '198.19.1.12 dev vxlan.calico lladdr 66:aa:bb:cc:dd:02 NOARP PERMANENT ',
  '10.244.1.1 dev vxlan.calico FAILED proto 80 ',
  'Deleted 10.244.1.1 dev vxlan.calico FAILED proto 80 ',
  'Deleted 198.19.1.12 dev vxlan.calico lladdr 66:aa:bb:cc:dd:02 NOARP PERMANENT ',
  '198.19.1.12 dev eth0 lladdr 66:aa:bb:cc:dd:09 PERMANENT ',
];

describe('parseNeighMonitorLine', () => {
  it('reads the device and whether the entry went, for neighbour and FDB lines alike', () => {
    expect(CAPTURED.map(parseNeighMonitorLine)).toEqual([
      { dev: 'vxlan.calico', deleted: false },
      { dev: 'vxlan.calico', deleted: false },
      { dev: 'vxlan.calico', deleted: false },
      { dev: 'vxlan.calico', deleted: true },
      { dev: 'vxlan.calico', deleted: true },
      { dev: 'eth0', deleted: false },
    ]);
  });
  it('says nothing for lines without a device', () => {
    expect(parseNeighMonitorLine('')).toBeNull();
    expect(parseNeighMonitorLine('Deleted 10.0.0.1 lladdr 00:11:22:33:44:55')).toBeNull();
    expect(parseNeighMonitorLine('10.0.0.1 dev')).toBeNull();
  });
});

function fakeWatch(): {
  watch: VxlanWatch;
  fire: () => void;
  lose: (reason: string) => void;
  starts: number;
  stops: number;
} {
  const state = {
    starts: 0,
    stops: 0,
    fire: (): void => undefined,
    lose: (_: string): void => undefined,
  };
  const watch: VxlanWatch = (onChange, onLost) => {
    state.starts++;
    state.fire = onChange;
    state.lose = onLost;
    return { stop: () => state.stops++ };
  };
  return {
    watch,
    fire: () => state.fire(),
    lose: (r) => state.lose(r),
    get starts() {
      return state.starts;
    },
    get stops() {
      return state.stops;
    },
  };
}

const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('VxlanDriftWatch', () => {
  it('starts once, folds a burst of events into one check, checks again for a later one', async () => {
    const fake = fakeWatch();
    let drifts = 0;
    const w = new VxlanDriftWatch(fake.watch, () => drifts++, { warn: () => undefined }, 5);
    w.ensure();
    w.ensure();
    expect(fake.starts).toBe(1);
    fake.fire();
    fake.fire();
    fake.fire();
    await tick(30);
    expect(drifts).toBe(1);
    fake.fire();
    await tick(30);
    expect(drifts).toBe(2);
    w.stop();
    expect(fake.stops).toBe(1);
    fake.fire();
    await tick(30);
    expect(drifts).toBe(2);
    w.ensure();
    expect(fake.starts).toBe(1); // stopped for good
  });

  it('a lost monitor is said once per reason and started again by the next ensure()', async () => {
    const fake = fakeWatch();
    const warnings: string[] = [];
    const w = new VxlanDriftWatch(fake.watch, () => undefined, { warn: (f) => warnings.push(String(f.reason)) }, 5);
    w.ensure();
    fake.lose('ip monitor neigh exited (1)');
    w.ensure();
    expect(fake.starts).toBe(2);
    fake.lose('ip monitor neigh exited (1)');
    expect(warnings).toEqual(['ip monitor neigh exited (1)']);
    w.stop();
  });

  it('a watch that fails at once (lost before it returns) is not taken as running', () => {
    let starts = 0;
    const failing: VxlanWatch = (_onChange, onLost) => {
      starts++;
      onLost('ip monitor neigh could not run: spawn ip ENOENT');
      return { stop: () => undefined };
    };
    const w = new VxlanDriftWatch(failing, () => undefined, { warn: () => undefined });
    w.ensure();
    w.ensure();
    expect(starts).toBe(2);
    w.stop();
  });
});
