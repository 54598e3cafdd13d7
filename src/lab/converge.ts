// When the lab is up: "converged" means more than sessions up — every node's kernel must hold a route for
// every other node's block and every local workload, and a forwarding office router every block. The wait
// reads the kernels, not just the agents' opinions, and says what was still missing at its deadline.

import type { AgentStatus } from '../agent/types.js';
import { kernelDestinations } from './network.js';
import { nodeStatus } from './nodes.js';
import { needsTunnel } from './plan.js';
import { waitUntil } from './processes.js';
import { labTimeouts, type LabState } from './state.js';

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
    if (down.length > 0)
      missing.push(`${node.name}: BGP with ${down.map((p) => `${p.address} (${p.bgpState})`).join(', ')}`);
    const have = new Set(kernelDestinations(node.ns));
    const want: string[] = [];
    // A kernel without IPIP cannot hold routes through tunl0: felix says so (tunnelWarnings), the lab does not wait for them.
    const noTunnel = tunl0Unusable(status) !== null;
    for (const [other, otherStatus] of statuses) {
      const peer = state.plan.nodes.find((n) => n.name === other)!;
      if (other !== node.name && !(noTunnel && needsTunnel(state.plan, node, peer)))
        want.push(...(otherStatus?.blocks ?? []));
    }
    want.push(...status.blocks);
    for (const w of state.plan.workloads)
      if (w.node === node.name && state.workloadIps[w.pod]) want.push(`${state.workloadIps[w.pod]}/32`);
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
    const cut = state.plan.nodes
      .filter((other) => other !== node && needsTunnel(state.plan, node, other))
      .map((o) => o.name);
    lines.push(
      `warning: ${node.name}: ${reason} — so its pods do not reach pods on ${cut.join(', ')} (ipipMode ${state.plan.options.ipipMode})`,
    );
  }
  return lines;
}

export async function waitConverged(state: LabState, step: (text: string) => void): Promise<void> {
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
