// The agent's NetworkPolicy enforcer against a recording dataplane and hand-driven timers: what it
// summarises for `node status`, one write in flight with the newest input winning, a failed write retried
// as a full resync, the periodic resync, and nothing after stop().

import { describe, expect, it } from 'vitest';
import { PolicyEnforcer, type EnforcerTimers, type PolicyInput } from '../../../src/policy/enforcer.js';
import type { ApplyStats } from '../../../felix/policy-dataplane.js';
import { applyDefaults, type NetworkPolicySpec, type Resource } from '../../../src/resources/index.js';
import type { DesiredFilter } from '../../../felix/policy-dataplane.js';

const STATS: ApplyStats = { setsWritten: 0, chainsWritten: 1, setsDeleted: 0, chainsDeleted: 0, scriptLines: 3 };

function policy(name: string, spec: NetworkPolicySpec): Resource<'NetworkPolicy'> {
  return applyDefaults({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace: 'prod' },
    spec,
  });
}

function wep(pod: string, node: string, ip: string, labels: Record<string, string>): Resource<'WorkloadEndpoint'> {
  return {
    apiVersion: 'projectcalico.org/v3',
    kind: 'WorkloadEndpoint',
    metadata: { name: `${node}-k8s-${pod}-eth0`, namespace: 'prod', labels },
    spec: { node, pod, interfaceName: `cali${pod}`, ipNetworks: [`${ip}/32`] },
  };
}

const DENY_WEB_INGRESS = policy('web-ingress', {
  podSelector: { matchLabels: { app: 'web' } },
  policyTypes: ['Ingress'],
});
const DENY_ALL_EGRESS = policy('no-egress', { podSelector: {}, policyTypes: ['Egress'] });

function input(policies: Array<Resource<'NetworkPolicy'>>): PolicyInput {
  return {
    policies,
    namespaces: [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'prod' }, spec: {} }],
    workloadEndpoints: [
      wep('web', 'node-1', '10.244.1.2', { app: 'web' }),
      wep('db', 'node-1', '10.244.1.3', { app: 'db' }),
      wep('other', 'node-2', '10.244.2.4', { app: 'web' }),
    ],
    nodes: [],
  };
}

/** A dataplane whose calls wait until the test lets them finish (or fail). */
function recordingDataplane() {
  const calls: Array<{
    kind: 'apply' | 'resync';
    filter: DesiredFilter;
    finish: () => void;
    fail: (e: Error) => void;
  }> = [];
  const call = (kind: 'apply' | 'resync') => (filter: DesiredFilter) =>
    new Promise<ApplyStats>((resolve, reject) =>
      calls.push({ kind, filter, finish: () => resolve(STATS), fail: reject }),
    );
  return { calls, dataplane: { apply: call('apply'), resync: call('resync') } };
}

function manualTimers() {
  const pending = new Map<object, { fn: () => void; ms: number }>();
  const timers: EnforcerTimers = {
    setTimeout: (fn, ms) => {
      const handle = {};
      pending.set(handle, { fn, ms });
      return handle;
    },
    clearTimeout: (h) => void pending.delete(h),
  };
  const fire = () => {
    const all = [...pending.entries()];
    pending.clear();
    for (const [, t] of all) t.fn();
    return all.map(([, t]) => t.ms);
  };
  return { timers, pending, fire };
}

const quiet = { info: () => undefined, warn: () => undefined };
const tick = () => new Promise((r) => setImmediate(r));

describe('PolicyEnforcer', () => {
  it('summarises what this node enforces: policies in the cluster, local workloads, isolated per direction', async () => {
    const { calls, dataplane } = recordingDataplane();
    const { timers } = manualTimers();
    const enforcer = new PolicyEnforcer({ dataplane, node: 'node-1', log: quiet, timers });
    expect(enforcer.status().summary).toBeNull();
    enforcer.update(input([DENY_WEB_INGRESS, DENY_ALL_EGRESS]));
    await tick();
    // node-2's "other" pod is not this node's; web is isolated both ways, db for egress only.
    expect(enforcer.status().summary).toEqual({ policies: 2, endpoints: 2, isolatedIngress: 1, isolatedEgress: 2 });
    expect(enforcer.status().inSync).toBe(false); // written only when the dataplane says so
    calls[0]!.finish();
    await enforcer.settled();
    expect(enforcer.status()).toMatchObject({ inSync: true, writes: 1, lastError: null, lastStats: STATS });
    enforcer.stop();
  });

  it('writes one at a time; inputs arriving meanwhile collapse into one write of the newest', async () => {
    const { calls, dataplane } = recordingDataplane();
    const { timers } = manualTimers();
    const enforcer = new PolicyEnforcer({ dataplane, node: 'node-1', log: quiet, timers });
    enforcer.update(input([]));
    await tick();
    enforcer.update(input([DENY_WEB_INGRESS]));
    enforcer.update(input([DENY_WEB_INGRESS, DENY_ALL_EGRESS]));
    await tick();
    expect(calls).toHaveLength(1);
    calls[0]!.finish();
    await tick();
    await tick();
    expect(calls).toHaveLength(2);
    expect(calls[1]!.kind).toBe('apply');
    expect(enforcer.status().summary?.policies).toBe(2); // the middle input was never compiled for writing
    calls[1]!.finish();
    await enforcer.settled();
    expect(enforcer.status().writes).toBe(2);
    enforcer.stop();
  });

  it('a failed write is reported, then retried after retryMs as a full resync', async () => {
    const { calls, dataplane } = recordingDataplane();
    const { timers, fire } = manualTimers();
    const enforcer = new PolicyEnforcer({
      dataplane,
      node: 'node-1',
      log: quiet,
      timers,
      retryMs: 1234,
      resyncMs: 90_000,
    });
    enforcer.update(input([DENY_WEB_INGRESS]));
    await tick();
    calls[0]!.fail(new Error('nft: Operation not permitted'));
    await enforcer.settled();
    expect(enforcer.status()).toMatchObject({ inSync: false, writes: 0, lastError: 'nft: Operation not permitted' });
    expect(fire()).toEqual([1234]);
    await tick();
    expect(calls[1]?.kind).toBe('resync');
    calls[1]!.finish();
    await enforcer.settled();
    expect(enforcer.status()).toMatchObject({ inSync: true, writes: 1, lastError: null });
    enforcer.stop();
  });

  it('after a good write, the next check is a full resync after resyncMs; after stop() nothing more is written', async () => {
    const { calls, dataplane } = recordingDataplane();
    const { timers, pending, fire } = manualTimers();
    const enforcer = new PolicyEnforcer({ dataplane, node: 'node-1', log: quiet, timers, resyncMs: 5000 });
    enforcer.update(input([DENY_WEB_INGRESS]));
    await tick();
    calls[0]!.finish();
    await enforcer.settled();
    expect(fire()).toEqual([5000]);
    await tick();
    expect(calls[1]?.kind).toBe('resync');
    calls[1]!.finish();
    await enforcer.settled();
    enforcer.stop();
    expect(pending.size).toBe(0);
    enforcer.update(input([]));
    await tick();
    expect(calls).toHaveLength(2);
  });
});
