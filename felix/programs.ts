// The external programs tortie runs, and the Debian package that provides each: one table, so a missing
// program is reported by name with what to install ("ping is not installed (Debian: iputils-ping)") wherever
// it is run — felix's `ip`/`nft`/`sh`, the CNI plugin's `nsenter`/`sysctl`, the lab's routers and `ping` —
// and so a unit test (test/unit/programs.test.ts) can hold scripts/install-deps.sh to installing every one.
//
// Why this is hard: a program started through `ip netns exec NS prog` (or `nsenter ... prog`) fails inside the
// child — `ip` exits 255 with `exec of "prog" failed` — which looks exactly like the command's own failure
// (a ping that got no answer). So callers that run a program that way look it up on PATH first
// (`findProgram`), and say that it is missing, rather than reading the exit status as the answer.

import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface ProgramEntry {
  /** The Debian package that installs it. */
  readonly debian: string;
  /**
   * True for packages of Debian's base system (Priority required/important: present on every Debian machine
   * and in the node image), which scripts/install-deps.sh need not install.
   */
  readonly base?: boolean;
}

/**
 * Every program tortie itself (the agent, felix, the CNI plugin, the lab) runs, by the name it runs it as.
 * A program the code runs by absolute path is listed by its file name (`/usr/lib/frr/bgpd` → `bgpd`).
 */
export const PROGRAMS: Readonly<Record<string, ProgramEntry>> = {
  ip: { debian: 'iproute2' },
  bridge: { debian: 'iproute2' },
  nft: { debian: 'nftables' },
  sysctl: { debian: 'procps' },
  ping: { debian: 'iputils-ping' },
  etcd: { debian: 'etcd-server' },
  bird: { debian: 'bird2 (unpacked by scripts/install-deps.sh into /opt/tortie/bird2)' },
  birdc: { debian: 'bird2 (unpacked by scripts/install-deps.sh into /opt/tortie/bird2)' },
  bgpd: { debian: 'frr' },
  zebra: { debian: 'frr' },
  vtysh: { debian: 'frr' },
  nsenter: { debian: 'util-linux', base: true },
  sh: { debian: 'dash', base: true },
  sleep: { debian: 'coreutils', base: true },
  chown: { debian: 'coreutils', base: true },
  'apt-get': { debian: 'apt', base: true },
};

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The absolute path of `name` (a path already, or looked up on `path`, default $PATH), or null when missing. */
export function findProgram(
  name: string,
  path: string = process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
): string | null {
  if (name.includes('/')) return executable(name) ? name : null;
  for (const dir of path.split(delimiter)) {
    if (dir !== '' && executable(join(dir, name))) return join(dir, name);
  }
  return null;
}

/** `ping is not installed (Debian: iputils-ping)`; a program not in the table is named alone. */
export function missingProgramMessage(program: string): string {
  const name = program.slice(program.lastIndexOf('/') + 1);
  const entry = Object.hasOwn(PROGRAMS, name) ? PROGRAMS[name] : undefined;
  const where = program.includes('/') ? ` at ${program}` : '';
  return entry === undefined
    ? `${name} is not installed${where}`
    : `${name} is not installed${where} (Debian: ${entry.debian})`;
}

/** The message for each of `programs` that cannot be found, in order; empty when all are there. */
export function missingPrograms(programs: readonly string[], path?: string): string[] {
  return [...new Set(programs)].filter((p) => findProgram(p, path) === null).map((p) => missingProgramMessage(p));
}

/** True for a spawn failure that means the program itself is not there (ENOENT from spawn/execFile). */
export function isMissingProgramError(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as NodeJS.ErrnoException).code === 'ENOENT';
}

// What a launcher prints when the program it was to start is missing: `ip netns exec` (`exec of "ping"
// failed: No such file or directory`, exit 255) and util-linux's `nsenter` (`nsenter: failed to execute
// ping: No such file or directory`, exit 127).
const LAUNCHER_MISSING = [
  /exec of "([^"]+)" failed: No such file or directory/,
  /nsenter: failed to execute (\S+): No such file or directory/,
];

/** When `stderr` says a launcher could not find the program it was to start: that program's message, else null. */
export function missingProgramInStderr(stderr: string): string | null {
  for (const pattern of LAUNCHER_MISSING) {
    const match = pattern.exec(stderr);
    if (match) return missingProgramMessage(match[1]!);
  }
  return null;
}
