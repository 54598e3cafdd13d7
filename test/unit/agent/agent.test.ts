// The Agent on a MemoryDatastore with a fake Speaker and an injected interface list: startup (Node, default
// pool, block, IPIP tunnel address), live replanning into setPeers/setOriginated with a stable export
// filter, the graceful Speaker swap on a cluster id change (old routes kept as stale until ready), and
// Calico's readiness rules.

import { describe, expect, it } from 'vitest';
import { formatIpv4, parseIpv4, parsePrefix } from '../../../bgp/ip.js';
import { MemoryDatastore } from '../../../src/datastore/memory.js';
import { res, testAgent, until } from '../helpers/agent-fixtures.js';
import { FakeSpeaker } from '../helpers/fake-speaker.js';

function makeAgent(env: Record<string, string>, ds = new MemoryDatastore()) {
  return testAgent(env, ds);
}

describe('Agent startup', () => {
  it("ignoredInterfaces: an ignored interface is never the node address nor felix's host interface", async () => {
    const ds = new MemoryDatastore();
    await ds.create(res('BGPConfiguration', 'default', { ignoredInterfaces: ['eth*', 'bond?'] }));
    const interfaces = [
      { iface: 'lo', address: '127.0.0.1', prefixLength: 8 },
      { iface: 'eth0', address: '198.18.0.11', prefixLength: 24 },
      { iface: 'bond0', address: '198.18.2.11', prefixLength: 24 },
      { iface: 'bond10', address: '198.18.1.11', prefixLength: 24 },
    ];
    const { agent } = testAgent({ IP: 'autodetect', AS: '64513', CALICO_IPV4POOL_CIDR: '10.244.0.0/16' }, ds, {
      interfaces: () => interfaces,
    });
    await agent.start();
    // first-found would take eth0; eth* and bond? are ignored, bond10 is not (a pattern matches the whole name).
    expect((await ds.get('Node', 'node-1'))?.spec.bgp?.ipv4Address).toBe('198.18.1.11/24');
    expect(agent.status().dataplane.hostInterface).toBe('bond10');
    // A fixed IP on an ignored interface: no host interface for felix, and the status says why.
    const fixed = testAgent({ IP: '198.18.0.11', AS: '64513', NODENAME: 'node-2' }, ds, {
      interfaces: () => interfaces,
    });
    await fixed.agent.start();
    expect(fixed.agent.status().dataplane.hostInterface).toBeNull();
    expect(fixed.agent.status().warnings.join('\n')).toContain(
      'IP=198.18.0.11 is on eth0, which BGPConfiguration default ignoredInterfaces (eth*, bond?) excludes',
    );
  });

  it('registers the node with the interface prefix length, creates the default pool, claims a block, allocates the tunnel address', async () => {
    const { agent, ds, last } = makeAgent({ IP: '198.18.0.11', AS: '64513', CALICO_IPV4POOL_CIDR: '10.244.0.0/16' });
    await agent.start();
    const node = await ds.get('Node', 'node-1');
    expect(node?.spec.bgp?.ipv4Address).toBe('198.18.0.11/24');
    expect(node?.spec.bgp?.asNumber).toBe(64513);
    const pools = (await ds.list('IPPool')).items;
    expect(
      pools.map((p) => [p.metadata.name, p.spec.cidr, p.spec.ipipMode, p.spec.natOutgoing, p.spec.blockSize]),
    ).toEqual([['default-ipv4-ippool', '10.244.0.0/16', 'Always', true, 26]]);
    expect(node?.spec.bgp?.ipv4IPIPTunnelAddr).toMatch(/^10\.244\.0\.\d+$/);
    const speaker = last();
    expect(speaker.started).toBe(true);
    expect(speaker.config).toMatchObject({
      routerId: parseIpv4('198.18.0.11'),
      localAs: 64513,
      listen: { address: '0.0.0.0', port: 179 },
    });
    expect(speaker.config.gracefulRestart).toMatchObject({ restartTime: 120, restarting: true });
    expect(
      speaker.originated.map((r) => [`${formatIpv4(r.prefix.addr)}/${r.prefix.len}`, formatIpv4(r.attrs.nextHop!)]),
    ).toEqual([['10.244.0.0/26', '198.18.0.11']]);
    const status = agent.status();
    expect(status).toMatchObject({
      node: 'node-1',
      ipv4Address: '198.18.0.11/24',
      asNumber: 64513,
      routerId: '198.18.0.11',
      blocks: ['10.244.0.0/26'],
      version: 'test',
    });
    expect(status.warnings).toEqual([]);
  });

  it('finishes a block claim it left half-done before a crash, and advertises that block', async () => {
    const ds = new MemoryDatastore();
    await ds.create(res('IPPool', 'mine', { cidr: '10.9.0.0/16', ipipMode: 'Never' }));
    // The previous run wrote the block and a pending affinity, then died before confirming it.
    await ds.create(
      res('BlockAffinity', 'node-1-10-9-0-0-26', { state: 'pending', node: 'node-1', cidr: '10.9.0.0/26' }),
    );
    await ds.create(
      res('IPAMBlock', '10-9-0-0-26', {
        cidr: '10.9.0.0/26',
        affinity: 'host:node-1',
        allocations: Array<null>(64).fill(null),
        unallocated: Array.from({ length: 64 }, (_, i) => i),
        attributes: [],
      }),
    );
    const { agent, last } = makeAgent({ IP: '198.18.0.11/24' }, ds);
    await agent.start();
    expect((await ds.get('BlockAffinity', 'node-1-10-9-0-0-26'))?.spec.state).toBe('confirmed');
    expect(last().originated.map((r) => `${formatIpv4(r.prefix.addr)}/${r.prefix.len}`)).toEqual(['10.9.0.0/26']);
    expect((await ds.list('IPAMBlock')).items).toHaveLength(1); // no second block claimed
  });

  it('settles releases of its blocks left half-done (pendingDeletion): takes back the one in use, finishes the empty one', async () => {
    const ds = new MemoryDatastore();
    await ds.create(res('IPPool', 'mine', { cidr: '10.9.0.0/16', ipipMode: 'Always' }));
    const { Ipam } = await import('../../../src/ipam/index.js');
    const ipam = new Ipam(ds);
    const [pod] = await ipam.assign('node-1', 'k8s-pod-network.web');
    expect(await ipam.claimBlock('node-1')).toBe('10.9.0.64/26');
    // A release of each block (delete node / delete ippool) was killed after marking the affinity pendingDeletion.
    for (const name of ['node-1-10-9-0-0-26', 'node-1-10-9-0-64-26']) {
      const affinity = (await ds.get('BlockAffinity', name))!;
      await ds.update({ ...affinity, spec: { ...affinity.spec, state: 'pendingDeletion' } });
    }
    const { agent, last } = makeAgent({ IP: '198.18.0.11/24' }, ds);
    await agent.start();
    expect((await ds.list('BlockAffinity')).items.map((a) => `${a.spec.cidr} ${a.spec.state}`)).toEqual([
      '10.9.0.0/26 confirmed',
    ]);
    expect((await ds.list('IPAMBlock')).items.map((b) => b.spec.cidr)).toEqual(['10.9.0.0/26']);
    expect(last().originated.map((r) => `${formatIpv4(r.prefix.addr)}/${r.prefix.len}`)).toEqual(['10.9.0.0/26']);
    expect(agent.status().warnings).toEqual([]);
    // The pod keeps its address; the tunnel address comes from the same block, under Calico's handle name.
    const tunnel = (await ds.get('Node', 'node-1'))?.spec.bgp?.ipv4IPIPTunnelAddr;
    expect(tunnel).toMatch(/^10\.9\.0\.\d+$/);
    expect(tunnel).not.toBe(pod);
    expect((await ds.get('IPAMHandle', 'ipip-tunnel-addr-node-1'))?.spec.block).toEqual({ '10.9.0.0/26': 1 });
    expect((await ds.get('IPAMHandle', 'k8s-pod-network.web'))?.spec.block).toEqual({ '10.9.0.0/26': 1 });
  });

  it('leaves an existing pool alone and honours NO_DEFAULT_POOLS; IPIP Never means no tunnel address', async () => {
    const ds = new MemoryDatastore();
    await ds.create(res('IPPool', 'mine', { cidr: '10.9.0.0/16', ipipMode: 'Never' }));
    const { agent } = makeAgent({ IP: '198.18.0.11/24' }, ds);
    await agent.start();
    expect((await ds.list('IPPool')).items.map((p) => p.metadata.name)).toEqual(['mine']);
    expect((await ds.get('Node', 'node-1'))?.spec.bgp?.ipv4IPIPTunnelAddr).toBeUndefined();
    const bare = makeAgent({ NODENAME: 'node-2', IP: '198.18.0.12/24', NO_DEFAULT_POOLS: 'true' });
    await bare.agent.start();
    expect((await bare.ds.list('IPPool')).items).toEqual([]);
    expect(bare.agent.status().warnings.join('\n')).toMatch(
      /no IPAM block for this node: no enabled IPPool selects node "node-2"/,
    );
  });

  it('an address no interface holds gets /32 and a warning', async () => {
    const { agent, ds } = makeAgent({ IP: '203.0.113.5', NO_DEFAULT_POOLS: 'true' });
    await agent.start();
    expect((await ds.get('Node', 'node-1'))?.spec.bgp?.ipv4Address).toBe('203.0.113.5/32');
    expect(agent.status().warnings.join('\n')).toMatch(/IP=203.0.113.5: no interface holds this address/);
  });

  it('without WAIT_FOR_DATASTORE an unreachable datastore fails the start at once', async () => {
    const ds = new MemoryDatastore();
    ds.list = async () => {
      throw new Error('etcd at http://127.0.0.1:1: unavailable');
    };
    const { agent } = makeAgent({ IP: '198.18.0.11/24' }, ds);
    await expect(agent.start()).rejects.toThrow('etcd at http://127.0.0.1:1: unavailable');
  });
});

