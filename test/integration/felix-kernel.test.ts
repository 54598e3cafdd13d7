// felix against the real kernel, inside network namespaces this file creates: the Iproute2Kernel reads (its
// decoded `ip route save` equal to `ip -json route show` for every route shape) and writes, and the
// RouteTable keeps the main table equal to the desired set for every route shape while foreign routes
// (proto bird, static, a user's route) survive every resync, an owned route deleted by hand comes back, a
// workload route waits for its cali* interface, and a restart removes nothing (watched with
// `ip monitor route`). The host's own routing table is never touched.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Iproute2Kernel, parseRouteJson } from '../../felix/iproute2.js';
import { KernelError, normalizeKernelRoute, type KernelEvent, type KernelRoute } from '../../felix/kernel.js';
import { RouteTable, isOwnedRoute, toKernelRoute, type ApplyResult } from '../../felix/route-table.js';
import { calculateRoutes } from '../../felix/route-calc.js';
import type { DesiredRoute } from '../../felix/routes.js';
import {
  createNetns,
  destroyAllNetns,
  liveNetns,
  netnsUnavailableReason,
  runCommand,
  type Netns,
} from '../harness/netns.js';
import { waitFor } from '../harness/wait.js';

const unavailable = netnsUnavailableReason();
if (unavailable && process.env.CI === 'true') throw new Error(`felix kernel tests cannot run: ${unavailable}`);

const CALI = 'calie8e9a5cf531';
const CALI2 = 'cali0123456789a';
const blackhole = (dst: string): DesiredRoute => ({ dst, type: 'blackhole', proto: 80, class: 'blackhole' });
const workload = (ip: string, dev = CALI): DesiredRoute => ({
  dst: `${ip}/32`,
  type: 'unicast',
  dev,
  scope: 'link',
  proto: 80,
  class: 'workload',
});
const remote = (dst: string, via: string, dev = 'eth0'): DesiredRoute => ({
  dst,
  type: 'unicast',
  via,
  dev,
  onlink: true,
  proto: 80,
  class: dev === 'tunl0' ? 'tunnel' : 'direct',
});

/** Routes someone else put there: each must survive every resync. */
const FOREIGN_COMMANDS: string[][] = [
  ['route', 'add', '10.9.0.0/16', 'via', '192.168.31.1', 'proto', 'bird'],
  ['route', 'add', '10.8.0.0/16', 'via', '192.168.31.1', 'proto', 'static'],
  ['route', 'add', '10.7.0.0/16', 'via', '192.168.31.1'],
  ['route', 'add', 'default', 'via', '192.168.31.1', 'metric', '100'],
];

/** Every route shape the main table can hold that `ip route add` makes here (one per line), for the full read. */
const DUMP_SHAPES: string[][] = [
  'route add unreachable 10.250.0.0/16',
  'route add prohibit 10.251.0.0/16 proto 250',
  'route add throw 10.249.0.0/16',
  'route add 10.252.0.0/16 via 192.168.31.3 mtu 1400',
  'route add 10.253.0.0/16 nexthop via 192.168.31.4 nexthop via 192.168.31.5 weight 3',
  'route add 10.254.0.0/16 dev eth0 src 192.168.31.201 proto static',
  'route add 10.248.0.0/16 via 192.168.31.6 metric 300 proto 42',
  'route add 10.248.0.0/16 via 192.168.31.7 metric 400',
  'route add local 10.247.0.1 dev eth0 table main',
  'route add broadcast 10.247.0.255 dev eth0 table main',
  'route add 10.246.0.0/16 dev eth0 scope host',
  'route add 10.245.0.0/16 via 192.168.31.8 realm 5',
  'route add 10.244.9.9 dev calidown0000001 proto 80 scope link',
  'nexthop add id 7 via 192.168.31.9 dev eth0',
  'route add 10.243.0.0/16 nhid 7',
  'route add 10.77.0.0/16 via 192.168.31.10 table 100',
  'route add 10.241.0.0/16 via 192.168.31.12 dev eth0 onlink proto bird',
  'route add 10.240.0.0/12 via 192.168.31.13 proto 80 metric 4294967295',
  'route add multicast 224.1.0.0/16 dev eth0 table main',
  'route add anycast 10.239.0.0/16 dev eth0 table main',
  'route add 10.238.0.0/16 dev eth0 proto 255 scope 100',
  'route add 10.237.0.0/16 via 192.168.31.14 tos 0x10',
  'route add 10.236.0.0/16 via 192.168.31.15 dev eth0 src 192.168.31.201 metric 7 proto boot',
].map((line) => line.split(' '));

