// BGPPeer reachableBy through FelixDataplane on an in-memory kernel: the static route to the peer is
// programmed as felix's own (proto 80), removed when the peer (its reachableBy) goes, and a route someone
// else put there for another destination is never touched. The shape is checked in felix/calc.test.ts; the
// real kernel in test/integration/felix-kernel.test.ts.

import { describe, expect, it } from 'vitest';
import { FelixDataplane, type DataplaneInput } from '../../../felix/dataplane.js';
import { MemoryKernel } from '../../../felix/memory-kernel.js';
import { waitFor } from '../../harness/wait.js';

async function flush(): Promise<void> {
  for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
}

const input = (peerRoutes?: DataplaneInput['peerRoutes']): DataplaneInput => ({
  node: { ip: '198.18.0.11/24', hostInterface: 'eth0' },
  pools: [],
  localBlocks: [],
  workloads: [],
  bgpRoutes: [],
  tunnel: {},
  ...(peerRoutes ? { peerRoutes } : {}),
});

const quiet = { info() {}, warn() {}, error() {} };

describe('FelixDataplane: static routes to BGP peers (reachableBy)', () => {
  it("programs the peer route as its own and removes it when the peer goes; others' routes stay", async () => {
    const kernel = new MemoryKernel({ links: ['lo', 'eth0'] });
    kernel.insert({ dst: '10.9.0.0/24', gateway: '198.18.0.1', dev: 'eth0', protocol: 'static' });
    const dp = new FelixDataplane({ kernel, log: quiet, debounceMs: 1, retryMs: 60_000 });
    dp.update(input([{ address: '10.225.0.4', gateway: '198.18.0.1' }]));
    dp.start();
    dp.bgpSettled();
    await flush();
    const shown = async () =>
      (await kernel.listRoutes())
        .map(
          (r) =>
            `${r.dst} via ${r.gateway} dev ${r.dev} proto ${r.protocol}${r.flags?.includes('onlink') ? ' onlink' : ''}`,
        )
        .sort();
    // Polled, not flushed once: the reconciler's debounce runs on the real clock, and a busy machine may not
    // have reached it after the flush.
    const programmed = await waitFor(async () => ((await shown()).length === 2 ? shown() : null), {
      what: 'the peer route programmed',
    });
    expect(programmed).toEqual([
      '10.225.0.4/32 via 198.18.0.1 dev eth0 proto 80 onlink',
      '10.9.0.0/24 via 198.18.0.1 dev eth0 proto 4',
    ]);
    // The BGPPeer (or its reachableBy) is gone: felix removes what it owns, nothing else.
    dp.update(input());
    const left = await waitFor(async () => ((await shown()).length === 1 ? shown() : null), {
      what: 'the peer route removed',
    });
    expect(left).toEqual(['10.9.0.0/24 via 198.18.0.1 dev eth0 proto 4']);
    await dp.stop();
  });
});
