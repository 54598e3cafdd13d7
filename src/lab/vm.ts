// `tortie lab up --vm`: the same lab inside a QEMU VM booting Debian's kernel (scripts/vm/run), for a
// machine whose kernel has no IPIP — where `--ipip Always|CrossSubnet` cannot carry a packet. The VM runs
// in the background; `tortie lab status|ping|down --name NAME` reach into it.
//
//   host                                              VM (this machine's files, its own kernel)
//   tortie lab up --vm ...   ──spawns──▶  scripts/vm/run  ──▶  tortie lab vm-guest --share DIR ...
//     prints DIR/progress.log as it grows                    labUp(), appending to DIR/progress.log,
//     until DIR/up.json says how it went                     then DIR/up.json (status, ping matrix)
//   tortie lab status|ping|down                              serves DIR/requests/<id>.json with
//     writes DIR/requests/<id>.json, waits for               DIR/responses/<id>.json; `down` takes the lab
//     DIR/responses/<id>.json                                down and ends the command, and so the VM
//
// DIR is <lab dir>/vm, shared read-write with the VM at the same path (9p); the lab dir holds vm.json
// (what `down` needs to stop the VM even when it no longer answers) and the VM's console log.
//
// Why this is hard: the VM has no network device (nothing to ssh into) and is one-shot (its root file
// system lives in its memory), so the lab lives exactly as long as the command inside it. Files in a
// shared directory are the only channel: every message is written under a temporary name and renamed,
// so neither side ever reads half of one; every wait is bounded; and `down` works when the VM hangs or
// is gone (it stops the runner's process group, checked to still be ours, and removes the directory).

import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCommandSync, startDetached } from '../../felix/index.js';
import type { LabOptions } from './plan.js';

/** What `tortie lab status|ping|down` may ask the VM. */
export type VmRequestCommand = 'status' | 'ping' | 'down';

export interface VmRequest {
  id: string;
  command: VmRequestCommand;
}

export interface VmResponse {
  id: string;
  /** What the command printed. */
  output: string;
  exitCode: number;
}

/** Written by the guest once `lab up` inside the VM is over. */
export interface VmUpResult {
  ok: boolean;
  /** `lab status` and the ping matrix when ok; why not otherwise. */
  output: string;
  exitCode: number;
}

/** <lab dir>/vm.json: the running VM. */
export interface VmLabState {
  kind: 'vm';
  name: string;
  options: LabOptions;
  /** The runner (scripts/vm/run), leader of its own process group (QEMU is in it). */
  pid: number;
  /** A word of the runner's command line, checked before it is signalled (PID reuse guard). */
  marker: string;
  share: string;
  console: string;
  startedAt: string;
  /** The VM stops by itself after this many seconds (VM_TIMEOUT). */
  lifetimeS: number;
}

export const VM_STATE_FILE = 'vm.json';
export const DEFAULT_VM_LIFETIME_S = 4 * 3600;
/** The lab's deadlines inside the VM (software emulation): see labTimeouts. */
export const VM_SLOWDOWN = 10;

// ---- the shared directory: messages as whole files ---------------------------------------------------------

export function sharePaths(share: string): { progress: string; up: string; requests: string; responses: string } {
  return {
    progress: join(share, 'progress.log'),
    up: join(share, 'up.json'),
    requests: join(share, 'requests'),
    responses: join(share, 'responses'),
  };
}

