// Every external program the code and the tests start is installed by scripts/install-deps.sh (or comes
// with Debian's base system). The README's two commands run on a fresh machine only if that holds: a
// program installed by hand once (`ping` was one) keeps a developer's machine and CI green while a new
// user's lab prints a matrix of FAILs.
//
// How: the sources are scanned for the ways this project starts programs — spawn/execFile (and their Sync
// forms) with a literal program, `ip netns exec NS prog`, `nsenter --net=... prog`, the argv arrays felix
// and the CNI plugin build, a harness's `ns.exec('prog', ...)`, `startProcess({ command: ... })` — plus the
// programs the harness names by path (the BGP daemons, etcd). Each found program must be in tortie's table
// (felix/programs.ts) or the tests' table below, and its package in install-deps.sh's `want` list.

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  PROGRAMS,
  findProgram,
  missingProgramInStderr,
  missingProgramMessage,
  missingPrograms,
} from '../../felix/programs.js';
import { PEER_BINARIES, PEER_KINDS } from '../harness/binaries.js';
import { ETCD_BINARY } from '../harness/etcd.js';

const ROOT = join(import.meta.dirname, '..', '..');

/** Programs only the tests (and the VM runner's host side) start, with the package of each. */
const TEST_PROGRAMS: Readonly<Record<string, { debian: string; base?: boolean; script?: string }>> = {
  tcpdump: { debian: 'tcpdump' },
  ss: { debian: 'iproute2' },
  openssl: { debian: 'openssl' },
  python3: { debian: 'python3-minimal' },
  pgrep: { debian: 'procps' },
  gobgpd: { debian: 'gobgpd' },
  gobgp: { debian: 'gobgpd' },
  exabgp: { debian: 'exabgp' },
  // BIRD 1.6 is the `bird` package; BIRD 2 is unpacked beside it (both are named `bird`/`birdc`).
  // tortie's own Node (scripts/node-runtime.sh installs it from the npm registry, not Debian).
  node: { debian: 'none: the npm registry’s node-linux-<cpu>', script: 'scripts/node-runtime.sh' },
  npm: { debian: 'none: comes with that Node', script: 'scripts/node-runtime.sh' },
  uname: { debian: 'coreutils', base: true },
  cat: { debian: 'coreutils', base: true },
  env: { debian: 'coreutils', base: true },
  yes: { debian: 'coreutils', base: true },
  timeout: { debian: 'coreutils', base: true },
};

/** Packages scripts/install-deps.sh installs: its `want=(...)` list, and bird2 which it unpacks. */
function installedByScript(): Set<string> {
  const script = readFileSync(join(ROOT, 'scripts', 'install-deps.sh'), 'utf8');
  const want = /^want=\(([^)]*)\)/m.exec(script);
  if (!want) throw new Error('scripts/install-deps.sh has no want=(...) list');
  const packages = new Set(want[1]!.split(/\s+/).filter((p) => p !== ''));
  if (/apt-get download -qq bird2/.test(script) && /dpkg-deb -x/.test(script)) packages.add('bird2');
  return packages;
}

/** A program a script of the project installs itself (tortie's Node: scripts/node-runtime.sh), when that script is there. */
function installedByOwnScript(entry: { script?: string }): boolean {
  return entry.script !== undefined && existsSync(join(ROOT, entry.script));
}

/** `bird2 (unpacked ...)` → `bird2`. */
function packageName(debian: string): string {
  return debian.split(' ')[0]!;
}

const SCANNED = ['src', 'felix', 'ipip', 'bgp', 'test'];

function* sourceFiles(dir: string): Generator<string> {
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) {
      if (entry !== 'node_modules' && entry !== 'fixtures') yield* sourceFiles(path);
    } else if (entry.endsWith('.ts')) {
      yield path;
    }
  }
}

// The ways a program is started here, each capturing the program as a literal.
const STARTS: readonly RegExp[] = [
  /\b(?:spawn|spawnSync|execFile|execFileSync)\(\s*'([^'\s]+)'/g, // spawn('ping', ...)
  /\.exec\(\s*'([^'\s]+)'/g, // ns.exec('nft', ...) (the netns harness)
  /'netns',\s*'exec',\s*[^,\]()]+,\s*'([^'\s]+)'/g, // ip netns exec NS ping
  /'--net=[^']*',\s*'([^'\s]+)'/g, // nsenter --net=X ip
  /`--net=\$\{[^}]+\}`,\s*'([^'\s]+)'/g, // nsenter `--net=${x}` ip
  /\[\s*'([^'\s]+)',\s*`--net=/g, // ['nsenter', `--net=...`
  /\[\s*'([^'\s]+)',\s*\.\.\.args\s*\]/g, // ['ip', ...args]
  /\[\s*'([^'\s]+)',\s*\[\s*'-c'/g, // ['sh', ['-c', script]]
  /\?\?\s*'([^'\s]+)',\s*\[/g, // [options.ipPath ?? 'ip', [...]]
  /\bcommand:\s*'([^'\s]+)'/g, // startProcess({ command: 'exabgp' }), runCommand({ command: 'ip' })
  /\b(?:run|must)\(\s*'([^'\s]+)'/g, // the lab's own run()/must()
];

/** A literal that names a program: lowercase words or a path (not a CNI verb like ADD or a CLI subcommand). */
const PROGRAM_WORD = /^(?:\/[\w./+-]+|[a-z][a-z0-9._+-]*)$/;

