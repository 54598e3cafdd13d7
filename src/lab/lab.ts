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

import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { findProgram, missingProgramMessage, missingPrograms } from '../../felix/programs.js';
import { formatNodeStatus } from '../agent/status-format.js';
import { queryControl } from '../agent/control.js';
import type { AgentStatus } from '../agent/types.js';
import { needsTunnel, planLab, LAB_AS, LAB_DEFAULTS, type LabOptions, type LabPlan, type LabWorkload } from './plan.js';

export const DEFAULT_LAB_ROOT = '/var/run/tortie-lab';
const ETCD_BINARY = '/usr/bin/etcd';
const BIRD2 = process.env.TORTIE_BIRD2_ROOT ? `${process.env.TORTIE_BIRD2_ROOT}/usr/sbin/bird` : '/opt/tortie/bird2/usr/sbin/bird';
const BIRD2_CLIENT = BIRD2.replace(/bird$/, 'birdc');
const NODE_ETCD_PORT = 2379;
const COMMAND_TIMEOUT_MS = 20_000;

export interface LabTimeouts {
  /** etcd answering on its port. */
  etcdMs: number;
  /** Each agent answering with a block. */
  agentMs: number;
  /** Every session Established and every route in every kernel. */
  convergeMs: number;
  /** One CNI plugin run. */
  cniMs: number;
  /** Each datastore call of the lab, the agents and the CNI plugin (TORTIE_DATASTORE_TIMEOUT_MS); undefined = their default. */
  datastoreMs: number | undefined;
}

/**
 * The deadlines of `lab up`, multiplied by TORTIE_LAB_SLOWDOWN (a whole number 1..50, default 1) for slow
 * machines: in the VM of scripts/vm (software emulation) a node process takes seconds to start and the
 * first etcd connection (loading gRPC and the etcd protos) longer than the datastore's default 5 s.
 */
export function labTimeouts(env: NodeJS.ProcessEnv = process.env): LabTimeouts {
  const raw = env.TORTIE_LAB_SLOWDOWN;
  const factor = raw === undefined || raw === '' ? 1 : Number(raw);
  if (!Number.isInteger(factor) || factor < 1 || factor > 50) {
    throw new Error(`TORTIE_LAB_SLOWDOWN="${raw}": a whole number 1..50 that multiplies every deadline of the lab (like 6 in a software-emulated VM); unset = 1`);
  }
  return { etcdMs: 20_000 * factor, agentMs: 30_000 * factor, convergeMs: 60_000 * factor, cniMs: 30_000 * factor, datastoreMs: factor === 1 ? undefined : 5000 * factor };
}

/**
 * TORTIE_DATASTORE_TIMEOUT_MS for what the lab starts, when the lab is slowed down; for an agent also
 * WAIT_FOR_DATASTORE, because on a slow machine its node's relay (a process started at the same time) may
 * listen only after the agent's first connection attempt has given up.
 */
function datastoreTimeoutEnv(forAgent = false): Record<string, string> {
  const { datastoreMs } = labTimeouts();
  if (datastoreMs === undefined) return {};
  return { TORTIE_DATASTORE_TIMEOUT_MS: String(datastoreMs), ...(forAgent ? { WAIT_FOR_DATASTORE: 'true' } : {}) };
}

export interface LabProcess {
  role: string;
  pid: number;
  /** A word the process's command line must contain for `down` to signal it (PID reuse guard). */
  marker: string;
  log: string;
}

export interface LabState {
  plan: LabPlan;
  dir: string;
  etcdPort: number;
  processes: LabProcess[];
  /** Workload → its IP, as the CNI plugin answered. */
  workloadIps: Record<string, string>;
  /** The tortie command: node + main.js. */
  command: string[];
}

export interface LabIo {
  progress(line: string): void;
}

export function labDir(name: string, root = process.env.TORTIE_LAB_ROOT ?? DEFAULT_LAB_ROOT): string {
  return join(root, name);
}

function statePath(dir: string): string {
  return join(dir, 'state.json');
}

export function readState(dir: string): LabState | null {
  try {
    return JSON.parse(readFileSync(statePath(dir), 'utf8')) as LabState;
  } catch {
    return null;
  }
}

function saveState(state: LabState): void {
  writeFileSync(statePath(state.dir), `${JSON.stringify(state, null, 2)}\n`);
}

