// `agent-convergence` with the agents spread over worker processes (AGENT_BENCH_PROCESSES=N): the same
// etcd, cluster, claims and timeline as the in-process run (agent-convergence.ts), but each of N forked
// processes (agent-convergence-worker.ts) hosts every N-th agent, so 200 agents are not queued behind one
// thread. The claimer stays here; each worker reports, per claim, when each of its agents first held the
// prefix (wall-clock ms, shared by the processes) and, for the owner, when its watch delivered the
// confirmed affinity. On a 2-CPU machine the agents still share two CPUs: more processes than CPUs spreads
// the event-loop queues, not the CPU time.

import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { openEtcd } from '../../src/datastore/etcd.js';
import type { Datastore } from '../../src/datastore/types.js';
import { Ipam } from '../../src/ipam/index.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd.js';
import {
  block,
  CLAIMS,
  CLAIM_BOUND_MS,
  SCENARIO_BOUND_MS,
  seedCluster,
  SETUP_BOUND_MS,
  sleep,
  type Scenario,
} from './agent-convergence.js';
import type { FromWorker, ToWorker } from './agent-convergence-worker.js';
import { summarizeClaims, type ClaimTimeline, type ScenarioSummary } from './agent-stats.js';

const wallNow = (): number => performance.timeOrigin + performance.now();

class Worker {
  private readonly waiting: Array<{ type: FromWorker['type']; resolve: (m: FromWorker) => void }> = [];
  error: string | null = null;

  constructor(readonly child: ChildProcess) {
    child.on('message', (m: FromWorker) => {
      if (m.type === 'failed') this.error = m.error;
      const i = this.waiting.findIndex((w) => w.type === m.type || m.type === 'failed');
      if (i >= 0) this.waiting.splice(i, 1)[0]!.resolve(m);
    });
    child.on('exit', () => {
      for (const w of this.waiting.splice(0)) w.resolve({ type: 'failed', error: 'worker exited' });
    });
  }

  request<T extends FromWorker['type']>(
    message: ToWorker,
    reply: T,
    boundMs: number,
  ): Promise<Extract<FromWorker, { type: T }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`worker: no ${reply} within ${boundMs} ms`)), boundMs);
      this.waiting.push({
        type: reply,
        resolve: (m) => {
          clearTimeout(timer);
          if (m.type === 'failed') reject(new Error(`worker: ${m.error}`));
          else resolve(m as Extract<FromWorker, { type: T }>);
        },
      });
      this.child.send(message);
    });
  }
}

export interface ProcessesResult {
  summary: ScenarioSummary | null;
  setupMs: number;
  converged: number;
  error?: string;
}

export async function runScenarioInProcesses(
  s: Scenario,
  processes: number,
  log: (line: string) => void,
): Promise<ProcessesResult> {
  const started = performance.now();
  const label = `${s.label}, ${processes} processes`;
  let etcd: EtcdInstance | undefined;
  const clients: Datastore[] = [];
  const workers: Worker[] = [];
  let setupMs = 0;
  let converged = 0;
  const nodes = Array.from({ length: s.agents }, (_, i) => ({
    name: `bench-node-${i + 1}`,
    ip: block.host(i + 1),
    reflector: i < s.reflectors,
  }));
  try {
    etcd = await startEtcd();
    const open = async (): Promise<Datastore> => {
      const ds = await openEtcd({ endpoints: [etcd!.endpoint], timeoutMs: 10_000 });
      clients.push(ds);
      return ds;
    };
    const initial = await seedCluster(await open(), s, nodes);
    const script = fileURLToPath(new URL('./agent-convergence-worker.js', import.meta.url));
    for (let k = 0; k < processes; k++) workers.push(new Worker(fork(script, [], { stdio: 'inherit' })));
    await Promise.all(
      workers.map((w, k) =>
        w.request(
          { type: 'start', endpoint: etcd!.endpoint, nodes: nodes.filter((_, i) => i % processes === k) },
          'started',
          SETUP_BOUND_MS,
        ),
      ),
    );
    log(`${label}: ${nodes.length} agents started in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    const until = performance.now() + SETUP_BOUND_MS;
    for (;;) {
      const counts = await Promise.all(
        workers.map((w) => w.request({ type: 'converged', initial }, 'converged', 10_000)),
      );
      converged = counts.reduce((a, c) => a + c.count, 0);
      if (converged === nodes.length || performance.now() > until) break;
      await sleep(200);
    }
    setupMs = performance.now() - started;
    if (converged < nodes.length)
      return { summary: null, setupMs, converged, error: `only ${converged} of ${nodes.length} agents converged` };
    log(
      `${label}: every session Established, ${initial.length} blocks everywhere after ${(setupMs / 1000).toFixed(1)} s`,
    );

    const claimer = new Ipam(await open());
    const timelines: ClaimTimeline[] = [];
    const deadline = performance.now() + SCENARIO_BOUND_MS;
    await sleep(500);
    for (let i = 0; i < CLAIMS && performance.now() < deadline; i++) {
      const owner = nodes[i % nodes.length]!;
      const t0 = wallNow();
      const cidr = await claimer.claimBlock(owner.name);
      const written = wallNow() - t0;
      const seen = await Promise.all(
        workers.map((w) => w.request({ type: 'expect', cidr, owner: owner.name }, 'seen', CLAIM_BOUND_MS + 5000)),
      );
      const best = new Map<string, number | null>();
      let confirmed: number | null = null;
      for (const r of seen) {
        for (const [name, t] of Object.entries(r.best)) best.set(name, t);
        if (r.confirmed !== null) confirmed = r.confirmed;
      }
      const rel = (t: number | null | undefined): number | undefined =>
        t === null || t === undefined ? undefined : t - t0;
      timelines.push({
        node: owner.name,
        cidr,
        written,
        ownerEvent: rel(confirmed),
        originated: rel(best.get(owner.name)),
        others: nodes.filter((n) => n !== owner).map((n) => rel(best.get(n.name))),
      });
      await sleep(20); // claims do not overlap: let the last replans finish
    }
    const summary = summarizeClaims(label, timelines);
    if (summary.total)
      log(
        `${label}: ${summary.complete}/${summary.claims} claims, p50 ${summary.total.p50.toFixed(1)} ms, p99 ${summary.total.p99.toFixed(1)} ms, max ${summary.total.max.toFixed(1)} ms`,
      );
    return { summary, setupMs, converged };
  } catch (error) {
    return {
      summary: null,
      setupMs: setupMs || performance.now() - started,
      converged,
      error: error instanceof Error ? error.message : String(error),
    };
  } finally {
    await Promise.all(workers.map((w) => w.request({ type: 'stop' }, 'stopped', 30_000).catch(() => undefined)));
    for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await etcd?.stop().catch(() => undefined);
  }
}