/** Subcommands and names that the `run(`/`command:` patterns also see and that are not programs. */
const NOT_PROGRAMS = new Set([
  'status',
  'stop',
  'routes',
  'apply',
  'create',
  'delete',
  'replace',
  'get',
  'write',
  'delete-named',
]);

function scanPrograms(): Map<string, Set<string>> {
  const found = new Map<string, Set<string>>();
  const note = (program: string, file: string): void => {
    const name = basename(program);
    if (!found.has(name)) found.set(name, new Set());
    found.get(name)!.add(file.slice(ROOT.length + 1));
  };
  for (const top of SCANNED) {
    for (const file of sourceFiles(join(ROOT, top))) {
      if (file.endsWith('programs.test.ts')) continue;
      const text = readFileSync(file, 'utf8');
      for (const pattern of STARTS) {
        for (const match of text.matchAll(pattern)) {
          const program = match[1]!;
          if (PROGRAM_WORD.test(program) && !NOT_PROGRAMS.has(program)) note(program, file);
        }
      }
    }
  }
  // Programs the harness names by path, through its tables.
  for (const kind of PEER_KINDS) {
    note(PEER_BINARIES[kind].daemon(), 'test/harness/binaries.ts');
    note(PEER_BINARIES[kind].cli(), 'test/harness/binaries.ts');
  }
  note(ETCD_BINARY, 'test/harness/etcd.ts');
  return found;
}

function entryOf(program: string): { debian: string; base?: boolean; script?: string } | undefined {
  if (Object.hasOwn(PROGRAMS, program)) return PROGRAMS[program];
  if (Object.hasOwn(TEST_PROGRAMS, program)) return TEST_PROGRAMS[program];
  return undefined;
}

describe('every program the code and the tests start is installed by scripts/install-deps.sh', () => {
  const found = scanPrograms();
  const installed = installedByScript();

  it('the scan finds the programs it must (a scan that finds nothing checks nothing)', () => {
    expect(found.size).toBeGreaterThanOrEqual(20);
    for (const program of [
      'ip',
      'nft',
      'sysctl',
      'ping',
      'sh',
      'nsenter',
      'etcd',
      'bird',
      'bgpd',
      'vtysh',
      'gobgpd',
      'exabgp',
      'openssl',
      'python3',
    ]) {
      expect(found.has(program), `the scan should find "${program}"`).toBe(true);
    }
  });

  it('each found program is in felix/programs.ts or this test’s table, with its Debian package', () => {
    const unknown = [...found]
      .filter(([program]) => entryOf(program) === undefined)
      .map(([program, files]) => `${program} (started in ${[...files].join(', ')})`);
    expect(
      unknown,
      'add each to felix/programs.ts (tortie runs it) or TEST_PROGRAMS here (only tests do), and its package to scripts/install-deps.sh',
    ).toEqual([]);
  });

  it('the package of each found program is in install-deps.sh’s want list, or is Debian base system', () => {
    const notInstalled = [...found]
      .map(([program]) => [program, entryOf(program)] as const)
      .filter(
        ([, entry]) =>
          entry !== undefined &&
          entry.base !== true &&
          !installedByOwnScript(entry) &&
          !installed.has(packageName(entry.debian)),
      )
      .map(([program, entry]) => `${program} (Debian: ${entry!.debian})`);
    expect(notInstalled, 'scripts/install-deps.sh must install these').toEqual([]);
  });

  it('the check fails when a package leaves install-deps.sh (iputils-ping, as on the fresh machine that found this)', () => {
    const without = new Set([...installed].filter((p) => p !== 'iputils-ping'));
    const notInstalled = [...found].filter(([program]) => {
      const entry = entryOf(program);
      return (
        entry !== undefined &&
        entry.base !== true &&
        !installedByOwnScript(entry) &&
        !without.has(packageName(entry.debian))
      );
    });
    expect(notInstalled.map(([program]) => program)).toEqual(['ping']);
  });
});

describe('a missing program is named with its package', () => {
  it('missingProgramMessage names the Debian package', () => {
    expect(missingProgramMessage('ping')).toBe('ping is not installed (Debian: iputils-ping)');
    expect(missingProgramMessage('/usr/lib/frr/bgpd')).toBe('bgpd is not installed at /usr/lib/frr/bgpd (Debian: frr)');
    expect(missingProgramMessage('no-such-tool')).toBe('no-such-tool is not installed');
  });

  it('missingPrograms looks each up on the PATH given', () => {
    expect(missingPrograms(['ping', 'ip'], '/nonexistent')).toEqual([
      'ping is not installed (Debian: iputils-ping)',
      'ip is not installed (Debian: iproute2)',
    ]);
    expect(findProgram('sh', '/nonexistent:/bin:/usr/bin')).not.toBeNull();
  });

  it('reads what `ip netns exec` and nsenter print for a missing program', () => {
    expect(missingProgramInStderr('exec of "ping" failed: No such file or directory\n')).toBe(
      'ping is not installed (Debian: iputils-ping)',
    );
    expect(missingProgramInStderr('nsenter: failed to execute sysctl: No such file or directory\n')).toBe(
      'sysctl is not installed (Debian: procps)',
    );
    expect(missingProgramInStderr('RTNETLINK answers: File exists\n')).toBeNull();
  });
});
