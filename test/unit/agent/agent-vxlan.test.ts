// The Agent with a VXLAN pool, over felix's dataplane on an in-memory kernel and the fake `ip`/`bridge` for
// vxlan.calico: the node gets its VTEP in the datastore, vxlan.calico is set up with it, a remote node's
// VTEP becomes a neighbour + FDB entry and its block a route via its tunnel address; with
// CALICO_NETWORKING_BACKEND=vxlan no BGP speaker is started at all and node status says so.

import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { FelixDataplane } from '../../../felix/dataplane.js';
import { MemoryKernel } from '../../../felix/memory-kernel.js';
import { Agent, type SpeakerLike } from '../../../src/agent/agent.js';
import { parseAgentConfig } from '../../../src/agent/config.js';
import { vxlanMacFor } from '../../../src/agent/vxlan-tunnel.js';
import { MemoryDatastore } from '../../../src/datastore/memory.js';
import { FakeVxlanKernel } from '../felix/vxlan-fake-kernel.js';
import { INTERFACES, res, running, until } from '../helpers/agent-fixtures.js';
import { FakeSpeaker } from '../helpers/fake-speaker.js';

function makeAgent(env: Record<string, string>, ds: MemoryDatastore) {
  const kernel = new MemoryKernel({ links: ['lo', 'eth0', 'vxlan.calico'] });
  const vxlan = new FakeVxlanKernel();
  const speakers: FakeSpeaker[] = [];
  const config = parseAgentConfig(
    {
      NODENAME: 'node-1',
      IP: '198.18.0.11/24',
      TORTIE_DATAPLANE: 'kernel',
      TORTIE_HEALTH_PORT: '0',
      NO_DEFAULT_POOLS: 'true',
      ...env,
    },
    'unused',
  );
  const agent = new Agent(config, {
    datastore: ds,
    logger: pino({ level: 'silent' }),
    createSpeaker: (c) => {
      const s = new FakeSpeaker(c);
      speakers.push(s);
      return s as unknown as SpeakerLike;
    },
    createDataplane: (o) => new FelixDataplane({ ...o, kernel, debounceMs: 1, vxlan: { run: vxlan.run } }),
    interfaces: () => INTERFACES,
    interfaceMtu: (name) => (name === 'eth0' ? 1500 : undefined),
    serveControl: null,
    startHealth: null,
    coalesceMs: 1,
    version: 'test',
  });
  running.push(agent);
  return { agent, kernel, vxlan, speakers };
}

/** A second node with its VTEP and one block, as its own agent would have written them. */
async function remoteNode(ds: MemoryDatastore): Promise<void> {
  await ds.create(
    res('Node', 'node-2', {
      bgp: { ipv4Address: '198.18.1.12/24' },
      ipv4VXLANTunnelAddr: '10.244.1.0',
      vxlanTunnelMACAddr: vxlanMacFor('node-2'),
    }),
  );
  await ds.create(
    res('IPAMBlock', '10-244-1-0-26', {
      cidr: '10.244.1.0/26',
      affinity: 'host:node-2',
      allocations: Array<null>(64).fill(null),
      unallocated: Array.from({ length: 64 }, (_, i) => i),
      attributes: [],
    }),
  );
}

describe('Agent with a VXLAN pool', () => {
  for (const backend of ['bird', 'vxlan'] as const) {
    it(`CALICO_NETWORKING_BACKEND=${backend}: VTEP allocated, vxlan.calico set up, remote VTEP and block programmed`, async () => {
      const ds = new MemoryDatastore();
      await ds.create(res('IPPool', 'vx', { cidr: '10.244.0.0/16', vxlanMode: 'Always', ipipMode: 'Never' }));
      await remoteNode(ds);
      const { agent, kernel, vxlan, speakers } = makeAgent({ CALICO_NETWORKING_BACKEND: backend }, ds);
      await agent.start();
      await until(
        () => vxlan.state.fdb.length === 1 && kernel.snapshot().some((r) => r.dev === 'vxlan.calico'),
        'the VXLAN entries and route',
      );
      // The MAC is published once vxlan.calico is up (others route through us only then).
      for (let i = 0; i < 200 && (await ds.get('Node', 'node-1'))?.spec.vxlanTunnelMACAddr === undefined; i++)
        await new Promise((r) => setTimeout(r, 10));
      const node = await ds.get('Node', 'node-1');
      expect(node?.spec.ipv4VXLANTunnelAddr).toMatch(/^10\.244\.\d+\.\d+$/);
      expect(node?.spec.vxlanTunnelMACAddr).toBe(vxlanMacFor('node-1'));
      expect(vxlan.state.device).toMatchObject({
        vni: 4096,
        port: 4789,
        local: '198.18.0.11',
        mtu: 1450,
        mac: vxlanMacFor('node-1'),
        up: true,
        addresses: [`${node!.spec.ipv4VXLANTunnelAddr}/32`],
      });
      expect(vxlan.state.neighbours).toEqual([
        { ip: '10.244.1.0', mac: vxlanMacFor('node-2'), permanent: true, protocol: 80 },
      ]);
      expect(vxlan.state.fdb).toEqual([{ mac: vxlanMacFor('node-2'), dst: '198.18.1.12', permanent: true }]);
      expect(
        kernel
          .snapshot()
          .filter((r) => r.dev === 'vxlan.calico')
          .map((r) => [r.dst, r.gateway, r.flags]),
      ).toEqual([['10.244.1.0/26', '10.244.1.0', ['onlink']]]);
      const status = agent.status();
      expect(status.dataplane.mode === 'kernel' && status.dataplane.vxlan).toMatchObject({
        needed: true,
        usable: true,
        remoteVteps: 1,
      });
      if (backend === 'vxlan') {
        // No BGP to wait for: ready as soon as the kernel is programmed.
        expect(status.ready).toBe(true);
        expect(speakers).toHaveLength(0);
        expect(status.summary).toMatch(/CALICO_NETWORKING_BACKEND=vxlan: no BGP speaker/);
        expect(status.peers).toEqual([]);
      } else {
        expect(speakers).toHaveLength(1);
      }
      // The pool stops using VXLAN: the VTEP is released and vxlan.calico goes.
      const pool = (await ds.get('IPPool', 'vx'))!;
      await ds.update({ ...pool, spec: { ...pool.spec, vxlanMode: 'Never' } });
      await until(() => vxlan.state.device === null, 'vxlan.calico removed');
      for (let i = 0; i < 200 && (await ds.get('Node', 'node-1'))?.spec.ipv4VXLANTunnelAddr !== undefined; i++)
        await new Promise((r) => setTimeout(r, 5));
      expect((await ds.get('Node', 'node-1'))?.spec.ipv4VXLANTunnelAddr).toBeUndefined();
      expect(await ds.get('IPAMHandle', 'vxlan-tunnel-addr-node-1')).toBeNull();
    });
  }
});