describe('Agent reconfiguration', () => {
  it('a speaker that cannot start (listen port in use) is retried with the new settings, never the old ones', async () => {
    const { agent, ds, speakers, last } = makeAgent({ IP: '198.18.0.11/24' });
    await agent.start();
    FakeSpeaker.busyPorts.add(1790);
    try {
      await ds.create(res('BGPConfiguration', 'default', { listenPort: 1790 }));
      await until(() => agent.status().warnings.some((w) => w.includes('EADDRINUSE')), 'the failure to show');
      // An unrelated change (another node's block) must not bring the old port back.
      const attempts = speakers.length;
      await ds.create(res('IPPool', 'other', { cidr: '10.77.0.0/16' }));
      // Proof that the change was handled: the replan makes a new attempt (as does the retry timer); each is on 1790.
      await until(() => speakers.length > attempts, 'a speaker attempt after the change');
      expect(speakers.slice(attempts).map((s) => s.config.listen?.port)).toEqual(
        speakers.slice(attempts).map(() => 1790),
      );
      expect(speakers.filter((s) => s.started).map((s) => s.config.listen?.port)).toEqual([179]);
      // The port frees up: the retry (1 s) starts the speaker on 1790 and the warning goes.
      FakeSpeaker.busyPorts.delete(1790);
      await until(() => last().started && last().config.listen?.port === 1790, 'a speaker on 1790');
      await until(() => !agent.status().warnings.some((w) => w.includes('EADDRINUSE')), 'the warning to clear');
    } finally {
      FakeSpeaker.busyPorts.clear();
    }
  });

  it('a new node becomes a mesh peer; replans keep the same export filter object; the filter follows the pools', async () => {
    const { agent, ds, last } = makeAgent({
      IP: '198.18.0.11/24',
      CALICO_IPV4POOL_CIDR: '10.244.0.0/16',
      CALICO_IPV4POOL_IPIP: 'Never',
    });
    await agent.start();
    expect(last().peers).toEqual([]);
    await ds.create(res('Node', 'node-2', { bgp: { ipv4Address: '198.18.0.12/24' } }));
    const peers = await until(() => last().peers.length === 1 && last().peers, 'a mesh peer');
    // Calico's template: `passive on` toward a node with a higher IP (it connects to us).
    expect(peers[0]).toMatchObject({
      address: '198.18.0.12',
      peerAs: 64512,
      passive: true,
      rrClient: false,
      nextHop: 'auto',
      allowOwnAs: 0,
    });
    const filter = peers[0]!.exportFilter!;
    expect(filter).toBeTypeOf('function');
    await ds.create(res('Node', 'node-3', { bgp: { ipv4Address: '198.18.0.10/24' } }));
    const three = await until(() => last().peers.length === 2 && last().peers, 'two mesh peers');
    expect(three.every((p) => p.exportFilter === filter)).toBe(true);
    expect(three.find((p) => p.address === '198.18.0.10')?.passive).toBe(false);
    const route = (cidr: string) =>
      ({ prefix: parsePrefix(cidr), source: { local: false } }) as Parameters<typeof filter>[0];
    expect(filter(route('10.244.1.0/26'))).not.toBeNull();
    expect(filter(route('0.0.0.0/0'))).toBeNull();
    expect(
      agent
        .status()
        .peers.map((p) => [p.address, p.type, p.name])
        .sort(),
    ).toEqual([
      ['198.18.0.10', 'node-to-node mesh', 'Mesh_198_18_0_10'],
      ['198.18.0.12', 'node-to-node mesh', 'Mesh_198_18_0_12'],
    ]);
  });

  it('a block released elsewhere is withdrawn from what the node originates', async () => {
    const { agent, ds, last } = makeAgent({
      IP: '198.18.0.11/24',
      CALICO_IPV4POOL_CIDR: '10.244.0.0/16',
      CALICO_IPV4POOL_IPIP: 'Never',
    });
    await agent.start();
    expect(last().originated).toHaveLength(1);
    const { Ipam } = await import('../../../src/ipam/index.js');
    await new Ipam(ds).releaseBlock('10.244.0.0/26');
    await until(() => last().originated.length === 0, 'the block withdrawn');
    expect(agent.status().blocks).toEqual([]);
  });

  it('a cluster id swaps the Speaker gracefully: old routes stay (stale) until the new one is ready', async () => {
    const { agent, ds, speakers, last } = makeAgent({
      IP: '198.18.0.11/24',
      CALICO_IPV4POOL_CIDR: '10.244.0.0/16',
      CALICO_IPV4POOL_IPIP: 'Never',
    });
    await agent.start();
    const first = last();
    first.best = [
      {
        prefix: parsePrefix('10.244.3.0/26'),
        attrs: { nextHop: parseIpv4('198.18.0.13'), asPath: [] },
        from: '198.18.0.13',
        stale: false,
      },
    ];
    expect(agent.routes()).toEqual([
      {
        prefix: '10.244.3.0/26',
        nextHop: '198.18.0.13',
        asPath: [],
        from: '198.18.0.13',
        best: true,
        stale: false,
        inKernel: false,
      },
    ]);
    const node = (await ds.get('Node', 'node-1'))!;
    await ds.update({
      ...node,
      spec: { ...node.spec, bgp: { ...node.spec.bgp, routeReflectorClusterID: '244.0.0.1' } },
    });
    await until(() => speakers.length === 2, 'a second speaker');
    expect(first.stopped).toBe(true);
    const second = last();
    expect(second.config.clusterId).toBe(parseIpv4('244.0.0.1'));
    expect(agent.status().clusterId).toBe('244.0.0.1');
    expect(agent.routes()).toEqual([
      {
        prefix: '10.244.3.0/26',
        nextHop: '198.18.0.13',
        asPath: [],
        from: '198.18.0.13',
        best: true,
        stale: true,
        inKernel: false,
      },
    ]);
    second.emit('ready');
    expect(agent.routes()).toEqual([]);
    // Changing something that is not the identity does not recreate the Speaker.
    await ds.create(res('BGPPeer', 'office', { peerIP: '198.18.0.50', asNumber: 65001 }));
    await until(() => last().peers.length === 1, 'the office router as a peer');
    expect(speakers).toHaveLength(2);
  });
});

