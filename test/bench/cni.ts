// Bench `cni`: how long the CNI plugin takes per pod, as a runtime sees it — process start to exit of
// the built plugin (`node dist/src/cli/main.js` with CNI_COMMAND set), configuration on stdin, against a
// real etcd (test/harness/etcd.ts), with real veths in network namespaces: 100 pods ADDed one after
// the other, then DELeted; p50 and p99 of each.
//
// Node's start-up is part of every call (the runtime starts a new process per pod), so the rows put it
// next to the bare `node -e 0` and VERSION (start-up + the plugin's own modules, no datastore), and the
// plugin's debug log gives the steps of each ADD and DEL (datastore client load + connect, IPAM,
// dataplane, WorkloadEndpoint). "eager imports" runs ADD with the Kubernetes client, pino and yaml
// preloaded (`--import`), what a plugin importing every backend up front would pay; "over gRPC" runs ADD
// with TORTIE_CNI_ETCD_TRANSPORT=grpc (package etcd3) instead of etcd's JSON gateway, the default.
// Counted, not timed: etcd calls per ADD and per DEL (Range and Txn from etcd's /metrics, over the 100
// pods), and the processes one ADD and one DEL start (`ip`, `nsenter`, `sysctl`, through logging
// wrappers on PATH, one extra pod).
//
// Issue 19: every ADD and DEL is measured twice — with the node agent's CNI socket answering (the agent's
// CNI server, src/agent/cni-server.ts, served from this process on a gRPC etcd connection as the agent
// holds one; the plugin is still a new process per call, a thin client) and without it (the socket path
// absent: the plugin does everything itself, as during an agent restart). "thin client start-up" is Node
// plus importing src/cni/client.js and nothing else.
//
// The node is a namespace (eth0, default route); the plugin runs outside it with TORTIE_CNI_HOST_NETNS
// (the lab's mode: etcd on 127.0.0.1 stays reachable), which costs one `nsenter … sysctl` process per
// ADD that a plugin running inside the node's namespace (writing /proc/sys itself) does not pay.
// Needs root, `ip`, `nsenter` and etcd; without them the bench returns no rows and says why.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { serveCni } from '../../src/agent/cni-server.js';
import { runCniPlugin, type CniInvocation, type CniOutcome } from '../../src/cni/index.js';
import { openEtcd } from '../../src/datastore/etcd.js';
import { API_VERSION } from '../../src/resources/types.js';
import { findBinary } from '../harness/binaries.js';
import { startEtcd } from '../harness/etcd.js';
import { createNetns, destroyAllNetns, netnsUnavailableReason, type Netns } from '../harness/netns.js';
import type { Bench, BenchRow } from './bench.js';

export const PODS = 100;
const BASELINE_RUNS = 20;
const EAGER_RUNS = 20;
const GRPC_RUNS = 20;
const CALL_TIMEOUT_MS = 30_000;
const MAIN_JS = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');

/** The p-th percentile (0..100) of `values`, nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

/** etcd's gRPC calls so far by method (`grpc_server_handled_total` of its /metrics; the gateway's calls are counted there too). */
export function etcdCalls(metrics: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of metrics.split('\n')) {
    const m = /^grpc_server_handled_total\{(.*)\} (\d+(?:\.\d+)?(?:e\+\d+)?)$/.exec(line);
    const method = m ? /grpc_method="(\w+)"/.exec(m[1]!)?.[1] : undefined;
    if (m && method) out[method] = (out[method] ?? 0) + Number(m[2]);
  }
  return out;
}

async function etcdCallsNow(endpoint: string): Promise<Record<string, number>> {
  return etcdCalls(await (await fetch(`${endpoint}/metrics`, { signal: AbortSignal.timeout(5000) })).text());
}

/** The plugin's debug line "ADD timings (ms)" (or DEL's) → its steps; {} when absent. */
export function stepTimings(stderr: string): Record<string, number> {
  for (const line of stderr.split('\n')) {
    if (!line.includes('timings (ms)')) continue;
    try {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      return Object.fromEntries(
        Object.entries(parsed).filter((e): e is [string, number] => typeof e[1] === 'number' && e[0] !== 'pid'),
      );
    } catch {
      return {};
    }
  }
  return {};
}

/** Wall time of one process run to exit (stdio ignored). */
function timeProcess(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { env, stdio: ['pipe', 'ignore', 'ignore'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), CALL_TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`${command} ${args.join(' ')} exited ${code}`));
      else resolve(performance.now() - started);
    });
    child.stdin.end('{"cniVersion":"1.0.0"}');
  });
}

/**
 * The processes one ADD and one DEL start, via wrappers for `ip`, `nsenter` and `sysctl` on PATH that log
 * their PID: nsenter execs the command it runs in the same process, so "nsenter → ip" is one process.
 */
