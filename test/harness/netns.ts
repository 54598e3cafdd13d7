// Network namespaces for kernel tests: create one (lo up), add veth pairs (a host-side `eth0`, workload
// interfaces named like real `cali*` ones), a stand-in `tunl0` where the kernel has no IPIP, run `ip`
// or any command inside it, and destroy it — always, even when the test failed.
//
//   const ns = await createNetns('felix');          // tortie-test-<pid>-<n>, registered for cleanup
//   await ns.ip('addr', 'add', '192.168.31.201/24', 'dev', 'eth0');
//   afterAll(() => destroyAllNetns());                // plus a process 'exit' hook, plus stale sweeping
//
// Why this is hard: a namespace outlives the process that created it, so a crashed test run leaves
// namespaces (and their routes) behind. Three layers: `destroy()`/`destroyAllNetns()` from afterEach/
// afterAll, a synchronous process 'exit' hook, and `createNetns` sweeping `tortie-test-<pid>-*`
// namespaces whose PID is no longer alive. Only names this harness makes (`tortie-test-`) are ever
// deleted; the host's own namespace, routes and interfaces are never touched (every command runs with
// `ip -n <ns>` or `ip netns exec <ns>`). Every command has a time limit.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const PREFIX = 'tortie-test-';
const COMMAND_TIMEOUT_MS = 10_000;

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface Netns {
  readonly name: string;
  /** `ip -n <ns> ...args`; rejects with the command and its stderr on a non-zero exit. */
  ip(...args: string[]): Promise<string>;
  /** `ip -n <ns> ...args`, never rejecting on exit status. */
  tryIp(...args: string[]): Promise<CommandResult>;
  /** Any command inside the namespace (`ip netns exec <ns> command ...args`); rejects on non-zero exit. */
  exec(command: string, args: readonly string[]): Promise<string>;
  /** A veth pair, both ends in this namespace, both up. */
  addVeth(name: string, peer: string): Promise<void>;
  /**
   * A device named `tunl0` that is not IPIP (this kernel has none): a dummy device if the `dummy`
   * module exists, else one end of a veth pair (`tunl0` / `tunl0-peer`). Up. Returns its kind.
   */
  addStandInTunl0(): Promise<'dummy' | 'veth'>;
  /** `ip -json route show table main` in this namespace, parsed. */
  routes(): Promise<Array<Record<string, unknown>>>;
  destroy(): Promise<void>;
}

const live = new Set<string>();
let counter = 0;
let hooked = false;

/** Runs a command with a time limit; never rejects except when it cannot be started. */
export function runCommand(
  command: string,
  args: readonly string[],
  stdin?: string,
  timeoutMs = COMMAND_TIMEOUT_MS,
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${command}: ${e.message}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin ?? '');
  });
}

async function must(command: string, args: readonly string[]): Promise<string> {
  const result = await runCommand(command, args);
  if (result.code !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed (exit ${result.code}): ${result.stderr.trim()}`);
  }
  return result.stdout;
}

/**
 * Why namespaces cannot be used here, or null when they can: needs root and a working `ip netns add`.
 * Tests skip (outside CI) with this reason.
 */
export function netnsUnavailableReason(): string | null {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'network namespace tests need root';
  const probe = spawnSync('ip', ['netns', 'list'], { timeout: COMMAND_TIMEOUT_MS, encoding: 'utf8' });
  if (probe.error) return `cannot run ip: ${probe.error.message}`;
  if (probe.status !== 0) return `ip netns list failed: ${probe.stderr.trim()}`;
  return null;
}

/** Deletes `tortie-test-<pid>-*` namespaces left by test processes that are gone. Returns their names. */
export function sweepStaleNetns(): string[] {
  const list = spawnSync('ip', ['netns', 'list'], { timeout: COMMAND_TIMEOUT_MS, encoding: 'utf8' });
  if (list.status !== 0) return [];
  const removed: string[] = [];
  for (const line of list.stdout.split('\n')) {
    const name = line.trim().split(/\s+/)[0] ?? '';
    const m = /^tortie-test-(\d+)-/.exec(name);
    if (!m || Number(m[1]) === process.pid || existsSync(`/proc/${m[1]}`)) continue;
    spawnSync('ip', ['netns', 'del', name], { timeout: COMMAND_TIMEOUT_MS });
    removed.push(name);
  }
  return removed;
}

/** A fresh namespace `tortie-test-<pid>-<n>[-tag]` with lo up, registered for cleanup. */
export async function createNetns(tag?: string): Promise<Netns> {
  if (!hooked) {
    hooked = true;
    process.on('exit', () => {
      for (const name of live) spawnSync('ip', ['netns', 'del', name], { timeout: COMMAND_TIMEOUT_MS });
    });
    sweepStaleNetns();
  }
  counter++;
  const suffix = tag ? `-${tag.replace(/[^a-z0-9]/gi, '').slice(0, 12)}` : '';
  const name = `${PREFIX}${process.pid}-${counter}${suffix}`;
  await must('ip', ['netns', 'add', name]);
  live.add(name);
  const ns = makeNetns(name);
  try {
    await ns.ip('link', 'set', 'lo', 'up');
  } catch (e) {
    await ns.destroy();
    throw e;
  }
  return ns;
}

function makeNetns(name: string): Netns {
  const ns: Netns = {
    name,
    ip: (...args) => must('ip', ['-n', name, ...args]),
    tryIp: (...args) => runCommand('ip', ['-n', name, ...args]),
    exec: (command, args) => must('ip', ['netns', 'exec', name, command, ...args]),
    async addVeth(a, b) {
      await ns.ip('link', 'add', a, 'type', 'veth', 'peer', 'name', b);
      await ns.ip('link', 'set', a, 'up');
      await ns.ip('link', 'set', b, 'up');
    },
    async addStandInTunl0() {
      const dummy = await ns.tryIp('link', 'add', 'tunl0', 'type', 'dummy');
      if (dummy.code === 0) {
        await ns.ip('link', 'set', 'tunl0', 'up');
        return 'dummy';
      }
      await ns.addVeth('tunl0', 'tunl0-peer');
      return 'veth';
    },
    async routes() {
      const out = await ns.ip('-4', '-json', 'route', 'show', 'table', 'main');
      const parsed: unknown = JSON.parse(out.trim() === '' ? '[]' : out);
      if (!Array.isArray(parsed)) throw new Error(`ip -json route in ${name}: not an array`);
      return parsed as Array<Record<string, unknown>>;
    },
    async destroy() {
      if (!live.has(name)) return;
      live.delete(name);
      const result = await runCommand('ip', ['netns', 'del', name]);
      if (result.code !== 0 && !/No such file/.test(result.stderr)) {
        throw new Error(`ip netns del ${name} failed: ${result.stderr.trim()}`);
      }
    },
  };
  return ns;
}

/** Destroys every namespace this process created and has not destroyed yet (call from afterAll). */
export async function destroyAllNetns(): Promise<void> {
  const errors: string[] = [];
  for (const name of [...live]) {
    live.delete(name);
    const result = await runCommand('ip', ['netns', 'del', name]);
    if (result.code !== 0 && !/No such file/.test(result.stderr)) errors.push(`${name}: ${result.stderr.trim()}`);
  }
  if (errors.length > 0) throw new Error(`could not delete network namespaces: ${errors.join('; ')}`);
}

/** Names of the namespaces this process created that are still alive (for tests of the harness). */
export function liveNetns(): string[] {
  return [...live];
}
