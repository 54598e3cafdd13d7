// The Agent's import protection wiring, on a MemoryDatastore with a fake Speaker: the judge it gives the
// Speaker refuses by the cluster's state (this node's block, a block nobody owns yet), a new affinity makes
// it re-judge that block only, refused routes are listed with their reason, and the metric counts them.

import { describe, expect, it } from 'vitest';
import { formatPrefix, parseIpv4, parsePrefix, prefixKey } from '../../../bgp/ip.js';
import { Route, type Attrs } from '../../../bgp/rib/index.js';
import { AgentMetrics } from '../../../src/agent/metrics.js';
import { formatRoutes } from '../../../src/agent/status-format.js';
import { MemoryDatastore } from '../../../src/datastore/memory.js';
import { res, testAgent, until } from '../helpers/agent-fixtures.js';

const NODE_2 = '198.18.0.12';

async function started() {
  const ds = new MemoryDatastore();
  await ds.create(res('IPPool', 'pods', { cidr: '10.244.0.0/16', ipipMode: 'Never', blockSize: 26 }));
  await ds.create(res('Node', 'node-2', { bgp: { ipv4Address: `${NODE_2}/24` } }));
  const metrics = new AgentMetrics({ processMetrics: false });
  const { agent, last } = testAgent({ IP: '198.18.0.11/24' }, ds, { metrics, controlPlane: ['203.0.113.10'] });
  await agent.start();
  const speaker = last();
  const judge = speaker.config.importJudge!;
  expect(judge).toBeTypeOf('function');
  /** The judge's verdict on `prefix` via `nextHop`, announced by the peer at `from`. */
  const verdict = (prefix: string, nextHop: string, from = NODE_2) =>
    judge(
      new Route(prefixKey(parsePrefix(prefix)), { nextHop: parseIpv4(nextHop), asPath: [] } as unknown as Attrs, {
        address: parseIpv4(from),
        routerId: 1,
        asn: 64512,
        ebgp: false,
        rrClient: false,
      }),
    );
  return { ds, agent, speaker, metrics, verdict };
}

describe('Agent import protection', () => {
  it("refuses this node's block, a default route and a block nobody owns; a new affinity re-judges that block only", async () => {
    const { ds, agent, speaker, verdict } = await started();
    const own = agent.status().blocks[0]!;
    expect(own).toBe('10.244.0.0/26');
    expect(verdict(own, NODE_2)).toBe('own-block');
    expect(verdict('0.0.0.0/0', NODE_2)).toBe('default-route');
    expect(verdict('203.0.113.10/32', '198.18.0.1', '198.18.0.1')).toBe('control-plane');
    expect(verdict('10.244.0.64/26', NODE_2)).toBe('unowned-block');
    expect(verdict('10.244.0.64/26', '198.18.0.1', '198.18.0.1')).toBeNull(); // an external router: exempt
    const before = speaker.rejudged.length;
    await ds.create(
      res('BlockAffinity', 'node-2-10-244-0-64-26', { state: 'confirmed', node: 'node-2', cidr: '10.244.0.64/26' }),
    );
    const scope = await until(
      () => speaker.rejudged.length > before && speaker.rejudged[speaker.rejudged.length - 1],
      'a rejudge after the affinity',
    );
    expect(scope.map(formatPrefix)).toEqual(['10.244.0.64/26']);
    expect(verdict('10.244.0.64/26', NODE_2)).toBeNull();
    expect(verdict('10.244.0.64/26', '198.18.0.13')).toBe('next-hop-not-owner');
    // A workload change is not something the judge looks at: the pass it causes (a borrowed address now
    // originated) re-judges nothing.
    const count = speaker.rejudged.length;
    await ds.create(
      res(
        'WorkloadEndpoint',
        'node-1-k8s-web-eth0',
        { node: 'node-1', pod: 'web', interfaceName: 'cali0', ipNetworks: ['10.244.0.70/32'] },
        'default',
      ),
    );
    await until(
      () => speaker.originated.some((r) => formatPrefix(r.prefix) === '10.244.0.70/32'),
      'the pass after the workload change',
    );
    expect(speaker.rejudged.length).toBe(count);
  });

  it('lists refused routes with their reason (table and JSON) and counts refusals per peer and reason', async () => {
    const { agent, speaker, metrics } = await started();
    speaker.refused = [
      {
        prefix: parsePrefix('10.244.0.0/26'),
        attrs: { nextHop: parseIpv4(NODE_2), asPath: [] },
        from: NODE_2,
        reason: 'own-block',
        stale: false,
      },
    ];
    const rows = agent.routes();
    expect(rows).toEqual([
      {
        prefix: '10.244.0.0/26',
        nextHop: NODE_2,
        asPath: [],
        from: NODE_2,
        best: false,
        stale: false,
        inKernel: false,
        refused: 'own-block',
      },
    ]);
    expect(formatRoutes(rows)).toMatch(/10\.244\.0\.0\/26 .*refused: own-block/);
    speaker.emit('refused', { peer: NODE_2, prefix: parsePrefix('10.244.0.0/26'), reason: 'own-block' });
    speaker.emit('refused', { peer: NODE_2, prefix: parsePrefix('0.0.0.0/1'), reason: 'default-route' });
    speaker.emit('refused', { peer: NODE_2, prefix: parsePrefix('128.0.0.0/1'), reason: 'default-route' });
    const text = await metrics.render();
    expect(text).toContain(`tortie_bgp_import_refused_total{peer="${NODE_2}",reason="own-block"} 1`);
    expect(text).toContain(`tortie_bgp_import_refused_total{peer="${NODE_2}",reason="default-route"} 2`);
  });
});