// ---- commands --------------------------------------------------------------------------------------------

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: readonly string[], options: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): RunResult {
  const result = spawnSync(command, args, {
    encoding: 'utf8',
    input: options.input,
    env: options.env ?? process.env,
    timeout: options.timeoutMs ?? COMMAND_TIMEOUT_MS,
  });
  if (result.error) return { code: 127, stdout: '', stderr: `${command}: ${result.error.message}` };
  return { code: result.status ?? 128, stdout: result.stdout, stderr: result.stderr };
}

function must(command: string, args: readonly string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const result = run(command, args, options);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} failed (exit ${result.code}): ${result.stderr.trim() || result.stdout.trim()}`);
  return result.stdout;
}

function ipIn(ns: string, ...args: string[]): string {
  return must('ip', ['-n', ns, ...args]);
}

function sysctlIn(ns: string, key: string, value: string): void {
  must('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', `${key}=${value}`]);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` every `everyMs` until it returns a value that is not false/undefined; throws with `what()` at the deadline. */
async function waitUntil<T>(probe: () => Promise<T | undefined | false> | T | undefined | false, what: () => string, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 100_000; i++) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() >= deadline) break;
    await sleep(everyMs);
  }
  throw new Error(`gave up after ${Math.round(timeoutMs / 1000)} s waiting for ${what()}`);
}

function spawnDetached(state: LabState, role: string, marker: string, command: string, args: string[], env: NodeJS.ProcessEnv = process.env): LabProcess {
  const log = join(state.dir, `${role}.log`);
  const fd = openSync(log, 'a');
  try {
    const child = spawn(command, args, { detached: true, stdio: ['ignore', fd, fd], env });
    if (child.pid === undefined) throw new Error(`could not start ${role}: ${command} ${args.join(' ')}`);
    child.unref();
    const entry = { role, pid: child.pid, marker, log };
    state.processes.push(entry);
    saveState(state);
    return entry;
  } finally {
    closeSync(fd);
  }
}

/** What a log says went wrong, for an error message: its last error line (else its last line), and where it is. */
function logTail(path: string): string {
  try {
    const lines = readFileSync(path, 'utf8').trim().split('\n').slice(-30).map((l) => l.trim()).filter((l) => l !== '');
    const error = [...lines].reverse().find((l) => /error|refus|cannot|failed/i.test(l));
    return `${error ?? lines[lines.length - 1] ?? '(empty log)'} (log: ${path})`;
  } catch {
    return `(no log at ${path})`;
  }
}

/** Running (a zombie — exited, not yet reaped — is not). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/**
 * Whether `pid` still runs what we started (not a reused PID): its command line or its environment
 * contains `marker` (an agent's marker, its control socket, is in its environment: TORTIE_CTL_SOCKET).
 */
function stillOurs(proc: LabProcess): boolean {
  for (const file of ['cmdline', 'environ']) {
    try {
      if (readFileSync(`/proc/${proc.pid}/${file}`, 'utf8').includes(proc.marker)) return true;
    } catch {
      return false;
    }
  }
  return false;
}

