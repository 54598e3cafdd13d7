// src/lab/vm.ts without a VM: the messages through the shared directory, the guest's request loop with
// the host's askVm against it, the options handed to the guest (they must parse back to the same lab),
// and `down` on a VM that no longer answers or is gone. A `sh -c 'sleep'` process carrying the marker
// in its command line stands in for the runner (scripts/vm/run) where a live "VM" is needed.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseLabOptions } from '../../../src/cli/lab-command.js';
import { LAB_DEFAULTS, type LabOptions } from '../../../src/lab/plan.js';
import {
  askVm,
  findVmRunner,
  labArgs,
  labDownInVm,
  parseRequest,
  readMessage,
  serveGuest,
  sharePaths,
  vmRunning,
  writeMessage,
  type VmLabState,
} from '../../../src/lab/vm.js';

const dirs: string[] = [];
const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0))
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempLab(): { dir: string; share: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tortie-vm-unit-'));
  dirs.push(dir);
  const share = join(dir, 'vm');
  mkdirSync(sharePaths(share).requests, { recursive: true });
  mkdirSync(sharePaths(share).responses, { recursive: true });
  return { dir, share };
}

/** A process group whose leader's command line holds `marker`, like the runner's holds the share path. */
function fakeVm(marker: string): ChildProcess {
  const child = spawn('sh', ['-c', 'sleep 60', marker], { detached: true, stdio: 'ignore' });
  children.push(child);
  return child;
}

function vmState(share: string, pid: number): VmLabState {
  return {
    kind: 'vm',
    name: 'tlab',
    options: LAB_DEFAULTS,
    pid,
    marker: share,
    share,
    console: '/nonexistent',
    startedAt: new Date().toISOString(),
    lifetimeS: 3600,
  };
}

describe('labArgs', () => {
  it.each<Partial<LabOptions>>([
    {},
    { name: 'x1', nodes: 4, subnets: 2, ipipMode: 'CrossSubnet' },
    { mode: 'rr', officeRouter: 'bird', workloadsPerNode: 3, ipipMode: 'Always' },
    { nodes: 4, subnets: 2, vxlanMode: 'CrossSubnet', backend: 'vxlan' },
  ])('parses back to the same lab inside the VM: %o', (change) => {
    const options = { ...LAB_DEFAULTS, ...change };
    expect(parseLabOptions(labArgs(options))).toEqual(options);
  });
});