describe('Agent peers: the node subnet for third-party next hops', () => {
  it('only eBGP peers inside the node subnet get it (iBGP and multihop eBGP peers do not, so a prefix change leaves them alone)', async () => {
    const { agent, ds, last } = makeAgent({ IP: '198.18.0.11/24', NO_DEFAULT_POOLS: 'true' });
    await agent.start();
    await ds.create(res('Node', 'node-2', { bgp: { ipv4Address: '198.18.0.12/24' } }));
    await ds.create(res('BGPPeer', 'tor', { peerIP: '198.18.0.1', asNumber: 65001 }));
    await ds.create(res('BGPPeer', 'far', { peerIP: '198.51.100.1', asNumber: 65002 }));
    await until(() => last().peers.length === 3, 'three peers');
    const byAddress = new Map(last().peers.map((p) => [p.address, p]));
    expect(byAddress.get('198.18.0.1')?.subnet).toBe('198.18.0.11/24');
    expect(byAddress.get('198.51.100.1')?.subnet).toBeUndefined();
    expect(byAddress.get('198.18.0.12')?.subnet).toBeUndefined();
  });
});

describe('Agent peers: prefix limits', () => {
  it("TORTIE_BGP_MAX_PREFIXES is the speaker default; a BGPPeer annotation tortie.dev/max-prefixes sets its sessions' limit", async () => {
    const { agent, ds, last } = makeAgent({
      IP: '198.18.0.11/24',
      NO_DEFAULT_POOLS: 'true',
      TORTIE_BGP_MAX_PREFIXES: '20000',
    });
    await agent.start();
    expect(last().config.maxPrefixes).toBe(20_000);
    const limited = res('BGPPeer', 'tor', { peerIP: '198.18.0.1', asNumber: 65001 });
    limited.metadata.annotations = { 'tortie.dev/max-prefixes': '100' };
    await ds.create(limited);
    await ds.create(res('BGPPeer', 'far', { peerIP: '198.51.100.1', asNumber: 65002 }));
    await until(() => last().peers.length === 2, 'two peers');
    const byAddress = new Map(last().peers.map((p) => [p.address, p]));
    expect(byAddress.get('198.18.0.1')?.maxPrefixes).toBe(100);
    expect(byAddress.get('198.51.100.1')?.maxPrefixes).toBeUndefined();
  });
});

