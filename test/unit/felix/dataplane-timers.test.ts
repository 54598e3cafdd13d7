// FelixDataplane's own timers on a FakeClock (bgp/clock.ts; issue 20): the periodic repair (every resyncMs,
// tunl0 set down by hand comes back up) and the retry of a failed vxlan.calico write (after retryMs, not only
// at the next resync). Each is checked one millisecond before its time (nothing yet) and at it.

import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock, settle } from '../../../bgp/clock.js';
import { FelixDataplane, type DataplaneInput } from '../../../felix/dataplane.js';
import { MemoryKernel } from '../../../felix/memory-kernel.js';
import { fakeIp } from '../helpers/fake-ip.js';
import { until } from '../helpers/agent-fixtures.js';
import { FakeVxlanKernel } from './vxlan-fake-kernel.js';

const quiet = { info() {}, warn() {}, error() {} };

const base: DataplaneInput = {
  node: { ip: '198.18.0.11/24', hostInterface: 'eth0' },
  pools: [],
  localBlocks: [],
  workloads: [],
  bgpRoutes: [],
  tunnel: {},
};

const running: FelixDataplane[] = [];
afterEach(async () => {
  for (const dp of running.splice(0)) await dp.stop();
});

describe('FelixDataplane timers on the injected clock', () => {
  it('repairs tunl0 every resyncMs: set down by hand, it is up again exactly at the resync', async () => {
    const clock = new FakeClock();
    const ip = fakeIp({ ipip: true });
    const dp = new FelixDataplane({
      kernel: new MemoryKernel({ links: ['lo', 'eth0'] }),
      log: quiet,
      clock,
      resyncMs: 90_000,
      tunl0: { ip: ip.ip },
    });
    running.push(dp);
    dp.update({
      ...base,
      pools: [{ cidr: '10.244.0.0/16', ipipMode: 'Always' }],
      tunnel: { address: '10.244.0.1', hostMtu: 1500 },
    });
    dp.start();
    await dp.settle();
    const tunl0 = ip.devices.get('tunl0');
    expect(tunl0).toMatchObject({ up: true, addresses: ['10.244.0.1/32'] });
    // Someone sets tunl0 down; nothing tells felix.
    tunl0!.up = false;
    const calls = ip.calls.length;
    clock.advance(89_999);
    await settle(20);
    expect(ip.calls.length).toBe(calls); // the repair has not looked yet
    expect(tunl0!.up).toBe(false);
    clock.advance(1);
    await dp.settle();
    expect(ip.calls.length).toBeGreaterThan(calls);
    expect(tunl0!.up).toBe(true);
    // And again one resync later (the repair re-arms itself).
    tunl0!.up = false;
    clock.advance(90_000);
    await dp.settle();
    expect(tunl0!.up).toBe(true);
  });

  it('retries a failed vxlan.calico write after retryMs, before the next resync', async () => {
    const clock = new FakeClock();
    const vxlan = new FakeVxlanKernel();
    vxlan.failNext = true;
    const dp = new FelixDataplane({
      kernel: new MemoryKernel({ links: ['lo', 'eth0'] }),
      log: quiet,
      clock,
      resyncMs: 90_000,
      retryMs: 5_000,
      vxlan: { run: vxlan.run },
    });
    running.push(dp);
    dp.start();
    dp.update({
      ...base,
      pools: [{ cidr: '10.244.0.0/16', ipipMode: 'Never', vxlanMode: 'Always' }],
      tunnel: { hostMtu: 1500 },
      vxlan: {
        remoteBlocks: [],
        nodes: [],
        local: { tunnelAddress: '10.244.0.0', mac: '66:00:00:00:00:01' },
      },
    });
    const failed = await until(() => dp.status().vxlan?.lastError, 'the first vxlan.calico write failed');
    expect(failed).toMatch(/Operation not permitted/);
    expect(vxlan.batches).toHaveLength(1);
    expect(vxlan.state.device).toBeNull();
    clock.advance(4_999);
    await settle(20);
    expect(vxlan.batches).toHaveLength(1); // not retried yet
    clock.advance(1);
    await until(() => vxlan.state.device?.up === true, 'vxlan.calico written by the retry');
    expect(vxlan.batches).toHaveLength(2);
    expect(vxlan.state.device).toMatchObject({ vni: 4096, mac: '66:00:00:00:00:01', addresses: ['10.244.0.0/32'] });
    await until(() => dp.status().vxlan?.lastError === undefined, 'the error cleared');
    expect(clock.now()).toBeLessThan(90_000);
  });
});
