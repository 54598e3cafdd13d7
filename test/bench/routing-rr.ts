// Bench `routing-rr`: route-reflector fan-out. One reflector (tortie, BIRD 2, FRR, GoBGP, one after the
// other in the same run) with 4 BIRD 2 clients; client 1 originates 100 000 /26 (one attribute set) and
// the clock runs from `birdc enable` of its static routes (all 4 sessions Established) until each of the
// other 3 clients holds all 100 000 — the figure is the slowest of the three. Every client is a fresh
// BIRD 2 per reflector, polled through birdc (routing-daemons.ts), so only the reflector differs.

import { performance } from 'node:perf_hooks';
import { parseIpv4 } from '../../bgp/ip.js';
import { Speaker } from '../../bgp/speaker.js';
import { addressBlock, requirePeers, startPeer, waitFor, waitForSession, type PeerDaemon, type PeerKind } from '../harness/index.js';
import type { Bench, BenchRow } from './bench.js';
import { BENCH_AS, routeCounter, startBirdOrigin, timeUntil, waitOriginEstablished, type Reached } from './routing-daemons.js';
import { comparisonRows, type TimedWindow } from './routing-receive.js';

export const RR_ROUTES = 100_000;
const LIMIT_MS = 60_000;
const CLUSTER_ID = '10.41.0.1';
const REAL_REFLECTORS: readonly PeerKind[] = ['bird2', 'frr', 'gobgp'];

const block = addressBlock('test/bench/routing-rr.ts');
const CLIENTS = [block.host(1), block.host(2), block.host(3), block.host(4)];
const REFLECTOR: Readonly<Record<string, string>> = { tortie: block.host(10), bird2: block.host(11), frr: block.host(12), gobgp: block.host(13) };

interface Reflector {
  stop(): Promise<void>;
  /** True once every client session is Established on the reflector's side. */
  allUp(): Promise<boolean>;
}

async function startTortieReflector(address: string): Promise<Reflector> {
  const speaker = new Speaker({ routerId: parseIpv4(address), localAs: BENCH_AS, listen: { address, port: 179 }, clusterId: parseIpv4(CLUSTER_ID) });
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
    stop: () => peer.stop(),
    allUp: async () => (await peer.sessions()).filter((s) => s.state === 'Established').length === CLIENTS.length,
  };
}

/** One fan-out run through `reflector` at `address`: ms until clients 2..4 all hold every route. */
export async function fanOut(kind: 'tortie' | PeerKind, window?: TimedWindow): Promise<Reached> {
  const address = REFLECTOR[kind]!;
  const reflector = kind === 'tortie' ? await startTortieReflector(address) : await startPeerReflector(kind, address);
  const receivers: PeerDaemon[] = [];
  try {
    const origin = await startBirdOrigin({ address: CLIENTS[0]!, routerId: CLIENTS[0]!, neighbors: [{ address }], routes: RR_ROUTES, distinct: false });
    try {
      for (const client of CLIENTS.slice(1)) {
        receivers.push(await startPeer('bird2', { address: client, as: BENCH_AS, routerId: client, neighbors: [{ address, as: BENCH_AS }] }));
      }
      await waitOriginEstablished(origin, [address]);
      await Promise.all(receivers.map((r) => waitForSession(r, address)));
      await waitFor(() => reflector.allUp(), { timeoutMs: 20_000, intervalMs: 50, what: `${kind} reflector ${address}: all ${CLIENTS.length} clients Established` });
      await window?.start();
      const t0 = performance.now();
      await origin.enableRoutes();
      const each = await Promise.all(receivers.map((r) => timeUntil(routeCounter(r, address), RR_ROUTES, t0, LIMIT_MS)));
      await window?.stop();
      const late = each.find((r) => r.ms === undefined);
      return late ?? { ms: Math.max(...each.map((r) => r.ms!)), last: RR_ROUTES };
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
    if (!requirePeers('bird2')) return [{ name: 'routing-rr skipped: BIRD 2 (the clients) is not installed', value: 0, unit: '' }];
    const tortie = await fanOut('tortie');
    const peers = new Map<string, Reached>();
    for (const kind of REAL_REFLECTORS.filter((k) => requirePeers(k))) peers.set(kind, await fanOut(kind));
    return comparisonRows('RR fan-out 100k /26 to 3 BIRD 2 clients', RR_ROUTES, tortie, peers, LIMIT_MS);
  },
};
