// felix's IPv6 side: the routes (route-calc6.ts, pure) and their reconciliation against a fake `ip`
// (ipv6-dataplane.ts): blackhole per local /122, /128 per workload on its cali*, remote blocks via the
// remote node's Node.spec.bgp.ipv6Address (no IPIP), forwarding on, natOutgoing in `table ip6`. The real
// kernel: test/integration/ipv6-node.test.ts.

import { describe, expect, it } from 'vitest';
import { Ipv6Dataplane, nat6Script, parseRoutes6, routeLine6 } from '../../../felix/ipv6-dataplane.js';
import { calculateRoutes6, canonicalPrefix6, type CalcInput6 } from '../../../felix/route-calc6.js';
import { workloadInterfaceName } from '../../../felix/interface-names.js';

const INPUT: CalcInput6 = {
  hostInterface: 'eth0',
  pools: [{ cidr: 'fd00:10:244::/64', natOutgoing: true }],
  localBlocks: ['fd00:10:244::/122'],
  workloads: [{ ip: 'fd00:10:244::1/128', namespace: 'default', pod: 'web-0' }],
  remoteBlocks: [
    { cidr: 'fd00:10:244::40/122', node: 'node-b' },
    { cidr: 'fd00:10:244::80/122', node: 'node-c' },
  ],
  nodes: [{ name: 'node-b', ipv6Address: 'fd00:54::12/64' }, { name: 'node-c' }],
};

describe('calculateRoutes6', () => {
  it('blackhole per local block, /128 per workload, remote blocks via the node’s IPv6 address; a node without one is named', () => {
    const { routes, warnings } = calculateRoutes6(INPUT);
    expect(routes.map(routeLine6)).toEqual([
      'route replace blackhole fd00:10:244::/122 proto 80',
      `route replace fd00:10:244::1/128 dev ${workloadInterfaceName('default', 'web-0')} scope link proto 80`,
      'route replace fd00:10:244::40/122 via fd00:54::12 dev eth0 onlink proto 80',
    ]);
    expect(warnings).toEqual([
      'node node-c has IPv6 blocks but no Node.spec.bgp.ipv6Address (set IP6 on its agent): no route to them',
    ]);
  });

  it('canonical text as iproute2 prints it; host bits refused', () => {
    expect(canonicalPrefix6('fd00:10:244:0:0:0:0:40/122')).toBe('fd00:10:244::40/122');
    expect(canonicalPrefix6('fd00:10:244::41/122')).toBeNull();
    expect(canonicalPrefix6('10.0.0.0/8')).toBeNull();
  });
});

describe('nat6Script', () => {
  it('masquerades natOutgoing pools to outside every pool in table ip6 tortie-nat6; removes the table when none wants NAT', () => {
    const script = nat6Script(INPUT.pools);
    expect(script).toContain('table ip6 tortie-nat6 {');
    expect(script).toContain('elements = { fd00:10:244::/64 }');
    expect(script).toContain('ip6 saddr @nat-pools ip6 daddr != @all-pools masquerade');
    expect(nat6Script([{ cidr: 'fd00:10:244::/64' }])).toBe(
      'add table ip6 tortie-nat6\ndelete table ip6 tortie-nat6\n',
    );
  });
});

describe('Ipv6Dataplane', () => {
  it('writes what is missing, adopts the CNI plugin’s route, deletes only its own stale routes, sets forwarding', async () => {
    const calls: string[] = [];
    const kernel = [
      { dst: 'fd00:10:244::1', dev: workloadInterfaceName('default', 'web-0'), protocol: 'boot', scope: 'link' },
      { dst: 'fd00:10:244::c0/122', type: 'blackhole', protocol: '80' },
      { dst: 'fd00:54::/64', dev: 'eth0', protocol: 'kernel' },
    ];
    const sysctls: string[] = [];
    const scripts: string[] = [];
    const dp = new Ipv6Dataplane({
      ip: async (args, stdin) => {
        calls.push(`${args.join(' ')}${stdin ? `\n${stdin}` : ''}`);
        return { code: 0, stdout: args.includes('show') ? JSON.stringify(kernel) : '', stderr: '' };
      },
      writeSysctl: async (path, value) => void sysctls.push(`${path}=${value}`),
      nft: { apply: async (s) => void scripts.push(s) },
    });
    await dp.update(INPUT);
    expect(sysctls).toEqual(['net/ipv6/conf/all/forwarding=1']);
    expect(calls[1]).toBe(
      [
        '-6 -force -batch -',
        'route del blackhole fd00:10:244::c0/122 proto 80',
        'route replace blackhole fd00:10:244::/122 proto 80',
        `route replace fd00:10:244::1/128 dev ${workloadInterfaceName('default', 'web-0')} scope link proto 80`,
        'route replace fd00:10:244::40/122 via fd00:54::12 dev eth0 onlink proto 80',
        '',
      ].join('\n'),
    );
    expect(scripts).toHaveLength(1);
    expect(dp.status()).toMatchObject({ routes: 3, lastError: null });
  });

  it('a failed batch is kept as lastError, not thrown', async () => {
    const dp = new Ipv6Dataplane({
      ip: async (args) => ({ code: args.includes('show') ? 0 : 1, stdout: '[]', stderr: 'Command failed -:1' }),
    });
    await dp.update(INPUT);
    expect(dp.status().lastError).toMatch(/ip -6 -batch: Command failed -:1/);
  });

  it('reads `ip -6 -json route` spellings: host routes without /128, default', () => {
    expect(
      parseRoutes6('[{"dst":"fd00::1","dev":"cali1","protocol":"80"},{"dst":"default","gateway":"fe80::1"}]'),
    ).toEqual([
      { dst: 'fd00::1/128', type: 'unicast', dev: 'cali1', proto: '80' },
      { dst: '::/0', type: 'unicast', via: 'fe80::1', proto: '' },
    ]);
  });
});
