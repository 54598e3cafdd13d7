// FelixDataplane and tunl0 when the last IPIP pool goes (switched live to VXLAN or Never): tunl0 keeps no
// address (its tunnel address went back to IPAM), as Calico's felix does; switched back, the address
// returns. And a tunl0 that worked is not given up on one failed or slow check (a loaded machine killed
// `ip`): its routes stay and it is checked again after retryMs. On an in-memory kernel with the fake `ip` of
// the tunl0 tests (test/unit/helpers/fake-ip.ts).

import { describe, expect, it } from 'vitest';
import { FelixDataplane, type DataplaneInput } from '../../../felix/dataplane.js';
import { MemoryKernel } from '../../../felix/memory-kernel.js';
import { waitFor } from '../../harness/wait.js';
import type { IpCommand } from '../../../ipip/tunl0.js';
import { fakeIp } from '../helpers/fake-ip.js';

const input = (ipipMode: 'Always' | 'Never', address?: string): DataplaneInput => ({
  node: { ip: '198.18.0.11/24', hostInterface: 'eth0' },
  pools: [{ cidr: '10.244.0.0/16', ipipMode }],
  localBlocks: [],
  workloads: [],
  bgpRoutes: [],
  tunnel: address !== undefined ? { address } : {},
});

const quiet = { info() {}, warn() {}, error() {} };

/** The remote block of node 198.18.0.12 (same subnet), through tunl0 in IPIP Always. */
const TUNNEL_ROUTE = '10.244.7.0/26';
const withRemoteBlock = (i: DataplaneInput): DataplaneInput => ({
  ...i,
  bgpRoutes: [{ prefix: TUNNEL_ROUTE, nextHop: '198.18.0.12' }],
});

