// Runs `tortie bgp speaker --json --stdin` as a child process, the way a person would, and gives tests
// its events: every JSON line is kept, and `waitForEvent` polls them with a deadline. Commands go to
// the speaker's standard input (`announce ...`, `withdraw ...`). Stopped by PID in `stop()`.

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach } from 'vitest';
import { stopAll } from '../harness/process.js';
import { waitFor, WaitAborted } from '../harness/wait.js';
import type { SpeakerEventJson } from '../../src/cli/speaker-events.js';

export type RibEvent = Extract<SpeakerEventJson, { event: 'rib' }>;
export type RibRoute = RibEvent['routes'][number];
export type UpdateEvent = Extract<SpeakerEventJson, { event: 'update' }>;
export const isUpdate = (e: SpeakerEventJson): e is UpdateEvent => e.event === 'update';

// The built CLI, whether this file runs from test/ (vitest, TypeScript) or from dist/test/.
const HERE = fileURLToPath(import.meta.url);
const ROOT = HERE.slice(0, HERE.lastIndexOf('/test/')).replace(/\/dist$/, '');
const CLI = `${ROOT}/dist/src/cli/main.js`;

export class SpeakerProcess {
  readonly events: SpeakerEventJson[] = [];
  readonly stderr: string[] = [];
  private exitCode: number | null = null;
  private exited: Promise<number>;

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    let pending = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      pending += chunk;
      let newline: number;
      while ((newline = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        if (line.trim() === '') continue;
        try {
          this.events.push(JSON.parse(line) as SpeakerEventJson);
        } catch {
          this.stderr.push(`(stdout, not JSON) ${line}`);
        }
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => this.stderr.push(chunk));
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.exitCode = code ?? (signal ? 128 : 1);
        resolve(this.exitCode);
      });
    });
  }

  /** Starts the speaker from the built CLI (dist/). `args` are the flags after `bgp speaker`. */
  static start(args: string[], env: NodeJS.ProcessEnv = {}, options: { netns?: string } = {}): SpeakerProcess {
    const argv = [CLI, 'bgp', 'speaker', '--json', '--stdin', ...args];
    // In a network namespace: `ip netns exec` execs node itself, so the PID stopped later is the speaker's.
    const [command, commandArgs] =
      options.netns !== undefined
        ? ['ip', ['netns', 'exec', options.netns, process.execPath, ...argv]]
        : [process.execPath, argv];
    const child = spawn(command, commandArgs, {
      env: { ...process.env, TORTIE_LOG_LEVEL: process.env.TORTIE_LOG_LEVEL ?? 'warn', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    return new SpeakerProcess(child);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  send(command: string): void {
    this.child.stdin.write(`${command}\n`);
  }

  /** Waits until an event matching `match` has been seen (counting from index `from`), or throws. */
  async waitForEvent<E extends SpeakerEventJson>(
    match: (event: SpeakerEventJson) => event is E,
    options?: { timeoutMs?: number; from?: number; what?: string },
  ): Promise<E>;
  async waitForEvent(
    match: (event: SpeakerEventJson) => boolean,
    options?: { timeoutMs?: number; from?: number; what?: string },
  ): Promise<SpeakerEventJson>;
  async waitForEvent(
    match: (event: SpeakerEventJson) => boolean,
    options: { timeoutMs?: number; from?: number; what?: string } = {},
  ): Promise<SpeakerEventJson> {
    try {
      return await waitFor(
        () => {
          const found = this.events.slice(options.from ?? 0).find(match);
          if (found === undefined && this.exitCode !== null) throw new WaitAborted('the speaker exited');
          return found;
        },
        { timeoutMs: options.timeoutMs ?? 15_000, intervalMs: 20, what: options.what ?? 'matching event' },
      );
    } catch {
      // The timeout (or the exit) is said with what the speaker did last, which is usually the diagnosis.
    }
    throw new Error(
      `speaker: no ${options.what ?? 'matching event'} within ${options.timeoutMs ?? 15_000} ms` +
        (this.exitCode !== null ? ` (it exited with ${this.exitCode})` : '') +
        `\nlast events:\n${this.events
          .slice(-15)
          .map((e) => JSON.stringify(e))
          .join('\n')}\nstderr:\n${this.stderr.join('').slice(-3000)}`,
    );
  }

  /** SIGTERM (the speaker sends Cease and exits 0), SIGKILL after a bounded wait. Returns the exit code. */
  async stop(timeoutMs = 5000): Promise<number> {
    if (this.exitCode !== null) return this.exitCode;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }

  /** Asks for the Loc-RIB (`rib` on stdin) and returns the routes of the event that answers. */
  async rib(timeoutMs = 5000): Promise<RibRoute[]> {
    const mark = this.events.length;
    this.send('rib');
    const event = await this.waitForEvent((e): e is Extract<SpeakerEventJson, { event: 'rib' }> => e.event === 'rib', {
      from: mark,
      timeoutMs,
      what: 'rib',
    });
    return event.routes;
  }

  kill9(): void {
    this.child.kill('SIGKILL');
  }

  wait(): Promise<number> {
    return this.exited;
  }
}

export const isState = (peer: string, to: string) => (e: SpeakerEventJson) =>
  e.event === 'state' && e.peer === peer && e.to === to;

/**
 * For a describe block whose tests start daemons and speakers: returns `track(thing)`, and stops every
 * tracked thing after each test, newest first (tortie's Cease before its peers go), even when the test
 * failed; after the file, whatever the harness still knows of.
 */
export function stopAfterEachTest(): <T extends { stop(): Promise<unknown> }>(thing: T) => T {
  const running: Array<{ stop(): Promise<unknown> }> = [];
  afterEach(async () => {
    for (const thing of running.splice(0).reverse()) await thing.stop().catch(() => undefined);
  });
  afterAll(async () => {
    await stopAll();
  });
  return (thing) => {
    running.push(thing);
    return thing;
  };
}
