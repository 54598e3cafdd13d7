// The veth plumbing (src/cni/dataplane.ts) against a scripted command runner: the exact `ip` batches,
// which failures are tolerated (a leftover veth of the same name, a vanished namespace), rollback of a
// half-made pair, /proc/sys writes in both modes, and parsing `ip -json` for CHECK and the host MTU. The same code
// against the real kernel: test/integration/cni.test.ts.

import { describe, expect, it } from 'vitest';
import {
  PodNetwork,
  hostSetupLines,
  hostSysctls,
  podSetupLines,
  type CommandResult,
  type RunCommand,
  type VethPlan,
} from '../../../src/cni/dataplane.js';
import { CniError } from '../../../src/cni/spec.js';

const PLAN: VethPlan = {
  hostIf: 'cali0123456789a',
  podIf: 'eth0',
  netns: '/var/run/netns/pod-a',
  address: '10.244.1.5',
  mtu: 1480,
  podMac: '02:11:22:33:44:55',
};

/** A runner that records every command and answers from `answer` (default: success, no output). */
function scripted(answer: (argv: readonly string[], stdin: string) => Partial<CommandResult> = () => ({})): {
  run: RunCommand;
  calls: Array<{ argv: string[]; stdin: string }>;
} {
  const calls: Array<{ argv: string[]; stdin: string }> = [];
  return {
    calls,
    run: async (argv, stdin = '') => {
      calls.push({ argv: [...argv], stdin });
      return { code: 0, stdout: '', stderr: '', ...answer(argv, stdin) };
    },
  };
}

describe('batches', () => {
  it("are Calico's steps, host side then pod side", () => {
    expect(hostSetupLines(PLAN)).toEqual([
      'link add cali0123456789a mtu 1480 address ee:ee:ee:ee:ee:ee type veth peer name eth0 mtu 1480 address 02:11:22:33:44:55 netns /var/run/netns/pod-a',
      'link set cali0123456789a up',
      'route replace 10.244.1.5/32 dev cali0123456789a scope link',
    ]);
    expect(podSetupLines(PLAN)).toEqual([
      'link set eth0 up',
      'addr add 10.244.1.5/32 dev eth0',
      'route add 169.254.1.1 dev eth0 scope link',
      'route add default via 169.254.1.1 dev eth0',
      'neigh replace 169.254.1.1 lladdr ee:ee:ee:ee:ee:ee dev eth0 nud permanent',
    ]);
    expect(hostSysctls('cali0123456789a')).toEqual([
      { path: '/proc/sys/net/ipv4/conf/cali0123456789a/proxy_arp', value: '1' },
      { path: '/proc/sys/net/ipv4/neigh/cali0123456789a/proxy_delay', value: '0' },
      { path: '/proc/sys/net/ipv4/conf/cali0123456789a/forwarding', value: '1' },
    ]);
  });
});

