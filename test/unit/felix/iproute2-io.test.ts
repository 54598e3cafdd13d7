// Iproute2Kernel's process I/O, with a fake `ip` (a shell script given as ipPath; no root, no kernel):
// the full read is one `ip -batch` (route save, then link show) whose output arrives whole through the
// unlinked scratch file, and through a pipe when no scratch file can be made (TMPDIR not writable); no file
// is left behind; a batch written in chunks reaches `ip` as exactly the lines, deletions first, and a failing
// line is still named by its number; readThenWrite reads and then writes through one process (the read
// whole once the fence line fails on stderr, the lines after it numbered from the batch's own first line).
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { batchText, Iproute2Kernel, routeCommand } from '../../../felix/iproute2.js';
import { KernelError, type KernelBatch, type KernelRoute } from '../../../felix/kernel.js';
import { waitFor } from '../../harness/wait.js';
import { routeDump, routeMessage } from './route-dump-bytes.js';
import { withTmpdir } from '../helpers/tmpdir.js';

let dir = '';
let ipPath = '';

const ROUTES = 3000;
const dstOf = (i: number): string => `10.${64 + (i >> 10)}.${(i >> 2) & 255}.${(i & 3) * 64}`;

/** `n` routes as `ip route save` writes them, via eth0 (interface index 3). */
function routesDump(n: number): Buffer {
  return routeDump(
    Array.from({ length: n }, (_, i) =>
      routeMessage({ dstLen: 26, dst: dstOf(i), gateway: '198.18.61.2', oif: 3, protocol: 80, flags: 0x4 }),
    ),
  );
}

/** What the read must give for them (written out here, not through the decoder). */
function expectedRoutes(n: number): KernelRoute[] {
  return Array.from({ length: n }, (_, i) => ({
    type: 'unicast',
    dst: `${dstOf(i)}/26`,
    protocol: '80',
    scope: 'global',
    flags: ['onlink'],
    gateway: '198.18.61.2',
    dev: 'eth0',
  }));
}

function batch(del: number, add: number): KernelBatch {
  const route = (i: number): KernelRoute => ({
    type: 'blackhole',
    dst: `10.${64 + (i >> 10)}.${(i >> 2) & 255}.${(i & 3) * 64}/26`,
    protocol: '80',
    scope: 'global',
    flags: [],
  });
  return {
    del: Array.from({ length: del }, (_, i) => route(i)),
    add: Array.from({ length: add }, (_, i) => route(del + i)),
  };
}

