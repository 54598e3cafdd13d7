// felix/vxlan.ts's VxlanKeeper on this machine's real kernel, in a namespace the test makes (no lab, no
// agent): vxlan.calico is made as Calico makes it, a second keeper (a restart) writes nothing, drift (a
// neighbour, an FDB entry, the MTU, the device down) is repaired, foreign entries (a permanent neighbour of
// another protocol, the all-zero flood FDB entry, a neighbour on another device) are never touched and a
// foreign permanent entry for a VTEP we want is reported, not replaced; with no VXLAN pool the device goes;
// through FelixDataplane with the real `ip monitor neigh`, an entry deleted by hand is back at once.
// Run under the integration lock: `flock /tmp/tortie-integration.lock npx vitest run test/integration/felix-vxlan.test.ts`.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FelixDataplane, type DataplaneInput } from '../../felix/dataplane.js';
import { MemoryKernel } from '../../felix/memory-kernel.js';
import { VxlanKeeper, vxlanRunner, vxlanWatch, type VxlanInput, type VxlanRunner } from '../../felix/vxlan.js';
import { waitFor } from '../harness/wait.js';
import { createNetns, destroyAllNetns, netnsUnavailableReason, type Netns } from '../harness/netns.js';

const unavailable = netnsUnavailableReason();
if (unavailable && process.env.CI === 'true') throw new Error(`felix-vxlan cannot run: ${unavailable}`);
if (unavailable) console.warn(`SKIPPING felix-vxlan: ${unavailable}`);

const quiet = { info: (): void => undefined, warn: (): void => undefined };

const INPUT: VxlanInput = {
  needed: true,
  local: { nodeIp: '198.18.240.1', tunnelAddress: '10.240.0.1', mac: '66:00:00:00:00:01' },
  remotes: [
    { node: 'n2', nodeIp: '198.18.240.2', tunnelAddress: '10.240.1.0', mac: '66:00:00:00:00:02' },
    { node: 'n3', nodeIp: '198.18.241.3', tunnelAddress: '10.240.2.0', mac: '66:00:00:00:00:03' },
  ],
  hostMtu: 1500,
};

interface Neigh {
  dst: string;
  lladdr?: string;
  state: string[];
  protocol?: string;
}
interface Fdb {
  mac: string;
  dst?: string;
  state?: string;
}

