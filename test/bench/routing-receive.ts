// Bench `routing-receive`: a BIRD 2 origin sends 100 000 /26 to one receiver — tortie, BIRD 2, FRR, GoBGP,
// one after the other in the same run — packed (one attribute set: ~800 NLRI per UPDATE) and distinct (a
// different MED per route: one NLRI per UPDATE). Timed from `birdc enable` of the origin's static routes
// (sessions already Established) until the receiver holds all 100 000. Also tortie's heap per route at
// 100k (Δ heapUsed after a full GC / 100 000), for both attribute shapes.
//
// tortie runs in-process (a Speaker, watched through locRibSize every 1 ms: no 'bestChanged' listener, so
// the bench adds no work of its own); real receivers are polled through their CLI (routing-daemons.ts).

import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parseIpv4 } from '../../bgp/ip.js';
import { Speaker } from '../../bgp/speaker.js';
import { addressBlock, requirePeers, startPeer, waitFor, type PeerKind } from '../harness/index.js';
import type { Bench, BenchRow } from './bench.js';
import {
  BENCH_AS,
  routeCounter,
  startBirdOrigin,
  timeUntil,
  waitOriginEstablished,
  type Reached,
} from './routing-daemons.js';

export const RECEIVE_ROUTES = 100_000;
const LIMIT_MS = 60_000;
const HEAP_TARGET = 150;
const REAL_RECEIVERS: readonly PeerKind[] = ['bird2', 'frr', 'gobgp'];

const block = addressBlock('test/bench/routing-receive.ts');
const ORIGIN = block.host(1);
const RECEIVER: Readonly<Record<'tortie' | PeerKind, string>> = {
  tortie: block.host(11),
  bird1: block.host(15),
  bird2: block.host(12),
  frr: block.host(13),
  gobgp: block.host(14),
  exabgp: block.host(16),
};

/** A full, synchronous GC (the flag is set at run time so `npm run bench` needs no node option). */
export function fullGc(): () => void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  return () => {
    gc();
    gc();
  };
}

