// What runs in each node namespace: the relay to the lab's etcd, the agent (`tortie node run`), and the CNI
// plugin, called exactly as a container runtime calls it to make the workloads.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { queryControl } from '../agent/control.js';
import type { AgentStatus } from '../agent/types.js';
import type { LabWorkload } from './plan.js';
import { alive, logTail, run, spawnDetached, stopProcess, waitUntil } from './processes.js';
import {
  datastoreTimeoutEnv,
  labTimeouts,
  NODE_ETCD_PORT,
  saveState,
  type LabProcess,
  type LabState,
} from './state.js';

export function agentSocket(state: LabState, node: string): string {
  return join(state.dir, node, 'tortie.ctl');
}

/** The node agent's CNI socket: one per node (on a real host it is /var/run/tortie/cni.sock, one agent per host). */
export function cniSocket(state: LabState, node: string): string {
  return join(state.dir, node, 'cni.sock');
}

export async function startAgents(state: LabState, step: (text: string) => void): Promise<void> {
  for (const node of state.plan.nodes) {
    const socket = join(state.dir, 'etcd.sock');
    spawnDetached(state, `relay-${node.name}`, socket, 'ip', [
      'netns',
      'exec',
      node.ns,
      ...state.command,
      'lab',
      'relay',
      `tcp:127.0.0.1:${NODE_ETCD_PORT}`,
      `unix:${socket}`,
    ]);
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
  if (!node)
    throw new Error(
      `no node "${name}" in lab "${state.plan.options.name}" (nodes: ${state.plan.nodes.map((n) => n.name).join(', ')})`,
    );
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
    CALICO_NETWORKING_BACKEND: state.plan.options.backend ?? 'bird',
    TORTIE_CTL_SOCKET: agentSocket(state, name),
    TORTIE_CNI_SOCKET: cniSocket(state, name),
    // BGP passwords on etcd: mounted-Secret files, DIR/<secret name>/<key> (src/agent/secrets.ts).
    TORTIE_BGP_SECRETS_DIR: labSecretsDir(state),
    TORTIE_LOG_LEVEL: process.env.TORTIE_LOG_LEVEL ?? 'info',
    ...datastoreTimeoutEnv(true),
  };
  return spawnDetached(
    state,
    `agent-${name}`,
    agentSocket(state, name),
    'ip',
    ['netns', 'exec', node.ns, ...state.command, 'node', 'run'],
    env,
  );
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
export function runCni(
  state: LabState,
  workload: LabWorkload,
  command: 'ADD' | 'DEL' | 'CHECK',
): Record<string, unknown> {
  const node = state.plan.nodes.find((n) => n.name === workload.node)!;
  const env = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: workload.containerId,
    CNI_NETNS: `/var/run/netns/${workload.ns}`,
    CNI_IFNAME: 'eth0',
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${workload.namespace};K8S_POD_NAME=${workload.pod};K8S_POD_INFRA_CONTAINER_ID=${workload.containerId}`,
    CNI_PATH: '/opt/cni/bin',
    // The plugin asks this node's agent first (src/cni/client.ts) and works alone when it does not answer.
    TORTIE_CNI_SOCKET: cniSocket(state, workload.node),
    ...datastoreTimeoutEnv(),
  };
  const result = run('ip', ['netns', 'exec', node.ns, ...state.command], {
    env,
    input: JSON.stringify(cniConfig(workload.node)),
    timeoutMs: labTimeouts().cniMs,
  });
  let answer: Record<string, unknown> = {};
  try {
    answer = result.stdout.trim() === '' ? {} : (JSON.parse(result.stdout) as Record<string, unknown>);
  } catch {
    throw new Error(
      `the CNI plugin's ${command} for ${workload.pod} printed no JSON (exit ${result.code}): ${result.stdout.slice(0, 200)} ${result.stderr.slice(0, 200)}`,
    );
  }
  if (result.code !== 0)
    throw new Error(
      `the CNI plugin's ${command} for ${workload.pod} failed (exit ${result.code}): ${String(answer.msg ?? '')} ${String(answer.details ?? '')} ${result.stderr.trim()}`,
    );
  return answer;
}

export async function addWorkloads(state: LabState, step: (text: string) => void): Promise<void> {
  for (const workload of state.plan.workloads) {
    const answer = runCni(state, workload, 'ADD');
    const ips = answer.ips as Array<{ address?: string }> | undefined;
    const address = ips?.[0]?.address?.split('/')[0];
    if (address === undefined)
      throw new Error(`the CNI plugin's ADD for ${workload.pod} gave no address: ${JSON.stringify(answer)}`);
    state.workloadIps[workload.pod] = address;
    saveState(state);
  }
  step(
    `workloads (CNI ADD): ${state.plan.workloads.map((w) => `${w.pod}@${w.node} ${state.workloadIps[w.pod]}`).join(', ')}`,
  );
}

/** Kills one node's agent with SIGKILL (a crash), for restart experiments. */
export async function killAgent(state: LabState, name: string): Promise<void> {
  const proc = state.processes.find((p) => p.role === `agent-${name}`);
  if (!proc) throw new Error(`no agent process for "${name}" in lab "${state.plan.options.name}"`);
  await stopProcess(proc, 'SIGKILL', 2000);
}
