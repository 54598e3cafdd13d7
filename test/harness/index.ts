// The test harness in one import: start real BGP daemons on 127.x addresses and talk to them through one
// interface (PeerDaemon). See README.md in this folder for the choices behind each daemon's config.

import type { PeerKind } from './binaries.js';
import { startBird } from './bird.js';
import { startExabgp } from './exabgp.js';
import { startFrr } from './frr.js';
import { startGobgp } from './gobgp.js';
import type { PeerDaemon, PeerOptions } from './peer.js';

export * from './addresses.js';
export * from './binaries.js';
export * from './peer.js';
export { stopAll, stopChild, waitFor, pidAlive, runningPids, makeTempDir } from './process.js';

/** How to start each kind of peer. */
const STARTERS: Readonly<Record<PeerKind, (options: PeerOptions) => Promise<PeerDaemon>>> = {
  bird1: (o) => startBird('bird1', o),
  bird2: (o) => startBird('bird2', o),
  frr: startFrr,
  gobgp: startGobgp,
  exabgp: startExabgp,
};

/** Starts a daemon of `kind` and resolves once its control interface answers. */
export function startPeer(kind: PeerKind, options: PeerOptions): Promise<PeerDaemon> {
  const starter = STARTERS[kind];
  if (!starter) throw new Error(`peer kind "${String(kind)}" is not one of ${Object.keys(STARTERS).join(', ')}`);
  return starter(options);
}
