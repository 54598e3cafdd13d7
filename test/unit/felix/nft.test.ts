// felix/nft.ts parsing, without nft: nft's stderr turned into problems naming the script line (the shapes
// nft 1.0.6 prints, copied from real runs), the missing-table message told apart from other failures, and
// `nft -j` output checked for its `nftables` array. A fake `nft` (a shell script) checks argv and stdin.

import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Nft,
  NftError,
  describeProblem,
  isNoSuchTable,
  parseMonitorLine,
  parseNftErrors,
  parseNftJson,
} from '../../../felix/nft.js';

const SCRIPT = [
  'table ip t {',
  ' chain c { type nat hook postrouting priority 100; }',
  '}',
  'add rule ip t c bogus thing',
  'add rule ip t nochain accept',
].join('\n');

describe('parseNftErrors', () => {
  const cases: Array<{
    name: string;
    stderr: string;
    want: Array<{ line: number | null; column: number | null; message: string; text: string }>;
  }> = [
    {
      name: 'a located parse error, with the echoed line and caret line skipped',
      stderr:
        '/dev/stdin:4:17-21: Error: No symbol type information\nadd rule ip t c bogus thing\n                ^^^^^\n',
      want: [{ line: 4, column: 17, message: 'No symbol type information', text: 'add rule ip t c bogus thing' }],
    },
    {
      name: 'a single-column location (no "-end")',
      stderr: '/dev/stdin:3:1: Error: syntax error, unexpected end of file\n}\n^\n',
      want: [{ line: 3, column: 1, message: 'syntax error, unexpected end of file', text: '}' }],
    },
    {
      name: 'two errors in one run',
      stderr:
        '/dev/stdin:4:17-21: Error: No symbol type information\nadd rule ip t c bogus thing\n                ^^^^^\n' +
        '/dev/stdin:5:1-28: Error: Could not process rule: No such file or directory\nadd rule ip t nochain accept\n^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n',
      want: [
        { line: 4, column: 17, message: 'No symbol type information', text: 'add rule ip t c bogus thing' },
        {
          line: 5,
          column: 1,
          message: 'Could not process rule: No such file or directory',
          text: 'add rule ip t nochain accept',
        },
      ],
    },
    {
      name: 'an unlocated error',
      stderr: 'Error: Could not process rule: Operation not permitted\n',
      want: [{ line: null, column: null, message: 'Could not process rule: Operation not permitted', text: '' }],
    },
    {
      name: 'stderr with no "Error:" is kept as one unlocated problem',
      stderr: 'Cannot open network namespace "nope": No such file or directory\n',
      want: [
        {
          line: null,
          column: null,
          message: 'Cannot open network namespace "nope": No such file or directory',
          text: '',
        },
      ],
    },
    {
      name: 'a line number past the script gives empty text, not a crash',
      stderr: '/dev/stdin:99:1-1: Error: syntax error\n',
      want: [{ line: 99, column: 1, message: 'syntax error', text: '' }],
    },
    { name: 'empty stderr: no problems', stderr: '', want: [] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      expect(parseNftErrors(c.stderr, SCRIPT)).toEqual(c.want);
    });
  }

  it('describes a located problem by number, text and message', () => {
    const [p] = parseNftErrors('/dev/stdin:4:17-21: Error: No symbol type information\n', SCRIPT);
    expect(p).toBeDefined();
    expect(describeProblem(p!)).toBe('line 4: add rule ip t c bogus thing: No symbol type information');
  });
});

describe('isNoSuchTable', () => {
  it('recognises the missing-table message (old and newer nft spellings)', () => {
    expect(isNoSuchTable('Error: No such file or directory\nlist table ip t\n              ^\n')).toBe(true);
    expect(isNoSuchTable("Error: No such file or directory; did you mean table 'x' in family ip?\n")).toBe(true);
  });
  it('does not mistake other failures for it', () => {
    expect(isNoSuchTable('Cannot open network namespace "x": No such file or directory\n')).toBe(false);
    expect(isNoSuchTable('Error: Operation not permitted\n')).toBe(false);
    expect(isNoSuchTable('')).toBe(false);
  });
});

describe('parseNftJson', () => {
  it('returns the nftables array as printed', () => {
    const out =
      '{"nftables": [{"metainfo": {"json_schema_version": 1}}, {"table": {"family": "ip", "name": "t", "handle": 1}}]}';
    expect(parseNftJson(out)).toEqual([
      { metainfo: { json_schema_version: 1 } },
      { table: { family: 'ip', name: 't', handle: 1 } },
    ]);
  });
  it('refuses text that is not JSON, or JSON without the array', () => {
    expect(() => parseNftJson('table ip t {')).toThrow(NftError);
    expect(() => parseNftJson('{"other": []}')).toThrow(/without an "nftables" array/);
    expect(() => parseNftJson('null')).toThrow(/without an "nftables" array/);
  });
});