/** Writes JSON under a temporary name and renames it: a reader sees all of it or nothing. */
export function writeMessage(path: string, value: unknown): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(value)}\n`);
  renameSync(tmp, path);
}

export function readMessage<T>(path: string): T | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return null;
  }
}

/** Request files waiting in the share, oldest first (ids start with a millisecond time). */
export function pendingRequests(share: string): string[] {
  const { requests } = sharePaths(share);
  try {
    return readdirSync(requests)
      .filter((f) => f.endsWith('.json'))
      .sort();
  } catch {
    return [];
  }
}

export function parseRequest(text: string): VmRequest | null {
  try {
    const value = JSON.parse(text) as Partial<VmRequest>;
    if (typeof value.id !== 'string' || !/^[0-9a-z-]{1,64}$/.test(value.id)) return null;
    if (value.command !== 'status' && value.command !== 'ping' && value.command !== 'down') return null;
    return { id: value.id, command: value.command };
  } catch {
    return null;
  }
}

// ---- the host side ----------------------------------------------------------------------------------------------

/** scripts/vm/run of this checkout (dist/src/lab/vm.js → ../../../scripts/vm/run), or null. */
export function findVmRunner(from = fileURLToPath(import.meta.url)): string | null {
  let dir = dirname(from);
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'scripts', 'vm', 'run');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  return null;
}

/** The `tortie lab up` arguments that make `options` (what the guest is told). */
export function labArgs(options: LabOptions): string[] {
  return [
    '--name',
    options.name,
    '--nodes',
    String(options.nodes),
    '--mode',
    options.mode,
    '--subnets',
    String(options.subnets),
    '--office-router',
    options.officeRouter,
    '--ipip',
    options.ipipMode,
    '--vxlan',
    options.vxlanMode,
    '--backend',
    options.backend,
    '--workloads',
    String(options.workloadsPerNode),
  ];
}

export function readVmState(labDirectory: string): VmLabState | null {
  const state = readMessage<VmLabState>(join(labDirectory, VM_STATE_FILE));
  return state?.kind === 'vm' ? state : null;
}

function processRunning(pid: number, marker: string): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat[stat.lastIndexOf(')') + 2] === 'Z') return false;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker);
  } catch {
    return false;
  }
}

export function vmRunning(state: VmLabState): boolean {
  return processRunning(state.pid, state.marker);
}

export interface VmUpIo {
  progress(line: string): void;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Starts the VM with the lab inside, prints its progress, and resolves when the lab is up (or failed, or
 * the VM ended). The VM keeps running in the background.
 */
export async function labUpInVm(
  options: LabOptions,
  labDirectory: string,
  cli: string,
  io: VmUpIo,
  env: NodeJS.ProcessEnv = process.env,
): Promise<VmUpResult> {
  const runner = findVmRunner();
  if (runner === null) {
    throw new Error(
      '--vm needs scripts/vm/run from a checkout of tortie (git clone; the npm package does not carry it)',
    );
  }
  if (existsSync(join(labDirectory, VM_STATE_FILE)) || existsSync(join(labDirectory, 'state.json'))) {
    throw new Error(
      `a lab named "${options.name}" is up already (${labDirectory}): 'tortie lab down --name ${options.name}' first`,
    );
  }
  const lifetime = env.VM_TIMEOUT === undefined ? DEFAULT_VM_LIFETIME_S : Number(env.VM_TIMEOUT);
  if (!Number.isInteger(lifetime) || lifetime < 60)
    throw new Error(
      `VM_TIMEOUT="${env.VM_TIMEOUT}": the VM's lifetime in whole seconds, at least 60 (default ${DEFAULT_VM_LIFETIME_S})`,
    );
  ensureEtcd(io);
  const share = join(labDirectory, 'vm');
  const paths = sharePaths(share);
  mkdirSync(paths.requests, { recursive: true });
  mkdirSync(paths.responses, { recursive: true });
  writeFileSync(paths.progress, '');
  const consoleLog = join(labDirectory, 'vm-console.log');
  const root = resolve(dirname(runner), '..', '..');
  const command = [process.execPath, cli, 'lab', 'vm-guest', '--share', share, ...labArgs(options)]
    .map(shellQuote)
    .join(' ');
  const fd = openSync(consoleLog, 'a');
  let pid: number;
  try {
    pid = startDetached(runner, ['-C', root, '-e', 'TORTIE_LAB_SLOWDOWN', '-e', 'TORTIE_LOG_LEVEL', command], {
      logFd: fd,
      env: {
        ...env,
        VM_RW: share,
        VM_TIMEOUT: String(lifetime),
        VM_MEM: env.VM_MEM ?? String(Math.max(2048, 1024 + 256 * options.nodes * (1 + options.workloadsPerNode / 4))),
        TORTIE_LAB_SLOWDOWN: env.TORTIE_LAB_SLOWDOWN ?? String(VM_SLOWDOWN),
      },
    });
  } finally {
    closeSync(fd);
  }
  const state: VmLabState = {
    kind: 'vm',
    name: options.name,
    options,
    pid,
    marker: share,
    share,
    console: consoleLog,
    startedAt: new Date().toISOString(),
    lifetimeS: lifetime,
  };
  writeMessage(join(labDirectory, VM_STATE_FILE), state);
  io.progress(`VM starting (scripts/vm/run, pid ${pid}; console: ${consoleLog}); the lab inside reports below`);

  // Follow progress.log until up.json appears or the VM ends; bounded by the VM's own lifetime.
  let shown = 0;
  const deadline = Date.now() + lifetime * 1000;
  for (;;) {
    shown = showNewLines(paths.progress, shown, io);
    const up = readMessage<VmUpResult>(paths.up);
    if (up !== null) return up;
    if (!vmRunning(state)) {
      showNewLines(paths.progress, shown, io);
      return {
        ok: false,
        exitCode: 1,
        output: `the VM ended before the lab was up; its console:\n${tail(consoleLog, 30)}`,
      };
    }
    if (Date.now() > deadline)
      return { ok: false, exitCode: 1, output: `the lab was not up within the VM's lifetime (${lifetime} s)` };
    await sleep(300);
  }
}

/** The VM runs this machine's etcd: install it here when missing (inside, there is no network to do it). */
function ensureEtcd(io: VmUpIo): void {
  if (existsSync('/usr/bin/etcd')) return;
  io.progress("etcd is not installed: installing the Debian package etcd-server (the VM runs this machine's)");
  const fail = (why: string): Error => new Error(`could not install etcd-server: ${why}`);
  const result = runCommandSync({
    command: 'apt-get',
    args: ['install', '-y', '--no-install-recommends', 'etcd-server'],
    timeoutMs: 600_000,
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    makeError: fail,
  });
  if (result.code !== 0 || !existsSync('/usr/bin/etcd'))
    throw fail(result.stderr.trim().split('\n').slice(-3).join(' '));
}

