// `tortie lab up|status|ping|down`: a tortie cluster on one machine (root). Carries out plan.ts: network
// namespaces for nodes, bridges, a router and workloads; a real etcd; `tortie node run` in every node
// namespace; workloads made by the CNI plugin exactly as a runtime calls it; then waits until every
// session is Established and every route is in every kernel.
//
// What it leaves running (recorded in <dir>/state.json, so `down` ends exactly those, by PID, after
// checking the PID still runs what we started): etcd on 127.0.0.1:<free port> in the host namespace, a
// relay from <dir>/etcd.sock to it, and per node a relay from the node's 127.0.0.1:2379 to that socket
// (relay.ts says why), the agent, and the office router when asked for. Nothing else on the host is
// touched: every address and route is inside the lab's namespaces.
//
// Why this is hard:
// - `down` must work after a half-finished `up`, twice, and after the state file is gone: the state is
//   written before anything is made and updated as things are made; namespaces are also found by their
//   name prefix.
// - "Converged" means more than sessions up: every node's kernel must hold a route for every other node's
//   block and every local workload. The wait reads the kernels, not just the agents' opinions.
// - Bounded: every wait has a deadline and says what it was still waiting for when it gave up.
//
// The parts, one module each: state.ts (state file, deadlines), processes.ts (commands, detached processes,
// waiting), network.ts (namespaces and links), router.ts (the office router's configuration text),
// nodes.ts (relays, agents, CNI plugin runs), converge.ts (the convergence wait), ping.ts (the ping matrix).
// This file is the sequence of `up`, `status` and `down`, and the lab's public API.

import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { findProgram, missingPrograms } from '../../felix/index.js';
import { formatNodeStatus } from '../agent/status-format.js';
import { tunnelWarnings, waitConverged } from './converge.js';
import { buildNetwork, existingNamespaces } from './network.js';
import { addWorkloads, agentSocket, nodeStatus, startAgents } from './nodes.js';
import { planLab, LAB_DEFAULTS, type LabOptions, type LabPlan } from './plan.js';
import { freePort, run, spawnDetached, stopProcess, tcpOpen, waitUntil } from './processes.js';
import { BIRD2, BIRD2_CLIENT, officeRouterRoutes, startRouter } from './router.js';
import {
  datastoreTimeoutEnv,
  labDir,
  labTimeouts,
  readState,
  saveState,
  statePath,
  type LabIo,
  type LabProcess,
  type LabState,
} from './state.js';

export { tunnelWarnings } from './converge.js';
export { missingNamespaces } from './network.js';
export { cniConfig, killAgent, labSecretsDir, nodeStatus, runCni, startAgent } from './nodes.js';
export { formatPingMatrix, labPing, type PingMatrix } from './ping.js';
export { officeRouterRoutes } from './router.js';
export {
  DEFAULT_LAB_ROOT,
  labDir,
  labTimeouts,
  readState,
  type LabIo,
  type LabProcess,
  type LabState,
  type LabTimeouts,
} from './state.js';

const ETCD_BINARY = '/usr/bin/etcd';

// ---- up ----------------------------------------------------------------------------------------------------

/** Every program `lab up` and `lab ping` will run for this plan (names on PATH, or absolute paths). */
export function labPrograms(plan: LabPlan): string[] {
  const programs = ['ip', 'sysctl', 'nft', 'ping', ETCD_BINARY];
  if (plan.router?.kind === 'bird') programs.push(BIRD2, BIRD2_CLIENT);
  if (plan.router?.kind === 'frr') programs.push('/usr/lib/frr/bgpd', '/usr/lib/frr/zebra', 'vtysh');
  return programs;
}

