// FelixDataplane and tunl0 when the last IPIP pool goes (switched live to VXLAN or Never): tunl0 keeps no
// address (its tunnel address went back to IPAM), as Calico's felix does; switched back, the address
// returns. On an in-memory kernel with the fake `ip` of the tunl0 tests (test/unit/helpers/fake-ip.ts).

import { describe, expect, it } from 'vitest';
import { FelixDataplane, type DataplaneInput } from '../../../felix/dataplane.js';
import { MemoryKernel } from '../../../felix/memory-kernel.js';
import { waitFor } from '../../harness/wait.js';
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
});
