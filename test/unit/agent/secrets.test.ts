// The BGP password sources' timers on the injected clock (src/agent/secrets.ts): the mounted-Secret
// directory is polled every pollMs, and the Kubernetes Secret watch is re-opened retryMs after it ends or
// fails to open. Fake time: each test would fail if the timer were removed or its period changed.

import { describe, expect, it } from 'vitest';
import { FakeClock, settle } from '../../../bgp/clock.js';
import { fileSecretSource, kubeSecretSource, type SecretApi } from '../../../src/agent/secrets.js';

describe('secret source timers (fake clock)', () => {
  it('the file source calls back every pollMs until stopped', () => {
    const clock = new FakeClock();
    let calls = 0;
    const stop = fileSecretSource('/nonexistent', 5000, clock).watch(() => calls++);
    clock.advance(4999);
    expect(calls).toBe(0);
    clock.advance(1);
    expect(calls).toBe(1);
    clock.advance(5000);
    expect(calls).toBe(2);
    clock.advance(15000);
    expect(calls).toBe(5);
    stop();
    clock.advance(60000);
    expect(calls).toBe(5);
    expect(clock.pending).toBe(0);
  });

  it('the file source keeps polling when a callback throws', () => {
    const clock = new FakeClock();
    let calls = 0;
    fileSecretSource('/nonexistent', 1000, clock).watch(() => {
      calls++;
      throw new Error('boom');
    });
    expect(() => clock.advance(1000)).toThrow('boom');
    expect(clock.pending).toBe(1);
    expect(() => clock.advance(1000)).toThrow('boom');
    expect(calls).toBe(2);
  });

  it('the Kubernetes watch: a stream that ends calls back at once and is re-opened retryMs later', async () => {
    const clock = new FakeClock();
    const ends: Array<(error: unknown) => void> = [];
    const api: SecretApi = {
      getSecretData: async () => undefined,
      watchSecrets: async (_ns, _onEvent, onDone) => {
        ends.push(onDone);
        return { abort: () => undefined };
      },
    };
    let calls = 0;
    const stop = kubeSecretSource(api, 'tortie-system', 2000, clock).watch(() => calls++);
    await settle();
    expect(ends).toHaveLength(1);
    ends[0]!(new Error('stream timeout'));
    expect(calls).toBe(1);
    clock.advance(1999);
    await settle();
    expect(ends).toHaveLength(1);
    clock.advance(1);
    await settle();
    expect(ends).toHaveLength(2);
    stop();
    ends[1]!(new Error('aborted'));
    clock.advance(10000);
    await settle();
    expect(ends).toHaveLength(2);
  });

  it('the Kubernetes watch: a watch that cannot open is tried again retryMs later', async () => {
    const clock = new FakeClock();
    let opens = 0;
    const api: SecretApi = {
      getSecretData: async () => undefined,
      watchSecrets: async () => {
        opens++;
        throw new Error('forbidden');
      },
    };
    const stop = kubeSecretSource(api, 'tortie-system', 2000, clock).watch(() => undefined);
    await settle();
    expect(opens).toBe(1);
    clock.advance(1999);
    await settle();
    expect(opens).toBe(1);
    clock.advance(1);
    await settle();
    expect(opens).toBe(2);
    stop();
    clock.advance(10000);
    await settle();
    expect(opens).toBe(2);
  });
});
