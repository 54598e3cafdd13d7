// Iproute2Kernel's process I/O, with a fake `ip` (a shell script given as ipPath; no root, no kernel):
// a read arrives whole through the unlinked scratch file, and through a pipe when no scratch file can be
// made (TMPDIR not writable); no file is left behind; a batch written in chunks reaches `ip` as exactly
// the lines, deletions first, and a failing line is still named by its number.
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { batchText, Iproute2Kernel, parseRouteJson, routeCommand } from '../../../felix/iproute2.js';
import { KernelError, type KernelBatch, type KernelRoute } from '../../../felix/kernel.js';

let dir = '';
let ipPath = '';

/** `n` kernel routes as `ip -json route` prints them. */
function routesJson(n: number): string {
  const routes = Array.from({ length: n }, (_, i) => ({ dst: `10.${64 + (i >> 10)}.${(i >> 2) & 255}.${(i & 3) * 64}/26`, gateway: '198.18.61.2', dev: 'eth0', protocol: '80', flags: ['onlink'] }));
  return JSON.stringify(routes);
}

function batch(del: number, add: number): KernelBatch {
  const route = (i: number): KernelRoute => ({ type: 'blackhole', dst: `10.${64 + (i >> 10)}.${(i >> 2) & 255}.${(i & 3) * 64}/26`, protocol: '80', scope: 'global', flags: [] });
  return { del: Array.from({ length: del }, (_, i) => route(i)), add: Array.from({ length: add }, (_, i) => route(del + i)) };
}

function expectedLines(b: KernelBatch): string[] {
  return [...b.del.map((r) => routeCommand('del', r)), ...b.add.map((r) => routeCommand('replace', r))];
}

async function withTmpdir<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const before = process.env.TMPDIR;
  process.env.TMPDIR = path;
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = before;
  }
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tortie-fake-ip-'));
  ipPath = join(dir, 'ip');
  // Answers `route show` (noting whether its stdout is a regular file or not) and `link show` from files;
  // `-batch` saves stdin and fails lines containing BAD.
  writeFileSync(
    ipPath,
    [
      '#!/bin/sh',
      `D='${dir}'`,
      'for a in "$@"; do',
      '  case "$a" in',
      '    -batch) cat > "$D/batch.txt"',
      '      n=$(grep -n BAD "$D/batch.txt" | head -1 | cut -d: -f1)',
      '      if [ -n "$n" ]; then echo "Error: bad route" >&2; echo "Command failed -:$n" >&2; exit 1; fi',
      '      exit 0 ;;',
      '    route) if [ -f /dev/stdout ]; then echo file > "$D/stdout-kind"; else echo pipe > "$D/stdout-kind"; fi',
      '      cat "$D/routes.json"; exit 0 ;;',
      '    link) cat "$D/links.json"; exit 0 ;;',
      '  esac',
      'done',
      'echo "fake ip: unexpected arguments: $*" >&2; exit 2',
      '',
    ].join('\n'),
  );
  chmodSync(ipPath, 0o755);
  writeFileSync(join(dir, 'routes.json'), routesJson(3000));
  writeFileSync(join(dir, 'links.json'), JSON.stringify([{ ifname: 'lo' }, { ifname: 'eth0' }]));
});

afterAll(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

describe('Iproute2Kernel reads', () => {
  it('a large route listing arrives whole through the scratch file, and no file is left behind', async () => {
    const scratch = mkdtempSync(join(dir, 'tmp-'));
    const routes = await withTmpdir(scratch, () => new Iproute2Kernel({ ipPath, netns: 'x' }).listRoutes());
    const want = parseRouteJson(readFileSync(join(dir, 'routes.json'), 'utf8'));
    expect(want.length).toBe(3000);
    expect(routes).toEqual(want);
    expect(readFileSync(join(dir, 'stdout-kind'), 'utf8').trim()).toBe('file');
    expect(readdirSync(scratch)).toEqual([]);
  });

  it('falls back to a pipe when no scratch file can be made', async () => {
    const kernel = new Iproute2Kernel({ ipPath });
    const routes = await withTmpdir(join(dir, 'does-not-exist'), () => kernel.listRoutes());
    expect(routes).toHaveLength(3000);
    expect(readFileSync(join(dir, 'stdout-kind'), 'utf8').trim()).toBe('pipe');
    expect(await withTmpdir(join(dir, 'does-not-exist'), () => kernel.listLinks())).toEqual(['lo', 'eth0']);
  });

  it('an ip that cannot be run is a KernelError saying so, and leaves no scratch file', async () => {
    const scratch = mkdtempSync(join(dir, 'tmp-'));
    const kernel = new Iproute2Kernel({ ipPath: join(dir, 'routes.json') }); // not executable
    await expect(withTmpdir(scratch, () => kernel.listRoutes())).rejects.toThrow(/cannot run/);
    expect(readdirSync(scratch)).toEqual([]);
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
    expect((error as KernelError).lines).toEqual([{ command: routeCommand('replace', bad), error: 'Error: bad route' }]);
  });

  it('batchText: chunks of at most 256 lines whose concatenation is the batch; every line recorded', () => {
    for (const [del, add] of [[0, 1], [3, 253], [0, 256], [0, 257], [100, 1000]] as const) {
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