describe('setup', () => {
  it('runs one host batch, writes /proc/sys, then one pod batch under nsenter', async () => {
    const runner = scripted();
    const written: string[] = [];
    await new PodNetwork({ run: runner.run, writeProcSys: async (p, v) => void written.push(`${p}=${v}`) }).setup(PLAN);
    expect(runner.calls.map((c) => c.argv.join(' '))).toEqual([
      'ip -batch -',
      'nsenter --net=/var/run/netns/pod-a ip -batch -',
    ]);
    expect(runner.calls[0]?.stdin).toBe(hostSetupLines(PLAN).join('\n') + '\n');
    expect(runner.calls[1]?.stdin).toBe(podSetupLines(PLAN).join('\n') + '\n');
    expect(written.sort()).toEqual(
      hostSysctls(PLAN.hostIf)
        .map((s) => `${s.path}=${s.value}`)
        .sort(),
    );
  });

  it('with a host namespace, runs the host side and sysctl under nsenter too', async () => {
    const runner = scripted();
    await new PodNetwork({
      run: runner.run,
      hostNetns: '/var/run/netns/node-1',
      writeProcSys: () => Promise.reject(new Error("must not write the plugin's own /proc/sys")),
    }).setup(PLAN);
    expect(runner.calls.map((c) => c.argv.join(' '))).toEqual([
      'nsenter --net=/var/run/netns/node-1 ip -batch -',
      'nsenter --net=/var/run/netns/node-1 sysctl -q -w net/ipv4/conf/cali0123456789a/proxy_arp=1 net/ipv4/neigh/cali0123456789a/proxy_delay=0 net/ipv4/conf/cali0123456789a/forwarding=1',
      'nsenter --net=/var/run/netns/pod-a ip -batch -',
    ]);
  });

  it('removes a leftover pair of the same name ("File exists") and runs the host batch once more', async () => {
    let hostBatches = 0;
    const runner = scripted((argv, stdin) =>
      stdin.startsWith('link add') && hostBatches++ === 0
        ? { code: 1, stderr: 'RTNETLINK answers: File exists\nCommand failed -:1\n' }
        : {},
    );
    await new PodNetwork({ run: runner.run, writeProcSys: async () => undefined }).setup(PLAN);
    expect(runner.calls.map((c) => c.argv.join(' '))).toEqual([
      'ip -batch -',
      'ip link del cali0123456789a',
      'ip -batch -',
      'nsenter --net=/var/run/netns/pod-a ip -batch -',
    ]);
    expect(runner.calls[2]?.stdin).toBe(hostSetupLines(PLAN).join('\n') + '\n');
  });

  // Each failure: where, what iproute2 says, the message, and whether the half-made pair is removed.
  const isHostBatch = (stdin: string): boolean => stdin.startsWith('link add');
  const FAILURES: Array<{
    name: string;
    answer: (argv: readonly string[], stdin: string) => Partial<CommandResult>;
    says: RegExp;
  }> = [
    {
      // Not a leftover of ours: removing cali… does not help, the second try fails the same way.
      name: 'eth0 already exists in the pod',
      answer: (argv, stdin) =>
        isHostBatch(stdin)
          ? { code: 2, stderr: 'RTNETLINK answers: File exists\nCommand failed -:1\n' }
          : argv.includes('del')
            ? { code: 1, stderr: 'Cannot find device "cali0123456789a"\n' }
            : {},
      says: /creating cali0123456789a \/ eth0 in host namespace \/var\/run\/netns\/node-1 failed: "ip link add cali0123456789a .*": RTNETLINK answers: File exists/,
    },
    {
      name: 'nsenter cannot enter the host namespace',
      answer: (_argv, stdin) =>
        isHostBatch(stdin)
          ? { code: 1, stderr: 'nsenter: cannot open /var/run/netns/x: No such file or directory\n' }
          : {},
      says: /creating .* failed: nsenter: cannot open/,
    },
    {
      name: 'the host route is refused',
      answer: (_argv, stdin) =>
        isHostBatch(stdin) ? { code: 2, stderr: 'Error: Nexthop device is not up.\nCommand failed -:3\n' } : {},
      says: /creating cali0123456789a \/ eth0 in host namespace \/var\/run\/netns\/node-1 failed: "ip route replace 10\.244\.1\.5\/32 dev cali0123456789a scope link": Error: Nexthop device is not up\./,
    },
    {
      name: 'the pod side refuses the default route',
      answer: (_argv, stdin) =>
        stdin.startsWith('link set eth0')
          ? { code: 1, stderr: 'RTNETLINK answers: File exists\nCommand failed -:4\n' }
          : {},
      says: /configuring eth0 in \/var\/run\/netns\/pod-a failed: "ip route add default via 169\.254\.1\.1 dev eth0": RTNETLINK answers: File exists/,
    },
    {
      name: 'sysctl fails',
      answer: (argv) =>
        argv.includes('sysctl')
          ? {
              code: 255,
              stderr:
                'sysctl: cannot stat /proc/sys/net/ipv4/conf/cali0123456789a/proxy_arp: No such file or directory\n',
            }
          : {},
      says: /sysctl -q -w .* failed: sysctl: cannot stat/,
    },
  ];
  it('has failure rows', () => expect(FAILURES.length).toBe(5));
  for (const row of FAILURES) {
    it(`removes the half-made pair when ${row.name}`, async () => {
      const runner = scripted(row.answer);
      const network = new PodNetwork({ run: runner.run, hostNetns: '/var/run/netns/node-1' });
      const err = await network.setup(PLAN).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(CniError);
      expect((err as CniError).code).toBe(101);
      expect((err as CniError).message).toMatch(row.says);
      expect(runner.calls.at(-1)?.argv.join(' ')).toBe(
        'nsenter --net=/var/run/netns/node-1 ip link del cali0123456789a',
      );
    });
  }

  it("refuses a namespace path iproute2's batch mode cannot carry (4)", async () => {
    const err = await new PodNetwork({ run: scripted().run })
      .setup({ ...PLAN, netns: '/var/run/netns/a b' })
      .catch((e: unknown) => e);
    expect((err as CniError).code).toBe(4);
  });
});