async function countProcesses(
  add: CniInvocation,
  del: CniInvocation,
  agent = false,
): Promise<{ ADD: string[]; DEL: string[] }> {
  const dir = join(tmpdir(), `tortie-bench-cni-${process.pid}`);
  const log = join(dir, 'exec.log');
  mkdirSync(dir, { recursive: true });
  try {
    for (const name of ['ip', 'nsenter', 'sysctl']) {
      const real = findBinary(name);
      if (real === null) throw new Error(`${name} is not on PATH`);
      writeFileSync(join(dir, name), `#!/bin/sh\necho "$$ ${name}" >> ${log}\nexec ${real} "$@"\n`, { mode: 0o755 });
    }
    const out: { ADD: string[]; DEL: string[] } = { ADD: [], DEL: [] };
    const path = process.env.PATH ?? '';
    for (const invocation of [add, del]) {
      rmSync(log, { force: true });
      // The agent's processes are this process's children (its CNI server runs here): its PATH then.
      if (agent) process.env.PATH = `${dir}:${path}`;
      const result = await runCniPlugin({
        ...invocation,
        env: { ...invocation.env, PATH: `${dir}:${path}` },
      }).finally(() => (process.env.PATH = path));
      if (result.exitCode !== 0)
        throw new Error(`${invocation.command} with counting wrappers failed: ${result.stdout.trim()}`);
      out[invocation.command as 'ADD' | 'DEL'] = processesOf(existsSync(log) ? readFileSync(log, 'utf8') : '');
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** "<pid> <program>" lines → one entry per PID, its programs in exec order ("nsenter → ip"). */
export function processesOf(log: string): string[] {
  const byPid = new Map<string, string[]>();
  for (const line of log.split('\n')) {
    const [pid, program] = line.trim().split(' ');
    if (pid === undefined || program === undefined) continue;
    byPid.set(pid, [...(byPid.get(pid) ?? []), program]);
  }
  return [...byPid.values()].map((programs) => programs.join(' → '));
}

function unavailableReason(): string | null {
  const netns = netnsUnavailableReason();
  if (netns !== null) return netns;
  if (findBinary('/usr/bin/etcd') === null && findBinary('etcd') === null)
    return 'etcd is not installed (package etcd-server)';
  if (findBinary('nsenter') === null) return 'nsenter is not installed (package util-linux)';
  if (!existsSync(MAIN_JS)) return `${MAIN_JS} is missing (npm run build)`;
  return null;
}

function rowsOf(label: string, values: number[], extra: Partial<BenchRow> = {}): BenchRow[] {
  return [
    { name: `${label} p50 (${values.length} calls)`, value: percentile(values, 50), unit: 'ms', ...extra },
    { name: `${label} p99 (${values.length} calls)`, value: percentile(values, 99), unit: 'ms', ...extra },
  ];
}

export const cniBench: Bench = {
  name: 'cni',
  async run(): Promise<BenchRow[]> {
    const why = unavailableReason();
    if (why !== null) {
      console.warn(`bench cni skipped: ${why}`);
      return [];
    }
    const etcd = await startEtcd();
    const ds = await openEtcd({ endpoints: [etcd.endpoint] });
    const pods: Netns[] = [];
    try {
      await ds.create({
        apiVersion: API_VERSION,
        kind: 'IPPool',
        metadata: { name: 'bench-pods' },
        spec: { cidr: '10.80.0.0/16', blockSize: 26, ipipMode: 'Always', nodeSelector: 'all()' },
      });
      const node = await createNetns('cnibenchnode');
      await node.addVeth('eth0', 'eth0-peer');
      await node.ip('addr', 'add', '198.19.209.11/24', 'dev', 'eth0');
      await node.ip('route', 'add', 'default', 'via', '198.19.209.1', 'dev', 'eth0', 'onlink');
      for (let i = 0; i <= PODS; i++) pods.push(await createNetns(`cnibench${i}`));

      const config = {
        cniVersion: '1.0.0',
        name: 'k8s-pod-network',
        type: 'tortie',
        datastore_type: 'etcdv3',
        etcd_endpoints: etcd.endpoint,
        nodename: 'bench-node',
        log_level: 'debug',
        ipam: { type: 'tortie-ipam' },
      };
      // Without an agent the socket path is absent (the plugin tries it, then does the work itself).
      const agentSocket = join(tmpdir(), `tortie-bench-cni-${process.pid}.sock`);
      let socketEnv: Record<string, string> = { TORTIE_CNI_SOCKET: `${agentSocket}.absent` };
      const invocation = (i: number, command: CniInvocation['command']): CniInvocation => ({
        command,
        containerId: `bench${process.pid}c${i}`,
        netns: `/var/run/netns/${pods[i]!.name}`,
        pod: { namespace: 'bench', name: `pod-${i}` },
        hostNetns: `/var/run/netns/${node.name}`,
        config,
        env: socketEnv,
        timeoutMs: CALL_TIMEOUT_MS,
      });
      const must = (out: CniOutcome, what: string): CniOutcome => {
        if (out.exitCode !== 0)
          throw new Error(
            `${what} failed (exit ${out.exitCode}): ${out.stdout.trim()} ${out.stderr.trim().slice(-500)}`,
          );
        return out;
      };

      // Baselines: bare Node, then the plugin without a datastore (VERSION), then the thin client's import.
      const bare: number[] = [];
      const version: number[] = [];
      const client: number[] = [];
      const clientUrl = pathToFileURL(join(process.cwd(), 'dist', 'src', 'cni', 'client.js')).href;
      for (let i = 0; i < BASELINE_RUNS; i++) {
        bare.push(await timeProcess(process.execPath, ['-e', '0'], { PATH: process.env.PATH ?? '' }));
        version.push(
          await timeProcess(process.execPath, [MAIN_JS], { PATH: process.env.PATH ?? '', CNI_COMMAND: 'VERSION' }),
        );
        client.push(
          await timeProcess(
            process.execPath,
            ['--input-type=module', '-e', `await import(${JSON.stringify(clientUrl)})`],
            {
              PATH: process.env.PATH ?? '',
            },
          ),
        );
      }

      /** 100 ADDs, then 100 DELs: latencies, the plugin's steps, etcd calls per call. */
      const measure = async (label: string) => {
        const adds: number[] = [];
        const steps: Record<string, Record<string, number[]>> = { ADD: {}, DEL: {} };
        const callsBefore = await etcdCallsNow(etcd.endpoint);
        for (let i = 0; i < PODS; i++) {
          const out = must(await runCniPlugin(invocation(i, 'ADD')), `ADD (${label}) of pod ${i}`);
          adds.push(out.ms);
          for (const [step, ms] of Object.entries(stepTimings(out.stderr))) (steps.ADD![step] ??= []).push(ms);
        }
        const callsAfterAdds = await etcdCallsNow(etcd.endpoint);
        const dels: number[] = [];
        for (let i = 0; i < PODS; i++) {
          const out = must(await runCniPlugin(invocation(i, 'DEL')), `DEL (${label}) of pod ${i}`);
          dels.push(out.ms);
          for (const [step, ms] of Object.entries(stepTimings(out.stderr))) (steps.DEL![step] ??= []).push(ms);
        }
        const callsAfterDels = await etcdCallsNow(etcd.endpoint);
        return { adds, dels, steps, callsBefore, callsAfterAdds, callsAfterDels };
      };
      const perCall = (from: Record<string, number>, to: Record<string, number>, method: string): number =>
        ((to[method] ?? 0) - (from[method] ?? 0)) / PODS;

      const alone = await measure('no agent');
      // The processes of one ADD and one DEL, through wrappers on PATH that log their arguments.
      const spawned = await countProcesses(invocation(PODS, 'ADD'), invocation(PODS, 'DEL'));

      // The same with the agent's CNI socket answering: its server, on its own (gRPC) etcd connection.
      const agentDs = await openEtcd({ endpoints: [etcd.endpoint] });
      const server = await serveCni({
        path: agentSocket,
        nodeName: 'bench-node',
        datastore: agentDs,
        datastoreConfig: { datastoreType: 'etcdv3', etcdEndpoints: [etcd.endpoint], timeoutMs: 5000, source: 'bench' },
        log: {
          info: () => undefined,
          warn: (f: object, m?: string) => console.warn(`bench cni agent: ${m ?? ''} ${JSON.stringify(f)}`),
        },
      });
      let viaAgent: Awaited<ReturnType<typeof measure>>;
      let spawnedByAgent: { ADD: string[]; DEL: string[] };
      try {
        socketEnv = { TORTIE_CNI_SOCKET: agentSocket };
        viaAgent = await measure('agent');
        spawnedByAgent = await countProcesses(invocation(PODS, 'ADD'), invocation(PODS, 'DEL'), true);
      } finally {
        socketEnv = { TORTIE_CNI_SOCKET: `${agentSocket}.absent` };
        await server.close();
        await agentDs.close().catch(() => undefined);
      }
      const { adds, dels } = viaAgent;

      // What eager imports would cost: the same ADD with the other backends' modules preloaded.
      const preload = ['src/datastore/kubernetes.js', 'src/log.js', 'src/resources/index.js'].map(
        (m) => pathToFileURL(join(process.cwd(), 'dist', m)).href,
      );
      const eager: number[] = [];
      for (let i = 0; i < EAGER_RUNS; i++) {
        const inv = invocation(i, 'ADD');
        const out = must(
          await runCniPlugin({
            ...inv,
            executable: [process.execPath, ...preload.flatMap((u) => ['--import', u]), MAIN_JS],
          }),
          `eager ADD of pod ${i}`,
        );
        eager.push(out.ms);
        must(await runCniPlugin(invocation(i, 'DEL')), `DEL after eager ADD of pod ${i}`);
      }
      // The same ADD over gRPC (package etcd3), the transport the plugin used before the JSON gateway.
      const grpc: number[] = [];
      for (let i = 0; i < GRPC_RUNS; i++) {
        const inv = invocation(i, 'ADD');
        grpc.push(
          must(
            await runCniPlugin({ ...inv, env: { ...inv.env, TORTIE_CNI_ETCD_TRANSPORT: 'grpc' } }),
            `gRPC ADD of pod ${i}`,
          ).ms,
        );
        must(await runCniPlugin(invocation(i, 'DEL')), `DEL after gRPC ADD of pod ${i}`);
      }

      const bareP50 = percentile(bare, 50);
      const vsBare = (v: number): string => `${(v / bareP50).toFixed(1)}× node -e 0`;
      const rows: BenchRow[] = [
        ...rowsOf('ADD, agent running', adds, { vs: vsBare(percentile(adds, 50)) }),
        ...rowsOf('DEL, agent running', dels, { vs: vsBare(percentile(dels, 50)) }),
        ...rowsOf('ADD, no agent (the plugin alone)', alone.adds, { vs: vsBare(percentile(alone.adds, 50)) }),
        ...rowsOf('DEL, no agent (the plugin alone)', alone.dels, { vs: vsBare(percentile(alone.dels, 50)) }),
        ...rowsOf('node -e 0 (start-up alone)', bare),
        ...rowsOf('thin client start-up (node + src/cni/client.js)', client, { vs: vsBare(percentile(client, 50)) }),
        ...rowsOf('VERSION (start-up + plugin modules, no datastore)', version, {
          vs: vsBare(percentile(version, 50)),
        }),
      ];
      for (const [where, run] of [
        ['in the agent', viaAgent],
        ['in the plugin, no agent', alone],
      ] as const) {
        for (const [command, byStep] of Object.entries(run.steps)) {
          for (const [step, values] of Object.entries(byStep)) {
            rows.push({ name: `${command} step "${step}" p50 (${where})`, value: percentile(values, 50), unit: 'ms' });
          }
        }
      }
      const eagerP50 = percentile(eager, 50);
      rows.push({
        name: `ADD with eager imports (kubernetes client, pino, yaml preloaded; no agent) p50 (${eager.length} calls)`,
        value: eagerP50,
        unit: 'ms',
        vs: `+${(eagerP50 - percentile(alone.adds, 50)).toFixed(0)} ms vs lazy`,
      });
      const grpcP50 = percentile(grpc, 50);
      rows.push({
        name: `ADD over gRPC (TORTIE_CNI_ETCD_TRANSPORT=grpc; no agent) p50 (${grpc.length} calls)`,
        value: grpcP50,
        unit: 'ms',
        vs: `+${(grpcP50 - percentile(alone.adds, 50)).toFixed(0)} ms vs the JSON gateway`,
      });
      for (const [where, run] of [
        ['agent', viaAgent],
        ['no agent', alone],
      ] as const) {
        for (const method of ['Range', 'Txn']) {
          rows.push({
            name: `etcd ${method} calls per ADD (${where}; mean of ${PODS})`,
            value: perCall(run.callsBefore, run.callsAfterAdds, method),
            unit: 'calls',
          });
          rows.push({
            name: `etcd ${method} calls per DEL (${where}; mean of ${PODS})`,
            value: perCall(run.callsAfterAdds, run.callsAfterDels, method),
            unit: 'calls',
          });
        }
      }
      for (const [where, counted] of [
        ['agent', spawnedByAgent],
        ['no agent', spawned],
      ] as const) {
        rows.push({
          name: `processes started by one ADD (${where}; ip, nsenter, sysctl)`,
          value: counted.ADD.length,
          unit: 'processes',
          vs: counted.ADD.join(' | '),
        });
        rows.push({
          name: `processes started by one DEL (${where})`,
          value: counted.DEL.length,
          unit: 'processes',
          vs: counted.DEL.join(' | '),
        });
      }
      return rows;
    } finally {
      await ds.close().catch(() => undefined);
      await destroyAllNetns().catch((e: unknown) => console.warn(`bench cni: ${String(e)}`));
      await etcd.stop();
    }
  },
};