describe('FelixDataplane: tunl0 without an IPIP pool', () => {
  it('removes the addresses when the last IPIP pool goes, and puts the new one back when IPIP returns', async () => {
    const fake = fakeIp({ ipip: true });
    const kernel = new MemoryKernel({ links: ['lo', 'eth0'] });
    const dp = new FelixDataplane({ kernel, log: quiet, debounceMs: 1, retryMs: 60_000, tunl0: { ip: fake.ip } });
    const addresses = (): string[] => fake.devices.get('tunl0')?.addresses ?? ['(no tunl0)'];
    try {
      dp.update(input('Always', '10.244.0.1'));
      dp.start();
      await dp.settle();
      expect(addresses()).toEqual(['10.244.0.1/32']);

      dp.update(input('Never'));
      expect(await waitFor(async () => addresses().length === 0 || null, { what: 'tunl0 cleared' })).toBe(true);
      expect(fake.devices.has('tunl0')).toBe(true); // the device stays
      expect(dp.status().tunl0).toEqual({ needed: false });

      dp.update(input('Always', '10.244.0.7'));
      await dp.settle();
      expect(await waitFor(async () => addresses()[0] === '10.244.0.7/32' || null, { what: 'new address' })).toBe(true);
      expect(addresses()).toEqual(['10.244.0.7/32']);
    } finally {
      await dp.stop();
    }
  });

  it('never touches tunl0 on a node that never had an IPIP pool', async () => {
    const fake = fakeIp({ ipip: true });
    const kernel = new MemoryKernel({ links: ['lo', 'eth0'] });
    const dp = new FelixDataplane({ kernel, log: quiet, debounceMs: 1, retryMs: 60_000, tunl0: { ip: fake.ip } });
    try {
      dp.update(input('Never'));
      dp.start();
      await dp.settle();
      dp.update(input('Never'));
      await dp.settle();
      expect(fake.calls).toEqual([]);
    } finally {
      await dp.stop();
    }
  });

  it('keeps a working tunl0 and its routes when a check fails or times out, and checks again after retryMs', async () => {
    const fake = fakeIp({ ipip: true });
    let failing = false;
    const timedOut = {
      code: 1,
      stdout: '',
      stderr: 'ip -details -json addr show dev tunl0 took longer than 5000 ms and was killed',
    };
    const ip: IpCommand = (args) => (failing ? Promise.resolve(timedOut) : fake.ip(args));
    const kernel = new MemoryKernel({ links: ['lo', 'eth0', 'tunl0'] });
    const dp = new FelixDataplane({
      kernel,
      log: quiet,
      debounceMs: 1,
      retryMs: 50,
      resyncMs: 3_600_000,
      tunl0: { ip },
    });
    const tunnelRoute = async () =>
      (await kernel.listRoutes()).find((r) => r.dst === TUNNEL_ROUTE && r.dev === 'tunl0') !== undefined;
    try {
      dp.update(withRemoteBlock(input('Always', '10.244.0.1')));
      dp.start();
      await dp.settle();
      expect(await tunnelRoute()).toBe(true);

      failing = true;
      const calls = fake.calls.length;
      await dp.repairTunl0(); // the check fails: nothing is downgraded
      expect(dp.status().tunl0).toMatchObject({ needed: true, supported: true });
      expect(dp.status().warnings.join('\n')).toContain('took longer than 5000 ms');
      await dp.settle();
      expect(await tunnelRoute()).toBe(true);

      // A new tunnel address that cannot be written yet: still no downgrade, retried until it can be.
      dp.update(withRemoteBlock(input('Always', '10.244.0.9')));
      await dp.settle();
      expect(await tunnelRoute()).toBe(true);
      expect(dp.status().tunl0).toMatchObject({ supported: true });

      failing = false;
      const retried = await waitFor(async () => fake.devices.get('tunl0')?.addresses[0] === '10.244.0.9/32' || null, {
        what: 'tunl0 checked again after retryMs',
      });
      expect(retried).toBe(true);
      expect(fake.calls.length).toBeGreaterThan(calls);
      expect(
        await waitFor(async () => !dp.status().warnings.some((w) => w.includes('tunl0')) || null, {
          what: 'warning gone',
        }),
      ).toBe(true);
      expect(await tunnelRoute()).toBe(true);
    } finally {
      await dp.stop();
    }
  });

  it('does not trust a tunl0 whose first check failed, and tries again after retryMs', async () => {
    const fake = fakeIp({ ipip: true });
    let failing = true;
    const ip: IpCommand = (args) =>
      failing ? Promise.resolve({ code: 1, stdout: '', stderr: 'injected failure' }) : fake.ip(args);
    const kernel = new MemoryKernel({ links: ['lo', 'eth0', 'tunl0'] });
    const dp = new FelixDataplane({
      kernel,
      log: quiet,
      debounceMs: 1,
      retryMs: 50,
      resyncMs: 3_600_000,
      tunl0: { ip },
    });
    try {
      dp.update(withRemoteBlock(input('Always', '10.244.0.1')));
      dp.start();
      await dp.settle();
      expect(dp.status().tunl0).toMatchObject({ needed: true, supported: false });
      expect((await kernel.listRoutes()).some((r) => r.dst === TUNNEL_ROUTE)).toBe(false);
      failing = false;
      const up = await waitFor(
        async () => (await kernel.listRoutes()).some((r) => r.dst === TUNNEL_ROUTE && r.dev === 'tunl0') || null,
        { what: 'tunnel route after the retry' },
      );
      expect(up).toBe(true);
    } finally {
      await dp.stop();
    }
  });

  it('tries again after retryMs when removing the addresses failed (a timed-out ip)', async () => {
    const fake = fakeIp({ ipip: true });
    let failing = false;
    const ip: IpCommand = (args) =>
      failing
        ? Promise.resolve({ code: 1, stdout: '', stderr: 'took longer than 5000 ms and was killed' })
        : fake.ip(args);
    const kernel = new MemoryKernel({ links: ['lo', 'eth0'] });
    const dp = new FelixDataplane({
      kernel,
      log: quiet,
      debounceMs: 1,
      retryMs: 50,
      resyncMs: 3_600_000,
      tunl0: { ip },
    });
    try {
      dp.update(input('Always', '10.244.0.1'));
      dp.start();
      await dp.settle();
      expect(fake.devices.get('tunl0')?.addresses).toEqual(['10.244.0.1/32']);
      failing = true;
      dp.update(input('Never'));
      await dp.settle();
      expect(fake.devices.get('tunl0')?.addresses).toEqual(['10.244.0.1/32']);
      failing = false;
      const cleared = await waitFor(async () => fake.devices.get('tunl0')?.addresses.length === 0 || null, {
        what: 'tunl0 cleared by the retry',
      });
      expect(cleared).toBe(true);
    } finally {
      await dp.stop();
    }
  });
});
