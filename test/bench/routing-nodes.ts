// Bench `routing-nodes`: a Calico cluster's control plane at 200 nodes. 200 simulated nodes, each a bare
// bgp/session.ts Session on its own 127.0.42.N, peer with one route reflector (tortie in a worker thread,
// BIRD 2, FRR, GoBGP, one after the other in the same run). Once all 200 sessions are Established, every
// node announces its 50 /26 blocks in one UPDATE at the same moment; the clock stops when every node
// holds all 10 000 (its own 50 plus the 9 950 reflected to it). Nodes count what they receive themselves
// (a Set of prefix keys per node, updated on each 'update' event), so there is no polling: the time is exact.
//
// GoBGP needs about 100 s here; its run is capped at LIMIT_MS and reported as "> limit".

import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { encodeUpdates } from '../../bgp/codec/index.js';
import { parseIpv4, prefixKey } from '../../bgp/ip.js';
import { Session } from '../../bgp/session.js';
import { tcpTransport } from '../../bgp/transport.js';
import type { PathAttributes, Prefix } from '../../bgp/types.js';
import { addressBlock, requirePeers, startPeer, waitFor, type PeerKind } from '../harness/index.js';
import type { Bench, BenchRow } from './bench.js';
import { BENCH_AS, type Reached } from './routing-daemons.js';
import type { ReflectorMessage, ReflectorWorkerData } from './routing-reflector.js';
import { comparisonRows } from './routing-receive.js';

export const NODES = 200;
export const BLOCKS_PER_NODE = 50;
const TOTAL = NODES * BLOCKS_PER_NODE;
const LIMIT_MS = 30_000;
const CLUSTER_ID = '10.42.0.1';
const REAL_REFLECTORS: readonly PeerKind[] = ['bird2', 'frr', 'gobgp'];
/** Node blocks start at 10.100.0.0; node i owns /26 number i*50 .. i*50+49. */
const BLOCK_BASE = 0x0a640000;

const block = addressBlock('test/bench/routing-nodes.ts');
const NODE_ADDRESSES = Array.from({ length: NODES }, (_, i) => block.host(i + 1));
const REFLECTOR: Readonly<Record<string, string>> = {
  tortie: block.host(250),
  bird2: block.host(251),
  frr: block.host(252),
  gobgp: block.host(253),
};

/** One simulated node: a Session, its own blocks, and the set of other nodes' blocks it has received. */
class SimNode {
  readonly session: Session;
  readonly blocks: Prefix[];
  private readonly own: Set<number>;
  private readonly received = new Set<number>();
  private complete = false;

  constructor(
    readonly index: number,
    address: string,
    reflector: string,
    private readonly onComplete: () => void,
  ) {
    this.blocks = Array.from({ length: BLOCKS_PER_NODE }, (_, j) => ({
      addr: (BLOCK_BASE + (index * BLOCKS_PER_NODE + j) * 64) >>> 0,
      len: 26,
    }));
    this.own = new Set(this.blocks.map(prefixKey));
    this.session = new Session({
      localAs: BENCH_AS,
      peerAs: BENCH_AS,
      routerId: parseIpv4(address),
      peerAddress: reflector,
      localAddress: address,
      transport: tcpTransport,
      connectRetryMs: 2000,
      backoffInitialMs: 200,
      jitter: 0,
    });
    this.session.on('update', (e) => {
      for (const p of e.withdrawn) this.received.delete(prefixKey(p));
      for (const a of e.announced) {
        const key = prefixKey(a.prefix);
        if (!this.own.has(key)) this.received.add(key);
      }
      if (!this.complete && this.received.size >= TOTAL - BLOCKS_PER_NODE) {
        this.complete = true;
        this.onComplete();
      }
    });
  }

  get receivedCount(): number {
    return this.received.size;
  }

  /** This node's 50 blocks in one UPDATE, next hop 198.18.<i/256>.<i%256> (never 127.x: FRR/GoBGP refuse it). */
  announce(): boolean {
    const attrs: PathAttributes = {
      origin: 0,
      asPath: [],
      nextHop: (0xc6120000 + this.index + 1) >>> 0,
      localPref: 100,
    };
    return this.session.sendUpdates(encodeUpdates(attrs, this.blocks, this.session.codecContext));
  }
}