describe('messages', () => {
  it('writeMessage leaves the whole message under its name and no temporary file', () => {
    const { share } = tempLab();
    const path = join(share, 'up.json');
    writeMessage(path, { ok: true, output: 'x'.repeat(100_000), exitCode: 0 });
    expect(readMessage<{ output: string }>(path)?.output).toHaveLength(100_000);
    expect(readdirSync(share).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(readMessage(join(share, 'missing.json'))).toBeNull();
  });

  it('parseRequest takes status, ping and down with a plain id, and nothing else', () => {
    expect(parseRequest('{"id":"1700000000000-42-7","command":"status"}')).toEqual({
      id: '1700000000000-42-7',
      command: 'status',
    });
    for (const bad of [
      '',
      'nope',
      '{"id":"1","command":"rm -rf /"}',
      '{"id":"../x","command":"ping"}',
      '{"command":"down"}',
      '[]',
    ]) {
      expect(parseRequest(bad), bad).toBeNull();
    }
  });

  it('findVmRunner finds scripts/vm/run of this checkout', () => {
    expect(findVmRunner()).toMatch(/scripts\/vm\/run$/);
    expect(findVmRunner('/nonexistent/a/b/c.js')).toBeNull();
  });
});

describe('the guest loop and askVm', () => {
  it('up, then status and ping answered in order, then down ends the loop', async () => {
    const { share } = tempLab();
    const vm = fakeVm(share);
    const state = vmState(share, vm.pid!);
    const handled: string[] = [];
    const guest = serveGuest(
      share,
      {
        up: async (progress) => {
          progress('[  1.0 s] etcd on 127.0.0.1:1234');
          return { ok: true, output: 'status\n', exitCode: 0 };
        },
        handle: async (command) => {
          handled.push(command);
          return { output: `${command} done\n`, exitCode: command === 'ping' ? 1 : 0 };
        },
      },
      { pollMs: 20 },
    );
    expect(vmRunning(state)).toBe(true);
    expect(await askVm(state, 'status', 5000)).toMatchObject({ output: 'status done\n', exitCode: 0 });
    expect(await askVm(state, 'ping', 5000)).toMatchObject({ output: 'ping done\n', exitCode: 1 });
    expect(await askVm(state, 'down', 5000)).toMatchObject({ output: 'down done\n', exitCode: 0 });
    expect(await guest).toBe(0);
    expect(handled).toEqual(['status', 'ping', 'down']);
    expect(readMessage(sharePaths(share).up)).toEqual({ ok: true, output: 'status\n', exitCode: 0 });
    expect(readdirSync(sharePaths(share).requests)).toEqual([]);
    expect(readdirSync(sharePaths(share).responses)).toEqual([]);
  });

  it('a request that is not one is dropped without an answer; the loop goes on', async () => {
    const { share } = tempLab();
    const vm = fakeVm(share);
    const guest = serveGuest(
      share,
      { up: async () => ({ ok: true, output: '', exitCode: 0 }), handle: async (c) => ({ output: c, exitCode: 0 }) },
      { pollMs: 20 },
    );
    writeFileSync(join(sharePaths(share).requests, '1-bad.json'), '{"id":"1-bad","command":"reboot"}');
    expect(await askVm(vmState(share, vm.pid!), 'down', 5000)).toMatchObject({ output: 'down', exitCode: 0 });
    expect(await guest).toBe(0);
    expect(readdirSync(sharePaths(share).responses)).toEqual([]);
  });

  it('when up fails the guest says so in up.json and serves nothing', async () => {
    const { share } = tempLab();
    const code = await serveGuest(share, {
      up: async () => ({ ok: false, output: 'lab up failed: no etcd\n', exitCode: 1 }),
      handle: async () => ({ output: '', exitCode: 0 }),
    });
    expect(code).toBe(1);
    expect(readMessage(sharePaths(share).up)).toMatchObject({ ok: false, output: 'lab up failed: no etcd\n' });
  });

  it('askVm on a VM that is not running answers at once, naming the lab and how to clean up', async () => {
    const { share } = tempLab();
    const answer = await askVm(vmState(share, 999_999_999), 'status', 5000);
    expect(answer.exitCode).toBe(1);
    expect(answer.output).toMatch(/the VM of lab "tlab" is not running .*tortie lab down --name tlab/);
  });

  it('a PID that runs something else (no marker in its command line) is not taken for the VM', () => {
    const { share } = tempLab();
    expect(vmRunning(vmState(share, process.pid))).toBe(false);
  });
});

describe('labDownInVm', () => {
  it('a VM that does not answer is stopped (its whole process group) and the lab directory removed', async () => {
    const { dir, share } = tempLab();
    const vm = fakeVm(share);
    const state = vmState(share, vm.pid!);
    const lines: string[] = [];
    await labDownInVm(state, dir, { progress: (l) => lines.push(l) }, { answerMs: 300, powerOffMs: 100 });
    expect(vmRunning(state)).toBe(false);
    expect(existsSync(dir)).toBe(false);
    expect(lines.join('\n')).toMatch(/did not answer "down"[\s\S]*did not power off: stopping it[\s\S]*removed/);
  });

  it('a VM that is gone already: the directory is removed, nothing is signalled; twice is fine', async () => {
    const { dir, share } = tempLab();
    const state = vmState(share, 999_999_999);
    await labDownInVm(state, dir, { progress: () => undefined });
    await labDownInVm(state, dir, { progress: () => undefined });
    expect(existsSync(dir)).toBe(false);
  });
});