describe('Agent readiness (Calico BIRD rules)', () => {
  it('no peers: ready; fresh: all must be Established; afterwards one is enough; none is not ready', async () => {
    const { agent, ds, last } = makeAgent({ IP: '198.18.0.11/24', NO_DEFAULT_POOLS: 'true' });
    expect(agent.readiness()).toEqual({ ready: false, reason: 'the agent is starting' });
    await agent.start();
    expect(agent.readiness()).toEqual({ ready: true });
    await ds.create(res('Node', 'node-2', { bgp: { ipv4Address: '198.18.0.12/24' } }));
    await ds.create(res('Node', 'node-3', { bgp: { ipv4Address: '198.18.0.13/24' } }));
    const speaker = last();
    await until(() => speaker.peers.length === 2, 'two peers');
    expect(agent.readiness().ready).toBe(false);
    speaker.states.set('198.18.0.12', 'Established');
    expect(agent.readiness()).toEqual({ ready: false, reason: 'BGP not established with 198.18.0.13 (Active)' });
    speaker.states.set('198.18.0.13', 'Established');
    expect(agent.readiness()).toEqual({ ready: true });
    speaker.states.set('198.18.0.12', 'Active');
    expect(agent.readiness()).toEqual({ ready: true });
    speaker.states.set('198.18.0.13', 'Idle');
    expect(agent.readiness()).toEqual({ ready: false, reason: 'no BGP session is established (2 configured)' });
  });
});