describe('removal', () => {
  it('deletes the pod end through its namespace, and calls it done when the device or namespace is gone', async () => {
    const answers: Array<Partial<CommandResult>> = [
      {},
      { code: 1, stderr: 'Cannot find device "eth0"\n' },
      { code: 1, stderr: 'nsenter: cannot open /var/run/netns/pod-a: No such file or directory\n' },
      { code: 2, stderr: 'RTNETLINK answers: Operation not permitted\n' },
    ];
    let i = 0;
    const runner = scripted(() => answers[i++] ?? {});
    const network = new PodNetwork({ run: runner.run });
    expect(await network.removePodInterface(PLAN.netns, 'eth0')).toBe(true);
    expect(await network.removePodInterface(PLAN.netns, 'eth0')).toBe(false);
    expect(await network.removePodInterface(PLAN.netns, 'eth0')).toBe(false);
    await expect(network.removePodInterface(PLAN.netns, 'eth0')).rejects.toThrow(
      /ip link del eth0 in \/var\/run\/netns\/pod-a failed: RTNETLINK answers: Operation not permitted/,
    );
    expect(runner.calls[0]?.argv).toEqual(['nsenter', '--net=/var/run/netns/pod-a', 'ip', 'link', 'del', 'eth0']);
  });

  it('deletes the host end, also when it is already gone', async () => {
    const runner = scripted(() => ({ code: 1, stderr: 'Cannot find device "cali0123456789a"\n' }));
    await new PodNetwork({ run: runner.run }).removeHostVeth('cali0123456789a');
    expect(runner.calls[0]?.argv).toEqual(['ip', 'link', 'del', 'cali0123456789a']);
  });
});

describe('reading the kernel', () => {
  const HOST_OK = [
    JSON.stringify([{ ifname: 'cali0123456789a', flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'], mtu: 1480 }]),
    JSON.stringify([{ dst: '10.244.1.5', dev: 'cali0123456789a', protocol: '80', scope: 'link', flags: [] }]),
  ].join('\n');
  const POD_OK = [
    JSON.stringify([
      { ifname: 'eth0', flags: ['UP'], addr_info: [{ family: 'inet', local: '10.244.1.5', prefixlen: 32 }] },
    ]),
    JSON.stringify([{ dst: 'default', gateway: '169.254.1.1', dev: 'eth0', flags: [] }]),
    JSON.stringify([{ dst: '169.254.1.1', dev: 'eth0', scope: 'link', flags: [] }]),
  ].join('\n');
  const check = (host: Partial<CommandResult>, pod: Partial<CommandResult>): Promise<string[]> =>
    new PodNetwork({ run: scripted((argv) => (argv[0] === 'nsenter' ? pod : host)).run }).check(PLAN);

  it('CHECK finds nothing wrong in what ADD leaves', async () => {
    expect(await check({ stdout: HOST_OK }, { stdout: POD_OK })).toEqual([]);
  });

  it('CHECK names each difference', async () => {
    const hostDown = HOST_OK.replace('"UP",', '');
    expect(await check({ stdout: hostDown }, { stdout: POD_OK })).toEqual(['host interface cali0123456789a is not up']);
    expect(
      await check({ stdout: '', stderr: 'Device "cali0123456789a" does not exist.\n', code: 1 }, { stdout: POD_OK }),
    ).toEqual(['host interface cali0123456789a does not exist']);
    const noRoute = HOST_OK.split('\n')[0] + '\n[]';
    expect(await check({ stdout: noRoute }, { stdout: POD_OK })).toEqual([
      'no route 10.244.1.5/32 dev cali0123456789a scope link',
    ]);
    const podLines = POD_OK.split('\n');
    expect(
      await check(
        { stdout: HOST_OK },
        { stdout: [podLines[0]!.replace('10.244.1.5', '10.244.1.6'), '[]', '[]'].join('\n') },
      ),
    ).toEqual([
      'eth0 in /var/run/netns/pod-a does not have 10.244.1.5/32',
      'no route 169.254.1.1 dev eth0 scope link in /var/run/netns/pod-a',
      'no default route via 169.254.1.1 dev eth0 in /var/run/netns/pod-a',
    ]);
    expect(
      await check(
        { stdout: HOST_OK },
        { code: 1, stderr: 'nsenter: cannot open /var/run/netns/pod-a: No such file or directory\n' },
      ),
    ).toEqual(['the network namespace /var/run/netns/pod-a does not exist']);
  });

  it("finds the MTU of the default route's interface (lowest metric)", async () => {
    const out = [
      JSON.stringify([
        { dst: 'default', gateway: '198.18.0.1', dev: 'wan', metric: 200 },
        { dst: 'default', gateway: '198.18.1.1', dev: 'eth0', metric: 100 },
      ]),
      JSON.stringify([
        { ifname: 'lo', mtu: 65536 },
        { ifname: 'eth0', mtu: 9000 },
        { ifname: 'wan', mtu: 1500 },
      ]),
    ].join('\n');
    const runner = scripted(() => ({ stdout: out }));
    expect(await new PodNetwork({ run: runner.run }).defaultRouteMtu()).toEqual({ dev: 'eth0', mtu: 9000 });
    expect(runner.calls[0]?.stdin).toBe('route show default\nlink show\n');
    expect(await new PodNetwork({ run: scripted(() => ({ stdout: '[]\n[]\n' })).run }).defaultRouteMtu()).toBeNull();
  });
});
