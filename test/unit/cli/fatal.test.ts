// The process-wide fatal handler (src/fatal.ts): logs at level fatal, runs the crash path, exits 1; with
// no crash path it writes the error and exits at once; a crash path that fails, hangs, or a second error
// while it runs still ends in exit 1.

import { describe, expect, it } from 'vitest';
import { createFatalHandler, type CrashPath } from '../../../src/fatal.js';
import { waitFor } from '../../harness/wait.js';

function recorder() {
  const logged: Array<{ fields: Record<string, unknown>; msg: string }> = [];
  const exits: number[] = [];
  const log: CrashPath['log'] = {
    fatal: ((fields: Record<string, unknown>, msg: string) =>
      logged.push({ fields, msg })) as unknown as CrashPath['log']['fatal'],
  };
  return { logged, exits, log, exit: (status: number) => void exits.push(status) };
}

async function until(probe: () => boolean, what: string): Promise<void> {
  await waitFor(probe, { what, timeoutMs: 5_000, intervalMs: 5 });
}

describe('createFatalHandler', () => {
  it('logs the error at fatal, runs the crash path, then exits 1', async () => {
    const r = recorder();
    let shutdowns = 0;
    let release!: () => void;
    const done = new Promise<void>((resolve) => (release = resolve));
    const handle = createFatalHandler({
      crashPath: () => ({ log: r.log, shutdown: () => (shutdowns++, done) }),
      exit: r.exit,
      timeoutMs: 5000,
    });
    handle(new Error('boom'), 'unhandledRejection');
    expect(r.logged[0]).toMatchObject({
      fields: { err: 'boom', origin: 'unhandledRejection' },
      msg: expect.stringMatching(/without Cease.*kernel routes kept/),
    });
    await until(() => shutdowns === 1, 'the shutdown');
    expect(r.exits).toEqual([]); // not before the crash path has finished
    release();
    await until(() => r.exits.length > 0, 'the exit');
    expect(r.exits).toEqual([1]);
  });

  it('exits 1 when the crash path fails, and when it hangs past the bound', async () => {
    const failing = recorder();
    createFatalHandler({
      crashPath: () => ({ log: failing.log, shutdown: () => Promise.reject(new Error('socket gone')) }),
      exit: failing.exit,
    })(new Error('x'), 'uncaughtException');
    await until(() => failing.exits.length > 0, 'the exit');
    expect(failing.exits).toEqual([1]);
    expect(failing.logged.some((l) => l.fields.err === 'socket gone')).toBe(true);

    const hanging = recorder();
    createFatalHandler({
      crashPath: () => ({ log: hanging.log, shutdown: () => new Promise<void>(() => undefined) }),
      exit: hanging.exit,
      timeoutMs: 30,
    })(new Error('x'), 'uncaughtException');
    await until(() => hanging.exits.length > 0, 'the exit');
    expect(hanging.exits).toEqual([1]);
    expect(hanging.logged.some((l) => /did not finish in time/.test(l.msg))).toBe(true);
  });

  it('a second error while shutting down exits at once', () => {
    const r = recorder();
    const handle = createFatalHandler({
      crashPath: () => ({ log: r.log, shutdown: () => new Promise<void>(() => undefined) }),
      exit: r.exit,
      timeoutMs: 60_000,
    });
    handle(new Error('first'), 'uncaughtException');
    expect(r.exits).toEqual([]);
    handle('second', 'unhandledRejection');
    expect(r.exits).toEqual([1]);
    expect(r.logged[1]).toMatchObject({ fields: { err: 'second' } });
  });

  it('without a crash path: writes the error with its stack and exits 1 at once', () => {
    const r = recorder();
    const lines: string[] = [];
    createFatalHandler({ crashPath: () => null, exit: r.exit, write: (line) => lines.push(line) })(
      new Error('early'),
      'uncaughtException',
    );
    expect(r.exits).toEqual([1]);
    expect(lines.join('')).toMatch(/^tortie: unhandled error \(uncaughtException\), exiting: Error: early\n {4}at /);
  });
});
