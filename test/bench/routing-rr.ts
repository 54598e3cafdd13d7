// Bench `routing-rr`: route-reflector fan-out. One reflector (tortie, BIRD 2, FRR, GoBGP, one after the
// other in the same run) with 4 BIRD 2 clients; client 1 originates 100 000 /26 (one attribute set) and
// the clock runs from `birdc enable` of its static routes (all 4 sessions Established) until each of the
// other 3 clients holds all 100 000 — the figure is the slowest of the three. Every client is a fresh
// BIRD 2 per reflector, polled through birdc (routing-daemons.ts), so only the reflector differs, and
// every reflector — tortie included — is timed the same way, by polling its clients.
//
// Two attribute shapes: packed (one attribute set) and distinct (a different MED per route). tortie runs
// twice: in-process (a Speaker in this thread, as before) and as a `tortie bgp speaker` process, the way a
// user runs it (routing-speaker-process.ts); the process's and the daemons' RSS is read once all clients
// hold every route.

import { performance } from 'node:perf_hooks';
import { parseIpv4 } from '../../bgp/ip.js';
import { Speaker } from '../../bgp/speaker.js';
import {
  addressBlock,
  requirePeers,
  startPeer,
  waitFor,
  waitForSession,
  type PeerDaemon,
  type PeerKind,
} from '../harness/index.js';
import type { Bench, BenchRow } from './bench.js';
import {
  BENCH_AS,
  routeCounter,
  startBirdOrigin,
  timeUntil,
  waitOriginEstablished,
  type Reached,
} from './routing-daemons.js';
import { comparisonRows, type TimedWindow } from './routing-receive.js';
import { cpuMsOf, rssOf, startTortieProcessReflector } from './routing-speaker-process.js';

export const RR_ROUTES = 100_000;
const LIMIT_MS = 60_000;
const CLUSTER_ID = '10.41.0.1';
const REAL_REFLECTORS: readonly PeerKind[] = ['bird2', 'frr', 'gobgp'];

const block = addressBlock('test/bench/routing-rr.ts');
const CLIENTS = [block.host(1), block.host(2), block.host(3), block.host(4)];
const REFLECTOR: Readonly<Record<string, string>> = {
  tortie: block.host(10),
  bird2: block.host(11),
  frr: block.host(12),
  gobgp: block.host(13),
  'tortie-process': block.host(14),
};

export type ReflectorKind = 'tortie' | 'tortie-process' | PeerKind;

interface Reflector {
  /** The reflector's own process (not for the in-process Speaker). */
  pid?: number;
  stop(): Promise<void>;
  /** True once every client session is Established on the reflector's side. */
  allUp(): Promise<boolean>;
}

async function startTortieReflector(address: string): Promise<Reflector> {
  const speaker = new Speaker({
    routerId: parseIpv4(address),
    localAs: BENCH_AS,
    listen: { address, port: 179 },
    clusterId: parseIpv4(CLUSTER_ID),
  });
  await speaker.start();
  speaker.setPeers(CLIENTS.map((c) => ({ address: c, peerAs: BENCH_AS, rrClient: true, passive: true })));
  return {
    stop: () => speaker.stop(),
    allUp: async () => speaker.peerStatus().filter((p) => p.state === 'Established').length === CLIENTS.length,
  };
}

async function startPeerReflector(kind: PeerKind, address: string): Promise<Reflector> {
  const peer = await startPeer(kind, {
    address,
    as: BENCH_AS,
    routerId: address,
    clusterId: CLUSTER_ID,
    neighbors: CLIENTS.map((c) => ({ address: c, as: BENCH_AS, rrClient: true, passive: true })),
  });
  return {
    pid: peer.pid(),
    stop: () => peer.stop(),
    allUp: async () => (await peer.sessions()).filter((s) => s.state === 'Established').length === CLIENTS.length,
  };
}

export type FanOut = Reached & { rss?: number; cpuMs?: number };

async function startReflector(kind: ReflectorKind, address: string): Promise<Reflector> {
  if (kind === 'tortie') return startTortieReflector(address);
  if (kind === 'tortie-process') return startTortieProcessReflector(address, CLUSTER_ID, CLIENTS);
  return startPeerReflector(kind, address);
}