async function stopProcess(proc: LabProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
  if (!stillOurs(proc)) return;
  try {
    process.kill(proc.pid, signal);
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (alive(proc.pid) && stillOurs(proc) && Date.now() < deadline) await sleep(50);
  if (alive(proc.pid) && stillOurs(proc)) {
    try {
      process.kill(proc.pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
}

// ---- up ----------------------------------------------------------------------------------------------------

/** Every program `lab up` and `lab ping` will run for this plan (names on PATH, or absolute paths). */
export function labPrograms(plan: LabPlan): string[] {
  const programs = ['ip', 'sysctl', 'nft', 'ping', ETCD_BINARY];
  if (plan.router?.kind === 'bird') programs.push(BIRD2, BIRD2_CLIENT);
  if (plan.router?.kind === 'frr') programs.push('/usr/lib/frr/bgpd', '/usr/lib/frr/zebra', 'vtysh');
  return programs;
}

function checkPrerequisites(plan: LabPlan, io: LabIo): void {
  if (process.getuid?.() !== 0) throw new Error('tortie lab needs root (network namespaces, veth pairs, routes): run it with sudo');
  if (findProgram(ETCD_BINARY) === null && findProgram('apt-get') !== null) {
    io.progress(`etcd is not installed: installing the Debian package etcd-server (apt-get install -y etcd-server)`);
    const result = run('apt-get', ['install', '-y', '--no-install-recommends', 'etcd-server'], { timeoutMs: 600_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    if (result.code !== 0 || !existsSync(ETCD_BINARY)) throw new Error(`could not install etcd-server: ${result.stderr.trim().split('\n').slice(-3).join(' ')}`);
  }
  // Everything the lab will run, checked before anything is made: one message naming each missing program
  // and its package, not a half-built lab (or a ping matrix of FAILs when only `ping` is missing).
  const missing = missingPrograms(labPrograms(plan));
  if (missing.length > 0) throw new Error(`tortie lab cannot start: ${missing.join('; ')} — run scripts/install-deps.sh as root (it installs them all)`);
  const taken = existingNamespaces().filter((ns) => plan.namespaces.includes(ns));
  if (taken.length > 0) throw new Error(`network namespaces ${taken.join(', ')} exist already: is a lab named "${plan.options.name}" up? Run 'tortie lab down --name ${plan.options.name}' first`);
}

function existingNamespaces(): string[] {
  const out = run('ip', ['netns', 'list']);
  return out.stdout
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name !== '');
}

export async function labUp(options: LabOptions, io: LabIo, command: string[] = [process.execPath, process.argv[1] ?? '']): Promise<LabState> {
  const plan = planLab(options);
  labTimeouts(); // a bad TORTIE_LAB_SLOWDOWN is refused before anything is made
  const dir = labDir(options.name);
  if (readState(dir) !== null) throw new Error(`a lab named "${options.name}" is up already (${statePath(dir)}): 'tortie lab down --name ${options.name}' first`);
  checkPrerequisites(plan, io);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const state: LabState = { plan, dir, etcdPort: 0, processes: [], workloadIps: {}, command };
  saveState(state);
  const started = Date.now();
  const step = (text: string): void => io.progress(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${text}`);
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
    if (tunnel.length > 0) step(`a kernel with IPIP: the same lab in a VM booting Debian's kernel — tortie lab down${options.name === LAB_DEFAULTS.name ? '' : ` --name ${options.name}`}, then tortie lab up --vm with the same options`);
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
    '--name', 'lab', '--data-dir', data,
    '--listen-client-urls', `http://127.0.0.1:${client}`, '--advertise-client-urls', `http://127.0.0.1:${client}`,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-cluster', `lab=http://127.0.0.1:${peer}`,
  ]);
  const socket = join(state.dir, 'etcd.sock');
  spawnDetached(state, 'relay-host', socket, state.command[0]!, [...state.command.slice(1), 'lab', 'relay', `unix:${socket}`, `tcp:127.0.0.1:${client}`]);
  await waitUntil(
    () => tcpOpen(client),
    () => `etcd on 127.0.0.1:${client} (log: ${join(state.dir, 'etcd.log')})`,
    labTimeouts().etcdMs,
  );
  step(`etcd on 127.0.0.1:${client} (ETCD_ENDPOINTS=http://127.0.0.1:${client})`);
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function buildNetwork(state: LabState, step: (text: string) => void): void {
  const { plan } = state;
  for (const ns of plan.namespaces) {
    must('ip', ['netns', 'add', ns]);
    ipIn(ns, 'link', 'set', 'lo', 'up');
  }
  for (const lan of plan.lans) {
    ipIn(lan.ns, 'link', 'add', 'br0', 'type', 'bridge');
    ipIn(lan.ns, 'link', 'set', 'br0', 'up');
  }
  const lanOf = (subnet: number) => plan.lans.find((l) => l.subnet === subnet)!;
  if (plan.router) {
    for (const leg of plan.router.legs) {
      const lan = lanOf(leg.subnet);
      ipIn(plan.router.ns, 'link', 'add', leg.device, 'type', 'veth', 'peer', 'name', leg.lanPort, 'netns', lan.ns);
      ipIn(plan.router.ns, 'addr', 'add', `${leg.ip}/${leg.prefixLength}`, 'dev', leg.device);
      ipIn(plan.router.ns, 'link', 'set', leg.device, 'up');
      ipIn(lan.ns, 'link', 'set', leg.lanPort, 'master', 'br0', 'up');
    }
    if (plan.router.forwards) sysctlIn(plan.router.ns, 'net.ipv4.ip_forward', '1');
  }
  for (const node of plan.nodes) {
    const lan = lanOf(node.subnet);
    ipIn(node.ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', node.lanPort, 'netns', lan.ns);
    ipIn(node.ns, 'addr', 'add', `${node.ip}/${node.prefixLength}`, 'dev', 'eth0');
    ipIn(node.ns, 'link', 'set', 'eth0', 'up');
    ipIn(lan.ns, 'link', 'set', node.lanPort, 'master', 'br0', 'up');
    for (const route of node.staticRoutes) ipIn(node.ns, 'route', 'add', ...route.split(' '));
    // A node routes for its pods (felix checks it too).
    sysctlIn(node.ns, 'net.ipv4.ip_forward', '1');
  }
  step(`network: ${plan.lans.length} subnet(s) ${plan.lans.map((l) => l.cidr).join(', ')}, ${plan.nodes.length} node namespaces${plan.router ? `, router ${plan.router.ns}` : ''}`);
}

async function storeResources(state: LabState, step: (text: string) => void): Promise<void> {
  const { loadDatastoreConfig, openDatastore } = await import('../datastore/index.js');
  const { applyDefaults, toResource, validateResource, API_VERSION } = await import('../resources/index.js');
  const ds = await openDatastore(await loadDatastoreConfig({ DATASTORE_TYPE: 'etcdv3', ETCD_ENDPOINTS: `http://127.0.0.1:${state.etcdPort}`, ...datastoreTimeoutEnv() }));
  try {
    // All checked before any is stored: a plan the validator refuses is a bug here, named with the field.
    const resources = state.plan.resources.map((raw, i) => applyDefaults(toResource({ apiVersion: API_VERSION, ...raw }, i)));
    for (const resource of resources) {
      const problems = validateResource(resource);
      if (problems.length > 0) throw new Error(`lab ${resource.kind} ${resource.metadata.name}: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`);
    }
    for (const resource of resources) await ds.create(resource);
  } finally {
    await ds.close();
  }
  step(`stored ${state.plan.resources.map((r) => r.kind).join(', ')}`);
}

function birdConfig(plan: LabPlan): string {
  const router = plan.router!;
  const lines = [
    `router id ${router.legs[0]!.ip};`,
    'protocol device { }',
    ...(router.forwards ? ['protocol kernel { ipv4 { export all; }; }'] : []),
  ];
  for (const node of plan.nodes) {
    const leg = router.legs.find((l) => l.subnet === node.subnet)!;
    lines.push(
      `protocol bgp ${node.name.replace('-', '_')} {`,
      `  local ${leg.ip} as ${router.asNumber};`,
      `  neighbor ${node.ip} as ${LAB_AS};`,
      '  ipv4 { import all; export all; };',
      '}',
    );
  }
  return `${lines.join('\n')}\n`;
}

function startRouter(state: LabState, step: (text: string) => void): void {
  const router = state.plan.router;
  if (!router) return;
  if (router.kind === 'plain') {
    step(`router ${router.ns}: plain forwarding between ${state.plan.lans.map((l) => l.cidr).join(' and ')}, no BGP`);
    return;
  }
  if (router.kind === 'bird') {
    const config = join(state.dir, 'bird.conf');
    const socket = join(state.dir, 'bird.ctl');
    writeFileSync(config, birdConfig(state.plan));
    spawnDetached(state, 'office-router', config, 'ip', ['netns', 'exec', router.ns, BIRD2, '-f', '-c', config, '-s', socket]);
    step(`office router: BIRD 2 in ${router.ns}, AS ${router.asNumber} (birdc -s ${socket} show route)`);
    return;
  }
  const config = join(state.dir, 'frr.conf');
  const lines = [`frr defaults traditional`, `router bgp ${router.asNumber}`, ` bgp router-id ${router.legs[0]!.ip}`, ' no bgp ebgp-requires-policy'];
  for (const node of state.plan.nodes) lines.push(` neighbor ${node.ip} remote-as ${LAB_AS}`);
  writeFileSync(config, `${lines.join('\n')}\n`);
  const vty = join(state.dir, 'frr');
  mkdirSync(vty, { recursive: true });
  if (router.forwards) {
    // zebra installs bgpd's routes in the router namespace's kernel (forwarding between the subnets). It
    // has no "skip run-as": it runs as FRR's own user, so its directory is that user's.
    must('chown', ['frr:frr', vty]);
    spawnDetached(state, 'office-router-zebra', vty, 'ip', ['netns', 'exec', router.ns, '/usr/lib/frr/zebra', '-P', '0', '-f', config, '-i', join(vty, 'zebra.pid'), '--vty_socket', vty, '-z', join(vty, 'zserv.api')]);
    const zserv = join(vty, 'zserv.api');
    for (let i = 0; i < 100 && !existsSync(zserv); i++) spawnSync('sleep', ['0.05']);
  }
  // -S: no user switching (we are root in a namespace); -P 0: no vty TCP port.
  spawnDetached(state, 'office-router', config, 'ip', [
    'netns', 'exec', router.ns, '/usr/lib/frr/bgpd', '-S', '-P', '0', '-f', config, '-i', join(vty, 'bgpd.pid'), '--vty_socket', vty,
    ...(router.forwards ? ['-z', join(vty, 'zserv.api')] : ['-Z']),
  ]);
  step(`office router: FRR in ${router.ns}, AS ${router.asNumber} (vtysh --vty_socket ${vty} -c 'show bgp ipv4 unicast')`);
}

function agentSocket(state: LabState, node: string): string {
  return join(state.dir, node, 'tortie.ctl');
}

async function startAgents(state: LabState, step: (text: string) => void): Promise<void> {
  for (const node of state.plan.nodes) {
    const socket = join(state.dir, 'etcd.sock');
    spawnDetached(state, `relay-${node.name}`, socket, 'ip', ['netns', 'exec', node.ns, ...state.command, 'lab', 'relay', `tcp:127.0.0.1:${NODE_ETCD_PORT}`, `unix:${socket}`]);
  }
  for (const node of state.plan.nodes) startAgent(state, node.name);
  for (const node of state.plan.nodes) {
    await waitUntil(
      async () => {
        const status = await nodeStatus(state, node.name);
        if (status !== null && status.blocks.length > 0) return true;
        // An agent that exited will not answer: say why now, not at the deadline.
        const proc = state.processes.find((p) => p.role === `agent-${node.name}`);
        if (proc && !alive(proc.pid)) throw new Error(`the agent of ${node.name} exited: ${logTail(proc.log)}`);
        return false;
      },
      () => `the agent of ${node.name} to answer with a block (log: ${join(state.dir, `agent-${node.name}.log`)})`,
      labTimeouts().agentMs,
    );
  }
  step(`agents running: ${state.plan.nodes.map((n) => `${n.name} ${n.ip}`).join(', ')}`);
}

/** Where the lab's agents find BGP passwords: <lab dir>/bgp-secrets/<secret name>/<key>, as a Secret volume. */
export function labSecretsDir(state: LabState): string {
  return join(state.dir, 'bgp-secrets');
}

/** Starts (or restarts) one node's agent; its old process entry is replaced. */
export function startAgent(state: LabState, name: string): LabProcess {
  const node = state.plan.nodes.find((n) => n.name === name);
  if (!node) throw new Error(`no node "${name}" in lab "${state.plan.options.name}" (nodes: ${state.plan.nodes.map((n) => n.name).join(', ')})`);
  mkdirSync(join(state.dir, name), { recursive: true });
  state.processes = state.processes.filter((p) => p.role !== `agent-${name}`);
  const env = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    NODENAME: name,
    IP: `${node.ip}/${node.prefixLength}`,
    DATASTORE_TYPE: 'etcdv3',
    ETCD_ENDPOINTS: `http://127.0.0.1:${NODE_ETCD_PORT}`,
    NO_DEFAULT_POOLS: 'true',
    TORTIE_DATAPLANE: 'kernel',
    TORTIE_CTL_SOCKET: agentSocket(state, name),
    // BGP passwords on etcd: mounted-Secret files, DIR/<secret name>/<key> (src/agent/secrets.ts).
    TORTIE_BGP_SECRETS_DIR: labSecretsDir(state),
    TORTIE_LOG_LEVEL: process.env.TORTIE_LOG_LEVEL ?? 'info',
    ...datastoreTimeoutEnv(true),
  };
  return spawnDetached(state, `agent-${name}`, agentSocket(state, name), 'ip', ['netns', 'exec', node.ns, ...state.command, 'node', 'run'], env);
}

export async function nodeStatus(state: LabState, name: string): Promise<AgentStatus | null> {
  try {
    const response = await queryControl(agentSocket(state, name), { command: 'status' }, 2000);
    return response.ok && 'status' in response ? response.status : null;
  } catch {
    return null;
  }
}

/** The CNI network configuration the lab hands the plugin (what 10-tortie.conflist holds on a real node). */
export function cniConfig(node: string): Record<string, unknown> {
  return {
    cniVersion: '1.0.0',
    name: 'k8s-pod-network',
    type: 'tortie',
    datastore_type: 'etcdv3',
    etcd_endpoints: `http://127.0.0.1:${NODE_ETCD_PORT}`,
    nodename: node,
    mtu: 1500,
    ipam: { type: 'tortie-ipam' },
  };
}

/** Runs the CNI plugin in the node's namespace exactly as a container runtime does: env + config on stdin. */
export function runCni(state: LabState, workload: LabWorkload, command: 'ADD' | 'DEL' | 'CHECK'): Record<string, unknown> {
  const node = state.plan.nodes.find((n) => n.name === workload.node)!;
  const env = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: workload.containerId,
    CNI_NETNS: `/var/run/netns/${workload.ns}`,
    CNI_IFNAME: 'eth0',
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${workload.namespace};K8S_POD_NAME=${workload.pod};K8S_POD_INFRA_CONTAINER_ID=${workload.containerId}`,
    CNI_PATH: '/opt/cni/bin',
    ...datastoreTimeoutEnv(),
  };
  const result = run('ip', ['netns', 'exec', node.ns, ...state.command], { env, input: JSON.stringify(cniConfig(workload.node)), timeoutMs: labTimeouts().cniMs });
  let answer: Record<string, unknown> = {};
  try {
    answer = result.stdout.trim() === '' ? {} : (JSON.parse(result.stdout) as Record<string, unknown>);
  } catch {
    throw new Error(`the CNI plugin's ${command} for ${workload.pod} printed no JSON (exit ${result.code}): ${result.stdout.slice(0, 200)} ${result.stderr.slice(0, 200)}`);
  }
  if (result.code !== 0) throw new Error(`the CNI plugin's ${command} for ${workload.pod} failed (exit ${result.code}): ${String(answer.msg ?? '')} ${String(answer.details ?? '')} ${result.stderr.trim()}`);
  return answer;
}

async function addWorkloads(state: LabState, step: (text: string) => void): Promise<void> {
  for (const workload of state.plan.workloads) {
    const answer = runCni(state, workload, 'ADD');
    const ips = answer.ips as Array<{ address?: string }> | undefined;
    const address = ips?.[0]?.address?.split('/')[0];
    if (address === undefined) throw new Error(`the CNI plugin's ADD for ${workload.pod} gave no address: ${JSON.stringify(answer)}`);
    state.workloadIps[workload.pod] = address;
    saveState(state);
  }
  step(`workloads (CNI ADD): ${state.plan.workloads.map((w) => `${w.pod}@${w.node} ${state.workloadIps[w.pod]}`).join(', ')}`);
}

/** The destinations every node's kernel must hold: other nodes' blocks, its own blocks, its workloads. */
async function missingRoutes(state: LabState): Promise<string[]> {
  const statuses = new Map<string, AgentStatus | null>();
  for (const node of state.plan.nodes) statuses.set(node.name, await nodeStatus(state, node.name));
  const missing: string[] = [];
  for (const node of state.plan.nodes) {
    const status = statuses.get(node.name);
    if (!status) {
      missing.push(`${node.name}: the agent does not answer`);
      continue;
    }
    const down = status.peers.filter((p) => p.bgpState !== 'Established');
    if (down.length > 0) missing.push(`${node.name}: BGP with ${down.map((p) => `${p.address} (${p.bgpState})`).join(', ')}`);
    const have = new Set(kernelDestinations(node.ns));
    const want: string[] = [];
    // A kernel without IPIP cannot hold routes through tunl0: felix says so (tunnelWarnings), the lab does not wait for them.
    const noTunnel = tunl0Unusable(status) !== null;
    for (const [other, otherStatus] of statuses) {
      const peer = state.plan.nodes.find((n) => n.name === other)!;
      if (other !== node.name && !(noTunnel && needsTunnel(state.plan, node, peer))) want.push(...(otherStatus?.blocks ?? []));
    }
    want.push(...status.blocks);
    for (const w of state.plan.workloads) if (w.node === node.name && state.workloadIps[w.pod]) want.push(`${state.workloadIps[w.pod]}/32`);
    const absent = want.filter((dst) => !have.has(dst));
    if (absent.length > 0) missing.push(`${node.name}: no kernel route for ${absent.join(', ')}`);
  }
  // A router that carries traffic between the subnets by BGP must have every block in its kernel too.
  const router = state.plan.router;
  if (router !== null && router.forwards && router.kind !== 'plain') {
    const have = new Set(kernelDestinations(router.ns));
    const absent = [...statuses.values()].flatMap((s) => s?.blocks ?? []).filter((dst) => !have.has(dst));
    if (absent.length > 0) missing.push(`office router: no kernel route for ${absent.join(', ')}`);
  }
  return missing;
}

/** Why this agent's felix cannot use tunl0 although a pool needs it (no IPIP in the kernel...); null when it can or need not. */
function tunl0Unusable(status: AgentStatus): string | null {
  const dp = status.dataplane;
  return dp.mode === 'kernel' && dp.tunl0.needed && !dp.tunl0.supported ? dp.tunl0.reason : null;
}

/** One line per node whose felix cannot use tunl0 that the pool needs: what it said, and what does not work. */
export async function tunnelWarnings(state: LabState): Promise<string[]> {
  const lines: string[] = [];
  for (const node of state.plan.nodes) {
    const status = await nodeStatus(state, node.name);
    const reason = status === null ? null : tunl0Unusable(status);
    if (reason === null) continue;
    const cut = state.plan.nodes.filter((other) => other !== node && needsTunnel(state.plan, node, other)).map((o) => o.name);
    lines.push(`warning: ${node.name}: ${reason} — so its pods do not reach pods on ${cut.join(', ')} (ipipMode ${state.plan.options.ipipMode})`);
  }
  return lines;
}

function kernelDestinations(ns: string): string[] {
  const out = run('ip', ['-n', ns, '-4', '-json', 'route', 'show', 'table', 'main']);
  if (out.code !== 0) return [];
  const routes = JSON.parse(out.stdout || '[]') as Array<{ dst: string }>;
  return routes.map((r) => (r.dst.includes('/') || r.dst === 'default' ? r.dst : `${r.dst}/32`));
}

async function waitConverged(state: LabState, step: (text: string) => void): Promise<void> {
  let last: string[] = [];
  let reported = '';
  await waitUntil(
    async () => {
      last = await missingRoutes(state);
      const summary = last.length === 0 ? '' : `${last.length} node(s) not converged yet`;
      if (summary !== reported && summary !== '') step(summary);
      reported = summary;
      return last.length === 0;
    },
    () => `every session Established and every route in every kernel; still missing:\n  ${last.join('\n  ')}`,
    labTimeouts().convergeMs,
    200,
  );
  step('converged: every session Established, every block and workload route in every kernel');
}

// ---- status, ping, down --------------------------------------------------------------------------------------

export async function labStatus(state: LabState): Promise<string> {
  const parts: string[] = [];
  for (const node of state.plan.nodes) {
    parts.push(`==== ${node.name} (${node.ns}, ${node.ip}) ====`);
    const status = await nodeStatus(state, node.name);
    parts.push(status ? formatNodeStatus(status).trimEnd() : `the agent does not answer on ${agentSocket(state, node.name)}`);
    const routes = run('ip', ['-n', node.ns, '-4', 'route', 'show', 'table', 'main']).stdout
      .split('\n')
      .filter((line) => line.includes('proto 80') || line.includes(' dev cali'));
    parts.push('Routes programmed by felix:', ...routes.map((r) => `  ${r}`), '');
  }
  const router = state.plan.router;
  if (router !== null && router.kind !== 'plain') {
    parts.push(`==== office router (${router.kind === 'bird' ? 'BIRD 2' : 'FRR'}, ${router.ns}, AS ${router.asNumber}) ====`, officeRouterRoutes(state).trimEnd(), '');
  }
  return `${parts.join('\n')}\n`;
}

/** The office router's own view of the routes (`birdc show route` / `vtysh -c 'show bgp ipv4 unicast'`). */
export function officeRouterRoutes(state: LabState): string {
  const router = state.plan.router;
  if (router === null || router.kind === 'plain') return '';
  const result =
    router.kind === 'bird'
      ? run(BIRD2_CLIENT, ['-s', join(state.dir, 'bird.ctl'), 'show', 'route'])
      : run('vtysh', ['--vty_socket', join(state.dir, 'frr'), '-c', 'show bgp ipv4 unicast']);
  return result.code === 0 ? result.stdout : `(the office router did not answer: ${result.stderr.trim()})\n`;
}

export interface PingMatrix {
  pods: string[];
  /** ok[from][to]; the diagonal is true. */
  ok: boolean[][];
  failures: string[];
  /** Set when the matrix could not be measured at all (`ping is not installed (Debian: iputils-ping)`). */
  error?: string;
}

/** Pings every workload from every workload (one echo, 1 s), at most 8 at a time. */
export async function labPing(state: LabState): Promise<PingMatrix> {
  const workloads = state.plan.workloads;
  // `ip netns exec NS ping` without ping exits like a ping that got no answer: look first, and say so.
  if (findProgram('ping') === null) {
    const error = missingProgramMessage('ping');
    return { pods: workloads.map((w) => w.pod), ok: workloads.map((_, i) => workloads.map((__, j) => i === j)), failures: [error], error };
  }
  const ok = workloads.map(() => workloads.map(() => true));
  const jobs: Array<[number, number]> = [];
  for (let i = 0; i < workloads.length; i++) for (let j = 0; j < workloads.length; j++) if (i !== j) jobs.push([i, j]);
  const failures: string[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const [i, j] = jobs[next++]!;
      const from = workloads[i]!;
      const to = workloads[j]!;
      const ip = state.workloadIps[to.pod];
      const passed = ip !== undefined && (await pingOnce(from.ns, ip));
      ok[i]![j] = passed;
      if (!passed) failures.push(`${from.pod} → ${to.pod} (${ip ?? 'no address'})`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, jobs.length) }, () => worker()));
  return { pods: workloads.map((w) => w.pod), ok, failures };
}

function pingOnce(ns: string, ip: string): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn('ip', ['netns', 'exec', ns, 'ping', '-n', '-q', '-c', '1', '-W', '1', ip], { stdio: 'ignore' });
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code === 0);
    });
    child.once('error', () => resolve(false));
  });
}