/** Called around the timed window only (the profiler uses it to leave setup and teardown out). */
export interface TimedWindow {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface TortieReceive {
  reached: Reached;
  bytesPerRoute: number;
  attributeSets: number;
}

/** tortie as the receiver: a Speaker on `address`, the origin connects to it. */
export async function receiveIntoTortie(
  distinct: boolean,
  window?: TimedWindow,
  address = RECEIVER.tortie,
  origin = ORIGIN,
): Promise<TortieReceive> {
  const gc = fullGc();
  const speaker = new Speaker({ routerId: parseIpv4(address), localAs: BENCH_AS, listen: { address, port: 179 } });
  await speaker.start();
  speaker.setPeers([{ address: origin, peerAs: BENCH_AS, passive: true }]);
  const bird = await startBirdOrigin({
    address: origin,
    routerId: origin,
    neighbors: [{ address }],
    routes: RECEIVE_ROUTES,
    distinct,
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await waitOriginEstablished(bird, [address]);
    await waitFor(() => speaker.peerStatus()[0]?.state === 'Established', {
      timeoutMs: 10_000,
      what: `tortie ${address} session to ${origin} Established`,
    });
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    await window?.start();
    const t0 = performance.now();
    const done = new Promise<number | undefined>((resolve) => {
      timer = setInterval(() => {
        if (speaker.locRibSize >= RECEIVE_ROUTES) resolve(performance.now() - t0);
        else if (performance.now() - t0 > LIMIT_MS) resolve(undefined);
      }, 1);
    });
    await bird.enableRoutes();
    const ms = await done;
    clearInterval(timer);
    await window?.stop();
    gc();
    const heapAfter = process.memoryUsage().heapUsed;
    return {
      reached: { ms, last: speaker.locRibSize },
      bytesPerRoute: (heapAfter - heapBefore) / RECEIVE_ROUTES,
      attributeSets: speaker.attributeSets,
    };
  } finally {
    clearInterval(timer);
    await speaker.stop();
    await bird.stop();
  }
}

/** A real daemon as the receiver, polled through its CLI. */
export async function receiveIntoPeer(kind: PeerKind, distinct: boolean): Promise<Reached> {
  const address = RECEIVER[kind];
  const peer = await startPeer(kind, {
    address,
    as: BENCH_AS,
    routerId: address,
    neighbors: [{ address: ORIGIN, as: BENCH_AS, passive: true }],
  });
  try {
    const bird = await startBirdOrigin({
      address: ORIGIN,
      routerId: ORIGIN,
      neighbors: [{ address }],
      routes: RECEIVE_ROUTES,
      distinct,
    });
    try {
      await waitOriginEstablished(bird, [address]);
      const count = routeCounter(peer, ORIGIN);
      const t0 = performance.now();
      await bird.enableRoutes();
      return await timeUntil(count, RECEIVE_ROUTES, t0, LIMIT_MS);
    } finally {
      await bird.stop();
    }
  } finally {
    await peer.stop();
  }
}

/** tortie's time over the peer's ("0.42×": tortie faster); a bound when the peer hit `limitMs`. */
export function ratio(tortieMs: number | undefined, peerMs: number | undefined, limitMs: number): string {
  if (tortieMs === undefined) return 'tortie did not finish';
  if (peerMs === undefined) return `< ${(tortieMs / limitMs).toFixed(2)}×`;
  return `${(tortieMs / peerMs).toFixed(2)}×`;
}

/** Rows for one scenario: tortie's time with its ratio to every peer, then every peer's time. */
export function comparisonRows(
  what: string,
  total: number,
  tortie: Reached,
  peers: ReadonlyMap<string, Reached>,
  limitMs: number,
): BenchRow[] {
  const value = (r: Reached) => r.ms ?? limitMs;
  const late = (r: Reached) =>
    r.ms === undefined ? `> ${limitMs / 1000} s limit (${r.last}/${total} routes)` : undefined;
  const rows: BenchRow[] = [
    {
      name: `${what}: tortie`,
      value: value(tortie),
      unit: 'ms',
      vs: late(tortie) ?? [...peers].map(([kind, r]) => `${kind} ${ratio(tortie.ms, r.ms, limitMs)}`).join(', '),
    },
  ];
  for (const [kind, r] of peers) {
    rows.push({
      name: `${what}: ${kind}`,
      value: value(r),
      unit: 'ms',
      vs: late(r) ?? `tortie/${kind} ${ratio(tortie.ms, r.ms, limitMs)}`,
    });
  }
  return rows;
}

export const routingReceiveBench: Bench = {
  name: 'routing-receive',
  async run(): Promise<BenchRow[]> {
    const rows: BenchRow[] = [];
    const kinds = REAL_RECEIVERS.filter((k) => requirePeers(k));
    if (!requirePeers('bird2'))
      return [{ name: 'routing-receive skipped: BIRD 2 (the origin) is not installed', value: 0, unit: '' }];
    for (const distinct of [false, true]) {
      const shape = distinct ? 'distinct, 1 NLRI/UPDATE' : 'packed, ~800 NLRI/UPDATE';
      const tortie = await receiveIntoTortie(distinct);
      const peers = new Map<string, Reached>();
      for (const kind of kinds) peers.set(kind, await receiveIntoPeer(kind, distinct));
      rows.push(...comparisonRows(`receive 100k /26 ${shape}`, RECEIVE_ROUTES, tortie.reached, peers, LIMIT_MS));
      rows.push({
        name: `heap per route at 100k, ${distinct ? 'distinct' : 'packed'} (${tortie.attributeSets} attribute sets): tortie`,
        value: tortie.bytesPerRoute,
        unit: 'B/route',
        vs: `${(tortie.bytesPerRoute / HEAP_TARGET).toFixed(2)}× of ${HEAP_TARGET} B target`,
      });
    }
    return rows;
  },
};
