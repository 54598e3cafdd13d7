// The Agent with peers that come and go with the cluster rather than with BGPPeers: its Node losing its IPv4
// address (IPv4 disabled: no sessions, node status says why, the agent carries on) and BGP with local
// workloads (BGPPeer localWorkloadSelector: a WorkloadEndpoint appearing on this node adds a passive
// Local_Workload session, its removal removes it). On a MemoryDatastore with a fake Speaker.

import { describe, expect, it } from 'vitest';
import { MemoryDatastore } from '../../../src/datastore/memory.js';
import type { Resource } from '../../../src/resources/index.js';
import { res, testAgent, until } from '../helpers/agent-fixtures.js';

describe('Agent: a Node without an IPv4 address', () => {
  it('has no sessions, says IPv4 is disabled in node status, stays ready, and peers again when the address is back', async () => {
    const ds = new MemoryDatastore();
    await ds.create(res('BGPPeer', 'tor', { peerIP: '198.18.0.1', asNumber: 65001 }));
    const { agent, last } = testAgent({ IP: '198.18.0.11/24', AS: '64512' }, ds);
    await agent.start();
    await until(() => last().peers.length === 1, 'the ToR peer');
    const node = (await ds.get('Node', 'node-1'))!;
    const { ipv4Address: _removed, ...bgp } = node.spec.bgp!;
    await ds.update({ ...node, spec: { ...node.spec, bgp } } as Resource<'Node'>);
    await until(() => last().peers.length === 0, 'no peers with IPv4 disabled');
    const status = agent.status();
    expect(status.warnings).toContainEqual(
      expect.stringMatching(/^Node node-1 has no usable spec\.bgp\.ipv4Address: IPv4 is disabled on this node/),
    );
    expect(status.peers).toEqual([]);
    expect(agent.readiness()).toEqual({ ready: true });
    expect(last().stopped).toBe(false); // the Speaker keeps its identity; nothing crashed
    const again = (await ds.get('Node', 'node-1'))!;
    await ds.update({ ...again, spec: { ...again.spec, bgp: { ...again.spec.bgp, ipv4Address: '198.18.0.11/24' } } });
    await until(() => last().peers.length === 1, 'the ToR peer back');
    expect(agent.status().warnings.join('\n')).not.toContain('IPv4 is disabled');
  });
});

describe('Agent: BGPPeer localWorkloadSelector', () => {
  it('a selected workload on this node adds a passive Local_Workload session; deleting it removes the session', async () => {
    const ds = new MemoryDatastore();
    await ds.create(res('BGPConfiguration', 'default', { nodeToNodeMeshEnabled: false }));
    await ds.create(res('BGPPeer', 'vrouters', { localWorkloadSelector: "app == 'vrouter'", asNumber: 65010 }));
    const { agent, last } = testAgent({ IP: '198.18.0.11/24', AS: '64512' }, ds);
    await agent.start();
    expect(last().peers).toEqual([]);
    const wep = (name: string, nodeName: string, ip: string) =>
      res(
        'WorkloadEndpoint',
        name,
        { node: nodeName, interfaceName: `cali${name}`, ipNetworks: [`${ip}/32`], orchestrator: 'k8s' },
        'default',
      ) as Resource<'WorkloadEndpoint'>;
    const mine = wep('vr1', 'node-1', '10.244.0.5');
    mine.metadata.labels = { app: 'vrouter' };
    const theirs = wep('vr2', 'node-2', '10.244.9.5');
    theirs.metadata.labels = { app: 'vrouter' };
    await ds.create(theirs);
    await ds.create(mine);
    const peer = await until(() => last().peers.find((p) => p.address === '10.244.0.5'), 'the workload session');
    expect(peer).toMatchObject({ port: 179, peerAs: 65010, passive: true });
    expect(peer.localAddress).toBeUndefined();
    expect(last().peers).toHaveLength(1);
    expect(agent.status().peers.map((p) => [p.name, p.type])).toEqual([
      ['Local_Workload_10_244_0_5', 'local workload'],
    ]);
    await ds.delete('WorkloadEndpoint', 'vr1', { namespace: 'default' });
    await until(() => last().peers.length === 0, 'the workload session removed');
  });
});