function expectedLines(b: KernelBatch): string[] {
  return [...b.del.map((r) => routeCommand('del', r)), ...b.add.map((r) => routeCommand('replace', r))];
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tortie-fake-ip-'));
  ipPath = join(dir, 'ip');
  // `-batch`: saves its pid and stdin, notes whether its stdout is a regular file, runs its stdin line by line, as
  // ip does: `route save table main` prints the dump and route save's own `[]`, `link show` the links, a
  // route line is appended to batch.txt (failing when it contains BAD; when it contains ABORT ip stops there
  // with exit 1 and no "Command failed" line, as iproute2 does on an address it cannot parse), anything else
  // is an unknown object.
  // `-n gone`: the namespace does not exist. `link show` alone answers from a file.
  writeFileSync(
    ipPath,
    [
      '#!/bin/sh',
      `D='${dir}'`,
      'if [ "$1" = "-n" ] && [ "$2" = "gone" ]; then echo \'Cannot open network namespace "gone": No such file or directory\' >&2; exit 1; fi',
      'for a in "$@"; do',
      '  case "$a" in',
      '    -batch) echo $$ > "$D/batch.pid"; : > "$D/batch.txt"; : > "$D/stdin.txt"; n=0; rc=0',
      '      if [ -f /dev/stdout ]; then echo file > "$D/stdout-kind"; else echo pipe > "$D/stdout-kind"; fi',
      '      while IFS= read -r line; do',
      '        n=$((n+1)); printf "%s\\n" "$line" >> "$D/stdin.txt"',
      '        case "$line" in',
      '          "route save table main") cat "$D/routes.bin"; printf "[]\\n" ;;',
      '          "link show") cat "$D/links.json"; printf "\\n" ;;',
      '          route\\ *ABORT*) echo "Error: inet address is expected rather than \\"fe80::1\\"." >&2; exit 1 ;;',
      '          route\\ *) printf "%s\\n" "$line" >> "$D/batch.txt"',
      '            case "$line" in *BAD*) echo "Error: bad route" >&2; echo "Command failed -:$n" >&2; rc=1 ;; esac ;;',
      '          *) echo "Object \\"${line%% *}\\" is unknown, try \\"ip help\\"." >&2; echo "Command failed -:$n" >&2; rc=1 ;;',
      '        esac',
      '      done',
      '      exit $rc ;;',
      '    link) cat "$D/links.json"; exit 0 ;;',
      '  esac',
      'done',
      'echo "fake ip: unexpected arguments: $*" >&2; exit 2',
      '',
    ].join('\n'),
  );
  chmodSync(ipPath, 0o755);
  // The same ip, except that an unknown object passes without a word (the fence never shows).
  writeFileSync(join(dir, 'ip-nofence'), readFileSync(ipPath, 'utf8').replace(/\*\) echo "Object[^\n]*/, '*) ;;'));
  chmodSync(join(dir, 'ip-nofence'), 0o755);
  writeFileSync(join(dir, 'routes.bin'), routesDump(ROUTES));
  writeFileSync(
    join(dir, 'links.json'),
    JSON.stringify([
      { ifindex: 1, ifname: 'lo' },
      { ifindex: 3, ifname: 'eth0' },
    ]),
  );
});

