// felix/command.ts, the one bounded child process felix's ip, nft and /proc/sys helpers run through, with
// real small programs (sh, cat, sleep, yes): argv passed as is, stdin as a string or chunks, a time bound
// that kills the child (by its PID) and rejects naming the command, output bounds, stdout through an
// unlinked scratch file (a pipe when none can be made), errors of the caller's type, a command started
// before its input is known.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandLine, failureMessage, runCommand, runCommandSync, startCommand } from '../../../felix/command.js';
import { waitFor } from '../../harness/wait.js';
import { withTmpdir } from '../helpers/tmpdir.js';

let dir = '';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tortie-command-'));
});

afterAll(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

class ToolError extends Error {}

/** Whether process `pid` is gone (or a zombie), polled for at most 2 s. */
async function gone(pid: number): Promise<boolean> {
  return waitFor(() => !existsSync(`/proc/${pid}`) || readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z '), {
    what: `process ${pid} gone`,
    timeoutMs: 2_000,
    intervalMs: 20,
  });
}

describe('runCommand', () => {
  it('passes the arguments as they are (no shell in between)', async () => {
    const args = ['a b', '$HOME', '"quoted"', '*', ''];
    const result = await runCommand({
      command: 'sh',
      args: ['-c', 'printf "%s\\n" "$@"', 'sh', ...args],
      timeoutMs: 5_000,
    });
    expect(result.code).toBe(0);
    expect(result.stdout.toString()).toBe(args.map((a) => `${a}\n`).join(''));
  });

  it('stdin: a string, chunks as an iterable yields them, or /dev/null when none is given', async () => {
    expect(
      (await runCommand({ command: 'cat', args: [], stdin: 'one\ntwo\n', timeoutMs: 5_000 })).stdout.toString(),
    ).toBe('one\ntwo\n');
    const chunks = function* (): Generator<string> {
      for (let i = 0; i < 1000; i++) yield `line ${i}\n`;
    };
    const many = await runCommand({ command: 'cat', args: [], stdin: chunks(), timeoutMs: 5_000 });
    expect(many.stdout.toString()).toBe([...chunks()].join(''));
    expect((await runCommand({ command: 'cat', args: [], timeoutMs: 5_000 })).stdout.toString()).toBe('');
  });

  it('a non-zero exit is a result; failureMessage names the command line, the status and stderr', async () => {
    const result = await runCommand({ command: 'sh', args: ['-c', 'echo nope >&2; exit 3'], timeoutMs: 5_000 });
    expect(result).toMatchObject({ code: 3, signal: null, stderr: 'nope\n' });
    expect(failureMessage(commandLine('sh', ['-c', 'echo nope >&2; exit 3']), result)).toBe(
      'sh -c "echo nope >&2; exit 3" failed (exit 3): nope',
    );
  });

  it("a command that cannot run rejects with the caller's error type, naming it", async () => {
    const error = await runCommand({
      command: join(dir, 'no-such-tool'),
      args: [],
      timeoutMs: 5_000,
      makeError: (m) => new ToolError(m),
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ToolError);
    expect((error as Error).message).toMatch(
      /^cannot run ".*no-such-tool": no-such-tool is not installed at .*no-such-tool/,
    );
  });

  it('past its time bound the child is killed by its PID and the run rejects, naming the command and the bound', async () => {
    const pidFile = join(dir, 'slow.pid');
    const started = Date.now();
    const error = await runCommand({
      command: 'sh',
      args: ['-c', `echo $$ > ${pidFile}; exec sleep 30`],
      timeoutMs: 300,
    }).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/^sh -c .*sleep 30" took longer than 300 ms and was killed$/);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(await gone(Number(readFileSync(pidFile, 'utf8')))).toBe(true);
  });

  it('more output than maxOutputBytes kills the child and rejects', async () => {
    const error = await runCommand({ command: 'yes', args: [], timeoutMs: 10_000, maxOutputBytes: 100_000 }).catch(
      (e: unknown) => e,
    );
    expect((error as Error).message).toMatch(/^yes printed more than 100000 bytes on stdout and was killed$/);
  });

  it('stdout through a scratch file: whole, and no file left behind; a pipe when no file can be made', async () => {
    const scratch = mkdtempSync(join(dir, 'tmp-'));
    const script = 'i=0; while [ $i -lt 20000 ]; do echo "route $i"; i=$((i+1)); done';
    const want = Array.from({ length: 20000 }, (_, i) => `route ${i}\n`).join('');
    const viaFile = await withTmpdir(scratch, () =>
      runCommand({
        command: 'sh',
        args: ['-c', `[ -f /dev/stdout ] && echo file >&2; ${script}`],
        stdout: 'scratch',
        timeoutMs: 20_000,
      }),
    );
    expect(viaFile.stdout.toString()).toBe(want);
    expect(viaFile.stderr).toBe('file\n');
    expect(readdirSync(scratch)).toEqual([]);
    const viaPipe = await withTmpdir(join(dir, 'missing'), () =>
      runCommand({
        command: 'sh',
        args: ['-c', `[ -f /dev/stdout ] || echo pipe >&2; ${script}`],
        stdout: 'scratch',
        timeoutMs: 20_000,
      }),
    );
    expect(viaPipe.stdout.toString()).toBe(want);
    expect(viaPipe.stderr).toBe('pipe\n');
  });
});

describe('runCommandSync', () => {
  it('the same run, blocking: argv as is, stdin, the exit status as a result, the environment given', () => {
    const result = runCommandSync({
      command: 'sh',
      args: ['-c', 'cat; printf "%s|%s" "$1" "$TORTIE_T"; exit 4', 'sh', 'a b'],
      stdin: 'in\n',
      env: { TORTIE_T: 'x', PATH: process.env.PATH },
      timeoutMs: 5_000,
    });
    expect(result).toMatchObject({ code: 4, signal: null, stderr: '' });
    expect(result.stdout.toString()).toBe('in\na b|x');
  });

  it('the same bounds and wording: a missing program, the time bound, the output bound', () => {
    const missing = (): unknown =>
      runCommandSync({
        command: join(dir, 'no-such-tool'),
        args: [],
        timeoutMs: 5_000,
        makeError: (m) => new ToolError(m),
      });
    expect(missing).toThrow(ToolError);
    expect(missing).toThrow(/^cannot run ".*no-such-tool": no-such-tool is not installed at .*no-such-tool/);
    expect(() => runCommandSync({ command: 'sleep', args: ['30'], timeoutMs: 200 })).toThrow(
      /^sleep 30 took longer than 200 ms and was killed$/,
    );
    expect(() => runCommandSync({ command: 'yes', args: [], timeoutMs: 10_000, maxOutputBytes: 100_000 })).toThrow(
      /^yes printed more than 100000 bytes and was killed$/,
    );
  });
});

describe('startCommand', () => {
  it('starts at once; the input follows later, in chunks', async () => {
    const running = startCommand({ command: 'cat', args: [], timeoutMs: 5_000 });
    // Proof that the child runs before its input is complete: a first line written now comes back now.
    running.write('first\n');
    await waitFor(() => running.stdoutSoFar().toString() === 'first\n', {
      what: 'cat echoing the first line',
      timeoutMs: 5_000,
      intervalMs: 5,
    });
    expect(running.finished).toBe(false);
    const result = await running.end(['a\n', 'b\n']);
    expect(result.stdout.toString()).toBe('first\na\nb\n');
    expect(running.finished).toBe(true);
    expect(() => running.end('')).toThrow(/end\(\) called twice/);
  });

  it('exited and timedOut: a watcher sees the end without ending stdin, and whether the bound killed it', async () => {
    const slow = startCommand({ command: 'sleep', args: ['30'], stdin: 'ignore', timeoutMs: 200 });
    await expect(slow.exited).rejects.toThrow(/took longer than 200 ms/);
    expect(slow.timedOut).toBe(true);
    const quick = startCommand({ command: 'cat', args: [], timeoutMs: 5_000 });
    quick.write('x');
    const result = quick.end('y');
    expect(await quick.exited).toBe(await result);
    expect(quick.timedOut).toBe(false);
  });

  it('kill() ends a command still waiting for its input', async () => {
    const running = startCommand({ command: 'cat', args: [], timeoutMs: 5_000 });
    running.kill();
    const result = await running.end('late');
    expect(result.signal).toBe('SIGKILL');
  });

  it('refuses a time bound that is not a positive number of milliseconds', () => {
    expect(() => startCommand({ command: 'cat', args: [], timeoutMs: 0 })).toThrow(
      /timeoutMs is 0; expected a number of milliseconds > 0/,
    );
  });
});
