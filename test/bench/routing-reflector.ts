// tortie as a route reflector in a worker thread, for the `routing-nodes` bench: the 200 simulated nodes
// decode ~2 million reflected prefixes in the main thread, and a real reflector (BIRD, FRR, GoBGP) has its
// own process and CPU, so tortie gets its own thread too. Also a standalone entry for profiling:
//   node --cpu-prof dist/test/bench/routing-profile.js nodes   (the worker writes its own .cpuprofile)
//
// Messages: main → worker `{ type: 'stop' }`; worker → main `{ type: 'ready' }`, `{ type: 'up', count }`
// (clients Established, sent on every change), `{ type: 'stopped' }`.

import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { parseIpv4 } from '../../bgp/ip.js';
import { Speaker } from '../../bgp/speaker.js';

export interface ReflectorWorkerData {
  address: string;
  clusterId: string;
  asn: number;
  clients: string[];
}

export type ReflectorMessage = { type: 'ready' } | { type: 'up'; count: number } | { type: 'stopped' };

async function runReflector(data: ReflectorWorkerData): Promise<void> {
  const port = parentPort!;
  const speaker = new Speaker({
    routerId: parseIpv4(data.address),
    localAs: data.asn,
    listen: { address: data.address, port: 179 },
    clusterId: parseIpv4(data.clusterId),
  });
  await speaker.start();
  let up = 0;
  speaker.on('state', (e) => {
    if (e.to === 'Established') up++;
    else if (e.from === 'Established') up--;
    port.postMessage({ type: 'up', count: up } satisfies ReflectorMessage);
  });
  speaker.setPeers(data.clients.map((c) => ({ address: c, peerAs: data.asn, rrClient: true, passive: true })));
  port.on('message', (m: { type: string }) => {
    if (m.type !== 'stop') return;
    void speaker.stop().then(() => {
      port.postMessage({ type: 'stopped' } satisfies ReflectorMessage);
      port.close();
    });
  });
  port.postMessage({ type: 'ready' } satisfies ReflectorMessage);
}

if (!isMainThread && parentPort && (workerData as { role?: string } | null)?.role === 'tortie-reflector') {
  void runReflector(workerData as ReflectorWorkerData);
}
