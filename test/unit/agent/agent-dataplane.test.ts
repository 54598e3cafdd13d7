// The Agent with TORTIE_DATAPLANE=kernel, over felix's dataplane driver on an in-memory kernel and a fake
// `ip` for tunl0: what the datastore and the Loc-RIB say becomes kernel routes; an agent restart takes no
// wanted route down (owned routes are kept until the Speaker is ready); foreign routes are never touched;
// a kernel without IPIP is reported in status and readiness while everything else is programmed; a pool
// switched to IPIP while running gets the node a tunnel address at once.

import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { parseIpv4, parsePrefix } from '../../../bgp/ip.js';
import type { RibEntry } from '../../../bgp/speaker.js';
import { FelixDataplane, type DataplaneInput } from '../../../felix/dataplane.js';
import { normalizeKernelRoute, type KernelRoute } from '../../../felix/kernel.js';
import { MemoryKernel } from '../../../felix/memory-kernel.js';
import { workloadInterfaceName } from '../../../felix/interface-names.js';
import { Agent, type SpeakerLike } from '../../../src/agent/agent.js';
import { parseAgentConfig } from '../../../src/agent/config.js';
import { MemoryDatastore } from '../../../src/datastore/memory.js';
import { waitFor } from '../../harness/wait.js';
import { fakeIp } from '../helpers/fake-ip.js';
import { INTERFACES, res, running, until } from '../helpers/agent-fixtures.js';
import { FakeSpeaker } from '../helpers/fake-speaker.js';

/** The kernel's routes as `ip route` spells them (a /32 without its length), sorted. */
function table(kernel: MemoryKernel): string[] {
  return kernel
    .snapshot()
    .map((r) => describe(r))
    .sort();
  function describe(r: KernelRoute): string {
    const dst = r.dst.endsWith('/32') ? r.dst.slice(0, -3) : r.dst;
    const parts = [r.type === 'blackhole' ? `blackhole ${dst}` : dst];
    if (r.gateway) parts.push(`via ${r.gateway}`);
    if (r.dev) parts.push(`dev ${r.dev}`);
    if (r.protocol && r.protocol !== 'boot') parts.push(`proto ${r.protocol}`);
    if (r.scope && r.scope !== 'global') parts.push(`scope ${r.scope}`);
    if (r.flags?.includes('onlink')) parts.push('onlink');
    return parts.join(' ');
  }
}

/** FelixDataplane that keeps every input it is given: a test waits for the input, then for its apply (settle). */
class RecordingDataplane extends FelixDataplane {
  readonly inputs: DataplaneInput[] = [];
  override update(input: DataplaneInput): void {
    this.inputs.push(input);
    super.update(input);
  }
}

function makeAgent(
  options: { env?: Record<string, string>; ds?: MemoryDatastore; kernel?: MemoryKernel; ipip?: boolean } = {},
) {
  const ds = options.ds ?? new MemoryDatastore();
  const kernel = options.kernel ?? new MemoryKernel({ links: ['lo', 'eth0'] });
  const ip = fakeIp({ ipip: options.ipip ?? false });
  const speakers: FakeSpeaker[] = [];
  const dataplanes: RecordingDataplane[] = [];
  const config = parseAgentConfig(
    {
      NODENAME: 'node-1',
      IP: '198.18.0.11/24',
      TORTIE_DATAPLANE: 'kernel',
      TORTIE_HEALTH_PORT: '0',
      NO_DEFAULT_POOLS: 'true',
      ...options.env,
    },
    'unused',
  );
  const agent = new Agent(config, {
    datastore: ds,
    logger: pino({ level: process.env.DBG ? 'debug' : 'silent' }),
    createSpeaker: (c) => {
      const s = new FakeSpeaker(c);
      speakers.push(s);
      return s as unknown as SpeakerLike;
    },
    createDataplane: (o) => {
      const dataplane = new RecordingDataplane({ ...o, kernel, debounceMs: 1, tunl0: { ...o.tunl0, ip: ip.ip } });
      dataplanes.push(dataplane);
      return dataplane;
    },
    interfaces: () => INTERFACES,
    interfaceMtu: (name) => (name === 'eth0' ? 1500 : undefined),
    serveControl: null,
    startHealth: null,
    coalesceMs: 1,
    version: 'test',
  });
  running.push(agent);
  return {
    agent,
    ds,
    kernel,
    ip,
    speakers,
    last: () => speakers[speakers.length - 1]!,
    dataplane: () => dataplanes[dataplanes.length - 1]!,
  };
}

