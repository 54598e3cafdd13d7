// The real daemons the routing benches measure tortie against, and how to ask each one "how many routes
// do you hold now?" cheaply enough to poll every ~25 ms.
//
// - `startBirdOrigin`: a BIRD 2 that holds N /26 blackhole statics in a *disabled* static protocol; the
//   clock starts when `enableRoutes()` turns it on (after the sessions are Established), so every receiver
//   is timed from the same event. `distinct` gives every route its own MED, so no two share an UPDATE.
//   (The harness's own BIRD config sets next hops with one filter line per prefix: fine for 10 routes,
//   quadratic at 100 000; this config sets one next hop for the whole protocol.)
// - `routeCounters`: one counting CLI command per daemon kind, parsed (BIRD `show route protocol X count`,
//   FRR `show bgp ipv4 unicast summary json` pfxRcd, GoBGP `global rib summary`).
// - `timeUntil`: polls a count until it reaches a target, bounded in time; the reported time is when the
//   answering CLI call returned, so a real daemon's figure includes up to one poll (interval + CLI run).
//
// Why this is hard: a CLI call costs 5–40 ms of CPU on a 2-CPU machine that the daemon also needs, so the
// poll must be sequential (never two in flight per daemon) and not too frequent.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { PEER_BINARIES } from '../harness/binaries.js';
import { parseBirdProtocols } from '../harness/bird.js';
import { DaemonHandle, daemonDir, unixSocketAnswers } from '../harness/daemon.js';
import { runCli, type PeerDaemon, type PeerKind, type PeerSessionInfo } from '../harness/peer.js';
import { waitFor } from '../harness/process.js';

export const BENCH_AS = 64512;
/** Next hop announced for every benchmark route (198.18.0.0/15: FRR and GoBGP refuse 127.x). */
export const BENCH_NEXT_HOP = '198.18.0.1';
/** How often a real daemon's route count is polled. */
export const POLL_MS = 25;

/** "a.b.c.d/26" for the i-th /26 counted up from `base` (a uint32). */
export function blockText(base: number, i: number): string {
  const addr = (base + i * 64) >>> 0;
  return `${addr >>> 24}.${(addr >>> 16) & 255}.${(addr >>> 8) & 255}.${addr & 255}/26`;
}

export interface BirdOriginOptions {
  address: string;
  routerId: string;
  neighbors: ReadonlyArray<{ address: string; passive?: boolean }>;
  routes: number;
  /** First /26 (uint32, default 10.0.0.0). */
  base?: number;
  /** A different MED per route: nothing packs, one NLRI per UPDATE. */
  distinct: boolean;
}

/** bird.conf for an origin BIRD 2. Pure. */
export function birdOriginConfig(o: BirdOriginOptions): string {
  const base = o.base ?? 0x0a000000;
  const lines = [
    `router id ${o.routerId};`,
    'log stderr { info, warning, error, fatal };',
    'protocol device {}',
    'protocol static t_nexthops { ipv4; route 198.18.0.0/15 blackhole; }',
    'protocol static t_routes { ipv4; disabled;',
  ];
  for (let i = 0; i < o.routes; i++) {
    lines.push(
      o.distinct
        ? `  route ${blockText(base, i)} blackhole { bgp_med = ${i + 1}; };`
        : `  route ${blockText(base, i)} blackhole;`,
    );
  }
  lines.push(
    '}',
    'filter t_export {',
    '  if proto = "t_nexthops" then reject;',
    `  bgp_next_hop = ${BENCH_NEXT_HOP};`,
    '  accept;',
    '}',
  );
  o.neighbors.forEach((n, i) => {
    lines.push(
      `protocol bgp t_n${i + 1} {`,
      `  local ${o.address} port 179 as ${BENCH_AS};`,
      `  neighbor ${n.address} port 179 as ${BENCH_AS};`,
      '  strict bind yes;',
      '  multihop;',
      '  connect delay time 1;',
      '  connect retry time 2;',
      '  error wait time 1, 3;',
      n.passive ? '  passive on;' : '',
      '  ipv4 { gateway recursive; import all; export filter t_export; };',
      '}',
    );
  });
  return lines.filter((l) => l !== '').join('\n') + '\n';
}

export interface BirdOrigin {
  readonly address: string;
  birdc(command: string): Promise<string>;
  sessions(): Promise<PeerSessionInfo[]>;
  /** Turns the static protocol on: BIRD loads the routes and exports them. */
  enableRoutes(): Promise<void>;
  stop(): Promise<void>;
}