async function node(tag: string): Promise<Netns> {
  const ns = await createNetns(tag);
  await ns.addVeth('eth0', 'eth0-peer');
  await ns.ip('addr', 'add', '192.168.31.201/24', 'dev', 'eth0');
  await ns.addVeth(CALI, 'wl-e8e9a5cf');
  await ns.addStandInTunl0();
  for (const args of FOREIGN_COMMANDS) await ns.ip(...args);
  return ns;
}

/** The main table as Iproute2Kernel reads it (`ip route save`, decoded; equal to `ip -json route`), sorted. */
async function table(kernel: Iproute2Kernel): Promise<KernelRoute[]> {
  const routes = (await kernel.listRoutes()).map(normalizeKernelRoute);
  return routes.sort((a, b) => (a.dst < b.dst ? -1 : a.dst > b.dst ? 1 : 0));
}

async function owned(kernel: Iproute2Kernel): Promise<KernelRoute[]> {
  return (await table(kernel)).filter(isOwnedRoute);
}

function expectedOwned(routes: DesiredRoute[]): KernelRoute[] {
  return routes.map(toKernelRoute).sort((a, b) => (a.dst < b.dst ? -1 : a.dst > b.dst ? 1 : 0));
}

/** Polls `check` every 20 ms for at most 5 s (the harness's waitFor), naming `what` on timeout. */
async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  await waitFor(check, { what, timeoutMs: 5_000, intervalMs: 20 });
}

const BASE: DesiredRoute[] = [
  blackhole('10.244.1.0/26'),
  workload('10.244.1.5'),
  remote('10.244.2.0/26', '192.168.31.202'),
  remote('10.244.3.0/26', '192.168.32.9', 'tunl0'),
  remote('172.16.0.0/16', '192.168.31.1'),
];

