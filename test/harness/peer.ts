// One interface over five real BGP daemons (BIRD 1.6, BIRD 2, FRR bgpd, GoBGP, ExaBGP), so an interop
// test reads the same whichever peer it runs against:
//
//   const peer = await startPeer('frr', { address: block.host(2), as: 65001, routerId: '10.0.0.2',
//     neighbors: [{ address: block.host(1), as: 64512 }] });
//   await waitForSession(peer, block.host(1));
//   await peer.announce('10.9.0.0/24', '198.18.0.9');
//   const route = await waitForRoute(other, '10.9.0.0/24');
//
// Each daemon's config is generated into a temp dir from the options plus the routes announced so far,
// so restart() comes back with the same config and routes. routes() and sessions() parse the daemon's
// own CLI (JSON where it has one). Why this is hard: five CLIs, five ways to spell "Established", and
// next-hop rules differ (see README.md): announce next hops in 198.18.0.0/15, never 127.x.

import { execFile } from 'node:child_process';
import type { PeerKind } from './binaries.js';
import { waitFor } from './process.js';

export type { PeerKind } from './binaries.js';

export interface NeighborOptions {
  readonly address: string;
  readonly as: number;
  /** TCP port the neighbor listens on (default 179). */
  readonly port?: number;
  /** Never connect, only accept. */
  readonly passive?: boolean;
  /** Treat this neighbor as a route-reflector client (RFC 4456). */
  readonly rrClient?: boolean;
  /** Hold time to offer, seconds (0 or 3..65535). */
  readonly holdTime?: number;
  readonly gracefulRestart?: boolean | { readonly restartTime: number };
  /** eBGP multihop (BIRD always uses multihop for 127.x neighbors; this makes it explicit elsewhere). */
  readonly multihop?: boolean;
  /** TCP-MD5 password (RFC 2385) for this session (BIRD `password`, FRR `neighbor X password`). */
  readonly password?: string;
  /** GTSM (RFC 5082): the neighbor at most this many hops away (BIRD `ttl security on; multihop N`). */
  readonly ttlSecurity?: number;
}

export interface PeerOptions {
  readonly address: string;
  readonly as: number;
  /** BGP identifier; defaults to the address (a 127.x identifier is legal). */
  readonly routerId?: string;
  /** Port this daemon listens on (default 179). */
  readonly port?: number;
  readonly neighbors: readonly NeighborOptions[];
  /** Route-reflector cluster id; set it with rrClient neighbors to act as a reflector. */
  readonly clusterId?: string;
  /** Run the daemon in this network namespace (`ip netns exec`; BIRD only). Its control socket is a file, so the CLI works from here. */
  readonly netns?: string;
  /** Default graceful restart for every neighbor (a neighbor's own setting wins). */
  readonly gracefulRestart?: boolean | { readonly restartTime: number };
  /** Routes originated from the start. */
  readonly announce?: readonly AnnouncedRoute[];
  /** Keep config and logs here instead of a temp dir that stop() removes. */
  readonly logDir?: string;
  /** BIRD only: filter statements run on every exported route (e.g. `bgp_large_community.add((65002, 1, 2));`). */
  readonly birdExportStatements?: readonly string[];
}

export interface AnnouncedRoute {
  readonly prefix: string;
  readonly nextHop: string;
}

/** One path in the daemon's RIB, as its CLI shows it. Only BGP-learned paths, not the daemon's own. */
export interface PeerRoute {
  readonly prefix: string;
  readonly nextHop: string;
  readonly asPath: number[];
  readonly origin?: 'igp' | 'egp' | 'incomplete';
  readonly originatorId?: string;
  readonly clusterList?: string[];
  readonly localPref?: number;
  readonly med?: number;
  /** "65000:100" form. */
  readonly communities?: string[];
  /** RFC 8092, "65000:1:2" form (BIRD only). */
  readonly largeCommunities?: string[];
  readonly best: boolean;
  /** The neighbor address the path came from. */
  readonly fromPeer?: string;
}

export type SessionState = 'Idle' | 'Connect' | 'Active' | 'OpenSent' | 'OpenConfirm' | 'Established';

