// labTimeouts: the lab's deadlines and the datastore timeout it hands on, scaled by TORTIE_LAB_SLOWDOWN
// (the VM of scripts/vm runs under software emulation, where everything takes several times longer).

import { describe, expect, it } from 'vitest';
import { labTimeouts } from '../../../src/lab/lab.js';

describe('labTimeouts', () => {
  it('unset (or empty) = the ordinary deadlines, and no datastore timeout handed on', () => {
    for (const env of [{}, { TORTIE_LAB_SLOWDOWN: '' }, { TORTIE_LAB_SLOWDOWN: '1' }]) {
      expect(labTimeouts(env)).toEqual({
        etcdMs: 20_000,
        agentMs: 30_000,
        convergeMs: 60_000,
        cniMs: 30_000,
        datastoreMs: undefined,
      });
    }
  });

  it('a factor multiplies every deadline and sets the datastore timeout of the agents and the CNI plugin', () => {
    expect(labTimeouts({ TORTIE_LAB_SLOWDOWN: '6' })).toEqual({
      etcdMs: 120_000,
      agentMs: 180_000,
      convergeMs: 360_000,
      cniMs: 180_000,
      datastoreMs: 30_000,
    });
  });

  it.each(['0', '51', '2.5', 'fast', '-3'])(
    'refuses TORTIE_LAB_SLOWDOWN=%s naming the variable, the value and what is accepted',
    (value) => {
      expect(() => labTimeouts({ TORTIE_LAB_SLOWDOWN: value })).toThrow(
        `TORTIE_LAB_SLOWDOWN="${value}": a whole number 1..50`,
      );
    },
  );
});