afterAll(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

describe('Iproute2Kernel reads', () => {
  it('the full read: one ip, its output whole through the scratch file, and no file is left behind', async () => {
    const scratch = mkdtempSync(join(dir, 'tmp-'));
    const snapshot = await withTmpdir(scratch, () => new Iproute2Kernel({ ipPath, netns: 'x' }).readAll());
    expect(snapshot.routes).toHaveLength(ROUTES);
    expect(snapshot.routes).toEqual(expectedRoutes(ROUTES));
    expect(snapshot.links).toEqual(['lo', 'eth0']);
    expect(readFileSync(join(dir, 'stdin.txt'), 'utf8')).toBe('route save table main\nlink show\n');
    expect(readFileSync(join(dir, 'stdout-kind'), 'utf8').trim()).toBe('file');
    expect(readdirSync(scratch)).toEqual([]);
  });

  it('falls back to a pipe when no scratch file can be made', async () => {
    const kernel = new Iproute2Kernel({ ipPath });
    const routes = await withTmpdir(join(dir, 'does-not-exist'), () => kernel.listRoutes());
    expect(routes).toEqual(expectedRoutes(ROUTES));
    expect(readFileSync(join(dir, 'stdout-kind'), 'utf8').trim()).toBe('pipe');
    expect(await withTmpdir(join(dir, 'does-not-exist'), () => kernel.listLinks())).toEqual(['lo', 'eth0']);
  });

  it('an ip that cannot be run is a KernelError saying so, and leaves no scratch file', async () => {
    const scratch = mkdtempSync(join(dir, 'tmp-'));
    const kernel = new Iproute2Kernel({ ipPath: join(dir, 'links.json') }); // not executable
    const error = await withTmpdir(scratch, () => kernel.listRoutes()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KernelError);
    expect((error as Error).message).toMatch(/cannot run ".*links\.json"/);
    expect(readdirSync(scratch)).toEqual([]);
  });
});

describe('Iproute2Kernel.readThenWrite: one process reads, then writes', () => {
  it('the read whole (through the scratch file), then exactly the lines of the batch', async () => {
    const scratch = mkdtempSync(join(dir, 'tmp-'));
    const kernel = new Iproute2Kernel({ ipPath, netns: 'x' });
    await withTmpdir(scratch, async () => {
      const session = kernel.readThenWrite();
      const snapshot = await session.read;
      expect(snapshot.routes).toEqual(expectedRoutes(ROUTES));
      expect(snapshot.links).toEqual(['lo', 'eth0']);
      expect(readFileSync(join(dir, 'stdout-kind'), 'utf8').trim()).toBe('file');
      const b = batch(2, 500);
      await session.write(b);
      expect(readFileSync(join(dir, 'batch.txt'), 'utf8')).toBe(`${expectedLines(b).join('\n')}\n`);
      expect(readFileSync(join(dir, 'stdin.txt'), 'utf8')).toBe(
        `route save table main\nlink show\ntortie-read-done\n${expectedLines(b).join('\n')}\ntortie-batch-done\n`,
      );
    });
    expect(readdirSync(scratch)).toEqual([]);
  });

  it("a failing line is named by its number in the batch (the read's lines before it do not count)", async () => {
    const session = new Iproute2Kernel({ ipPath }).readThenWrite();
    await session.read;
    const b = batch(1, 10);
    const bad = { ...(b.add[4] as KernelRoute), dev: 'BAD0' };
    b.add[4] = bad;
    const error = await session.write(b).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KernelError);
    expect((error as KernelError).lines).toEqual([
      { command: routeCommand('replace', bad), error: 'Error: bad route' },
    ]);
    expect((error as KernelError).message).toMatch(/^ip -batch: 1 of 11 route commands failed/);
  });

  it('an ip that stops part-way (exit 1, no "Command failed" line: a line it cannot parse) is an error, not success', async () => {
    const session = new Iproute2Kernel({ ipPath, netns: 'x' }).readThenWrite();
    await session.read;
    const b = batch(2, 10);
    const bad = { ...(b.add[3] as KernelRoute), dev: 'ABORT0' };
    b.add[3] = bad;
    const error = await session.write(b).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KernelError);
    expect((error as Error).message).toMatch(
      /^ip -batch stopped before the end of its 12 route commands in netns x \(its end-of-batch line, 13, never ran; exit 1\): Error: inet address is expected rather than "fe80::1"/,
    );
    expect(readFileSync(join(dir, 'batch.txt'), 'utf8')).toBe(`${expectedLines(b).slice(0, 5).join('\n')}\n`);
  });

  it('a failing line and then a stop: both said', async () => {
    const session = new Iproute2Kernel({ ipPath }).readThenWrite();
    await session.read;
    const b = batch(0, 10);
    b.add[1] = { ...(b.add[1] as KernelRoute), dev: 'BAD0' };
    b.add[6] = { ...(b.add[6] as KernelRoute), dev: 'ABORT0' };
    const error = await session.write(b).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KernelError);
    expect((error as KernelError).lines).toEqual([
      { command: routeCommand('replace', b.add[1] as KernelRoute), error: 'Error: bad route' },
    ]);
    expect((error as Error).message).toMatch(
      /stopped before the end of its 10 route commands .*inet address is expected.*; before that 1 failed \(first: "route replace .*BAD0.*": Error: bad route\)/,
    );
  });

  it('an empty batch ends the process, having written nothing', async () => {
    const session = new Iproute2Kernel({ ipPath }).readThenWrite();
    await session.read;
    await session.write({ del: [], add: [] });
    expect(readFileSync(join(dir, 'batch.txt'), 'utf8')).toBe('');
  });

  it('an ip that ends before its read is whole: the read rejects with its stderr, and so does write', async () => {
    const session = new Iproute2Kernel({ ipPath, netns: 'gone' }).readThenWrite();
    await expect(session.read).rejects.toThrow(
      /reading the routes and links in netns gone: .* failed \(exit 1\): Cannot open network namespace "gone"/,
    );
    await expect(session.write({ del: [], add: [] })).rejects.toThrow(KernelError);
  });

  it('an ip that cannot be run: the read rejects saying so', async () => {
    const session = new Iproute2Kernel({ ipPath: join(dir, 'links.json') }).readThenWrite();
    await expect(session.read).rejects.toThrow(/cannot run ".*links\.json"/);
  });

  it('an ip whose fence never shows: the read runs out of time, and its later sessions use two processes', async () => {
    const nofence = join(dir, 'ip-nofence');
    expect(readFileSync(nofence, 'utf8')).not.toContain('Object');
    const first = new Iproute2Kernel({ ipPath: nofence, timeoutMs: 300 }).readThenWrite();
    await expect(first.read).rejects.toThrow(/took longer than 300 ms and was killed/);
    const session = new Iproute2Kernel({ ipPath: nofence, timeoutMs: 5_000 }).readThenWrite(); // a retry's new kernel
    expect((await session.read).routes).toHaveLength(ROUTES);
    const b = batch(0, 3);
    await session.write(b);
    expect(readFileSync(join(dir, 'batch.txt'), 'utf8')).toBe(`${expectedLines(b).join('\n')}\n`);
    expect(readFileSync(join(dir, 'stdin.txt'), 'utf8')).not.toContain('tortie-read-done');
  });

  it('close() ends a session still waiting for its batch', async () => {
    writeFileSync(join(dir, 'batch.pid'), '');
    const kernel = new Iproute2Kernel({ ipPath });
    const session = kernel.readThenWrite();
    await session.read;
    const pid = Number(readFileSync(join(dir, 'batch.pid'), 'utf8').trim() || 0);
    expect(pid).toBeGreaterThan(0);
    await kernel.close();
    await waitFor(() => !existsSync(`/proc/${pid}`) || readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z '), {
      what: `batch process ${pid} gone`,
      timeoutMs: 2_000,
      intervalMs: 20,
    });
  });
});