function showNewLines(path: string, from: number, io: VmUpIo): number {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return from;
  }
  const end = text.lastIndexOf('\n') + 1;
  if (end <= from) return from;
  for (const line of text.slice(from, end).split('\n').slice(0, -1)) io.progress(line);
  return end;
}

function tail(path: string, lines: number): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return `(no console log at ${path})`;
  }
}

function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@,+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Asks the lab in the VM; resolves with what it answered, or an explanation when it does not answer in time. */
export async function askVm(state: VmLabState, command: VmRequestCommand, timeoutMs = 300_000): Promise<VmResponse> {
  if (!vmRunning(state))
    return {
      id: '',
      exitCode: 1,
      output: `the VM of lab "${state.name}" is not running (it stops after ${state.lifetimeS} s; console: ${state.console}); 'tortie lab down --name ${state.name}' cleans up\n`,
    };
  const id = `${Date.now()}-${process.pid}-${Math.floor(Math.random() * 1e6)}`;
  const paths = sharePaths(state.share);
  writeMessage(join(paths.requests, `${id}.json`), { id, command } satisfies VmRequest);
  const answer = join(paths.responses, `${id}.json`);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const response = readMessage<VmResponse>(answer);
    if (response !== null) {
      rmSync(answer, { force: true });
      return response;
    }
    if (!vmRunning(state)) break;
    await sleep(200);
  }
  rmSync(join(paths.requests, `${id}.json`), { force: true });
  return {
    id,
    exitCode: 1,
    output: `the lab in the VM did not answer "${command}" within ${Math.round(timeoutMs / 1000)} s${vmRunning(state) ? '' : ' (the VM has ended)'}\n`,
  };
}

/** Takes the lab in the VM down, stops the VM (its process group) if it does not end by itself, removes the lab directory. */
export async function labDownInVm(
  state: VmLabState,
  labDirectory: string,
  io: VmUpIo,
  timing: { answerMs?: number; powerOffMs?: number } = {},
): Promise<void> {
  if (vmRunning(state)) {
    const answer = await askVm(state, 'down', timing.answerMs ?? 120_000);
    io.progress(answer.output.trimEnd());
    const until = Date.now() + (timing.powerOffMs ?? 30_000);
    while (vmRunning(state) && Date.now() < until) await sleep(200);
  }
  if (vmRunning(state)) {
    io.progress(`the VM (pid ${state.pid}) did not power off: stopping it`);
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      try {
        process.kill(-state.pid, signal); // its process group: the runner and QEMU
      } catch {
        break;
      }
      for (let i = 0; i < 50 && vmRunning(state); i++) await sleep(100);
      if (!vmRunning(state)) break;
    }
  }
  rmSync(labDirectory, { recursive: true, force: true });
  io.progress(`lab "${state.name}" (in a VM) removed`);
}

/** How old the VM is, for `status`. */
export function vmAge(state: VmLabState, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - Date.parse(state.startedAt)) / 1000));
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

// ---- the guest side ----------------------------------------------------------------------------------------------

export interface GuestHandlers {
  up(progress: (line: string) => void): Promise<VmUpResult>;
  handle(command: VmRequestCommand): Promise<{ output: string; exitCode: number }>;
}

/**
 * Inside the VM: brings the lab up (progress into the share), then answers requests until `down`.
 * Returns when the lab is down (the VM then powers off), or at once when `up` failed.
 */
export async function serveGuest(
  share: string,
  handlers: GuestHandlers,
  options: { pollMs?: number } = {},
): Promise<number> {
  const paths = sharePaths(share);
  const progress = (line: string): void => {
    writeFileSync(paths.progress, `${line}\n`, { flag: 'a' });
  };
  const up = await handlers.up(progress);
  writeMessage(paths.up, up);
  if (!up.ok) return up.exitCode;
  const pollMs = options.pollMs ?? 300;
  for (;;) {
    for (const file of pendingRequests(share)) {
      const path = join(paths.requests, file);
      let text = '';
      try {
        if (statSync(path).size > 4096) throw new Error('too big');
        text = readFileSync(path, 'utf8');
      } catch {
        // vanished or not a request: dropped below
      }
      rmSync(path, { force: true });
      const request = parseRequest(text);
      if (request === null) continue;
      let answer: { output: string; exitCode: number };
      try {
        answer = await handlers.handle(request.command);
      } catch (error) {
        answer = { output: `${(error as Error).message}\n`, exitCode: 1 };
      }
      writeMessage(join(paths.responses, `${request.id}.json`), { id: request.id, ...answer } satisfies VmResponse);
      if (request.command === 'down') return 0;
    }
    await sleep(pollMs);
  }
}