describe.skipIf(unavailable !== null)('felix on the real kernel (network namespaces)', () => {
  const tables: RouteTable[] = [];
  const kernels: Iproute2Kernel[] = [];
  function kernelIn(ns: Netns): Iproute2Kernel {
    const kernel = new Iproute2Kernel({ netns: ns.name, timeoutMs: 10_000 });
    kernels.push(kernel);
    return kernel;
  }
  afterEach(async () => {
    for (const t of tables.splice(0)) t.stop();
    for (const k of kernels.splice(0)) await k.close();
    await destroyAllNetns();
  });
  afterAll(() => destroyAllNetns());
  beforeAll(() => {
    expect(BASE.length).toBeGreaterThan(3);
    expect(FOREIGN_COMMANDS.length).toBeGreaterThan(2);
  });

  it('programs every route shape; ip -json route reads back exactly the desired set; foreign routes stay', async () => {
    const ns = await node('shapes');
    const kernel = kernelIn(ns);
    const foreign = (await table(kernel)).filter((r) => !isOwnedRoute(r));
    expect(foreign.length).toBeGreaterThanOrEqual(FOREIGN_COMMANDS.length);
    const rt = new RouteTable(kernel);
    rt.setDesired(BASE);
    const result = await rt.apply();
    expect(result.kernelWrites).toBe(BASE.length);
    expect(await owned(kernel)).toEqual(expectedOwned(BASE));
    expect((await table(kernel)).filter((r) => !isOwnedRoute(r))).toEqual(foreign);
    // What `ip route` prints, for the shapes in the issue.
    const text = await ns.ip('route', 'show', 'table', 'main');
    expect(text).toContain('blackhole 10.244.1.0/26 proto 80');
    expect(text).toContain(`10.244.1.5 dev ${CALI} proto 80 scope link`);
    expect(text).toContain('10.244.2.0/26 via 192.168.31.202 dev eth0 proto 80 onlink');
    expect(text).toContain('10.244.3.0/26 via 192.168.32.9 dev tunl0 proto 80 onlink');
    // A second apply and a forced full resync change nothing.
    expect((await rt.apply()).kernelWrites).toBe(0);
  });

  it('the full read (ip route save, decoded) gives what ip -json route show prints, for every route shape', async () => {
    const ns = await node('dump');
    await ns.addVeth('calidown0000001', 'wl-down');
    await ns.ip('link', 'set', 'wl-down', 'down'); // its cali end: linkdown
    for (const args of DUMP_SHAPES) await ns.ip(...args);
    const lines: string[] = [];
    for (let i = 0; i < 2_000; i++)
      lines.push(`route add 10.${100 + (i >> 8)}.${i & 255}.0/26 via 192.168.31.202 dev eth0 proto 80 onlink`);
    const added = await runCommand('ip', ['-n', ns.name, '-batch', '-'], `${lines.join('\n')}\n`, 30_000);
    expect(added.stderr).toBe('');
    const snapshot = await kernelIn(ns).readAll();
    const shown = await runCommand(
      'ip',
      ['-n', ns.name, '-4', '-json', 'route', 'show', 'table', 'main'],
      undefined,
      30_000,
    );
    const viaJson = parseRouteJson(shown.stdout).map(normalizeKernelRoute);
    const key = (r: KernelRoute): string => JSON.stringify(r, Object.keys(r).sort());
    expect(snapshot.routes.length).toBeGreaterThan(2_000 + DUMP_SHAPES.length);
    expect(snapshot.routes.map(key).sort()).toEqual(viaJson.map(key).sort());
    for (const r of snapshot.routes) expect(normalizeKernelRoute(r)).toBe(r);
    expect(snapshot.routes.some((r) => r.dst === '10.77.0.0/16')).toBe(false); // table 100
    const links = JSON.parse((await runCommand('ip', ['-n', ns.name, '-json', 'link', 'show'])).stdout) as Array<{
      ifname: string;
    }>;
    expect(snapshot.links).toEqual(links.map((l) => l.ifname));
    expect(await kernelIn(ns).listRoutes()).toEqual(snapshot.routes);
  });

  it('follows workload add/remove, block claim/release, remote node add/remove; foreign routes survive each', async () => {
    const ns = await node('changes');
    const kernel = kernelIn(ns);
    const foreign = (await table(kernel)).filter((r) => !isOwnedRoute(r));
    await ns.addVeth(CALI2, 'wl-01234567');
    const rt = new RouteTable(kernel, { resyncMs: 0 }); // every apply is a full resync
    const steps: Array<{ what: string; routes: DesiredRoute[] }> = [
      { what: 'start', routes: BASE },
      { what: 'workload added', routes: [...BASE, workload('10.244.1.6', CALI2)] },
      { what: 'workload removed', routes: BASE.filter((r) => r.class !== 'workload') },
      { what: 'block claimed', routes: [...BASE, blackhole('10.244.1.64/26')] },
      { what: 'block released', routes: BASE.filter((r) => r.dst !== '10.244.1.0/26') },
      { what: 'remote node added', routes: [...BASE, remote('10.244.4.0/26', '192.168.31.203')] },
      { what: 'remote node removed', routes: BASE.filter((r) => r.dst !== '10.244.2.0/26') },
      {
        what: 'remote node moves to tunl0',
        routes: [...BASE.filter((r) => r.dst !== '10.244.2.0/26'), remote('10.244.2.0/26', '192.168.31.202', 'tunl0')],
      },
    ];
    for (const step of steps) {
      rt.setDesired(step.routes);
      const result = await rt.apply();
      expect(result.fullResync, step.what).toBe(true);
      expect(await owned(kernel), step.what).toEqual(expectedOwned(step.routes));
      expect(
        (await table(kernel)).filter((r) => !isOwnedRoute(r)),
        step.what,
      ).toEqual(foreign);
    }
  });

  it('BGPPeer reachableBy: the static route to the peer via its gateway is programmed (proto 80) and removed with the peer', async () => {
    const ns = await node('reachable');
    const kernel = kernelIn(ns);
    const foreign = (await table(kernel)).filter((r) => !isOwnedRoute(r));
    const rt = new RouteTable(kernel, { resyncMs: 0 });
    const calc = (peerRoutes: Array<{ address: string; gateway: string }>) =>
      calculateRoutes({
        node: { ip: '192.168.31.201/24', hostInterface: 'eth0' },
        pools: [],
        localBlocks: [],
        workloads: [],
        bgpRoutes: [{ prefix: '10.225.0.4/32', nextHop: '192.168.31.77' }],
        tunnelUsable: false,
        peerRoutes,
      }).routes;
    rt.setDesired(calc([{ address: '10.225.0.4', gateway: '192.168.31.1' }]));
    await rt.apply();
    // The gateway wins over the /32 learned over BGP (route class peer < bgp), as Calico's static route does.
    expect(await ns.ip('route', 'show', 'table', 'main', '10.225.0.4/32')).toContain(
      '10.225.0.4 via 192.168.31.1 dev eth0 proto 80 onlink',
    );
    expect(await ns.ip('route', 'get', '10.225.0.4')).toContain('via 192.168.31.1 dev eth0');
    // The peer (its reachableBy) goes: the route learned over BGP is what remains; foreign routes untouched.
    rt.setDesired(calc([]));
    await rt.apply();
    expect(await ns.ip('route', 'show', 'table', 'main', '10.225.0.4/32')).toContain(
      '10.225.0.4 via 192.168.31.77 dev eth0 proto 80 onlink',
    );
    expect((await table(kernel)).filter((r) => !isOwnedRoute(r))).toEqual(foreign);
  });

  it('CrossSubnet shapes: a node in this subnet direct on eth0, a node in another subnet via tunl0', async () => {
    const ns = await node('xsubnet');
    const kernel = kernelIn(ns);
    const routes = [remote('10.244.2.0/26', '192.168.31.202', 'eth0'), remote('10.244.3.0/26', '10.0.5.7', 'tunl0')];
    const rt = new RouteTable(kernel);
    rt.setDesired(routes);
    await rt.apply();
    expect(await owned(kernel)).toEqual(expectedOwned(routes));
  });

  it('running: an owned route deleted by hand comes back; a foreign route added by hand stays', async () => {
    const ns = await node('handdel');
    const kernel = kernelIn(ns);
    const results: ApplyResult[] = [];
    const errors: Error[] = [];
    const rt = new RouteTable(kernel, {
      debounceMs: 5,
      onApplied: (r) => results.push(r),
      onError: (e) => errors.push(e),
    });
    tables.push(rt);
    rt.setDesired(BASE);
    rt.start();
    await eventually('every BASE route in the kernel', async () => (await owned(kernel)).length === BASE.length);
    await new Promise((r) => setTimeout(r, 300)); // ip monitor has no "subscribed" signal
    await ns.ip('route', 'del', '10.244.2.0/26');
    await ns.ip('route', 'add', '10.6.0.0/16', 'via', '192.168.31.1', 'proto', 'static');
    await eventually('10.244.2.0/26 back in the kernel', async () =>
      (await owned(kernel)).some((r) => r.dst === '10.244.2.0/26'),
    );
    expect(await owned(kernel)).toEqual(expectedOwned(BASE));
    expect((await table(kernel)).some((r) => r.dst === '10.6.0.0/16')).toBe(true);
    expect(results.some((r) => !r.fullResync && r.added.some((a) => a.dst === '10.244.2.0/26'))).toBe(true);
    expect(errors).toEqual([]);
  });

  it('running: a workload route waits for its cali* interface and is written when it appears', async () => {
    const ns = await node('waitif');
    const kernel = kernelIn(ns);
    const rt = new RouteTable(kernel, { debounceMs: 5 });
    tables.push(rt);
    const late = workload('10.244.1.9', 'calilate0000001');
    rt.setDesired([...BASE, late]);
    const first = await rt.apply();
    expect(first.waitingForInterface).toEqual([{ dst: '10.244.1.9/32', dev: 'calilate0000001' }]);
    rt.start();
    await new Promise((r) => setTimeout(r, 300)); // ip monitor has no "subscribed" signal
    await ns.addVeth('calilate0000001', 'wl-late');
    await eventually('10.244.1.9/32 in the kernel', async () =>
      (await owned(kernel)).some((r) => r.dst === '10.244.1.9/32'),
    );
    expect(await owned(kernel)).toEqual(expectedOwned([...BASE, late]));
  });

  it('a restart adopts the routes: the new table writes nothing and ip monitor sees no deletion', async () => {
    const ns = await node('restart');
    const first = new RouteTable(kernelIn(ns));
    first.setDesired(BASE);
    await first.apply();
    const events: KernelEvent[] = [];
    const watcher = kernelIn(ns);
    const watch = watcher.watch((e) => events.push(e));
    await new Promise((r) => setTimeout(r, 200)); // let ip monitor subscribe
    await ns.ip('route', 'add', 'blackhole', '10.250.0.0/16', 'proto', 'static'); // proves the monitor sees changes
    const second = new RouteTable(kernelIn(ns));
    second.setDesired(BASE);
    const result = await second.apply();
    await eventually('a route event for 10.250.0.0/16', async () =>
      events.some((e) => e.kind === 'route' && e.dst === '10.250.0.0/16'),
    );
    watch.stop();
    expect(result.fullResync).toBe(true);
    expect(result.kernelWrites).toBe(0);
    expect(events.filter((e) => e.kind === 'route' && e.deleted)).toEqual([]);
    expect(await owned(kernelIn(ns))).toEqual(expectedOwned(BASE));
  });

  it('Iproute2Kernel: a batch with a bad line applies the good lines and names the bad one', async () => {
    const ns = await node('batcherr');
    const kernel = kernelIn(ns);
    const good = toKernelRoute(blackhole('10.244.7.0/26'));
    const bad = toKernelRoute(workload('10.244.7.1', 'calimissing0001'));
    const error = await kernel.apply({ del: [], add: [bad, good] }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(KernelError);
    expect((error as KernelError).lines).toHaveLength(1);
    expect((error as KernelError).lines[0]?.command).toContain('calimissing0001');
    expect((error as KernelError).message).toMatch(/1 of 2 route commands failed/);
    expect((await owned(kernel)).map((r) => r.dst)).toEqual(['10.244.7.0/26']);
    expect(await kernel.linkExists(CALI)).toBe(true);
    expect(await kernel.linkExists('calimissing0001')).toBe(false);
  });

  it('Iproute2Kernel.readThenWrite: a batch ip abandons part-way (a gateway it cannot parse) is an error, not success', async () => {
    const ns = await node('batchstop');
    const kernel = kernelIn(ns);
    const session = kernel.readThenWrite();
    expect((await session.read).links).toContain('eth0');
    const before = toKernelRoute(blackhole('10.244.8.0/26'));
    // Not what route-calc makes (its gateways are IPv4), but what this -4 session must not take for success.
    const v6 = { ...toKernelRoute(remote('10.244.8.64/26', '192.168.31.202')), gateway: 'fe80::1' };
    const after = toKernelRoute(blackhole('10.244.8.128/26'));
    const error = await session.write({ del: [], add: [before, v6, after] }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(KernelError);
    expect((error as Error).message).toMatch(
      /ip -batch stopped before the end of its 3 route commands in netns .*: Error: inet address is expected rather than "fe80::1"/,
    );
    // ip ran the line before and stopped: the line after never reached the kernel.
    expect((await owned(kernelIn(ns))).map((r) => r.dst)).toEqual(['10.244.8.0/26']);
    // And a whole batch through the same kind of session is still success.
    const again = kernelIn(ns).readThenWrite();
    await again.read;
    await again.write({ del: [], add: [after] });
    expect((await owned(kernelIn(ns))).map((r) => r.dst)).toEqual(['10.244.8.0/26', '10.244.8.128/26']);
  });

  it('programs 10,000 routes, then a resync with nothing to change writes nothing (timings printed)', async () => {
    const ns = await node('bulk');
    const kernel = kernelIn(ns);
    const routes: DesiredRoute[] = [];
    for (let i = 0; i < 10_000; i++) {
      routes.push(remote(`10.${100 + Math.floor(i / 256)}.${i % 256}.0/26`, '192.168.31.202'));
    }
    const rt = new RouteTable(kernel, { resyncMs: 0 });
    rt.setDesired(routes);
    const t0 = performance.now();
    const first = await rt.apply();
    const t1 = performance.now();
    const again = await rt.apply();
    const t2 = performance.now();
    // The same 10,000 lines through a bare `ip -batch`, in a second namespace, for comparison.
    const ns2 = await node('bulkref');
    const lines = routes.map((r) => `route replace ${r.dst} via ${r.via} dev eth0 proto 80 onlink`).join('\n') + '\n';
    const t3 = performance.now();
    const bare = await runCommand('ip', ['-n', ns2.name, '-batch', '-'], lines, 60_000);
    const t4 = performance.now();
    expect(bare.code).toBe(0);
    console.log(
      `felix-kernel: 10,000 routes via RouteTable ${(t1 - t0).toFixed(0)} ms, bare ip -batch ${(t4 - t3).toFixed(0)} ms; ` +
        `full resync with nothing to change ${(t2 - t1).toFixed(0)} ms, ${again.kernelWrites} writes`,
    );
    expect(first.kernelWrites).toBe(10_000);
    expect(again.kernelWrites).toBe(0);
    expect((await owned(kernel)).length).toBe(10_000);
  }, 60_000);

  it('harness: destroy removes the namespace, its routes and interfaces with it; the host is untouched', async () => {
    const hostRoutesBefore = (await runCommand('ip', ['-4', 'route', 'show', 'table', 'main'])).stdout;
    const ns = await node('cleanup');
    expect(liveNetns()).toContain(ns.name);
    expect((await ns.routes()).length).toBeGreaterThan(0);
    await ns.destroy();
    expect(liveNetns()).not.toContain(ns.name);
    const list = await runCommand('ip', ['netns', 'list']);
    expect(list.stdout).not.toContain(ns.name);
    expect((await runCommand('ip', ['-4', 'route', 'show', 'table', 'main'])).stdout).toBe(hostRoutesBefore);
  });
});