export function formatPingMatrix(matrix: PingMatrix): string {
  const width = Math.max(6, ...matrix.pods.map((p) => p.length));
  const header = `${'from \\ to'.padEnd(width)} ${matrix.pods.map((p) => p.padStart(width)).join(' ')}`;
  const total = matrix.pods.length * (matrix.pods.length - 1);
  if (matrix.error !== undefined) return `${header}\nnot measured: ${matrix.error}; the ${total} pairs were not tried\n`;
  const rows = matrix.pods.map((from, i) => `${from.padEnd(width)} ${matrix.pods.map((_, j) => (i === j ? '-' : matrix.ok[i]![j] ? 'ok' : 'FAIL').padStart(width)).join(' ')}`);
  const summary = matrix.failures.length === 0 ? `all ${total} pairs reach each other` : `${matrix.failures.length} of ${total} pairs FAILED: ${matrix.failures.join(', ')}`;
  return `${header}\n${rows.join('\n')}\n${summary}\n`;
}

/** Ends every process the lab started (by PID, checked), removes its namespaces and directory. Safe twice. */
export async function labDown(name: string, io: LabIo): Promise<void> {
  const dir = labDir(name);
  const state = readState(dir);
  const processes = state?.processes ?? [];
  // Agents first (they stop their BGP sessions cleanly), then routers, relays, etcd last.
  const order = (p: LabProcess): number => (p.role.startsWith('agent-') ? 0 : p.role.startsWith('office-router') ? 1 : p.role.startsWith('relay-') ? 2 : 3);
  const sorted = [...processes].sort((a, b) => order(a) - order(b));
  for (const rank of [0, 1, 2, 3]) await Promise.all(sorted.filter((p) => order(p) === rank).map((p) => stopProcess(p)));
  const prefix = `${name}-`;
  const namespaces = new Set([...(state?.plan.namespaces ?? []), ...existingNamespaces().filter((ns) => ns.startsWith(prefix))]);
  let removed = 0;
  for (const ns of [...namespaces].reverse()) {
    if (run('ip', ['netns', 'del', ns]).code === 0) removed++;
  }
  rmSync(dir, { recursive: true, force: true });
  io.progress(state === null && removed === 0 ? `lab "${name}": nothing to remove` : `lab "${name}" removed: ${processes.length} processes stopped, ${removed} namespaces deleted`);
}

/** Kills one node's agent with SIGKILL (a crash), for restart experiments. */
export async function killAgent(state: LabState, name: string): Promise<void> {
  const proc = state.processes.find((p) => p.role === `agent-${name}`);
  if (!proc) throw new Error(`no agent process for "${name}" in lab "${state.plan.options.name}"`);
  await stopProcess(proc, 'SIGKILL', 2000);
}

/** For `lab status` on a lab whose state file names a namespace that is gone (someone deleted it). */
export function missingNamespaces(state: LabState): string[] {
  const have = new Set(existingNamespaces());
  return state.plan.namespaces.filter((ns) => !have.has(ns));
}
