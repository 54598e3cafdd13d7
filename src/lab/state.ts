// The lab's state: what `lab up` made (state.json in the lab's directory, so `down` can end exactly that),
// and the lab's deadlines.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LabPlan } from './plan.js';

export const DEFAULT_LAB_ROOT = '/var/run/tortie-lab';
/** Where each node's relay listens, inside the node's namespace (the agents' and CNI plugin's ETCD_ENDPOINTS). */
export const NODE_ETCD_PORT = 2379;

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
    throw new Error(
      `TORTIE_LAB_SLOWDOWN="${raw}": a whole number 1..50 that multiplies every deadline of the lab (like 6 in a software-emulated VM); unset = 1`,
    );
  }
  return {
    etcdMs: 20_000 * factor,
    agentMs: 30_000 * factor,
    convergeMs: 60_000 * factor,
    cniMs: 30_000 * factor,
    datastoreMs: factor === 1 ? undefined : 5000 * factor,
  };
}

/**
 * TORTIE_DATASTORE_TIMEOUT_MS for what the lab starts, when the lab is slowed down; for an agent also
 * WAIT_FOR_DATASTORE, because on a slow machine its node's relay (a process started at the same time) may
 * listen only after the agent's first connection attempt has given up.
 */
export function datastoreTimeoutEnv(forAgent = false): Record<string, string> {
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

export function statePath(dir: string): string {
  return join(dir, 'state.json');
}

export function readState(dir: string): LabState | null {
  try {
    return JSON.parse(readFileSync(statePath(dir), 'utf8')) as LabState;
  } catch {
    return null;
  }
}

export function saveState(state: LabState): void {
  writeFileSync(statePath(state.dir), `${JSON.stringify(state, null, 2)}\n`);
}
