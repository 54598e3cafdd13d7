// A crashed BIRD or FRR brought back the way a router that kept its forwarding state comes back after a
// graceful restart (RFC 4724): with the F bit ("forwarding state preserved") in its Graceful Restart
// capability. `PeerDaemon.restart()` starts the daemon as a fresh router instead, and both BIRD and FRR
// then send the capability with no F bit, so a correct helper drops the stale routes at once (RFC 4724
// §4.2) and a "routes kept through the restart" test cannot pass against them.
//
//   BIRD 1.6 / 2: the same command line plus `-R` ("apply graceful restart recovery after start");
//   FRR 8.4:      the same command line, config plus ` bgp graceful-restart preserve-fw-state`.
//
// Why this lives beside the harness and not in it: it reuses the files the harness wrote into the
// daemon's dir (bird.conf + bird.ctl + bird.pid; bgpd.conf + bgpd.vty + bgpd.pid) and must follow
// bird.ts / frr.ts if they rename them. The daemon runs from the same dir, so `routes()`, `sessions()`
// and `cli()` of the PeerDaemon keep working; `pid()` does not know it. Stop the returned process before
// `peer.stop()` (stopAll() also kills it). `dropRoutes` takes announced prefixes out of the restarted
// daemon's config, so a test can show that what a peer no longer announces goes at End-of-RIB.

import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PEER_BINARIES } from './binaries.js';
import { unixSocketAnswers } from './daemon.js';
import type { PeerDaemon } from './peer.js';
import { startProcess, waitFor, WaitAborted, type ManagedProcess } from './process.js';

export interface RecoveryOptions {
  /** Announced prefixes ("10.26.4.0/26") the restarted daemon no longer originates. */
  readonly dropRoutes?: readonly string[];
}

interface RecoveryLaunch {
  readonly configFile: string;
  /** The config the harness wrote, changed for the recovery start. */
  readonly editConfig: (config: string, dropRoutes: readonly string[]) => string;
  readonly staleFiles: readonly string[];
  readonly args: (dir: string, configPath: string, address: string) => string[];
  readonly ready: (peer: PeerDaemon) => Promise<boolean>;
}

const dropLines = (config: string, dropRoutes: readonly string[], line: (prefix: string) => string): string => {
  let out = config;
  for (const prefix of dropRoutes) {
    if (!out.includes(line(prefix)))
      throw new Error(`recovery: "${line(prefix).trim()}" is not in the daemon's config (announced: ${prefix}?)`);
    out = out.split(line(prefix)).join('');
  }
  return out;
};

const birdLaunch: RecoveryLaunch = {
  configFile: 'bird.conf',
  editConfig: (config, drop) => dropLines(config, drop, (prefix) => `  route ${prefix} blackhole;\n`),
  staleFiles: ['bird.ctl', 'bird.pid'],
  args: (dir, configPath) => ['-f', '-c', configPath, '-s', join(dir, 'bird.ctl'), '-P', join(dir, 'bird.pid'), '-R'],
  ready: (peer) => unixSocketAnswers(join(peer.dir, 'bird.ctl'), '0001 '),
};

/** How each kind comes back with its forwarding state. GoBGP and ExaBGP are not covered. */
const LAUNCHES: Readonly<Partial<Record<PeerDaemon['kind'], RecoveryLaunch>>> = {
  bird1: birdLaunch,
  bird2: birdLaunch,
  frr: {
    configFile: 'bgpd.conf',
    editConfig: (config, drop) => {
      if (!config.includes(' bgp graceful-restart\n'))
        throw new Error('recovery: the FRR config has no "bgp graceful-restart" (start the peer with gracefulRestart)');
      const withF = config.replace(
        ' bgp graceful-restart\n',
        ' bgp graceful-restart\n bgp graceful-restart preserve-fw-state\n',
      );
      return dropLines(withF, drop, (prefix) => `  network ${prefix}\n`);
    },
    staleFiles: ['bgpd.pid', 'bgpd.vty'],
    args: (dir, configPath, address) => [
      '-Z',
      '-S',
      '-l',
      address,
      '-p',
      '179',
      '-f',
      configPath,
      '-i',
      join(dir, 'bgpd.pid'),
      '--vty_socket',
      dir,
      '-P',
      '0',
    ],
    ready: async (peer) =>
      (await unixSocketAnswers(join(peer.dir, 'bgpd.vty'))) &&
      (await peer.cli('show bgp summary json').catch(() => '')).includes('"as":'),
  },
};

/**
 * Starts `peer` (already stopped by kill9()) again as a graceful restart with forwarding state kept, and
 * resolves once its control socket answers. The caller stops the returned process.
 */
export async function restartPreservingForwarding(
  peer: PeerDaemon,
  options: RecoveryOptions = {},
): Promise<ManagedProcess> {
  const launch = LAUNCHES[peer.kind];
  if (!launch)
    throw new Error(
      `recovery: peer kind "${peer.kind}" is not supported (accepted: ${Object.keys(LAUNCHES).join(', ')})`,
    );
  if (peer.pid() !== undefined)
    throw new Error(`recovery: ${peer.kind} ${peer.address} is still running (PID ${peer.pid()}); kill9() it first`);
  const written = readFileSync(join(peer.dir, launch.configFile), 'utf8');
  const configPath = join(peer.dir, `recovery-${launch.configFile}`);
  writeFileSync(configPath, launch.editConfig(written, options.dropRoutes ?? []));
  for (const file of launch.staleFiles) rmSync(join(peer.dir, file), { force: true });
  const command = PEER_BINARIES[peer.kind].daemon();
  const proc = startProcess({
    name: `${peer.kind}-recovery`,
    command,
    args: launch.args(peer.dir, configPath, peer.address),
    dir: peer.dir,
  });
  try {
    await waitFor(
      async () => {
        if (!proc.isRunning())
          throw new WaitAborted(`${peer.kind} (recovery start) exited: ${proc.log().slice(-1500)}`);
        return launch.ready(peer);
      },
      {
        timeoutMs: 15_000,
        intervalMs: 20,
        what: `${peer.kind} ${peer.address} (recovery start) to answer on its control socket`,
      },
    );
  } catch (err) {
    await proc.stop(1000).catch(() => undefined);
    throw err;
  }
  return proc;
}
