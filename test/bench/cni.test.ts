// The pure parts of the `cni` bench (test/bench/cni.ts): nearest-rank percentiles and reading the
// plugin's step timings from its debug log.

import { describe, expect, it } from 'vitest';
import { percentile, stepTimings } from './cni.js';

describe('bench cni', () => {
  it('takes nearest-rank percentiles', () => {
    const values = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted
    expect(percentile(values, 50)).toBe(50);
    expect(percentile(values, 99)).toBe(99);
    expect(percentile(values, 100)).toBe(100);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
  });

  it('reads the ADD steps from the plugin\'s debug line, ignoring other lines and pid', () => {
    const stderr = [
      '{"level":"info","msg":"ADD done","ms":400}',
      '{"time":"2026-11-22T16:24:08.250Z","level":"debug","plugin":"tortie","pid":9404,"msg":"ADD timings (ms)","datastore":301.4,"ipam":44.9,"dataplane":14.3}',
    ].join('\n');
    expect(stepTimings(stderr)).toEqual({ datastore: 301.4, ipam: 44.9, dataplane: 14.3 });
    expect(stepTimings('nothing here')).toEqual({});
  });
});