export interface PeerSessionInfo {
  readonly neighbor: string;
  readonly state: SessionState;
  readonly lastError?: string;
}

export interface PeerDaemon {
  readonly kind: PeerKind;
  readonly address: string;
  readonly as: number;
  readonly routerId: string;
  /** Where config, sockets and logs are. */
  readonly dir: string;
  /** PID of the running daemon, undefined while stopped. */
  pid(): number | undefined;
  routes(): Promise<PeerRoute[]>;
  sessions(): Promise<PeerSessionInfo[]>;
  announce(prefix: string, nextHop: string): Promise<void>;
  withdraw(prefix: string): Promise<void>;
  /** Raw CLI output (birdc / vtysh / gobgp / a summary of what ExaBGP received). */
  cli(command: string): Promise<string>;
  /** The daemon's log so far. */
  log(): string;
  /** Graceful stop (SIGTERM, then SIGKILL after a bound); removes the temp dir unless logDir was given. */
  stop(): Promise<void>;
  /** SIGKILL: a crash. Keeps the dir so restart() works. */
  kill9(): Promise<void>;
  /** Stops (if running) and starts again with the same config and announced routes; waits for ready. */
  restart(): Promise<void>;
  /** Milliseconds from spawn to the control socket answering, for the last start. */
  readonly startupMs: number;
}

/** Runs a CLI program with a bounded time; rejects with its stderr when it fails. */
export function runCli(command: string, args: readonly string[], timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, [...args], { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        reject(
          new Error(
            `${command} ${args.join(' ')} failed: ${err.message.trim()} ${String(stderr).trim()} ${String(stdout).trim()}`.trim(),
          ),
        );
      } else {
        resolve(String(stdout));
      }
    });
  });
}

/** Waits until the session to `neighbor` is in `state` (default Established). */
export async function waitForSession(
  peer: PeerDaemon,
  neighbor: string,
  state: SessionState = 'Established',
  timeoutMs = 20_000,
): Promise<PeerSessionInfo> {
  let last: PeerSessionInfo | undefined;
  try {
    return await waitFor(
      async () => {
        last = (await peer.sessions()).find((s) => s.neighbor === neighbor);
        return last?.state === state ? last : undefined;
      },
      { timeoutMs, intervalMs: 100, what: `${peer.kind} ${peer.address} session to ${neighbor} ${state}` },
    );
  } catch (err) {
    throw new Error(
      `${(err as Error).message}; session now: ${JSON.stringify(last)}; daemon log tail:\n${peer.log().slice(-1500)}`,
    );
  }
}

/** Waits until `prefix` is in the peer's routes (and `match` holds for one path, if given). */
export async function waitForRoute(
  peer: PeerDaemon,
  prefix: string,
  match: (route: PeerRoute) => boolean = () => true,
  timeoutMs = 15_000,
): Promise<PeerRoute> {
  return waitFor(async () => (await peer.routes()).find((r) => r.prefix === prefix && match(r)), {
    timeoutMs,
    intervalMs: 100,
    what: `${prefix} in the routes of ${peer.kind} ${peer.address}`,
  });
}

/** Waits until no path for `prefix` is left in the peer's routes. */
export async function waitForNoRoute(peer: PeerDaemon, prefix: string, timeoutMs = 15_000): Promise<void> {
  await waitFor(async () => !(await peer.routes()).some((r) => r.prefix === prefix), {
    timeoutMs,
    intervalMs: 100,
    what: `${prefix} to leave the routes of ${peer.kind} ${peer.address}`,
  });
}

/** Graceful-restart setting for one neighbor: its own, else the daemon default. */
export function gracefulRestartOf(peer: PeerOptions, neighbor: NeighborOptions): { restartTime: number } | undefined {
  const setting = neighbor.gracefulRestart ?? peer.gracefulRestart;
  if (setting === undefined || setting === false) return undefined;
  return setting === true ? { restartTime: 120 } : setting;
}

export const ORIGIN_NAMES = ['igp', 'egp', 'incomplete'] as const;