describe.skipIf(unavailable !== null)('VxlanKeeper on the real kernel', () => {
  let ns: Netns;
  const neigh = async (): Promise<Neigh[]> =>
    JSON.parse(await ns.ip('-j', 'neigh', 'show', 'dev', 'vxlan.calico')) as Neigh[];
  const fdb = async (): Promise<Fdb[]> =>
    JSON.parse(await ns.exec('bridge', ['-j', 'fdb', 'show', 'dev', 'vxlan.calico'])) as Fdb[];
  const keeper = (): VxlanKeeper => {
    const k = new VxlanKeeper(vxlanRunner({ netns: ns.name }), quiet);
    k.update(INPUT);
    return k;
  };

  beforeAll(async () => {
    ns = await createNetns('vxlan');
    await ns.addVeth('eth0', 'eth0-peer');
    await ns.ip('addr', 'add', '198.18.240.1/24', 'dev', 'eth0');
  });
  afterAll(async () => {
    await destroyAllNetns();
  });

  it('makes vxlan.calico, its neighbours and FDB entries; a second keeper (a restart) writes nothing', async () => {
    const status = await keeper().ensure();
    expect(status).toMatchObject({ usable: true, remoteVteps: 2, writes: 7, conflicts: [] });
    expect(status.lastError).toBeUndefined();
    const [dev] = JSON.parse(await ns.ip('-d', '-j', 'addr', 'show', 'dev', 'vxlan.calico')) as Array<{
      mtu: number;
      address: string;
      flags: string[];
      linkinfo: { info_kind: string; info_data: Record<string, unknown> };
      addr_info: Array<{ family: string; local: string }>;
    }>;
    expect(dev).toMatchObject({
      mtu: 1450,
      address: '66:00:00:00:00:01',
      linkinfo: { info_kind: 'vxlan', info_data: { id: 4096, port: 4789, local: '198.18.240.1', learning: false } },
    });
    expect(dev!.flags).toContain('UP');
    expect(dev!.addr_info.filter((a) => a.family === 'inet').map((a) => a.local)).toEqual(['10.240.0.1']);
    expect((await neigh()).map((n) => [n.dst, n.lladdr, n.state, n.protocol]).sort()).toEqual([
      ['10.240.1.0', '66:00:00:00:00:02', ['PERMANENT'], '80'],
      ['10.240.2.0', '66:00:00:00:00:03', ['PERMANENT'], '80'],
    ]);
    expect(
      (await fdb())
        .filter((f) => f.dst !== undefined)
        .map((f) => [f.mac, f.dst, f.state])
        .sort(),
    ).toEqual([
      ['66:00:00:00:00:02', '198.18.240.2', 'permanent'],
      ['66:00:00:00:00:03', '198.18.241.3', 'permanent'],
    ]);
    const again = await keeper().ensure();
    expect(again).toMatchObject({ usable: true, remoteVteps: 2, writes: 0 });
  });

  it('repairs drift; never touches foreign entries; a foreign permanent entry for a wanted VTEP is reported, not replaced', async () => {
    await ns.ip('neigh', 'del', '10.240.1.0', 'dev', 'vxlan.calico');
    await ns.exec('bridge', ['fdb', 'del', '66:00:00:00:00:03', 'dev', 'vxlan.calico', 'dst', '198.18.241.3', 'self']);
    await ns.ip('link', 'set', 'dev', 'vxlan.calico', 'mtu', '1400');
    // Someone else's: a permanent neighbour (protocol static) and the all-zero flood entry on vxlan.calico,
    // and a permanent neighbour on eth0.
    await ns.ip(
      'neigh',
      'add',
      '10.240.9.9',
      'lladdr',
      '66:00:00:00:00:99',
      'dev',
      'vxlan.calico',
      'nud',
      'permanent',
      'protocol',
      'static',
    );
    await ns.exec('bridge', [
      'fdb',
      'append',
      '00:00:00:00:00:00',
      'dev',
      'vxlan.calico',
      'dst',
      '198.18.240.99',
      'self',
      'permanent',
    ]);
    await ns.ip('neigh', 'add', '198.18.240.77', 'lladdr', '66:00:00:00:00:77', 'dev', 'eth0', 'nud', 'permanent');
    const status = await keeper().ensure();
    expect(status).toMatchObject({ usable: true, remoteVteps: 2, writes: 3, conflicts: [] });
    const [dev] = JSON.parse(await ns.ip('-j', 'link', 'show', 'dev', 'vxlan.calico')) as Array<{ mtu: number }>;
    expect(dev!.mtu).toBe(1450);
    expect((await neigh()).map((n) => n.dst).sort()).toEqual(['10.240.1.0', '10.240.2.0', '10.240.9.9']);
    expect(
      (await fdb())
        .filter((f) => f.dst !== undefined)
        .map((f) => f.mac)
        .sort(),
    ).toEqual(['00:00:00:00:00:00', '66:00:00:00:00:02', '66:00:00:00:00:03']);
    expect(await ns.ip('neigh', 'show', 'dev', 'eth0')).toContain('198.18.240.77 lladdr 66:00:00:00:00:77 PERMANENT');

    // A foreign permanent entry now holds a VTEP we want: reported, left as it is.
    await ns.ip(
      'neigh',
      'replace',
      '10.240.2.0',
      'lladdr',
      '66:00:00:00:00:33',
      'dev',
      'vxlan.calico',
      'nud',
      'permanent',
      'protocol',
      'static',
    );
    const conflicted = await keeper().ensure();
    expect(conflicted.conflicts).toEqual([
      'neighbour 10.240.2.0 on vxlan.calico is a permanent entry felix does not own (protocol 4, MAC 66:00:00:00:00:33): ours (MAC 66:00:00:00:00:03) is not written',
    ]);
    expect(conflicted.remoteVteps).toBe(1);
    expect((await neigh()).find((n) => n.dst === '10.240.2.0')).toMatchObject({
      lladdr: '66:00:00:00:00:33',
      protocol: 'static',
    });
    await ns.ip('neigh', 'del', '10.240.2.0', 'dev', 'vxlan.calico');
  });

  it('a remote VTEP gone: its neighbour and FDB entry go, the foreign ones stay; no VXLAN pool: the device goes', async () => {
    const k = keeper();
    expect(await k.ensure()).toMatchObject({ usable: true, remoteVteps: 2 });
    k.update({ ...INPUT, remotes: INPUT.remotes.slice(0, 1) });
    const status = await k.ensure();
    expect(status).toMatchObject({ usable: true, remoteVteps: 1 });
    expect((await neigh()).map((n) => n.dst).sort()).toEqual(['10.240.1.0', '10.240.9.9']);
    expect(
      (await fdb())
        .filter((f) => f.dst !== undefined)
        .map((f) => f.mac)
        .sort(),
    ).toEqual(['00:00:00:00:00:00', '66:00:00:00:00:02']);
    k.update({ ...INPUT, needed: false });
    const off = await k.ensure();
    expect(off).toMatchObject({ needed: false, device: null, usable: false });
    expect((await ns.tryIp('link', 'show', 'dev', 'vxlan.calico')).code).not.toBe(0);
  });

  it('repairs at once: a neighbour or FDB entry of ours deleted by hand is back from the monitor (no resync), foreign ones untouched', async () => {
    // The dataplane with the real `ip monitor neigh` in the namespace; routes on an in-memory kernel; the
    // resync 10 minutes away, so only the monitor can bring an entry back within the test.
    let looks = 0;
    const run = vxlanRunner({ netns: ns.name });
    const counting: VxlanRunner = (tool, args, stdin) => {
      if (args.includes('neigh') && args.includes('show')) looks++;
      return run(tool, args, stdin);
    };
    const dp = new FelixDataplane({
      kernel: new MemoryKernel({ links: ['lo', 'eth0'] }),
      log: { info() {}, warn() {}, error() {} },
      debounceMs: 1,
      resyncMs: 600_000,
      vxlan: { run: counting, watch: vxlanWatch({ netns: ns.name }) },
    });
    const input: DataplaneInput = {
      node: { ip: '198.18.240.1/24', hostInterface: 'eth0' },
      pools: [{ cidr: '10.240.0.0/16', ipipMode: 'Never', vxlanMode: 'Always' }],
      localBlocks: [],
      workloads: [],
      bgpRoutes: [],
      tunnel: { hostMtu: 1500 },
      vxlan: {
        local: { tunnelAddress: INPUT.local.tunnelAddress!, mac: INPUT.local.mac! },
        nodes: INPUT.remotes.map((r) => ({ name: r.node, ip: r.nodeIp, tunnelAddress: r.tunnelAddress, mac: r.mac })),
        remoteBlocks: [],
      },
    };
    try {
      dp.update(input);
      dp.start();
      await dp.settle();
      expect(dp.status().vxlan).toMatchObject({ usable: true, remoteVteps: 2 });
      const writes = (): number => dp.status().vxlan?.writes ?? -1;
      // The monitor is live once a change on vxlan.calico makes felix look (a foreign entry: looked at, not written).
      const before = writes();
      const seen = looks;
      const live = await waitFor(
        async () => {
          await ns.ip(
            'neigh',
            'replace',
            '10.240.9.8',
            'lladdr',
            '66:00:00:00:00:98',
            'dev',
            'vxlan.calico',
            'nud',
            'permanent',
          );
          await ns.ip('neigh', 'del', '10.240.9.8', 'dev', 'vxlan.calico');
          return looks > seen;
        },
        { what: 'the neighbour monitor reporting a change on vxlan.calico', timeoutMs: 10_000, intervalMs: 100 },
      );
      expect(live).toBe(true);
      expect(writes()).toBe(before);
      await ns.ip(
        'neigh',
        'replace',
        '10.240.9.7',
        'lladdr',
        '66:00:00:00:00:97',
        'dev',
        'vxlan.calico',
        'nud',
        'permanent',
        'protocol',
        'static',
      );

      const ours = (ip: string) => async () => (await neigh()).find((n) => n.dst === ip && n.protocol === '80') ?? null;
      const begun = Date.now();
      await ns.ip('neigh', 'del', '10.240.1.0', 'dev', 'vxlan.calico');
      const back = await waitFor(ours('10.240.1.0'), {
        what: 'neighbour 10.240.1.0 back',
        timeoutMs: 5_000,
        intervalMs: 20,
      });
      const neighMs = Date.now() - begun;
      expect(back).toMatchObject({ lladdr: '66:00:00:00:00:02', state: ['PERMANENT'] });

      const begunFdb = Date.now();
      await ns.exec('bridge', [
        'fdb',
        'del',
        '66:00:00:00:00:03',
        'dev',
        'vxlan.calico',
        'dst',
        '198.18.241.3',
        'self',
      ]);
      const fdbBack = await waitFor(
        async () => (await fdb()).find((f) => f.mac === '66:00:00:00:00:03' && f.dst === '198.18.241.3') ?? null,
        { what: 'FDB 66:00:00:00:00:03 back', timeoutMs: 5_000, intervalMs: 20 },
      );
      const fdbMs = Date.now() - begunFdb;
      expect(fdbBack).toMatchObject({ state: 'permanent' });
      console.log(
        `felix-vxlan: neighbour back ${neighMs} ms, FDB entry back ${fdbMs} ms after the deletion (monitor; resync 10 min away)`,
      );
      // The foreign permanent entry was never touched through all that.
      expect((await neigh()).find((n) => n.dst === '10.240.9.7')).toMatchObject({
        lladdr: '66:00:00:00:00:97',
        protocol: 'static',
      });
      await ns.ip('neigh', 'del', '10.240.9.7', 'dev', 'vxlan.calico');
    } finally {
      await dp.stop();
    }
  });
});
