// Where each real BGP daemon lives on this machine, and what a test does when one is missing.
//
// In CI (env CI=true) a missing binary fails the test file with a message naming it; elsewhere the test
// is skipped loudly (console.warn) so a developer without BIRD still sees why nothing ran.

import { join } from 'node:path';
import { findProgram } from '../../felix/programs.js';

export type PeerKind = 'bird1' | 'bird2' | 'frr' | 'gobgp' | 'exabgp';

export const PEER_KINDS: readonly PeerKind[] = ['bird1', 'bird2', 'frr', 'gobgp', 'exabgp'];

function bird2Root(): string {
  return process.env.TORTIE_BIRD2_ROOT ?? '/opt/tortie/bird2';
}

/** The programs each peer kind needs: the daemon and its CLI. Absolute paths or names looked up on PATH. */
export const PEER_BINARIES: Readonly<Record<PeerKind, { daemon: () => string; cli: () => string; package: string }>> = {
  bird1: { daemon: () => '/usr/sbin/bird', cli: () => '/usr/sbin/birdc', package: 'bird (1.6)' },
  bird2: {
    daemon: () => join(bird2Root(), 'usr/sbin/bird'),
    cli: () => join(bird2Root(), 'usr/sbin/birdc'),
    package: 'bird2 (unpacked in $TORTIE_BIRD2_ROOT, default /opt/tortie/bird2)',
  },
  frr: { daemon: () => '/usr/lib/frr/bgpd', cli: () => 'vtysh', package: 'frr' },
  gobgp: { daemon: () => 'gobgpd', cli: () => 'gobgp', package: 'gobgpd' },
  exabgp: { daemon: () => 'exabgp', cli: () => 'exabgp', package: 'exabgp' },
};

/** The absolute path of `name` (absolute already, or found on PATH), or null (felix/programs.ts's lookup). */
export function findBinary(name: string): string | null {
  return findProgram(name);
}

/** Like findBinary but throws an error naming the program and the install script. */
export function binaryPath(name: string): string {
  const path = findBinary(name);
  if (path === null) throw new Error(`program "${name}" is not installed (run scripts/install-deps.sh as root)`);
  return path;
}

/**
 * True when `name` is installed. When it is not: in CI (CI=true) throws, failing the test file; otherwise
 * warns naming the program and returns false so the caller can skip (`describe.skipIf(!requireBinary(x))`).
 */
export function requireBinary(name: string, neededFor = 'this test'): boolean {
  if (findBinary(name) !== null) return true;
  const message = `${neededFor} needs "${name}", which is not installed; run scripts/install-deps.sh as root`;
  if (process.env.CI === 'true') throw new Error(`${message} (CI=true: a missing binary is a failure, not a skip)`);
  console.warn(`SKIPPING: ${message}`);
  return false;
}

/** requireBinary for the daemon and CLI of every listed peer kind. */
export function requirePeers(...kinds: PeerKind[]): boolean {
  let ok = true;
  for (const kind of kinds) {
    const entry = PEER_BINARIES[kind];
    const neededFor = `a ${kind} peer (package ${entry.package})`;
    ok = requireBinary(entry.daemon(), neededFor) && ok;
    if (entry.cli() !== entry.daemon()) ok = requireBinary(entry.cli(), neededFor) && ok;
  }
  return ok;
}
