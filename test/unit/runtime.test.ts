// The runtime and the install, checked so that they cannot rot:
// - the tests run on the Node that scripts/test.sh installed (TORTIE_EXPECT_NODE_MAJOR, set there);
// - one Node release everywhere: scripts/node-runtime.sh (tests, lab), the Dockerfile's base image,
//   package.json's engines and @types/node;
// - `npm ci` accepts the committed package-lock.json: every optional package the lockfile's packages name
//   (rollup's @rollup/rollup-<os>-<cpu>, esbuild's @esbuild/<os>-<cpu>) has its own entry, and npm itself
//   agrees (`npm ci --dry-run`, offline, in a copy holding only package.json and package-lock.json).

import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDockerfile, ROOT } from '../harness/manifests.js';

interface LockEntry {
  version?: string;
  optional?: boolean;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}
interface Lockfile {
  lockfileVersion: number;
  packages: Record<string, LockEntry>;
}

const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  engines: { node: string };
  devDependencies: Record<string, string>;
};
const LOCK = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as Lockfile;
const RUNTIME_SCRIPT = readFileSync(join(ROOT, 'scripts/node-runtime.sh'), 'utf8');
const NODE_VERSION = /^NODE_VERSION=(\d+\.\d+\.\d+)$/m.exec(RUNTIME_SCRIPT)?.[1] ?? '(none in scripts/node-runtime.sh)';
const NODE_MAJOR = NODE_VERSION.split('.')[0]!;

/** Where Node's resolution finds `name` for the package installed at `from` (a lockfile key), or undefined. */
function resolveInLock(lock: Lockfile, from: string, name: string): string | undefined {
  let dir = from;
  for (;;) {
    const candidate = `${dir === '' ? '' : `${dir}/`}node_modules/${name}`;
    if (lock.packages[candidate]) return candidate;
    if (dir === '') return undefined;
    const up = dir.lastIndexOf('/node_modules/');
    dir = up < 0 ? '' : dir.slice(0, up);
  }
}

/** `dependent -> name@range` for each optional dependency named in the lockfile that has no entry of its own. */
function missingOptionals(lock: Lockfile): string[] {
  const out: string[] = [];
  for (const [key, entry] of Object.entries(lock.packages)) {
    for (const [name, range] of Object.entries(entry.optionalDependencies ?? {})) {
      if (!resolveInLock(lock, key, name)) out.push(`${key || '(root)'} -> ${name}@${range}`);
    }
  }
  return out;
}

describe('the Node.js runtime', () => {
  it.skipIf(!process.env.TORTIE_EXPECT_NODE_MAJOR)(
    `the tests run on Node ${process.env.TORTIE_EXPECT_NODE_MAJOR ?? '(TORTIE_EXPECT_NODE_MAJOR unset)'}`,
    () => {
      expect(
        process.versions.node.split('.')[0],
        `process.execPath ${process.execPath} is Node ${process.versions.node}`,
      ).toBe(process.env.TORTIE_EXPECT_NODE_MAJOR);
      // Child processes the tests start as `node` (the CNI plugin's #!/usr/bin/env node) find the same one.
      const child = spawnSync('node', ['-p', 'process.versions.node'], { encoding: 'utf8' });
      expect(child.stdout.trim().split('.')[0]).toBe(process.env.TORTIE_EXPECT_NODE_MAJOR);
    },
  );

  it(`one release everywhere: scripts/node-runtime.sh ${NODE_VERSION}, the Dockerfile's base, engines, @types/node`, () => {
    expect(NODE_VERSION).toMatch(/^24\.\d+\.\d+$/);
    const dockerfile = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
    const image = dockerfile
      .find((i) => i.op === 'ARG' && i.text.startsWith('NODE_IMAGE='))
      ?.text.slice('NODE_IMAGE='.length);
    expect(image).toMatch(
      new RegExp(`^node:${NODE_VERSION.replaceAll('.', '\\.')}-[a-z]+-slim(@sha256:[0-9a-f]{64})?$`),
    );
    expect(PKG.engines.node).toBe(`>=${NODE_MAJOR}`);
    expect(PKG.devDependencies['@types/node']).toMatch(new RegExp(`^\\^${NODE_MAJOR}\\.`));
    expect(LOCK.packages['node_modules/@types/node']?.version).toMatch(new RegExp(`^${NODE_MAJOR}\\.`));
  });
});

describe('package-lock.json', () => {
  it('names a version for each package, and carries every platform’s optional packages', () => {
    expect(LOCK.lockfileVersion).toBe(3);
    const keys = Object.keys(LOCK.packages).filter((k) => k !== '');
    expect(keys.length).toBeGreaterThan(100);
    // The packages that made `npm ci` refuse the lockfile before: rollup's per-platform builds.
    expect(keys.filter((k) => k.startsWith('node_modules/@rollup/rollup-')).length).toBeGreaterThan(10);
    expect(missingOptionals(LOCK)).toEqual([]);
  });

  it('a lockfile without them is caught (the check above can fail)', () => {
    const broken: Lockfile = structuredClone(LOCK);
    delete broken.packages['node_modules/@rollup/rollup-win32-x64-msvc'];
    expect(missingOptionals(broken)).toEqual([
      expect.stringMatching(/^node_modules\/rollup -> @rollup\/rollup-win32-x64-msvc@/),
    ]);
  });

  it('npm ci --dry-run accepts it with package.json, offline', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tortie-npm-ci-'));
    try {
      copyFileSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
      copyFileSync(join(ROOT, 'package-lock.json'), join(dir, 'package-lock.json'));
      // An empty cache and --offline: the check reads the two files only, so it passes or fails the same anywhere.
      const run = spawnSync(
        'npm',
        ['ci', '--dry-run', '--ignore-scripts', '--offline', '--no-audit', '--no-fund', '--cache', join(dir, 'cache')],
        { cwd: dir, encoding: 'utf8', timeout: 60_000 },
      );
      expect(run.error).toBeUndefined();
      expect(run.status, `npm ci --dry-run:\n${run.stderr}`).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
