// Containment in the node agent (issue #15): work the agent starts without awaiting it (the live IPIP
// tunnel address, a dataplane update on a Speaker event, Speaker event listeners, the cache's 'changed'
// listener) must never end as an unhandled rejection or an uncaught exception: it is logged, kept as the
// agent's last error or a warning, and tried again on the next change.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import { Agent, type DataplaneLike, type SpeakerLike } from '../../../src/agent/agent.js';
import { parseAgentConfig } from '../../../src/agent/config.js';
import { AgentMetrics } from '../../../src/agent/metrics.js';
import { MemoryDatastore } from '../../../src/datastore/memory.js';
import type { Kind, Resource } from '../../../src/resources/types.js';
import { waitFor } from '../../harness/wait.js';
import { INTERFACES, res, running, until } from '../helpers/agent-fixtures.js';
import { FakeSpeaker } from '../helpers/fake-speaker.js';

/** A MemoryDatastore whose get() of a Node fails while `failNodeReads` is set (an etcd that just went away). */
class FlakyDatastore extends MemoryDatastore {
  failNodeReads = false;
  override async get<K extends Kind>(kind: K, name: string, namespace?: string): Promise<Resource<K> | null> {
    if (this.failNodeReads && kind === 'Node') throw new Error('etcd at http://127.0.0.1:2379: unavailable');
    return super.get(kind, name, namespace);
  }
}

/** Unhandled rejections and uncaught exceptions seen while a test runs. */
const escaped: unknown[] = [];
const onEscape = (error: unknown) => escaped.push(error);
beforeEach(() => {
  escaped.length = 0;
  process.on('unhandledRejection', onEscape);
  process.on('uncaughtException', onEscape);
});
afterEach(() => {
  process.off('unhandledRejection', onEscape);
  process.off('uncaughtException', onEscape);
});

function makeAgent(
  env: Record<string, string>,
  ds: MemoryDatastore,
  extra: { dataplane?: DataplaneLike; metrics?: AgentMetrics } = {},
) {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: 'warn' },
    { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
  );
  const speakers: FakeSpeaker[] = [];
  const config = parseAgentConfig(
    {
      NODENAME: 'node-1',
      TORTIE_DATAPLANE: extra.dataplane ? 'kernel' : 'none',
      TORTIE_HEALTH_PORT: '0',
      IP: '198.18.0.11/24',
      ...env,
    },
    'unused',
  );
  const agent = new Agent(config, {
    datastore: ds,
    logger,
    createSpeaker: (c) => {
      const s = new FakeSpeaker(c);
      speakers.push(s);
      return s as unknown as SpeakerLike;
    },
    ...(extra.dataplane ? { createDataplane: () => extra.dataplane!, createPolicyDataplane: () => null } : {}),
    ...(extra.metrics ? { metrics: extra.metrics } : {}),
    interfaces: () => INTERFACES,
    serveControl: null,
    startHealth: null,
    coalesceMs: 1,
    version: 'test',
  });
  running.push(agent);
  return { agent, lines, speaker: () => speakers[speakers.length - 1]! };
}

describe('the live IPIP tunnel address', () => {
  it('a failed datastore read is a warning, not an unhandled rejection, and the next change tries again', async () => {
    const ds = new FlakyDatastore();
    await ds.create(res('IPPool', 'pool', { cidr: '10.9.0.0/16', ipipMode: 'Never' }));
    const { agent } = makeAgent({ NO_DEFAULT_POOLS: 'true' }, ds);
    await agent.start();
    expect((await ds.get('Node', 'node-1'))?.spec.bgp?.ipv4IPIPTunnelAddr).toBeUndefined();

    // The pool switches to IPIP while the datastore cannot be read: the tunnel address cannot be allocated.
    ds.failNodeReads = true;
    const pool = (await ds.get('IPPool', 'pool'))!;
    await ds.update({ ...pool, spec: { ...pool.spec, ipipMode: 'Always' } });
    await until(
      () => agent.status().warnings.some((w) => w.startsWith('no IPIP tunnel address: ') && w.includes('unavailable')),
      'the warning',
    );
    expect(escaped).toEqual([]);

    // The datastore is back; the next change (any kind) tries again, and the warning goes.
    ds.failNodeReads = false;
    await ds.create(res('IPPool', 'other', { cidr: '10.10.0.0/16', ipipMode: 'Never' }));
    expect(
      await waitFor(async () => (await ds.get('Node', 'node-1'))?.spec.bgp?.ipv4IPIPTunnelAddr, {
        what: 'the tunnel address on Node node-1',
        timeoutMs: 5_000,
        intervalMs: 5,
      }),
    ).toMatch(/^10\.9\.0\.\d+$/);
    await until(
      () => !agent.status().warnings.some((w) => w.startsWith('no IPIP tunnel address: ')),
      'the warning to go',
    );
    expect(escaped).toEqual([]);
  });
});

/** A dataplane whose update() throws while `failing` is set. */
function fakeDataplane() {
  const state = { failing: false, updates: 0 };
  const dataplane: DataplaneLike = {
    start: () => undefined,
    stop: async () => undefined,
    update: () => {
      if (state.failing) throw new Error('netlink: no buffer space');
      state.updates++;
    },
    bgpSettled: () => undefined,
    status: () =>
      ({ inSync: true, tunl0: { needed: false, supported: true } }) as unknown as ReturnType<DataplaneLike['status']>,
    programmed: () => false,
  };
  return { dataplane, state };
}

describe('work started by Speaker events', () => {
  it('a dataplane update that throws after a BGP update is logged and kept as the last error; the next update works', async () => {
    const { dataplane, state } = fakeDataplane();
    const { agent, lines, speaker } = makeAgent({}, new MemoryDatastore(), { dataplane });
    await agent.start();
    const before = state.updates;
    state.failing = true;
    speaker().emit('update', { peer: '198.18.0.12', announced: [], withdrawn: [] } as never);
    await until(() => lines.some((l) => String(l.err).includes('no buffer space')), 'the error logged');
    expect(agent.status().datastore.lastError ?? '').toContain('no buffer space');
    expect(escaped).toEqual([]);
    state.failing = false;
    speaker().emit('update', { peer: '198.18.0.12', announced: [], withdrawn: [] } as never);
    await until(() => state.updates > before, 'a working update');
    expect(escaped).toEqual([]);
  });

  it('a listener that throws on a session state change does not throw into the Speaker', async () => {
    const metrics = new AgentMetrics({ processMetrics: false });
    metrics.observeSessions = () => {
      throw new Error('gauge exploded');
    };
    const { agent, lines, speaker } = makeAgent({}, new MemoryDatastore(), { metrics });
    await agent.start();
    expect(() =>
      speaker().emit('state', { peer: '198.18.0.12', from: 'Active', to: 'Established' } as never),
    ).not.toThrow();
    expect(lines.some((l) => String(l.err).includes('gauge exploded'))).toBe(true);
    expect(escaped).toEqual([]);
  });
});
