// The startup wait (WAIT_FOR_DATASTORE, src/agent/bootstrap.ts) on fake time: one try a second on the
// injected clock, at most WAIT_ATTEMPTS, the first failure logged once, giving up when the agent stops;
// and the agent's start waiting on that clock.

import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../../bgp/clock.js';
import { waitForDatastore, WAIT_ATTEMPTS } from '../../../src/agent/bootstrap.js';
import { MemoryDatastore } from '../../../src/datastore/memory.js';
import type { Logger } from '../../../src/log.js';
import { testAgent } from '../helpers/agent-fixtures.js';

/** A logger that keeps its warnings. */
function recordingLog(): { log: Logger; warnings: string[] } {
  const warnings: string[] = [];
  const log = pino({ level: 'silent' });
  log.warn = ((fields: unknown, message?: string) => void warnings.push(message ?? String(fields))) as Logger['warn'];
  return { log, warnings };
}

/** An attempt that fails `failures` times, then answers 'up'; counts its calls. */
function flaky(failures: number): { attempt: () => Promise<string>; calls: () => number } {
  let calls = 0;
  return {
    attempt: async () => {
      calls++;
      if (calls <= failures) throw new Error(`unavailable (${calls})`);
      return 'up';
    },
    calls: () => calls,
  };
}

describe('waitForDatastore', () => {
  it('tries again one second apart on the injected clock, never sooner; logs the first failure once', async () => {
    const clock = new FakeClock();
    const { log, warnings } = recordingLog();
    const ds = flaky(2);
    let result: string | undefined;
    const waiting = waitForDatastore(ds.attempt, { wait: true, clock, log }).then((r) => (result = r));
    await clock.advanceAsync(0);
    expect(ds.calls()).toBe(1);
    await clock.advanceAsync(999);
    expect(ds.calls()).toBe(1);
    await clock.advanceAsync(1);
    expect(ds.calls()).toBe(2);
    expect(result).toBeUndefined();
    await clock.advanceAsync(1000);
    await waiting;
    expect(ds.calls()).toBe(3);
    expect(result).toBe('up');
    expect(warnings).toEqual(['waiting for the datastore (WAIT_FOR_DATASTORE)']);
    expect(clock.pending).toBe(0);
  });

  it('without WAIT_FOR_DATASTORE: one try, its error, no timer', async () => {
    const clock = new FakeClock();
    const ds = flaky(1);
    await expect(waitForDatastore(ds.attempt, { wait: false, clock, log: recordingLog().log })).rejects.toThrow(
      'unavailable (1)',
    );
    expect(ds.calls()).toBe(1);
    expect(clock.pending).toBe(0);
  });

  it(`gives up after ${WAIT_ATTEMPTS} tries (an hour) with the last error`, async () => {
    const clock = new FakeClock();
    const ds = flaky(Infinity);
    let failure: unknown;
    const waiting = waitForDatastore(ds.attempt, { wait: true, clock, log: recordingLog().log }).catch(
      (error: unknown) => (failure = error),
    );
    for (let i = 0; i < WAIT_ATTEMPTS + 5 && failure === undefined; i++) await clock.advanceAsync(1000);
    await waiting;
    expect((failure as Error).message).toBe(`unavailable (${WAIT_ATTEMPTS})`);
    expect(ds.calls()).toBe(WAIT_ATTEMPTS);
    expect(clock.now()).toBe((WAIT_ATTEMPTS - 1) * 1000);
  });

  it('stops waiting once the agent stops: the next failure is thrown', async () => {
    const clock = new FakeClock();
    const ds = flaky(Infinity);
    let stopped = false;
    let failure: unknown;
    const waiting = waitForDatastore(ds.attempt, {
      wait: true,
      clock,
      log: recordingLog().log,
      stopped: () => stopped,
    }).catch((error: unknown) => (failure = error));
    await clock.advanceAsync(1000);
    expect(ds.calls()).toBe(2);
    stopped = true;
    await clock.advanceAsync(1000);
    await waiting;
    expect((failure as Error).message).toBe('unavailable (3)');
    expect(clock.pending).toBe(0);
  });
});

describe('Agent startup with WAIT_FOR_DATASTORE', () => {
  it('waits for the datastore on the injected clock, then starts', async () => {
    const clock = new FakeClock(Date.parse('2026-01-01T00:00:00Z'));
    const ds = new MemoryDatastore();
    const list = ds.list.bind(ds);
    let failing = 2;
    ds.list = (async (kind: Parameters<typeof list>[0]) => {
      if (kind === 'BGPConfiguration' && failing > 0) {
        failing--;
        throw new Error('etcd at http://127.0.0.1:1: unavailable');
      }
      return list(kind);
    }) as typeof ds.list;
    const { agent, speakers } = testAgent({ IP: '198.18.0.11/24', WAIT_FOR_DATASTORE: 'true' }, ds, { clock });
    let started = false;
    const starting = agent.start().then(() => (started = true));
    await clock.advanceAsync(999);
    expect(failing).toBe(1);
    await clock.advanceAsync(1);
    expect(failing).toBe(0);
    await clock.advanceAsync(999);
    expect(speakers).toHaveLength(0);
    expect(started).toBe(false);
    await clock.advanceAsync(1);
    await starting;
    expect(started).toBe(true);
    expect(speakers).toHaveLength(1);
    expect(agent.status().startedAt).toBe('2026-01-01T00:00:00.000Z');
  });
});