function bgpRoute(prefix: string, nextHop: string): RibEntry {
  return {
    prefix: parsePrefix(prefix),
    attrs: { nextHop: parseIpv4(nextHop), asPath: [] },
    from: nextHop,
    stale: false,
  };
}

const FOREIGN: KernelRoute[] = [
  { dst: '198.18.0.0/24', dev: 'eth0', protocol: 'kernel', scope: 'link', type: 'unicast' },
  { dst: '10.99.0.0/24', gateway: '198.18.0.1', dev: 'eth0', protocol: 'bird', scope: 'global', type: 'unicast' },
  { dst: '10.98.0.0/24', gateway: '198.18.0.1', dev: 'eth0', protocol: 'static', scope: 'global', type: 'unicast' },
];

describe('Agent with the kernel dataplane', () => {
  it('programs the blackhole, a workload route, remote blocks direct (Never) and an office route; node routes says IN KERNEL', async () => {
    const ds = new MemoryDatastore();
    await ds.create(res('IPPool', 'pool', { cidr: '10.244.0.0/16', ipipMode: 'Never' }));
    const cali = workloadInterfaceName('default', 'web-1');
    const kernel = new MemoryKernel({ links: ['lo', 'eth0', cali], routes: FOREIGN });
    const { agent, last } = makeAgent({ ds, kernel });
    await agent.start();
    const block = agent.status().blocks[0]!;
    expect(block).toBe('10.244.0.0/26');
    await ds.create(
      res(
        'WorkloadEndpoint',
        'node--1-k8s-web--1-eth0',
        {
          node: 'node-1',
          orchestrator: 'k8s',
          pod: 'web-1',
          endpoint: 'eth0',
          interfaceName: cali,
          ipNetworks: ['10.244.0.5/32'],
        },
        'default',
      ),
    );
    last().best = [bgpRoute('10.244.0.64/26', '198.18.0.12'), bgpRoute('172.16.0.0/16', '198.18.0.50')];
    last().emit('update', { peer: '198.18.0.12', announced: [], withdrawn: [] });
    const want = [
      '10.244.0.5 dev ' + cali + ' proto 80 scope link',
      '10.244.0.64/26 via 198.18.0.12 dev eth0 proto 80 onlink',
      '172.16.0.0/16 via 198.18.0.50 dev eth0 proto 80 onlink',
      'blackhole 10.244.0.0/26 proto 80',
    ];
    await until(() => want.every((w) => table(kernel).includes(w)), 'the routes in the kernel').catch((e: Error) => {
      throw new Error(`${e.message}: ${JSON.stringify(table(kernel))}`);
    });
    // Nothing else of ours, and the foreign routes untouched.
    expect(table(kernel).filter((r) => r.includes('proto 80'))).toEqual(want);
    for (const f of FOREIGN) expect(kernel.snapshot()).toContainEqual(normalizeKernelRoute(f));
    await until(() => agent.routes().find((r) => r.prefix === '10.244.0.64/26')?.inKernel, 'IN KERNEL yes');
    const status = agent.status();
    expect(status.dataplane).toMatchObject({
      mode: 'kernel',
      hostInterface: 'eth0',
      tunl0: { needed: false },
      routes: { desired: 4, programmed: 4 },
      inSync: true,
    });
    expect(agent.readiness()).toEqual({ ready: true });
    // The workload goes: its route goes (the grace period is for new cali* interfaces only).
    await ds.delete('WorkloadEndpoint', 'node--1-k8s-web--1-eth0', { namespace: 'default' });
    await until(() => !table(kernel).some((r) => r.startsWith('10.244.0.5 ')), 'the workload route removed');
  });

  it('restart: owned routes from the last run stay until BGP is ready, then only the unwanted go; foreign ones always stay', async () => {
    const ds = new MemoryDatastore();
    await ds.create(res('IPPool', 'pool', { cidr: '10.244.0.0/16', ipipMode: 'Never' }));
    const previous: KernelRoute[] = [
      {
        dst: '10.244.0.64/26',
        gateway: '198.18.0.12',
        dev: 'eth0',
        protocol: '80',
        scope: 'global',
        type: 'unicast',
        flags: ['onlink'],
      },
      {
        dst: '10.244.0.128/26',
        gateway: '198.18.0.13',
        dev: 'eth0',
        protocol: '80',
        scope: 'global',
        type: 'unicast',
        flags: ['onlink'],
      },
    ];
    const kernel = new MemoryKernel({ links: ['lo', 'eth0'], routes: [...FOREIGN, ...previous] });
    const { agent, last, dataplane } = makeAgent({ ds, kernel });
    await agent.start();
    await until(() => table(kernel).includes('blackhole 10.244.0.0/26 proto 80'), 'the blackhole');
    // The Loc-RIB is empty (peers have not sent their routes again): last run's routes are kept.
    expect(table(kernel)).toContain('10.244.0.64/26 via 198.18.0.12 dev eth0 proto 80 onlink');
    expect(table(kernel)).toContain('10.244.0.128/26 via 198.18.0.13 dev eth0 proto 80 onlink');
    expect(agent.status().dataplane).toMatchObject({ retainingUnwanted: true });
    const writesBefore = kernel.writes;
    // .12 comes back over BGP, .13 does not (that node is gone); then the Speaker is ready.
    last().best = [bgpRoute('10.244.0.64/26', '198.18.0.12')];
    last().emit('update', { peer: '198.18.0.12', announced: [], withdrawn: [] });
    // Proof that the update was handled: felix was given the re-learned route, and applied it.
    await until(
      () => dataplane().inputs.some((i) => i.bgpRoutes.some((r) => r.prefix === '10.244.0.64/26')),
      'the re-learned route given to felix',
    );
    await dataplane().settle();
    expect(kernel.writes).toBe(writesBefore); // the re-learned route was already right: no write
    last().emit('ready');
    await until(() => !table(kernel).some((r) => r.startsWith('10.244.0.128/26')), 'the unwanted route removed');
    expect(table(kernel)).toContain('10.244.0.64/26 via 198.18.0.12 dev eth0 proto 80 onlink');
    for (const f of FOREIGN) expect(kernel.snapshot()).toContainEqual(normalizeKernelRoute(f));
  });

  it("restart with peers: last run's routes stay after the Speaker is ready until every peer has sent End-of-RIB", async () => {
    const ds = new MemoryDatastore();
    await ds.create(res('IPPool', 'pool', { cidr: '10.244.0.0/16', ipipMode: 'Never' }));
    await ds.create(res('Node', 'node-2', { bgp: { ipv4Address: '198.18.0.12/24' } }));
    const previous: KernelRoute = {
      dst: '10.244.0.64/26',
      gateway: '198.18.0.12',
      dev: 'eth0',
      protocol: '80',
      scope: 'global',
      type: 'unicast',
      flags: ['onlink'],
    };
    const stale: KernelRoute = {
      dst: '10.244.0.128/26',
      gateway: '198.18.0.13',
      dev: 'eth0',
      protocol: '80',
      scope: 'global',
      type: 'unicast',
      flags: ['onlink'],
    };
    const kernel = new MemoryKernel({ links: ['lo', 'eth0'], routes: [previous, stale] });
    const { agent, last, dataplane } = makeAgent({ ds, kernel });
    await agent.start();
    expect(last().peers.map((p) => p.address)).toEqual(['198.18.0.12']);
    // The Speaker's deferral ends (node-2 not up yet, as when its connect-retry timer is still running).
    const inputsBefore = dataplane().inputs.length;
    last().emit('ready');
    // Proof that "ready" was handled: it hands felix a new input (handled synchronously before that), applied.
    await until(() => dataplane().inputs.length > inputsBefore, 'the dataplane update after ready');
    await dataplane().settle();
    expect(agent.status().dataplane).toMatchObject({ retainingUnwanted: true });
    expect(table(kernel)).toContain('10.244.0.64/26 via 198.18.0.12 dev eth0 proto 80 onlink');
    // node-2 comes back and sends its table, then End-of-RIB: now what nobody wants goes.
    last().best = [bgpRoute('10.244.0.64/26', '198.18.0.12')];
    last().emit('update', { peer: '198.18.0.12', announced: [], withdrawn: [] });
    last().emit('endOfRib', { peer: '198.18.0.12' });
    await until(() => !table(kernel).some((r) => r.startsWith('10.244.0.128/26')), 'the stale route removed');
    expect(table(kernel)).toContain('10.244.0.64/26 via 198.18.0.12 dev eth0 proto 80 onlink');
    expect(agent.status().dataplane).toMatchObject({ retainingUnwanted: false });
  });

  it('a kernel without IPIP: said in status and readiness notes, no tunnel routes, everything else programmed', async () => {
    const ds = new MemoryDatastore();
    await ds.create(res('IPPool', 'pool', { cidr: '10.244.0.0/16', ipipMode: 'Always' }));
    const { agent, kernel, last } = makeAgent({ ds, ipip: false });
    await agent.start();
    last().best = [bgpRoute('10.244.0.64/26', '198.18.0.12')];
    last().emit('update', { peer: '198.18.0.12', announced: [], withdrawn: [] });
    await until(
      () => agent.status().dataplane.mode === 'kernel' && (agent.status().dataplane as { inSync: boolean }).inSync,
      'the first apply',
    );
    await until(() => table(kernel).includes('blackhole 10.244.0.0/26 proto 80'), 'the blackhole');
    expect(table(kernel).some((r) => r.includes('tunl0'))).toBe(false);
    const status = agent.status();
    expect(status.dataplane).toMatchObject({ tunl0: { needed: true, supported: false } });
    expect(status.warnings.join('\n')).toMatch(/no IPIP support.*routes through tunl0 are not programmed/);
    const readiness = agent.readiness();
    expect(readiness.ready).toBe(true);
    expect(readiness.notes?.join('\n')).toMatch(/no IPIP support/);
  });

  it('IPIP Always with a working tunl0: tunl0 gets the tunnel address and host MTU − 20, remote blocks go via tunl0 onlink', async () => {
    const ds = new MemoryDatastore();
    await ds.create(res('IPPool', 'pool', { cidr: '10.244.0.0/16', ipipMode: 'Always' }));
    const kernel = new MemoryKernel({ links: ['lo', 'eth0', 'tunl0'] });
    const { agent, ip, last } = makeAgent({ ds, kernel, ipip: true });
    await agent.start();
    const tunnelAddress = (await ds.get('Node', 'node-1'))?.spec.bgp?.ipv4IPIPTunnelAddr;
    expect(tunnelAddress).toMatch(/^10\.244\.0\.\d+$/);
    last().best = [bgpRoute('10.244.0.64/26', '198.18.0.12')];
    last().emit('update', { peer: '198.18.0.12', announced: [], withdrawn: [] });
    await until(
      () => table(kernel).includes('10.244.0.64/26 via 198.18.0.12 dev tunl0 proto 80 onlink'),
      'the tunnel route',
    );
    expect(ip.devices.get('tunl0')).toMatchObject({
      kind: 'ipip',
      mtu: 1480,
      up: true,
      addresses: [`${tunnelAddress}/32`],
    });
    expect(agent.status().dataplane).toMatchObject({ tunl0: { needed: true, supported: true, mtu: 1480 } });
  });

  it('a pool switched from Never to Always while running: a tunnel address is allocated and the routes move to tunl0', async () => {
    const ds = new MemoryDatastore();
    await ds.create(res('IPPool', 'pool', { cidr: '10.244.0.0/16', ipipMode: 'Never' }));
    const kernel = new MemoryKernel({ links: ['lo', 'eth0', 'tunl0'] });
    const { agent, last } = makeAgent({ ds, kernel, ipip: true });
    await agent.start();
    expect((await ds.get('Node', 'node-1'))?.spec.bgp?.ipv4IPIPTunnelAddr).toBeUndefined();
    last().best = [bgpRoute('10.244.0.64/26', '198.18.0.12')];
    last().emit('update', { peer: '198.18.0.12', announced: [], withdrawn: [] });
    await until(
      () => table(kernel).includes('10.244.0.64/26 via 198.18.0.12 dev eth0 proto 80 onlink'),
      'the direct route',
    );
    const pool = (await ds.get('IPPool', 'pool'))!;
    await ds.update({ ...pool, spec: { ...pool.spec, ipipMode: 'Always' } });
    await until(
      () => table(kernel).includes('10.244.0.64/26 via 198.18.0.12 dev tunl0 proto 80 onlink'),
      'the route via tunl0',
    );
    expect(table(kernel).some((r) => r.startsWith('10.244.0.64/26 via 198.18.0.12 dev eth0'))).toBe(false);
    const tunnelAddress = await waitFor(async () => (await ds.get('Node', 'node-1'))?.spec.bgp?.ipv4IPIPTunnelAddr, {
      what: 'the tunnel address on Node node-1',
      timeoutMs: 5_000,
      intervalMs: 5,
    });
    expect(tunnelAddress).toMatch(/^10\.244\.0\.\d+$/);
  });
});
