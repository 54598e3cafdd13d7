// The life of one daemon process, the same for every peer kind: a directory for its config, sockets and
// log; spawn; poll its control socket until it answers (short interval, no fixed sleeps); stop, crash,
// restart with the same directory. The peer modules (bird.ts, frr.ts, gobgp.ts, exabgp.ts) say what to
// run and how to ask "ready?"; this says when.

import { mkdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import type { PeerOptions } from './peer.js';
import { makeTempDir, removeTempDir, startProcess, waitFor, WaitAborted, type ManagedProcess } from './process.js';

export interface Launch {
  readonly command: string;
  readonly args: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
}

export interface DaemonSpec {
  readonly name: string;
  readonly dir: string;
  /** True when the dir is ours to delete on stop() (a temp dir, not a caller's logDir). */
  readonly ownsDir: boolean;
  /** Called before every start: write the config, return the command line. */
  readonly prepare: () => Launch;
  /** One readiness probe; true when the daemon answers on its control interface. */
  readonly ready: () => Promise<boolean>;
  /** Files to delete before each start (stale pid files and sockets from a crash). */
  readonly staleFiles?: readonly string[];
  readonly readyTimeoutMs?: number;
}

/** A daemon that can be started, stopped, crashed and restarted. */
export class DaemonHandle {
  private process: ManagedProcess | undefined;
  private lastStartupMs = 0;

  constructor(private readonly spec: DaemonSpec) {}

  get startupMs(): number {
    return this.lastStartupMs;
  }

  pid(): number | undefined {
    return this.process?.isRunning() ? this.process.pid : undefined;
  }

  log(): string {
    return this.process?.log() ?? '';
  }

  async start(): Promise<void> {
    for (const file of this.spec.staleFiles ?? []) rmSync(file, { force: true });
    const launch = this.spec.prepare();
    const started = Date.now();
    const proc = startProcess({
      name: this.spec.name,
      command: launch.command,
      args: launch.args,
      dir: this.spec.dir,
      env: launch.env,
    });
    this.process = proc;
    try {
      await waitFor(
        async () => {
          if (!proc.isRunning())
            throw new WaitAborted(
              `${this.spec.name} exited before it was ready (exit ${await Promise.race([proc.exited, Promise.resolve('?')])})`,
            );
          return this.spec.ready();
        },
        {
          timeoutMs: this.spec.readyTimeoutMs ?? 15_000,
          intervalMs: 20,
          what: `${this.spec.name} to answer on its control interface`,
        },
      );
    } catch (err) {
      await proc.stop(1000).catch(() => undefined);
      console.warn(`${this.spec.name} did not start; log ${proc.logPath}:\n${proc.log().slice(-3000)}`);
      throw new Error(
        `${(err as Error).message}\n--- ${this.spec.name} log (${proc.logPath}) ---\n${proc.log().slice(-3000)}`,
      );
    }
    this.lastStartupMs = Date.now() - started;
  }

  /** Stops the process and keeps the directory. */
  async halt(): Promise<void> {
    await this.process?.stop();
  }

  async kill9(): Promise<void> {
    await this.process?.kill9();
  }

  /** Stops the process and removes the directory if it is a temp dir. */
  async stop(): Promise<void> {
    await this.halt();
    if (this.spec.ownsDir) removeTempDir(this.spec.dir);
  }

  async restart(): Promise<void> {
    await this.halt();
    await this.start();
  }
}

/** The directory for one daemon: the caller's logDir (kept) or a fresh temp dir (removed on stop). */
export function daemonDir(kind: string, options: PeerOptions): { dir: string; ownsDir: boolean } {
  if (options.logDir) {
    const dir = `${options.logDir}/${kind}-${options.address}`;
    mkdirSync(dir, { recursive: true });
    return { dir, ownsDir: false };
  }
  return { dir: makeTempDir(`${kind}-${options.address}`), ownsDir: true };
}

/** True when a unix socket at `path` accepts a connection (and, if given, sends a line starting with `greeting`). */
export function unixSocketAnswers(path: string, greeting?: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    let text = '';
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('error', () => done(false));
    socket.on('connect', () => {
      if (greeting === undefined) done(true);
    });
    socket.on('data', (chunk) => {
      text += chunk.toString('utf8');
      if (greeting !== undefined && text.includes(greeting)) done(true);
    });
  });
}

/** True when something accepts TCP on host:port. */
export function tcpAnswers(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('error', () => done(false));
    socket.on('connect', () => done(true));
  });
}