export async function startBirdOrigin(o: BirdOriginOptions): Promise<BirdOrigin> {
  const bin = PEER_BINARIES.bird2;
  const { dir, ownsDir } = daemonDir('bird2-origin', { address: o.address, as: BENCH_AS, neighbors: [] });
  const socket = join(dir, 'bird.ctl');
  const config = join(dir, 'bird.conf');
  const handle = new DaemonHandle({
    name: 'bird2-origin',
    dir,
    ownsDir,
    staleFiles: [socket],
    prepare: () => {
      writeFileSync(config, birdOriginConfig(o));
      return { command: bin.daemon(), args: ['-f', '-c', config, '-s', socket, '-P', join(dir, 'bird.pid')] };
    },
    ready: () => unixSocketAnswers(socket, '0001 '),
    readyTimeoutMs: 30_000,
  });
  await handle.start();
  const birdc = (command: string) => runCli(bin.cli(), ['-s', socket, ...command.split(/\s+/).filter(Boolean)]);
  return {
    address: o.address,
    birdc,
    sessions: async () => parseBirdProtocols(await birdc('show protocols all')),
    enableRoutes: async () => {
      const out = await birdc('enable t_routes');
      if (!/enabled/.test(out)) throw new Error(`bird2 origin ${o.address}: "enable t_routes" answered:\n${out}`);
    },
    stop: () => handle.stop(),
  };
}

/** Waits until every listed neighbor of a BIRD origin is Established. */
export async function waitOriginEstablished(
  origin: BirdOrigin,
  neighbors: readonly string[],
  timeoutMs = 20_000,
): Promise<void> {
  await waitFor(
    async () => {
      const up = new Set((await origin.sessions()).filter((s) => s.state === 'Established').map((s) => s.neighbor));
      return neighbors.every((n) => up.has(n));
    },
    {
      timeoutMs,
      intervalMs: 50,
      what: `bird2 origin ${origin.address} sessions to ${neighbors.join(', ')} Established`,
    },
  );
}

/** Parses BIRD's `show route ... count`: "100000 of 100000 routes for 100000 networks in table master4". */
export function parseBirdCount(text: string): number {
  const m = /(\d+) of \d+ routes/.exec(text);
  if (!m)
    throw new Error(
      `bird "show route count" answer not understood (expected "N of M routes ..."): ${text.slice(0, 200)}`,
    );
  return Number(m[1]);
}

/** Parses FRR's `show bgp ipv4 unicast summary json`: pfxRcd of one neighbor (0 while it is not listed). */
export function parseFrrPfxRcd(json: string, neighbor: string): number {
  const data = JSON.parse(json) as { peers?: Record<string, { pfxRcd?: number }> };
  return data.peers?.[neighbor]?.pfxRcd ?? 0;
}

/** Parses `gobgp global rib summary -a ipv4`: "Table ipv4-unicast\nDestination: 100000, Path: 100000". */
export function parseGobgpSummary(text: string): number {
  const m = /Destination:\s*(\d+)/.exec(text);
  if (!m)
    throw new Error(
      `gobgp "global rib summary" answer not understood (expected "Destination: N"): ${text.slice(0, 200)}`,
    );
  return Number(m[1]);
}

/** How to count routes learned from `neighbor` in a harness daemon, one table entry per kind. */
const COUNTERS: Readonly<
  Partial<Record<PeerKind, (peer: PeerDaemon, neighbor: string, protocol: string) => Promise<number>>>
> = {
  bird2: async (peer, _n, protocol) => parseBirdCount(await peer.cli(`show route protocol ${protocol} count`)),
  frr: async (peer, neighbor) => parseFrrPfxRcd(await peer.cli('show bgp ipv4 unicast summary json'), neighbor),
  gobgp: async (peer) => parseGobgpSummary(await peer.cli('global rib summary -a ipv4')),
};

/**
 * A function returning how many routes `peer` holds from `neighbor`. `protocol` is BIRD's protocol name
 * for that neighbor (the harness names neighbor i `t_n<i+1>`).
 */
export function routeCounter(peer: PeerDaemon, neighbor: string, protocol = 't_n1'): () => Promise<number> {
  const counter = COUNTERS[peer.kind];
  if (!counter)
    throw new Error(`no route counter for peer kind "${peer.kind}"; known: ${Object.keys(COUNTERS).join(', ')}`);
  return () => counter(peer, neighbor, protocol);
}

export interface Reached {
  /** ms from `t0` to the answer that first showed the target, or undefined when the limit passed first. */
  ms: number | undefined;
  /** The last count seen. */
  last: number;
}

/** Polls `count` (one call at a time) until it reaches `target` or `limitMs` passes since `t0`. */
export async function timeUntil(
  count: () => Promise<number>,
  target: number,
  t0: number,
  limitMs: number,
): Promise<Reached> {
  let last = 0;
  const maxPolls = Math.ceil(limitMs / POLL_MS) + 1;
  for (let i = 0; i < maxPolls && performance.now() - t0 < limitMs; i++) {
    last = await count().catch(() => last);
    const now = performance.now();
    if (last >= target) return { ms: now - t0, last };
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  return { ms: undefined, last };
}