interface Reflector {
  allUp(): Promise<boolean>;
  stop(): Promise<void>;
}

/** tortie in a worker thread (see routing-reflector.ts). */
export async function startTortieReflectorWorker(address: string, clients: readonly string[]): Promise<Reflector> {
  const data: ReflectorWorkerData & { role: string } = {
    role: 'tortie-reflector',
    address,
    clusterId: CLUSTER_ID,
    asn: BENCH_AS,
    clients: [...clients],
  };
  const worker = new Worker(new URL('./routing-reflector.js', import.meta.url), { workerData: data });
  let up = 0;
  let stopped: () => void = () => {};
  const ready = new Promise<void>((resolve, reject) => {
    worker.once('error', reject);
    worker.on('message', (m: ReflectorMessage) => {
      if (m.type === 'ready') resolve();
      else if (m.type === 'up') up = m.count;
      else if (m.type === 'stopped') stopped();
    });
  });
  await ready;
  return {
    allUp: async () => up === clients.length,
    stop: async () => {
      const done = new Promise<void>((resolve) => {
        stopped = resolve;
        setTimeout(resolve, 5000).unref();
      });
      worker.postMessage({ type: 'stop' });
      await done;
      await worker.terminate();
    },
  };
}

async function startPeerReflector(kind: PeerKind, address: string, clients: readonly string[]): Promise<Reflector> {
  const peer = await startPeer(kind, {
    address,
    as: BENCH_AS,
    routerId: address,
    clusterId: CLUSTER_ID,
    neighbors: clients.map((c) => ({ address: c, as: BENCH_AS, rrClient: true, passive: true })),
  });
  return {
    allUp: async () => (await peer.sessions()).filter((s) => s.state === 'Established').length === clients.length,
    stop: () => peer.stop(),
  };
}

/** One run through `kind`: ms from the announcements until every node holds all 10 000 blocks. */
export async function nodesThrough(kind: 'tortie' | PeerKind, limitMs = LIMIT_MS): Promise<Reached> {
  const address = REFLECTOR[kind]!;
  const reflector =
    kind === 'tortie'
      ? await startTortieReflectorWorker(address, NODE_ADDRESSES)
      : await startPeerReflector(kind, address, NODE_ADDRESSES);
  let completed = 0;
  let allDone: (ms: number) => void = () => {};
  let t0 = 0;
  const nodes = NODE_ADDRESSES.map(
    (a, i) =>
      new SimNode(i, a, address, () => {
        if (++completed === NODES) allDone(performance.now() - t0);
      }),
  );
  try {
    for (const n of nodes) n.session.start();
    await waitFor(() => nodes.every((n) => n.session.established), {
      timeoutMs: 30_000,
      intervalMs: 50,
      what: `all ${NODES} nodes Established with the ${kind} reflector`,
    });
    await waitFor(() => reflector.allUp(), {
      timeoutMs: 20_000,
      intervalMs: 100,
      what: `${kind} reflector ${address}: all ${NODES} clients Established`,
    });
    const finished = new Promise<number | undefined>((resolve) => {
      allDone = resolve;
      setTimeout(() => resolve(undefined), limitMs).unref();
    });
    t0 = performance.now();
    for (const n of nodes) n.announce();
    const ms = await finished;
    return { ms, last: nodes.reduce((sum, n) => sum + n.receivedCount, 0) };
  } finally {
    for (const n of nodes) {
      n.session.stop();
      n.session.removeAllListeners();
    }
    await reflector.stop();
  }
}

export const routingNodesBench: Bench = {
  name: 'routing-nodes',
  async run(): Promise<BenchRow[]> {
    const tortie = await nodesThrough('tortie');
    const peers = new Map<string, Reached>();
    for (const kind of REAL_REFLECTORS.filter((k) => requirePeers(k))) peers.set(kind, await nodesThrough(kind));
    // `last` counts received blocks summed over nodes: what "all" would be is NODES × 9 950.
    return comparisonRows(
      `${NODES} nodes × ${BLOCKS_PER_NODE} /26 through one RR`,
      NODES * (TOTAL - BLOCKS_PER_NODE),
      tortie,
      peers,
      LIMIT_MS,
    );
  },
};