describe('Iproute2Kernel batches', () => {
  it('writes exactly the lines, deletions first, however they were chunked', async () => {
    const b = batch(10, 1990);
    await new Iproute2Kernel({ ipPath }).apply(b);
    expect(readFileSync(join(dir, 'batch.txt'), 'utf8')).toBe(`${expectedLines(b).join('\n')}\n`);
  });

  it('names a failing line by its number across chunks', async () => {
    const b = batch(0, 700);
    const bad = { ...(b.add[600] as KernelRoute), dev: 'BAD0' };
    b.add[600] = bad;
    const error = await new Iproute2Kernel({ ipPath }).apply(b).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KernelError);
    expect((error as KernelError).lines).toEqual([
      { command: routeCommand('replace', bad), error: 'Error: bad route' },
    ]);
  });

  it('a batch ip stops part-way is an error (its exit status says so)', async () => {
    const b = batch(0, 5);
    b.add[2] = { ...(b.add[2] as KernelRoute), dev: 'ABORT0' };
    await expect(new Iproute2Kernel({ ipPath }).apply(b)).rejects.toThrow(/inet address is expected/);
    expect(readFileSync(join(dir, 'batch.txt'), 'utf8')).toBe(`${expectedLines(b).slice(0, 2).join('\n')}\n`);
  });

  it('batchText: chunks of at most 256 lines whose concatenation is the batch; every line recorded', () => {
    for (const [del, add] of [
      [0, 1],
      [3, 253],
      [0, 256],
      [0, 257],
      [100, 1000],
    ] as const) {
      const b = batch(del, add);
      const lines: string[] = [];
      const chunks = [...batchText(b, lines)];
      expect(lines).toEqual(expectedLines(b));
      expect(chunks.join('')).toBe(`${lines.join('\n')}\n`);
      expect(chunks).toHaveLength(Math.ceil((del + add) / 256));
      for (const chunk of chunks) expect(chunk.split('\n').length - 1).toBeLessThanOrEqual(256);
    }
    expect([...batchText({ del: [], add: [] }, [])]).toEqual([]);
  });
});