describe('Nft with a fake nft binary', () => {
  let dir = '';
  let fake = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tortie-nft-unit-'));
    fake = join(dir, 'nft');
    // argv goes to $dir/argv, stdin to $dir/stdin; the behaviour is chosen by the first argument.
    await writeFile(
      fake,
      [
        '#!/bin/sh',
        `echo "$@" > ${dir}/argv`,
        `cat > ${dir}/stdin`,
        'case "$1 $3 $5" in',
        '  "-f  ") if grep -q bogus ' +
          `${dir}/stdin; then echo "/dev/stdin:2:1-5: Error: syntax error" >&2; exit 1; fi; exit 0;;`,
        '  "-j table missing") echo "Error: No such file or directory" >&2; exit 1;;',
        '  "-j table broken") echo "Error: Operation not permitted" >&2; exit 1;;',
        '  "-j table t") echo \'{"nftables": [{"table": {"family": "ip", "name": "t"}}]}\'; exit 0;;',
        'esac',
        'exit 3',
      ].join('\n'),
    );
    await chmod(fake, 0o755);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('apply: resolves on exit 0, rejects naming the failing script line', async () => {
    const nft = new Nft({ nftPath: fake });
    await expect(nft.apply('table ip t {}\n')).resolves.toBeUndefined();
    const err = await nft.apply('table ip t {}\nbogus\n').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NftError);
    expect((err as NftError).lines).toEqual(['line 2: bogus: syntax error']);
    expect((err as NftError).message).toMatch(/nothing applied: line 2: bogus: syntax error/);
  });

  it('listTable: the array, null for a missing table, NftError for other failures', async () => {
    const nft = new Nft({ nftPath: fake });
    expect(await nft.listTable('ip', 't')).toEqual([{ table: { family: 'ip', name: 't' } }]);
    expect(await nft.listTable('ip', 'missing')).toBeNull();
    await expect(nft.listTable('ip', 'broken')).rejects.toThrow(/Operation not permitted/);
  });

  it('listTable refuses a family or a name nft would not take, naming what is accepted', async () => {
    const nft = new Nft({ nftPath: fake });
    await expect(nft.listTable('ip6' as 'ip', 't')).rejects.toThrow(/"ip6".*accepted: ip, inet/);
    await expect(nft.listTable('ip', 'a b')).rejects.toThrow(/"a b" is not an nft identifier/);
  });

  it('a missing binary is an NftError naming it', async () => {
    const nft = new Nft({ nftPath: join(dir, 'no-such-nft') });
    await expect(nft.apply('')).rejects.toThrow(/cannot run ".*no-such-nft"/);
  });

  it('a hung nft is killed after timeoutMs', async () => {
    const hang = join(dir, 'hang');
    await writeFile(hang, '#!/bin/sh\nexec sleep 30\n');
    await chmod(hang, 0o755);
    const nft = new Nft({ nftPath: hang, timeoutMs: 200 });
    await expect(nft.apply('')).rejects.toThrow(/took longer than 200 ms and was killed/);
  });
});

describe('parseMonitorLine', () => {
  // Lines as `nft -j monitor` (1.0.6) printed them here.
  const cases: Array<{
    line: string;
    want: { action: string; kind: string; family: string | null; table: string | null } | null;
  }> = [
    {
      line: '{"add": {"table": {"family": "ip", "name": "tortie-nat", "handle": 1}}}',
      want: { action: 'add', kind: 'table', family: 'ip', table: 'tortie-nat' },
    },
    {
      line: '{"delete": {"rule": {"family": "ip", "table": "tortie-nat", "chain": "postrouting", "handle": 4, "expr": [{"masquerade": null}]}}}',
      want: { action: 'delete', kind: 'rule', family: 'ip', table: 'tortie-nat' },
    },
    {
      line: '{"add": {"element": {"family": "inet", "table": "tortie-filter", "name": "s", "elem": {"set": ["10.9.9.9"]}}}}',
      want: { action: 'add', kind: 'element', family: 'inet', table: 'tortie-filter' },
    },
    {
      line: '{"delete": {"set": {"family": "ip", "name": "nat-pools", "table": "tortie-nat", "type": "invalid", "handle": 2}}}',
      want: { action: 'delete', kind: 'set', family: 'ip', table: 'tortie-nat' },
    },
    {
      line: 'W: Received event for an unknown set.',
      want: { action: 'unknown', kind: 'unknown', family: null, table: null },
    },
    { line: '{"add": 3}', want: { action: 'add', kind: 'unknown', family: null, table: null } },
    { line: '   ', want: null },
  ];
  for (const c of cases) {
    it(c.line || '(blank)', () => {
      const got = parseMonitorLine(c.line);
      if (c.want === null) expect(got).toBeNull();
      else expect(got).toEqual({ ...c.want, raw: c.line.trim() });
    });
  }
});