describe('Agent: BGPConfiguration fields that shape what is sent and logged', () => {
  it('prefixAdvertisements put their communities on the originated blocks; a change of them reaches setOriginated', async () => {
    const ds = new MemoryDatastore();
    await ds.create(res('IPPool', 'mine', { cidr: '10.9.0.0/16', ipipMode: 'Never' }));
    const { agent, last } = makeAgent({ IP: '198.18.0.11/24' }, ds);
    await agent.start();
    expect(last().originated[0]?.attrs.communities).toBeUndefined();
    await ds.create(
      res('BGPConfiguration', 'default', {
        communities: [{ name: 'site', value: '65001:7' }],
        prefixAdvertisements: [{ cidr: '10.9.0.0/16', communities: ['site', '65001:1:2'] }],
      }),
    );
    await until(
      () => last().originated[0]?.attrs.communities?.[0] === 65001 * 65536 + 7,
      'communities on the originated block',
    );
    expect(last().originated[0]?.attrs.largeCommunities).toEqual([65001, 1, 2]);
  });

  it('logSeverityScreen sets the log level (Trace is trace, not info); the node-specific configuration wins', async () => {
    const ds = new MemoryDatastore();
    await ds.create(res('BGPConfiguration', 'default', { logSeverityScreen: 'Trace' }));
    const { agent } = testAgent({ IP: '198.18.0.11/24' }, ds);
    await agent.start();
    const levelOf = (): string => (agent as unknown as { log: { level: string } }).log.level;
    await until(() => levelOf() === 'trace', 'log level trace');
    await ds.create(res('BGPConfiguration', 'node.node-1', { logSeverityScreen: 'Error' }));
    await until(() => levelOf() === 'error', 'log level error from node.node-1');
  });

  it('a field stored but not in effect is named in node status', async () => {
    const ds = new MemoryDatastore();
    await ds.create(res('BGPConfiguration', 'default', { programClusterRoutes: 'Disabled' }));
    const { agent } = makeAgent({ IP: '198.18.0.11/24' }, ds);
    await agent.start();
    expect(agent.status().warnings).toContainEqual(
      expect.stringMatching(
        /^BGPConfiguration\/default: spec\.programClusterRoutes is stored but not in effect in tortie: \S/,
      ),
    );
  });
});