function checkPrerequisites(plan: LabPlan, io: LabIo): void {
  if (process.getuid?.() !== 0)
    throw new Error('tortie lab needs root (network namespaces, veth pairs, routes): run it with sudo');
  if (findProgram(ETCD_BINARY) === null && findProgram('apt-get') !== null) {
    io.progress(`etcd is not installed: installing the Debian package etcd-server (apt-get install -y etcd-server)`);
    const result = run('apt-get', ['install', '-y', '--no-install-recommends', 'etcd-server'], {
      timeoutMs: 600_000,
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    if (result.code !== 0 || !existsSync(ETCD_BINARY))
      throw new Error(`could not install etcd-server: ${result.stderr.trim().split('\n').slice(-3).join(' ')}`);
  }
  // Everything the lab will run, checked before anything is made: one message naming each missing program
  // and its package, not a half-built lab (or a ping matrix of FAILs when only `ping` is missing).
  const missing = missingPrograms(labPrograms(plan));
  if (missing.length > 0)
    throw new Error(
      `tortie lab cannot start: ${missing.join('; ')} — run scripts/install-deps.sh as root (it installs them all)`,
    );
  const taken = existingNamespaces().filter((ns) => plan.namespaces.includes(ns));
  if (taken.length > 0)
    throw new Error(
      `network namespaces ${taken.join(', ')} exist already: is a lab named "${plan.options.name}" up? Run 'tortie lab down --name ${plan.options.name}' first`,
    );
}

export async function labUp(
  options: LabOptions,
  io: LabIo,
  command: string[] = [process.execPath, process.argv[1] ?? ''],
): Promise<LabState> {
  const plan = planLab(options);
  labTimeouts(); // a bad TORTIE_LAB_SLOWDOWN is refused before anything is made
  const dir = labDir(options.name);
  if (readState(dir) !== null)
    throw new Error(
      `a lab named "${options.name}" is up already (${statePath(dir)}): 'tortie lab down --name ${options.name}' first`,
    );
  checkPrerequisites(plan, io);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const state: LabState = { plan, dir, etcdPort: 0, processes: [], workloadIps: {}, command };
  saveState(state);
  const started = Date.now();
  const step = (text: string): void =>
    io.progress(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${text}`);
  try {
    await startEtcd(state, step);
    buildNetwork(state, step);
    await storeResources(state, step);
    startRouter(state, step);
    await startAgents(state, step);
    await addWorkloads(state, step);
    await waitConverged(state, step);
    const tunnel = await tunnelWarnings(state);
    for (const warning of tunnel) step(warning);
    if (tunnel.length > 0)
      step(
        `a kernel with IPIP: the same lab in a VM booting Debian's kernel — tortie lab down${options.name === LAB_DEFAULTS.name ? '' : ` --name ${options.name}`}, then tortie lab up --vm with the same options`,
      );
    step(`lab "${options.name}" is up: ${plan.nodes.length} nodes, ${plan.workloads.length} workloads`);
    return state;
  } catch (error) {
    io.progress(`lab up failed: ${(error as Error).message}`);
    io.progress(`logs are in ${dir}; 'tortie lab down --name ${options.name}' removes what was made`);
    throw error;
  }
}

async function startEtcd(state: LabState, step: (text: string) => void): Promise<void> {
  const client = await freePort();
  const peer = await freePort();
  state.etcdPort = client;
  const data = join(state.dir, 'etcd-data');
  spawnDetached(state, 'etcd', data, ETCD_BINARY, [
    '--name',
    'lab',
    '--data-dir',
    data,
    '--listen-client-urls',
    `http://127.0.0.1:${client}`,
    '--advertise-client-urls',
    `http://127.0.0.1:${client}`,
    '--listen-peer-urls',
    `http://127.0.0.1:${peer}`,
    '--initial-advertise-peer-urls',
    `http://127.0.0.1:${peer}`,
    '--initial-cluster',
    `lab=http://127.0.0.1:${peer}`,
  ]);
  const socket = join(state.dir, 'etcd.sock');
  spawnDetached(state, 'relay-host', socket, state.command[0]!, [
    ...state.command.slice(1),
    'lab',
    'relay',
    `unix:${socket}`,
    `tcp:127.0.0.1:${client}`,
  ]);
  await waitUntil(
    () => tcpOpen(client),
    () => `etcd on 127.0.0.1:${client} (log: ${join(state.dir, 'etcd.log')})`,
    labTimeouts().etcdMs,
  );
  step(`etcd on 127.0.0.1:${client} (ETCD_ENDPOINTS=http://127.0.0.1:${client})`);
}

async function storeResources(state: LabState, step: (text: string) => void): Promise<void> {
  const { loadDatastoreConfig, openDatastore } = await import('../datastore/index.js');
  const { applyDefaults, toResource, validateResource, API_VERSION } = await import('../resources/index.js');
  const ds = await openDatastore(
    await loadDatastoreConfig({
      DATASTORE_TYPE: 'etcdv3',
      ETCD_ENDPOINTS: `http://127.0.0.1:${state.etcdPort}`,
      ...datastoreTimeoutEnv(),
    }),
  );
  try {
    // All checked before any is stored: a plan the validator refuses is a bug here, named with the field.
    const resources = state.plan.resources.map((raw, i) =>
      applyDefaults(toResource({ apiVersion: API_VERSION, ...raw }, i)),
    );
    for (const resource of resources) {
      const problems = validateResource(resource);
      if (problems.length > 0)
        throw new Error(
          `lab ${resource.kind} ${resource.metadata.name}: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`,
        );
    }
    for (const resource of resources) await ds.create(resource);
  } finally {
    await ds.close();
  }
  step(`stored ${state.plan.resources.map((r) => r.kind).join(', ')}`);
}

// ---- status, down --------------------------------------------------------------------------------------------

export async function labStatus(state: LabState): Promise<string> {
  const parts: string[] = [];
  for (const node of state.plan.nodes) {
    parts.push(`==== ${node.name} (${node.ns}, ${node.ip}) ====`);
    const status = await nodeStatus(state, node.name);
    parts.push(
      status ? formatNodeStatus(status).trimEnd() : `the agent does not answer on ${agentSocket(state, node.name)}`,
    );
    const routes = run('ip', ['-n', node.ns, '-4', 'route', 'show', 'table', 'main'])
      .stdout.split('\n')
      .filter((line) => line.includes('proto 80') || line.includes(' dev cali'));
    parts.push('Routes programmed by felix:', ...routes.map((r) => `  ${r}`), '');
  }
  const router = state.plan.router;
  if (router !== null && router.kind !== 'plain') {
    parts.push(
      `==== office router (${router.kind === 'bird' ? 'BIRD 2' : 'FRR'}, ${router.ns}, AS ${router.asNumber}) ====`,
      officeRouterRoutes(state).trimEnd(),
      '',
    );
  }
  return `${parts.join('\n')}\n`;
}

/** Ends every process the lab started (by PID, checked), removes its namespaces and directory. Safe twice. */
export async function labDown(name: string, io: LabIo): Promise<void> {
  const dir = labDir(name);
  const state = readState(dir);
  const processes = state?.processes ?? [];
  // Agents first (they stop their BGP sessions cleanly), then routers, relays, etcd last.
  const order = (p: LabProcess): number =>
    p.role.startsWith('agent-') ? 0 : p.role.startsWith('office-router') ? 1 : p.role.startsWith('relay-') ? 2 : 3;
  const sorted = [...processes].sort((a, b) => order(a) - order(b));
  for (const rank of [0, 1, 2, 3])
    await Promise.all(sorted.filter((p) => order(p) === rank).map((p) => stopProcess(p)));
  const prefix = `${name}-`;
  const namespaces = new Set([
    ...(state?.plan.namespaces ?? []),
    ...existingNamespaces().filter((ns) => ns.startsWith(prefix)),
  ]);
  let removed = 0;
  for (const ns of [...namespaces].reverse()) {
    if (run('ip', ['netns', 'del', ns]).code === 0) removed++;
  }
  rmSync(dir, { recursive: true, force: true });
  io.progress(
    state === null && removed === 0
      ? `lab "${name}": nothing to remove`
      : `lab "${name}" removed: ${processes.length} processes stopped, ${removed} namespaces deleted`,
  );
}
