// The lab with ipipMode Always on a kernel WITHOUT IPIP (these machines): felix's "no IPIP" path seen from
// the outside, with the real agents, etcd and CNI plugin. `lab up` must still come up — it does not wait
// for routes that need tunl0 — and say clearly, per node, why pods on other nodes are out of reach; the
// status shows felix's reason; every route that does not need tunl0 is in every kernel (each node's
// blackhole for its block, each workload's /32 on its cali interface), none points at a tunl0, and pods on
// the same node reach each other. Real IPIP traffic is checked in the VM (npm run test:kernel).
// Skipped (with the reason) where the kernel has IPIP: there this path cannot be reached.

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ipCommand } from '../../felix/ip-command.js';
import { checkIpip } from '../../ipip/tunl0.js';
import { labDown, labPing, labStatus, labUp, nodeStatus, type LabState } from '../../src/lab/lab.js';
import { LAB_DEFAULTS } from '../../src/lab/plan.js';
import { createNetns, destroyAllNetns, netnsUnavailableReason, runCommand } from '../harness/netns.js';

const CLI = resolve('dist/src/cli/main.js');
let unavailable =
  netnsUnavailableReason() ??
  (existsSync(CLI) ? null : `${CLI} is not built (npm run build)`) ??
  (existsSync('/usr/bin/etcd') ? null : 'etcd-server is not installed');
if (unavailable === null) {
  const probe = await createNetns('noipip');
  const support = await checkIpip(probe.name, { ip: ipCommand({ netns: probe.name }) });
  await destroyAllNetns();
  if (support.supported)
    unavailable =
      'this kernel has IPIP: the no-IPIP path cannot be reached here (npm run test:kernel checks the real tunnel)';
}
if (unavailable !== null) console.warn(`SKIPPING lab-no-ipip: ${unavailable}`);

const root = mkdtempSync(join(tmpdir(), 'tortie-lab-noipip-'));
const name = `ni${(process.pid % 1296).toString(36)}`;
const progress: string[] = [];

beforeAll(() => {
  process.env.TORTIE_LAB_ROOT = root;
});

afterAll(async () => {
  await labDown(name, { progress: () => undefined });
  rmSync(root, { recursive: true, force: true });
});

describe.skipIf(unavailable !== null)('lab --ipip Always on a kernel without IPIP', () => {
  let state: LabState;

  it("comes up, warning per node that its pods cannot reach the other node's, with felix's reason", async () => {
    state = await labUp(
      { ...LAB_DEFAULTS, name, nodes: 2, ipipMode: 'Always', workloadsPerNode: 2 },
      { progress: (l) => progress.push(l) },
      [process.execPath, CLI],
    );
    const warnings = progress.filter((l) => l.includes('warning:'));
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(
      /warning: node-1: the kernel has no IPIP support.*so its pods do not reach pods on node-2 \(ipipMode Always\)/,
    );
    expect(warnings[1]).toMatch(/warning: node-2: .*no IPIP support.*pods on node-1/);
    expect(progress.join('\n')).toContain(
      `tortie lab down --name ${name}, then tortie lab up --vm with the same options`,
    );
  }, 120_000);

  it('status: tunl0 unavailable and why, on every node', async () => {
    const text = await labStatus(state);
    for (const node of state.plan.nodes) {
      const status = await nodeStatus(state, node.name);
      expect(status?.dataplane).toMatchObject({ mode: 'kernel', tunl0: { needed: true, supported: false } });
    }
    const sections = text.split(/^==== /m).filter((part) => part.startsWith('node-'));
    expect(sections).toHaveLength(2);
    for (const section of sections) {
      expect(section).toContain('tunl0 unavailable');
      expect(section).toMatch(/no IPIP support.*routes through tunl0 are not programmed/);
    }
  });

  it('every route that does not need tunl0 is in every kernel, none points at tunl0', async () => {
    for (const node of state.plan.nodes) {
      const routes = (await runCommand('ip', ['-n', node.ns, '-4', 'route', 'show', 'table', 'main'])).stdout;
      const block = (await nodeStatus(state, node.name))!.blocks[0]!;
      expect(routes).toContain(`blackhole ${block} proto 80`);
      for (const w of state.plan.workloads.filter((x) => x.node === node.name)) {
        expect(routes).toMatch(
          new RegExp(`^${state.workloadIps[w.pod]!.replace(/\./g, '\\.')} dev cali[0-9a-f]{11} .*scope link`, 'm'),
        );
      }
      expect(routes).not.toContain('tunl0');
      const other = state.plan.nodes.find((n) => n !== node)!;
      const otherBlock = (await nodeStatus(state, other.name))!.blocks[0]!;
      expect(routes).not.toContain(`${otherBlock} via`);
    }
  });

  it('pods on the same node reach each other; across nodes they do not', async () => {
    const matrix = await labPing(state);
    const pods = state.plan.workloads;
    for (let i = 0; i < pods.length; i++) {
      for (let j = 0; j < pods.length; j++) {
        if (i === j) continue;
        expect(matrix.ok[i]![j], `${pods[i]!.pod} → ${pods[j]!.pod}`).toBe(pods[i]!.node === pods[j]!.node);
      }
    }
  }, 60_000);
});
