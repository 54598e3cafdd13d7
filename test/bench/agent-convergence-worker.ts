// A worker process of the `agent-convergence` bench (agent-convergence-procs.ts forks it): hosts a share
// of the agents, each with its own etcd client and probe, and answers the parent over the IPC channel.
// Times go to the parent as wall-clock milliseconds (performance.timeOrigin + performance.now()), which
// every process on the machine shares.
//
//   parent → worker                              worker → parent
//   { start, endpoint, nodes }                   { started } | { failed, error }
//   { converged, initial }                       { converged, count }
//   { expect, cidr, owner }                      { seen, cidr, best: node → ms | null, confirmed: ms | null }
//   { stop }                                     { stopped }, then exits

import { performance } from 'node:perf_hooks';
import type { Agent } from '../../src/agent/agent.js';
import { openEtcd } from '../../src/datastore/etcd.js';
import type { Datastore } from '../../src/datastore/types.js';
import { createLogger } from '../../src/log.js';
import { AgentProbe, benchAgent, CLAIM_BOUND_MS, START_BATCH, waitUntil } from './agent-convergence.js';

export type ToWorker =
  | { type: 'start'; endpoint: string; nodes: Array<{ name: string; ip: string }> }
  | { type: 'converged'; initial: string[] }
  | { type: 'expect'; cidr: string; owner: string }
  | { type: 'stop' };

export type FromWorker =
  | { type: 'started' }
  | { type: 'failed'; error: string }
  | { type: 'converged'; count: number }
  | { type: 'seen'; cidr: string; best: Record<string, number | null>; confirmed: number | null }
  | { type: 'stopped' };

const wall = (t: number): number => performance.timeOrigin + t;

interface Hosted {
  name: string;
  probe: AgentProbe;
  agent: Agent;
}

const hosted: Hosted[] = [];
const clients: Datastore[] = [];

function send(message: FromWorker): void {
  process.send?.(message);
}

function converged(h: Hosted, initial: readonly string[]): boolean {
  const peers = h.agent.status().peers;
  return (
    peers.length > 0 && peers.every((p) => p.bgpState === 'Established') && initial.every((c) => h.probe.bestAt.has(c))
  );
}

async function handle(message: ToWorker): Promise<void> {
  switch (message.type) {
    case 'start': {
      const logger = createLogger({ level: 'error' });
      for (let i = 0; i < message.nodes.length; i += START_BATCH)
        await Promise.all(
          message.nodes.slice(i, i + START_BATCH).map(async (n) => {
            const client = await openEtcd({ endpoints: [message.endpoint], timeoutMs: 10_000 });
            clients.push(client);
            const probe = new AgentProbe(n.name);
            const agent = benchAgent(n.name, n.ip, probe, client, logger);
            hosted.push({ name: n.name, probe, agent });
            await agent.start();
          }),
        );
      send({ type: 'started' });
      return;
    }
    case 'converged':
      send({ type: 'converged', count: hosted.filter((h) => converged(h, message.initial)).length });
      return;
    case 'expect': {
      const { cidr, owner } = message;
      await waitUntil(() => hosted.every((h) => h.probe.bestAt.has(cidr)), CLAIM_BOUND_MS, 1);
      const best: Record<string, number | null> = {};
      let confirmed: number | null = null;
      for (const h of hosted) {
        const t = h.probe.bestAt.get(cidr);
        best[h.name] = t === undefined ? null : wall(t);
        if (h.name === owner) {
          const c = h.probe.confirmedAt.get(cidr);
          confirmed = c === undefined ? null : wall(c);
        }
      }
      send({ type: 'seen', cidr, best, confirmed });
      return;
    }
    case 'stop':
      await Promise.race([
        Promise.all(hosted.map((h) => h.agent.stop().catch(() => undefined))),
        new Promise((r) => setTimeout(r, 20_000)),
      ]);
      await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
      send({ type: 'stopped' });
      setTimeout(() => process.exit(0), 100);
      return;
  }
}

process.on('message', (message: ToWorker) => {
  handle(message).catch((error: unknown) =>
    send({ type: 'failed', error: error instanceof Error ? error.message : String(error) }),
  );
});
process.on('disconnect', () => process.exit(0));