/** One fan-out run through `reflector` at `address`: ms until clients 2..4 all hold every route. */
export async function fanOut(kind: ReflectorKind, window?: TimedWindow, distinct = false): Promise<FanOut> {
  const address = REFLECTOR[kind]!;
  const reflector = await startReflector(kind, address);
  const receivers: PeerDaemon[] = [];
  try {
    const origin = await startBirdOrigin({
      address: CLIENTS[0]!,
      routerId: CLIENTS[0]!,
      neighbors: [{ address }],
      routes: RR_ROUTES,
      distinct,
    });
    try {
      for (const client of CLIENTS.slice(1)) {
        receivers.push(
          await startPeer('bird2', {
            address: client,
            as: BENCH_AS,
            routerId: client,
            neighbors: [{ address, as: BENCH_AS }],
          }),
        );
      }
      await waitOriginEstablished(origin, [address]);
      await Promise.all(receivers.map((r) => waitForSession(r, address)));
      await waitFor(() => reflector.allUp(), {
        timeoutMs: 20_000,
        intervalMs: 50,
        what: `${kind} reflector ${address}: all ${CLIENTS.length} clients Established`,
      });
      await window?.start();
      const cpu0 = cpuMsOf(reflector.pid);
      const t0 = performance.now();
      await origin.enableRoutes();
      const each = await Promise.all(
        receivers.map((r) => timeUntil(routeCounter(r, address), RR_ROUTES, t0, LIMIT_MS)),
      );
      await window?.stop();
      const rss = rssOf(reflector.pid);
      const cpu1 = cpuMsOf(reflector.pid);
      const cpuMs = cpu0 !== undefined && cpu1 !== undefined ? cpu1 - cpu0 : undefined;
      const late = each.find((r) => r.ms === undefined);
      return {
        ...(late ?? { ms: Math.max(...each.map((r) => r.ms!)), last: RR_ROUTES }),
        ...(rss !== undefined ? { rss } : {}),
        ...(cpuMs !== undefined ? { cpuMs } : {}),
      };
    } finally {
      await origin.stop();
    }
  } finally {
    for (const r of receivers) await r.stop();
    await reflector.stop();
  }
}

export const routingRrBench: Bench = {
  name: 'routing-rr',
  async run(): Promise<BenchRow[]> {
    if (!requirePeers('bird2'))
      return [{ name: 'routing-rr skipped: BIRD 2 (the clients) is not installed', value: 0, unit: '' }];
    const rows: BenchRow[] = [];
    for (const distinct of [false, true]) {
      const shape = distinct ? 'distinct attributes' : 'packed';
      const tortie = await fanOut('tortie', undefined, distinct);
      const own = await fanOut('tortie-process', undefined, distinct);
      const peers = new Map<string, FanOut>();
      for (const kind of REAL_REFLECTORS.filter((k) => requirePeers(k)))
        peers.set(kind, await fanOut(kind, undefined, distinct));
      const what = `RR fan-out 100k /26 ${shape} to 3 BIRD 2 clients`;
      rows.push(...comparisonRows(what, RR_ROUTES, tortie, peers, LIMIT_MS));
      rows.push({
        ...comparisonRows(what, RR_ROUTES, own, peers, LIMIT_MS)[0]!,
        name: `${what}: tortie bgp speaker process`,
      });
      rows.push(...rssRows(what, new Map([['tortie-process', own], ...peers])));
    }
    return rows;
  },
};

/**
 * The reflectors' RSS once every client held every route and their CPU time over the window (less moved by
 * a loaded machine than wall time), tortie's process first with its ratio to each.
 */
export function rssRows(what: string, peers: ReadonlyMap<string, { rss?: number; cpuMs?: number }>): BenchRow[] {
  const mb = (b: number) => b / (1024 * 1024);
  const own = peers.get('tortie-process')?.rss;
  const ownCpu = peers.get('tortie-process')?.cpuMs;
  const rows: BenchRow[] = [];
  for (const [kind, r] of peers) {
    if (r.cpuMs !== undefined) {
      const vs =
        kind !== 'tortie-process' && ownCpu !== undefined && r.cpuMs > 0
          ? `tortie-process/${kind} ${(ownCpu / r.cpuMs).toFixed(2)}×`
          : undefined;
      rows.push({ name: `${what}: reflector CPU ${kind}`, value: r.cpuMs, unit: 'ms', ...(vs ? { vs } : {}) });
    }
    if (r.rss === undefined) continue;
    const vs =
      kind !== 'tortie-process' && own !== undefined
        ? `tortie-process/${kind} ${(own / r.rss).toFixed(2)}×`
        : undefined;
    rows.push({
      name: `${what}: RSS ${kind}`,
      value: Math.round(mb(r.rss) * 10) / 10,
      unit: 'MiB',
      ...(vs ? { vs } : {}),
    });
  }
  return rows;
}
