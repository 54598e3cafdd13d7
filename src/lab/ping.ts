// `lab ping`: every workload pings every other (one echo each, at most 8 at a time), as a matrix.

import { findProgram, missingProgramMessage, runCommand } from '../../felix/index.js';
import type { LabState } from './state.js';

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
    return {
      pods: workloads.map((w) => w.pod),
      ok: workloads.map((_, i) => workloads.map((__, j) => i === j)),
      failures: [error],
      error,
    };
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
  return runCommand({
    command: 'ip',
    args: ['netns', 'exec', ns, 'ping', '-n', '-q', '-c', '1', '-W', '1', ip],
    timeoutMs: 5000,
  }).then(
    (result) => result.code === 0,
    () => false,
  );
}

export function formatPingMatrix(matrix: PingMatrix): string {
  const width = Math.max(6, ...matrix.pods.map((p) => p.length));
  const header = `${'from \\ to'.padEnd(width)} ${matrix.pods.map((p) => p.padStart(width)).join(' ')}`;
  const total = matrix.pods.length * (matrix.pods.length - 1);
  if (matrix.error !== undefined)
    return `${header}\nnot measured: ${matrix.error}; the ${total} pairs were not tried\n`;
  const rows = matrix.pods.map(
    (from, i) =>
      `${from.padEnd(width)} ${matrix.pods.map((_, j) => (i === j ? '-' : matrix.ok[i]![j] ? 'ok' : 'FAIL').padStart(width)).join(' ')}`,
  );
  const summary =
    matrix.failures.length === 0
      ? `all ${total} pairs reach each other`
      : `${matrix.failures.length} of ${total} pairs FAILED: ${matrix.failures.join(', ')}`;
  return `${header}\n${rows.join('\n')}\n${summary}\n`;
}
